"""dYdX client ids: unique fixed32 values that survive a restart, so an order is never sent twice.

The bot numbers its orders with its own client ids; each order sent to dYdX gets a
dYdX ``client_id`` (fixed32, unique per subaccount, flags and clob pair) from this
store, and the pair is written to ``<state_dir>/dydx-orders-<address>-<subaccount>.json``
BEFORE the order is signed. The file is replaced atomically (write a temporary file,
fsync, ``os.replace``), so after a crash at any point it holds either the old or the
new state, never a torn one. After a restart:

- ``next`` continues after every id ever handed out (no id is reused);
- an order our client id already maps to is refused instead of re-sent;
- stream updates and fills carrying a dYdX client id map back to our client id.

Shape of the file::

    {"version": 1, "next": 123456, "reserved": [..],
     "orders": {"<our id>": {"dydx_id": int, "ticker": str, "clob": int, "flags": int,
                             "side": "BUY", "size": "0.001", "price": "65000",
                             "gtb": int, "gtbt": int, "tag": str, "created_ns": int,
                             "status": "PENDING", ...}}}

Terminal orders beyond the newest ``keep_terminal`` are pruned.

Writes never block the event loop (issue 9, item 12): the file is written and fsynced by
a short-lived writer thread, always with the newest state, so a burst of changes costs
one fsync (changes made while a write is under way are coalesced into the next one).

- :meth:`ClientIdStore.allocate_async` (the order path) hands the id out only once a
  write that contains it is durable, so an order is still never signed before its id
  is on disk, and a crash can never make an id be handed out twice;
- :meth:`ClientIdStore.update` / :meth:`ClientIdStore.reserve` called on a running loop
  schedule the write and return (a status change lost in a crash is re-read from the
  venue by reconciliation; a reserved id is reserved again when it is seen again);
- outside an event loop, and for the old :meth:`ClientIdStore.allocate`, the write is
  synchronous as before.

The writer thread is not a daemon: the interpreter waits for a write under way at exit.
A background write that fails is logged (one line naming the file) and counted in
``write_errors``; the next change writes the whole state again.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable

from loguru import logger

from perpbot.core.errors import ConfigError

MAX_CLIENT_ID = 2**32 - 1
_TERMINAL = {"FILLED", "CANCELED", "EXPIRED", "REJECTED"}


class ClientIdStore:
    """Persistent map our client id <-> dYdX client id, with a never-reused counter.

    :param path: the JSON file (None: in memory only, for tests of other parts).
    :param keep_terminal: how many finished orders to remember (late fills map back).
    """

    def __init__(self, path: Path | str | None, *, keep_terminal: int = 2000, rng: random.Random | None = None):
        self.path = Path(path) if path is not None else None
        self.keep_terminal = keep_terminal
        self.orders: dict[int, dict] = {}
        self.reserved: set[int] = set()
        self._by_dydx: dict[int, int] = {}
        self.next = (rng or random.SystemRandom()).randint(1, 2**31)
        # writes: generation of the newest state asked for / known to be on disk
        self._gen = 0
        self._written = 0
        self._io_lock = threading.Lock()  # one file write at a time; an older state never lands last
        self._cv = threading.Condition()  # guards _pending, _thread, _waiters
        self._pending: tuple[int, dict] | None = None  # newest state waiting for the writer thread
        self._thread: threading.Thread | None = None
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future]] = []
        self.write_errors = 0
        if self.path is not None and self.path.exists():
            self._load()

    # ------------------------------------------------------------------ persistence

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.next = int(data["next"])
            self.reserved = {int(i) for i in data.get("reserved", [])}
            self.orders = {int(k): dict(v) for k, v in (data.get("orders") or {}).items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"dYdX client-id store {self.path} is unreadable ({type(exc).__name__}); "
                f"move it aside only if no order of this bot can still be open"
            ) from None
        self._by_dydx = {int(v["dydx_id"]): k for k, v in self.orders.items()}

    def _snapshot(self) -> tuple[int, dict]:
        """The state to write and its generation (built on the caller's thread: consistent).

        Order records are never mutated in place (``update`` replaces them), so a shallow
        copy is a stable snapshot for the writer thread.
        """
        self._prune()
        self._gen += 1
        return self._gen, {
            "version": 1,
            "next": self.next,
            "reserved": sorted(self.reserved)[-5000:],
            "orders": {str(k): v for k, v in self.orders.items()},
        }

    def save(self) -> None:
        """Write the file atomically (temp file + fsync + rename), on this thread, now.

        :raises OSError: the write failed (the previous file is left intact).
        """
        if self.path is None:
            return
        self._write(*self._snapshot())

    def _write(self, gen: int, data: dict) -> None:
        """Write generation ``gen`` unless a newer one is on disk already (any thread)."""
        with self._io_lock:
            if gen <= self._written:
                return
            self._write_file(data)
            self._written = gen

    def _write_file(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=str(self.path.parent))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, separators=(",", ":"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        try:
            dfd = os.open(str(self.path.parent), os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:  # pragma: no cover - not every filesystem lets a directory be fsynced
            pass

    # -- off the event loop ----------------------------------------------------------

    def _submit(self, loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Future | None:
        """Hand the current state to the writer thread; with ``loop``, a future resolved
        (on that loop) once a state at least this new is on disk, or failed with the error."""
        gen, data = self._snapshot()
        fut = None
        with self._cv:
            self._pending = (gen, data)  # an older pending state is superseded (coalesced)
            if loop is not None:
                fut = loop.create_future()
                self._waiters.append((gen, loop, fut))
            if self._thread is None:
                self._thread = threading.Thread(target=self._writer, name=f"dydx-ids {self.path.name}",
                                                daemon=False)
                self._thread.start()
        return fut

    def _writer(self) -> None:
        """Writer thread: write the newest pending state until none is left, then exit."""
        while True:
            with self._cv:
                item, self._pending = self._pending, None
                if item is None:
                    self._thread = None
                    self._cv.notify_all()
                    return
            gen, data = item
            err: BaseException | None = None
            try:
                self._write(gen, data)
            except BaseException as exc:  # reported to the waiters, or logged below
                err = exc
            with self._cv:
                done = [w for w in self._waiters if w[0] <= gen]
                self._waiters = [w for w in self._waiters if w[0] > gen]
            if err is not None:
                self.write_errors += 1
                if not done:
                    logger.error(f"dYdX client-id store {self.path}: write failed ({type(err).__name__}: {err}); "
                                 f"the next change writes the whole state again")
            for _, loop, fut in done:
                try:
                    loop.call_soon_threadsafe(_settle, fut, err)
                except RuntimeError:  # that loop is closed: nobody waits any more
                    pass

    def flush(self) -> None:
        """Block until no background write is pending or under way (any thread but a loop's)."""
        with self._cv:
            while self._thread is not None:
                self._cv.wait()

    async def aflush(self) -> None:
        """:meth:`flush` from a coroutine, without blocking the loop."""
        await asyncio.to_thread(self.flush)

    def _persist(self) -> None:
        """Save now outside an event loop; on a running loop, in the background."""
        if self.path is None:
            return
        if _running_loop() is None:
            self.save()
        else:
            self._submit()

    def _prune(self) -> None:
        done = [k for k, v in self.orders.items() if v.get("status") in _TERMINAL]
        if len(done) > self.keep_terminal:
            done.sort(key=lambda k: self.orders[k].get("created_ns", 0))
            for k in done[: len(done) - self.keep_terminal]:
                dy = self.orders.pop(k).get("dydx_id")
                self._by_dydx.pop(dy, None)

    # ------------------------------------------------------------------ allocation

    def _take_next(self) -> int:
        for _ in range(1_000_000):
            cid = self.next
            self.next = cid + 1 if cid < MAX_CLIENT_ID else 1
            if cid not in self.reserved and cid not in self._by_dydx:
                return cid
        raise RuntimeError("no free dYdX client id")  # pragma: no cover

    def _assign(self, our_id: int, meta: dict) -> int:
        if our_id in self.orders:
            prev = self.orders[our_id]
            raise ValueError(
                f"client id {our_id} was already sent to dYdX as client id {prev['dydx_id']} "
                f"({prev.get('ticker')}, {prev.get('status')}); an order is never sent twice"
            )
        dydx_id = self._take_next()
        self.orders[our_id] = {"dydx_id": dydx_id, "status": "PENDING", **meta}
        self._by_dydx[dydx_id] = our_id
        return dydx_id

    def _unassign(self, our_id: int, dydx_id: int) -> None:
        """Undo ``_assign`` after a failed write (the id stays burnt: ``next`` moved on)."""
        self.orders.pop(our_id, None)
        self._by_dydx.pop(dydx_id, None)

    def allocate(self, our_id: int, meta: dict) -> int:
        """A fresh dYdX client id for our order ``our_id``, persisted before it is returned.

        Writes and fsyncs on the calling thread: on an event loop use :meth:`allocate_async`.

        :raises ValueError: when ``our_id`` was already sent (an order is never sent twice).
        :raises OSError: the file could not be written (nothing is allocated).
        """
        dydx_id = self._assign(our_id, meta)
        try:
            self.save()
        except BaseException:
            self._unassign(our_id, dydx_id)
            raise
        return dydx_id

    async def allocate_async(self, our_id: int, meta: dict) -> int:
        """:meth:`allocate` for the event loop: the file is written by the writer thread.

        The id is assigned at once (on the loop: concurrent calls get distinct ids) and
        returned only when a write containing it is durable (fsynced and renamed), so the
        order is never signed before its id is on disk. Writes of concurrent calls are
        coalesced: one fsync for a burst of orders.

        :returns: the dYdX client id (fixed32).
        :raises ValueError: when ``our_id`` was already sent (an order is never sent twice).
        :raises OSError: the file could not be written (nothing is allocated).
        """
        dydx_id = self._assign(our_id, meta)
        if self.path is None:
            return dydx_id
        fut = self._submit(asyncio.get_running_loop())
        try:
            await fut
        except asyncio.CancelledError:
            # the write goes on; the order is not sent (it is no open order to reconcile),
            # and its id is never handed out again
            self.update(our_id, status="REJECTED", error="cancelled before it was sent")
            raise
        except BaseException:
            self._unassign(our_id, dydx_id)
            raise
        return dydx_id

    def reserve(self, dydx_ids: Iterable[int]) -> None:
        """Never hand out these dYdX client ids (e.g. ids seen on the exchange)."""
        ids = {int(i) for i in dydx_ids if 0 <= int(i) <= MAX_CLIENT_ID}
        new = ids - self.reserved
        if new:
            self.reserved |= new
            self._persist()

    # ------------------------------------------------------------------ lookups

    def our_id(self, dydx_id: int) -> int | None:
        """Our client id for a dYdX client id we handed out, or None (another client's, or unknown)."""
        return self._by_dydx.get(int(dydx_id))

    def get(self, our_id: int) -> dict | None:
        """The record of our order ``our_id`` (shape in the module docstring), or None.

        The dict is replaced, never mutated, on :meth:`update`: do not change it.
        """
        return self.orders.get(our_id)

    def update(self, our_id: int, *, persist: bool = True, **fields: Any) -> None:
        """Change fields of our order's record; ``persist``: write the file (in the
        background on a running loop, see the module doc)."""
        rec = self.orders.get(our_id)
        if rec is None:
            return
        changed = any(rec.get(k) != v for k, v in fields.items())
        if changed:
            self.orders[our_id] = {**rec, **fields}  # replaced, never mutated: snapshots stay stable
            if persist:
                self._persist()

    def open_ids(self) -> list[int]:
        """Our client ids whose recorded status is not terminal (FILLED, CANCELED, EXPIRED, REJECTED)."""
        return [k for k, v in self.orders.items() if v.get("status") not in _TERMINAL]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _settle(fut: asyncio.Future, err: BaseException | None) -> None:
    """On the waiter's loop: resolve a write future (unless its waiter was cancelled)."""
    if fut.done():
        return
    if err is None:
        fut.set_result(None)
    else:
        fut.set_exception(err)
