"""The alerts of one run: events in, rate-limited alerts out to the services' queues.

:class:`RunAlerts` is built by the plugin at ``on_bot_start`` when the run has alert
services. The plugin's hooks call it on the event loop: :meth:`RunAlerts.fill`,
:meth:`RunAlerts.risk`, :meth:`RunAlerts.feed_status`, :meth:`RunAlerts.tick` (feed health
from ``bot.paused()`` and the UTC day boundary, at every decision cycle, checkpoint and
equity snapshot, and every ``poll_s`` of wall time from a background task, since a live feed
that goes quiet fires no hook) and :meth:`RunAlerts.stop`. Every path only formats a message
and puts it in a bounded queue (:mod:`~perpbot.plugins.alerts.sender`), so an alert costs the
loop microseconds and a dead service costs it nothing. Imports :mod:`perpbot.core` and this
package.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any, Callable

from loguru import logger

from perpbot.core.tasks import cancel_and_wait
from perpbot.plugins.alerts import messages as msg
from perpbot.plugins.alerts.ratelimit import Held, RateLimiter, TokenBucket
from perpbot.plugins.alerts.sender import Dispatcher, apprise_sender
from perpbot.plugins.alerts.settings import AlertSettings
from perpbot.plugins.alerts.watch import DayTracker, FeedWatch, Marks, day_label

NS = 1_000_000_000


class RunAlerts:
    """Alert state of one run.

    :param bot: the run's read-only :class:`~perpbot.core.bot.view.RunView`.
    :param settings: the run's :class:`~perpbot.plugins.alerts.settings.AlertSettings` (with services).
    :param sender: how a worker sends (default apprise; tests pass a recorder).
    :param clock: wall-clock seconds for the rate limits (default :func:`time.monotonic`).
    """

    def __init__(self, bot: Any, settings: AlertSettings, *, sender: Callable = apprise_sender,
                 clock: Callable[[], float] = time.monotonic):
        p = settings.params
        self.bot = bot
        self.params = p
        self.scrub = msg.Scrubber(settings.secrets)
        cfg = bot.config
        self.head = msg.RunHeader(bot.run_id, cfg.strategy, tuple(cfg.exchange))
        self.limiter = RateLimiter(
            {
                "fill": TokenBucket(p.fill_burst, p.fill_per_min, clock),
                "risk": TokenBucket(p.risk_burst, p.risk_per_min, clock),
                "feed": TokenBucket(p.feed_burst, p.feed_per_min, clock),
                "halt": TokenBucket(5, 6, clock),
                "daily": TokenBucket(3, 1, clock),
            },
            TokenBucket(p.burst, p.per_min, clock),
            exempt=frozenset({"halt", "stop"}),
        )
        self.dispatcher = Dispatcher(settings.services, self.scrub, retries=p.retries, backoff_s=p.backoff_s,
                                     queue_size=p.queue_size, sender=sender)
        self.feeds = FeedWatch(int(p.feed_down_s * NS))
        self.days = DayTracker()
        self.fills = 0
        self.halt_sent = False
        self.task: asyncio.Task | None = None

    # -- output -----------------------------------------------------------

    def emit(self, alert: msg.Alert) -> None:
        """Send ``alert`` through the rate limit: digests that are due go first, then the alert
        itself or, when held back, it waits for its kind's next digest."""
        self.release()
        if self.limiter.offer(alert.kind, alert.line, alert.ts_ns):
            if not self.dispatcher.put(alert):
                self.limiter.hold(alert.kind, alert.line, alert.ts_ns)

    def release(self, force: bool = False) -> None:
        """Queue the digests the rate limit lets out now (all of them with ``force``)."""
        now = self.bot.clock.now_ns()
        for kind, held in self.limiter.release(force):
            alert = msg.digest_alert(self.head, kind, held.count, held.first_ns, held.lines, now)
            if not self.dispatcher.put(alert):  # a full queue: keep them for the next digest
                back = self.limiter.held.setdefault(kind, Held(first_ns=held.first_ns))
                back.count += held.count
                back.lines.extend(held.lines)

    # -- events -------------------------------------------------------------

    def start(self) -> None:
        """The run started: the worker threads, the wall-clock poll task and a start notice."""
        self.dispatcher.start()
        labels = ", ".join(w.service.label for w in self.dispatcher.workers)
        logger.info(f"alerts: {len(self.dispatcher.workers)} service(s): {labels}")
        self.task = asyncio.get_running_loop().create_task(self._poll(), name="perpbot-alerts-poll")
        self.emit(msg.start_alert(self.head, tickers=self.bot.config.tickers, equity=self.bot.total_equity(),
                                  services=len(self.dispatcher.workers)))

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(float(self.params.poll_s))
            try:
                self.tick()
            except Exception as exc:  # never let a check end the poll silently: log and go on
                logger.opt(exception=exc).error(f"alerts: check failed: {type(exc).__name__}: {exc}")

    def fill(self, fill: Any) -> None:
        """One of our orders filled."""
        self.fills += 1
        if self.params.fills:
            self.emit(msg.fill_alert(
                self.head, self.scrub, ticker=str(fill.ticker), side=fill.side.value, size=fill.size,
                price=fill.price, fee=fill.fee, liquidity=fill.liquidity.value, tag=fill.tag,
                liquidation=bool(fill.liquidation), ts_ns=fill.ts_ns or self.bot.clock.now_ns()))

    def risk(self, decision: Any) -> None:
        """A risk decision that is not an approval (HALT is a halt alert)."""
        alert = msg.risk_alert(self.head, self.scrub, action=decision.action.value, policy=decision.policy,
                               ticker=decision.ticker, reason=decision.reason,
                               ts_ns=decision.ts_ns or self.bot.clock.now_ns())
        if alert.kind == "halt":
            self.halt_sent = True
        self.emit(alert)

    def feed_status(self, status: Any) -> None:
        """A ``FeedStatus`` from the feed (dates a down spell exactly); then the usual check."""
        self.feeds.status(status.ticker, status.healthy, status.reason, status.ts_ns)
        self.tick()

    def marks(self) -> Marks:
        """The run's figures now (USD), from its summary so far."""
        s = self.bot.summary()
        return Marks(s.final_equity, s.realized_pnl, s.fees, s.funding_net, self.fills)

    def tick(self) -> None:
        """Check feed health and the UTC day boundary at the run clock's time; let due digests out."""
        bot = self.bot
        now = bot.clock.now_ns()
        if not bot.start_ns or now <= 0:
            return  # no market time yet (a replay before its first event)
        if self.params.daily:
            if self.days.day is None:
                self.days.begin(now, self.marks())
            elif self.days.crossed(now):
                self.daily(now)
        for ev in self.feeds.update(now, bot.paused()):
            if ev.kind == "down":
                self.emit(msg.feed_down_alert(self.head, self.scrub, ticker=ev.ticker, reason=ev.reason,
                                              since_ns=ev.since_ns, now_ns=now))
            else:
                self.emit(msg.feed_up_alert(self.head, ticker=ev.ticker, since_ns=ev.since_ns, now_ns=now))
        self.release()

    def _day(self, label: str, delta: Marks, equity_change: Decimal) -> msg.DayFigures:
        positions = tuple((t, p.size) for t, p in sorted(self.bot.positions().items()) if p.size)
        return msg.DayFigures(label, delta.equity, equity_change, delta.realized, delta.fees, delta.funding,
                              delta.fills, positions)

    def daily(self, now: int) -> None:
        """The clock crossed a UTC midnight: the summary of the day that ended."""
        marks = self.marks()
        change = self.days.equity_change(marks)
        label, delta = self.days.close_day(now, marks)
        self.emit(msg.daily_alert(self.head, self._day(label, delta, change), ts_ns=now))

    async def stop(self, summary: Any) -> None:
        """The run stopped: a halt alert if none went out, held alerts as digests, the stop
        summary (the day so far and the run), then up to ``drain_s`` for the queues to empty."""
        await cancel_and_wait([self.task])
        bot = self.bot
        now = bot.clock.now_ns()
        try:
            self.tick()
        except Exception as exc:
            logger.opt(exception=exc).error(f"alerts: last check failed: {type(exc).__name__}: {exc}")
        if bot.halted and not self.halt_sent:
            self.halt_sent = True
            self.emit(msg.halt_alert(self.head, self.scrub, reason=bot.halted, ts_ns=now))
        self.release(force=True)
        day = None
        if self.params.daily and self.days.day is not None:
            marks = Marks(summary.final_equity, summary.realized_pnl, summary.fees, summary.funding_net, self.fills)
            day = self._day(day_label(self.days.day), self.days.delta(marks), self.days.equity_change(marks))
        self.emit(msg.stop_alert(
            self.head, self.scrub, day=day, stop_reason=bot.stop_reason, halted=bot.halted,
            start_equity=summary.starting_equity, final_equity=summary.final_equity, realized=summary.realized_pnl,
            unrealized=summary.unrealized_pnl, fees=summary.fees, funding=summary.funding_net,
            fills=sum(m.fills for m in summary.markets), closed_trades=summary.closed_trades, ts_ns=now))
        self.release(force=True)
        await asyncio.to_thread(self.dispatcher.close, float(self.params.drain_s))
        sent = sum(w.sent for w in self.dispatcher.workers)
        failed = sum(w.failed for w in self.dispatcher.workers)
        held = sum(self.limiter.suppressed.values())
        logger.info(f"alerts: {sent} delivered, {failed} failed after retries, {held} held back by the rate "
                    "limit and sent in digests")
