"""The exchange client against the loopback fakes: the unmodified dydx-v4-client paths (IndexerClient,
NodeClient, Wallet and signing) place and cancel real signed orders; the fake node verifies the
signatures, sequences and good-til-blocks, the matching bridge streams fills back."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import pytest

from perpbot.core.clock import LiveClock
from perpbot.core.errors import InvalidOrder, TemporaryExchangeError
from perpbot.core.exchange import ExchangeContext
from perpbot.core.model import (
    Fill,
    FundingPayment,
    Liquidity,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    TimeInForce,
)
from perpbot.core.state import MarketState
from perpbot.exchanges.dydx.parser import V4_BLOCK_HEIGHT, V4_SUBACCOUNTS
from tests.exchanges.dydx.conftest import FAST, Ctx, wait_until

D = Decimal


class Harness:
    """Feed + exchange like the bot wires them: market states fed by the feed, one socket."""

    def __init__(self, dx, state_dir: Path, tickers=("BTC-USD", "ETH-USD"), **over):
        self.dx = dx
        self.state_dir = state_dir
        self.tickers = tickers
        self.cfg = {"network": "custom", "indexer_rest": dx.rest_url, "indexer_ws": dx.ws_url,
                    "node": dx.node_url, **FAST, **over}
        self.events: list = []
        self.states: dict = {}

    async def start(self, exchange_only=False):
        from perpbot.exchanges.dydx.exchange import DydxExchange
        from perpbot.exchanges.dydx.feed import DydxFeed

        self.feed = DydxFeed(self.cfg, Ctx(LiveClock(), self.tickers, self.state_dir))
        await self.feed.start()  # loads the markets without blocking the loop the fakes run on
        markets = self.feed.markets()
        self.states = {t: MarketState(markets[t]) for t in self.tickers}
        self._task = asyncio.create_task(self._consume())
        ctx = ExchangeContext(LiveClock(), {t: markets[t] for t in self.tickers},
                              book_of=lambda t: self.states[t].book if t in self.states else None,
                              state_of=self.states.get, state_dir=self.state_dir)
        self.ex = DydxExchange(self.cfg, ctx)
        self.ex.set_event_sink(self.events.append)
        await self.ex.connect()
        await wait_until(lambda: all(s.stale_reason(time.time_ns()) is None for s in self.states.values()),
                         what="fresh market data")
        return self

    async def _consume(self):
        async for batch in self.feed.batches():
            for ev in batch:
                st = self.states.get(ev.ticker)
                if st is not None:
                    st.apply(ev)

    async def stop(self):
        await self.ex.disconnect()
        await self.feed.stop()
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):
            pass

    def of(self, cls, client_id=None):
        return [e for e in self.events if isinstance(e, cls) and (client_id is None or e.client_id == client_id)]

    @property
    def address(self):
        return self.ex.address


@pytest.fixture
def mnemonic(monkeypatch):
    from tests.fakes import TEST_MNEMONIC

    monkeypatch.setenv("DYDX_MNEMONIC", TEST_MNEMONIC)


@pytest.fixture
async def h(fakes, tmp_path, mnemonic):
    hh = await Harness(fakes, tmp_path).start()
    try:
        yield hh
    finally:
        await hh.stop()


def market(cid, ticker="BTC-USD", side=Side.BUY, size="0.001", **kw):
    return OrderRequest(cid, ticker, side, D(size), OrderType.MARKET, **kw)


def limit(cid, price, ticker="ETH-USD", side=Side.BUY, size="0.01", **kw):
    return OrderRequest(cid, ticker, side, D(size), OrderType.LIMIT, price=D(price), **kw)


# ---------------------------------------------------------------- orders and fills


async def test_market_order_signed_sent_and_filled_on_one_socket(h, fakes):
    node = fakes.node
    r = await h.ex.place_order(market(1))
    assert r.success and r.error == "" and r.status in (OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.FILLED)
    await wait_until(lambda: h.of(Fill, 1), what="the fill from the subaccount stream")
    (fill,) = h.of(Fill, 1)
    assert fill.ticker == "BTC-USD" and fill.side is Side.BUY and fill.size == D("0.001")
    assert fill.liquidity is Liquidity.TAKER and fill.fee > 0
    # the chain rounds fees toward +infinity: BigMulPpm(fillQuoteQuantums, feePpm, roundUp=true)
    # (v4-chain protocol/x/clob/keeper/process_single_match.go, protocol/lib/big_math.go)
    assert fill.fee == (fill.price * fill.size * D("0.0005")).quantize(D("0.000001"), rounding="ROUND_CEILING")
    await wait_until(lambda: any(u.status is OrderStatus.FILLED for u in h.of(OrderUpdate, 1)), what="FILLED")
    (order,) = node.placed_orders()
    assert order.quantums == 10_000_000 and order.time_in_force == order.TIME_IN_FORCE_IOC
    assert order.order_id.order_flags == 0 and node.height <= order.good_til_block <= node.height + 20
    assert order.client_metadata == 0 and order.order_id.subaccount_id.owner == h.address
    assert node.broadcasts[-1].ok and node.sequence(h.address) == 0  # short-term: no sequence consumed
    pos = (await h.ex.get_positions())["BTC-USD"]
    assert pos.size == D("0.001") and pos.entry_price == fill.price
    bal = await h.ex.get_balance()
    assert bal.collateral < D("10000") and bal.equity > 0
    # market data and the account share ONE WebSocket
    subs = fakes.indexer.subscriptions()
    assert len(subs) == 1
    keys = {(c, i) for c, i, _ in next(iter(subs.values()))}
    assert (V4_SUBACCOUNTS, f"{h.address}/0") in keys and (V4_BLOCK_HEIGHT, V4_BLOCK_HEIGHT) in keys
    assert ("v4_orderbook", "BTC-USD") in keys


async def test_long_term_limit_maker_fill_and_stateful_cancel(h, fakes):
    node = fakes.node
    bid = h.states["ETH-USD"].book.best_bid_price()
    r = await h.ex.place_order(limit(10, bid - D("10"), tag="grid-open"))
    assert r.success
    assert node.sequence(h.address) == 1 and h.ex.node.sequence == 1  # a stateful order consumes one
    (o,) = node.placed_orders()
    assert o.order_id.order_flags == 64 and o.good_til_block_time > time.time()
    await wait_until(lambda: any(u.status is OrderStatus.OPEN for u in h.of(OrderUpdate, 10)), what="OPEN")
    assert [i.client_id for i in await h.ex.get_open_orders("ETH-USD")] == [10]
    fakes.bridge.fill_resting(h.address, o.order_id.client_id, clob_pair_id=o.order_id.clob_pair_id, size="0.004")
    await wait_until(lambda: h.of(Fill, 10), what="maker fill")
    f = h.of(Fill, 10)[0]
    assert f.liquidity is Liquidity.MAKER and f.size == D("0.004") and f.tag == "grid-open"
    assert f.price == bid - D("10")
    await wait_until(lambda: (h.ex.account.orders[10].status is OrderStatus.PARTIALLY_FILLED), what="partial")
    c = await h.ex.cancel_order(10, "ETH-USD")
    assert c.success and c.status is OrderStatus.CANCELED
    assert node.sequence(h.address) == 2
    (cancel,) = node.cancels()
    assert cancel.good_til_block_time == o.good_til_block_time  # a stateful cancel carries a GTBT
    await wait_until(lambda: h.ex.account.orders[10].status is OrderStatus.CANCELED, what="CANCELED from the stream")
    assert await h.ex.get_open_orders() == []


async def test_conditional_stop_loss_has_explicit_condition_type(h, fakes):
    from v4_proto.dydxprotocol.clob.order_pb2 import Order

    r = await h.ex.place_order(market(20, size="0.001"))
    assert r.success
    oracle = h.states["BTC-USD"].oracle_price
    req = OrderRequest(21, "BTC-USD", Side.SELL, D("0.001"), OrderType.STOP_MARKET, trigger_price=oracle * D("0.9"),
                       reduce_only=True)
    r2 = await h.ex.place_order(req)
    assert r2.success, r2.error
    o = fakes.node.placed_orders()[-1]
    assert o.order_id.order_flags == 32 and o.condition_type == Order.ConditionType.CONDITION_TYPE_STOP_LOSS
    assert o.conditional_order_trigger_subticks > 0 and o.reduce_only
    assert o.time_in_force == Order.TimeInForce.TIME_IN_FORCE_IOC


async def test_invalid_orders_are_refused_before_anything_is_sent(h, fakes):
    n = len(fakes.node.broadcasts)
    with pytest.raises(InvalidOrder, match="must be IOC"):
        await h.ex.place_order(limit(30, "3000", reduce_only=True))
    with pytest.raises(InvalidOrder, match="below the minimum"):
        await h.ex.place_order(market(31, size="0.00001"))
    with pytest.raises(InvalidOrder, match="unknown dYdX market"):
        await h.ex.place_order(market(32, ticker="NOPE-USD"))
    from perpbot.core.errors import InsufficientMargin
    from perpbot.core.model import MarginMode

    # isolated margin is supported (issue 12.1); this account has nothing to move into a child
    with pytest.raises(InsufficientMargin, match="child subaccount 128 needs .* USDC moved from subaccount 0"):
        await h.ex.place_order(market(33, margin_mode=MarginMode.ISOLATED))
    assert len(fakes.node.broadcasts) == n


async def test_checktx_rejection_is_a_failed_result_with_the_chain_log(h, fakes):
    log = "insufficient collateral: subaccount would be undercollateralized: Order would cause an undercollateralized state"
    fakes.node.fail_next_broadcasts(1, code=3007, raw_log=log, codespace="clob")
    r = await h.ex.place_order(market(40))
    assert not r.success and r.status is OrderStatus.REJECTED
    assert "CheckTx code 3007" in r.error and log in r.error
    assert 40 not in {o.client_id for o in await h.ex.get_open_orders()}
    # the id is burnt, the next order works
    assert (await h.ex.place_order(market(41))).success


async def test_sequence_mismatch_is_resynced_and_retried_once(h, fakes):
    node = fakes.node
    node.set_account(h.address, sequence=5)  # another process used the account
    r = await h.ex.place_order(limit(50, "1000"))
    assert r.success, r.error
    assert h.ex.node.stats["sequence_resyncs"] == 1
    assert node.sequence(h.address) == 6 and h.ex.node.sequence == 6
    assert [b.code for b in node.broadcasts[-2:]] == [32, 0]
    # two mismatches in a row: retried once, then reported (never an endless loop)
    node.fail_next_broadcasts(2, code=32, raw_log="account sequence mismatch, expected 6, got 6: incorrect account sequence")
    r2 = await h.ex.place_order(limit(51, "1000"))
    assert not r2.success and "sequence mismatch" in r2.error
    r3 = await h.ex.place_order(limit(52, "1000"))
    assert r3.success and node.sequence(h.address) == 7


async def test_burst_hits_the_rate_budget_without_breaking(fakes, tmp_path, mnemonic):
    hh = await Harness(fakes, tmp_path, grpc_rate_per_s=2, grpc_max_wait_s=0.3).start()
    try:
        n0 = len(fakes.node.broadcasts)
        results = await asyncio.gather(*(hh.ex.place_order(market(100 + i)) for i in range(10)))
        ok = [r for r in results if r.success]
        refused = [r for r in results if not r.success]
        assert refused and all("gRPC budget" in r.error and "not sent" in r.error for r in refused)
        assert len(fakes.node.broadcasts) - n0 == len(ok) <= 3  # burst 2 + at most 0.3 s * 2/s
        assert hh.ex.circuit_open is None  # a budget refusal is not a node failure
        await asyncio.sleep(0.6)
        assert (await hh.ex.place_order(market(200))).success  # the budget refills
    finally:
        await hh.stop()


async def test_circuit_breaker_opens_risk_sees_it_then_recovers(fakes, tmp_path, mnemonic):
    hh = await Harness(fakes, tmp_path, grpc_timeout_s=0.2, breaker_failures=2, breaker_cooldown_s=0.3,
                       height_max_age_s=60).start()
    try:
        fakes.node.set_delay(0.4, ["BroadcastTx"])
        for cid in (300, 301):
            # the deadline passed, but the node may have accepted it: unknown, not rejected (issue 9.15)
            r = await hh.ex.place_order(market(cid))
            assert r.success and r.status is OrderStatus.PENDING and "DEADLINE_EXCEEDED" in r.error
            assert "outcome unknown" in r.error
        reason = hh.ex.circuit_open
        assert reason and reason.startswith("circuit_open:") and "DEADLINE_EXCEEDED" in reason
        n = len(fakes.node.broadcasts)
        r = await hh.ex.place_order(market(302))
        assert not r.success and r.error.startswith("circuit_open:")
        fakes.node.clear_faults()
        await asyncio.sleep(0.35)
        assert not any(o.order_id.client_id == hh.ex.ids.get(302)["dydx_id"] for o in fakes.node.placed_orders(False))
        assert hh.ex.circuit_open is None  # cool-down over: half-open
        r = await hh.ex.place_order(market(303))
        assert r.success and hh.ex.node.breaker.state == "closed"
    finally:
        await hh.stop()


async def test_node_calls_never_block_the_event_loop(h, fakes):
    fakes.node.set_delay(0.5, ["BroadcastTx"])
    ticks = 0
    stop = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    t = asyncio.create_task(ticker())
    r = await h.ex.place_order(market(400))
    stop.set()
    await t
    assert r.success
    assert ticks >= 15  # the loop kept running while the node took 0.5 s (a blocked loop: ~1 tick)


async def test_batch_cancel_of_short_term_orders(h, fakes):
    bid = h.states["ETH-USD"].book.best_bid_price()
    for i in range(3):
        r = await h.ex.place_order(limit(500 + i, bid - 20 - i, good_til_s=10, post_only=True))
        assert r.success and fakes.node.placed_orders()[-1].order_id.order_flags == 0
    await wait_until(lambda: len(h.ex.account.open_orders("ETH-USD")) == 3
                     and all(o.status is OrderStatus.OPEN for o in h.ex.account.open_orders()), what="resting")
    results = await h.ex.cancel_all("ETH-USD")
    assert [r.success for r in results] == [True] * 3
    from v4_proto.dydxprotocol.clob.tx_pb2 import MsgBatchCancel

    batch = fakes.node.broadcasts[-1].of_type(MsgBatchCancel)
    assert len(batch) == 1 and len(batch[0].short_term_cancels[0].client_ids) == 3
    await wait_until(lambda: all(h.ex.account.orders[500 + i].status is OrderStatus.CANCELED for i in range(3)),
                     what="CANCELED")


async def test_short_term_order_expires_when_height_passes(h, fakes):
    bid = h.states["ETH-USD"].book.best_bid_price()
    r = await h.ex.place_order(limit(600, bid - 30, good_til_s=5, post_only=True))
    assert r.success
    gtb = fakes.node.placed_orders()[-1].good_til_block
    await wait_until(lambda: h.ex.account.orders[600].status is OrderStatus.OPEN, what="OPEN")
    fakes.node.set_height(gtb + 1)
    await fakes.indexer.push_block_height(gtb + 1)
    await wait_until(lambda: h.ex.account.orders[600].status is OrderStatus.EXPIRED, what="EXPIRED")
    assert [u.status for u in h.of(OrderUpdate, 600)][-1] is OrderStatus.EXPIRED


# ---------------------------------------------------------------- restart and reconciliation


async def test_client_ids_survive_a_restart_and_are_never_sent_twice(fakes, tmp_path, mnemonic):
    h1 = await Harness(fakes, tmp_path).start()
    try:
        r = await h1.ex.place_order(limit(42, "1000"))
        assert r.success
        first_id = fakes.node.placed_orders()[-1].order_id.client_id
        await wait_until(lambda: h1.ex.account.orders[42].status is OrderStatus.OPEN, what="OPEN")
    finally:
        await h1.stop()
    h2 = await Harness(fakes, tmp_path).start()  # same state dir: a restart
    try:
        assert [o.client_id for o in await h2.ex.get_open_orders()] == [42]
        n = len(fakes.node.broadcasts)
        with pytest.raises(InvalidOrder, match="never sent twice"):
            await h2.ex.place_order(limit(42, "1000"))
        assert len(fakes.node.broadcasts) == n
        assert (await h2.ex.place_order(limit(43, "1000"))).success
        assert fakes.node.placed_orders()[-1].order_id.client_id != first_id
        c = await h2.ex.cancel_order(42, "ETH-USD")
        assert c.success and fakes.node.cancels()[-1].order_id.client_id == first_id
        await wait_until(lambda: h2.ex.account.orders[42].status is OrderStatus.CANCELED, what="CANCELED")
        h2.ex.reserve_client_ids([fakes.node.placed_orders()[-1].order_id.client_id + 1])
        assert (await h2.ex.place_order(limit(44, "1000"))).success
        assert fakes.node.placed_orders()[-1].order_id.client_id == fakes.node.placed_orders()[-2].order_id.client_id + 2
    finally:
        await h2.stop()


async def test_fills_missed_while_disconnected_come_from_rest_once(fakes, tmp_path, mnemonic):
    hh = await Harness(fakes, tmp_path, reconcile_interval_s=0.2).start()
    try:
        r = await hh.ex.place_order(limit(700, "1000"))
        assert r.success
        dydx_id = fakes.node.placed_orders()[-1].order_id.client_id
        await wait_until(lambda: hh.ex.account.orders[700].status is OrderStatus.OPEN, what="OPEN")
        # the stream is down when the fill happens; stop the fake from reconnecting us for a moment
        fakes.indexer.fail_ws_connect(503, count=3)
        await fakes.indexer.drop_all_connections()
        await wait_until(lambda: not hh.ex.conn.connected.is_set(), what="disconnected")
        fakes.bridge.fill_resting(hh.address, dydx_id, clob_pair_id=1)
        await wait_until(lambda: hh.of(Fill, 700), timeout=5, what="the missed fill")
        await wait_until(lambda: hh.ex.conn.connected.is_set(), timeout=5, what="reconnected")
        await asyncio.sleep(0.5)  # several reconciliations later...
        assert len(hh.of(Fill, 700)) == 1  # ...booked exactly once
        since = await hh.ex.get_fills_since(0)
        assert [f.fill_id for f in since if f.client_id == 700] == [hh.of(Fill, 700)[0].fill_id]
    finally:
        await hh.stop()


async def test_funding_payments_are_reported_once(fakes, tmp_path, mnemonic):
    hh = await Harness(fakes, tmp_path, reconcile_interval_s=0.2).start()
    try:
        row = {"address": hh.address, "subaccountNumber": 0, "ticker": "BTC-USD", "perpetualId": "0",
               "oraclePrice": "65000", "size": "0.01", "side": "LONG", "rate": "0.0000125",
               "payment": "-0.008125", "createdAt": "2026-01-01T01:00:00.000Z", "createdAtHeight": "123"}
        fakes.indexer.funding_payments.append(row)
        await wait_until(lambda: hh.of(FundingPayment), what="funding payment")
        await asyncio.sleep(0.3)  # more reconciliations
        (p,) = hh.of(FundingPayment)
        assert p.amount == D("-0.008125") and p.rate_1h == D("0.0000125") and p.size == D("0.01")
        assert p.oracle_price == D("65000") and p.ticker == "BTC-USD"
    finally:
        await hh.stop()
