"""Grid level arithmetic for the range grid (pure functions, Decimal).

``grid_levels(lower, upper, n, spacing, tick)`` returns ``n`` prices from ``lower`` to
``upper`` inclusive:

- arithmetic: ``p_i = lower + i * (upper - lower) / (n - 1)``;
- geometric: ``p_i = lower * (upper / lower) ** (i / (n - 1))`` (equal ratios, the same
  percentage step between neighbours);

each floored to the tick (the same rounding for buys and sells, so a level is one price
whatever side trades on it). Levels that collapse onto the same tick are an error: the
range is too narrow for ``n`` levels.
"""

from __future__ import annotations

import enum
from decimal import ROUND_FLOOR, Decimal, localcontext


class Spacing(enum.Enum):
    """How range-grid levels are spaced: equal differences or equal ratios."""

    ARITHMETIC = "arithmetic"
    GEOMETRIC = "geometric"


def _floor_tick(p: Decimal, tick: Decimal) -> Decimal:
    return (p / tick).to_integral_value(rounding=ROUND_FLOOR) * tick


def grid_levels(lower: Decimal, upper: Decimal, n: int, spacing: Spacing, tick: Decimal) -> list[Decimal]:
    """``n`` level prices (USD, ascending, tick-aligned) between ``lower`` and ``upper``.

    :raises ValueError: ``lower >= upper``, ``n < 2``, non-positive prices, or two levels
        on the same tick.
    """
    if lower <= 0 or upper <= 0:
        raise ValueError(f"grid range must be positive, got {lower}..{upper}")
    if lower >= upper:
        raise ValueError(f"lower_price {lower} must be below upper_price {upper}")
    if n < 2:
        raise ValueError(f"levels must be at least 2, got {n}")
    out = []
    with localcontext() as ctx:
        ctx.prec = 34
        for i in range(n):
            if spacing is Spacing.ARITHMETIC:
                p = lower + (upper - lower) * i / (n - 1)
            else:
                p = lower * (upper / lower) ** (Decimal(i) / (n - 1))
            out.append(_floor_tick(p, tick))
    out[0] = _floor_tick(lower, tick)
    for a, b in zip(out, out[1:]):
        if b <= a:
            raise ValueError(f"levels {a} and {b} fall on the same tick {tick}: use fewer levels or a wider range")
    return out


def nearest_level(levels: list[Decimal], price: Decimal) -> int:
    """Index of the level (prices USD, ascending) closest to ``price`` USD (the lower one on a tie)."""
    best, best_d = 0, None
    for i, p in enumerate(levels):
        d = abs(p - price)
        if best_d is None or d < best_d:
            best, best_d = i, d
    return best
