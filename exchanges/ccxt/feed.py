"""Market data of a ccxt venue on WebSockets (ccxt.pro): books, trades, mark price, funding.

One :class:`CcxtFeed` serves the run's tickers of one ccxt venue (the bot merges it with the
run's main feed, :func:`perpbot.core.bot.wiring.wire`). Per market it runs:

- **book**: ``watch_order_book`` -> a :class:`~perpbot.core.model.BookSnapshot` of the top
  ``depth`` levels per update. ccxt applies the venue's sequencing: for Binance USD-M it
  buffers the diff stream, fetches the REST snapshot, drops diffs with ``u`` < ``lastUpdateId``
  and requires each diff's ``pu`` to equal the previous ``u`` (``ccxt/pro/binance.py``
  ``handle_order_book``, from Binance's "How to manage a local order book correctly"); a gap
  raises ``ChecksumError`` (an ``InvalidNonce``).
- **trades**: ``watch_trades`` -> :class:`~perpbot.core.model.Trade` (taker side, ids deduplicated).
- **mark / funding**: ``watch_mark_price`` where ccxt has it (Binance ``<symbol>@markPrice``:
  mark ``p``, index ``i``, funding rate ``r``, next funding time ``T``), else
  ``fetch_funding_rate`` (Hyperliquid: ``fetch_funding_rates``) every ``poll_s``: an :class:`~perpbot.core.model.OraclePrice` (the
  mark price) and a predicted :class:`~perpbot.core.model.FundingRate` (``rate_1h`` = the
  venue's rate / its interval, ``settled=False``) carrying the venue's next funding time
  (``next_funding_ns``): Binance's ``T`` / ``premiumIndex`` ``nextFundingTime`` (ccxt
  ``binance.py parse_funding_rate`` -> ``fundingTimestamp``); Hyperliquid pays every hour and
  ccxt gives the top of the next hour (``hyperliquid.py parse_funding_rate``).
- **settled funding**: ``fetch_funding_rate_history`` at start, then ``funding_delay_s`` after
  each next funding time (or as soon as the venue's next funding time moves on: a settlement
  happened), read again every ``poll_s`` until the new row is published (a warning after
  ``funding_chase_s``); every ``poll_s`` only while no next funding time is known. The newest
  settled rate becomes a ``FundingRate(settled=True)`` stamped with its funding time.
- **REST cross-check** (``crosscheck_s``, 0 = off): while the socket is live, the REST book's
  top is compared with the socket-built one, allowing for updates in flight
  (:mod:`perpbot.exchanges.ccxt.crosscheck`); ``crosscheck_strikes`` disagreements in a row
  are a divergence: logged with the reason, the book reported unhealthy and resynced.

Failures: no book update for ``resync_s`` -> a REST ``fetch_order_book`` snapshot (the
periodic resync) and new sockets (a silent book means a stalled socket: ccxt's receive loop
ends for good when a message handler raises, ``ccxt/async_support/base/ws/client.py``); a
ccxt ``NetworkError`` or a sequencing error -> a :class:`~perpbot.core.model.FeedStatus`
``healthy=False`` naming the error, a new ccxt client (ccxt.pro resubscribes and refetches
the snapshot on the next call; every loop watches again within ``resync_s``), and the loop
retries after an exponential backoff with jitter (``retry_base_s`` doubling to
``retry_max_s``). The next book is a fresh snapshot, followed by a healthy status.
Prices and sizes are ``Decimal(str(x))`` of ccxt's floats (the venue's own decimal text).
"""

from __future__ import annotations

import asyncio
import random
import time
import weakref
from decimal import Decimal
from typing import Any, AsyncIterator, Callable

from loguru import logger

from perpbot.core.errors import ConfigError
from perpbot.core.feed import BaseFeed
from perpbot.core.model import BookSnapshot, FeedStatus, FundingRate, OraclePrice, Side, Trade
from perpbot.core.params import did_you_mean
from perpbot.core.tasks import cancel_and_wait
from perpbot.exchanges.ccxt.client import close_all, close_client
from perpbot.exchanges.ccxt.crosscheck import BookCrossCheck
from perpbot.exchanges.ccxt.markets import MarketTable, VenueMarket, dec

D = Decimal


class CcxtFeed(BaseFeed):
    """Live market data of one ccxt venue for the run's tickers of that venue.

    :param config: the venue's options (``depth``, ``resync_s``, ``poll_s``, ``retry_base_s``,
        ``retry_max_s``; seconds).
    :param context: a feed context (``clock``).
    :param venue: the run's venue name. :param prefix: ``"<venue>:"`` or ``""`` (primary venue).
    :param tickers: the run's tickers of this venue, qualified with ``prefix``.
    :param table: the venue's :class:`~perpbot.exchanges.ccxt.markets.MarketTable`.
    :param make_client: ``() -> ccxt.pro client`` (public data only).
    """

    name = "ccxt"
    description = "live market data of a ccxt venue (ccxt.pro WebSockets)"

    def __init__(self, config: dict, context: Any, *, venue: str, prefix: str, tickers: tuple,
                 table: MarketTable, make_client: Callable[[], Any]):
        super().__init__(config, context)
        self.venue, self.prefix, self.tickers = venue, prefix, tuple(tickers)
        self.table = table
        self._client_factory = make_client
        #: every client this feed made (a replaced one may be opened again by a call still in flight on it)
        self._made: weakref.WeakSet = weakref.WeakSet()
        self.client: Any = None
        self.depth = int(config.get("depth", 50))
        self.resync_s = float(config.get("resync_s", 30))
        self.poll_s = float(config.get("poll_s", 10))
        self.retry_base_s = float(config.get("retry_base_s", 0.5))
        self.retry_max_s = float(config.get("retry_max_s", 30))
        self.crosscheck_s = float(config.get("crosscheck_s", 60))
        self.crosscheck_strikes = int(config.get("crosscheck_strikes", 2))
        self.crosscheck_grace_s = float(config.get("crosscheck_grace_s", 1.0))
        self.funding_delay_s = float(config.get("funding_delay_s", 5))
        self.funding_chase_s = float(config.get("funding_chase_s", 120))
        #: qualified ticker -> the venue's next funding time (Unix ms); set on its changes; a
        #: forward move (the previous time was settled)
        self.next_funding_ms: dict[str, int] = {}
        self._funding_changed: dict[str, asyncio.Event] = {}
        self._settled_due: dict[str, bool] = {}
        self._checks: dict[str, BookCrossCheck] = {}
        self._diverged: dict[str, str] = {}
        self._queue: asyncio.Queue = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._closing: list[asyncio.Task] = []
        self._unhealthy: dict[str, str] = {}
        self._counters = {"books": 0, "trades": 0, "marks": 0, "resyncs": 0, "errors": 0, "reconnects": 0,
                          "settled_reads": 0, "crosschecks": 0, "disagreements": 0, "divergences": 0}
        self._stopped = False

    def _make_client(self) -> Any:
        """A new ccxt client for this feed, remembered so that :meth:`stop` closes it whatever happened to it."""
        client = self._client_factory()
        self._made.add(client)
        return client

    # -- contract -------------------------------------------------------------

    def markets(self) -> dict:
        """Qualified ticker -> :class:`~perpbot.core.model.Market` (loads the venue's markets once);
        a feed built without tickers lists every linear perpetual of the venue (the wiring's
        market discovery, :func:`perpbot.core.bot.wiring.discover_tickers`).

        :raises ConfigError: a ticker the venue does not list as a linear perpetual (closest name given).
        """
        known = self.table.load_or_fail(self.venue)
        if not self.tickers:
            return {self.prefix + t: vm.market for t, vm in known.items()}
        out = {}
        for q in self.tickers:
            t = q[len(self.prefix):]
            vm = known.get(t)
            if vm is None:
                names = [self.prefix + k for k in known]
                raise ConfigError(f"--ticker: {q!r} is not a perpetual of {self.venue} ({self.table.profile.ccxt_id})"
                                  f"{did_you_mean(q, names)}")
            out[q] = vm.market
        return out

    async def start(self) -> None:
        """Open the client and start one task per market and stream."""
        if not self.table.by_ticker:
            await asyncio.to_thread(self.table.load_or_fail, self.venue)
        self.client = self._make_client()
        for q in self.tickers:
            vm = self.table.get(q[len(self.prefix):])
            self._tasks += [
                asyncio.create_task(self._guard(q, vm, self._book_loop), name=f"ccxt-book-{q}"),
                asyncio.create_task(self._guard(q, vm, self._trade_loop), name=f"ccxt-trades-{q}"),
                asyncio.create_task(self._guard(q, vm, self._mark_loop), name=f"ccxt-mark-{q}"),
                asyncio.create_task(self._guard(q, vm, self._settled_loop), name=f"ccxt-funding-{q}"),
            ]
            if self.crosscheck_s > 0:
                self._tasks.append(asyncio.create_task(self._crosscheck_loop(q, vm), name=f"ccxt-crosscheck-{q}"))

    async def stop(self) -> None:
        """Stop the tasks and close the client (safe twice)."""
        self._stopped = True
        await cancel_and_wait(self._tasks)
        closing, self._tasks, self._closing = self._closing, [], []
        if closing:  # replaced clients still closing: let them finish (each bounded), never cut short
            await asyncio.wait(closing)
        if self.client is not None:
            client, self.client = self.client, None
            await close_client(client, self.venue)
        # a replaced client that a fetch or watch in flight at its close opened again (every
        # task is stopped now: nothing can open one after this)
        if await close_all(self._made, self.venue):
            logger.debug(f"{self.venue}: closed a replaced ccxt client opened again after its close")
        self._queue.put_nowait(None)

    async def batches(self) -> AsyncIterator[list]:
        """Event batches as they arrive (one per WebSocket update); ends after :meth:`stop`."""
        while True:
            item = await self._queue.get()
            if item is None:
                return
            batch = [item]
            while not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    yield batch
                    return
                batch.append(nxt)
            yield batch

    def unsynced_books(self) -> dict:
        """Markets whose feed is unhealthy now, with the reason."""
        return dict(self._unhealthy)

    def stats(self) -> dict:
        """Counters: books, trades, marks, resyncs, errors, reconnects, settled_reads (funding
        history requests), crosschecks (REST books compared), disagreements, divergences."""
        return dict(self._counters)

    # -- loops ------------------------------------------------------------------

    def _now(self) -> int:
        return self.context.clock.now_ns()

    def _put(self, ev: Any) -> None:
        self._queue.put_nowait(ev)

    async def _guard(self, q: str, vm: VenueMarket, loop: Callable) -> None:
        """Run ``loop`` forever: on an error, an unhealthy status, a reconnect, a backoff, again."""
        import ccxt

        delay = self.retry_base_s
        while not self._stopped:
            try:
                await loop(q, vm)
                delay = self.retry_base_s
                continue
            except asyncio.CancelledError:
                if self._stopped or own_cancellation():
                    raise
                # ccxt cancelled the pending watch (its connection died): like a dropped socket
                exc: BaseException = ccxt.NetworkError("ccxt cancelled a pending watch (connection lost)")
            except (ccxt.NetworkError, ccxt.ExchangeError, ValueError, ArithmeticError) as e:
                # InvalidNonce/ChecksumError are ExchangeErrors; ValueError: a malformed or non-finite value
                exc = e
            self._counters["errors"] += 1
            reason = f"{self.venue} {loop.__name__.strip('_').replace('_loop', '')}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            if loop == self._book_loop:
                self._check_of(q).reset()
                self._unhealthy[q] = reason
                self._put(FeedStatus(q, self._now(), healthy=False, reason=reason))
            logger.warning(f"{reason}; reconnecting in {delay:.2f}s")
            await self._reconnect()
            await asyncio.sleep(delay * (1 + random.random() / 4))
            delay = min(delay * 2, self.retry_max_s)

    async def _reconnect(self) -> None:
        """Replace the ccxt client by a new one (new sockets; every loop watches again on it within
        ``resync_s``) and close the old one in a task of its own: closing a client whose receive
        loop died can raise or hang inside ccxt, which must not stop this feed."""
        self._counters["reconnects"] += 1
        old, self.client = self.client, self._make_client()
        if getattr(old, "markets", None):
            self.client.set_markets(old.markets, old.currencies)  # no second exchangeInfo
        task = asyncio.create_task(self._close_quietly(old), name=f"ccxt-close-{self.venue}")
        self._closing = [t for t in self._closing if not t.done()] + [task]

    async def _close_quietly(self, client: Any) -> None:
        """Close a replaced client (bounded, forced when slow: :func:`close_client`); a failure is
        logged, never raised: only the old client's close ends."""
        try:
            await close_client(client, self.venue)
        except Exception as exc:
            logger.debug(f"{self.venue}: closing a replaced ccxt client: {type(exc).__name__}: {exc}")

    async def _watch(self, watch: Callable, symbol: str) -> Any:
        """``await watch(symbol)``, or None after ``resync_s`` without an update: the caller then
        watches again, which subscribes anew on the current connection (after a reconnect the
        old connection's pending futures may never resolve)."""
        try:
            async with asyncio.timeout(self.resync_s):
                return await watch(symbol)
        except TimeoutError:
            return None

    def _snapshot(self, q: str, ob: dict) -> BookSnapshot:
        n = self.depth
        bids = tuple((dec(p, "bid"), dec(s, "bid size")) for p, s, *_ in ob["bids"][:n])
        asks = tuple((dec(p, "ask"), dec(s, "ask size")) for p, s, *_ in ob["asks"][:n])
        return BookSnapshot(q, self._now(), bids=bids, asks=asks)

    def _book_ok(self, q: str) -> None:
        if q in self._unhealthy:
            del self._unhealthy[q]
            self._put(FeedStatus(q, self._now(), healthy=True, reason="resynced"))

    async def _book_loop(self, q: str, vm: VenueMarket) -> None:
        while True:
            try:
                async with asyncio.timeout(self.resync_s):
                    ob = await self.client.watch_order_book(vm.symbol)
            except TimeoutError:  # quiet socket: the periodic REST resync, then a fresh connection
                ob = await self.client.fetch_order_book(vm.symbol, self.depth if self.depth in (5, 10, 20, 50, 100) else None)
                self._counters["resyncs"] += 1
                # a book silent for resync_s on a live venue means a stalled socket: ccxt's receive
                # loop stops for good when a handler raises on a malformed message
                # (ccxt/async_support/base/ws/client.py receive_loop), so every stream is reopened
                await self._reconnect()
            if q in self._diverged:  # the REST cross-check found a real divergence: resync
                raise _diverged(self.venue, q, self._diverged.pop(q))
            snap = self._snapshot(q, ob)
            if snap.bids and snap.asks and snap.bids[0][0] >= snap.asks[0][0]:
                raise _crossed(self.venue, q, snap)
            self._check_of(q).record(ob)
            self._put(snap)
            self._book_ok(q)
            self._counters["books"] += 1

    async def _trade_loop(self, q: str, vm: VenueMarket) -> None:
        seen: set = set()
        while True:
            trades = await self._watch(self.client.watch_trades, vm.symbol)
            if trades is None:
                continue
            for t in trades:
                tid = str(t.get("id") or t.get("timestamp"))
                if tid in seen:
                    continue
                seen.add(tid)
                if len(seen) > 10000:
                    seen.clear()
                side = Side.BUY if t.get("side") == "buy" else Side.SELL
                self._put(Trade(q, self._now(), price=dec(t["price"], "trade price"),
                                size=dec(t["amount"], "trade amount") * vm.contract_size, side=side, trade_id=tid))
                self._counters["trades"] += 1

    def _mark(self, q: str, vm: VenueMarket, mark: Any, rate: Any, next_ms: Any = None) -> None:
        now = self._now()
        nxt = self._set_next_funding(q, next_ms)
        if mark is not None:
            self._put(OraclePrice(q, now, price=dec(mark, "mark price")))
        if rate is not None:
            r = dec(rate, "funding rate")
            self._put(FundingRate(q, now, rate_1h=r / vm.funding_interval_h, settled=False, interval_h=vm.funding_interval_h,
                                  next_funding_ns=None if nxt is None else nxt * 1_000_000))
        self._counters["marks"] += 1

    def _set_next_funding(self, q: str, next_ms: Any) -> int | None:
        """Keep the venue's next funding time (Unix ms); a forward move means the previous one
        was settled, which wakes the settled-funding loop. Returns the time, or None."""
        if next_ms in (None, ""):
            return self.next_funding_ms.get(q)
        try:
            nxt = int(next_ms)
        except (TypeError, ValueError):
            raise ValueError(f"{self.venue} {q}: next funding time {next_ms!r} is not a timestamp") from None
        old = self.next_funding_ms.get(q)
        if nxt != old:
            self.next_funding_ms[q] = nxt
            if old is not None and nxt > old:
                self._settled_due[q] = True
            self._changed(q).set()
        return nxt

    def _changed(self, q: str) -> asyncio.Event:
        return self._funding_changed.setdefault(q, asyncio.Event())

    def _check_of(self, q: str) -> BookCrossCheck:
        if q not in self._checks:
            self._checks[q] = BookCrossCheck(strikes=self.crosscheck_strikes, grace_s=self.crosscheck_grace_s)
        return self._checks[q]

    async def _mark_loop(self, q: str, vm: VenueMarket) -> None:
        if self.client.has.get("watchMarkPrice"):
            while True:
                tk = await self._watch(self.client.watch_mark_price, vm.symbol)
                if tk is None:
                    continue
                info = tk.get("info") or {}
                self._mark(q, vm, tk.get("markPrice") or info.get("p"), info.get("r"), info.get("T"))
        while True:
            if self.client.has.get("fetchFundingRate"):
                fr = await self.client.fetch_funding_rate(vm.symbol)
            else:  # Hyperliquid: one metaAndAssetCtxs call answers every market
                fr = (await self.client.fetch_funding_rates([vm.symbol])).get(vm.symbol) or {}
            # ccxt's fundingTimestamp: Binance premiumIndex nextFundingTime; Hyperliquid the next hour
            self._mark(q, vm, fr.get("markPrice"), fr.get("fundingRate"), fr.get("fundingTimestamp"))
            await asyncio.sleep(self.poll_s)

    async def _settled_loop(self, q: str, vm: VenueMarket) -> None:
        """Read the newest settled rate at start, then when one is due (module docstring)."""
        last = None
        warned = None
        chase_until = None
        while True:
            newest = await self._read_settled(q, vm, last)
            if newest is not None and newest != last:
                last, chase_until = newest, None
            if chase_until is not None:
                if time.monotonic() < chase_until:  # due but not published yet
                    await asyncio.sleep(self.poll_s)
                    continue
                nxt = self.next_funding_ms.get(q)
                if warned != nxt:
                    warned = nxt
                    logger.warning(f"{self.venue} {q}: no settled funding published {self.funding_chase_s:g}s after "
                                   f"funding time {nxt} (newest {last}); reading every {self.poll_s:g}s")
                chase_until = None
            if await self._until_settlement(q):
                chase_until = time.monotonic() + self.funding_chase_s

    async def _until_settlement(self, q: str) -> bool:
        """Sleep until a settlement is due: ``funding_delay_s`` after the next funding time or
        after it moves on (True); ``poll_s`` while no next funding time is known (False)."""
        changed = self._changed(q)
        while True:
            changed.clear()
            if self._settled_due.pop(q, False):  # the next time moved on: that settlement happened
                await asyncio.sleep(self.funding_delay_s)
                return True
            nxt = self.next_funding_ms.get(q)
            wait = self.poll_s if nxt is None else (nxt - time.time() * 1000) / 1000 + self.funding_delay_s
            if wait <= 0:
                return True
            try:  # wake when the next funding time arrives, moves or is corrected
                async with asyncio.timeout(wait):
                    await changed.wait()
            except TimeoutError:
                return nxt is not None

    async def _read_settled(self, q: str, vm: VenueMarket, last: int | None) -> int | None:
        """One ``fetch_funding_rate_history`` read; emits the newest row when it is new. Returns its time (ms)."""
        self._counters["settled_reads"] += 1
        rows = await self.client.fetch_funding_rate_history(vm.symbol, None, 5)
        rows = [r for r in rows if r.get("timestamp") is not None and r.get("fundingRate") is not None]
        if not rows:
            return None
        newest = max(rows, key=lambda r: r["timestamp"])
        if newest["timestamp"] != last:
            mark = (newest.get("info") or {}).get("markPrice")
            self._put(FundingRate(q, int(newest["timestamp"]) * 1_000_000,
                                  rate_1h=dec(newest["fundingRate"], "fundingRate") / vm.funding_interval_h,
                                  settled=True, interval_h=vm.funding_interval_h,
                                  oracle_price=dec(mark, "markPrice") if mark else None))
        return int(newest["timestamp"])

    async def _crosscheck_loop(self, q: str, vm: VenueMarket) -> None:
        """Every ``crosscheck_s``: the REST book against the socket's (module docstring). A failed
        REST request is logged and counted as an error; the next interval tries again."""
        import ccxt

        check = self._check_of(q)
        limit = self.depth if self.depth in (5, 10, 20, 50, 100) else None
        while True:
            await asyncio.sleep(self.crosscheck_s)
            if q in self._unhealthy or q in self._diverged or not check.history:
                continue  # resyncing already, or no socket book yet
            sent = time.monotonic()
            try:
                rest = await self.client.fetch_order_book(vm.symbol, limit)
            except (ccxt.BaseError, ValueError) as exc:
                self._counters["errors"] += 1
                logger.warning(f"{self.venue} {q}: REST cross-check failed: {type(exc).__name__}: "
                               f"{' '.join(str(exc).split())[:200]}; next in {self.crosscheck_s:g}s")
                continue
            answered = time.monotonic()
            await asyncio.sleep(check.grace_s)  # socket updates in flight may still bring that top
            why = check.judge(rest, sent, answered)
            self._counters["crosschecks"] += 1
            if why is None:
                continue
            self._counters["disagreements"] += 1
            if check.diverged:
                self._counters["divergences"] += 1
                reason = f"REST cross-check: {check.in_a_row} disagreement(s) in a row, last {why}"
                logger.warning(f"{self.venue} {q}: book diverged from the venue's: {reason}; resyncing")
                check.reset()
                self._diverged[q] = reason
            else:
                logger.info(f"{self.venue} {q}: REST cross-check disagreement {check.in_a_row}/{check.strikes}: {why}")


def own_cancellation() -> bool:
    """True when the running task itself is being cancelled (``Task.cancelling()``), False when a
    CancelledError came from a future ccxt cancelled inside an await."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _diverged(venue: str, q: str, reason: str) -> Exception:
    import ccxt

    return ccxt.InvalidNonce(f"{venue} {q}: {reason}")


def _crossed(venue: str, q: str, snap: BookSnapshot) -> Exception:
    import ccxt

    return ccxt.InvalidNonce(f"{venue} {q}: crossed book (bid {snap.bids[0][0]} >= ask {snap.asks[0][0]}), resyncing")
