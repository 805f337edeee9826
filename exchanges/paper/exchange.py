"""The paper exchange: a dYdX v4 simulator on real market data.

The same engine runs backtests (replayed data, simulated clock) and paper trading (live data,
wall clock). It executes against the bot's live L2 book, read through the bot's read-only
:class:`~perpbot.core.exchange.MarketView` (``ExchangeContext.view``), follows the chain's order
rules, margin math (:mod:`perpbot.core.margin`), fees, hourly funding and liquidations, and
reports everything as account events (``OrderUpdate``, ``Fill``, ``FundingPayment``,
``Liquidation``) through :meth:`emit`, synchronously inside :meth:`on_market_event` or
:meth:`place_order`.

:class:`PaperExchange` is the coordinator: it implements the exchange contract, wires the
collaborators together and decides which work each market event triggers (timed work first:
funding, order arrivals after ``latency_ms``, good-til expiries; then fills, triggers and the
liquidation check of the event's market). Each concern lives in its own module:

- :mod:`~perpbot.exchanges.paper.rules`: order rules (chain ``x/clob/types/message_place_order.go``
  ``ValidateBasic`` and the memclob): step/tick multiples, minimum size, reduce-only only with
  IOC, post-only never IOC, reduce-only cut/refused at the book, post-only refused if crossing;
- :mod:`~perpbot.exchanges.paper.orders`: the simulator's order records and the live-order table;
- :mod:`~perpbot.exchanges.paper.lifecycle`: the stages an order moves through (static check,
  latency, trigger, routing and margin check, take / rest / cancel, expiry), with its updates;
- :mod:`~perpbot.exchanges.paper.matching`: fills: takers walk the L2 book, makers fill on
  trades through their price, queue position and book moves; the bar-only fill model;
- :mod:`~perpbot.exchanges.paper.subaccounts`: cross and isolated subaccounts (the venue's
  ledger), the initial-margin rule of every order and fill, child funding and sweeping;
- :mod:`~perpbot.exchanges.paper.ledger`: the read-only sum of the subaccounts the bot uses as
  this venue's portfolio (:meth:`PaperExchange.account_ledger`): every fill is booked once;
- :mod:`~perpbot.exchanges.paper.liquidation`: the maintenance-margin rule and liquidations;
- :mod:`~perpbot.exchanges.paper.funding`: hourly funding snapshots and settlement;
- :mod:`~perpbot.exchanges.paper.persistence`: ``export_state`` / ``import_state``;
- :mod:`~perpbot.exchanges.paper.fees` and :mod:`~perpbot.exchanges.paper.config`: fee tiers and settings.

A venue-style rejection never raises: :meth:`PaperExchange.place_order` returns
``OrderResult(success=False, status=REJECTED, error=reason)`` and emits
``OrderUpdate(REJECTED)``. Marks are the oracle price when the feed has one, else the mid
(:meth:`perpbot.core.exchange.MarketView.mark`).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, Mapping

from loguru import logger

from perpbot.core.exchange import BaseExchangeClient, ExchangeCapabilities, ExchangeContext, MarketView
from perpbot.core.margin import PositionRisk
from perpbot.core.model import (
    Balance,
    Bar,
    BookDelta,
    BookSnapshot,
    FundingPayment,
    FundingRate,
    Liquidation,
    MarketInfo,
    OraclePrice,
    OrderInfo,
    OrderRequest,
    OrderResult,
    OrderType,
    Position,
    TimeInForce,
    Trade,
)
from perpbot.core.portfolio import Portfolio
from perpbot.exchanges.paper import persistence
from perpbot.exchanges.paper.config import PaperConfig
from perpbot.exchanges.paper.fees import FeeSchedule
from perpbot.exchanges.paper.funding import HOUR_NS, FundingSimulator
from perpbot.exchanges.paper.ledger import PaperLedger
from perpbot.exchanges.paper.lifecycle import OrderFlow
from perpbot.exchanges.paper.liquidation import LIQUIDATION_CLIENT_ID, Liquidator
from perpbot.exchanges.paper.orders import OrderTable, SimOrder
from perpbot.exchanges.paper.persistence import EXPORTED_FILLS, STATE_VERSION
from perpbot.exchanges.paper.subaccounts import CHILD_STEP, Accounts, Subaccount

# names of the single-module simulator, kept importable from here
__all__ = [
    "PaperExchange",
    "Subaccount",
    "LIQUIDATION_CLIENT_ID",
    "CHILD_STEP",
    "STATE_VERSION",
    "EXPORTED_FILLS",
    "HOUR_NS",
    "NS",
]

NS = 1_000_000_000


class PaperExchange(BaseExchangeClient):
    """dYdX v4 simulator: chain order rules, exact margin, fees, funding, liquidation.

    Constructed by the bot as ``PaperExchange(config, context)`` with the ``[exchange.paper]``
    table (see :mod:`perpbot.exchanges.paper.config`; :raises ConfigError: for a bad setting)
    and an :class:`~perpbot.core.exchange.ExchangeContext` whose ``view`` it reads the market
    from. Exposes, for the run summary and tests: :attr:`liquidations` (list of
    :class:`~perpbot.core.model.Liquidation`), :attr:`funding_payments`, :attr:`funding_missing`
    (markets whose data had no funding rate while a position was open), :attr:`rejections`
    and :meth:`liquidation_price`. Its collaborators: :attr:`orders`
    (:class:`~perpbot.exchanges.paper.orders.OrderTable`), :attr:`accounts`
    (:class:`~perpbot.exchanges.paper.subaccounts.Accounts`), :attr:`matcher`,
    :attr:`liquidator` and :attr:`funding`.
    """

    name = "paper"
    description = "simulator: dYdX v4 rules, L2 book fills with queue position, fee tiers, hourly funding, liquidation"

    def __init__(self, config: Mapping[str, Any], context: ExchangeContext):
        super().__init__(config, context)
        self.cfg = PaperConfig.from_mapping(config)
        if self.cfg.unknown_keys:
            logger.warning(f"exchange.paper: ignoring unknown settings: {', '.join(self.cfg.unknown_keys)}")
        options = context.options or {}
        self.venue = str(options.get("venue") or self.name)
        self.view = MarketView.of(context)
        self.fees = FeeSchedule(self.cfg.fee_tiers, self.cfg.volume_30d)
        self.orders = OrderTable()
        emit = lambda ev: self.emit(ev)  # noqa: E731 - late-bound, so a replaced emit is honoured
        # fill ids are ``paper-<run>-<n>``: unique across runs like a real venue's (a journal keeps
        # one row per venue fill id; ids restarting at ``paper-1`` collided, issue 9.2). ``<run>``
        # is the bot's run id (``context.options["run_id"]``), kept by a resumed run
        prefix = f"paper-{options.get('run_id') or uuid.uuid4().hex[:12]}-"
        self.accounts = Accounts(
            self.cfg.collateral, context.markets, self.view, self.orders, self.cfg.fills_kept, prefix,
            lambda ticker: self.flow.refresh_active(ticker),
        )
        self.flow = OrderFlow(
            self.view, self.orders, self.accounts, self.fees, self.cfg, emit, self.venue, self._now, self._schedule
        )
        self.matcher = self.flow.matcher
        self.liquidator = Liquidator(self.accounts, self.view, self.cfg.max_liquidation_fee_ppm, emit, self.venue)
        self.funding = FundingSimulator(
            self.accounts, self.view, self.liquidator, self.cfg.funding_grace_s, emit, self.venue,
            settlement=self.cfg.funding_settlement,
        )
        self._next_work_ns = 0
        self._ledger = PaperLedger(lambda: self.accounts)

    # -- contract: capabilities and lifecycle ------------------------------------------

    def capabilities(self) -> ExchangeCapabilities:
        """Every order type and time in force, conditional orders, isolated margin, hourly
        funding; simulated; consumes every market event."""
        return ExchangeCapabilities(
            order_types=frozenset(OrderType),
            time_in_force=frozenset(TimeInForce),
            reduce_only_requires_ioc=True,
            conditional_orders=True,
            isolated_margin=True,
            funding_interval_h=1,
            simulated=True,
            consumes_market_data=True,
        )

    async def connect(self) -> None:
        """Log the simulated account's settings (nothing to connect to)."""
        tiers = ", ".join(f">={t.min_volume_30d}: {t.maker}/{t.taker}" for t in self.cfg.fee_tiers)
        logger.info(
            f"paper exchange '{self.venue}': collateral {self.cfg.collateral} USD, fee tiers (maker/taker) {tiers}, "
            f"latency {self.cfg.latency_ms} ms, queue position {'on' if self.cfg.queue_position else 'off'}"
        )

    async def disconnect(self) -> None:
        """Nothing to close."""
        return None

    def account_ledger(self) -> PaperLedger:
        """This venue's one fill ledger: the read-only :class:`~perpbot.exchanges.paper.ledger.PaperLedger`
        summing the subaccounts' portfolios (the bot uses it as ``bot.portfolios[venue]`` and books
        nothing of this venue itself; see :meth:`perpbot.core.exchange.BaseExchangeClient.account_ledger`)."""
        return self._ledger

    # -- views kept for callers of the single-module simulator ----------------------------

    @property
    def portfolio(self) -> Portfolio:
        """The cross-margin parent subaccount's portfolio (subaccount 0)."""
        return self.accounts.subs[0].portfolio

    @property
    def subs(self) -> dict[int, Subaccount]:
        """Subaccounts by number (0 = cross parent, 128.. = isolated children)."""
        return self.accounts.subs

    @property
    def _orders(self) -> dict[int, SimOrder]:
        return self.orders.by_id

    @property
    def liquidations(self) -> list[Liquidation]:
        """Liquidations of the run (after a resume: since the exported tail)."""
        return self.liquidator.liquidations

    @property
    def funding_payments(self) -> list[FundingPayment]:
        """Funding payments of the run, USD amounts (after a resume: since the exported tail)."""
        return self.funding.payments

    @property
    def funding_missing(self) -> set[str]:
        """Markets with an open position at an hour but no funding rate in the data."""
        return self.funding.missing

    @property
    def rejections(self) -> int:
        """Orders rejected in this run (kept across a resume)."""
        return self.flow.rejections

    @rejections.setter
    def rejections(self, value: int) -> None:
        """Set the count (a resumed run restores it)."""
        self.flow.rejections = value

    def _position_risks(self, sub: Subaccount) -> list[PositionRisk]:
        return self.accounts.position_risks(sub)

    def _mark(self, ticker: str) -> Decimal | None:
        return self.view.mark(ticker)

    # -- small helpers -------------------------------------------------------------------

    def _now(self) -> int:
        return int(self.context.clock.now_ns())

    def _schedule(self) -> None:
        nxt = self.funding.next_due_ns()
        if self.orders.pending:
            nxt = min(nxt, self.orders.pending[0][0])
        if self.orders.next_expiry_ns:
            nxt = min(nxt, self.orders.next_expiry_ns)
        self._next_work_ns = nxt

    # -- contract: orders ------------------------------------------------------------------

    async def place_order(self, order: OrderRequest) -> OrderResult:
        """Validate and place ``order`` (rules: :mod:`perpbot.exchanges.paper.rules`).

        :returns: ``OrderResult``; ``success=False`` with the reason for a rejection (never raises
            for a venue-style rejection).
        """
        return self.flow.submit(order)

    def submit(self, order: OrderRequest) -> OrderResult:
        """Synchronous :meth:`place_order` (the simulator never blocks)."""
        return self.flow.submit(order)

    async def cancel_order(self, client_id: int, ticker: str) -> OrderResult:
        """Cancel a live order. With ``latency_ms`` the cancel reaches the book later (best
        effort, like dYdX): the result is ``BEST_EFFORT_CANCELED`` and ``OrderUpdate(CANCELED)``
        follows if the order is still open then. An unknown id gives ``success=False``."""
        return self.flow.cancel(client_id, ticker)


    async def cancel_all(self, ticker: str | None = None) -> list[OrderResult]:
        """Cancel every live order (of ``ticker``), one :meth:`cancel_order` each."""
        out = []
        for o in list(self.orders.by_id.values()):
            if ticker is None or o.ticker == ticker:
                out.append(await self.cancel_order(o.client_id, o.ticker))
        return out

    # -- market data -------------------------------------------------------------------------------

    def on_market_event(self, event) -> None:
        """Advance the simulation by one market event (already applied to the bot's state):
        timed work (funding, latency, expiry) first, then fills, triggers and the liquidation
        check of the event's market."""
        ts = event.ts_ns
        if type(event) is FundingRate and event.settled:
            self.funding.record_rate(event)
        if ts >= self._next_work_ns:
            self._timed_work(ts)
        ticker = event.ticker
        if ticker in self.flow.active:
            self._on_active(event, ticker, ts)

    def _on_active(self, ev, ticker: str, ts: int) -> None:
        t = type(ev)
        st = self.view.state(ticker)
        if t is BookDelta or t is BookSnapshot:
            if ticker in self.orders.resting:
                book = self.view.book(ticker)
                if book is not None:
                    self.matcher.on_book(ticker, book, ts)
        elif t is Trade:
            if ticker in self.orders.resting:
                self.matcher.on_trade(ev, ts)
        elif t is Bar:
            if ticker in self.orders.bar_takers or ticker in self.orders.resting:
                self.matcher.on_bar(ev, ts)
        if ticker in self.orders.conditionals:
            self.flow.check_triggers(ticker, ts)
        if ticker in self.accounts.pos_tickers and (
            st is None
            or (t is OraclePrice or t is MarketInfo)
            or (
                st.oracle_price is None
                # without an oracle the mark is the book's mid: only book events move it
                and (t is BookDelta or t is BookSnapshot or not (st.book.bids and st.book.asks))
            )
        ):
            mark = self.view.mark(ticker)
            if mark is not None and mark != self.accounts.marks.get(ticker):
                self.accounts.marks[ticker] = mark
                self.liquidator.check_market(ticker, ts)

    def _timed_work(self, ts: int) -> None:
        self.funding.advance(ts)
        self.flow.arrivals(ts)
        self.flow.expire(ts)
        self._schedule()

    # -- contract: state -------------------------------------------------------------------------------

    async def get_open_orders(self, ticker: str | None = None) -> list[OrderInfo]:
        """Live orders (pending, untriggered, resting, waiting for a bar), of ``ticker`` if given."""
        return [o.info(self.venue) for o in self.orders.by_id.values() if ticker is None or o.ticker == ticker]

    async def get_positions(self) -> dict[str, Position]:
        """Open positions by ticker over every subaccount (size in base units != 0)."""
        return self.accounts.positions()

    def balance(self) -> Balance:
        """Account totals over the parent and its isolated children, USD (exact chain margin)."""
        return self.accounts.balance(self._now())

    async def get_balance(self) -> Balance:
        """:meth:`balance`."""
        return self.balance()

    def subaccount_balances(self) -> dict[int, Balance]:
        """Per-subaccount figures (0 = cross parent, 128.. = isolated children), USD."""
        return self.accounts.subaccount_balances(self._now())

    async def get_fills_since(self, ts_ns: int) -> list:
        """The remembered fills (``fills_kept``) at or after ``ts_ns``."""
        return [f for f in self.accounts.fills if f.ts_ns >= ts_ns]

    def best_bid_offer(self, ticker: str) -> tuple[Decimal | None, Decimal | None]:
        """Best bid and ask of the bot's state of ``ticker``, USD (None when unknown)."""
        st = self.view.state(ticker)
        if st is not None:
            return st.best_bid_offer()
        book = self.view.book(ticker)
        if book is None:
            return None, None
        return book.best_bid_price(), book.best_ask_price()

    def liquidation_price(self, ticker: str) -> Decimal | None:
        """Oracle price at which the position in ``ticker`` would be liquidated, USD, or None
        (:meth:`perpbot.exchanges.paper.liquidation.Liquidator.liquidation_price`)."""
        return self.liquidator.liquidation_price(ticker)

    def funding_rate_for(self, ticker: str, hour_ns: int) -> tuple[Decimal, Decimal | None, str] | None:
        """The 1-hour rate that applies at the top of ``hour_ns``: ``(rate, oracle price or None, source)``
        (:meth:`perpbot.exchanges.paper.funding.FundingSimulator.rate_for`)."""
        return self.funding.rate_for(ticker, hour_ns)

    # -- persistence (resume a paper run) ----------------------------------------------------------------

    def export_state(self) -> dict:
        """Everything needed to resume this simulator, JSON-serialisable (Decimals as str);
        format: :mod:`perpbot.exchanges.paper.persistence`."""
        return persistence.export_state(self)

    def import_state(self, data: Mapping[str, Any]) -> None:
        """Restore :meth:`export_state` output (replaces the current state).

        :raises ValueError: for another state version.
        """
        persistence.import_state(self, data)

    def reset_derived(self) -> None:
        """Rebuild what is derived from the orders and positions (consumed liquidity, marks,
        trigger prices, markets needing work, the next timed work); after :meth:`import_state`."""
        self.matcher.consumed = {}
        self.accounts.marks = {}
        self.flow.trigger_px = {}
        self.accounts.pos_tickers = {t for s in self.accounts.subs.values() for t, p in s.portfolio.positions.items() if p.size}
        self.flow.active = set()
        orders = self.orders
        for t in set(orders.resting) | set(orders.conditionals) | set(orders.bar_takers) | self.accounts.pos_tickers:
            self.flow.refresh_active(t)
        self.flow.recompute_expiry()
