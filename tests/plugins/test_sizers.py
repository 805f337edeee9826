"""Position sizers (plugins/sizers.py), the balance manager and the leverage calculator."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perpbot.core.errors import InsufficientBalance, InsufficientLeverage
from perpbot.core.model import Balance, Market, OrderParams, Position, Side
from perpbot.core.params import parse_params
from perpbot.core.plugins import PluginManager
from perpbot.core.policies import SizingView
from perpbot.core.balance import BalanceManager, LeverageCalculator
from perpbot.plugins.sizers import (
    SIZERS,
    ExposureSizer,
    FixedNotionalSizer,
    FixedQuantitySizer,
    KellySizer,
    VolatilityTargetSizer,
    bar_volatility,
)

BTC = Market("BTC-USD", 0, tick_size="1", step_size="0.0001", initial_margin_fraction="0.05", maintenance_margin_fraction="0.03")
ETH = Market("ETH-USD", 1, tick_size="0.1", step_size="0.001", initial_margin_fraction="0.05", maintenance_margin_fraction="0.03")


def balance(equity="10000", free=None, im="0"):
    equity = D(equity)
    free = D(free) if free is not None else equity - D(im)
    return Balance(collateral=equity, equity=equity, free_collateral=free, initial_margin=D(im))


def view(price="50000", bal=None, position=None, positions=None, marks=None, market=BTC, **kw):
    positions = dict(positions or {})
    if position is not None:
        positions[market.ticker] = position
    return SizingView(
        market=market,
        price=D(price),
        balance=bal or balance(),
        position=position,
        positions=positions,
        marks=dict(marks or {}),
        **kw,
    )


def make(cls, **params):
    return cls(parse_params(cls.Params, params, cls.name), None)


def buy(ticker="BTC-USD", **kw):
    return OrderParams(ticker, Side.BUY, **kw)


def test_all_sizers_register_through_the_hook():
    pm = PluginManager(load_entry_points=False, default_plugins=("perpbot.plugins.sizers",))
    assert set(pm.registry.position_sizers) == {"fixed_quantity", "fixed_notional", "exposure", "volatility_target", "kelly"}
    assert pm.registry.owners[("position_sizers", "fixed_notional")] == "perpbot.plugins.sizers"


def test_fixed_notional_default_is_1000_usd_floored_to_step():
    s = make(FixedNotionalSizer)
    r = s.size(buy(), view(price="65000"))
    # 1000 / 65000 = 0.015384... -> floored to 0.0001
    assert r.quantity == D("0.0153")
    assert r.notional == D("0.0153") * 65000
    assert "fixed notional 1000" in r.reason and "floored to step 0.0001" in r.reason


def test_fixed_quantity_and_intent_cap():
    s = make(FixedQuantitySizer, quantity="0.05")
    assert s.size(buy(), view()).quantity == D("0.05")
    r = s.size(buy(size="0.02"), view())
    assert r.quantity == D("0.02") and "intent" in r.reason


def test_below_minimum_is_zero_with_reason_never_raised_to_the_minimum():
    s = make(FixedNotionalSizer, notional="3")  # 3 USD of BTC at 50k = 0.00006 < step 0.0001
    r = s.size(buy(), view())
    assert r.quantity == 0
    assert "below the minimum order size 0.0001" in r.reason


def test_configured_min_order_size_applies():
    s = make(FixedNotionalSizer, notional="100", min_order_size="0.01")
    r = s.size(buy(), view())  # 0.002 < 0.01
    assert r.quantity == 0 and "minimum order size 0.01" in r.reason


def test_max_order_size_caps():
    s = make(FixedNotionalSizer, notional="40000", max_order_size="0.3")
    r = s.size(buy(), view())
    assert r.quantity == D("0.3") and "max_order_size" in r.reason


def test_leverage_cap_binds_and_says_so():
    # equity 10k, max 5x -> at most 50k notional = 1 BTC at 50k
    s = make(FixedNotionalSizer, notional="80000")
    r = s.size(buy(), view())
    assert r.quantity == D("1")
    assert "account leverage cap 5x" in r.reason


def test_leverage_cap_counts_other_positions_and_existing_position():
    eth = Position("ETH-USD", size=D("10"), entry_price=D("2000"))  # 20k notional at mark 2000
    pos = Position("BTC-USD", size=D("0.2"), entry_price=D("50000"))  # 10k notional
    s = make(FixedNotionalSizer, notional="100000")
    r = s.size(buy(), view(position=pos, positions={"ETH-USD": eth}, marks={"ETH-USD": D("2000")}))
    # |S'| <= (5*10000 - 20000)/50000 = 0.6 -> q <= 0.4
    assert r.quantity == D("0.4")


def test_opposite_side_can_flip_up_to_the_cap():
    pos = Position("BTC-USD", size=D("0.5"), entry_price=D("50000"))
    s = make(FixedNotionalSizer, notional="200000")
    r = OrderParams("BTC-USD", Side.SELL)
    res = s.size(r, view(position=pos))
    # |0.5 - q| <= 1 -> q <= 1.5
    assert res.quantity == D("1.5")


def test_venue_max_leverage_one_over_imf_binds_when_configured_higher():
    # IMF 0.05 -> 20x; configured 50x; free collateral 10k -> 200k notional = 4 BTC
    s = make(FixedNotionalSizer, notional="1000000", max_leverage="50")
    r = s.size(buy(), view())
    assert r.quantity == D("4")
    assert "initial margin" in r.reason and "1/IMF 0.05" in r.reason


def test_no_free_collateral_raises_insufficient_balance_with_amounts():
    s = make(FixedNotionalSizer)
    with pytest.raises(InsufficientBalance) as ei:
        s.size(buy(), view(bal=balance("1000", free="0", im="1000")))
    assert ei.value.available == 0
    assert ei.value.required == D("0.0001") * 50000 * D("0.05")


def test_below_min_raise_mode_raises_leverage_error_with_amounts():
    eth = Position("ETH-USD", size=D("25"), entry_price=D("2000"))  # 50k notional = 5x already
    s = make(FixedNotionalSizer, notional="1000", below_min="raise")
    with pytest.raises(InsufficientLeverage) as ei:
        s.size(buy(), view(positions={"ETH-USD": eth}, marks={"ETH-USD": D("2000")}))
    assert ei.value.available == D("5")
    assert ei.value.required > D("5")


def test_reduce_only_is_sized_to_the_position_without_leverage_checks():
    pos = Position("BTC-USD", size=D("-0.37"), entry_price=D("50000"))
    s = make(FixedNotionalSizer, notional="1000000")
    res = s.size(OrderParams("BTC-USD", Side.BUY, reduce_only=True), view(bal=balance("1", free="-5"), position=pos))
    assert res.quantity == D("0.37")
    res = s.size(OrderParams("BTC-USD", Side.SELL, reduce_only=True), view(position=pos))
    assert res.quantity == 0 and "no opposite position" in res.reason


# -- seed 004 exposure sizer ---------------------------------------------------------


def test_exposure_seed_formula_bound_by_exposure():
    s = make(ExposureSizer)  # exposure 0.1, max leverage 5
    r = s.size(buy(), view(price="50000"))
    # min(10000*5/50000 = 1, 10000*0.1/50000 = 0.02) = 0.02
    assert r.quantity == D("0.02")
    assert "bound by portfolio exposure 10%" in r.reason
    # seed: margin_used = notional / leverage (available leverage 5)
    assert r.margin_used == D("0.02") * 50000 / 5


def test_exposure_seed_formula_bound_by_balance_times_available_leverage():
    # current leverage 4.9x of max 5 -> available 0.1x; exposure 0.5
    eth = Position("ETH-USD", size=D("24.5"), entry_price=D("2000"))
    s = make(ExposureSizer, max_portfolio_exposure="0.5")
    r = s.size(buy(), view(positions={"ETH-USD": eth}, marks={"ETH-USD": D("2000")}))
    # q_bal = 10000 * 0.1 / 50000 = 0.02 ; q_exp = 10000*0.5/50000 = 0.1
    assert r.quantity == D("0.02")
    assert "bound by balance x leverage" in r.reason


def test_exposure_no_leverage_headroom_raises_insufficient_leverage():
    eth = Position("ETH-USD", size=D("25"), entry_price=D("2000"))
    s = make(ExposureSizer)
    with pytest.raises(InsufficientLeverage) as ei:
        s.size(buy(), view(positions={"ETH-USD": eth}, marks={"ETH-USD": D("2000")}))
    assert ei.value.available == 0
    assert ei.value.required == (D("50000") + D("0.0001") * 50000) / 10000


def test_exposure_below_min_is_not_raised_to_min():
    s = make(ExposureSizer, max_portfolio_exposure="0.0001")  # 1 USD
    r = s.size(buy(), view())
    assert r.quantity == 0 and "below the minimum" in r.reason


# -- volatility target and kelly --------------------------------------------------------


def test_volatility_target_formula():
    s = make(VolatilityTargetSizer, target_usd="50")
    r = s.size(buy(), view(price="50000", volatility=D("0.002")))
    # 50 / (50000 * 0.002) = 0.5
    assert r.quantity == D("0.5")


def test_volatility_target_without_volatility_skips():
    s = make(VolatilityTargetSizer)
    r = s.size(buy(), view())
    assert r.quantity == 0 and "volatility of BTC-USD unknown" in r.reason


def test_bar_volatility_is_sample_std_of_returns():
    closes = [D(100), D(101), D(99), D(100)]
    rets = [D(101) / 100 - 1, D(99) / 101 - 1, D(100) / 99 - 1]
    mean = sum(rets) / 3
    var = sum((r - mean) ** 2 for r in rets) / 2
    assert bar_volatility(closes) == var.sqrt()
    assert bar_volatility([D(1), D(2)]) is None


def test_kelly_from_win_rate_and_stop_distance():
    s = make(KellySizer, win_rate="0.6", payoff_ratio="1", fraction="0.5", stop_distance="0.02")
    r = s.size(buy(), view(price="50000"))
    # f* = 0.6 - 0.4 = 0.2; f = 0.1; stake 1000 USD; notional 50000 -> 1 BTC
    assert r.quantity == D("1")


def test_kelly_from_score_and_no_edge():
    s = make(KellySizer)
    r = s.size(buy(), view(score=D("70")))  # f* = 0.4, f = 0.1, notional 1000 -> 0.02
    assert r.quantity == D("0.02")
    r = s.size(buy(), view(score=D("45")))
    assert r.quantity == 0 and "no edge" in r.reason
    r = s.size(buy(), view())
    assert r.quantity == 0 and "no win-rate" in r.reason


# -- properties ---------------------------------------------------------------------------

money = st.decimals(min_value=D("0.01"), max_value=D("1000000"), places=2)
prices = st.decimals(min_value=D("0.5"), max_value=D("200000"), places=2)
sizes = st.decimals(min_value=D("-50"), max_value=D("50"), places=3)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizer_idx=st.integers(0, len(SIZERS) - 1),
    equity=money,
    used=st.decimals(min_value=D(0), max_value=D("0.99"), places=2),
    price=prices,
    pos=sizes,
    other=sizes,
    max_lev=st.decimals(min_value=D("0.5"), max_value=D("30"), places=1),
    max_size=st.one_of(st.none(), st.decimals(min_value=D("0.001"), max_value=D("100"), places=3)),
    min_size=st.one_of(st.none(), st.decimals(min_value=D("0.001"), max_value=D("5"), places=3)),
    side=st.sampled_from([Side.BUY, Side.SELL]),
    score=st.decimals(min_value=D(0), max_value=D(100), places=1),
    vol=st.decimals(min_value=D("0.0001"), max_value=D("0.2"), places=4),
)
def test_property_sized_quantities_respect_all_limits(
    sizer_idx, equity, used, price, pos, other, max_lev, max_size, min_size, side, score, vol
):
    cls = SIZERS[sizer_idx]
    extra = {"win_rate": "0.6"} if cls is KellySizer else {}
    params = {"max_leverage": max_lev, "max_order_size": max_size, "min_order_size": min_size, **extra}
    s = make(cls, **params)
    im = equity * used
    bal = balance(equity, free=equity - im, im=im)
    position = Position("ETH-USD", size=pos, entry_price=price) if pos else None
    others = {"BTC-USD": Position("BTC-USD", size=other, entry_price=D("40000"))} if other else {}
    v = view(price=price, bal=bal, position=position, positions=others, marks={"BTC-USD": D("40000")}, market=ETH, score=score, volatility=vol)
    intent = OrderParams("ETH-USD", side)
    try:
        r = s.size(intent, v)
    except (InsufficientBalance, InsufficientLeverage) as exc:
        assert exc.required is not None and exc.available is not None
        return
    q = r.quantity
    assert q >= 0
    assert q % ETH.step_size == 0, "floored to the step"
    if q == 0:
        assert r.reason
        return
    floor_min = max(min_size or ETH.min_order_size, ETH.min_order_size)
    assert q >= floor_min, "never below the minimum"
    if max_size is not None:
        assert q <= max_size
    after = pos + side.sign * q
    increasing = pos == 0 or (pos > 0) == (side is Side.BUY)
    other_notional = abs(other) * D("40000")
    if increasing or abs(after) > abs(pos):
        # leverage: configured cap and the venue's initial margin (1/IMF)
        assert other_notional + abs(after) * price <= max_lev * equity + D("1e-12")
        assert (abs(after) - abs(pos)) * price * ETH.initial_margin_fraction <= bal.free_collateral + D("1e-12")
    if cls is ExposureSizer and increasing:
        assert q * price <= bal.available * D("0.1") + D("1e-12"), "seed 004 exposure limit"


# -- balance manager and leverage calculator -----------------------------------------------


class FakeClock:
    def __init__(self):
        self.ns = 0

    def now_ns(self):
        return self.ns


async def test_balance_manager_caches_for_ttl_and_refreshes_before_large_orders():
    clock = FakeClock()
    calls = []

    async def fetch():
        calls.append(clock.ns)
        return balance(str(10000 + len(calls)))

    bm = BalanceManager(fetch, clock, ttl_s=5, large_order_usd=D("5000"))
    b1 = await bm.get()
    clock.ns = 4_999_999_999
    assert (await bm.get()) is b1 and len(calls) == 1
    clock.ns = 5_000_000_000
    b2 = await bm.get()
    assert b2 is not b1 and len(calls) == 2
    await bm.for_order(D("100"))
    assert len(calls) == 2, "small order uses the cache"
    await bm.for_order(D("5000"))
    assert len(calls) == 3, "large order forces a fresh fetch"
    info = await bm.info()
    assert info.total == D("10003") and info.available == D("10003") and info.locked == 0


async def test_balance_manager_shares_one_inflight_fetch_and_propagates_errors():
    clock = FakeClock()
    gate = asyncio.Event()
    n = 0

    async def fetch():
        nonlocal n
        n += 1
        await gate.wait()
        return balance()

    bm = BalanceManager(fetch, clock)
    t1 = asyncio.create_task(bm.refresh())
    t2 = asyncio.create_task(bm.refresh())
    await asyncio.sleep(0)
    gate.set()
    a, b = await asyncio.wait_for(asyncio.gather(t1, t2), 5)
    assert a is b and n == 1

    async def failing():
        raise RuntimeError("venue down")

    bad = BalanceManager(failing, clock)
    with pytest.raises(RuntimeError):
        await bad.get()


def test_leverage_calculator_max_current_available():
    calc = LeverageCalculator(D("10"))
    pos = {"BTC-USD": Position("BTC-USD", D("0.5"), D("40000")), "ETH-USD": Position("ETH-USD", D("-5"), D("2000"))}
    marks = {"BTC-USD": D("50000"), "ETH-USD": D("2000")}
    info = calc.info(balance("10000"), pos, marks, {"BTC-USD": BTC, "ETH-USD": ETH})
    # gross = 25000 + 10000 = 35000 -> 3.5x; max = min(10, 1/0.05=20) = 10
    assert info.current_leverage == D("3.5")
    assert info.max_leverage == D("10")
    assert info.available_leverage == D("6.5")
    assert info.margin_ratio == D("10000") / (D("35000") / 10)
    assert info.maintenance_margin_ratio == (D("35000") * D("0.03")) / (D("35000") / 10)
    strict = LeverageCalculator(D("50")).info(balance("10000"), {}, {}, market=BTC)
    assert strict.max_leverage == D("20") and strict.current_leverage == 0 and strict.margin_ratio is None
