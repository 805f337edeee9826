"""A third-party plugin steers a run through the public control route, importing only ``perpbot``.

``perpbot`` exports :class:`~perpbot.core.bot.control.BotControl` and ``control_of`` (issue 16.1's
control surface); :mod:`perpbot.core.hookspecs`' docstring points observers to it.
"""

from __future__ import annotations

import asyncio

import perpbot
from perpbot import BotControl, ControlAction, ControlOutcome, control_of, hookimpl


class Pauser:
    """Pauses new entries at its first decision, as a plugin author would write it."""

    __name__ = "pauser"

    def __init__(self):
        self.control: BotControl | None = None
        self.outcomes: list = []

    @hookimpl
    def on_bot_start(self, bot):
        self.control = control_of(bot)

    @hookimpl
    async def on_decision(self, bot, strategy, result):
        if not self.outcomes:
            fut = self.control.request(ControlAction.PAUSE_ENTRIES, "plugin pauser", "test pause")
            self.outcomes.append(fut)


def test_the_control_route_is_public_and_a_plugin_can_pause_entries(tmp_path):
    from perpbot.core.bot import control as control_mod
    from tests.core.test_bot import events, make_bot

    for name in ("BotControl", "ControlAction", "ControlOutcome", "ControlUnavailable", "control_of"):
        assert getattr(perpbot, name) is getattr(control_mod, name) and name in perpbot.__all__
    plugin = Pauser()
    bot = make_bot(tmp_path, events(40), plugin)
    asyncio.run(bot.run())
    assert plugin.control is bot.control
    outcome = plugin.outcomes[0].result()
    assert isinstance(outcome, ControlOutcome) and outcome.source == "plugin pauser"
    assert bot.entries_paused == "test pause (plugin pauser)"
    assert [d.policy for d in bot.risk_log if d.action is ControlAction.PAUSE_ENTRIES] == ["plugin pauser"]
