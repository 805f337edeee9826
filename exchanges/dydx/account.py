"""Account state from the ``v4_subaccounts`` stream, reconciled with REST.

:class:`AccountState` folds the subaccount channel (``subscribed`` snapshot:
``{subaccount, orders, blockHeight}``; updates: ``{orders?, fills?,
perpetualPositions?, assetPositions?, transfers?, blockHeight}``; shapes in
``indexer/packages/postgres/src/types/websocket-message-types.ts``) and the REST
endpoints (``/addresses/{a}/subaccountNumber/{n}``, ``/orders``, ``/fills``,
``/fundingPayments``) into one view and emits, through ``emit`` (called on the event
loop), :class:`~perpbot.core.model.OrderUpdate`, :class:`~perpbot.core.model.Fill` and
:class:`~perpbot.core.model.FundingPayment`.

- Order status (indexer names -> :class:`~perpbot.core.model.OrderStatus`): OPEN (or
  PARTIALLY_FILLED when something filled), BEST_EFFORT_OPENED -> OPEN, FILLED,
  CANCELED (EXPIRED when ``removalReason`` says so), BEST_EFFORT_CANCELED, UNTRIGGERED.
  A short-term order still open once the height passed its good-til-block is gone:
  EXPIRED (or CANCELED after a best-effort cancel).
- An indexer order row is ours only when its full chain OrderId (subaccount, dYdX client
  id, order flags, clob pair; the indexer's order ``id`` is a uuid of exactly these) is one
  the :class:`~perpbot.exchanges.dydx.client_ids.ClientIdStore` allocated. Orders other
  clients placed on the subaccount live apart in :attr:`AccountState.foreign`, keyed by
  the indexer id: they are never reported as, cancelled as, or merged into the bot's orders.
- A STATEFUL post-only order removed as ``BEST_EFFORT_CANCELED`` with reason
  ``POST_ONLY_WOULD_CROSS`` is final (CANCELED; chain ``x/clob/memclob/memclob.go``); any
  other ``BEST_EFFORT_CANCELED`` of ours is queued in :attr:`AccountState.lookups` for the
  exchange to ask the indexer (``GET /v4/orders/{id}``), and a short-term one also ends
  at its good-til-block.
- An order whose broadcast reply was lost is in :attr:`AccountState.unknown` (PENDING)
  until a row for it arrives.
- Fills are deduplicated by the indexer's fill id (stream and REST); fills that
  existed before :meth:`AccountState.set_baseline` are history (``get_fills_since``),
  not new events. ``fee`` is USD paid (negative: rebate); ``liquidity`` MAKER/TAKER.
- Funding payments come from REST (``payment`` > 0 received), deduplicated by market
  and height.
- Balance follows the indexer's formula (comlink ``calculateEquityAndFreeCollateral``):
  equity = USDC + sum(size * oracle); free collateral = equity - sum(|size| * oracle *
  IMF); maintenance = sum(|size| * oracle * MMF), with the latest oracle prices.
"""

from __future__ import annotations

import uuid
from collections import deque
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping

from loguru import logger

from perpbot.core.model import (
    ZERO,
    Balance,
    Fill,
    FundingPayment,
    Liquidity,
    Market,
    OrderInfo,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Position,
    Side,
    TimeInForce,
)
from perpbot.exchanges.dydx.client_ids import ClientIdStore
from perpbot.exchanges.dydx.parser import D, parse_iso_ns

#: comlink/postgres uuid namespace (indexer ``packages/postgres/src/helpers/uuid.ts``)
INDEXER_UUID_NAMESPACE = uuid.UUID("0f9da948-a6fb-4c45-9edc-4685c3f3317d")
VENUE = "dydx"
_LIQUIDATION_TYPES = {"LIQUIDATED", "LIQUIDATION", "DELEVERAGED", "OFFSETTING"}
_TYPE_MAP = {
    "LIMIT": OrderType.LIMIT,
    "MARKET": OrderType.MARKET,
    "STOP_LIMIT": OrderType.STOP_LIMIT,
    "STOP_MARKET": OrderType.STOP_MARKET,
    "TAKE_PROFIT": OrderType.TAKE_PROFIT_LIMIT,
    "TAKE_PROFIT_LIMIT": OrderType.TAKE_PROFIT_LIMIT,
    "TAKE_PROFIT_MARKET": OrderType.TAKE_PROFIT_MARKET,
}
_TIF_MAP = {"IOC": TimeInForce.IOC, "POST_ONLY": TimeInForce.POST_ONLY, "GTT": TimeInForce.GTT,
            "FOK": TimeInForce.IOC}


def subaccount_uuid(address: str, number: int) -> str:
    """The indexer's ``subaccountId`` for ``address/number``."""
    return str(uuid.uuid5(INDEXER_UUID_NAMESPACE, f"{address}-{int(number)}"))


def order_uuid(address: str, number: int, client_id: int, clob_pair_id: int, flags: int) -> str:
    """The indexer's order ``id`` for a chain OrderId (checked against recorded payloads)."""
    sub = subaccount_uuid(address, number)
    return str(uuid.uuid5(INDEXER_UUID_NAMESPACE, f"{sub}-{int(client_id)}-{int(clob_pair_id)}-{int(flags)}"))


def map_status(status: str, removal_reason: str | None, filled: Decimal) -> OrderStatus | None:
    """Indexer order status -> :class:`OrderStatus` (None for an unknown status)."""
    if status == "OPEN":
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.OPEN
    if status == "BEST_EFFORT_OPENED":
        return OrderStatus.OPEN
    if status == "FILLED":
        return OrderStatus.FILLED
    if status == "CANCELED":
        if removal_reason and "EXPIRED" in removal_reason:
            return OrderStatus.EXPIRED
        return OrderStatus.CANCELED
    if status == "BEST_EFFORT_CANCELED":
        return OrderStatus.BEST_EFFORT_CANCELED
    if status == "UNTRIGGERED":
        return OrderStatus.UNTRIGGERED
    return None


class _Bounded:
    """A set that forgets its oldest members beyond ``maxlen``."""

    def __init__(self, maxlen: int):
        self._q: deque = deque()
        self._s: set = set()
        self.maxlen = maxlen

    def add(self, item) -> bool:
        if item in self._s:
            return False
        self._s.add(item)
        self._q.append(item)
        if len(self._q) > self.maxlen:
            self._s.discard(self._q.popleft())
        return True

    def __contains__(self, item) -> bool:
        return item in self._s


class AccountState:
    """The subaccount as the stream and REST describe it.

    :param ids: the client-id store (dYdX id <-> our id, order metadata).
    :param address: / ``subaccount``: the subaccount.
    :param market_of: ``ticker -> Market | None`` (current parameters).
    :param oracle_of: ``ticker -> Decimal | None`` (current oracle price, USD).
    :param emit: called with each account event (on the event loop).
    :param now_ns: clock.
    """

    def __init__(self, ids: ClientIdStore, address: str, subaccount: int, *,
                 market_of: Callable[[str], Market | None], oracle_of: Callable[[str], Decimal | None],
                 emit: Callable[[Any], None], now_ns: Callable[[], int]):
        self.ids = ids
        self.address = address
        self.subaccount = subaccount
        self.market_of = market_of
        self.oracle_of = oracle_of
        self.emit = emit
        self.now_ns = now_ns
        self.subaccount_id = subaccount_uuid(address, subaccount)
        self.orders: dict[int, OrderInfo] = {}
        self.order_rows: dict[int, dict] = {}  # our id -> latest indexer row (gtb etc.)
        self._uuid_to_id: dict[str, int] = {}
        #: orders of other clients on this subaccount, by indexer order id (their own namespace:
        #: never keyed by, reported as, or mistaken for one of our client ids)
        self.foreign: dict[str, OrderInfo] = {}
        self.order_rows_foreign: dict[str, dict] = {}
        #: our orders whose broadcast outcome is unknown (reply lost): our id -> why
        self.unknown: dict[int, str] = {}
        #: our orders to look up by id on the indexer (``GET /v4/orders/{id}``)
        self.lookups: set[int] = set()
        self.positions: dict[str, Position] = {}
        self.usdc: Decimal = ZERO
        self.indexer_equity: Decimal | None = None
        self.indexer_free_collateral: Decimal | None = None
        self.fills: deque[Fill] = deque(maxlen=10_000)
        self._fill_ids = _Bounded(50_000)
        self._funding_keys = _Bounded(10_000)
        self.height: int | None = None
        self.snapshot_received = False
        self.stats = {"order_updates": 0, "fills": 0, "funding_payments": 0, "bad_rows": 0, "foreign_orders": 0}
        for our, meta in ids.orders.items():
            self._remember(our, meta)

    # ------------------------------------------------------------------ ids

    def _remember(self, our: int, meta: Mapping[str, Any]) -> None:
        try:
            self._uuid_to_id[order_uuid(self.address, self.subaccount, int(meta["dydx_id"]), int(meta["clob"]),
                                        int(meta["flags"]))] = our
        except (KeyError, TypeError, ValueError):
            pass

    def track_new_order(self, our: int, info: OrderInfo) -> None:
        """Our order was just accepted by CheckTx: PENDING until the stream confirms it."""
        meta = self.ids.get(our)
        if meta is not None:
            self._remember(our, meta)
        self.orders[our] = info

    def _resolve(self, row: Mapping[str, Any]) -> tuple[int | None, str]:
        """``(our client id or None, indexer order id)`` for an indexer order row.

        An order is ours only when its FULL chain OrderId matches one we placed: subaccount,
        dYdX client id, order flags and clob pair (chain ``proto/dydxprotocol/clob/order.proto``
        ``OrderId``), which the indexer's order id (a uuid of exactly those, comlink
        ``OrderTable.uuid``) encodes. A row without ``id`` gets it computed from its fields.

        :raises KeyError: for a row with neither ``id`` nor ``clientId``/``clobPairId``.
        """
        oid = row.get("id")
        if not oid:
            sub = row.get("subaccountId")
            if sub is not None and sub != self.subaccount_id:
                raise KeyError(f"subaccountId {sub} of another subaccount")
            oid = order_uuid(self.address, self.subaccount, int(row["clientId"]), int(row["clobPairId"]),
                             int(row.get("orderFlags") or 0))
        oid = str(oid)
        if oid in self._uuid_to_id:
            return self._uuid_to_id[oid], oid
        cid = row.get("clientId")
        if cid is not None and row.get("clobPairId") is not None and row.get("orderFlags") is not None:
            our = self.ids.our_id(int(cid))
            meta = self.ids.get(our) if our is not None else None
            if meta is not None and order_uuid(self.address, self.subaccount, int(cid), int(meta["clob"]),
                                               int(meta["flags"])) == oid:
                self._uuid_to_id[oid] = our
                return our, oid
        if cid is None and row.get("id") is None:
            raise KeyError("clientId")
        return None, oid

    # ------------------------------------------------------------------ stream

    def on_message(self, msg: Mapping[str, Any]) -> None:
        """One ``v4_subaccounts`` message (``subscribed``, ``channel_data`` or batch)."""
        typ = msg.get("type")
        contents = msg.get("contents")
        if typ == "subscribed":
            self.apply_snapshot(contents or {})
            return
        items = contents if typ == "channel_batch_data" else [contents]
        for c in items:
            if c:
                self.apply_update(c)

    def apply_snapshot(self, contents: Mapping[str, Any]) -> None:
        sub = contents.get("subaccount") or {}
        if sub:
            self.apply_subaccount(sub)
        for row in contents.get("orders") or ():
            self._order_row(row)
        self._height(contents.get("blockHeight"))
        self.snapshot_received = True

    def apply_update(self, c: Mapping[str, Any]) -> None:
        self._height(c.get("blockHeight"))
        for row in c.get("orders") or ():
            self._order_row(row)
        for row in c.get("fills") or ():
            self._fill_row(row, from_rest=False)
        for row in c.get("perpetualPositions") or ():
            self._position_row(row)
        for row in c.get("assetPositions") or ():
            self._asset_row(row)

    def _height(self, h: Any) -> None:
        if h is not None:
            try:
                h = int(h)
            except (TypeError, ValueError):
                return
            if self.height is None or h > self.height:
                self.height = h

    # -- orders -------------------------------------------------------------------

    def _order_row(self, row: Mapping[str, Any]) -> None:
        try:
            self._order_row_inner(row)
        except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
            self.stats["bad_rows"] += 1
            logger.warning(f"dYdX order row with an unexpected shape ignored ({type(exc).__name__}: {exc})")

    def _order_row_inner(self, row: Mapping[str, Any]) -> None:
        our, oid = self._resolve(row)
        if our is None:
            self._foreign_row(oid, row)
            return
        prev = self.orders.get(our)
        prev_row = self.order_rows.get(our, {})
        merged = {**prev_row, **{k: v for k, v in row.items() if v is not None}}
        self.order_rows[our] = merged
        meta = self.ids.get(our)
        ticker = merged.get("ticker") or (meta or {}).get("ticker") or (prev.ticker if prev else "")
        filled = D(merged["totalFilled"]) if merged.get("totalFilled") is not None else (
            prev.filled_size if prev else ZERO)
        status = map_status(str(merged.get("status", "")), merged.get("removalReason"), filled)
        if status is None:
            logger.warning(f"dYdX order {our}: unknown status {merged.get('status')!r}")
            return
        if self.unknown.pop(our, None) is not None:
            logger.info(f"dYdX order {our}: the venue shows it ({merged.get('status')}); its outcome is known")
        if status is OrderStatus.BEST_EFFORT_CANCELED:
            flags = int(merged.get("orderFlags", (meta or {}).get("flags", 0)) or 0)
            if flags != 0 and "POST_ONLY_WOULD_CROSS" in str(merged.get("removalReason") or ""):
                # chain rule: a STATEFUL post-only order that would cross is removed from state by an
                # OrderRemoval(REMOVAL_REASON_POST_ONLY_WOULD_CROSS_MAKER_ORDER) operation
                # (protocol/x/clob/memclob/memclob.go PlaceOrder; proto/dydxprotocol/clob/
                # order_removals.proto): it can never rest, so this is final
                status = OrderStatus.CANCELED
            elif not (prev is not None and prev.status.is_terminal):
                self.lookups.add(our)  # best effort: ask the indexer for the order's final word
        if prev is not None and prev.status.is_terminal and not status.is_terminal:
            return  # a late row must not reopen a finished order
        size = D(merged["size"]) if merged.get("size") is not None else (
            prev.size if prev else D((meta or {}).get("size", "0")))
        price = D(merged["price"]) if merged.get("price") is not None else (prev.price if prev else None)
        side = Side.parse(merged["side"]) if merged.get("side") else (
            prev.side if prev else Side.parse((meta or {}).get("side", "BUY")))
        info = OrderInfo(
            client_id=our,
            ticker=ticker,
            side=side,
            size=size,
            price=price,
            status=status,
            order_type=_TYPE_MAP.get(str(merged.get("type", "LIMIT")), OrderType.LIMIT),
            filled_size=filled,
            reduce_only=bool(merged.get("reduceOnly", False)),
            post_only=bool(merged.get("postOnly", False)),
            time_in_force=_TIF_MAP.get(str(merged.get("timeInForce", "GTT")), TimeInForce.GTT),
            tag=(meta or {}).get("tag", ""),
            created_ns=prev.created_ns if prev else int((meta or {}).get("created_ns", 0)),
            exchange_order_id=oid,
            venue=VENUE,
        )
        self.orders[our] = info
        if status.is_terminal:
            self.lookups.discard(our)
        self.ids.update(our, persist=status.is_terminal or (prev is None or prev.status != status),
                        status=status.value, gtb=int(merged.get("goodTilBlock") or (meta or {}).get("gtb") or 0))
        if prev is None or prev.status != status or prev.filled_size != filled:
            self.stats["order_updates"] += 1
            reason = str(merged.get("removalReason") or "")
            self.emit(OrderUpdate(our, ticker, status, self.now_ns(), filled_size=filled, reason=reason,
                                  venue=VENUE, tag=info.tag))

    def _foreign_row(self, oid: str, row: Mapping[str, Any]) -> None:
        """An order another client placed on this subaccount: kept by its indexer id, not reported
        to the bot (its dYdX client id may equal one of our client ids: another namespace)."""
        prev = self.foreign.get(oid)
        merged = {**(self.order_rows_foreign.get(oid, {})), **{k: v for k, v in row.items() if v is not None}}
        self.order_rows_foreign[oid] = merged
        filled = D(merged["totalFilled"]) if merged.get("totalFilled") is not None else ZERO
        status = map_status(str(merged.get("status", "")), merged.get("removalReason"), filled)
        if status is None:
            return
        if prev is None:
            self.stats["foreign_orders"] += 1
            (logger.debug if status.is_terminal else logger.info)(f"dYdX order {oid} (dYdX client id {merged.get('clientId')}, flags "
                        f"{merged.get('orderFlags')}, clob {merged.get('clobPairId')}) was not placed by this bot: "
                        f"kept apart, never cancelled or reported as the bot's")
        self.foreign[oid] = OrderInfo(
            client_id=int(merged.get("clientId") or 0), ticker=str(merged.get("ticker") or ""),
            side=Side.parse(merged["side"]) if merged.get("side") else Side.BUY,
            size=D(merged["size"]) if merged.get("size") is not None else ZERO,
            price=D(merged["price"]) if merged.get("price") is not None else None, status=status,
            order_type=_TYPE_MAP.get(str(merged.get("type", "LIMIT")), OrderType.LIMIT), filled_size=filled,
            reduce_only=bool(merged.get("reduceOnly", False)), post_only=bool(merged.get("postOnly", False)),
            time_in_force=_TIF_MAP.get(str(merged.get("timeInForce", "GTT")), TimeInForce.GTT), tag="external",
            exchange_order_id=oid, venue=VENUE,
        )

    def foreign_open_orders(self, ticker: str | None = None) -> list[OrderInfo]:
        """Open orders of other clients on this subaccount (``client_id`` is their dYdX client id)."""
        return [o for o in self.foreign.values()
                if not o.status.is_terminal and (ticker is None or o.ticker == ticker)]

    def mark_unknown(self, our: int, reason: str) -> None:
        """Our broadcast's reply was lost: the order stays PENDING, its outcome to be learnt."""
        if our in self.orders and not self.orders[our].status.is_terminal:
            self.unknown[our] = reason
            self.lookups.add(our)

    def lifetime_passed(self, our: int, height: int | None, now_s: int) -> bool:
        """True when the order's good-til-block (short-term: ``height > gtb``) or good-til-block-time
        (stateful: ``now_s > gtbt``) has passed, so the chain can no longer hold it
        (chain ``x/clob/keeper/orders.go``: expired orders are removed)."""
        meta = self.ids.get(our) or {}
        row = self.order_rows.get(our, {})
        flags = int(row.get("orderFlags", meta.get("flags", -1)) or 0)
        if flags == 0:
            gtb = int(row.get("goodTilBlock") or meta.get("gtb") or 0)
            return bool(gtb) and height is not None and height > gtb
        gtbt = int(meta.get("gtbt") or 0)
        return bool(gtbt) and now_s > gtbt

    def expire_short_term(self, height: int) -> None:
        """Short-term orders past their good-til-block are gone (no update may ever come).

        Orders whose broadcast outcome is unknown are left to the look-up by id (the
        exchange resolves them: a fill may have happened before the good-til-block)."""
        for our, info in list(self.orders.items()):
            if info.status.is_terminal or our in self.unknown:
                continue
            row = self.order_rows.get(our, {})
            meta = self.ids.get(our) or {}
            flags = int(row.get("orderFlags", meta.get("flags", -1)) or 0)
            gtb = int(row.get("goodTilBlock") or meta.get("gtb") or 0)
            if flags != 0 or gtb <= 0 or height <= gtb:
                continue
            status = OrderStatus.CANCELED if info.status is OrderStatus.BEST_EFFORT_CANCELED else OrderStatus.EXPIRED
            self.orders[our] = OrderInfo(**{**_fields(info), "status": status})
            self.ids.update(our, status=status.value)
            self.stats["order_updates"] += 1
            self.emit(OrderUpdate(our, info.ticker, status, self.now_ns(), filled_size=info.filled_size,
                                  reason=f"good-til-block {gtb} passed (height {height})", venue=VENUE,
                                  tag=info.tag))

    def mark(self, our: int, status: OrderStatus, reason: str = "") -> None:
        """Set an order's status locally (e.g. REJECTED by CheckTx) and tell the bot."""
        info = self.orders.get(our)
        self.ids.update(our, status=status.value)
        if info is None:
            return
        if info.status is status:
            return
        self.orders[our] = OrderInfo(**{**_fields(info), "status": status})
        self.emit(OrderUpdate(our, info.ticker, status, self.now_ns(), filled_size=info.filled_size,
                              reason=reason, venue=VENUE, tag=info.tag))

    def open_orders(self, ticker: str | None = None) -> list[OrderInfo]:
        return [
            o for o in self.orders.values()
            if not o.status.is_terminal and (ticker is None or o.ticker == ticker)
        ]

    # -- fills --------------------------------------------------------------------

    def fill_from_row(self, row: Mapping[str, Any]) -> Fill:
        """A :class:`Fill` from an indexer fill row (stream or REST); no state change.

        :raises KeyError, ValueError: for a row with an unexpected shape.
        """
        our = self._uuid_to_id.get(str(row.get("orderId", "")))
        if our is None:
            our, tag = -1, "external"
        else:
            tag = (self.ids.get(our) or {}).get("tag", "")
        return Fill(
            client_id=our,
            ticker=str(row.get("ticker") or row.get("market")),
            side=Side.parse(row["side"]),
            price=D(row["price"]),
            size=D(row["size"]),
            fee=D(row.get("fee") or "0"),
            liquidity=Liquidity.MAKER if row.get("liquidity") == "MAKER" else Liquidity.TAKER,
            ts_ns=parse_iso_ns(row["createdAt"]) if row.get("createdAt") else self.now_ns(),
            fill_id=str(row["id"]),
            venue=VENUE,
            tag=tag,
            liquidation=str(row.get("type", "")) in _LIQUIDATION_TYPES,
        )

    def _fill_row(self, row: Mapping[str, Any], *, from_rest: bool, emit: bool = True) -> Fill | None:
        try:
            fid = str(row["id"])
            if fid in self._fill_ids:
                return None
            fill = self.fill_from_row(row)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            self.stats["bad_rows"] += 1
            logger.warning(f"dYdX fill row with an unexpected shape ignored ({type(exc).__name__}: {exc})")
            return None
        self._fill_ids.add(fill.fill_id)
        self.fills.append(fill)
        if emit:
            self.stats["fills"] += 1
            self.emit(fill)
        return fill

    def apply_rest_fills(self, rows: Iterable[Mapping[str, Any]], *, emit: bool) -> int:
        """REST fills (newest first): unseen ones are stored and, with ``emit``, reported."""
        n = 0
        for row in sorted(rows, key=lambda r: str(r.get("createdAt", ""))):
            if self._fill_row(row, from_rest=True, emit=emit) is not None:
                n += 1
        return n

    # -- positions and balance -------------------------------------------------------

    def _position_row(self, row: Mapping[str, Any]) -> None:
        try:
            ticker = str(row.get("market") or row.get("ticker"))
            if str(row.get("status", "OPEN")) != "OPEN":
                self.positions.pop(ticker, None)
                return
            size = abs(D(row["size"]))
            if str(row.get("side", "LONG")) == "SHORT":
                size = -size
            if size == 0:
                self.positions.pop(ticker, None)
                return
            self.positions[ticker] = Position(
                ticker=ticker,
                size=size,
                entry_price=D(row.get("entryPrice") or "0"),
                realized_pnl=D(row.get("realizedPnl") or "0"),
                funding=D(row.get("netFunding") or "0"),
                venue=VENUE,
            )
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            self.stats["bad_rows"] += 1
            logger.warning(f"dYdX position row with an unexpected shape ignored ({type(exc).__name__}: {exc})")

    def _asset_row(self, row: Mapping[str, Any]) -> None:
        if str(row.get("symbol", "USDC")) != "USDC":
            return
        try:
            size = abs(D(row["size"]))
        except (KeyError, ArithmeticError, ValueError):
            self.stats["bad_rows"] += 1
            return
        self.usdc = -size if str(row.get("side", "LONG")) == "SHORT" else size

    def apply_subaccount(self, sub: Mapping[str, Any]) -> None:
        """A REST/snapshot subaccount: USDC, open positions, indexer equity and free collateral."""
        assets = sub.get("assetPositions") or {}
        if "USDC" in assets:
            self._asset_row(assets["USDC"])
        elif not assets:
            self.usdc = ZERO
        opened = sub.get("openPerpetualPositions") or {}
        for t in list(self.positions):
            if t not in opened:
                del self.positions[t]
        for t, row in opened.items():
            self._position_row({"market": t, **row})
        try:
            self.indexer_equity = D(sub["equity"]) if sub.get("equity") is not None else None
            self.indexer_free_collateral = D(sub["freeCollateral"]) if sub.get("freeCollateral") is not None else None
        except ArithmeticError:
            pass
        self._height(sub.get("latestProcessedBlockHeight"))

    def balance(self) -> Balance:
        """USD amounts; see the module docstring for the formula."""
        equity = self.usdc
        imr = ZERO
        mmr = ZERO
        complete = True
        for t, p in self.positions.items():
            px = self.oracle_of(t)
            m = self.market_of(t)
            if px is None or m is None:
                complete = False
                continue
            equity += p.size * px
            notional = abs(p.size) * px
            imr += notional * m.initial_margin_fraction
            mmr += notional * m.maintenance_margin_fraction
        if not complete and self.indexer_equity is not None:
            equity = self.indexer_equity
            free = self.indexer_free_collateral if self.indexer_free_collateral is not None else equity - imr
        else:
            free = equity - imr
        return Balance(collateral=self.usdc, equity=equity, free_collateral=free, initial_margin=imr,
                       maintenance_margin=mmr, ts_ns=self.now_ns())

    # -- funding --------------------------------------------------------------------

    def apply_funding_payments(self, rows: Iterable[Mapping[str, Any]], *, emit: bool) -> int:
        n = 0
        for row in sorted(rows, key=lambda r: str(r.get("createdAt", ""))):
            try:
                ticker = str(row.get("ticker") or row.get("market"))
                key = (ticker, str(row.get("createdAtHeight") or row.get("createdAt")))
                if key in self._funding_keys:
                    continue
                size = abs(D(row.get("size") or "0"))
                if str(row.get("side", "LONG")) == "SHORT":
                    size = -size
                pay = FundingPayment(
                    ticker=ticker,
                    ts_ns=parse_iso_ns(row["createdAt"]) if row.get("createdAt") else self.now_ns(),
                    size=size,
                    oracle_price=D(row.get("oraclePrice") or row.get("price") or "0"),
                    rate_1h=D(row.get("rate") or "0"),
                    amount=D(row["payment"]),
                    venue=VENUE,
                )
            except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                self.stats["bad_rows"] += 1
                logger.warning(f"dYdX funding payment row ignored ({type(exc).__name__}: {exc})")
                continue
            self._funding_keys.add(key)
            if emit:
                n += 1
                self.stats["funding_payments"] += 1
                self.emit(pay)
        return n


def _fields(info: OrderInfo) -> dict:
    import attrs

    return attrs.asdict(info, recurse=False)
