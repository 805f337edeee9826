"""Chain unit conversions: sizes <-> base quantums, prices <-> subticks, values in quote quantums.

Every function takes Decimal (or int / numeric str) amounts and int chain units and is
exact; where the chain rounds, the rounding is the chain's and is named. Imports only
:mod:`perpbot.core.margin._exact` and the standard library.

Sources: chain ``protocol/x/clob/types/quantums.go``, ``protocol/lib/quantums.go``.
"""

from __future__ import annotations

from decimal import Decimal

from perpbot.core.margin._exact import (
    _EXACT,
    EXACT,
    _int,
    _mul,
    _num,
    _round_ratio,
    _rounding,
    _scaled_ratio,
    _trunc_div,
)

__all__ = [
    "size_to_quantums",
    "quantums_to_size",
    "price_to_subticks",
    "subticks_to_price",
    "base_to_quote_quantums",
    "base_to_quote_quantums_at_price",
    "notional_quote_quantums",
    "fill_quote_quantums",
]


def size_to_quantums(
    size: Decimal,
    atomic_resolution: int,
    rounding: str = EXACT,
    step_base_quantums: int = 1,
) -> int:
    """Convert a size in base units to base quantums: ``size * 10^-atomic_resolution``.

    :param size: Decimal, base units (signed sizes are allowed).
    :param atomic_resolution: int, the market's ``atomicResolution`` (BTC-USD: -10).
    :param rounding: ``EXACT`` (default: raise unless ``size`` is a whole multiple of
        ``step_base_quantums``), ``ROUND_FLOOR``, ``ROUND_CEILING``, ``ROUND_DOWN`` (toward
        zero) or ``ROUND_UP`` (away from zero). Rounding goes to a multiple of
        ``step_base_quantums``.
    :param step_base_quantums: int > 0, the market's ``stepBaseQuantums`` to align to
        (1 = any whole quantum). The chain also requires ``quantums >= stepBaseQuantums``
        for an order; that check is the caller's.
    :returns: int, base quantums (a multiple of ``step_base_quantums``).
    :raises TypeError: for a float ``size`` (``0.0003`` as a float is not 0.0003).
    :raises ValueError: when ``rounding=EXACT`` and the size is not aligned, or for a bad
        ``rounding`` / ``step_base_quantums``.

    Example: ``size_to_quantums(Decimal("0.0003"), -10) == 3_000_000``.
    Source: chain ``protocol/x/clob/types/quantums.go`` (size and step definitions).
    """
    size = _num("size", size)
    atomic_resolution = _int("atomic_resolution", atomic_resolution)
    step = _int("step_base_quantums", step_base_quantums)
    rounding = _rounding(rounding)
    if step <= 0:
        raise ValueError(f"step_base_quantums must be > 0, got {step}")
    n, d = _scaled_ratio(size, -atomic_resolution)
    k = _round_ratio(n, d * step, rounding)
    if k is None:
        raise ValueError(
            f"size {size} is not a whole multiple of {step} base quantum(s) at atomic_resolution "
            f"{atomic_resolution}; pass rounding=ROUND_FLOOR or ROUND_CEILING to round it"
        )
    return k * step


def quantums_to_size(quantums: int, atomic_resolution: int) -> Decimal:
    """Convert base quantums to a size in base units: ``quantums * 10^atomic_resolution`` (exact).

    :param quantums: int, base quantums (signed allowed).
    :param atomic_resolution: int, the market's ``atomicResolution``.
    :returns: Decimal, base units.
    :raises TypeError: for non-int arguments.

    Source: chain ``protocol/x/clob/types/quantums.go``.
    """
    quantums = _int("quantums", quantums)
    atomic_resolution = _int("atomic_resolution", atomic_resolution)
    return Decimal(quantums).scaleb(atomic_resolution, _EXACT)


def price_to_subticks(
    price: Decimal,
    atomic_resolution: int,
    quantum_conversion_exponent: int,
    rounding: str = EXACT,
    subticks_per_tick: int = 1,
) -> int:
    """Convert a USD price to subticks: ``price * 10^(atomic_resolution - quantum_conversion_exponent + 6)``.

    :param price: Decimal >= 0, USD per base unit.
    :param atomic_resolution: int, the market's ``atomicResolution``.
    :param quantum_conversion_exponent: int, the market's ``quantumConversionExponent``.
    :param rounding: ``EXACT`` (default: raise unless the price is a whole multiple of
        ``subticks_per_tick`` subticks), ``ROUND_FLOOR`` (for buys: never pay more),
        ``ROUND_CEILING`` (for sells and post-only asks), ``ROUND_DOWN`` or ``ROUND_UP``.
    :param subticks_per_tick: int > 0, the market's ``subticksPerTick`` to align to
        (1 = any whole subtick).
    :returns: int, subticks (a multiple of ``subticks_per_tick``).
    :raises TypeError: for a float price.
    :raises ValueError: for a negative price, an unaligned price with ``EXACT``, or bad
        ``rounding`` / ``subticks_per_tick``.

    Example: BTC-USD (AR -10, QCE -9): 65,000 USD -> 6,500,000,000 subticks.
    Source: chain ``protocol/x/clob/types/quantums.go``.
    """
    price = _num("price", price)
    atomic_resolution = _int("atomic_resolution", atomic_resolution)
    qce = _int("quantum_conversion_exponent", quantum_conversion_exponent)
    per_tick = _int("subticks_per_tick", subticks_per_tick)
    rounding = _rounding(rounding)
    if per_tick <= 0:
        raise ValueError(f"subticks_per_tick must be > 0, got {per_tick}")
    if price < 0:
        raise ValueError(f"price must not be negative, got {price}")
    n, d = _scaled_ratio(price, atomic_resolution - qce + 6)
    k = _round_ratio(n, d * per_tick, rounding)
    if k is None:
        raise ValueError(
            f"price {price} is not a whole multiple of {per_tick} subtick(s) (atomic_resolution "
            f"{atomic_resolution}, quantum_conversion_exponent {qce}); pass rounding=ROUND_FLOOR "
            f"for buys or ROUND_CEILING for sells"
        )
    return k * per_tick


def subticks_to_price(subticks: int, atomic_resolution: int, quantum_conversion_exponent: int) -> Decimal:
    """Convert subticks to a USD price: ``subticks * 10^(quantum_conversion_exponent - atomic_resolution - 6)``.

    :param subticks: int, subticks.
    :param atomic_resolution: int, the market's ``atomicResolution``.
    :param quantum_conversion_exponent: int, the market's ``quantumConversionExponent``.
    :returns: Decimal, USD per base unit (exact).
    :raises TypeError: for non-int arguments.

    Source: chain ``protocol/x/clob/types/quantums.go``.
    """
    subticks = _int("subticks", subticks)
    atomic_resolution = _int("atomic_resolution", atomic_resolution)
    qce = _int("quantum_conversion_exponent", quantum_conversion_exponent)
    return Decimal(subticks).scaleb(qce - atomic_resolution - 6, _EXACT)


def base_to_quote_quantums(base_quantums: int, atomic_resolution: int, price_value: int, price_exponent: int) -> int:
    """Value base quantums in quote quantums at an oracle price, truncated toward zero.

    ``base_quantums * price_value * 10^(price_exponent + atomic_resolution + 6)``; when the
    exponent is negative the division truncates toward zero (Go ``big.Int.Quo``), so a
    short's negative value rounds *up* (toward zero), unlike Python's ``//``.

    :param base_quantums: int, signed base quantums.
    :param atomic_resolution: int, the market's ``atomicResolution``.
    :param price_value: int >= 0, the oracle ``MarketPrice.Price``.
    :param price_exponent: int, the oracle ``MarketPrice.Exponent`` (USD = value * 10^exponent).
    :returns: int, quote quantums (1e-6 USDC), signed like ``base_quantums``.
    :raises TypeError: for non-int arguments.
    :raises ValueError: for a negative ``price_value``.

    Source: chain ``protocol/lib/quantums.go`` (``BaseToQuoteQuantums``).
    """
    q = _int("base_quantums", base_quantums)
    ar = _int("atomic_resolution", atomic_resolution)
    pv = _int("price_value", price_value)
    pe = _int("price_exponent", price_exponent)
    if pv < 0:
        raise ValueError(f"price_value must not be negative, got {pv}")
    num = q * pv
    exponent = pe + ar + 6
    if exponent >= 0:
        return num * 10**exponent
    return _trunc_div(num, 10 ** (-exponent))


def base_to_quote_quantums_at_price(base_quantums: int, atomic_resolution: int, oracle_price: Decimal) -> int:
    """:func:`base_to_quote_quantums` with the oracle price as a Decimal USD value.

    Any Decimal price is ``value * 10^exponent`` exactly, so the result is the chain's for
    the same price: ``trunc(base_quantums * oracle_price * 10^(atomic_resolution + 6))``.

    :param base_quantums: int, signed base quantums.
    :param atomic_resolution: int, the market's ``atomicResolution``.
    :param oracle_price: Decimal >= 0, USD per base unit.
    :returns: int, quote quantums, truncated toward zero.
    :raises TypeError: for a float price or non-int quantums.
    :raises ValueError: for a negative price.

    Source: chain ``protocol/lib/quantums.go``.
    """
    q = _int("base_quantums", base_quantums)
    ar = _int("atomic_resolution", atomic_resolution)
    price = _num("oracle_price", oracle_price)
    if price < 0:
        raise ValueError(f"oracle_price must not be negative, got {price}")
    n, d = _scaled_ratio(price, ar + 6)
    return _trunc_div(q * n, d)


def notional_quote_quantums(size: Decimal, oracle_price: Decimal) -> int:
    """A position's signed value ``size * oracle_price`` in quote quantums, truncated toward zero.

    Equal to the chain's ``BaseToQuoteQuantums`` for the same position, whatever the
    market's atomic resolution (the resolution cancels out).

    :param size: Decimal, signed base units.
    :param oracle_price: Decimal >= 0, USD per base unit.
    :returns: int, quote quantums (short positions give negative values, rounded toward zero).
    :raises TypeError: for float arguments.

    Source: chain ``protocol/lib/quantums.go``, ``protocol/x/perpetuals/lib/lib.go``
    (``GetNetNotionalInQuoteQuantums``).
    """
    size = _num("size", size)
    price = _num("oracle_price", oracle_price)
    if price < 0:
        raise ValueError(f"oracle_price must not be negative, got {price}")
    return int(_mul(size, price).scaleb(6, _EXACT))


def fill_quote_quantums(subticks: int, quantums: int, quantum_conversion_exponent: int) -> int:
    """Quote quantums exchanged by a fill: ``floor(subticks * quantums * 10^quantum_conversion_exponent)``.

    :param subticks: int >= 0, the fill price in subticks.
    :param quantums: int >= 0, the fill amount in base quantums.
    :param quantum_conversion_exponent: int, the clob pair's ``quantumConversionExponent``.
    :returns: int >= 0, quote quantums, rounded down (the chain's types are unsigned).
    :raises TypeError: for non-int arguments.
    :raises ValueError: for negative ``subticks`` or ``quantums``.

    Source: chain ``protocol/x/clob/types/quantums.go`` (``FillAmountToQuoteQuantums``).
    """
    st = _int("subticks", subticks)
    q = _int("quantums", quantums)
    qce = _int("quantum_conversion_exponent", quantum_conversion_exponent)
    if st < 0 or q < 0:
        raise ValueError(f"subticks and quantums must not be negative, got {st} and {q}")
    num = st * q
    if qce >= 0:
        return num * 10**qce
    return num // 10 ** (-qce)
