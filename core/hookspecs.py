"""Every perpbot hook, grouped by lifecycle.

Plugins implement these with the ``hookimpl`` marker (``from perpbot import
hookimpl``). Implementations may accept fewer arguments than a spec lists, so
hooks grow by adding arguments, never by ``**kwargs``.

Registration hooks run once when the plugin manager loads; each receives a
``register`` callback that validates at once (unique name, right base class,
parameter schema) and raises :class:`~perpbot.core.errors.PluginError` naming the
plugin otherwise.

The ``configure`` hook is *historic*: it is called once with the run's configuration
when the bot is built (:meth:`perpbot.core.plugins.PluginManager.configure`), and a
plugin registered after that call still receives it, at its registration.

Observer hooks are called by the bot with keyword arguments. They may be plain
functions or return awaitables; the bot awaits them. An observer that raises
is reported and does not stop the bot, except :func:`on_order_submit`, whose
failure blocks the order (the journal must record intent before sending).

Hot paths (book updates, signal updates) are plain method calls, not hooks.

Every parameter and return value is annotated; the annotated types are imported for
type checkers only (``TYPE_CHECKING``), so this module imports nothing of perpbot at
run time. An observer may return ``None`` or an awaitable (the bot awaits it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import typer

    from perpbot.core.bot import TradingBot
    from perpbot.core.config import BotConfig
    from perpbot.core.exchange import BaseExchangeClient
    from perpbot.core.feed import BaseFeed
    from perpbot.core.model import Balance, Fill, FundingPayment, Liquidation, OrderRequest, OrderResult, OrderUpdate
    from perpbot.core.policies import PositionSizer, RiskDecision, RiskPolicy
    from perpbot.core.report import RunSummary
    from perpbot.core.strategy import BaseStrategy, StrategyResult

PROJECT = "perpbot"
#: the one entry-point group third-party plugins are loaded from
ENTRY_POINT_GROUP = "perpbot"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---------------------------------------------------------------------------
# Registration: called once when plugins load
# ---------------------------------------------------------------------------


@hookspec
def register_exchanges(register: Callable[[type[BaseExchangeClient]], type[BaseExchangeClient]]) -> None:
    """Register exchange clients.

    :param register: ``register(cls)`` with a :class:`perpbot.core.exchange.BaseExchangeClient`
        subclass that sets a unique ``name``.
    """


@hookspec
def register_strategies(register: Callable[[type[BaseStrategy]], type[BaseStrategy]]) -> None:
    """Register strategies.

    :param register: ``register(cls)`` with a :class:`perpbot.core.strategy.BaseStrategy`
        subclass that sets a unique ``name`` and optionally ``Params``.
    """


@hookspec
def register_risk_policies(register: Callable[[type[RiskPolicy]], type[RiskPolicy]]) -> None:
    """Register risk policies (links of the risk chain).

    :param register: ``register(cls)`` with a :class:`perpbot.core.policies.RiskPolicy` subclass.
    """


@hookspec
def register_position_sizers(register: Callable[[type[PositionSizer]], type[PositionSizer]]) -> None:
    """Register position sizers.

    :param register: ``register(cls)`` with a :class:`perpbot.core.policies.PositionSizer` subclass.
    """


@hookspec
def register_feeds(register: Callable[[type[BaseFeed]], type[BaseFeed]]) -> None:
    """Register market-data feeds.

    :param register: ``register(cls)`` with a :class:`perpbot.core.feed.BaseFeed` subclass.
    """


@hookspec
def register_commands(cli: typer.Typer) -> None:
    """Add subcommands to the ``runbot.py`` command line.

    :param cli: the :class:`typer.Typer` application; add commands with ``@cli.command()``.
    """


# ---------------------------------------------------------------------------
# Configuration: historic, so a plugin registered later still receives it
# ---------------------------------------------------------------------------


@hookspec(historic=True)
def configure(config: BotConfig) -> None:
    """The run's configuration, for plugins that need it at load time.

    Historic (pluggy ``historic=True``): called once per configuration when the bot is
    built (:meth:`perpbot.core.plugins.PluginManager.configure`, from
    :class:`perpbot.core.bot.TradingBot`), before any exchange, feed or strategy is
    constructed; a plugin registered after that call receives the same configuration
    when it registers. Return values are ignored. Must be a plain function (not
    ``async``).

    Raise :class:`~perpbot.core.errors.ConfigError` to refuse a configuration (one line
    naming the setting and value; exit code 2); any other exception is reported as a
    :class:`~perpbot.core.errors.PluginError` naming the plugin (exit code 4).

    :param config: the validated :class:`perpbot.core.config.BotConfig` (read it, never
        change it: e.g. ``config.state_dir``, ``config.tickers``, ``config.exchange``, the
        per-plugin tables ``config.strategies``/``config.risk``). A process may build
        several bots (tests do), so the last call is the current configuration.
    """


# ---------------------------------------------------------------------------
# Bot lifecycle: observers, sync or async
# ---------------------------------------------------------------------------


@hookspec
def on_bot_start(bot: TradingBot) -> Awaitable[None] | None:
    """The bot connected its exchanges and loaded markets; no strategy has run yet.

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    """


@hookspec(firstresult=True)
def reconcile_startup(bot: TradingBot) -> Awaitable[str | None] | str | None:
    """Reconcile persisted state with the exchange before any strategy runs.

    Stops at first non-None result. Return a short text summary of what was
    reconciled (or raise :class:`~perpbot.core.errors.PerpbotError` to refuse to start).

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    """


@hookspec
def on_bot_stop(bot: TradingBot, summary: RunSummary) -> Awaitable[None] | None:
    """The bot stopped (normal end, Ctrl-C, SIGTERM or HALT); orders were canceled.

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param summary: the end-of-run :class:`perpbot.core.report.RunSummary`.
    """


# ---------------------------------------------------------------------------
# Trading events: observers, sync or async
# ---------------------------------------------------------------------------


@hookspec
def on_order_submit(bot: TradingBot, order: OrderRequest) -> Awaitable[None] | None:
    """An order is about to be sent. Called and awaited BEFORE the exchange sees it.

    A raising implementation blocks the order.

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param order: the :class:`perpbot.core.model.OrderRequest` (client id assigned).
    """


@hookspec
def on_order_result(bot: TradingBot, order: OrderRequest, result: OrderResult) -> Awaitable[None] | None:
    """The exchange answered a placement.

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param order: the :class:`perpbot.core.model.OrderRequest`.
    :param result: the :class:`perpbot.core.model.OrderResult`.
    """


@hookspec
def on_order_cancel(bot: TradingBot, client_id: int, ticker: str, result: OrderResult) -> Awaitable[None] | None:
    """The bot asked the exchange to cancel an order and got an answer.

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param client_id: our client id.
    :param ticker: the (qualified) ticker.
    :param result: the :class:`perpbot.core.model.OrderResult` of the cancel.
    """


@hookspec
def on_order_update(bot: TradingBot, update: OrderUpdate) -> Awaitable[None] | None:
    """An order changed state.

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param update: the :class:`perpbot.core.model.OrderUpdate`.
    """


@hookspec
def on_fill(bot: TradingBot, fill: Fill) -> Awaitable[None] | None:
    """One of our orders filled (after the portfolio booked it).

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param fill: the :class:`perpbot.core.model.Fill`.
    """


@hookspec
def on_funding_payment(bot: TradingBot, payment: FundingPayment) -> Awaitable[None] | None:
    """Funding was paid or received on a position.

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param payment: the :class:`perpbot.core.model.FundingPayment` (amount USD, + received).
    """


@hookspec
def on_liquidation(bot: TradingBot, liquidation: Liquidation) -> Awaitable[None] | None:
    """A position was liquidated.

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param liquidation: the :class:`perpbot.core.model.Liquidation`.
    """


@hookspec
def on_risk_action(bot: TradingBot, decision: RiskDecision) -> Awaitable[None] | None:
    """A risk policy did not approve (REDUCE, REJECT, CLOSE_WORST, CLOSE_ALL or HALT).

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param decision: the :class:`perpbot.core.policies.RiskDecision` with its reason.
    """


@hookspec
def on_decision(bot: TradingBot, strategy: BaseStrategy, result: StrategyResult) -> Awaitable[None] | None:
    """A strategy finished a decision cycle.

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param strategy: the strategy instance.
    :param result: its :class:`perpbot.core.strategy.StrategyResult`.
    """


@hookspec
def on_checkpoint(bot: TradingBot) -> Awaitable[None] | None:
    """A resumable point: a batch, its account events and its decision cycle are done.

    Fired every ``checkpoint_interval_s`` of clock time (default: the snapshot interval),
    never per event. Journals save resumable state here.

    :param bot: the :class:`perpbot.core.bot.TradingBot` (see ``export_state``).
    """


@hookspec
def on_equity_snapshot(bot: TradingBot, ts_ns: int, balance: Balance) -> Awaitable[None] | None:
    """Periodic account snapshot (every ``snapshot_interval_s`` of clock time).

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param ts_ns: time, ns since the epoch.
    :param balance: the :class:`perpbot.core.model.Balance`.
    """
