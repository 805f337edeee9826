"""dYdX funding rate prediction: samples, the zero-padded hourly average, default funding, the tier clamp.

Chain test tables used as expected values (facts, cited by file and case):
``protocol/x/perpetuals/types/liquidity_tier_test.go`` (GetMaintenanceMarginPpm,
GetMaxAbsFundingClampPpm), ``protocol/lib/math_test.go`` (Median, AvgInt32).

What can be compared with recorded indexer payloads: premium samples and the index price are
not in any indexer payload (and the shared data holds no index-price series beside a book), so
a premium cannot be rebuilt from recordings. What the payloads do hold is ``nextFundingRate``,
which the indexer computes from the samples: every recorded value is reproduced exactly (to
the last of its 20 decimals) by :func:`indexer_next_funding_rate` from ``n <= 60`` integer ppm
samples, with one ``n`` per payload (every market gets a sample each minute). From that
``(n, sum)`` the chain's own rate at the tick is predicted, which differs from the indexer's
number by the chain's truncation (< 1 ppm per 8 h) or, where the tier clamp binds, a lot.
"""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpbot.core.margin import (
    SAMPLES_PER_TICK,
    average_premium_ppm,
    clamp_funding_rate_ppm,
    funding_clamp_ppm_from_fractions,
    funding_ppm_8h_from_rate_1h,
    funding_rate_1h_from_ppm,
    indexer_next_funding_rate,
    maintenance_margin_ppm,
    max_abs_funding_clamp_ppm,
    median_ppm,
    predict_funding_rate,
    premium_sample_ppm,
    project_next_funding_rate,
)
from tests.shared_data import absent_reason, shared_data_dir


# chain liquidity_tier_test.go, TestLiquidityTierGetMaintenanceMarginPpm
@pytest.mark.parametrize(
    "imf, frac, expected",
    [
        (150_000, 800_000, 120_000),  # "15% initial margin, 80% maintenance fraction"
        (450_000, 770_000, 346_500),  # "45% initial margin, 77% maintenance fraction"
        (637_239, 289_284, 184_343),  # "63.7239% initial margin, 28.9284% ..." (floored)
        (1_000_000, 1_000_000, 1_000_000),
        (0, 1_000_000, 0),
        (0, 0, 0),
        (1_000_000, 0, 0),
    ],
)
def test_floored_maintenance_margin_ppm_matches_the_chain_table(imf, frac, expected):
    assert maintenance_margin_ppm(imf, frac) == expected


# chain liquidity_tier_test.go, TestLiquidityTierGetMaxAbsFundingClampPpm
@pytest.mark.parametrize(
    "factor, imf, frac, expected",
    [
        (6_000_000, 150_000, 800_000, 180_000),
        (6_000_000, 450_000, 1_000_000, 0),
        (6_000_000, 0, 1_000_000, 0),
        (3_000_000, 1_000_000, 0, 3_000_000),
        (0, 1_000_000, 1_000_000, 0),
        (2**32 - 1, 1_000_000, 0, 2**32 - 1),
        (423_978_721, 745_345, 564_947, 137_481_459),  # uses the FLOORED 421,080 MM ppm
    ],
)
def test_funding_clamp_matches_the_chain_table(factor, imf, frac, expected):
    assert max_abs_funding_clamp_ppm(factor, imf, frac) == expected


def test_clamp_uses_the_floored_maintenance_ppm_not_the_exact_product():
    # 745,345 * 564,947 / 1e6 = 421,080.42...: floored to 421,080; with the exact product the
    # bound would be floor(423.978721 * 324,264.57...) = 137,481,279, not the chain's 137,481,459
    exact_mm = D(745_345) * D(564_947) / D(10**6)
    assert int((D(423_978_721) * (D(745_345) - exact_mm) / D(10**6))) != 137_481_459
    assert max_abs_funding_clamp_ppm(423_978_721, 745_345, 564_947) == 137_481_459


def test_clamp_from_indexer_fractions():
    assert funding_clamp_ppm_from_fractions(D("0.05"), D("0.03")) == 120_000  # BTC 2024: 1.5%/h
    assert funding_clamp_ppm_from_fractions(D("0.02"), D("0.012")) == 48_000  # BTC 2025
    assert funding_clamp_ppm_from_fractions(D("0.2"), D("0.1")) == 600_000
    with pytest.raises(ValueError, match="maintenance_margin_fraction <= initial_margin_fraction"):
        funding_clamp_ppm_from_fractions(D("0.03"), D("0.05"))
    with pytest.raises(ValueError, match="ppm"):
        funding_clamp_ppm_from_fractions(D("0.0500001"), D("0.03"))
    with pytest.raises(TypeError, match="initial_margin_fraction"):
        funding_clamp_ppm_from_fractions(0.05, D("0.03"))


# chain math_test.go, TestMedian (inputs and expected values)
@pytest.mark.parametrize(
    "values, expected",
    [
        ([2, 0, 1, 3, 4], 2),
        ([5, 11, 1, 3, 12, 50], 8),
        ([5, 12, 1, 3, 12, 50], 9),  # 8.5 -> away from zero
        ([6, 11, 1, 3, 12, 50], 9),
        ([-5, -12, -1, -3, -12, -50], -9),  # -8.5 -> away from zero
        ([-6, -11, -1, -3, -12, -50], -9),
        ([6, 12, 1, -12, -50], 1),
        ([-12, 20, 100, 1, 0, -50], 1),  # 0.5 -> 1
        ([-12, 20, 100, -9, 0, -50], -5),  # -4.5 -> -5
        ([-12, 20, 100, -9, 1, -50], -4),
    ],
)
def test_median_matches_the_chain_table(values, expected):
    assert median_ppm(values) == expected


def test_median_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        median_ppm([])


def test_sample_is_the_median_of_votes_zero_padded():
    # 5 non-zero votes out of 20 blocks: padded with 15 zeros -> median 0
    assert premium_sample_ppm([100] * 5, num_votes=20) == 0
    # 11 of 20 blocks voted 100: the median of 11 x 100 and 9 zeros is 100
    assert premium_sample_ppm([100] * 11, num_votes=20) == 100
    # 10 of 20: middle values 0 and 100 -> 50
    assert premium_sample_ppm([100] * 10, num_votes=20) == 50
    # fewer blocks than min_num_votes_per_sample (15): padded to 15 -> 8 of 15 needed
    assert premium_sample_ppm([7] * 8, num_votes=10) == 7
    assert premium_sample_ppm([7] * 7, num_votes=10) == 0
    with pytest.raises(ValueError, match="more votes than vote messages"):
        premium_sample_ppm([1, 2, 3], num_votes=2)


# chain math_test.go, TestAvgInt32 (no padding: the lists are longer than min_num_samples=0)
@pytest.mark.parametrize(
    "nums, expected",
    [
        ([20, 20, 20, 20, 30], 22),
        (list(range(1, 12)), 6),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13], 6),  # 68/11 = 6.18 -> 6
        ([-1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -13], -6),  # toward zero
    ],
)
def test_average_truncates_like_avg_int32(nums, expected):
    assert average_premium_ppm(nums, min_num_samples=0) == expected


def test_average_zero_pads_to_sixty_samples():
    assert SAMPLES_PER_TICK == 60
    assert average_premium_ppm([100] * 30) == 50  # 3000 / 60, the missing half count as zero
    assert average_premium_ppm([-1] * 7) == 0  # -7/60 truncates toward zero
    assert average_premium_ppm([-60] * 61) == -60  # more than 60 samples: no padding
    # num_samples: epochs elapsed (zeros left out of the list still count)
    assert average_premium_ppm([120] * 10, num_samples=80) == 15
    # tail removal (the chain's ratio is 0; the mechanism: 10% -> 2 of 10 cut: 1 low, 1 high)
    assert average_premium_ppm([1000, 1, 2, 3, 4, 5, 6, 7, 8, -1000], min_num_samples=0, tail_removal_ppm=100_000) == 4
    with pytest.raises(ValueError, match="samples but num_samples"):
        average_premium_ppm([1, 2], num_samples=1)


def test_rate_is_premium_plus_default_clamped():
    assert clamp_funding_rate_ppm(50, 100, 120_000) == 150
    assert clamp_funding_rate_ppm(5_000_000, 0, 600_000) == 600_000
    assert clamp_funding_rate_ppm(-5_000_000, 100, 600_000) == -600_000
    with pytest.raises(ValueError, match="max_abs_ppm"):
        clamp_funding_rate_ppm(1, 0, -1)


def test_predict_combines_the_pipeline():
    p = predict_funding_rate([200] * 60, default_funding_ppm=100, initial_margin_ppm=50_000, maintenance_fraction_ppm=600_000)
    assert (p.premium_ppm, p.rate_8h_ppm, p.clamp_ppm, p.clamped) == (200, 300, 120_000, False)
    assert p.rate_1h == D("0.0000375")
    # part of the hour: the rest pads with zeros (what the chain would set if no more premium came)
    half = predict_funding_rate([200] * 30, 100, 50_000, 600_000)
    assert half.rate_8h_ppm == 200 and half.rate_1h == D("0.000025")
    # a thin market at the vote clamp: the rate clamp binds (IMF 20%, MM 10% -> 600,000 ppm)
    wild = predict_funding_rate([6_000_000] * 60, 0, 200_000, 500_000)
    assert wild.clamped and wild.rate_8h_ppm == 600_000 and wild.unclamped_ppm == 6_000_000
    assert wild.rate_1h == D("0.075")


def test_rate_conversions_between_ppm_and_per_hour():
    assert funding_rate_1h_from_ppm(100) == D("0.0000125")
    assert funding_ppm_8h_from_rate_1h(D("0.0000125")) == 100
    assert funding_ppm_8h_from_rate_1h(D("0.00003494207317073171")) == 279
    assert funding_ppm_8h_from_rate_1h(D("-0.0000123")) == -98  # toward zero, not -99
    with pytest.raises(TypeError, match="rate_1h"):
        funding_ppm_8h_from_rate_1h(0.0000125)


@settings(max_examples=300, deadline=None)
@given(ppm=st.integers(-(2**31), 2**31 - 1), extra=st.integers(0, 10**9 - 1))
def test_ppm_conversion_roundtrips_and_truncates_toward_zero(ppm, extra):
    assert funding_ppm_8h_from_rate_1h(funding_rate_1h_from_ppm(ppm)) == ppm
    # a rate between ppm and ppm +- 1 (away from zero) truncates back to ppm
    sign = 1 if ppm >= 0 else -1
    r = (D(ppm) + sign * D(extra).scaleb(-9)) / D(8_000_000)
    assert funding_ppm_8h_from_rate_1h(r) == ppm


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-(2**20), 2**20), min_size=1, max_size=80))
def test_average_is_the_truncated_padded_mean(samples):
    n = max(len(samples), 60)
    a = average_premium_ppm(samples)
    exact = D(sum(samples)) / D(n)
    assert abs(a) <= abs(exact) < abs(a) + 1 and (a == 0 or (a > 0) == (exact > 0))


# -- the indexer's nextFundingRate ----------------------------------------------------


def test_indexer_next_funding_rate_is_the_unpadded_mean_plus_default():
    assert indexer_next_funding_rate([], D(0)) is None
    # 3 samples: (8 + 0 + 1) / 3 ppm per 8 h = 3 ppm -> 3/8e6 per hour, plus the default
    assert indexer_next_funding_rate([8, 0, 1], D("0.0000125")) == D("0.000012875")
    # big.js: 20 decimal places, ties away from zero; 1/(8e6 * 3) = 4.1666...e-8
    assert indexer_next_funding_rate([1, 0, 0], D(0)) == D("0.00000004166666666667")
    assert indexer_next_funding_rate([-1, 0, 0], D(0)) == D("-0.00000004166666666667")
    # unpadded and unclamped, unlike the chain: 10 samples of 6e6 ppm in a 20%/10% tier
    assert indexer_next_funding_rate([6_000_000] * 10, D(0)) == D("0.75")
    assert predict_funding_rate([6_000_000] * 10, 0, 200_000, 500_000).rate_1h == D("0.075")


def test_projecting_the_indexer_prediction_to_the_chain_rate():
    # 41 samples summing 11,461 ppm (default 0): mean 279.53 -> 279 ppm at the tick
    p = project_next_funding_rate(D("0.00003494207317073171"), D(0), D("0.05"), D("0.03"))
    assert (p.premium_ppm, p.rate_8h_ppm, p.clamped, p.rate_1h) == (279, 279, False, D("0.000034875"))
    # with a default of 100 ppm (0.0000125/h) the premium part is what is truncated
    p = project_next_funding_rate(D("0.00004744207317073171"), D("0.0000125"), D("0.05"), D("0.03"))
    assert (p.premium_ppm, p.rate_8h_ppm) == (279, 379)
    # negative means truncate toward zero; a thin market is clamped (IMF 0.2, MMF 0.1: 600,000 ppm)
    assert project_next_funding_rate(D("-0.0000123"), D(0), D("0.05"), D("0.03")).rate_8h_ppm == -98
    wild = project_next_funding_rate(D("-0.9"), D(0), D("0.2"), D("0.1"))
    assert wild.clamped and wild.rate_8h_ppm == -600_000 and wild.rate_1h == D("-0.075")


def implied_samples(rate: D, default_1h: D, max_n: int = SAMPLES_PER_TICK) -> dict[int, int]:
    """Every ``n <= max_n`` with an integer ppm sum ``S`` that the indexer turns into exactly ``rate``."""
    out = {}
    for n in range(1, max_n + 1):
        s = int(((rate - default_1h) * 8_000_000 * n).to_integral_value())
        for cand in (s - 1, s, s + 1):
            if -(2**31) <= cand < 2**31 and indexer_next_funding_rate([cand] + [0] * (n - 1), default_1h) == rate:
                out[n] = cand
                break
    return out


def test_built_in_payload_reconstruction():
    # a payload made here from known samples: 37 minutes into the hour, three markets
    hour = {
        "AAA-USD": ([12, 30, -4] + [0] * 34, D("0.0000125"), D("0.05"), D("0.03")),
        "BBB-USD": ([-250] * 20 + [0] * 17, D(0), D("0.1"), D("0.05")),
        "CCC-USD": ([6_000_000] * 37, D(0), D("0.2"), D("0.1")),
    }
    payload = {t: str(indexer_next_funding_rate(s, d)) for t, (s, d, _, _) in hour.items()}
    common = None
    for t, rate in payload.items():
        samples, default, imf, mmf = hour[t]
        found = implied_samples(D(rate), default)
        assert found[37] == sum(samples)  # the sample count and sum come back from the string
        common = set(found) if common is None else common & set(found)
        default_ppm = funding_ppm_8h_from_rate_1h(default)
        # the chain at the tick if no more premium came: the 23 missing samples are zeros
        p = predict_funding_rate(samples, default_ppm, *_tier(imf, mmf))
        assert p.rate_8h_ppm == clamp_funding_rate_ppm(int(D(sum(samples)) / 60), default_ppm, p.clamp_ppm)
    assert 37 in common
    assert D(payload["CCC-USD"]) == D("0.75")  # the indexer shows 75%/h; the chain clamps at 600,000 ppm
    assert predict_funding_rate(hour["CCC-USD"][0], 0, *_tier(D("0.2"), D("0.1"))).rate_1h == D("0.075")


def _tier(imf: D, mmf: D) -> tuple[int, int]:
    """(initial_margin_ppm, maintenance_fraction_ppm) for indexer fractions (fraction = MMF / IMF)."""
    imf_ppm = int(imf * 10**6)
    frac = mmf / imf * 10**6
    assert frac == int(frac)
    return imf_ppm, int(frac)


def _markets_with_next_funding(obj):
    if isinstance(obj, dict):
        if "nextFundingRate" in obj and "ticker" in obj:
            yield obj
        for v in obj.values():
            yield from _markets_with_next_funding(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _markets_with_next_funding(v)


# recorded perpetualMarkets / v4_markets payloads (read in place; LGPL/AGPL, never copied)
PAYLOADS = [
    "dydx_v4/nautilus_py/http/list_perpetual_markets.json",  # mainnet 2024, 125 markets
    "dydx_v4/nautilus_py/websocket/v4_markets_subscribed.json",  # mainnet, 98 markets
    "dydx_v4/nautilus_rust/http_get_perpetual_markets.json",  # mainnet Dec 2025, defaultFundingRate1H present
    "dydx_v4/abacus_extracted/MarketsChannelMock__subscribed_2.json",  # testnet capture, 67 markets
    "dydx_v4/nautilus_py/http/list_perpetual_markets_empty_oracle_price.json",
]


def test_recorded_next_funding_rates_are_the_indexer_formula_and_predict_the_chain_rate():
    root = shared_data_dir()
    if root is None:
        pytest.skip(absent_reason())
    checked = clamped = 0
    worst_gap = D(0)
    for rel in PAYLOADS:
        path = Path(root) / rel
        markets = [m for m in _markets_with_next_funding(json.loads(path.read_text())) if D(m["nextFundingRate"]) != 0]
        assert markets, rel
        common: set[int] | None = None
        for m in markets:
            rate = D(m["nextFundingRate"])
            # payloads before late 2024 have no defaultFundingRate1H; taken as 0 there (the sample
            # count n found below is the same for any default that is a whole 8-hour ppm)
            default = D(m.get("defaultFundingRate1H") or 0)
            found = implied_samples(rate, default)
            assert found, f"{rel} {m['ticker']}: {rate} is not a mean of <= 60 integer ppm samples"
            common = set(found) if common is None else common & set(found)
            n = max(found)
            total = found[n]
            # the chain's rate at the tick if the rest of the hour is like its first n minutes
            clamp = funding_clamp_ppm_from_fractions(D(m["initialMarginFraction"]), D(m["maintenanceMarginFraction"]))
            chain = clamp_funding_rate_ppm(int(D(total) / n), funding_ppm_8h_from_rate_1h(default), clamp)
            chain_1h = funding_rate_1h_from_ppm(chain)
            projected = project_next_funding_rate(rate, default, D(m["initialMarginFraction"]), D(m["maintenanceMarginFraction"]))
            assert (projected.rate_8h_ppm, projected.rate_1h) == (chain, chain_1h)
            if abs(total / D(n)) + abs(funding_ppm_8h_from_rate_1h(default)) > clamp:
                clamped += 1
                assert abs(chain) == clamp and abs(rate) > abs(chain_1h)
            else:
                gap = abs(rate - chain_1h)
                assert gap < D(1) / 8_000_000  # the chain's truncation: under 1 ppm per 8 h
                worst_gap = max(worst_gap, gap)
            # if no more premium came this hour, the zero padding would set (toward zero):
            lower = predict_funding_rate([total], funding_ppm_8h_from_rate_1h(default), *_tier_of(m), num_samples=n)
            assert abs(lower.premium_ppm) <= abs(int(D(total) / n))
            checked += 1
        # one sample per market per minute: a single n explains the whole payload
        assert common, f"{rel}: no common sample count"
    assert checked >= 80
    assert clamped >= 1  # EGO-USD (2024): indexer 0.73/h, the chain clamps to 0.075/h


def _tier_of(m: dict) -> tuple[int, int]:
    imf, mmf = D(m["initialMarginFraction"]), D(m["maintenanceMarginFraction"])
    imf_ppm = int(imf * 10**6)
    # any fraction with floor(IMF_ppm * fraction / 1e6) == MMF_ppm gives the chain's clamp
    frac = -(-int(mmf * 10**6) * 10**6 // imf_ppm)
    assert maintenance_margin_ppm(imf_ppm, frac) == int(mmf * 10**6)
    return imf_ppm, frac
