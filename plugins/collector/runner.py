"""One venue of the collector: its feed, its open-interest poll, backoff and a circuit breaker.

A :class:`VenueRunner` runs *sessions*: build the venue's feed (the bot's own:
:class:`~perpbot.exchanges.ccxt.feed.CcxtFeed` or :class:`~perpbot.exchanges.dydx.feed.DydxFeed`),
check the markets, start it, pump its batches into the collector's sink, and poll open interest
(ccxt ``fetch_open_interest``: Binance ``GET /fapi/v1/openInterest``, Hyperliquid
``metaAndAssetCtxs`` ``openInterest``; dYdX indexer ``GET /v4/perpetualMarkets`` ``openInterest``)
every ``oi_poll_s``. The feeds reconnect their sockets themselves; a session *fails* when its
start raises (venue down, markets not loadable), when its feed ends or raises, or when no market
data arrives for ``silence_s`` (a venue whose feed keeps reconnecting in vain).

Error handling: after a failure the runner waits an exponential backoff with jitter
(``retry_base_s`` doubling to ``retry_max_s``) and starts a new session. The
:class:`CircuitBreaker` opens after ``breaker_failures`` failures in a row: no attempt for
``breaker_cooldown_s``, then one trial session (half-open); data closes it again. A
:class:`~perpbot.core.errors.ConfigError` (an unknown market) ends the venue for good, with the
reason. Nothing a venue does stops the other venues: each runner is its own task and catches
its own failures.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from decimal import Decimal
from typing import Any, Callable

from loguru import logger

from perpbot.core.errors import ConfigError
from perpbot.core.tasks import cancel_and_wait
from perpbot.plugins.collector.rows import CONSECUTIVE_TRADE_IDS, RowMaker, oi_row


class CircuitBreaker:
    """Closed -> (``threshold`` failures in a row) -> open for ``cooldown_s`` -> half-open (one
    trial) -> closed on success, open again on failure.

    :param clock: ``() -> seconds`` (monotonic). Times in seconds.
    """

    def __init__(self, threshold: int = 5, cooldown_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.threshold = max(1, int(threshold))
        self.cooldown_s = float(cooldown_s)
        self.clock = clock
        self.in_a_row = 0
        self.opened_at: float | None = None
        self.opens = 0

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open``."""
        if self.opened_at is None:
            return "closed"
        return "open" if self.clock() - self.opened_at < self.cooldown_s else "half-open"

    def wait_s(self) -> float:
        """Seconds before the next attempt is allowed (0 when closed or half-open)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown_s - (self.clock() - self.opened_at))

    def failure(self) -> None:
        """Record a failed session (a failed half-open trial reopens at once)."""
        self.in_a_row += 1
        if self.opened_at is not None or self.in_a_row >= self.threshold:
            self.opened_at = self.clock()
            self.opens += 1

    def success(self) -> None:
        """Record a working session: closed, count reset."""
        self.in_a_row = 0
        self.opened_at = None


class VenueSpec:
    """One ``--venues`` entry: ``name`` (``binance``), ``plugin`` (``ccxt`` or ``dydx``), ``ccxt_id``
    (``binanceusdm``; None for dYdX), ``url`` (a base URL replacing the venue's, e.g. a loopback
    fake; None for the venue itself), ``options`` (the feed's config table: timers, depth)."""

    def __init__(self, name: str, plugin: str, ccxt_id: str | None = None, url: str | None = None,
                 options: dict | None = None):
        self.name, self.plugin, self.ccxt_id, self.url = name, plugin, ccxt_id, url
        self.options = dict(options or {})

    def __repr__(self) -> str:
        return f"VenueSpec({self.name}={self.plugin}{':' + self.ccxt_id if self.ccxt_id else ''})"


class VenueRunner:
    """Sessions of one venue (module docstring).

    :param spec: the venue. :param markets: ``BTC-USD``-style tickers.
    :param sink: ``(venue, [(kind, row, levels)]) -> None``, called on the event loop for each batch.
    :param on_events: ``(venue, prefix, events) -> None``, given each feed batch as it is (the
        analysis of ``--signals``), or None.
    :param depth: book levels per side in a book row. :param oi_poll_s: seconds between
        open-interest polls (0: none). :param silence_s: seconds without market data that fail a
        session. Backoff and breaker settings in seconds (module docstring).
    """

    def __init__(self, spec: VenueSpec, markets: list[str], sink: Callable[[str, list], None], *,
                 depth: int = 10, oi_poll_s: float = 10.0, silence_s: float = 60.0, retry_base_s: float = 1.0,
                 retry_max_s: float = 60.0, breaker_failures: int = 5, breaker_cooldown_s: float = 60.0,
                 start_timeout_s: float = 60.0, on_events: Callable[[str, str, list], None] | None = None):
        self.spec = spec
        self.venue = spec.name
        self.markets = list(markets)
        self.sink = sink
        self.on_events = on_events
        self.depth = depth
        self.oi_poll_s = float(oi_poll_s)
        self.silence_s = float(silence_s)
        self.retry_base_s = float(retry_base_s)
        self.retry_max_s = float(retry_max_s)
        self.start_timeout_s = float(start_timeout_s)
        self.breaker = CircuitBreaker(breaker_failures, breaker_cooldown_s)
        prefix = "" if spec.plugin == "dydx" else f"{spec.name}:"
        self.rows = RowMaker(spec.name, prefix, depth, consecutive_ids=spec.ccxt_id in CONSECUTIVE_TRADE_IDS)
        self.counters: Counter = Counter()
        self.fatal: str | None = None
        self.last_error: str | None = None
        self._last_data = time.monotonic()
        self._stop = asyncio.Event()
        self._table: Any = None

    # -- lifecycle ----------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to end its session and return."""
        self._stop.set()

    async def run(self) -> None:
        """Sessions until :meth:`stop` or a fatal configuration error (module docstring)."""
        delay = self.retry_base_s
        while not self._stop.is_set():
            wait = self.breaker.wait_s()
            if wait > 0:
                await self._sleep(wait)
                continue
            self.counters["sessions"] += 1
            try:
                await self._session()
                return  # stop requested
            except asyncio.CancelledError:
                raise
            except ConfigError as exc:
                self.fatal = str(exc).replace("--ticker:", "--markets:", 1)  # the feed's wording, this command's flag
                logger.error(f"collector {self.venue}: {self.fatal}; this venue stops, the others go on")
                return
            except Exception as exc:  # any failure of one venue is its own: logged, retried
                self.counters["failures"] += 1
                self.last_error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
                if self.counters.get("data_in_session"):
                    delay = self.retry_base_s
                self.counters["data_in_session"] = 0
                self.breaker.failure()
                state = self.breaker.state
                more = f"; circuit open for {self.breaker.cooldown_s:g}s" if state == "open" else ""
                logger.warning(f"collector {self.venue}: session failed: {self.last_error}; retrying in {delay:.2f}s{more}")
                await self._sleep(delay * (1 + random.random() / 4))
                delay = min(delay * 2, self.retry_max_s)

    async def _sleep(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._stop.wait()
        except TimeoutError:
            pass

    # -- one session ----------------------------------------------------------------

    def _make_feed(self) -> Any:
        from perpbot.core.clock import LiveClock

        s = self.spec
        tickers = tuple(f"{s.name}:{m}" for m in self.markets) if s.plugin == "ccxt" else tuple(self.markets)
        if s.plugin == "dydx":
            from types import SimpleNamespace

            from perpbot.exchanges.dydx.feed import DydxFeed

            return DydxFeed(dydx_config(s), SimpleNamespace(clock=LiveClock(), tickers=tickers, markets={}, options={}))
        from types import SimpleNamespace

        from perpbot.exchanges.ccxt.client import make_client
        from perpbot.exchanges.ccxt.feed import CcxtFeed
        from perpbot.exchanges.ccxt.markets import MarketTable
        from perpbot.exchanges.ccxt.venues import resolve_venue

        if self._table is None:
            profile = resolve_venue(s.ccxt_id or "", s.name)
            self._table = MarketTable(profile, lambda: self._client(pro=False))
        return CcxtFeed(s.options, SimpleNamespace(clock=LiveClock()), venue=s.name, prefix=f"{s.name}:",
                        tickers=tickers, table=self._table, make_client=self._client)

    def _client(self, pro: bool = True) -> Any:
        """A public-data ccxt client of the venue (``options``: ``timeout_s``, ``rate_limit_ms``)."""
        from perpbot.exchanges.ccxt.client import make_client

        s = self.spec
        rl = s.options.get("rate_limit_ms")
        return make_client(s.ccxt_id, url=s.url, pro=pro, timeout_ms=int(float(s.options.get("timeout_s", 10)) * 1000),
                           rate_limit_ms=float(rl) if rl not in (None, "") else None)

    async def _session(self) -> None:
        feed = self._make_feed()
        tasks: list[asyncio.Task] = []
        try:
            async with asyncio.timeout(self.start_timeout_s):
                if self.spec.plugin == "ccxt":
                    await asyncio.to_thread(feed.markets)  # unknown market -> ConfigError (closest named)
                await feed.start()
            self._last_data = time.monotonic()
            pump = asyncio.create_task(self._pump(feed), name=f"collect-{self.venue}")
            tasks.append(pump)
            if self.oi_poll_s > 0:
                tasks.append(asyncio.create_task(self._oi_loop(feed), name=f"collect-oi-{self.venue}"))
            while not self._stop.is_set():
                await asyncio.wait([pump], timeout=min(1.0, self.silence_s / 4))
                if pump.done():
                    exc = pump.exception()
                    raise exc if exc is not None else RuntimeError("the feed ended")
                if time.monotonic() - self._last_data > self.silence_s:
                    raise TimeoutError(f"no market data for {self.silence_s:g}s")
        finally:
            await cancel_and_wait(tasks)
            try:
                async with asyncio.timeout(15):
                    await feed.stop()
            except Exception as exc:  # a feed that cannot stop cleanly must not stop the runner
                logger.warning(f"collector {self.venue}: stopping the feed: {type(exc).__name__}: {exc}")

    def _data(self, items: list) -> None:
        if items:
            self._last_data = time.monotonic()
            if not self.counters.get("data_in_session"):
                self.breaker.success()
            self.counters["data_in_session"] += 1
            self.sink(self.venue, items)

    async def _pump(self, feed: Any) -> None:
        async for batch in feed.batches():
            if batch:
                if self.on_events is not None:
                    self.on_events(self.venue, self.rows.prefix, batch)
                self._data(self.rows.rows(batch))

    # -- open interest ------------------------------------------------------------------

    async def _oi_loop(self, feed: Any) -> None:
        """Poll open interest every ``oi_poll_s``; a failed poll is logged and counted, the next one tries again."""
        client = None
        try:
            if self.spec.plugin == "ccxt":
                client = self._client()
                if not client.has.get("fetchOpenInterest"):
                    logger.warning(f"collector {self.venue}: ccxt {self.spec.ccxt_id} has no fetchOpenInterest: no open interest")
                    return
            while True:
                try:
                    if client is not None:
                        await self._poll_ccxt(client)
                    else:
                        await self._poll_dydx(feed)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # logged and counted; the next poll tries again
                    self.counters["oi_errors"] += 1
                    logger.warning(f"collector {self.venue}: open interest poll failed: {type(exc).__name__}: "
                                   f"{' '.join(str(exc).split())[:200]}")
                await asyncio.sleep(self.oi_poll_s)
        finally:
            if client is not None:
                from perpbot.exchanges.ccxt.client import close_client

                await close_client(client, self.venue)

    async def _poll_ccxt(self, client: Any) -> None:
        if not client.markets:
            await client.load_markets()  # ccxt maps symbols only after (hyperliquid: "markets not loaded")
        items = []
        for m in self.markets:
            vm = self._table.get(m)
            oi = await client.fetch_open_interest(vm.symbol)
            amount = oi.get("openInterestAmount")
            if amount is None:
                amount = Decimal("NaN")
            value = Decimal(str(amount)) * vm.contract_size
            items.append(("oi", oi_row(self.venue, m, time.time_ns(), value), None))
        self._data(items)

    async def _poll_dydx(self, feed: Any) -> None:
        rows = await feed.rest.perpetual_markets()
        now = time.time_ns()
        items = [("oi", oi_row(self.venue, m, now, (rows.get(m) or {}).get("openInterest")), None) for m in self.markets]
        self._data(items)


def dydx_config(spec: VenueSpec) -> dict:
    """The ``[feed.dydx]`` table of a dYdX venue: mainnet, or a custom network at ``spec.url``
    (REST ``URL``, WebSocket ``ws://HOST/v4/ws`` as the indexer serves it)."""
    cfg = dict(spec.options)
    if spec.url:
        base = spec.url.rstrip("/")
        cfg.update(network="custom", indexer_rest=base, indexer_ws="ws" + base[4:] + "/v4/ws")
    return cfg
