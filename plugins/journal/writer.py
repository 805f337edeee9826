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

Failures (issue 9.3). A write that is lost is a *journal failure*: a posted
write that raised (nobody else will hear of it), a commit that failed, or any
operation the FILE refused (damaged, read-only, disk full, a table missing:
:func:`~perpbot.plugins.journal.store.is_storage_error`; its caller gets a
:class:`~perpbot.plugins.journal.store.JournalUnavailable` naming the file and
what to do). A refused row whose caller handles it (a duplicate client id) is
not one. At the first failure :attr:`JournalWriter.failure` is set and every
callback given to :meth:`JournalWriter.on_failure` is called: the journal
plugin halts the bot with it ("journal unavailable"), so a bot never trades
unrecorded. The writer keeps writing what it can after a failure.
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
from perpbot.plugins.journal.store import Journal, JournalUnavailable, describe_journal_error, is_storage_error

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
        #: the first journal failure (one line naming the file and what to do), None while healthy
        self.failure: str | None = None
        self._failure_callbacks: list[Callable[[str], Any]] = []
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

    def on_failure(self, callback: Callable[[str], Any]) -> None:
        """Call ``callback(failure)`` once, at the first journal failure (see the module docstring).

        ``failure`` is one line naming the file, the operation and what to do. The callback
        runs on the WRITER thread: hand the news to an event loop with
        ``loop.call_soon_threadsafe``. Registered after a failure, it is called at once.
        """
        self._failure_callbacks.append(callback)
        if self.failure is not None:
            self._notify(callback, self.failure)

    def _notify(self, callback: Callable[[str], Any], failure: str) -> None:
        try:
            callback(failure)
        except Exception as exc:  # a broken listener must not stop the writer thread
            logger.opt(exception=exc).error("journal {}: failure callback raised: {}", self.path.name, exc)

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
        """Queue a write whose outcome nobody waits for: if it fails, that is logged, counted and
        a journal failure (:attr:`failure`, :meth:`on_failure`)."""
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
        """Wait (without blocking the event loop) until everything queued so far is committed."""
        if self._thread is None or self.closed:
            return
        await self.call(lambda j: None)

    @property
    def pending(self) -> int:
        """How many writes are queued and not yet taken by the writer thread."""
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
                try:
                    self._execute(j, batch)
                except BaseException as exc:  # never leave a caller waiting on a dead thread
                    self._failed("batch", exc)
                    for _fn, _args, _kwargs, _durable, fut in batch:
                        if fut is not None and not fut.done():
                            fut.set_exception(JournalUnavailable(self.failure or str(exc)))
                    try:
                        j.rollback()
                    except Exception:
                        j._in_tx = bool(j.conn.in_transaction)
        try:
            j.close()
        except Exception as exc:  # pragma: no cover - closing a healthy file does not fail
            logger.warning("journal {}: close failed: {}", self.path.name, exc)

    def _execute(self, j: Journal, batch: list) -> None:
        """Run ``batch`` in order: consecutive non-durable operations share one transaction."""
        done: list[tuple[Any, concurrent.futures.Future | None, Any, BaseException | None]] = []

        def settle() -> None:
            for _fn, fut, value, exc in done:
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
                try:
                    j.set_synchronous("FULL")
                except Exception as exc:
                    done.append((fn, fut, None, self._failed(fn, exc)))
                    settle()
                    continue
                try:
                    self._run_one(j, fn, args, kwargs, fut, done)
                    self._commit(j, done)
                finally:
                    try:
                        j.set_synchronous("NORMAL")
                    except Exception as exc:
                        self._failed("set_synchronous", exc)
                settle()
                continue
            self._run_one(j, fn, args, kwargs, fut, done)
        self._commit(j, done)
        settle()

    def _run_one(self, j: Journal, fn, args, kwargs, fut, done: list) -> None:
        """Run one operation inside the open transaction (opened if needed) and append its outcome to ``done``."""
        try:
            j.begin()
        except BaseException as exc:
            self._tx_lost(j, done, exc)
            done.append((fn, fut, None, self._failed(fn, exc)))
            return
        value, exc = self._one(j, fn, args, kwargs)
        if exc is not None:
            if not j.conn.in_transaction:
                # SQLite rolled the whole transaction back (I/O error, full disk, damage):
                # the operations before this one in the batch are lost as well
                self._tx_lost(j, done, exc)
            if fut is None or is_storage_error(exc):
                exc = self._failed(fn, exc)
        done.append((fn, fut, value, exc))

    def _one(self, j: Journal, fn, args, kwargs) -> tuple[Any, BaseException | None]:
        try:
            j.conn.execute("SAVEPOINT op")
        except BaseException as exc:
            return None, exc
        try:
            value = fn(j, *args, **kwargs)
        except BaseException as exc:
            try:
                j.conn.execute("ROLLBACK TO op")
                j.conn.execute("RELEASE op")
            except Exception:
                pass  # the transaction is gone already (the caller checks conn.in_transaction)
            return None, exc
        try:
            j.conn.execute("RELEASE op")
        except BaseException as exc:
            return None, exc
        self.written += 1
        return value, None

    def _tx_lost(self, j: Journal, done: list, exc: BaseException) -> None:
        """The open transaction is gone: every operation in it failed with ``exc``."""
        try:
            j.rollback()
        except Exception:
            pass
        j._in_tx = bool(j.conn.in_transaction)
        for i, (fn, fut, _value, err) in enumerate(done):
            if err is None:
                self.written -= 1
                done[i] = (fn, fut, None, self._failed(fn, exc))

    def _commit(self, j: Journal, done: list) -> None:
        try:
            j.commit()
        except BaseException as exc:  # the whole transaction is lost: tell every waiter
            self._failed("commit", exc)
            self._tx_lost(j, done, exc)

    def _failed(self, fn: Any, exc: BaseException) -> BaseException:
        """Count and log a journal failure, notify the failure callbacks at the first one.

        Returns the exception for a waiting caller: a :class:`JournalUnavailable` naming the
        file and what to do for a storage error, else ``exc`` itself.
        """
        if isinstance(exc, JournalUnavailable):
            line, out = str(exc), exc
        elif is_storage_error(exc):
            line = describe_journal_error(self.path, exc, "cannot write journal")
            out = JournalUnavailable(line)
        else:
            name = getattr(fn, "__name__", None) or str(fn)
            what = "a write" if name == "<lambda>" else name
            line = f"cannot write journal {self.path}: {what} failed: {exc if str(exc) else type(exc).__name__}"
            out = exc
        self._log_error(fn, exc)
        if self.failure is None:
            self.failure = line
            for callback in list(self._failure_callbacks):
                self._notify(callback, line)
        return out

    def _log_error(self, fn: Any, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{getattr(fn, '__name__', fn)}: {exc}"
        if self.errors <= 5 or self.errors % 1000 == 0:  # a full disk must not flood the log
            logger.error("journal {}: write failed ({} so far): {}", self.path.name, self.errors, self.last_error)
