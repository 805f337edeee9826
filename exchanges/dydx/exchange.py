"""The ``dydx`` exchange client: orders signed and sent to a dYdX v4 node, account state
from the indexer's subaccount stream.

:class:`DydxExchange` is the venue's :class:`~perpbot.core.exchange.BaseExchangeClient`.
It owns the connection and its lifecycle, the markets, prices and block height, and
hands the rest to collaborators built at connect:

- :class:`~perpbot.exchanges.dydx.order_path.OrderPath` (:mod:`perpbot.exchanges.dydx.order_path`):
  place, cancel, batch cancel. A CheckTx failure or an order that was never sent is a
  failed result (REJECTED); a broadcast whose reply was lost is NOT a rejection: the
  result is ``success=True, status=PENDING`` with ``error="outcome unknown: ..."``, and
  the order stays pending until the venue shows it or its good-til has passed for
  certain (then EXPIRED). A cancel's result carries the venue's order status.
- :class:`~perpbot.exchanges.dydx.outcomes.OutcomeResolver`: looks our orders up by id
  (``GET /v4/orders/{id}``) after a lost reply, a best-effort cancel or a cancel.
- :class:`~perpbot.exchanges.dydx.reconcile.Reconciler`: the subaccount, orders (paged by
  good-til), fills (paged by height) and funding payments from REST, at connect, after
  every reconnect and every ``reconcile_interval_s``; also the maintenance task.
- :class:`~perpbot.exchanges.dydx.account.AccountState`: the account, folded from
  ``v4_subaccounts`` and ``v4_block_height``, subscribed on the SAME WebSocket as the
  market data (:func:`perpbot.exchanges.dydx.ws.acquire`).
- isolated markets (:class:`~perpbot.exchanges.dydx.isolated.IsolatedMarkets`, the mixin,
  and :class:`~perpbot.exchanges.dydx.isolated.IsolatedRouter`): an ISOLATED order goes to
  a child subaccount ``parent + 128*k``, funded by ``MsgCreateTransfer`` before the order and
  swept back once flat; the children's streams are on the same socket, reconciliation covers
  them; ``subaccount_positions()``, ``subaccount_balances()`` and ``summary_notes()`` show them.

- ``circuit_open``: the breaker's reason (``"circuit_open: ..."``) while it is open,
  else None; the bot shows it to the risk chain.
- Mainnet trading needs the explicit ``live`` opt-in (``--live``); testnet and custom
  networks on another chain id do not.

The names that used to live here (``NS``, ``ORDERS_PAGE``, ``FILLS_PAGE``,
``GTBT_MARGIN_S``) are re-exported.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping

from loguru import logger

from perpbot.core.tasks import cancel_and_wait
from perpbot.core.errors import ExchangeError, InvalidOrder, LiveTradingNotConfirmed, TemporaryExchangeError
from perpbot.core.exchange import BaseExchangeClient, ExchangeCapabilities
from perpbot.core.model import (
    Balance,
    Fill,
    Market,
    OrderInfo,
    OrderRequest,
    OrderResult,
    OrderType,
    Position,
    Side,
    TimeInForce,
)
from perpbot.exchanges.dydx import ws as ws_mod
from perpbot.exchanges.dydx.account import AccountState
from perpbot.exchanges.dydx.channels import V4_BLOCK_HEIGHT, V4_SUBACCOUNTS
from perpbot.exchanges.dydx.client_ids import ClientIdStore
from perpbot.exchanges.dydx.config import DydxSettings
from perpbot.exchanges.dydx.feed import markets_from_payload
from perpbot.exchanges.dydx.isolated import IsolatedMarkets, IsolatedRouter
from perpbot.exchanges.dydx.node import NodeGateway
from perpbot.exchanges.dydx.order_path import OrderPath
from perpbot.exchanges.dydx.outcomes import GTBT_MARGIN_S, NS, OutcomeResolver
from perpbot.exchanges.dydx.reconcile import FILLS_PAGE, ORDERS_PAGE, Reconciler
from perpbot.exchanges.dydx.reconcile import iso as _iso  # noqa: F401 (old name)
from perpbot.exchanges.dydx.rest import IndexerRest
from perpbot.exchanges.dydx.authenticators import load_signer
from perpbot.exchanges.dydx.subaccounts import MAX_PARENT_SUBACCOUNTS, ChildLedgers
from perpbot.exchanges.dydx.transfers import Transfers

__all__ = ["FILLS_PAGE", "GTBT_MARGIN_S", "NS", "ORDERS_PAGE", "DydxExchange"]


class DydxExchange(IsolatedMarkets, BaseExchangeClient):
    """dYdX v4 exchange client (see the module docstring).

    Config: the ``[exchange.dydx]`` table (:mod:`perpbot.exchanges.dydx.config`); the bot's
    ``--live`` arrives in ``context.options["live"]``.

    Attributes once connected: ``rest`` (:class:`~perpbot.exchanges.dydx.rest.IndexerRest`),
    ``node`` (:class:`~perpbot.exchanges.dydx.node.NodeGateway`), ``ids``
    (:class:`~perpbot.exchanges.dydx.client_ids.ClientIdStore`), ``account``
    (:class:`~perpbot.exchanges.dydx.account.AccountState`), ``conn`` (the shared
    WebSocket), ``address``; ``order_path``, ``resolver``, ``reconciler`` (the
    collaborators); ``counters`` (``placed``, ``rejected``, ``canceled``, ``reconciles``,
    ``reconcile_failures``, ``outcome_unknown``, ``order_lookups``).
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
        self.order_path: OrderPath | None = None
        self.resolver: OutcomeResolver | None = None
        self.reconciler: Reconciler | None = None
        #: isolated markets: child ledgers, transfers, the router (None before connect)
        self.children: ChildLedgers | None = None
        self.transfers: Transfers | None = None
        self.router: IsolatedRouter | None = None
        self.address: str | None = self.settings.address
        self._markets: dict[str, Market] = {}
        self._height: int | None = None
        self._height_at = 0.0
        self._tasks: list[asyncio.Task] = []
        self._connected = False
        self._reconcile_now: asyncio.Event | None = None
        self.counters = {"placed": 0, "rejected": 0, "canceled": 0, "reconciles": 0, "reconcile_failures": 0,
                         "outcome_unknown": 0, "order_lookups": 0, "transfers": 0, "transfer_failures": 0}
        #: how often flat isolated children are swept back to the parent, seconds
        self.sweep_interval_s = 0.5

    def __repr__(self) -> str:
        return f"DydxExchange({self.settings.network}, address={self.address}, subaccount={self.settings.subaccount})"

    # ------------------------------------------------------------------ contract

    def capabilities(self) -> ExchangeCapabilities:
        """Every order type and time in force; reduce-only needs IOC (the chain's rule, see
        :mod:`perpbot.exchanges.dydx.orders`); conditional orders; cross and isolated margin (isolated positions in child
        subaccounts, :mod:`perpbot.exchanges.dydx.isolated`; not when ``subaccount`` is itself a child); funding
        every hour (the ``funding-tick`` epoch of v4-chain ``protocol/x/epochs``, settled by
        ``protocol/x/perpetuals``); real orders."""
        return ExchangeCapabilities(
            order_types=frozenset(OrderType),
            time_in_force=frozenset(TimeInForce),
            reduce_only_requires_ioc=True,
            conditional_orders=True,
            isolated_margin=self.settings.subaccount < MAX_PARENT_SUBACCOUNTS,
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

    # ------------------------------------------------------------------ lifecycle

    def preflight(self) -> None:
        """Mainnet needs the explicit live opt-in, and the wallet must be loadable (no network).

        :raises LiveTradingNotConfirmed: mainnet without ``--live``.
        :raises SecretError: the mnemonic cannot be loaded (nothing configured, an unsafe
            file, or not a mnemonic).
        """
        s = self.settings
        if s.is_mainnet and not s.live:
            raise LiveTradingNotConfirmed(
                "dYdX mainnet trading moves real money: pass --live (or set dydx.live = true) to confirm, "
                "or use --network testnet / --exchange paper"
            )
        load_signer(s)  # the trading key (dydx.trading_key_file) or the mnemonic

    async def connect(self) -> None:
        """Preflight, then: markets from REST, the node (address, height), the client-id store
        (``<state_dir>/dydx-orders-<address>-<subaccount>.json``), the account stream on the
        shared WebSocket, a first reconciliation, the maintenance task. Everything opened is
        closed again when a step fails.

        :raises LiveTradingNotConfirmed, SecretError: see :meth:`preflight`.
        :raises ExchangeError: the indexer or the node could not be reached or refused.
        """
        s = self.settings
        self.preflight()
        secret = load_signer(s)
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
            self._build_collaborators()
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
        self._tasks = [asyncio.create_task(self.reconciler.run(self._reconcile_now),
                                           name="dydx-exchange-maintenance")]
        if self.router is not None:
            self._tasks.append(asyncio.create_task(self._sweeper(), name="dydx-isolated-sweeper"))
        self._connected = True
        bal = self.account.balance()
        logger.info(
            f"dYdX account {self.address}/{s.subaccount}: equity {bal.equity} USD, "
            f"{len(self.account.positions)} position(s), {len(self.account.open_orders())} open order(s)"
        )

    def _build_collaborators(self) -> None:
        self.resolver = OutcomeResolver(self.rest, self.account, self.settings, counters=self.counters,
                                        now_ns=self._now_ns)
        self.reconciler = Reconciler(self.rest, self.account, self.ids, self.resolver, self.settings, self.address,
                                     counters=self.counters, now_ns=self._now_ns, height=lambda: self._height)
        self.order_path = OrderPath(
            self.settings, self.address, self.node, self.ids, self.account, self.resolver, counters=self.counters,
            market=self._market, touch=self._touch_price, oracle=self._oracle, height=lambda: self._height,
            current_height=self.current_height, now_ns=self._now_ns,
        )
        self._build_isolated()

    async def _teardown(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        if self.conn is not None:
            self.conn.remove_listener(self._on_ws, self._on_ws_state)
            if self.address:
                self.conn.unsubscribe(V4_SUBACCOUNTS, f"{self.address}/{self.settings.subaccount}")
                for n in (self.children.ledgers if self.children is not None else ()):
                    self.conn.unsubscribe(V4_SUBACCOUNTS, f"{self.address}/{n}")
            self.conn.unsubscribe(V4_BLOCK_HEIGHT, None)
            await ws_mod.release(self.conn)
            self.conn = None
        if self.node is not None:
            await self.node.close()

    async def disconnect(self) -> None:
        """Stop the maintenance task, leave the shared WebSocket (closed with its last user)
        and close the node connection. Orders on the venue are left as they are."""
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
        """``(best bid, best ask)`` prices (USD) from the bot's book of ``ticker``; None for a
        side (or both) that is empty or unknown."""
        book = self.context.book_of(ticker) if getattr(self.context, "book_of", None) else None
        if book is None:
            return None, None
        return book.best_bid_price(), book.best_ask_price()

    def _touch_price(self, ticker: str, side: Side) -> Decimal | None:
        """The best opposite price for an order on ``side`` (ask for a buy), or None when the
        market's data is stale."""
        bid, ask = self.best_bid_offer(ticker)
        st = self.context.state_of(ticker) if getattr(self.context, "state_of", None) else None
        stale = st.stale_reason(self._now_ns()) if st is not None and hasattr(st, "stale_reason") else None
        if stale:
            return None
        return ask if side is Side.BUY else bid

    def _set_height(self, h: int | None) -> None:
        if h is not None and (self._height is None or h >= self._height):
            self._height = int(h)
            self._height_at = time.monotonic()

    async def current_height(self) -> int:
        """The block height, refreshed from the node when older than ``height_max_age_s``.

        :raises TemporaryExchangeError: the node could not be asked.
        """
        if self._height is None or time.monotonic() - self._height_at > self.settings.height_max_age_s:
            self._set_height(await self.node.latest_height())
        return int(self._height)

    # ------------------------------------------------------------------ orders (OrderPath)

    def _check_connected(self) -> None:
        if not self._connected or self.node is None or self.account is None:
            raise TemporaryExchangeError("dYdX exchange is not connected")

    async def place_order(self, order: OrderRequest) -> OrderResult:
        """Validate, convert, sign and broadcast ``order`` (:meth:`OrderPath.place
        <perpbot.exchanges.dydx.order_path.OrderPath.place>`).

        :raises InvalidOrder: the order breaks a market rule (size below the minimum,
            reduce-only without IOC, ...); nothing was sent.
        :raises TemporaryExchangeError: not connected, or the block height could not be read.
        """
        self._check_connected()
        return await self.order_path.place(order)

    async def cancel_order(self, client_id: int, ticker: str) -> OrderResult:
        """Cancel one order by our client id (short-term: best effort, gossip only); the
        result carries the venue's status (:meth:`OrderPath.cancel
        <perpbot.exchanges.dydx.order_path.OrderPath.cancel>`).

        :raises TemporaryExchangeError: not connected.
        """
        self._check_connected()
        return await self.order_path.cancel(client_id, ticker)

    async def batch_cancel(self, client_ids: Iterable[int]) -> list[OrderResult]:
        """Cancel short-term orders in ONE ``MsgBatchCancel`` (stateful ones one by one).

        :raises TemporaryExchangeError: not connected.
        """
        self._check_connected()
        return await self.order_path.batch_cancel(client_ids, self.cancel_order)

    async def cancel_all(self, ticker: str | None = None) -> list[OrderResult]:
        """Cancel every open order of the bot (of ``ticker``, or all); other clients' orders
        are left alone.

        :raises TemporaryExchangeError: not connected.
        """
        self._check_connected()
        return await self.batch_cancel([o.client_id for o in self.account.open_orders(ticker)])

    def reserve_client_ids(self, ids: Iterable[int]) -> None:
        """Never hand out these dYdX client ids (ids another process or an old run used).

        :raises TemporaryExchangeError: not connected (the id store opens at connect).
        """
        if self.ids is None:
            raise TemporaryExchangeError("dYdX exchange is not connected")
        self.ids.reserve(ids)

    # ------------------------------------------------------------------ state

    async def get_open_orders(self, ticker: str | None = None) -> list[OrderInfo]:
        """The bot's own open orders (PENDING ones included; other clients' orders are not).

        :raises TemporaryExchangeError: not connected.
        """
        self._check_connected()
        return self.account.open_orders(ticker)

    async def get_foreign_open_orders(self, ticker: str | None = None) -> list[OrderInfo]:
        """Open orders other clients placed on this subaccount (``client_id`` = their dYdX
        client id, ``exchange_order_id`` = the indexer's order id); the bot never touches them.

        :raises TemporaryExchangeError: not connected.
        """
        self._check_connected()
        return self.account.foreign_open_orders(ticker)

    async def get_positions(self) -> dict[str, Position]:
        """Open positions by ticker (a copy; sizes signed, base units; USD amounts).

        :raises TemporaryExchangeError: not connected.
        """
        self._check_connected()
        return self.children.positions() if self.children is not None else dict(self.account.positions)

    async def get_balance(self) -> Balance:
        """The balance (USD; formula in :mod:`perpbot.exchanges.dydx.ledger`) of the parent
        subaccount and its isolated children together (equity and free collateral summed, as the
        indexer's ``parentSubaccountNumber`` view does).

        :raises TemporaryExchangeError: not connected.
        """
        self._check_connected()
        return self.children.balance() if self.children is not None else self.account.balance()

    async def get_fills_since(self, ts_ns: int) -> list[Fill]:
        """Fills at or after ``ts_ns`` (ns) from REST (paged, newest first, up to 1,000), oldest first.

        :raises TemporaryExchangeError: not connected.
        :raises ExchangeError: the indexer could not be read.
        """
        self._check_connected()
        return await self.reconciler.fills_since(ts_ns)

    def health(self) -> dict:
        """Diagnostics: ``connected``, breaker (``circuit``, ``circuit_open``), ``sequence``,
        ``height``, ``ws_connected``, the node's stats (``node_*``) and :attr:`counters`."""
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
            self._stream_transfers(self.settings.subaccount, msg)
        elif ch == V4_SUBACCOUNTS and self.children is not None and self._child_id(msg.get("id")) is not None:
            self.children.on_message(self._child_id(msg.get("id")), msg, self.transfers.on_stream_transfer)
            self._set_height(self.account.height)
        elif ch == V4_BLOCK_HEIGHT:
            contents = msg.get("contents")
            items = contents if msg.get("type") == "channel_batch_data" else [contents]
            for c in items:
                h = (c or {}).get("height") or (c or {}).get("blockHeight")
                if h is not None:
                    try:
                        self._set_height(int(h))
                        self.account.note_height(h)  # the indexer's own height
                    except (TypeError, ValueError):
                        pass

    def _on_ws_state(self, event: str, detail: str, recv_ns: int) -> None:
        if event == "connected" and self._reconcile_now is not None and self._connected:
            self._reconcile_now.set()  # catch up on what happened while the stream was down

    async def _reconcile(self, first: bool = False) -> None:
        await self.reconciler.reconcile(first=first)
