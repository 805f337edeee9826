"""The account side of a ccxt venue: our orders, fills and funding from private streams and REST.

:class:`AccountSync` keeps our open orders (by our client id), turns ccxt's private streams
into the bot's account events and reconciles with REST:

- ``watch_orders`` -> :class:`~perpbot.core.model.OrderUpdate` when an order of ours changes
  status or filled size; ``watch_my_trades`` -> :class:`~perpbot.core.model.Fill` (trade ids
  deduplicated, so a fill seen on the stream and again in REST is booked once). Binance
  sends both from one ``ORDER_TRADE_UPDATE`` user-data event (``ccxt/pro/binance.py``
  ``handle_order_update``).
- :meth:`reconcile` (at start, after every stream reconnect, every ``reconcile_s``, 60 s):
  ``fetch_open_orders``; ``fetch_my_trades`` per market since the last reconcile (fills the
  stream missed); every order whose outcome was unknown is looked up by client order id
  (``fetch_order``), and one the venue does not know after ``unknown_grace_s`` is reported
  ``REJECTED`` ("never reached the venue"); funding payments from ``fetch_funding_history``
  (Binance ``/fapi/v1/income?incomeType=FUNDING_FEE``) become
  :class:`~perpbot.core.model.FundingPayment` (``amount`` as the venue booked it, USD;
  deduplicated by the venue's id), read at start, after reconnects and every
  ``funding_poll_s`` (300 s).

A stream failure (ccxt ``NetworkError``) is logged, the loop backs off (``retry_base_s``
doubling to ``retry_max_s``) and reconciles over REST before listening again.
"""

from __future__ import annotations

import asyncio
import random
import time
from decimal import Decimal
from typing import Any, Callable

import attrs
from loguru import logger

from perpbot.core.model import FundingPayment, OrderInfo, OrderStatus, OrderUpdate
from perpbot.exchanges.ccxt.convert import client_id_of, client_order_id, fill_of, order_info
from perpbot.exchanges.ccxt.markets import MarketTable, dec

D = Decimal
NS = 1_000_000_000


class AccountSync:
    """Our orders, fills and funding payments on one ccxt venue.

    :param venue: the run's venue name. :param ccxt_id: the ccxt id (client order id format).
    :param table: the venue's markets. :param emit: the exchange's event sink.
    :param now_ns: the run's clock. :param options: ``reconcile_s``, ``unknown_grace_s``,
        ``retry_base_s``, ``retry_max_s`` (seconds).
    :param rate_of: ``ticker -> (rate_1h, interval_h) or None``: the venue's last settled rate
        (for the FundingPayment record; the amount is the venue's own).
    """

    def __init__(self, venue: str, ccxt_id: str, table: MarketTable, emit: Callable[[Any], None],
                 now_ns: Callable[[], int], options: dict, rate_of: Callable[[str], Any] = lambda t: None):
        self.venue, self.ccxt_id, self.table = venue, ccxt_id, table
        self.emit, self.now_ns, self.rate_of = emit, now_ns, rate_of
        self.client: Any = None
        self.reconcile_s = float(options.get("reconcile_s", 60))
        self.unknown_grace_s = float(options.get("unknown_grace_s", 10))
        self.retry_base_s = float(options.get("retry_base_s", 0.5))
        self.retry_max_s = float(options.get("retry_max_s", 30))
        self.funding_poll_s = float(options.get("funding_poll_s", 300))
        self._next_funding = 0.0
        #: our orders not yet terminal: client id -> OrderInfo
        self.orders: dict[int, OrderInfo] = {}
        #: client ids whose placement outcome is unknown -> (monotonic time, reason)
        self.unknown: dict[int, tuple[float, str]] = {}
        self.by_exchange_id: dict[str, int] = {}
        #: client id -> the strategy's tag (kept after the order ends: its fills may come after its last update)
        self.tags: dict[int, str] = {}
        self.fill_ids: set = set()
        self.funding_ids: set = set()
        self.positions: dict[str, Decimal] = {}
        #: the run's tickers on this venue (always reconciled)
        self.tickers: tuple = ()
        self.since_ms = int(time.time() * 1000)
        self.counters = {"fills": 0, "updates": 0, "funding": 0, "reconciles": 0, "stream_errors": 0}

    # -- tracking ---------------------------------------------------------------

    def track(self, info: OrderInfo) -> None:
        """Remember an order we placed (its exchange id, if known, for fills naming only that)."""
        self.orders[info.client_id] = info
        if info.tag:
            self.tags[info.client_id] = info.tag
            if len(self.tags) > 10000:  # bounded: the oldest tags go first
                del self.tags[next(iter(self.tags))]
        if info.exchange_order_id:
            self.by_exchange_id[info.exchange_order_id] = info.client_id

    def mark_unknown(self, client_id: int, reason: str) -> None:
        """The placement of ``client_id`` may or may not have reached the venue: keep it PENDING."""
        self.unknown[client_id] = (time.monotonic(), reason)

    def ticker_of(self, symbol: str) -> str | None:
        vm = self.table.by_symbol(symbol)
        return vm.ticker if vm is not None else None

    # -- stream events ----------------------------------------------------------

    def on_order(self, o: dict) -> None:
        """One ccxt order (stream or REST): an OrderUpdate when ours changed status or filled size."""
        ticker = self.ticker_of(o.get("symbol", ""))
        cid = client_id_of(o.get("clientOrderId"))
        if ticker is None or cid is None:
            return
        info = order_info(o, ticker)
        if info is None:
            return
        self.unknown.pop(cid, None)
        if info.exchange_order_id:
            self.by_exchange_id[info.exchange_order_id] = cid
        old = self.orders.get(cid)
        if old is not None and old.status == info.status and old.filled_size == info.filled_size:
            return
        if self.tags.get(cid):
            info = attrs.evolve(info, tag=self.tags[cid])
        if info.status.is_terminal:
            self.orders.pop(cid, None)
        else:
            self.orders[cid] = info
        self.counters["updates"] += 1
        self.emit(OrderUpdate(cid, ticker, info.status, self.now_ns(), filled_size=info.filled_size,
                              reason=str(o.get("status") or ""), tag=info.tag))

    async def on_trade(self, t: dict) -> None:
        """One ccxt trade of ours: a Fill (once per venue trade id)."""
        tid = str(t.get("id") or "")
        if not tid or tid in self.fill_ids:
            return
        vm = self.table.by_symbol(t.get("symbol", ""))
        if vm is None:
            return
        oid = str(t.get("order") or "")
        cid = self.by_exchange_id.get(oid)
        if cid is None:
            cid = client_id_of((t.get("info") or {}).get("c"))
        if cid is None and oid and self.client is not None:
            o = await self.client.fetch_order(oid, vm.symbol)
            cid = client_id_of(o.get("clientOrderId"))
            if cid is not None:
                self.by_exchange_id[oid] = cid
        if cid is None:
            logger.info(f"{self.venue}: fill {tid} of order {oid} ({vm.ticker}) is not one of this bot's orders")
            self.fill_ids.add(tid)
            return
        self.fill_ids.add(tid)
        self.unknown.pop(cid, None)  # a fill proves the order reached the venue
        fill = fill_of(t, vm.ticker, cid, vm.contract_size)
        if self.tags.get(cid):
            fill = attrs.evolve(fill, tag=self.tags[cid])
        self.positions[vm.ticker] = self.positions.get(vm.ticker, D(0)) + (fill.size if fill.side.value == "BUY" else -fill.size)
        self.counters["fills"] += 1
        self.emit(fill)

    # -- loops --------------------------------------------------------------------

    async def orders_loop(self) -> None:
        """Listen to ``watch_orders`` forever (backoff and REST reconcile after a failure)."""
        await self._listen(self.client.watch_orders, self.on_order)

    async def trades_loop(self) -> None:
        """Listen to ``watch_my_trades`` forever (backoff and REST reconcile after a failure)."""
        await self._listen(self.client.watch_my_trades, self.on_trade)

    async def _listen(self, watch: Callable, handle: Callable) -> None:
        import ccxt

        from perpbot.exchanges.ccxt.feed import own_cancellation

        delay = self.retry_base_s
        while True:
            try:
                for item in await watch():
                    out = handle(item)
                    if asyncio.iscoroutine(out):
                        await out
                delay = self.retry_base_s
                continue
            except asyncio.CancelledError:
                if own_cancellation():
                    raise
                # ccxt cancelled the pending watch (its connection died): like a dropped socket
                exc: BaseException = ccxt.NetworkError("ccxt cancelled a pending watch (connection lost)")
            except (ccxt.NetworkError, ccxt.ExchangeError, ValueError, ArithmeticError) as e:
                # ValueError: a malformed value in an event (counted, logged, then REST decides)
                exc = e
            self.counters["stream_errors"] += 1
            logger.warning(f"{self.venue} private stream: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}; "
                           f"reconnecting in {delay:.2f}s, then reconciling over REST")
            await asyncio.sleep(delay * (1 + random.random() / 4))
            delay = min(delay * 2, self.retry_max_s)
            await self.reconcile_safely(force_funding=True)

    async def maintenance_loop(self) -> None:
        """Reconcile every ``reconcile_s`` seconds (sooner while an outcome is unknown)."""
        while True:
            await asyncio.sleep(min(self.reconcile_s, self.unknown_grace_s / 2) if self.unknown else self.reconcile_s)
            await self.reconcile_safely()

    async def reconcile_safely(self, force_funding: bool = False) -> bool:
        """:meth:`reconcile`, logging (not raising) a network failure; True when it completed."""
        import ccxt

        try:
            await self.reconcile(force_funding)
            return True
        except (ccxt.NetworkError, ccxt.ExchangeError, ValueError, ArithmeticError) as exc:
            self.counters["reconcile_errors"] = self.counters.get("reconcile_errors", 0) + 1
            logger.warning(f"{self.venue}: REST reconciliation failed ({type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:200]}); retried at the next one")
            return False

    # -- REST reconciliation --------------------------------------------------------

    async def reconcile(self, force_funding: bool = False) -> None:
        """Open orders, missed fills, unknown outcomes and funding payments over REST (module docstring).

        :param force_funding: read the funding history now (else every ``funding_poll_s``).
        """
        c = self.client
        self.counters["reconciles"] += 1
        since = self.since_ms - 60_000
        symbols = {self.table.get(t).symbol for t in self.tickers if self.table.get(t)}
        symbols |= {self.table.get(i.ticker).symbol for i in self.orders.values() if self.table.get(i.ticker)}
        symbols |= {self.table.get(t).symbol for t in self.positions if self.table.get(t)}
        open_now = {}
        # per market: an account-wide query costs far more of the venue's request weight
        # (Binance USD-M openOrders: 1 with a symbol, 40 without; ccxt's limiter waits for it)
        for sym in sorted(symbols):
            for o in await c.fetch_open_orders(sym):
                cid = client_id_of(o.get("clientOrderId"))
                if cid is not None:
                    open_now[cid] = o
                    self.on_order(o)
        import ccxt

        for cid, info in list(self.orders.items()):  # closed since: learn their end state
            if cid not in open_now and cid not in self.unknown:
                vm = self.table.get(info.ticker)
                try:
                    o = await c.fetch_order(None, vm.symbol, {"clientOrderId": client_order_id(cid, self.ccxt_id)})
                except ccxt.OrderNotFound:  # not (or not yet) at the venue: resolved like a lost reply
                    self.mark_unknown(cid, "not found at the venue")
                    continue
                self.on_order(o)
        await self._resolve_unknown()
        for sym in sorted(symbols):
            for t in await c.fetch_my_trades(sym, since):
                await self.on_trade(t)
        if force_funding or time.monotonic() >= self._next_funding:
            # funding settles every 1-8 h and the history is an expensive query (Binance
            # /fapi/v1/income: weight 30): read it every funding_poll_s and at start/reconnect
            await self.funding(symbols)
            self._next_funding = time.monotonic() + self.funding_poll_s

    async def _resolve_unknown(self) -> None:
        import ccxt

        for cid, (t0, reason) in list(self.unknown.items()):
            info = self.orders.get(cid)
            if info is None:
                self.unknown.pop(cid, None)
                continue
            vm = self.table.get(info.ticker)
            try:
                o = await self.client.fetch_order(None, vm.symbol, {"clientOrderId": client_order_id(cid, self.ccxt_id)})
            except ccxt.OrderNotFound:
                if time.monotonic() - t0 >= self.unknown_grace_s:
                    self.unknown.pop(cid, None)
                    self.orders.pop(cid, None)
                    self.counters["updates"] += 1
                    self.emit(OrderUpdate(cid, info.ticker, OrderStatus.REJECTED, self.now_ns(),
                                          reason=f"never reached the venue ({reason})", tag=info.tag))
                continue
            self.on_order(o)

    async def funding(self, symbols: set) -> None:
        """Book the venue's funding payments since start (``fetch_funding_history``) for ``symbols``."""
        c = self.client
        if not c.has.get("fetchFundingHistory"):
            return
        for sym in sorted(symbols):
            vm = self.table.by_symbol(sym)
            for row in await c.fetch_funding_history(sym, self.since_ms - 60_000):
                # the venue's id with the time: Hyperliquid gives every funding row the same zero hash
                fid = f"{sym}:{row.get('timestamp')}:{row.get('id') or ''}"
                if fid in self.funding_ids or row.get("amount") is None:
                    continue
                self.funding_ids.add(fid)
                amount = dec(row["amount"], "funding amount")
                rate = self.rate_of(vm.ticker)
                rate_1h = rate[0] if rate else D(0)
                size = self.positions.get(vm.ticker, D(0))
                mark = abs(amount / (size * rate_1h * (rate[1] if rate else 1))) if size and rate_1h else D(0)
                self.counters["funding"] += 1
                self.emit(FundingPayment(vm.ticker, int(row.get("timestamp") or 0) * 1_000_000, size=size,
                                         oracle_price=mark, rate_1h=rate_1h, amount=amount))
