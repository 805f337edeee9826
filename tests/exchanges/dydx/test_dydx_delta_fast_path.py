"""dYdX book updates: the inline path of ``BookKeeper.on_delta`` (exchanges/dydx/books.py).

The common update item, ``{"bids"|"asks": [[price, size]]}`` whose two strings are already
cached, is converted inline; every other item goes through the checked path
(``LevelValues.levels``). Whichever path an item takes, a message must give exactly what the
documented rules give with the uncached, validating ``values.levels``: the same levels in
the same order on the same side, the same Decimal objects as the cache's (so books match
prices by identity), and for a bad message the same one-line error naming the side and the
value, with the whole message rejected.

Update shapes as the indexer sends them: ``channel_data`` contents ``{bids?, asks?}`` and
``channel_batch_data`` contents a list of those, levels as ``[price, size]`` string pairs
(v4-chain ``indexer/packages/postgres/src/types/websocket-message-types.ts``; real examples
in ../shared/data/dydx_v4/nautilus_py/websocket/v4_orderbook_batched_data.json).
"""

from collections.abc import Mapping
from decimal import Decimal as D
from types import MappingProxyType

import pytest

from perpbot.core.model import BookDelta, FeedStatus
from perpbot.exchanges.dydx.parser import DydxParser
from perpbot.exchanges.dydx.values import BadValue, levels

T = "ETH-USD"
#: the snapshot every case starts from: its strings warm the caches (so the inline path is taken)
SNAP = {"bids": [{"price": "3390.5", "size": "2"}, {"price": "3390.4", "size": "0.5"}],
        "asks": [{"price": "3391", "size": "1"}, {"price": "3391.1", "size": "7.25"}]}
#: strings cached by the warm-up update below: prices 3390.6 / 3391.2, sizes 0 / 1.5 / 3
WARM = [{"bids": [["3390.6", "1.5"]]}, {"asks": [["3391.2", "3"]]}, {"bids": [["3390.6", "0"]]},
        {"asks": [["3391.2", "0"]]}]


def reference(items):
    """``(bids, asks)`` or the error text, by the documented rules with the uncached ``values.levels``."""
    bids, asks = [], []
    try:
        if not isinstance(items, (list, tuple)):
            raise BadValue(f"batch {items!r} is not a list of updates")
        for c in items:
            if not c:
                continue
            if not isinstance(c, Mapping):
                raise BadValue(f"update {c!r} is not an object")
            if "bids" in c:
                bids.extend(levels(c["bids"], "bid"))
            if "asks" in c:
                asks.extend(levels(c["asks"], "ask"))
    except BadValue as exc:
        return str(exc)
    return bids, asks


def through_parser(items, *, warm=True):
    """``(outcome as reference() gives it, parser)`` for one ``channel_batch_data`` message."""
    p = DydxParser({T})
    p.on_message({"type": "subscribed", "channel": "v4_orderbook", "id": T, "contents": SNAP}, 1)
    if warm:
        p.on_message({"type": "channel_batch_data", "channel": "v4_orderbook", "id": T, "contents": WARM}, 2)
    out = p.on_message({"type": "channel_batch_data", "channel": "v4_orderbook", "id": T, "contents": items}, 3)
    deltas = [e for e in out if type(e) is BookDelta]
    bad = [e for e in out if type(e) is FeedStatus and not e.healthy]
    if bad:
        assert not deltas, "a rejected message must apply nothing"
        reason = bad[0].reason
        prefix = f"bad book data {T}: "
        assert reason.startswith(prefix) and reason.endswith("; update dropped, resyncing from REST"), reason
        return reason[len(prefix):-len("; update dropped, resyncing from REST")], p
    if not deltas:
        return ([], []), p
    (d,) = deltas
    return (list(d.bids), list(d.asks)), p


CASES = [
    [{"bids": [["3390.6", "1.5"]]}],  # inline, cached
    [{"asks": [["3391.2", "3"]]}, {"bids": [["3390.5", "0"]]}, {"asks": [["3391", "1.5"]]}],
    [{"bids": [["3390.6", "3"]], "asks": [["3391.2", "1.5"]]}],  # both sides in one item
    [{"asks": [["3391.2", "1.5"]], "bids": [["3390.6", "3"]]}],
    [{"bids": [["3390.6", "3"], ["3390.4", "0"]]}],  # two levels in one item
    [{"bids": [["3390.61", "1.5"]]}],  # a price not cached yet
    [{"bids": [["3390.6", "1.25"]]}],  # a size not cached yet
    [{"other": [["3390.6", "1.5"]]}],  # a key that is neither side: ignored
    [{"bids": []}, {}, None, {"asks": None}],  # nothing to apply
    [{"bids": [("3390.6", "1.5")]}],  # a tuple level (a decoded dict given directly)
    [MappingProxyType({"bids": [["3390.6", "1.5"]]})],  # a Mapping that is not a dict
    [{"bids": [["3390.6", "3"]]}, {"asks": [["3391.2", "0"]]}, {"bids": [["3390.6", "0"]]}],  # order kept
    # bad messages: the whole message is rejected, the error names the side and the value
    [{"bids": [["3390.6", "-1"]]}],  # a negative size, its price cached
    [{"bids": [["0", "1.5"]]}],  # a zero price whose string is a cached SIZE ("0")
    [{"asks": [["3391.2", "3390.6"]]}],  # a cached price string as a size (not in the size cache)
    [{"bids": [["1.5", "3"]]}],  # a cached size string as a price: fine (a valid price), cached now
    [{"bids": [["3390.6", "1.5"]]}, {"asks": [["NaN", "3"]]}],  # the good item is not applied either
    [{"bids": [[["3390.6"], "1.5"]]}],  # an unhashable price
    [{"bids": [["3390.6", {"x": 1}]]}],  # an unhashable size
    [{"bids": [["3390.6"]]}],  # not a pair
    [{"bids": [["3390.6", "1.5", "3"]]}],
    [{"bids": ["3390.6"]}],  # a string level
    [{"bids": "3390.6"}],  # not a list of levels
    [{"bids": [[3390.6, "1.5"]]}],  # a float
    [5],  # an item that is not an object
    [{"bids": [["3390.6", "1.5"]]}, "x"],
    {"bids": [["3390.6", "1.5"]]},  # not a list of items
    [{"bids": [["-3390.6", "1"]], "asks": [["3391.2", "-3"]]}],  # both bad: the bid is named (checked first)
    [{"asks": [["3391.2", "-3"]], "bids": [["-3390.6", "1"]]}],
]


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
@pytest.mark.parametrize("items", CASES)
def test_update_gives_what_the_documented_rules_give(items, warm):
    want = reference(items)
    got, _ = through_parser(items, warm=warm)
    assert got == want


def test_inline_levels_are_the_caches_objects():
    items = [{"bids": [["3390.6", "1.5"]]}, {"asks": [["3391.2", "3"]]}]
    (bids, asks), p = through_parser(items)
    values = p.book_keeper.values
    assert bids == [(D("3390.6"), D("1.5"))] and asks == [(D("3391.2"), D(3))]
    assert bids[0][0] is values.prices["3390.6"] and bids[0][1] is values.sizes["1.5"]
    assert asks[0][0] is values.prices["3391.2"] and asks[0][1] is values.sizes["3"]
    book = p.books[T].book
    assert book.best_bid() == (D("3390.6"), D("1.5")) and book.best_ask() == (D("3391"), D(1))


def test_a_bad_update_leaves_the_book_and_counts_once():
    (before, _), p0 = through_parser([])
    assert before == []
    got, p = through_parser([{"bids": [["3390.6", "3"]]}, {"asks": [["3391.2", "-3"]]}])
    assert got == "ask size '-3' must be non-negative"
    assert p.stats["bad_payloads"] == 1 and T in p.resync_wanted
    assert p.books[T].book.bids.get(D("3390.6")) is None  # the good item was not applied


def test_a_string_cached_as_a_price_is_converted_as_a_size_from_the_size_cache():
    (bids, _), p = through_parser([{"bids": [["3390.6", "3391.2"]]}, {"bids": [["3390.6", "3391.2"]]}])
    values = p.book_keeper.values
    assert bids == [(D("3390.6"), D("3391.2"))] * 2
    assert all(q is values.sizes["3391.2"] for _, q in bids)
    assert values.prices["3391.2"] is not values.sizes["3391.2"]
