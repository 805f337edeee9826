"""``FakeIndexer``: the server that ties the fake indexer together -- construction from a
``Dataset``, one websockets server on an ephemeral 127.0.0.1 port for REST and
WebSocket, the lifecycle (``async with``, or its own loop in a thread with
``threadsafe`` calls), and the mixins holding accounts, REST, WebSocket and controls."""

from __future__ import annotations

import asyncio
import collections
import copy
import inspect
import logging
import threading
from pathlib import Path
from typing import Any, Callable, Optional

from websockets.asyncio.server import serve

from .accounts import AccountState
from .book import Book
from .controls import ConnectionControls, MarketControls
from .dataset import Dataset, load_dataset
from .protocol import LOOPBACK
from .rest import RestApi, _Fault
from .websocket import WebSocketApi, _Conn

log = logging.getLogger("tests.fakes.indexer")


class _ThreadSafeProxy:
    """``ix.threadsafe.<method>(...)`` runs ``await ix.<method>(...)`` on the fake's loop
    from another thread and returns its result (``_timeout`` seconds, default 10)."""

    def __init__(self, target: Any):
        self._target = target

    def __getattr__(self, name: str):
        attr = getattr(self._target, name)
        if not (inspect.iscoroutinefunction(attr)):
            return attr

        def call(*args, _timeout: float = 10.0, **kwargs):
            loop = self._target.loop
            if loop is None or not loop.is_running():
                raise RuntimeError("fake is not running")
            if getattr(self._target, "_loop_thread_id", None) == threading.get_ident():
                raise RuntimeError("threadsafe.* called from the fake's own loop: await it")
            fut = asyncio.run_coroutine_threadsafe(attr(*args, **kwargs), loop)
            return fut.result(_timeout)

        return call


class FakeIndexer(AccountState, RestApi, WebSocketApi, MarketControls, ConnectionControls):
    """Loopback dYdX v4 indexer (REST + WebSocket on one port of 127.0.0.1).

    This class holds the state and the lifecycle; its methods come from the mixins
    ``AccountState`` (accounts.py), ``RestApi`` (rest.py), ``WebSocketApi``
    (websocket.py), ``MarketControls`` and ``ConnectionControls`` (controls.py).

    Args:
        dataset: initial state; default ``load_dataset()`` (shared data or built-in).
        use_shared_data: False forces the built-in dataset.
        port: 0 (default) for an ephemeral port.
        batch_interval: flush period of ``channel_batch_data`` (socks: 0.25 s).
        ping_interval / ping_timeout: protocol keepalive (socks: 30 s / 10 s, close 1011).
        subscribe_rate_limit / subscribe_rate_window: >limit subscribes per window on one
            channel+id -> error + close 1008 (socks: 2 per 1 s).
        ws_snapshot_delay: seconds between a subscribe and its ``subscribed`` reply.
        close_timeout: how long a server-initiated close waits for the client's TCP close.
        height: initial block height (or set ``height_source`` to a callable).
        api_limit: comlink ``API_LIMIT_V4``: default and maximum ``limit`` of list endpoints.
    """

    def __init__(self, *, dataset: Optional[Dataset] = None, use_shared_data: bool = True,
                 data_dir: Optional[str | Path] = None, host: str = LOOPBACK, port: int = 0,
                 batch_interval: float = 0.25, ping_interval: Optional[float] = 30.0,
                 ping_timeout: Optional[float] = 10.0, subscribe_rate_limit: int = 2,
                 subscribe_rate_window: float = 1.0, ws_snapshot_delay: float = 0.0,
                 height: Optional[int] = None, max_levels: int = 100,
                 close_timeout: float = 0.5, api_limit: int = 1000):
        if host != LOOPBACK:
            raise ValueError("FakeIndexer binds 127.0.0.1 only")
        self.host = host
        self._want_port = int(port)
        self.port: Optional[int] = None
        self.batch_interval = batch_interval
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.subscribe_rate_limit = subscribe_rate_limit
        self.subscribe_rate_window = subscribe_rate_window
        self.ws_snapshot_delay = ws_snapshot_delay
        self.max_levels = max_levels
        #: comlink ``API_LIMIT_V4`` (config.ts; 1000 now, 100 on older indexers): the default and
        #: the largest ``limit`` of the list endpoints
        self.api_limit = int(api_limit)
        self.close_timeout = close_timeout
        ds = dataset if dataset is not None else load_dataset(data_dir, use_shared=use_shared_data)
        self.dataset = ds
        self.markets: dict[str, dict] = copy.deepcopy(ds.markets)
        self.books: dict[str, Book] = {t: Book(b) for t, b in ds.books.items()}
        self.trades: dict[str, list] = {t: list(v) for t, v in ds.trades.items()}
        self.candles: dict[str, list] = {t: list(v) for t, v in ds.candles.items()}
        self.funding: dict[str, list] = {t: list(v) for t, v in ds.funding.items()}
        self._height = int(height if height is not None else ds.height)
        self.height_source: Optional[Callable[[], int]] = None
        # account state (REST shapes)
        self.subaccounts: dict[tuple[str, int], dict] = {}
        self.orders: dict[str, dict] = {}                 # order uuid -> REST order
        self.fills: list[dict] = []                       # newest first, with "address"
        self.positions: dict[tuple[str, int], dict[str, dict]] = {}
        self.transfers: list[dict] = []
        self.funding_payments: list[dict] = []
        self._load_accounts(ds)
        # observability / fault injection
        self.request_counts: collections.Counter[str] = collections.Counter()
        self.requests: list[tuple[float, str, str]] = []
        self.client_messages: list[tuple[str, Any]] = []
        self._faults: list[_Fault] = []
        self._ws_connect_faults: list[_Fault] = []
        self._conns: dict[str, _Conn] = {}
        self.connection_count_total = 0
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._loop_thread_id: Optional[int] = None
        self._server = None
        self._flusher: Optional[asyncio.Task] = None
        self._thread: Optional[threading.Thread] = None
        self._changed: Optional[asyncio.Condition] = None
        self.threadsafe = _ThreadSafeProxy(self)

    # ------------------------------------------------------------------ lifecycle
    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v4/ws"

    @property
    def height(self) -> int:
        if self.height_source is not None:
            return int(self.height_source())
        return self._height

    async def start(self) -> "FakeIndexer":
        if self._server is not None:
            return self
        self.loop = asyncio.get_running_loop()
        self._loop_thread_id = threading.get_ident()
        self._changed = asyncio.Condition()
        self._server = await serve(
            self._ws_handler, self.host, self._want_port,
            process_request=self._process_request,
            ping_interval=self.ping_interval, ping_timeout=self.ping_timeout,
            open_timeout=120, close_timeout=self.close_timeout, max_queue=None,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self._flusher = asyncio.create_task(self._flush_loop())
        log.info("FakeIndexer on %s", self.rest_url)
        return self

    async def stop(self) -> None:
        if self._server is None:
            return
        if self._flusher:
            self._flusher.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(self._flusher), 1)
            except (asyncio.CancelledError, asyncio.TimeoutError, Exception):
                pass
        for c in list(self._conns.values()):
            self._abort(c)
        self._server.close(close_connections=False)
        try:
            await asyncio.wait_for(self._server.wait_closed(), 5)
        except asyncio.TimeoutError:
            log.warning("FakeIndexer: wait_closed timed out")
        self._server = None

    async def __aenter__(self) -> "FakeIndexer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def start_in_thread(self, timeout: float = 10.0) -> "FakeIndexer":
        """Run the fake on its own event loop in a daemon thread (for sync tests)."""
        ready = threading.Event()
        err: list[BaseException] = []

        def run():
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as e:  # pragma: no cover - surfaced below
                err.append(e)
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="FakeIndexer", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("FakeIndexer did not start")
        if err:
            raise err[0]
        return self

    def stop_thread(self, timeout: float = 10.0) -> None:
        if self._thread is None or self.loop is None:
            return
        loop = self.loop
        fut = asyncio.run_coroutine_threadsafe(self.stop(), loop)
        try:
            fut.result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> "FakeIndexer":
        return self.start_in_thread()

    def __exit__(self, *exc) -> None:
        self.stop_thread()

    def call_soon_threadsafe(self, fn: Callable, *args) -> None:
        """Schedule ``fn(*args)`` on the fake's loop (from any thread)."""
        if self.loop is None or self.loop.is_closed():
            raise RuntimeError("FakeIndexer is not running")
        self.loop.call_soon_threadsafe(fn, *args)
