"""The event loop: the feed's batches through market state, simulators, account events and decisions.

For each batch: every event advances the clock (replays), is applied to its market's
:class:`~perpbot.core.state.MarketState` and signal engine and handed to the simulating
exchange of that market (hot path: plain method calls, no hooks, no logging); then queued
account events are processed, a decision cycle runs when due, progress observers are told
every 256 batches, and ``on_checkpoint`` fires every ``checkpoint_interval_s``. Each
:class:`~perpbot.core.model.FeedStatus` of a batch is told to ``on_feed_status`` after the batch.

An event-driven strategy (``BaseStrategy.wake``, :mod:`perpbot.core.wake`) is also decided on
inside the batch: right after an event that wakes it (applied to state, engine and
simulator), at that event's time, once queued account events are processed; the throttle
and the held wake-ups are :class:`~perpbot.core.bot.wake.Waker`'s. Without a wake spec the
loop is exactly the scheduled one (one ``is None`` test per event more).

A resumed replay first *warms up*: the first ``bot.resume_from_event`` feed items are
applied to market state only (no simulator, no decisions), at full speed even when the feed
is paced (``--speed``). ``max_events`` counts events as ``bot.events_processed`` does.
Imports only :mod:`perpbot.core` modules.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any, Callable

import attrs
from loguru import logger

from perpbot.core.bot.support import NS
from perpbot.core.bot.wake import Waker
from perpbot.core.errors import ConfigError
from perpbot.core.feed import ProgressUpdate
from perpbot.core.model import BookDelta, BookSnapshot, FeedStatus, MarketInfo

#: feed items that are not counted as events (architecture.md, Benchmarks)
NOT_COUNTED = (BookSnapshot, MarketInfo, FeedStatus)


class EventLoop:
    """Drives one run's feed through the bot.

    :param bot: the :class:`~perpbot.core.bot.TradingBot` (``events_processed``,
        ``events_read``, ``start_ns`` and ``markets`` are updated here).
    :param engines: qualified ticker -> signal engine.
    :param consumers: qualified ticker -> simulating exchange client.
    :param account: the :class:`~perpbot.core.bot.account.AccountEvents` to drain.
    :param cycle: the :class:`~perpbot.core.bot.decisions.DecisionCycle` to run when due.
    :raises ConfigError: the strategy's wake spec is malformed (one line).
    """

    def __init__(self, bot: Any, engines: dict, consumers: dict, account: Any, cycle: Any):
        self.bot = bot
        self.engines = engines
        self.consumers = consumers
        self.account = account
        self.cycle = cycle
        config = bot.config
        #: clock time (ns) of the next ``on_checkpoint``
        self.next_checkpoint_ns = 0
        self.checkpoint_ns = int(Decimal(config.checkpoint_interval_s or config.snapshot_interval_s) * NS)
        self.progress_observers: list[Callable[[ProgressUpdate], None]] = []
        self._warm_rest: list = []
        #: the event-driven strategy's :class:`~perpbot.core.bot.wake.Waker`, or None (schedule only)
        self.waker: Waker | None = make_waker(bot.strategy, config)
        cycle.waker = self.waker
        if self.waker is not None and self.waker.spec.every_s is not None:
            cycle.decision_ns = int(self.waker.spec.every_s * NS)

    def add_progress_observer(self, observer: Callable[[ProgressUpdate], None]) -> None:
        """Call ``observer(update)`` with a :class:`~perpbot.core.feed.ProgressUpdate` while the run goes.

        Called every 256 batches and once at the end (``update.final``). An observer that raises
        is logged once and dropped; the run goes on.
        """
        self.progress_observers.append(observer)

    def report_progress(self, final: bool) -> None:
        """Tell every progress observer where the feed is (``final``: the run's last update)."""
        bot = self.bot
        got = bot.feed.progress()
        done, total = got if got is not None else (0, 0)
        update = ProgressUpdate(done, total, bot.events_processed, bot.clock.now_ns(), final)
        for obs in list(self.progress_observers):
            try:
                obs(update)
            except Exception as exc:  # a progress display must never break a run
                self.progress_observers.remove(obs)
                logger.warning(f"progress observer {obs!r} failed and was removed: {type(exc).__name__}: {exc}")

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until the data ends, ``stop`` is set, the bot halts or ``max_events`` is reached.

        Sets ``bot.stop_reason`` to ``"end of data"`` when the feed ends (and no other reason was given).
        """
        bot = self.bot
        clock = bot.clock
        simulated = clock.simulated
        states = bot.states
        engines = self.engines
        consumers = self.consumers
        account = self.account
        cycle = self.cycle
        max_events = bot.config.max_events  # in events_processed's unit (see there)
        waker = self.waker
        resume_from = bot.resume_from_ns if simulated else 0
        warmup = bot.resume_from_event
        progress = bool(self.progress_observers)
        batches = 0
        not_counted = NOT_COUNTED
        statuses: list = []  # this batch's FeedStatus events
        # a resumed replay re-reads the data up to its checkpoint at full speed: a paced
        # feed (--speed) paces again from the checkpoint on
        held = bool(warmup or resume_from)
        control = bot.control
        control.open()
        if held:
            bot.feed.hold_pacing(True)
        async for batch in bot.feed.batches():
            if warmup:
                warmup = self.warm_up(batch, warmup)
                batch = self._warm_rest
                if not warmup and not resume_from:
                    held = self.release_pacing(held)
                if not batch:
                    if not warmup and max_events is not None and bot.events_processed >= max_events:
                        bot.request_stop(f"max events {max_events} reached")
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
                elif et is FeedStatus:
                    statuses.append(ev)
                if simulated:
                    if ts < resume_from:
                        clock.advance_to(ts)
                        continue
                    clock.advance_to(ts)
                ticker = ev.ticker
                st = states.get(ticker)
                if st is None:
                    continue
                if not bot.start_ns:
                    bot.start_ns = ts
                st.apply(ev)
                eng = engines.get(ticker)
                if eng is not None:
                    eng.on_event(st, ev)
                if type(ev) is MarketInfo and ev.market is not None:
                    bot.markets[ticker] = ev.market
                ex = consumers.get(ticker)
                if ex is not None:
                    if ":" in ticker:
                        ex.on_market_event(attrs.evolve(ev, ticker=ticker.split(":", 1)[1]))
                    else:
                        ex.on_market_event(ev)
                if waker is not None:
                    wake = waker.on_event(st, ev)
                    if wake is not None:
                        await self.decide_on_wake(wake, ts)
            bot.events_processed += counted
            bot.events_read += len(batch)
            if statuses:  # feed health, told to observers once the batch is applied (hookspecs.on_feed_status)
                for status in statuses:
                    if status.ticker in states and status.ts_ns >= resume_from:
                        await bot.notify("on_feed_status", status=status)
                statuses.clear()
            if held and not warmup and clock.now_ns() >= resume_from:
                held = self.release_pacing(held)
            if account.pending:
                await account.drain()
            if control.pending:  # pause/resume/close-all/halt requests, between batches
                await control.apply_pending()
            now = clock.now_ns()
            if now >= cycle.next_decision_ns:
                await cycle.run(now)
                if account.pending:
                    await account.drain()
            batches += 1
            if progress and batches % 256 == 0:
                self.report_progress(False)
            if now >= self.next_checkpoint_ns:
                self.next_checkpoint_ns = now + self.checkpoint_ns
                await bot.notify("on_checkpoint")
            if stop.is_set() or bot.halted:
                break
            if max_events is not None and bot.events_processed >= max_events:
                bot.request_stop(f"max events {max_events} reached")
                break
            if not simulated or batches % 64 == 0:
                await asyncio.sleep(0)  # let signals, dashboards and I/O run
        else:
            if not bot.stop_reason:
                bot.stop_reason = "end of data"
        if progress:
            self.report_progress(True)

    async def decide_on_wake(self, wake: Any, ts_ns: int) -> None:
        """Run a decision cycle for ``wake`` (a :class:`~perpbot.core.wake.WakeEvent`) right after
        the event of time ``ts_ns``: queued account events first (the strategy sees its fills),
        then the cycle at the clock's time, then the account events it caused."""
        account = self.account
        if account.pending:
            await account.drain()
        now = self.bot.clock.now_ns()
        await self.cycle.run(now, self.waker.decided(wake, now, ts_ns))
        if account.pending:
            await account.drain()

    def release_pacing(self, held: bool) -> bool:
        """End the resume warm-up's unpaced stretch (see :meth:`perpbot.core.feed.BaseFeed.hold_pacing`); returns False."""
        if held:
            self.bot.feed.hold_pacing(False)
        return False

    def warm_up(self, batch: list, remaining: int) -> int:
        """Apply up to ``remaining`` feed items of ``batch`` to market state only (resume warm-up).

        :returns: how many warm-up items remain; the batch's unconsumed tail is kept for
            normal processing (the loop reads it right after).
        """
        bot = self.bot
        take = batch[:remaining]
        self._warm_rest = batch[remaining:]
        counted = 0
        for ev in take:
            et = type(ev)
            counted += len(ev.bids) + len(ev.asks) if et is BookDelta else (0 if et in NOT_COUNTED else 1)
            if not bot.start_ns:
                bot.start_ns = ev.ts_ns
            if bot.clock.simulated:
                bot.clock.advance_to(ev.ts_ns)
            st = bot.states.get(ev.ticker)
            if st is None:
                continue
            st.apply(ev)
            eng = self.engines.get(ev.ticker)
            if eng is not None:
                eng.on_event(st, ev)
            if self.waker is not None:  # tops and score sides as an unbroken run has them (no decision)
                self.waker.trigger(st, ev)
            if type(ev) is MarketInfo and ev.market is not None:
                bot.markets[ev.ticker] = ev.market
        bot.events_processed += counted
        bot.events_read += len(take)
        return remaining - len(take)


def make_waker(strategy: Any, config: Any) -> Waker | None:
    """The :class:`~perpbot.core.bot.wake.Waker` of ``strategy``'s wake spec, or None (schedule only).

    :param strategy: the run's strategy (its ``wake()``; a strategy without one is scheduled).
    :param config: the :class:`~perpbot.core.config.BotConfig` (``decision_interval_s`` is the throttle).
    :raises ConfigError: the spec is malformed (one line naming the strategy and the token).
    """
    wake = getattr(strategy, "wake", None)
    if not callable(wake):
        return None
    try:
        spec = wake()
    except ValueError as exc:
        raise ConfigError(f"strategy {config.strategy}: {exc}") from None
    if spec is None or not spec.active:
        return None
    return Waker(spec, int(Decimal(config.decision_interval_s) * NS))
