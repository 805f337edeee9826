"""The :class:`TradingBot` supervisor: coordination only, no trading decisions.

It loads the feed, the exchange client(s), the strategy, the position sizer and
the risk chain through the plugin registry (no ``if strategy == "grid"``
anywhere), then runs one loop:

1. each market event is applied to that market's :class:`~perpbot.core.state.MarketState`
   and signal engine, and handed to simulating exchange clients (hot path:
   plain method calls, no hooks, no logging);
2. account events the exchanges emit (order updates, fills, funding,
   liquidations) are booked into the portfolio, shown to the strategy and
   broadcast to observer hooks;
3. every ``decision_interval_s`` of clock time, the risk chain checks the
   account, then the strategy decides on a :class:`~perpbot.core.state.MarketData`
   view; intents are sized, checked by every risk policy, announced
   (``on_order_submit``: the journal records intent first) and sent.

Shutdown (end of data, Ctrl-C, SIGTERM, HALT) cancels open orders, lets
observers flush state (``on_bot_stop``) and returns a
:class:`~perpbot.core.report.RunSummary`. Replay drives a :class:`~perpbot.core.clock.SimulatedClock`
from the data, live trading a :class:`~perpbot.core.clock.LiveClock`; a strategy cannot
tell them apart.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import signal
import time
import uuid
from collections import deque
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from loguru import logger

from perpbot.core.balance import BalanceManager
from perpbot.core.clock import LiveClock, SimulatedClock
from perpbot.core.config import BotConfig, check_risk_params, split_ticker
from perpbot.core.errors import ConfigError, ExchangeError, PerpbotError
from perpbot.core.exchange import ExchangeContext
from perpbot.core.feed import ProgressUpdate
from perpbot.core.model import (
    ZERO,
    BookDelta,
    BookSnapshot,
    FeedStatus,
    Fill,
    FundingPayment,
    Liquidation,
    MarketInfo,
    OrderInfo,
    OrderParams,
    OrderRequest,
    OrderResult,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    TimeInForce,
)
from perpbot.core.params import parse_params
from perpbot.core.plugins import call_one, implementations
from perpbot.core.policies import RiskAction, RiskDecision, RiskView, SizingView
from perpbot.core.portfolio import Portfolio
from perpbot.core.metrics import DrawdownTracker, TradeLedger, market_label
from perpbot.core.report import MarketLine, RunSummary
from perpbot.core.state import MarketData, MarketState
from perpbot.core.strategy import StrategyContext, StrategyResult

NS = 1_000_000_000
MAX_CLIENT_ID = 2**32 - 1


class ClientIdAllocator:
    """Unique dYdX client ids (fixed32) for this bot instance.

    Starts at a random point so two fresh runs on one subaccount do not collide;
    :meth:`reserve` takes every id a journal or exchange already knows so an id
    is never reused after a restart.
    """

    def __init__(self, start: int | None = None):
        self._next = start if start is not None else random.randint(1, 2**31)
        self._used: set[int] = set()

    def reserve(self, ids) -> None:
        ids = [int(i) for i in ids]
        self._used.update(ids)
        if ids:
            top = max(ids)
            if top >= self._next:
                self._next = top + 1

    def next(self) -> int:
        while True:
            cid = self._next
            self._next = cid + 1 if cid < MAX_CLIENT_ID else 1
            if cid not in self._used:
                self._used.add(cid)
                return cid


@attrs.define
class FeedContext:
    """What a feed is constructed with."""

    clock: Any
    tickers: tuple
    state_dir: Path
    markets: dict = attrs.Factory(dict)
    options: dict = attrs.Factory(dict)


def halts_trading(exc: BaseException) -> bool:
    """True for an error an observer raises on purpose to stop the run: not contained like a bug.

    Such an error's class sets ``halts_trading = True``. (A plugin that wants the bot to halt
    in order — no new risk, orders canceled — calls the bot's ``halt`` instead of raising.)
    """
    return bool(getattr(exc, "halts_trading", False))


def _where(exc: BaseException, folder: Path | None = None) -> str:
    """`` at FILE:LINE`` of the last traceback frame inside ``folder`` (default: the last frame).

    :param exc: a raised exception (with its ``__traceback__``).
    :param folder: a plugin's source folder; frames outside it (the bot, libraries) are passed over.
    :returns: the text, or "" when the exception has no traceback.
    """
    tb = exc.__traceback__
    last = inside = None
    while tb is not None:
        code = tb.tb_frame.f_code
        last = (code.co_filename, tb.tb_lineno)
        if folder is not None:
            try:
                if Path(code.co_filename).resolve().is_relative_to(folder):
                    inside = last
            except (OSError, ValueError):
                pass
        tb = tb.tb_next
    frame = inside or last
    return f" at {frame[0]}:{frame[1]}" if frame else ""


def _source_folder(obj: Any) -> Path | None:
    """The folder of the package that defines ``obj``'s class (a plugin's own code), or None."""
    import sys

    module = sys.modules.get(type(obj).__module__)
    path = getattr(module, "__file__", None)
    if not path:
        return None
    path = Path(path).resolve()
    # a package's __init__ or a module inside a package: the package's folder; a lone module: itself
    if path.name == "__init__.py" or "." in type(obj).__module__:
        return path.parent
    return path


async def await_me_maybe(value: Any) -> Any:
    """Await ``value`` if it is awaitable (observer hooks may be sync or async)."""
    if inspect.isawaitable(value):
        return await value
    return value


class TradingBot:
    """Strategy-agnostic supervisor.

    :param config: the validated :class:`~perpbot.core.config.BotConfig`.
    :param plugin_manager: a loaded :class:`~perpbot.core.plugins.PluginManager`.
    :raises ConfigError: unknown exchange, strategy, feed, ticker, sizer, risk
        policy, or invalid parameters (one line naming the thing and the value).
    """

    def __init__(self, config: BotConfig, plugin_manager, *, clock=None):
        self.config = config
        self.pm = plugin_manager
        # the historic configure hook: before anything is built, and kept for later plugins
        plugin_manager.configure(config)
        self.run_id = uuid.uuid4().hex[:12]
        reg = plugin_manager.registry
        self.state_dir = Path(config.state_dir)

        # feed and clock ---------------------------------------------------
        feed_cls = reg.get("feeds", config.feed)
        self.clock = clock or (SimulatedClock() if feed_cls.replay else LiveClock())
        self.feed = feed_cls(
            config.feed_options(),
            FeedContext(self.clock, tuple(config.tickers), self.state_dir, options={"live": config.live}),
        )

        # exchanges: built and preflighted BEFORE the feed touches the network, so
        # configuration and credential errors come first; their market tables are filled below
        self.exchanges: dict[str, Any] = {}
        venue_markets: dict[str, dict] = {}
        for venue in config.exchange:
            cls = reg.get("exchanges", config.venue_plugin(venue))
            prefix = "" if venue == config.primary_venue else f"{venue}:"
            venue_markets[venue] = {}
            ctx = ExchangeContext(
                clock=self.clock,
                markets=venue_markets[venue],
                book_of=(lambda t, p=prefix: self.states[p + t].book if (p + t) in self.states else None),
                state_of=(lambda t, p=prefix: self.states.get(p + t)),
                state_dir=self.state_dir,
                options={"live": config.live, "venue": venue, "replay": feed_cls.replay, "run_id": self.run_id},
            )
            self.exchanges[venue] = cls(config.exchange_options(venue), ctx)
            self.exchanges[venue].preflight()
        self.exchange = self.exchanges[config.primary_venue]

        # markets -------------------------------------------------------------
        try:
            markets = dict(self.feed.markets())
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        missing = [t for t in config.tickers if t not in markets]
        if missing:
            known = ", ".join(sorted(markets)) or "none"
            raise ConfigError(f"unknown ticker {missing[0]!r} for feed {config.feed!r} (known: {known})")
        self.markets = {t: markets[t] for t in config.tickers}
        self.states: dict[str, MarketState] = {t: MarketState(m) for t, m in self.markets.items()}
        self._engines = self._make_signal_engines()
        self._venue_tickers: dict[str, tuple] = {}
        for venue, vmarkets in venue_markets.items():
            vmarkets.update(
                {
                    split_ticker(t)[1]: m
                    for t, m in self.markets.items()
                    if (split_ticker(t)[0] or config.primary_venue) == venue
                }
            )
            self._venue_tickers[venue] = tuple(vmarkets)
        self._consumers: dict[str, Any] = {}  # qualified ticker -> simulating exchange
        for venue, ex in self.exchanges.items():
            if ex.capabilities().consumes_market_data:
                for t in self._venue_tickers[venue]:
                    q = t if venue == config.primary_venue else f"{venue}:{t}"
                    self._consumers[q] = ex

        # strategy, sizer, risk chain --------------------------------------
        strat_cls = reg.get("strategies", config.strategy)
        params = parse_params(strat_cls.Params, config.strategy_params(), f"strategy {config.strategy}")
        self.strategy = strat_cls(
            params,
            StrategyContext(
                tickers=tuple(config.tickers),
                clock=self.clock,
                markets=self.markets,
                venues={v: ex.capabilities() for v, ex in self.exchanges.items()},
                logger=logger.bind(strategy=config.strategy),
                decision_interval_s=float(config.decision_interval_s),
            ),
        )
        sizer_cls = reg.get("position_sizers", config.sizer)
        self.sizer = sizer_cls(parse_params(sizer_cls.Params, config.sizer_params(), f"sizer {config.sizer}"), self)
        self.risk_chain = []
        check_risk_params(config.risk, reg)  # a misspelt [risk.<policy>] or key is an error, never ignored
        for name in config.risk_policies:
            pcls = reg.get("risk_policies", name)
            self.risk_chain.append(pcls(parse_params(pcls.Params, config.risk_params(name), f"risk policy {name}"), self))

        # runtime state ----------------------------------------------------
        self.portfolios: dict[str, Portfolio] = {}
        self.portfolio: Portfolio | None = None
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
        self.stop_reason = ""
        self.resume_from_ns = 0  # a reconciler may set it: replayed events before this time are skipped
        #: a reconciler may set it: the first N feed items (see ``events_read``; not events) only
        #: warm up market state (not simulators, no decisions), so a resumed replay continues
        #: exactly where the checkpoint was taken (see ``events_read``)
        self.resume_from_event = 0
        self.resumed = False  # set by a reconciler that restored runtime state (import_state)
        self.decisions = 0
        self.orders_sent = 0
        self.orders_rejected = 0
        self.strategy_errors = 0
        #: (where, error type, file:line) -> how many times a strategy raised it; logged once
        self.strategy_error_counts: dict[tuple, int] = {}
        #: (plugin, hook, error type) -> how many times an observer raised it; logged once
        self.observer_errors: dict[tuple, int] = {}
        self.consecutive_failures = 0
        self.last_fill_ns = 0
        self.last_activity_ns = 0
        self.start_equity = ZERO
        self.peak_equity = ZERO
        self.day_start_equity = ZERO
        self._day = None
        self.drawdown = DrawdownTracker()
        #: round trips, wins and realized PnL per order tag (core/metrics.py; the report uses the same)
        self.ledger = TradeLedger()
        self.start_ns = 0
        self.notes: list[str] = []
        self._pending: list = []
        self._stop: asyncio.Event | None = None  # created in start()
        self._next_decision_ns = 0
        self._next_snapshot_ns = 0
        self._next_checkpoint_ns = 0
        self._checkpoint_ns = int(Decimal(config.checkpoint_interval_s or config.snapshot_interval_s) * NS)
        self._decision_ns = int(Decimal(config.decision_interval_s) * NS)
        self._snapshot_ns = int(Decimal(config.snapshot_interval_s) * NS)
        self._wall_start = 0.0
        self._running = False
        self._stopping = False
        self._progress_observers: list = []  # see add_progress_observer

    # ------------------------------------------------------------------
    # wiring helpers
    # ------------------------------------------------------------------

    def _make_signal_engines(self) -> dict:
        from perpbot.core import signals

        config = parse_params(signals.SignalConfig, self.config.signals, "signals")
        return {t: signals.SignalEngine(config) for t in self.states}

    def _venue_and_ticker(self, qualified: str) -> tuple[str, str]:
        venue, t = split_ticker(qualified)
        return (venue or self.config.primary_venue), t

    def _qualify(self, venue: str, ticker: str) -> str:
        return market_label(venue, ticker, self.config.primary_venue)

    def marks(self) -> dict:
        """Mark price per (qualified) ticker: oracle where known, else mid (USD)."""
        out = {}
        for t, st in self.states.items():
            m = st.mark_price()
            if m is not None:
                out[t] = m
        return out

    def _venue_marks(self, venue: str) -> dict:
        marks = self.marks()
        if venue == self.config.primary_venue:
            return {t: p for t, p in marks.items() if ":" not in t}
        prefix = f"{venue}:"
        return {t[len(prefix):]: p for t, p in marks.items() if t.startswith(prefix)}

    def balance(self, venue: str | None = None):
        """The bot's view of a venue's account (default: the primary), USD."""
        venue = venue or self.config.primary_venue
        return self.portfolios[venue].balance(self._venue_marks(venue), self.clock.now_ns())

    def total_equity(self) -> Decimal:
        return sum((self.balance(v).equity for v in self.portfolios), ZERO)

    def positions(self) -> dict:
        """Open positions of every venue, keyed by qualified ticker."""
        out = {}
        for venue, pf in self.portfolios.items():
            for t, p in pf.open_positions().items():
                out[self._qualify(venue, t)] = p
        return out

    def paused(self) -> dict:
        now = self.clock.now_ns()
        out = {}
        for t, st in self.states.items():
            reason = st.stale_reason(now)
            if reason:
                out[t] = reason
        return out

    def market_data(self) -> MarketData:
        """The read-only view a strategy decides on."""
        paused = self.paused()
        return MarketData(
            ts_ns=self.clock.now_ns(),
            markets=self.states,
            tradable=tuple(t for t in self.states if t not in paused),
            paused=paused,
            positions=self.positions(),
            open_orders=dict(self.open_orders),
            balance=self.balance(),
            marks=self.marks(),
            venues={v: self.balance(v) for v in self.portfolios},
        )

    def risk_view(self) -> RiskView:
        circuit = {}
        for venue, ex in self.exchanges.items():
            reason = getattr(ex, "circuit_open", None)
            if reason:
                circuit[venue] = reason if isinstance(reason, str) else "circuit breaker open"
        balances = {v: self.balance(v) for v in self.portfolios}
        bal = balances[self.config.primary_venue]
        return RiskView(
            now_ns=self.clock.now_ns(),
            balance=bal,
            positions=self.positions(),
            marks=self.marks(),
            markets=self.markets,
            stale=self.paused(),
            start_equity=self.start_equity,
            peak_equity=self.peak_equity,
            day_start_equity=self.day_start_equity,
            consecutive_failures=self.consecutive_failures,
            last_fill_ns=self.last_fill_ns,
            last_activity_ns=self.last_activity_ns,
            open_orders=len(self.open_orders),
            circuit_open=circuit,
            state=self.states,
            total_equity=sum((b.equity for b in balances.values()), ZERO),
            balances=balances,
        )

    async def notify(self, hook: str, **kwargs) -> list:
        """Call an observer hook with ``bot=self``, each implementation on its own, and await results.

        An implementation that raises is logged once naming its plugin, counted (the summary
        notes it) and skipped; the implementations after it still get the event. Two kinds of
        error propagate instead: any failure of ``on_order_submit`` (the order must not be sent
        without its intent recorded) and an error raised on purpose to stop trading
        (:func:`halts_trading`).

        :returns: the implementations' non-None results, awaited, in pluggy's call order.
        """
        caller = getattr(self.pm.hook, hook)
        kwargs["bot"] = self
        # each implementation on its own: one observer that raises must not keep the event
        # from the observers after it (the journal's on_fill among them). As pluggy does, all
        # are called first, then the awaitables of async ones are awaited, in the same order
        called = []
        for impl in implementations(caller):
            try:
                called.extend((impl, r) for r in call_one(caller, impl, **kwargs))
            except Exception as exc:
                self._observer_failed(hook, impl.plugin_name, exc)
        out = []
        for impl, r in called:
            try:
                out.append(await await_me_maybe(r))
            except Exception as exc:
                self._observer_failed(hook, impl.plugin_name, exc)
        return out

    def _observer_failed(self, hook: str, plugin: str, exc: BaseException) -> None:
        """Log an observer's failure once per (plugin, hook, error type) and count every one.

        :raises Exception: ``exc`` itself when it must not be contained: any failure of
            ``on_order_submit``, or an error raised to stop the run (:func:`halts_trading`).
        """
        if hook == "on_order_submit" or halts_trading(exc):
            raise exc
        key = (plugin, hook, type(exc).__name__)
        n = self.observer_errors.get(key, 0) + 1
        self.observer_errors[key] = n
        if n == 1:
            logger.opt(exception=self.config.verbose).error(
                f"observer plugin {plugin!r} failed in {hook}: {type(exc).__name__}: {exc}{_where(exc)} "
                "(the other observers still got the event; repeats are counted in the summary)"
            )

    # ------------------------------------------------------------------
    # run
    # ------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop after the current batch (signal handlers call this)."""
        if not self.stop_reason:
            self.stop_reason = reason
        if self._stop is not None:
            self._stop.set()

    def _install_signals(self) -> list:
        loop = asyncio.get_running_loop()
        installed = []
        for sig, name in ((signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")):
            try:
                loop.add_signal_handler(sig, self.request_stop, name)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        for policy in self.risk_chain:
            install = getattr(policy, "install", None)
            if callable(install):
                install(loop)
        return installed

    async def start(self) -> None:
        """Connect everything and reconcile; no strategy decision happens before this returns."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._stop = asyncio.Event()
        await self.feed.start()
        for venue, ex in self.exchanges.items():
            ex.set_event_sink(lambda ev, v=venue: self._pending.append((v, ev)))
            await ex.connect()
        for venue, ex in self.exchanges.items():
            bal = await ex.get_balance()
            pf = Portfolio(bal.collateral, ex.markets())
            for t, pos in (await ex.get_positions()).items():
                pf.positions[t] = pos
            self.portfolios[venue] = pf
        self.portfolio = self.portfolios[self.config.primary_venue]
        #: per venue: the exchange's own balance, cached for the sizers (seed 004)
        self.balance_managers = {
            venue: BalanceManager(
                ex.get_balance,
                self.clock,
                ttl_s=float(self.config.balance_ttl_s),
                large_order_usd=self.config.large_order_usd,
            )
            for venue, ex in self.exchanges.items()
        }
        # orders already open on the account are NOT adopted here: a reconciler (the journal)
        # adopts the ones this bot placed; the ids are reserved so they are never reused
        for ex in self.exchanges.values():
            self.client_ids.reserve(info.client_id for info in await ex.get_open_orders())
        await self.notify("on_bot_start")
        summary = self.pm.hook.reconcile_startup(bot=self)
        summary = await await_me_maybe(summary)
        if summary:
            logger.info(f"reconciled: {summary}")
        if self._pending:
            await self._drain()
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
            await self._loop()
        finally:
            loop = asyncio.get_running_loop()
            for sig in installed:
                loop.remove_signal_handler(sig)
        return await self.shutdown()

    async def _loop(self) -> None:
        clock = self.clock
        simulated = clock.simulated
        states = self.states
        engines = self._engines
        consumers = self._consumers
        max_events = self.config.max_events  # in events_processed's unit (see there)
        resume_from = self.resume_from_ns if simulated else 0
        warmup = self.resume_from_event
        stop = self._stop
        progress = bool(self._progress_observers)
        batches = 0
        not_counted = (BookSnapshot, MarketInfo, FeedStatus)
        # a resumed replay re-reads the data up to its checkpoint at full speed: a paced
        # feed (--speed) paces again from the checkpoint on
        held = bool(warmup or resume_from)
        if held:
            self.feed.hold_pacing(True)
        async for batch in self.feed.batches():
            if warmup:
                warmup = self._warm_up(batch, warmup)
                batch = self._warm_rest
                if not warmup and not resume_from:
                    held = self._release_pacing(held)
                if not batch:
                    if not warmup and max_events is not None and self.events_processed >= max_events:
                        self.request_stop(f"max events {max_events} reached")
                        break
                    continue
            counted = 0
            for ev in batch:
                ts = ev.ts_ns
                et = type(ev)
                if et is BookDelta:
                    counted += len(ev.bids) + len(ev.asks)
                elif et not in not_counted:
                    counted += 1
                if simulated:
                    if ts < resume_from:
                        clock.advance_to(ts)
                        continue
                    clock.advance_to(ts)
                ticker = ev.ticker
                st = states.get(ticker)
                if st is None:
                    continue
                if not self.start_ns:
                    self.start_ns = ts
                st.apply(ev)
                eng = engines.get(ticker)
                if eng is not None:
                    eng.on_event(st, ev)
                if type(ev) is MarketInfo and ev.market is not None:
                    self.markets[ticker] = ev.market
                ex = consumers.get(ticker)
                if ex is not None:
                    if ":" in ticker:
                        ev = attrs.evolve(ev, ticker=ticker.split(":", 1)[1])
                    ex.on_market_event(ev)
            self.events_processed += counted
            self.events_read += len(batch)
            if held and not warmup and clock.now_ns() >= resume_from:
                held = self._release_pacing(held)
            if self._pending:
                await self._drain()
            now = clock.now_ns()
            if now >= self._next_decision_ns:
                await self._decision_cycle(now)
                if self._pending:
                    await self._drain()
            batches += 1
            if progress and batches % 256 == 0:
                self._report_progress(False)
            if now >= self._next_checkpoint_ns:
                self._next_checkpoint_ns = now + self._checkpoint_ns
                await self.notify("on_checkpoint")
            if stop.is_set() or self.halted:
                break
            if max_events is not None and self.events_processed >= max_events:
                self.request_stop(f"max events {max_events} reached")
                break
            if not simulated or batches % 64 == 0:
                await asyncio.sleep(0)  # let signals, dashboards and I/O run
        else:
            if not self.stop_reason:
                self.stop_reason = "end of data"
        if progress:
            self._report_progress(True)

    def _release_pacing(self, held: bool) -> bool:
        """End the resume warm-up's unpaced stretch (see :meth:`BaseFeed.hold_pacing`); returns False."""
        if held:
            self.feed.hold_pacing(False)
        return False

    def _warm_up(self, batch: list, remaining: int) -> int:
        """Apply up to ``remaining`` events of ``batch`` to market state only (resume warm-up).

        Returns how many warm-up events remain; the batch's unconsumed tail is left in
        ``self._warm_rest`` for normal processing.
        """
        take = batch[:remaining]
        self._warm_rest = batch[remaining:]
        counted = 0
        for ev in take:
            et = type(ev)
            counted += len(ev.bids) + len(ev.asks) if et is BookDelta else (0 if et in (BookSnapshot, MarketInfo, FeedStatus) else 1)
            if not self.start_ns:
                self.start_ns = ev.ts_ns
            if self.clock.simulated:
                self.clock.advance_to(ev.ts_ns)
            st = self.states.get(ev.ticker)
            if st is None:
                continue
            st.apply(ev)
            eng = self._engines.get(ev.ticker)
            if eng is not None:
                eng.on_event(st, ev)
            if type(ev) is MarketInfo and ev.market is not None:
                self.markets[ev.ticker] = ev.market
        self.events_processed += counted
        self.events_read += len(take)
        return remaining - len(take)

    # ------------------------------------------------------------------
    # runtime state (checkpoints)
    # ------------------------------------------------------------------

    _STATE_FIELDS = (
        "_next_decision_ns", "_next_snapshot_ns", "_next_checkpoint_ns", "decisions", "orders_sent",
        "orders_rejected", "consecutive_failures", "last_fill_ns", "last_activity_ns", "start_equity",
        "peak_equity", "day_start_equity", "_day", "start_ns", "events_processed", "events_read", "strategy_errors",
    )

    def export_state(self) -> dict:
        """The bot's runtime counters as JSON-ready values (Decimals as strings)."""
        out = {}
        for name in self._STATE_FIELDS:
            v = getattr(self, name)
            out[name] = str(v) if isinstance(v, Decimal) else v
        out["drawdown"] = self.drawdown.state()
        out["ledger"] = self.ledger.state()
        out["client_id_next"] = self.client_ids._next
        out["risk"] = {
            p.name: p.get_state() for p in self.risk_chain if callable(getattr(p, "get_state", None))
        }
        return out

    def import_state(self, state: dict) -> None:
        """Restore what :meth:`export_state` returned; marks the bot as resumed."""
        for name in self._STATE_FIELDS:
            if name not in state or name in ("events_processed", "events_read"):  # re-counted by the warm-up
                continue
            cur = getattr(self, name)
            v = state[name]
            setattr(self, name, Decimal(v) if isinstance(cur, Decimal) else v)
        if state.get("drawdown"):
            self.drawdown = DrawdownTracker()
            self.drawdown.restore(state["drawdown"])
        if state.get("ledger"):
            self.ledger = TradeLedger()
            self.ledger.restore(state["ledger"])
        if state.get("client_id_next"):
            self.client_ids._next = max(self.client_ids._next, int(state["client_id_next"]))
        for p in self.risk_chain:
            saved = (state.get("risk") or {}).get(p.name)
            if saved is not None and callable(getattr(p, "restore_state", None)):
                p.restore_state(saved)
        self.resumed = True

    # ------------------------------------------------------------------
    # progress (the bar itself is drawn by the command line: perpbot/progress.py)
    # ------------------------------------------------------------------

    def add_progress_observer(self, observer) -> None:
        """Call ``observer(update)`` with a :class:`~perpbot.core.feed.ProgressUpdate` while the run goes.

        Called every 256 batches and once at the end (``update.final``). An observer that raises
        is logged once and dropped; the run goes on.
        """
        self._progress_observers.append(observer)

    def _report_progress(self, final: bool) -> None:
        got = self.feed.progress()
        done, total = got if got is not None else (0, 0)
        update = ProgressUpdate(done, total, self.events_processed, self.clock.now_ns(), final)
        for obs in list(self._progress_observers):
            try:
                obs(update)
            except Exception as exc:  # a progress display must never break a run
                self._progress_observers.remove(obs)
                logger.warning(f"progress observer {obs!r} failed and was removed: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------
    # account events
    # ------------------------------------------------------------------

    async def _drain(self) -> None:
        while self._pending:
            pending, self._pending = self._pending, []
            for venue, ev in pending:
                await self._on_account_event(venue, ev)

    def book_fill(self, venue: str, fill: Fill) -> None:
        """Book a fill into the venue's portfolio and the open-order table (no hooks).

        Reconcilers use this for fills that happened while the bot was down.
        """
        pf = self.portfolios[venue]
        pf.apply_fill(fill)
        self.last_fill_ns = fill.ts_ns
        self.last_activity_ns = fill.ts_ns
        info = self.open_orders.get(fill.client_id)
        self.ledger.add_fill(
            venue, fill.ticker, fill.side.value, fill.price, fill.size, fill.fee, fill.ts_ns,
            tag=(info.tag if info is not None and info.tag else fill.tag), strategy=self.config.strategy,
        )
        if info is not None:
            filled = info.filled_size + fill.size
            if filled >= info.size:
                self.open_orders.pop(fill.client_id, None)
            else:
                self.open_orders[fill.client_id] = attrs.evolve(
                    info, filled_size=filled, status=OrderStatus.PARTIALLY_FILLED
                )

    async def _on_account_event(self, venue: str, ev: Any) -> None:
        t = type(ev)
        if t is Fill:
            self.book_fill(venue, ev)
            if venue != self.config.primary_venue:
                ev = attrs.evolve(ev, ticker=self._qualify(venue, ev.ticker), venue=venue)
            self._call_strategy("on_fill", ev)
            await self.notify("on_fill", fill=ev)
        elif t is OrderUpdate:
            info = self.open_orders.get(ev.client_id)
            if ev.status.is_terminal:
                self.open_orders.pop(ev.client_id, None)
            elif info is not None:
                self.open_orders[ev.client_id] = attrs.evolve(info, status=ev.status, filled_size=max(info.filled_size, ev.filled_size))
            if venue != self.config.primary_venue:
                ev = attrs.evolve(ev, ticker=self._qualify(venue, ev.ticker), venue=venue)
            self._call_strategy("on_order_update", ev)
            await self.notify("on_order_update", update=ev)
        elif t is FundingPayment:
            self.portfolios[venue].apply_funding(ev)
            self.ledger.add_funding(ev.amount, self.config.strategy)
            if venue != self.config.primary_venue:
                ev = attrs.evolve(ev, ticker=self._qualify(venue, ev.ticker), venue=venue)
            self._call_strategy("on_funding_payment", ev)
            await self.notify("on_funding_payment", payment=ev)
        elif t is Liquidation:
            self.portfolios[venue].charge(ev.fee, ev.ticker, liquidation_fee=True)
            logger.warning(
                f"LIQUIDATED {ev.ticker} on {venue}: {ev.size} at {ev.price}, fee {ev.fee} USD ({ev.reason})"
            )
            await self.notify("on_liquidation", liquidation=ev)
        else:
            logger.debug(f"ignored account event {t.__name__} from {venue}")

    def _call_strategy(self, method: str, arg: Any) -> None:
        try:
            getattr(self.strategy, method)(arg)
        except Exception as exc:
            self._strategy_failed(method, exc, "contained")

    def _strategy_failed(self, method: str, exc: BaseException, consequence: str) -> None:
        """Count a strategy exception; log it only the first time it is raised at that place.

        The place is the last traceback frame inside the strategy plugin's own folder, so the
        log names the plugin's file and line; the summary counts the repeats.
        """
        self.strategy_errors += 1
        where = _where(exc, _source_folder(self.strategy))
        key = (method, type(exc).__name__, where)
        n = self.strategy_error_counts.get(key, 0) + 1
        self.strategy_error_counts[key] = n
        if n == 1:
            logger.opt(exception=self.config.verbose).error(
                f"strategy {self.config.strategy}.{method} raised {type(exc).__name__}: {exc}{where} "
                f"({consequence}; repeats are counted in the summary, not logged)"
            )
        else:
            logger.debug(f"strategy {self.config.strategy}.{method} raised {type(exc).__name__}: {exc} again ({n} times)")

    # ------------------------------------------------------------------
    # decisions
    # ------------------------------------------------------------------

    def _track_equity(self, now: int) -> None:
        eq = self.total_equity()
        self.drawdown.update(eq, now)
        if eq > self.peak_equity:
            self.peak_equity = eq
        day = now // (86400 * NS)
        if self._day != day:
            self._day = day
            self.day_start_equity = eq

    async def _decision_cycle(self, now: int) -> None:
        self._next_decision_ns = now + self._decision_ns
        self._track_equity(now)
        if now >= self._next_snapshot_ns:
            self._next_snapshot_ns = now + self._snapshot_ns
            await self.notify("on_equity_snapshot", ts_ns=now, balance=self.balance())
        view = self.risk_view()
        for policy in self.risk_chain:
            decision = policy.check_account(view)
            if not decision.approved:
                await self._handle_risk(decision, policy)
                if self.halted or decision.action in (RiskAction.CLOSE_ALL,):
                    return
        if self.halted:
            return
        md = self.market_data()
        try:
            go = await self.strategy.should_execute(md)
        except Exception as exc:
            self._strategy_failed("should_execute", exc, "cycle skipped, state kept")
            return
        if not go:
            return
        try:
            result = await self.strategy.execute_strategy(md)
        except Exception as exc:
            self._strategy_failed("execute_strategy", exc, "cycle skipped, state kept")
            return
        self.decisions += 1
        if result is None:
            return
        if not isinstance(result, StrategyResult):
            self._strategy_failed(
                "execute_strategy", TypeError(f"returned {type(result).__name__}, not a StrategyResult"), "cycle skipped"
            )
            return
        await self.notify("on_decision", strategy=self.strategy, result=result)
        await self.execute_result(result, md)
        if result.wait_s:
            self._next_decision_ns = now + int(Decimal(str(result.wait_s)) * NS)

    async def execute_result(self, result: StrategyResult, md: MarketData) -> None:
        """Carry out a strategy's decision: cancels, closes, then new orders."""
        for item in result.cancels:
            cid, ticker = item if isinstance(item, tuple) else (item, None)
            await self.cancel_order(int(cid), ticker)
        origin = f"strategy {self.config.strategy}"
        for ticker in result.close:
            await self.close_position(ticker, result.reason or "strategy close", origin=origin)
        for intent in result.orders:
            await self.submit(intent, md, origin=origin)

    async def cancel_order(self, client_id: int, ticker: str | None = None) -> OrderResult | None:
        info = self.open_orders.get(client_id)
        qualified = ticker or (info.ticker if info else None)
        if qualified is None:
            logger.warning(f"cancel of unknown order {client_id} skipped")
            return None
        venue, t = self._venue_and_ticker(qualified)
        try:
            res = await self.exchanges[venue].cancel_order(client_id, t)
        except ExchangeError as exc:
            logger.error(f"cancel {client_id} on {venue} failed: {exc}")
            return None
        if res.success:
            self.open_orders.pop(client_id, None)
        await self.notify("on_order_cancel", client_id=client_id, ticker=qualified, result=res)
        return res

    def _reference_price(self, qualified: str, side: Side) -> Decimal | None:
        st = self.states.get(qualified)
        if st is None:
            return None
        bid, ask = st.best_bid_offer()
        px = ask if side is Side.BUY else bid
        return px if px is not None else st.mark_price()

    async def submit(
        self, intent: OrderParams, md: MarketData | None = None, *, risk_exempt: bool = False, origin: str | None = None
    ) -> OrderResult | None:
        """Size, risk-check, announce and send one order intent.

        :param origin: who asked for the order, named in every log line that drops it
            (default: ``"strategy <name>"``, or ``"bot"`` for a risk-exempt order).
        :returns: the exchange's :class:`~perpbot.core.model.OrderResult`, or None when the
            sizer or the risk chain dropped the order (with a logged reason).
        """
        if origin is None:
            origin = "bot" if risk_exempt else f"strategy {self.config.strategy}"
        if self.halted and not risk_exempt:
            self.orders_rejected += 1
            logger.warning(f"{origin}: order on {intent.ticker} dropped: the bot is halted ({self.halted})")
            return None
        qualified = intent.ticker if intent.venue is None else self._qualify(intent.venue, split_ticker(intent.ticker)[1])
        if qualified not in self.markets:
            self.orders_rejected += 1
            logger.error(
                f"{origin}: order on unknown market {qualified!r} dropped (markets of this run: {', '.join(self.markets)})"
            )
            return None
        venue, ticker = self._venue_and_ticker(qualified)
        market = self.markets[qualified]
        ref = intent.price or self._reference_price(qualified, intent.side)
        if ref is None:
            logger.warning(f"{origin}: order on {qualified} dropped: no price yet")
            return None
        if intent.size is None:
            pos = self.portfolios[venue].positions.get(ticker)
            st = self.states[qualified]
            score = None
            composite = getattr(st.scores, "composite", None) if st.scores is not None else None
            if composite is not None:
                score = Decimal(str(round(composite, 4)))
            manager = self.balance_managers[venue]
            try:
                def view(balance):
                    return SizingView(
                        market=market,
                        price=ref,
                        balance=balance,
                        position=pos,
                        positions=self.portfolios[venue].open_positions(),
                        marks=self._venue_marks(venue),
                        now_ns=self.clock.now_ns(),
                        score=score,
                    )

                balance = await manager.get()
                sizing = self.sizer.size(intent, view(balance))
                if sizing.notional >= manager.large_order_usd and manager.age_s() != 0:
                    # a large order: size again on a balance fetched just now (seed 004)
                    sizing = self.sizer.size(intent, view(await manager.refresh()))
            except ExchangeError as exc:  # before PerpbotError, its base
                self.orders_rejected += 1
                logger.error(f"{origin}: {intent.side.value} {qualified} not sized: balance fetch from {venue} failed: {exc}")
                return None
            except PerpbotError as exc:
                self.orders_rejected += 1
                logger.warning(f"{origin}: sizer {self.config.sizer} refused {intent.side.value} {qualified}: {exc}")
                return None
            size = market.round_size(sizing.quantity)
            if size < market.min_order_size:
                logger.info(
                    f"{origin}: {intent.side.value} {qualified} skipped: {sizing.reason} (size {size} < min {market.min_order_size})"
                )
                return None
        else:
            size = market.round_size(intent.size)
            if size < market.min_order_size:
                self.orders_rejected += 1
                logger.warning(
                    f"{origin}: {intent.side.value} {qualified} rejected: size {intent.size} below minimum "
                    f"{market.min_order_size} (step {market.step_size}); not raised silently"
                )
                return None
        price = intent.price
        if price is not None:
            price = market.round_price(price, intent.side)
        req = attrs.evolve(
            OrderRequest.from_params(intent, self.client_ids.next(), size),
            ticker=ticker,
            price=price,
            trigger_price=(market.round_price(intent.trigger_price, intent.side) if intent.trigger_price else None),
            venue=venue,
        )
        if not risk_exempt:
            view = self.risk_view()
            for policy in self.risk_chain:
                decision = policy.check_order(req, view)
                if decision.approved:
                    continue
                decision = attrs.evolve(decision, policy=decision.policy or policy.name, ticker=qualified, ts_ns=self.clock.now_ns())
                if decision.action is RiskAction.REDUCE and decision.size is not None:
                    new_size = market.round_size(decision.size)
                    await self._handle_risk(decision, policy)
                    if new_size < market.min_order_size:
                        self.orders_rejected += 1
                        return None
                    req = attrs.evolve(req, size=new_size)
                    continue
                await self._handle_risk(decision, policy)
                self.orders_rejected += 1
                return None
        return await self._send(venue, req)

    async def _send(self, venue: str, req: OrderRequest) -> OrderResult:
        try:
            await self.notify("on_order_submit", order=req)
        except Exception as exc:
            self.orders_rejected += 1
            logger.error(f"order {req.client_id} not sent: on_order_submit failed: {exc}")
            return OrderResult(False, req.client_id, req.ticker, OrderStatus.REJECTED, error=f"not journaled: {exc}")
        self.orders[req.client_id] = req
        self.orders_sent += 1
        self.last_activity_ns = self.clock.now_ns()
        qualified = self._qualify(venue, req.ticker)
        self.open_orders[req.client_id] = OrderInfo(
            client_id=req.client_id,
            ticker=qualified,
            side=req.side,
            size=req.size,
            price=req.price,
            status=OrderStatus.PENDING,
            order_type=req.order_type,
            reduce_only=req.reduce_only,
            post_only=req.post_only,
            time_in_force=req.time_in_force,
            tag=req.tag,
            created_ns=self.clock.now_ns(),
            venue=venue,
        )
        try:
            result = await self.exchanges[venue].place_order(req)
        except ExchangeError as exc:
            result = OrderResult(False, req.client_id, req.ticker, OrderStatus.REJECTED, error=str(exc))
        if self._pending:
            await self._drain()
        if not result.success:
            self.orders_rejected += 1
            self.consecutive_failures += 1
            self.open_orders.pop(req.client_id, None)
            logger.bind(market=qualified, client_id=req.client_id).warning(
                f"order {req.client_id} {req.side.value} {req.size} {qualified} rejected: {result.error}"
            )
        else:
            self.consecutive_failures = 0
            info = self.open_orders.get(req.client_id)
            if info is not None:
                if result.status.is_terminal:
                    self.open_orders.pop(req.client_id, None)
                elif info.status is OrderStatus.PENDING:
                    self.open_orders[req.client_id] = attrs.evolve(info, status=result.status)
            logger.bind(market=qualified, client_id=req.client_id).info(
                f"order {req.client_id} {req.side.value} {req.size} {qualified} {req.order_type.value}"
                + (f" @ {req.price}" if req.price is not None else "")
                + f": {result.status.value}"
                + (f", filled {result.filled_size}" + (f" @ {result.avg_price}" if result.avg_price is not None else "") if result.filled_size else "")
                + (f" — {req.reason}" if req.reason else "")
            )
        view = None
        for policy in self.risk_chain:
            if view is None:
                view = self.risk_view()
            policy.on_order_result(result.success, result.error, view)
        await self.notify("on_order_result", order=req, result=result)
        return result

    # ------------------------------------------------------------------
    # risk escalations
    # ------------------------------------------------------------------

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
        if self.halted:
            return
        self.halted = reason
        self.risk_log.append(RiskDecision(RiskAction.HALT, reason, policy=source, ts_ns=self.clock.now_ns()))
        logger.error(f"HALT{f' by {source}' if source else ''}: {reason}")
        self.request_stop(f"HALT: {reason}")

    async def _handle_risk(self, decision: RiskDecision, policy=None) -> None:
        if not decision.policy and policy is not None:
            decision = attrs.evolve(decision, policy=policy.name)
        if not decision.ts_ns:
            decision = attrs.evolve(decision, ts_ns=self.clock.now_ns())
        self.risk_log.append(decision)
        level = "WARNING" if decision.action in (RiskAction.REDUCE, RiskAction.REJECT) else "ERROR"
        logger.log(level, f"risk {decision.policy}: {decision.action.value}"
                   + (f" {decision.ticker}" if decision.ticker else "") + f" — {decision.reason}")
        await self.notify("on_risk_action", decision=decision)
        if decision.action is RiskAction.CLOSE_WORST:
            worst = decision.ticker if decision.ticker in self.positions() else self._worst_position()
            if worst is not None:
                await self.close_position(worst, f"risk {decision.policy}: {decision.reason}", origin=f"risk policy {decision.policy}")
        elif decision.action is RiskAction.CLOSE_ALL:
            await self.cancel_all()
            for t in list(self.positions()):
                await self.close_position(t, f"risk {decision.policy}: {decision.reason}", origin=f"risk policy {decision.policy}")
        elif decision.action is RiskAction.HALT:
            await self.cancel_all()
            self.halted = f"{decision.policy}: {decision.reason}"
            self.request_stop(f"HALT by risk policy {self.halted}")

    def _worst_position(self) -> str | None:
        marks = self.marks()
        worst, worst_pnl = None, None
        for t, p in self.positions().items():
            mark = marks.get(t)
            if mark is None:
                continue
            pnl = p.unrealized_pnl(mark)
            if worst_pnl is None or pnl < worst_pnl:
                worst, worst_pnl = t, pnl
        return worst

    async def close_position(self, qualified: str, reason: str, *, origin: str = "bot") -> OrderResult | None:
        """Close a position with a reduce-only IOC market order (exempt from exposure checks).

        :param origin: who asked, for the log lines (see :meth:`submit`).
        """
        pos = self.positions().get(qualified)
        if pos is None or pos.size == 0:
            return None
        side = Side.SELL if pos.size > 0 else Side.BUY
        intent = OrderParams(
            ticker=qualified,
            side=side,
            order_type=OrderType.MARKET,
            size=abs(pos.size),
            time_in_force=TimeInForce.IOC,
            reduce_only=True,
            tag="close",
            reason=reason,
        )
        return await self.submit(intent, risk_exempt=True, origin=origin)

    async def cancel_all(self) -> None:
        """Cancel every open order of this bot (its own and the ones reconciliation adopted).

        Orders on the account that the bot did not place are left alone, as reconciliation
        leaves them; a venue without per-order knowledge falls back to its own cancel-all.
        """
        for cid, info in list(self.open_orders.items()):
            venue, t = self._venue_and_ticker(info.ticker)
            ex = self.exchanges.get(info.venue or venue) or self.exchanges[venue]
            try:
                res = await ex.cancel_order(cid, t)
            except ExchangeError as exc:
                logger.error(f"cancel {cid} on {venue} failed: {exc}")
                continue
            if res.success or res.status.is_terminal:
                self.open_orders.pop(cid, None)
            else:
                logger.warning(f"cancel {cid} on {venue} not confirmed: {res.error or res.status.value}")
            await self.notify("on_order_cancel", client_id=cid, ticker=info.ticker, result=res)
        if self._pending:
            await self._drain()

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
                if self._pending:
                    await self._drain()
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
        """The end-of-run figures (valid at any time)."""
        now = self.clock.now_ns()
        if self.portfolios:
            self._track_equity(now)
        lines = []
        fees = realized = unrealized = funding_in = funding_out = liq_fees = ZERO
        liquidations = 0
        final = ZERO
        for venue, pf in self.portfolios.items():
            marks = self._venue_marks(venue)
            final += pf.equity(marks)
            fees += pf.fees_paid
            realized += pf.realized_pnl
            unrealized += pf.unrealized_pnl(marks)
            liq_fees += pf.liquidation_fees
            for t in sorted(set(pf.stats) | set(pf.positions)):
                st = pf.stats[t]
                pos = pf.positions.get(t)
                size = pos.size if pos else ZERO
                mark = marks.get(t)
                upnl = pos.unrealized_pnl(mark) if (pos and pos.size and mark is not None) else ZERO
                closed = self.ledger.per_market.get((venue, t))
                lines.append(
                    MarketLine(
                        self._qualify(venue, t), st.trades, st.volume, st.fees, st.funding, st.realized_pnl, upnl, size,
                        st.liquidations, closed.closed if closed else 0, closed.wins if closed else 0,
                    )
                )
                liquidations += st.liquidations
                if st.funding > 0:
                    funding_in += st.funding
                else:
                    funding_out -= st.funding
        notes = list(self.notes)
        for (method, err, where), n in self.strategy_error_counts.items():
            notes.append(f"strategy {self.config.strategy}.{method} raised {err}{where} {n} time{'s' if n != 1 else ''} (logged once)")
        for (plugin, hook, err), n in self.observer_errors.items():
            notes.append(
                f"observer plugin {plugin!r} failed in {hook} with {err} {n} time{'s' if n != 1 else ''} "
                "(logged once; the other observers still got each event)"
            )
        for venue, ex in self.exchanges.items():
            missing = getattr(ex, "funding_missing", None)
            if missing:
                notes.append(
                    f"{venue}: the data has no funding rates for {', '.join(sorted(missing))}; funding was NOT simulated there (not assumed zero)"
                )
        try:
            strategy_lines = list(self.strategy.summary_lines())
        except Exception as exc:
            strategy_lines = [f"(strategy summary failed: {exc})"]
        return RunSummary(
            run_id=self.run_id,
            strategy=self.config.strategy,
            venues=tuple(self.exchanges),
            start_ns=self.start_ns,
            end_ns=now,
            markets=lines,
            starting_equity=self.start_equity,
            final_equity=final,
            realized_pnl=realized,
            unrealized_pnl=unrealized,
            fees=fees,
            funding_received=funding_in,
            funding_paid=funding_out,
            liquidations=liquidations,
            liquidation_fees=liq_fees,
            max_drawdown=self.drawdown.max_dd,
            max_drawdown_frac=self.drawdown.max_dd_frac,
            max_drawdown_duration_s=self.drawdown.max_dd_duration_ns / NS,
            max_drawdown_peak_ns=self.drawdown.max_dd_peak_ns,
            max_drawdown_trough_ns=self.drawdown.max_dd_trough_ns,
            max_drawdown_recovery_ns=self.drawdown.max_dd_recovery_ns,
            longest_underwater_s=self.drawdown.longest_underwater_ns / NS,
            equity_samples=self.drawdown.samples,
            closed_trades=self.ledger.closed_trades,
            wins=self.ledger.wins,
            per_tag=[attrs.evolve(f) for _k, f in sorted(self.ledger.per_tag.items())],
            funding_by_strategy=dict(self.ledger.funding_by_strategy),
            events=self.events_processed,
            wall_seconds=time.perf_counter() - self._wall_start if self._wall_start else 0.0,
            decisions=self.decisions,
            orders_sent=self.orders_sent,
            orders_rejected=self.orders_rejected,
            risk_actions=len(self.risk_log),
            strategy_errors=self.strategy_errors,
            stop_reason=self.stop_reason,
            notes=notes,
            strategy_lines=strategy_lines,
            feed_stats=dict(self.feed.stats()),
            unsynced_books=dict(self.feed.unsynced_books()),
        )
