"""Built-in plugin: the terminal dashboard (Rich), ``runbot.py --dashboard``.

What it shows (seed 000, layer 8): markets with price, spread, the 0-100 scores
(momentum, volume, volatility, orderbook, funding), the strategy's composite
and rank; positions with size, entry, mark, unrealized PnL, liquidation price
and distance (``perpbot.core.margin.liquidation_price``, cross margin); the account
(equity, collateral, free collateral, margin usage, leverage, PnL split);
funding next/last per market; open orders; risk state and the last risk
actions with their reasons; feed health (connected, last message age, resyncs
and reconnects, paused markets with the reason).

It never slows the bot: an asyncio task takes a cheap :class:`Snapshot` of the
bot (plain values, no references into live state) at most ``hz`` times per
second and drops it into a one-slot mailbox (the latest value wins). On a
real terminal a child process draws it with ``rich.live.Live`` (the snapshot
is sent over a pipe only when the child asks for the next frame), so neither
a slow terminal nor the CPU cost of drawing touches the bot's process, not
even through the GIL. With a given console (tests, embedding) a thread draws
instead, throttled so drawing takes at most about an eighth of the time. A
blocked terminal stalls only the renderer; older snapshots are overwritten.

Modules: :mod:`~perpbot.plugins.dashboard.snapshot` (what is copied from the run's
:class:`~perpbot.core.bot.view.RunView`), :mod:`~perpbot.plugins.dashboard.render`
(:func:`build_layout`: a snapshot to a Rich renderable, tested headless with
``Console(record=True)``), :mod:`~perpbot.plugins.dashboard.live` (the snapshot task and
the renderer). This package imports :mod:`perpbot.core` and Rich only.
"""

from __future__ import annotations

import weakref
from typing import Any

from rich.console import Console

from perpbot.core.hookspecs import hookimpl
from perpbot.plugins.dashboard.live import Dashboard
from perpbot.plugins.dashboard.render import _price, build_layout
from perpbot.plugins.dashboard.snapshot import (
    SCORE_NAMES,
    MarketRow,
    OrderRow,
    PositionRow,
    RiskRow,
    Snapshot,
    take_snapshot,
)

__all__ = [
    "SCORE_NAMES",
    "Dashboard",
    "DashboardPlugin",
    "MarketRow",
    "OrderRow",
    "PositionRow",
    "RiskRow",
    "Snapshot",
    "build_layout",
    "dashboard_of",
    "take_snapshot",
]


class DashboardPlugin:
    """The hooks, as an object so tests (and embedders) can pass their own console.

    :param console: where to draw (default: the terminal); ``hz``, ``screen``, ``renderer``:
        as :class:`~perpbot.plugins.dashboard.live.Dashboard`.
    :param force: show the dashboard even when ``bot.config.dashboard`` is off.
    """

    def __init__(
        self,
        console: Console | None = None,
        *,
        hz: float = 4.0,
        screen: bool | None = None,
        force: bool = False,
        renderer: str | None = None,
    ):
        self.renderer = renderer
        self.console = console
        self.hz = hz
        self.screen = screen
        self.force = force
        self.dashboards: "weakref.WeakKeyDictionary[Any, Dashboard]" = weakref.WeakKeyDictionary()
        self.__name__ = "dashboard"

    @hookimpl
    def on_bot_start(self, bot):
        """Start a dashboard for ``bot`` (a :class:`~perpbot.core.bot.view.RunView`) when
        ``--dashboard`` is on (or ``force``); once per bot."""
        if not (self.force or getattr(bot.config, "dashboard", False)):
            return
        if bot in self.dashboards:
            return
        d = Dashboard(self.console, hz=self.hz, screen=self.screen, renderer=self.renderer)
        self.dashboards[bot] = d
        d.start(bot)

    @hookimpl
    async def on_bot_stop(self, bot, summary):
        """Draw the last frame of ``bot``'s dashboard and stop it."""
        d = self.dashboards.pop(bot, None)
        if d is not None:
            await d.stop(bot)


_DEFAULT = DashboardPlugin()


@hookimpl
def on_bot_start(bot):
    """The built-in instance's :meth:`DashboardPlugin.on_bot_start`."""
    _DEFAULT.on_bot_start(bot)


@hookimpl
async def on_bot_stop(bot, summary):
    """The built-in instance's :meth:`DashboardPlugin.on_bot_stop`."""
    await _DEFAULT.on_bot_stop(bot, summary)


def dashboard_of(bot: Any) -> Dashboard | None:
    """The running dashboard of ``bot`` (built-in plugin instance), if any."""
    return _DEFAULT.dashboards.get(bot)

