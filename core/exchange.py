"""The exchange client contract: the implementer that executes, never decides.

An exchange plugin registers a :class:`BaseExchangeClient` subclass through the
``register_exchanges`` hook. The bot talks to every venue only through this
contract, so the paper simulator and dYdX v4 are interchangeable.

Events flow back through the sink the bot installs with :meth:`set_event_sink`:
:class:`~perpbot.core.model.OrderUpdate`, :class:`~perpbot.core.model.Fill`,
:class:`~perpbot.core.model.FundingPayment` and :class:`~perpbot.core.model.Liquidation`.
"""

from __future__ import annotations

import abc
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

import attrs

from perpbot.core.model import (
    Balance,
    Market,
    MarketEvent,
    OrderInfo,
    OrderRequest,
    OrderResult,
    OrderType,
    Position,
    TimeInForce,
)

if TYPE_CHECKING:  # annotations only: core.exchange stays importable without the state module
    from perpbot.core.book import OrderBook
    from perpbot.core.state import MarketState


@attrs.frozen
class ExchangeCapabilities:
    """What a venue supports, so strategies and the bot can adapt without special cases.

    :param funding_interval_h: hours between funding payments (dYdX: 1).
    :param simulated: True for the paper simulator (no real money).
    :param consumes_market_data: True when the client needs every market event
        (:meth:`BaseExchangeClient.on_market_event`), as the simulator does.
    """

    order_types: frozenset = frozenset({OrderType.MARKET, OrderType.LIMIT})
    time_in_force: frozenset = frozenset({TimeInForce.GTT, TimeInForce.IOC, TimeInForce.POST_ONLY})
    reduce_only_requires_ioc: bool = True
    conditional_orders: bool = False
    isolated_margin: bool = False
    funding_interval_h: int = 1
    simulated: bool = False
    consumes_market_data: bool = False


EventSink = Callable[[Any], None]


class BaseExchangeClient(abc.ABC):
    """Contract for an exchange (venue) client.

    Subclasses set ``name`` and are constructed by the bot as
    ``cls(config: Mapping, context: ExchangeContext)``. ``config`` is the
    ``[exchange.<name>]`` table (plus CLI overrides); ``context`` gives the
    clock, the markets and the run's state directory.

    All methods that touch the network are ``async`` and must never block the
    event loop (run blocking SDK calls in a thread). Errors:
    :class:`~perpbot.core.errors.OrderRejected` for a refused order (never a silent
    success), :class:`~perpbot.core.errors.TemporaryExchangeError` for retryable
    failures.
    """

    name: ClassVar[str] = ""
    #: one line shown by ``runbot.py plugins``
    description: ClassVar[str] = ""

    def __init__(self, config: Mapping[str, Any], context: "ExchangeContext"):
        self.config = dict(config)
        self.context = context
        self._sink: EventSink | None = None

    # -- wiring -------------------------------------------------------------

    def set_event_sink(self, sink: EventSink) -> None:
        """The bot installs ``sink``; the client calls it with order updates, fills,
        funding payments and liquidations (on the event loop thread)."""
        self._sink = sink

    def emit(self, event: Any) -> None:
        """Hand an account event to the bot (no-op before a sink is installed)."""
        if self._sink is not None:
            self._sink(event)

    @abc.abstractmethod
    def capabilities(self) -> ExchangeCapabilities:
        """What this venue supports."""

    # -- lifecycle ----------------------------------------------------------

    def preflight(self) -> None:
        """Check configuration and credentials WITHOUT network access; raise a
        :class:`~perpbot.core.errors.ConfigError` (e.g. a missing wallet, a secret file readable by
        others, mainnet without the ``--live`` opt-in). The bot calls it before any feed
        or exchange touches the network, so such errors are reported first. Default: nothing."""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open connections and load account state. Raise on failure; do not half-connect."""

    @abc.abstractmethod
    async def disconnect(self) -> None:
        """Close connections. Must be safe to call twice."""

    # -- orders -------------------------------------------------------------

    @abc.abstractmethod
    async def place_order(self, order: OrderRequest) -> OrderResult:
        """Place ``order``. Returns ``OrderResult(success=False, error=...)`` when the venue
        rejects it; raises :class:`~perpbot.core.errors.TemporaryExchangeError` when the request
        could not be delivered."""

    @abc.abstractmethod
    async def cancel_order(self, client_id: int, ticker: str) -> OrderResult:
        """Cancel an open order by our client id."""

    async def cancel_all(self, ticker: str | None = None) -> list[OrderResult]:
        """Cancel every open order (of ``ticker``); default: one cancel per open order."""
        results = []
        for info in await self.get_open_orders(ticker):
            results.append(await self.cancel_order(info.client_id, info.ticker))
        return results

    # -- state --------------------------------------------------------------

    @abc.abstractmethod
    async def get_open_orders(self, ticker: str | None = None) -> list[OrderInfo]:
        """Open (resting or untriggered) orders."""

    @abc.abstractmethod
    async def get_positions(self) -> dict[str, Position]:
        """Open positions by ticker (size != 0)."""

    @abc.abstractmethod
    async def get_balance(self) -> Balance:
        """Collateral, equity and free collateral, USD."""

    async def get_fills_since(self, ts_ns: int) -> list:
        """Fills since ``ts_ns`` (restart reconciliation). Default: none known."""
        return []

    def account_ledger(self) -> Any:
        """The venue's own fill ledger, when the exchange books every fill itself (a simulator).

        A non-None result is a read-only object with the read interface of
        :class:`~perpbot.core.portfolio.Portfolio` (``positions``, ``stats``, ``collateral``,
        ``fees_paid``, ``funding_net``, ``realized_pnl``, ``liquidation_fees``, ``fills``,
        ``starting_collateral``, ``markets``, ``open_positions()``, ``unrealized_pnl(marks)``,
        ``equity(marks)``, ``margin_requirements(marks)``, ``balance(marks, ts_ns)``,
        ``gross_notional(marks)``; USD and base units) that always shows the exchange's present
        state. The bot then uses it as the venue's portfolio and books no fill, funding payment
        or liquidation fee of that venue a second time; it is never written to.

        :returns: that ledger, or None (the default: the bot books the venue's account events
            into its own Portfolio).
        """
        return None

    @abc.abstractmethod
    def best_bid_offer(self, ticker: str) -> tuple[Decimal | None, Decimal | None]:
        """Best bid and ask prices, USD (None when a side is empty or unknown)."""

    # -- market data (simulators) --------------------------------------------

    def on_market_event(self, event: MarketEvent) -> None:
        """Called for every market event when ``capabilities().consumes_market_data``."""

    def markets(self) -> Mapping[str, Market]:
        """Markets this client trades (defaults to the context's)."""
        return self.context.markets


class MarketView:
    """The read-only market view an exchange client gets from the bot (``ExchangeContext.view``).

    It answers, for ONE venue and by that venue's own ticker (``"BTC-USD"``, never the
    qualified ``"binance:BTC-USD"``), what the bot's market state holds at the moment of the
    call: the state already includes the market event being processed (the bot applies an
    event to its state before it hands the event to :meth:`BaseExchangeClient.on_market_event`).
    The view copies nothing; callers must not mutate what it returns. The paper simulator
    matches against :meth:`book` and values positions at :meth:`mark`.

    :param states: the bot's :class:`~perpbot.core.state.MarketState` objects by qualified
        ticker; the mapping is read at every call, so it may be filled after the view is built.
    :param markets: this venue's market table (ticker -> :class:`~perpbot.core.model.Market`),
        used for markets without a state.
    :param prefix: how this venue's tickers are qualified in ``states``: ``""`` for the primary
        venue, ``"<venue>:"`` for the others (:func:`perpbot.core.model.market_label`).
    """

    __slots__ = ("_states", "_markets", "_prefix")

    def __init__(self, states: Mapping[str, Any], markets: Mapping[str, Market], prefix: str = ""):
        self._states = states
        self._markets = markets
        self._prefix = prefix

    def state(self, ticker: str) -> "MarketState | None":
        """The bot's :class:`~perpbot.core.state.MarketState` of ``ticker``, or None when the bot
        does not follow that market."""
        return self._states.get(self._prefix + ticker)

    def book(self, ticker: str) -> "OrderBook | None":
        """The live L2 :class:`~perpbot.core.book.OrderBook` of ``ticker`` (prices USD, sizes in
        base units), or None when the bot does not follow that market."""
        st = self.state(ticker)
        return st.book if st is not None else None

    def market(self, ticker: str) -> Market | None:
        """Market parameters of ``ticker`` (tick/step size, margin fractions, oracle price): the
        state's copy (updated by ``MarketInfo`` events), else the venue's table, else None."""
        st = self.state(ticker)
        if st is not None:
            return st.market
        return self._markets.get(ticker)

    def mark(self, ticker: str) -> Decimal | None:
        """Mark price of ``ticker``, USD: the oracle price when the feed has one, else the mid,
        else the last trade or bar close (:meth:`perpbot.core.state.MarketState.mark_price`);
        when that is unknown or not positive, the market table's ``oracle_price``; else None."""
        st = self.state(ticker)
        if st is not None:
            m = st.mark_price()
            if m is not None and m > 0:
                return m
        market = self.market(ticker)
        return market.oracle_price if market is not None else None

    @classmethod
    def from_callables(
        cls,
        state_of: "Callable[[str], Any] | None",
        book_of: "Callable[[str], Any] | None",
        markets: Mapping[str, Market] | None,
    ) -> "MarketView":
        """A view over the older ``state_of(ticker)`` / ``book_of(ticker)`` callables (contexts
        built before :class:`MarketView` existed); either may be None (answers None)."""
        return _CallableMarketView(state_of, book_of, markets if markets is not None else {})

    @classmethod
    def of(cls, context: Any) -> "MarketView":
        """The view of an exchange context: its ``view``, else one over its ``state_of``/``book_of``
        callables (duck-typed contexts of older tests and plugins)."""
        view = getattr(context, "view", None)
        if view is not None:
            return view
        return cls.from_callables(
            getattr(context, "state_of", None), getattr(context, "book_of", None), getattr(context, "markets", None)
        )


class _CallableMarketView(MarketView):
    """:class:`MarketView` answering from ``state_of``/``book_of`` callables."""

    __slots__ = ("_state_of", "_book_of")

    def __init__(self, state_of, book_of, markets):
        super().__init__({}, markets)
        self._state_of = state_of
        self._book_of = book_of

    def state(self, ticker: str):
        return self._state_of(ticker) if self._state_of is not None else None

    def book(self, ticker: str):
        st = self.state(ticker)
        if st is not None:
            return st.book
        return self._book_of(ticker) if self._book_of is not None else None


@attrs.define
class ExchangeContext:
    """What the bot hands every exchange client at construction.

    :param clock: the run's clock (``now_ns()``: simulated in replays, wall clock live).
    :param markets: market parameters by ticker (shared, updated by MarketInfo events).
    :param view: the read-only :class:`MarketView` of the bot's market state for this venue
        (simulators match against its books). Built from ``state_of``/``book_of`` when not given.
    :param state_of: older form of ``view.state`` (kept for plugins and tests that pass or call
        it; set from the view when not given).
    :param book_of: older form of ``view.book`` (likewise).
    :param state_dir: a directory the client may write to (recorder, client-id store).
    :param options: ``live``, ``venue``, ``replay`` and ``run_id`` as the bot sets them.
    """

    clock: Any
    markets: dict
    book_of: Callable[[str], Any] | None = None
    state_of: Callable[[str], Any] | None = None
    state_dir: Any = None
    options: dict = attrs.Factory(dict)
    view: MarketView | None = None

    def __attrs_post_init__(self) -> None:
        if self.view is None:
            self.view = MarketView.from_callables(self.state_of, self.book_of, self.markets)
        if self.state_of is None:
            self.state_of = self.view.state
        if self.book_of is None:
            self.book_of = self.view.book
