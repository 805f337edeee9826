"""The sniper's event-driven mode (issue 11 item 4): the ``wake_on`` parameter, and the README's
main-job figures of that mode pinned beside the schedule's (tests/e2e/test_main_job_pinned.py)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from perpbot import Wake
from perpbot.core.errors import ConfigError
from sniper_testkit import make_sniper


def cents(x) -> D:
    return D(x).quantize(D("0.01"))


def test_wake_on_parameter_is_the_sniper_wake_spec():
    assert make_sniper().wake() is None  # the default: today's schedule
    assert make_sniper(wake_on="bbo,trade").wake() == Wake(bbo=True, trade=True)
    spec = make_sniper(wake_on="trade, score:momentum:70, every:5").wake()
    assert spec.trade and not spec.bbo and spec.scores[0].field == "momentum" and spec.every_s == D(5)
    with pytest.raises(ConfigError, match=r"strategy sniper: parameter wake_on: .*'bob'.*closest: 'bbo'"):
        make_sniper(wake_on="bbo,bob")


@pytest.mark.slow
def test_the_main_job_in_the_sniper_event_driven_mode_is_pinned(run_replay):
    """README "Decisions on events": --wake-on bbo,trade,every:1 --decision-interval 0.1."""
    bot, s = run_replay("sniper", params={"wake_on": "bbo,trade,every:1"}, decision_interval_s=D("0.1"))
    lines = {m.ticker: m for m in s.markets}
    btc, eth = lines["BTC-USD"], lines["ETH-USD"]
    assert (btc.fills, cents(btc.realized_pnl), eth.fills, cents(eth.realized_pnl)) == (2, D("0.53"), 2, D("-0.54"))
    assert cents(s.final_equity) == D("9998.00") and cents(s.fees) == D("2.00")
    assert (s.decisions, s.orders_sent, s.orders_rejected, s.strategy_errors) == (3321, 4, 0, 0)
    stats = bot._events.waker.stats()
    assert stats["woken"] == {"bbo": 158, "trade": 2825} and stats["held"] == 2509
    sent = [o.reason for o in bot.orders.values()]
    assert len(sent) == 4 and all("[woken by " in r for r in sent), sent  # every order decided at an event
