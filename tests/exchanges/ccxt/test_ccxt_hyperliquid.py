"""The ccxt plugin on the Hyperliquid loopback fake (``hyperliquid=ccxt:hyperliquid``): markets, feed,
orders with 128-bit client ids, fills from ``userFills``, hourly funding from ``userFunding``."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.exchanges.ccxt.conftest import FAST, wait_until
from tests.fakes.ccxt.hyperliquid import TEST_ADDRESS, TEST_PRIVATE_KEY, FakeHyperliquid

D = Decimal


@pytest.fixture
def hl(monkeypatch):
    monkeypatch.setenv("PERPBOT_HYPERLIQUID_WALLET_ADDRESS", TEST_ADDRESS)
    monkeypatch.setenv("PERPBOT_HYPERLIQUID_PRIVATE_KEY", TEST_PRIVATE_KEY)
    with FakeHyperliquid() as fake:
        yield fake


def _exchange(fake, events):
    from perpbot.core.clock import LiveClock
    from perpbot.core.exchange import ExchangeContext
    from perpbot.exchanges.ccxt import CcxtExchange

    ctx = ExchangeContext(clock=LiveClock(), markets={}, options={"venue": "hyperliquid", "plugin_arg": "hyperliquid"})
    ex = CcxtExchange({"url": fake.url, **FAST}, ctx)
    ex.set_event_sink(events.append)
    ex.preflight()
    ex.table.load()
    ctx.markets.update({t: vm.market for t, vm in ex.table.by_ticker.items()})
    return ex


def test_hyperliquid_markets(hl):
    ex = _exchange(hl, [])
    vm = ex.table.get("BTC-USD")
    assert vm.symbol == "BTC/USDC:USDC" and vm.funding_interval_h == 1
    assert (vm.step_size, vm.min_notional, vm.max_leverage) == (D("0.00001"), D("10"), D("50"))
    assert (vm.market.initial_margin_fraction, vm.market.maintenance_margin_fraction) == (D("0.02"), D("0.01"))


async def test_hyperliquid_orders_fills_and_funding(hl):
    from perpbot.core.model import Fill, FundingPayment, OrderRequest, OrderStatus, OrderType, Side, TimeInForce

    events: list = []
    ex = _exchange(hl, events)
    await ex.connect()
    try:
        await asyncio.sleep(0.3)
        # a market order is an IOC limit at the worst price (the given price + 5 %): 0x... cloid, filled once
        r = await ex.place_order(OrderRequest(client_id=5, ticker="BTC-USD", side=Side.BUY, size=D("0.002"),
                                              order_type=OrderType.MARKET, price=D("65000")))
        assert r.success, r
        sent = hl.call(lambda: hl.exchange_requests[-1]["action"]["orders"][0])
        assert sent["c"] == "0x" + "0" * 31 + "5" and sent["s"] == "0.002" and sent["t"] == {"limit": {"tif": "Ioc"}}
        assert D(sent["p"]) == D("68250")
        # no ccxt builder fee approval, no ccxt referral code, no builder on our orders
        actions = hl.call(lambda: [r["action"] for r in hl.exchange_requests])
        assert [a["type"] for a in actions] == ["order"] and "builder" not in actions[0]
        await wait_until(lambda: [e for e in events if type(e) is Fill], what="the fill")
        await asyncio.sleep(0.8)  # reconciliations
        (f,) = [e for e in events if type(e) is Fill]
        assert f.client_id == 5 and f.size == D("0.002") and f.fee == (f.price * f.size * D("0.00045")).quantize(D("0.000001"))
        # post-only crossing: the venue's message
        r = await ex.place_order(OrderRequest(client_id=6, ticker="BTC-USD", side=Side.BUY, size=D("0.002"),
                                              order_type=OrderType.LIMIT, price=D("70000"), post_only=True,
                                              time_in_force=TimeInForce.POST_ONLY))
        assert not r.success and "Post only order would have immediately matched" in r.error, r.error
        # two hourly settlements: two payments (Hyperliquid's funding rows share one zero hash)
        paid = [hl.call(hl.settle_funding, "BTC"), None]
        await wait_until(lambda: len([e for e in events if type(e) is FundingPayment]) == 1, what="first funding")
        await asyncio.sleep(0.01)
        paid[1] = hl.call(hl.settle_funding, "BTC")
        await wait_until(lambda: len([e for e in events if type(e) is FundingPayment]) == 2, what="second funding")
        await asyncio.sleep(0.8)
        pays = [e for e in events if type(e) is FundingPayment]
        assert [p.amount for p in pays] == paid and all(p.size == D("0.002") for p in pays)
        pos = await ex.get_positions()
        assert pos["BTC-USD"].size == D("0.002")
        bal = await ex.get_balance()
        assert bal.equity > 0
        assert OrderStatus  # imported for readability of the statuses above
    finally:
        await ex.disconnect()


async def test_hyperliquid_feed(hl):
    from perpbot.core.clock import LiveClock
    from perpbot.core.model import BookSnapshot, FundingRate, OraclePrice

    ex = _exchange(hl, [])
    feed = ex.venue_feed(("hyperliquid:BTC-USD",), LiveClock(), "hyperliquid:")
    await asyncio.to_thread(feed.markets)
    await feed.start()
    events: list = []

    async def pump():
        async for b in feed.batches():
            events.extend(b)

    task = asyncio.create_task(pump())
    try:
        await wait_until(lambda: any(type(e) is BookSnapshot for e in events) and any(type(e) is OraclePrice for e in events),
                         what="book and mark")
        snap = [e for e in events if type(e) is BookSnapshot][-1]
        assert snap.bids[0] == (D("64999"), D("0.5")) and snap.asks[0] == (D("65001"), D("0.5"))
        hl.call(hl.move, "BTC", "65100")
        await wait_until(lambda: [e for e in events if type(e) is BookSnapshot][-1].bids[0][0] == D("65099"), what="moved")
        await wait_until(lambda: [e for e in events if type(e) is FundingRate and e.settled], what="settled funding")
        settled = [e for e in events if type(e) is FundingRate and e.settled]
        assert settled and settled[0].interval_h == 1 and settled[0].rate_1h == D("0.0000125")
    finally:
        await feed.stop()
        async with asyncio.timeout(5):
            await task
