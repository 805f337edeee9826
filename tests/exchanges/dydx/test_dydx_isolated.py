"""Issue 12.1 and 12.4: isolated markets on dYdX through the loopback fakes (child subaccounts,
collateral moved parent -> child before the order and swept back after the close, a failed
transfer means no order), and continuous reconciliation of the parent and every child."""

from __future__ import annotations

from decimal import Decimal

import pytest

from perpbot.core.errors import InsufficientMargin
from perpbot.core.model import Fill, Market, MarginMode, OrderRequest, OrderType, Side, TimeInForce
from perpbot.exchanges.dydx.subaccounts import child_number, collateral_needed, is_child, parent_of
from perpbot.exchanges.dydx.transfers import TransferRecord
from tests.exchanges.dydx.conftest import wait_until
from tests.exchanges.dydx.test_dydx_exchange_live import Harness, mnemonic  # noqa: F401 (fixture)

D = Decimal
PARENT_USDC = "10000"


def _isolated_eth(ix) -> None:
    """ETH-USD as an ISOLATED market of the real isolated liquidity tier (IMF 5 %, MMF 3 %)."""
    m = ix.markets["ETH-USD"]
    m.update(marketType="ISOLATED", initialMarginFraction="0.05", maintenanceMarginFraction="0.03")


@pytest.fixture
async def hi(fakes, tmp_path, mnemonic):  # noqa: F811
    _isolated_eth(fakes.indexer)
    h = Harness(fakes, tmp_path)
    from perpbot.exchanges.dydx.secrets import Secret, key_pair_from
    from tests.fakes import TEST_MNEMONIC
    from dydx_v4_client.wallet import Wallet

    address = Wallet(key_pair_from(Secret(TEST_MNEMONIC)), 0, 0).address
    fakes.indexer.ensure_subaccount(address, 0, PARENT_USDC)
    await h.start()
    h.ex.transfers.confirm_timeout_s = 15.0  # generous: a loaded CI machine is slow
    h.ex.transfers.poll_s = 0.1
    h.ex.sweep_interval_s = 0.05
    try:
        yield h
    finally:
        await h.stop()


def _mkt(cid, ticker, side, size, **kw):
    return OrderRequest(cid, ticker, side, D(size), OrderType.MARKET, **kw)


def _kinds(node):
    """Type names of the accepted messages, in broadcast order."""
    return [type(m).__name__ for r in node.broadcasts if r.ok for m in r.messages]


# ---------------------------------------------------------------- numbering and sizing


def test_child_numbers_follow_parent_plus_128k():
    assert child_number(0, 1) == 128 and child_number(3, 2) == 259 and child_number(127, 999) == 127_999
    assert parent_of(259) == 3 and parent_of(3) == 3 and is_child(128) and not is_child(127)
    for bad in ((128, 1), (0, 0), (0, 1000), (-1, 1)):
        with pytest.raises(ValueError):
            child_number(*bad)


def test_collateral_needed_covers_margin_fee_and_buffer():
    m = Market(ticker="ETH-USD", clob_pair_id=1, tick_size=D("0.1"), step_size=D("0.001"),
               initial_margin_fraction=D("0.05"), maintenance_margin_fraction=D("0.03"), oracle_price=D("3000"),
               market_type="ISOLATED")
    need = collateral_needed(m, usdc=D(0), position=D(0), side_sign=1, size=D("1"), price=D("3000"),
                             oracle=D("3000"), fee_rate=D("0.0005"), buffer=D("0.1"))
    # IMR 150 * 1.1 = 165, plus the 1.5 USD fee that the fill takes from the child
    assert need == D("166.5")
    # a buy above the oracle pays the difference at once (equity after = USDC - 3030 + 3000)
    above = collateral_needed(m, usdc=D(0), position=D(0), side_sign=1, size=D("1"), price=D("3030"),
                              oracle=D("3000"), fee_rate=D("0"), buffer=D("0"))
    assert above == D("151.5")  # IMR at 3030 (valued at the higher of price and oracle), no loss yet
    # collateral already there counts; a reducing order needs nothing
    assert collateral_needed(m, usdc=D("500"), position=D(0), side_sign=1, size=D("1"), price=D("3000"),
                             oracle=D("3000"), fee_rate=D("0.0005"), buffer=D("0.1")) == 0
    assert collateral_needed(m, usdc=D("-2900"), position=D("1"), side_sign=-1, size=D("1"), price=D("3000"),
                             oracle=D("3000"), fee_rate=D("0.0005"), buffer=D("0.1")) == 0


# ---------------------------------------------------------------- live flow on the fakes


async def test_cross_and_isolated_at_once_collateral_flows_parent_child_parent(hi, fakes):
    node, ex = fakes.node, hi.ex
    r_btc = await ex.place_order(_mkt(1, "BTC-USD", Side.BUY, "0.002"))
    r_eth = await ex.place_order(_mkt(2, "ETH-USD", Side.BUY, "0.5"))
    assert r_btc.success and r_eth.success, (r_btc, r_eth)
    # the transfer to child 128 went out and was shown before the ETH order
    kinds = _kinds(node)
    assert kinds.index("MsgCreateTransfer") < len(kinds) - 1 and kinds[-1] == "MsgPlaceOrder"
    placed = {o.order_id.clob_pair_id: o.order_id.subaccount_id.number for o in node.placed_orders()}
    assert placed == {0: 0, 1: 128}  # BTC (clob 0) cross in 0, ETH (clob 1) isolated in 128
    await wait_until(lambda: "ETH-USD" in (ex.subaccount_positions().get(128) or {})
                     and "BTC-USD" in ex.subaccount_positions()[0], what="positions per subaccount")
    pos = await ex.get_positions()
    assert pos["ETH-USD"].size == D("0.5") and pos["BTC-USD"].size == D("0.002")
    child_usdc = fakes.indexer.usdc_balance(ex.address, 128)
    assert child_usdc < 0  # the child bought 0.5 ETH with the collateral it was given (USDC goes negative)
    # close the isolated position: the exit goes to the child, then the child is swept back
    r_close = await ex.place_order(_mkt(3, "ETH-USD", Side.SELL, "0.5", reduce_only=True,
                                        time_in_force=TimeInForce.IOC))
    assert r_close.success, r_close
    assert node.placed_orders()[-1].order_id.subaccount_id.number == 128
    await wait_until(lambda: len([e for e in hi.events if isinstance(e, TransferRecord) and e.ok]) >= 2, timeout=15,
                     what="the sweep back to the parent")
    fund, sweep = [e for e in hi.events if isinstance(e, TransferRecord) and e.ok][:2]
    assert fund.ok and fund.sender.endswith("/0") and fund.recipient.endswith("/128")
    assert sweep.ok and sweep.sender.endswith("/128") and sweep.recipient.endswith("/0")
    assert "fund isolated ETH-USD order 2" == fund.reason and "sweep" in sweep.reason
    await wait_until(lambda: fakes.indexer.usdc_balance(ex.address, 128) == 0, what="child emptied")
    assert ex.counters["transfers"] == 2
    # both fills of the isolated market were reported to the bot like the cross ones
    fills = [e for e in hi.events if isinstance(e, Fill)]
    assert {f.ticker for f in fills} == {"BTC-USD", "ETH-USD"}


async def test_a_failed_transfer_means_no_order_and_says_why(hi, fakes):
    hi.ex.transfers.confirm_timeout_s = 1.0  # the move never shows: waiting longer changes nothing
    fakes.transfers.fail_next_in_block(1)  # CheckTx accepts it, the block does not execute it
    n_orders = len(fakes.node.placed_orders())
    r = await hi.ex.place_order(_mkt(5, "ETH-USD", Side.BUY, "0.5"))
    assert not r.success and r.status.value == "REJECTED"
    assert "transfer of" in r.error and "from subaccount 0 to 128 failed" in r.error and "not shown" in r.error
    assert len(fakes.node.placed_orders()) == n_orders  # nothing placed
    assert hi.ex.counters["transfer_failures"] == 1
    # a CheckTx refusal is said the same way
    fakes.node.fail_next_broadcasts(1, code=5, raw_log="insufficient funds", codespace="sdk")
    r = await hi.ex.place_order(_mkt(6, "ETH-USD", Side.BUY, "0.5"))
    assert not r.success and "CheckTx code 5: insufficient funds" in r.error
    assert len(fakes.node.placed_orders()) == n_orders


async def test_isolated_order_larger_than_the_movable_collateral_is_one_line(hi, fakes):
    n = len(fakes.node.broadcasts)
    with pytest.raises(InsufficientMargin) as exc:
        await hi.ex.place_order(_mkt(7, "ETH-USD", Side.BUY, "100"))  # 300k USD notional: 15k margin
    line = str(exc.value)
    assert "\n" not in line and "child subaccount 128 needs" in line and "free collateral is 10000" in line
    assert len(fakes.node.broadcasts) == n  # nothing sent, not even the transfer


async def test_isolated_margin_on_a_cross_market_uses_a_child_too(hi, fakes):
    r = await hi.ex.place_order(_mkt(8, "BTC-USD", Side.BUY, "0.002", margin_mode=MarginMode.ISOLATED))
    assert r.success, r
    assert fakes.node.placed_orders()[-1].order_id.subaccount_id.number == 128


# ---------------------------------------------------------------- reconciliation


async def test_reconciliation_heals_missed_fills_and_finds_children(hi, fakes):
    ix, ex = fakes.indexer, hi.ex
    await ex.place_order(_mkt(9, "ETH-USD", Side.BUY, "0.5"))
    await wait_until(lambda: "ETH-USD" in (ex.subaccount_positions().get(128) or {}), what="isolated position")
    await ex.reconciler.reconcile()
    assert ex.reconciler.divergences == {}  # the stream told everything
    # a fill the stream never brought (written to the indexer's tables only), on the child
    f = dict(ix.fills[0])
    f.update(id="00000000-0000-5000-8000-00000000f111", size="0.1", createdAtHeight=str(ix.height + 1))
    ix.fills.insert(0, f)
    # a child the bot never used, holding a position (e.g. opened from the web front end)
    ix.ensure_subaccount(ex.address, 256, "50")
    ix.positions[(ex.address, 256)] = {"SOL-USD": {"market": "SOL-USD", "side": "LONG", "size": "2", "status": "OPEN",
                                                   "entryPrice": "150", "subaccountNumber": 256}}
    ix._recompute((ex.address, 256))
    before = len([e for e in hi.events if isinstance(e, Fill)])
    await ex.reconciler.reconcile()
    assert ex.reconciler.divergences.get("fill") == 1
    assert len([e for e in hi.events if isinstance(e, Fill)]) == before + 1
    assert 256 in ex.children.ledgers and ex.subaccount_positions()[256]["SOL-USD"].size == D("2")
    assert ex.counters["divergences"] >= 1


async def test_a_freshly_funded_child_is_not_swept_before_its_order_is_registered(hi, fakes):
    from types import SimpleNamespace

    ex = hi.ex
    ex.sweep_interval_s = 3600  # the test drives the sweeps itself
    order = _mkt(10, "ETH-USD", Side.BUY, "0.5")
    plan = SimpleNamespace(side=Side.BUY, size=D("0.5"), price=D("3100"))
    n, error, moved = await ex.router.route(order, ex._market("ETH-USD"), plan)
    assert (n, error, moved) == (128, "", True)
    # funded, no order registered yet (the order path still awaits the height, the id): held
    assert ex.router.due_sweeps() == []
    ex.router.release(128)  # what the order path does once the order is registered
    assert [c for c, _, _ in ex.router.due_sweeps()] == [128]  # (here no order ever came: flat, so due)
    ex.router.hold_s = 0.0
    ex.router._funded_at[128] = 0.0
    assert [c for c, _, _ in ex.router.due_sweeps()] == [128]  # a hold ends after hold_s anyway


async def test_collateral_sizing_uses_the_fee_tier_read_from_the_chain(fakes, tmp_path, mnemonic):  # noqa: F811
    """An account at fee tier 3 (taker 4.0 bp, 5.5M USDC 30-day volume on the fake node) sizes a
    child's collateral with 4.0 bp, not the assumed tier-1 5 bp (v4-chain ``x/feetiers``)."""
    from dydx_v4_client.wallet import Wallet

    from perpbot.exchanges.dydx.secrets import Secret, key_pair_from
    from tests.fakes import TEST_MNEMONIC

    _isolated_eth(fakes.indexer)
    address = Wallet(key_pair_from(Secret(TEST_MNEMONIC)), 0, 0).address
    fakes.indexer.ensure_subaccount(address, 0, PARENT_USDC)
    fakes.node.user_stats[address] = (3_000_000 * 10**6, 2_500_000 * 10**6)  # quantums of USDC (6 decimals)
    h = Harness(fakes, tmp_path)
    await h.start()
    try:
        assert h.ex.node.fee_tier.taker_fee_ppm == 400
        assert h.ex.router.fee_rate == D("0.0004")
    finally:
        await h.stop()
