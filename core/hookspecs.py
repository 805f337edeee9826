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

Every bot-lifecycle and trading hook receives ``bot``: a :class:`~perpbot.core.bot.view.RunView`,
the documented read-only view of the run (run id, configuration, clock, markets and their
states, portfolios, positions, balances, marks, open orders, counters, the summary so far,
the halt reason). At run time it is a :class:`~perpbot.core.bot.view.RunViewProxy` of the
:class:`perpbot.core.bot.TradingBot`: reads go through to the live bot, a member
:class:`RunView` does not list or any assignment raises ``AttributeError``; the two calls it
may make are ``bot.halt(reason, source=...)`` and ``bot.request_stop(reason)``. State changes
at startup go through the :class:`~perpbot.core.bot.resume.ResumeAPI` that
:func:`reconcile_startup` receives as ``resume``. No plugin reads an attribute starting with
``_`` (``tests/test_plugin_privacy.py`` checks the built-in ones).

Steering a running bot (the REST API's control endpoints, ``perpbot.plugins.api``) is not an
observer's business: a plugin that must pause new entries, resume them, close all positions
or halt asks for the run's control route, ``control_of(bot)``
(:func:`perpbot.core.bot.control.control_of`, exported by :mod:`perpbot` with
:class:`~perpbot.core.bot.control.BotControl` and :class:`~perpbot.core.bot.control.ControlAction`),
typically in :func:`on_bot_start`, and calls ``control.request(action, source, reason)``. The
request is queued and carried out by the bot between two batches, recorded as a risk action
with its ``source`` (so :func:`on_risk_action` observers, the journal among them, see it),
and the returned future gives its :class:`~perpbot.core.bot.control.ControlOutcome`; a bot
that is not processing batches refuses with :class:`~perpbot.core.bot.control.ControlUnavailable`.

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

    from perpbot.core.analysis import Analyzer, SignalGate
    from perpbot.core.bot.resume import ResumeAPI
    from perpbot.core.bot.view import RunView
    from perpbot.core.config import BotConfig
    from perpbot.core.exchange import BaseExchangeClient
    from perpbot.core.feed import BaseFeed
    from perpbot.core.model import (
        Balance, CollateralTransfer, FeedStatus, Fill, FundingPayment, Liquidation, OrderRequest, OrderResult,
        OrderUpdate,
    )
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
def register_analyzers(register: Callable[[type[Analyzer]], type[Analyzer]]) -> None:
    """Register analysis modules (the analysis hub's analyzers, :mod:`perpbot.core.analysis`).

    :param register: ``register(cls)`` with a :class:`perpbot.core.analysis.Analyzer` subclass
        that sets a unique ``name`` (its feature names start with ``name + "."``).
    """


@hookspec(firstresult=True)
def load_signal_gate(path: str) -> SignalGate | None:
    """Load the ML model file at ``path`` as a :class:`~perpbot.core.analysis.SignalGate`.

    Stops at the first non-None result. Return None when ``path`` is not a model this plugin
    reads; raise :class:`~perpbot.core.errors.ConfigError` (one line naming the file and the
    problem, e.g. a feature-list mismatch) when it is one but cannot be used. Called by the
    wiring when a strategy's ``ml_model`` parameter is set; no plugin answering is one error line.

    :param path: the model file, as the user gave it.
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
def on_bot_start(bot: RunView) -> Awaitable[None] | None:
    """The bot connected its exchanges and loaded markets; no strategy has run yet.

    :param bot: the run's read-only :class:`~perpbot.core.bot.view.RunView`.
    """


@hookspec(firstresult=True)
def reconcile_startup(bot: RunView, resume: ResumeAPI) -> Awaitable[str | None] | str | None:
    """Reconcile persisted state with the exchange before any strategy runs.

    Stops at first non-None result. Return a short text summary of what was
    reconciled (or raise :class:`~perpbot.core.errors.PerpbotError` to refuse to start).
    Called after ``on_bot_start``: the exchanges are connected, the bot's portfolios hold
    their balances and positions, the ids of orders open on the account are reserved.

    :param bot: the run's read-only :class:`~perpbot.core.bot.view.RunView`.
    :param resume: the :class:`~perpbot.core.bot.resume.ResumeAPI`, the only way to change
        the bot here: reserve client ids, restore a checkpoint (exchanges, portfolios, open
        orders, runtime counters, the resume point in the feed), adopt or forget orders, book
        fills made while the bot was down, restore the strategy and show it missed events,
        send risk-exempt orders that flatten unknown positions. It stays valid for the run
        (the journal retries pending flattening orders with it).
    """


@hookspec
def on_bot_stop(bot: RunView, summary: RunSummary) -> Awaitable[None] | None:
    """The bot stopped (normal end, Ctrl-C, SIGTERM or HALT); orders were canceled.

    :param bot: the run's read-only :class:`~perpbot.core.bot.view.RunView`.
    :param summary: the end-of-run :class:`perpbot.core.report.RunSummary`.
    """


# ---------------------------------------------------------------------------
# Trading events: observers, sync or async
# ---------------------------------------------------------------------------


@hookspec
def on_order_submit(bot: RunView, order: OrderRequest) -> Awaitable[None] | None:
    """An order is about to be sent. Called and awaited BEFORE the exchange sees it.

    A raising implementation blocks the order.

    :param bot: the run's read-only :class:`~perpbot.core.bot.view.RunView`.
    :param order: the :class:`perpbot.core.model.OrderRequest` (client id assigned).
    """


@hookspec
def on_order_result(bot: RunView, order: OrderRequest, result: OrderResult) -> Awaitable[None] | None:
    """The exchange answered a placement.

    :param bot: the run's read-only :class:`~perpbot.core.bot.view.RunView`.
    :param order: the :class:`perpbot.core.model.OrderRequest`.
    :param result: the :class:`perpbot.core.model.OrderResult`.
    """


@hookspec
def on_order_cancel(bot: RunView, client_id: int, ticker: str, result: OrderResult) -> Awaitable[None] | None:
    """The bot asked the exchange to cancel an order and got an answer.

    :param bot: the run's read-only :class:`~perpbot.core.bot.view.RunView`.
    :param client_id: our client id.
    :param ticker: the (qualified) ticker.
    :param result: the :class:`perpbot.core.model.OrderResult` of the cancel.
    """


@hookspec
def on_order_update(bot: RunView, update: OrderUpdate) -> Awaitable[None] | None:
    """An order changed state.

    :param bot: the run's read-only :class:`~perpbot.core.bot.view.RunView`.
    :param update: the :class:`perpbot.core.model.OrderUpdate`.
    """


@hookspec
def on_fill(bot: RunView, fill: Fill) -> Awaitable[None] | None:
    """One of our orders filled (after the portfolio booked it).

    :param bot: the run's read-only :class:`~perpbot.core.bot.view.RunView`.
    :param fill: the :class:`perpbot.core.model.Fill`.
    """


@hookspec
def on_funding_payment(bot: RunView, payment: FundingPayment) -> Awaitable[None] | None:
    """Funding was paid or received on a position.

    :param bot: the run's read-only :class:`~perpbot.core.bot.view.RunView`.
    :param payment: the :class:`perpbot.core.model.FundingPayment` (amount USD, + received).
    """


@hookspec
def on_liquidation(bot: RunView, liquidation: Liquidation) -> Awaitable[None] | None:
    """A position was liquidated.

    :param bot: the run's read-only :class:`~perpbot.core.bot.view.RunView`.
    :param liquidation: the :class:`perpbot.core.model.Liquidation`.
    """


@hookspec
def on_collateral_transfer(bot: RunView, transfer: CollateralTransfer) -> Awaitable[None] | None:
    """The venue client moved USDC between subaccounts or the wallet (confirmed or failed),
    e.g. into an isolated position's child subaccount before an order and back after it closed.

    :param bot: the run's read-only :class:`~perpbot.core.bot.view.RunView`.
    :param transfer: the :class:`perpbot.core.model.CollateralTransfer`.
    """


@hookspec
def on_risk_action(bot: RunView, decision: RiskDecision) -> Awaitable[None] | None:
    """A risk policy did not approve (REDUCE, REJECT, CLOSE_WORST, CLOSE_ALL or HALT).

    :param bot: the run's read-only :class:`~perpbot.core.bot.view.RunView`.
    :param decision: the :class:`perpbot.core.policies.RiskDecision` with its reason.
    """


@hookspec
def on_feed_status(bot: RunView, status: FeedStatus) -> Awaitable[None] | None:
    """The feed reported a market's health (a :class:`~perpbot.core.model.FeedStatus` event).

    Called by the event loop (``perpbot/core/bot/loop.py``) after the batch holding the status
    was applied to market state, once per status, for the run's markets only (``status.ticker``
    is qualified). ``healthy`` False pauses decisions on the market until a fresh book snapshot
    arrives; :meth:`RunView.paused` tells when it is usable again (a healthy status alone is not
    enough). Stale or crossed books raise no status: read :meth:`RunView.paused` for those.

    :param bot: the run's read-only :class:`~perpbot.core.bot.view.RunView`.
    :param status: the :class:`perpbot.core.model.FeedStatus` (``ts_ns`` clock time, ``reason``).
    """


@hookspec
def on_decision(bot: RunView, strategy: BaseStrategy, result: StrategyResult) -> Awaitable[None] | None:
    """A strategy finished a decision cycle.

    :param bot: the run's read-only :class:`~perpbot.core.bot.view.RunView`.
    :param strategy: the strategy instance.
    :param result: its :class:`perpbot.core.strategy.StrategyResult`.
    """


@hookspec
def on_checkpoint(bot: RunView) -> Awaitable[None] | None:
    """A resumable point: a batch, its account events and its decision cycle are done.

    Fired every ``checkpoint_interval_s`` of clock time (default: the snapshot interval),
    never per event. Journals save resumable state here.

    :param bot: the run's read-only :class:`~perpbot.core.bot.view.RunView` (see ``export_state``).
    """


@hookspec
def on_equity_snapshot(bot: RunView, ts_ns: int, balance: Balance) -> Awaitable[None] | None:
    """Periodic account snapshot (every ``snapshot_interval_s`` of clock time).

    :param bot: the run's read-only :class:`~perpbot.core.bot.view.RunView`.
    :param ts_ns: time, ns since the epoch.
    :param balance: the :class:`perpbot.core.model.Balance`.
    """
