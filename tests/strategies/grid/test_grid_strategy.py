"""The grid strategy on real 5-minute Binance bars (Feb-Mar 2024): seed 002's take-profit
grid and the range grid, driven by a small fill simulator in this file and through the real
bot with the paper exchange; clean restart without duplicated orders."""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
from decimal import Decimal as D
from pathlib import Path

import pytest

from perpbot.core.hookspecs import hookimpl
from perpbot.core.model import Bar, Fill, Liquidity, OrderInfo, OrderStatus, OrderType, OrderUpdate, Position, Side
from perpbot.core.params import parse_params
from perpbot.core.state import MarketData, MarketState
from perpbot.core.strategy import StrategyContext
from perpbot.core.testing import market as real_market
from perpbot.strategies.grid import GridStrategy, Spacing, grid_levels
from perpbot.strategies.grid.levels import nearest_level
from tests.shared_data import absent_reason, shared_root

S = 10**9
REPO = Path(__file__).resolve().parents[3]
BARS = "merged_ohlcv_df_BTC-ETH_2024-02-01_to_2024-03-08.csv.gz"
MAKER, TAKER = D("0.0001"), D("0.0005")


def bars_path() -> Path:
    shared = shared_root()
    for p in (REPO / "examples" / "data" / "bars" / BARS, shared / "bars" / "pdr_backend_binance_spot_5m" / BARS):
        if p.exists():
            return p
    pytest.skip(f"real 5-minute bars {BARS} not found in examples/data/bars or ../shared/data ({absent_reason()})")


def real_bars(ticker: str, limit: int | None = None) -> list[Bar]:
    col = {"BTC-USD": "binance:BTC/USDT", "ETH-USD": "binance:ETH/USDT"}[ticker]
    out = []
    with gzip.open(bars_path(), "rt") as f:
        for row in csv.DictReader(f):
            out.append(
                Bar(ticker, int(row["timestamp"]) * 1_000_000 + 300 * S, D(row[f"{col}:open"]), D(row[f"{col}:high"]),
                    D(row[f"{col}:low"]), D(row[f"{col}:close"]), D(row[f"{col}:volume"]), 300)
            )
            if limit and len(out) >= limit:
                break
    return out


def make(ticker="BTC-USD", **params) -> GridStrategy:
    p = parse_params(GridStrategy.Params, {"ticker": ticker, **params}, "strategy grid")
    ctx = StrategyContext(tickers=(ticker,), clock=None, markets={ticker: real_market(ticker)})
    return GridStrategy(p, ctx)


class Sim:
    """A tiny bar-driven venue for one market.

    Limit orders rest; a buy fills at its price when a LATER bar's low is strictly below it,
    a sell when the high is strictly above (touching is not a fill; the paper exchange's
    conservative bar model). Post-only orders that would cross the last close are rejected.
    The close orders the strategy asks for (CLOSE_POSITIONS) fill at the bar's close.
    Maker fee 1 bp, taker 5 bp. Tracks the position and every order the strategy sent.
    """

    def __init__(self, strategy: GridStrategy, ticker: str):
        self.s = strategy
        self.t = ticker
        self.market = real_market(ticker)
        self.state = MarketState(self.market)
        self.orders: dict[int, OrderInfo] = {}
        self.next_id = 1000
        self.position = D(0)
        self.entry = D(0)
        self.placed: list[OrderInfo] = []
        self.rejected = 0
        self.now = 0
        self.max_live_close = 0
        self.max_live_levels_per_level = 0
        self.closes_never_exceed_position = True

    def md(self) -> MarketData:
        pos = {self.t: Position(self.t, self.position, self.entry)} if self.position else {}
        mark = self.state.last_price
        return MarketData(
            ts_ns=self.now,
            markets={self.t: self.state},
            tradable=(self.t,),
            paused={},
            positions=pos,
            open_orders=dict(self.orders),
            balance=None,
            marks={self.t: mark},
        )

    def _fill(self, info: OrderInfo, price: D, liquidity: Liquidity) -> None:
        size = info.size - info.filled_size
        fee = size * price * (MAKER if liquidity is Liquidity.MAKER else TAKER)
        signed = size if info.side is Side.BUY else -size
        new = self.position + signed
        if self.position == 0 or (self.position > 0) == (signed > 0):
            self.entry = (abs(self.position) * self.entry + size * price) / abs(new)
        elif new == 0:
            self.entry = D(0)
        elif (new > 0) != (self.position > 0):
            self.entry = price
        self.position = new
        self.orders.pop(info.client_id, None)
        self.s.on_fill(Fill(info.client_id, self.t, info.side, price, size, fee, liquidity, self.now, tag=info.tag))
        self.s.on_order_update(OrderUpdate(info.client_id, self.t, OrderStatus.FILLED, self.now, filled_size=info.size, tag=info.tag))

    def on_bar(self, bar: Bar) -> None:
        self.now = bar.ts_ns
        for info in list(self.orders.values()):
            if info.created_ns > bar.ts_ns - bar.interval_s * S:
                continue  # only bars that started after the order arrived
            if info.side is Side.BUY and bar.low < info.price:
                self._fill(info, info.price, Liquidity.MAKER)
            elif info.side is Side.SELL and bar.high > info.price:
                self._fill(info, info.price, Liquidity.MAKER)
        self.state.apply(bar)

    async def decide(self) -> None:
        md = self.md()
        if not await self.s.should_execute(md):
            return
        res = await self.s.execute_strategy(md)
        for cid, _t in res.cancels:
            info = self.orders.pop(cid, None)
            if info is not None:
                self.s.on_order_update(OrderUpdate(cid, self.t, OrderStatus.CANCELED, self.now, tag=info.tag))
        for t in res.close:
            if self.position:
                side = Side.SELL if self.position > 0 else Side.BUY
                info = OrderInfo(self._id(), t, side, abs(self.position), None, OrderStatus.OPEN, OrderType.MARKET, tag="close", created_ns=self.now)
                self._fill(info, self.state.last_price, Liquidity.TAKER)
        last = self.state.last_price
        for o in res.orders:
            assert o.size is not None and o.price is not None, "grid orders carry explicit size and price"
            assert o.size % self.market.step_size == 0 and o.price % self.market.tick_size == 0
            if o.post_only and ((o.side is Side.BUY and o.price >= last) or (o.side is Side.SELL and o.price <= last)):
                self.rejected += 1
                continue
            info = OrderInfo(self._id(), self.t, o.side, o.size, o.price, OrderStatus.OPEN, o.order_type,
                             post_only=o.post_only, tag=o.tag, created_ns=self.now)
            self.orders[info.client_id] = info
            self.placed.append(info)
        self._check_invariants()

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def _check_invariants(self) -> None:
        closes = [o for o in self.orders.values() if o.tag == "grid-close"]
        self.max_live_close = max(self.max_live_close, len(closes))
        direction = 1 if self.s.dir.side is Side.BUY else -1
        if sum(o.size for o in closes) > self.position * direction:
            self.closes_never_exceed_position = False
        per_level = {}
        for o in self.orders.values():
            if o.tag.startswith("grid-level-"):
                per_level[o.tag] = per_level.get(o.tag, 0) + 1
        if per_level:
            self.max_live_levels_per_level = max(self.max_live_levels_per_level, max(per_level.values()))

    async def run(self, bars) -> "Sim":
        for bar in bars:
            self.on_bar(bar)
            await self.decide()
        return self


# -- pure rules ------------------------------------------------------------------------------


def test_seed_wait_time_depends_on_order_density():
    g = make(max_orders=12, wait_time_s=40)
    now = 1_000 * S
    g.last_open_ns = now
    # 0 close orders: w/4 = 10 s
    assert not g.wait_time_over(now + 10 * S)
    assert g.wait_time_over(now + 11 * S)

    def with_closes(n):
        from perpbot.strategies.grid.strategy import CloseOrder

        g.closes = {i: CloseOrder(D(1), D(1), D(1), D(0), 0, 0, cid=i) for i in range(n)}

    with_closes(2)  # 1/6 -> w/2 = 20 s
    assert not g.wait_time_over(now + 20 * S) and g.wait_time_over(now + 21 * S)
    with_closes(4)  # 1/3 -> w
    assert not g.wait_time_over(now + 40 * S) and g.wait_time_over(now + 41 * S)
    with_closes(8)  # 2/3 -> 2w
    assert not g.wait_time_over(now + 80 * S) and g.wait_time_over(now + 81 * S)
    with_closes(12)  # full
    assert not g.wait_time_over(now + 10**6 * S)
    with_closes(11)  # a close just filled: no wait at all
    assert g.wait_time_over(now + 1)


def test_seed_grid_step_condition_long_and_short():
    from perpbot.strategies.grid.strategy import CloseOrder

    g = make(take_profit_pct="0.1", grid_step_pct="0.06")
    g.closes = {1: CloseOrder(D("50100"), D("0.01"), D("50050"), D(0), 0, 0, cid=1)}
    # new close would be at ask*1.001; nearest close 50100 must be > 1.0006x that
    assert g.grid_step_ok(D("49940"), D("49999"))  # 50100/50048.999 = 1.00102
    assert not g.grid_step_ok(D("49990"), D("50040"))  # 50100/50090.04 = 1.0002
    s = make(direction="short", take_profit_pct="0.1", grid_step_pct="0.06")
    s.closes = {1: CloseOrder(D("49900"), D("0.01"), D("49950"), D(0), 0, 0, cid=1)}
    assert s.grid_step_ok(D("50000"), D("50001"))  # 49950/49900 = 1.001
    assert not s.grid_step_ok(D("49940"), D("49941"))


def test_levels_arithmetic_and_geometric():
    a = grid_levels(D("100"), D("200"), 5, Spacing.ARITHMETIC, D("0.01"))
    assert a == [D("100"), D("125"), D("150"), D("175"), D("200")]
    g = grid_levels(D("100"), D("400"), 3, Spacing.GEOMETRIC, D("0.01"))
    assert g == [D("100"), D("200"), D("400")]
    g = grid_levels(D("100"), D("200"), 4, Spacing.GEOMETRIC, D("0.01"))
    ratios = [g[i + 1] / g[i] for i in range(3)]
    assert max(ratios) - min(ratios) < D("0.0002")
    assert nearest_level(a, D("137")) == 1 and nearest_level(a, D("138")) == 2
    with pytest.raises(ValueError):
        grid_levels(D("100"), D("100.02"), 5, Spacing.ARITHMETIC, D("0.01"))


def test_range_params_are_validated():
    from perpbot.core.errors import ConfigError

    with pytest.raises(ConfigError, match="lower_price"):
        parse_params(GridStrategy.Params, {"mode": "range"}, "strategy grid")
    with pytest.raises(ConfigError, match="inside the range"):
        parse_params(GridStrategy.Params, {"mode": "range", "lower_price": "100", "upper_price": "200", "pause_price": "150"}, "g")


# -- take-profit grid on real BTC bars ----------------------------------------------------------


async def test_take_profit_grid_never_exceeds_max_orders_on_real_bars():
    bars = real_bars("BTC-USD", limit=4000)  # ~14 days of February 2024
    g = make(take_profit_pct="0.3", grid_step_pct="0.1", max_orders=6, wait_time_s="300", order_notional="500")
    sim = await Sim(g, "BTC-USD").run(bars)
    assert sim.max_live_close <= 6
    assert g.max_close_orders_seen <= 6
    assert sim.max_live_close == 6, "the test must actually reach the limit"
    assert sim.closes_never_exceed_position
    assert g.stats.cycles >= 20, g.summary_lines()
    # every completed cycle earns the take-profit (limit fills at their price), minus maker fees
    for _ts, gross, fees in g.stats.last_cycles:
        assert gross > 0 and fees > 0
        assert gross / D("500") > D("0.0029")  # ~0.3% of ~500 USD
    opens = [o for o in sim.placed if o.tag == "grid-open"]
    assert all(o.side is Side.BUY and o.post_only for o in opens)
    closes = [o for o in sim.placed if o.tag == "grid-close"]
    assert all(o.side is Side.SELL and not o.post_only for o in closes)
    lines = g.summary_lines()
    assert "cycles completed" in lines[0] and "/cycle" in lines[1] and "net" in lines[1]


async def test_short_take_profit_grid_and_stop_price_closes_everything():
    bars = real_bars("BTC-USD", limit=3000)
    first = bars[0].close
    stop = (first * D("1.03")).quantize(D(1))  # BTC rallied in February 2024: a short grid stops
    g = make(direction="short", take_profit_pct="0.3", grid_step_pct="0.1", max_orders=5, wait_time_s="300",
             order_notional="500", stop_price=str(stop))
    sim = await Sim(g, "BTC-USD").run(bars)
    assert g.stopped and f"stop price {stop}" in g.stopped
    assert sim.position == 0, "the stop closed the position"
    assert not [o for o in sim.orders.values() if o.tag.startswith("grid")], "and canceled every grid order"
    opens = [o for o in sim.placed if o.tag == "grid-open"]
    assert opens and all(o.side is Side.SELL for o in opens)
    n = len(sim.placed)
    await sim.run(real_bars("BTC-USD", limit=3100)[3000:])
    assert len(sim.placed) == n, "a stopped grid places nothing"


async def test_pause_price_stops_new_opens_only():
    bars = real_bars("BTC-USD", limit=600)
    below_all = min(b.close for b in bars) - 1  # a long grid pauses while mid > pause: here, always
    g = make(take_profit_pct="0.3", max_orders=5, wait_time_s="60", order_notional="500", pause_price=str(below_all))
    sim = await Sim(g, "BTC-USD").run(bars)
    assert not [o for o in sim.placed if o.tag == "grid-open"]
    # a pause inside the price path: opens only happen while mid <= pause, closes are unaffected
    mid_path = sorted(b.close for b in bars)[len(bars) // 2]
    g = make(take_profit_pct="0.3", max_orders=5, wait_time_s="60", order_notional="500", pause_price=str(mid_path))
    sim = await Sim(g, "BTC-USD").run(bars)
    opens = [o for o in sim.placed if o.tag == "grid-open"]
    assert opens and all(o.price <= mid_path for o in opens)
    assert [o for o in sim.placed if o.tag == "grid-close" and o.price > mid_path], "closes above the pause price still placed"


# -- range grid on real ETH bars -------------------------------------------------------------------


async def test_range_grid_replaces_filled_levels_one_step_away():
    bars = real_bars("ETH-USD", limit=3000)
    g = make("ETH-USD", mode="range", lower_price="2200", upper_price="2500", levels=11, spacing="geometric", order_notional="300")
    sim = await Sim(g, "ETH-USD").run(bars)
    assert sim.max_live_levels_per_level == 1, "never two orders on one level"
    live = [o for o in sim.orders.values() if o.tag.startswith("grid-level-")]
    assert len(live) <= 10, "one level stays empty"
    assert g.stats.cycles >= 5, g.summary_lines()
    for _ts, gross, _fees in g.stats.last_cycles:
        assert gross > 0, "a counter order one step away always earns the step"
    # every fill was followed by the opposite order one step away
    levels = {lv.i: lv.price for lv in g.levels}
    buys = [o for o in sim.placed if o.side is Side.BUY]
    sells = [o for o in sim.placed if o.side is Side.SELL]
    assert buys and sells
    for o in sim.placed:
        i = int(o.tag.rsplit("-", 1)[1])
        assert o.price == levels[i]
    assert "level orders resting" in g.summary_lines()[-1]


# -- clean restart: reuse live orders, never duplicate ------------------------------------------------


async def _restart(sim: Sim, g: GridStrategy, with_state: bool, **params) -> GridStrategy:
    state = json.loads(json.dumps(g.get_state())) if with_state else None
    g2 = make(sim.t, **params)
    if state:
        g2.restore_state(state)
    g2.on_start(sim.md())
    sim.s = g2
    return g2


@pytest.mark.parametrize("with_state", [True, False])
async def test_take_profit_restart_adopts_live_orders(with_state):
    params = dict(take_profit_pct="0.3", grid_step_pct="0.1", max_orders=6, wait_time_s="300", order_notional="500")
    bars = real_bars("BTC-USD", limit=1500)
    g = make(**params)
    sim = await Sim(g, "BTC-USD").run(bars[:1000])
    live_before = {cid: o for cid, o in sim.orders.items()}
    closes_before = {cid for cid, o in live_before.items() if o.tag == "grid-close"}
    assert closes_before, "the run must leave close orders resting"
    g2 = await _restart(sim, g, with_state, **params)
    assert set(g2.closes) == closes_before, "every live close order adopted by client id"
    placed = len(sim.placed)
    await sim.decide()
    new = sim.placed[placed:]
    assert not [o for o in new if o.tag == "grid-close"], "no close order duplicated"
    if any(o.tag == "grid-open" for o in live_before.values()):
        assert not [o for o in new if o.tag == "grid-open"], "the live open order is reused"
    if with_state:
        assert g2.stats.cycles == g.stats.cycles
    await sim.run(bars[1000:])
    assert sim.max_live_close <= 6 and sim.closes_never_exceed_position


@pytest.mark.parametrize("with_state", [True, False])
async def test_range_restart_adopts_live_level_orders(with_state):
    params = dict(mode="range", lower_price="2200", upper_price="2500", levels=11, order_notional="300")
    bars = real_bars("ETH-USD", limit=1200)
    g = make("ETH-USD", **params)
    sim = await Sim(g, "ETH-USD").run(bars[:800])
    live = {o.tag for o in sim.orders.values()}
    assert live
    g2 = await _restart(sim, g, with_state, **params)
    if with_state:
        assert {f"grid-level-{lv.i}" for lv in g2.levels if lv.cid is not None} == live
        placed = len(sim.placed)
        await sim.decide()
        assert not {o.tag for o in sim.placed[placed:]} & live, "no level order placed twice"
        await sim.run(bars[800:])
        assert sim.max_live_levels_per_level == 1
    else:
        # without state the grid rebuilds its levels but keeps the live orders: no level doubled
        await sim.run(bars[800:])
        assert sim.max_live_levels_per_level == 1


def test_state_is_json_and_roundtrips():
    g = make()
    from perpbot.strategies.grid.strategy import CloseOrder

    g.closes = {7: CloseOrder(D("50100"), D("0.01"), D("50000"), D("0.05"), 5, 1, cid=7, filled=D("0.004"))}
    g.uncovered = [(D("0.002"), D("49900"), D("0.01"))]
    g.stats.add(1, D("1.5"), D("0.2"))
    s = json.loads(json.dumps(g.get_state()))
    h = make()
    h.restore_state(s)
    assert h.closes[7].filled == D("0.004") and h.closes[7].open_price == D("50000")
    assert h.uncovered == [(D("0.002"), D("49900"), D("0.01"))]
    assert h.stats.cycles == 1 and h.stats.net == D("1.3")


# -- through the real bot with the paper exchange ----------------------------------------------------------


def test_grid_through_the_bot_and_paper_exchange_on_real_bars(tmp_path):
    pytest.importorskip("perpbot.exchanges.paper")
    from perpbot.core.bot import TradingBot
    from perpbot.core.plugins import PluginManager
    from perpbot.core.testing import ListFeed, bot_config

    seen = []

    class Obs:
        __name__ = "grid-test-observer"

        @hookimpl
        def register_feeds(self, register):
            register(ListFeed)

        @hookimpl
        def on_decision(self, bot, strategy, result):
            seen.append(sum(1 for o in bot.open_orders.values() if o.tag == "grid-close"))

    bars = real_bars("BTC-USD", limit=2500)
    cfg = bot_config(
        exchange=("paper",),
        strategy="grid",
        tickers=("BTC-USD",),
        feed="list",
        state_dir=tmp_path,
        feeds={"list": {"events": bars, "markets": {"BTC-USD": real_market("BTC-USD")}}},
        strategies={"grid": {"take_profit_pct": "0.3", "grid_step_pct": "0.1", "max_orders": 5, "wait_time_s": "300", "order_notional": "500"}},
        decision_interval_s=300,
    )
    pm = PluginManager(load_entry_points=False, extra_plugins=(Obs(),),
                       default_plugins=("perpbot.exchanges.paper", "perpbot.strategies.grid", "perpbot.plugins.sizers", "perpbot.plugins.risk"))
    bot = TradingBot(cfg, pm)
    asyncio.run(bot.run())
    g = bot.strategy
    assert seen and max(seen) <= 5
    assert g.stats.cycles > 0, g.summary_lines()
    assert g.max_close_orders_seen <= 5
    text = "\n".join(g.summary_lines())
    assert "cycles completed" in text and "net" in text
