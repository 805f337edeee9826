"""Rate limits, backoff and the circuit breaker, on a driven clock."""

from __future__ import annotations

import asyncio
import random

from perpbot.exchanges.dydx.limits import CircuitBreaker, SlidingWindowLimiter, TokenBucket, backoff_delay


class FakeTime:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_backoff_grows_with_jitter_and_is_capped():
    rng = random.Random(1)
    delays = [backoff_delay(a, 0.5, 30, rng) for a in range(12)]
    assert all(0.25 <= d <= 30 for d in delays)
    assert max(delays[:2]) <= 1.0 and max(delays[8:]) > 2.0
    assert len({round(backoff_delay(5, 0.5, 30, rng), 6) for _ in range(20)}) > 10  # jitter


async def test_sliding_window_limits_100_per_10s():
    now = FakeTime()
    lim = SlidingWindowLimiter(100, 10, now)
    for _ in range(100):
        await lim.acquire()
    assert lim.delay() == 10.0
    now.t += 4
    assert lim.delay() == 6.0
    now.t += 6
    assert lim.delay() == 0.0
    await lim.acquire()
    assert lim.in_window() == 1


async def test_token_bucket_refuses_beyond_max_wait():
    now = FakeTime()
    b = TokenBucket(4, 4, now)
    assert [await b.acquire(0) for _ in range(4)] == [True] * 4
    assert await b.acquire(0.1) is False  # next token in 0.25 s > 0.1 s
    now.t += 0.5  # two tokens back
    assert b.try_acquire() and b.try_acquire() and not b.try_acquire()
    assert b.refused == 1 and b.granted == 6


async def test_token_bucket_waiters_queue_in_order():
    b = TokenBucket(50, 1)
    got = await asyncio.gather(*(b.acquire(1.0) for _ in range(5)))
    assert got == [True] * 5  # 4 waited 20, 40, 60, 80 ms


def test_breaker_opens_half_opens_and_closes():
    now = FakeTime()
    br = CircuitBreaker(3, 30, monotonic=now)
    for _ in range(2):
        assert br.allow()
        br.record_failure("UNAVAILABLE")
    assert br.state == "closed" and br.reason is None
    assert br.allow()
    br.record_failure("DEADLINE_EXCEEDED: slow")
    assert br.state == "open" and not br.allow()
    assert br.reason.startswith("circuit_open: node failed 3 time(s)") and "DEADLINE_EXCEEDED" in br.reason
    now.t += 29
    assert not br.allow()
    now.t += 1
    assert br.reason is None  # due for a trial: the risk layer no longer sees it open
    assert br.allow() and br.state == "half_open"
    assert not br.allow()  # one trial at a time
    br.record_failure("still down")
    assert br.state == "open" and br.times_opened == 2
    now.t += 30
    assert br.allow()
    br.record_success()
    assert br.state == "closed" and br.failures == 0 and br.allow()


def test_breaker_trial_can_be_returned():
    now = FakeTime()
    br = CircuitBreaker(1, 5, monotonic=now)
    br.record_failure("x")
    now.t += 5
    assert br.allow()
    br.cancel_trial()  # the call was not made (e.g. refused by the rate budget)
    assert br.allow()
