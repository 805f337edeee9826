"""Score values and constants: :class:`Scores`, :class:`SignalConfig`, :func:`squash`, :func:`ratio_score`.

The formulas are in the :mod:`perpbot.core.signals` docstring; import these names
from there.
"""

from __future__ import annotations

import math

import attrs

from perpbot.core.params import param

NS = 1_000_000_000
LN2 = math.log(2.0)


def squash(x: float, k: float) -> float:
    """``50 + 50 * tanh(x / k)``: maps any real ``x`` into (0, 100), 0 -> 50."""
    return 50.0 + 50.0 * math.tanh(x / k)


def ratio_score(ratio: float, k: float) -> float:
    """Score of a short/long ratio ``R > 0``: ``squash(ln R, k)``; k = 2 gives ``100 R / (1 + R)``.

    ``R <= 0`` (nothing in the short window) scores 0; a non-finite ``R`` scores 50.
    """
    if ratio <= 0.0:
        return 0.0
    if not math.isfinite(ratio):
        return 50.0
    return 50.0 + 50.0 * math.tanh(math.log(ratio) / k)


def _positive(instance, attribute, value):
    if not (value > 0) or not math.isfinite(value):
        raise ValueError(f"signals: {attribute.name} must be a positive number, got {value!r}")


def _fraction(instance, attribute, value):
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"signals: {attribute.name} must be within [0, 1], got {value!r}")


def _pos_int(instance, attribute, value):
    if value < 1:
        raise ValueError(f"signals: {attribute.name} must be >= 1, got {value!r}")


def _f(default: float, help: str, validator=_positive):
    return param(float(default), help, validator, converter=float)


def _i(default: int, help: str):
    return param(int(default), help, _pos_int, converter=int)


@attrs.frozen
class SignalConfig:
    """Half-lives (seconds), sampling cadence and squashing constants of the scores.

    All fields accept ints, floats, Decimals or numeric strings (stored as float:
    these are signal parameters, not money). See the module docstring for the formulas.
    """

    sample_interval_ms: int = _i(1000, "price/volume sampling grid, ms of event time")
    book_interval_ms: int = _i(500, "order book score recomputed at most this often, ms of event time")
    book_levels: int = _i(10, "levels per side in the order book imbalance")
    momentum_fast_half_life_s: float = _f(30, "fast momentum half-life, seconds")
    momentum_slow_half_life_s: float = _f(300, "slow momentum half-life, seconds")
    momentum_fast_weight: float = _f(0.5, "weight of fast momentum in the momentum composite", _fraction)
    momentum_k: float = _f(2.0, "momentum squash scale: z of k standard deviations -> 50 +/- 38")
    volume_short_half_life_s: float = _f(30, "short volume average half-life, seconds")
    volume_long_half_life_s: float = _f(600, "long (baseline) volume average half-life, seconds")
    volume_k: float = _f(2.0, "volume squash scale on ln(short/long); 2 gives 100R/(1+R)")
    volatility_short_half_life_s: float = _f(60, "short realized-variance half-life, seconds")
    volatility_long_half_life_s: float = _f(900, "long (baseline) realized-variance half-life, seconds")
    volatility_k: float = _f(2.0, "volatility squash scale on ln(var short/var long); 2 gives 100R/(1+R)")
    orderbook_half_life_s: float = _f(5, "smoothing half-life of the book imbalance, seconds")
    depth_half_life_s: float = _f(300, "half-life of the top-N depth baseline, seconds")
    spread_ref_bps: float = _f(5, "spread (bps of mid) at which the book signal is halved")
    funding_scale_1h: float = _f(0.0001, "funding squash scale, per-hour rate (0.0001 = 1 bp/h)")
    warmup_s: float = _f(60, "event time (seconds) of samples before scores are 'warm'")
    warmup_bars: int = _i(20, "bars before scores are 'warm' on bar-only data")
    momentum_fast_bars: float = _f(3, "bar data: floor of the fast momentum half-life, in bars")
    momentum_slow_bars: float = _f(12, "bar data: floor of the slow momentum half-life, in bars")
    volume_short_bars: float = _f(3, "bar data: floor of the short volume half-life, in bars")
    volume_long_bars: float = _f(48, "bar data: floor of the long volume half-life, in bars")
    volatility_short_bars: float = _f(6, "bar data: floor of the short variance half-life, in bars")
    volatility_long_bars: float = _f(96, "bar data: floor of the long variance half-life, in bars")

    def __attrs_post_init__(self):
        pairs = (
            ("momentum_fast_half_life_s", "momentum_slow_half_life_s"),
            ("volume_short_half_life_s", "volume_long_half_life_s"),
            ("volatility_short_half_life_s", "volatility_long_half_life_s"),
        )
        for short, long in pairs:
            if getattr(self, short) >= getattr(self, long):
                raise ValueError(
                    f"signals: {short} ({getattr(self, short)}) must be shorter than {long} ({getattr(self, long)})"
                )


@attrs.define(slots=True, eq=False)
class Scores:
    """One market's scores, each a float in [0, 100] (see :mod:`perpbot.core.signals` for formulas).

    Signed scores are centred on 50: ``momentum*`` (> 50 up-trend), ``orderbook``
    (> 50 bid-heavy) and ``funding`` (attractiveness for a LONG: > 50 longs are
    paid). ``volume`` and ``volatility`` are direction-free (> 50: more than the
    market's own recent baseline).

    Diagnostics (for tables and dashboards): ``imbalance`` (raw top-N imbalance,
    -1..1), ``spread_bps``, ``depth`` (top-N bid+ask size, base units),
    ``volume_ratio`` and ``volatility_ratio`` (short/long), ``sigma_1s`` (per-second
    standard deviation of log returns, long average), ``funding_rate_1h`` (float
    per-hour rate or None), ``samples`` (price samples taken), ``mode``
    (``"ticks"`` or ``"bars"``).

    ``strategy_composite`` / :attr:`composite`: set by a composite-scoring strategy
    (the sniper), not by the engine; see :attr:`composite`.
    """

    momentum: float = 50.0
    momentum_fast: float = 50.0
    momentum_slow: float = 50.0
    volume: float = 50.0
    volatility: float = 50.0
    orderbook: float = 50.0
    funding: float = 50.0
    updated_ns: int = 0
    warm: bool = False
    book_known: bool = False
    funding_known: bool = False
    imbalance: float = 0.0
    spread_bps: float | None = None
    depth: float = 0.0
    volume_ratio: float = 1.0
    volatility_ratio: float = 1.0
    sigma_1s: float = 0.0
    funding_rate_1h: float | None = None
    samples: int = 0
    mode: str = ""
    strategy_composite: float | None = None

    @property
    def composite(self) -> float:
        """The deciding strategy's 0-100 conviction for this market (e.g. the sniper's
        direction-aware weighted composite), read by score-aware position sizers.

        The engine does not compute it (weights and direction are a strategy's business):
        a strategy sets ``strategy_composite``. Until one does, reading ``composite``
        raises AttributeError, so ``hasattr(scores, "composite")`` and
        ``getattr(scores, "composite", None)`` both mean "no conviction known".
        """
        value = self.strategy_composite
        if value is None:
            raise AttributeError("composite: no strategy has scored this market yet")
        return value

    def as_dict(self) -> dict:
        """All fields as a plain dict (JSON-ready)."""
        return attrs.asdict(self)
