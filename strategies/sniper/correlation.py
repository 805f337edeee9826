"""Rolling correlation of bar returns between two markets (the sniper's stacking guard).

Inputs are the closed OHLCV bars each :class:`perpbot.MarketState` keeps
(``state.bars.bars``: bars built from trades, or a bar feed's bars). Bars are
matched by their close time; the correlation is Pearson's on the log returns
between consecutive common bars (floats: this is a statistic, not money).
"""

from __future__ import annotations

import math
from typing import Any, Sequence


def _closes(state: Any, lookback: int) -> dict[int, float]:
    """``{close_ts_ns: close}`` of the last ``lookback + 1`` closed bars (empty if none)."""
    builder = getattr(state, "bars", None)
    bars = getattr(builder, "bars", None)
    if not bars:
        return {}
    n = len(bars)
    take = min(n, lookback + 1)
    out = {}
    for i in range(n - take, n):
        b = bars[i]
        c = float(b.close)
        if c > 0.0:
            out[b.ts_ns] = c
    return out


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson correlation of two equal-length samples; None when undefined (n < 2 or zero variance)."""
    n = len(xs)
    if n < 2 or n != len(ys):
        return None
    mx = sum(xs) / n
    my = sum(ys) / n
    sxy = sxx = syy = 0.0
    for x, y in zip(xs, ys):
        dx = x - mx
        dy = y - my
        sxy += dx * dy
        sxx += dx * dx
        syy += dy * dy
    if sxx <= 0.0 or syy <= 0.0:
        return None
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def bar_return_correlation(state_a: Any, state_b: Any, lookback: int, min_returns: int) -> tuple[float | None, int]:
    """Correlation of the two markets' bar log returns over the last ``lookback`` bars.

    :returns: ``(rho, n)``: rho in [-1, 1], or None when fewer than ``min_returns``
        common returns exist (or one series is flat); ``n`` = returns used.
    """
    a = _closes(state_a, lookback)
    b = _closes(state_b, lookback)
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return None, 0
    ra, rb = [], []
    prev = common[0]
    for ts in common[1:]:
        ra.append(math.log(a[ts] / a[prev]))
        rb.append(math.log(b[ts] / b[prev]))
        prev = ts
    n = len(ra)
    if n < min_returns:
        return None, n
    return pearson(ra, rb), n
