"""Event-driven decisions (issue 11 item 4): a strategy woken by a trade, a top-of-book change or
a score crossing decides right after that event, at its market time; decision_interval_s
throttles event-driven decisions without dropping a wake-up; the scheduled cycle keeps its
timer; the trigger is journaled with the orders; the feed's batching changes nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal as D

import attrs
import pytest

from perpbot.core.bot import TradingBot
from perpbot.core.bot.wake import Waker
from perpbot.core.errors import ConfigError
from perpbot.core.hookspecs import hookimpl
from perpbot.core.model import BookDelta, OrderParams, Side, Trade
from perpbot.core.params import param
from perpbot.core.plugins import PluginManager
from perpbot.core.policies import APPROVE, RiskPolicy
from perpbot.core.signals import Scores
from perpbot.core.strategy import BaseStrategy, StrategyResult
from perpbot.core.testing import book_events, bot_config
from perpbot.core.wake import ScoreCrossing, Wake
from tests.core.simple import TestPlugin

T0 = 1_723_161_255 * 10**9
S = 10**9
MS = 10**6


@attrs.frozen
class ProbeParams:
    wake_on: str = param("", "wake spec")
    buy_on_trade: bool = param(False, "buy when woken by a trade")
    orders: int = param(1, "orders placed per trade it is woken by")


class WakeProbe(BaseStrategy):
    """Records every decision: ``log`` (trigger kind, trigger ticker, trigger ts, decision ts,
    decided_ns) and ``seen`` (trigger kind, then each market's top of book and last trade price)."""

    name = "wakeprobe"
    Params = ProbeParams
    log: list = []
    seen: list = []

    def wake(self):
        return Wake.parse(self.params.wake_on) if self.params.wake_on else None

    async def should_execute(self, md):
        w = self.woken_by
        type(self).log.append((w.kind, w.ticker, w.ts_ns, md.ts_ns, w.decided_ns))
        type(self).seen.append((w.kind, *((t, st.best_bid_offer(), st.last_price) for t, st in sorted(md.markets.items()))))
        return True

    async def execute_strategy(self, md):
        w = self.woken_by
        if self.params.buy_on_trade and w.kind == "trade":
            return StrategyResult.place(*[OrderParams(w.ticker, Side.BUY, reason="probe buy")] * self.params.orders)
        return StrategyResult.nothing()


class ViewRecorder(RiskPolicy):
    """Approves everything; records the views it is shown: ("account" | "order", view)."""

    name = "view_recorder"
    views: list = []

    def check_account(self, view):
        type(self).views.append(("account", view))
        return APPROVE

    def check_order(self, order, view):
        type(self).views.append(("order", view))
        return APPROVE


class ProbePlugin:
    __name__ = "wake-probe"

    @hookimpl
    def register_strategies(self, register):
        register(WakeProbe)

    @hookimpl
    def register_risk_policies(self, register):
        register(ViewRecorder)


@pytest.fixture(autouse=True)
def _clear():
    WakeProbe.log = []
    WakeProbe.seen = []
    yield


def trade(ts, px="60000", ticker="BTC-USD", i=0):
    return Trade(ticker, ts, D(px), D("0.01"), Side.BUY, str(i or ts))


def run(tmp_path, evs=None, batches=None, wake="trade", interval="1", risk=(), **params):
    feed = {"batches": batches} if batches is not None else {"events": evs}
    cfg = bot_config(exchange=("instant",), strategy="wakeprobe", tickers=("BTC-USD",), feed="list",
                     state_dir=tmp_path, feeds={"list": feed}, sizer="test_notional",
                     decision_interval_s=D(interval), journal_enabled=False, report=False, risk_policies=tuple(risk),
                     strategies={"wakeprobe": {"wake_on": wake, **params}})
    pm = PluginManager(load_entry_points=False, extra_plugins=(TestPlugin(), ProbePlugin()), default_plugins=())
    bot = TradingBot(cfg, pm)
    summary = asyncio.run(bot.run())
    return bot, summary


def woken(kind=None):
    return [r for r in WakeProbe.log if r[0] != "schedule" and (kind is None or r[0] == kind)]


# --------------------------------------------------------------------------- the spec


def test_wake_spec_text_form_round_trips_and_bad_tokens_are_one_line():
    w = Wake.parse(" bbo , trade, score:momentum:70, every:5s ")
    assert (w.bbo, w.trade, w.scores, w.every_s) == (True, True, (ScoreCrossing("momentum", 70.0),), D(5))
    assert Wake.parse(w.text()) == w and Wake.parse(w) is w
    assert not Wake.parse("").active and not Wake.parse("every:3").active and Wake.parse(None) == Wake()
    for text, words in (
        ("bob", ("'bob'", "closest: 'bbo'")),
        ("score:momentun:70", ("'momentun'", "closest: 'momentum'")),
        ("score:momentum:170", ("0-100",)),
        ("score:momentum", ("score:<field>:<threshold>",)),
        ("score:volume:x", ("'x' is not a number",)),
        ("every:0", ("positive",)),
        ("every:nan", ("positive",)),
        ("trade:1", ("takes no argument",)),
    ):
        with pytest.raises(ValueError) as err:
            Wake.parse(text)
        msg = str(err.value)
        assert msg.startswith("wake_on: ") and "\n" not in msg and all(x in msg for x in words), msg


def test_a_bad_wake_spec_stops_the_build_with_one_line(tmp_path):
    with pytest.raises(ConfigError) as err:
        run(tmp_path, [trade(T0)], wake="trades")
    assert "wake_on" in str(err.value) and "closest: 'trade'" in str(err.value)
    from perpbot.strategies.sniper import SniperParams

    with pytest.raises(ValueError, match=r"^parameter wake_on: unknown wake-up 'bob' \(closest: 'bbo'\)"):
        SniperParams(wake_on="bob")


# --------------------------------------------------------------------------- trades


def test_a_trade_wakes_a_decision_at_that_trade_time_not_at_the_next_tick_of_the_schedule(tmp_path):
    evs = book_events("BTC-USD", T0, D("60000")) + [trade(T0 + 1300 * MS), trade(T0 + 5700 * MS), trade(T0 + 5750 * MS + 3)]
    bot, _ = run(tmp_path, evs, wake="trade,every:3600", interval="0.001")
    assert woken() == [("trade", "BTC-USD", t, t, t) for t in (T0 + 1300 * MS, T0 + 5700 * MS, T0 + 5750 * MS + 3)]
    assert [r for r in WakeProbe.log if r[0] == "schedule"] == [("schedule", "", 0, T0, 0)]  # first batch only
    assert bot._events.waker.stats()["woken"] == {"trade": 3}


def test_without_a_wake_spec_decisions_stay_on_the_schedule(tmp_path):
    evs = book_events("BTC-USD", T0, D("60000")) + [trade(T0 + i * 300 * MS) for i in range(1, 9)]
    bot, _ = run(tmp_path, evs, wake="")
    assert bot._events.waker is None
    assert [(r[0], r[3]) for r in WakeProbe.log] == [("schedule", T0), ("schedule", T0 + 1200 * MS), ("schedule", T0 + 2400 * MS)]


def test_an_order_of_a_trade_decision_is_placed_at_the_trade_time_and_journals_its_trigger(tmp_path):
    evs = book_events("BTC-USD", T0, D("60000")) + [trade(T0 + 2500 * MS + 7)]
    bot, summary = run(tmp_path / "a", evs, wake="trade,every:3600", buy_on_trade=True)
    (order,) = bot.exchange.placed
    assert order.reason.startswith("probe buy [woken by trade BTC-USD at 1723161257.500000007")
    assert summary.orders_sent == 1 and bot.last_activity_ns == T0 + 2500 * MS + 7  # sent at the trade's time
    # the journal keeps the trigger with the order intent
    cfg_dir = tmp_path / "b"
    WakeProbe.log = []
    evs2 = book_events("BTC-USD", T0, D("60000")) + [trade(T0 + 2500 * MS + 7)]
    feed = {"events": evs2}
    cfg = bot_config(exchange=("instant",), strategy="wakeprobe", tickers=("BTC-USD",), feed="list",
                     state_dir=cfg_dir, feeds={"list": feed}, sizer="test_notional", journal_enabled=True,
                     strategies={"wakeprobe": {"wake_on": "trade,every:3600", "buy_on_trade": True}})
    from perpbot.plugins import journal as journal_plugin

    pm = PluginManager(load_entry_points=False, extra_plugins=(TestPlugin(), ProbePlugin(), journal_plugin),
                       default_plugins=())
    bot2 = TradingBot(cfg, pm)
    asyncio.run(bot2.run())
    with sqlite3.connect(cfg.resolved_journal_path()) as db:
        reasons = [r[0] for r in db.execute("SELECT reason FROM order_intents")]
    assert len(reasons) == 1 and "[woken by trade BTC-USD at 1723161257.500000007" in reasons[0], reasons


def test_observers_get_the_strategys_result_and_the_requests_carry_the_trigger(tmp_path):
    """The trigger goes into each order request's reason (journaled with the intent); the
    ``on_decision`` observers get the result as the strategy returned it (the same object)."""
    returned, observed = [], []
    real = WakeProbe.execute_strategy

    async def keep(self, md):
        r = await real(self, md)
        returned.append(r)
        return r

    class Observer:
        __name__ = "decision-observer"

        @hookimpl
        def on_decision(self, bot, strategy, result):
            observed.append(result)

    evs = book_events("BTC-USD", T0, D("60000")) + [trade(T0 + 2500 * MS + 7)]
    cfg = bot_config(exchange=("instant",), strategy="wakeprobe", tickers=("BTC-USD",), feed="list",
                     state_dir=tmp_path, feeds={"list": {"events": evs}}, sizer="test_notional",
                     journal_enabled=False, report=False, strategies={"wakeprobe": {"wake_on": "trade,every:3600",
                                                                                     "buy_on_trade": True, "orders": 2}})
    pm = PluginManager(load_entry_points=False, extra_plugins=(TestPlugin(), ProbePlugin(), Observer()), default_plugins=())
    bot = TradingBot(cfg, pm)
    WakeProbe.execute_strategy = keep
    try:
        asyncio.run(bot.run())
    finally:
        WakeProbe.execute_strategy = real
    (decided,) = [r for r in observed if r.orders]
    assert any(decided is r for r in returned)  # the very result, not a copy
    assert [o.reason for o in decided.orders] == ["probe buy", "probe buy"]
    tail = " [woken by trade BTC-USD at 1723161257.500000007 (BUY 0.01 at 60000)]"
    assert [o.reason for o in bot.exchange.placed] == ["probe buy" + tail] * 2


def test_an_order_without_a_reason_gets_the_trigger_alone(tmp_path):
    real = WakeProbe.execute_strategy

    async def bare(self, md):
        if self.woken_by.kind == "trade":
            return StrategyResult.place(OrderParams("BTC-USD", Side.BUY))
        return StrategyResult.nothing()

    WakeProbe.execute_strategy = bare
    try:
        evs = book_events("BTC-USD", T0, D("60000")) + [trade(T0 + 2500 * MS + 7)]
        bot, _ = run(tmp_path, evs, wake="trade,every:3600")
    finally:
        WakeProbe.execute_strategy = real
    assert [o.reason for o in bot.exchange.placed] == ["[woken by trade BTC-USD at 1723161257.500000007 (BUY 0.01 at 60000)]"]


# --------------------------------------------------------------------------- throttle


def test_the_throttle_holds_wake_ups_and_decides_them_at_the_first_event_after_the_gap(tmp_path):
    ts = [T0 + x * MS for x in (1000, 1200, 1400, 1499, 1500, 2100, 3000)]
    evs = book_events("BTC-USD", T0, D("60000")) + [trade(t) for t in ts]
    bot, _ = run(tmp_path, evs, wake="trade,every:3600", interval="0.5")
    # (kind, ticker, waking event ts, decision ts): 1.2 s is held until the 1.5 s event, 1.4 and
    # 1.499 merge into it; 2.1 s is decided at once, 3.0 s too
    assert [(r[2], r[3]) for r in woken()] == [
        (ts[0], ts[0]), (ts[1], ts[4]), (ts[5], ts[5]), (ts[6], ts[6]),
    ]
    gaps = [b[3] - a[3] for a, b in zip(woken(), woken()[1:])]
    assert min(gaps) >= 500 * MS
    st = bot._events.waker.stats()
    assert (st["held"], st["merged"], st["delay_ms_max"]) == (1, 3, 300.0)  # 1.5 s event merged too


def test_the_scheduled_cycle_is_never_starved_by_wake_ups(tmp_path):
    evs = book_events("BTC-USD", T0, D("60000")) + [trade(T0 + i * 100 * MS) for i in range(1, 101)]
    run(tmp_path, evs, wake="trade,every:2", interval="0.25")
    sched = [r[3] for r in WakeProbe.log if r[0] == "schedule"]
    assert sched == [T0 + k * 2 * S for k in range(6)]  # 0, 2, ..., 10 s: its own timer, never moved
    # trades every 0.1 s, throttle 0.25 s: decided at 0.1 s, then each held wake-up at the first
    # trade after the gap (0.4, 0.7, ...)
    assert [r[3] for r in woken()] == [T0 + (100 + 300 * k) * MS for k in range(34)]


# --------------------------------------------------------------------------- top of book


def test_only_a_change_of_the_top_of_book_wakes_a_bbo_strategy(tmp_path):
    evs = book_events("BTC-USD", T0, D("60000"))  # bid 59999.5, ask 60000.5
    evs += [
        BookDelta("BTC-USD", T0 + 1 * S, ((D("59990"), D("3")),), ()),  # deeper level: no
        BookDelta("BTC-USD", T0 + 2 * S, ((D("59999.5"), D("9")),), ()),  # size at the top: no
        BookDelta("BTC-USD", T0 + 3 * S, ((D("60000"), D("1")),), ()),  # new best bid: yes
        BookDelta("BTC-USD", T0 + 4 * S, (), ((D("60000.5"), D("0")),)),  # best ask removed: yes
        trade(T0 + 5 * S),  # not watched
    ]
    run(tmp_path, evs, wake="bbo,every:3600", interval="0.001")
    assert [(r[0], r[2], r[3]) for r in woken()] == [
        ("bbo", T0, T0), ("bbo", T0 + 3 * S, T0 + 3 * S), ("bbo", T0 + 4 * S, T0 + 4 * S)]


# --------------------------------------------------------------------------- scores


class _State:
    def __init__(self):
        self.scores = Scores()

    def best_bid_offer(self):
        return (None, None)


def test_a_score_crossing_wakes_in_either_direction_once_per_crossing():
    w = Waker(Wake.parse("score:momentum:70,score:volume:40"), 0)
    st = _State()
    seq = []
    for i, (m, v) in enumerate([(50, 50), (69.9, 50), (70, 50), (75, 50), (71, 39), (60, 39), (60, 45)]):
        st.scores.momentum, st.scores.volume = m, v
        got = w.on_event(st, trade(T0 + i, ticker="BTC-USD"))
        seq.append(got and (got.kind, got.detail))
    assert seq == [
        None, None,
        ("score", "momentum crossed 70 upward (70.0)"), None,
        ("score", "volume crossed 40 downward (39.0)"),
        ("score", "momentum crossed 70 downward (60.0)"),
        ("score", "volume crossed 40 upward (45.0)"),
    ]


def test_a_trade_wake_up_names_the_side_size_and_price_as_the_trade_wrote_them():
    """The detail keeps each Decimal's own text (exponent forms included: what ``format`` and
    ``str`` both give), so the journaled reason shows the venue's values."""
    w = Waker(Wake.parse("trade"), 0)
    for px, size, side in [("60000", "0.01", Side.BUY), ("6.0E+4", "1E-8", Side.SELL), ("0.000120", "25.50", Side.BUY)]:
        got = w.on_event(_State(), Trade("BTC-USD", T0, D(px), D(size), side, "1"))
        assert got.detail == f"{side.value} {size} at {px}" == f"{side.value} {D(size)} at {D(px)}"


def test_score_wake_ups_come_from_the_signal_engine_right_after_its_update(tmp_path):
    # a book whose mid climbs then falls: momentum crosses 60 upward, later downward
    evs = book_events("BTC-USD", T0, D("60000"))
    px = D("60000")
    for i in range(1, 400):
        px += D("5") if i < 200 else D("-5")
        evs.append(book_events("BTC-USD", T0 + i * S, px)[0])
        evs.append(trade(T0 + i * S + 1, px))
    bot, _ = run(tmp_path, evs, wake="score:momentum:60,every:3600", interval="0.001")
    got = woken("score")
    assert len(got) >= 2 and all(r[2] == r[3] for r in got)  # decided at the crossing's event
    up = [r for r in got if r[2] < T0 + 200 * S]
    down = [r for r in got if r[2] > T0 + 200 * S]
    assert up and down
    assert bot._events.waker.stats()["woken"] == {"score": len(got)}


# --------------------------------------------------------------------------- batching


def test_the_feed_batching_does_not_change_the_decisions(tmp_path):
    evs = book_events("BTC-USD", T0, D("60000"))
    for i in range(1, 60):
        evs.append(trade(T0 + i * 170 * MS, D("60000") + i))
        evs.append(BookDelta("BTC-USD", T0 + i * 170 * MS + 1, ((D("59999.5") + (i % 3), D("1")),), ()))
    run(tmp_path / "one", evs, wake="bbo,trade,every:3600", interval="0.3")
    one_per_batch = woken()
    WakeProbe.log = []
    run(tmp_path / "big", batches=[evs[:2], evs[2:50], evs[50:51], evs[51:]], wake="bbo,trade,every:3600", interval="0.3")
    assert woken() == one_per_batch and len(one_per_batch) > 20


# --------------------------------------------------------------------------- the cycle's snapshot


def test_the_cycle_snapshot_is_what_the_bot_queries_return_on_every_venue(tmp_path):
    """The decision cycle reads balances, marks, positions and paused markets once
    (AccountSnapshot); they must equal the bot's own queries, venue by venue."""
    from perpbot.core.bot.decisions import AccountSnapshot, risk_view
    from perpbot.core.model import Fill, Liquidity
    from perpbot.core.portfolio import Portfolio
    from perpbot.core.state import MarketState
    from perpbot.core.testing import market

    evs = book_events("BTC-USD", T0, D("60000")) + [trade(T0 + S)]
    bot, _ = run(tmp_path, evs, wake="trade,every:3600", buy_on_trade=True)
    other = Portfolio(D("5000"), {"BTC-USD": market("BTC-USD")})
    other.apply_fill(Fill(1, "BTC-USD", Side.SELL, D("61000"), D("0.1"), D("1"), Liquidity.TAKER, T0))
    bot.portfolios["other"] = other
    st = MarketState(market("BTC-USD"))
    st.apply(book_events("BTC-USD", T0, D("60500"))[0])
    bot.states["other:BTC-USD"] = st
    bot.states["other:ETH-USD"] = MarketState(market("ETH-USD"))  # no book yet: paused
    snap = AccountSnapshot.of(bot)
    assert snap.paused == {"other:ETH-USD": "no book snapshot yet"}
    assert snap.balances == {v: bot.balance(v) for v in bot.portfolios} and len(snap.balances) == 2
    assert snap.balances["other"] != snap.balances[bot.config.primary_venue]
    assert (snap.marks, snap.positions, snap.paused) == (bot.marks(), bot.positions(), bot.paused())
    assert snap.total_equity == bot.total_equity() and snap.primary == bot.balance()
    now = bot.clock.now_ns()
    assert attrs.asdict(snap.market_data(bot, now), recurse=False) == attrs.asdict(bot.market_data(), recurse=False)
    assert risk_view(bot, snap) == risk_view(bot)


def test_the_order_checks_see_the_account_after_each_order_of_a_decision(tmp_path):
    """The first order's risk check reuses the cycle's snapshot; once an order went out (and
    filled), the next check sees the new position and balance."""
    ViewRecorder.views = []
    evs = book_events("BTC-USD", T0, D("60000")) + [trade(T0 + S)]
    bot, _ = run(tmp_path, evs, wake="trade,every:3600", risk=("view_recorder",), buy_on_trade=True, orders=2)
    kinds = [k for k, _ in ViewRecorder.views]
    assert kinds == ["account", "account", "order", "order"]  # schedule at T0, then the trade's decision
    account, first, second = (v for _, v in ViewRecorder.views[1:])
    assert first.positions == account.positions == {} and first.balance == account.balance
    assert second.positions["BTC-USD"].size > 0 and second.balance != first.balance
    assert len(bot.exchange.placed) == 2


def test_a_risk_view_between_cycles_is_taken_afresh(tmp_path):
    evs = book_events("BTC-USD", T0, D("60000")) + book_events("BTC-USD", T0 + S, D("61000"))
    bot, _ = run(tmp_path, evs, wake="trade,every:3600")  # one decision, at T0; the book moves after it
    assert [r[3] for r in WakeProbe.log] == [T0]
    assert bot.risk_view().marks == bot.marks() and bot.marks()["BTC-USD"] != D("60000")
