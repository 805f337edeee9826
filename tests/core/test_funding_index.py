"""Funding settlement through the chain's funding index: the index delta and its truncations.

Expected values from chain ``protocol/x/perpetuals/funding/funding_test.go``
(``TestGetFundingIndexDelta``, cited by case name) and the issue's check (issue 13.4): long
1 BTC at 65,000 with 100 ppm per 8 h pays 0.81 USDC on the chain, 0.8125 by ``-size*price*rate``.
"""

from __future__ import annotations

from decimal import Decimal as D
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpbot.core.margin import (
    funding_index_delta,
    funding_index_delta_at_price,
    funding_payment,
    funding_rate_1h_from_ppm,
    settle_funding_ppm,
    settle_funding_quote_quantums,
)


# chain funding_test.go, TestGetFundingIndexDelta: (AR, price value, exponent, rate ppm, seconds) -> delta
@pytest.mark.parametrize(
    "ar, pv, pe, ppm, secs, expected",
    [
        (-12, 1_000, 0, 1_001_999, 8 * 3600, 1_001),  # "Positive Funding Rate (rounds towards zero)"
        (-12, 1_000, 0, -1_001_999, 8 * 3600, -1_001),  # "Negative Funding Rate (rounds towards zero)"
        (-4, 1_000, 2, -1_001_999, 4 * 3600, -5_009_995_000_000),  # "Varied parameters (1)"
        (0, 1_000, -6, -1_001_999, 3600, -125_249_875),  # "Varied parameters (2)"
    ],
)
def test_index_delta_matches_the_chain_table(ar, pv, pe, ppm, secs, expected):
    assert funding_index_delta(ppm, secs, ar, pv, pe) == expected
    price = D(pv).scaleb(pe)
    assert funding_index_delta_at_price(ppm, secs, ar, price) == expected


def test_one_btc_at_65000_and_100_ppm_pays_081_not_08125():
    # BTC-USD: AR -10; oracle 65,000 as the chain stores it (6,500,000,000 x 1e-5)
    delta = funding_index_delta(100, 3600, -10, 6_500_000_000, -5)
    assert delta == funding_index_delta_at_price(100, 3600, -10, D("65000")) == 81  # trunc(81.25)
    one_btc = 10**10
    assert settle_funding_ppm(one_btc, delta) == -810_000_000_000
    assert settle_funding_quote_quantums([(one_btc, delta)]) == -810_000  # -0.81 USDC
    rate_1h = funding_rate_1h_from_ppm(100)
    assert funding_payment(D(1), D(65000), rate_1h) == D("-0.8125")  # the old formula
    # the short receives the same 0.81 (the index is truncated once, for everybody)
    assert settle_funding_quote_quantums([(-one_btc, delta)]) == 810_000


def test_settlement_floors_the_subaccount_sum_once():
    # two positions of 0.6 qq each: floored separately 0 + 0 = 0... here received: +0.6 and +0.6
    # -> floor(1.2) = 1 quote quantum for the subaccount
    assert settle_funding_quote_quantums([(-600_000, 1), (-600_000, 1)]) == 1
    # paying: -0.6 - 0.6 = -1.2 -> floor to -2 (Euclidean division rounds toward -infinity)
    assert settle_funding_quote_quantums([(600_000, 1), (600_000, 1)]) == -2


def test_index_delta_refuses_floats_and_negative_time():
    with pytest.raises(TypeError, match="funding_rate_8h_ppm"):
        funding_index_delta_at_price(100.0, 3600, -10, D(65000))
    with pytest.raises(TypeError, match="oracle_price"):
        funding_index_delta_at_price(100, 3600, -10, 65000.0)
    with pytest.raises(ValueError, match="seconds"):
        funding_index_delta_at_price(100, -1, -10, D(65000))


@settings(max_examples=300, deadline=None)
@given(
    ppm=st.integers(-(10**6), 10**6),
    price=st.decimals(min_value=D("0.00001"), max_value=D("200000"), places=5),
    ar=st.integers(-12, -4),
)
def test_index_delta_truncates_toward_zero(ppm, price, ar):
    d = funding_index_delta_at_price(ppm, 3600, ar, price)
    exact = Fraction(ppm) * Fraction(price) * Fraction(10) ** (ar + 6) / 8
    assert abs(d) <= abs(exact) < abs(d) + 1
    assert d == 0 or (d > 0) == (ppm > 0)
    # the same for any representation of the price (value x 10^exponent)
    n, e = int(price.scaleb(5)), -5
    assert d == funding_index_delta(ppm, 3600, ar, n, e)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(-(10**12), 10**12), st.integers(-(10**6), 10**6)), min_size=1, max_size=5))
def test_settlement_rounds_toward_minus_infinity(positions):
    """The subaccount never receives more (or pays less) than the exact settlement."""
    got = settle_funding_quote_quantums(positions)
    exact = Fraction(sum(settle_funding_ppm(q, d) for q, d in positions), 10**6)
    assert got <= exact < got + 1
