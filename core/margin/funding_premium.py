"""Funding premium votes as a dYdX v4 block proposer computes them, and ``QuoteToBaseQuantums``.

Every block the proposer votes one premium per market from its order book and the index
price (chain ``protocol/x/clob/memclob/memclob.go`` ``GetPricePremium``,
``getPricePremiumFromSide``, ``getImpactPriceSubticks``)::

    premium = (max(0, impact_bid - index) - max(0, index - impact_ask)) / index

in ppm, rounded toward zero and clamped to the liquidity tier's premium-vote bound
(:func:`perpbot.core.margin.funding_rate.max_abs_funding_clamp_ppm` with the
``premium_vote_clamp_factor_ppm`` parameter). The impact bid (ask) is the average price of
selling into the bids (buying from the asks) for the tier's ``impact_notional`` quote
quantums. All arithmetic is exact: prices are rationals in subticks (Go ``big.Rat``), the
last level's partial fill is a rational, and the accumulated base quantums are rounded
*up* before the average price is taken (``lib.BigRatRound(..., true)``).

Imports only :mod:`perpbot.core.margin._exact` and the standard library.

Differences from the chain, by necessity: the chain walks individual maker orders and skips
makers that would be undercollateralized (``hasSufficientCollat``); a level here is the
indexer's aggregated L2 level, every maker is assumed collateralized, and the per-order
floor of ``FillAmountToQuoteQuantums`` is applied per level (at most one quote quantum per
order of difference in the walked notional).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

from perpbot.core.margin._exact import ONE_MILLION, _int, _num, _scaled_ratio, _trunc_div

__all__ = [
    "INT32_MAX",
    "quote_to_base_quantums",
    "index_price_subticks",
    "impact_price_subticks",
    "premium_ppm_from_impact",
    "premium_vote_ppm",
]

#: largest premium / funding value the chain stores (``int32``)
INT32_MAX = 2**31 - 1


def quote_to_base_quantums(quote_quantums: int, atomic_resolution: int, price_value: int, price_exponent: int) -> int:
    """Base quantums worth ``quote_quantums`` at an oracle price, truncated toward zero.

    ``quote_quantums / (price_value * 10^(price_exponent + atomic_resolution + 6))``; the
    chain divides twice (by the power of ten, then by the price), each time truncating
    toward zero (Go ``big.Int.Quo``), which equals one truncation of the exact quotient: a
    negative amount rounds *up* (toward zero), unlike Python's ``//``.

    :param quote_quantums: int, signed quote quantums (1e-6 USDC).
    :param atomic_resolution: int, the market's ``atomicResolution``.
    :param price_value: int > 0, oracle ``MarketPrice.Price``.
    :param price_exponent: int, oracle ``MarketPrice.Exponent`` (USD = value * 10^exponent).
    :returns: int, signed base quantums.
    :raises TypeError: for non-int arguments.
    :raises ValueError: for a price value <= 0 (the chain would divide by zero).

    Example: chain test "realistic values: 25.123 BTC at $29001": 728,592,123,000 qq, AR -10,
    price 2,900,100,000e-5 -> 251,230,000,000 base quantums.
    Source: chain ``protocol/lib/quantums.go`` (``QuoteToBaseQuantums``), inverse of
    :func:`perpbot.core.margin.base_to_quote_quantums`.
    """
    qq = _int("quote_quantums", quote_quantums)
    ar = _int("atomic_resolution", atomic_resolution)
    pv = _int("price_value", price_value)
    pe = _int("price_exponent", price_exponent)
    if pv <= 0:
        raise ValueError(f"price_value must be > 0, got {pv}")
    exponent = pe + ar + 6
    if exponent >= 0:
        return _trunc_div(qq, pv * 10**exponent)
    return _trunc_div(qq * 10 ** (-exponent), pv)


def index_price_subticks(index_price: Decimal, atomic_resolution: int, quantum_conversion_exponent: int) -> Fraction:
    """The index price in subticks, exact: ``index_price * 10^(atomic_resolution - quantum_conversion_exponent + 6)``.

    :param index_price: Decimal > 0, USD per base unit.
    :param atomic_resolution: int, the market's ``atomicResolution``.
    :param quantum_conversion_exponent: int, the clob pair's ``quantumConversionExponent``.
    :returns: Fraction, subticks (not rounded: the chain keeps a ``big.Rat``).
    :raises TypeError: for a float price or non-int exponents.
    :raises ValueError: for a price <= 0 (the chain refuses a zero index price:
        ``ErrZeroIndexPriceForPremiumCalculation``).

    Source: chain ``protocol/x/clob/types/price_to_subticks.go`` (``PriceToSubticks``).
    """
    price = _num("index_price", index_price)
    ar = _int("atomic_resolution", atomic_resolution)
    qce = _int("quantum_conversion_exponent", quantum_conversion_exponent)
    if price <= 0:
        raise ValueError(f"index_price must be > 0, got {price}")
    n, d = _scaled_ratio(price, ar - qce + 6)
    return Fraction(n, d)


def _levels(name: str, levels: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for i, lv in enumerate(levels):
        try:
            st, q = lv
        except (TypeError, ValueError):
            raise ValueError(f"{name}[{i}] must be a (subticks, quantums) pair, got {lv!r}") from None
        st = _int(f"{name}[{i}] subticks", st)
        q = _int(f"{name}[{i}] quantums", q)
        if st <= 0 or q <= 0:
            raise ValueError(f"{name}[{i}] must have subticks > 0 and quantums > 0, got {lv!r}")
        out.append((st, q))
    return out


def impact_price_subticks(
    levels: Sequence[tuple[int, int]], impact_notional_quote_quantums: int, quantum_conversion_exponent: int
) -> Fraction | None:
    """Average price of walking one side of the book for the impact notional, subticks.

    Walks ``levels`` best first. A level worth ``floor(subticks * quantums * 10^QCE)`` quote
    quantums (``FillAmountToQuoteQuantums``) is taken whole while the remaining notional is
    larger, else the fraction ``remaining / level_value`` of it (exact rational). The taken
    base quantums are rounded up to an integer and the average is
    ``impact_notional * 10^-QCE / base_quantums`` (``GetAveragePriceSubticks``). With an
    impact notional of 0 the best level's price is the impact price.

    :param levels: one side, best first: ``(subticks, quantums)`` int pairs (bids descending,
        asks ascending), each > 0.
    :param impact_notional_quote_quantums: int >= 0, the liquidity tier's ``impact_notional``.
    :param quantum_conversion_exponent: int, the clob pair's ``quantumConversionExponent``.
    :returns: Fraction subticks, or None when the side cannot absorb the notional (the chain's
        ``hasEnoughLiquidity = false``) or is empty.
    :raises TypeError: for non-int values.
    :raises ValueError: for a negative notional or a level that is not two positive ints.

    Source: chain ``protocol/x/clob/memclob/memclob.go`` (``getImpactPriceSubticks``),
    ``protocol/x/clob/types/quantums.go`` (``FillAmountToQuoteQuantums``,
    ``GetAveragePriceSubticks``), ``protocol/lib/big_math.go`` (``BigRatRound``).
    """
    book = _levels("levels", levels)
    notional = _int("impact_notional_quote_quantums", impact_notional_quote_quantums)
    qce = _int("quantum_conversion_exponent", quantum_conversion_exponent)
    if notional < 0:
        raise ValueError(f"impact_notional_quote_quantums must be >= 0, got {notional}")
    if not book:
        return None
    if notional == 0:
        return Fraction(book[0][0])
    remaining = notional
    base = Fraction(0)
    for st, q in book:
        if remaining <= 0:
            break
        full = st * q * 10**qce if qce >= 0 else (st * q) // 10 ** (-qce)
        if remaining > full:
            base += q
        else:
            base += Fraction(remaining, full) * q
        remaining -= full
    if remaining > 0:
        return None
    base_up = -(-base.numerator // base.denominator)  # BigRatRound(base, roundUp=true)
    if qce <= 0:
        return Fraction(notional * 10 ** (-qce), base_up)
    return Fraction(notional, base_up * 10**qce)


def _round_toward_zero(x: Fraction) -> int:
    q = abs(x.numerator) // x.denominator
    return q if x >= 0 else -q


def premium_ppm_from_impact(
    index_subticks: Fraction, impact_subticks: Fraction | None, is_bid: bool, max_abs_premium_ppm: int
) -> int:
    """Premium vote from one side's impact price, ppm (rounded toward zero, clamped).

    ``is_bid`` True (index below the best bid): 0 unless ``impact_bid > index``, then
    ``impact_bid / index - 1``. ``is_bid`` False (index above the best ask): 0 unless
    ``impact_ask < index``, then ``impact_ask / index - 1`` (negative). No impact price (the
    side cannot absorb the notional) gives 0.

    :param index_subticks: Fraction > 0, from :func:`index_price_subticks`.
    :param impact_subticks: Fraction or None, from :func:`impact_price_subticks`.
    :param is_bid: which side was walked (the chain's ``isBid``).
    :param max_abs_premium_ppm: int >= 0, the tier's premium-vote bound.
    :returns: int ppm in ``[-max_abs_premium_ppm, max_abs_premium_ppm]``.
    :raises TypeError: for a non-int bound.
    :raises ValueError: for a bound above int32 or a non-positive index.

    Source: chain ``protocol/x/clob/memclob/memclob.go`` (``getPricePremiumFromSide``),
    ``protocol/lib/big_math.go`` (``BigInt32Clamp``).
    """
    bound = _int("max_abs_premium_ppm", max_abs_premium_ppm)
    if not 0 <= bound <= INT32_MAX:
        raise ValueError(f"max_abs_premium_ppm must be in [0, {INT32_MAX}] (the chain converts it to int32), got {bound}")
    if index_subticks <= 0:
        raise ValueError(f"index_subticks must be > 0, got {index_subticks}")
    if impact_subticks is None:
        return 0
    if (is_bid and index_subticks >= impact_subticks) or (not is_bid and index_subticks <= impact_subticks):
        return 0
    raw = _round_toward_zero(impact_subticks * ONE_MILLION / index_subticks - ONE_MILLION)
    return max(-bound, min(bound, raw))


def premium_vote_ppm(
    bids: Sequence[tuple[int, int]],
    asks: Sequence[tuple[int, int]],
    index_price: Decimal,
    atomic_resolution: int,
    quantum_conversion_exponent: int,
    impact_notional_quote_quantums: int,
    max_abs_premium_ppm: int,
) -> int:
    """One block's premium vote for a market, ppm, from its book and index price.

    Empty book: 0. Index below the best bid: the bid side is walked (positive premium when
    the impact bid is above the index). Index above the best ask: the ask side is walked
    (negative premium when the impact ask is below the index). Otherwise 0.

    :param bids: ``(subticks, quantums)`` best (highest) first.
    :param asks: ``(subticks, quantums)`` best (lowest) first.
    :param index_price: Decimal > 0, USD (the pricefeed daemon's index price).
    :param atomic_resolution: int, the market's ``atomicResolution``.
    :param quantum_conversion_exponent: int, the clob pair's ``quantumConversionExponent``.
    :param impact_notional_quote_quantums: int >= 0, the tier's ``impact_notional``.
    :param max_abs_premium_ppm: int, ``max_abs_funding_clamp_ppm(premium_vote_clamp_factor_ppm, ...)``.
    :returns: int, the vote in ppm (an 8-hour rate component).
    :raises ValueError: for a crossed book (the chain panics), bad levels or a price <= 0.

    Example: BTC-USD units (AR -10, QCE -9), index 100 USD, bids [(10,100,000 subticks = 101 USD,
    1e11 quantums = 10 BTC)], impact notional 500e6 qq: the taken base quantums
    4.95049504950...e10 round up to 49,504,950,496, so the impact bid is just under 101 and
    the vote is 9,999 ppm, not 10,000.
    Source: chain ``protocol/x/clob/memclob/memclob.go`` (``GetPricePremium``).
    """
    b = _levels("bids", bids)
    a = _levels("asks", asks)
    index = index_price_subticks(index_price, atomic_resolution, quantum_conversion_exponent)
    if not b and not a:
        return 0
    if b and a and b[0][0] >= a[0][0]:
        raise ValueError(f"crossed book: best bid {b[0][0]} subticks >= best ask {a[0][0]} subticks")
    if b and index < b[0][0]:
        impact = impact_price_subticks(b, impact_notional_quote_quantums, quantum_conversion_exponent)
        return premium_ppm_from_impact(index, impact, True, max_abs_premium_ppm)
    if a and index > a[0][0]:
        impact = impact_price_subticks(a, impact_notional_quote_quantums, quantum_conversion_exponent)
        return premium_ppm_from_impact(index, impact, False, max_abs_premium_ppm)
    return 0
