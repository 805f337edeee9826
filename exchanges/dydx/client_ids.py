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
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Iterable

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

    def save(self) -> None:
        """Write the file atomically (temp file + fsync + rename)."""
        if self.path is None:
            return
        self._prune()
        data = {
            "version": 1,
            "next": self.next,
            "reserved": sorted(self.reserved)[-5000:],
            "orders": {str(k): v for k, v in self.orders.items()},
        }
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

    def allocate(self, our_id: int, meta: dict) -> int:
        """A fresh dYdX client id for our order ``our_id``, persisted before it is returned.

        :raises ValueError: when ``our_id`` was already sent (an order is never sent twice).
        """
        if our_id in self.orders:
            prev = self.orders[our_id]
            raise ValueError(
                f"client id {our_id} was already sent to dYdX as client id {prev['dydx_id']} "
                f"({prev.get('ticker')}, {prev.get('status')}); an order is never sent twice"
            )
        dydx_id = self._take_next()
        self.orders[our_id] = {"dydx_id": dydx_id, "status": "PENDING", **meta}
        self._by_dydx[dydx_id] = our_id
        self.save()
        return dydx_id

    def reserve(self, dydx_ids: Iterable[int]) -> None:
        """Never hand out these dYdX client ids (e.g. ids seen on the exchange)."""
        ids = {int(i) for i in dydx_ids if 0 <= int(i) <= MAX_CLIENT_ID}
        new = ids - self.reserved
        if new:
            self.reserved |= new
            self.save()

    # ------------------------------------------------------------------ lookups

    def our_id(self, dydx_id: int) -> int | None:
        return self._by_dydx.get(int(dydx_id))

    def get(self, our_id: int) -> dict | None:
        return self.orders.get(our_id)

    def update(self, our_id: int, *, persist: bool = True, **fields: Any) -> None:
        rec = self.orders.get(our_id)
        if rec is None:
            return
        changed = any(rec.get(k) != v for k, v in fields.items())
        if changed:
            rec.update(fields)
            if persist:
                self.save()

    def open_ids(self) -> list[int]:
        return [k for k, v in self.orders.items() if v.get("status") not in _TERMINAL]
