"""perpbot: the public API for plugin authors. Import everything from here.

Quick start: a strategy plugin is one module plus an entry point::

    # my_strategy.py
    from decimal import Decimal
    import attrs
    from perpbot import BaseStrategy, StrategyResult, OrderParams, Side, hookimpl, param

    @attrs.frozen
    class Params:
        threshold: Decimal = param(Decimal("60"), "enter above this momentum score (0-100)")

    class Momentum(BaseStrategy):
        name = "momentum"
        Params = Params

        async def should_execute(self, market_data) -> bool:
            return bool(market_data.tradable)

        async def execute_strategy(self, market_data) -> StrategyResult:
            for t in market_data.tradable:
                s = market_data.scores(t)
                if s and s.momentum > self.params.threshold and not market_data.position_size(t):
                    return StrategyResult.place(OrderParams(t, Side.BUY), reason=f"momentum {s.momentum:.0f}")
            return StrategyResult.nothing()

    @hookimpl
    def register_strategies(register):
        register(Momentum)

and in its ``pyproject.toml``::

    [project.entry-points.perpbot]
    momentum = "my_strategy"

``runbot.py plugins`` then lists it and ``runbot.py --strategy momentum`` runs it.
The pytest plugin ``perpbot.core.testing`` (installed with perpbot) gives plugin tests
the same fixtures the built-ins use (``run_replay``, ``sample_path``, ``make_market_data``).

Hooks: see :mod:`perpbot.core.hookspecs` (register_exchanges, register_strategies,
register_risk_policies, register_position_sizers, register_feeds,
register_commands, and the observer hooks).

What a strategy reads: ``execute_strategy(market_data)`` gets a :class:`MarketData`
(``tradable`` tickers, ``paused`` ones with reasons, ``positions``, ``open_orders``,
``balance``, ``marks``); ``market_data.markets[ticker]`` is that market's
:class:`MarketState`, whose docstring lists every public field (book, trades, bars,
last price, oracle, funding) and the helpers ``last_trade()``, ``last_bars(n)``,
``high_low(seconds)`` and ``is_bar_fed``.

Steering a run: an observer gets the read-only :class:`RunView`; a plugin that must pause
new entries, resume, close all or halt (as the REST API does) asks for the run's
:class:`BotControl` with ``control_of(bot)`` and calls ``request(ControlAction.PAUSE_ENTRIES,
source, reason)``: queued, carried out between two batches, recorded as a risk action with
its source; the future gives a :class:`ControlOutcome` (see :mod:`perpbot.core.bot.control`).

Risk policies: subclass :class:`RiskPolicy`, set ``name`` (the name in ``--risk`` and
``[risk.NAME]``) and ``Params`` (an attrs class of :func:`param` fields, like a
strategy's), and override ``check_order`` and/or ``check_account``. Register them with
``register_risk_policies``.

Exit codes of ``runbot``: 0 done, 1 other perpbot error, 2 configuration error (a flag,
key or parameter), 3 data error, 4 plugin error, 5 exchange error, 6 halted by a risk
policy (or a failed journal), 70 internal error (a bug: please report it), 130 Ctrl-C.

Packaging: everything is installed under the one name ``perpbot``: this module (the public
API), ``perpbot.core`` (the framework), ``perpbot.exchanges``, ``perpbot.strategies`` and
``perpbot.plugins`` (the built-in plugins, which use the same hooks as third parties),
and ``perpbot.cli`` (the ``runbot`` command). Plugin code imports only from ``perpbot``.
"""

from perpbot.core import __version__
from perpbot.core.book import OrderBook
from perpbot.core.bot.control import BotControl, ControlAction, ControlOutcome, ControlUnavailable, control_of
from perpbot.core.bot.resume import ResumeAPI
from perpbot.core.bot.view import RunView
from perpbot.core.clock import Clock, LiveClock, SimulatedClock
from perpbot.core.errors import (
    ConfigError,
    DataError,
    ExchangeError,
    InsufficientBalance,
    InsufficientLeverage,
    InsufficientMargin,
    InvalidOrder,
    OrderRejected,
    PerpbotError,
    PluginError,
    StrategyError,
    TemporaryExchangeError,
)
from perpbot.core.exchange import BaseExchangeClient, ExchangeCapabilities, ExchangeContext, MarketView
from perpbot.core.feed import BaseFeed
from perpbot.core.hookspecs import hookimpl
from perpbot.core.model import (
    Balance,
    Bar,
    BookDelta,
    BookSnapshot,
    FeedStatus,
    Fill,
    FundingPayment,
    FundingRate,
    Liquidation,
    Liquidity,
    MarginMode,
    Market,
    MarketInfo,
    OraclePrice,
    OrderInfo,
    OrderParams,
    OrderRequest,
    OrderResult,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Position,
    Quote,
    Side,
    TimeInForce,
    Trade,
)
from perpbot.core.params import NoParams, in_range, param, parse_params
from perpbot.core.report import RunSummary
from perpbot.core.policies import (
    APPROVE,
    PositionSizer,
    RiskAction,
    RiskDecision,
    RiskPolicy,
    RiskView,
    SizingResult,
    SizingView,
)
from perpbot.core.state import MarketData, MarketState
from perpbot.core.strategy import BaseStrategy, StrategyAction, StrategyContext, StrategyResult
from perpbot.core.wake import ScoreCrossing, Wake, WakeEvent

__all__ = [n for n in dir() if not n.startswith("_")]
