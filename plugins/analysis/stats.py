"""Small O(1) statistics the built-in analyzers share: exponentially weighted moments, Wilder averages,
and detection of a market's newly closed bar."""

from __future__ import annotations

import math
from typing import Any


def alpha_of(half_life: float) -> float:
    """Smoothing factor of an exponential average whose weights halve every ``half_life`` updates.

    ``alpha = 1 - 0.5 ** (1 / half_life)``.

    :raises ValueError: when ``half_life`` is not positive.
    """
    if not half_life > 0:
        raise ValueError(f"half_life must be > 0, got {half_life}")
    return 1.0 - 0.5 ** (1.0 / half_life)


class EW:
    """Exponentially weighted mean and variance of a stream of floats (count-based decay).

    Incremental form from T. Finch, "Incremental calculation of weighted mean and variance"
    (University of Cambridge, 2009), section 9: ``d = x - mean; mean += a * d;
    var = (1 - a) * (var + a * d * d)``.

    :param half_life: updates after which an observation's weight has halved.
    """

    __slots__ = ("alpha", "mean", "var", "n")

    def __init__(self, half_life: float):
        self.alpha = alpha_of(half_life)
        self.mean = 0.0
        self.var = 0.0
        self.n = 0

    def update(self, x: float) -> None:
        """Add one observation."""
        if self.n == 0:
            self.mean = x
            self.var = 0.0
        else:
            a = self.alpha
            d = x - self.mean
            self.mean += a * d
            self.var = (1.0 - a) * (self.var + a * d * d)
        self.n += 1

    @property
    def std(self) -> float:
        """Weighted standard deviation (0.0 before two observations)."""
        return math.sqrt(self.var) if self.var > 0 else 0.0

    def z(self, x: float) -> float:
        """``(x - mean) / std``; 0.0 while the deviation is 0."""
        s = self.std
        return (x - self.mean) / s if s > 0 else 0.0

    @property
    def mean_se_factor(self) -> float:
        """``sqrt(a / (2 - a))``: standard error of this EW mean as a fraction of the data's std
        (variance of an EWMA of i.i.d. values is ``sigma^2 * a / (2 - a)``)."""
        a = self.alpha
        return math.sqrt(a / (2.0 - a))


class Wilder:
    """Wilder's running average (``avg += (x - avg) / n`` after an ``n``-sample simple-mean seed),
    as used by RSI and ATR (J. Welles Wilder, *New Concepts in Technical Trading Systems*, 1978).

    :param n: the period.
    """

    __slots__ = ("n", "value", "count", "_seed")

    def __init__(self, n: int):
        if n < 1:
            raise ValueError(f"period must be >= 1, got {n}")
        self.n = int(n)
        self.value = 0.0
        self.count = 0
        self._seed = 0.0

    def update(self, x: float) -> None:
        """Add one observation."""
        self.count += 1
        if self.count <= self.n:
            self._seed += x
            self.value = self._seed / self.count
        else:
            self.value += (x - self.value) / self.n

    @property
    def ready(self) -> bool:
        """True once ``n`` observations have been seen."""
        return self.count >= self.n


class ClosedBars:
    """Finds the bar a market closed since the last call, in O(1).

    Works for bar feeds (the state appends each :class:`~perpbot.core.model.Bar` event) and tick
    feeds (the state's bar builder closes a bar when a trade opens the next one).
    """

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = None

    def new(self, state: Any) -> Any:
        """The newly closed :class:`~perpbot.core.model.Bar` of ``state`` (a MarketState), or None."""
        bars = state.bars.bars
        if not bars:
            return None
        b = bars[-1]
        if b is self.last:
            return None
        self.last = b
        return b


class _BarMemo:
    __slots__ = ("bar", "values")

    def __init__(self) -> None:
        self.bar = None
        self.values = (0.0, 0.0, 0.0, 0.0, 0.0)


_MEMO = _BarMemo()


def bar_floats(bar: Any) -> tuple[float, float, float, float, float]:
    """``(open, high, low, close, volume)`` of a :class:`~perpbot.core.model.Bar` as floats.

    The last bar's conversion is remembered, so the analyzers that read the same bar convert
    its Decimals once (a Decimal-to-float conversion costs about as much as an analyzer's update).
    """
    m = _MEMO
    if bar is not m.bar:
        m.values = (float(bar.open), float(bar.high), float(bar.low), float(bar.close), float(bar.volume))
        m.bar = bar
    return m.values


def sign(x: float, dead: float = 0.0) -> int:
    """+1, -1, or 0 when ``|x| <= dead``."""
    if x > dead:
        return 1
    if x < -dead:
        return -1
    return 0


def clip(x: float, lo: float, hi: float) -> float:
    """``x`` limited to ``[lo, hi]`` (``nan`` becomes ``lo``)."""
    if not x >= lo:
        return lo
    return hi if x > hi else x


def pct(x: float) -> str:
    """A fraction as a percentage with two decimals, e.g. ``0.0123 -> '1.23%'``."""
    return f"{x * 100:.2f}%"
