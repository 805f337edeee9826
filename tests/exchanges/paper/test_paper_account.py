"""Margin checks, fees and tiers, funding, liquidation, isolated margin, balance, resume."""

from __future__ import annotations

import json
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest

from perpbot.core.errors import ConfigError
from perpbot.core.margin import (
    PositionRisk,
    account_risk,
    bankruptcy_quote,
    funding_payment,
    liquidation_fee,
    liquidation_fill_price,
    liquidation_price,
)
from perpbot.core.model import Fill, Liquidation, Liquidity, MarginMode, OrderStatus, OrderType, Side
from perpbot.exchanges.paper.config import DYDX_STANDARD_TIERS, PaperConfig
from perpbot.exchanges.paper.fees import FeeSchedule, fee_amount

from paper_harness import D, T0, Harness, make_market

HOUR = 3600 * 1_000_000_000


# -- config ------------------------------------------------------------------------


def test_config_defaults_are_dydx_standard_params():
    c = PaperConfig.from_mapping({})
    assert c.collateral == D(10000) and c.max_slippage == D("0.05") and c.latency_ms == 0
    assert c.fee_tiers == DYDX_STANDARD_TIERS
    assert [(t.maker, t.taker) for t in c.fee_tiers][:2] == [(D("0.0001"), D("0.0005")), (D("0.0001"), D("0.00045"))]
    assert c.margin_mode is MarginMode.CROSS


def test_config_flat_fees_and_tiers():
    c = PaperConfig.from_mapping({"maker_fee": "0", "taker_fee": D("0.0007")})
    assert len(c.fee_tiers) == 1 and c.fee_tiers[0].taker == D("0.0007")
    c = PaperConfig.from_mapping(
        {"fee_tiers": [{"min_volume_30d": "0", "maker": "0.0002", "taker": "0.0005"},
                       {"min_volume_30d": 1000, "maker": "-0.00011", "taker": "0.00025"}]}
    )
    assert c.fee_tiers[1].maker == D("-0.00011")


@pytest.mark.parametrize(
    "cfg, needle",
    [
        ({"collateral": "abc"}, "collateral = 'abc'"),
        ({"collateral": 1.5}, "collateral = 1.5"),
        ({"taker_fee": "0.5"}, "taker_fee = '0.5'"),
        ({"latency_ms": "-1"}, "latency_ms"),
        ({"max_slippage": "1.5"}, "max_slippage"),
        ({"margin_mode": "portfolio"}, "margin_mode = 'portfolio'"),
        ({"bar_fill_model": "optimistic"}, "bar_fill_model"),
        ({"fee_tiers": [{"min_volume_30d": 5, "maker": 0, "taker": "0.0005"}]}, "min_volume_30d = 0"),
        ({"fee_tiers": [{"maker": 0}]}, "missing"),
        ({"fee_tiers": [], "maker_fee": 0}, "fee_tiers"),
        ({"queue_position": "maybe"}, "queue_position"),
    ],
)
def test_config_errors_name_key_and_value(cfg, needle):
    with pytest.raises(ConfigError) as e:
        PaperConfig.from_mapping(cfg)
    assert needle in str(e.value) and "\n" not in str(e.value)


# -- fees ----------------------------------------------------------------------------


def test_fee_rounds_up_to_the_quote_quantum_and_rebates_are_negative():
    assert fee_amount(D("123.4567"), D("0.0005")) == D("0.061729")  # 0.06172835 -> up
    assert fee_amount(D("123.4567"), D("-0.00011")) == D("-0.013580")  # -0.013580237 -> toward +inf
    assert fee_amount(D("100"), D("0.0001")) == D("0.01")


def test_fee_tier_by_rolling_30_day_volume():
    fs = FeeSchedule(DYDX_STANDARD_TIERS)
    assert fs.rate(False, T0) == D("0.0005")
    fs.record(T0, D("999999"))
    assert fs.rate(False, T0) == D("0.0005")
    fs.record(T0 + HOUR, D("1"))
    assert fs.rate(False, T0 + HOUR) == D("0.00045")
    fs.record(T0 + 2 * HOUR, D("4000000"))
    assert fs.tier(T0 + 2 * HOUR).name == "3" and fs.rate(True, T0 + 2 * HOUR) == D("0.00005")
    # 30 days after the first bucket it leaves the window
    later = T0 + 30 * 24 * HOUR + 1
    assert fs.volume == D("5000000")
    assert fs.tier(later).name == "2" and fs.volume == D("4000001")


def test_exchange_charges_the_tier_and_rebates(make_harness):
    hh = make_harness(
        {"fee_tiers": [{"min_volume_30d": 0, "maker": "0.0002", "taker": "0.0005"},
                       {"min_volume_30d": 100, "maker": "-0.0001", "taker": "0.0003"}]}
    )
    hh.book(bids=[("99", "10")], asks=[("101", "10")])
    a = hh.order("buy", "1", order_type=OrderType.MARKET)  # 101 USD volume: tier 1
    b = hh.order("buy", "1", order_type=OrderType.MARKET)  # 101 USD traded before this fill: tier 2
    assert hh.fills(a.client_id)[0].fee == D("0.0505")
    assert hh.fills(b.client_id)[0].fee == D("0.0303")
    c = hh.order("sell", "1", order_type=OrderType.LIMIT, price=D(100))
    hh.trade("101", "1", "buy")
    assert hh.fills(c.client_id)[0].fee == D("-0.01")  # maker rebate


# -- initial margin ---------------------------------------------------------------------


def test_risk_increasing_order_rejected_with_the_numbers(make_harness):
    hh = make_harness({"collateral": "1000"})
    hh.book(bids=[("99", "1000")], asks=[("100", "1000")])
    hh.oracle("100")
    # 200 BTC * 100 = 20000 notional, IMF 5% -> 1000 initial margin; the fee makes equity 990
    res = hh.order("buy", "200", order_type=OrderType.MARKET)
    assert not res.success and res.status is OrderStatus.REJECTED
    assert "initial margin required 1000.000000 USD" in res.error and "available 990.000000 USD" in res.error
    ok = hh.order("buy", "190", order_type=OrderType.MARKET)
    assert ok.success and ok.filled_size == D(190)
    bal = hh.ex.balance()
    assert bal.equity >= bal.initial_margin


def test_reducing_order_allowed_when_undercollateralized(make_harness):
    hh = make_harness({"collateral": "1000"})
    hh.book(bids=[("99", "1000")], asks=[("100", "1000")])
    hh.oracle("100")
    hh.order("buy", "190", order_type=OrderType.MARKET)
    hh.oracle("98")  # equity 1000 - 9.5 - 380 = 610.5 < IM 931, > MM 558.6
    bal = hh.ex.balance()
    assert bal.equity < bal.initial_margin and bal.equity > bal.maintenance_margin
    more = hh.order("buy", "1", order_type=OrderType.MARKET)
    assert not more.success
    less = hh.order("sell", "50", order_type=OrderType.MARKET, reduce_only=True)
    assert less.success and less.filled_size == D(50)


# -- funding ---------------------------------------------------------------------------


def _long(hh, size="1"):
    hh.book(bids=[("99", "100")], asks=[("101", "100")])
    return hh.order("buy", size, order_type=OrderType.MARKET)


def test_hourly_funding_with_the_settled_rate_of_that_hour(make_harness):
    hh = make_harness(start_ns=T0 - T0 % HOUR + 1000)  # just after an hour
    hh.oracle("100")
    _long(hh, "2")
    H = hh.now - hh.now % HOUR + HOUR
    hh.oracle("100", ts=H)  # the hour: positions are snapshotted
    hh.funding("0.0001", settled=True, ts=H + 2_000_000, oracle_price="100.5")  # published 2 ms later
    assert not hh.funding_payments
    hh.oracle("101", ts=H + 61 * 10**9)  # after the grace period: settled
    [p] = hh.funding_payments
    assert p.ts_ns == H and p.size == D(2) and p.rate_1h == D("0.0001") and p.oracle_price == D("100.5")
    # settled through the chain's funding index (issue 13.4): 0.0001/h = 800 ppm per 8 h; the
    # BTC-USD index (AR -10) moves by trunc(800 * 100.5 * 1e-4 / 8) = trunc(1.005) = 1, i.e.
    # 0.01 USD per BTC, so 2 BTC pay 0.02 where -size * price * rate gives 0.0201
    assert funding_payment(D(2), D("100.5"), D("0.0001")) == D("-0.0201")
    assert p.amount == D("-0.02")
    assert hh.ex.portfolio.funding_net == D("-0.02")


def test_funding_falls_back_to_the_prediction_and_floors_to_the_quantum(make_harness):
    hh = make_harness(start_ns=T0 - T0 % HOUR + 1000)
    hh.oracle("100")
    _long(hh, "0.0003")
    hh.funding("-0.0000123", settled=False)  # running prediction
    H = hh.now - hh.now % HOUR + HOUR
    hh.oracle("100", ts=H + 10**9)
    hh.oracle("100", ts=H + 70 * 10**9)
    [p] = hh.funding_payments
    exact = funding_payment(D("0.0003"), D(100), D("-0.0000123"))  # 0.000000369 received
    assert p.amount == exact.quantize(D("0.000001"), rounding=ROUND_FLOOR) == D("0")
    # the chain's rate is a whole 8-hour ppm: -98.4 truncates toward zero to -98 = -0.00001225/h
    assert p.rate_1h == D("-0.00001225")


def test_eight_hour_rate_applies_to_every_hour_of_its_interval(make_harness):
    hh = make_harness(start_ns=T0 - T0 % (8 * HOUR) + 1000)
    hh.funding("0.0008", settled=True, interval_h=8)  # 1e-4 per hour, from the 8 h settlement
    hh.oracle("100")
    _long(hh, "1")
    start = hh.now - hh.now % HOUR
    for k in range(1, 11):
        hh.oracle("100", ts=start + k * HOUR + 61 * 10**9)
    rates = [p.rate_1h for p in hh.funding_payments]
    # hours 1..7 of the interval use it; hour 8 has no newer settlement within 8 h -> missing
    assert rates == [D("0.0008")] * 7
    assert hh.ex.funding_missing == {"BTC-USD"}


def test_no_funding_data_is_reported_not_assumed_zero(make_harness):
    hh = make_harness()
    hh.oracle("100")
    _long(hh)
    hh.oracle("100", ts=hh.now + 2 * HOUR)
    assert not hh.funding_payments
    assert hh.ex.funding_missing == {"BTC-USD"}


def test_no_funding_without_a_position(make_harness):
    hh = make_harness()
    hh.oracle("100")
    hh.oracle("100", ts=hh.now + 5 * HOUR)
    assert not hh.funding_payments and not hh.ex.funding_missing


# -- liquidation ---------------------------------------------------------------------------


def test_liquidation_at_the_fillable_price_with_the_insurance_fee(make_harness):
    hh = make_harness({"collateral": "1000", "taker_fee": "0", "maker_fee": "0"})
    hh.book(bids=[("2999", "10")], asks=[("3000", "10")])
    hh.oracle("3000")
    hh.order("buy", "1", order_type=OrderType.MARKET)  # Q = -2000: the docs' example
    p_liq = hh.ex.liquidation_price("BTC-USD")
    assert p_liq.quantize(D("0.01")) == D("2061.86")
    hh.oracle("2062")
    assert not hh.liquidations
    # independently: the state at 2061 (equity 61 < maintenance 61.83)
    pr = PositionRisk(size=D(1), oracle_price=D(2061), imf=D("0.05"), mmf=D("0.03"), ticker="BTC-USD")
    ar = account_risk(D(-2000), [pr])
    assert ar.is_liquidatable
    fill_px = liquidation_fill_price(pr, ar.equity, ar.maintenance_margin)
    expected_px = fill_px.quantize(D(1), rounding=ROUND_CEILING)  # a long's liquidation sells: up to the tick
    expected_fee = liquidation_fee(expected_px, bankruptcy_quote(pr, D(-1), ar.equity, ar.maintenance_margin))
    hh.oracle("2061")
    [liq] = hh.liquidations
    [f] = [f for f in hh.fills() if f.liquidation]
    assert liq.price == f.price == expected_px and f.side is Side.SELL and f.size == D(1)
    assert liq.fee == expected_fee and liq.fee > 0 and f.fee == 0
    assert hh.ex.portfolio.liquidation_fees == expected_fee
    assert hh.ex.portfolio.collateral == D(-2000) + expected_px - expected_fee
    assert not hh.ex.portfolio.open_positions()
    assert hh.ex.liquidations == [liq]


def test_mid_marks_drive_liquidation_without_an_oracle(make_harness):
    hh = make_harness({"collateral": "100"})
    hh.book(bids=[("99", "100")], asks=[("100", "100")])
    hh.order("buy", "15", order_type=OrderType.MARKET)  # 1500 notional on 100 USD
    assert not hh.liquidations
    hh.book(bids=[("94", "100")], asks=[("95", "100")])
    assert len(hh.liquidations) == 1


# -- isolated margin -----------------------------------------------------------------------


async def test_isolated_position_in_a_child_with_its_own_liquidation_price(make_harness):
    hh = make_harness({"collateral": "10000"}, tickers=("BTC-USD", "ETH-USD"))
    hh.book(bids=[("99", "100")], asks=[("100", "100")])
    hh.book(bids=[("99.9", "100")], asks=[("100", "100")], ticker="ETH-USD")
    hh.oracle("100")
    hh.oracle("100", ticker="ETH-USD")
    iso = hh.order("buy", "10", order_type=OrderType.MARKET, margin_mode=MarginMode.ISOLATED)
    assert iso.success and iso.filled_size == D(10)
    cross = hh.order("buy", "10", ticker="ETH-USD", order_type=OrderType.MARKET)
    assert cross.success
    subs = hh.ex.subaccount_balances()
    assert set(subs) == {0, 128}
    child = subs[128]
    # the child got exactly what it needed: initial margin 50 USD (+ fee 0.5, + dust)
    assert D(50) <= child.equity <= D("50.6")
    positions = await hh.ex.get_positions()
    assert positions["BTC-USD"].margin_mode is MarginMode.ISOLATED
    lp = hh.ex.liquidation_price("BTC-USD")
    assert lp == liquidation_price(child.equity, D(10), D(100), D("0.03"))
    assert lp > D(97)  # isolated: only its own ~50 USD stands behind it
    total = await hh.ex.get_balance()
    assert total.equity == sum(b.equity for b in subs.values())
    hh.oracle("97")
    assert [l.ticker for l in hh.liquidations] == ["BTC-USD"]
    assert hh.ex.portfolio.positions["ETH-USD"].size == D(10)  # the cross account is untouched


def test_isolated_child_returns_its_collateral_when_closed(make_harness):
    hh = make_harness({"collateral": "1000"})
    hh.book(bids=[("99", "100")], asks=[("100", "100")])
    hh.oracle("100")
    hh.order("buy", "1", order_type=OrderType.MARKET, margin_mode=MarginMode.ISOLATED)
    assert D(5) < hh.ex.subaccount_balances()[128].equity < D(6)  # IM 5 USD + the fee
    hh.order("sell", "1", order_type=OrderType.MARKET, reduce_only=True)
    assert hh.ex.subs[128].portfolio.collateral == 0
    assert hh.ex.balance().equity == hh.ex.portfolio.collateral


def test_isolated_rejected_while_the_market_is_held_cross(make_harness):
    hh = make_harness()
    hh.book(bids=[("99", "100")], asks=[("100", "100")])
    hh.order("buy", "1", order_type=OrderType.MARKET)
    res = hh.order("buy", "1", order_type=OrderType.MARKET, margin_mode=MarginMode.ISOLATED)
    assert not res.success and "cross margin" in res.error


def test_isolated_market_type_always_trades_in_a_child(make_harness):
    hh = make_harness(markets={"BTC-USD": make_market("BTC-USD", market_type="ISOLATED")})
    hh.book(bids=[("99", "100")], asks=[("100", "100")])
    hh.order("buy", "1", order_type=OrderType.MARKET)
    assert hh.ex.subs[128].size("BTC-USD") == D(1) and not hh.ex.portfolio.positions


def test_isolated_order_needs_parent_free_collateral(make_harness):
    hh = make_harness({"collateral": "40"})
    hh.book(bids=[("99", "100")], asks=[("100", "100")])
    res = hh.order("buy", "10", order_type=OrderType.MARKET, margin_mode=MarginMode.ISOLATED)
    assert not res.success and "transfer of" in res.error and "free collateral is 40" in res.error


# -- balance, fills, resume -------------------------------------------------------------------


async def test_balance_uses_the_oracle_mark_and_chain_margin(make_harness):
    hh = make_harness({"collateral": "1000", "taker_fee": "0"})
    hh.book(bids=[("99", "100")], asks=[("100", "100")])
    hh.oracle("105")
    hh.order("buy", "2", order_type=OrderType.MARKET)
    b = await hh.ex.get_balance()
    assert b.collateral == D(800) and b.equity == D(1010)
    assert b.initial_margin == D("10.5") and b.maintenance_margin == D("6.3")
    assert b.free_collateral == D("999.5")


async def test_get_fills_since(h):
    h.order("buy", "1", order_type=OrderType.MARKET)
    h.trade("100", "1", "buy", ts=h.at(10))
    res = h.order("buy", "1", order_type=OrderType.MARKET)
    fills = await h.ex.get_fills_since(h.at(10))
    assert [f.client_id for f in fills] == [res.client_id]


async def test_export_import_resumes_the_same_state(make_harness):
    cfg = {"collateral": "5000"}
    t0 = T0 - T0 % HOUR + 1000
    a, b = make_harness(cfg, start_ns=t0), make_harness(cfg, start_ns=t0)

    def market(hh, events):
        for kind, args, ts in events:
            getattr(hh, kind)(*args, ts=ts)

    first = [("book", ([("99", "100")], [("100", "100")]), t0), ("oracle", ("100",), t0), ("funding", ("0.0001", False), t0)]
    market(a, first)
    market(b, first)
    a.order("buy", "3", order_type=OrderType.MARKET)
    rest = a.order("sell", "1", order_type=OrderType.LIMIT, price=D(110))
    stop = a.order("sell", "1", order_type=OrderType.STOP_MARKET, trigger_price=D(90), reduce_only=True)
    hour = [("oracle", ("100",), t0 + HOUR + 70 * 10**9)]
    market(a, hour)
    assert a.funding_payments
    state = a.ex.export_state()
    text = json.dumps(state)  # JSON-serialisable
    market(b, hour)
    b.ex.import_state(json.loads(text))
    assert b.ex.export_state() == state
    assert (await b.ex.get_balance()) == (await a.ex.get_balance())
    assert {o.client_id for o in await b.ex.get_open_orders()} == {rest.client_id, stop.client_id}
    # both continue identically: the resting sell fills, the stop triggers and sells the rest
    later = [("trade", ("111", "2", "buy"), t0 + HOUR + 80 * 10**9), ("oracle", ("89",), t0 + HOUR + 90 * 10**9)]
    for hh in (a, b):
        hh.events.clear()
        market(hh, later)
    assert [type(e).__name__ for e in a.events] == [type(e).__name__ for e in b.events]
    assert len(b.fills()) == 2
    assert (await b.ex.get_balance()) == (await a.ex.get_balance())
    assert b.ex.export_state() == a.ex.export_state()


def test_isolated_resting_order_far_below_the_mark_is_funded_with_its_margin(make_harness):
    hh = make_harness({"collateral": "1000", "maker_fee": "0", "taker_fee": "0"})
    hh.book(bids=[("99", "100")], asks=[("100", "100")])
    hh.oracle("100")
    res = hh.order("buy", "10", order_type=OrderType.LIMIT, price=D(80), margin_mode=MarginMode.ISOLATED)
    assert res.success and res.status is OrderStatus.OPEN
    child = hh.ex.subs[128]
    assert D(40) <= child.portfolio.collateral <= D("40.001")  # 10 * 80 * 5%
    hh.oracle("80")
    hh.trade("79", "10", "sell")
    assert hh.fills(res.client_id) and hh.fills(res.client_id)[0].size == D(10)
    assert hh.ex.subs[128].size("BTC-USD") == D(10)
    # cancel of a funded order that never filled returns the money
    res2 = hh.order("sell", "1", ticker="BTC-USD", order_type=OrderType.LIMIT, price=D(200), margin_mode=MarginMode.ISOLATED)
    assert res2.success  # routed to the child that holds BTC-USD


async def test_isolated_cancel_returns_the_transfer(make_harness):
    hh = make_harness({"collateral": "1000"})
    hh.book(bids=[("99", "100")], asks=[("100", "100")])
    hh.oracle("100")
    res = hh.order("buy", "10", order_type=OrderType.LIMIT, price=D(80), margin_mode=MarginMode.ISOLATED)
    assert hh.ex.portfolio.collateral < D(1000)
    await hh.ex.cancel_order(res.client_id, "BTC-USD")
    assert hh.ex.portfolio.collateral == D(1000) and hh.ex.subs[128].portfolio.collateral == 0
