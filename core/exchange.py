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
from typing import Any, Callable, ClassVar, Mapping

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

    @abc.abstractmethod
    def best_bid_offer(self, ticker: str) -> tuple[Decimal | None, Decimal | None]:
        """Best bid and ask prices, USD (None when a side is empty or unknown)."""

    # -- market data (simulators) --------------------------------------------

    def on_market_event(self, event: MarketEvent) -> None:
        """Called for every market event when ``capabilities().consumes_market_data``."""

    def markets(self) -> Mapping[str, Market]:
        """Markets this client trades (defaults to the context's)."""
        return self.context.markets


@attrs.define
class ExchangeContext:
    """What the bot hands every exchange client at construction.

    :param markets: market parameters by ticker (shared, updated by MarketInfo events).
    :param book_of: ``book_of(ticker)`` returns the bot's live L2 book for that market
        (simulators match against it).
    :param state_dir: a directory the client may write to (recorder, client-id store).
    """

    clock: Any
    markets: dict
    book_of: Callable[[str], Any] = lambda ticker: None
    state_of: Callable[[str], Any] = lambda ticker: None
    state_dir: Any = None
    options: dict = attrs.Factory(dict)
