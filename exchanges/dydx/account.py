"""Account state from the ``v4_subaccounts`` stream, reconciled with REST.

:class:`AccountState` folds the subaccount channel (``subscribed`` snapshot:
``{subaccount, orders, blockHeight}``; updates: ``{orders?, fills?,
perpetualPositions?, assetPositions?, transfers?, blockHeight}``; shapes in v4-chain
``indexer/packages/postgres/src/types/websocket-message-types.ts``) and the REST
endpoints (``/addresses/{a}/subaccountNumber/{n}``, ``/orders``, ``/fills``,
``/fundingPayments``) into one view and emits, through ``emit`` (called on the event
loop), :class:`~perpbot.core.model.OrderUpdate`, :class:`~perpbot.core.model.Fill` and
:class:`~perpbot.core.model.FundingPayment`.

It is a thin façade over two collaborators that share its ``stats``:

- :class:`~perpbot.exchanges.dydx.order_registry.OrderRegistry` (:attr:`AccountState.registry`):
  our orders, other clients' orders (:attr:`AccountState.foreign`), status mapping, the
  orders whose broadcast outcome is unknown (:attr:`AccountState.unknown`) or must be
  looked up by id (:attr:`AccountState.lookups`), and expiry by good-til-block;
- :class:`~perpbot.exchanges.dydx.ledger.AccountLedger` (:attr:`AccountState.ledger`):
  fills (deduplicated by fill id), positions, USDC, the balance formula and funding
  payments.

Here: the stream dispatch and the indexer's block height. The rules are in those
modules' docstrings; every name that used to live here (``order_uuid``,
``subaccount_uuid``, ``map_status``, ``INDEXER_UUID_NAMESPACE``, ``VENUE``) is re-exported.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping

from perpbot.core.model import Balance, Fill, Market, OrderInfo, OrderStatus, Position
from perpbot.exchanges.dydx.client_ids import ClientIdStore
from perpbot.exchanges.dydx.ledger import LIQUIDATION_TYPES as _LIQUIDATION_TYPES  # noqa: F401 (old name)
from perpbot.exchanges.dydx.ledger import AccountLedger
from perpbot.exchanges.dydx.ledger import Bounded as _Bounded  # noqa: F401 (old name)
from perpbot.exchanges.dydx.order_registry import TIF_MAP as _TIF_MAP  # noqa: F401 (old name)
from perpbot.exchanges.dydx.order_registry import TYPE_MAP as _TYPE_MAP  # noqa: F401 (old name)
from perpbot.exchanges.dydx.order_registry import (
    INDEXER_UUID_NAMESPACE,
    VENUE,
    OrderRegistry,
    map_status,
    order_uuid,
    subaccount_uuid,
)
from perpbot.exchanges.dydx.order_registry import fields_of as _fields  # noqa: F401 (old name)

__all__ = ["INDEXER_UUID_NAMESPACE", "VENUE", "AccountState", "map_status", "order_uuid", "subaccount_uuid"]


class AccountState:
    """The subaccount as the stream and REST describe it.

    :param ids: the client-id store (dYdX id <-> our id, order metadata).
    :param address: / ``subaccount``: the subaccount (bech32 address, number).
    :param market_of: ``ticker -> Market | None`` (current parameters).
    :param oracle_of: ``ticker -> Decimal | None`` (current oracle price, USD).
    :param emit: called with each account event (on the event loop).
    :param now_ns: clock (ns).

    Attributes: ``height`` (the newest block height the indexer reported, or None);
    ``snapshot_received`` (the stream's ``subscribed`` snapshot arrived); ``stats``
    (``order_updates``, ``fills``, ``funding_payments``, ``bad_rows``, ``foreign_orders``).
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
        self.height: int | None = None
        self.snapshot_received = False
        self.stats = {"order_updates": 0, "fills": 0, "funding_payments": 0, "bad_rows": 0, "foreign_orders": 0}
        #: orders: ours, foreign, unknown outcomes, look-ups
        self.registry = OrderRegistry(ids, address, subaccount, emit=emit, now_ns=now_ns, stats=self.stats)
        #: fills, positions, USDC, balance, funding payments
        self.ledger = AccountLedger(ids, order_of=self.registry.our_id_of, market_of=market_of,
                                    oracle_of=oracle_of, emit=emit, now_ns=now_ns, stats=self.stats)
        self.subaccount_id = self.registry.subaccount_id
        #: called with a ticker when the stream shows its position's funding settled (or None)
        self.on_funding_change: Callable[[str], None] | None = None

    # ------------------------------------------------------------------ the collaborators' state

    @property
    def orders(self) -> dict[int, OrderInfo]:
        """Our orders by our client id (the live dict)."""
        return self.registry.orders

    @property
    def order_rows(self) -> dict[int, dict]:
        """Our id -> the latest merged indexer row (the live dict)."""
        return self.registry.order_rows

    @property
    def foreign(self) -> dict[str, OrderInfo]:
        """Other clients' orders on this subaccount, by indexer order id (the live dict)."""
        return self.registry.foreign

    @property
    def order_rows_foreign(self) -> dict[str, dict]:
        """Indexer id -> the latest merged row of another client's order (the live dict)."""
        return self.registry.order_rows_foreign

    @property
    def unknown(self) -> dict[int, str]:
        """Our orders whose broadcast outcome is unknown (reply lost): our id -> why (the live dict)."""
        return self.registry.unknown

    @property
    def lookups(self) -> set[int]:
        """Our orders to look up by id on the indexer (the live set)."""
        return self.registry.lookups

    @property
    def positions(self) -> dict[str, Position]:
        """Open positions by ticker (the live dict; sizes signed, base units)."""
        return self.ledger.positions

    @property
    def usdc(self) -> Decimal:
        """The USDC asset position (USD; negative when borrowed)."""
        return self.ledger.usdc

    @property
    def indexer_equity(self) -> Decimal | None:
        """The indexer's equity (USD) from the last REST subaccount, or None."""
        return self.ledger.indexer_equity

    @property
    def indexer_free_collateral(self) -> Decimal | None:
        """The indexer's free collateral (USD) from the last REST subaccount, or None."""
        return self.ledger.indexer_free_collateral

    @property
    def fills(self):
        """The latest fills, oldest first (a bounded deque of :class:`~perpbot.core.model.Fill`)."""
        return self.ledger.fills

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
        """The ``subscribed`` contents ``{subaccount, orders, blockHeight}``: the subaccount
        (USDC, positions), every order row, the height; sets ``snapshot_received``."""
        sub = contents.get("subaccount") or {}
        if sub:
            self.apply_subaccount(sub)
        for row in contents.get("orders") or ():
            self.apply_order_row(row)
        self._height(contents.get("blockHeight"))
        self.snapshot_received = True

    def apply_update(self, c: Mapping[str, Any]) -> None:
        """One update ``{orders?, fills?, perpetualPositions?, assetPositions?, blockHeight}``
        (transfers are not used: the balance follows the asset positions)."""
        self._height(c.get("blockHeight"))
        for row in c.get("orders") or ():
            self.apply_order_row(row)
        for row in c.get("fills") or ():
            self.ledger.apply_fill_row(row)
        for row in c.get("perpetualPositions") or ():
            self.apply_stream_position(self.ledger, row)
        for row in c.get("assetPositions") or ():
            self.ledger.apply_asset_row(row)

    def apply_stream_position(self, ledger: AccountLedger, row: Mapping[str, Any]) -> None:
        """A stream position row into ``ledger`` (this subaccount's or an isolated child's).

        The indexer streams no funding payment rows: settled funding shows as a change of a
        position's ``netFunding`` (v4-chain ``indexer/packages/postgres/src/types/
        websocket-message-types.ts`` ``PerpetualPositionSubaccountMessageContents``). Such a
        change of an open position calls :attr:`on_funding_change` with the ticker (the exchange
        then reads ``/v4/fundingPayments`` at once) and counts ``stats["funding_stream_signals"]``.
        """
        t = str(row.get("market") or row.get("ticker"))
        before = ledger.positions.get(t)
        ledger.apply_position_row(row)
        after = ledger.positions.get(t)
        if before is not None and after is not None and after.funding != before.funding:
            self.stats["funding_stream_signals"] = self.stats.get("funding_stream_signals", 0) + 1
            if self.on_funding_change is not None:
                self.on_funding_change(t)

    def _height(self, h: Any) -> None:
        if h is not None:
            try:
                h = int(h)
            except (TypeError, ValueError):
                return
            if self.height is None or h > self.height:
                self.height = h

    def note_height(self, h: Any) -> None:
        """A block height the indexer reported (int or decimal string); only a newer one counts,
        a value that is not an integer is ignored."""
        self._height(h)

    # ------------------------------------------------------------------ orders (OrderRegistry)

    def track_new_order(self, our: int, info: OrderInfo) -> None:
        """Our order is about to be broadcast: PENDING until the venue shows it."""
        self.registry.track_new_order(our, info)

    def apply_order_row(self, row: Mapping[str, Any]) -> None:
        """One indexer order row (stream or REST); see :meth:`OrderRegistry.apply_row`."""
        self.registry.apply_row(row)

    _order_row = apply_order_row  # the old name

    def _resolve(self, row: Mapping[str, Any]) -> tuple[int | None, str]:
        return self.registry.resolve(row)

    def open_orders(self, ticker: str | None = None) -> list[OrderInfo]:
        """Our orders that are not terminal (PENDING ones included), optionally of one market."""
        return self.registry.open_orders(ticker)

    def foreign_open_orders(self, ticker: str | None = None) -> list[OrderInfo]:
        """Open orders of other clients on this subaccount (``client_id`` is their dYdX client id)."""
        return self.registry.foreign_open_orders(ticker)

    def mark(self, our: int, status: OrderStatus, reason: str = "") -> None:
        """Set an order's status locally and tell the bot (see :meth:`OrderRegistry.mark`)."""
        self.registry.mark(our, status, reason)

    def forget(self, our: int, status: OrderStatus) -> None:
        """Unregister an order that never left (see :meth:`OrderRegistry.forget`)."""
        self.registry.forget(our, status)

    def mark_unknown(self, our: int, reason: str) -> None:
        """Our broadcast's reply was lost: the order stays PENDING, its outcome to be learnt."""
        self.registry.mark_unknown(our, reason)

    def lifetime_passed(self, our: int, height: int | None, now_s: int) -> bool:
        """True when the order's good-til-block / good-til-block-time (unix s) has passed
        (see :meth:`OrderRegistry.lifetime_passed`)."""
        return self.registry.lifetime_passed(our, height, now_s)

    def expire_short_term(self, height: int) -> None:
        """Short-term orders past their good-til-block are gone (see :meth:`OrderRegistry.expire_short_term`)."""
        self.registry.expire_short_term(height)

    # ------------------------------------------------------------------ money (AccountLedger)

    def fill_from_row(self, row: Mapping[str, Any]) -> Fill:
        """A :class:`Fill` from an indexer fill row (stream or REST); no state change.

        :raises KeyError, TypeError, ValueError, ArithmeticError: for a row with an unexpected shape.
        """
        return self.ledger.fill_from_row(row)

    def _fill_row(self, row: Mapping[str, Any], *, from_rest: bool, emit: bool = True) -> Fill | None:
        return self.ledger.apply_fill_row(row, emit=emit)

    def apply_rest_fills(self, rows: Iterable[Mapping[str, Any]], *, emit: bool) -> int:
        """REST fills (newest first): unseen ones are stored and, with ``emit``, reported."""
        return self.ledger.apply_rest_fills(rows, emit=emit)

    def apply_subaccount(self, sub: Mapping[str, Any]) -> None:
        """A REST/snapshot subaccount: USDC, open positions, indexer equity and free collateral
        (USD), and its ``latestProcessedBlockHeight``."""
        self.ledger.apply_subaccount(sub)
        self._height(sub.get("latestProcessedBlockHeight"))

    def balance(self) -> Balance:
        """USD amounts; see :meth:`AccountLedger.balance` for the formula."""
        return self.ledger.balance()

    def apply_funding_payments(self, rows: Iterable[Mapping[str, Any]], *, emit: bool) -> int:
        """REST funding payment rows -> FundingPayment events (see :meth:`AccountLedger.apply_funding_payments`)."""
        return self.ledger.apply_funding_payments(rows, emit=emit)
