"""The ``ccxt`` exchange client: one plugin for every ccxt venue, chosen as ``NAME=ccxt:ID``.

``--exchange dydx,binance=ccxt:binanceusdm`` runs venue ``binance`` through ccxt's
``binanceusdm`` (the id reaches the client as ``context.options["plugin_arg"]``, or the
``id`` option of ``[exchange.binance]``). :class:`CcxtExchange` meets the same contract as the
dYdX client (:class:`~perpbot.core.exchange.BaseExchangeClient`):

- markets from ccxt (:mod:`perpbot.exchanges.ccxt.markets`), market data from
  :class:`~perpbot.exchanges.ccxt.feed.CcxtFeed` (:meth:`CcxtExchange.venue_feed`, merged into
  the run's feed by the wiring);
- orders (:meth:`CcxtExchange.place_order`): market and limit, post-only, IOC, reduce-only,
  our client ids; sizes rounded down to the step and limit prices to the tick in the
  trader's favour (buys down, sells up), sent as decimal strings; the venue's minimum size
  and notional checked first. A venue refusal is a failed result carrying the venue's message;
  a rate limit backs off and retries (``rate_retries`` times); a timeout or another network
  error leaves the order PENDING with ``error="outcome unknown: ..."`` until reconciliation
  finds it or ``unknown_grace_s`` proves it never arrived (never "rejected" at once);
- account (:mod:`perpbot.exchanges.ccxt.account`): private streams, REST reconciliation at
  connect and after reconnects, funding payments from the venue's funding history;
- credentials (:mod:`perpbot.exchanges.ccxt.credentials`); mainnet needs ``--live``; with
  ``testnet = true`` ccxt's sandbox mode is used;
- ``paper = true``: orders are simulated by the paper exchange on this venue's live public
  data, with the venue's base-tier fees (:mod:`perpbot.exchanges.ccxt.venues`), its funding
  interval (each ``FundingRate`` carries it) and its margin fractions
  (:mod:`perpbot.exchanges.ccxt.markets`); no credentials, no ``--live``.

Options (``[exchange.<venue>]``; seconds unless named): ``id``, ``url`` (a loopback fake),
``key_file``, ``testnet``, ``paper``, ``collateral`` (paper), ``timeout_s`` (10), ``rate_limit_ms`` (ccxt's
``rateLimit``, ms per unit of request weight; default the venue's: ccxt's limiter is always on),
``rate_retries`` (3), ``retry_base_s`` (0.5), ``retry_max_s`` (30), ``reconcile_s`` (60),
``unknown_grace_s`` (10), ``depth`` (50), ``resync_s`` (30), ``poll_s`` (10), ``crosscheck_s``
(60; 0 turns the REST cross-check of the book off), ``crosscheck_strikes`` (2),
``crosscheck_grace_s`` (1), ``funding_delay_s`` (5), ``funding_chase_s`` (120); see
:mod:`perpbot.exchanges.ccxt.feed`.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any, ClassVar, Mapping

from loguru import logger

from perpbot.core.errors import ConfigError, InvalidOrder, LiveTradingNotConfirmed, TemporaryExchangeError
from perpbot.core.exchange import BaseExchangeClient, ExchangeCapabilities
from perpbot.core.model import (Balance, OrderInfo, OrderRequest, OrderResult, OrderStatus, OrderType, Position,
                                Side, TimeInForce)
from perpbot.core.tasks import cancel_and_wait
from perpbot.exchanges.ccxt.account import AccountSync
from perpbot.exchanges.ccxt.client import close_client, make_client
from perpbot.exchanges.ccxt.convert import STATUS, amount_text, classify, order_info, order_params, venue_message
from perpbot.exchanges.ccxt.credentials import load_credentials
from perpbot.exchanges.ccxt.feed import CcxtFeed
from perpbot.exchanges.ccxt.markets import MarketTable, VenueMarket, dec
from perpbot.exchanges.ccxt.venues import resolve_venue, tested_venues

D = Decimal
_TRUE = ("1", "true", "yes", "on")


def _flag(v: Any) -> bool:
    return v is True or str(v).strip().lower() in _TRUE


class CcxtExchange(BaseExchangeClient):
    """A ccxt venue as a perpbot exchange (module docstring). ``repr`` never shows credentials."""

    name: ClassVar[str] = "ccxt"
    description: ClassVar[str] = (
        "any ccxt venue with perpetuals, as NAME=ccxt:ID (e.g. binance=ccxt:binanceusdm); "
        f"tested against loopback fakes: {', '.join(tested_venues())}"
    )
    #: ccxt ids with loopback fakes and tests (``runbot.py plugins`` lists them)
    listed_variants: ClassVar[tuple] = tested_venues()

    def __init__(self, config: Mapping[str, Any], context: Any):
        super().__init__(config, context)
        opts = context.options or {}
        self.venue = str(opts.get("venue") or "ccxt")
        self.ccxt_id = str(self.config.get("id") or opts.get("plugin_arg") or "").strip().lower()
        self.profile = resolve_venue(self.ccxt_id, self.venue)
        self.ccxt_id = self.profile.ccxt_id
        self.url = self.config.get("url") or None
        self.testnet = _flag(self.config.get("testnet", False))
        self.paper = _flag(self.config.get("paper", False))
        self.live = _flag(opts.get("live", False)) or _flag(self.config.get("live", False))
        self.timeout_ms = int(float(self.config.get("timeout_s", 10)) * 1000)
        rl = self.config.get("rate_limit_ms")
        self.rate_limit_ms = float(rl) if rl not in (None, "") else None
        self.rate_retries = int(self.config.get("rate_retries", 3))
        self.retry_base_s = float(self.config.get("retry_base_s", 0.5))
        self.retry_max_s = float(self.config.get("retry_max_s", 30))
        self.table = MarketTable(self.profile, lambda: make_client(self.ccxt_id, url=self.url, sandbox=self.testnet,
                                                                   pro=False, timeout_ms=self.timeout_ms,
                                                                   rate_limit_ms=self.rate_limit_ms))
        self._credentials: dict = {}
        self.client: Any = None
        self.account: AccountSync | None = None
        self._tasks: list[asyncio.Task] = []
        self._paper: Any = None
        self.counters = {"placed": 0, "rejected": 0, "outcome_unknown": 0, "rate_limited": 0, "canceled": 0}
        if self.paper:
            self._paper = self._make_paper()

    def __repr__(self) -> str:
        mode = "paper" if self.paper else ("testnet" if self.testnet else ("fake" if self.url else "mainnet"))
        return f"CcxtExchange(venue={self.venue!r}, id={self.ccxt_id!r}, {mode})"

    # -- contract: wiring ---------------------------------------------------------

    def capabilities(self) -> ExchangeCapabilities:
        """Market and limit orders; GTT, IOC, post-only; reduce-only with any time in force;
        the venue profile's funding interval (per-market intervals travel on each FundingRate)."""
        return ExchangeCapabilities(
            order_types=frozenset({OrderType.MARKET, OrderType.LIMIT}),
            time_in_force=frozenset({TimeInForce.GTT, TimeInForce.IOC, TimeInForce.POST_ONLY}),
            reduce_only_requires_ioc=False, funding_interval_h=self.profile.funding_interval_h,
            simulated=self.paper, consumes_market_data=self.paper,
        )

    def venue_feed(self, tickers: tuple, clock: Any, prefix: str) -> CcxtFeed:
        """The live market-data feed of this venue for ``tickers`` (qualified with ``prefix``)."""
        from types import SimpleNamespace

        return CcxtFeed(self.config, SimpleNamespace(clock=clock), venue=self.venue, prefix=prefix, tickers=tickers,
                        table=self.table,
                        make_client=lambda: make_client(self.ccxt_id, url=self.url, sandbox=self.testnet,
                                                        timeout_ms=self.timeout_ms, rate_limit_ms=self.rate_limit_ms))

    def markets(self) -> Mapping:
        """The venue's markets of this run (``context.markets``, filled by the wiring)."""
        return self.context.markets

    def preflight(self) -> None:
        """No network: mainnet needs ``--live`` (unless paper, testnet or a loopback ``url``), and
        the credentials must load.

        :raises LiveTradingNotConfirmed: mainnet without ``--live``.
        :raises SecretError: missing credentials or a key file readable by others.
        """
        if self.paper:
            return
        if not (self.testnet or self.url or self.live):
            raise LiveTradingNotConfirmed(
                f"venue {self.venue!r} ({self.ccxt_id}) is mainnet and moves real money: pass --live to confirm, "
                f"or set [exchange.{self.venue}] testnet = true (ccxt sandbox) or paper = true")
        if self.testnet and not self.profile.sandbox:
            raise ConfigError(f"venue {self.venue!r}: ccxt has no sandbox mode for {self.ccxt_id}")
        self._credentials = load_credentials(self.venue, self.profile, self.config.get("key_file"), required=True)

    # -- lifecycle ---------------------------------------------------------------------

    async def connect(self) -> None:
        """Load markets, open the client, reconcile over REST, start the private streams.

        :raises TemporaryExchangeError: the venue could not be reached.
        :raises ExchangeError: the venue refused (bad keys: the venue's message).
        """
        if self._paper is not None:
            await self._paper.connect()
            return
        import ccxt

        self.preflight()
        try:
            if not self.table.by_ticker:
                await asyncio.to_thread(self.table.load)
            self.client = make_client(self.ccxt_id, credentials=self._credentials, url=self.url, sandbox=self.testnet,
                                      timeout_ms=self.timeout_ms, rate_limit_ms=self.rate_limit_ms)
            await self.client.load_markets()
            self.account = AccountSync(self.venue, self.ccxt_id, self.table, self.emit, self.context.clock.now_ns,
                                       self.config, rate_of=self._settled_rate)
            self.account.client = self.client
            self.account.tickers = tuple(self.context.markets)
            for t, p in (await self.get_positions()).items():
                self.account.positions[t] = p.size
            await self.account.reconcile()
        except ccxt.BaseError as exc:
            await self.disconnect()
            from perpbot.core.errors import ExchangeError

            kind = classify(exc)
            cls = TemporaryExchangeError if kind in ("network", "unknown", "rate") else ExchangeError
            raise cls(f"venue {self.venue} ({self.ccxt_id}): connect failed: {venue_message(exc)}") from None
        self._tasks = [asyncio.create_task(self.account.orders_loop(), name=f"ccxt-orders-{self.venue}"),
                       asyncio.create_task(self.account.trades_loop(), name=f"ccxt-fills-{self.venue}"),
                       asyncio.create_task(self.account.maintenance_loop(), name=f"ccxt-reconcile-{self.venue}")]
        logger.info(f"{self.venue}: connected to {self.ccxt_id} ({self!r}), {len(self.context.markets)} market(s)")

    async def disconnect(self) -> None:
        """Stop the streams and close the client (safe twice)."""
        if self._paper is not None:
            await self._paper.disconnect()
            return
        await cancel_and_wait(self._tasks)
        self._tasks = []
        if self.client is not None:
            client, self.client = self.client, None
            await close_client(client, self.venue)

    # -- orders ---------------------------------------------------------------------------

    def _vm(self, ticker: str) -> VenueMarket:
        vm = self.table.get(ticker)
        if vm is None:
            raise InvalidOrder(f"{self.venue}: unknown market {ticker!r}")
        return vm

    async def place_order(self, order: OrderRequest) -> OrderResult:
        """Round, check and send ``order`` (module docstring for the outcomes).

        :returns: success (OPEN, PENDING with ``"outcome unknown: ..."``) or failure (REJECTED with
            the venue's message, or the local check that failed).
        :raises InvalidOrder: an unknown market.
        """
        if self._paper is not None:
            return await self._paper.place_order(order)
        vm = self._vm(order.ticker)
        m = vm.market
        size = m.round_size(order.size)
        price = m.round_price(order.price, order.side) if order.price is not None else None
        if order.order_type is OrderType.MARKET and self.ccxt_id == "hyperliquid":
            ref = order.price or self.context.view.mark(order.ticker)
            if ref is None:
                return self._reject(order, "no price known for a market order (Hyperliquid needs a worst price)")
            slip = order.slippage if order.slippage is not None else D("0.05")
            price = m.round_price_aggressive(ref * (1 + slip if order.side is Side.BUY else 1 - slip), order.side)
        if size < vm.min_qty or size <= 0:
            return self._reject(order, f"size {_txt(order.size)} rounds to {_txt(size)}, below the minimum "
                                       f"{_txt(vm.min_qty)} of {order.ticker}")
        ref_price = price or self.context.view.mark(order.ticker)
        if vm.min_notional and not order.reduce_only and ref_price is not None and size * ref_price < vm.min_notional:
            return self._reject(order, f"notional {_txt(size * ref_price)} below the minimum {_txt(vm.min_notional)} "
                                       f"of {order.ticker}")
        req = attrs_evolve(order, size=size, price=price)
        typ, price_text, params = order_params(req, self.ccxt_id)
        info = OrderInfo(order.client_id, order.ticker, order.side, size, price, OrderStatus.PENDING, order.order_type,
                         reduce_only=order.reduce_only, post_only=order.post_only, time_in_force=order.time_in_force,
                         tag=order.tag, created_ns=self.context.clock.now_ns(), venue=self.venue)
        self.account.track(info)
        return await self._send(order, vm, typ, amount_text(size), price_text, params)

    async def _send(self, order: OrderRequest, vm: VenueMarket, typ: str, size: str, price: str | None,
                    params: dict) -> OrderResult:
        import ccxt

        delay = self.retry_base_s
        for attempt in range(self.rate_retries + 1):
            try:
                o = await self.client.create_order(vm.symbol, typ, order.side.value.lower(), size, price, params)
                break
            except ccxt.BaseError as exc:
                kind = classify(exc)
                if kind == "rate" and attempt < self.rate_retries:
                    self.counters["rate_limited"] += 1
                    logger.warning(f"{self.venue}: rate limited ({venue_message(exc)}); order {order.client_id} "
                                   f"retried in {delay:.2f}s")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.retry_max_s)
                    continue
                if kind in ("unknown", "network"):
                    self.account.mark_unknown(order.client_id, f"{type(exc).__name__}")
                    self.counters["outcome_unknown"] += 1
                    logger.warning(f"{self.venue}: order {order.client_id} {order.side.value} {size} {order.ticker}: "
                                   f"{type(exc).__name__}; it stays pending until reconciliation")
                    return OrderResult(True, order.client_id, order.ticker, OrderStatus.PENDING,
                                       error=f"outcome unknown: {type(exc).__name__}: {venue_message(exc)}")
                self.account.orders.pop(order.client_id, None)
                return self._reject(order, f"{self.venue} rejected the order: {venue_message(exc)}")
        self.counters["placed"] += 1
        # the reply's status when the venue gives one (Hyperliquid's order reply has none: OPEN until
        # the stream or reconciliation says more)
        status = STATUS.get(str(o.get("status")), OrderStatus.OPEN)
        eid = str(o.get("id") or "")
        tracked = self.account.orders.get(order.client_id)
        if tracked is not None and not status.is_terminal:
            self.account.track(attrs_evolve(tracked, status=status, exchange_order_id=eid))
        elif eid:
            self.account.by_exchange_id[eid] = order.client_id
        avg = o.get("average")
        return OrderResult(True, order.client_id, order.ticker, status,
                           filled_size=dec(o.get("filled") or 0, "filled"),
                           avg_price=dec(avg, "average") if avg else None, exchange_order_id=eid)

    def _reject(self, order: OrderRequest, reason: str) -> OrderResult:
        self.counters["rejected"] += 1
        logger.warning(f"{self.venue}: order {order.client_id} {order.side.value} {order.size} {order.ticker} rejected: {reason}")
        return OrderResult(False, order.client_id, order.ticker, OrderStatus.REJECTED, error=reason)

    async def cancel_order(self, client_id: int, ticker: str) -> OrderResult:
        """Cancel our order ``client_id`` by its client order id; a failure carries the venue's message."""
        if self._paper is not None:
            return await self._paper.cancel_order(client_id, ticker)
        import ccxt
        from perpbot.exchanges.ccxt.convert import client_order_id

        vm = self._vm(ticker)
        try:
            o = await self.client.cancel_order(None, vm.symbol, {"clientOrderId": client_order_id(client_id, self.ccxt_id)})
        except ccxt.BaseError as exc:
            if classify(exc) in ("unknown", "network", "rate"):
                raise TemporaryExchangeError(f"{self.venue}: cancel of {client_id} not confirmed: {venue_message(exc)}") from None
            return OrderResult(False, client_id, ticker, OrderStatus.REJECTED, error=f"{self.venue}: {venue_message(exc)}")
        self.counters["canceled"] += 1
        self.account.on_order(o)
        return OrderResult(True, client_id, ticker, OrderStatus.CANCELED, exchange_order_id=str(o.get("id") or ""))

    # -- state ------------------------------------------------------------------------------

    async def get_open_orders(self, ticker: str | None = None) -> list[OrderInfo]:
        """Our open orders at the venue (REST ``fetch_open_orders``)."""
        if self._paper is not None:
            return await self._paper.get_open_orders(ticker)
        sym = self._vm(ticker).symbol if ticker else None
        out = []
        for o in await self.client.fetch_open_orders(sym):
            vm = self.table.by_symbol(o.get("symbol", ""))
            info = order_info(o, vm.ticker) if vm else None
            if info is not None:
                out.append(info)
        return out

    async def get_positions(self) -> dict[str, Position]:
        """Open positions (``fetch_positions``): signed base units, entry price, venue name."""
        if self._paper is not None:
            return await self._paper.get_positions()
        out = {}
        for p in await self.client.fetch_positions():
            vm = self.table.by_symbol(p.get("symbol", ""))
            if vm is None or not p.get("contracts"):
                continue
            size = dec(p["contracts"], "contracts") * vm.contract_size
            if p.get("side") == "short":
                size = -size
            out[vm.ticker] = Position(vm.ticker, size, dec(p.get("entryPrice") or 0, "entryPrice"), venue=self.venue)
        return out

    async def get_balance(self) -> Balance:
        """Collateral (wallet), equity and free collateral in the venue's quote currency (treated as USD)."""
        if self._paper is not None:
            return await self._paper.get_balance()
        b = await self.client.fetch_balance()
        q = self.profile.quote
        info = b.get("info") if isinstance(b.get("info"), dict) else {}
        equity = dec(info.get("totalMarginBalance") or (b.get("total") or {}).get(q) or 0, "equity")
        wallet = dec(info.get("totalWalletBalance") or (b.get("total") or {}).get(q) or 0, "wallet")
        free = dec(info.get("availableBalance") or (b.get("free") or {}).get(q) or 0, "free")
        return Balance(collateral=wallet, equity=equity, free_collateral=free, ts_ns=self.context.clock.now_ns())

    async def get_fills_since(self, ts_ns: int) -> list:
        """Fills since ``ts_ns`` (REST ``fetch_my_trades`` per market of this run)."""
        if self._paper is not None:
            return await self._paper.get_fills_since(ts_ns)
        from perpbot.exchanges.ccxt.convert import client_id_of, fill_of

        out = []
        for t in self.context.markets:
            vm = self.table.get(t)
            for tr in await self.client.fetch_my_trades(vm.symbol, ts_ns // 1_000_000):
                cid = self.account.by_exchange_id.get(str(tr.get("order")))
                if cid is not None:
                    out.append(fill_of(tr, t, cid, vm.contract_size))
        return out

    def best_bid_offer(self, ticker: str) -> tuple:
        """Best bid and ask of ``ticker`` from the bot's book of this venue (None when unknown)."""
        book = self.context.view.book(ticker)
        if book is None:
            return None, None
        return book.best_bid_price(), book.best_ask_price()

    def account_ledger(self) -> Any:
        """The paper simulator's ledger in paper mode, else None (the bot books the venue's events)."""
        return self._paper.account_ledger() if self._paper is not None else None

    def on_market_event(self, event: Any) -> None:
        """Paper mode: hand the venue's market events to the simulator."""
        if self._paper is not None:
            self._paper.on_market_event(event)

    def set_event_sink(self, sink: Any) -> None:
        """Install the bot's sink (on the simulator too in paper mode)."""
        super().set_event_sink(sink)
        if self._paper is not None:
            self._paper.set_event_sink(sink)

    def _settled_rate(self, ticker: str):
        st = self.context.view.state(ticker)
        lf = getattr(st, "last_funding", None) if st is not None else None
        return (lf.rate_1h, lf.interval_h) if lf is not None else None

    def _make_paper(self) -> Any:
        from perpbot.exchanges.paper import PaperExchange

        cfg = {k: v for k, v in self.config.items() if k in ("collateral", "latency_ms", "queue_position", "max_slippage")}
        cfg.update(maker_fee=str(self.profile.maker_fee), taker_fee=str(self.profile.taker_fee))
        return PaperExchange(cfg, self.context)


def _txt(x: Decimal) -> str:
    """A Decimal for a message: plain notation, no trailing zeros."""
    return format(x.normalize(), "f")


def attrs_evolve(obj: Any, **kw: Any) -> Any:
    """``attrs.evolve`` (kept local so the order path reads as one module)."""
    import attrs

    return attrs.evolve(obj, **kw)
