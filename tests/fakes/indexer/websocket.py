"""The fake indexer's WebSocket side (socks at ``/v4/ws``): connections and their
message ids, subscribe / unsubscribe with validation and the subscribe rate limit, the
``subscribed`` snapshot (comlink's REST payload), ``channel_data`` /
``channel_batch_data`` publishing, and server-side closes."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .protocol import (ALL_CHANNELS, CANDLE_RESOLUTIONS, CHANNEL_VERSIONS,
                       CHILD_SUBACCOUNT_MULTIPLIER, INITIAL_ORDER_STATUSES,
                       MAX_PARENT_SUBACCOUNTS, V4_BLOCK_HEIGHT, V4_CANDLES, V4_MARKETS,
                       V4_ORDERBOOK, V4_PARENT_SUBACCOUNTS, V4_SUBACCOUNTS, V4_TRADES, _dumps)

log = logging.getLogger("tests.fakes.indexer")


@dataclass
class _Sub:
    """One subscription of a connection; ``buffer`` holds (version, contents) awaiting the
    next ``channel_batch_data`` flush when ``batched``."""

    channel: str
    id: str
    batched: bool
    buffer: list = field(default_factory=list)


class _Conn:
    """One WebSocket connection: its id, the one ``message_id`` counter shared by all its
    channels, subscriptions, subscribe attempts (rate limit) and the outgoing queue."""

    def __init__(self, ws: ServerConnection):
        self.ws = ws
        self.id = str(uuid.uuid4())
        self.message_id = 0
        self.subs: dict[tuple[str, str], _Sub] = {}
        self.attempts: dict[tuple[str, str], collections.deque] = collections.defaultdict(
            collections.deque)
        self.queue: asyncio.Queue[Optional[str]] = asyncio.Queue()
        self.tasks: set[asyncio.Task] = set()
        self.closing = False
        self.received: list[Any] = []

    def next_id(self) -> int:
        self.message_id += 1
        return self.message_id


class WebSocketApi:
    """socks for ``FakeIndexer``: ``_ws_handler`` serves one connection; ``publish`` sends to
    the subscribers of a channel/id.

    Uses the server's ``_conns``, ``batch_interval``, ``subscribe_rate_limit`` /
    ``subscribe_rate_window``, ``ws_snapshot_delay`` and ``_changed`` (the condition
    ``wait_for`` sleeps on), and ``RestApi`` for the snapshots.
    """

    async def _ws_handler(self, ws: ServerConnection) -> None:
        conn = _Conn(ws)
        self._conns[conn.id] = conn
        self.connection_count_total += 1
        writer = asyncio.create_task(self._writer(conn))
        self._enqueue(conn, {"type": "connected", "connection_id": conn.id, "message_id": 0})
        await self._notify()
        try:
            async for raw in ws:
                self._on_client_message(conn, raw)
        except ConnectionClosed:
            pass
        finally:
            self._conns.pop(conn.id, None)
            for t in list(conn.tasks):
                t.cancel()
            conn.queue.put_nowait(None)
            try:
                await asyncio.wait_for(writer, 2)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
                writer.cancel()
            await self._notify()

    async def _writer(self, conn: _Conn) -> None:
        while True:
            text = await conn.queue.get()
            if text is None:
                return
            try:
                await conn.ws.send(text)
            except ConnectionClosed:
                return

    def _enqueue(self, conn: _Conn, msg: Any) -> None:
        if conn.closing:
            return
        conn.queue.put_nowait(msg if isinstance(msg, str) else _dumps(msg))

    def _error(self, conn: _Conn, message: str, message_id: Optional[int] = None,
               channel: Optional[str] = None, id_: Optional[str] = None) -> None:
        msg = {"type": "error", "message": message, "connection_id": conn.id,
               "message_id": conn.message_id if message_id is None else message_id}
        if channel is not None:
            msg["channel"] = channel
        if id_ is not None:
            msg["id"] = id_
        self._enqueue(conn, msg)

    @staticmethod
    def _normalize_id(channel: str, id_: Optional[str]) -> str:
        if channel == V4_BLOCK_HEIGHT:
            return id_ if id_ is not None else V4_BLOCK_HEIGHT
        return id_ if id_ is not None else V4_MARKETS

    def _valid_sub_id(self, channel: str, id_: Optional[str]) -> bool:
        if channel in (V4_MARKETS, V4_BLOCK_HEIGHT):
            return True
        if id_ is None:
            return False
        if channel in (V4_ORDERBOOK, V4_TRADES):
            return id_ in self.markets
        if channel == V4_CANDLES:
            parts = id_.split("/")
            return len(parts) == 2 and parts[0] in self.markets and parts[1] in CANDLE_RESOLUTIONS
        if channel in (V4_SUBACCOUNTS, V4_PARENT_SUBACCOUNTS):
            parts = id_.split("/")
            if len(parts) != 2 or not parts[1].isdigit():
                return False
            cap = MAX_PARENT_SUBACCOUNTS * (CHILD_SUBACCOUNT_MULTIPLIER
                                           if channel == V4_SUBACCOUNTS else 1)
            return int(parts[1]) < cap
        return False

    def _on_client_message(self, conn: _Conn, raw: Any) -> None:
        try:
            msg = json.loads(raw)
        except (ValueError, TypeError):
            self.client_messages.append((conn.id, raw))
            self._error(conn, "Invalid message: could not parse")
            return
        self.client_messages.append((conn.id, msg))
        if not isinstance(msg, dict) or not msg.get("type"):
            self._error(conn, "Invalid message: type is required")
            return
        mtype = msg["type"]
        if mtype == "ping":
            return  # socks: accepted and ignored, no pong message
        if mtype not in ("subscribe", "unsubscribe"):
            self._error(conn, f"Invalid message type: {mtype}")
            return
        channel = msg.get("channel")
        id_ = msg.get("id")
        if not channel:
            self._error(conn, "Invalid subscribe message: channel is required")
            return
        if channel not in ALL_CHANNELS:
            self._error(conn, f"Invalid channel: {channel}")
            return
        if channel not in (V4_MARKETS, V4_BLOCK_HEIGHT) and not isinstance(id_, str):
            self._error(conn, f"Invalid id: {id_ if id_ is not None else 'undefined'}")
            return
        if mtype == "unsubscribe":
            sid = self._normalize_id(channel, id_)
            conn.subs.pop((channel, sid), None)
            out = {"type": "unsubscribed", "connection_id": conn.id,
                   "message_id": conn.next_id(), "channel": channel}
            if channel != V4_MARKETS:
                out["id"] = id_
            self._enqueue(conn, out)
            self._schedule_notify()
            return
        self._subscribe(conn, channel, id_, bool(msg.get("batched", False)))

    def _subscribe(self, conn: _Conn, channel: str, id_: Optional[str], batched: bool) -> None:
        mid = conn.next_id()
        if not self._valid_sub_id(channel, id_):
            self._error(conn, f"Invalid subscription id for channel: ({channel}-{id_})", mid)
            return
        sid = self._normalize_id(channel, id_)
        now = time.monotonic()
        dq = conn.attempts[(channel, sid)]
        while dq and now - dq[0] > self.subscribe_rate_window:
            dq.popleft()
        dq.append(now)
        if self.subscribe_rate_limit and len(dq) > self.subscribe_rate_limit:
            self._error(conn, f"Too many subscribe attempts for channel {channel}-{sid}. "
                              "Please  reconnect and try again.", mid)
            self._close_later(conn, 1008, _dumps({"message": "Rate limited"}))
            return
        if self.ws_snapshot_delay > 0:
            task = asyncio.get_running_loop().create_task(
                self._finish_subscribe_later(conn, channel, id_, sid, batched, mid))
            conn.tasks.add(task)
            task.add_done_callback(conn.tasks.discard)
        else:
            self._finish_subscribe(conn, channel, id_, sid, batched, mid)

    async def _finish_subscribe_later(self, conn, channel, id_, sid, batched, mid) -> None:
        await asyncio.sleep(self.ws_snapshot_delay)
        if conn.id in self._conns:
            self._finish_subscribe(conn, channel, id_, sid, batched, mid)

    def snapshot(self, channel: str, id_: Optional[str]) -> tuple[int, Any]:
        """(status, contents) of the initial response socks would fetch from comlink."""
        if channel == V4_ORDERBOOK:
            return self._route(f"/v4/orderbooks/perpetualMarket/{id_}", {})
        if channel == V4_TRADES:
            return self._route(f"/v4/trades/perpetualMarket/{id_}", {})
        if channel == V4_MARKETS:
            return self._route("/v4/perpetualMarkets", {})
        if channel == V4_CANDLES:
            t, res = id_.split("/")
            return self._route(f"/v4/candles/perpetualMarkets/{t}", {"resolution": res})
        if channel == V4_BLOCK_HEIGHT:
            return self._route("/v4/height", {})
        if channel in (V4_SUBACCOUNTS, V4_PARENT_SUBACCOUNTS):
            addr, num = id_.split("/")
            parent = channel == V4_PARENT_SUBACCOUNTS
            kind = "parentSubaccountNumber" if parent else "subaccountNumber"
            st, sub = self._route(f"/v4/addresses/{addr}/{kind}/{num}", {})
            if st == 404:
                return 200, {}
            if st != 200:
                return st, sub
            q = {"address": addr, kind: num, "status": ",".join(INITIAL_ORDER_STATUSES)}
            _, orders = self._query_orders(q, parent=parent)
            out = dict(sub)
            out["orders"] = orders
            out["blockHeight"] = str(self.height)
            return 200, out
        return 400, {}

    def _finish_subscribe(self, conn, channel, id_, sid, batched, mid) -> None:
        try:
            status, contents = self.snapshot(channel, id_)
        except Exception:
            log.exception("snapshot failed")
            status, contents = 500, None
        if status != 200:
            self._error(conn, f"Internal error, could not fetch data for subscription: "
                              f"{channel}.", mid)
            return
        if (channel, sid) in conn.subs:
            self._error(conn, f"Invalid subscribe message: already subscribed ({channel}-{sid})",
                        mid)
            return
        conn.subs[(channel, sid)] = _Sub(channel, sid, batched)
        out = {"type": "subscribed", "connection_id": conn.id, "message_id": mid,
               "channel": channel}
        if channel != V4_MARKETS:
            out["id"] = sid
        out["contents"] = contents
        self._enqueue(conn, out)
        self._schedule_notify()

    def _close_later(self, conn: _Conn, code: int, reason: str = "") -> None:
        async def go():
            await asyncio.sleep(0)
            await self._close_conn(conn, code, reason)
        task = asyncio.get_running_loop().create_task(go())
        conn.tasks.add(task)
        task.add_done_callback(conn.tasks.discard)

    async def _close_conn(self, conn: _Conn, code: int, reason: str = "") -> None:
        # flush what is queued, then close with ``code``
        deadline = time.monotonic() + 2
        while not conn.queue.empty() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        conn.closing = True
        try:
            await asyncio.wait_for(conn.ws.close(code, reason), 3)
        except (asyncio.TimeoutError, ConnectionClosed, Exception):
            self._abort(conn)

    @staticmethod
    def _abort(conn: _Conn) -> None:
        conn.closing = True
        tr = getattr(conn.ws, "transport", None)
        if tr is not None:
            tr.abort()

    # ------------------------------------------------------------------ publish
    def publish(self, channel: str, id_: Optional[str], contents: Any, *,
                version: Optional[str] = None, extra: Optional[dict] = None) -> int:
        """Send ``contents`` to every subscriber of channel/id as channel_data (or buffer it
        for channel_batch_data).  Returns the number of subscribers reached.  Must run on
        the fake's loop (use the async ``push_*`` methods or ``threadsafe``)."""
        sid = self._normalize_id(channel, id_)
        version = version or CHANNEL_VERSIONS.get(channel, "1.0.0")
        n = 0
        for conn in list(self._conns.values()):
            sub = conn.subs.get((channel, sid))
            if sub is None:
                continue
            n += 1
            if sub.batched:
                sub.buffer.append((version, contents))
                continue
            msg = {"type": "channel_data", "connection_id": conn.id,
                   "message_id": conn.next_id()}
            if channel != V4_MARKETS:
                msg["id"] = sid
            msg["channel"] = channel
            msg["version"] = version
            msg["contents"] = contents
            if extra:
                msg.update(extra)
            self._enqueue(conn, msg)
        return n

    def _flush_batches(self) -> None:
        for conn in list(self._conns.values()):
            for sub in list(conn.subs.values()):
                if not sub.buffer:
                    continue
                groups: dict[str, list] = {}
                for version, contents in sub.buffer:
                    groups.setdefault(version, []).append(contents)
                sub.buffer.clear()
                for version, items in groups.items():
                    msg = {"type": "channel_batch_data", "connection_id": conn.id,
                           "message_id": conn.next_id()}
                    if sub.channel != V4_MARKETS:
                        msg["id"] = sub.id
                    msg["channel"] = sub.channel
                    msg["version"] = version
                    msg["contents"] = items
                    self._enqueue(conn, msg)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.batch_interval)
            try:
                self._flush_batches()
            except Exception:  # pragma: no cover
                log.exception("batch flush failed")

    async def flush(self) -> None:
        """Flush batched subscriptions now and let the writers run."""
        self._flush_batches()
        await self.drain()

    async def drain(self, timeout: float = 2.0) -> None:
        """Wait (bounded) until every connection's outgoing queue is empty."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(c.queue.empty() for c in self._conns.values()):
                await asyncio.sleep(0)
                return
            await asyncio.sleep(0.005)

    async def _notify(self) -> None:
        if self._changed is None:
            return
        async with self._changed:
            self._changed.notify_all()

    def _schedule_notify(self) -> None:
        try:
            asyncio.get_running_loop().create_task(self._notify())
        except RuntimeError:
            pass
