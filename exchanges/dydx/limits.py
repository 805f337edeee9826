"""Rate limits, backoff and the node circuit breaker (pure asyncio, injectable time).

- :class:`SlidingWindowLimiter`: at most ``max_requests`` per ``window_s`` (the
  indexer's REST limit is 100 requests / 10 s per IP, comlink ``config.ts``).
- :class:`TokenBucket`: a steady rate with a burst (the gRPC budget, default 4/s).
- :class:`CircuitBreaker`: opens after N consecutive failures, half-opens after a
  cool-down (one trial call), closes on a success.
- :func:`backoff_delay`: exponential backoff with full jitter.

Time comes from ``monotonic`` (seconds, float) so tests can drive it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from typing import Callable


def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempt`` (0-based): uniform in [base/2, min(max, base*2^attempt)].

    The lower bound keeps a storm of reconnects from hammering the server; the jitter
    spreads many clients apart.
    """
    r = rng or random
    cap = min(max_s, base_s * (2 ** min(attempt, 30)))
    lo = min(base_s / 2, cap)
    return lo + (cap - lo) * r.random()


class SlidingWindowLimiter:
    """At most ``max_requests`` acquisitions in any ``window_s`` seconds.

    :param monotonic: time source in seconds.
    """

    def __init__(self, max_requests: int, window_s: float, monotonic: Callable[[], float] = time.monotonic):
        self.max_requests = int(max_requests)
        self.window_s = float(window_s)
        self._now = monotonic
        self._stamps: deque[float] = deque()
        self._lock = asyncio.Lock()
        self.waited = 0  # acquisitions that had to wait

    def _prune(self, now: float) -> None:
        while self._stamps and now - self._stamps[0] >= self.window_s:
            self._stamps.popleft()

    def delay(self) -> float:
        """Seconds until the next acquisition would be allowed (0 when free)."""
        now = self._now()
        self._prune(now)
        if len(self._stamps) < self.max_requests:
            return 0.0
        return max(0.0, self._stamps[0] + self.window_s - now)

    async def acquire(self) -> None:
        """Wait until a slot is free, then take it."""
        async with self._lock:
            waited = False
            while True:
                d = self.delay()
                if d <= 0:
                    break
                waited = True
                await asyncio.sleep(d)
            self._stamps.append(self._now())
            if waited:
                self.waited += 1

    def in_window(self) -> int:
        """Requests counted in the current window."""
        self._prune(self._now())
        return len(self._stamps)


class TokenBucket:
    """``rate_per_s`` tokens per second, at most ``burst`` stored.

    :meth:`acquire` waits for a token up to ``max_wait_s`` and returns False when the
    wait would be longer (the caller rejects instead of queueing forever).
    """

    def __init__(self, rate_per_s: float, burst: float | None = None,
                 monotonic: Callable[[], float] = time.monotonic):
        self.rate = float(rate_per_s)
        self.burst = float(burst if burst is not None else max(1.0, rate_per_s))
        self._now = monotonic
        self._tokens = self.burst
        self._stamp = monotonic()
        self._reserved_until = 0.0
        self.granted = 0
        self.refused = 0

    def _refill(self) -> None:
        now = self._now()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_acquire(self) -> bool:
        """Take a token if one is stored now (no waiting); False otherwise."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            self.granted += 1
            return True
        return False

    async def acquire(self, max_wait_s: float) -> bool:
        """Take a token, waiting at most ``max_wait_s``; False (and no token) when refused."""
        self._refill()
        # tokens may go negative: each waiter reserves its slot in arrival order
        wait = (1 - self._tokens) / self.rate if self._tokens < 1 else 0.0
        if wait > max_wait_s:
            self.refused += 1
            return False
        self._tokens -= 1
        self.granted += 1
        if wait > 0:
            await asyncio.sleep(wait)
        return True


class CircuitBreaker:
    """Stops calls to a failing dependency and probes it again after a cool-down.

    States: ``closed`` (calls pass), ``open`` (calls refused until ``cooldown_s`` has
    passed), ``half_open`` (one trial call; success closes, failure re-opens).

    :param failure_threshold: consecutive failures that open the breaker.
    :param cooldown_s: seconds from opening to half-open.
    :param name: shown in :attr:`reason`.
    """

    def __init__(self, failure_threshold: int, cooldown_s: float, *, name: str = "node",
                 monotonic: Callable[[], float] = time.monotonic):
        self.failure_threshold = int(failure_threshold)
        self.cooldown_s = float(cooldown_s)
        self.name = name
        self._now = monotonic
        self.state = "closed"
        self.failures = 0
        self.opened_at = 0.0
        self.last_error = ""
        self.times_opened = 0
        self._trial_in_flight = False

    def allow(self) -> bool:
        """May a call go out now? (In half-open, only one trial at a time.)"""
        if self.state == "closed":
            return True
        if self.state == "open":
            if self._now() - self.opened_at >= self.cooldown_s:
                self.state = "half_open"
                self._trial_in_flight = False
            else:
                return False
        if self._trial_in_flight:
            return False
        self._trial_in_flight = True
        return True

    def cancel_trial(self) -> None:
        """The allowed call was not made after all (e.g. refused by the rate budget)."""
        self._trial_in_flight = False

    def record_success(self) -> None:
        """A call succeeded: the breaker closes and the failure count resets."""
        self.failures = 0
        self.state = "closed"
        self._trial_in_flight = False

    def record_failure(self, error: str = "") -> None:
        """A call failed (``error``: its text, first 200 characters kept): the breaker opens after
        ``failure_threshold`` consecutive failures, or at once when a half-open trial fails.
        """
        self.failures += 1
        self.last_error = error[:200]
        self._trial_in_flight = False
        if self.state == "half_open" or self.failures >= self.failure_threshold:
            if self.state != "open":
                self.times_opened += 1
            self.state = "open"
            self.opened_at = self._now()

    @property
    def is_open(self) -> bool:
        """True while calls are refused (open, or half-open with the trial out)."""
        if self.state == "open" and self._now() - self.opened_at >= self.cooldown_s:
            return False  # due for a trial
        return self.state == "open"

    @property
    def reason(self) -> str | None:
        """``"circuit_open: ..."`` while open, else None (what the risk layer shows)."""
        if not self.is_open:
            return None
        left = max(0.0, self.cooldown_s - (self._now() - self.opened_at))
        return (
            f"circuit_open: {self.name} failed {self.failures} time(s) in a row"
            + (f" (last: {self.last_error})" if self.last_error else "")
            + f"; next trial in {left:.1f}s"
        )


class BlockRateLimiter:
    """The chain's per-block order limits, applied before sending: for each rule
    ``(num_blocks, limit)``, the weight sent in any ``num_blocks`` consecutive blocks stays
    ``<= limit``.

    The chain counts per owner address in CheckTx by block height (v4-chain
    ``protocol/x/clob/rate_limit/multi_block_rate_limiter.go``; the rules are
    ``BlockRateLimitConfiguration``, ``proto/dydxprotocol/clob/block_rate_limit_config.proto``).
    Here the block a tx landed in is not known when it is sent, only bounded: each entry
    takes the first height observed AFTER it was sent (:meth:`observe_height`), and counts
    until a height ``>= that + num_blocks`` is seen. An entry with no height yet always
    counts. So the count is never below the chain's: conservative, never over the limit.

    :param name: shown in refusals, e.g. ``"stateful orders"``.
    :param rules: ``[(num_blocks, limit), ...]`` (empty: no limit).
    """

    def __init__(self, name: str, rules: list[tuple[int, int]]):
        self.name = name
        self.rules = [(int(n), int(lim)) for n, lim in rules if int(n) > 0]
        self._entries: deque[list] = deque()  # [height or None, weight]
        self._height: int | None = None
        self.waited = 0
        self.refused = 0

    def observe_height(self, height: int) -> None:
        """A block height read from the chain: entries without a height get it; old ones go."""
        h = int(height)
        if self._height is not None and h < self._height:
            return
        self._height = h
        for e in self._entries:
            if e[0] is None:
                e[0] = h
        longest = max((n for n, _ in self.rules), default=0)
        while self._entries and self._entries[0][0] is not None and self._entries[0][0] + longest <= h:
            self._entries.popleft()

    def used(self, num_blocks: int) -> int:
        """Weight counted in the current window of ``num_blocks`` blocks."""
        h = self._height
        return sum(w for eh, w in self._entries if eh is None or h is None or eh + num_blocks > h)

    def blocking_rule(self, weight: int = 1) -> tuple[int, int] | None:
        """The first rule that ``weight`` more would break, or None when it fits."""
        for n, lim in self.rules:
            if self.used(n) + weight > lim:
                return n, lim
        return None

    def record(self, weight: int = 1) -> None:
        """Count ``weight`` as sent now (its block is bounded at the next observed height)."""
        if self.rules:
            self._entries.append([None, int(weight)])

    async def wait_for_room(self, weight: int, max_wait_s: float, read_height) -> bool:
        """Count ``weight`` once it fits, reading new heights (``await read_height()``, which must
        call :meth:`observe_height`) every 0.25 s at most ``max_wait_s``; False (nothing
        counted) when it still does not fit."""
        if not self.rules:
            return True
        deadline = time.monotonic() + max_wait_s
        waited = False
        while self.blocking_rule(weight) is not None:
            if time.monotonic() >= deadline:
                self.refused += 1
                return False
            waited = True
            await read_height()  # a new height frees the window
            if self.blocking_rule(weight) is not None:
                await asyncio.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
        self.waited += int(waited)
        self.record(weight)
        return True

    def describe(self) -> str:
        """E.g. ``"stateful orders: 2 per 1 block, 20 per 100 blocks"`` (``"none"`` without rules)."""
        if not self.rules:
            return f"{self.name}: no limit"
        return f"{self.name}: " + ", ".join(f"{lim} per {n} block{'s' if n != 1 else ''}" for n, lim in self.rules)
