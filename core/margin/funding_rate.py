"""dYdX v4 funding rate prediction, computed as the chain computes it.

The chain's pipeline (chain ``protocol/x/perpetuals/keeper/perpetual.go``):

1. every block: one premium vote per market (:mod:`perpbot.core.margin.funding_premium`);
   only non-zero votes are stored, and the number of vote messages is counted;
2. every ``funding-sample`` epoch (60 s): sample = median of the votes zero-padded to
   ``max(votes cast, min_num_votes_per_sample)`` (``processPremiumVotesIntoSamples``,
   :func:`premium_sample_ppm`);
3. every ``funding-tick`` epoch (3600 s): premium = mean of the samples zero-padded to
   ``max(samples taken, ceil(3600 / 60) = 60)``, truncated toward zero; rate = premium +
   the perpetual's ``default_funding_ppm``, clamped to ``+-funding_rate_clamp_factor *
   (IMF - floored MM ppm)`` (``MaybeProcessNewFundingTickEpoch``, :func:`predict_funding_rate`);
4. the funding index moves by :func:`perpbot.core.margin.funding_index_delta` of that 8-hour
   ppm rate over 3600 s, i.e. one eighth of it.

All values are ints in ppm of an 8-hour rate, exactly as the chain stores them; a Decimal
per-hour fraction appears only at the edge (:func:`funding_rate_1h_from_ppm`).

The indexer's ``nextFundingRate`` is a different number (:func:`indexer_next_funding_rate`):
the plain mean of the samples seen so far this hour (each as a 1-hour rate), plus
``defaultFundingRate1H``, neither zero-padded nor clamped (indexer
``packages/redis/src/caches/next-funding-cache.ts``, ``services/ender/src/handlers/funding-handler.ts``).

Imports only :mod:`perpbot.core.margin._exact`, :mod:`perpbot.core.margin.funding_premium`
and the standard library.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

import attrs

from perpbot.core.margin._exact import _EXACT, ONE_MILLION, _fraction_to_ppm, _int, _num, _trunc_div
from perpbot.core.margin.funding_premium import INT32_MAX

__all__ = [
    "DEFAULT_FUNDING_RATE_CLAMP_FACTOR_PPM",
    "DEFAULT_PREMIUM_VOTE_CLAMP_FACTOR_PPM",
    "DEFAULT_MIN_NUM_VOTES_PER_SAMPLE",
    "SAMPLES_PER_TICK",
    "maintenance_margin_ppm",
    "max_abs_funding_clamp_ppm",
    "funding_clamp_ppm_from_fractions",
    "median_ppm",
    "premium_sample_ppm",
    "average_premium_ppm",
    "clamp_funding_rate_ppm",
    "FundingPrediction",
    "predict_funding_rate",
    "funding_rate_1h_from_ppm",
    "funding_ppm_8h_from_rate_1h",
    "indexer_next_funding_rate",
    "project_next_funding_rate",
]

#: ``funding_rate_clamp_factor_ppm`` of chain ``protocol/testing/genesis.sh`` and
#: ``protocol/testing/mainnet/genesis.json`` (600%; governance may change it)
DEFAULT_FUNDING_RATE_CLAMP_FACTOR_PPM = 6_000_000
#: ``premium_vote_clamp_factor_ppm`` of chain ``protocol/testing/genesis.sh`` (6000%)
DEFAULT_PREMIUM_VOTE_CLAMP_FACTOR_PPM = 60_000_000
#: ``min_num_votes_per_sample`` of chain ``protocol/testing/genesis.sh``
DEFAULT_MIN_NUM_VOTES_PER_SAMPLE = 15
#: ``ceil(funding-tick duration / funding-sample duration)`` = ceil(3600 / 60): the minimum
#: number of samples a tick averages over (chain ``MaybeProcessNewFundingTickEpoch``;
#: epoch durations ``funding-sample`` 60 s and ``funding-tick`` 3600 s in chain
#: ``protocol/testing/mainnet/genesis.json``)
SAMPLES_PER_TICK = 60



def _ppm_range(name: str, value: int, lo: int = 0, hi: int = 2**32 - 1) -> int:
    v = _int(name, value)
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


def maintenance_margin_ppm(initial_margin_ppm: int, maintenance_fraction_ppm: int) -> int:
    """The liquidity tier's maintenance margin, ppm: ``floor(IMF_ppm * fraction_ppm / 1e6)``.

    This floored value is what the funding clamp uses; margin requirements themselves round
    the other way (see :func:`perpbot.core.margin.maintenance_margin_requirement`).

    :param initial_margin_ppm: int in [0, 1e6], the tier's ``initial_margin_ppm``.
    :param maintenance_fraction_ppm: int in [0, 1e6], ``maintenance_fraction_ppm``.
    :returns: int ppm.
    :raises TypeError: for non-ints.
    :raises ValueError: for values outside [0, 1e6].

    Example (chain test table): 637,239 and 289,284 -> 184,343.
    Source: chain ``protocol/x/perpetuals/types/liquidity_tier.go`` (``GetMaintenanceMarginPpm``,
    ``lib.BigIntMulPpm`` rounds toward -infinity).
    """
    imf = _ppm_range("initial_margin_ppm", initial_margin_ppm, 0, ONE_MILLION)
    frac = _ppm_range("maintenance_fraction_ppm", maintenance_fraction_ppm, 0, ONE_MILLION)
    return imf * frac // ONE_MILLION


def max_abs_funding_clamp_ppm(clamp_factor_ppm: int, initial_margin_ppm: int, maintenance_fraction_ppm: int) -> int:
    """The bound ``|R| <= clamp_factor * (IMF - MM)`` in ppm, floored.

    ``floor(clamp_factor_ppm * (initial_margin_ppm - maintenance_margin_ppm) / 1e6)`` with the
    floored :func:`maintenance_margin_ppm`. Used with ``funding_rate_clamp_factor_ppm`` for the
    8-hour rate and with ``premium_vote_clamp_factor_ppm`` for premium votes.

    :param clamp_factor_ppm: int in [0, 2^32-1].
    :param initial_margin_ppm: int in [0, 1e6].
    :param maintenance_fraction_ppm: int in [0, 1e6].
    :returns: int >= 0, ppm of an 8-hour rate.
    :raises TypeError: for non-ints.
    :raises ValueError: for out-of-range values.

    Example (chain test table): 6,000,000 x (150,000 IMF, 800,000 fraction) -> 180,000 ppm;
    423,978,721 x (745,345, 564,947) -> 137,481,459.
    Source: chain ``protocol/x/perpetuals/types/liquidity_tier.go`` (``GetMaxAbsFundingClampPpm``).
    """
    factor = _ppm_range("clamp_factor_ppm", clamp_factor_ppm)
    imf = _ppm_range("initial_margin_ppm", initial_margin_ppm, 0, ONE_MILLION)
    mm = maintenance_margin_ppm(imf, maintenance_fraction_ppm)
    return factor * (imf - mm) // ONE_MILLION


def funding_clamp_ppm_from_fractions(
    initial_margin_fraction: Decimal,
    maintenance_margin_fraction: Decimal,
    clamp_factor_ppm: int = DEFAULT_FUNDING_RATE_CLAMP_FACTOR_PPM,
) -> int:
    """:func:`max_abs_funding_clamp_ppm` from the indexer's ``initialMarginFraction`` and ``maintenanceMarginFraction``.

    The indexer's MMF is the tier's ``IMF_ppm * fraction_ppm / 1e6`` (indexer
    ``packages/postgres/src/db/helpers.ts`` ``getMaintenanceMarginPpm``); for the tiers in use it
    is a whole ppm, equal to the chain's floored value, so the clamp is
    ``floor(clamp_factor * (IMF_ppm - MMF_ppm) / 1e6)``.

    :param initial_margin_fraction: Decimal, e.g. 0.05 (a whole number of ppm).
    :param maintenance_margin_fraction: Decimal, e.g. 0.03 (<= IMF, a whole number of ppm).
    :param clamp_factor_ppm: int, ``funding_rate_clamp_factor_ppm`` (default 600%).
    :returns: int ppm of an 8-hour rate.
    :raises TypeError: for floats.
    :raises ValueError: for fractions outside [0, 1], finer than 1 ppm, or MMF > IMF.

    Example: IMF 0.05, MMF 0.03 -> 6 x 0.02 = 120,000 ppm (15,000 ppm = 1.5% per hour).
    """
    imf = _fraction_to_ppm("initial_margin_fraction", _num("initial_margin_fraction", initial_margin_fraction))
    mmf = _fraction_to_ppm("maintenance_margin_fraction", _num("maintenance_margin_fraction", maintenance_margin_fraction))
    if not 0 <= mmf <= imf <= ONE_MILLION:
        raise ValueError(
            f"need 0 <= maintenance_margin_fraction <= initial_margin_fraction <= 1, got "
            f"{maintenance_margin_fraction} and {initial_margin_fraction}"
        )
    factor = _ppm_range("clamp_factor_ppm", clamp_factor_ppm)
    return factor * (imf - mmf) // ONE_MILLION


def _int32_list(name: str, values: Sequence[int]) -> list[int]:
    out = []
    for i, v in enumerate(values):
        v = _int(f"{name}[{i}]", v)
        if not -INT32_MAX - 1 <= v <= INT32_MAX:
            raise ValueError(f"{name}[{i}] must fit in int32, got {v}")
        out.append(v)
    return out


def median_ppm(values: Sequence[int]) -> int:
    """The chain's median: the middle value, or for an even count the mean of the two middle
    values rounded *away from zero* (``lib.Median``).

    :param values: non-empty sequence of int32 ppm values.
    :returns: int ppm.
    :raises TypeError: for non-ints.
    :raises ValueError: for an empty sequence or a value outside int32.

    Examples: [1, 2] -> 2; [-2, -1] -> -2; [-3, 0] -> -2; [1, 4] -> 3.
    Source: chain ``protocol/lib/math.go`` (``Median``, ``MustGetMedian``).
    """
    xs = sorted(_int32_list("values", values))
    if not xs:
        raise ValueError("median of an empty list (the chain panics: MustGetMedian)")
    mid = len(xs) // 2
    if len(xs) % 2:
        return xs[mid]
    s = xs[mid - 1] + xs[mid]
    half = -(-abs(s) // 2)  # |s| / 2 rounded up, i.e. away from zero
    return half if s >= 0 else -half


def premium_sample_ppm(
    votes: Sequence[int], num_votes: int, min_num_votes: int = DEFAULT_MIN_NUM_VOTES_PER_SAMPLE
) -> int:
    """One funding sample, ppm: the median of a market's votes, zero-padded.

    The chain stores only non-zero votes per market but counts every vote message
    (``NumPremiums``); the list is padded with zeros to ``max(num_votes, min_num_votes)``.

    :param votes: the market's premium votes in the sample epoch (zeros may be included or left
        out; they are padding either way).
    :param num_votes: int >= len(votes), vote messages (blocks) in the epoch.
    :param min_num_votes: int >= 1, ``min_num_votes_per_sample`` (15 in genesis).
    :returns: int ppm (an 8-hour rate component).
    :raises ValueError: when ``len(votes) > num_votes`` (the chain panics) or nothing to take
        a median of.

    Example: 5 votes of +100 ppm in an epoch of 20 blocks -> median of 5 x 100 and 15 zeros = 0.
    Source: chain ``protocol/x/perpetuals/keeper/perpetual.go`` (``processStoredPremiums``,
    ``processPremiumVotesIntoSamples``).
    """
    xs = _int32_list("votes", votes)
    n = _int("num_votes", num_votes)
    m = _int("min_num_votes", min_num_votes)
    if len(xs) > n:
        raise ValueError(f"{len(xs)} votes but num_votes {n}: a market cannot have more votes than vote messages")
    length = max(n, m)
    if length <= 0:
        raise ValueError("no votes and min_num_votes 0: nothing to take a median of")
    return median_ppm(xs + [0] * (length - len(xs)))


def average_premium_ppm(
    samples: Sequence[int],
    num_samples: int | None = None,
    min_num_samples: int = SAMPLES_PER_TICK,
    tail_removal_ppm: int = 0,
) -> int:
    """The hour's premium, ppm: mean of the samples zero-padded to the expected count,
    truncated toward zero.

    Padding: ``max(num_samples, min_num_samples)`` values (missing samples, e.g. after a chain
    halt, count as zero). Then ``tail_removal_ppm`` of the padded list is cut from each end
    after sorting (the chain's ``RemovedTailSampleRatioPpm`` is 0), and the rest averaged
    with Go's truncating division (``lib.AvgInt32``).

    :param samples: the market's samples this hour (zeros may be left out).
    :param num_samples: int, sample epochs elapsed (``NumPremiums``); default ``len(samples)``.
    :param min_num_samples: int, 60 for 1-minute samples and hourly ticks.
    :param tail_removal_ppm: int, fraction of samples cut from each tail (chain constant 0).
    :returns: int ppm (an 8-hour rate component).
    :raises ValueError: when there are more samples than ``num_samples`` or nothing to average.

    Example: 30 samples of +100 ppm in a full hour -> 3000 / 60 = 50 ppm; 7 of -1 -> 0.
    Source: chain ``protocol/x/perpetuals/keeper/perpetual.go`` (``processStoredPremiums``,
    ``GetRemoveSampleTailsFunc``, ``MaybeProcessNewFundingTickEpoch``), ``protocol/lib/math.go``
    (``AvgInt32``, ``Int64MulPpm``), ``protocol/x/perpetuals/types/constants.go``.
    """
    xs = _int32_list("samples", samples)
    n = len(xs) if num_samples is None else _int("num_samples", num_samples)
    if len(xs) > n:
        raise ValueError(f"{len(xs)} samples but num_samples {n}")
    length = max(n, _int("min_num_samples", min_num_samples))
    if length <= 0:
        raise ValueError("no samples and min_num_samples 0: nothing to average")
    padded = xs + [0] * (length - len(xs))
    tail = _ppm_range("tail_removal_ppm", tail_removal_ppm, 0, ONE_MILLION // 2)
    total_removal = length * tail * 2 // ONE_MILLION
    if 0 < total_removal < length:
        bottom = total_removal // 2
        padded = sorted(padded)[bottom : length - (total_removal - bottom)]
    return _trunc_div(sum(padded), len(padded))


def clamp_funding_rate_ppm(premium_ppm: int, default_funding_ppm: int, max_abs_ppm: int) -> int:
    """The tick's 8-hour funding rate, ppm: ``clamp(premium + default_funding, -bound, +bound)``.

    :param premium_ppm: int, :func:`average_premium_ppm`.
    :param default_funding_ppm: int, the perpetual's ``default_funding_ppm`` (8-hour ppm; the
        indexer shows it as ``defaultFundingRate1H = ppm / 8e6``).
    :param max_abs_ppm: int >= 0, :func:`max_abs_funding_clamp_ppm`.
    :returns: int ppm of an 8-hour rate.
    :raises ValueError: for a negative bound or a result above int32 (the chain panics:
        ``ErrFundingRateInt32Overflow``).

    Source: chain ``protocol/x/perpetuals/keeper/perpetual.go`` (``MaybeProcessNewFundingTickEpoch``,
    ``lib.BigIntClamp``).
    """
    p = _int("premium_ppm", premium_ppm)
    d = _int("default_funding_ppm", default_funding_ppm)
    bound = _int("max_abs_ppm", max_abs_ppm)
    if bound < 0:
        raise ValueError(f"max_abs_ppm must be >= 0, got {bound}")
    r = max(-bound, min(bound, p + d))
    if r > INT32_MAX:
        raise ValueError(f"funding rate {r} ppm overflows int32")
    return r


def funding_rate_1h_from_ppm(rate_8h_ppm: int) -> Decimal:
    """Per-hour fraction of an 8-hour ppm rate: ``ppm / 1e6 / 8`` (exact; the indexer's ``rate``).

    :param rate_8h_ppm: int ppm.
    :returns: Decimal fraction per hour.
    :raises TypeError: for non-ints.

    Example: 100 ppm -> 0.0000125. Source: indexer ``packages/postgres/src/lib/protocol-translations.ts``
    (``funding8HourValuePpmTo1HourRate``).
    """
    return _EXACT.divide(Decimal(_int("rate_8h_ppm", rate_8h_ppm)), Decimal(8 * ONE_MILLION))


def funding_ppm_8h_from_rate_1h(rate_1h: Decimal) -> int:
    """The chain's integer 8-hour ppm for a per-hour fraction, truncated toward zero.

    Exact for every rate the chain produced (``rate_1h * 8e6`` is a whole number). A
    prediction or another venue's rate is truncated toward zero, the direction the chain
    rounds its averaged premium (``lib.AvgInt32``).

    :param rate_1h: Decimal fraction per hour.
    :returns: int ppm of an 8-hour rate.
    :raises TypeError: for floats.

    Example: 0.0000125 -> 100; the running prediction 0.00003494207317073171 -> 279.
    """
    r = _num("rate_1h", rate_1h)
    n, d = _EXACT.multiply(r.scaleb(6, _EXACT), Decimal(8)).as_integer_ratio()
    return _trunc_div(n, d)


@attrs.frozen
class FundingPrediction:
    """The rate the chain would set at the funding tick.

    :param premium_ppm: int, the zero-padded, truncated mean of the samples.
    :param unclamped_ppm: int, ``premium_ppm + default_funding_ppm``.
    :param rate_8h_ppm: int, after the clamp: what the funding index moves by (over 8 h).
    :param clamp_ppm: int, the tier's bound on ``|rate_8h_ppm|``.
    :param clamped: bool, True when the clamp changed the rate.
    :param rate_1h: Decimal, ``rate_8h_ppm / 8e6`` per hour (what the indexer will report as
        the settled ``rate``).
    """

    premium_ppm: int
    unclamped_ppm: int
    rate_8h_ppm: int
    clamp_ppm: int
    clamped: bool
    rate_1h: Decimal


def predict_funding_rate(
    samples: Sequence[int],
    default_funding_ppm: int,
    initial_margin_ppm: int,
    maintenance_fraction_ppm: int,
    num_samples: int | None = None,
    min_num_samples: int = SAMPLES_PER_TICK,
    funding_rate_clamp_factor_ppm: int = DEFAULT_FUNDING_RATE_CLAMP_FACTOR_PPM,
) -> FundingPrediction:
    """The funding rate the chain sets at the next tick from this hour's samples.

    With fewer than 60 samples so far, the missing ones count as zero (the chain pads what it
    has at the tick); pass the hour's full list for the actual tick.

    :param samples: int ppm samples (see :func:`premium_sample_ppm`).
    :param default_funding_ppm: int, the perpetual's 8-hour ``default_funding_ppm``.
    :param initial_margin_ppm: int, the tier's ``initial_margin_ppm``.
    :param maintenance_fraction_ppm: int, the tier's ``maintenance_fraction_ppm``.
    :param num_samples: int, sample epochs elapsed; default ``len(samples)``.
    :param min_num_samples: int, 60.
    :param funding_rate_clamp_factor_ppm: int, governance parameter (genesis 6,000,000).
    :returns: :class:`FundingPrediction`.
    :raises TypeError: / ValueError: as the functions it combines.

    Example: 60 samples of 200 ppm, default 100, IMF 50,000, fraction 600,000 -> 300 ppm per
    8 h (clamp 120,000) = 0.0000375 per hour.
    Source: chain ``protocol/x/perpetuals/keeper/perpetual.go`` (``MaybeProcessNewFundingTickEpoch``).
    """
    premium = average_premium_ppm(samples, num_samples, min_num_samples)
    default = _int("default_funding_ppm", default_funding_ppm)
    bound = max_abs_funding_clamp_ppm(funding_rate_clamp_factor_ppm, initial_margin_ppm, maintenance_fraction_ppm)
    rate = clamp_funding_rate_ppm(premium, default, bound)
    return FundingPrediction(
        premium_ppm=premium,
        unclamped_ppm=premium + default,
        rate_8h_ppm=rate,
        clamp_ppm=bound,
        clamped=rate != premium + default,
        rate_1h=funding_rate_1h_from_ppm(rate),
    )


def indexer_next_funding_rate(samples: Sequence[int], default_funding_rate_1h: Decimal) -> Decimal | None:
    """The indexer's ``nextFundingRate`` for samples seen so far this hour (not the chain's rate).

    Each sample (every market gets one each minute, zeros included) is pushed as
    ``ppm / 1e6 / 8``; the value is their plain mean - big.js division, 20 decimal places,
    half-up - plus ``defaultFundingRate1H``. No zero padding to 60 and no clamp, so it can be
    far from the rate the chain will set (see :func:`predict_funding_rate`).

    :param samples: int ppm samples so far this hour.
    :param default_funding_rate_1h: Decimal, the market's ``defaultFundingRate1H``.
    :returns: Decimal per hour, or None before the first sample (the indexer keeps its
        previous value then).
    :raises TypeError: for floats or non-int samples.

    Example: 41 samples summing to 11,461 ppm with default 0 -> 0.00003494207317073171 (the BTC-USD
    value of a recorded perpetualMarkets payload).
    Source: indexer ``packages/redis/src/caches/next-funding-cache.ts`` (``getNextFunding``),
    ``services/ender/src/handlers/funding-handler.ts``, big.js defaults (``DP = 20``, ``RM = 1``).
    """
    xs = _int32_list("samples", samples)
    default = _num("default_funding_rate_1h", default_funding_rate_1h)
    if not xs:
        return None
    total = _EXACT.divide(Decimal(sum(xs)), Decimal(8 * ONE_MILLION))
    return _EXACT.add(_big_div(total, len(xs)), default)


def _big_div(x: Decimal, n: int) -> Decimal:
    """``x / n`` to 20 decimal places, ties away from zero (big.js ``div`` with ``DP = 20``, ``RM = 1``)."""
    a = abs(Fraction(x) / n) * 10**20
    r = (a.numerator * 2 + a.denominator) // (2 * a.denominator)
    return Decimal(r if x >= 0 else -r).scaleb(-20, _EXACT)


def project_next_funding_rate(
    next_funding_rate: Decimal,
    default_funding_rate_1h: Decimal,
    initial_margin_fraction: Decimal,
    maintenance_margin_fraction: Decimal,
    funding_rate_clamp_factor_ppm: int = DEFAULT_FUNDING_RATE_CLAMP_FACTOR_PPM,
) -> FundingPrediction:
    """The rate the chain will set if the rest of the hour's samples average like those so far.

    From the indexer's ``nextFundingRate`` (the mean of this hour's samples as a 1-hour rate,
    plus the default): premium = that mean in 8-hour ppm truncated toward zero (what
    ``lib.AvgInt32`` gives for a full hour at that mean), plus ``default_funding_ppm``, then the
    tier's clamp, which the indexer never applies.

    :param next_funding_rate: Decimal per hour, the indexer's ``nextFundingRate``.
    :param default_funding_rate_1h: Decimal per hour, ``defaultFundingRate1H`` (0 when absent).
    :param initial_margin_fraction: Decimal, the indexer's ``initialMarginFraction`` (base IMF).
    :param maintenance_margin_fraction: Decimal, the indexer's ``maintenanceMarginFraction``.
    :param funding_rate_clamp_factor_ppm: int, governance parameter (genesis 6,000,000).
    :returns: :class:`FundingPrediction`.
    :raises TypeError: for floats.
    :raises ValueError: for fractions that are not whole ppm or MMF > IMF.

    Examples (recorded mainnet payloads): BTC-USD ``0.00003494207317073171`` (41 samples, default
    0) -> 279 ppm = 0.000034875/h; EGO-USD ``0.73255813953488372093`` (IMF 0.2, MMF 0.1) -> clamped
    to 600,000 ppm = 0.075/h.
    Source: chain ``protocol/x/perpetuals/keeper/perpetual.go`` (``MaybeProcessNewFundingTickEpoch``);
    indexer ``packages/redis/src/caches/next-funding-cache.ts``.
    """
    rate = _num("next_funding_rate", next_funding_rate)
    default = _num("default_funding_rate_1h", default_funding_rate_1h)
    default_ppm = funding_ppm_8h_from_rate_1h(default)
    premium = funding_ppm_8h_from_rate_1h(_EXACT.subtract(rate, default))
    bound = funding_clamp_ppm_from_fractions(initial_margin_fraction, maintenance_margin_fraction, funding_rate_clamp_factor_ppm)
    out = clamp_funding_rate_ppm(premium, default_ppm, bound)
    return FundingPrediction(
        premium_ppm=premium,
        unclamped_ppm=premium + default_ppm,
        rate_8h_ppm=out,
        clamp_ppm=bound,
        clamped=out != premium + default_ppm,
        rate_1h=funding_rate_1h_from_ppm(out),
    )
