"""ONE WebSocket to the dYdX indexer, shared by every consumer in the process.

Design decision: a small asyncio layer over the ``websockets`` library, not the
official ``IndexerSocket`` on a thread. Reasons (all checked against
dydx-v4-client 1.1.5, ``indexer/socket/websocket.py``):

- ``IndexerSocket`` is a thread-based ``websocket.WebSocketApp``; its ``connect()``
  blocks forever inside an ``async def``, disables TLS certificate checks
  (``CERT_NONE``) and never reconnects. We would rewrite its loop anyway.
- It decodes JSON inside the callback and websocket-client *swallows* callback
  exceptions: a malformed frame vanishes with a log line, while we must count it
  and the recorder must keep the raw frame.
- Its ``subscribe`` helpers send synchronously from whatever thread calls them and
  cannot throttle per channel+id, which the indexer enforces (>2 subscribes/s on one
  channel+id closes the socket with 1008).
- With ``websockets`` everything stays on the event loop: no cross-thread state, no
  ``call_soon_threadsafe`` hand-off per message, TLS verified by default, the close
  code (1011 heartbeat, 1012 restart, 1008 rate limit) is visible, and protocol
  ping/pong is built in (we ping every ``ws_ping_interval_s`` and drop a connection
  whose pong is late; the server's own pings are answered automatically; the
  indexer ignores app-level ``{"type":"ping"}``).

The REST API and the node still go through the official client
(:mod:`perpbot.exchanges.dydx.rest`, :mod:`perpbot.exchanges.dydx.node`).

Behaviour: reconnect with exponential backoff and jitter (reset once a connection
stayed up ``ws_stable_after_s``); after every (re)connect every subscription is sent
again, at most ``subscribe_per_s`` per second per channel+id; listeners hear
``connected``/``disconnected`` so books are treated as stale until their fresh
snapshot. :func:`acquire` / :func:`release` share one connection per URL and event
loop between the market-data feed and the exchange client (seed 000: one socket for
all markets and channels).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from typing import Any, Callable
from urllib.parse import urlsplit

import orjson
from loguru import logger

from perpbot.core.tasks import cancel_and_wait
from perpbot.exchanges.dydx.config import DydxSettings
from perpbot.exchanges.dydx.limits import backoff_delay

MessageListener = Callable[[Any, Any, int], None]  # (msg dict | None, raw frame, recv_ns)
StateListener = Callable[[str, str, int], None]  # ("connected" | "disconnected", detail, recv_ns)

_CLOSE_NAMES = {
    1000: "normal closure",
    1001: "going away",
    1006: "abnormal closure (no close frame)",
    1008: "policy violation / rate limited",
    1011: "server error / heartbeat timeout",
    1012: "service restart",
}


class IndexerConnection:
    """A self-healing WebSocket with a subscription registry.

    :param url: ``ws://`` or ``wss://`` URL of the indexer's ``/v4/ws``.
    :param settings: timeouts, backoff and throttle settings.
    :param clock_ns: receive-time source (ns since the epoch).
    """

    def __init__(self, url: str, settings: DydxSettings, *, clock_ns: Callable[[], int] = time.time_ns,
                 monotonic: Callable[[], float] = time.monotonic, rng: random.Random | None = None):
        self.url = url
        self.settings = settings
        self._clock_ns = clock_ns
        self._mono = monotonic
        self._rng = rng or random.Random()
        self.subscriptions: dict[tuple[str, str | None], bool] = {}  # (channel, id) -> batched
        self._msg_listeners: list[MessageListener] = []
        self._state_listeners: list[StateListener] = []
        self._ws: Any = None
        self._task: asyncio.Task | None = None
        self._sender: asyncio.Task | None = None
        self._send_q: asyncio.Queue | None = None
        self._sub_times: dict[tuple, deque] = {}
        self.last_subscribed: dict[tuple, float] = {}  # monotonic time of the last subscribe sent
        self._stopping = False
        self._kick_reason: str | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.refs = 0
        self.connected = asyncio.Event()
        self.connection_id: str | None = None
        self.connected_since: float | None = None
        self.stats = {
            "connects": 0, "disconnects": 0, "messages": 0, "subscribes_sent": 0, "subscribe_throttled": 0,
            "listener_errors": 0, "connect_failures": 0,
        }
        self.close_codes: deque = deque(maxlen=50)

    # ------------------------------------------------------------------ registry

    def add_listener(self, on_message: MessageListener | None = None, on_state: StateListener | None = None) -> None:
        """Add ``on_message(msg, raw, recv_ns)`` (every message; ``msg`` None for undecodable
        text) and/or ``on_state(event, detail, recv_ns)`` (``connected`` / ``disconnected``).
        Listeners run on the event loop; an exception in one is logged and counted
        (``listener_errors``).
        """
        if on_message is not None:
            self._msg_listeners.append(on_message)
        if on_state is not None:
            self._state_listeners.append(on_state)

    def remove_listener(self, on_message: MessageListener | None = None, on_state: StateListener | None = None) -> None:
        """Remove listeners added with :meth:`add_listener` (unknown ones are ignored)."""
        if on_message in self._msg_listeners:
            self._msg_listeners.remove(on_message)
        if on_state in self._state_listeners:
            self._state_listeners.remove(on_state)

    def subscribe(self, channel: str, id: str | None = None, *, batched: bool | None = None) -> None:
        """Register a subscription (kept across reconnects) and send it when connected.

        ``id`` must be None for ``v4_markets`` and ``v4_block_height`` (the indexer routes
        their updates to the channel name; a custom id gets only the snapshot).
        """
        key = (channel, id)
        if key in self.subscriptions:
            return
        self.subscriptions[key] = self.settings.batched if batched is None else bool(batched)
        if self._send_q is not None and self.connected.is_set():
            self._send_q.put_nowait(("subscribe", key))

    def resubscribe(self, channel: str, id: str | None = None) -> None:
        """Unsubscribe and subscribe again (a snapshot that never came), throttled."""
        key = (channel, id)
        if key in self.subscriptions and self._send_q is not None and self.connected.is_set():
            self._send_q.put_nowait(("unsubscribe", key))
            self._send_q.put_nowait(("subscribe", key))

    def unsubscribe(self, channel: str, id: str | None = None) -> None:
        """Drop a subscription (sent when connected); an unknown one is ignored."""
        key = (channel, id)
        if self.subscriptions.pop(key, None) is not None and self._send_q is not None and self.connected.is_set():
            self._send_q.put_nowait(("unsubscribe", key))

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        """True while the connection task runs (connected or reconnecting)."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the connection task (idempotent); returns at once."""
        if self.running:
            return
        self.loop = asyncio.get_running_loop()
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"dydx-ws {self.url}")

    async def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a connection; False when none came."""
        try:
            async with asyncio.timeout(timeout):
                await self.connected.wait()
            return True
        except TimeoutError:
            return False

    async def stop(self) -> None:
        """Close the socket and stop reconnecting (idempotent)."""
        self._stopping = True
        ws = self._ws
        if ws is not None:
            try:
                async with asyncio.timeout(2):
                    await ws.close()
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        await cancel_and_wait((self._task, self._sender))
        self._task = self._sender = None
        self.connected.clear()

    def kick(self, reason: str) -> None:
        """Drop the current connection on purpose (e.g. the consumer fell behind); it reconnects."""
        self._kick_reason = reason
        ws = self._ws
        if ws is not None:
            asyncio.ensure_future(ws.close(code=1000, reason=reason[:100]))

    # ------------------------------------------------------------------ internals

    def _notify_state(self, event: str, detail: str) -> None:
        ts = self._clock_ns()
        for fn in list(self._state_listeners):
            try:
                fn(event, detail, ts)
            except Exception as exc:  # noqa: BLE001 - a consumer bug must not kill the socket
                self.stats["listener_errors"] += 1
                logger.opt(exception=exc).error(f"dYdX ws state listener failed: {exc}")

    async def _run(self) -> None:
        from websockets.asyncio.client import connect

        s = self.settings
        attempt = 0
        host = urlsplit(self.url).hostname or ""
        proxy = None if host in ("127.0.0.1", "localhost", "::1") else True
        while not self._stopping:
            code = None
            detail = ""
            up_since = None
            try:
                async with connect(
                    self.url,
                    open_timeout=s.ws_open_timeout_s,
                    ping_interval=s.ws_ping_interval_s,
                    ping_timeout=s.ws_ping_timeout_s,
                    close_timeout=2,
                    max_size=32 * 1024 * 1024,
                    max_queue=None,
                    proxy=proxy,
                    compression=None,
                ) as ws:
                    self._ws = ws
                    up_since = self._mono()
                    self.connected_since = up_since
                    self.stats["connects"] += 1
                    self._send_q = asyncio.Queue()
                    for key in list(self.subscriptions):
                        self._send_q.put_nowait(("subscribe", key))
                    self._sender = asyncio.create_task(self._send_loop(ws, self._send_q), name="dydx-ws-sender")
                    self.connected.set()
                    logger.info(f"dYdX indexer WebSocket connected ({self.url}); {len(self.subscriptions)} subscription(s)")
                    self._notify_state("connected", self.url)
                    async for raw in ws:
                        self._dispatch(raw)
                    code = ws.close_code
                    detail = ws.close_reason or ""
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure leads to a reconnect
                rcvd = getattr(exc, "rcvd", None)
                if rcvd is not None:
                    code, detail = rcvd.code, rcvd.reason
                else:
                    code = code or getattr(getattr(exc, "response", None), "status_code", None)
                    detail = f"{type(exc).__name__}: {exc}"
                if up_since is None:
                    self.stats["connect_failures"] += 1
            finally:
                was_up = self._ws is not None
                self._ws = None
                self.connected.clear()
                self.connection_id = None
                if self._sender is not None:
                    self._sender.cancel()
                    self._sender = None
                self._send_q = None
            if was_up:
                self.stats["disconnects"] += 1
                self.close_codes.append(code)
                name = _CLOSE_NAMES.get(code, "") if isinstance(code, int) else ""
                why = self._kick_reason or (f"close {code}" + (f" {name}" if name else "") + (f": {detail}" if detail else ""))
                self._kick_reason = None
                if not self._stopping:
                    logger.warning(f"dYdX indexer WebSocket lost ({why}); reconnecting")
                self._notify_state("disconnected", why)
                if up_since is not None and self._mono() - up_since >= s.ws_stable_after_s:
                    attempt = 0
            elif not self._stopping:
                logger.warning(f"dYdX indexer WebSocket connect failed ({detail or code}); retrying")
            if self._stopping:
                break
            if code == 1008:
                attempt = max(attempt, 2)  # the server rate-limited us: slow down more
            delay = backoff_delay(attempt, s.retry_base_s, s.retry_max_s, self._rng)
            attempt += 1
            await asyncio.sleep(delay)

    def _dispatch(self, raw: Any) -> None:
        recv_ns = self._clock_ns()
        self.stats["messages"] += 1
        try:
            msg = orjson.loads(raw)
            if not isinstance(msg, dict):
                msg = None
        except orjson.JSONDecodeError:
            msg = None
        if msg is not None and msg.get("type") == "connected":
            self.connection_id = msg.get("connection_id")
        for fn in list(self._msg_listeners):
            try:
                fn(msg, raw, recv_ns)
            except Exception as exc:  # noqa: BLE001 - a consumer bug must not kill the socket
                self.stats["listener_errors"] += 1
                logger.opt(exception=exc).error(f"dYdX ws message listener failed: {type(exc).__name__}: {exc}")

    async def _send_loop(self, ws: Any, q: asyncio.Queue) -> None:
        per_s = self.settings.subscribe_per_s
        loop = asyncio.get_running_loop()
        while True:
            op, key = await q.get()
            if op == "subscribe" and key not in self.subscriptions:
                continue
            stamps = self._sub_times.setdefault(key, deque())
            now = self._mono()
            while stamps and now - stamps[0] >= 1.0:
                stamps.popleft()
            if op == "subscribe" and len(stamps) >= per_s:
                # at most `per_s` subscribe attempts per second per channel+id (socks limit)
                self.stats["subscribe_throttled"] += 1
                delay = stamps[0] + 1.0 - now + 0.01
                loop.call_later(delay, _put_if_current, self, q, (op, key))
                continue
            channel, id_ = key
            payload: dict[str, Any] = {"type": op, "channel": channel}
            if id_ is not None:
                payload["id"] = id_
            if op == "subscribe":
                payload["batched"] = self.subscriptions[key]
                stamps.append(now)
                self.last_subscribed[key] = now
                self.stats["subscribes_sent"] += 1
            try:
                await ws.send(orjson.dumps(payload).decode())
            except Exception:  # noqa: BLE001 - the reader notices the dead socket and reconnects
                return


def _put_if_current(conn: IndexerConnection, q: asyncio.Queue, item: tuple) -> None:
    if conn._send_q is q:
        q.put_nowait(item)


# ---------------------------------------------------------------------- sharing

_SHARED: dict[str, IndexerConnection] = {}


def acquire(settings: DydxSettings, *, clock_ns: Callable[[], int] | None = None) -> IndexerConnection:
    """The process's connection to ``settings.endpoints.ws`` on this event loop (created on first use).

    Call :func:`release` once per :func:`acquire`.
    """
    loop = asyncio.get_running_loop()
    url = settings.endpoints.ws
    conn = _SHARED.get(url)
    if conn is not None and conn.loop is not None and (conn.loop is not loop or conn.loop.is_closed()):
        conn = None  # left over from another (finished) event loop
    if conn is None:
        conn = IndexerConnection(url, settings, clock_ns=clock_ns or time.time_ns)
        conn.loop = loop
        _SHARED[url] = conn
    conn.refs += 1
    return conn


async def release(conn: IndexerConnection) -> None:
    """Drop one reference; the last one closes the socket."""
    conn.refs -= 1
    if conn.refs <= 0:
        if _SHARED.get(conn.url) is conn:
            del _SHARED[conn.url]
        await conn.stop()
