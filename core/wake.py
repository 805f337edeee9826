"""Event-driven decisions: what may wake a strategy between its scheduled decision cycles.

A strategy asks to be woken by events with a :class:`Wake` spec (``BaseStrategy.wake_on``, or
its :meth:`~perpbot.core.strategy.BaseStrategy.wake` method, e.g. from a parameter):

- ``bbo``: the top of book of one of the run's markets changed (best bid or best ask price,
  from the book, or from the quote on a quote-fed market);
- ``trade``: a public trade printed on one of the run's markets;
- ``score:<field>:<threshold>``: a 0-100 score of :class:`~perpbot.core.signals.Scores`
  (``momentum``, ``volume``, ...) crossed ``threshold`` (either direction), checked right
  after the signal engine's update for that event;
- ``every:<seconds>``: the cadence of the scheduled cycle while woken by events (default:
  ``decision_interval_s``, as without wake-ups).

Text form (a config value or a strategy parameter): the tokens joined by commas, e.g.
``"bbo,trade"`` or ``"trade,score:momentum:70,every:5"``. The empty string asks for nothing
(decisions on the schedule only, as before).

Semantics (carried out by :mod:`perpbot.core.bot.wake` and the event loop): a waking event
makes the decision right after it is applied, at that event's time (market time), with
the state of every event up to and including it, the same in replay and live whatever
the feed's batching. ``decision_interval_s`` is then the least market time between two
event-driven decisions (a throttle): a wake-up inside that gap is held and decided at the
first event at or after the gap's end (reason kept, delay recorded), never dropped. The
scheduled cycle keeps its own timer, which wake-ups never move. Each decision's trigger
is a :class:`WakeEvent` (``BaseStrategy.woken_by``); the orders of an event-driven decision
carry it in their reason (so the journal keeps it).

Imports only :mod:`perpbot.core` modules.
"""

from __future__ import annotations

import difflib
from decimal import Decimal, InvalidOperation

import attrs

#: score fields a ``score:`` wake-up may watch (floats 0-100 of perpbot.core.signals.Scores)
SCORE_FIELDS = (
    "momentum",
    "momentum_fast",
    "momentum_slow",
    "volume",
    "volatility",
    "orderbook",
    "funding",
)
#: the token kinds of the text form
WAKE_KINDS = ("bbo", "trade", "score", "every")


@attrs.frozen
class ScoreCrossing:
    """Wake when ``field`` of a market's scores crosses ``threshold`` (0-100), either direction.

    A crossing is a change of side between two checks: below ``threshold`` then at or above
    it, or the reverse. The first value seen only sets the side.
    """

    field: str
    threshold: float

    def text(self) -> str:
        """The token form, ``score:<field>:<threshold>``."""
        return f"score:{self.field}:{self.threshold:g}"


def _closest(word: str, names) -> str:
    got = difflib.get_close_matches(word, names, n=1)
    return f" (closest: {got[0]!r})" if got else ""


@attrs.frozen
class Wake:
    """What wakes a strategy between scheduled decision cycles (see the module docstring).

    :param bbo: wake on a top-of-book change.
    :param trade: wake on a public trade.
    :param scores: :class:`ScoreCrossing` thresholds.
    :param every_s: seconds of clock time between scheduled cycles while woken by events
        (None: ``decision_interval_s``).
    """

    bbo: bool = False
    trade: bool = False
    scores: tuple = ()
    every_s: Decimal | None = None

    @property
    def active(self) -> bool:
        """True when some event can wake the strategy (a spec with only ``every`` is not)."""
        return self.bbo or self.trade or bool(self.scores)

    def text(self) -> str:
        """The comma-separated text form (parses back to an equal spec)."""
        parts = (["bbo"] if self.bbo else []) + (["trade"] if self.trade else [])
        parts += [c.text() for c in self.scores]
        if self.every_s is not None:
            parts.append(f"every:{self.every_s}")
        return ",".join(parts)

    @classmethod
    def parse(cls, text: "str | Wake | None") -> "Wake":
        """A spec from its text form (a :class:`Wake` is returned as is; None or "" ask for nothing).

        :raises ValueError: one line naming the bad token (and the closest valid kind or
            score field): an unknown kind, a score field that is not a 0-100 score, a threshold
            outside 0-100, a non-positive ``every``.
        """
        if isinstance(text, Wake):
            return text
        if text is None:
            return cls()
        if not isinstance(text, str):
            raise ValueError(f"wake_on: expected text like 'bbo,trade', got {type(text).__name__}")
        bbo = trade = False
        scores: list[ScoreCrossing] = []
        every = None
        for raw in text.split(","):
            token = raw.strip()
            if not token:
                continue
            kind, _, rest = token.partition(":")
            kind = kind.strip().lower()
            if kind == "bbo" and not rest:
                bbo = True
            elif kind == "trade" and not rest:
                trade = True
            elif kind == "score":
                scores.append(_parse_score(token, rest))
            elif kind == "every":
                every = _parse_every(token, rest)
            elif kind in ("bbo", "trade"):
                raise ValueError(f"wake_on: {token!r} takes no argument (write {kind!r})")
            else:
                raise ValueError(f"wake_on: unknown wake-up {token!r}{_closest(kind, WAKE_KINDS)}; "
                                 f"valid: bbo, trade, score:<field>:<0-100>, every:<seconds>")
        return cls(bbo=bbo, trade=trade, scores=tuple(scores), every_s=every)


def _parse_score(token: str, rest: str) -> ScoreCrossing:
    field, sep, value = rest.partition(":")
    field = field.strip()
    if not sep or not field:
        raise ValueError(f"wake_on: {token!r} must be score:<field>:<threshold>, e.g. score:momentum:70")
    if field not in SCORE_FIELDS:
        raise ValueError(f"wake_on: {token!r}: unknown score {field!r}{_closest(field, SCORE_FIELDS)}; "
                         f"valid: {', '.join(SCORE_FIELDS)}")
    try:
        threshold = float(Decimal(value.strip()))
    except (InvalidOperation, ValueError):
        raise ValueError(f"wake_on: {token!r}: threshold {value.strip()!r} is not a number") from None
    if not 0 <= threshold <= 100:
        raise ValueError(f"wake_on: {token!r}: threshold must be within 0-100, got {value.strip()}")
    return ScoreCrossing(field, threshold)


def _parse_every(token: str, rest: str) -> Decimal:
    text = rest.strip().removesuffix("s")
    try:
        every = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"wake_on: {token!r}: {rest.strip()!r} is not a number of seconds") from None
    if not every.is_finite() or every <= 0:
        raise ValueError(f"wake_on: {token!r}: every must be a positive number of seconds, got {rest.strip()}")
    return every


@attrs.frozen
class WakeEvent:
    """Why a decision ran: the scheduled cycle, or the event that woke the strategy.

    :param kind: ``"schedule"``, ``"bbo"``, ``"trade"`` or ``"score"``.
    :param ticker: the market of the waking event ("" for the schedule).
    :param ts_ns: the waking event's time (ns since the epoch; the decision time for the schedule).
    :param detail: a few words, e.g. ``"momentum crossed 70 upward (71.3)"``.
    :param decided_ns: market time of the decision: the time (ns) of the event right after
        which it ran; later than ``ts_ns`` when the throttle held the wake-up (0: not decided yet).
    """

    kind: str
    ticker: str = ""
    ts_ns: int = 0
    detail: str = ""
    decided_ns: int = 0

    @property
    def delay_ns(self) -> int:
        """Market time from the waking event to the decision (ns; 0 when decided at once)."""
        return max(0, self.decided_ns - self.ts_ns) if self.decided_ns else 0

    def describe(self) -> str:
        """One short line for logs and the journal, e.g. ``"trade BTC-USD at 1732262400.123456789"``."""
        kind = self.kind
        if kind == "schedule":
            return "schedule"
        ts = self.ts_ns
        s, ns = divmod(ts, 1_000_000_000)
        detail = self.detail
        text = f"{kind} {self.ticker} at {s}.{ns:09d} ({detail})" if detail else f"{kind} {self.ticker} at {s}.{ns:09d}"
        decided = self.decided_ns
        if decided and decided > ts:  # delay_ns > 0
            text += f", held {(decided - ts) / 1e6:.3f} ms by the throttle"
        return text


#: the trigger of a scheduled decision cycle
SCHEDULE = WakeEvent("schedule")
