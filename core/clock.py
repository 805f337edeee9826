"""Injected time, so replay, paper and live trading behave identically.

Everything in the framework asks a :class:`Clock` for the time instead of
calling :func:`time.time`. A replay drives a :class:`SimulatedClock` from the
events' own timestamps; live trading uses :class:`LiveClock`. Times are integer
nanoseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


class Clock:
    """Time source contract: ``now_ns()`` in ns since the epoch (UTC)."""

    #: True for a clock that is driven by data instead of the wall clock.
    simulated: bool = False

    def now_ns(self) -> int:  # pragma: no cover - contract
        """Current time, integer ns since the Unix epoch (UTC). Subclasses implement it.

        :raises NotImplementedError: on the bare contract.
        """
        raise NotImplementedError

    def now(self) -> datetime:
        """Current time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now_ns() / NS_PER_S, tz=timezone.utc)

    def now_s(self) -> float:
        """Current time in (float) seconds, for display and rate limits only, never money."""
        return self.now_ns() / NS_PER_S

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        await asyncio.sleep(seconds)


class LiveClock(Clock):
    """The wall clock."""

    def now_ns(self) -> int:
        """The wall clock, :func:`time.time_ns` (ns since the epoch, UTC)."""
        return time.time_ns()


class SimulatedClock(Clock):
    """A clock advanced by the replayed data; it never goes backwards.

    :param start_ns: initial time in ns since the epoch.
    """

    simulated = True

    def __init__(self, start_ns: int = 0):
        self._now = start_ns

    def now_ns(self) -> int:
        """The latest time :meth:`advance_to` reached (ns since the epoch, UTC)."""
        return self._now

    def advance_to(self, ts_ns: int) -> None:
        """Move time forward to ``ts_ns``; earlier timestamps are ignored (time is monotonic)."""
        if ts_ns > self._now:
            self._now = ts_ns

    async def sleep(self, seconds: float) -> None:
        """Simulated time does not pass by sleeping; yield to the loop only."""
        await asyncio.sleep(0)
