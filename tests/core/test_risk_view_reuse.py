"""One risk view per decision cycle (issue 11, tick-to-order): the view the account checks
saw serves the first order's checks while everything it is made of is unchanged
(``core/bot/decisions.py``, ``risk_view``), and a fresh view is made as soon as one input
changes (then it is what a view built from scratch says)."""

from __future__ import annotations

from decimal import Decimal as D

import attrs
import pytest

from perpbot.core.bot.decisions import AccountSnapshot, risk_view
from perpbot.core.hookspecs import hookimpl
from perpbot.core.model import OrderParams, Side
from perpbot.core.policies import RiskDecision, RiskPolicy, RiskView
from perpbot.core.strategy import StrategyResult
from tests.core.simple import ScriptedStrategy
from tests.core.test_bot import events, make_bot, run


class _Seeing(RiskPolicy):
    name = "test_seeing"
    seen: list = []

    def check_account(self, view):
        type(self).seen.append(("account", view))
        return RiskDecision()

    def check_order(self, order, view):
        type(self).seen.append(("order", view))
        return RiskDecision()


class _Plugin:
    __name__ = "risk-view-reuse-test"

    @hookimpl
    def register_risk_policies(self, register):
        register(_Seeing)


def test_the_first_orders_checks_see_the_account_checks_view(tmp_path):
    _Seeing.seen = []
    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.01")),
                                                    OrderParams("BTC-USD", Side.SELL, size=D("0.01")))]
    bot = make_bot(tmp_path, events(3), _Plugin(), risk_policies=("test_seeing",))
    run(bot)
    kinds = [k for k, _ in _Seeing.seen]
    i = kinds.index("order")
    account, first, second = _Seeing.seen[i - 1][1], _Seeing.seen[i][1], _Seeing.seen[i + 1][1]
    assert kinds[i - 1] == "account" and kinds[i + 1] == "order"
    assert first is account  # nothing changed between the account checks and the first order
    assert second is not first  # the first order went out: the account may have changed
    assert second.positions != first.positions  # ... and it did (the buy filled)


def _cycle_of(bot):
    """Pretend a decision cycle is in progress (as ``DecisionCycle.run`` sets it up)."""
    snap = AccountSnapshot.of(bot)
    bot._cycle.live_snapshot = (bot.orders_sent, bot.orders_rejected, snap)
    return snap


def _rebuilt(view):
    return RiskView(**{a.name: getattr(view, a.name) for a in attrs.fields(RiskView)})


CHANGES = {
    "start_equity": lambda bot: setattr(bot, "start_equity", bot.start_equity + 1),
    "peak_equity": lambda bot: setattr(bot, "peak_equity", bot.peak_equity + 1),
    "day_start_equity": lambda bot: setattr(bot, "day_start_equity", bot.day_start_equity + 1),
    "consecutive_failures": lambda bot: setattr(bot, "consecutive_failures", bot.consecutive_failures + 1),
    "last_fill_ns": lambda bot: setattr(bot, "last_fill_ns", bot.last_fill_ns + 1),
    "last_activity_ns": lambda bot: setattr(bot, "last_activity_ns", bot.last_activity_ns + 1),
    "open_orders": lambda bot: bot.open_orders.__setitem__(999_999, object()),
    "now_ns": lambda bot: bot.clock.advance_to(bot.clock.now_ns() + 1),
    "circuit_open": lambda bot: setattr(bot.exchanges[next(iter(bot.exchanges))], "circuit_open", "3 failures in a row"),
}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_a_changed_input_makes_a_fresh_view(tmp_path, field):
    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.01")))]
    bot = make_bot(tmp_path, events(3))
    run(bot)
    snap = _cycle_of(bot)
    kept = risk_view(bot, snap)
    assert risk_view(bot) is kept and risk_view(bot, snap) is kept
    before = getattr(kept, field)
    CHANGES[field](bot)
    fresh = risk_view(bot)
    assert fresh is not kept
    after = getattr(fresh, field)
    assert after != before, f"{field} unchanged in the fresh view"
    assert fresh == _rebuilt(fresh) and repr(fresh) == repr(_rebuilt(fresh))
    assert risk_view(bot) is fresh  # the fresh one is kept in turn


def test_no_view_is_kept_outside_a_cycle_or_after_an_order(tmp_path):
    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.01")))]
    bot = make_bot(tmp_path, events(3))
    run(bot)
    assert bot._cycle.live_view is None  # cleared with the cycle
    assert risk_view(bot) is not risk_view(bot)  # no cycle: each call makes its own
    snap = _cycle_of(bot)
    kept = risk_view(bot, snap)
    bot.orders_sent += 1  # an order went out: the cycle's snapshot no longer holds
    assert risk_view(bot) is not kept
