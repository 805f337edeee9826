"""The strategy contract: the manager that decides what, when and why.

A strategy plugin registers a :class:`BaseStrategy` subclass with the
``register_strategies`` hook. The bot calls :meth:`~BaseStrategy.should_execute`
then :meth:`~BaseStrategy.execute_strategy` with a :class:`~perpbot.core.state.MarketData`
view once per decision cycle, and routes the returned
:class:`StrategyResult` through the position sizer and the risk chain.

Decision cycles come every ``decision_interval_s`` of market time, and, for a strategy that
asks for it (``wake_on`` / :meth:`~BaseStrategy.wake`, a :class:`~perpbot.core.wake.Wake`),
right after an event that wakes it: a top-of-book change, a trade, a score crossing a
threshold (:mod:`perpbot.core.wake`); ``woken_by`` then says which.

A strategy never talks to an exchange. It cannot tell replay, paper and live
apart. Exceptions it raises are contained by the bot (reported, counted, the
cycle skipped) and cannot corrupt the bot's state.
"""

from __future__ import annotations

import abc
import enum
from typing import Any, ClassVar, Mapping

import attrs

from perpbot.core.model import Fill, OrderParams, OrderUpdate
from perpbot.core.params import NoParams, describe_params
from perpbot.core.wake import SCHEDULE, ScoreCrossing, Wake, WakeEvent

__all__ = [
    "BaseStrategy", "ScoreCrossing", "StrategyAction", "StrategyContext", "StrategyResult", "Wake", "WakeEvent",
]


class StrategyAction(enum.Enum):
    """What a :class:`StrategyResult` asks for."""

    NONE = "NONE"
    PLACE_ORDERS = "PLACE_ORDERS"
    CANCEL_ORDERS = "CANCEL_ORDERS"
    REPLACE_ORDERS = "REPLACE_ORDERS"  # cancel ``cancels`` then place ``orders``
    CLOSE_POSITIONS = "CLOSE_POSITIONS"  # reduce-only market orders closing ``close`` tickers
    WAIT = "WAIT"


@attrs.frozen
class StrategyResult:
    """A strategy's decision for one cycle.

    :param orders: order intents (sized later when ``size`` is None).
    :param cancels: ``(client_id, ticker)`` pairs to cancel.
    :param close: tickers whose positions to close with reduce-only market orders.
    :param wait_s: seconds (clock time) before the next decision cycle; None = default cadence.
    :param reason: why, in a trader's words (logged and journaled).
    """

    action: StrategyAction = StrategyAction.NONE
    orders: tuple = ()
    cancels: tuple = ()
    close: tuple = ()
    wait_s: float | None = None
    reason: str = ""

    @classmethod
    def nothing(cls, reason: str = "") -> "StrategyResult":
        """A result that does nothing this cycle; ``reason`` is shown and journaled."""
        return cls(StrategyAction.NONE, reason=reason)

    @classmethod
    def place(cls, *orders: OrderParams, reason: str = "") -> "StrategyResult":
        """A result that places ``orders`` (:class:`~perpbot.core.model.OrderParams` intents;
        the bot sizes and risk-checks each)."""
        return cls(StrategyAction.PLACE_ORDERS, orders=tuple(orders), reason=reason)


@attrs.define
class StrategyContext:
    """Given to a strategy at construction.

    :param tickers: the dYdX tickers this run trades.
    :param clock: the injected clock.
    :param venues: exchange names available (first is the primary) and their capabilities.
    :param logger: a loguru logger bound to the strategy name.
    :param decision_interval_s: the bot's default decision cadence, seconds.
    """

    tickers: tuple
    clock: Any
    markets: dict
    venues: dict = attrs.Factory(dict)
    logger: Any = None
    decision_interval_s: float = 1.0
    options: dict = attrs.Factory(dict)


class BaseStrategy(abc.ABC):
    """Contract for a strategy.

    Subclasses set ``name``, optionally ``Params`` (an attrs class, see
    :mod:`perpbot.core.params`) and implement the two decision methods. The bot builds
    them as ``cls(params: Params, context: StrategyContext)``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    #: True when the strategy picks its own markets from what the venues list: a run that names
    #: no tickers (or ``tickers = "all"`` / ``--ticker all``) asks every venue for its markets
    #: before subscribing (:func:`perpbot.core.bot.wiring.discover_tickers`) and trades what
    #: :meth:`select_markets` returns. False: such a run trades ``DEFAULT_TICKERS`` (BTC-USD,
    #: ETH-USD), and ``all`` is an error.
    discovers_markets: ClassVar[bool] = False
    #: what wakes the strategy between scheduled cycles: a :class:`~perpbot.core.wake.Wake` or its
    #: text form (``"bbo,trade"``, ``"score:momentum:70"``; see :mod:`perpbot.core.wake`); None
    #: or "": the schedule only (every ``decision_interval_s``). :meth:`wake` may decide per run.
    wake_on: ClassVar[Any] = None
    #: the trigger of the decision in progress (:class:`~perpbot.core.wake.WakeEvent`, kind
    #: ``"schedule"`` for the scheduled cycle), set by the bot before ``should_execute``
    woken_by: WakeEvent = SCHEDULE

    def __init__(self, params: Any, context: StrategyContext):
        self.params = params
        self.context = context
        self.log = getattr(context, "logger", None)

    def wake(self) -> Wake | None:
        """What wakes this strategy by events (asked once, when the bot is built).

        Default: ``wake_on`` parsed (:meth:`perpbot.core.wake.Wake.parse`). Override to take it
        from a parameter (the sniper's ``wake_on``). None or an empty spec: the schedule only.

        :raises ValueError: a malformed text form (one line naming the token).
        """
        return Wake.parse(self.wake_on) if self.wake_on else None

    # -- decisions ----------------------------------------------------------

    @abc.abstractmethod
    async def should_execute(self, market_data) -> bool:
        """Is there anything to decide now? Cheap; called every decision cycle."""

    @abc.abstractmethod
    async def execute_strategy(self, market_data) -> StrategyResult:
        """Decide what to do; called when :meth:`should_execute` returned True."""

    def get_strategy_name(self) -> str:
        """The registered name (the class attribute ``name``)."""
        return self.name

    @classmethod
    def get_required_parameters(cls) -> list[str]:
        """Names of parameters without a default (must be configured)."""
        return [p["name"] for p in describe_params(cls.Params) if p["required"]]

    @classmethod
    def describe_parameters(cls) -> list[dict]:
        """One dict per field of ``Params``: ``{name, type, default, required, help}`` (see
        :func:`perpbot.core.params.describe_params`), for documentation and tools."""
        return describe_params(cls.Params)

    @classmethod
    def select_markets(cls, params: Any, listings: Mapping[str, tuple], primary_venue: str) -> tuple:
        """The run's tickers, chosen from what the venues list (strategies with ``discovers_markets``).

        Called by the wiring before the strategy is built, when the run names no tickers.

        :param params: the strategy's parsed ``Params``.
        :param listings: venue -> the unqualified tickers it lists (``"BTC-USD"``), one entry per
            venue of the run in configuration order (the primary venue first).
        :param primary_venue: the run's primary venue (its tickers stay unqualified).
        :returns: the tickers to trade: ``"BTC-USD"`` on the primary venue, ``"venue:BTC-USD"``
            on another; at least one.
        :raises ConfigError: nothing to trade, or a requested market not listed (one line).
        """
        raise NotImplementedError(f"strategy {cls.name!r} does not discover its markets")

    # -- feedback (optional) ------------------------------------------------

    def on_fill(self, fill: Fill) -> None:
        """One of this strategy's orders filled (called before the next decision)."""

    def on_order_update(self, update: OrderUpdate) -> None:
        """One of this strategy's orders changed state."""

    def on_funding_payment(self, payment) -> None:
        """Funding was booked on one of the positions (ticker qualified for other venues)."""

    def on_start(self, market_data) -> None:
        """Called once after the exchange is connected and state reconciled."""

    # -- persistence (journal) ----------------------------------------------

    def get_state(self) -> Mapping[str, Any] | None:
        """JSON-serialisable state to persist across restarts (None: nothing to keep)."""
        return None

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`get_state` returned in an earlier run."""

    def summary_lines(self) -> list[str]:
        """Extra lines for the end-of-run summary (e.g. grid cycles, per-leg funding)."""
        return []
