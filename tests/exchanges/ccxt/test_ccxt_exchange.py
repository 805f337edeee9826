"""The ccxt exchange client against the Binance USD-M loopback fake: markets, orders, errors, account."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.exchanges.ccxt.conftest import Harness, wait_until

D = Decimal


def _req(cid, side="BUY", size="0.002", typ="MARKET", price=None, **kw):
    from perpbot.core.model import OrderRequest, OrderType, Side

    return OrderRequest(client_id=cid, ticker="BTC-USD", side=Side.parse(side), size=D(size),
                        order_type=OrderType[typ], price=D(price) if price else None, **kw)


async def test_markets_map_venue_rules(fake_thread, keys):
    h = await Harness(fake_thread).start()
    try:
        vm = h.ex.table.get("BTC-USD")
        assert vm.symbol == "BTC/USDT:USDT" and vm.market_id == "BTCUSDT"
        assert (vm.tick_size, vm.step_size, vm.min_qty, vm.min_notional) == (D("0.1"), D("0.001"), D("0.001"), D("100"))
        assert vm.contract_size == 1 and vm.funding_interval_h == 8 and vm.max_leverage == D("20")
        m = vm.market  # exchangeInfo requiredMarginPercent 5 / maintMarginPercent 2.5
        assert (m.initial_margin_fraction, m.maintenance_margin_fraction) == (D("0.05"), D("0.025"))
    finally:
        await h.stop()


def test_funding_interval_comes_from_funding_info(keys):
    from tests.fakes.ccxt import FakeBinanceUsdm

    with FakeBinanceUsdm(funding_interval_h=4) as fake:
        h = Harness(fake)
        h.ex.table.load()
        assert h.ex.table.get("ETH-USD").funding_interval_h == 4


async def test_orders_round_in_decimal_and_fill_once(fake_thread, keys):
    from perpbot.core.model import Fill, OrderStatus, OrderUpdate, TimeInForce

    h = await Harness(fake_thread).start()
    try:
        # sizes round down to the step, limit prices to the tick in the trader's favour; sent as strings
        r = await h.ex.place_order(_req(1, "BUY", "0.0029", "LIMIT", "60000.07", post_only=True,
                                        time_in_force=TimeInForce.POST_ONLY))
        assert r.success and r.status is OrderStatus.OPEN, r
        r = await h.ex.place_order(_req(2, "SELL", "0.0021", "LIMIT", "70000.01", post_only=True,
                                        time_in_force=TimeInForce.POST_ONLY))
        assert r.success, r
        q1, q2 = fake_thread.order_requests[-2:]
        assert (q1["quantity"], q1["price"], q1["timeInForce"], q1["newClientOrderId"]) == ("0.002", "60000", "GTX", "pb1")
        assert (q2["quantity"], q2["price"]) == ("0.002", "70000.1")
        assert {o.client_id for o in await h.ex.get_open_orders()} == {1, 2}
        c = await h.ex.cancel_order(1, "BTC-USD")
        assert c.success and c.status is OrderStatus.CANCELED
        # a market order: the fill arrives on the user stream, is booked once despite REST reconciliations
        r = await h.ex.place_order(_req(3, "BUY", "0.003"))
        assert r.success
        await wait_until(lambda: h.of(Fill, 3), what="the fill")
        await asyncio.sleep(1.0)  # several reconciliations
        (f,) = h.of(Fill, 3)
        assert f.size == D("0.003") and f.price > 0 and f.fee == (f.price * f.size * D("0.0005")).quantize(D("0.00000001"))
        assert any(u.status is OrderStatus.FILLED for u in h.of(OrderUpdate, 3))
        pos = await h.ex.get_positions()
        assert pos["BTC-USD"].size == D("0.003")
        bal = await h.ex.get_balance()
        assert bal.collateral == D("10000") - f.fee
    finally:
        await h.stop()


async def test_venue_rejections_carry_the_venue_message(fake_thread, keys):
    from perpbot.core.model import TimeInForce

    h = await Harness(fake_thread).start()
    try:
        bid, ask = fake_thread.best("BTCUSDT")
        r = await h.ex.place_order(_req(10, "BUY", "0.002", "LIMIT", str(ask), post_only=True,
                                        time_in_force=TimeInForce.POST_ONLY))
        assert not r.success and "-5022" in r.error and "Post Only" in r.error, r.error
        r = await h.ex.place_order(_req(11, "BUY", "50"))  # 3.25M USDT on a 10k wallet
        assert not r.success and "-2019 Margin is insufficient." in r.error, r.error
        r = await h.ex.place_order(_req(12, "SELL", "0.002", reduce_only=True))  # nothing to reduce
        assert not r.success and "-2022 ReduceOnly Order is rejected." in r.error, r.error
        r = await h.ex.place_order(_req(13, "BUY", "0.001"))  # 65 USDT < 100 minimum (no mark here: the venue says so)
        assert not r.success and "-4164 Order's notional must be no smaller than 100" in r.error, r.error
        r = await h.ex.place_order(_req(14, "BUY", "0.001", "LIMIT", "65000"))  # a limit price: checked before sending
        assert not r.success and "notional 65 below the minimum 100 of BTC-USD" in r.error, r.error
        assert h.ex.counters["rejected"] == 5
        assert "pb14" not in [q.get("newClientOrderId") for q in fake_thread.order_requests]
    finally:
        await h.stop()


async def test_rate_limit_backs_off_and_retries(fake_thread, keys):
    h = await Harness(fake_thread).start()
    try:
        fake_thread.call(fake_thread.fail_next, "POST", "/fapi/v1/order", 429, -1003,
                         "Too many requests; current limit of IP is 2400 requests per minute.")
        r = await h.ex.place_order(_req(20, "BUY", "0.002"))
        assert r.success, r
        assert h.ex.counters["rate_limited"] == 1
        assert [q["newClientOrderId"] for q in fake_thread.order_requests] == ["pb20"]  # the 429 was never acted on
    finally:
        await h.stop()


async def test_timeout_leaves_the_order_pending_until_reconciliation(fake_thread, keys):
    from perpbot.core.model import Fill, OrderStatus, OrderUpdate

    h = await Harness(fake_thread, timeout_s=0.5).start()
    try:
        fake_thread.call(fake_thread.lose_next_reply, "POST", "/fapi/v1/order", 2.0)
        r = await h.ex.place_order(_req(30, "BUY", "0.002"))
        assert r.success and r.status is OrderStatus.PENDING and r.error.startswith("outcome unknown"), r
        assert not any(u.status is OrderStatus.REJECTED for u in h.of(OrderUpdate, 30))
        await wait_until(lambda: h.of(Fill, 30), timeout=5, what="the fill (stream or reconciliation)")
        await wait_until(lambda: 30 not in h.ex.account.unknown, timeout=5, what="the outcome resolved")
        assert not any(u.status is OrderStatus.REJECTED for u in h.of(OrderUpdate, 30))
        # a 503 the venue never acted on: pending at first, REJECTED only after the grace period
        fake_thread.call(fake_thread.fail_next, "POST", "/fapi/v1/order", 503, -1001, "Service Unavailable")
        r = await h.ex.place_order(_req(31, "BUY", "0.002"))
        assert r.success and r.status is OrderStatus.PENDING, r
        await wait_until(lambda: any(u.status is OrderStatus.REJECTED for u in h.of(OrderUpdate, 31)), timeout=5,
                         what="the never-arrived order resolved")
        (u,) = [u for u in h.of(OrderUpdate, 31) if u.status is OrderStatus.REJECTED]
        assert "never reached the venue" in u.reason
    finally:
        await h.stop()


async def test_funding_payments_are_booked_once_from_history(fake_thread, keys):
    from perpbot.core.model import Fill, FundingPayment

    h = await Harness(fake_thread).start()
    try:
        await h.ex.place_order(_req(40, "SELL", "0.002"))
        await wait_until(lambda: h.of(Fill, 40), what="the fill")
        paid = fake_thread.call(fake_thread.settle_funding, "BTCUSDT", "0.0001")
        await wait_until(lambda: h.of(FundingPayment), what="the funding payment")
        await asyncio.sleep(1.0)  # more reconciliations
        (p,) = h.of(FundingPayment)
        assert p.amount == paid > 0 and p.ticker == "BTC-USD" and p.size == D("-0.002")
    finally:
        await h.stop()


async def test_stream_drop_reconnects_and_reconciles(fake_thread, keys):
    from perpbot.core.model import Fill

    h = await Harness(fake_thread).start()
    try:
        fake_thread.call(fake_thread.drop_sockets)
        await h.ex.place_order(_req(50, "BUY", "0.002"))
        await wait_until(lambda: h.of(Fill, 50), timeout=5, what="the fill after the drop")
        await asyncio.sleep(0.6)
        assert len(h.of(Fill, 50)) == 1
    finally:
        await h.stop()
