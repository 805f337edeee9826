"""dYdX book levels through the string cache (exchanges/dydx/books.py LevelValues).

The cache must give exactly what ``values.levels`` gives (values, order, and the same
BadValue text for every bad level), and the same Decimal object for the same string so
books match prices by identity. Level shapes as the indexer sends them: ``[price, size]``
pairs in ``channel_data`` / ``channel_batch_data`` updates and ``{price, size}`` objects in
``subscribed`` snapshots (v4-chain ``indexer/packages/postgres/src/types/websocket-message-types.ts``;
real examples in ../shared/data/dydx_v4/nautilus_py/websocket/v4_orderbook*.json).
"""

from decimal import Decimal as D

import pytest

from perpbot.exchanges.dydx import books
from perpbot.exchanges.dydx.books import LevelValues
from perpbot.exchanges.dydx.parser import DydxParser
from perpbot.exchanges.dydx.values import BadValue, levels


GOOD = [
    [["65920", "0"], ["65921.5", "1.25"], ["0.0001234", "1000000"]],
    [{"price": "3393.5", "size": "4.946"}, {"price": "3393.6", "size": "7.856"}],
    [],
    None,
]
ODD = [
    [["65920", "-1"]],  # negative size
    [["0", "1"]],  # zero price
    [["NaN", "1"]],
    [["1e99999", "1"]],
    [[65920, "1"]],  # a number, not a string (values.levels decides)
    [[1.5, "1"]],  # a float
    [["65920"]],  # not a pair
    [["65920", "1", "2"]],
    [{"price": "1"}],  # no size
    [{"price": "1", "size": "1", "x": 1}, ["2", "-1"]],
    "65920",
    [None],
]


@pytest.mark.parametrize("raw", GOOD)
def test_cached_levels_equal_the_validating_parser(raw):
    lv = LevelValues()
    assert lv.levels(raw, "bid") == levels(raw, "bid")
    assert lv.levels(raw, "bid") == levels(raw, "bid")  # served from the cache the second time


def _outcome(fn, raw):
    try:
        return fn(raw, "ask")
    except BadValue as exc:
        return f"BadValue: {exc}"


@pytest.mark.parametrize("raw", ODD)
def test_odd_levels_get_the_same_answer_or_error_cached_or_not(raw):
    lv = LevelValues()
    lv.levels([["65920", "1"], ["65921.5", "0"]], "ask")  # a warm cache must not hide a bad value
    want = _outcome(levels, raw)
    assert _outcome(lv.levels, raw) == want
    assert _outcome(lv.levels, raw) == want  # and again, once anything good in it is cached


def test_the_same_string_gives_the_same_decimal_object():
    lv = LevelValues()
    (p1, s1), = lv.levels([["65921.5", "1.25"]], "bid")
    (p2, s2), = lv.levels([{"price": "65921.5", "size": "1.25"}], "ask")
    assert p1 is p2 and s1 is s2 and p1 == D("65921.5")


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(books, "CACHE_MAX", 8)
    lv = LevelValues()
    for i in range(1, 50):
        assert lv.levels([[str(i), str(i)]], "bid") == [(D(i), D(i))]
        assert len(lv.prices) <= 8 and len(lv.sizes) <= 8


def test_parser_books_use_the_cache_and_reject_a_bad_update():
    p = DydxParser({"BTC-USD"})
    snap = {"type": "subscribed", "channel": "v4_orderbook", "id": "BTC-USD",
            "contents": {"bids": [{"price": "65920", "size": "1"}], "asks": [{"price": "65921", "size": "2"}]}}
    p.on_message(snap, 1)
    p.on_message({"type": "channel_batch_data", "channel": "v4_orderbook", "id": "BTC-USD",
                  "contents": [{"bids": [["65919", "3"]]}, {"asks": [["65921", "0"]]}]}, 2)
    book = p.books["BTC-USD"].book
    assert book.best_bid() == (D("65920"), D(1)) and book.best_ask_price() is None
    assert book.bids.get(D("65919")) == D(3)
    out = p.on_message({"type": "channel_data", "channel": "v4_orderbook", "id": "BTC-USD",
                        "contents": {"bids": [["65918", "-2"]]}}, 3)
    assert p.stats["bad_payloads"] == 1 and any(not getattr(e, "healthy", True) for e in out)
    assert D("65918") not in book.bids
