"""The journal's writer thread: SQLite off the event loop, in order, in batches.

The bot's hooks run on the event loop, which must never wait on a disk. A
:class:`JournalWriter` owns one :class:`~perpbot.plugins.journal.store.Journal` on a
dedicated thread and executes submitted operations in submission order:

- :meth:`JournalWriter.post` enqueues a write and returns at once (fills,
  updates, snapshots...); consecutive posts are committed together in one
  transaction (``synchronous=NORMAL``);
- :meth:`JournalWriter.call` enqueues an operation and returns an awaitable
  that resolves once the operation's transaction is COMMITTED. With
  ``durable=True`` the operation gets its own transaction committed with
  ``synchronous=FULL`` (fsynced): order intents use it, and the bot awaits it
  before the order goes out.

Because one thread executes everything in order, a checkpoint written after a
fill is never committed before that fill. Each operation runs inside a
SAVEPOINT, so a failing one (e.g. a duplicate client id) is rolled back alone
and its caller gets the exception, while the rest of the batch commits.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import queue
import threading
from pathlib import Path
from typing import Any, Callable

from loguru import logger

from perpbot.core.errors import PerpbotError
from perpbot.plugins.journal.store import Journal

try:  # POSIX advisory locks; elsewhere the journal is not guarded against a second bot
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

_STOP = object()


class JournalInUse(PerpbotError):
    """Another running bot holds this journal: one journal per bot instance."""


class JournalWriter:
    """Single-threaded, ordered, batched access to one journal file.

    :param path: the journal file.
    :param max_batch: most operations committed in one transaction.
    """

    def __init__(self, path: str | Path, *, max_batch: int = 2000):
        self.path = Path(path)
        self.max_batch = max_batch
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._opened = concurrent.futures.Future()
        self.journal: Journal | None = None  # only touched by the writer thread
        self.errors = 0
        self.last_error: str = ""
        self.written = 0
        self.closed = False
        self._lock_fd: int | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self, timeout: float = 30.0) -> "JournalWriter":
        """Lock the journal for this process, start the thread and open (create/migrate) the file.

        :raises JournalInUse: another running bot holds the journal (its pid is named).
        :raises DataError: the file cannot be opened as a journal.
        """
        if self._thread is not None:
            return self
        self._lock()
        self._thread = threading.Thread(target=self._run, name=f"journal-writer:{self.path.name}", daemon=True)
        self._thread.start()
        try:
            self._opened.result(timeout=timeout)
        except BaseException:
            self._unlock()
            raise
        atexit.register(self.close)  # an interpreter exit without on_bot_stop still commits what is queued
        return self

    def _lock(self) -> None:
        """An exclusive advisory lock on ``<journal>.lock`` (released by the OS if the process dies)."""
        if fcntl is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            finally:
                os.close(fd)
            raise JournalInUse(
                f"journal {self.path} is in use by another running bot (pid {holder}); "
                "give this bot its own --journal (one journal per bot instance)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            try:
                os.close(self._lock_fd)  # closing the descriptor releases the flock
            finally:
                self._lock_fd = None

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, close the file and stop the thread (idempotent)."""
        if self._thread is None or self.closed:
            return
        self.closed = True
        self._q.put(_STOP)
        self._thread.join(timeout=timeout)
        self._unlock()
        try:
            atexit.unregister(self.close)
        except Exception:  # pragma: no cover
            pass

    # -- submission ----------------------------------------------------------

    def submit(self, fn: Callable[..., Any], *args: Any, durable: bool = False, **kwargs: Any) -> concurrent.futures.Future:
        """Queue ``fn(journal, *args, **kwargs)``; the future resolves after its commit."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        if self.closed:
            fut.set_exception(RuntimeError(f"journal {self.path.name} is closed"))
            return fut
        self._q.put((fn, args, kwargs, durable, fut))
        return fut

    def post(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue a write whose outcome nobody waits for (errors are logged and counted)."""
        if self.closed:
            logger.warning("journal {}: write after close dropped ({})", self.path.name, getattr(fn, "__name__", fn))
            return
        self._q.put((fn, args, kwargs, False, None))

    async def call(self, fn: Callable[..., Any], *args: Any, durable: bool = False, **kwargs: Any) -> Any:
        """Await ``fn(journal, *args, **kwargs)`` committed (fsynced when ``durable``)."""
        return await asyncio.wrap_future(self.submit(fn, *args, durable=durable, **kwargs))

    def call_sync(self, fn: Callable[..., Any], *args: Any, timeout: float = 60.0, **kwargs: Any) -> Any:
        """Blocking variant of :meth:`call` (not for the event loop thread)."""
        return self.submit(fn, *args, **kwargs).result(timeout=timeout)

    def flush_sync(self, timeout: float = 60.0) -> None:
        """Block until everything queued so far is committed."""
        if self._thread is None or self.closed:
            return
        self.submit(lambda j: None).result(timeout=timeout)

    async def flush(self) -> None:
        if self._thread is None or self.closed:
            return
        await self.call(lambda j: None)

    @property
    def pending(self) -> int:
        return self._q.qsize()

    # -- the thread ----------------------------------------------------------

    def _run(self) -> None:
        try:
            self.journal = Journal(self.path)
        except BaseException as exc:  # report to start()
            self._opened.set_exception(exc)
            return
        self._opened.set_result(True)
        j = self.journal
        stop = False
        while not stop:
            item = self._q.get()
            batch = []
            if item is _STOP:
                stop = True
            else:
                batch.append(item)
                while len(batch) < self.max_batch:
                    try:
                        nxt = self._q.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stop = True
                        break
                    batch.append(nxt)
            if batch:
                self._execute(j, batch)
        try:
            j.close()
        except Exception as exc:  # pragma: no cover - closing a healthy file does not fail
            logger.warning("journal {}: close failed: {}", self.path.name, exc)

    def _execute(self, j: Journal, batch: list) -> None:
        done: list[tuple[concurrent.futures.Future, Any, BaseException | None]] = []

        def settle() -> None:
            for fut, value, exc in done:
                if fut is None:
                    continue
                if exc is not None:
                    fut.set_exception(exc)
                else:
                    fut.set_result(value)
            done.clear()

        for fn, args, kwargs, durable, fut in batch:
            if durable:
                # commit what came before, then this operation alone with FULL sync
                self._commit(j, done)
                settle()
                j.set_synchronous("FULL")
                try:
                    j.begin()
                    value, exc = self._one(j, fn, args, kwargs)
                    done.append((fut, value, exc))
                    self._commit(j, done)
                finally:
                    j.set_synchronous("NORMAL")
                settle()
                continue
            j.begin()
            value, exc = self._one(j, fn, args, kwargs)
            if exc is not None and fut is None:
                self._log_error(fn, exc)
            done.append((fut, value, exc))
        self._commit(j, done)
        settle()

    def _one(self, j: Journal, fn, args, kwargs) -> tuple[Any, BaseException | None]:
        j.conn.execute("SAVEPOINT op")
        try:
            value = fn(j, *args, **kwargs)
        except BaseException as exc:
            j.conn.execute("ROLLBACK TO op")
            j.conn.execute("RELEASE op")
            return None, exc
        j.conn.execute("RELEASE op")
        self.written += 1
        return value, None

    def _commit(self, j: Journal, done: list) -> None:
        try:
            j.commit()
        except BaseException as exc:  # the whole transaction is lost: tell every waiter
            self._log_error("commit", exc)
            try:
                j.rollback()
            except Exception:
                j._in_tx = False
            for i, (fut, _value, err) in enumerate(done):
                if err is None:
                    done[i] = (fut, None, exc)

    def _log_error(self, fn: Any, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{getattr(fn, '__name__', fn)}: {exc}"
        if self.errors <= 5 or self.errors % 1000 == 0:  # a full disk must not flood the log
            logger.error("journal {}: write failed ({} so far): {}", self.path.name, self.errors, self.last_error)
