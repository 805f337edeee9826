"""cancel_and_wait: a shutdown that cannot hang on a task that swallowed its cancellation.

CI once hung 300 s in ``DydxFeed.stop()`` (``test_malformed_frames_are_recorded_and_replayed_as_such``):
a loop task was inside ``asyncio.wait_for`` when a REST reply and the cancellation arrived
together; 3.11's ``wait_for`` returned the reply, the loop went on, and ``await task`` never
returned.
"""

from __future__ import annotations

import asyncio
import sys

import pytest

from perpbot.core.tasks import cancel_and_wait


async def _looping_task_that_loses_a_cancel(fut: asyncio.Future, seen: list) -> None:
    """What our feed's maintenance loop looked like: wait_for a reply, then loop on."""
    while True:
        seen.append(await asyncio.wait_for(fut, 10) if not fut.done() or not seen else "again")
        await asyncio.sleep(0.01)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="wait_for swallows a cancellation on 3.11 only")
async def test_wait_for_on_this_python_can_swallow_a_cancellation():
    """The race itself, deterministic: the reply and the cancel land in one loop iteration."""
    fut = asyncio.get_running_loop().create_future()
    seen: list = []
    task = asyncio.create_task(_looping_task_that_loses_a_cancel(fut, seen))
    await asyncio.sleep(0)  # the task now waits inside wait_for
    fut.set_result("reply")
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done() and seen and seen[0] == "reply"  # the cancellation was lost
    # the old shutdown (cancel once, await) would wait for ever here; ours does not
    assert await cancel_and_wait([task], grace_s=2) == []
    assert task.cancelled()


async def test_a_task_that_swallows_cancellations_is_cancelled_again_until_done():
    swallowed = []

    async def stubborn():
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                swallowed.append(1)
                if len(swallowed) < 3:
                    continue
                raise

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    assert await cancel_and_wait([task, None], grace_s=2) == []
    assert task.cancelled() and len(swallowed) == 3


async def test_a_task_that_never_stops_is_reported_after_the_grace(caplog):
    release = asyncio.Event()

    async def immortal():
        while not release.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(immortal(), name="immortal")
    await asyncio.sleep(0)
    left = await cancel_and_wait([task], grace_s=0.2)
    assert left == [task] and not task.done()
    release.set()
    await asyncio.wait_for(task, 1)


async def test_failed_and_finished_tasks_are_collected_without_raising():
    async def boom():
        raise RuntimeError("boom")

    failed = asyncio.create_task(boom())
    done = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    assert await cancel_and_wait([failed, done]) == []
    assert failed.done() and isinstance(failed.exception(), RuntimeError)
