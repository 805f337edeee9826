"""The subaccount's orders as the indexer reports them: ours, other clients', and the
ones whose fate is still unknown.

:class:`OrderRegistry` folds indexer order rows (stream ``orders`` and REST
``/v4/orders``, ``/v4/orders/{id}``; shape ``OrderSubaccountMessageContents`` in v4-chain
``indexer/packages/postgres/src/types/websocket-message-types.ts``) into
:class:`~perpbot.core.model.OrderInfo` and emits an
:class:`~perpbot.core.model.OrderUpdate` whenever the status or filled size (base units)
of one of OUR orders changes.

- Order status (indexer names -> :class:`~perpbot.core.model.OrderStatus`, :func:`map_status`):
  OPEN (or PARTIALLY_FILLED when something filled), BEST_EFFORT_OPENED -> OPEN, FILLED,
  CANCELED (EXPIRED when ``removalReason`` says so), BEST_EFFORT_CANCELED, UNTRIGGERED.
  A terminal order is never reopened by a late row.
- An indexer order row is ours only when its full chain OrderId (subaccount, dYdX client
  id, order flags, clob pair; v4-chain ``proto/dydxprotocol/clob/order.proto`` ``OrderId``)
  is one the :class:`~perpbot.exchanges.dydx.client_ids.ClientIdStore` allocated; the
  indexer's order ``id`` is a uuid of exactly these (:func:`order_uuid`). Orders other
  clients placed on the subaccount live apart in :attr:`OrderRegistry.foreign`, keyed by
  the indexer id: they are never reported as, cancelled as, or merged into the bot's orders.
- Unknown outcomes (issue 9): an order whose broadcast reply was lost is in
  :attr:`OrderRegistry.unknown` (still PENDING) until a row for it arrives; orders whose
  final word must be asked for by id are in :attr:`OrderRegistry.lookups` (the exchange's
  :class:`~perpbot.exchanges.dydx.outcomes.OutcomeResolver` asks ``GET /v4/orders/{id}``).
  A STATEFUL post-only order removed as ``BEST_EFFORT_CANCELED`` with reason
  ``POST_ONLY_WOULD_CROSS`` is final (CANCELED; v4-chain
  ``protocol/x/clob/memclob/memclob.go``); any other ``BEST_EFFORT_CANCELED`` of ours is
  queued for a look-up, and a short-term one also ends at its good-til-block
  (:meth:`OrderRegistry.expire_short_term`).

Imports :mod:`perpbot.core.model`, :mod:`perpbot.exchanges.dydx.client_ids` and
:mod:`perpbot.exchanges.dydx.values` only.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, Callable, Mapping

import attrs
from loguru import logger

from perpbot.core.model import ZERO, OrderInfo, OrderStatus, OrderType, OrderUpdate, Side, TimeInForce
from perpbot.exchanges.dydx.client_ids import ClientIdStore
from perpbot.exchanges.dydx.values import D

#: comlink/postgres uuid namespace (v4-chain ``indexer/packages/postgres/src/helpers/uuid.ts``)
INDEXER_UUID_NAMESPACE = uuid.UUID("0f9da948-a6fb-4c45-9edc-4685c3f3317d")
#: the ``venue`` of every event this plugin emits
VENUE = "dydx"
#: indexer order ``type`` -> OrderType (v4-chain ``indexer/packages/postgres/src/types/order-types.ts``)
TYPE_MAP = {
    "LIMIT": OrderType.LIMIT,
    "MARKET": OrderType.MARKET,
    "STOP_LIMIT": OrderType.STOP_LIMIT,
    "STOP_MARKET": OrderType.STOP_MARKET,
    "TAKE_PROFIT": OrderType.TAKE_PROFIT_LIMIT,
    "TAKE_PROFIT_LIMIT": OrderType.TAKE_PROFIT_LIMIT,
    "TAKE_PROFIT_MARKET": OrderType.TAKE_PROFIT_MARKET,
}
#: indexer ``timeInForce`` (``APITimeInForce``) -> TimeInForce; FOK is treated as IOC
TIF_MAP = {"IOC": TimeInForce.IOC, "POST_ONLY": TimeInForce.POST_ONLY, "GTT": TimeInForce.GTT,
           "FOK": TimeInForce.IOC}


def subaccount_uuid(address: str, number: int) -> str:
    """The indexer's ``subaccountId`` for ``address/number`` (uuid5 of ``"address-number"``;
    v4-chain ``indexer/packages/postgres/src/stores/subaccount-table.ts`` ``uuid``)."""
    return str(uuid.uuid5(INDEXER_UUID_NAMESPACE, f"{address}-{int(number)}"))


def order_uuid(address: str, number: int, client_id: int, clob_pair_id: int, flags: int) -> str:
    """The indexer's order ``id`` for a chain OrderId: uuid5 of
    ``"subaccountId-clientId-clobPairId-orderFlags"`` (v4-chain
    ``indexer/packages/postgres/src/stores/order-table.ts`` ``uuid``; checked against
    recorded payloads)."""
    sub = subaccount_uuid(address, number)
    return str(uuid.uuid5(INDEXER_UUID_NAMESPACE, f"{sub}-{int(client_id)}-{int(clob_pair_id)}-{int(flags)}"))


def map_status(status: str, removal_reason: str | None, filled: Decimal) -> OrderStatus | None:
    """Indexer order status (``APIOrderStatus``) -> :class:`OrderStatus` (None for an unknown status).

    :param filled: ``totalFilled`` (base units): OPEN with something filled is PARTIALLY_FILLED.
    """
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


def fields_of(info: OrderInfo) -> dict:
    """``OrderInfo`` -> ``{field: value}`` (shallow), to copy it with one field changed."""
    return attrs.asdict(info, recurse=False)


class OrderRegistry:
    """Our orders (by our client id), other clients' orders (by indexer id), and the orders
    whose outcome is still to be learnt (see the module docstring).

    :param ids: the client-id store (dYdX id <-> our id, order metadata).
    :param address: / ``subaccount``: the subaccount (bech32 address, number).
    :param emit: called with each :class:`~perpbot.core.model.OrderUpdate` (on the event loop).
    :param now_ns: clock (ns).
    :param stats: the account's counters (``order_updates``, ``bad_rows``,
        ``foreign_orders`` are counted here).
    """

    def __init__(self, ids: ClientIdStore, address: str, subaccount: int, *, emit: Callable[[Any], None],
                 now_ns: Callable[[], int], stats: dict[str, int]):
        self.ids = ids
        self.address = address
        self.subaccount = subaccount
        self.emit = emit
        self.now_ns = now_ns
        self.stats = stats
        self.subaccount_id = subaccount_uuid(address, subaccount)
        #: indexer subaccount uuid -> number, for this subaccount and its isolated children
        self.subaccount_numbers: dict[str, int] = {self.subaccount_id: subaccount}
        #: our orders, by our client id
        self.orders: dict[int, OrderInfo] = {}
        #: our id -> the latest indexer row, merged (good-til-block etc.)
        self.order_rows: dict[int, dict] = {}
        self._uuid_to_id: dict[str, int] = {}
        #: orders of other clients on this subaccount, by indexer order id (their own namespace:
        #: never keyed by, reported as, or mistaken for one of our client ids)
        self.foreign: dict[str, OrderInfo] = {}
        self.order_rows_foreign: dict[str, dict] = {}
        #: our orders whose broadcast outcome is unknown (reply lost): our id -> why
        self.unknown: dict[int, str] = {}
        #: our orders to look up by id on the indexer (``GET /v4/orders/{id}``)
        self.lookups: set[int] = set()
        for our, meta in ids.orders.items():
            self._remember(our, meta)

    # ------------------------------------------------------------------ ids

    def add_subaccount(self, number: int) -> None:
        """Rows of subaccount ``number`` (an isolated child) are read here too."""
        self.subaccount_numbers[subaccount_uuid(self.address, number)] = int(number)

    def _sub(self, meta: Mapping[str, Any] | None) -> int:
        """The subaccount an order was sent to (client-id metadata ``sub``; default: this one)."""
        return int((meta or {}).get("sub", self.subaccount))

    def _remember(self, our: int, meta: Mapping[str, Any]) -> None:
        try:
            self._uuid_to_id[order_uuid(self.address, self._sub(meta), int(meta["dydx_id"]), int(meta["clob"]),
                                        int(meta["flags"]))] = our
        except (KeyError, TypeError, ValueError):
            pass

    def our_id_of(self, indexer_order_id: str) -> int | None:
        """Our client id for an indexer order id (a fill's ``orderId``), None when not ours."""
        return self._uuid_to_id.get(indexer_order_id)

    def track_new_order(self, our: int, info: OrderInfo) -> None:
        """Our order is about to be broadcast: PENDING until the venue shows it."""
        meta = self.ids.get(our)
        if meta is not None:
            self._remember(our, meta)
        self.orders[our] = info

    def resolve(self, row: Mapping[str, Any]) -> tuple[int | None, str]:
        """``(our client id or None, indexer order id)`` for an indexer order row.

        An order is ours only when its FULL chain OrderId matches one we placed: subaccount,
        dYdX client id, order flags and clob pair (v4-chain ``proto/dydxprotocol/clob/order.proto``
        ``OrderId``), which the indexer's order id (a uuid of exactly those, comlink
        ``OrderTable.uuid``) encodes. A row without ``id`` gets it computed from its fields.

        :raises KeyError: for a row with neither ``id`` nor ``clientId``/``clobPairId``, or
            one of another subaccount.
        """
        oid = row.get("id")
        if not oid:
            sub = row.get("subaccountId")
            if sub is not None and sub not in self.subaccount_numbers:
                raise KeyError(f"subaccountId {sub} of another subaccount")
            number = self.subaccount_numbers.get(sub, self.subaccount)
            oid = order_uuid(self.address, number, int(row["clientId"]), int(row["clobPairId"]),
                             int(row.get("orderFlags") or 0))
        oid = str(oid)
        if oid in self._uuid_to_id:
            return self._uuid_to_id[oid], oid
        cid = row.get("clientId")
        if cid is not None and row.get("clobPairId") is not None and row.get("orderFlags") is not None:
            our = self.ids.our_id(int(cid))
            meta = self.ids.get(our) if our is not None else None
            if meta is not None and order_uuid(self.address, self._sub(meta), int(cid), int(meta["clob"]),
                                               int(meta["flags"])) == oid:
                self._uuid_to_id[oid] = our
                return our, oid
        if cid is None and row.get("id") is None:
            raise KeyError("clientId")
        return None, oid

    # ------------------------------------------------------------------ rows

    def apply_row(self, row: Mapping[str, Any]) -> None:
        """One indexer order row (stream or REST). A row of an unexpected shape is counted in
        ``stats["bad_rows"]`` and logged, never raised."""
        try:
            self._apply_row(row)
        except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
            self.stats["bad_rows"] += 1
            logger.warning(f"dYdX order row with an unexpected shape ignored ({type(exc).__name__}: {exc})")

    def _apply_row(self, row: Mapping[str, Any]) -> None:
        our, oid = self.resolve(row)
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
            order_type=TYPE_MAP.get(str(merged.get("type", "LIMIT")), OrderType.LIMIT),
            filled_size=filled,
            reduce_only=bool(merged.get("reduceOnly", False)),
            post_only=bool(merged.get("postOnly", False)),
            time_in_force=TIF_MAP.get(str(merged.get("timeInForce", "GTT")), TimeInForce.GTT),
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
            order_type=TYPE_MAP.get(str(merged.get("type", "LIMIT")), OrderType.LIMIT), filled_size=filled,
            reduce_only=bool(merged.get("reduceOnly", False)), post_only=bool(merged.get("postOnly", False)),
            time_in_force=TIF_MAP.get(str(merged.get("timeInForce", "GTT")), TimeInForce.GTT), tag="external",
            exchange_order_id=oid, venue=VENUE,
        )

    # ------------------------------------------------------------------ queries

    def open_orders(self, ticker: str | None = None) -> list[OrderInfo]:
        """Our orders that are not terminal (PENDING ones included), optionally of one market."""
        return [
            o for o in self.orders.values()
            if not o.status.is_terminal and (ticker is None or o.ticker == ticker)
        ]

    def foreign_open_orders(self, ticker: str | None = None) -> list[OrderInfo]:
        """Open orders of other clients on this subaccount (``client_id`` is their dYdX client id)."""
        return [o for o in self.foreign.values()
                if not o.status.is_terminal and (ticker is None or o.ticker == ticker)]

    # ------------------------------------------------------------------ local marks, unknown outcomes

    def mark(self, our: int, status: OrderStatus, reason: str = "") -> None:
        """Set an order's status locally (e.g. EXPIRED once its good-til passed) and tell the bot.

        The id store records the status even for an order no longer registered.
        """
        info = self.orders.get(our)
        self.ids.update(our, status=status.value)
        if info is None:
            return
        if info.status is status:
            return
        self.orders[our] = OrderInfo(**{**fields_of(info), "status": status})
        self.emit(OrderUpdate(our, info.ticker, status, self.now_ns(), filled_size=info.filled_size,
                              reason=reason, venue=VENUE, tag=info.tag))

    def forget(self, our: int, status: OrderStatus) -> None:
        """An order that never left (nothing was sent, or CheckTx refused it): recorded as
        ``status`` in the id store (its dYdX id stays burnt) and no longer registered
        anywhere (open orders, look-ups, unknown outcomes, expiry). No event."""
        self.ids.update(our, status=status.value)
        self.orders.pop(our, None)
        self.order_rows.pop(our, None)
        self.unknown.pop(our, None)
        self.lookups.discard(our)

    def mark_unknown(self, our: int, reason: str) -> None:
        """Our broadcast's reply was lost: the order stays PENDING, its outcome to be learnt
        (queued for a look-up by id).

        Nothing to learn when the venue has already shown the order (the indexer stream can
        beat the lost reply's error): then its outcome is known and it is not marked.
        """
        if our in self.order_rows:
            return
        if our in self.orders and not self.orders[our].status.is_terminal:
            self.unknown[our] = reason
            self.lookups.add(our)

    def lifetime_passed(self, our: int, height: int | None, now_s: int) -> bool:
        """True when the order's good-til-block (short-term: ``height > gtb``) or good-til-block-time
        (stateful: ``now_s > gtbt``, unix seconds) has passed, so the chain can no longer hold it
        (v4-chain ``protocol/x/clob/keeper/orders.go``: expired orders are removed)."""
        meta = self.ids.get(our) or {}
        row = self.order_rows.get(our, {})
        flags = int(row.get("orderFlags", meta.get("flags", -1)) or 0)
        if flags == 0:
            gtb = int(row.get("goodTilBlock") or meta.get("gtb") or 0)
            return bool(gtb) and height is not None and height > gtb
        gtbt = int(meta.get("gtbt") or 0)
        return bool(gtbt) and now_s > gtbt

    def expire_short_term(self, height: int) -> None:
        """Short-term orders past their good-til-block are gone (no update may ever come):
        EXPIRED, or CANCELED after a best-effort cancel, each with an OrderUpdate.

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
            self.orders[our] = OrderInfo(**{**fields_of(info), "status": status})
            self.ids.update(our, status=status.value)
            self.stats["order_updates"] += 1
            self.emit(OrderUpdate(our, info.ticker, status, self.now_ns(), filled_size=info.filled_size,
                                  reason=f"good-til-block {gtb} passed (height {height})", venue=VENUE,
                                  tag=info.tag))
