"""Merging the replay feed's sources by time: ``(ts_ns, batch)`` iterators -> one iterator in time order.

:func:`merge_sorted` (synchronous) is the hot path; :func:`amerge_sorted` handles a mix with
asynchronous readers (a dYdX recording whose reader is async), and :func:`tag_async` gives
such a reader's plain batches their timestamps. ``merge_sorted`` is re-exported by
:mod:`perpbot.exchanges.replay.feed`, where it was defined before the feed was split.
"""

from __future__ import annotations

import heapq
from typing import AsyncIterator, Iterator


def merge_sorted(iters: list) -> Iterator[tuple[int, list]]:
    """Merge ``(ts, batch)`` iterators, each already in time order; ties keep the iterators' order.

    Like :func:`heapq.merge`, but drains one source without heap operations while it
    stays ahead of the others (recordings come in long runs).
    """
    if len(iters) == 1:
        yield from iters[0]
        return
    heap = []
    for i, it in enumerate(iters):
        for item in it:
            heap.append((item[0], i, item, it))
            break
    heapq.heapify(heap)
    heappop, heappush = heapq.heappop, heapq.heappush
    while heap:
        _, i, item, it = heappop(heap)
        yield item
        if not heap:
            yield from it
            return
        bound, bi = heap[0][0], heap[0][1]
        for item in it:
            ts = item[0]
            if ts > bound or (ts == bound and i > bi):
                heappush(heap, (ts, i, item, it))
                break
            yield item


async def tag_async(it) -> AsyncIterator[tuple[int, list]]:
    """An async iterator of event batches -> ``(ts, batch)`` pairs, ``ts`` the first event's ``ts_ns``; empty batches dropped."""
    async for b in it:
        if b:
            yield b[0].ts_ns, b


async def amerge_sorted(iters: list) -> AsyncIterator[tuple[int, list]]:
    """Async variant of :func:`merge_sorted` for a mix of sync and async ``(ts, batch)`` iterators (ties keep their order)."""

    async def pull(it):
        if hasattr(it, "__anext__"):
            return await anext(it, None)
        return next(it, None)

    heap = []
    for i, it in enumerate(iters):
        got = await pull(it)
        if got is not None:
            heap.append((got[0], i, got[1], it))
    heapq.heapify(heap)
    while heap:
        ts, i, b, it = heapq.heappop(heap)
        yield ts, b
        got = await pull(it)
        if got is not None:
            heapq.heappush(heap, (got[0], i, got[1], it))
