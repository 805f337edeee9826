"""The bot's control surface (perpbot.core.bot.control): pause new entries, resume, close all, halt.

Driven from inside a real run (paper exchange, journal on) by a plugin that asks at given
decisions, as the API does; the journal is the witness.
"""

from __future__ import annotations

import asyncio

import pytest

from perpbot.core.bot.control import ControlAction, ControlUnavailable, control_of
from perpbot.core.hookspecs import hookimpl
from tests.plugins.api.conftest import S, T0, journal_rows, make_bot


class Controller:
    """Asks for ``plan[decision]`` at that decision (counted by this plugin) and keeps the outcomes."""

    __name__ = "api-test-controller"

    def __init__(self, plan: dict[int, str]):
        self.plan = dict(plan)
        self.n = 0
        self.futures: list = []
        self.errors: list = []

    @hookimpl
    def on_decision(self, bot, strategy, result):
        self.n += 1
        action = self.plan.get(self.n)
        if action is not None:
            self.futures.append(control_of(bot).request(action, "test 127.0.0.1", f"{action.lower()} at {self.n}"))


def run(bot):
    return asyncio.run(bot.run())


def test_pause_stops_entries_but_not_exits_and_resume_restores_them(tmp_path):
    ctl = Controller({6: "PAUSE_ENTRIES", 18: "RESUME_ENTRIES"})
    bot = make_bot(tmp_path, ctl, seconds=30)
    run(bot)
    outcomes = [f.result() for f in ctl.futures]
    assert [o.action for o in outcomes] == [ControlAction.PAUSE_ENTRIES, ControlAction.RESUME_ENTRIES]
    paused_at, resumed_at = outcomes[0].ts_ns, outcomes[1].ts_ns
    assert outcomes[0].entries_paused == "pause_entries at 6 (test 127.0.0.1)" and outcomes[1].entries_paused is None
    j = tmp_path / "journal.sqlite"
    # the journal holds both actions with their source
    risk = journal_rows(j, "SELECT ts_ns, policy, action, reason FROM risk_actions ORDER BY seq")
    assert [(r["policy"], r["action"]) for r in risk] == [("test 127.0.0.1", "PAUSE_ENTRIES"), ("test 127.0.0.1", "RESUME_ENTRIES")]
    assert [r["ts_ns"] for r in risk] == [paused_at, resumed_at]
    intents = journal_rows(j, "SELECT ts_ns, side, tag, reduce_only FROM order_intents ORDER BY seq")
    before = [r for r in intents if r["ts_ns"] < paused_at]
    during = [r for r in intents if paused_at <= r["ts_ns"] < resumed_at]
    after = [r for r in intents if r["ts_ns"] >= resumed_at]
    assert any(r["tag"] == "entry" for r in before)
    # while paused: exits only (the strategy still sold its lots), no entry
    assert during and all(r["tag"] == "exit" and r["side"] == "SELL" for r in during)
    assert any(r["tag"] == "entry" for r in after)
    # the dropped entries were counted as rejected orders, not sent
    assert bot.orders_rejected >= 5


def test_close_all_closes_through_the_order_path_and_halt_stops_the_run(tmp_path):
    ctl = Controller({8: "CLOSE_ALL", 12: "HALT"})
    bot = make_bot(tmp_path, ctl, seconds=60)
    run(bot)
    close, halt = [f.result() for f in ctl.futures]
    assert close.action is ControlAction.CLOSE_ALL and halt.action is ControlAction.HALT
    assert bot.halted == "test 127.0.0.1: halt at 12"
    assert halt.halted == bot.halted
    j = tmp_path / "journal.sqlite"
    risk = journal_rows(j, "SELECT policy, action FROM risk_actions ORDER BY seq")
    assert [(r["policy"], r["action"]) for r in risk] == [("test 127.0.0.1", "CLOSE_ALL"), ("test 127.0.0.1", "HALT")]
    # close-all sent a reduce-only close for the long position, journaled before it went out
    closes = journal_rows(j, "SELECT side, size, reduce_only, ts_ns, reason FROM order_intents WHERE tag = 'close'")
    assert [(r["side"], r["size"], r["reduce_only"], r["ts_ns"]) for r in closes] == [("SELL", "0.004", 1, close.ts_ns)]
    assert closes[0]["reason"] == "risk test 127.0.0.1: close_all at 8"
    # the halt stopped the run long before the data's end: no order after it
    assert not journal_rows(j, "SELECT 1 FROM order_intents WHERE ts_ns > ?", (halt.ts_ns,))
    assert bot.stop_reason == "HALT by test 127.0.0.1: halt at 12"


def test_requests_outside_the_loop_and_bad_requests_are_refused(tmp_path):
    bot = make_bot(tmp_path, seconds=5, journal=False)
    control = control_of(bot.view)

    async def before_start():
        with pytest.raises(ControlUnavailable, match="not running"):
            control.request(ControlAction.HALT, "test")

    asyncio.run(before_start())
    run(bot)

    async def after_stop():
        with pytest.raises(ValueError, match=r"unknown control action 'pause' \(known: PAUSE_ENTRIES, RESUME_ENTRIES"):
            control.request("pause", "test")
        with pytest.raises(ValueError, match="must name its source"):
            control.request("HALT", "  ")
        with pytest.raises(ControlUnavailable):
            control.request("HALT", "test")

    asyncio.run(after_stop())
    assert not control.accepting and not bot.halted


def test_requests_still_queued_when_the_run_ends_fail(tmp_path):
    class LateAsker:
        __name__ = "late-asker"
        future = None

        @hookimpl
        def on_bot_stop(self, bot, summary):
            pass

        @hookimpl
        def on_decision(self, bot, strategy, result):
            # the decision of the data's last event: asked after the loop's last batch boundary
            if bot.clock.now_ns() == T0 + 4 * S:
                LateAsker.future = control_of(bot).request("HALT", "test")

    bot = make_bot(tmp_path, LateAsker(), seconds=5, journal=False)
    run(bot)
    with pytest.raises(ControlUnavailable, match="the bot stopped"):
        LateAsker.future.result()
    assert bot.halted is None
