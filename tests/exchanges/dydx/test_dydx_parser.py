"""The parser on real indexer payloads: books (snapshot, absolute deltas, deletes, crossing, staleness),
trades, markets, candles, funding; bad input counted, never fatal."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from perpbot.core.book import OrderBook
from perpbot.core.model import (
    Bar,
    BookDelta,
    BookSnapshot,
    FeedStatus,
    FundingRate,
    MarketInfo,
    OraclePrice,
    Side,
    Trade,
)
from perpbot.core.state import MarketState
from perpbot.exchanges.dydx.parser import LIVE, REFRESH, RESYNC, STALE, DydxParser, parse_iso_ns
from tests.exchanges.dydx.conftest import load_shared, shared

D = Decimal


def snap(ticker, bids, asks, mid=1):
    return {"type": "subscribed", "channel": "v4_orderbook", "id": ticker, "message_id": mid,
            "contents": {"bids": [{"price": p, "size": s} for p, s in bids],
                         "asks": [{"price": p, "size": s} for p, s in asks]}}


def delta(ticker, bids=(), asks=(), mid=2):
    c = {}
    if bids:
        c["bids"] = [list(x) for x in bids]
    if asks:
        c["asks"] = [list(x) for x in asks]
    return {"type": "channel_data", "channel": "v4_orderbook", "id": ticker, "message_id": mid, "version": "1.0.0",
            "contents": c}


def rest(ticker, bids, asks):
    """The feed's pseudo-message carrying a REST book snapshot (the answer to a resync)."""
    return {"type": "perpbot_rest", "channel": "v4_orderbook", "id": ticker,
            "contents": {"bids": [{"price": p, "size": s} for p, s in bids],
                         "asks": [{"price": p, "size": s} for p, s in asks]}}


def apply_all(events, books):
    """Apply book events like MarketState does; returns the books."""
    for e in events:
        if isinstance(e, BookSnapshot):
            books.setdefault(e.ticker, OrderBook(e.ticker)).apply_snapshot(e.bids, e.asks, e.ts_ns)
        elif isinstance(e, BookDelta):
            books.setdefault(e.ticker, OrderBook(e.ticker)).apply_delta(e.bids, e.asks, e.ts_ns)
    return books


def levels(book):
    return (book.levels("bid"), book.levels("ask"))


# ---------------------------------------------------------------- real order-book sequences


def test_real_eth_sequence_crosses_and_is_uncrossed(market_of):
    """dYdX's own 9-message ETH-USD capture (abacus) crosses at message 3; no crossed book reaches the bot."""
    path = shared("abacus_extracted", "OrderbookChannelMock__load_test_2_sequence_ETH-USD.jsonl")
    msgs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    parser = DydxParser(["ETH-USD"])
    state = MarketState(market_of("ETH-USD"))
    books: dict = {}
    crossed_at = None
    for i, m in enumerate(msgs):
        events = parser.on_message(m, 1_000 + i)
        apply_all(events, books)
        for e in events:
            state.apply(e)
        if books:
            assert not books["ETH-USD"].is_crossed(), f"crossed book emitted at message {i}"
            assert levels(books["ETH-USD"]) == levels(parser.books["ETH-USD"].book)
        if crossed_at is None and parser.stats["crossed"]:
            crossed_at = i
            statuses = [e for e in events if isinstance(e, FeedStatus)]
            assert statuses and not statuses[-1].healthy and "crossed book ETH-USD" in statuses[-1].reason
        if crossed_at is not None:
            assert state.stale_reason(2_000 + i) is not None  # decisions on ETH paused
    assert crossed_at == 3
    assert parser.books["ETH-USD"].state == RESYNC
    assert parser.take_resyncs() == {"ETH-USD"}
    assert parser.stats["level_entries"] > 100


def test_real_snapshot_then_batched_update(market_of):
    s = load_shared("nautilus_py", "websocket", "v4_orderbook_snapshot.json")
    b = load_shared("nautilus_py", "websocket", "v4_orderbook_batched_data.json")
    parser = DydxParser(["ETH-USD"])
    ev = parser.on_message(s, 1)
    snap_ev = [e for e in ev if isinstance(e, BookSnapshot)][0]
    assert snap_ev.bids[0][0] > snap_ev.bids[-1][0] and snap_ev.asks[0][0] < snap_ev.asks[-1][0]
    assert [e for e in ev if isinstance(e, FeedStatus)][-1].healthy
    ev2 = parser.on_message(b, 2)
    deltas = [e for e in ev2 if isinstance(e, BookDelta)]
    crossed = parser.stats["crossed"]
    if not crossed:
        assert len(deltas) == 1  # one event for the whole batch, entries in order
        n = sum(len(c.get("bids", [])) + len(c.get("asks", [])) for c in b["contents"])
        assert len(deltas[0].bids) + len(deltas[0].asks) == n
    # whatever happened, the book the bot would hold equals the parser's and is not crossed
    books = apply_all(ev + ev2, {})
    assert levels(books["ETH-USD"]) == levels(parser.books["ETH-USD"].book)
    assert not books["ETH-USD"].is_crossed()


def test_zero_size_delete_of_unknown_level_is_ignored():
    p = DydxParser(["BTC-USD"])
    p.on_message(snap("BTC-USD", [("100", "1"), ("99", "2")], [("101", "1")]), 1)
    before = levels(p.books["BTC-USD"].book)
    ev = p.on_message(delta("BTC-USD", bids=[("50", "0")], asks=[("999", "0")]), 2)
    assert levels(p.books["BTC-USD"].book) == before
    assert p.books["BTC-USD"].state == LIVE and not [e for e in ev if isinstance(e, FeedStatus)]
    ev = p.on_message(delta("BTC-USD", bids=[("100", "0"), ("98", "3")]), 3)  # a real delete + an insert
    assert p.books["BTC-USD"].book.levels("bid") == [(D("99"), D("2")), (D("98"), D("3"))]
    # absolute sizes: "5" sets the level to 5, it does not add
    p.on_message(delta("BTC-USD", bids=[("99", "5")]), 4)
    assert p.books["BTC-USD"].book.size_at("bid", D("99")) == D("5")


# ---------------------------------------------------------------- staleness and resync


def test_stale_until_snapshot_and_kept_deltas_replayed():
    p = DydxParser(["BTC-USD", "ETH-USD"])
    start = p.start_events(0)
    assert {(e.ticker, e.healthy) for e in start} == {("BTC-USD", False), ("ETH-USD", False)}
    assert all("waiting for snapshot" in e.reason for e in start)
    # a delta before the snapshot is not applied (nor emitted) but kept
    assert p.on_message(delta("BTC-USD", bids=[("100", "7")]), 1) == []
    ev = p.on_message(snap("BTC-USD", [("100", "1"), ("99", "1")], [("101", "1")]), 2)
    assert p.books["BTC-USD"].book.size_at("bid", D("100")) == D("7")  # kept delta re-applied
    assert isinstance(ev[0], BookSnapshot) and (D("100"), D("7")) in ev[0].bids
    assert ev[-1] == FeedStatus("BTC-USD", 2, healthy=True, reason="")
    assert p.books["ETH-USD"].state == STALE
    # disconnect: every book stale again, nothing emitted for its deltas until the next snapshot
    ev = p.on_message({"type": "perpbot_disconnected", "reason": "close 1012 service restart"}, 3)
    assert {e.ticker for e in ev} == {"BTC-USD", "ETH-USD"} and not any(e.healthy for e in ev)
    assert "close 1012" in ev[0].reason
    assert p.on_message(delta("BTC-USD", asks=[("101", "0")]), 4) == []
    assert p.book_states()["BTC-USD"][0] == STALE


def test_crossed_book_resync_from_rest_applies_kept_deltas():
    p = DydxParser(["BTC-USD"])
    p.on_message(snap("BTC-USD", [("100", "1")], [("101", "1"), ("102", "1")]), 1)
    ev = p.on_message(delta("BTC-USD", bids=[("101", "5")]), 2)  # newer bid crosses the ask at 101
    assert isinstance(ev[0], BookSnapshot)
    assert not p.books["BTC-USD"].book.is_crossed()
    assert p.books["BTC-USD"].book.best_bid_price() == D("101")  # recency wins: the newer bid stays
    assert p.books["BTC-USD"].book.best_ask_price() == D("102")
    assert ev[-1].healthy is False and "resyncing from REST" in ev[-1].reason
    assert p.take_resyncs() == {"BTC-USD"}
    # deltas keep flowing (and are kept for the REST answer); still unhealthy
    ev = p.on_message(delta("BTC-USD", asks=[("103", "2")]), 3)
    assert isinstance(ev[0], BookDelta) and not any(isinstance(e, FeedStatus) for e in ev)
    # the REST snapshot does not know the level at 103 yet: it is re-applied on top
    ev = p.on_message({"type": "perpbot_rest", "channel": "v4_orderbook", "id": "BTC-USD",
                       "contents": {"bids": [{"price": "100", "size": "1"}],
                                    "asks": [{"price": "102", "size": "1"}]}}, 4)
    assert p.books["BTC-USD"].book.levels("ask") == [(D("102"), D("1")), (D("103"), D("2"))]
    assert ev[-1] == FeedStatus("BTC-USD", 4, healthy=True, reason="")
    assert p.stats["resyncs"] == 1 and p.stats["crossed"] == 1


def test_periodic_refresh_stays_healthy_and_failed_rest_keeps_crossed_unhealthy():
    p = DydxParser(["BTC-USD"])
    p.on_message(snap("BTC-USD", [("100", "1")], [("101", "1")]), 1)
    assert p.on_message({"type": "perpbot_resync", "id": "BTC-USD", "reason": "periodic"}, 2) == []
    assert p.books["BTC-USD"].state == REFRESH and p.books["BTC-USD"].healthy
    p.on_message(delta("BTC-USD", bids=[("100.5", "1")]), 3)
    ev = p.on_message({"type": "perpbot_rest", "channel": "v4_orderbook", "id": "BTC-USD",
                       "contents": {"bids": [{"price": "100", "size": "2"}], "asks": [{"price": "101", "size": "1"}]}}, 4)
    assert p.books["BTC-USD"].state == LIVE
    assert p.books["BTC-USD"].book.levels("bid") == [(D("100.5"), D("1")), (D("100"), D("2"))]
    assert not any(isinstance(e, FeedStatus) for e in ev)  # it never stopped being healthy
    # a REST answer for a stale book is ignored: the WS snapshot is what counts
    p.on_message({"type": "perpbot_disconnected"}, 5)
    assert p.on_message({"type": "perpbot_rest", "channel": "v4_orderbook", "id": "BTC-USD",
                         "contents": {"bids": [], "asks": []}}, 6) == []
    assert p.books["BTC-USD"].state == STALE
    # crossed + failed REST: still unhealthy, the resync is wanted again
    p.on_message(snap("BTC-USD", [("100", "1")], [("101", "1")]), 7)
    p.on_message(delta("BTC-USD", bids=[("102", "1")]), 8)
    p.take_resyncs()
    ev = p.on_message({"type": "perpbot_rest_failed", "id": "BTC-USD", "error": "timeout"}, 9)
    assert ev and ev[-1].healthy is False and "REST resync failed" in ev[-1].reason
    assert p.take_resyncs() == {"BTC-USD"}


def test_market_state_never_decides_on_a_stale_book(market_of):
    """Events through perpbot.core.state.MarketState: stale or crossed -> stale_reason says why."""
    st = MarketState(market_of("BTC-USD"))
    p = DydxParser(["BTC-USD"])
    for e in p.start_events(1):
        st.apply(e)
    assert "waiting for snapshot" in st.stale_reason(2)
    for e in p.on_message(snap("BTC-USD", [("100", "1")], [("101", "1")]), 3) + p.on_message(
            {"type": "channel_data", "channel": "v4_markets", "contents": {"oraclePrices": {}}}, 3):
        st.apply(e)
    st.oracle_price = D("100")
    assert st.stale_reason(4) is None
    for e in p.on_message({"type": "perpbot_disconnected", "reason": "drop"}, 5):
        st.apply(e)
    assert "waiting for snapshot" in st.stale_reason(6)
    for e in p.on_message(snap("BTC-USD", [("100", "1")], [("101", "1")]), 7):
        st.apply(e)
    assert st.stale_reason(8) is None
    for e in p.on_message(delta("BTC-USD", bids=[("101", "9")]), 9):
        st.apply(e)
    assert "crossed book" in st.stale_reason(10) and not st.book.is_crossed()


# ---------------------------------------------------------------- bad input


def test_malformed_json_unknown_channel_and_errors_are_counted_not_fatal():
    p = DydxParser(["BTC-USD"])
    assert p.on_raw('{"type":"channel_data","connection_id":', 1) == []
    assert p.on_raw(b"[1, 2]", 1) == []
    assert p.on_message({"type": "channel_data", "channel": "v4_unknown", "id": "X", "contents": {}}, 2) == []
    err = load_shared("nautilus_py", "websocket", "error.json")
    assert p.on_message(err, 3) == []
    assert p.on_message({"type": "channel_data", "channel": "v4_orderbook", "id": "BTC-USD",
                         "contents": {"bids": [["abc", "1"]]}}, 4) == []
    assert p.stats["malformed"] == 2 and p.stats["unknown_channel"] == 1 and p.stats["errors"] == 1
    assert p.stats["bad_payloads"] == 1
    assert "could not fetch data" in p.errors[-1]["message"]
    # and it still works afterwards: the dropped update was kept for nothing, so the snapshot
    # is followed by a REST resync (issue 9.5), which makes the book healthy again
    ev = p.on_message(snap("BTC-USD", [("1", "1")], [("2", "1")]), 5)
    assert not ev[-1].healthy and p.take_resyncs() == {"BTC-USD"}
    ev = p.on_message(rest("BTC-USD", [("1", "1")], [("2", "1")]), 6)
    assert ev[-1].healthy


# ---------------------------------------------------------------- garbage values (issue 9.5)


def live_parser():
    p = DydxParser(["BTC-USD"])
    p.on_message(snap("BTC-USD", [("100", "1"), ("99", "2")], [("101", "1"), ("102", "3")]), 1)
    assert p.books["BTC-USD"].state == LIVE
    return p


GOOD_BOOK = ([(D("100"), D("1")), (D("99"), D("2"))], [(D("101"), D("1")), (D("102"), D("3"))])


@pytest.mark.parametrize("bids, asks, what", [
    ([("99", "-3")], (), "bid size '-3' must be non-negative"),
    ([("99", "NaN")], (), "bid size 'NaN' must be finite"),
    ((), [("102", "Infinity")], "ask size 'Infinity' must be finite"),
    ([("-5", "1")], (), "bid price '-5' must be positive"),
    ([("0", "1")], (), "bid price '0' must be positive"),
    ([("Infinity", "1")], (), "bid price 'Infinity' must be finite"),  # was: "crossed", real bid removed
    ([("98", "1"), ("sNaN", "1")], (), "bid price 'sNaN' must be finite"),  # none of the message applies
    ([("1e999999", "1")], (), "bid price '1e999999' is out of range"),
    ([("abc", "1")], (), "bid price 'abc' is not a decimal string"),
    ([[99.5, "1"]], (), "bid price 99.5 is not a decimal string"),  # a JSON float
    ([("99",)], (), "is not a (price, size) pair"),
])
def test_garbage_in_a_delta_is_rejected_counted_and_resynced(bids, asks, what):
    p = live_parser()
    ev = p.on_message(delta("BTC-USD", bids=bids, asks=asks), 2)
    assert not any(isinstance(e, (BookDelta, BookSnapshot)) for e in ev)  # no garbage comes out
    (status,) = ev
    assert status.healthy is False and what in status.reason and "resyncing from REST" in status.reason
    assert p.stats["bad_payloads"] == 1
    assert levels(p.books["BTC-USD"].book) == GOOD_BOOK  # the real levels are untouched
    assert p.books["BTC-USD"].state == RESYNC and p.take_resyncs() == {"BTC-USD"}
    # valid deltas keep flowing and are kept for the REST answer, which makes the book healthy
    p.on_message(delta("BTC-USD", asks=[("103", "2")]), 3)
    ev = p.on_message(rest("BTC-USD", [("100", "1")], [("101", "1")]), 4)
    assert ev[-1] == FeedStatus("BTC-USD", 4, healthy=True, reason="")
    assert p.books["BTC-USD"].book.levels("ask") == [(D("101"), D("1")), (D("103"), D("2"))]


def test_a_zero_size_is_still_a_delete():
    p = live_parser()
    ev = p.on_message(delta("BTC-USD", bids=[("99", "0")]), 2)
    assert ev == [BookDelta("BTC-USD", 2, bids=((D("99"), D("0")),), asks=())]
    assert p.stats["bad_payloads"] == 0 and p.books["BTC-USD"].state == LIVE


def test_garbage_in_a_batch_drops_the_whole_message():
    p = live_parser()
    msg = {"type": "channel_batch_data", "channel": "v4_orderbook", "id": "BTC-USD", "message_id": 2,
           "contents": [{"bids": [["98", "4"]]}, {"asks": [["101", "-1"]]}]}
    ev = p.on_message(msg, 2)
    assert [type(e) for e in ev] == [FeedStatus] and p.stats["bad_payloads"] == 1
    assert levels(p.books["BTC-USD"].book) == GOOD_BOOK


def test_garbage_during_a_refresh_resyncs_again_after_the_answer_in_flight():
    p = live_parser()
    p.on_message({"type": "perpbot_resync", "id": "BTC-USD", "reason": "periodic"}, 2)
    ev = p.on_message(delta("BTC-USD", bids=[("99", "NaN")]), 3)
    assert ev[-1].healthy is False and p.take_resyncs() == {"BTC-USD"}
    # the answer to the earlier request may predate the dropped update: one more resync
    ev = p.on_message(rest("BTC-USD", [("100", "1")], [("101", "1")]), 4)
    assert ev[-1].healthy is False and p.take_resyncs() == {"BTC-USD"}
    ev = p.on_message(rest("BTC-USD", [("100", "1")], [("101", "1")]), 5)
    assert ev[-1].healthy is True


@pytest.mark.parametrize("source", ["ws", "rest"])
def test_garbage_in_a_snapshot_is_not_applied(source):
    p = DydxParser(["BTC-USD"])
    if source == "ws":
        ev = p.on_message(snap("BTC-USD", [("100", "1"), ("Infinity", "1")], [("101", "1")]), 1)
    else:
        p.on_message(snap("BTC-USD", [("100", "1")], [("101", "1")]), 1)
        p.on_message(delta("BTC-USD", bids=[("100", "-1")]), 2)  # -> RESYNC
        p.take_resyncs()
        ev = p.on_message(rest("BTC-USD", [("100", "1")], [("-101", "1")]), 3)
    assert [type(e) for e in ev] == [FeedStatus] and ev[0].healthy is False
    assert "snapshot rejected" in ev[0].reason
    assert p.books["BTC-USD"].book.levels("bid") == [] and p.books["BTC-USD"].state == RESYNC
    assert p.take_resyncs() == {"BTC-USD"}
    ev = p.on_message(rest("BTC-USD", [("100", "1")], [("101", "1")]), 4)
    assert isinstance(ev[0], BookSnapshot) and ev[-1].healthy is True


def test_garbage_oracle_prices_trades_funding_and_candles_are_dropped_and_counted():
    p = DydxParser(["BTC-USD"])
    row = {"ticker": "BTC-USD", "clobPairId": "0", "tickSize": "1", "stepSize": "0.0001",
           "atomicResolution": -10, "quantumConversionExponent": -9, "stepBaseQuantums": 1000000,
           "subticksPerTick": 100000, "initialMarginFraction": "0.05", "maintenanceMarginFraction": "0.03",
           "oraclePrice": "0", "nextFundingRate": "NaN"}
    ev = p.on_message({"type": "subscribed", "channel": "v4_markets", "contents": {"markets": {"BTC-USD": row}}}, 1)
    assert [type(e) for e in ev] == [MarketInfo] and ev[0].market.oracle_price is None
    assert p.stats["bad_payloads"] == 2
    for bad in ("0", "-1", "NaN", "Infinity"):
        ev = p.on_message({"type": "channel_data", "channel": "v4_markets",
                           "contents": {"oraclePrices": {"BTC-USD": {"oraclePrice": bad}}}}, 2)
        assert ev == []
    assert p.stats["bad_payloads"] == 6
    ev = p.on_message({"type": "channel_data", "channel": "v4_markets",
                       "contents": {"oraclePrices": {"BTC-USD": {"oraclePrice": "65000.5"}}}}, 3)
    assert ev == [OraclePrice("BTC-USD", 3, price=D("65000.5"))]
    trades = {"type": "channel_data", "channel": "v4_trades", "id": "BTC-USD",
              "contents": {"trades": [{"id": "a", "side": "BUY", "size": "0", "price": "65000"},
                                      {"id": "b", "side": "BUY", "size": "0.1", "price": "-65000"},
                                      {"id": "c", "side": "SELL", "size": "0.1", "price": "65000"}]}}
    ev = p.on_message(trades, 4)
    assert [e.trade_id for e in ev] == ["c"] and p.stats["bad_payloads"] == 7
    ev = p.on_message({"type": "perpbot_rest", "channel": "historical_funding", "id": "BTC-USD",
                       "contents": [{"rate": "Infinity", "price": "65000", "effectiveAtHeight": "1",
                                     "effectiveAt": "2024-01-01T00:00:00Z"}]}, 5)
    assert ev == [] and p.stats["bad_payloads"] == 8
    candle = {"ticker": "BTC-USD", "resolution": "1MIN", "low": "1", "high": "Infinity", "open": "1",
              "close": "1", "baseTokenVolume": "1", "startedAt": "2024-01-01T00:00:00.000Z"}
    p.on_message({"type": "channel_data", "channel": "v4_candles", "id": "BTC-USD/1MIN", "contents": candle}, 6)
    ev = p.on_message({"type": "channel_data", "channel": "v4_candles", "id": "BTC-USD/1MIN",
                       "contents": {**candle, "high": "2", "startedAt": "2024-01-01T00:01:00.000Z"}}, 7)
    assert ev == [] and p.stats["bad_payloads"] == 9  # the bar with a high of Infinity is not emitted


# ---------------------------------------------------------------- trades, markets, candles, funding


def test_real_trades():
    m = load_shared("nautilus_py", "websocket", "v4_trades.json")
    p = DydxParser(["ETH-USD"])
    ev = p.on_message(m, 7)
    assert ev == [
        Trade("ETH-USD", 7, price=D("3392.9"), size=D("0.01"), side=Side.BUY, trade_id="014206cf0000000200000002"),
        Trade("ETH-USD", 7, price=D("3392.9"), size=D("1.738"), side=Side.BUY, trade_id="014206cf000000020000000e"),
    ]
    # the history in a subscribed reply is not replayed as fresh trades
    assert p.on_message({**m, "type": "subscribed"}, 8) == []
    assert DydxParser(["BTC-USD"]).on_message(m, 9) == []  # not our market


def test_real_markets_snapshot_and_updates():
    m = load_shared("nautilus_py", "websocket", "v4_markets_subscribed.json")
    assert "id" not in m  # v4_markets carries no id
    tickers = ["BTC-USD", "ETH-USD"]
    p = DydxParser(tickers)
    ev = p.on_message(m, 1)
    infos = [e for e in ev if isinstance(e, MarketInfo)]
    assert sorted(e.ticker for e in infos) == tickers  # 98 markets in the payload, only ours emitted
    btc = m["contents"]["markets"]["BTC-USD"]
    assert p.markets["BTC-USD"].step_size == D(btc["stepSize"])
    assert OraclePrice("BTC-USD", 1, price=D(btc["oraclePrice"])) in ev
    assert FundingRate("BTC-USD", 1, rate_1h=D(btc["nextFundingRate"]), settled=False) in ev
    ev = p.on_message({"type": "channel_batch_data", "channel": "v4_markets", "contents": [
        {"oraclePrices": {"BTC-USD": {"oraclePrice": "65000.5", "effectiveAt": "x", "marketId": 0}, "JASMY-USD": {"oraclePrice": "1"}}},
        {"trading": {"BTC-USD": {"id": "0", "nextFundingRate": "0.0000125"}}},
        {"trading": {"BTC-USD": {"id": "0", "initialMarginFraction": "0.02", "maintenanceMarginFraction": "0.012"}}},
    ]}, 2)
    assert OraclePrice("BTC-USD", 2, price=D("65000.5")) in ev
    assert FundingRate("BTC-USD", 2, rate_1h=D("0.0000125"), settled=False) in ev
    info = [e for e in ev if isinstance(e, MarketInfo)][-1]
    assert info.market.initial_margin_fraction == D("0.02") and info.market.maintenance_margin_fraction == D("0.012")
    assert not any(e.ticker == "JASMY-USD" for e in ev)
    # the real channel_data shapes
    for name in ("v4_markets_channel_data.json", "v4_markets_trading_data.json", "v4_markets_channel_data_v8.json"):
        msg = load_shared("nautilus_py", "websocket", name)
        everyone = DydxParser(None)
        everyone.on_message(m, 0)
        everyone.on_message(msg, 1)
        assert everyone.stats["bad_payloads"] == 0


def test_candles_become_bars_when_they_close():
    p = DydxParser(["ETH-USD"])
    sub = load_shared("nautilus_py", "websocket", "v4_candles.json")
    assert p.on_message(sub, 1) == []
    newest = max(sub["contents"]["candles"], key=lambda c: c["startedAt"])
    upd = {**newest, "close": "3250.0", "high": "3251", "baseTokenVolume": "3"}
    assert p.on_message({"type": "channel_data", "channel": "v4_candles", "id": "ETH-USD/1MIN", "contents": upd}, 2) == []
    nxt = {**newest, "startedAt": "2024-07-26T17:58:00.000Z", "open": "3250.0", "close": "3250.0"}
    ev = p.on_message({"type": "channel_data", "channel": "v4_candles", "id": "ETH-USD/1MIN", "contents": nxt}, 3)
    assert newest["startedAt"] == "2024-07-26T17:57:00.000Z"
    assert ev == [Bar("ETH-USD", parse_iso_ns("2024-07-26T17:58:00.000Z"), open=D(newest["open"]), high=D("3251"),
                      low=D(newest["low"]), close=D("3250.0"), volume=D("3"), interval_s=60)]


def test_settled_funding_from_rest_is_deduplicated():
    rows = load_shared("nautilus_rust", "http_get_historical_funding.json")["result"]["historicalFunding"]
    t = rows[0]["ticker"]
    p = DydxParser([t])
    msg = {"type": "perpbot_rest", "channel": "historical_funding", "id": t, "contents": rows}
    ev = p.on_message(msg, 1)
    newest = max(rows, key=lambda r: int(r["effectiveAtHeight"]))
    assert ev == [FundingRate(t, 1, rate_1h=D(newest["rate"]), settled=True, interval_h=1, oracle_price=D(newest["price"]))]
    assert p.on_message(msg, 2) == []


def test_parse_iso_ns():
    assert parse_iso_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_iso_ns("2024-08-12T14:06:01.172Z") % 1_000_000_000 == 172_000_000
