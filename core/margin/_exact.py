"""Private arithmetic shared by the :mod:`perpbot.core.margin` modules (not public API).

Decimal contexts (exact arithmetic that raises instead of rounding; 28-digit quotients
independent of the caller's context), argument checks that reject floats by name, and
exact integer/rational rounding helpers. Imports only the standard library.
"""

from __future__ import annotations

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

#: Rounding mode meaning "the value must convert exactly; otherwise raise ValueError".
EXACT = "EXACT"

#: One million: ppm per unit, and quote quantums per USDC.
ONE_MILLION = 1_000_000

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
