"""Funding: hourly payments, the 8h -> 1h rate, the funding index delta and settlement.

Imports only :mod:`perpbot.core.margin._exact`, :mod:`perpbot.core.margin.quantums` and
the standard library.

Sources: chain ``protocol/x/perpetuals/funding/funding.go``,
``protocol/x/perpetuals/lib/lib.go``, ``protocol/x/subaccounts/lib/updates.go``.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from perpbot.core.margin._exact import (
    _EXACT,
    ONE_MILLION,
    _int,
    _mul,
    _num,
    _trunc_div,
)
from perpbot.core.margin.quantums import base_to_quote_quantums, base_to_quote_quantums_at_price

__all__ = [
    "funding_payment",
    "funding_rate_1h_from_8h",
    "funding_index_delta",
    "settle_funding_quote_quantums",
    "funding_index_delta_at_price",
    "settle_funding_ppm",
]


def funding_payment(size: Decimal, oracle_price: Decimal, rate_1h: Decimal) -> Decimal:
    """Funding received for one hourly payment, USD: ``-size * oracle_price * rate_1h``.

    Positive means received. With a positive rate longs pay and shorts receive.

    :param size: Decimal, signed base units.
    :param oracle_price: Decimal USD, the oracle price at the funding tick.
    :param rate_1h: Decimal fraction per hour (the indexer's ``rate``; ``R8h / 8``).
    :returns: Decimal USD, exact (not rounded to quote quantums; see
        :func:`settle_funding_quote_quantums` for the chain's settlement).
    :raises TypeError: for floats.

    Example: long 1 BTC at 65,000 with rate 0.0000125 -> -0.8125 (pays 0.8125 USDC).
    Source: chain ``protocol/x/perpetuals/lib/lib.go``; indexer
    ``roundtable/src/scripts/update_funding_payments.sql``.
    """
    s = _num("size", size)
    p = _num("oracle_price", oracle_price)
    r = _num("rate_1h", rate_1h)
    return -_mul(_mul(s, p), r)


def funding_rate_1h_from_8h(rate_8h: Decimal) -> Decimal:
    """Hourly funding rate from dYdX's 8-hour rate: ``rate_8h / 8`` (exact).

    :param rate_8h: Decimal fraction per 8 hours.
    :returns: Decimal fraction per hour.
    :raises TypeError: for floats.

    Source: chain ``protocol/x/perpetuals/funding/funding.go`` (index delta pro-rated by
    ``time / 28800``).
    """
    r = _num("rate_8h", rate_8h)
    return _EXACT.divide(r, Decimal(8))


def funding_index_delta(
    funding_rate_8h_ppm: int,
    seconds: int,
    atomic_resolution: int,
    price_value: int,
    price_exponent: int,
) -> int:
    """Change of a perpetual's funding index for one funding tick.

    ``trunc(BaseToQuoteQuantums(seconds * rate_8h_ppm) / 28800)``: both steps truncate
    toward zero.

    :param funding_rate_8h_ppm: int, the (clamped) 8-hour funding rate in ppm.
    :param seconds: int >= 0, time since the last tick (3600 for an hourly tick).
    :param atomic_resolution: int, market ``atomicResolution``.
    :param price_value: int >= 0, oracle ``MarketPrice.Price``.
    :param price_exponent: int, oracle ``MarketPrice.Exponent``.
    :returns: int, index delta in ppm of quote quantums per base quantum.
    :raises TypeError: for non-int arguments.

    Source: chain ``protocol/x/perpetuals/funding/funding.go`` (``GetFundingIndexDelta``).
    """
    rate = _int("funding_rate_8h_ppm", funding_rate_8h_ppm)
    secs = _int("seconds", seconds)
    if secs < 0:
        raise ValueError(f"seconds must not be negative, got {secs}")
    quote = base_to_quote_quantums(secs * rate, atomic_resolution, price_value, price_exponent)
    return _trunc_div(quote, 8 * 3600)


def settle_funding_quote_quantums(positions: Iterable[tuple[int, int]]) -> int:
    """Funding settled into a subaccount's USDC balance, quote quantums (positive = received).

    For each position ``settlement_ppm = -(perpetual_index - position_index) * quantums``;
    the ppm amounts of *all* the subaccount's positions are summed first and the sum is
    divided by 1e6 once with Euclidean (floor, toward -infinity) division. Flooring each
    position separately can give a different (smaller) total.

    :param positions: iterable of ``(quantums, funding_index_delta)`` int pairs: signed base
        quantums, and the perpetual's current funding index minus the index stored on the
        position (ppm of quote quantums per base quantum; see :func:`funding_index_delta`).
    :returns: int, quote quantums to add to the USDC asset position.
    :raises TypeError: for non-int values.

    Source: chain ``protocol/x/perpetuals/lib/lib.go`` (``GetSettlementPpmWithPerpetual``),
    ``protocol/x/subaccounts/lib/updates.go`` (``GetSettledSubaccountWithPerpetuals``).
    """
    total = 0
    for quantums, delta in positions:
        total -= _int("funding_index_delta", delta) * _int("quantums", quantums)
    return total // ONE_MILLION


def funding_index_delta_at_price(funding_rate_8h_ppm: int, seconds: int, atomic_resolution: int, oracle_price: Decimal) -> int:
    """:func:`funding_index_delta` with the oracle price as a Decimal USD value.

    ``trunc(trunc(seconds * rate_8h_ppm * oracle_price * 10^(atomic_resolution + 6)) / 28800)``.
    Any Decimal price is ``value * 10^exponent`` exactly, so this is the chain's result for
    that oracle price whatever its stored exponent.

    :param funding_rate_8h_ppm: int, the clamped 8-hour rate in ppm.
    :param seconds: int >= 0, 3600 for an hourly tick.
    :param atomic_resolution: int, the market's ``atomicResolution``.
    :param oracle_price: Decimal > 0, USD per base unit at the tick.
    :returns: int, the index delta (ppm of quote quantums per base quantum).
    :raises TypeError: for floats or non-int chain values.
    :raises ValueError: for negative seconds or price.

    Example: BTC-USD (AR -10), 100 ppm, 65,000 USD, 3600 s: trunc(650 / 8) = 81 (not 81.25).
    Source: chain ``protocol/x/perpetuals/funding/funding.go`` (``GetFundingIndexDelta``),
    ``protocol/lib/quantums.go`` (``BaseToQuoteQuantums``).
    """
    rate = _int("funding_rate_8h_ppm", funding_rate_8h_ppm)
    secs = _int("seconds", seconds)
    if secs < 0:
        raise ValueError(f"seconds must not be negative, got {secs}")
    quote = base_to_quote_quantums_at_price(secs * rate, atomic_resolution, oracle_price)
    return _trunc_div(quote, 8 * 3600)


def settle_funding_ppm(quantums: int, funding_index_delta: int) -> int:
    """One position's settlement in ppm of quote quantums (positive = received), not yet divided.

    ``-(perpetual_index - position_index) * quantums``: the chain sums these over the
    subaccount's positions and floors the sum once (:func:`settle_funding_quote_quantums`).

    :param quantums: int, signed base quantums.
    :param funding_index_delta: int, index now minus the position's stored index.
    :returns: int, ppm of quote quantums.
    :raises TypeError: for non-ints.

    Example: long 1 BTC (1e10 quantums), delta 81 -> -810,000,000,000 ppm = -0.81 USDC.
    Source: chain ``protocol/x/perpetuals/lib/lib.go`` (``GetSettlementPpmWithPerpetual``).
    """
    return -_int("funding_index_delta", funding_index_delta) * _int("quantums", quantums)
