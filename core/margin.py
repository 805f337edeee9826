"""Exact dYdX v4 margin, liquidation and funding math.

This is the one module to import margin math from. Everything here is pure
(no I/O, no clock; the only module state is a small memo of validated IMF/MMF
pairs) and exact: amounts are :class:`decimal.Decimal` (USD / USDC, prices,
sizes, fractions) or Python ``int`` (chain integers: base quantums, quote
quantums, subticks, ppm). Where a Decimal is expected, an ``int`` or a numeric
``str`` is also taken as exact. A ``float`` passed where a number is expected
raises :class:`TypeError` naming the argument: ``0.0003`` as a float is not
0.0003 BTC, and the dYdX 1.1.5 client's float conversion really does turn it
into 2,000,000 quantums instead of 3,000,000.

Speed: a :class:`PositionRisk` computes its chain-rounded notional, IMR and MMR
once, when it is built, so account totals and the liquidation prices of a
50-position account are plain sums plus one division per position (about
30 us in CPython 3.11; ``bench/bench_margin.py``). Re-marking a position to a
new oracle price builds a new value (a few microseconds each).

Units used in every docstring:

- *USD*: USDC amounts and prices, :class:`~decimal.Decimal`.
- *base units*: position or order size in the market's coin (BTC for BTC-USD),
  signed where the name says so (long > 0, short < 0).
- *base quantums*: ``size * 10^-atomic_resolution``, ``int``.
- *quote quantums* (qq): 1e-6 USDC, ``int``.
- *subticks*: chain price units, ``price * 10^(atomic_resolution -
  quantum_conversion_exponent + 6)``, ``int``.
- *ppm*: parts per million, ``int`` (50_000 ppm = 5%).
- *fractions*: IMF, MMF and rates as plain Decimal fractions (0.05 = 5%).
- funding rates are per hour (``rate_1h``) unless the name says ``8h``.

Rounding follows the chain exactly; three rules appear and each is named where
it is used: truncation toward zero (``BaseToQuoteQuantums``), floor toward
-infinity (Go ``big.Int.Div`` with a positive divisor) and ceiling (margin
requirements). Decimal results that are true quotients (liquidation prices,
leverage) are computed with this module's own context (28 significant digits,
half-even), so a caller's :func:`decimal.getcontext` never changes a result.

Functions
---------
Conversions (chain ``protocol/x/clob/types/quantums.go``, ``protocol/lib/quantums.go``):
    ``size_to_quantums(size, atomic_resolution, rounding=EXACT, step_base_quantums=1)``
    ``quantums_to_size(quantums, atomic_resolution)``
    ``price_to_subticks(price, atomic_resolution, quantum_conversion_exponent, rounding=EXACT, subticks_per_tick=1)``
    ``subticks_to_price(subticks, atomic_resolution, quantum_conversion_exponent)``
    ``base_to_quote_quantums(base_quantums, atomic_resolution, price_value, price_exponent)``
    ``base_to_quote_quantums_at_price(base_quantums, atomic_resolution, oracle_price)``
    ``notional_quote_quantums(size, oracle_price)``
    ``fill_quote_quantums(subticks, quantums, quantum_conversion_exponent)``

Margin requirements of one position (chain ``protocol/x/perpetuals/lib/lib.go``,
``protocol/x/perpetuals/types/liquidity_tier.go``):
    ``adjusted_initial_margin_ppm(imf_ppm, oi_notional_quote_quantums, lower_cap, upper_cap)``
    ``adjusted_initial_margin_fraction(imf, open_interest_notional, lower_cap, upper_cap)``
    ``initial_margin_requirement(notional_quote_quantums, initial_margin_ppm, ...)``
    ``maintenance_margin_requirement(notional_quote_quantums, initial_margin_ppm, maintenance_fraction_ppm)``
    ``initial_margin_requirement_usd(size, oracle_price, imf, ...)``
    ``maintenance_margin_requirement_usd(size, oracle_price, imf, mmf)``

Accounts (chain ``protocol/lib/margin/risk.go``, ``protocol/x/subaccounts/lib/updates.go``;
frontend metrics from v4-abacus ``SubaccountCalculator.kt``):
    ``PositionRisk`` (frozen value: one position marked to its oracle price)
    ``AccountRisk``, ``account_risk(usdc_balance, positions)``
    ``equity``, ``total_initial_margin``, ``total_maintenance_margin``, ``free_collateral``,
    ``margin_usage``, ``account_leverage``, ``position_leverage``, ``buying_power``,
    ``is_initially_collateralized``, ``is_liquidatable``
    ``OrderMarginCheck``, ``check_order_initial_margin(usdc_balance, positions, position, order_size, fill_price, fee=0)``

Liquidation (docs ``concepts/trading/liquidations.mdx``; chain
``protocol/x/clob/keeper/liquidations.go``):
    ``liquidation_price(equity, size, oracle_price, mmf, maintenance_other=0)``
    ``isolated_liquidation_price(child_equity, size, oracle_price, mmf)``
    ``liquidation_prices(usdc_balance, positions)``
    ``liquidation_fill_price(position, total_net_collateral, total_maintenance_margin, ...)``
    ``liquidation_fill_subticks(position, total_net_collateral, total_maintenance_margin, atomic_resolution, quantum_conversion_exponent, subticks_per_tick, ...)``
    ``bankruptcy_quote(position, delta_size, total_net_collateral, total_maintenance_margin)``
    ``bankruptcy_price(position, delta_size, total_net_collateral, total_maintenance_margin)``
    ``liquidation_fee(quote_received, bankruptcy_quote, max_liquidation_fee_ppm=15000)``

Funding (chain ``protocol/x/perpetuals/funding/funding.go``,
``protocol/x/perpetuals/lib/lib.go``, ``protocol/x/subaccounts/lib/updates.go``):
    ``funding_payment(size, oracle_price, rate_1h)``
    ``funding_rate_1h_from_8h(rate_8h)``
    ``funding_index_delta(funding_rate_8h_ppm, seconds, atomic_resolution, price_value, price_exponent)``
    ``settle_funding_quote_quantums(positions)``

Example::

    >>> from decimal import Decimal as D
    >>> size_to_quantums(D("0.0003"), -10)          # BTC-USD: exactly 3,000,000 quantums
    3000000
    >>> eth = PositionRisk(size=D("1"), oracle_price=D("3000"), imf=D("0.05"), mmf=D("0.03"))
    >>> acct = account_risk(D("-2000"), [eth])       # deposited 1000, bought 1 ETH at 3000
    >>> acct.equity, acct.initial_margin, acct.maintenance_margin
    (Decimal('1000.000000'), Decimal('150.000000'), Decimal('90.000000'))
    >>> round(liquidation_prices(D("-2000"), [eth])[0], 2)
    Decimal('2061.86')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    ROUND_UP,
    Clamped,
    Context,
    Decimal,
    DivisionByZero,
    FloatOperation,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
    Subnormal,
    Underflow,
    getcontext,
)
from fractions import Fraction
from typing import Any

import attrs

__all__ = [
    "EXACT",
    "ROUND_CEILING",
    "ROUND_DOWN",
    "ROUND_FLOOR",
    "ROUND_UP",
    "ONE_MILLION",
    "DEFAULT_MAX_LIQUIDATION_FEE_PPM",
    "DEFAULT_BANKRUPTCY_ADJUSTMENT",
    "DEFAULT_SPREAD_TO_MAINTENANCE_MARGIN_RATIO",
    "size_to_quantums",
    "quantums_to_size",
    "price_to_subticks",
    "subticks_to_price",
    "base_to_quote_quantums",
    "base_to_quote_quantums_at_price",
    "notional_quote_quantums",
    "fill_quote_quantums",
    "adjusted_initial_margin_ppm",
    "adjusted_initial_margin_fraction",
    "initial_margin_requirement",
    "maintenance_margin_requirement",
    "initial_margin_requirement_usd",
    "maintenance_margin_requirement_usd",
    "PositionRisk",
    "AccountRisk",
    "account_risk",
    "equity",
    "total_initial_margin",
    "total_maintenance_margin",
    "free_collateral",
    "margin_usage",
    "account_leverage",
    "position_leverage",
    "buying_power",
    "is_initially_collateralized",
    "is_liquidatable",
    "OrderMarginCheck",
    "check_order_initial_margin",
    "liquidation_price",
    "isolated_liquidation_price",
    "liquidation_prices",
    "liquidation_fill_price",
    "liquidation_fill_subticks",
    "bankruptcy_quote",
    "bankruptcy_price",
    "liquidation_fee",
    "funding_payment",
    "funding_rate_1h_from_8h",
    "funding_index_delta",
    "settle_funding_quote_quantums",
]

# ---------------------------------------------------------------------------
# Constants, contexts and argument checks
# ---------------------------------------------------------------------------

#: Rounding mode meaning "the value must convert exactly; otherwise raise ValueError".
EXACT = "EXACT"

ONE_MILLION = 1_000_000
#: Genesis default of ``max_liquidation_fee_ppm`` (1.5%, paid to the insurance fund).
DEFAULT_MAX_LIQUIDATION_FEE_PPM = 15_000
#: Genesis default of ``bankruptcy_adjustment_ppm`` (1e6 ppm) as a fraction.
DEFAULT_BANKRUPTCY_ADJUSTMENT = Decimal(1)
#: Genesis default of ``spread_to_maintenance_margin_ratio_ppm`` (1.5e6 ppm) as a fraction.
DEFAULT_SPREAD_TO_MAINTENANCE_MARGIN_RATIO = Decimal("1.5")

_ROUNDINGS = (ROUND_FLOOR, ROUND_CEILING, ROUND_DOWN, ROUND_UP, EXACT)
_MAX_UINT64 = 2**64 - 1

ZERO = Decimal(0)

# Exact arithmetic: products, sums and power-of-ten shifts of the inputs fit easily in
# 100 digits; if one ever did not, Inexact is trapped and we raise instead of rounding.
_EXACT = Context(
    prec=100, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact]
)
# True quotients (prices, ratios): 28 significant digits, half-even, independent of the
# caller's thread-local context.
_DIV = Context(prec=28, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])

_mul = _EXACT.multiply
_add = _EXACT.add
_sub = _EXACT.subtract
_div = _DIV.divide
_sub28 = _DIV.subtract


def _thread_context_is_default() -> bool:
    """True when the thread's decimal context computes exactly like ``_DIV``.

    Decimal operators are about twice as fast as bound ``Context`` methods, so the hot
    loop of :func:`liquidation_prices` uses them when (and only when) they would give
    the very same results as ``_DIV``: same precision and rounding, default exponent
    limits, and no trap that ``_DIV`` lacks. The caller's context is never changed.
    """
    c = getcontext()
    traps = c.traps
    return (
        c.prec == 28
        and c.rounding == ROUND_HALF_EVEN
        and c.Emax >= _DIV.Emax
        and c.Emin <= _DIV.Emin
        and not c.clamp
        and not traps[Inexact]
        and not traps[Rounded]
        and not traps[Underflow]
        and not traps[Subnormal]
        and not traps[Clamped]
        and not traps[FloatOperation]
    )


def _num(name: str, value: Any) -> Decimal:
    """Check a Decimal-valued argument; ints and numeric strings are converted exactly.

    :raises TypeError: for ``float`` (and ``bool`` or other types), naming ``name``.
    :raises ValueError: for NaN, infinities or a non-numeric string.
    """
    if type(value) is Decimal:
        if value.is_finite():
            return value
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if isinstance(value, float):
        raise TypeError(
            f"{name} must be a decimal.Decimal, not float ({value!r}): binary floats cannot hold "
            f"money or sizes exactly; pass Decimal({str(value)!r}) or a string"
        )
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a decimal.Decimal, got bool {value!r}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return _num(name, Decimal(value))
    if isinstance(value, str):
        try:
            return _num(name, Decimal(value.strip()))
        except InvalidOperation:
            raise ValueError(f"{name} is not a number: {value!r}") from None
    raise TypeError(f"{name} must be a decimal.Decimal, got {type(value).__name__} {value!r}")


def _int(name: str, value: Any) -> int:
    """Check an exact-integer argument (quantums, subticks, ppm, exponents).

    :raises TypeError: for float, bool, Decimal or any non-int, naming ``name``.
    """
    if type(value) is int:
        return value
    if isinstance(value, float):
        raise TypeError(
            f"{name} must be an int (chain integer units), not float ({value!r}); floats are inexact"
        )
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"{name} must be an int (chain integer units), got {type(value).__name__} {value!r}")


def _rounding(rounding: Any) -> str:
    if rounding not in _ROUNDINGS:
        raise ValueError(
            f"rounding must be one of ROUND_FLOOR, ROUND_CEILING, ROUND_DOWN, ROUND_UP or EXACT, got {rounding!r}"
        )
    return rounding


def _ceil_div(n: int, d: int) -> int:
    """ceil(n / d) for d > 0 (exact integers)."""
    return -(-n // d)


def _trunc_div(n: int, d: int) -> int:
    """n / d truncated toward zero for d > 0 (Go ``big.Int.Quo``)."""
    q = abs(n) // d
    return q if n >= 0 else -q


def _round_ratio(n: int, d: int, rounding: str) -> int | None:
    """Round the rational n/d (d > 0) to an int; ``None`` when EXACT and inexact."""
    if rounding == ROUND_FLOOR:
        return n // d
    if rounding == ROUND_CEILING:
        return -(-n // d)
    if rounding == ROUND_DOWN:
        return _trunc_div(n, d)
    if rounding == ROUND_UP:
        q = -(-abs(n) // d)
        return q if n >= 0 else -q
    q, r = divmod(n, d)
    return None if r else q


def _scaled_ratio(value: Decimal, exponent: int) -> tuple[int, int]:
    """``value * 10^exponent`` as an exact (numerator, positive denominator) pair."""
    n, d = value.as_integer_ratio()
    if exponent >= 0:
        return n * 10**exponent, d
    return n, d * 10 ** (-exponent)


def _qq_to_usd(qq: int) -> Decimal:
    """Quote quantums -> USD, exact."""
    return Decimal(qq).scaleb(-6, _EXACT)


def _usd_to_qq_exact(name: str, usd: Decimal) -> int:
    """USD -> quote quantums; the amount must be a whole number of quote quantums."""
    n, d = _scaled_ratio(usd, 6)
    q, r = divmod(n, d)
    if r:
        raise ValueError(f"{name} must be a whole number of quote quantums (1e-6 USDC), got {usd}")
    return q


def _fraction_to_ppm(name: str, fraction: Decimal) -> int:
    n, d = _scaled_ratio(fraction, 6)
    q, r = divmod(n, d)
    if r:
        raise ValueError(
            f"{name} must be a whole number of ppm (at most 6 decimal places, as the chain stores it), got {fraction}"
        )
    return q


def _fraction_to_decimal(value: Fraction) -> Decimal:
    return _div(Decimal(value.numerator), Decimal(value.denominator))


# ---------------------------------------------------------------------------
# Conversions
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Margin requirements of one position
# ---------------------------------------------------------------------------


def adjusted_initial_margin_ppm(
    imf_ppm: int, oi_notional_quote_quantums: int, lower_cap: int, upper_cap: int
) -> int:
    """The open-interest-scaled initial margin fraction, in integer ppm.

    - ``upper_cap == 0`` (scaling disabled) or OI notional <= ``lower_cap``: ``imf_ppm``;
    - OI notional >= ``upper_cap``: 1,000,000 (100%);
    - otherwise ``imf_ppm + floor((1e6 - imf_ppm) * (oi - lower_cap) / (upper_cap - lower_cap))``.

    Both caps are inclusive. The maintenance margin is *not* scaled.

    :param imf_ppm: int in [0, 1e6], the liquidity tier's base ``initial_margin_ppm``.
    :param oi_notional_quote_quantums: int, the market's open interest valued at the oracle
        price, quote quantums (``base_to_quote_quantums(open_interest_quantums, ...)``).
    :param lower_cap: int >= 0, ``open_interest_lower_cap``, quote quantums.
    :param upper_cap: int >= ``lower_cap`` (or 0 to disable), ``open_interest_upper_cap``,
        quote quantums. (The indexer shows the caps in USDC; multiply by 1e6.)
    :returns: int, effective IMF in ppm.
    :raises TypeError: for non-int arguments.
    :raises ValueError: for ``imf_ppm`` outside [0, 1e6], negative caps or
        ``lower_cap > upper_cap`` with a nonzero upper cap (the chain rejects such a tier).

    Source: chain ``protocol/x/perpetuals/types/liquidity_tier.go`` (``GetAdjustedInitialMarginPpm``).
    """
    imf_ppm = _int("imf_ppm", imf_ppm)
    oi = _int("oi_notional_quote_quantums", oi_notional_quote_quantums)
    lower = _int("lower_cap", lower_cap)
    upper = _int("upper_cap", upper_cap)
    if not 0 <= imf_ppm <= ONE_MILLION:
        raise ValueError(f"imf_ppm must be in [0, 1000000], got {imf_ppm}")
    if lower < 0 or upper < 0:
        raise ValueError(f"open interest caps must not be negative, got {lower} and {upper}")
    if upper == 0:
        return imf_ppm
    if lower > upper:
        raise ValueError(f"open interest lower cap {lower} is larger than upper cap {upper}")
    if oi <= lower:
        return imf_ppm
    if oi >= upper:
        return ONE_MILLION
    return imf_ppm + (ONE_MILLION - imf_ppm) * (oi - lower) // (upper - lower)


def adjusted_initial_margin_fraction(
    imf: Decimal, open_interest_notional: Decimal, lower_cap: Decimal, upper_cap: Decimal
) -> Decimal:
    """:func:`adjusted_initial_margin_ppm` with Decimal fractions and USD amounts.

    :param imf: Decimal fraction in [0, 1] with at most 6 decimals (whole ppm), base IMF.
    :param open_interest_notional: Decimal USD, open interest * oracle price; truncated to
        whole quote quantums as the chain does.
    :param lower_cap: Decimal USD (``openInterestLowerCap`` from the indexer), whole quote quantums.
    :param upper_cap: Decimal USD (``openInterestUpperCap``), 0 disables scaling.
    :returns: Decimal fraction, the effective IMF (ppm floored as on chain).
    :raises TypeError: for floats.
    :raises ValueError: for an IMF that is not whole ppm, caps with sub-quantum digits, or
        inconsistent caps.

    Example: SOL-USD (IMF 0.1, caps 20M/50M USDC) at 35M USDC OI -> 0.55.
    Source: chain ``protocol/x/perpetuals/types/liquidity_tier.go``.
    """
    imf_ppm = _fraction_to_ppm("imf", _num("imf", imf))
    oi_qq = int(_num("open_interest_notional", open_interest_notional).scaleb(6, _EXACT))
    lower = _usd_to_qq_exact("lower_cap", _num("lower_cap", lower_cap))
    upper = _usd_to_qq_exact("upper_cap", _num("upper_cap", upper_cap))
    ppm = adjusted_initial_margin_ppm(imf_ppm, oi_qq, lower, upper)
    return Decimal(ppm).scaleb(-6, _EXACT)


def initial_margin_requirement(
    notional_quote_quantums: int,
    initial_margin_ppm: int,
    *,
    open_interest_notional_quote_quantums: int = 0,
    open_interest_lower_cap: int = 0,
    open_interest_upper_cap: int = 0,
    custom_imf_ppm: int = 0,
) -> int:
    """Initial margin requirement of one position: ``ceil(|notional| * IMF_eff)``, quote quantums.

    ``IMF_eff`` is :func:`adjusted_initial_margin_ppm` of the base IMF and the market's OI
    (no scaling with the default caps), raised to ``custom_imf_ppm`` when that is larger
    (per-subaccount leverage setting; 0 = none).

    :param notional_quote_quantums: int, the position's value in quote quantums as
        :func:`base_to_quote_quantums` gives it (sign ignored: ``|truncate(x)| == truncate(|x|)``).
    :param initial_margin_ppm: int in [0, 1e6], the liquidity tier's base IMF in ppm.
    :param open_interest_notional_quote_quantums: int, market OI valued at the oracle price.
    :param open_interest_lower_cap: int, quote quantums.
    :param open_interest_upper_cap: int, quote quantums; 0 disables OI scaling.
    :param custom_imf_ppm: int >= 0, per-subaccount IMF floor (chain #3141); 0 = none.
    :returns: int >= 0, quote quantums, rounded up.
    :raises TypeError: for non-int arguments.
    :raises ValueError: as :func:`adjusted_initial_margin_ppm`.

    Source: chain ``protocol/x/perpetuals/lib/lib.go`` (``GetMarginRequirementsInQuoteQuantums``),
    ``protocol/x/perpetuals/types/liquidity_tier.go`` (``GetInitialMarginQuoteQuantums``).
    """
    n = abs(_int("notional_quote_quantums", notional_quote_quantums))
    ppm = adjusted_initial_margin_ppm(
        initial_margin_ppm,
        open_interest_notional_quote_quantums,
        open_interest_lower_cap,
        open_interest_upper_cap,
    )
    custom = _int("custom_imf_ppm", custom_imf_ppm)
    if custom > ppm:
        ppm = custom
    return _ceil_div(n * ppm, ONE_MILLION)


def maintenance_margin_requirement(
    notional_quote_quantums: int, initial_margin_ppm: int, maintenance_fraction_ppm: int
) -> int:
    """Maintenance margin requirement of one position, quote quantums, rounded up twice.

    ``MMR = ceil(ceil(|notional| * IMF_base) * maintenance_fraction)``: the base-IMF
    requirement (never OI-scaled) is rounded up first, then scaled by the tier's
    maintenance fraction and rounded up again. This can exceed
    ``ceil(|notional| * IMF_base * maintenance_fraction)`` by one quote quantum.

    :param notional_quote_quantums: int, the position's value in quote quantums (sign ignored).
    :param initial_margin_ppm: int in [0, 1e6], the liquidity tier's base ``initial_margin_ppm``.
    :param maintenance_fraction_ppm: int in [0, 1e6], the tier's ``maintenance_fraction_ppm``
        (the indexer's ``maintenanceMarginFraction`` is IMF * this fraction).
    :returns: int >= 0, quote quantums.
    :raises TypeError: for non-int arguments.
    :raises ValueError: for ppm values outside [0, 1e6].

    Source: chain ``protocol/x/perpetuals/lib/lib.go`` (``GetMarginRequirementsInQuoteQuantums``)
    and ``protocol/lib/big_math.go`` (``BigMulPpm`` with round-up).
    """
    n = abs(_int("notional_quote_quantums", notional_quote_quantums))
    imf_ppm = _int("initial_margin_ppm", initial_margin_ppm)
    mf_ppm = _int("maintenance_fraction_ppm", maintenance_fraction_ppm)
    if not 0 <= imf_ppm <= ONE_MILLION or not 0 <= mf_ppm <= ONE_MILLION:
        raise ValueError(f"ppm values must be in [0, 1000000], got {imf_ppm} and {mf_ppm}")
    base_imr = _ceil_div(n * imf_ppm, ONE_MILLION)
    return _ceil_div(base_imr * mf_ppm, ONE_MILLION)


_IMF_MMF_CACHE: dict[tuple[Decimal, Decimal], tuple[int, int, int]] = {}


def _check_imf_mmf(imf: Decimal, mmf: Decimal) -> tuple[int, int, int]:
    """Validate IMF/MMF fractions; return (imf_ppm, mm_num, mm_den) with MF = mm_num/mm_den.

    Markets share a handful of (IMF, MMF) pairs, so results are memoized (bounded).
    """
    key = (imf, mmf)
    hit = _IMF_MMF_CACHE.get(key)
    if hit is not None:
        return hit
    result = _check_imf_mmf_uncached(imf, mmf)
    if len(_IMF_MMF_CACHE) >= 1024:
        _IMF_MMF_CACHE.clear()
    _IMF_MMF_CACHE[key] = result
    return result


def _check_imf_mmf_uncached(imf: Decimal, mmf: Decimal) -> tuple[int, int, int]:
    imf_ppm = _fraction_to_ppm("imf", imf)
    if not 0 <= imf_ppm <= ONE_MILLION:
        raise ValueError(f"imf must be in [0, 1], got {imf}")
    if mmf < 0 or mmf > imf:
        raise ValueError(f"mmf must be in [0, imf] = [0, {imf}], got {mmf}")
    if imf_ppm == 0:
        return 0, 0, 1
    a, b = mmf.as_integer_ratio()
    # maintenance fraction = mmf / imf = a / b / (imf_ppm / 1e6)
    return imf_ppm, a * ONE_MILLION, b * imf_ppm


def initial_margin_requirement_usd(
    size: Decimal,
    oracle_price: Decimal,
    imf: Decimal,
    *,
    open_interest: Decimal = ZERO,
    open_interest_lower_cap: Decimal = ZERO,
    open_interest_upper_cap: Decimal = ZERO,
) -> Decimal:
    """Initial margin requirement of one position in USD, with the chain's rounding.

    The notional ``|size| * oracle_price`` is truncated to whole quote quantums, the IMF is
    OI-scaled when an upper cap is given, and the product is rounded up to a quote quantum.

    :param size: Decimal, signed base units.
    :param oracle_price: Decimal > 0, USD per base unit.
    :param imf: Decimal fraction in [0, 1], whole ppm (e.g. 0.05 for BTC-USD in 2024).
    :param open_interest: Decimal >= 0, market open interest in base units (for OI scaling).
    :param open_interest_lower_cap: Decimal USD.
    :param open_interest_upper_cap: Decimal USD; 0 disables OI scaling.
    :returns: Decimal USD, a whole number of quote quantums.
    :raises TypeError: for floats.
    :raises ValueError: for out-of-range fractions or prices.

    Source: chain ``protocol/x/perpetuals/lib/lib.go``.
    """
    p = PositionRisk(
        size=size,
        oracle_price=oracle_price,
        imf=imf,
        mmf=ZERO,
        open_interest=open_interest,
        open_interest_lower_cap=open_interest_lower_cap,
        open_interest_upper_cap=open_interest_upper_cap,
    )
    return p.initial_margin


def maintenance_margin_requirement_usd(size: Decimal, oracle_price: Decimal, imf: Decimal, mmf: Decimal) -> Decimal:
    """Maintenance margin requirement of one position in USD, rounded up twice as on chain.

    ``ceil(ceil(notional * imf) * (mmf / imf))`` in quote quantums, where ``notional`` is
    ``|size| * oracle_price`` truncated to quote quantums and ``mmf / imf`` is the tier's
    maintenance fraction (0.6 for BTC-USD's 0.05/0.03).

    :param size: Decimal, signed base units.
    :param oracle_price: Decimal > 0, USD per base unit.
    :param imf: Decimal fraction in [0, 1], whole ppm: the *base* IMF (never OI-scaled here).
    :param mmf: Decimal fraction in [0, imf], the maintenance margin fraction as the indexer
        reports it (``maintenanceMarginFraction`` = IMF * maintenance fraction).
    :returns: Decimal USD, a whole number of quote quantums.
    :raises TypeError: for floats.
    :raises ValueError: for out-of-range fractions or prices.

    Source: chain ``protocol/x/perpetuals/lib/lib.go`` (``GetMarginRequirementsInQuoteQuantums``).
    """
    return PositionRisk(size=size, oracle_price=oracle_price, imf=imf, mmf=mmf).maintenance_margin


# ---------------------------------------------------------------------------
# Positions and accounts
# ---------------------------------------------------------------------------


def _conv(name: str):
    def convert(value: Any) -> Decimal:
        if type(value) is Decimal and value.is_finite():
            return value
        return _num(name, value)

    convert.__name__ = f"to_decimal_{name}"
    return convert


@attrs.frozen
class PositionRisk:
    """One perpetual position marked to its oracle price, with its chain margin figures.

    The per-position numbers (notional, IMR, MMR in quote quantums) are computed once
    when the value is built, so account totals and liquidation prices over many
    positions are plain sums. Build a new value (``attrs.evolve`` or :meth:`with_price`)
    when the oracle price or size changes.

    :param size: Decimal, signed base units (long > 0, short < 0; 0 = flat).
    :param oracle_price: Decimal > 0, USD per base unit.
    :param imf: Decimal fraction in [0, 1], whole ppm: the base initial margin fraction
        (indexer ``initialMarginFraction``).
    :param mmf: Decimal fraction in [0, imf]: the maintenance margin fraction (indexer
        ``maintenanceMarginFraction``, already IMF * maintenance fraction).
    :param open_interest: Decimal >= 0, the market's open interest in base units; only
        used when ``open_interest_upper_cap`` > 0.
    :param open_interest_lower_cap: Decimal USD, whole quote quantums.
    :param open_interest_upper_cap: Decimal USD, whole quote quantums; 0 disables OI scaling.
    :param ticker: optional market name, e.g. ``"BTC-USD"``; informational.
    :raises TypeError: for float fields.
    :raises ValueError: for a non-positive price, fractions out of range or not whole ppm,
        negative OI or caps, or ``lower > upper``.

    Sources: chain ``protocol/x/perpetuals/lib/lib.go``, ``protocol/x/perpetuals/types/liquidity_tier.go``.
    """

    size: Decimal = attrs.field(converter=_conv("size"))
    oracle_price: Decimal = attrs.field(converter=_conv("oracle_price"))
    imf: Decimal = attrs.field(converter=_conv("imf"))
    mmf: Decimal = attrs.field(converter=_conv("mmf"))
    open_interest: Decimal = attrs.field(default=ZERO, converter=_conv("open_interest"))
    open_interest_lower_cap: Decimal = attrs.field(default=ZERO, converter=_conv("open_interest_lower_cap"))
    open_interest_upper_cap: Decimal = attrs.field(default=ZERO, converter=_conv("open_interest_upper_cap"))
    ticker: str = ""

    # Derived figures, computed once in __attrs_post_init__ (not part of equality or repr).
    # One tuple, so the account loops do a single attribute lookup per position:
    # (net notional qq, IMR qq, MMR qq, |notional| qq, s*P - MMR USD, |s|*MMF - s,
    #  s*P USD exact, effective IMF ppm)
    _k: tuple = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        size, price, imf, mmf = self.size, self.oracle_price, self.imf, self.mmf
        if price <= 0:
            raise ValueError(f"oracle_price must be > 0, got {price}")
        imf_ppm, mm_num, mm_den = _check_imf_mmf(imf, mmf)
        upper = self.open_interest_upper_cap
        eff = imf_ppm
        if upper:
            oi = self.open_interest
            if oi < 0:
                raise ValueError(f"open_interest must not be negative, got {oi}")
            lo_qq = _usd_to_qq_exact("open_interest_lower_cap", self.open_interest_lower_cap)
            hi_qq = _usd_to_qq_exact("open_interest_upper_cap", upper)
            oi_qq = int(_mul(oi, price).scaleb(6, _EXACT))
            eff = adjusted_initial_margin_ppm(imf_ppm, oi_qq, lo_qq, hi_qq)
        notional = _mul(size, price)
        nnv = int(notional.scaleb(6, _EXACT))  # int() truncates toward zero, like Go Quo
        absn = abs(nnv)
        imr = -(-absn * eff // ONE_MILLION)
        base_imr = -(-absn * imf_ppm // ONE_MILLION)
        mmr = -(-base_imr * mm_num // mm_den)
        object.__setattr__(
            self,
            "_k",
            (
                nnv,
                imr,
                mmr,
                absn,
                _sub(notional, _qq_to_usd(mmr)),
                _sub(_mul(abs(size), mmf), size),
                notional,
                eff,
            ),
        )

    # -- named constructors -------------------------------------------------

    @classmethod
    def from_market(cls, market: Any, size: Decimal, oracle_price: Decimal | None = None) -> PositionRisk:
        """Build from any object with the ``perpbot.core.model.Market`` attribute names.

        Reads ``initial_margin_fraction``, ``maintenance_margin_fraction``, ``oracle_price``
        (unless given), ``open_interest``, ``open_interest_lower_cap``,
        ``open_interest_upper_cap`` and ``ticker``.

        :param market: a market object (duck-typed; this module imports no model).
        :param size: Decimal, signed base units.
        :param oracle_price: Decimal USD, overrides ``market.oracle_price``.
        :raises ValueError: when no oracle price is known.
        """
        price = oracle_price if oracle_price is not None else getattr(market, "oracle_price", None)
        if price is None:
            raise ValueError(f"market {getattr(market, 'ticker', '?')}: no oracle price")
        return cls(
            size=size,
            oracle_price=price,
            imf=market.initial_margin_fraction,
            mmf=market.maintenance_margin_fraction,
            open_interest=getattr(market, "open_interest", ZERO) or ZERO,
            open_interest_lower_cap=getattr(market, "open_interest_lower_cap", ZERO) or ZERO,
            open_interest_upper_cap=getattr(market, "open_interest_upper_cap", ZERO) or ZERO,
            ticker=str(getattr(market, "ticker", "")),
        )

    @classmethod
    def from_indexer(cls, payload: Mapping[str, Any], size: Decimal) -> PositionRisk:
        """Build from one entry of the indexer's ``/v4/perpetualMarkets`` ``markets`` map.

        :param payload: mapping with string fields ``oraclePrice``, ``initialMarginFraction``,
            ``maintenanceMarginFraction`` and optionally ``openInterest``,
            ``openInterestLowerCap``, ``openInterestUpperCap`` (USDC), ``ticker``.
        :param size: Decimal, signed base units.
        :raises ValueError: when a required field is missing, naming it.
        """
        try:
            return cls(
                size=size,
                oracle_price=str(payload["oraclePrice"]),
                imf=str(payload["initialMarginFraction"]),
                mmf=str(payload["maintenanceMarginFraction"]),
                open_interest=str(payload.get("openInterest") or "0"),
                open_interest_lower_cap=str(payload.get("openInterestLowerCap") or "0"),
                open_interest_upper_cap=str(payload.get("openInterestUpperCap") or "0"),
                ticker=str(payload.get("ticker", "")),
            )
        except KeyError as exc:
            raise ValueError(f"market {payload.get('ticker', '?')}: missing field {exc.args[0]!r}") from None

    def with_price(self, oracle_price: Decimal) -> PositionRisk:
        """This position marked to another oracle price (USD); like ``attrs.evolve``, faster."""
        return PositionRisk(
            self.size,
            oracle_price,
            self.imf,
            self.mmf,
            self.open_interest,
            self.open_interest_lower_cap,
            self.open_interest_upper_cap,
            self.ticker,
        )

    def with_size(self, size: Decimal) -> PositionRisk:
        """The same market with another signed size (base units); like ``attrs.evolve``, faster."""
        return PositionRisk(
            size,
            self.oracle_price,
            self.imf,
            self.mmf,
            self.open_interest,
            self.open_interest_lower_cap,
            self.open_interest_upper_cap,
            self.ticker,
        )

    # -- derived figures ----------------------------------------------------

    @property
    def notional(self) -> Decimal:
        """Signed value ``size * oracle_price``, USD, exact."""
        return self._k[6]

    @property
    def notional_quote_quantums(self) -> int:
        """Signed value in quote quantums, truncated toward zero (chain net notional)."""
        return self._k[0]

    @property
    def effective_imf_ppm(self) -> int:
        """OI-scaled initial margin fraction, ppm."""
        return self._k[7]

    @property
    def effective_imf(self) -> Decimal:
        """OI-scaled initial margin fraction, Decimal fraction."""
        return Decimal(self._k[7]).scaleb(-6, _EXACT)

    @property
    def initial_margin_quote_quantums(self) -> int:
        """Initial margin requirement, quote quantums (``ceil(notional * IMF_eff)``)."""
        return self._k[1]

    @property
    def maintenance_margin_quote_quantums(self) -> int:
        """Maintenance margin requirement, quote quantums (rounded up twice)."""
        return self._k[2]

    @property
    def initial_margin(self) -> Decimal:
        """Initial margin requirement, USD."""
        return _qq_to_usd(self._k[1])

    @property
    def maintenance_margin(self) -> Decimal:
        """Maintenance margin requirement, USD."""
        return _qq_to_usd(self._k[2])


def _totals(positions: Iterable[PositionRisk]) -> tuple[int, int, int, int]:
    """(net notional, IMR, MMR, gross notional) sums in quote quantums."""
    nnv = imr = mmr = gross = 0
    for p in positions:
        a, b, c, d, _, _, _, _ = p._k
        nnv += a
        imr += b
        mmr += c
        gross += d
    return nnv, imr, mmr, gross


@attrs.frozen
class AccountRisk:
    """An account's (subaccount's) collateral and margin totals, USD.

    :param equity: net collateral ``Q + sum(S_i * P_i)`` (each position value truncated to
        a quote quantum as on chain).
    :param initial_margin: total initial margin requirement (TIMR).
    :param maintenance_margin: total maintenance margin requirement (TMMR).
    :param gross_notional: ``sum(|S_i| * P_i)``.

    Source: chain ``protocol/lib/margin/risk.go``.
    """

    equity: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    gross_notional: Decimal

    @property
    def free_collateral(self) -> Decimal:
        """``equity - initial_margin``, USD (negative when under-collateralized)."""
        return _sub(self.equity, self.initial_margin)

    @property
    def margin_usage(self) -> Decimal | None:
        """``initial_margin / equity``; ``None`` when equity <= 0."""
        return _div(self.initial_margin, self.equity) if self.equity > 0 else None

    @property
    def leverage(self) -> Decimal | None:
        """``gross_notional / equity``; ``None`` when equity <= 0."""
        return _div(self.gross_notional, self.equity) if self.equity > 0 else None

    @property
    def is_initially_collateralized(self) -> bool:
        """``equity >= initial_margin`` (chain ``Risk.IsInitialCollateralized``)."""
        return self.equity >= self.initial_margin

    @property
    def is_liquidatable(self) -> bool:
        """``maintenance_margin > 0 and equity < maintenance_margin`` (chain ``Risk.IsLiquidatable``)."""
        return self.maintenance_margin > 0 and self.equity < self.maintenance_margin


def account_risk(usdc_balance: Decimal, positions: Iterable[PositionRisk]) -> AccountRisk:
    """All account totals in one pass.

    :param usdc_balance: Decimal USD, the signed USDC asset position ``Q`` (after funding
        settlement; negative after buying perpetuals with borrowed quote).
    :param positions: iterable of :class:`PositionRisk`, one per market.
    :returns: :class:`AccountRisk` (USD).
    :raises TypeError: for a float balance.

    Source: chain ``protocol/lib/margin/risk.go``, ``protocol/x/subaccounts/keeper/subaccount.go``.
    """
    q = _num("usdc_balance", usdc_balance)
    nnv, imr, mmr, gross = _totals(positions)
    return AccountRisk(
        equity=_add(q, _qq_to_usd(nnv)),
        initial_margin=_qq_to_usd(imr),
        maintenance_margin=_qq_to_usd(mmr),
        gross_notional=_qq_to_usd(gross),
    )


def equity(usdc_balance: Decimal, positions: Iterable[PositionRisk]) -> Decimal:
    """Net collateral (equity) ``NC = Q + sum(S_i * P_i)``, USD.

    Each position's value is truncated toward zero to a quote quantum, as the chain's
    ``BaseToQuoteQuantums`` does; ``Q`` is used exactly.

    :param usdc_balance: Decimal USD, signed USDC balance ``Q``.
    :param positions: iterable of :class:`PositionRisk`.
    :returns: Decimal USD.
    :raises TypeError: for a float balance.

    Source: chain ``protocol/lib/margin/risk.go`` (``NC``), ``protocol/x/perpetuals/lib/lib.go``.
    """
    q = _num("usdc_balance", usdc_balance)
    total = 0
    for p in positions:
        total += p._k[0]
    return _add(q, _qq_to_usd(total))


def total_initial_margin(positions: Iterable[PositionRisk]) -> Decimal:
    """Total initial margin requirement ``TIMR = sum(IMR_i)``, USD (each IMR rounded up).

    Source: chain ``protocol/lib/margin/risk.go``, ``protocol/x/perpetuals/lib/lib.go``.
    """
    total = 0
    for p in positions:
        total += p._k[1]
    return _qq_to_usd(total)


def total_maintenance_margin(positions: Iterable[PositionRisk]) -> Decimal:
    """Total maintenance margin requirement ``TMMR = sum(MMR_i)``, USD (each rounded up twice).

    Source: chain ``protocol/lib/margin/risk.go``, ``protocol/x/perpetuals/lib/lib.go``.
    """
    total = 0
    for p in positions:
        total += p._k[2]
    return _qq_to_usd(total)


def free_collateral(usdc_balance: Decimal, positions: Iterable[PositionRisk]) -> Decimal:
    """Free collateral ``NC - TIMR``, USD (negative when not initially collateralized).

    :param usdc_balance: Decimal USD, signed USDC balance.
    :param positions: iterable of :class:`PositionRisk`.
    :raises TypeError: for a float balance.

    Source: chain ``protocol/lib/margin/risk.go``; indexer ``comlink/src/lib/helpers.ts``.
    """
    return account_risk(usdc_balance, positions).free_collateral


def margin_usage(usdc_balance: Decimal, positions: Iterable[PositionRisk]) -> Decimal | None:
    """Margin usage ``TIMR / equity`` (= ``1 - FC/E``), a fraction; ``None`` when equity <= 0.

    Source: v4-abacus ``calculator/SubaccountCalculator.kt``.
    """
    return account_risk(usdc_balance, positions).margin_usage


def account_leverage(usdc_balance: Decimal, positions: Iterable[PositionRisk]) -> Decimal | None:
    """Account leverage ``sum(|S_i| * P_i) / equity``; ``None`` when equity <= 0.

    Source: v4-abacus ``calculator/SubaccountCalculator.kt``.
    """
    return account_risk(usdc_balance, positions).leverage


def position_leverage(position: PositionRisk, equity: Decimal) -> Decimal | None:
    """Signed leverage of one position ``S * P / equity``; ``None`` when equity <= 0.

    :param position: :class:`PositionRisk`.
    :param equity: Decimal USD, the account's (or isolated child subaccount's) equity.

    Source: v4-abacus ``calculator/SubaccountCalculator.kt``.
    """
    e = _num("equity", equity)
    return _div(position.notional, e) if e > 0 else None


def buying_power(usdc_balance: Decimal, positions: Iterable[PositionRisk], imf: Decimal) -> Decimal:
    """Buying power ``free_collateral / imf``, USD of new notional; 0 when FC <= 0.

    :param usdc_balance: Decimal USD, signed USDC balance.
    :param positions: iterable of :class:`PositionRisk`.
    :param imf: Decimal fraction > 0, the IMF of the market to be traded (its effective,
        OI-scaled IMF where that applies).
    :raises TypeError: for floats.
    :raises ValueError: for ``imf`` <= 0.

    Source: v4-abacus ``calculator/SubaccountCalculator.kt``.
    """
    f = _num("imf", imf)
    if f <= 0:
        raise ValueError(f"imf must be > 0, got {f}")
    fc = free_collateral(usdc_balance, positions)
    return _div(fc, f) if fc > 0 else ZERO


def is_initially_collateralized(usdc_balance: Decimal, positions: Iterable[PositionRisk]) -> bool:
    """``NC >= TIMR``: required after any risk-increasing update (orders, withdrawals).

    Source: chain ``protocol/lib/margin/risk.go`` (``IsInitialCollateralized``).
    """
    return account_risk(usdc_balance, positions).is_initially_collateralized


def is_liquidatable(usdc_balance: Decimal, positions: Iterable[PositionRisk]) -> bool:
    """``TMMR > 0 and NC < TMMR`` (strict): the account can be liquidated.

    Source: chain ``protocol/lib/margin/risk.go`` (``IsLiquidatable``).
    """
    return account_risk(usdc_balance, positions).is_liquidatable


@attrs.frozen
class OrderMarginCheck:
    """The outcome of :func:`check_order_initial_margin`, with the numbers behind it (USD).

    :param accepted: whether the chain would accept the collateral change of the fill.
    :param reason: one line explaining the decision with the numbers.
    :param equity_before: / ``equity_after``: net collateral before and after the fill.
    :param initial_margin_before: / ``initial_margin_after``: TIMR before and after.
    :param maintenance_margin_before: / ``maintenance_margin_after``: TMMR before and after.
    """

    accepted: bool
    reason: str
    equity_before: Decimal
    equity_after: Decimal
    initial_margin_before: Decimal
    initial_margin_after: Decimal
    maintenance_margin_before: Decimal
    maintenance_margin_after: Decimal

    @property
    def required(self) -> Decimal:
        """Initial margin required after the fill, USD."""
        return self.initial_margin_after

    @property
    def available(self) -> Decimal:
        """Collateral (equity) available after the fill, USD."""
        return self.equity_after

    @property
    def free_collateral_after(self) -> Decimal:
        """``equity_after - initial_margin_after``, USD."""
        return _sub(self.equity_after, self.initial_margin_after)

    @property
    def shortfall(self) -> Decimal:
        """How much equity is missing to meet the initial margin after the fill, USD (>= 0)."""
        s = _sub(self.initial_margin_after, self.equity_after)
        return s if s > 0 else ZERO


def check_order_initial_margin(
    usdc_balance: Decimal,
    positions: Sequence[PositionRisk],
    position: PositionRisk,
    order_size: Decimal,
    fill_price: Decimal,
    fee: Decimal = ZERO,
    *,
    allow_undercollateralized_risk_reduction: bool = True,
) -> OrderMarginCheck:
    """Would filling this order keep the account's collateral rules? With the numbers.

    After the fill: ``Q' = Q - order_size * fill_price - fee`` and the position becomes
    ``position.size + order_size`` (marked at ``position.oracle_price``, margins from its
    IMF/MMF and OI as given). The fill is accepted when ``NC' >= TIMR'``. Otherwise, like
    the chain, it is still accepted (if ``allow_undercollateralized_risk_reduction``) when
    the maintenance margin does not rise and ``NC'/TMMR'`` does not fall; with both TMMRs
    zero, only when NC rises.

    :param usdc_balance: Decimal USD, signed USDC balance ``Q`` before the fill.
    :param positions: sequence of :class:`PositionRisk`, the account's positions in the
        *other* markets; an entry that is the very object ``position`` is skipped, so the
        full list may be passed.
    :param position: :class:`PositionRisk` of the order's market as it stands (size 0 if flat).
    :param order_size: Decimal, signed base units (buy > 0, sell < 0), nonzero.
    :param fill_price: Decimal > 0, USD per base unit.
    :param fee: Decimal USD paid for the fill (negative for a rebate).
    :param allow_undercollateralized_risk_reduction: apply the chain's exception above.
    :returns: :class:`OrderMarginCheck` whose ``required``/``available``/``shortfall`` fill a
        rejection reason.
    :raises TypeError: for floats.
    :raises ValueError: for a zero order size or a non-positive fill price.

    Source: chain ``protocol/x/subaccounts/lib/updates.go``
    (``IsValidStateTransitionForUndercollateralizedSubaccount``), ``protocol/lib/margin/risk.go``.
    """
    q0 = _num("usdc_balance", usdc_balance)
    ds = _num("order_size", order_size)
    px = _num("fill_price", fill_price)
    fee = _num("fee", fee)
    if not ds:
        raise ValueError("order_size must not be zero")
    if px <= 0:
        raise ValueError(f"fill_price must be > 0, got {px}")
    o_nnv, o_imr, o_mmr, _ = _totals(p for p in positions if p is not position)
    after = position.with_size(_add(position.size, ds))
    q1 = _sub(_sub(q0, _mul(ds, px)), fee)

    k0, k1 = position._k, after._k
    nc0 = _add(q0, _qq_to_usd(o_nnv + k0[0]))
    nc1 = _add(q1, _qq_to_usd(o_nnv + k1[0]))
    imr0 = _qq_to_usd(o_imr + k0[1])
    imr1 = _qq_to_usd(o_imr + k1[1])
    mmr0 = _qq_to_usd(o_mmr + k0[2])
    mmr1 = _qq_to_usd(o_mmr + k1[2])

    def result(accepted: bool, reason: str) -> OrderMarginCheck:
        return OrderMarginCheck(
            accepted=accepted,
            reason=reason,
            equity_before=nc0,
            equity_after=nc1,
            initial_margin_before=imr0,
            initial_margin_after=imr1,
            maintenance_margin_before=mmr0,
            maintenance_margin_after=mmr1,
        )

    if nc1 >= imr1:
        return result(True, f"initial margin ok: equity after fill {nc1:f} USDC >= required {imr1:f} USDC")
    reject = (
        f"insufficient margin: initial margin required {imr1:f} USDC but equity after fill would be "
        f"{nc1:f} USDC (short by {_sub(imr1, nc1):f} USDC; free collateral before {_sub(nc0, imr0):f} USDC)"
    )
    if not allow_undercollateralized_risk_reduction:
        return result(False, reject)
    if mmr1 > mmr0:
        return result(False, reject)
    if not mmr1 or not mmr0:
        if not mmr1 and not mmr0 and nc1 > nc0:
            return result(True, "undercollateralized but accepted: no positions and equity rises")
        return result(False, reject)
    # New state more risky when NC1/MMR1 < NC0/MMR0, i.e. NC0*MMR1 > NC1*MMR0.
    if _mul(nc0, mmr1) > _mul(nc1, mmr0):
        return result(False, reject)
    return result(
        True,
        f"undercollateralized but accepted: maintenance margin does not rise ({mmr0:f} -> {mmr1:f} USDC) "
        f"and equity/maintenance does not fall",
    )


# ---------------------------------------------------------------------------
# Liquidation
# ---------------------------------------------------------------------------


def liquidation_price(
    equity: Decimal,
    size: Decimal,
    oracle_price: Decimal,
    mmf: Decimal,
    maintenance_other: Decimal = ZERO,
) -> Decimal | None:
    """Oracle price of this market at which equity falls to the maintenance margin (cross).

    ``p_liq = (E - s*P - MMR_other) / (|s|*MMF - s)``, with everything else held fixed.
    Solves ``E + s*(p - P) = MMR_other + |s|*p*MMF``.

    :param equity: Decimal USD, the account's *current* equity (net collateral).
    :param size: Decimal, signed base units of the position.
    :param oracle_price: Decimal > 0, the *current* oracle price, USD.
    :param mmf: Decimal fraction in [0, 1], this market's maintenance margin fraction.
    :param maintenance_other: Decimal USD >= 0, maintenance margin of all the other
        positions (0 for an isolated position).
    :returns: Decimal USD (28 significant digits, not rounded to a tick), or ``None`` when
        the result is <= 0, the size is 0, or the position cannot be liquidated by its own
        price (e.g. a long with MMF = 1). If the account is already liquidatable the price
        lies on the "safe" side of ``oracle_price``.
    :raises TypeError: for floats.
    :raises ValueError: for a non-positive price, ``mmf`` outside [0, 1] or negative ``maintenance_other``.

    Examples: deposit 1000, long 1 ETH at 3000, MMF 0.03 -> 2061.86;
    E=1000, short 3 at 3000, MMF 0.05 -> 3174.60.
    Source: docs ``concepts/trading/liquidations.mdx``; v4-abacus ``calculatePositionLiquidationPrice``.
    """
    e = _num("equity", equity)
    s = _num("size", size)
    p = _num("oracle_price", oracle_price)
    m = _num("mmf", mmf)
    other = _num("maintenance_other", maintenance_other)
    if p <= 0:
        raise ValueError(f"oracle_price must be > 0, got {p}")
    if not 0 <= m <= 1:
        raise ValueError(f"mmf must be in [0, 1], got {m}")
    if other < 0:
        raise ValueError(f"maintenance_other must not be negative, got {other}")
    den = _sub(_mul(abs(s), m), s)
    if not den:
        return None
    r = _div(_sub(_sub(e, _mul(s, p)), other), den)
    return r if r > 0 else None


def isolated_liquidation_price(
    child_equity: Decimal, size: Decimal, oracle_price: Decimal, mmf: Decimal
) -> Decimal | None:
    """Liquidation price of an isolated position: :func:`liquidation_price` with no other positions.

    Isolated positions live in their own child subaccount (number 128..128000, parent
    ``n % 128``), so ``MMR_other = 0`` and the equity is the child's.

    :param child_equity: Decimal USD, equity of the isolated child subaccount.
    :param size: Decimal, signed base units.
    :param oracle_price: Decimal > 0, USD.
    :param mmf: Decimal fraction.
    :returns: Decimal USD or ``None`` (see :func:`liquidation_price`).

    Source: docs ``concepts/trading/isolated-positions.md``, ``concepts/trading/liquidations.mdx``.
    """
    return liquidation_price(child_equity, size, oracle_price, mmf, ZERO)


def liquidation_prices(usdc_balance: Decimal, positions: Sequence[PositionRisk]) -> list[Decimal | None]:
    """Cross-margin liquidation price of every position of an account, in order.

    For position ``i``: :func:`liquidation_price` with the account equity and
    ``MMR_other = TMMR - MMR_i`` (chain-rounded requirements).

    :param usdc_balance: Decimal USD, signed USDC balance.
    :param positions: sequence of :class:`PositionRisk`.
    :returns: list of Decimal USD or ``None``, aligned with ``positions``.
    :raises TypeError: for a float balance.

    Source: docs ``concepts/trading/liquidations.mdx``; v4-abacus ``calculatePositionLiquidationPrice``.
    """
    q = _num("usdc_balance", usdc_balance)
    nnv = mmr = 0
    for p in positions:
        k = p._k
        nnv += k[0]
        mmr += k[2]
    # E - s*P - (TMMR - MMR_i) = (E - TMMR) - (s*P - MMR_i); the last term is per position.
    base = _sub(_add(q, _qq_to_usd(nnv)), _qq_to_usd(mmr))
    out: list[Decimal | None] = []
    append = out.append
    if _thread_context_is_default():
        # Same 28-digit half-even arithmetic as the branch below, via faster operators.
        for p in positions:
            _, _, _, _, off, den, _, _ = p._k
            if den:
                r = (base - off) / den
                append(r if r > 0 else None)
            else:
                append(None)
        return out
    for p in positions:
        _, _, _, _, off, den, _, _ = p._k
        if den:
            r = _div(_sub28(base, off), den)
            append(r if r > 0 else None)
        else:
            append(None)
    return out


def _fillable_price_fraction(
    position: PositionRisk,
    total_net_collateral: Decimal,
    total_maintenance_margin: Decimal,
    bankruptcy_adjustment: Decimal,
    spread_to_maintenance_margin_ratio: Decimal,
) -> Fraction:
    tnc = _num("total_net_collateral", total_net_collateral)
    tmmr = _num("total_maintenance_margin", total_maintenance_margin)
    ba = _num("bankruptcy_adjustment", bankruptcy_adjustment)
    smmr = _num("spread_to_maintenance_margin_ratio", spread_to_maintenance_margin_ratio)
    if not position.size:
        raise ValueError("position size must not be zero")
    if tmmr <= 0:
        raise ValueError(f"total_maintenance_margin must be > 0, got {tmmr}")
    if ba < 0 or smmr < 0:
        raise ValueError("bankruptcy_adjustment and spread_to_maintenance_margin_ratio must not be negative")
    abr = Fraction(ba) * (1 - Fraction(tnc) / Fraction(tmmr))
    abr = min(max(abr, Fraction(0)), Fraction(1))
    pnnv = Fraction(position.notional_quote_quantums, ONE_MILLION)
    pmmr = Fraction(position.maintenance_margin_quote_quantums, ONE_MILLION)
    price = (pnnv - abr * Fraction(smmr) * pmmr) / Fraction(position.size)
    if price < 0:
        raise ValueError(f"fillable price is negative ({price}); inconsistent inputs")
    return price


def liquidation_fill_price(
    position: PositionRisk,
    total_net_collateral: Decimal,
    total_maintenance_margin: Decimal,
    *,
    bankruptcy_adjustment: Decimal = DEFAULT_BANKRUPTCY_ADJUSTMENT,
    spread_to_maintenance_margin_ratio: Decimal = DEFAULT_SPREAD_TO_MAINTENANCE_MARGIN_RATIO,
) -> Decimal:
    """Worst price a liquidation order of this position may fill at ("fillable price"), USD.

    ``ABR = clamp(BA * (1 - TNC/TMMR), 0, 1)`` and
    ``fillable = (PNNV - ABR * SMMR * PMMR) / PS`` where PNNV and PMMR are the whole
    position's net notional and maintenance margin (chain-rounded) and PS its size. So
    ``~ P * (1 - ABR*SMMR*MMF)`` for longs and ``P * (1 + ABR*SMMR*MMF)`` for shorts. It
    depends on the whole position and the account totals, not on the amount liquidated.

    :param position: :class:`PositionRisk`, the position being liquidated (nonzero size).
    :param total_net_collateral: Decimal USD, the account's TNC (equity).
    :param total_maintenance_margin: Decimal USD > 0, the account's TMMR.
    :param bankruptcy_adjustment: Decimal fraction >= 0, ``bankruptcy_adjustment_ppm / 1e6``
        (genesis default 1.0).
    :param spread_to_maintenance_margin_ratio: Decimal >= 0,
        ``spread_to_maintenance_margin_ratio_ppm / 1e6`` (genesis default 1.5).
    :returns: Decimal USD per base unit, the exact rational rounded to 28 digits. Use
        :func:`liquidation_fill_subticks` for the chain's tick-rounded order price.
    :raises TypeError: for floats.
    :raises ValueError: for a zero size, ``TMMR <= 0`` or negative parameters.

    Source: chain ``protocol/x/clob/keeper/liquidations.go`` (``GetFillablePrice``).
    """
    return _fraction_to_decimal(
        _fillable_price_fraction(
            position,
            total_net_collateral,
            total_maintenance_margin,
            bankruptcy_adjustment,
            spread_to_maintenance_margin_ratio,
        )
    )


def liquidation_fill_subticks(
    position: PositionRisk,
    total_net_collateral: Decimal,
    total_maintenance_margin: Decimal,
    atomic_resolution: int,
    quantum_conversion_exponent: int,
    subticks_per_tick: int,
    *,
    bankruptcy_adjustment: Decimal = DEFAULT_BANKRUPTCY_ADJUSTMENT,
    spread_to_maintenance_margin_ratio: Decimal = DEFAULT_SPREAD_TO_MAINTENANCE_MARGIN_RATIO,
) -> int:
    """The liquidation order's price in subticks, rounded as the chain does.

    The exact fillable price (see :func:`liquidation_fill_price`) is converted to subticks
    and rounded conservatively: up when liquidating a long (a sell), down for a short (a
    buy), then to a multiple of ``subticks_per_tick`` in the same direction, and clamped
    to ``[subticks_per_tick, max uint64 aligned]`` (at least one tick).

    :param position: :class:`PositionRisk` being liquidated.
    :param total_net_collateral: Decimal USD.
    :param total_maintenance_margin: Decimal USD > 0.
    :param atomic_resolution: int, market ``atomicResolution``.
    :param quantum_conversion_exponent: int, clob pair ``quantumConversionExponent``.
    :param subticks_per_tick: int > 0, clob pair ``subticksPerTick``.
    :returns: int, subticks.
    :raises TypeError: / ValueError: as :func:`liquidation_fill_price`.

    Source: chain ``protocol/x/clob/keeper/liquidations.go`` (``ConvertFillablePriceToSubticks``).
    """
    ar = _int("atomic_resolution", atomic_resolution)
    qce = _int("quantum_conversion_exponent", quantum_conversion_exponent)
    spt = _int("subticks_per_tick", subticks_per_tick)
    if spt <= 0:
        raise ValueError(f"subticks_per_tick must be > 0, got {spt}")
    price = _fillable_price_fraction(
        position,
        total_net_collateral,
        total_maintenance_margin,
        bankruptcy_adjustment,
        spread_to_maintenance_margin_ratio,
    )
    e = ar - qce + 6
    subticks = price * 10**e if e >= 0 else price / 10 ** (-e)
    n, d = subticks.numerator, subticks.denominator
    if position.size > 0:  # liquidating a long: sell, round up
        st = _ceil_div(n, d)
        st = _ceil_div(st, spt) * spt
    else:
        st = n // d
        st = (st // spt) * spt
    top = _MAX_UINT64 - _MAX_UINT64 % spt
    return min(max(st, spt), top)


def bankruptcy_quote(
    position: PositionRisk,
    delta_size: Decimal,
    total_net_collateral: Decimal,
    total_maintenance_margin: Decimal,
) -> Decimal:
    """Quote the account must receive for closing ``delta_size`` at the bankruptcy price, USD.

    ``-dNNV - floor(TNC * |dMMR| / TMMR)`` in quote quantums, where ``dNNV`` and ``dMMR`` are
    the position's net notional and maintenance margin after minus before the close
    (chain-rounded, whole position), and the floor is Euclidean (toward -infinity), so
    the result rounds toward +infinity. Positive when selling a long, negative (an amount
    paid) when buying back a short.

    :param position: :class:`PositionRisk` (nonzero size).
    :param delta_size: Decimal, signed base units, opposite sign to ``position.size`` and
        ``|delta_size| <= |position.size|``.
    :param total_net_collateral: Decimal USD, account TNC.
    :param total_maintenance_margin: Decimal USD > 0, account TMMR.
    :returns: Decimal USD, signed, a whole number of quote quantums.
    :raises TypeError: for floats.
    :raises ValueError: for an invalid delta or ``TMMR <= 0``.

    Source: chain ``protocol/x/clob/keeper/liquidations.go`` (``GetBankruptcyPriceInQuoteQuantums``).
    """
    return _qq_to_usd(_bankruptcy_qq(position, delta_size, total_net_collateral, total_maintenance_margin))


def _bankruptcy_qq(
    position: PositionRisk, delta_size: Decimal, total_net_collateral: Decimal, total_maintenance_margin: Decimal
) -> int:
    ds = _num("delta_size", delta_size)
    tnc = _num("total_net_collateral", total_net_collateral)
    tmmr = _num("total_maintenance_margin", total_maintenance_margin)
    s = position.size
    if (s > 0) == (ds > 0) or not s or not ds or abs(ds) > abs(s):
        raise ValueError(
            f"delta_size {ds} must reduce the position {s}: opposite sign and |delta| <= |size|"
        )
    if tmmr <= 0:
        raise ValueError(f"total_maintenance_margin must be > 0, got {tmmr}")
    after = position.with_size(_add(s, ds))
    d_nnv = after.notional_quote_quantums - position.notional_quote_quantums
    d_mmr = after.maintenance_margin_quote_quantums - position.maintenance_margin_quote_quantums
    a, b = tnc.as_integer_ratio()
    c, d = tmmr.as_integer_ratio()
    # floor(TNC * |dMMR| / TMMR) with TNC = a/b, TMMR = c/d (USD; units cancel to quote quantums)
    cut = (a * d * abs(d_mmr)) // (b * c)
    return -d_nnv - cut


def bankruptcy_price(
    position: PositionRisk,
    delta_size: Decimal,
    total_net_collateral: Decimal,
    total_maintenance_margin: Decimal,
) -> Decimal:
    """Bankruptcy price for closing ``delta_size`` of ``position``, USD per base unit.

    ``-bankruptcy_quote / delta_size``: the price at which the close uses up exactly the
    share ``|dMMR| / TMMR`` of the account's net collateral. Filling a liquidation better
    than this pays a fee to the insurance fund; worse, the insurance fund pays.

    :param position: :class:`PositionRisk`.
    :param delta_size: Decimal, signed base units (reduces the position).
    :param total_net_collateral: Decimal USD.
    :param total_maintenance_margin: Decimal USD > 0.
    :returns: Decimal USD (28 digits).
    :raises TypeError: / ValueError: as :func:`bankruptcy_quote`.

    Source: chain ``protocol/x/clob/keeper/liquidations.go`` (``GetBankruptcyPriceInQuoteQuantums``).
    """
    qq = _bankruptcy_qq(position, delta_size, total_net_collateral, total_maintenance_margin)
    ds = _num("delta_size", delta_size)
    return _fraction_to_decimal(Fraction(-qq, ONE_MILLION) / Fraction(ds))


def liquidation_fee(
    quote_received: Decimal,
    bankruptcy_quote: Decimal,
    max_liquidation_fee_ppm: int = DEFAULT_MAX_LIQUIDATION_FEE_PPM,
) -> Decimal:
    """Insurance-fund delta of a liquidation fill, USD: the fee, or the fund's payment if negative.

    ``delta = quote_received - bankruptcy_quote``. If ``delta <= 0`` the insurance fund
    covers the loss and ``delta`` (<= 0) is returned. Otherwise the liquidated account pays
    ``min(delta, floor(|quote_received| * max_liquidation_fee_ppm / 1e6))`` to the fund.

    :param quote_received: Decimal USD, signed quote of the fill for the liquidated account
        (positive when it sells, negative when it buys), e.g. from :func:`fill_quote_quantums`.
    :param bankruptcy_quote: Decimal USD, :func:`bankruptcy_quote` for the same amount.
    :param max_liquidation_fee_ppm: int >= 0, genesis default 15,000 (1.5%).
    :returns: Decimal USD; > 0 fee paid to the insurance fund, <= 0 paid by the fund.
    :raises TypeError: for floats.
    :raises ValueError: for a negative fee ppm.

    Source: chain ``protocol/x/clob/keeper/liquidations.go`` (``GetLiquidationInsuranceFundDelta``).
    """
    qr = _num("quote_received", quote_received)
    bq = _num("bankruptcy_quote", bankruptcy_quote)
    ppm = _int("max_liquidation_fee_ppm", max_liquidation_fee_ppm)
    if ppm < 0:
        raise ValueError(f"max_liquidation_fee_ppm must not be negative, got {ppm}")
    delta = _sub(qr, bq)
    if delta <= 0:
        return delta
    n, d = _scaled_ratio(abs(qr), 6)
    max_fee = _qq_to_usd((n * ppm) // (d * ONE_MILLION))
    return max_fee if max_fee < delta else delta


# ---------------------------------------------------------------------------
# Funding
# ---------------------------------------------------------------------------


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
