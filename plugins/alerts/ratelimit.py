"""Rate limits for alerts: a token bucket per alert kind and a global cap, bursts coalesced.

A :class:`TokenBucket` holds up to ``capacity`` tokens and gains ``per_min`` a minute (the
classic token bucket: a burst of ``capacity`` goes at once, then the long-run rate is
``per_min``). Time is wall-clock (``time.monotonic``): the limits protect the services'
own quotas and the reader, both of which count real time, also during a fast replay.

:class:`RateLimiter` lets an alert through when its kind's bucket AND the global bucket each
have a token (kinds in ``exempt``, the halt and the stop summary, skip the global cap). An
alert that is held back is not dropped: it is counted in its kind's :class:`Held` record, and
the next time the kind is let through (:meth:`RateLimiter.release`) ONE digest goes out
instead, saying how many were held back and showing the last few. At the end of a run
:meth:`RateLimiter.release` with ``force=True`` sends every digest regardless of tokens.
Imports nothing of perpbot.
"""

from __future__ import annotations

import time
from collections import deque
from decimal import Decimal
from typing import Callable

import attrs


class TokenBucket:
    """``capacity`` tokens, refilled at ``per_min`` tokens a minute of ``clock()`` seconds.

    :param capacity: the largest burst (>= 1); the bucket starts full.
    :param per_min: tokens gained per minute (> 0).
    :param clock: seconds, monotonic (default :func:`time.monotonic`; tests pass a fake).
    :raises ValueError: a capacity below 1 or a rate that is not positive.
    """

    def __init__(self, capacity: int, per_min: Decimal | int, clock: Callable[[], float] = time.monotonic):
        if capacity < 1 or not Decimal(per_min) > 0:
            raise ValueError(f"token bucket: capacity must be >= 1 and per_min > 0, got {capacity}, {per_min}")
        self.capacity = capacity
        self.rate_s = float(Decimal(per_min) / 60)  # a rate, not money: float is exact enough
        self.clock = clock
        self.tokens = float(capacity)
        self.at = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(float(self.capacity), self.tokens + (now - self.at) * self.rate_s)
        self.at = now

    def available(self) -> bool:
        """True when a token can be taken now."""
        self._refill()
        return self.tokens >= 1

    def take(self) -> bool:
        """Take one token if there is one; True when taken."""
        if self.available():
            self.tokens -= 1
            return True
        return False


@attrs.define
class Held:
    """Alerts of one kind held back by the rate limit: how many, since when, the last few lines.

    :param count: alerts held back; :param first_ns: clock time (ns) of the first one;
    :param lines: their one-line forms, the last ``keep`` of them.
    """

    count: int = 0
    first_ns: int = 0
    lines: deque = attrs.Factory(lambda: deque(maxlen=5))


class RateLimiter:
    """Per-kind token buckets under a global one; held alerts become digests.

    :param buckets: kind -> :class:`TokenBucket`; a kind without one is limited by the global
        bucket only.
    :param total: the global :class:`TokenBucket`.
    :param exempt: kinds that skip the global cap (still limited by their own bucket if any).
    """

    def __init__(self, buckets: dict[str, TokenBucket], total: TokenBucket, exempt: frozenset[str] = frozenset()):
        self.buckets = buckets
        self.total = total
        self.exempt = exempt
        #: kind -> :class:`Held` for kinds with alerts waiting for a digest
        self.held: dict[str, Held] = {}
        #: kind -> alerts held back so far this run (the digests' counts add up to it)
        self.suppressed: dict[str, int] = {}

    def admit(self, kind: str) -> bool:
        """Take a token for one alert of ``kind`` when both its bucket and the global one
        (unless exempt) have one; a token is taken from neither otherwise."""
        own = self.buckets.get(kind)
        glob = None if kind in self.exempt else self.total
        if (own is not None and not own.available()) or (glob is not None and not glob.available()):
            return False
        if own is not None:
            own.take()
        if glob is not None:
            glob.take()
        return True

    def offer(self, kind: str, line: str, ts_ns: int) -> bool:
        """One alert of ``kind`` wants out: True to send it now, False when it was held back
        (counted in :attr:`held`, its ``line`` kept for the digest).

        An alert is held back also while older alerts of its kind are waiting, so the order
        stays: the digest goes first (see :meth:`release`).
        """
        if kind not in self.held and self.admit(kind):
            return True
        self.hold(kind, line, ts_ns)
        return False

    def hold(self, kind: str, line: str, ts_ns: int) -> None:
        """Count one alert of ``kind`` as held back (rate limit, or a full send queue)."""
        h = self.held.setdefault(kind, Held(first_ns=ts_ns))
        h.count += 1
        h.lines.append(line)
        self.suppressed[kind] = self.suppressed.get(kind, 0) + 1

    def release(self, force: bool = False) -> list[tuple[str, Held]]:
        """The digests due now: ``[(kind, Held)]`` for each kind with held alerts whose tokens
        allow one more message (every kind with ``force``, at the end of a run); they leave
        :attr:`held`."""
        out = []
        for kind in list(self.held):
            if force or self.admit(kind):
                out.append((kind, self.held.pop(kind)))
        return out
