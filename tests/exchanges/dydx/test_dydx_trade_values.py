"""dYdX trades: a price or size string the book levels already converted is served from
their caches (exchanges/dydx/market_channels.py ``MarketChannels.on_trades``).

Whether a string is cached or not, a trade must come out exactly as the documented rules
give it with the validating, uncached ``values`` functions: price finite and positive,
size finite and positive (a cached ``"0"`` is a valid level size but never a trade size),
the side as ``Side.parse`` reads it; a bad value drops that trade only, counted once per
message with a one-line reason naming the field and the value; a message of another shape
(a missing key, an unknown side) is counted as a bad payload.

Trade shape: ``v4_trades`` ``channel_data`` contents ``{"trades": [{id, side, size, price,
type, createdAt, createdAtHeight}]}`` (v4-chain
``indexer/packages/postgres/src/types/websocket-message-types.ts``, ``TradeContent``;
real examples in ../shared/data/dydx_v4/nautilus_py/websocket/v4_trades*.json).
"""

from decimal import Decimal as D

import pytest

from perpbot.core.model import Side, Trade
from perpbot.exchanges.dydx.parser import DydxParser
from perpbot.exchanges.dydx.values import BadValue, price_value, size_value

T = "BTC-USD"
#: the strings the book caches hold before the trades: prices 65920 / 65921.5, sizes 0 / 1.25 / 0.002
SNAP = {"bids": [{"price": "65920", "size": "1.25"}], "asks": [{"price": "65921.5", "size": "0.002"}]}
DELETE = [{"bids": [["65919", "0"]]}]


def trade(price="65920", size="0.002", side="BUY", **extra):
    t = {"id": "0000a1b2c3d400000002", "side": side, "size": size, "price": price, "type": "LIMIT",
         "createdAt": "2024-08-12T14:06:01.172Z", "createdAtHeight": "12345678"}
    t.update(extra)
    return t


def reference(trades):
    """``(trades, first bad-value text, shape error?)`` by the documented rules, uncached."""
    out, bad = [], ""
    try:
        for t in trades:
            try:
                price = price_value(t["price"], "trade price")
                size = size_value(t["size"], "trade size", zero_ok=False)
            except BadValue as exc:
                bad = bad or str(exc)
                continue
            out.append(Trade(T, 5, price=price, size=size, side=Side.parse(t["side"]), trade_id=str(t.get("id", ""))))
    except (KeyError, TypeError, ValueError, AttributeError):
        return [], "", True
    return out, bad, False


def through_parser(trades, *, warm):
    p = DydxParser({T})
    warned = []
    p.market_channels.warn_once = lambda key, text: warned.append(text)
    if warm:
        p.on_message({"type": "subscribed", "channel": "v4_orderbook", "id": T, "contents": SNAP}, 1)
        p.on_message({"type": "channel_batch_data", "channel": "v4_orderbook", "id": T, "contents": DELETE}, 2)
        assert {"65920", "65921.5"} <= set(p.book_keeper.values.prices)
        assert {"0", "1.25", "0.002"} <= set(p.book_keeper.values.sizes)
    before = p.stats["bad_payloads"]
    out = p.on_message({"type": "channel_data", "channel": "v4_trades", "id": T, "contents": {"trades": trades}}, 5)
    bad_count = p.stats["bad_payloads"] - before
    return out, warned, bad_count, p


CASES = [
    [trade()],  # both strings cached (when warm)
    [trade(price="65920.5", size="0.0021")],  # neither cached
    [trade(price="65921.5", size="1.25", side="SELL"), trade(size="3")],
    [trade(side="buy"), trade(side="Sell")],  # other spellings: Side.parse
    [trade(size="0")],  # a cached level size, never a trade size
    [trade(size="-0")],
    [trade(size="0"), trade(size="1.25")],  # only the bad trade is dropped
    [trade(price="0")],  # a cached SIZE string as a price
    [trade(price="-65920")],
    [trade(price="NaN"), trade(size="Infinity")],  # the first reason is reported
    [trade(price=["65920"])],  # unhashable price
    [trade(size={"x": 1})],  # unhashable size
    [trade(price=65920)],  # a number, not a string
    [{k: v for k, v in trade(price="0").items() if k != "size"}],  # a bad price: the (missing) size is not looked at
    [{k: v for k, v in trade().items() if k != "size"}],  # no size: a bad shape
    [trade(side="HOLD")],  # a side that is neither: a bad shape
    [trade(side=None)],
    [{k: v for k, v in trade().items() if k != "id"}],  # no id: ""
]


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
@pytest.mark.parametrize("trades", CASES)
def test_trades_give_what_the_documented_rules_give(trades, warm):
    want, want_bad, shape_error = reference(trades)
    out, warned, bad_count, p = through_parser(trades, warm=warm)
    if shape_error:
        assert out == [] and bad_count == 1
        return
    assert out == want
    assert [(e.price.as_tuple(), e.size.as_tuple()) for e in out] == [(w.price.as_tuple(), w.size.as_tuple())
                                                                      for w in want]  # same exponents
    assert bad_count == (1 if want_bad else 0)
    if want_bad:
        (text,) = warned
        assert want_bad in text and text.startswith(f"dYdX trades {T}: ")
    assert p.stats["trades"] == len(want)


def test_a_cached_string_gives_the_books_decimal_object():
    out, _, _, p = through_parser([trade(price="65921.5", size="1.25")], warm=True)
    (t,) = out
    assert t.price is p.book_keeper.values.prices["65921.5"] and t.size is p.book_keeper.values.sizes["1.25"]
    assert p.market_channels.prices is p.book_keeper.values.prices  # shared, not copied


def test_a_trade_string_converted_once_is_kept_for_the_next_trades_and_the_book():
    """A trade's price and size strings not cached yet are converted, checked and kept: the next
    trade (and a book level) with the same string gets that Decimal object; a rejected value and
    a zero size are never kept."""
    out, _, _, p = through_parser([trade(price="65930.5", size="0.0031"), trade(price="65930.5", size="0.0031")],
                                  warm=False)
    first, second = out
    values = p.book_keeper.values
    assert values.prices["65930.5"] is first.price is second.price
    assert values.sizes["0.0031"] is first.size is second.size
    p.on_message({"type": "subscribed", "channel": "v4_orderbook", "id": T,
                  "contents": {"bids": [{"price": "65930.5", "size": "0.0031"}], "asks": []}}, 6)
    assert p.books[T].book.best_bid() == (first.price, first.size)
    assert p.books[T].book.best_bid_price() is first.price
    p.on_message({"type": "channel_data", "channel": "v4_trades", "id": T,
                  "contents": {"trades": [trade(price="NaN", size="2"), trade(price="3", size="0"),
                                          trade(price="4", size="-1")]}}, 7)
    assert "NaN" not in values.prices and "0" not in values.sizes and "-1" not in values.sizes
    assert "2" not in values.sizes  # a bad price drops the trade before its size is read


def test_the_trade_strings_kept_are_bounded(monkeypatch):
    import perpbot.exchanges.dydx.market_channels as mc

    monkeypatch.setattr(mc, "CACHE_MAX", 8)
    p = DydxParser({T})
    for i in range(1, 40):
        (t,) = p.on_message({"type": "channel_data", "channel": "v4_trades", "id": T,
                             "contents": {"trades": [trade(price=str(60000 + i), size=f"0.{i:03d}")]}}, i)
        assert (t.price, t.size) == (60000 + i, D(f"0.{i:03d}"))
        assert len(p.book_keeper.values.prices) <= 8 and len(p.book_keeper.values.sizes) <= 8
