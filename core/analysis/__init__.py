"""The analysis engine: analyzers, their interpretations, the hub and the confluence score.

Seed 003's "Analysis Engine" (``../shared/seeds/003_*``): per market, an
:class:`AnalysisHub` feeds every event to its :class:`Analyzer` modules (technical,
volume, orderflow, orderbook, price structure, derivatives sentiment: the built-ins live
in :mod:`perpbot.plugins.analysis`, registered through the ``register_analyzers`` hook),
each module gives an :class:`Interpretation` (direction, strength 0-100, confidence 0-1,
the reason in words), and the hub turns their agreement into one :class:`Confluence`
score per market with its contributing reasons.

Contract of an analyzer (what the hub relies on):

- ``on_event(state, ev)`` is called right after ``state.apply(ev)`` for every event whose
  type is in the analyzer's ``handles`` (the hub dispatches by type, so an analyzer never
  sees events it does not read); it is O(1): decayed or rolling state only, never a scan
  of the history.
- ``interpret(ts_ns)`` returns the current reading, or None while warming up.
- ``features()`` returns plain floats under stable names prefixed by the analyzer's name
  (``"orderflow.cvd_z"``); the set of names is ``feature_names`` and never changes with the
  data (a missing value is ``nan``), so a model trained on them can be checked against a run.

Offline, :func:`feature_rows` runs analyzers over an event iterator (bars, funding, open
interest) and yields sampled feature rows, the ML plugin's training input.

An ML model that validates signals is a :class:`SignalGate` (loaded through the
``load_signal_gate`` hook).

Everything here is floats: analysis values are not money; prices and sizes are
converted from Decimal once per event an analyzer reads.
"""

from __future__ import annotations

import abc
import math
from decimal import Decimal
from typing import Any, ClassVar, Mapping, Protocol, runtime_checkable

import attrs

from perpbot.core.params import did_you_mean

__all__ = [
    "Analyzer",
    "AnalysisHub",
    "Confluence",
    "Interpretation",
    "OpenInterest",
    "SignalGate",
    "combine",
    "feature_rows",
]

NS = 1_000_000_000


def _direction(inst: Any, attribute: Any, value: int) -> None:
    if value not in (-1, 0, 1):
        raise ValueError(f"{attribute.name} must be -1, 0 or +1, got {value!r}")


def _between(lo: float, hi: float):
    def check(inst: Any, attribute: Any, value: float) -> None:
        if not (lo <= value <= hi):
            raise ValueError(f"{attribute.name} must be in [{lo}, {hi}], got {value!r}")

    return check


@attrs.frozen
class Interpretation:
    """One analyzer's reading of one market at one time.

    :param analyzer: the analyzer's name, e.g. ``"orderflow"``.
    :param ticker: the market, e.g. ``"BTC-USD"`` (qualified ``"venue:TICKER"`` off the primary venue).
    :param direction: +1 long, -1 short, 0 neutral.
    :param strength: how strong the reading is, 0-100.
    :param confidence: how much the analyzer trusts it (data quantity and quality), 0-1.
    :param reason: the reading in words, e.g. ``"CVD rising 2.1 sd above its mean"``.
    :param venue: the venue the data came from, when known.
    :raises ValueError: a direction other than -1/0/+1, a strength outside 0-100 or a
        confidence outside 0-1 (naming the field and value).
    """

    analyzer: str
    ticker: str
    direction: int = attrs.field(validator=_direction)
    strength: float = attrs.field(validator=_between(0.0, 100.0))
    confidence: float = attrs.field(validator=_between(0.0, 1.0))
    reason: str
    venue: str | None = None

    @property
    def signed(self) -> float:
        """``direction * strength * confidence``: the reading's vote, -100..+100."""
        return self.direction * self.strength * self.confidence


@attrs.frozen
class Confluence:
    """Agreement of a market's interpretations, as one score.

    :param score: 0-100; the absolute weighted mean of the interpretations' votes
        (:attr:`Interpretation.signed`), so agreeing modules add up and disagreeing ones cancel.
    :param direction: +1 long, -1 short, 0 none (score 0 or no interpretation).
    :param reasons: the contributing readings in words, strongest first; readings against
        the direction are prefixed ``"against: "``.
    :param agreeing: how many non-neutral interpretations point the score's way.
    :param total: how many interpretations were combined.
    """

    score: float
    direction: int
    reasons: tuple[str, ...] = ()
    agreeing: int = 0
    total: int = 0


#: no interpretation at all
NO_CONFLUENCE = Confluence(0.0, 0, (), 0, 0)


def combine(interpretations, weights: Mapping[str, float] | None = None) -> Confluence:
    """Score weighting: one :class:`Confluence` from interpretations (of one market, any venues).

    ``net = sum(w_a * signed_i) / sum(w_a)`` over every interpretation ``i`` (neutral ones
    included: a module that sees nothing dilutes the score), ``w_a`` the weight of its
    analyzer (``weights[name]``, default 1.0; 0 leaves it out). ``score = min(100, |net|)``,
    ``direction = sign(net)``. The formula is this project's own.

    :param interpretations: iterable of :class:`Interpretation`.
    :param weights: analyzer name -> weight >= 0.
    :returns: the :class:`Confluence`; :data:`NO_CONFLUENCE` when nothing has weight.
    """
    num = 0.0
    den = 0.0
    parts = []
    for it in interpretations:
        w = 1.0 if weights is None else weights.get(it.analyzer, 1.0)
        if w <= 0:
            continue
        v = it.signed
        num += w * v
        den += w
        parts.append((w * v, it))
    if den <= 0:
        return NO_CONFLUENCE
    net = num / den
    score = min(100.0, abs(net))
    direction = 0 if score < 1e-9 else (1 if net > 0 else -1)
    parts.sort(key=lambda p: -abs(p[0]))
    reasons = []
    agreeing = 0
    for contrib, it in parts:
        if it.direction == 0:
            continue
        where = f"@{it.venue} " if it.venue else ""
        text = (f"{it.analyzer} {where}{'long' if it.direction > 0 else 'short'} "
                f"{it.strength:.0f} (conf {it.confidence:.2f}): {it.reason}")
        if direction != 0 and it.direction == direction:
            agreeing += 1
            reasons.append(text)
        else:
            reasons.append("against: " + text)
    return Confluence(round(score, 4), direction, tuple(reasons), agreeing, len(parts))


class Analyzer(abc.ABC):
    """One analysis module for one market (subclass it, register it with ``register_analyzers``).

    Subclasses set the class variables and implement :meth:`on_event`, :meth:`interpret`
    and :meth:`features`; they read their parameters from ``self.params`` (``defaults``
    merged with the given ones).

    :param ticker: the market analysed (qualified ``"venue:TICKER"`` off the primary venue).
    :param params: overrides of ``defaults`` (name -> number); None for the defaults.
    :raises ValueError: an unknown parameter (closest name given) or a non-numeric value.
    """

    #: registry name, e.g. ``"orderflow"``; feature names start with it and a dot
    name: ClassVar[str] = ""
    #: one line for ``runbot.py plugins`` / docs
    description: ClassVar[str] = ""
    #: event types (classes of :mod:`perpbot.core.model`, or :class:`OpenInterest`) the analyzer reads
    handles: ClassVar[tuple] = ()
    #: parameter name -> default (numbers)
    defaults: ClassVar[Mapping[str, float]] = {}
    #: every key :meth:`features` returns, in order (stable across runs and data)
    feature_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ticker: str, params: Mapping[str, Any] | None = None):
        self.ticker = ticker
        self.venue = ticker.split(":", 1)[0] if ":" in ticker else None
        merged = dict(self.defaults)
        for key, value in (params or {}).items():
            if key not in self.defaults:
                raise ValueError(f"analyzer {self.name}: unknown parameter {key!r}{did_you_mean(key, self.defaults)} "
                                 f"(known: {', '.join(sorted(self.defaults)) or 'none'})")
            try:
                merged[key] = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"analyzer {self.name}: parameter {key} must be a number, got {value!r}") from None
            if not math.isfinite(merged[key]):
                raise ValueError(f"analyzer {self.name}: parameter {key} must be finite, got {value!r}")
        self.params: dict[str, float] = merged

    @abc.abstractmethod
    def on_event(self, state: Any, ev: Any) -> None:
        """Update from one event, after ``state.apply(ev)``; O(1).

        :param state: the market's :class:`~perpbot.core.state.MarketState`.
        :param ev: a :mod:`perpbot.core.model` event of a type in ``handles``.
        """

    @abc.abstractmethod
    def interpret(self, ts_ns: int) -> Interpretation | None:
        """The current reading at ``ts_ns`` (ns since the epoch), or None while warming up."""

    @abc.abstractmethod
    def features(self) -> dict[str, float]:
        """Current feature values: exactly ``feature_names`` as keys, floats (``nan`` when unknown)."""

    def make(self, direction: int, strength: float, confidence: float, reason: str) -> Interpretation:
        """An :class:`Interpretation` of this analyzer, clamping strength to 0-100 and confidence to 0-1."""
        s = 0.0 if not math.isfinite(strength) else min(100.0, max(0.0, strength))
        c = 0.0 if not math.isfinite(confidence) else min(1.0, max(0.0, confidence))
        return Interpretation(self.name, self.ticker, direction if s > 0 else 0, s, c, reason, self.venue)


@attrs.frozen
class OpenInterest:
    """An open-interest sample, an input of the derivatives-sentiment analyzer.

    Not a :mod:`perpbot.core.model` event (no feed emits it yet; :class:`MarketState` ignores
    it): the offline :func:`feature_rows` and tests feed it; a feed's
    :class:`~perpbot.core.model.MarketInfo` updates (``market.open_interest``) are the live source.

    :param ticker: the market.
    :param ts_ns: sample time, ns since the epoch.
    :param open_interest: open interest, base units (or contracts; only its changes are used).
    :param long_short_ratio: the venue's published long/short account ratio, when it has one.
    """

    ticker: str
    ts_ns: int
    open_interest: Decimal
    long_short_ratio: float | None = None


@runtime_checkable
class SignalGate(Protocol):
    """ML validation of signals: a model's probability that a signal beats its costs.

    Implemented by the ML plugin (``load_signal_gate`` hook). A strategy passes the
    current :meth:`AnalysisHub.features` and trades only when ``probability >= threshold``.
    """

    #: the probability a signal needs to be taken, 0-1
    threshold: float

    def probability(self, features: Mapping[str, float]) -> float:
        """Probability (0-1) that a signal taken now beats round-trip costs over the model's horizon.

        :raises ValueError: when ``features`` lack a feature the model was trained on (naming it).
        """

    def describe(self) -> str:
        """One line naming the model (file, horizon, training window, metrics)."""


from perpbot.core.analysis.hub import AnalysisHub, build_hubs, feature_rows, market_confluence  # noqa: E402

__all__ += ["build_hubs", "market_confluence"]
