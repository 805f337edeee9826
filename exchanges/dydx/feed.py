"""The ``dydx`` feed: live dYdX v4 market data, no keys needed.

All markets and channels share ONE WebSocket (:mod:`perpbot.exchanges.dydx.ws`):
``v4_markets`` (oracle prices, next funding rate, open interest, IMF/MMF changes; no
``id``), ``v4_orderbook`` and ``v4_trades`` per ticker, ``v4_candles`` for the
resolutions in ``candles``. The dYdX exchange client adds ``v4_subaccounts`` and
``v4_block_height`` to the same socket.

Messages become :mod:`perpbot.core.model` events through :class:`~perpbot.exchanges.dydx.parser.DydxParser`
(the same parser replays recordings). Book health: every book is stale (its market's
decisions paused, ``FeedStatus(healthy=False, "waiting for snapshot ...")``) from the
start and after every disconnect until its fresh snapshot; a crossed book is
uncrossed, marked unhealthy and resynced from REST; every ``resync_interval_s`` each
healthy book is refreshed from the REST snapshot as well (deltas received meanwhile
are re-applied on top). A book still waiting for its snapshot ``snapshot_timeout_s``
after a (re)connect is resubscribed (throttled). The settled hourly funding rate comes from
``/v4/historicalFunding`` at start and shortly after every top of the hour.

When nothing arrives for a second, :meth:`DydxFeed.batches` yields an empty batch so
the bot's clock-driven work (decisions, staleness, stop requests) still runs.

REST failures during resyncs are logged and retried; the market stays unhealthy,
never silently fresh. With ``stream = "HOST:PORT"`` (CLI ``--dydx-stream``) the books and
trades come from a full node's gRPC order-book stream instead, the indexer staying as
fallback and cross-check (:mod:`perpbot.exchanges.dydx.stream`).

With ``record = "file.jsonl.gz"`` every raw message (and the feed's own resync/disconnect
markers) is written by :class:`~perpbot.exchanges.dydx.recording.Recorder`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, AsyncIterator, Mapping

from loguru import logger

from perpbot.core.errors import TemporaryExchangeError
from perpbot.core.feed import BaseFeed
from perpbot.core.model import Market
from perpbot.exchanges.dydx import ws as ws_mod
from perpbot.exchanges.dydx.config import DydxSettings
from perpbot.exchanges.dydx.limits import backoff_delay
from perpbot.core.tasks import cancel_and_wait
from perpbot.exchanges.dydx.parser import (
    LIVE,
    STALE,
    V4_CANDLES,
    V4_MARKETS,
    V4_ORDERBOOK,
    V4_TRADES,
    DydxParser,
)
from perpbot.exchanges.dydx.recording import Recorder
from perpbot.exchanges.dydx.rest import IndexerRest

NS = 1_000_000_000
#: an empty batch is yielded after this many seconds without data
IDLE_TICK_S = 1.0
_STOP = object()


def run_blocking(coro_factory, timeout: float) -> Any:
    """Run ``coro_factory()`` to completion on a private event loop in a helper thread.

    For the few synchronous entry points of the contract (``markets()`` is called while
    the bot is being built, before any loop runs); never used on the hot path.
    """
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro_factory())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target, name="dydx-blocking", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TemporaryExchangeError(f"dYdX indexer did not answer within {timeout:.0f}s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def markets_from_payload(payload: Mapping[str, Any]) -> dict[str, Market]:
    """``{ticker: Market}`` from a ``/v4/perpetualMarkets`` ``markets`` map (unusable rows skipped)."""
    out = {}
    for t, row in payload.items():
        try:
            out[t] = Market.from_indexer(row)
        except (ValueError, TypeError, KeyError):
            continue
    return out


class DydxFeed(BaseFeed):
    """Live dYdX v4 market data over one indexer WebSocket plus REST resyncs.

    Constructed with the ``[feed.dydx]`` table (same network keys as ``[exchange.dydx]``)
    and a context with ``clock``, ``tickers`` and ``options`` (``live``).
    """

    name = "dydx"
    description = "dYdX v4 live market data: one indexer WebSocket for all markets, REST resyncs (no keys)"
    replay = False

    def __init__(self, config: Mapping[str, Any], context: Any):
        super().__init__(config, context)
        opts = dict(getattr(context, "options", {}) or {})
        self.settings = DydxSettings.from_config(config, live=bool(opts.get("live")))
        self.clock = getattr(context, "clock", None)
        self.tickers = tuple(t for t in (getattr(context, "tickers", ()) or ()) if ":" not in t)
        self._markets: dict[str, Market] = dict(getattr(context, "markets", {}) or {})
        self._raw_markets: dict[str, dict] | None = None
        self.parser = DydxParser(self.tickers, self._markets)
        self.recorder: Recorder | None = None
        self.rest: IndexerRest | None = None
        self.conn: ws_mod.IndexerConnection | None = None
        self._queue: asyncio.Queue | None = None
        self._tasks: list[asyncio.Task] = []
        self._resync_event: asyncio.Event | None = None
        self._started = False
        self._stopped = False
        self._connected_at: float | None = None
        self._last_resubscribe: dict[str, float] = {}
        self.stream = None  # perpbot.exchanges.dydx.stream.StreamSource when settings.stream is set
        self.counters = {"queued": 0, "resync_requests": 0, "resync_failures": 0, "resubscribes": 0, "queue_overflows": 0,
                         "batches": 0, "max_queue": 0}

    # ------------------------------------------------------------------ contract

    def now_ns(self) -> int:
        """The bot's clock (``context.clock``) in ns, else the wall clock."""
        return self.clock.now_ns() if self.clock is not None else time.time_ns()

    def markets(self) -> dict[str, Market]:
        """Every market the indexer lists (fetched once, synchronously, if not loaded yet)."""
        if self._raw_markets is None:
            settings = self.settings

            async def fetch() -> dict:
                return await IndexerRest(settings).perpetual_markets()

            self._raw_markets = run_blocking(fetch, settings.rest_timeout_s * (settings.rest_retries + 2) + 5)
            self._markets.update(markets_from_payload(self._raw_markets))
        return dict(self._markets)

    async def start(self) -> None:
        """Load the markets, open (or join) the shared WebSocket and subscribe: ``v4_markets``,
        and per ticker ``v4_orderbook``, ``v4_trades`` and the configured candles. Idempotent.

        :raises ConfigError: a ticker the indexer does not list.
        :raises ExchangeError: the market list could not be read.
        """
        if self._started:
            return
        self._started = True
        s = self.settings
        self._queue = asyncio.Queue()
        self._resync_event = asyncio.Event()
        self.rest = IndexerRest(s)
        if self._raw_markets is None:
            self._raw_markets = await self.rest.perpetual_markets()
            self._markets.update(markets_from_payload(self._raw_markets))
        missing = [t for t in self.tickers if t not in self._raw_markets]
        if missing:
            from perpbot.core.errors import ConfigError

            raise ConfigError(f"unknown dYdX market {missing[0]!r} on {s.network} ({len(self._raw_markets)} markets)")
        if s.record is not None:
            self.recorder = Recorder(s.record, s.record_max_bytes)
            logger.info(f"recording the dYdX indexer stream to {s.record}")
        now = self.now_ns()
        self._put(self.parser.start_events(now))
        self._deliver(
            {"type": "perpbot_rest", "channel": V4_MARKETS,
             "contents": {"markets": {t: self._raw_markets[t] for t in self.tickers}}},
            now,
        )
        if s.stream is not None:
            from perpbot.exchanges.dydx.stream import StreamSource

            self.stream = StreamSource(s, self._markets, self.tickers, put=lambda ev: self._put(ev, stream=True),
                                       now_ns=self.now_ns, indexer_tracker=self.parser.books.get)
            await self.stream.start()  # ConfigError when the endpoint does not stream
        conn = self.conn = ws_mod.acquire(s, clock_ns=self.now_ns)
        conn.add_listener(self._on_ws, self._on_ws_state)
        conn.subscribe(V4_MARKETS, None)
        for t in self.tickers:
            conn.subscribe(V4_ORDERBOOK, t)
            conn.subscribe(V4_TRADES, t)
            for res in s.candles:
                conn.subscribe(V4_CANDLES, f"{t}/{res}")
        if conn.connected.is_set():
            # the exchange opened the socket first: our new subscriptions are on their way
            self._connected_at = time.monotonic()
        await conn.start()
        self._tasks = [
            asyncio.create_task(self._resync_loop(), name="dydx-feed-resync"),
            asyncio.create_task(self._maintenance_loop(), name="dydx-feed-maintenance"),
        ]
        logger.info(f"dYdX feed: {s.describe()}; markets {', '.join(self.tickers)}")

    async def batches(self) -> AsyncIterator[list]:
        """Event batches (lists of :mod:`perpbot.core.model` events) in receive order, until
        :meth:`stop`; an empty batch after ``IDLE_TICK_S`` (1 s) without data, so the bot's clock
        moves. Starts the feed when needed.
        """
        if self._queue is None:
            await self.start()
        q = self._queue
        while True:
            try:
                batch = q.get_nowait()
            except asyncio.QueueEmpty:
                try:
                    async with asyncio.timeout(IDLE_TICK_S):
                        batch = await q.get()
                except TimeoutError:
                    # a quiet market still needs the bot's clock to move: decisions, staleness
                    # checks and stop requests happen between batches
                    yield []
                    continue
            if batch is _STOP:
                return
            self.counters["batches"] += 1
            yield batch

    async def stop(self) -> None:
        """Cancel the tasks, leave the shared WebSocket, close the recording; ends :meth:`batches`. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        await cancel_and_wait(self._tasks)
        self._tasks = []
        if self.stream is not None:
            await self.stream.stop()
        if self.conn is not None:
            self.conn.remove_listener(self._on_ws, self._on_ws_state)
            for t in self.tickers:
                self.conn.unsubscribe(V4_ORDERBOOK, t)
                self.conn.unsubscribe(V4_TRADES, t)
            await ws_mod.release(self.conn)
            self.conn = None
        if self.recorder is not None:
            self.recorder.close()
            logger.info(f"recording closed: {self.recorder.summary()}")
        if self._queue is not None:
            self._queue.put_nowait(_STOP)

    def stats(self) -> dict:
        """Counters: the parser's (``stats``), the feed's, the socket's (``ws_*``) and REST's (``rest_*``)."""
        out = dict(self.parser.stats)
        out.update(self.counters)
        if self.conn is not None:
            out.update({f"ws_{k}": v for k, v in self.conn.stats.items()})
        if self.rest is not None:
            out.update(rest_requests=self.rest.requests, rest_retries=self.rest.retries,
                       rest_failures=self.rest.failures)
        if self.recorder is not None:
            out["recorded_messages"] = self.recorder.lines
        if self.stream is not None:
            out.update(self.stream.stats())
        return out

    def book_states(self) -> dict[str, tuple]:
        """``{ticker: (state, reason)}``: ``live``/``refresh`` are healthy."""
        return self.parser.book_states()

    # ------------------------------------------------------------------ plumbing

    def _put(self, events: list, stream: bool = False) -> None:
        if self.stream is not None and not stream:
            events = self.stream.filter(events)  # the stream drives these markets' books and trades
        if not events or self._queue is None or self._stopped:
            return
        q = self._queue
        q.put_nowait(events)
        self.counters["queued"] += 1
        size = q.qsize()
        if size > self.counters["max_queue"]:
            self.counters["max_queue"] = size
        if size > self.settings.max_queue:
            # the consumer fell behind: drop what is queued and rebuild every book
            self.counters["queue_overflows"] += 1
            while not q.empty():
                q.get_nowait()
                self.counters["queued"] -= 1
            logger.error(f"dYdX feed: {size} batches queued (consumer too slow); dropping them and resyncing")
            lost = self.parser.on_disconnect(self.now_ns(), "event queue overflow")
            if self.stream is not None:  # the stream's markets get their whole book again
                lost = self.stream.filter(lost) + self.stream.snapshots(self.now_ns())
            q.put_nowait(lost)
            self.counters["queued"] += 1
            if self.conn is not None:
                self.conn.kick("event queue overflow")

    def _deliver(self, msg: dict, recv_ns: int) -> None:
        """A feed pseudo-message: recorded in line and parsed like an indexer message."""
        if self.recorder is not None:
            self.recorder.write(msg, recv_ns)
        self._put(self.parser.on_message(msg, recv_ns))
        self._after_parse()

    def _after_parse(self) -> None:
        if self.parser.resync_wanted and self._resync_event is not None:
            self._resync_event.set()

    def _on_ws(self, msg: Any, raw: Any, recv_ns: int) -> None:
        if self._stopped:
            return
        if self.recorder is not None:
            self.recorder.write_raw(raw, recv_ns, valid_json=msg is not None)
        if msg is None:
            self._put(self.parser.on_raw(raw, recv_ns))  # counts it as malformed
            return
        self._put(self.parser.on_message(msg, recv_ns))
        self._after_parse()

    def _on_ws_state(self, event: str, detail: str, recv_ns: int) -> None:
        if self._stopped:
            return
        if event == "connected":
            self._connected_at = time.monotonic()
            self._last_resubscribe.clear()
        elif event == "disconnected":
            self._connected_at = None
            self._deliver({"type": "perpbot_disconnected", "reason": detail}, recv_ns)

    # ------------------------------------------------------------------ background work

    async def _resync_one(self, ticker: str, reason: str) -> bool:
        self.counters["resync_requests"] += 1
        self._deliver({"type": "perpbot_resync", "id": ticker, "reason": reason}, self.now_ns())
        try:
            payload = await self.rest.orderbook(ticker)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported to the parser, retried
            self.counters["resync_failures"] += 1
            logger.warning(f"dYdX REST resync of {ticker} failed: {exc}")
            self._deliver({"type": "perpbot_rest_failed", "id": ticker, "error": str(exc)[:200]}, self.now_ns())
            return False
        self._deliver({"type": "perpbot_rest", "channel": V4_ORDERBOOK, "id": ticker, "contents": payload},
                      self.now_ns())
        return True

    async def _resync_loop(self) -> None:
        """Resync books the parser flagged (crossed, lost deltas) from REST."""
        failures = 0
        ev = self._resync_event
        while True:
            await ev.wait()
            ev.clear()
            wanted = self.parser.take_resyncs()
            ok = True
            for t in sorted(wanted):
                tr = self.parser.books.get(t)
                if tr is None or tr.state == STALE:
                    continue  # a fresh WS snapshot is coming anyway
                ok = await self._resync_one(t, "crossed or inconsistent book") and ok
            if ok:
                failures = 0
            else:
                failures += 1
                await asyncio.sleep(backoff_delay(failures - 1, self.settings.retry_base_s, self.settings.retry_max_s))
                if self.parser.resync_wanted:
                    ev.set()

    async def _maintenance_loop(self) -> None:
        """Periodic REST resync of healthy books, hourly funding, stale-snapshot watchdog."""
        s = self.settings
        next_resync = time.monotonic() + s.resync_interval_s
        next_funding_ns = 0
        while True:
            now_m = time.monotonic()
            now_ns = self.now_ns()
            if now_ns >= next_funding_ns:
                await self._refresh_funding()
                hour = 3600 * NS
                next_funding_ns = (now_ns // hour + 1) * hour + 20 * NS  # shortly after the top of the hour
            if now_m >= next_resync:
                next_resync = now_m + s.resync_interval_s
                for t, tr in list(self.parser.books.items()):
                    if tr.state == LIVE:
                        await self._resync_one(t, "periodic")
            if self._connected_at is not None and self.conn is not None and self.conn.connected.is_set():
                limit = s.snapshot_timeout_s
                for t, tr in self.parser.books.items():
                    if tr.state != STALE:
                        continue
                    since = max(self._connected_at, self._last_resubscribe.get(t, 0.0))
                    if now_m - since > limit:
                        self._last_resubscribe[t] = now_m
                        self.counters["resubscribes"] += 1
                        logger.warning(f"dYdX {t}: no order-book snapshot {limit:.0f}s after subscribing; resubscribing")
                        self.conn.resubscribe(V4_ORDERBOOK, t)
            await asyncio.sleep(min(1.0, s.resync_interval_s / 4, s.snapshot_timeout_s / 4))

    async def _refresh_funding(self) -> None:
        for t in self.tickers:
            try:
                rows = await self.rest.historical_funding(t, limit=1)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - funding history is informative; logged
                logger.warning(f"dYdX historical funding for {t} unavailable: {exc}")
                continue
            self._deliver({"type": "perpbot_rest", "channel": "historical_funding", "id": t, "contents": rows},
                          self.now_ns())
