"""Exact-number helpers of the domain model: Decimal conversion, step rounding, constants.

Everything here works on :class:`decimal.Decimal` (money, prices and sizes); a
binary ``float`` is refused where a money value is expected. Imported by every
other ``perpbot.core.model`` module; imports nothing of perpbot.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

ZERO = Decimal(0)
ONE = Decimal(1)


def to_decimal(value: Any, field: str = "value") -> Decimal:
    """Convert ``value`` (Decimal, int or str) to a finite Decimal.

    :param value: a Decimal, an int or a numeric string (surrounding blanks ignored).
    :param field: the field name used in error messages.
    :returns: the exact Decimal (ints and strings convert without rounding).
    :raises TypeError: for a float (binary floats never carry money here), a bool or any
        other type, naming ``field``.
    :raises ValueError: for a non-numeric or non-finite value, naming ``field``.
    """
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, bool):
        raise TypeError(f"{field}: expected a decimal number, got bool {value!r}")
    elif isinstance(value, int):
        return Decimal(value)
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{field}: not a number: {value!r}") from None
    elif isinstance(value, float):
        raise TypeError(
            f"{field}: got float {value!r}; pass a Decimal or a string (floats are inexact for money)"
        )
    else:
        raise TypeError(f"{field}: expected Decimal, int or str, got {type(value).__name__}")
    if not d.is_finite():
        raise ValueError(f"{field}: must be finite, got {value!r}")
    return d


def _dec(field_name: str):
    def convert(value: Any) -> Decimal:
        # a finite Decimal is kept as it is (to_decimal's answer, without the call)
        if type(value) is Decimal and value.is_finite():
            return value
        return to_decimal(value, field_name)

    return convert


def _opt_dec(field_name: str):
    def convert(value: Any) -> Decimal | None:
        if value is None or (type(value) is Decimal and value.is_finite()):
            return value
        return to_decimal(value, field_name)

    return convert


def _non_negative(instance, attribute, value):
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name}: must not be negative, got {value}")


def _positive(instance, attribute, value):
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name}: must be positive, got {value}")


def floor_to(value: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of ``step`` that is <= ``value`` (exact Decimal arithmetic).

    :param value: any Decimal (price USD or size in base units).
    :param step: positive increment (tick size or step size).
    :raises decimal.DivisionByZero: (an ArithmeticError) when ``step`` is 0.
    """
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def ceil_to(value: Decimal, step: Decimal) -> Decimal:
    """Smallest multiple of ``step`` that is >= ``value`` (exact Decimal arithmetic).

    :param value: any Decimal (price USD or size in base units).
    :param step: positive increment (tick size or step size).
    :raises decimal.DivisionByZero: (an ArithmeticError) when ``step`` is 0.
    """
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def is_multiple(value: Decimal, step: Decimal) -> bool:
    """True when ``value`` is an exact multiple of ``step`` (both Decimal, ``step`` non-zero)."""
    return (value % step) == 0


def finite_positive(value: Decimal) -> bool:
    """True when ``value`` is a finite positive Decimal (used by feeds to reject bad prices)."""
    return value.is_finite() and value > 0


def is_float(value: Any) -> bool:
    """True for a value that must not carry money: a binary ``float`` or a non-finite Decimal.

    Used by input checks to refuse inexact or NaN/Infinity amounts before they reach
    the order path.
    """
    return isinstance(value, float) or (isinstance(value, Decimal) and not value.is_finite())
