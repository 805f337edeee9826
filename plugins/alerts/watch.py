"""What the alerts watch on the run clock: markets whose feed is down, and UTC day boundaries.

:class:`FeedWatch` follows the markets the bot pauses (:meth:`RunView.paused
<perpbot.core.bot.view.RunView.paused>`: a feed that reported itself unhealthy, no book
snapshot, a crossed book, stale data) and the feed's own ``FeedStatus`` events (the
``on_feed_status`` hook, which dates a spell exactly). A market down for ``down_ns`` or more
yields ONE "down" event; when it is usable again after that, ONE "back" event. A market that
recovers sooner yields nothing.

:class:`DayTracker` notices when the run clock (market time in replays, wall time live)
crosses a UTC midnight and hands back the figures of the day that ended: the equity change
and the changes of realized PnL, fees and net funding (USD) taken from the run's
:class:`~perpbot.core.report.RunSummary`, and the fills counted. Imports nothing of perpbot
at run time.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import attrs

DAY_NS = 86_400 * 1_000_000_000


@attrs.define
class Spell:
    """One market's current down spell: since when (ns), why (the latest reason), alerted yet."""

    since_ns: int
    reason: str
    alerted: bool = False


@attrs.frozen
class FeedEvent:
    """``kind`` ``"down"`` or ``"back"`` for ``ticker``; ``since_ns`` the spell's start, ``now_ns`` the check's time."""

    kind: str
    ticker: str
    reason: str
    since_ns: int
    now_ns: int


class FeedWatch:
    """Down spells per market, and the events to alert on.

    :param down_ns: how long (ns of run clock) a market stays down before its "down" event.
    """

    def __init__(self, down_ns: int):
        self.down_ns = down_ns
        #: qualified ticker -> its current :class:`Spell`
        self.spells: dict[str, Spell] = {}

    def status(self, ticker: str, healthy: bool, reason: str, ts_ns: int) -> None:
        """A ``FeedStatus`` from the feed: an unhealthy one starts a spell at its own time (the
        end of a spell is left to :meth:`update`: a market is usable only once
        ``paused()`` no longer lists it)."""
        if not healthy and ticker not in self.spells:
            self.spells[ticker] = Spell(ts_ns, reason or "feed reported unhealthy")

    def update(self, now_ns: int, paused: dict[str, str]) -> list[FeedEvent]:
        """Check the markets paused at ``now_ns`` (ticker -> reason): the events due now."""
        out = []
        for ticker, reason in paused.items():
            spell = self.spells.get(ticker)
            if spell is None:
                spell = self.spells[ticker] = Spell(now_ns, reason)
            spell.reason = reason
            if not spell.alerted and now_ns - spell.since_ns >= self.down_ns:
                spell.alerted = True
                out.append(FeedEvent("down", ticker, reason, spell.since_ns, now_ns))
        for ticker in [t for t in self.spells if t not in paused]:
            spell = self.spells.pop(ticker)
            if spell.alerted:
                out.append(FeedEvent("back", ticker, spell.reason, spell.since_ns, now_ns))
        return out


def day_label(day: int) -> str:
    """``2024-08-08`` for a day number (days since 1970-01-01 UTC)."""
    return datetime.fromtimestamp(day * 86_400, tz=timezone.utc).strftime("%Y-%m-%d")


@attrs.frozen
class Marks:
    """The run's figures at one moment, USD: equity, realized PnL, fees paid, net funding; fills so far."""

    equity: Decimal
    realized: Decimal
    fees: Decimal
    funding: Decimal
    fills: int


class DayTracker:
    """The start-of-day figures of the current UTC day of the run clock."""

    def __init__(self):
        self.day: int | None = None
        self.start: Marks | None = None

    def begin(self, now_ns: int, marks: Marks) -> None:
        """Start tracking at ``now_ns`` (the first time the run's clock holds market time)."""
        self.day = now_ns // DAY_NS
        self.start = marks

    def crossed(self, now_ns: int) -> bool:
        """True when ``now_ns`` is in a later UTC day than the one tracked."""
        return self.day is not None and now_ns // DAY_NS > self.day

    def close_day(self, now_ns: int, marks: Marks, positions: Any = ()) -> tuple[str, Marks]:
        """End the tracked day at ``now_ns`` with the figures ``marks``: returns its label and
        the changes over it (``equity`` is the end equity, the rest are differences), and starts
        the next day from ``marks``. A gap of several days in the data is one label
        ``first to last``."""
        first, last = self.day, now_ns // DAY_NS - 1
        label = day_label(first) if last <= first else f"{day_label(first)} to {day_label(last)}"
        delta = self.delta(marks)
        self.day, self.start = now_ns // DAY_NS, marks
        return label, delta

    def delta(self, marks: Marks) -> Marks:
        """The figures since the day started: ``equity`` is ``marks.equity``, the rest changes."""
        s = self.start or marks
        return Marks(marks.equity, marks.realized - s.realized, marks.fees - s.fees, marks.funding - s.funding,
                     marks.fills - s.fills)

    def equity_change(self, marks: Marks) -> Decimal:
        """Equity now minus equity at the day's start, USD."""
        return marks.equity - (self.start or marks).equity
