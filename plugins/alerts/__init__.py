"""Built-in plugin: alerts through apprise (Telegram, Slack, Discord, e-mail, webhooks, ...).

One apprise URL per service, from ``--alert URL`` (repeatable), ``[alerts] urls = [...]`` or
an owner-only file (``--alert-file``, ``[alerts] url_file``; mode 600, URLs embed tokens);
parameters from ``--alert-param key=value`` / ``[alerts]`` keys
(:class:`~perpbot.plugins.alerts.settings.AlertParams`). Without a URL the plugin does nothing.

What is sent: each fill (``on_fill``); each risk action that is not an approval
(``on_risk_action``) and a halt (the HALT action, or ``bot.halted`` at ``on_bot_stop`` for a
halt a plugin called); a market whose feed has been down for ``feed_down_s`` seconds of run
clock and its recovery (``on_feed_status`` and ``bot.paused()``); a PnL summary at each UTC
midnight of the run clock (market time in replays) and at stop; a start notice.

Guarantees: rate-limited per kind and globally, a burst coalesced into one digest that says
how many were held back (:mod:`~perpbot.plugins.alerts.ratelimit`); sent by worker threads
from bounded queues, retried with backoff, failures logged with the service's scheme and
host, never blocking nor halting trading (:mod:`~perpbot.plugins.alerts.sender`); built from
whitelisted fields, secrets scrubbed (:mod:`~perpbot.plugins.alerts.messages`); URLs checked
before the run (an unknown scheme is one line naming the closest supported ones) and never
shown in full (:mod:`~perpbot.plugins.alerts.settings`). :mod:`~perpbot.plugins.alerts.run`
holds a run's state, :mod:`~perpbot.plugins.alerts.watch` the feed and day watches.
Imports :mod:`perpbot.core` and apprise (only when a URL is given).
"""

from __future__ import annotations

import time
import weakref
from typing import Any, Callable

from perpbot.core.hookspecs import hookimpl
from perpbot.plugins.alerts.messages import Alert, Scrubber
from perpbot.plugins.alerts.ratelimit import RateLimiter, TokenBucket
from perpbot.plugins.alerts.run import RunAlerts
from perpbot.plugins.alerts.sender import Dispatcher, ServiceWorker, apprise_sender
from perpbot.plugins.alerts.settings import AlertParams, AlertService, AlertSettings, load_settings

__all__ = [
    "Alert",
    "AlertParams",
    "AlertService",
    "AlertSettings",
    "AlertsPlugin",
    "Dispatcher",
    "RateLimiter",
    "RunAlerts",
    "Scrubber",
    "ServiceWorker",
    "TokenBucket",
    "alerts_of",
    "load_settings",
]


class AlertsPlugin:
    """The hooks, as an object so tests can pass their own sender and clock.

    :param sender: ``sender(service)`` -> ``send(alert) -> (ok, why)`` (default: apprise).
    :param clock: wall-clock seconds for the rate limits (default :func:`time.monotonic`).
    """

    def __init__(self, *, sender: Callable = apprise_sender, clock: Callable[[], float] = time.monotonic):
        self.sender = sender
        self.clock = clock
        self.__name__ = "alerts"
        #: the last configurations seen and their settings (``configure`` is historic; tests build several bots)
        self.configured: list[tuple[Any, AlertSettings]] = []
        self.runs: "weakref.WeakKeyDictionary[Any, RunAlerts]" = weakref.WeakKeyDictionary()

    def settings_for(self, config: Any) -> AlertSettings:
        """The :class:`AlertSettings` of ``config`` (checked once, at ``configure``)."""
        for cfg, settings in self.configured:
            if cfg is config:
                return settings
        settings = load_settings(config)
        self.configured = [*self.configured[-3:], (config, settings)]
        return settings

    @hookimpl
    def configure(self, config):
        """Check the alert URLs and parameters before anything runs.

        :raises ConfigError: a bad parameter, an unsafe URL file or an unsupported URL (one line).
        """
        self.settings_for(config)

    @hookimpl
    def on_bot_start(self, bot):
        """Start the run's alerts (worker threads, poll task, start notice) when it has services."""
        settings = self.settings_for(bot.config)
        if not settings.services or bot in self.runs:
            return
        run = self.runs[bot] = RunAlerts(bot, settings, sender=self.sender, clock=self.clock)
        run.start()

    @hookimpl
    def on_fill(self, bot, fill):
        """A fill alert."""
        run = self.runs.get(bot)
        if run is not None:
            run.fill(fill)

    @hookimpl
    def on_risk_action(self, bot, decision):
        """A risk-action (or halt) alert."""
        run = self.runs.get(bot)
        if run is not None:
            run.risk(decision)

    @hookimpl
    def on_feed_status(self, bot, status):
        """Feed health from the feed itself."""
        run = self.runs.get(bot)
        if run is not None:
            run.feed_status(status)

    @hookimpl
    def on_decision(self, bot):
        """Check feed health and the day boundary at each decision cycle."""
        self._tick(bot)

    @hookimpl
    def on_checkpoint(self, bot):
        """Check feed health and the day boundary at each checkpoint."""
        self._tick(bot)

    @hookimpl
    def on_equity_snapshot(self, bot):
        """Check feed health and the day boundary at each equity snapshot."""
        self._tick(bot)

    def _tick(self, bot) -> None:
        run = self.runs.get(bot)
        if run is not None:
            run.tick()

    @hookimpl
    async def on_bot_stop(self, bot, summary):
        """Halt alert if due, digests, the stop summary; wait up to ``drain_s`` for delivery."""
        run = self.runs.pop(bot, None)
        if run is not None:
            await run.stop(summary)


_DEFAULT = AlertsPlugin()


@hookimpl
def configure(config):
    """The built-in instance's :meth:`AlertsPlugin.configure`."""
    _DEFAULT.configure(config)


@hookimpl
def on_bot_start(bot):
    """The built-in instance's :meth:`AlertsPlugin.on_bot_start`."""
    _DEFAULT.on_bot_start(bot)


@hookimpl
def on_fill(bot, fill):
    """The built-in instance's :meth:`AlertsPlugin.on_fill`."""
    _DEFAULT.on_fill(bot, fill)


@hookimpl
def on_risk_action(bot, decision):
    """The built-in instance's :meth:`AlertsPlugin.on_risk_action`."""
    _DEFAULT.on_risk_action(bot, decision)


@hookimpl
def on_feed_status(bot, status):
    """The built-in instance's :meth:`AlertsPlugin.on_feed_status`."""
    _DEFAULT.on_feed_status(bot, status)


@hookimpl
def on_decision(bot):
    """The built-in instance's :meth:`AlertsPlugin.on_decision`."""
    _DEFAULT.on_decision(bot)


@hookimpl
def on_checkpoint(bot):
    """The built-in instance's :meth:`AlertsPlugin.on_checkpoint`."""
    _DEFAULT.on_checkpoint(bot)


@hookimpl
def on_equity_snapshot(bot):
    """The built-in instance's :meth:`AlertsPlugin.on_equity_snapshot`."""
    _DEFAULT.on_equity_snapshot(bot)


@hookimpl
async def on_bot_stop(bot, summary):
    """The built-in instance's :meth:`AlertsPlugin.on_bot_stop`."""
    await _DEFAULT.on_bot_stop(bot, summary)


def alerts_of(bot: Any) -> RunAlerts | None:
    """The running alerts of ``bot`` (built-in plugin instance), if any."""
    return _DEFAULT.runs.get(bot)
