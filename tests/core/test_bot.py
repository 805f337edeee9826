"""TradingBot supervisor behaviour with an in-memory feed and a deterministic exchange."""

import asyncio
from decimal import Decimal as D

import attrs
import pytest

from perpbot.core.bot import ClientIdAllocator, TradingBot
from perpbot.core.errors import ConfigError
from perpbot.core.hookspecs import hookimpl
from perpbot.core.model import FeedStatus, OrderParams, OrderType, Side, Trade
from perpbot.core.plugins import PluginManager
from perpbot.core.policies import RiskAction, RiskDecision, RiskPolicy
from perpbot.core.strategy import StrategyResult
from perpbot.core.testing import book_events, bot_config
from tests.core.simple import ScriptedStrategy, TestPlugin

T0 = 1_723_161_255 * 10**9
S = 10**9


def counted(evs):
    """Events by the benchmark's definition: each depth-update level entry, each trade or quote;
    snapshots are not events."""
    from perpbot.core.model import BookDelta, BookSnapshot

    return sum(len(e.bids) + len(e.asks) if type(e) is BookDelta else (0 if type(e) is BookSnapshot else 1) for e in evs)


def events(n=10, ticker="BTC-USD", start=T0, step=S, mid=D("60000")):
    out = []
    out += book_events(ticker, start, mid)
    for i in range(1, n):
        out.append(Trade(ticker, start + i * step, mid, D("0.01"), Side.BUY, str(i)))
    return out


@pytest.fixture(autouse=True)
def _reset_script():
    ScriptedStrategy.SCRIPT = []
    ScriptedStrategy.seen = []
    ScriptedStrategy.fills = []
    yield


def make_bot(tmp_path, evs, *extra, **cfg):
    base = dict(
        exchange=("instant",),
        strategy="scripted",
        tickers=("BTC-USD",),
        feed="list",
        state_dir=tmp_path,
        feeds={"list": {"events": evs}},
        sizer="test_notional",
    )
    base.update(cfg)
    pm = PluginManager(load_entry_points=False, extra_plugins=(TestPlugin(), *extra), default_plugins=())
    return TradingBot(bot_config(**base), pm)


def run(bot):
    return asyncio.run(bot.run())


def test_strategy_order_is_executed_and_fill_booked(tmp_path):
    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.01234")))]
    bot = make_bot(tmp_path, events())
    summary = run(bot)
    ex = bot.exchange
    assert len(ex.placed) == 1
    # size floored to the 0.0001 BTC step, never raised
    assert ex.placed[0].size == D("0.0123")
    assert bot.portfolio.positions["BTC-USD"].size == D("0.0123")
    assert ScriptedStrategy.fills and ScriptedStrategy.fills[0].size == D("0.0123")
    assert summary.markets[0].fills == 1
    assert summary.fees == (D("0.0123") * D("60000.5") * D("0.0005")).quantize(D("0.000001"))
    assert summary.events == counted(events()) == 1 + 9  # oracle + trades; the snapshot is not an event


def test_size_below_minimum_is_rejected_not_raised(tmp_path):
    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.00005")))]
    bot = make_bot(tmp_path, events())
    summary = run(bot)
    assert bot.exchange.placed == []
    assert summary.orders_rejected == 1


def test_sizer_decides_when_size_is_none(tmp_path):
    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.SELL))]
    bot = make_bot(tmp_path, events(), sizers={"test_notional": {"notional": "1200"}})
    run(bot)
    (order,) = bot.exchange.placed
    # 1200 USD at the 59999.5 bid -> 0.02000016 BTC floored to the step
    assert order.size == D("0.02") and order.side is Side.SELL


def test_strategy_exception_is_contained(tmp_path):
    ScriptedStrategy.SCRIPT = [RuntimeError("bug in strategy"), StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.01")))]
    bot = make_bot(tmp_path, events())
    summary = run(bot)
    assert summary.strategy_errors == 1
    assert len(bot.exchange.placed) == 1  # the next cycle still ran


def test_paused_market_is_not_tradable(tmp_path):
    evs = events(5) + [FeedStatus("BTC-USD", T0 + 6 * S, healthy=False, reason="crossed book, resyncing")]
    evs += [Trade("BTC-USD", T0 + (7 + i) * S, D("60000"), D("0.01"), Side.BUY) for i in range(3)]
    bot = make_bot(tmp_path, evs)
    run(bot)
    last = ScriptedStrategy.seen[-1]
    assert "BTC-USD" not in last.tradable
    assert last.paused["BTC-USD"] == "crossed book, resyncing"


def test_unknown_ticker_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown ticker 'XYZ-USD'"):
        make_bot(tmp_path, events(), tickers=("XYZ-USD",))


def test_unknown_strategy_parameter_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="sizer test_notional: unknown parameter 'bogus'"):
        make_bot(tmp_path, events(), sizers={"test_notional": {"bogus": "1"}})


class _Reject(RiskPolicy):
    name = "test_reject"

    def check_order(self, order, view):
        return RiskDecision(RiskAction.REJECT, "too big for the test")


class _Reduce(RiskPolicy):
    name = "test_reduce"

    def check_order(self, order, view):
        if order.reduce_only:
            return RiskDecision()
        return RiskDecision(RiskAction.REDUCE, "halve it", size=order.size / 2)


class _HaltAfter(RiskPolicy):
    name = "test_halt"
    calls = 0

    def check_account(self, view):
        type(self).calls += 1
        if view.positions:
            return RiskDecision(RiskAction.CLOSE_ALL, "emergency -15%")
        return RiskDecision()


class RiskPlugin:
    __name__ = "risk-test-plugin"

    @hookimpl
    def register_risk_policies(self, register):
        register(_Reject)
        register(_Reduce)
        register(_HaltAfter)


def test_risk_reduce_then_reject(tmp_path):
    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.0101")))]
    seen = []

    class Obs:
        __name__ = "observer"

        @hookimpl
        def on_risk_action(self, bot, decision):
            seen.append(decision)

    bot = make_bot(tmp_path, events(), RiskPlugin(), Obs(), risk_policies=("test_reduce",))
    run(bot)
    assert bot.exchange.placed[0].size == D("0.0050")  # 0.00505 floored to the step
    assert seen[0].action is RiskAction.REDUCE and seen[0].policy == "test_reduce"

    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.01")))]
    bot = make_bot(tmp_path, events(), RiskPlugin(), risk_policies=("test_reject",))
    summary = run(bot)
    assert bot.exchange.placed == [] and summary.orders_rejected == 1
    assert bot.risk_log[-1].reason == "too big for the test"


def test_close_all_uses_reduce_only_market_orders(tmp_path):
    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.01")))]
    bot = make_bot(tmp_path, events(20), RiskPlugin(), risk_policies=("test_halt",))
    run(bot)
    closes = [o for o in bot.exchange.placed if o.reduce_only]
    assert closes, "CLOSE_ALL placed no closing order"
    c = closes[0]
    assert c.side is Side.SELL and c.size == D("0.01") and c.order_type is OrderType.MARKET
    assert c.time_in_force.value == "IOC"
    assert bot.portfolio.positions["BTC-USD"].size == 0


def test_sigterm_stops_cleanly_and_cancels_orders(tmp_path):
    import os
    import signal

    class Killer:
        __name__ = "killer"

        @hookimpl
        def on_order_result(self, bot, order, result):
            os.kill(os.getpid(), signal.SIGTERM)

    ScriptedStrategy.SCRIPT = [
        StrategyResult.place(OrderParams("BTC-USD", Side.BUY, OrderType.LIMIT, size=D("0.01"), price=D("59000.7")))
    ]
    bot = make_bot(tmp_path, events(300), Killer())
    summary = run(bot)
    assert summary.stop_reason == "SIGTERM"
    assert bot.exchange.placed[0].price == D("59000")  # buy price floored to the $1 tick
    assert bot.exchange.canceled == [bot.exchange.placed[0].client_id]
    assert summary.events < len(events(300))
    assert not bot.exchange.connected


def test_client_ids_are_unique_and_reserved():
    alloc = ClientIdAllocator(start=10)
    alloc.reserve([11, 12, 40])
    ids = [alloc.next() for _ in range(3)]
    assert ids == [41, 42, 43]
    wrap = ClientIdAllocator(start=2**32 - 1)
    assert wrap.next() == 2**32 - 1 and wrap.next() == 1


def test_max_events_stops_early(tmp_path):
    bot = make_bot(tmp_path, events(30), max_events=5)
    summary = run(bot)
    # max_events counts events as the summary does: oracle + 4 trades (the snapshot is not one)
    assert summary.events == 5 and bot.events_read == 6 and "max events 5 reached" in summary.stop_reason


def test_max_events_and_the_summary_count_one_unit(tmp_path):
    """Issue 9.7: --max-events counted feed messages while the summary counted level entries."""
    from perpbot.core.model import BookDelta

    depth = [
        [BookDelta("BTC-USD", T0 + i * S, ((D("59990") - i, D("1")), (D("59989") - i, D("1"))), ((D("60010") + i, D("1")),))]
        for i in range(1, 30)
    ]
    batches = [[e] for e in events(1)] + depth  # snapshot, oracle, then 29 depth messages of 3 level entries
    bot = make_bot(tmp_path, [], feeds={"list": {"batches": batches}}, max_events=10)
    summary = run(bot)
    # 1 oracle + 3 depth messages of 3 level entries reach 10: the limit is in events, not messages
    assert summary.events == 10 and summary.events_read == 10
    assert bot.events_read == 5  # feed items: snapshot, oracle, 3 depth messages
    assert "max events 10 reached" in summary.stop_reason
    assert "events processed  10 (depth level entries, trades, quotes)" in summary.render()


def test_shutdown_cancels_only_the_bots_own_orders(tmp_path):
    from perpbot.core.model import OrderRequest

    ScriptedStrategy.SCRIPT = [
        StrategyResult.place(OrderParams("BTC-USD", Side.BUY, OrderType.LIMIT, size=D("0.01"), price=D("59000")))
    ]
    bot = make_bot(tmp_path, events(5))
    foreign = OrderRequest(77, "BTC-USD", Side.SELL, D("0.01"), OrderType.LIMIT, price=D("70000"))
    bot.exchange.resting[77] = foreign  # placed by someone else on the same account
    run(bot)
    ours = bot.exchange.placed[0].client_id
    assert bot.exchange.canceled == [ours]
    assert 77 in bot.exchange.resting
    assert bot.client_ids.next() != 77


def test_json_log_lines_carry_run_market_and_order_id(tmp_path):
    import json

    from loguru import logger

    from perpbot.core.logs import configure_logging, register_secret

    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.01"), reason="abandon ability able about above"))]
    bot = make_bot(tmp_path, events())
    register_secret("abandon ability able")
    configure_logging(log_dir=tmp_path / "logs", run_id=bot.run_id, quiet_console=True)
    try:
        run(bot)
    finally:
        logger.remove()
    records = [json.loads(line)["record"] for line in (tmp_path / "logs" / "perpbot.jsonl").read_text().splitlines()]
    (order,) = [r for r in records if r["message"].startswith("order ")]
    assert order["extra"]["run_id"] == bot.run_id
    assert order["extra"]["market"] == "BTC-USD" and order["extra"]["client_id"] == bot.exchange.placed[0].client_id
    assert "abandon ability able" not in order["message"] and "*** about above" in order["message"]


def test_sizer_gets_the_cached_exchange_balance_and_a_fresh_one_for_large_orders(tmp_path):
    ScriptedStrategy.SCRIPT = [
        StrategyResult.place(OrderParams("BTC-USD", Side.BUY)),  # t=1 s: first fetch
        StrategyResult.place(OrderParams("BTC-USD", Side.BUY)),  # t=2 s: small, cached balance
    ]
    bot = make_bot(tmp_path, events(6), sizers={"test_notional": {"notional": "500"}})
    run(bot)
    assert len(bot.exchange.placed) == 2
    assert bot.balance_managers["instant"].fetches == 1  # start() reads balances directly, sizing once

    ScriptedStrategy.SCRIPT = [
        StrategyResult.place(OrderParams("BTC-USD", Side.BUY)),
        StrategyResult.place(OrderParams("BTC-USD", Side.BUY)),  # large and the cache is 1 s old: refetch
    ]
    bot = make_bot(tmp_path, events(6), sizers={"test_notional": {"notional": "20000"}}, large_order_usd=D("10000"))
    run(bot)
    assert len(bot.exchange.placed) == 2
    assert bot.balance_managers["instant"].fetches == 2


def test_a_small_order_after_the_balance_ttl_fetches_the_balance_again(tmp_path):
    ScriptedStrategy.SCRIPT = [
        StrategyResult.place(OrderParams("BTC-USD", Side.BUY)),  # t=1 s: first fetch
        StrategyResult.place(OrderParams("BTC-USD", Side.BUY)),  # t=2 s: the cache is 1 s old, TTL 0.5 s: fetched again
        StrategyResult.place(OrderParams("BTC-USD", Side.BUY)),  # t=3 s: fetched again
    ]
    bot = make_bot(tmp_path, events(6), sizers={"test_notional": {"notional": "500"}}, balance_ttl_s=D("0.5"))
    run(bot)
    assert len(bot.exchange.placed) == 3
    assert bot.balance_managers["instant"].fetches == 3


def test_an_unhealthy_spell_pauses_until_a_fresh_snapshot(tmp_path):
    from perpbot.core.testing import book_events

    evs = events(3)
    evs += [FeedStatus("BTC-USD", T0 + 4 * S, healthy=False, reason="reconnecting")]
    evs += [FeedStatus("BTC-USD", T0 + 5 * S, healthy=True)]
    evs += [Trade("BTC-USD", T0 + 6 * S, D("60000"), D("0.01"), Side.BUY)]  # healthy, but no snapshot yet
    evs += book_events("BTC-USD", T0 + 7 * S, D("60010"))
    evs += [Trade("BTC-USD", T0 + 8 * S, D("60010"), D("0.01"), Side.BUY)]
    bot = make_bot(tmp_path, evs)
    run(bot)
    by_time = {md.ts_ns: md for md in ScriptedStrategy.seen}
    assert by_time[T0 + 6 * S].paused == {"BTC-USD": "no book snapshot yet"}
    assert by_time[T0 + 8 * S].tradable == ("BTC-USD",)


@pytest.fixture
def log_lines():
    """Messages the bot logs at INFO and above, as ``"LEVEL message"`` strings."""
    from loguru import logger

    lines = []
    sink = logger.add(lambda m: lines.append(f"{m.record['level'].name} {m.record['message']}"), level="INFO")
    yield lines
    logger.remove(sink)


def test_a_repeated_strategy_exception_is_logged_once_with_its_file_and_line_then_counted(tmp_path, log_lines):
    """Issue 9.14: the same strategy exception was logged every cycle (172 times in one run)."""
    import inspect

    from tests.core import simple

    ScriptedStrategy.SCRIPT = [RuntimeError(f"bug {i}") for i in range(7)]
    bot = make_bot(tmp_path, events(12))
    summary = run(bot)
    assert summary.strategy_errors == 7
    logged = [m for m in log_lines if "raised RuntimeError" in m]
    assert len(logged) == 1, logged
    # the place is the strategy plugin's own frame (simple.py's `raise item`), not the bot's
    source, first = inspect.getsourcelines(simple.ScriptedStrategy.execute_strategy)
    line = first + next(i for i, text in enumerate(source) if "raise item" in text)
    assert f"bug 0 at {simple.__file__}:{line}" in logged[0]
    assert logged[0].startswith("ERROR strategy scripted.execute_strategy raised RuntimeError")
    (note,) = [n for n in summary.notes if "raised RuntimeError" in n]
    assert f"{simple.__file__}:{line} 7 times (logged once)" in note
    assert "7 times (logged once)" in summary.render()


def test_dropped_orders_name_the_strategy_that_made_them(tmp_path, log_lines):
    """Issue 9.14: an order on an unknown market or below the minimum size did not say whose it was."""
    ScriptedStrategy.SCRIPT = [
        StrategyResult.place(OrderParams("DOGE-USD", Side.BUY, size=D("10"))),
        StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.00005"))),
    ]
    bot = make_bot(tmp_path, events())
    summary = run(bot)
    assert bot.exchange.placed == [] and summary.orders_rejected == 2
    (unknown,) = [m for m in log_lines if "DOGE-USD" in m]
    assert unknown.startswith("ERROR strategy scripted: order on unknown market 'DOGE-USD' dropped (markets of this run: BTC-USD)")
    (small,) = [m for m in log_lines if "below minimum" in m]
    assert small.startswith("WARNING strategy scripted: BUY BTC-USD rejected: size 0.00005 below minimum")


# ---------------------------------------------------------------------------
# issue 10.2: the run view observers get, and the resume API reconcilers get
# ---------------------------------------------------------------------------


def test_observers_get_the_documented_run_view(tmp_path):
    """Every member RunView documents exists on the bot observers receive, with its value."""
    from perpbot.core.bot import RunView
    from perpbot.core.bot.view import run_view_members

    seen = {}

    class Watcher:
        @hookimpl
        def on_bot_stop(self, bot, summary):
            seen["bot"] = bot
            seen["missing"] = [n for n in run_view_members() if not hasattr(bot, n)]
            seen["marks"] = (bot.marks(), bot.venue_marks("instant"), bot.qualify("other", "BTC-USD"))
            seen["high"] = bot.client_id_high

    bot = make_bot(tmp_path, events(), Watcher())
    run(bot)
    assert isinstance(seen["bot"], RunView) and seen["missing"] == []
    marks, venue_marks, qualified = seen["marks"]
    assert venue_marks == marks and "BTC-USD" in marks and qualified == "other:BTC-USD"
    assert seen["high"] == bot.client_ids.high
    assert {"halt", "request_stop", "summary", "export_state"} <= set(run_view_members())
    assert not {"book_fill", "import_state", "submit", "pm", "sizer"} & set(run_view_members())


def test_reconcile_startup_changes_the_bot_through_the_resume_api(tmp_path):
    """A reconciler gets ``resume``: reserved ids are never used, imported state marks the bot
    resumed (its starting equity kept), adopted orders are the bot's (canceled at stop)."""
    from perpbot.core.bot import ResumeAPI
    from perpbot.core.model import OrderInfo, OrderStatus

    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.01")))]
    got = {}

    class Reconciler:
        @hookimpl
        def reconcile_startup(self, bot, resume):
            got["api"] = resume
            assert resume.view is bot
            high = bot.client_id_high
            resume.reserve_client_ids([high, high + 1])
            got["reserved"] = {high, high + 1}
            state = bot.export_state()
            state["start_equity"] = "12345"
            resume.import_state(state)
            resume.adopt_order(
                OrderInfo(client_id=7, ticker="BTC-USD", side=Side.SELL, size=D("0.01"), price=D("70000"),
                          status=OrderStatus.OPEN, order_type=OrderType.LIMIT, venue="instant")
            )
            return "reconciled by test"

    bot = make_bot(tmp_path, events(), Reconciler())
    summary = run(bot)
    assert isinstance(got["api"], ResumeAPI)
    assert bot.resumed and summary.starting_equity == D("12345")
    assert bot.orders and not (set(bot.orders) & got["reserved"])
    assert 7 in bot.exchange.canceled  # the adopted order is the bot's: canceled at shutdown
