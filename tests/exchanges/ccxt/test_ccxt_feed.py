"""The ccxt market-data feed on the Binance USD-M fake: books, trades, mark/funding, sequencing, resync."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from tests.exchanges.ccxt.conftest import Harness, wait_until

D = Decimal


class Collector:
    """Runs a feed's batches into a list."""

    def __init__(self, feed):
        self.feed = feed
        self.events: list = []
        self.task = None

    async def start(self):
        await self.feed.start()

        async def pump():
            async for b in self.feed.batches():
                self.events.extend(b)

        self.task = asyncio.create_task(pump())
        return self

    async def stop(self):
        await self.feed.stop()
        async with asyncio.timeout(5):
            await self.task

    def of(self, cls):
        return [e for e in self.events if type(e) is cls]


async def _feed(fake):
    from perpbot.core.clock import LiveClock

    h = Harness(fake)
    feed = h.ex.venue_feed(("binance:BTC-USD",), LiveClock(), "binance:")
    markets = await asyncio.to_thread(feed.markets)
    assert list(markets) == ["binance:BTC-USD"] and markets["binance:BTC-USD"].tick_size == D("0.1")
    return await Collector(feed).start()


async def test_book_trades_mark_and_funding(fake_thread):
    from perpbot.core.model import BookSnapshot, FundingRate, OraclePrice, Side, Trade

    c = await _feed(fake_thread)
    try:
        await wait_until(lambda: c.of(BookSnapshot) and c.of(OraclePrice), what="book and mark")
        book = fake_thread.call(lambda: fake_thread.books["BTCUSDT"])
        snap = c.of(BookSnapshot)[-1]
        assert snap.ticker == "binance:BTC-USD"
        assert snap.bids[0] == (max(book["bids"]), book["bids"][max(book["bids"])])
        assert snap.asks[0] == (min(book["asks"]), book["asks"][min(book["asks"])])
        fake_thread.call(fake_thread.push_trade, "BTCUSDT", D("65000.5"), D("0.123"), False)
        await wait_until(lambda: c.of(Trade), what="a trade")
        (t,) = c.of(Trade)
        assert (t.price, t.size, t.side) == (D("65000.5"), D("0.123"), Side.BUY)  # buyer not maker: a taker buy
        predicted = [f for f in c.of(FundingRate) if not f.settled]
        assert predicted and predicted[-1].rate_1h == D("0.0001") / 8 and predicted[-1].interval_h == 8
        settled = [f for f in c.of(FundingRate) if f.settled]
        assert settled and settled[0].rate_1h == D("0.0001") / 8 and settled[0].oracle_price == D("65000")
        # the book follows depth diffs (U/u/pu chained)
        fake_thread.call(fake_thread.set_levels, "BTCUSDT", {"64999.9": "7"}, None)
        await wait_until(lambda: c.of(BookSnapshot)[-1].bids[0] == (D("64999.9"), D("7")), what="the diff applied")
    finally:
        await c.stop()


async def test_sequence_gap_is_reported_and_resynced(fake_thread):
    from perpbot.core.model import BookSnapshot, FeedStatus

    c = await _feed(fake_thread)
    try:
        await wait_until(lambda: c.of(BookSnapshot), what="first book")
        fake_thread.call(fake_thread.break_sequence, "BTCUSDT")
        await wait_until(lambda: any(not s.healthy for s in c.of(FeedStatus)), what="unhealthy status")
        bad = [s for s in c.of(FeedStatus) if not s.healthy][0]
        assert bad.ticker == "binance:BTC-USD" and "binance book" in bad.reason, bad.reason
        n = len(c.events)
        await wait_until(lambda: any(s.healthy for s in c.of(FeedStatus)), timeout=8, what="resynced")
        after = c.events[n:]
        assert any(type(e) is BookSnapshot for e in after)
        # the resynced book is the venue's (REST snapshot + chained diffs)
        fake_thread.call(fake_thread.set_levels, "BTCUSDT", {"64990.1": "3"}, None)
        await wait_until(lambda: (D("64990.1"), D("3")) in c.of(BookSnapshot)[-1].bids, what="diffs after the resync")
        assert c.feed.stats()["reconnects"] >= 1
    finally:
        await c.stop()


async def test_quiet_socket_is_resynced_over_rest(fake_thread):
    from perpbot.core.model import BookSnapshot

    c = await _feed(fake_thread)
    try:
        await wait_until(lambda: c.of(BookSnapshot), what="first book")
        await wait_until(lambda: c.feed.stats()["resyncs"] >= 1, timeout=4, what="a REST resync (resync_s=1)")
    finally:
        await c.stop()


async def test_non_finite_value_never_reaches_the_bot(fake_thread):
    from perpbot.core.model import BookSnapshot, Trade

    c = await _feed(fake_thread)
    try:
        await wait_until(lambda: c.of(BookSnapshot), what="first book")
        # ccxt's own parser refuses it (ccxt/base/precise.py); either way no event carries it
        fake_thread.call(fake_thread.push_trade, "BTCUSDT", D("NaN"), D("0.1"), False)
        await asyncio.sleep(0.3)
        for _ in range(40):  # the market goes on trading; the stalled trade socket is reopened (resync_s)
            fake_thread.call(fake_thread.push_trade, "BTCUSDT", D("65000.5"), D("0.2"), True)
            await asyncio.sleep(0.2)
            if c.of(Trade):
                break
        assert c.of(Trade), "the trade stream never recovered"
        assert {(t.price, t.size) for t in c.of(Trade)} == {(D("65000.5"), D("0.2"))}
    finally:
        await c.stop()


async def test_a_replaced_client_opened_again_by_a_call_in_flight_is_closed_at_stop(fake_thread):
    """A fetch still running on a client when a reconnect replaced and closed it makes ccxt open a
    new session on it (CI failure: "Unclosed client session" at exit); stop() closes it too."""
    from perpbot.exchanges.ccxt.client import client_open

    c = await _feed(fake_thread)
    feed = c.feed
    try:
        old = feed.client
        await feed._reconnect()
        async with asyncio.timeout(10):
            await asyncio.wait(feed._closing)
        assert not client_open(old)
        await old.fetch_order_book("BTC/USDT:USDT")  # the call that was in flight: a new session on the old client
        assert client_open(old)
    finally:
        await c.stop()
    assert not client_open(old) and feed.client is None
