"""The live feed against the loopback fake indexer (real WebSocket and REST on 127.0.0.1):
data flow, fault injection (drops, close codes 1011/1012/1008, crossed book, malformed JSON,
unknown channel, slow REST), a disconnect storm, and the REST policy (timeout, retries, budget)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from perpbot.core.book import OrderBook
from perpbot.core.errors import ExchangeError, TemporaryExchangeError
from perpbot.core.model import BookDelta, BookSnapshot, FeedStatus, FundingRate, MarketInfo, OraclePrice, Trade
from perpbot.exchanges.dydx.parser import LIVE, V4_MARKETS, V4_ORDERBOOK, V4_TRADES
from tests.exchanges.dydx.conftest import FAST, wait_until

D = Decimal
TICKERS = ("BTC-USD", "ETH-USD")


def all_live(feed, tickers=TICKERS):
    """Every book healthy AND every event handed to the consumer (the queue is drained)."""
    return all(feed.book_states()[t][0] == LIVE for t in tickers) and feed.counters["queued"] == feed.counters["batches"]


def fake_levels(ix, ticker):
    """The fake's current book as ((price, size) best first) per side, uncrossed and capped at 100
    levels per side like the indexer's snapshots (a level deeper than that is never sent)."""
    snap = ix.book(ticker).snapshot(ix.max_levels)
    return ([(D(l["price"]), D(l["size"])) for l in snap["bids"]],
            [(D(l["price"]), D(l["size"])) for l in snap["asks"]])


def top(book, n=100):
    return (book.levels("bid", n), book.levels("ask", n))


def bot_books(events):
    books = {}
    for e in events:
        if isinstance(e, BookSnapshot):
            books.setdefault(e.ticker, OrderBook(e.ticker)).apply_snapshot(e.bids, e.asks)
        elif isinstance(e, BookDelta):
            books.setdefault(e.ticker, OrderBook(e.ticker)).apply_delta(e.bids, e.asks)
    return books


def assert_never_fresh_while_stale(events, ticker):
    """After an unhealthy FeedStatus, no delta is applied before a full snapshot, and the
    healthy FeedStatus comes only after that snapshot."""
    stale = False
    snapshot_since = False
    for e in events:
        if e.ticker != ticker:
            continue
        if isinstance(e, FeedStatus):
            if not e.healthy:
                stale, snapshot_since = True, False
            else:
                assert snapshot_since or not stale, "healthy again without a fresh snapshot"
                stale = False
        elif isinstance(e, BookDelta) and stale and "waiting for snapshot" in _last_reason(events, e, ticker):
            raise AssertionError("a delta was emitted for a book waiting for its snapshot")
        elif isinstance(e, BookSnapshot):
            snapshot_since = True


def _last_reason(events, upto, ticker):
    reason = ""
    for e in events:
        if e is upto:
            return reason
        if isinstance(e, FeedStatus) and e.ticker == ticker:
            reason = e.reason
    return reason


async def close_feed(col):
    await col.close()


# ---------------------------------------------------------------- happy path


async def test_one_socket_all_channels_and_events(indexer, make_feed):
    feed, col = await make_feed(indexer)
    try:
        await wait_until(lambda: all_live(feed), what="both books live")
        subs = indexer.subscriptions()
        assert len(subs) == 1  # ONE WebSocket for every market and channel
        (conn_subs,) = subs.values()
        keys = {(c, i) for c, i, _ in conn_subs}
        assert keys == {(V4_MARKETS, V4_MARKETS), (V4_ORDERBOOK, "BTC-USD"), (V4_ORDERBOOK, "ETH-USD"),
                        (V4_TRADES, "BTC-USD"), (V4_TRADES, "ETH-USD")}
        ask = fake_levels(indexer, "BTC-USD")[1][0][0]
        await indexer.push_orderbook("BTC-USD", asks=[(ask, "0"), (ask + 5, "1.5")])
        await indexer.push_trades("ETH-USD", [{"side": "SELL", "size": "0.5", "price": "3000.1"}])
        await indexer.push_market("BTC-USD", oracle_price="65001.5", next_funding_rate="0.00001")
        await wait_until(lambda: col.of(Trade) and any(e.price == D("65001.5") for e in col.of(OraclePrice))
                         and any(e.rate_1h == D("0.00001") for e in col.of(FundingRate)), what="events")
        await wait_until(lambda: bot_books(col.events)["BTC-USD"].best_ask_price() == fake_levels(indexer, "BTC-USD")[1][0][0])
        t = col.of(Trade)[-1]
        assert (t.ticker, t.side.value, t.size, t.price) == ("ETH-USD", "SELL", D("0.5"), D("3000.1"))
        assert {e.ticker for e in col.of(MarketInfo)} == set(TICKERS)
        assert any(e.settled for e in col.of(FundingRate))  # hourly rate from /historicalFunding
        for tkr in TICKERS:
            assert top(bot_books(col.events)[tkr]) == fake_levels(indexer, tkr)
    finally:
        await close_feed(col)


# ---------------------------------------------------------------- faults


@pytest.mark.parametrize("fault", ["drop", 1011, 1012, 1008])
async def test_connection_faults_recover_with_fresh_snapshots(indexer, make_feed, fault):
    feed, col = await make_feed(indexer)
    try:
        await wait_until(lambda: all_live(feed), what="books live")
        n0 = len(col.events)
        if fault == "drop":
            await indexer.drop_all_connections()
        else:
            await indexer.close_all(code=fault)
        await wait_until(lambda: any(isinstance(e, FeedStatus) and not e.healthy for e in col.events[n0:]),
                         what="unhealthy status after the fault")
        # while stale, changes happen on the server...
        await indexer.push_orderbook("ETH-USD", bids=[("3393.25", "1")])
        await wait_until(lambda: feed.conn.stats["connects"] >= 2 and all_live(feed), timeout=8, what="recovery")
        after = col.events[n0:]
        for tkr in TICKERS:
            reasons = [e.reason for e in after if isinstance(e, FeedStatus) and e.ticker == tkr and not e.healthy]
            assert reasons and "waiting for snapshot: connection lost" in reasons[0]
            assert any(isinstance(e, FeedStatus) and e.ticker == tkr and e.healthy for e in after)
            assert_never_fresh_while_stale(col.events, tkr)
        await wait_until(lambda: all(top(bot_books(col.events)[t]) == fake_levels(indexer, t) for t in TICKERS),
                         what="books equal the server's")
        assert len(indexer.subscriptions()) == 1
        if fault in (1011, 1012, 1008):
            assert fault in feed.conn.close_codes
    finally:
        await close_feed(col)


async def test_crossed_book_is_uncrossed_then_resynced_from_rest(indexer, make_feed):
    feed, col = await make_feed(indexer)
    try:
        await wait_until(lambda: all_live(feed), what="books live")
        n0 = len(col.events)
        await indexer.push_crossed_book("ETH-USD")
        await wait_until(lambda: feed.parser.stats["resyncs"] >= 1 and all_live(feed), what="resync")
        after = [e for e in col.events[n0:] if e.ticker == "ETH-USD"]
        st = [e for e in after if isinstance(e, FeedStatus)]
        assert not st[0].healthy and "crossed book ETH-USD" in st[0].reason and st[-1].healthy
        assert indexer.request_counts["/v4/orderbooks/perpetualMarket/ETH-USD"] >= 1
        books = bot_books(col.events)
        assert not books["ETH-USD"].is_crossed()
        assert top(books["ETH-USD"]) == fake_levels(indexer, "ETH-USD")
        assert all_live(feed, ("BTC-USD",))  # the other market never paused
    finally:
        await close_feed(col)


async def test_malformed_json_and_unknown_channel_do_not_disturb(indexer, make_feed):
    feed, col = await make_feed(indexer)
    try:
        await wait_until(lambda: all_live(feed), what="books live")
        await indexer.send_malformed()
        await indexer.send_unknown_channel()
        await indexer.push_orderbook("BTC-USD", bids=[("100", "1")])
        await wait_until(lambda: feed.parser.stats["malformed"] == 1 and feed.parser.stats["unknown_channel"] == 1,
                         what="counted")
        await wait_until(lambda: bot_books(col.events)["BTC-USD"].size_at("bid", D("100")) == D("1"), what="data")
        assert feed.conn.stats["connects"] == 1 and all_live(feed)
    finally:
        await close_feed(col)


async def test_slow_rest_resync_times_out_market_stays_paused_then_recovers(indexer, make_feed):
    feed, col = await make_feed(indexer, rest_timeout_s=0.2, rest_retries=1)
    try:
        await wait_until(lambda: all_live(feed), what="books live")
        indexer.set_rest_delay(1.0, "/v4/orderbooks")
        n0 = len(col.events)
        await indexer.push_crossed_book("BTC-USD")
        await wait_until(lambda: feed.counters["resync_failures"] >= 1, timeout=6, what="a timed-out resync")
        assert feed.book_states()["BTC-USD"][0] != LIVE
        reasons = [e.reason for e in col.events[n0:] if isinstance(e, FeedStatus) and e.ticker == "BTC-USD"]
        assert any("REST resync failed" in r and "timeout" in r for r in reasons)
        assert not any(isinstance(e, FeedStatus) and e.healthy and e.ticker == "BTC-USD" for e in col.events[n0:])
        indexer.clear_faults()
        await wait_until(lambda: all_live(feed), timeout=6, what="recovery once REST answers")
        assert top(bot_books(col.events)["BTC-USD"]) == fake_levels(indexer, "BTC-USD")
    finally:
        await close_feed(col)


async def test_snapshot_that_never_comes_is_resubscribed(make_feed):
    from tests.fakes import FakeIndexer

    class SwallowFirstBook(FakeIndexer):
        swallowed = 0

        def _finish_subscribe(self, conn, channel, id_, sid, batched, mid):
            if channel == V4_ORDERBOOK and id_ == "BTC-USD" and not self.swallowed:
                self.swallowed += 1
                return  # the indexer lost this subscribe (no reply, no error)
            super()._finish_subscribe(conn, channel, id_, sid, batched, mid)

    ix = SwallowFirstBook(batch_interval=0.02)
    await ix.start()
    feed, col = await make_feed(ix, snapshot_timeout_s=0.3)
    try:
        await wait_until(lambda: all_live(feed), timeout=5, what="BTC book after resubscribe")
        assert ix.swallowed == 1 and feed.counters["resubscribes"] >= 1
    finally:
        await close_feed(col)
        await ix.stop()


async def test_disconnect_storm_ends_with_one_connection_everything_restored(indexer, make_feed):
    """10 drops (network drops and 1011/1012/1008 closes) within seconds."""
    feed, col = await make_feed(indexer)
    try:
        await wait_until(lambda: all_live(feed), what="books live")
        faults = ["drop", 1011, 1012, "drop", 1008, 1012, "drop", 1011, "drop", 1012]
        for i, fault in enumerate(faults):
            await wait_until(lambda: feed.conn.connected.is_set() and indexer.connection_ids, timeout=8,
                             what=f"reconnect {i}")
            if fault == "drop":
                await indexer.drop_all_connections()
            else:
                await indexer.close_all(code=fault)
            await wait_until(lambda: not feed.conn.connected.is_set(), timeout=5, what=f"drop {i} noticed")
            if i % 3 == 0:  # sometimes change the book while we are away
                await indexer.push_orderbook("BTC-USD", bids=[(str(60000 + i), "1")])
        await wait_until(lambda: feed.conn.connected.is_set() and all_live(feed), timeout=15, what="final recovery")
        assert feed.conn.stats["connects"] == 11 and feed.conn.stats["disconnects"] == 10
        subs = indexer.subscriptions()
        assert len(subs) == 1 and len(indexer.connection_ids) == 1
        (conn_subs,) = subs.values()
        assert {(c, i) for c, i, _ in conn_subs} == {
            (V4_MARKETS, V4_MARKETS), (V4_ORDERBOOK, "BTC-USD"), (V4_ORDERBOOK, "ETH-USD"),
            (V4_TRADES, "BTC-USD"), (V4_TRADES, "ETH-USD")}
        books = bot_books(col.events)
        for t in TICKERS:
            assert top(books[t]) == fake_levels(indexer, t)
            assert_never_fresh_while_stale(col.events, t)
        assert feed.parser.stats["disconnects"] == 10
        # resubscribing was throttled (<= 2 per second per channel+id): the server never rate-limited us
        assert feed.conn.stats["subscribe_throttled"] > 0
        assert not any("Too many subscribe attempts" in str(e.get("message")) for e in feed.parser.errors)
    finally:
        await close_feed(col)


# ---------------------------------------------------------------- REST policy


def rest_for(ix, **over):
    from perpbot.exchanges.dydx.config import DydxSettings
    from perpbot.exchanges.dydx.rest import IndexerRest

    cfg = {"network": "custom", "indexer_rest": ix.rest_url, "indexer_ws": ix.ws_url, **FAST, **over}
    return IndexerRest(DydxSettings.from_config(cfg))


async def test_rest_retries_temporary_errors_and_surfaces_failures(indexer):
    rest = rest_for(indexer)
    indexer.fail_rest(429, count=2, path_prefix="/v4/height")
    assert await rest.height() == indexer.height
    assert rest.retries == 2
    indexer.fail_rest(503, count=None, path_prefix="/v4/height")
    with pytest.raises(TemporaryExchangeError) as err:
        await rest.height()
    assert "HTTP 503" in str(err.value) and "gave up after 3 attempt(s)" in str(err.value)
    indexer.clear_faults()
    with pytest.raises(ExchangeError) as err2:
        await rest.orderbook("NOPE-USD")
    assert not isinstance(err2.value, TemporaryExchangeError) and "404" in str(err2.value)


async def test_rest_timeout_is_explicit_and_surfaced(indexer):
    rest = rest_for(indexer, rest_timeout_s=0.2, rest_retries=1)
    assert rest.client.markets.api_timeout == 0.2  # never the client's 3_000 "seconds"
    indexer.set_rest_delay(0.8, "/v4/perpetualMarkets")
    with pytest.raises(TemporaryExchangeError, match="timeout"):
        await rest.perpetual_markets()


async def test_rest_budget_is_respected(indexer):
    # a generous timeout: under a loaded CI machine a slow reply must not become a retry (13 requests)
    rest = rest_for(indexer, rest_max_requests=5, rest_window_s=0.5, rest_timeout_s=30)
    sent: list[float] = []
    acquire = rest.limiter.acquire

    async def logged():
        await acquire()
        # the grant time the limiter itself recorded: a clock read here, after the await,
        # can land late under load and make two grants 0.5 s apart look closer (flaky in CI)
        sent.append(rest.limiter._stamps[-1])

    rest.limiter.acquire = logged
    indexer.reset_counts()
    await asyncio.gather(*(rest.height() for _ in range(12)))
    assert indexer.request_counts["/v4/height"] == 12 and len(sent) == 12
    sent.sort()
    # never more than 5 requests go out inside any 0.5 s window
    for i in range(len(sent) - 5):
        assert sent[i + 5] - sent[i] >= 0.5 - 1e-3
    assert rest.limiter.waited >= 2  # the 6th and the 11th waited for the window to free up


async def test_server_pings_are_answered_and_the_connection_stays_up(make_feed):
    from tests.fakes import FakeIndexer

    ix = FakeIndexer(batch_interval=0.02, ping_interval=0.05, ping_timeout=0.2)  # closes 1011 without a pong
    await ix.start()
    feed, col = await make_feed(ix, ws_ping_interval_s=0.1, ws_ping_timeout_s=0.5)
    try:
        await wait_until(lambda: all_live(feed), what="books live")
        await asyncio.sleep(0.6)  # a dozen server pings and a few of ours
        assert feed.conn.stats["connects"] == 1 and feed.conn.stats["disconnects"] == 0 and all_live(feed)
    finally:
        await close_feed(col)
        await ix.stop()


async def test_a_consumer_that_falls_behind_gets_every_book_rebuilt(indexer, tmp_path):
    from perpbot.core.clock import LiveClock
    from perpbot.exchanges.dydx.feed import DydxFeed
    from tests.exchanges.dydx.conftest import Collector, Ctx, feed_config

    feed = DydxFeed(feed_config(indexer, max_queue=10), Ctx(LiveClock(), TICKERS, tmp_path))
    await feed.start()  # nobody consumes yet
    await indexer.wait_for_subscription(V4_ORDERBOOK, "BTC-USD")
    for i in range(20):
        await indexer.push_orderbook("BTC-USD", bids=[(str(80000 + i), "1")])
        await asyncio.sleep(0.03)  # one batched message per flush
    await wait_until(lambda: feed.counters["queue_overflows"] >= 1, what="overflow")
    col = Collector(feed)  # the consumer is back
    try:
        await wait_until(lambda: all_live(feed) and feed.conn.stats["connects"] >= 2, timeout=8, what="rebuilt")
        st = [e for e in col.events if isinstance(e, FeedStatus) and e.ticker == "BTC-USD"]
        assert not st[0].healthy and "queue overflow" in st[0].reason and st[-1].healthy
        assert top(bot_books(col.events)["BTC-USD"]) == fake_levels(indexer, "BTC-USD")
    finally:
        await close_feed(col)
