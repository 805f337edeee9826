"""Premium votes (impact prices vs the index) and QuoteToBaseQuantums, as the dYdX v4 chain computes them.

Expected values from the chain's own test tables are cited by file and case name (facts, not
code); the rest are worked by hand in the comments.
"""

from __future__ import annotations

from decimal import Decimal as D
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpbot.core.margin import (
    base_to_quote_quantums,
    impact_price_subticks,
    index_price_subticks,
    premium_ppm_from_impact,
    premium_vote_ppm,
    quote_to_base_quantums,
)

# BTC-USD-like clob pair: AR -10, QCE -9, so 1 USD = 1e5 subticks and 1 BTC = 1e10 quantums
AR, QCE = -10, -9
USD = 10**5
BTC = 10**10


# chain protocol/lib/quantums_test.go, TestQuoteToBaseQuantums (case name -> args, expected)
@pytest.mark.parametrize(
    "qq, ar, pv, pe, expected",
    [
        (10, -6, 1, 1, 1),  # "Converts from base to quote quantums"
        (-1000, -6, 1, 1, -100),  # "Correctly converts negative value"
        (350, -6, 7, -5, 5_000_000),  # "priceExponent is negative"
        (35_000_000, -6, 7, 0, 5_000_000),  # "priceExponent is zero"
        (29_001_000_000, -10, 2_900_100_000, -5, 10_000_000_000),  # "realistic values: 1 BTC at $29001"
        (728_592_123_000, -10, 2_900_100_000, -5, 251_230_000_000),  # "... 25.123 BTC at $29001"
        (350_000, -8, 7, 0, 5_000_000),  # "baseCurrencyAtomicResolution is greater than 10^6"
        (35_000_000_000, -4, 7, 1, 5_000_000),  # "... is less than 10^6"
        (99, -6, 1, 1, 9),  # "Calculation rounds down"
        (-99, -6, 1, 1, -9),  # "Negative calculation rounds up"
        (2**64 - 1, -7, 1, 0, 184467440737095516150),  # "Calculation overflows"
        (-(2**64 - 1), -7, 1, 0, -184467440737095516150),  # "Calculation underflows"
    ],
)
def test_quote_to_base_quantums_matches_the_chain_table(qq, ar, pv, pe, expected):
    assert quote_to_base_quantums(qq, ar, pv, pe) == expected


def test_quote_to_base_quantums_refuses_floats_and_a_zero_price():
    with pytest.raises(TypeError, match="quote_quantums"):
        quote_to_base_quantums(1.5, -6, 1, 1)
    with pytest.raises(ValueError, match="price_value must be > 0"):
        quote_to_base_quantums(10, -6, 0, 1)


@settings(max_examples=300, deadline=None)
@given(
    qq=st.integers(-(10**15), 10**15),
    ar=st.integers(-12, 0),
    pv=st.integers(1, 10**12),
    pe=st.integers(-12, 4),
)
def test_quote_to_base_rounds_toward_zero(qq, ar, pv, pe):
    """Truncation toward zero: |result| is the largest whole number of base quantums whose
    exact value does not exceed |qq|, and the sign follows qq (a negative amount rounds up)."""
    b = quote_to_base_quantums(qq, ar, pv, pe)
    exact = Fraction(qq) / (pv * Fraction(10) ** (pe + ar + 6))
    assert abs(b) <= abs(exact) < abs(b) + 1
    assert b == 0 or (b > 0) == (qq > 0)
    assert quote_to_base_quantums(-qq, ar, pv, pe) == -b  # symmetric, unlike floor division
    # the inverse of BaseToQuoteQuantums never gives back more than was put in
    assert abs(base_to_quote_quantums(b, ar, pv, pe)) <= abs(qq)


def test_index_price_in_subticks_is_exact():
    assert index_price_subticks(D("65000"), AR, QCE) == 65_000 * USD
    assert index_price_subticks(D("0.1325011967"), -4, -9) == Fraction(1325011967, 10**10) * 10 ** (-4 + 9 + 6)
    with pytest.raises(ValueError, match="index_price must be > 0"):
        index_price_subticks(D(0), AR, QCE)


def test_impact_price_walks_levels_and_rounds_the_base_up():
    # bids 101 x 10 BTC: 500 USD takes 500/1010 of the level = 4.95049504950...e10 quantums,
    # rounded UP to 49,504,950,496 (BigRatRound(.., true)); average = 500e6 * 1e9 / that
    bids = [(101 * USD, 10 * BTC)]
    p = impact_price_subticks(bids, 500 * 10**6, QCE)
    assert p == Fraction(500 * 10**6 * 10**9, 49_504_950_496)
    assert p < 101 * USD  # the round-up lowers the impact bid below the level's price
    # two levels: 1000 USD at 100 (10 BTC) then 1000 USD from the 99 level
    two = [(100 * USD, 10 * BTC), (99 * USD, 100 * BTC)]
    p2 = impact_price_subticks(two, 2000 * 10**6, QCE)
    base = 10 * BTC + -(-Fraction(1000, 9900) * 100 * BTC // 1)
    assert p2 == Fraction(2000 * 10**6 * 10**9, base)
    assert 99 * USD < p2 < 100 * USD
    # not enough liquidity -> None (the chain's hasEnoughLiquidity = false); empty -> None
    assert impact_price_subticks(two, 20_000 * 10**6, QCE) is None
    assert impact_price_subticks([], 1, QCE) is None
    # impact notional 0 -> the best price
    assert impact_price_subticks(two, 0, QCE) == 100 * USD


def test_premium_vote_cases_of_get_price_premium():
    notional, cap = 500 * 10**6, 10**6
    bids = [(101 * USD, 10 * BTC)]
    asks = [(102 * USD, 10 * BTC)]
    # index below the best bid: impact bid just under 101 -> 9,999 ppm (rounded toward zero)
    assert premium_vote_ppm(bids, asks, D(100), AR, QCE, notional, cap) == 9_999
    # index above the best ask: impact ask just above 102 (base rounded up -> price down: 101.99...)
    v = premium_vote_ppm(bids, asks, D(103), AR, QCE, notional, cap)
    assert v == int((impact_price_subticks(asks, notional, QCE) / (103 * USD) - 1) * 10**6)  # toward zero
    assert -9_709 <= v < 0
    # index inside the spread: 0; empty book: 0
    assert premium_vote_ppm(bids, asks, D("101.5"), AR, QCE, notional, cap) == 0
    assert premium_vote_ppm([], [], D(100), AR, QCE, notional, cap) == 0
    # index between the impact bid and the best bid: 0 (Impact Bid <= Index < Best Bid)
    deep = [(101 * USD, BTC // 100), (90 * USD, 100 * BTC)]
    assert premium_vote_ppm(deep, [], D(100), AR, QCE, notional, cap) == 0
    # the vote clamp (premium_vote_clamp_factor * (IMF - MM))
    assert premium_vote_ppm(bids, asks, D(100), AR, QCE, notional, 5_000) == 5_000
    assert premium_vote_ppm(bids, asks, D(110), AR, QCE, notional, 5_000) == -5_000
    # a side that cannot absorb the notional: 0
    assert premium_vote_ppm(bids, asks, D(100), AR, QCE, 10**12, cap) == 0


def test_premium_vote_refuses_a_crossed_book_and_bad_levels():
    with pytest.raises(ValueError, match="crossed book"):
        premium_vote_ppm([(102 * USD, BTC)], [(101 * USD, BTC)], D(100), AR, QCE, 10**6, 10**6)
    with pytest.raises(ValueError, match=r"bids\[0\]"):
        premium_vote_ppm([(0, BTC)], [], D(100), AR, QCE, 10**6, 10**6)
    with pytest.raises(ValueError, match="max_abs_premium_ppm"):
        premium_ppm_from_impact(Fraction(1), Fraction(2), True, 2**31)


@settings(max_examples=200, deadline=None)
@given(
    index=st.integers(50, 150),
    bid=st.integers(60, 140),
    spread=st.integers(1, 10),
    size=st.integers(1, 10**12),
    notional=st.integers(1, 10**10),
)
def test_premium_rounds_toward_zero_and_has_the_right_sign(index, bid, spread, size, notional):
    bids = [(bid * USD, size)]
    asks = [((bid + spread) * USD, size)]
    v = premium_vote_ppm(bids, asks, D(index), AR, QCE, notional, 10**7)
    idx = Fraction(index * USD)
    if index < bid:
        impact = impact_price_subticks(bids, notional, QCE)
        exact = (impact / idx - 1) * 10**6 if impact is not None and impact > idx else Fraction(0)
        assert v >= 0
    elif index > bid + spread:
        impact = impact_price_subticks(asks, notional, QCE)
        exact = (impact / idx - 1) * 10**6 if impact is not None and impact < idx else Fraction(0)
        assert v <= 0
    else:
        exact = Fraction(0)
        assert v == 0
    assert abs(v) <= abs(exact) < abs(v) + 1  # toward zero, never past the exact premium
