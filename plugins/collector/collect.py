"""The collector: venue runners -> validator -> batcher -> one writer -> every store.

:class:`Collector` owns one :class:`~.runner.VenueRunner` task per venue, the
:class:`~.validator.Validator`, the :class:`~.batcher.Batcher` and a writer task. Rows of every
venue are validated and batched on the event loop as they arrive (both cheap); a ready batch
goes into a queue the writer empties, writing each batch to every store through
:func:`asyncio.to_thread` (storage calls block). A store that fails a write is logged and the
batch is retried after a backoff (``write_retry_s`` doubling to 30 s), so a short database
outage loses nothing; rows wait in memory meanwhile (``queued_rows`` shows how many).

With ``signals`` (``--signals``), the analysis confluence of every market is added as ``signal``
rows (:mod:`.signals`).

Stop (:meth:`Collector.stop`, Ctrl-C, ``--duration``): the runners stop their feeds, the batcher
is drained, the writer writes every remaining batch, the stores are closed;
:meth:`Collector.report` gives per-venue counts (rows stored per kind, rejected per reason).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any, Sequence

from loguru import logger

from perpbot.core.tasks import cancel_and_wait
from perpbot.plugins.collector.batcher import Batcher
from perpbot.plugins.collector.runner import VenueRunner, VenueSpec
from perpbot.plugins.collector.validator import Validator
from perpbot.plugins.storage import Storage

_DONE = None


class Collector:
    """Collect ``markets`` of ``venues`` into ``stores`` (module docstring).

    :param venues: the venues (:class:`~.runner.VenueSpec`). :param markets: ``BTC-USD``-style tickers.
    :param stores: open :class:`~perpbot.plugins.storage.Storage` objects (closed by :meth:`close`).
    :param batch_rows: / ``batch_age_s``: the batcher's size and time limits (rows, seconds).
    :param write_retry_s: first wait before a failed write is retried, seconds.
    :param flush_timeout_s: at stop, the most the final writes may take (seconds); rows still
        unwritten then are counted in ``lost_rows`` and reported.
    :param signals: a :class:`~.signals.SignalMaker` (``--signals``): every feed batch goes to it, and
        every ``signals_every_s`` seconds its ``signal`` rows join the batches; None: no signals.
    :param runner_options: keyword arguments for every :class:`~.runner.VenueRunner` (depth,
        oi_poll_s, silence_s, retry and breaker settings).
    """

    def __init__(self, venues: Sequence[VenueSpec], markets: Sequence[str], stores: Sequence[Storage], *,
                 batch_rows: int = 1000, batch_age_s: float = 1.0, write_retry_s: float = 1.0,
                 flush_timeout_s: float = 60.0, signals: Any = None, signals_every_s: float = 1.0, **runner_options):
        self.validator = Validator()
        self.batcher = Batcher(batch_rows, batch_age_s)
        self.stores = list(stores)
        self.write_retry_s = float(write_retry_s)
        self.flush_timeout_s = float(flush_timeout_s)
        self.lost_rows = 0
        self.signals = signals
        self.signals_every_s = float(signals_every_s)
        on_events = signals.on_events if signals is not None else None
        self.runners = [VenueRunner(v, list(markets), self._accept, on_events=on_events, **runner_options) for v in venues]
        self.written: Counter = Counter()  # (venue, kind) -> rows written to every store
        self.write_errors = 0
        self.queued_rows = 0
        self._queue: asyncio.Queue = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._writer: asyncio.Task | None = None
        self._ticker: asyncio.Task | None = None
        self._signaller: asyncio.Task | None = None
        self.started_at = 0.0
        self.stopped_at = 0.0

    # -- data path (event loop) -------------------------------------------------------

    def _accept(self, venue: str, items: list) -> None:
        v = self.validator
        b = self.batcher
        for kind, row, levels in items:
            reason = v.check_book(row, *levels) if levels is not None else v.check(kind, row)
            if reason is None:
                for batch in b.add(kind, row):
                    self._enqueue(batch)

    def _enqueue(self, batch: tuple) -> None:
        self.queued_rows += len(batch[1])
        self._queue.put_nowait(batch)

    async def _tick(self) -> None:
        """Hand over the batches that are old enough, ten times per batch age."""
        while True:
            await asyncio.sleep(self.batcher.max_age_s / 10)
            for batch in self.batcher.due():
                self._enqueue(batch)

    async def _signal_loop(self) -> None:
        """Every ``signals_every_s``: the markets' confluence rows into the batcher (not validated:
        computed here, not venue data)."""
        while True:
            await asyncio.sleep(self.signals_every_s)
            for row in self.signals.rows(time.time_ns()):
                for batch in self.batcher.add("signal", row):
                    self._enqueue(batch)

    async def _write_loop(self) -> None:
        while True:
            item = await self._queue.get()
            if item is _DONE:
                return
            kind, rows = item
            await self._write(kind, rows)
            self.queued_rows -= len(rows)

    async def _write(self, kind: str, rows: list) -> None:
        """Write one batch to every store that has not taken it yet; retried until each has."""
        pending = list(self.stores)
        delay = self.write_retry_s
        while pending:
            failed = []
            for store in pending:
                try:
                    await asyncio.to_thread(store.write, kind, rows)
                except Exception as exc:  # a database outage: logged, retried, nothing dropped
                    self.write_errors += 1
                    failed.append(store)
                    logger.warning(f"collector: writing {len(rows)} {kind} row(s) to {store!r} failed: "
                                   f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}; retrying in {delay:g}s")
            pending = failed
            if pending:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        for r in rows:
            self.written[(r[0], kind)] += 1

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start the writer, the batch timer and one runner task per venue."""
        self.started_at = time.monotonic()
        self._writer = asyncio.create_task(self._write_loop(), name="collect-writer")
        self._ticker = asyncio.create_task(self._tick(), name="collect-batch-timer")
        self._tasks = [asyncio.create_task(r.run(), name=f"collect-venue-{r.venue}") for r in self.runners]
        if self.signals is not None:
            self._signaller = asyncio.create_task(self._signal_loop(), name="collect-signals")

    async def wait(self) -> None:
        """Until every runner has returned (each stops on :meth:`stop` or on a fatal error)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Stop the venues, flush every buffered row to every store, stop the writer (module docstring)."""
        for r in self.runners:
            r.stop()
        try:
            async with asyncio.timeout(30):
                await asyncio.gather(*self._tasks, return_exceptions=True)
        except TimeoutError:
            logger.warning("collector: a venue did not stop within 30 s; cancelling it")
            await cancel_and_wait(self._tasks)
        await cancel_and_wait([self._ticker, self._signaller])
        for batch in self.batcher.drain():
            self._enqueue(batch)
        self._queue.put_nowait(_DONE)
        if self._writer is not None:
            try:
                async with asyncio.timeout(self.flush_timeout_s):
                    await self._writer
            except TimeoutError:
                await cancel_and_wait([self._writer])
                self.lost_rows = self.queued_rows
                logger.error(f"collector: a store still failed after {self.flush_timeout_s:g}s at stop: "
                             f"{self.lost_rows} row(s) not stored")
        self.stopped_at = time.monotonic()

    def close(self) -> None:
        """Close every store (blocking; after :meth:`stop`)."""
        for store in self.stores:
            try:
                store.close()
            except Exception as exc:  # one store's close must not keep the others open
                logger.warning(f"collector: closing {store!r}: {type(exc).__name__}: {exc}")

    async def run(self, duration_s: float | None = None, stop_event: asyncio.Event | None = None) -> None:
        """:meth:`start`, wait for ``duration_s`` seconds or ``stop_event`` (or every venue ending), :meth:`stop`."""
        await self.start()
        stop_event = stop_event or asyncio.Event()
        stopper = asyncio.create_task(stop_event.wait())
        loop = asyncio.get_running_loop()
        deadline = None if duration_s is None else loop.time() + duration_s
        try:
            # the runner tasks are waited on, never wrapped (a cancelled wrapper would cancel them)
            while not stopper.done() and not all(t.done() for t in self._tasks):
                left = None if deadline is None else deadline - loop.time()
                if left is not None and left <= 0:
                    break
                await asyncio.wait([stopper, *self._tasks], timeout=left, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait([stopper])
            await self.stop()

    # -- report ------------------------------------------------------------------------

    def report(self) -> list[str]:
        """Lines of per-venue counts: rows stored per kind, rows rejected per reason, failures."""
        lines = []
        elapsed = (self.stopped_at or time.monotonic()) - self.started_at
        lines.append(f"collected for {elapsed:.1f}s into {', '.join(repr(s) for s in self.stores)}")
        rejected = self.validator.rejected
        runners = {r.venue: r for r in self.runners}
        seen = list(runners) + sorted({k[0] for k in (*self.written, *rejected)} - set(runners))
        for v in seen:
            r = runners.get(v)
            stored = {k: n for (venue, k), n in sorted(self.written.items()) if venue == v}
            bad = {why: n for (venue, why), n in sorted(rejected.items()) if venue == v}
            total = sum(stored.values())
            parts = ", ".join(f"{k} {n:,}" for k, n in stored.items()) or "nothing"
            line = f"{v}: stored {total:,} row(s) ({parts}); rejected {sum(bad.values()):,}"
            if bad:
                line += " (" + ", ".join(f"{why} {n:,}" for why, n in bad.items()) + ")"
            if r is not None:
                fails = r.counters.get("failures", 0)
                if fails:
                    line += f"; {fails} failed session(s), last: {r.last_error}"
                if r.breaker.opens:
                    line += f"; circuit opened {r.breaker.opens}x"
                if r.fatal:
                    line += f"; stopped: {r.fatal}"
            lines.append(line)
        if self.write_errors:
            lines.append(f"storage: {self.write_errors} failed write(s), retried")
        if self.lost_rows:
            lines.append(f"storage: {self.lost_rows} row(s) NOT stored (a store kept failing at stop)")
        return lines
