"""Tests for perpbot.core.margin: exact dYdX v4 margin, liquidation and funding math.

Market parameters are dYdX's (chain genesis / indexer ``/v4/perpetualMarkets``):
BTC-USD AR -10, QCE -9, stepBaseQuantums 1e6, subticksPerTick 1e5, IMF/MMF 0.05/0.03
(2024) and 0.02/0.012 (2025); ETH-USD AR -9, QCE -9, step 1e6, subticksPerTick 1e5;
SOL-USD AR -7, QCE -9, step 1e6, subticksPerTick 1e6, IMF/MMF 0.1/0.05, OI caps
20,000,000 / 50,000,000 USDC; DOGE-USD AR -4, QCE -9, subticksPerTick 1e6.
"""

from __future__ import annotations

import decimal
from decimal import Decimal as D

import attrs
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from perpbot.core import margin as m
from perpbot.core.margin import (
    EXACT,
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_UP,
    PositionRisk,
)

BTC = dict(ar=-10, qce=-9, step=1_000_000, spt=100_000)
ETH = dict(ar=-9, qce=-9, step=1_000_000, spt=100_000)
SOL = dict(ar=-7, qce=-9, step=1_000_000, spt=1_000_000)
DOGE = dict(ar=-4, qce=-9, spt=1_000_000)
SOL_LOWER, SOL_UPPER = D("20000000"), D("50000000")  # USDC
SOL_LOWER_QQ, SOL_UPPER_QQ = 20_000_000 * 10**6, 50_000_000 * 10**6

Q2 = D("0.01")


def eth(size, price="3000", imf="0.05", mmf="0.03"):
    return PositionRisk(size=D(size), oracle_price=D(price), imf=D(imf), mmf=D(mmf), ticker="ETH-USD")


def btc(size, price="65000", imf="0.05", mmf="0.03"):
    return PositionRisk(size=D(size), oracle_price=D(price), imf=D(imf), mmf=D(mmf), ticker="BTC-USD")


# ---------------------------------------------------------------------------
# Conversions
# ---------------------------------------------------------------------------


class TestConversions:
    def test_0_0003_btc_is_exactly_3_000_000_quantums(self):
        assert m.size_to_quantums(D("0.0003"), BTC["ar"]) == 3_000_000
        assert m.size_to_quantums(D("0.0003"), BTC["ar"], ROUND_FLOOR, BTC["step"]) == 3_000_000

    def test_the_float_trap_that_exact_conversion_avoids(self):
        # What a float conversion does (the dYdX 1.1.5 client): 0.0003 * 1e10 is 2999999.9999...
        float_quantums = int(0.0003 * 10**10)
        assert float_quantums == 2_999_999
        assert float_quantums // BTC["step"] * BTC["step"] == 2_000_000  # 0.0002 BTC, not 0.0003
        with pytest.raises(TypeError, match="size"):
            m.size_to_quantums(0.0003, BTC["ar"])

    def test_quantums_to_size_round_trip(self):
        assert m.quantums_to_size(3_000_000, -10) == D("0.0003")
        assert m.quantums_to_size(-1_000_000, -9) == D("-0.001")
        assert m.quantums_to_size(1, -4) == D("0.0001")

    def test_size_rounding_directions_to_step(self):
        s = D("0.00015")  # 1.5 steps of BTC
        assert m.size_to_quantums(s, -10, ROUND_FLOOR, BTC["step"]) == 1_000_000
        assert m.size_to_quantums(s, -10, ROUND_CEILING, BTC["step"]) == 2_000_000
        assert m.size_to_quantums(s, -10, ROUND_DOWN, BTC["step"]) == 1_000_000
        assert m.size_to_quantums(s, -10, ROUND_UP, BTC["step"]) == 2_000_000
        with pytest.raises(ValueError, match="not a whole multiple"):
            m.size_to_quantums(s, -10, EXACT, BTC["step"])
        assert m.size_to_quantums(s, -10) == 1_500_000  # aligned to a single quantum

    def test_negative_size_rounding(self):
        s = D("-0.00015")
        assert m.size_to_quantums(s, -10, ROUND_FLOOR, BTC["step"]) == -2_000_000
        assert m.size_to_quantums(s, -10, ROUND_CEILING, BTC["step"]) == -1_000_000
        assert m.size_to_quantums(s, -10, ROUND_DOWN, BTC["step"]) == -1_000_000
        assert m.size_to_quantums(s, -10, ROUND_UP, BTC["step"]) == -2_000_000

    def test_exact_multiples_do_not_move(self):
        for mode in (ROUND_FLOOR, ROUND_CEILING, ROUND_DOWN, ROUND_UP, EXACT):
            assert m.size_to_quantums(D("-0.0002"), -10, mode, BTC["step"]) == -2_000_000
            assert m.price_to_subticks(D("65001"), -10, -9, mode, BTC["spt"]) == 6_500_100_000

    def test_sub_quantum_size_raises_when_exact(self):
        with pytest.raises(ValueError):
            m.size_to_quantums(D("0.00000000001"), -10)
        assert m.size_to_quantums(D("0.00000000001"), -10, ROUND_CEILING) == 1
        assert m.size_to_quantums(D("0.00000000001"), -10, ROUND_FLOOR) == 0

    def test_bad_rounding_and_step(self):
        with pytest.raises(ValueError, match="rounding"):
            m.size_to_quantums(D(1), -10, decimal.ROUND_HALF_UP)
        with pytest.raises(ValueError):
            m.size_to_quantums(D(1), -10, EXACT, 0)

    def test_price_to_subticks_real_markets(self):
        assert m.price_to_subticks(D("65000"), BTC["ar"], BTC["qce"]) == 6_500_000_000
        assert m.price_to_subticks(D("3000"), ETH["ar"], ETH["qce"]) == 3_000_000_000
        assert m.price_to_subticks(D("150.01"), SOL["ar"], SOL["qce"], EXACT, SOL["spt"]) == 15_001_000_000
        assert m.price_to_subticks(D("0.12345"), DOGE["ar"], DOGE["qce"], EXACT, DOGE["spt"]) == 12_345_000_000

    def test_price_rounding_to_tick(self):
        # BTC tick = 1e5 subticks = 1 USD
        assert m.price_to_subticks(D("65000.5"), -10, -9, ROUND_FLOOR, BTC["spt"]) == 6_500_000_000
        assert m.price_to_subticks(D("65000.5"), -10, -9, ROUND_CEILING, BTC["spt"]) == 6_500_100_000
        with pytest.raises(ValueError, match="ROUND_FLOOR"):
            m.price_to_subticks(D("65000.5"), -10, -9, EXACT, BTC["spt"])
        # ETH tick = 0.1 USD
        assert m.price_to_subticks(D("3000.15"), -9, -9, ROUND_CEILING, ETH["spt"]) == 3_000_200_000
        with pytest.raises(ValueError):
            m.price_to_subticks(D("-1"), -9, -9)

    def test_subticks_to_price(self):
        assert m.subticks_to_price(6_500_000_000, -10, -9) == D("65000")
        assert m.subticks_to_price(12_345_000_000, -4, -9) == D("0.12345")

    def test_base_to_quote_quantums(self):
        # 1 BTC at oracle price 6500000000e-5 = 65,000 USD
        assert m.base_to_quote_quantums(10**10, -10, 6_500_000_000, -5) == 65_000 * 10**6
        # 3 quantums * 65000 * 1e-4 = 19.5 qq: truncated toward zero both ways
        assert m.base_to_quote_quantums(3, -10, 65_000, 0) == 19
        assert m.base_to_quote_quantums(-3, -10, 65_000, 0) == -19  # not -20 (Python floor)
        assert m.base_to_quote_quantums(5, 0, 7, 1) == 350_000_000  # positive exponent multiplies
        assert m.base_to_quote_quantums_at_price(-3, -10, D("65000")) == -19
        assert m.notional_quote_quantums(D("-0.0000000003"), D("65000")) == -19
        assert m.notional_quote_quantums(D("0.0000000003"), D("65000")) == 19

    def test_fill_quote_quantums_floors(self):
        # 0.0003 BTC at 65,000 = 19.5 USDC
        assert m.fill_quote_quantums(6_500_000_000, 3_000_000, -9) == 19_500_000
        assert m.fill_quote_quantums(1, 1, -9) == 0
        assert m.fill_quote_quantums(999_999_999, 1, -9) == 0
        assert m.fill_quote_quantums(1_000_000_001, 1, -9) == 1
        with pytest.raises(ValueError):
            m.fill_quote_quantums(-1, 1, -9)

    @given(q=st.integers(-(10**15), 10**15), ar=st.integers(-12, 2))
    def test_size_round_trip_property(self, q, ar):
        assert m.size_to_quantums(m.quantums_to_size(q, ar), ar) == q

    @given(
        n=st.integers(-(10**12), 10**12),
        places=st.integers(0, 14),
        step=st.sampled_from([1, 10, 100_000, 1_000_000]),
    )
    def test_rounding_brackets_property(self, n, places, step):
        size = D(n).scaleb(-places)
        lo = m.size_to_quantums(size, -10, ROUND_FLOOR, step)
        hi = m.size_to_quantums(size, -10, ROUND_CEILING, step)
        down = m.size_to_quantums(size, -10, ROUND_DOWN, step)
        up = m.size_to_quantums(size, -10, ROUND_UP, step)
        exact = size.scaleb(10)
        assert lo <= exact <= hi and hi - lo in (0, step)
        assert abs(down) <= abs(exact) <= abs(up)
        assert lo % step == 0 and hi % step == 0

    @given(q=st.integers(-(10**18), 10**18), pv=st.integers(0, 10**12), pe=st.integers(-12, 2))
    def test_truncation_is_symmetric_property(self, q, pv, pe):
        a = m.base_to_quote_quantums(q, -10, pv, pe)
        assert m.base_to_quote_quantums(-q, -10, pv, pe) == -a
        price = D(pv).scaleb(pe)
        assert m.base_to_quote_quantums_at_price(q, -10, price) == a


# ---------------------------------------------------------------------------
# Margin requirements
# ---------------------------------------------------------------------------


class TestOpenInterestScaling:
    def test_below_inside_above_caps(self):
        f = m.adjusted_initial_margin_ppm
        assert f(100_000, 10_000_000 * 10**6, SOL_LOWER_QQ, SOL_UPPER_QQ) == 100_000
        assert f(100_000, 35_000_000 * 10**6, SOL_LOWER_QQ, SOL_UPPER_QQ) == 550_000
        assert f(100_000, 80_000_000 * 10**6, SOL_LOWER_QQ, SOL_UPPER_QQ) == 1_000_000

    def test_caps_are_inclusive(self):
        f = m.adjusted_initial_margin_ppm
        assert f(100_000, SOL_LOWER_QQ, SOL_LOWER_QQ, SOL_UPPER_QQ) == 100_000
        assert f(100_000, SOL_UPPER_QQ, SOL_LOWER_QQ, SOL_UPPER_QQ) == 1_000_000
        assert f(100_000, SOL_UPPER_QQ - 1, SOL_LOWER_QQ, SOL_UPPER_QQ) == 999_999  # floored

    def test_ppm_is_floored(self):
        f = m.adjusted_initial_margin_ppm
        # 900000 * 100_000_000 / 30e12 = 3 exactly; one quantum less floors to 2
        assert f(100_000, SOL_LOWER_QQ + 100_000_000, SOL_LOWER_QQ, SOL_UPPER_QQ) == 100_003
        assert f(100_000, SOL_LOWER_QQ + 99_999_999, SOL_LOWER_QQ, SOL_UPPER_QQ) == 100_002
        assert f(100_000, SOL_LOWER_QQ + 1, SOL_LOWER_QQ, SOL_UPPER_QQ) == 100_000

    def test_upper_cap_zero_disables(self):
        assert m.adjusted_initial_margin_ppm(50_000, 10**30, 0, 0) == 50_000
        assert m.adjusted_initial_margin_ppm(50_000, 10**30, 5, 0) == 50_000

    def test_invalid_caps(self):
        with pytest.raises(ValueError, match="lower cap"):
            m.adjusted_initial_margin_ppm(50_000, 10, 5, 3)
        with pytest.raises(ValueError, match="lower cap"):
            m.adjusted_initial_margin_ppm(50_000, 1, 5, 3)  # even when OI is below both
        with pytest.raises(ValueError):
            m.adjusted_initial_margin_ppm(1_000_001, 0, 0, 0)

    def test_fraction_convenience(self):
        f = m.adjusted_initial_margin_fraction
        assert f(D("0.1"), D("35000000"), SOL_LOWER, SOL_UPPER) == D("0.55")
        assert f(D("0.1"), D("20000000"), SOL_LOWER, SOL_UPPER) == D("0.1")
        assert f(D("0.1"), D("50000000"), SOL_LOWER, SOL_UPPER) == D("1")
        assert f(D("0.1"), D("1e12"), D(0), D(0)) == D("0.1")
        with pytest.raises(ValueError, match="ppm"):
            f(D("0.0500001"), D(0), D(0), D(0))

    def test_position_uses_scaled_imf_for_imr_but_not_mmr(self):
        # 250,000 SOL at 140 USD = 35M USDC OI -> IMF 0.55
        p = PositionRisk(
            size=D("10"),
            oracle_price=D("140"),
            imf=D("0.1"),
            mmf=D("0.05"),
            open_interest=D("250000"),
            open_interest_lower_cap=SOL_LOWER,
            open_interest_upper_cap=SOL_UPPER,
        )
        assert p.effective_imf == D("0.55")
        assert p.effective_imf_ppm == 550_000
        assert p.initial_margin == D("770")  # 1400 * 0.55
        assert p.maintenance_margin == D("70")  # 1400 * 0.05, not scaled
        assert m.initial_margin_requirement_usd(
            D("10"),
            D("140"),
            D("0.1"),
            open_interest=D("250000"),
            open_interest_lower_cap=SOL_LOWER,
            open_interest_upper_cap=SOL_UPPER,
        ) == D("770")

    @given(
        imf=st.integers(0, 1_000_000),
        oi=st.integers(0, 10**16),
        lower=st.integers(0, 10**15),
        width=st.integers(0, 10**15),
    )
    def test_scaling_bounded_and_monotone_property(self, imf, oi, lower, width):
        upper = lower + width
        assume(upper > 0)
        a = m.adjusted_initial_margin_ppm(imf, oi, lower, upper)
        b = m.adjusted_initial_margin_ppm(imf, oi + 10**12, lower, upper)
        assert imf <= a <= b <= 1_000_000


class TestRequirements:
    def test_btc_one_coin(self):
        n = 65_000 * 10**6
        assert m.initial_margin_requirement(n, 50_000) == 3_250 * 10**6
        assert m.maintenance_margin_requirement(n, 50_000, 600_000) == 1_950 * 10**6
        # 2025 parameters: IMF 0.02, MMF 0.012 (maintenance fraction 0.6)
        assert m.initial_margin_requirement(n, 20_000) == 1_300 * 10**6
        assert m.maintenance_margin_requirement(n, 20_000, 600_000) == 780 * 10**6
        assert m.initial_margin_requirement_usd(D(1), D(65000), D("0.02")) == D(1300)
        assert m.maintenance_margin_requirement_usd(D(-1), D(65000), D("0.02"), D("0.012")) == D(780)

    def test_mmr_rounded_up_twice_differs_by_one_quantum(self):
        # notional 1000.000024 USDC: IMF 5% = 50.0000012 -> 50.000002; * 0.6 = 30.0000012 -> 30.000002,
        # while a single ceil(notional * 3%) = ceil(30.00000072) = 30.000001.
        n = 1_000_000_024
        chain = m.maintenance_margin_requirement(n, 50_000, 600_000)
        single = -(-n * 30_000 // 1_000_000)
        assert chain == 30_000_002
        assert single == 30_000_001
        usd = m.maintenance_margin_requirement_usd(D(1), D("1000.000024"), D("0.05"), D("0.03"))
        assert usd == D("30.000002")

    def test_imr_rounds_up(self):
        assert m.initial_margin_requirement(1, 50_000) == 1
        assert m.initial_margin_requirement(20, 50_000) == 1
        assert m.initial_margin_requirement(21, 50_000) == 2
        assert m.initial_margin_requirement(0, 50_000) == 0

    def test_short_notional_rounds_toward_zero(self):
        # 3 BTC quantums short at 65,000: -19.5 qq truncates to -19, so IMR = ceil(19 * 5%) = 1
        p = btc("-0.0000000003")
        assert p.notional_quote_quantums == -19
        assert p.initial_margin_quote_quantums == 1
        assert m.initial_margin_requirement(-19, 50_000) == m.initial_margin_requirement(19, 50_000)

    def test_custom_imf_only_raises(self):
        n = 1_000 * 10**6
        assert m.initial_margin_requirement(n, 50_000, custom_imf_ppm=200_000) == 200 * 10**6
        assert m.initial_margin_requirement(n, 50_000, custom_imf_ppm=10_000) == 50 * 10**6

    def test_fraction_validation(self):
        with pytest.raises(ValueError, match="ppm"):
            eth("1", imf="0.0500001")
        with pytest.raises(ValueError, match="mmf"):
            eth("1", imf="0.05", mmf="0.06")
        with pytest.raises(ValueError, match="oracle_price"):
            eth("1", price="0")

    @given(
        n=st.integers(0, 10**16),
        imf=st.integers(0, 1_000_000),
        mf=st.integers(0, 1_000_000),
    )
    def test_double_rounding_property(self, n, imf, mf):
        chain = m.maintenance_margin_requirement(n, imf, mf)
        single = -(-n * imf * mf // 10**12)
        assert single <= chain <= single + 1
        assert chain <= m.initial_margin_requirement(n, imf)

    @given(
        q=st.integers(-(10**14), 10**14),
        price_cents=st.integers(1, 10**9),
        tier=st.sampled_from([("0.05", "0.03"), ("0.02", "0.012"), ("0.1", "0.05"), ("0.2", "0.1")]),
    )
    def test_usd_wrappers_match_quantum_functions(self, q, price_cents, tier):
        imf, mmf = D(tier[0]), D(tier[1])
        size, price = m.quantums_to_size(q, -10), D(price_cents).scaleb(-2)
        n = m.base_to_quote_quantums_at_price(q, -10, price)
        imf_ppm = int(imf * 10**6)
        mf_ppm = int(mmf / imf * 10**6)
        imr = m.initial_margin_requirement_usd(size, price, imf)
        mmr = m.maintenance_margin_requirement_usd(size, price, imf, mmf)
        assert imr == D(m.initial_margin_requirement(n, imf_ppm)).scaleb(-6)
        assert mmr == D(m.maintenance_margin_requirement(n, imf_ppm, mf_ppm)).scaleb(-6)


# ---------------------------------------------------------------------------
# Floats are refused everywhere
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: m.size_to_quantums(0.0003, -10), "size"),
        (lambda: m.price_to_subticks(65000.0, -10, -9), "price"),
        (lambda: m.base_to_quote_quantums(1.0, -10, 1, 0), "base_quantums"),
        (lambda: m.fill_quote_quantums(1, 1.0, -9), "quantums"),
        (lambda: m.adjusted_initial_margin_ppm(50_000.0, 0, 0, 0), "imf_ppm"),
        (lambda: m.initial_margin_requirement_usd(D(1), D(3000), 0.05), "imf"),
        (lambda: PositionRisk(size=1.0, oracle_price=D(1), imf=D("0.05"), mmf=D("0.03")), "size"),
        (lambda: PositionRisk(size=D(1), oracle_price=3000.0, imf=D("0.05"), mmf=D("0.03")), "oracle_price"),
        (lambda: m.equity(1000.0, []), "usdc_balance"),
        (lambda: m.liquidation_price(D(1000), D(1), D(3000), 0.03), "mmf"),
        (lambda: m.funding_payment(D(1), D(65000), 1.25e-5), "rate_1h"),
        (lambda: m.liquidation_fee(D(1), 0.5), "bankruptcy_quote"),
        (lambda: m.check_order_initial_margin(D(1000), [], eth("0"), 1.0, D(3000)), "order_size"),
    ],
)
def test_float_raises_type_error_naming_the_argument(call, name):
    with pytest.raises(TypeError, match=rf"^{name} must be"):
        call()


def test_ints_and_strings_are_exact_inputs():
    assert m.equity(1000, []) == D(1000)
    assert m.funding_payment("1", "65000", "0.0000125") == D("-0.8125")
    with pytest.raises(TypeError):
        m.equity(True, [])
    with pytest.raises(ValueError):
        m.equity(D("NaN"), [])


# ---------------------------------------------------------------------------
# Accounts
# ---------------------------------------------------------------------------


class TestAccount:
    def test_deposit_1000_long_1_eth(self):
        q, ps = D(-2000), [eth("1")]
        assert m.equity(q, ps) == D(1000)
        assert m.total_initial_margin(ps) == D(150)
        assert m.total_maintenance_margin(ps) == D(90)
        assert m.free_collateral(q, ps) == D(850)
        assert m.margin_usage(q, ps) == D("0.15")
        assert m.account_leverage(q, ps) == D(3)
        assert m.position_leverage(ps[0], D(1000)) == D(3)
        assert m.position_leverage(eth("-2"), D(1000)) == D(-6)
        assert m.buying_power(q, ps, D("0.05")) == D(17000)
        assert m.is_initially_collateralized(q, ps)
        assert not m.is_liquidatable(q, ps)
        r = m.account_risk(q, ps)
        assert (r.equity, r.initial_margin, r.maintenance_margin, r.gross_notional) == (1000, 150, 90, 3000)
        assert r.free_collateral == 850 and r.leverage == 3 and r.margin_usage == D("0.15")

    def test_liquidatable_is_strict(self):
        ps = [eth("1")]  # TMMR = 90
        assert not m.is_liquidatable(D(-2910), ps)  # NC == TMMR
        assert m.is_liquidatable(D("-2910.000001"), ps)
        assert m.is_liquidatable(D(-2000), [eth("1", price="2061")])
        assert not m.is_liquidatable(D(-2000), [eth("1", price="2062")])

    def test_no_positions_negative_balance_is_not_liquidatable(self):
        assert not m.is_liquidatable(D(-5), [])
        assert not m.is_initially_collateralized(D(-5), [])
        assert m.is_initially_collateralized(D(0), [])

    def test_initially_collateralized_boundary(self):
        ps = [eth("1")]  # TIMR = 150
        assert m.is_initially_collateralized(D(-2850), ps)
        assert not m.is_initially_collateralized(D("-2850.000001"), ps)

    def test_non_positive_equity(self):
        ps = [eth("1")]
        assert m.margin_usage(D(-3000), ps) is None
        assert m.account_leverage(D(-3100), ps) is None
        assert m.position_leverage(ps[0], D(0)) is None
        assert m.buying_power(D(-2900), ps, D("0.05")) == 0

    def test_equity_truncates_each_position(self):
        ps = [btc("0.0000000003"), btc("-0.0000000003")]
        # +19.5 -> 19, -19.5 -> -19
        assert m.equity(D(0), ps) == D(0)
        assert m.equity(D(0), ps[:1]) == D("0.000019")

    def test_named_constructors(self):
        payload = {
            "ticker": "SOL-USD",
            "oraclePrice": "140",
            "initialMarginFraction": "0.1",
            "maintenanceMarginFraction": "0.05",
            "openInterest": "250000",
            "openInterestLowerCap": "20000000",
            "openInterestUpperCap": "50000000",
        }
        p = PositionRisk.from_indexer(payload, D(10))
        assert p.ticker == "SOL-USD" and p.initial_margin == D(770)
        with pytest.raises(ValueError, match="oraclePrice"):
            PositionRisk.from_indexer({"ticker": "X"}, D(1))

        @attrs.frozen
        class FakeMarket:
            ticker: str = "ETH-USD"
            initial_margin_fraction: D = D("0.05")
            maintenance_margin_fraction: D = D("0.03")
            oracle_price: D | None = D("3000")
            open_interest: D = D(0)
            open_interest_lower_cap: D = D(0)
            open_interest_upper_cap: D = D(0)

        q = PositionRisk.from_market(FakeMarket(), D(1))
        assert q == eth("1")
        assert PositionRisk.from_market(FakeMarket(), D(1), D(2000)).notional == D(2000)
        with pytest.raises(ValueError, match="oracle price"):
            PositionRisk.from_market(FakeMarket(oracle_price=None), D(1))

    def test_with_price_and_size_equal_evolve(self):
        p = eth("1")
        assert p.with_price(D(2500)) == attrs.evolve(p, oracle_price=D(2500))
        assert p.with_size(D(-2)).maintenance_margin == attrs.evolve(p, size=D(-2)).maintenance_margin == 180


# Account generator for property tests: real market parameters, sizes on each market's
# quantum grid, prices on each market's tick grid.
_TIERS = {
    "BTC-USD": (-10, D("0.05"), D("0.03"), D(1)),
    "BTC-USD-2025": (-10, D("0.02"), D("0.012"), D(1)),
    "ETH-USD": (-9, D("0.05"), D("0.03"), D("0.1")),
    "SOL-USD": (-7, D("0.1"), D("0.05"), D("0.01")),
    "DOGE-USD": (-4, D("0.1"), D("0.05"), D("0.00001")),
}


@st.composite
def positions_st(draw, min_size=0, max_size=6):
    out = []
    for _ in range(draw(st.integers(min_size, max_size))):
        ticker = draw(st.sampled_from(sorted(_TIERS)))
        ar, imf, mmf, tick = _TIERS[ticker]
        steps = draw(st.integers(-10**6, 10**6).filter(bool))
        size = m.quantums_to_size(steps * 10**6, ar)  # multiples of stepBaseQuantums 1e6
        price = tick * draw(st.integers(1, 10**7))
        out.append(PositionRisk(size=size, oracle_price=price, imf=imf, mmf=mmf, ticker=ticker))
    return out


usdc_st = st.integers(-(10**14), 10**14).map(lambda n: D(n).scaleb(-6))


class TestAccountProperties:
    @given(q=usdc_st, ps=positions_st())
    def test_equity_and_free_collateral_identities(self, q, ps):
        e = m.equity(q, ps)
        exact = q + sum((p.size * p.oracle_price for p in ps), D(0))
        truncated = q + sum((D(m.notional_quote_quantums(p.size, p.oracle_price)) for p in ps), D(0)) / 10**6
        assert e == truncated
        assert abs(e - exact) < D("0.000001") * max(1, len(ps))
        r = m.account_risk(q, ps)
        assert r.equity == e
        assert m.free_collateral(q, ps) == e - m.total_initial_margin(ps) == r.free_collateral
        assert r.initial_margin == sum((p.initial_margin for p in ps), D(0))
        assert r.maintenance_margin == sum((p.maintenance_margin for p in ps), D(0))
        assert r.maintenance_margin <= r.initial_margin
        assert m.is_initially_collateralized(q, ps) == (m.free_collateral(q, ps) >= 0)
        if e > 0:
            assert abs(m.margin_usage(q, ps) - (1 - r.free_collateral / e)) < D("1e-20")

    @settings(max_examples=300)
    @given(q=usdc_st, ps=positions_st(min_size=1), i=st.integers(0, 10))
    def test_liquidation_price_is_where_equity_meets_maintenance(self, q, ps, i):
        i %= len(ps)
        prices = m.liquidation_prices(q, ps)
        p_liq = prices[i]
        e = m.equity(q, ps)
        tmmr = m.total_maintenance_margin(ps)
        other = tmmr - ps[i].maintenance_margin
        single = m.liquidation_price(e, ps[i].size, ps[i].oracle_price, ps[i].mmf, other)
        if single is None or p_liq is None:
            assert single is None and p_liq is None
            return
        assert abs(single - p_liq) <= abs(p_liq) * D("1e-25")
        moved = list(ps)
        moved[i] = ps[i].with_price(p_liq)
        gap = m.equity(q, moved) - m.total_maintenance_margin(moved)
        # Rounding: each position value truncated (1 qq), each MMR rounded up twice (2 qq),
        # plus 28-digit rounding of p_liq times the size.
        tol = D("0.000001") * (3 * len(ps) + 2) + abs(ps[i].size) * abs(p_liq) * D("1e-26")
        assert abs(gap) <= tol, (gap, tol)


class TestLiquidationPrice:
    def test_worked_example_long(self):
        # deposit 1000, long 1 ETH at 3000 (Q = -2000), MMF 0.03
        p = m.liquidation_price(D(1000), D(1), D(3000), D("0.03"))
        assert p.quantize(Q2) == D("2061.86")
        assert m.liquidation_prices(D(-2000), [eth("1")])[0].quantize(Q2) == D("2061.86")
        # check: equity at that price equals maintenance margin
        assert (D(-2000) + p - p * D("0.03")).quantize(D("1e-20")) == 0

    def test_worked_example_short(self):
        p = m.liquidation_price(D(1000), D(-3), D(3000), D("0.05"))
        assert p.quantize(Q2) == D("3174.60")
        assert m.isolated_liquidation_price(D(1000), D(-3), D(3000), D("0.05")) == p
        short = PositionRisk(size=D(-3), oracle_price=D(3000), imf=D("0.1"), mmf=D("0.05"))
        assert m.liquidation_prices(D(10000), [short])[0].quantize(Q2) == D("3174.60")

    def test_cross_uses_other_maintenance(self):
        ps = [eth("1"), btc("0.1")]  # BTC MMR = 6500 * 0.03 = 195
        prices = m.liquidation_prices(D(-7000), ps)
        e = m.equity(D(-7000), ps)  # 3000 + 6500 - 7000 = 2500
        assert e == 2500
        assert prices[0] == m.liquidation_price(e, D(1), D(3000), D("0.03"), D(195))
        assert prices[1] == m.liquidation_price(e, D("0.1"), D(65000), D("0.03"), D(90))
        # (2500 - 3000 - 195) / (0.03 - 1) = 716.49...
        assert prices[0].quantize(Q2) == D("716.49")

    def test_none_cases(self):
        assert m.liquidation_price(D(1000), D(0), D(3000), D("0.03")) is None
        assert m.liquidation_price(D(5000), D(1), D(3000), D("0.03")) is None  # overcollateralized long
        assert m.liquidation_price(D(1000), D(1), D(3000), D(1)) is None  # denominator 0
        assert m.liquidation_price(D(100), D(-1), D(3000), D("0.05"), D(5000)) is None
        assert m.liquidation_prices(D(5000), [eth("1"), eth("0")]) == [None, None]

    def test_result_does_not_depend_on_callers_context(self):
        q, ps = D("9000.123457"), [eth("1.234"), btc("-0.1234", price="65000.5"), eth("-0.5", price="3001.3")]
        default = m.liquidation_prices(q, ps)
        single = m.liquidation_price(D(1000), D(1), D(3000), D("0.03"))
        risk = m.account_risk(q, ps)
        assert all(x is not None for x in default)
        with decimal.localcontext() as ctx:
            ctx.prec = 6
            ctx.rounding = decimal.ROUND_FLOOR
            assert m.liquidation_prices(q, ps) == default
            assert m.liquidation_price(D(1000), D(1), D(3000), D("0.03")) == single
            assert m.account_risk(q, ps) == risk
            assert m.account_risk(q, ps).leverage == risk.leverage
        with decimal.localcontext() as ctx:
            ctx.traps[decimal.Inexact] = True
            assert m.liquidation_prices(q, ps) == default

    def test_validation(self):
        with pytest.raises(ValueError):
            m.liquidation_price(D(1), D(1), D(0), D("0.03"))
        with pytest.raises(ValueError):
            m.liquidation_price(D(1), D(1), D(1), D("1.5"))
        with pytest.raises(ValueError):
            m.liquidation_price(D(1), D(1), D(1), D("0.03"), D(-1))


# ---------------------------------------------------------------------------
# Liquidation execution
# ---------------------------------------------------------------------------


class TestLiquidationExecution:
    def test_fillable_price_abr(self):
        p = eth("1")  # PMMR 90
        # ABR = 1 - 45/90 = 0.5; spread = 0.5 * 1.5 * 90 = 67.5
        assert m.liquidation_fill_price(p, D(45), D(90)) == D("2932.5")
        assert m.liquidation_fill_price(p, D(90), D(90)) == D(3000)  # ABR 0
        assert m.liquidation_fill_price(p, D(200), D(90)) == D(3000)  # clamped at 0
        assert m.liquidation_fill_price(p, D(-50), D(90)) == D(2865)  # clamped at 1
        assert m.liquidation_fill_price(eth("-1"), D(45), D(90)) == D("3067.5")
        assert m.liquidation_fill_price(p, D(45), D(90), bankruptcy_adjustment=D(0)) == D(3000)
        assert m.liquidation_fill_price(p, D(0), D(90), spread_to_maintenance_margin_ratio=D(1)) == D(2910)

    def test_fill_subticks_round_conservatively(self):
        p = eth("1")
        # exact aligned price
        assert m.liquidation_fill_subticks(p, D(45), D(90), -9, -9, 100_000) == 2_932_500_000
        # ABR = 1 - 45.1/90; price 2932.65 -> long (sell) rounds up to the 0.1 tick
        assert m.liquidation_fill_price(p, D("45.1"), D(90)) == D("2932.65")
        assert m.liquidation_fill_subticks(p, D("45.1"), D(90), -9, -9, 100_000) == 2_932_700_000
        assert m.liquidation_fill_subticks(eth("-1"), D("45.1"), D(90), -9, -9, 100_000) == 3_067_300_000

    def test_fill_subticks_at_least_one_tick(self):
        # DOGE short at a price below one tick (1e-5 USD): a buy rounds down to 0, clamped to 1 tick
        p = PositionRisk(size=D(-(10**6)), oracle_price=D("0.000001"), imf=D("0.1"), mmf=D("0.05"))
        assert m.liquidation_fill_subticks(p, D(1), D(2), DOGE["ar"], DOGE["qce"], DOGE["spt"]) == DOGE["spt"]

    def test_bankruptcy_closes_at_zero_equity(self):
        p = eth("1")
        # account: Q = -2955, long 1 ETH at 3000: TNC 45, TMMR 90
        assert m.bankruptcy_quote(p, D(-1), D(45), D(90)) == D(2955)
        assert m.bankruptcy_price(p, D(-1), D(45), D(90)) == D(2955)
        assert m.bankruptcy_quote(p, D("-0.5"), D(45), D(90)) == D("1477.5")
        short = eth("-1")  # Q = 3045
        assert m.bankruptcy_quote(short, D(1), D(45), D(90)) == D(-3045)
        assert m.bankruptcy_price(short, D(1), D(45), D(90)) == D(3045)

    def test_bankruptcy_floor_is_euclidean(self):
        p = eth("1")
        # cut = floor(45.000001 * 45 / 90) = floor(22.5000005) -> 22.500000
        assert m.bankruptcy_quote(p, D("-0.5"), D("45.000001"), D(90)) == D("1477.5")
        # negative TNC: floor(-0.000001 * 45 / 90) = -0.000001 (toward -inf), so the quote rounds up
        assert m.bankruptcy_quote(p, D("-0.5"), D("-0.000001"), D(90)) == D("1500.000001")

    def test_bankruptcy_invalid_delta(self):
        p = eth("1")
        for bad in (D(1), D(0), D("-1.5")):
            with pytest.raises(ValueError, match="delta_size"):
                m.bankruptcy_quote(p, bad, D(45), D(90))
        with pytest.raises(ValueError):
            m.bankruptcy_quote(p, D(-1), D(45), D(0))

    def test_liquidation_fee(self):
        # filled at the fillable price, worse than bankruptcy: insurance fund pays 22.5
        assert m.liquidation_fee(D("2932.5"), D(2955)) == D("-22.5")
        # better than bankruptcy: fee = min(delta, 1.5% of quote)
        assert m.liquidation_fee(D(2990), D(2955)) == D(35)
        assert m.liquidation_fee(D(3000), D(2900)) == D(45)
        assert m.liquidation_fee(D(3000), D(2900), max_liquidation_fee_ppm=10_000) == D(30)
        # shorts: quote is negative (paid); fee cap uses |quote|
        assert m.liquidation_fee(D(-3000), D(-3100)) == D(45)
        # cap floors to a quote quantum: 0.000099 * 1.5% = 0.000001485 -> 0.000001
        assert m.liquidation_fee(D("0.000099"), D(0)) == D("0.000001")
        assert m.liquidation_fee(D(1), D(1)) == 0


# ---------------------------------------------------------------------------
# Funding
# ---------------------------------------------------------------------------


class TestFunding:
    def test_payment_sign(self):
        assert m.funding_payment(D(1), D(65000), D("0.0000125")) == D("-0.8125")
        assert m.funding_payment(D(-1), D(65000), D("0.0000125")) == D("0.8125")
        assert m.funding_payment(D(1), D(65000), D("-0.0000125")) == D("0.8125")
        assert m.funding_payment(D(0), D(65000), D("0.0000125")) == 0

    def test_rate_1h_from_8h(self):
        assert m.funding_rate_1h_from_8h(D("0.0001")) == D("0.0000125")
        assert m.funding_rate_1h_from_8h(D("-0.00000001")) == D("-0.00000000125")

    def test_index_delta_truncates(self):
        # BTC at 65,000 (6500000000e-5), 100 ppm per 8h, one hour:
        # 3600 * 100 * 6.5 = 2,340,000; / 28,800 = 81.25 -> 81
        assert m.funding_index_delta(100, 3600, -10, 6_500_000_000, -5) == 81
        assert m.funding_index_delta(-100, 3600, -10, 6_500_000_000, -5) == -81  # toward zero
        # 1 BTC long pays 81 * 1e10 / 1e6 = 0.81 USDC (0.8125 before truncating the index)
        assert m.settle_funding_quote_quantums([(10**10, 81)]) == -810_000

    def test_settlement_floors_the_sum_once(self):
        assert m.settle_funding_quote_quantums([(1, 500_000)]) == -1  # -0.5 floors to -1
        assert m.settle_funding_quote_quantums([(1, -500_000)]) == 0  # +0.5 floors to 0
        pairs = [(1, -500_000), (1, -600_000)]  # +0.5 and +0.6 qq
        per_position = sum(-(d * q) // 10**6 for q, d in pairs)
        assert per_position == 0
        assert m.settle_funding_quote_quantums(pairs) == 1
        assert m.settle_funding_quote_quantums([]) == 0
        with pytest.raises(TypeError):
            m.settle_funding_quote_quantums([(1.0, 5)])


# ---------------------------------------------------------------------------
# Order initial-margin check
# ---------------------------------------------------------------------------


class TestOrderCheck:
    def test_accept_and_reject_with_numbers(self):
        ok = m.check_order_initial_margin(D(1000), [], eth("0"), D(1), D(3000), D("1.5"))
        assert ok.accepted
        assert ok.required == D(150) and ok.available == D("998.5")
        assert ok.free_collateral_after == D("848.5") and ok.shortfall == 0

        bad = m.check_order_initial_margin(D(1000), [], eth("0"), D(10), D(3000))
        assert not bad.accepted
        assert bad.required == D(1500) and bad.available == D(1000) and bad.shortfall == D(500)
        assert "1500" in bad.reason and "1000" in bad.reason and "500" in bad.reason

    def test_fill_price_and_fee_move_equity(self):
        # buying above the oracle loses the difference immediately
        r = m.check_order_initial_margin(D(1000), [], eth("0"), D(1), D(3100), D(3))
        assert r.equity_after == D(897)  # 1000 - 3100 - 3 + 3000

    def test_other_positions_count_and_identity_is_skipped(self):
        b = btc("0.1")  # IMR 325
        e = eth("1")
        r1 = m.check_order_initial_margin(D(-8000), [b], e, D(1), D(3000))
        r2 = m.check_order_initial_margin(D(-8000), [b, e], e, D(1), D(3000))
        assert r1 == r2
        assert r1.initial_margin_before == D(475) and r1.initial_margin_after == D(625)
        assert r1.equity_before == D(1500)

    def test_undercollateralized_risk_reduction(self):
        pos = eth("1")  # Q -2900: NC 100 < TIMR 150, TMMR 90
        r = m.check_order_initial_margin(D(-2900), [], pos, D("-0.5"), D(3000))
        assert r.accepted and r.equity_after >= r.required  # back above initial margin
        # selling at 2900: NC 50 < IMR 75, but NC/MMR = 50/45 == 100/90: accepted
        r = m.check_order_initial_margin(D(-2900), [], pos, D("-0.5"), D(2900))
        assert r.accepted and r.equity_after < r.required
        assert "undercollateralized" in r.reason
        r = m.check_order_initial_margin(
            D(-2900), [], pos, D("-0.5"), D(2900), allow_undercollateralized_risk_reduction=False
        )
        assert not r.accepted
        # one dollar worse: NC/MMR falls -> rejected
        assert not m.check_order_initial_margin(D(-2900), [], pos, D("-0.5"), D(2899)).accepted
        # adding to the position while undercollateralized raises MMR -> rejected
        assert not m.check_order_initial_margin(D(-2900), [], pos, D("0.001"), D(2000)).accepted

    def test_flat_account_negative_balance(self):
        # no positions before or after (TMMR 0): accepted only if NC rises
        flat = eth("0")
        assert m.check_order_initial_margin(D(-10), [], flat, D(1), D(3000)).accepted is False
        with pytest.raises(ValueError):
            m.check_order_initial_margin(D(10), [], flat, D(0), D(3000))
        with pytest.raises(ValueError):
            m.check_order_initial_margin(D(10), [], flat, D(1), D(0))

    @settings(max_examples=300)
    @given(
        q=usdc_st,
        ps=positions_st(min_size=1, max_size=4),
        i=st.integers(0, 10),
        steps=st.integers(-(10**6), 10**6).filter(bool),
        slip_bp=st.integers(-200, 200),
        fee_bp=st.integers(-1, 5),
    )
    def test_accepted_risk_increasing_order_leaves_account_collateralized(self, q, ps, i, steps, slip_bp, fee_bp):
        i %= len(ps)
        pos = ps[i]
        ar = _TIERS[pos.ticker][0]
        size = m.quantums_to_size(steps * 10**6, ar)
        price = pos.oracle_price * (1 + D(slip_bp) / 10_000)
        fee = abs(size) * price * D(fee_bp) / 10_000
        r = m.check_order_initial_margin(q, ps, pos, size, price, fee)
        after = list(ps)
        after[i] = pos.with_size(pos.size + size)
        q_after = q - size * price - fee
        # the result's numbers are the account recomputed from scratch
        assert r.equity_after == m.equity(q_after, after)
        assert r.initial_margin_after == m.total_initial_margin(after)
        assert r.maintenance_margin_after == m.total_maintenance_margin(after)
        assert r.equity_before == m.equity(q, ps)
        strict = m.check_order_initial_margin(
            q, ps, pos, size, price, fee, allow_undercollateralized_risk_reduction=False
        )
        assert strict.accepted == m.is_initially_collateralized(q_after, after)
        if r.accepted and r.maintenance_margin_after > r.maintenance_margin_before:
            assert m.is_initially_collateralized(q_after, after)
            assert m.free_collateral(q_after, after) >= 0
