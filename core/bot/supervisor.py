"""The :class:`TradingBot` supervisor: coordination only, no trading decisions.

It loads the feed, the exchange client(s), the strategy, the position sizer and
the risk chain through the plugin registry (:mod:`perpbot.core.bot.wiring`), then runs
one loop (:mod:`perpbot.core.bot.loop`):

1. each market event is applied to that market's :class:`~perpbot.core.state.MarketState`
   and signal engine, and handed to simulating exchange clients (hot path:
   plain method calls, no hooks, no logging);
2. account events the exchanges emit (order updates, fills, funding,
   liquidations) are booked into the portfolio, shown to the strategy and
   broadcast to observer hooks (:mod:`perpbot.core.bot.account`);
3. every ``decision_interval_s`` of clock time, the risk chain checks the
   account, then the strategy decides on a :class:`~perpbot.core.state.MarketData`
   view (:mod:`perpbot.core.bot.decisions`); intents are sized, checked by every risk
   policy, announced (``on_order_submit``: the journal records intent first) and sent
   (:mod:`perpbot.core.bot.orders`).

Shutdown (end of data, Ctrl-C, SIGTERM, HALT) cancels open orders, lets
observers flush state (``on_bot_stop``) and returns a
:class:`~perpbot.core.report.RunSummary` (:mod:`perpbot.core.bot.summary`). Replay drives a
:class:`~perpbot.core.clock.SimulatedClock` from the data, live trading a
:class:`~perpbot.core.clock.LiveClock`; a strategy cannot tell them apart. Checkpoints and
resuming: :mod:`perpbot.core.bot.resume`.

The bot holds the run's public state (the attributes :class:`~perpbot.core.bot.view.RunView`
documents; the queries over it: :mod:`perpbot.core.bot.queries`); each concern's collaborator
keeps its own timers and queues.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any, Callable, Coroutine

from loguru import logger

from perpbot.core.balance import BalanceManager
from perpbot.core.bot.account import AccountEvents
from perpbot.core.bot.calls import ObserverCalls, StrategyCalls
from perpbot.core.bot.control import BotControl, register_control
from perpbot.core.bot.decisions import DecisionCycle
from perpbot.core.bot.loop import EventLoop
from perpbot.core.bot.orders import OrderRouter
from perpbot.core.bot.queries import RunQueries
from perpbot.core.bot.resume import Checkpoints, ResumeAPI
from perpbot.core.bot.summary import build_summary
from perpbot.core.bot.support import ClientIdAllocator, await_me_maybe
from perpbot.core.bot.wiring import policies, wire
from perpbot.core.config import BotConfig
from perpbot.core.bot.view import RunViewProxy
from perpbot.core.feed import ProgressUpdate
from perpbot.core.metrics import DrawdownTracker, TradeLedger
from perpbot.core.model import ZERO, Fill, OrderInfo, OrderParams, OrderRequest, OrderResult
from perpbot.core.policies import RiskDecision
from perpbot.core.portfolio import Portfolio
from perpbot.core.report import RunSummary
from perpbot.core.state import MarketData, MarketState
from perpbot.core.strategy import StrategyResult
from perpbot.core.tasks import install_stop_signals, remove_signals


class TradingBot(RunQueries):
    """Strategy-agnostic supervisor: the public facade of a run.

    Its read-only queries (``marks``, ``balance``, ``positions``, ``market_data``,
    ``risk_view``, ...) live in :class:`~perpbot.core.bot.queries.RunQueries`.

    :param config: the validated :class:`~perpbot.core.config.BotConfig`.
    :param plugin_manager: a loaded :class:`~perpbot.core.plugins.PluginManager`.
    :param clock: a clock to use instead of the default (simulated for replay feeds).
    :raises ConfigError: unknown exchange, strategy, feed, ticker, sizer, risk
        policy, or invalid parameters (one line naming the thing and the value).
    """

    def __init__(self, config: BotConfig, plugin_manager, *, clock=None):
        self.config = config
        self.pm = plugin_manager
        # the historic configure hook: before anything is built, and kept for later plugins
        plugin_manager.configure(config)
        self.run_id = uuid.uuid4().hex[:12]
        self.state_dir = Path(config.state_dir)

        wired = wire(config, plugin_manager, run_id=self.run_id, clock=clock)
        self.clock = wired.clock
        self.feed = wired.feed
        self.exchanges: dict[str, Any] = wired.exchanges
        self.exchange = self.exchanges[config.primary_venue]
        self.markets = wired.markets
        self.states: dict[str, MarketState] = wired.states
        self.strategy = wired.strategy
        self.sizer, self.risk_chain = policies(config, plugin_manager, self)

        # runtime state (see RunView) -------------------------------------
        self.portfolios: dict[str, Portfolio] = {}
        self.portfolio: Portfolio | None = None
        #: per venue: the exchange's own balance, cached for the sizers (seed 004)
        self.balance_managers: dict[str, BalanceManager] = {}
        self.open_orders: dict[int, OrderInfo] = {}
        self.orders: dict[int, OrderRequest] = {}  # every order this run sent (client id -> request)
        self.client_ids = ClientIdAllocator()
        self.risk_log: deque[RiskDecision] = deque(maxlen=200)
        #: market events applied, by the benchmark's definition: each price-level entry of a depth
        #: update, each trade, each quote (and each bar, oracle price, funding rate); snapshots,
        #: market info and feed status are not counted (architecture.md, Benchmarks). The one
        #: unit users see: ``max_events`` (``--max-events``) and the summary's "events" count it
        self.events_processed = 0
        #: feed items (the members of the feed's batches: one BookDelta per depth message, one
        #: Trade, ...) read: an internal cursor, the unit of ``resume_from_event`` that checkpoints
        #: store; never shown as "events"
        self.events_read = 0
        self.halted: str | None = None
        #: why new entries are paused (a controller asked: :mod:`perpbot.core.bot.control`), or None
        self.entries_paused: str | None = None
        self.stop_reason = ""
        self.resume_from_ns = 0  # a reconciler may set it: replayed events before this time are skipped
        #: set through ResumeAPI.resume_from_event: the first N feed items (see ``events_read``; not
        #: events) only warm up market state (not simulators, no decisions), so a resumed replay
        #: continues exactly where the checkpoint was taken
        self.resume_from_event = 0
        self.resumed = False  # set when a reconciler restored runtime state (import_state)
        self.decisions = 0
        self.orders_sent = 0
        self.orders_rejected = 0
        self.strategy_errors = 0
        self.consecutive_failures = 0
        self.last_fill_ns = 0
        self.last_activity_ns = 0
        self.start_equity = ZERO
        self.peak_equity = ZERO
        self.day_start_equity = ZERO
        self.drawdown = DrawdownTracker()
        #: round trips, wins and realized PnL per order tag (core/metrics.py; the report uses the same)
        self.ledger = TradeLedger()
        self.start_ns = 0
        self.notes: list[str] = []

        # collaborators, one per concern ---------------------------------------
        self._observers = ObserverCalls(plugin_manager, RunViewProxy(self), verbose=config.verbose)
        # notify() on this bot is the dispatcher's own (the method below, without its call per hook)
        self.notify = self._observers.notify
        self._strategy_calls = StrategyCalls(self)
        self._account = AccountEvents(self, self._strategy_calls)
        self._orders = OrderRouter(self, self._account)
        self._cycle = DecisionCycle(self, self._orders, self._strategy_calls)
        self._events = EventLoop(self, wired.engines, wired.consumers, self._account, self._cycle)
        self._checkpoints = Checkpoints(self, {"bot": self, "cycle": self._cycle, "loop": self._events})
        self._resume = ResumeAPI(self, self._account, self._orders, self._strategy_calls, view=self._observers.view)
        #: the narrow control surface (pause entries, resume, close all, halt); plugins reach it
        #: with perpbot.core.bot.control.control_of(view)
        self.control = BotControl(self, self._orders)
        register_control(self._observers.view, self.control)
        self._stop: asyncio.Event | None = None  # created in start()
        self._wall_start = 0.0
        self._running = False
        self._stopping = False

    # ------------------------------------------------------------------
    # the read-only view (RunView)
    # ------------------------------------------------------------------

    @property
    def view(self) -> RunViewProxy:
        """The read-only :class:`~perpbot.core.bot.view.RunView` of this run: the very object
        observer hooks receive as ``bot`` (so plugins that key state by it can be looked up)."""
        return self._observers.view

    @property
    def client_id_high(self) -> int:
        """Every client id this run handed out or reserved is below this (before a wrap)."""
        return self.client_ids.high

    @property
    def observer_errors(self) -> dict[tuple, int]:
        """(plugin, hook, error type) -> how many times an observer raised it (logged once)."""
        return self._observers.errors

    @property
    def strategy_error_counts(self) -> dict[tuple, int]:
        """(method, error type, " at file:line") -> how many times the strategy raised it (logged once)."""
        return self._strategy_calls.counts

    def notify(self, hook: str, **kwargs) -> Coroutine[Any, Any, list]:
        """Call an observer hook with ``bot=self``, each implementation on its own, and await results.

        See :meth:`perpbot.core.bot.calls.ObserverCalls.notify` (a failing observer is
        contained and counted, except in ``on_order_submit`` or when it halts trading).
        Await the answer: it is that method's coroutine itself (no frame of its own here).

        :returns: a coroutine giving the implementations' non-None results, awaited, in pluggy's call order.
        """
        return self._observers.notify(hook, **kwargs)

    # ------------------------------------------------------------------
    # run
    # ------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop after the current batch (signal handlers call this); the first reason wins."""
        if not self.stop_reason:
            self.stop_reason = reason
        if self._stop is not None:
            self._stop.set()

    def add_progress_observer(self, observer: Callable[[ProgressUpdate], None]) -> None:
        """Call ``observer(update)`` with a :class:`~perpbot.core.feed.ProgressUpdate` while the run goes.

        Called every 256 batches and once at the end (``update.final``). An observer that raises
        is logged once and dropped; the run goes on. (The CLI's progress bar: perpbot/progress.py.)
        """
        self._events.add_progress_observer(observer)

    def _install_signals(self) -> list:
        installed = install_stop_signals(self.request_stop)
        for policy in self.risk_chain:
            install = getattr(policy, "install", None)
            if callable(install):
                install(asyncio.get_running_loop())
        return installed

    async def start(self) -> None:
        """Connect everything and reconcile; no strategy decision happens before this returns.

        Order: feed start; exchanges connect (their account events queue up); balances and
        positions load into one :class:`~perpbot.core.portfolio.Portfolio` per venue; open
        orders' client ids are reserved (not adopted); ``on_bot_start``; ``reconcile_startup``
        (with the :class:`~perpbot.core.bot.resume.ResumeAPI`); queued events are processed;
        the equity reference points are set unless a checkpoint was restored.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._stop = asyncio.Event()
        await self.feed.start()
        for venue, ex in self.exchanges.items():
            ex.set_event_sink(self._account.sink(venue))
            await ex.connect()
        await self._account.load()
        # orders already open on the account are NOT adopted here: a reconciler (the journal)
        # adopts the ones this bot placed; the ids are reserved so they are never reused
        for ex in self.exchanges.values():
            self.client_ids.reserve(info.client_id for info in await ex.get_open_orders())
        await self.notify("on_bot_start")
        summary = self.pm.hook.reconcile_startup(bot=self._resume.view, resume=self._resume)
        summary = await await_me_maybe(summary)
        if summary:
            logger.info(f"reconciled: {summary}")
        if self._account.pending:
            await self._account.drain()
        if not self.resumed:
            self.start_equity = self.total_equity()
            self.peak_equity = self.start_equity
            self.day_start_equity = self.start_equity

    async def run(self) -> RunSummary:
        """Run until the data ends, a stop is requested or a risk policy halts.

        :returns: the :class:`~perpbot.core.report.RunSummary`.
        """
        self._wall_start = time.perf_counter()
        installed = self._install_signals()
        try:
            await self.start()
            self._running = True
            if not self.resumed and not self.clock.simulated:
                self.start_ns = self.clock.now_ns()  # replays take the first event's time
            self.strategy.on_start(self.market_data())
            await self._events.run(self._stop)
        finally:
            self.control.close("the bot stopped: " + (self.stop_reason or "its loop ended"))
            remove_signals(installed)
        return await self.shutdown()

    # ------------------------------------------------------------------
    # checkpoints
    # ------------------------------------------------------------------

    def export_state(self) -> dict:
        """The bot's runtime counters as JSON-ready values (Decimals as strings); see
        :meth:`perpbot.core.bot.resume.Checkpoints.export_state`."""
        return self._checkpoints.export_state()

    def import_state(self, state: dict) -> None:
        """Restore what :meth:`export_state` returned; marks the bot as resumed.

        Plugins restore a checkpoint through the ``resume`` API of ``reconcile_startup``.
        """
        self._checkpoints.import_state(state)

    # ------------------------------------------------------------------
    # account events and orders (the collaborators do the work)
    # ------------------------------------------------------------------

    def book_fill(self, venue: str, fill: Fill) -> None:
        """Book a fill into the venue's portfolio and the open-order table (no hooks).

        Reconcilers use :meth:`ResumeAPI.book_fills_while_down
        <perpbot.core.bot.resume.ResumeAPI.book_fills_while_down>` for fills made while the bot was down.
        """
        self._account.book_fill(venue, fill)

    async def execute_result(self, result: StrategyResult, md: MarketData) -> None:
        """Carry out a strategy's decision: cancels, closes, then new orders."""
        await self._orders.execute_result(result, md)

    async def cancel_order(self, client_id: int, ticker: str | None = None) -> OrderResult | None:
        """Cancel one order (see :meth:`perpbot.core.bot.orders.OrderRouter.cancel_order`)."""
        return await self._orders.cancel_order(client_id, ticker)

    async def submit(
        self, intent: OrderParams, md: MarketData | None = None, *, risk_exempt: bool = False, origin: str | None = None
    ) -> OrderResult | None:
        """Size, risk-check, announce and send one order intent.

        :param origin: who asked for the order, named in every log line that drops it
            (default: ``"strategy <name>"``, or ``"bot"`` for a risk-exempt order).
        :returns: the exchange's :class:`~perpbot.core.model.OrderResult`, or None when the
            sizer or the risk chain dropped the order (with a logged reason).
        """
        return await self._orders.submit(intent, md, risk_exempt=risk_exempt, origin=origin)

    def halt(self, reason: str, *, source: str = "") -> None:
        """Halt the bot: open no new risk, stop after the current batch, exit as halted.

        The public way for a plugin to stop a bot that can no longer trade safely (the
        journal calls it when a write fails: ``"journal unavailable: ..."``). From the call
        on, :meth:`submit` drops every order that is not risk-exempt (closes stay allowed),
        the loop stops after the current batch, :meth:`shutdown` cancels the bot's open
        orders, ``bot.halted`` holds ``reason`` and the CLI exits with the halt code 6. The
        first halt's reason wins; later calls are ignored.

        :param reason: one line saying why (shown in the log, the summary and on stderr).
        :param source: who halted (a plugin name), recorded as the policy of the HALT entry
            in ``bot.risk_log``.

        Call it on the event loop's thread; from another thread use
        ``loop.call_soon_threadsafe(bot.halt, reason)``.
        """
        self._orders.halt(reason, source=source)

    async def close_position(self, qualified: str, reason: str, *, origin: str = "bot") -> OrderResult | None:
        """Close a position with a reduce-only IOC market order (exempt from exposure checks).

        :param origin: who asked, for the log lines (see :meth:`submit`).
        """
        return await self._orders.close_position(qualified, reason, origin=origin)

    async def cancel_all(self) -> None:
        """Cancel every open order of this bot (its own and the ones reconciliation adopted).

        Orders on the account that the bot did not place are left alone, as reconciliation
        leaves them.
        """
        await self._orders.cancel_all()

    # ------------------------------------------------------------------
    # shutdown
    # ------------------------------------------------------------------

    async def shutdown(self) -> RunSummary:
        """Cancel open orders, let observers flush state, disconnect; idempotent."""
        if self._stopping:
            return self.summary()
        self._stopping = True
        try:
            if self.portfolios:
                if self.config.close_on_stop:
                    for t in list(self.positions()):
                        await self.close_position(t, "close on stop")
                if self.open_orders:
                    await self.cancel_all()
                if self._account.pending:
                    await self._account.drain()
            summary = self.summary()
            await self.notify("on_bot_stop", summary=summary)
        finally:
            for venue, ex in self.exchanges.items():
                try:
                    await ex.disconnect()
                except Exception as exc:
                    logger.error(f"disconnect {venue} failed: {exc}")
            await self.feed.stop()
        return summary

    def summary(self) -> RunSummary:
        """The end-of-run figures (valid at any time); see :func:`perpbot.core.bot.summary.build_summary`."""
        if self.portfolios:
            self._cycle.track_equity(self.clock.now_ns())
        notes = self._strategy_calls.notes() + self._observers.notes()
        return build_summary(self, notes=notes, wall_start=self._wall_start)
