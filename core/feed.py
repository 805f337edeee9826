"""The market-data feed contract.

A feed turns raw venue messages (a live WebSocket, a recording, a history
file) into normalized :mod:`perpbot.core.model` events. Feeds are registered through
the ``register_feeds`` hook and chosen by name (``--feed``).
"""

from __future__ import annotations

import abc
from typing import Any, AsyncIterator, ClassVar, Mapping, NamedTuple

from perpbot.core.model import Market


class ProgressUpdate(NamedTuple):
    """What the bot hands its progress observers (every 256 batches and once at the end of the run).

    ``done`` and ``total`` are :meth:`BaseFeed.progress` (the replay feed: ns of market time;
    ``total`` 0 = not known yet); ``events`` the market events processed so far (the run
    summary's unit); ``market_ns`` the clock's time (ns since the epoch); ``final`` True on
    the last update (the data ended, a stop was requested or the bot halted).
    """

    done: int
    total: int
    events: int
    market_ns: int
    final: bool


class BaseFeed(abc.ABC):
    """Contract for a market-data feed.

    Constructed as ``cls(config: Mapping, context: FeedContext-like)`` where the
    context gives ``clock``, ``tickers`` (dYdX tickers asked for) and
    ``markets`` (known market parameters). A feed yields *batches* (lists) of
    events in timestamp order; a batch is what one raw message produced.

    Errors: :class:`~perpbot.core.errors.DataError` for missing or malformed data
    (naming the file and line), never a silent skip of bad data.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: True when events come from recorded data (the bot then drives a SimulatedClock).
    replay: ClassVar[bool] = False

    def __init__(self, config: Mapping[str, Any], context: Any):
        self.config = dict(config)
        self.context = context

    @abc.abstractmethod
    def markets(self) -> dict[str, Market]:
        """Market parameters for the feed's tickers (dYdX metadata)."""

    @abc.abstractmethod
    def batches(self) -> AsyncIterator[list]:
        """Async iterator of event batches, in timestamp order."""

    async def start(self) -> None:
        """Open files or connections."""

    async def stop(self) -> None:
        """Close files or connections; safe to call twice."""

    def hold_pacing(self, held: bool) -> None:
        """Pause (``True``) or resume (``False``) a replay's real-time pacing.

        While held, batches come as fast as they are read; when released, a paced feed
        (``speed`` > 0) paces again from the next batch's time, as if the replay started
        there. The bot holds pacing while a resumed run re-reads the data before its
        checkpoint. Feeds that do not pace have nothing to do (this default).
        """

    def progress(self) -> tuple[int, int] | None:
        """``(done, total)`` for a progress bar, in the feed's own unit; None when it has no end (live).

        The built-in replay feed counts market time in ns (first replayed timestamp to the
        data's last one); other feeds may count rows. ``total`` 0 means not known yet.
        ``done`` never decreases and equals ``total`` once the data has ended. The bot hands
        these figures to progress observers (``TradingBot.add_progress_observer``); drawing
        a bar is the command line's job (``perpbot/progress.py``).
        """
        return None

    def unsynced_books(self) -> dict[str, str]:
        """``{ticker: reason}`` of markets whose order book never synced (named in the run summary)."""
        return {}

    def stats(self) -> dict:
        """Counters for the summary (e.g. messages, level entries, gaps, resyncs)."""
        return {}


class MergedEventFeed(BaseFeed):
    """A replay feed whose events are loaded once into one time-ordered list and replayed
    one batch per timestamp.

    Subclasses implement :meth:`load_events`, returning ``[(ts_ns, order, event), ...]``
    sorted by ``(ts_ns, order)`` (``order`` ranks events of one timestamp, e.g. bars before
    the funding settled at that time). :meth:`start`, :meth:`batches` and :meth:`progress`
    come from here.
    """

    def __init__(self, config: Mapping[str, Any], context: Any):
        super().__init__(config, context)
        self._events: list | None = None
        self._done = 0

    @abc.abstractmethod
    def load_events(self) -> list:
        """The feed's events as ``[(ts_ns, order, event)]`` in time order (called once).

        :raises DataError: a missing file or a malformed row (one line naming it).
        """

    async def start(self) -> None:
        """Load the events (once)."""
        if self._events is None:
            self._events = self.load_events()

    async def batches(self) -> AsyncIterator[list]:
        """The events, one batch per timestamp, in time order."""
        if self._events is None:
            self._events = self.load_events()
        batch: list = []
        ts = None
        for ev_ts, _order, ev in self._events:
            if ts is not None and ev_ts != ts:
                yield batch
                batch = []
            ts = ev_ts
            batch.append(ev)
            self._done += 1
        if batch:
            yield batch

    def progress(self) -> tuple[int, int] | None:
        """``(events replayed, events total)``; None before loading."""
        return None if self._events is None else (self._done, len(self._events))
