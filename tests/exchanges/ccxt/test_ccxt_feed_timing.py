"""The ccxt feed's next funding time, its settled-funding reads when due, and its periodic REST
cross-check of the book, on the Binance USD-M and Hyperliquid loopback fakes (tests/fakes/ccxt)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from tests.exchanges.ccxt.conftest import FAST, Harness, wait_until
from tests.exchanges.ccxt.test_ccxt_feed import Collector

D = Decimal


async def _feed(fake, **options):
    from perpbot.core.clock import LiveClock

    h = Harness(fake, **options)
    feed = h.ex.venue_feed(("binance:BTC-USD",), LiveClock(), "binance:")
    await asyncio.to_thread(feed.markets)
    return await Collector(feed).start()


def _settled(c):
    from perpbot.core.model import FundingRate

    return [f for f in c.of(FundingRate) if f.settled]


# -- next funding time ------------------------------------------------------------------------


async def test_next_funding_time_travels_with_the_prediction_into_market_state(fake_thread):
    from perpbot.core.model import FundingRate
    from perpbot.core.state import MarketState

    c = await _feed(fake_thread)
    try:
        await wait_until(lambda: [f for f in c.of(FundingRate) if not f.settled], what="a predicted rate")
        nxt = fake_thread.call(lambda: fake_thread.next_funding_ms)
        pred = [f for f in c.of(FundingRate) if not f.settled][-1]
        assert pred.next_funding_ns == nxt * 1_000_000  # markPriceUpdate "T"
        assert all(f.next_funding_ns is None for f in _settled(c))
        markets = c.feed.markets()
        state = MarketState(markets["binance:BTC-USD"])
        for ev in c.of(FundingRate):
            state.apply(ev)
        assert state.next_funding_ns == nxt * 1_000_000 and state.funding_rate_1h == D("0.0001") / 8
    finally:
        await c.stop()


def test_next_funding_time_is_journaled_only_when_set():
    from perpbot.core.model import FundingRate
    from perpbot.plugins.journal.codec import dumps_state, loads_state

    with_time = FundingRate("X", 1, D("0.00001"), next_funding_ns=3_600_000_000_000)
    without = FundingRate("X", 1, D("0.00001"))
    assert loads_state(dumps_state(with_time)) == with_time
    assert '"next_funding_ns":3600000000000' in dumps_state(with_time)
    assert "next_funding_ns" not in dumps_state(without)  # saved state keeps its encoding
    assert loads_state(dumps_state(without)) == without


async def test_settled_funding_is_read_shortly_after_the_next_funding_time(fake_thread):
    # poll_s 30: a fixed-period poll would not read again within this test
    c = await _feed(fake_thread, poll_s=30, funding_delay_s=0.3)
    try:
        await wait_until(lambda: _settled(c), what="the settled rate read at start")
        first = len(_settled(c))
        await asyncio.sleep(0.3)
        reads = c.feed.stats()["settled_reads"]
        due = int(time.time() * 1000) + 1500
        fake_thread.call(setattr, fake_thread, "next_funding_ms", due)  # the mark stream's "T" announces it
        await wait_until(lambda: c.feed.next_funding_ms.get("binance:BTC-USD") == due, what="the announced time")
        fake_thread.call(fake_thread.publish_funding_row, "BTCUSDT", due, "0.00020000")  # published, "T" unmoved
        await wait_until(lambda: len(_settled(c)) > first, timeout=4, what="the settlement read after its time")
        new = _settled(c)[-1]
        assert new.ts_ns == due * 1_000_000 and new.rate_1h == D("0.0002") / 8
        assert time.time() * 1000 >= due + 300  # not before the funding time + funding_delay_s
        assert c.feed.stats()["settled_reads"] - reads <= 2  # no fixed-period polling meanwhile
    finally:
        await c.stop()


async def test_a_next_funding_time_that_moves_on_is_read_at_once(fake_thread):
    c = await _feed(fake_thread, poll_s=30, funding_delay_s=0.2)
    try:
        await wait_until(lambda: _settled(c) and c.feed.next_funding_ms.get("binance:BTC-USD"), what="start")
        first = len(_settled(c))
        fake_thread.call(fake_thread.settle_funding, "BTCUSDT", "-0.00005")  # row now, "T" + 8 h
        await wait_until(lambda: len(_settled(c)) > first, timeout=4, what="the settlement after T moved on")
        assert _settled(c)[-1].rate_1h == D("-0.00005") / 8
    finally:
        await c.stop()


async def test_hyperliquid_next_funding_time_is_the_next_hour(monkeypatch):
    from perpbot.core.clock import LiveClock
    from perpbot.core.model import FundingRate
    from tests.exchanges.ccxt.test_ccxt_hyperliquid import _exchange
    from tests.fakes.ccxt.hyperliquid import TEST_ADDRESS, TEST_PRIVATE_KEY, FakeHyperliquid

    monkeypatch.setenv("PERPBOT_HYPERLIQUID_WALLET_ADDRESS", TEST_ADDRESS)
    monkeypatch.setenv("PERPBOT_HYPERLIQUID_PRIVATE_KEY", TEST_PRIVATE_KEY)
    with FakeHyperliquid() as hl:
        ex = await asyncio.to_thread(_exchange, hl, [])
        feed = ex.venue_feed(("hyperliquid:BTC-USD",), LiveClock(), "hyperliquid:")
        await asyncio.to_thread(feed.markets)
        c = await Collector(feed).start()
        try:
            await wait_until(lambda: [f for f in c.of(FundingRate) if not f.settled], what="a predicted rate")
            pred = [f for f in c.of(FundingRate) if not f.settled][-1]
            hour = 3600 * 10**9
            assert pred.next_funding_ns % hour == 0 and 0 < pred.next_funding_ns - pred.ts_ns <= hour + 10**9
            assert pred.interval_h == 1
        finally:
            await c.stop()


# -- REST cross-check ---------------------------------------------------------------------------

CHECK = {"crosscheck_s": 0.3, "crosscheck_grace_s": 0.2, "crosscheck_strikes": 2, "resync_s": 5}


async def _trickle(fake, stop: asyncio.Event, top: bool = True) -> None:
    """The market keeps updating: a diff every 50 ms at the top bid (or deep in the book)."""
    i = 0
    while not stop.is_set():
        i += 1
        if top:
            bid, _ = fake.call(fake.best, "BTCUSDT")
            fake.call(fake.set_levels, "BTCUSDT", {str(bid): str(D("0.5") + D(i % 7) / 10)}, None)
        else:
            fake.call(fake.set_levels, "BTCUSDT", {"60000.0": str(1 + i % 3)}, None)
        await asyncio.sleep(0.05)


async def test_cross_check_agrees_with_a_live_book(fake_thread):
    c = await _feed(fake_thread, **CHECK)
    stop = asyncio.Event()
    try:
        from perpbot.core.model import BookSnapshot

        await wait_until(lambda: c.of(BookSnapshot), what="first book")
        task = asyncio.create_task(_trickle(fake_thread, stop))
        await wait_until(lambda: c.feed.stats()["crosschecks"] >= 4, timeout=8, what="four cross-checks")
        stop.set()
        await task
        s = c.feed.stats()
        assert s["divergences"] == 0 and s["reconnects"] == 0, s
    finally:
        stop.set()
        await c.stop()


async def test_a_divergent_book_is_found_and_resynced(fake_thread):
    from perpbot.core.model import BookSnapshot, FeedStatus

    c = await _feed(fake_thread, **CHECK)
    stop = asyncio.Event()
    try:
        await wait_until(lambda: c.of(BookSnapshot), what="first book")
        bid, _ = fake_thread.call(fake_thread.best, "BTCUSDT")
        fake_thread.call(fake_thread.diverge, "BTCUSDT", {str(bid): "9.9"})  # REST shows it, the socket never
        task = asyncio.create_task(_trickle(fake_thread, stop, top=False))
        await wait_until(lambda: any(not s.healthy for s in c.of(FeedStatus)), timeout=8, what="the divergence")
        bad = [s for s in c.of(FeedStatus) if not s.healthy][0]
        assert "REST cross-check: 2 disagreement(s) in a row" in bad.reason and "x 9.9" in bad.reason, bad.reason
        await wait_until(lambda: any(s.healthy for s in c.of(FeedStatus)), timeout=8, what="resynced")
        await wait_until(lambda: c.of(BookSnapshot)[-1].bids[0] == (bid, D("9.9")), what="the venue's book")
        stop.set()
        await task
        s = c.feed.stats()
        assert s["divergences"] == 1 and s["disagreements"] >= 2 and s["reconnects"] >= 1, s
    finally:
        stop.set()
        await c.stop()


def test_cross_check_allows_for_updates_in_flight():
    from perpbot.exchanges.ccxt.crosscheck import BookCrossCheck

    def ob(bid, ask, nonce=None):
        return {"bids": [[bid, 1.0]], "asks": [[ask, 1.0]], "nonce": nonce}

    chk = BookCrossCheck(strikes=2, grace_s=0.5)
    chk.record(ob(100.0, 101.0), at=1.0)
    # the REST answer leads the socket: the socket brings the same top 0.3 s after the answer
    chk.record(ob(100.5, 101.0), at=2.3)
    assert chk.judge(ob(100.5, 101.0), sent=1.9, answered=2.0) is None
    # the REST answer lags: the socket's top before the request still counts
    assert chk.judge(ob(100.5, 101.0), sent=2.5, answered=2.6) is None
    # the socket moved on while the request was out: the REST answer is the top it had before
    chk.record(ob(101.0, 102.0), at=3.0)
    assert chk.judge(ob(100.5, 101.0), sent=2.9, answered=3.1) is None
    # a top the socket never showed around the request is a disagreement; two in a row diverge
    why = chk.judge(ob(99.0, 101.0), sent=2.5, answered=2.6)
    assert why and "REST top bid 99.0 x 1.0" in why and not chk.diverged
    assert chk.judge(ob(99.0, 101.0), sent=2.5, answered=2.6) and chk.diverged
    # with sequence numbers on both sides, the socket's top at that sequence decides
    seq = BookCrossCheck(strikes=1, grace_s=0.5)
    seq.record(ob(100.0, 101.0, nonce=7), at=1.0)
    seq.record(ob(100.5, 101.0, nonce=9), at=1.1)
    assert seq.judge(ob(100.0, 101.0, nonce=7), sent=1.2, answered=1.3) is None
    assert "at sequence 9" in seq.judge(ob(100.0, 101.0, nonce=9), sent=1.2, answered=1.3)
    assert seq.diverged
