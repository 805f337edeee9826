"""The order path: validate, convert, sign and broadcast; cancel one or many.

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
  (``GET /v4/orders/{id}``, :mod:`perpbot.exchanges.dydx.outcomes`) shows it, or until its
  good-til-block / good-til-block-time has passed for certain while the indexer does not
  know it (then EXPIRED: it never existed).
- A cancel's result carries the venue's order status: FILLED (a failed cancel) when the
  order filled first, CANCELED/EXPIRED when the venue says so, else BEST_EFFORT_CANCELED
  (sent and accepted by CheckTx, final status to come from the stream). Short-term
  orders are cancelled in one ``MsgBatchCancel`` (v4-chain
  ``proto/dydxprotocol/clob/tx.proto`` ``MsgBatchCancel``, ``OrderBatch``). A
  short-term cancel's good-til-block is never below the order's own.

Imports :mod:`perpbot.core` (errors, model) and the dYdX account/client-id/config/node/
orders/outcomes types only.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Awaitable, Callable, Iterable

from loguru import logger

from perpbot.core.errors import InvalidOrder, TemporaryExchangeError
from perpbot.core.model import (
    MarginMode,
    Market,
    OrderInfo,
    OrderRequest,
    OrderResult,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from perpbot.exchanges.dydx.account import AccountState, order_uuid
from perpbot.exchanges.dydx.client_ids import ClientIdStore
from perpbot.exchanges.dydx.config import DydxSettings
from perpbot.exchanges.dydx.node import NodeGateway, OutcomeUnknown
from perpbot.exchanges.dydx.orders import SHORT_TERM, build_order_proto, order_id_proto, plan_order
from perpbot.exchanges.dydx.outcomes import OutcomeResolver

NS = 1_000_000_000


class OrderPath:
    """Places and cancels the bot's orders on one subaccount (see the module docstring).

    Built by :class:`~perpbot.exchanges.dydx.exchange.DydxExchange` once connected.

    :param settings: ``subaccount``, ``short_term_blocks``, ``short_term_max_s``,
        ``default_good_til_s``, ``market_slippage``.
    :param address: the subaccount's owner (bech32).
    :param node: signs and broadcasts.
    :param ids: the client-id store (dYdX id allocation, order metadata).
    :param account: the account state (orders registered PENDING before the broadcast).
    :param resolver: reports a cancel's outcome from the venue's order status.
    :param counters: the exchange's counters (``placed``, ``rejected``, ``canceled``,
        ``outcome_unknown``).
    :param market: ``ticker -> Market``; raises :class:`InvalidOrder` for an unknown market.
    :param touch: ``(ticker, side) -> price | None``: the best opposite price (USD) for a
        market order's worst price, None when the book is unknown or stale.
    :param oracle: ``ticker -> oracle price (USD) | None``.
    :param height: the latest known block height (may be None or old).
    :param current_height: the block height, refreshed when old (short-term orders).
    :param now_ns: clock (ns).
    """

    def __init__(self, settings: DydxSettings, address: str, node: NodeGateway, ids: ClientIdStore,
                 account: AccountState, resolver: OutcomeResolver, *, counters: dict[str, int],
                 market: Callable[[str], Market], touch: Callable[[str, Side], Decimal | None],
                 oracle: Callable[[str], Decimal | None], height: Callable[[], int | None],
                 current_height: Callable[[], Awaitable[int]], now_ns: Callable[[], int]):
        self.settings = settings
        self.address = address
        self.node = node
        self.ids = ids
        self.account = account
        self.resolver = resolver
        self.counters = counters
        self.market = market
        self.touch = touch
        self.oracle = oracle
        self.height = height
        self.current_height = current_height
        self.now_ns = now_ns
        #: isolated markets (set by the exchange, :class:`~perpbot.exchanges.dydx.isolated.IsolatedRouter`):
        #: ``async (order, market, plan) -> (subaccount number, error or "", moved collateral?)``;
        #: None: every order goes to ``settings.subaccount`` and isolated margin is refused
        self.route: Callable[..., Awaitable[tuple[int, str, bool]]] | None = None
        #: called with the subaccount once an order routed there is registered (ends the router's
        #: hold on a freshly funded child); None: nothing to tell
        self.route_done: Callable[[int], None] | None = None

    async def place(self, order: OrderRequest) -> OrderResult:
        """Validate, convert, sign and broadcast ``order``.

        :returns: success (status PENDING/OPEN/...; PENDING with ``error="outcome unknown: ..."``
            after a lost reply) or a failed result, status REJECTED (CheckTx refused it, or
            it was never sent).
        :raises InvalidOrder: the order breaks a market rule (size below the minimum,
            reduce-only without IOC, isolated margin, a client id already used, ...);
            nothing was sent.
        :raises TemporaryExchangeError: the block height could not be read; nothing was sent.
        """
        s = self.settings
        market = self.market(order.ticker)
        if order.margin_mode is not MarginMode.CROSS and self.route is None:
            raise InvalidOrder(
                f"{order.margin_mode.value} margin is not supported by the dydx exchange client yet "
                f"(orders go to subaccount {s.subaccount}, cross margin)", client_id=order.client_id,
            )
        short = order.order_type is OrderType.MARKET or order.time_in_force is TimeInForce.IOC or (
            not order.order_type.is_conditional and order.good_til_s is not None
            and order.good_til_s <= s.short_term_max_s
        )
        height = await self.current_height() if short else self.height()
        best = self.touch(order.ticker, order.side)
        now_s = self.now_ns() // NS
        plan = plan_order(
            order, market, height=height, now_s=now_s, short_term_blocks=s.short_term_blocks,
            short_term_max_s=s.short_term_max_s, default_good_til_s=s.default_good_til_s,
            slippage=s.market_slippage, best=best, oracle=self.oracle(order.ticker),
        )
        sub = s.subaccount
        if self.route is not None:
            sub, error, moved = await self.route(order, market, plan)
            if error:
                self.counters["rejected"] += 1
                return OrderResult(False, order.client_id, order.ticker, OrderStatus.REJECTED, error=error)
            if moved:  # the transfer took blocks: a short-term order's good-til-block starts again
                height = await self.current_height() if short else self.height()
                plan = plan_order(
                    order, market, height=height, now_s=self.now_ns() // NS, short_term_blocks=s.short_term_blocks,
                    short_term_max_s=s.short_term_max_s, default_good_til_s=s.default_good_til_s,
                    slippage=s.market_slippage, best=self.touch(order.ticker, order.side),
                    oracle=self.oracle(order.ticker),
                )
        meta = {
            "sub": sub, "ticker": order.ticker, "clob": market.clob_pair_id, "flags": plan.flags, "side": plan.side.value,
            "size": str(plan.size), "price": str(plan.price), "gtb": plan.good_til_block,
            "gtbt": plan.good_til_block_time, "tag": order.tag, "created_ns": self.now_ns(),
            "type": order.order_type.value, "reduce_only": plan.reduce_only, "tif": plan.time_in_force.value,
        }
        try:
            dydx_id = await self.ids.allocate_async(order.client_id, meta)
        except ValueError as exc:
            raise InvalidOrder(str(exc), client_id=order.client_id) from None
        proto = build_order_proto(plan, owner=self.address, subaccount=sub, client_id=dydx_id,
                                  clob_pair_id=market.clob_pair_id)
        uid = order_uuid(self.address, sub, dydx_id, market.clob_pair_id, plan.flags)
        self.account.track_new_order(order.client_id, OrderInfo(
            client_id=order.client_id, ticker=order.ticker, side=plan.side, size=plan.size, price=plan.price,
            status=OrderStatus.PENDING, order_type=order.order_type, reduce_only=plan.reduce_only,
            post_only=plan.time_in_force is TimeInForce.POST_ONLY, time_in_force=plan.time_in_force,
            tag=order.tag, created_ns=meta["created_ns"], exchange_order_id=uid, venue="dydx",
        ))
        if self.route_done is not None:
            self.route_done(sub)
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
            self.account.forget(order.client_id, OrderStatus.REJECTED)
            self.counters["rejected"] += 1
            return OrderResult(False, order.client_id, order.ticker, OrderStatus.REJECTED, error=str(exc))
        except BaseException:
            # anything else (cancellation while sending, a bug): the fate is unknown, keep it pending
            self.account.mark_unknown(order.client_id, "interrupted while sending")
            raise
        if not tx.ok:
            self.account.forget(order.client_id, OrderStatus.REJECTED)
            self.counters["rejected"] += 1
            return OrderResult(False, order.client_id, order.ticker, OrderStatus.REJECTED,
                               error=f"CheckTx code {tx.code}: {tx.raw_log}")
        self.counters["placed"] += 1
        logger.info(
            f"dYdX order {order.client_id} (dYdX id {dydx_id}, {'stateful' if plan.stateful else 'short-term'}"
            f"{f', subaccount {sub}' if sub != s.subaccount else ''}) "
            f"{plan.side.value} {plan.size} {order.ticker} @ {plan.price} {plan.time_in_force.value}"
            + (f" gtb {plan.good_til_block}" if plan.good_til_block else f" gtbt {plan.good_til_block_time}")
            + f": accepted (tx {tx.txhash[:12]})"
        )
        info = self.account.orders.get(order.client_id)
        status = info.status if info is not None else OrderStatus.PENDING
        return OrderResult(True, order.client_id, order.ticker, status,
                           filled_size=info.filled_size if info is not None else Decimal(0),
                           exchange_order_id=uid)

    def subaccount_of(self, client_id: int) -> int | None:
        """The subaccount one of OUR orders was sent to (None for any other id)."""
        meta = self.ids.get(client_id)
        return None if meta is None else int(meta.get("sub", self.settings.subaccount))

    def order_key(self, client_id: int) -> tuple[int, int, int, int, int, str] | None:
        """``(dydx id, clob, flags, gtb, gtbt, ticker)`` of one of OUR orders (None for any other
        id: orders of other clients are not addressable by the bot's client ids)."""
        meta = self.ids.get(client_id)
        if meta is None:
            return None
        return (int(meta["dydx_id"]), int(meta["clob"]), int(meta["flags"]), int(meta.get("gtb") or 0),
                int(meta.get("gtbt") or 0), str(meta.get("ticker", "")))

    async def cancel(self, client_id: int, ticker: str) -> OrderResult:
        """Cancel one order by our client id (short-term: best effort, gossip only).

        An unknown id is a failed result (REJECTED); a terminal order reports its status; an
        order whose good-til has passed is EXPIRED without a broadcast; a transport failure
        or a CheckTx refusal is a failed result with the order's current status.
        """
        key = self.order_key(client_id)
        if key is None:
            return OrderResult(False, client_id, ticker, OrderStatus.REJECTED, error=f"unknown order {client_id}")
        dydx_id, clob, flags, gtb, gtbt, t = key
        info = self.account.orders.get(client_id)
        if info is not None and info.status.is_terminal:
            return OrderResult(True, client_id, t, info.status, filled_size=info.filled_size)
        oid = order_id_proto(owner=self.address, subaccount=self.subaccount_of(client_id), client_id=dydx_id,
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
                now_s = self.now_ns() // NS
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
        return await self.resolver.after_cancel(client_id, t, status)

    async def batch_cancel(self, client_ids: Iterable[int], cancel_one: Callable[[int, str], Awaitable[OrderResult]]
                           ) -> list[OrderResult]:
        """Cancel short-term orders in ONE ``MsgBatchCancel``; stateful ones one by one with
        ``cancel_one(client_id, ticker)``. One result per id (unknown ids: failed, REJECTED;
        a failed batch: every short-term result failed with the error, status OPEN)."""
        from v4_proto.dydxprotocol.clob.tx_pb2 import OrderBatch
        from v4_proto.dydxprotocol.subaccounts.subaccount_pb2 import SubaccountId

        results: list[OrderResult] = []
        short: dict[tuple[int, int], list[tuple[int, int, str]]] = {}
        for cid in client_ids:
            key = self.order_key(cid)
            if key is None:
                results.append(OrderResult(False, cid, "", OrderStatus.REJECTED, error=f"unknown order {cid}"))
                continue
            dydx_id, clob, flags, gtb, gtbt, t = key
            if flags == SHORT_TERM:
                short.setdefault((self.subaccount_of(cid), clob), []).append((cid, dydx_id, t))
            else:
                results.append(await cancel_one(cid, t))
        if short:
            h = await self.current_height()
            for number in sorted({n for n, _ in short}):  # one MsgBatchCancel per subaccount
                mine = {clob: rows for (n, clob), rows in short.items() if n == number}
                batches = [OrderBatch(clob_pair_id=clob, client_ids=[d for _, d, _ in rows]) for clob, rows in mine.items()]
                sub = SubaccountId(owner=self.address, number=number)
                try:
                    tx = await self.node.batch_cancel(sub, batches, h + self.settings.short_term_blocks)
                    error = "" if tx.ok else f"CheckTx code {tx.code}: {tx.raw_log}"
                except TemporaryExchangeError as exc:
                    error = str(exc)
                if not error:
                    logger.info(f"dYdX batch cancel of {sum(len(r) for r in mine.values())} short-term order(s) "
                                f"of subaccount {number}: accepted")
                for rows in mine.values():
                    for cid, _, t in rows:
                        if error:
                            results.append(OrderResult(False, cid, t, OrderStatus.OPEN, error=error))
                        else:
                            self.counters["canceled"] += 1
                            results.append(OrderResult(True, cid, t, OrderStatus.BEST_EFFORT_CANCELED))
        return results
