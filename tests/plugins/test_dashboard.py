"""The terminal dashboard: rendered headless into a recording console; a slow terminal never blocks the bot."""

from __future__ import annotations

import asyncio
import io
import threading
from decimal import Decimal as D

from rich.console import Console

from perpbot.core.testing import driving_bot
from perpbot.core.bot import TradingBot
from perpbot.core.hookspecs import hookimpl
from perpbot.core.model import OrderParams, OrderType, Side
from perpbot.core.plugins import PluginManager
from perpbot.core.policies import RiskAction, RiskDecision
from perpbot.core.strategy import StrategyResult
from perpbot.core.testing import bot_config
from perpbot.plugins.dashboard import (
    Dashboard,
    DashboardPlugin,
    MarketRow,
    OrderRow,
    PositionRow,
    RiskRow,
    Snapshot,
    build_layout,
    take_snapshot,
)
from tests.plugins.journal_fakes import JournalTestPlugin, oscillating_events

T = 1_723_161_599 * 10**9


def render(snap, width=150) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(build_layout(snap))
    return console.export_text()


def sample_snapshot(**changes) -> Snapshot:
    base = dict(
        ts_ns=T,
        run_id="run42",
        strategy="sniper",
        venues=("paper",),
        markets=(
            MarketRow(
                "BTC-USD", D("61700.5"), D("61700"), D("61701"), 0.16,
                {"momentum": 71.2, "volume": 52.0, "volatility": 57.0, "orderbook": 41.0, "funding": 50.0},
                66.1, 1, D("0.0000125"), D("0.00001"), T - 10**11, None, T,
            ),
            MarketRow(
                "ETH-USD", D("2683.61"), D("2683.6"), D("2683.7"), 0.37,
                {"momentum": 35.0, "volume": 44.0, "volatility": 61.0, "orderbook": 58.0, "funding": 49.0},
                48.2, 2, None, None, None, "stale data: last event 31.0s ago", T,
            ),
        ),
        positions=(PositionRow("BTC-USD", D("0.0162"), D("61650"), D("61700.5"), D("0.82"), D("2500.1"), 0.959),),
        orders=(OrderRow(17, "ETH-USD", "SELL", D("0.5"), D("0.1"), D("2700.1"), "OPEN", "grid-close", 12.0),),
        orders_total=1,
        equity=D("10000.82"),
        collateral=D("9001.1"),
        free_collateral=D("9980.9"),
        initial_margin=D("19.9"),
        maintenance_margin=D("12.0"),
        margin_usage=0.002,
        leverage=0.1,
        realized=D("1.5"),
        unrealized=D("0.82"),
        fees=D("0.5"),
        funding=D("-0.1"),
        start_equity=D("10000"),
        risk_policies=("kill_switch", "max_leverage"),
        risk_actions=(RiskRow(T - 9 * 10**9, "max_leverage", "REDUCE", "BTC-USD", "leverage 5.2x above the 5x limit"),),
        feed_name="dydx",
        feed_connected=True,
        last_message_age_s=0.4,
        resyncs=2,
        reconnects=1,
        paused={"ETH-USD": "stale data: last event 31.0s ago"},
        events=12345,
        events_per_s=250000.0,
        decisions=10,
        orders_sent=3,
    )
    base.update(changes)
    return Snapshot(**base)


def test_layout_shows_every_section():
    text = render(sample_snapshot())
    lines = text.splitlines()
    btc = next(line for line in lines if "BTC-USD" in line and "61,700.5" in line and "71" in line)
    # market row: rank, price, spread, the five scores, composite, funding next/last
    for part in ("1", "0.16", "71", "52", "57", "41", "50", "66", "+0.00125%", "+0.00100%", "ok"):
        assert part in btc, part
    eth = next(line for line in lines if "ETH-USD" in line and "2,683.61" in line)
    assert "paused" in eth
    # ranking order: BTC (rank 1) is listed before ETH (rank 2)
    assert lines.index(btc) < lines.index(eth)
    # position with liquidation price and distance
    pos = next(line for line in lines if "+0.0162" in line)
    for part in ("61,650", "61,700.5", "+0.82", "2,500.1", "95.90%"):
        assert part in pos, part
    # account
    assert "10,000.82" in text and "+0.008%" in text
    assert "9,980.90" in text and "0.20%" in text and "0.10x" in text
    # open orders, risk, feed health
    order = next(line for line in lines if "grid-close" in line)
    for part in ("17", "ETH-USD", "SELL", "0.5", "0.1", "2,700.1", "OPEN", "12s"):
        assert part in order, part
    assert "max_leverage" in text and "REDUCE" in text and "leverage 5.2x above the 5x limit" in text
    assert "chain: kill_switch, max_leverage" in text
    assert "dydx: connected" in text and "0.4s ago" in text and "resyncs 2" in text and "reconnects 1" in text
    assert "paused ETH-USD: stale data: last event 31.0s ago" in text


def test_layout_of_an_empty_halted_bot():
    snap = Snapshot(ts_ns=0, run_id="r", strategy="grid", venues=("paper",), halted="kill_switch: file present",
                    feed_connected=False, simulated_clock=False)
    text = render(snap, width=120)
    assert "HALTED: kill_switch: file present" in text
    assert "flat" in text and "none" in text and "no risk actions" in text
    assert "DISCONNECTED" in text


# ---------------------------------------------------------------------------
# snapshots of a real bot
# ---------------------------------------------------------------------------


class Scripted:
    """Places one resting order and one market buy at the first decision, logs a risk action."""

    __name__ = "dash-scripted"

    def __init__(self):
        self.done = False
        self.snaps: list[Snapshot] = []

    @hookimpl
    async def on_decision(self, bot, strategy, result):
        if self.done:
            self.snaps.append(take_snapshot(bot))
            return
        self.done = True
        bot = driving_bot(bot)
        await bot.submit(OrderParams("BTC-USD", Side.BUY, OrderType.MARKET, size=D("0.05")), risk_exempt=True)
        await bot.submit(OrderParams("BTC-USD", Side.SELL, OrderType.LIMIT, size=D("0.01"), price=D("60100"), tag="tp"), risk_exempt=True)
        bot.risk_log.append(RiskDecision(RiskAction.REJECT, "too big", "max_notional", ticker="BTC-USD", ts_ns=bot.clock.now_ns()))


def make_bot(tmp_path, *extra, events=None, **cfg):
    pm = PluginManager(load_entry_points=False, extra_plugins=(JournalTestPlugin(), *extra), default_plugins=())
    base = dict(
        exchange=("jsim",),
        strategy="pingpong",
        tickers=("BTC-USD",),
        feed="list",
        state_dir=tmp_path,
        feeds={"list": {"events": events or oscillating_events(60)}},
        sizer="jfixed",
        strategies={"pingpong": {"offset": "1000"}},  # its own orders stay far away
    )
    base.update(cfg)
    return TradingBot(bot_config(**base), pm)


def test_snapshot_copies_the_bots_state(tmp_path):
    script = Scripted()
    bot = make_bot(tmp_path, script, exchanges={"jsim": {"collateral": "300"}})  # 10x: a real liquidation price
    asyncio.run(bot.run())
    snap = script.snaps[-1]
    assert snap.run_id == bot.run_id and snap.strategy == "pingpong"
    (m,) = snap.markets
    assert m.ticker == "BTC-USD" and m.bid == D("59999.5") and m.ask == D("60000.5")
    assert abs(m.spread_bps - 1 / 60000 * 10000) < 1e-9
    assert set(m.scores) == {"momentum", "volume", "volatility", "orderbook", "funding"}
    assert all(0 <= v <= 100 for v in m.scores.values())
    (p,) = snap.positions
    assert p.size == D("0.05") and p.entry == D("60000.5") and p.mark == D("60000")
    assert p.unrealized == D("0.05") * (D("60000") - D("60000.5"))
    # liquidation price from perpbot.core.margin with the account's equity: equity + s*(p - P) = |s|*p*MMF
    from perpbot.core import margin

    eq = bot.balance().equity
    expected = margin.liquidation_price(eq, D("0.05"), D("60000"), bot.markets["BTC-USD"].maintenance_margin_fraction)
    assert snap_equity_close(snap, bot)
    assert expected is not None and D("50000") < expected < D("60000")
    assert p.liquidation_price == expected
    assert abs(p.liquidation_distance - float((D("60000") - expected) / D("60000"))) < 1e-12
    tags = {o.tag for o in snap.orders}
    assert "tp" in tags and snap.orders_total >= 1
    assert snap.risk_actions[-1].reason == "too big" and snap.risk_actions[-1].policy == "max_notional"
    assert snap.leverage is not None and snap.leverage > 0


def snap_equity_close(snap, bot):
    return snap.equity is not None and snap.collateral == bot.portfolio.collateral


# ---------------------------------------------------------------------------
# a slow terminal must not block the bot
# ---------------------------------------------------------------------------


class BlockingFile(io.StringIO):
    """A terminal that stops accepting output until released (counts the writes it blocked)."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()
        self.blocked = threading.Event()

    def write(self, s):
        self.blocked.set()
        self.release.wait(timeout=60)
        return super().write(s)


class YieldingDecisions:
    """Gives the event loop a turn at every decision (as a live feed would between messages)."""

    __name__ = "yielding"

    def __init__(self):
        self.decisions = 0

    @hookimpl
    async def on_decision(self, bot, strategy, result):
        self.decisions += 1
        await asyncio.sleep(0.002)


def test_a_blocked_terminal_does_not_block_the_bot(tmp_path):
    term = BlockingFile()
    console = Console(file=term, width=120, force_terminal=True, color_system=None)
    dash_plugin = DashboardPlugin(console, hz=50, screen=False, force=True)
    yielding = YieldingDecisions()
    n = 300
    bot = make_bot(tmp_path, dash_plugin, yielding, events=oscillating_events(n))
    seen = {}

    class Probe:
        __name__ = "probe"

        @hookimpl(trylast=True)
        def on_bot_stop(self, bot, summary):
            d = dash_plugin.dashboards.get(bot)
            if d is not None:
                seen.update(published=d.published, rendered=d.rendered, dropped=d.dropped)
            seen["blocked_while_running"] = term.blocked.is_set() and not term.release.is_set()

    bot.pm.pm.register(Probe(), name="probe")

    async def main():
        summary = await bot.run()
        return summary

    try:
        summary = asyncio.run(main())
    finally:
        term.release.set()
    # the bot processed everything while the terminal was stuck on its first write
    assert summary.stop_reason == "end of data"
    assert bot.events_read == n + 1
    assert yielding.decisions >= n // 2
    assert seen["blocked_while_running"], "the render thread was blocked in write() during the whole run"
    # snapshots kept flowing into the mailbox; the stuck renderer drew at most the frame it was writing
    assert seen["published"] >= 3
    assert seen["rendered"] <= 1
    assert seen["dropped"] >= seen["published"] - 2


def test_dashboard_handoff_keeps_only_the_newest_snapshot():
    d = Dashboard(Console(file=io.StringIO()), hz=4)
    snaps = [sample_snapshot(decisions=i) for i in range(5)]
    for s in snaps:
        d.publish(s)
    assert d.published == 5 and d.dropped == 4
    assert d._take().decisions == 4
    assert d._take() is None


def test_process_renderer_draws_in_a_child_and_exits_with_the_bot(tmp_path, capfd):
    dash_plugin = DashboardPlugin(hz=20, screen=False, force=True, renderer="process")
    yielding = YieldingDecisions()
    seen = {}

    class Probe:
        __name__ = "probe-process"

        @hookimpl(trylast=True)
        def on_bot_stop(self, bot, summary):
            seen["dash"] = dash_plugin.dashboards.get(bot)

    bot = make_bot(tmp_path, dash_plugin, yielding, Probe(), events=oscillating_events(300))
    asyncio.run(bot.run())
    d = seen["dash"]
    assert d is not None and d.renderer == "process"
    assert d.rendered >= 1, "frames were sent to the renderer process"
    assert d._proc is not None and not d._proc.is_alive(), "the renderer process ended with the bot"
    out = capfd.readouterr().out
    assert "perpbot dashboard" in out and "pingpong on jsim" in out  # the child drew on the inherited stdout


def test_computed_prices_are_shown_rounded():
    from decimal import Decimal as D

    from perpbot.plugins.dashboard import _price

    assert _price(D("670927.0632655052944908017372")) == "670,927.06"
    assert _price(D("0.132501196791234567")) == "0.1325012"
    assert _price(D("2679.905")) == "2,679.905"  # venue prices keep their own precision


# ---------------------------------------------------------------------------
# issue 10.2: liquidation prices with the chain's rounding, or n/a with the reason
# ---------------------------------------------------------------------------


class _View:
    """The RunView members the liquidation column reads (two markets on one venue)."""

    def __init__(self, marks):
        from perpbot.core.model import Market, Position

        class _Pf:
            positions = {
                "BTC-USD": Position("BTC-USD", D("0.05"), D("60000.5")),
                "ETH-USD": Position("ETH-USD", D("-0.123457"), D("2683.61")),
            }

        self.markets = {
            "BTC-USD": Market("BTC-USD", 0, D("1"), D("0.000001"), initial_margin_fraction=D("0.05"),
                          maintenance_margin_fraction=D("0.03")),
            "ETH-USD": Market("ETH-USD", 1, D("1"), D("0.000001"), initial_margin_fraction=D("0.05"),
                          maintenance_margin_fraction=D("0.03")),
        }
        self.portfolios = {"dydx": _Pf()}
        self._marks = marks

    def qualify(self, venue, ticker):
        return ticker

    def venue_marks(self, venue):
        return dict(self._marks)


def test_liquidation_price_counts_other_positions_with_the_chains_rounding():
    from perpbot.core import margin
    from perpbot.plugins.dashboard.snapshot import liquidation

    view = _View({"BTC-USD": D("60000"), "ETH-USD": D("2683.611")})
    pos = view.portfolios["dydx"].positions["BTC-USD"]
    price, dist, note = liquidation(view, "dydx", "BTC-USD", pos, D("60000"), D("400"))
    other = margin.maintenance_margin_requirement_usd(D("-0.123457"), D("2683.611"), D("0.05"), D("0.03"))
    assert other != abs(D("-0.123457")) * D("2683.611") * D("0.03")  # rounding up to quote quantums matters
    assert note == "" and price == margin.liquidation_price(D("400"), D("0.05"), D("60000"), D("0.03"), other)
    assert dist == float((D("60000") - price) / D("60000"))


def test_liquidation_price_is_na_with_the_reason_when_another_position_has_no_mark():
    from perpbot.plugins.dashboard.snapshot import liquidation

    view = _View({"BTC-USD": D("60000")})  # no ETH mark: its entry price is not a stand-in
    pos = view.portfolios["dydx"].positions["BTC-USD"]
    assert liquidation(view, "dydx", "BTC-USD", pos, D("60000"), D("400")) == (None, None, "no mark price for ETH-USD")
    snap = sample_snapshot(
        positions=(PositionRow("BTC-USD", D("0.05"), D("60000.5"), D("60000"), D("-0.02"), None, None, "no mark price for ETH-USD"),)
    )
    assert "n/a: no mark price for ETH-USD" in render(snap, width=220)
