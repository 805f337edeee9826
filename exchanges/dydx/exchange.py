"""The ``dydx`` exchange client: orders signed and sent to a dYdX v4 node, account state
from the indexer's subaccount stream.

- Orders: :mod:`perpbot.exchanges.dydx.orders` validates and converts (exact Decimal ->
  quantums/subticks, the chain's rules, short-term/long-term/conditional), the proto
  is built here with a dYdX client id from the persistent
  :class:`~perpbot.exchanges.dydx.client_ids.ClientIdStore` (written before sending: an order is
  never sent twice, ids survive a restart), and :class:`~perpbot.exchanges.dydx.node.NodeGateway`
  signs and broadcasts on its worker thread (local sequence for stateful orders, gRPC
  budget, circuit breaker).
- A CheckTx failure is ``OrderResult(success=False, error=<chain log>)``; a refusal by the
  budget, the open breaker or a node that could not be reached is a failed result too
  (nothing was sent, and the order is unregistered). A broadcast whose reply was lost
  (timeout, connection dropped after sending) is NOT a rejection: the result is
  ``success=True, status=PENDING`` with ``error="outcome unknown: ..."``; the order stays
  pending until the subaccount stream, reconciliation or a look-up by id
  (``GET /v4/orders/{id}``) shows it, or until its good-til-block / good-til-block-time
  has passed for certain while the indexer does not know it (then EXPIRED: it never existed).
- A cancel's result carries the venue's order status: FILLED (a failed cancel) when the
  order filled first, CANCELED/EXPIRED when the venue says so, else BEST_EFFORT_CANCELED
  (sent and accepted by CheckTx, final status to come from the stream).
- Account: ``v4_subaccounts`` and ``v4_block_height`` are subscribed on the SAME
  WebSocket as the market data (:func:`perpbot.exchanges.dydx.ws.acquire`), folded by
  :class:`~perpbot.exchanges.dydx.account.AccountState`, and reconciled with REST at connect,
  after every reconnect and every ``reconcile_interval_s``.
- ``circuit_open``: the breaker's reason (``"circuit_open: ..."``) while it is open,
  else None; the bot shows it to the risk chain.
- Mainnet trading needs the explicit ``live`` opt-in (``--live``); testnet and custom
  networks on another chain id do not.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping

from loguru import logger

from perpbot.core.errors import (
    ExchangeError,
    InvalidOrder,
    LiveTradingNotConfirmed,
    TemporaryExchangeError,
)
from perpbot.core.exchange import BaseExchangeClient, ExchangeCapabilities
from perpbot.core.model import (
    MarginMode,
    Market,
    OrderInfo,
    OrderRequest,
    OrderResult,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
)
from perpbot.exchanges.dydx import ws as ws_mod
from perpbot.exchanges.dydx.account import AccountState, order_uuid
from perpbot.exchanges.dydx.client_ids import ClientIdStore
from perpbot.exchanges.dydx.config import DydxSettings
from perpbot.exchanges.dydx.feed import markets_from_payload
from perpbot.exchanges.dydx.node import NodeGateway, NodeUnavailable, OutcomeUnknown, RateBudgetExceeded
from perpbot.exchanges.dydx.orders import (
    SHORT_TERM,
    build_order_proto,
    order_id_proto,
    plan_order,
)
from perpbot.exchanges.dydx.parser import V4_BLOCK_HEIGHT, V4_SUBACCOUNTS
from perpbot.exchanges.dydx.rest import IndexerRest
from perpbot.exchanges.dydx.secrets import load_mnemonic

NS = 1_000_000_000
#: rows per REST page: comlink's limit (``API_LIMIT_V4``) was 100 on older indexers, 1000 now
ORDERS_PAGE = 100
FILLS_PAGE = 100
#: slack on a good-til-block-time before an order the indexer does not know is given up (s):
#: the chain removes it at the first block whose time reaches it (x/clob EndBlocker)
GTBT_MARGIN_S = 10


def _iso(epoch_s: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.000Z`` (the indexer's time format; no '+' to escape in a query)."""
    import datetime as _dt

    return _dt.datetime.fromtimestamp(int(epoch_s), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class DydxExchange(BaseExchangeClient):
    """dYdX v4 exchange client (see the module docstring).

    Config: the ``[exchange.dydx]`` table (:mod:`perpbot.exchanges.dydx.config`); the bot's
    ``--live`` arrives in ``context.options["live"]``.
    """

    name: ClassVar[str] = "dydx"
    description: ClassVar[str] = "dYdX v4: orders signed and sent to a node, account from the indexer stream"
    #: the feed the CLI picks for this exchange when none is named
    default_feed: ClassVar[str] = "dydx"

    def __init__(self, config: Mapping[str, Any], context: Any):
        super().__init__(config, context)
        opts = dict(getattr(context, "options", {}) or {})
        self.settings = DydxSettings.from_config(config, live=bool(opts.get("live")))
        self.rest: IndexerRest | None = None
        self.node: NodeGateway | None = None
        self.ids: ClientIdStore | None = None
        self.account: AccountState | None = None
        self.conn: ws_mod.IndexerConnection | None = None
        self.address: str | None = self.settings.address
        self._markets: dict[str, Market] = {}
        self._height: int | None = None
        self._height_at = 0.0
        self._tasks: list[asyncio.Task] = []
        self._connected = False
        self._reconcile_now: asyncio.Event | None = None
        self._fill_watermark: int | None = None  # newest fill height read by reconciliation
        self._lookup_at: dict[int, float] = {}  # our id -> monotonic time of the next look-up
        self.counters = {"placed": 0, "rejected": 0, "canceled": 0, "reconciles": 0, "reconcile_failures": 0,
                         "outcome_unknown": 0, "order_lookups": 0}

    def __repr__(self) -> str:
        return f"DydxExchange({self.settings.network}, address={self.address}, subaccount={self.settings.subaccount})"

    # ------------------------------------------------------------------ contract

    def capabilities(self) -> ExchangeCapabilities:
        return ExchangeCapabilities(
            order_types=frozenset(OrderType),
            time_in_force=frozenset(TimeInForce),
            reduce_only_requires_ioc=True,
            conditional_orders=True,
            isolated_margin=False,
            funding_interval_h=1,
            simulated=False,
            consumes_market_data=False,
        )

    @property
    def circuit_open(self) -> str | None:
        """``"circuit_open: ..."`` while the node breaker refuses calls, else None."""
        return self.node.breaker.reason if self.node is not None else None

    def _now_ns(self) -> int:
        clock = getattr(self.context, "clock", None)
        return clock.now_ns() if clock is not None else time.time_ns()

    def preflight(self) -> None:
        """Mainnet needs the explicit live opt-in, and the wallet must be loadable (no network)."""
        s = self.settings
        if s.is_mainnet and not s.live:
            raise LiveTradingNotConfirmed(
                "dYdX mainnet trading moves real money: pass --live (or set dydx.live = true) to confirm, "
                "or use --network testnet / --exchange paper"
            )
        load_mnemonic(s.mnemonic_env, s.mnemonic_file)

    async def connect(self) -> None:
        s = self.settings
        self.preflight()
        secret = load_mnemonic(s.mnemonic_env, s.mnemonic_file)
        logger.info(f"dYdX exchange: {s.describe()}")
        try:
            self.rest = IndexerRest(s)
            raw = await self.rest.perpetual_markets()
            self._markets = markets_from_payload(raw)
            self.node = NodeGateway(s, secret)
            self.address = await self.node.connect(s.address)
            state_dir = Path(getattr(self.context, "state_dir", None) or ".perpbot")
            self.ids = ClientIdStore(state_dir / f"dydx-orders-{self.address}-{s.subaccount}.json")
            self.account = AccountState(
                self.ids, self.address, s.subaccount, market_of=self._market_or_none, oracle_of=self._oracle,
                emit=self.emit, now_ns=self._now_ns,
            )
            self._set_height(await self.node.latest_height())
            self._reconcile_now = asyncio.Event()
            conn = self.conn = ws_mod.acquire(s, clock_ns=self._now_ns)
            conn.add_listener(self._on_ws, self._on_ws_state)
            conn.subscribe(V4_SUBACCOUNTS, f"{self.address}/{s.subaccount}", batched=False)
            conn.subscribe(V4_BLOCK_HEIGHT, None, batched=False)
            await conn.start()
            await self._reconcile(first=True)
        except BaseException:
            await self._teardown()
            raise
        self._tasks = [asyncio.create_task(self._maintenance(), name="dydx-exchange-maintenance")]
        self._connected = True
        bal = self.account.balance()
        logger.info(
            f"dYdX account {self.address}/{s.subaccount}: equity {bal.equity} USD, "
            f"{len(self.account.positions)} position(s), {len(self.account.open_orders())} open order(s)"
        )

    async def _teardown(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        self._tasks = []
        if self.conn is not None:
            self.conn.remove_listener(self._on_ws, self._on_ws_state)
            if self.address:
                self.conn.unsubscribe(V4_SUBACCOUNTS, f"{self.address}/{self.settings.subaccount}")
            self.conn.unsubscribe(V4_BLOCK_HEIGHT, None)
            await ws_mod.release(self.conn)
            self.conn = None
        if self.node is not None:
            await self.node.close()

    async def disconnect(self) -> None:
        self._connected = False
        await self._teardown()

    # ------------------------------------------------------------------ markets, prices, height

    def _market_or_none(self, ticker: str) -> Market | None:
        st = self.context.state_of(ticker) if getattr(self.context, "state_of", None) else None
        if st is not None and getattr(st, "market", None) is not None:
            return st.market
        return self._markets.get(ticker) or (self.context.markets or {}).get(ticker)

    def _market(self, ticker: str) -> Market:
        m = self._market_or_none(ticker)
        if m is None:
            raise InvalidOrder(f"unknown dYdX market {ticker!r}")
        return m

    def _oracle(self, ticker: str) -> Decimal | None:
        st = self.context.state_of(ticker) if getattr(self.context, "state_of", None) else None
        if st is not None and getattr(st, "oracle_price", None) is not None:
            return st.oracle_price
        m = self._markets.get(ticker)
        return m.oracle_price if m is not None else None

    def best_bid_offer(self, ticker: str) -> tuple[Decimal | None, Decimal | None]:
        book = self.context.book_of(ticker) if getattr(self.context, "book_of", None) else None
        if book is None:
            return None, None
        return book.best_bid_price(), book.best_ask_price()

    def _set_height(self, h: int | None) -> None:
        if h is not None and (self._height is None or h >= self._height):
            self._height = int(h)
            self._height_at = time.monotonic()

    async def current_height(self) -> int:
        """The block height, refreshed from the node when older than ``height_max_age_s``."""
        if self._height is None or time.monotonic() - self._height_at > self.settings.height_max_age_s:
            self._set_height(await self.node.latest_height())
        return int(self._height)

    # ------------------------------------------------------------------ orders

    def _check_connected(self) -> None:
        if not self._connected or self.node is None or self.account is None:
            raise TemporaryExchangeError("dYdX exchange is not connected")

    async def place_order(self, order: OrderRequest) -> OrderResult:
        """Validate, convert, sign and broadcast ``order`` (see the module docstring).

        :raises InvalidOrder: the order breaks a market rule (size below the minimum,
            reduce-only without IOC, ...); nothing was sent.
        :raises TemporaryExchangeError: the broadcast failed in transport (state unknown).
        """
        self._check_connected()
        s = self.settings
        market = self._market(order.ticker)
        if order.margin_mode is not MarginMode.CROSS:
            raise InvalidOrder(
                f"{order.margin_mode.value} margin is not supported by the dydx exchange client yet "
                f"(orders go to subaccount {s.subaccount}, cross margin)", client_id=order.client_id,
            )
        short = order.order_type is OrderType.MARKET or order.time_in_force is TimeInForce.IOC or (
            not order.order_type.is_conditional and order.good_til_s is not None
            and order.good_til_s <= s.short_term_max_s
        )
        height = await self.current_height() if short else self._height
        best = None
        bid, ask = self.best_bid_offer(order.ticker)
        st = self.context.state_of(order.ticker) if getattr(self.context, "state_of", None) else None
        stale = st.stale_reason(self._now_ns()) if st is not None and hasattr(st, "stale_reason") else None
        if not stale:
            best = ask if order.side is Side.BUY else bid
        now_s = self._now_ns() // NS
        plan = plan_order(
            order, market, height=height, now_s=now_s, short_term_blocks=s.short_term_blocks,
            short_term_max_s=s.short_term_max_s, default_good_til_s=s.default_good_til_s,
            slippage=s.market_slippage, best=best, oracle=self._oracle(order.ticker),
        )
        meta = {
            "ticker": order.ticker, "clob": market.clob_pair_id, "flags": plan.flags, "side": plan.side.value,
            "size": str(plan.size), "price": str(plan.price), "gtb": plan.good_til_block,
            "gtbt": plan.good_til_block_time, "tag": order.tag, "created_ns": self._now_ns(),
            "type": order.order_type.value, "reduce_only": plan.reduce_only, "tif": plan.time_in_force.value,
        }
        try:
            dydx_id = await self.ids.allocate_async(order.client_id, meta)
        except ValueError as exc:
            raise InvalidOrder(str(exc), client_id=order.client_id) from None
        proto = build_order_proto(plan, owner=self.address, subaccount=s.subaccount, client_id=dydx_id,
                                  clob_pair_id=market.clob_pair_id)
        uid = order_uuid(self.address, s.subaccount, dydx_id, market.clob_pair_id, plan.flags)
        self.account.track_new_order(order.client_id, OrderInfo(
            client_id=order.client_id, ticker=order.ticker, side=plan.side, size=plan.size, price=plan.price,
            status=OrderStatus.PENDING, order_type=order.order_type, reduce_only=plan.reduce_only,
            post_only=plan.time_in_force is TimeInForce.POST_ONLY, time_in_force=plan.time_in_force,
            tag=order.tag, created_ns=meta["created_ns"], exchange_order_id=uid, venue="dydx",
        ))
        try:
            tx = await self.node.place_order(proto, stateful=plan.stateful)
        except OutcomeUnknown as exc:
            # the node may have accepted it: it stays PENDING (never REJECTED, never sent again)
            # until the stream, reconciliation, a look-up by id or its good-til passing tells
            self.account.mark_unknown(order.client_id, str(exc))
            self.counters["outcome_unknown"] += 1
            logger.warning(
                f"dYdX order {order.client_id} (dYdX id {dydx_id}) {plan.side.value} {plan.size} {order.ticker}: "
                f"{exc}; it stays pending until the venue shows it or its good-til passes"
            )
            return OrderResult(True, order.client_id, order.ticker, OrderStatus.PENDING,
                               error=f"outcome unknown: {exc}", exchange_order_id=uid)
        except TemporaryExchangeError as exc:  # NotSent, NodeUnavailable, RateBudgetExceeded: never left
            self._forget(order.client_id, OrderStatus.REJECTED)
            self.counters["rejected"] += 1
            return OrderResult(False, order.client_id, order.ticker, OrderStatus.REJECTED, error=str(exc))
        except BaseException:
            # anything else (cancellation while sending, a bug): the fate is unknown, keep it pending
            self.account.mark_unknown(order.client_id, "interrupted while sending")
            raise
        if not tx.ok:
            self._forget(order.client_id, OrderStatus.REJECTED)
            self.counters["rejected"] += 1
            return OrderResult(False, order.client_id, order.ticker, OrderStatus.REJECTED,
                               error=f"CheckTx code {tx.code}: {tx.raw_log}")
        self.counters["placed"] += 1
        logger.info(
            f"dYdX order {order.client_id} (dYdX id {dydx_id}, {'stateful' if plan.stateful else 'short-term'}) "
            f"{plan.side.value} {plan.size} {order.ticker} @ {plan.price} {plan.time_in_force.value}"
            + (f" gtb {plan.good_til_block}" if plan.good_til_block else f" gtbt {plan.good_til_block_time}")
            + f": accepted (tx {tx.txhash[:12]})"
        )
        info = self.account.orders.get(order.client_id)
        status = info.status if info is not None else OrderStatus.PENDING
        return OrderResult(True, order.client_id, order.ticker, status,
                           filled_size=info.filled_size if info is not None else Decimal(0),
                           exchange_order_id=uid)

    def _forget(self, client_id: int, status: OrderStatus) -> None:
        """An order that never left (nothing was sent, or CheckTx refused it): it is no longer
        registered anywhere (open orders, look-ups, expiry), and its dYdX id stays burnt."""
        self.ids.update(client_id, status=status.value)
        self.account.orders.pop(client_id, None)
        self.account.order_rows.pop(client_id, None)
        self.account.unknown.pop(client_id, None)
        self.account.lookups.discard(client_id)

    def _order_key(self, client_id: int) -> tuple[int, int, int, int, int, str] | None:
        """``(dydx id, clob, flags, gtb, gtbt, ticker)`` of one of OUR orders (None for any other
        id: orders of other clients are not addressable by the bot's client ids)."""
        meta = self.ids.get(client_id)
        if meta is None:
            return None
        return (int(meta["dydx_id"]), int(meta["clob"]), int(meta["flags"]), int(meta.get("gtb") or 0),
                int(meta.get("gtbt") or 0), str(meta.get("ticker", "")))

    async def cancel_order(self, client_id: int, ticker: str) -> OrderResult:
        """Cancel one order by our client id (short-term: best effort, gossip only)."""
        self._check_connected()
        key = self._order_key(client_id)
        if key is None:
            return OrderResult(False, client_id, ticker, OrderStatus.REJECTED, error=f"unknown order {client_id}")
        dydx_id, clob, flags, gtb, gtbt, t = key
        info = self.account.orders.get(client_id)
        if info is not None and info.status.is_terminal:
            return OrderResult(True, client_id, t, info.status, filled_size=info.filled_size)
        oid = order_id_proto(owner=self.address, subaccount=self.settings.subaccount, client_id=dydx_id,
                             flags=flags, clob_pair_id=clob)
        try:
            if flags == SHORT_TERM:
                h = await self.current_height()
                if gtb and h > gtb:
                    self.account.mark(client_id, OrderStatus.EXPIRED, f"good-til-block {gtb} passed")
                    return OrderResult(True, client_id, t, OrderStatus.EXPIRED)
                tx = await self.node.cancel_order(oid, good_til_block=max(h + self.settings.short_term_blocks, gtb))
                status = OrderStatus.BEST_EFFORT_CANCELED
            else:
                now_s = self._now_ns() // NS
                if gtbt and gtbt <= now_s:
                    self.account.mark(client_id, OrderStatus.EXPIRED, "good-til-block-time passed")
                    return OrderResult(True, client_id, t, OrderStatus.EXPIRED)
                tx = await self.node.cancel_order(oid, good_til_block_time=gtbt or now_s + 60)
                status = OrderStatus.CANCELED
        except TemporaryExchangeError as exc:  # not sent, or reply lost: the order's state is unchanged/unknown
            return OrderResult(False, client_id, t, info.status if info else OrderStatus.OPEN, error=str(exc))
        if not tx.ok:
            return OrderResult(False, client_id, t, info.status if info else OrderStatus.OPEN,
                               error=f"CheckTx code {tx.code}: {tx.raw_log}")
        self.counters["canceled"] += 1
        logger.info(f"dYdX cancel of order {client_id} (dYdX id {dydx_id}) {t}: accepted (tx {tx.txhash[:12]})")
        return await self._cancel_outcome(client_id, t, status)

    async def _cancel_outcome(self, client_id: int, ticker: str, in_flight: OrderStatus) -> OrderResult:
        """The result of a cancel the node accepted, from the venue's order status.

        CheckTx accepting a cancel says nothing about the order (a short-term cancel is
        gossip only; the order may have filled first). The order is looked up on the
        indexer (``GET /v4/orders/{id}``): FILLED is a failed cancel with status FILLED;
        CANCELED / EXPIRED are final; otherwise ``in_flight`` (the cancel is on its way, the
        final status comes from the stream).
        """
        info = self.account.orders.get(client_id)
        if info is not None and not info.status.is_terminal and info.exchange_order_id:
            try:
                row = await self.rest.order(info.exchange_order_id)
            except ExchangeError as exc:
                row = None
                logger.warning(f"dYdX order {client_id}: status after the cancel unknown ({exc})")
            self.counters["order_lookups"] += 1
            if row is not None:
                self.account._order_row(row)
            info = self.account.orders.get(client_id)
        if info is None:
            return OrderResult(True, client_id, ticker, in_flight)
        if info.status is OrderStatus.FILLED:
            return OrderResult(False, client_id, ticker, OrderStatus.FILLED, filled_size=info.filled_size,
                               error="cancel too late: the order was already FILLED on the venue")
        if info.status.is_terminal:
            return OrderResult(True, client_id, ticker, info.status, filled_size=info.filled_size)
        return OrderResult(True, client_id, ticker, in_flight, filled_size=info.filled_size)

    async def batch_cancel(self, client_ids: Iterable[int]) -> list[OrderResult]:
        """Cancel short-term orders in ONE ``MsgBatchCancel`` (stateful ones one by one)."""
        self._check_connected()
        from v4_proto.dydxprotocol.clob.tx_pb2 import OrderBatch
        from v4_proto.dydxprotocol.subaccounts.subaccount_pb2 import SubaccountId

        results: list[OrderResult] = []
        short: dict[int, list[tuple[int, int, str]]] = {}
        for cid in client_ids:
            key = self._order_key(cid)
            if key is None:
                results.append(OrderResult(False, cid, "", OrderStatus.REJECTED, error=f"unknown order {cid}"))
                continue
            dydx_id, clob, flags, gtb, gtbt, t = key
            if flags == SHORT_TERM:
                short.setdefault(clob, []).append((cid, dydx_id, t))
            else:
                results.append(await self.cancel_order(cid, t))
        if short:
            h = await self.current_height()
            batches = [OrderBatch(clob_pair_id=clob, client_ids=[d for _, d, _ in rows]) for clob, rows in short.items()]
            sub = SubaccountId(owner=self.address, number=self.settings.subaccount)
            try:
                tx = await self.node.batch_cancel(sub, batches, h + self.settings.short_term_blocks)
                error = "" if tx.ok else f"CheckTx code {tx.code}: {tx.raw_log}"
            except TemporaryExchangeError as exc:
                error = str(exc)
            if not error:
                logger.info(f"dYdX batch cancel of {sum(len(r) for r in short.values())} short-term order(s): accepted")
            for rows in short.values():
                for cid, _, t in rows:
                    if error:
                        results.append(OrderResult(False, cid, t, OrderStatus.OPEN, error=error))
                    else:
                        self.counters["canceled"] += 1
                        results.append(OrderResult(True, cid, t, OrderStatus.BEST_EFFORT_CANCELED))
        return results

    async def cancel_all(self, ticker: str | None = None) -> list[OrderResult]:
        self._check_connected()
        return await self.batch_cancel([o.client_id for o in self.account.open_orders(ticker)])

    def reserve_client_ids(self, ids: Iterable[int]) -> None:
        """Never hand out these dYdX client ids (ids another process or an old run used)."""
        if self.ids is None:
            raise TemporaryExchangeError("dYdX exchange is not connected")
        self.ids.reserve(ids)

    # ------------------------------------------------------------------ state

    async def get_open_orders(self, ticker: str | None = None) -> list[OrderInfo]:
        """The bot's own open orders (PENDING ones included; other clients' orders are not)."""
        self._check_connected()
        return self.account.open_orders(ticker)

    async def get_foreign_open_orders(self, ticker: str | None = None) -> list[OrderInfo]:
        """Open orders other clients placed on this subaccount (``client_id`` = their dYdX
        client id, ``exchange_order_id`` = the indexer's order id); the bot never touches them."""
        self._check_connected()
        return self.account.foreign_open_orders(ticker)

    async def get_positions(self) -> dict[str, Position]:
        self._check_connected()
        return dict(self.account.positions)

    async def get_balance(self):
        self._check_connected()
        return self.account.balance()

    async def get_fills_since(self, ts_ns: int) -> list:
        """Fills at or after ``ts_ns`` from REST (paged, newest first, up to 1,000)."""
        self._check_connected()
        out = []
        before = None
        for _ in range(10):
            rows = await self.rest.fills(self.address, self.settings.subaccount, limit=100,
                                         created_before_or_at=before)
            if not rows:
                break
            oldest_ns = None
            for row in rows:
                try:
                    f = self.account.fill_from_row(row)
                except (KeyError, TypeError, ValueError, ArithmeticError):
                    continue
                oldest_ns = f.ts_ns if oldest_ns is None else min(oldest_ns, f.ts_ns)
                if f.ts_ns >= ts_ns:
                    out.append(f)
            oldest = rows[-1].get("createdAt")
            if len(rows) < 100 or not oldest or oldest_ns is None or oldest_ns < ts_ns:
                break
            before = oldest
        seen = set()
        uniq = []
        for f in sorted(out, key=lambda f: f.ts_ns):
            if f.fill_id not in seen:
                seen.add(f.fill_id)
                uniq.append(f)
        return uniq

    def health(self) -> dict:
        """Diagnostics: breaker, budget, sequence, height, stream."""
        node = self.node
        return {
            "connected": self._connected,
            "circuit": node.breaker.state if node else "n/a",
            "circuit_open": self.circuit_open,
            "sequence": node.sequence if node else None,
            "height": self._height,
            "ws_connected": bool(self.conn and self.conn.connected.is_set()),
            **({f"node_{k}": v for k, v in node.stats.items()} if node else {}),
            **self.counters,
        }

    # ------------------------------------------------------------------ stream + reconciliation

    def _on_ws(self, msg: Any, raw: Any, recv_ns: int) -> None:
        if msg is None or self.account is None:
            return
        ch = msg.get("channel")
        if ch == V4_SUBACCOUNTS and msg.get("id") == f"{self.address}/{self.settings.subaccount}":
            self.account.on_message(msg)
            self._set_height(self.account.height)
        elif ch == V4_BLOCK_HEIGHT:
            contents = msg.get("contents")
            items = contents if msg.get("type") == "channel_batch_data" else [contents]
            for c in items:
                h = (c or {}).get("height") or (c or {}).get("blockHeight")
                if h is not None:
                    try:
                        self._set_height(int(h))
                        self.account._height(h)  # the indexer's own height
                    except (TypeError, ValueError):
                        pass

    def _on_ws_state(self, event: str, detail: str, recv_ns: int) -> None:
        if event == "connected" and self._reconcile_now is not None and self._connected:
            self._reconcile_now.set()  # catch up on what happened while the stream was down

    async def _live_orders(self) -> dict[str, dict]:
        """Every order row of the subaccount that may still be live, all pages, by indexer id.

        ``GET /v4/orders`` has no created-before cursor (comlink ``orders-controller.ts``): it
        is sorted by good-til-block / good-til-block-time, newest first, and continued with
        ``goodTilBlockTimeBeforeOrAt`` (stateful orders) and ``goodTilBlockBeforeOrAt``
        (short-term orders), both inclusive. Two passes page down those cursors until a short
        page, a page with nothing new, or a good-til that has passed (an order whose
        good-til-block(-time) passed is no longer on the chain). No status filter: comlink
        filters status AFTER its database limit, so a filtered page may stop early.
        """
        from perpbot.exchanges.dydx.orders import MAX_STATEFUL_S
        from perpbot.exchanges.dydx.parser import parse_iso_ns

        s = self.settings
        out: dict[str, dict] = {}
        now_s = self._now_ns() // NS
        height = self._height
        for stateful in (True, False):
            if stateful:
                cursor: Any = _iso(now_s + MAX_STATEFUL_S + 86_400)
                floor: Any = now_s - 60
            else:
                cursor = (height + 10_000) if height else 2**53
                floor = (height - 1) if height else 0
            while True:
                kw = ({"good_til_block_time_before_or_at": cursor} if stateful
                      else {"good_til_block_before_or_at": cursor})
                page = await self.rest.orders(self.address, s.subaccount, limit=ORDERS_PAGE, **kw)
                new = 0
                keys = []
                for row in page:
                    rid = str(row.get("id") or "")
                    if rid and rid not in out:
                        new += 1
                    if rid:
                        out[rid] = row
                    try:
                        if stateful and row.get("goodTilBlockTime"):
                            keys.append((parse_iso_ns(str(row["goodTilBlockTime"])) // NS, row["goodTilBlockTime"]))
                        elif not stateful and row.get("goodTilBlock") is not None:
                            keys.append((int(row["goodTilBlock"]), int(row["goodTilBlock"])))
                    except (TypeError, ValueError):
                        continue
                if len(page) < ORDERS_PAGE or not new or not keys:
                    break
                low, nxt = min(keys)
                if (stateful and low < floor) or (not stateful and low < floor):
                    break  # the rest of the list is past its good-til: no longer on the chain
                if nxt == cursor:
                    logger.warning(
                        f"dYdX orders: more than {ORDERS_PAGE} orders share good-til {nxt}; the indexer cannot page "
                        f"past them (the stream and look-ups by id cover the rest)"
                    )
                    break
                cursor = nxt
        return out

    async def _fills_since_watermark(self) -> list[dict]:
        """Every fill newer than the last reconciliation's newest fill height, all pages.

        ``GET /v4/fills`` is newest first by ``createdAtHeight`` and continued with the
        inclusive ``createdBeforeOrAtHeight`` (comlink ``fills-controller.ts``, postgres
        ``fill-table.ts findAll``); rows repeated at a page boundary are merged by fill id.
        A block's fills are written together (ender processes a block in one transaction),
        so a height seen once is complete. When one height holds a whole page, that height
        is read with ``page`` (newer indexers: ``eventId`` order, ``totalResults``).
        On the first reconciliation (``watermark`` None) only the newest page is read: older
        fills are history (:meth:`get_fills_since` reads them on demand).
        """
        s = self.settings
        rows: dict[str, dict] = {}
        wm = self._fill_watermark
        cursor: int | None = None
        while True:
            page = await self.rest.fills(self.address, s.subaccount, limit=FILLS_PAGE,
                                         created_before_or_at_height=cursor)
            heights = []
            for row in page:
                rows[str(row.get("id"))] = row
                try:
                    heights.append(int(row.get("createdAtHeight")))
                except (TypeError, ValueError):
                    pass
            if wm is None or len(page) < FILLS_PAGE or not heights:
                break
            low = min(heights)
            if low <= wm:
                break  # everything above the watermark is in
            if low == max(heights) and low == cursor:
                await self._fills_at_height(low, rows)
                cursor = low - 1
                continue
            cursor = low
        heights = [int(r["createdAtHeight"]) for r in rows.values() if str(r.get("createdAtHeight", "")).isdigit()]
        if heights:
            self._fill_watermark = max(heights + ([wm] if wm is not None else []))
        elif wm is None:
            self._fill_watermark = 0
        return list(rows.values())

    async def _fills_at_height(self, height: int, rows: dict[str, dict]) -> None:
        """All fills of one block when there are more than a page of them (``page`` paging)."""
        s = self.settings
        page_no = 1
        while True:
            data = await self.rest.fills_page(self.address, s.subaccount, limit=FILLS_PAGE,
                                              created_before_or_at_height=height, page=page_no)
            got = [r for r in (data.get("fills") or []) if str(r.get("createdAtHeight")) == str(height)]
            for row in got:
                rows[str(row.get("id"))] = row
            total = data.get("totalResults")
            if total is None:
                logger.warning(f"dYdX fills: more than {FILLS_PAGE} fills at height {height} and this indexer "
                               f"has no page parameter; the stream is the only source for the rest")
                return
            if page_no * FILLS_PAGE >= int(total) or not data.get("fills"):
                return
            page_no += 1

    async def _reconcile(self, first: bool = False) -> None:
        s = self.settings
        acct = self.account
        sub = await self.rest.subaccount(self.address, s.subaccount)
        acct.apply_subaccount(sub)
        rows = await self._live_orders()
        for row in rows.values():
            acct._order_row(row)
        # ours that the paged list did not show: ask for each by id
        for cid, o in list(acct.orders.items()):
            if not o.status.is_terminal and o.exchange_order_id and o.exchange_order_id not in rows:
                acct.lookups.add(cid)
        await self._resolve_lookups(force=True)
        if first:
            self.ids.reserve(int(o.client_id) for o in acct.foreign.values()
                             if self.ids.our_id(int(o.client_id)) is None)
        fills = await self._fills_since_watermark()
        acct.apply_rest_fills(fills, emit=not first)
        try:
            payments = await self.rest.funding_payments(self.address, s.subaccount, limit=100)
        except ExchangeError as exc:  # an indexer without the endpoint: funding then comes from positions only
            payments = []
            if first:
                logger.warning(f"dYdX funding payments unavailable: {exc}")
        acct.apply_funding_payments(payments, emit=not first)
        self.counters["reconciles"] += 1

    async def _resolve_lookups(self, force: bool = False) -> None:
        """Ask the indexer (``GET /v4/orders/{id}``) about each order in ``account.lookups``.

        A row found is applied. An order the indexer does not know is EXPIRED once its
        good-til-block (by the indexer's own height) or good-til-block-time has passed: the
        chain can no longer hold it, so it never existed or is gone. Otherwise it is asked
        again after ``reconcile_interval_s`` (or at once with ``force``).
        """
        acct = self.account
        now = time.monotonic()
        for cid in sorted(acct.lookups):
            info = acct.orders.get(cid)
            if info is None or info.status.is_terminal:
                acct.lookups.discard(cid)
                self._lookup_at.pop(cid, None)
                continue
            if not force and self._lookup_at.get(cid, 0.0) > now:
                continue
            self._lookup_at[cid] = now + self.settings.reconcile_interval_s
            row = await self.rest.order(info.exchange_order_id) if info.exchange_order_id else None
            self.counters["order_lookups"] += 1
            if row is not None:
                acct._order_row(row)
            info = acct.orders.get(cid)
            if info is None or info.status.is_terminal:
                acct.lookups.discard(cid)
                self._lookup_at.pop(cid, None)
                continue
            if row is None and acct.lifetime_passed(cid, acct.height, self._now_ns() // NS - GTBT_MARGIN_S):
                why = acct.unknown.pop(cid, None)
                acct.lookups.discard(cid)
                self._lookup_at.pop(cid, None)
                acct.mark(cid, OrderStatus.EXPIRED,
                          "good-til passed and the indexer does not know the order"
                          + (f" (its broadcast ended: {why}; it never reached the venue)" if why else ""))

    async def _maintenance(self) -> None:
        s = self.settings
        next_reconcile = time.monotonic() + s.reconcile_interval_s
        hour = 3600 * NS
        next_funding_ns = (self._now_ns() // hour + 1) * hour + 30 * NS
        failures = 0
        while True:
            try:
                await asyncio.wait_for(self._reconcile_now.wait(), timeout=min(1.0, s.reconcile_interval_s / 2))
            except asyncio.TimeoutError:
                pass
            now = time.monotonic()
            if self._height is not None:
                self.account.expire_short_term(self._height)
            if self.account.lookups:
                try:
                    await self._resolve_lookups()
                except asyncio.CancelledError:
                    raise
                except ExchangeError as exc:
                    logger.warning(f"dYdX order look-up failed ({exc}); retrying")
            due = self._reconcile_now.is_set() or now >= next_reconcile or self._now_ns() >= next_funding_ns
            if not due:
                continue
            self._reconcile_now.clear()
            if self._now_ns() >= next_funding_ns:
                next_funding_ns += hour
            try:
                await self._reconcile()
                failures = 0
                next_reconcile = time.monotonic() + s.reconcile_interval_s
            except asyncio.CancelledError:
                raise
            except ExchangeError as exc:
                failures += 1
                self.counters["reconcile_failures"] += 1
                logger.warning(f"dYdX account reconciliation failed ({exc}); retrying")
                next_reconcile = time.monotonic() + min(s.reconcile_interval_s, s.retry_base_s * 2 ** min(failures, 6))
