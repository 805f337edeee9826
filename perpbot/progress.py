"""The command line's replay progress bar: market time done, events per second and an ETA.

The bot draws nothing: it hands a :class:`~perpbot.core.feed.ProgressUpdate` to the
observers registered with ``TradingBot.add_progress_observer`` (every 256 batches and
once at the end). This module turns those updates into figures
(:class:`ProgressTracker`, no terminal needed) and draws them with rich
(:class:`ReplayProgressBar`), e.g.::

    replay ━━━━━━━━━━━━━━━━━━━╸━━━━━━━━━━━━━━━━━━━━  48.7%  2024-02-18 13:05:00 UTC  4,120 events/s  ETA 0:00:03

The fraction is the feed's ``progress()``: for the replay feed, market time since the
first replayed event over the data's whole span (``perpbot/exchanges/replay/feed.py``),
so bar files, tick recordings and funding files all advance evenly with the clock.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable

import attrs

from perpbot.core.feed import ProgressUpdate


@attrs.frozen
class ProgressFigures:
    """What the bar shows at one update.

    :ivar fraction: 0..1 of the data replayed (never decreases), None while the feed
        does not know the total yet.
    :ivar eta_s: wall seconds left at the pace since the first update, None until there
        are two measurements (0 once the data has ended).
    :ivar events: market events processed (the run summary's unit).
    :ivar events_per_s: events per wall second since the first update.
    :ivar elapsed_s: wall seconds since the tracker was made.
    :ivar market_ns: the bot's clock (ns since the epoch).
    :ivar final: the last update of the run.
    """

    fraction: float | None
    eta_s: float | None
    events: int
    events_per_s: float
    elapsed_s: float
    market_ns: int
    final: bool


class ProgressTracker:
    """Turns :class:`ProgressUpdate` s into :class:`ProgressFigures` (pure arithmetic, no terminal).

    The ETA extrapolates the pace between the first update and the latest:
    ``eta = (now - t_first) * (1 - f) / (f - f_first)``; the events rate is measured over the
    same interval, so start-up time (connecting, reconciling) does not distort either.

    :param clock: wall clock in seconds (default :func:`time.monotonic`; tests pass a fake).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._t0 = clock()
        self._anchor: tuple[float, float, int] | None = None  # (wall, fraction, events) at the first update
        self._fraction = 0.0

    def update(self, u: ProgressUpdate) -> ProgressFigures:
        """Figures for one update."""
        now = self._clock()
        fraction: float | None = None
        if u.total > 0:
            fraction = max(self._fraction, min(1.0, max(0, u.done) / u.total))
            self._fraction = fraction
        if self._anchor is None:
            self._anchor = (now, fraction or 0.0, u.events)
        t_a, f_a, ev_a = self._anchor
        span = now - t_a
        if span > 0:
            rate = (u.events - ev_a) / span
        else:
            total_span = now - self._t0
            rate = u.events / total_span if total_span > 0 else 0.0
        eta = None
        if fraction is not None:
            if fraction >= 1.0:
                eta = 0.0
            elif span > 0 and fraction > f_a:
                eta = span * (1.0 - fraction) / (fraction - f_a)
        return ProgressFigures(fraction, eta, u.events, rate, now - self._t0, u.market_ns, u.final)


def format_eta(eta_s: float | None) -> str:
    """``ETA h:mm:ss``, or ``ETA --:--`` while unknown."""
    if eta_s is None:
        return "ETA --:--"
    s = int(round(eta_s))
    return f"ETA {s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_market_time(ns: int) -> str:
    """The market clock as ``YYYY-MM-DD HH:MM:SS UTC`` (empty before the first event)."""
    if ns <= 0:
        return ""
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe(fig: ProgressFigures) -> str:
    """The bar's text: percent, market time, events/s and ETA (what the rich bar shows beside the bar)."""
    pct = "    ?%" if fig.fraction is None else f"{fig.fraction * 100:5.1f}%"
    parts = [pct, format_market_time(fig.market_ns), f"{fig.events_per_s:,.0f} events/s", format_eta(fig.eta_s)]
    return "  ".join(p for p in parts if p)


class ReplayProgressBar:
    """A rich progress bar fed by the bot's progress updates; register it with ``bot.add_progress_observer``.

    Transient: it disappears when closed (at the final update, or by :meth:`close`, which the
    CLI also calls when the run ends in an error). Rich only draws on a terminal.

    :param console: a ``rich.console.Console`` (default: standard error).
    :param clock: wall clock for the tracker (tests).
    """

    STEPS = 10_000  # the bar's resolution

    def __init__(self, console=None, clock: Callable[[], float] = time.monotonic):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        self.tracker = ProgressTracker(clock)
        self.figures: ProgressFigures | None = None
        self._progress = Progress(
            TextColumn("replay"),
            BarColumn(),
            TextColumn("{task.fields[text]}"),
            console=console or Console(stderr=True),
            transient=True,
        )
        blank = ProgressFigures(None, None, 0, 0.0, 0.0, 0, False)  # not an update: the tracker starts at the first one
        self._task = self._progress.add_task("replay", total=None, text=describe(blank))
        self._progress.start()
        self._closed = False

    def __call__(self, update: ProgressUpdate) -> None:
        fig = self.tracker.update(update)
        self.figures = fig
        if self._closed:
            return
        self._progress.update(
            self._task,
            total=None if fig.fraction is None else self.STEPS,
            completed=0 if fig.fraction is None else int(fig.fraction * self.STEPS),
            text=describe(fig),
        )
        if update.final:
            self.close()

    def close(self) -> None:
        """Remove the bar (idempotent)."""
        if not self._closed:
            self._closed = True
            self._progress.stop()


def attach_progress_bar(bot, console=None) -> ReplayProgressBar | None:
    """Draw a :class:`ReplayProgressBar` for ``bot``'s run when its feed reports progress (replays).

    :returns: the bar (close it when the run ends), or None for a feed without an end (live data).
    """
    if bot.feed.progress() is None:
        return None
    bar = ReplayProgressBar(console)
    bot.add_progress_observer(bar)
    return bar
