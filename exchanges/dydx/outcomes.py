"""Learning the fate of one of our orders by asking the indexer for it by id.

Two cases need it (issue 9):

- a broadcast whose reply was lost (timeout, connection dropped after sending) or a
  ``BEST_EFFORT_CANCELED`` row: the order is queued in
  :attr:`~perpbot.exchanges.dydx.order_registry.OrderRegistry.lookups` and
  :meth:`OutcomeResolver.resolve` asks ``GET /v4/orders/{id}`` (comlink
  ``indexer/services/comlink/src/controllers/api/v4/orders-controller.ts``). A row found
  is applied. An order the indexer does not know is EXPIRED once its good-til-block (by
  the indexer's own height) or good-til-block-time (less :data:`GTBT_MARGIN_S`) has
  passed: the chain can no longer hold it (v4-chain ``protocol/x/clob`` EndBlocker
  removes expired stateful orders; a short-term order lives until its good-til-block),
  so it never existed or is gone. Otherwise it is asked again after
  ``reconcile_interval_s``;
- a cancel the node accepted: CheckTx accepting it says nothing about the order (a
  short-term cancel is gossip only; the order may have filled first), so
  :meth:`OutcomeResolver.after_cancel` looks the order up once and reports the venue's
  status.

Imports :mod:`perpbot.core` (errors, model) and the dYdX account/rest/config types only.
"""

from __future__ import annotations

import time
from typing import Callable

from loguru import logger

from perpbot.core.errors import ExchangeError
from perpbot.core.model import OrderResult, OrderStatus
from perpbot.exchanges.dydx.account import AccountState
from perpbot.exchanges.dydx.config import DydxSettings
from perpbot.exchanges.dydx.rest import IndexerRest

NS = 1_000_000_000
#: slack on a good-til-block-time before an order the indexer does not know is given up (s):
#: the chain removes it at the first block whose time reaches it (x/clob EndBlocker)
GTBT_MARGIN_S = 10


class OutcomeResolver:
    """Looks our orders up by id on the indexer and applies the answer (see the module docstring).

    :param rest: the indexer REST client (``order(id) -> row | None``).
    :param account: the account state (its registry holds ``lookups`` and ``unknown``).
    :param settings: ``reconcile_interval_s`` paces repeated look-ups (s).
    :param counters: the exchange's counters (``order_lookups`` is counted here).
    :param now_ns: clock (ns; the chain's good-til-block-time is compared in unix seconds).
    """

    def __init__(self, rest: IndexerRest, account: AccountState, settings: DydxSettings, *,
                 counters: dict[str, int], now_ns: Callable[[], int]):
        self.rest = rest
        self.account = account
        self.settings = settings
        self.counters = counters
        self.now_ns = now_ns
        #: our id -> monotonic time (s) of its next look-up
        self.lookup_at: dict[int, float] = {}

    async def resolve(self, force: bool = False) -> None:
        """Ask the indexer (``GET /v4/orders/{id}``) about each order in ``account.lookups``
        that is due (every one with ``force``).

        :raises ExchangeError: when the indexer cannot be asked (the caller retries later).
        """
        acct = self.account
        now = time.monotonic()
        for cid in sorted(acct.lookups):
            info = acct.orders.get(cid)
            if info is None or info.status.is_terminal:
                acct.lookups.discard(cid)
                self.lookup_at.pop(cid, None)
                continue
            if not force and self.lookup_at.get(cid, 0.0) > now:
                continue
            self.lookup_at[cid] = now + self.settings.reconcile_interval_s
            row = await self.rest.order(info.exchange_order_id) if info.exchange_order_id else None
            self.counters["order_lookups"] += 1
            if row is not None:
                acct.apply_order_row(row)
            info = acct.orders.get(cid)
            if info is None or info.status.is_terminal:
                acct.lookups.discard(cid)
                self.lookup_at.pop(cid, None)
                continue
            if row is None and acct.lifetime_passed(cid, acct.height, self.now_ns() // NS - GTBT_MARGIN_S):
                why = acct.unknown.pop(cid, None)
                acct.lookups.discard(cid)
                self.lookup_at.pop(cid, None)
                acct.mark(cid, OrderStatus.EXPIRED,
                          "good-til passed and the indexer does not know the order"
                          + (f" (its broadcast ended: {why}; it never reached the venue)" if why else ""))

    async def after_cancel(self, client_id: int, ticker: str, in_flight: OrderStatus) -> OrderResult:
        """The result of a cancel the node accepted, from the venue's order status.

        The order is looked up on the indexer (``GET /v4/orders/{id}``; a failed look-up is
        logged, not raised): FILLED is a failed cancel with status FILLED; CANCELED /
        EXPIRED are final; otherwise ``in_flight`` (the cancel is on its way, the final
        status comes from the stream).
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
                self.account.apply_order_row(row)
            info = self.account.orders.get(client_id)
        if info is None:
            return OrderResult(True, client_id, ticker, in_flight)
        if info.status is OrderStatus.FILLED:
            return OrderResult(False, client_id, ticker, OrderStatus.FILLED, filled_size=info.filled_size,
                               error="cancel too late: the order was already FILLED on the venue")
        if info.status.is_terminal:
            return OrderResult(True, client_id, ticker, info.status, filled_size=info.filled_size)
        return OrderResult(True, client_id, ticker, in_flight, filled_size=info.filled_size)
