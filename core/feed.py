"""The market-data feed contract.

A feed turns raw venue messages (a live WebSocket, a recording, a history
file) into normalized :mod:`perpbot.core.model` events. Feeds are registered through
the ``register_feeds`` hook and chosen by name (``--feed``).
"""

from __future__ import annotations

import abc
from typing import Any, AsyncIterator, ClassVar, Mapping

from perpbot.core.model import Market


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
        """``(done, total)`` in bytes or rows for a progress bar; None when unknown (live)."""
        return None

    def stats(self) -> dict:
        """Counters for the summary (e.g. messages, level entries, gaps, resyncs)."""
        return {}
