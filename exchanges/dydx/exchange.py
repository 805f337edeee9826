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
  budget or the open breaker is a failed result too (nothing was sent); a transport
  failure raises :class:`~perpbot.core.errors.TemporaryExchangeError` (the order's fate is
  unknown until the stream or the next reconciliation tells).
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
from perpbot.exchanges.dydx.node import NodeGateway, NodeUnavailable, RateBudgetExceeded
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
        self.counters = {"placed": 0, "rejected": 0, "canceled": 0, "reconciles": 0, "reconcile_failures": 0}

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
            dydx_id = self.ids.allocate(order.client_id, meta)
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
        except (RateBudgetExceeded, NodeUnavailable) as exc:
            self._forget(order.client_id, OrderStatus.REJECTED)
            self.counters["rejected"] += 1
            return OrderResult(False, order.client_id, order.ticker, OrderStatus.REJECTED, error=str(exc))
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
        """An order that never reached the book: drop it from the open orders, keep the id burnt."""
        self.ids.update(client_id, status=status.value)
        self.account.orders.pop(client_id, None)

    def _order_key(self, client_id: int) -> tuple[int, int, int, int, int, str] | None:
        """``(dydx id, clob, flags, gtb, gtbt, ticker)`` of one of our (or an external) order."""
        meta = self.ids.get(client_id)
        if meta is not None:
            return (int(meta["dydx_id"]), int(meta["clob"]), int(meta["flags"]), int(meta.get("gtb") or 0),
                    int(meta.get("gtbt") or 0), str(meta.get("ticker", "")))
        info = self.account.orders.get(client_id)
        row = self.account.order_rows.get(client_id)
        if info is None or row is None or info.tag != "external":
            return None
        gtbt = 0
        if row.get("goodTilBlockTime"):
            from perpbot.exchanges.dydx.parser import parse_iso_ns

            gtbt = parse_iso_ns(str(row["goodTilBlockTime"])) // NS
        return (int(row["clientId"]), int(row["clobPairId"]), int(row.get("orderFlags") or 0),
                int(row.get("goodTilBlock") or 0), gtbt, info.ticker)

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
        except (RateBudgetExceeded, NodeUnavailable) as exc:
            return OrderResult(False, client_id, t, info.status if info else OrderStatus.OPEN, error=str(exc))
        if not tx.ok:
            return OrderResult(False, client_id, t, info.status if info else OrderStatus.OPEN,
                               error=f"CheckTx code {tx.code}: {tx.raw_log}")
        self.counters["canceled"] += 1
        logger.info(f"dYdX cancel of order {client_id} (dYdX id {dydx_id}) {t}: accepted (tx {tx.txhash[:12]})")
        return OrderResult(True, client_id, t, status)

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
            except (RateBudgetExceeded, NodeUnavailable) as exc:
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
        self._check_connected()
        return self.account.open_orders(ticker)

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
                    except (TypeError, ValueError):
                        pass

    def _on_ws_state(self, event: str, detail: str, recv_ns: int) -> None:
        if event == "connected" and self._reconcile_now is not None and self._connected:
            self._reconcile_now.set()  # catch up on what happened while the stream was down

    async def _reconcile(self, first: bool = False) -> None:
        s = self.settings
        acct = self.account
        sub = await self.rest.subaccount(self.address, s.subaccount)
        acct.apply_subaccount(sub)
        rows = await self.rest.orders(self.address, s.subaccount, status="OPEN,UNTRIGGERED,BEST_EFFORT_OPENED",
                                      limit=100)
        for row in rows:
            acct._order_row(row)
        seen_open = {r.get("id") for r in rows}
        stale_ours = [cid for cid, o in acct.orders.items()
                      if not o.status.is_terminal and o.exchange_order_id and o.exchange_order_id not in seen_open
                      and o.status is not OrderStatus.PENDING]
        if stale_ours:
            latest = await self.rest.orders(self.address, s.subaccount, limit=100, return_latest=True)
            by_id = {r.get("id"): r for r in latest}
            for cid in stale_ours:
                row = by_id.get(acct.orders[cid].exchange_order_id)
                if row is not None:
                    acct._order_row(row)
        if first:
            self.ids.reserve(int(r["clientId"]) for r in rows if r.get("clientId") is not None
                             and self.ids.our_id(int(r["clientId"])) is None)
        fills = await self.rest.fills(self.address, s.subaccount, limit=100)
        acct.apply_rest_fills(fills, emit=not first)
        try:
            payments = await self.rest.funding_payments(self.address, s.subaccount, limit=100)
        except ExchangeError as exc:  # an indexer without the endpoint: funding then comes from positions only
            payments = []
            if first:
                logger.warning(f"dYdX funding payments unavailable: {exc}")
        acct.apply_funding_payments(payments, emit=not first)
        self.counters["reconciles"] += 1

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
