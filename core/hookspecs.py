"""Every perpbot hook, grouped by lifecycle.

Plugins implement these with the ``hookimpl`` marker (``from perpbot import
hookimpl``). Implementations may accept fewer arguments than a spec lists, so
hooks grow by adding arguments, never by ``**kwargs``.

Registration hooks run once when the plugin manager loads; each receives a
``register`` callback that validates at once (unique name, right base class,
parameter schema) and raises :class:`~perpbot.core.errors.PluginError` naming the
plugin otherwise.

Observer hooks are called by the bot with keyword arguments. They may be plain
functions or return awaitables; the bot awaits them. An observer that raises
is reported and does not stop the bot, except :func:`on_order_submit`, whose
failure blocks the order (the journal must record intent before sending).

Hot paths (book updates, signal updates) are plain method calls, not hooks.
"""

from __future__ import annotations

import pluggy

PROJECT = "perpbot"
#: the one entry-point group third-party plugins are loaded from
ENTRY_POINT_GROUP = "perpbot"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---------------------------------------------------------------------------
# Registration: called once when plugins load
# ---------------------------------------------------------------------------


@hookspec
def register_exchanges(register):
    """Register exchange clients.

    :param register: ``register(cls)`` with a :class:`perpbot.core.exchange.BaseExchangeClient`
        subclass that sets a unique ``name``.
    """


@hookspec
def register_strategies(register):
    """Register strategies.

    :param register: ``register(cls)`` with a :class:`perpbot.core.strategy.BaseStrategy`
        subclass that sets a unique ``name`` and optionally ``Params``.
    """


@hookspec
def register_risk_policies(register):
    """Register risk policies (links of the risk chain).

    :param register: ``register(cls)`` with a :class:`perpbot.core.policies.RiskPolicy` subclass.
    """


@hookspec
def register_position_sizers(register):
    """Register position sizers.

    :param register: ``register(cls)`` with a :class:`perpbot.core.policies.PositionSizer` subclass.
    """


@hookspec
def register_feeds(register):
    """Register market-data feeds.

    :param register: ``register(cls)`` with a :class:`perpbot.core.feed.BaseFeed` subclass.
    """


@hookspec
def register_commands(cli):
    """Add subcommands to the ``runbot.py`` command line.

    :param cli: the :class:`typer.Typer` application; add commands with ``@cli.command()``.
    """


# ---------------------------------------------------------------------------
# Bot lifecycle: observers, sync or async
# ---------------------------------------------------------------------------


@hookspec
def on_bot_start(bot):
    """The bot connected its exchanges and loaded markets; no strategy has run yet.

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    """


@hookspec(firstresult=True)
def reconcile_startup(bot):
    """Reconcile persisted state with the exchange before any strategy runs.

    Stops at first non-None result. Return a short text summary of what was
    reconciled (or raise :class:`~perpbot.core.errors.PerpbotError` to refuse to start).

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    """


@hookspec
def on_bot_stop(bot, summary):
    """The bot stopped (normal end, Ctrl-C, SIGTERM or HALT); orders were canceled.

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param summary: the end-of-run :class:`perpbot.core.report.RunSummary`.
    """


# ---------------------------------------------------------------------------
# Trading events: observers, sync or async
# ---------------------------------------------------------------------------


@hookspec
def on_order_submit(bot, order):
    """An order is about to be sent. Called and awaited BEFORE the exchange sees it.

    A raising implementation blocks the order.

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param order: the :class:`perpbot.core.model.OrderRequest` (client id assigned).
    """


@hookspec
def on_order_result(bot, order, result):
    """The exchange answered a placement.

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param order: the :class:`perpbot.core.model.OrderRequest`.
    :param result: the :class:`perpbot.core.model.OrderResult`.
    """


@hookspec
def on_order_cancel(bot, client_id, ticker, result):
    """The bot asked the exchange to cancel an order and got an answer.

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param client_id: our client id.
    :param ticker: the (qualified) ticker.
    :param result: the :class:`perpbot.core.model.OrderResult` of the cancel.
    """


@hookspec
def on_order_update(bot, update):
    """An order changed state.

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param update: the :class:`perpbot.core.model.OrderUpdate`.
    """


@hookspec
def on_fill(bot, fill):
    """One of our orders filled (after the portfolio booked it).

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param fill: the :class:`perpbot.core.model.Fill`.
    """


@hookspec
def on_funding_payment(bot, payment):
    """Funding was paid or received on a position.

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param payment: the :class:`perpbot.core.model.FundingPayment` (amount USD, + received).
    """


@hookspec
def on_liquidation(bot, liquidation):
    """A position was liquidated.

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param liquidation: the :class:`perpbot.core.model.Liquidation`.
    """


@hookspec
def on_risk_action(bot, decision):
    """A risk policy did not approve (REDUCE, REJECT, CLOSE_WORST, CLOSE_ALL or HALT).

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param decision: the :class:`perpbot.core.policies.RiskDecision` with its reason.
    """


@hookspec
def on_decision(bot, strategy, result):
    """A strategy finished a decision cycle.

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param strategy: the strategy instance.
    :param result: its :class:`perpbot.core.strategy.StrategyResult`.
    """


@hookspec
def on_checkpoint(bot):
    """A resumable point: a batch, its account events and its decision cycle are done.

    Fired every ``checkpoint_interval_s`` of clock time (default: the snapshot interval),
    never per event. Journals save resumable state here.

    :param bot: the :class:`perpbot.core.bot.TradingBot` (see ``export_state``).
    """


@hookspec
def on_equity_snapshot(bot, ts_ns, balance):
    """Periodic account snapshot (every ``snapshot_interval_s`` of clock time).

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param ts_ns: time, ns since the epoch.
    :param balance: the :class:`perpbot.core.model.Balance`.
    """
