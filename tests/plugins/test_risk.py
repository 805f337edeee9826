"""Risk policies (plugins/risk/): every policy, its thresholds and edges, and the
seed's -15% emergency flattening through the real bot on real prices."""

from __future__ import annotations

import asyncio
import csv
import gzip
import os
import signal
from decimal import Decimal as D
from pathlib import Path

import pytest

from perpbot.core.model import Balance, Market, OrderRequest, OrderType, Position, Side, TimeInForce
from perpbot.core.params import parse_params
from perpbot.core.plugins import PluginManager
from perpbot.core.policies import RiskAction, RiskView
from perpbot.plugins import risk
from perpbot.plugins.risk import (
    CircuitBreaker,
    DailyLoss,
    KillSwitch,
    LiquidationDistance,
    MaxLeverage,
    MaxNotional,
    SeedThresholds,
    StaleData,
    is_margin_error,
    max_quantity_for,
)

S = 10**9
T0 = 1_706_745_600 * S  # 2024-02-01 00:00 UTC
BTC = Market("BTC-USD", 0, tick_size="1", step_size="0.0001", initial_margin_fraction="0.05", maintenance_margin_fraction="0.03")
ETH = Market("ETH-USD", 1, tick_size="0.1", step_size="0.001", initial_margin_fraction="0.05", maintenance_margin_fraction="0.03")
MARKETS = {"BTC-USD": BTC, "ETH-USD": ETH, "binance:BTC-USD": BTC}


def bal(equity="10000", free=None):
    e = D(equity)
    return Balance(collateral=e, equity=e, free_collateral=D(free) if free is not None else e)


def rview(equity="10000", positions=None, marks=None, now=T0, **kw):
    marks = {"BTC-USD": D("50000"), "ETH-USD": D("2000"), "binance:BTC-USD": D("50010"), **(marks or {})}
    return RiskView(
        now_ns=now,
        balance=bal(equity),
        positions=dict(positions or {}),
        marks=marks,
        markets=MARKETS,
        **kw,
    )


def order(size="0.1", side=Side.BUY, ticker="BTC-USD", venue="dydx", **kw):
    return OrderRequest(client_id=1, ticker=ticker, side=side, size=D(size), venue=venue, **kw)


def make(cls, **params):
    return cls(parse_params(cls.Params, params, cls.name), None)


def test_all_policies_register_and_the_default_chain_exists():
    pm = PluginManager(load_entry_points=False, default_plugins=("perpbot.plugins.risk",))
    names = set(pm.registry.risk_policies)
    assert names == {
        "seed_thresholds", "max_leverage", "max_notional", "liquidation_distance",
        "stale_data", "circuit_breaker", "daily_loss", "kill_switch",
    }
    from perpbot.core.config import DEFAULT_RISK_POLICIES

    assert set(DEFAULT_RISK_POLICIES) <= names


# -- seed 002 thresholds ----------------------------------------------------------------


def test_seed_loss_exactly_10_percent_closes_worst_but_9_99_does_not():
    p = make(SeedThresholds)
    pos = {
        "BTC-USD": Position("BTC-USD", D("0.1"), D("52000")),  # -200 USD, -4%
        "ETH-USD": Position("ETH-USD", D("-1"), D("1900")),  # -100 USD, -5% of notional: worst by ratio
    }
    d = p.check_account(rview(equity="9001", positions=pos, start_equity=D("10000")))
    assert d.approved, "-9.99% must not trigger"
    d = p.check_account(rview(equity="9000", positions=pos, start_equity=D("10000")))
    assert d.action is RiskAction.CLOSE_WORST
    assert d.ticker == "ETH-USD"
    assert "account loss 10%" in d.reason and "ETH-USD" in d.reason and d.policy == "seed_thresholds"
    # once per crossing: not again at the same loss, again after a recovery and a new crossing
    pos.pop("ETH-USD")
    assert p.check_account(rview(equity="8900", positions=pos, start_equity=D("10000"))).approved
    assert p.check_account(rview(equity="9500", positions=pos, start_equity=D("10000"))).approved
    d = p.check_account(rview(equity="8950", positions=pos, start_equity=D("10000")))
    assert d.action is RiskAction.CLOSE_WORST and d.ticker == "BTC-USD"


def test_seed_emergency_exactly_15_percent_closes_all_then_halts_when_flat():
    p = make(SeedThresholds)
    pos = {"BTC-USD": Position("BTC-USD", D("0.1"), D("60000"))}
    d = p.check_account(rview(equity="8501", positions=pos, start_equity=D("10000")))
    assert d.action is RiskAction.CLOSE_WORST, "-14.99% is only the -10% rule"
    d = p.check_account(rview(equity="8500", positions=pos, start_equity=D("10000")))
    assert d.action is RiskAction.CLOSE_ALL
    assert "account loss 15%" in d.reason and "emergency 15%" in d.reason
    d = p.check_account(rview(equity="8480", positions={}, start_equity=D("10000")))
    assert d.action is RiskAction.HALT and "halting" in d.reason


def test_seed_uses_its_own_baseline_without_start_equity():
    p = make(SeedThresholds)
    assert p.check_account(rview(equity="10000")).approved
    pos = {"BTC-USD": Position("BTC-USD", D("0.1"), D("60000"))}
    assert p.check_account(rview(equity="8499", positions=pos)).action is RiskAction.CLOSE_ALL


def test_seed_margin_failure_stall_needs_15_failures_and_10_minutes():
    p = make(SeedThresholds)
    v = rview(start_equity=D("10000"))
    for i in range(14):
        p.on_order_result(False, "insufficient margin: initial margin required 120 USDC", rview(now=T0 + i * S))
    p.on_order_result(False, "network timeout", rview(now=T0 + 20 * S))  # not a margin failure
    assert p.failures == 14
    p.on_order_result(False, "StillUndercollateralized", rview(now=T0 + 30 * S))
    assert p.failures == 15
    assert p.check_account(rview(now=T0 + 599 * S, start_equity=D("10000"))).approved, "9:59 is not a stall"
    d = p.check_account(rview(now=T0 + 600 * S, start_equity=D("10000")))
    assert d.action is RiskAction.HALT and "15 consecutive margin failures" in d.reason and "600s" in d.reason
    p.on_order_result(True, "", v)
    assert p.failures == 0 and p.check_account(rview(now=T0 + 900 * S, start_equity=D("10000"))).approved


def test_seed_original_mode_close_worst_requires_stall():
    p = make(SeedThresholds, close_worst_requires_stall=True, failure_action="NONE")
    pos = {"BTC-USD": Position("BTC-USD", D("0.1"), D("60000"))}
    assert p.check_account(rview(equity="8900", positions=pos, start_equity=D("10000"))).approved
    for i in range(15):
        p.on_order_result(False, "insufficient margin", rview(now=T0))
    d = p.check_account(rview(equity="8900", positions=pos, start_equity=D("10000"), now=T0 + 601 * S))
    assert d.action is RiskAction.CLOSE_WORST and d.ticker == "BTC-USD"


def test_seed_no_fill_stall_is_optional():
    p = make(SeedThresholds, no_fill_stall_s=600)
    pos = {"BTC-USD": Position("BTC-USD", D("0.01"), D("50000"))}
    assert p.check_account(rview(positions=pos, last_fill_ns=T0, now=T0)).approved
    d = p.check_account(rview(positions=pos, last_fill_ns=T0, now=T0 + 600 * S))
    assert d.action is RiskAction.HALT and "no fill for 600s" in d.reason
    off = make(SeedThresholds)
    assert off.check_account(rview(positions=pos, last_fill_ns=T0, now=T0 + 6000 * S)).approved


def test_margin_error_classifier():
    assert is_margin_error("insufficient margin: required 10")
    assert is_margin_error("Subaccount ... StillUndercollateralized")
    assert not is_margin_error("post-only order would cross")
    assert not is_margin_error("")


# -- max leverage -------------------------------------------------------------------------


def test_max_leverage_approves_at_the_limit_and_reduces_above():
    p = make(MaxLeverage, max_leverage="5")
    assert p.check_order(order("1"), rview()).approved  # exactly 5x
    d = p.check_order(order("1.5"), rview())
    assert d.action is RiskAction.REDUCE and d.size == D("1")
    assert "7.5x > max 5x" in d.reason


def test_max_leverage_counts_other_positions_and_rejects_when_nothing_fits():
    pos = {"ETH-USD": Position("ETH-USD", D("25"), D("2000"))}  # 50k = 5x already
    d = make(MaxLeverage).check_order(order("0.1"), rview(positions=pos))
    assert d.action is RiskAction.REJECT and "no size" in d.reason


def test_max_leverage_always_approves_exposure_shrinking_orders():
    pos = {"BTC-USD": Position("BTC-USD", D("2"), D("50000"))}  # 10x
    p = make(MaxLeverage)
    assert p.check_order(order("1", Side.SELL), rview(positions=pos)).approved
    assert p.check_order(order("2", Side.SELL), rview(positions=pos)).approved
    ro = order("5", Side.SELL, reduce_only=True, order_type=OrderType.MARKET, time_in_force=TimeInForce.IOC)
    assert p.check_order(ro, rview(positions=pos)).approved
    d = p.check_order(order("8", Side.SELL), rview(positions=pos))  # flips to -6: 30x
    assert d.action is RiskAction.REDUCE and d.size == D("3")  # |2 - q| <= 1


def test_max_quantity_for_shapes():
    assert max_quantity_for(D(1), D("0.4"), 1) == D("0.6")
    assert max_quantity_for(D(1), D("0.4"), -1) == D("1.4")
    assert max_quantity_for(D("0.2"), D("0.4"), 1) == 0
    assert max_quantity_for(D(-1), D(0), 1) == 0


def test_max_leverage_uses_the_non_primary_venues_own_positions():
    # a binance position does not count against the primary account and vice versa
    pos = {"ETH-USD": Position("ETH-USD", D("25"), D("2000"))}
    o = order("0.5", ticker="BTC-USD", venue="binance")
    assert make(MaxLeverage).check_order(o, rview(positions=pos)).approved


# -- max notional ---------------------------------------------------------------------------


def test_max_notional_per_market_and_total():
    p = make(MaxNotional, per_market_usd="20000", total_usd="30000")
    assert p.check_order(order("0.4"), rview()).approved  # 20k exactly
    d = p.check_order(order("0.5"), rview())
    assert d.action is RiskAction.REDUCE and d.size == D("0.4")
    pos = {"ETH-USD": Position("ETH-USD", D("-7.5"), D("2000"))}  # 15k elsewhere
    d = p.check_order(order("0.4"), rview(positions=pos))
    assert d.action is RiskAction.REDUCE and d.size == D("0.3") and "total" in d.reason
    pos = {"ETH-USD": Position("ETH-USD", D("-15"), D("2000"))}
    assert p.check_order(order("0.1"), rview(positions=pos)).action is RiskAction.REJECT


# -- liquidation distance ---------------------------------------------------------------------


def test_liquidation_distance_uses_the_dydx_formula_and_reduces():
    # equity 1000, long 1 ETH at 3000, MMF 0.03 -> p_liq = 2061.86 (docs example): 31.3% away
    eth = Market("ETH-USD", 1, tick_size="0.1", step_size="0.001", initial_margin_fraction="0.05", maintenance_margin_fraction="0.03")
    v = RiskView(now_ns=T0, balance=bal("1000"), positions={}, marks={"ETH-USD": D("3000")}, markets={"ETH-USD": eth})
    p = make(LiquidationDistance, min_distance="0.31")
    assert p.check_order(order("1", ticker="ETH-USD"), v).approved
    p = make(LiquidationDistance, min_distance="0.32")
    d = p.check_order(order("1", ticker="ETH-USD"), v)
    assert d.action is RiskAction.REDUCE and d.size < 1
    assert "2061.86" in d.reason
    # the reduced size keeps the distance
    from perpbot.core.margin import liquidation_price

    pl = liquidation_price(D("1000"), d.size, D("3000"), D("0.03"))
    assert (D("3000") - pl) / D("3000") >= D("0.32")
    bigger = d.size + eth.step_size
    pl2 = liquidation_price(D("1000"), bigger, D("3000"), D("0.03"))
    assert (D("3000") - pl2) / D("3000") < D("0.32"), "the largest size that fits"


def test_liquidation_distance_rejects_when_even_one_step_is_too_close():
    v = rview(equity="1")  # one step (0.0001 BTC = 5 USD) is already 5x: p_liq 41237, 17.5% away
    d = make(LiquidationDistance, min_distance="0.5").check_order(order("0.01"), v)
    assert d.action is RiskAction.REJECT


def test_liquidation_distance_approves_reduce_only():
    pos = {"BTC-USD": Position("BTC-USD", D("1"), D("50000"))}
    d = make(LiquidationDistance, min_distance="0.9").check_order(order("1", Side.SELL, reduce_only=True), rview(positions=pos))
    assert d.approved


# -- stale data, circuit breaker -----------------------------------------------------------------


def test_stale_data_rejects_with_the_markets_reason():
    p = make(StaleData)
    v = rview(stale={"BTC-USD": "stale data: last event 42.0s ago"})
    d = p.check_order(order(), v)
    assert d.action is RiskAction.REJECT and "stale data on BTC-USD: stale data: last event 42.0s ago" in d.reason
    assert p.check_order(order(ticker="ETH-USD"), v).approved
    assert p.check_order(order(side=Side.SELL, reduce_only=True), v).approved
    strict = make(StaleData, allow_reduce_only=False)
    assert strict.check_order(order(side=Side.SELL, reduce_only=True), v).action is RiskAction.REJECT


def test_stale_data_on_a_qualified_market():
    v = rview(stale={"binance:BTC-USD": "crossed book"})
    assert make(StaleData).check_order(order(venue="binance"), v).action is RiskAction.REJECT
    assert make(StaleData).check_order(order(venue=None), v).approved


def test_circuit_breaker_rejects_then_halts_after_the_limit():
    p = make(CircuitBreaker, halt_after_s=300)
    v = rview(circuit_open={"dydx": "5 failures in a row"})
    d = p.check_order(order(venue="dydx"), v)
    assert d.action is RiskAction.REJECT and "5 failures in a row" in d.reason
    assert p.check_order(order(venue="binance"), v).approved
    assert p.check_account(rview(now=T0 + 299 * S, circuit_open={"dydx": "x"})).approved
    d = p.check_account(rview(now=T0 + 300 * S, circuit_open={"dydx": "x"}))
    assert d.action is RiskAction.HALT and "300s" in d.reason
    # closing resets the timer
    p.check_account(rview(now=T0 + 301 * S))
    assert p.check_account(rview(now=T0 + 400 * S, circuit_open={"dydx": "x"})).approved


# -- daily loss ----------------------------------------------------------------------------------------


def test_daily_loss_close_all_then_halt_and_edges():
    p = make(DailyLoss, max_loss="0.05")
    pos = {"BTC-USD": Position("BTC-USD", D("0.1"), D("50000"))}
    assert p.check_account(rview(equity="9501", positions=pos, day_start_equity=D("10000"))).approved
    d = p.check_account(rview(equity="9500", positions=pos, day_start_equity=D("10000")))
    assert d.action is RiskAction.CLOSE_ALL and "daily loss 500 USD (5%)" in d.reason
    d = p.check_account(rview(equity="9490", positions={}, day_start_equity=D("10000")))
    assert d.action is RiskAction.HALT


def test_daily_loss_without_halt_blocks_new_risk_until_next_utc_day():
    p = make(DailyLoss, max_loss="0.05", halt=False, max_loss_usd="300")
    d = p.check_account(rview(equity="9700", day_start_equity=D("10000")))  # 300 USD (3%) hits the USD limit
    assert d.approved  # flat, no halt
    assert p.check_order(order(), rview(equity="9700")).action is RiskAction.REJECT
    pos = {"BTC-USD": Position("BTC-USD", D("0.1"), D("50000"))}
    assert p.check_order(order(side=Side.SELL), rview(positions=pos)).approved, "reducing stays possible"
    nxt = T0 + 86400 * S
    p.check_account(rview(equity="9700", now=nxt, day_start_equity=D("9700")))
    assert p.check_order(order(), rview(now=nxt)).approved


def test_daily_loss_tracks_the_utc_day_itself_without_day_start_equity():
    p = make(DailyLoss, max_loss="0.1")
    assert p.check_account(rview(equity="10000", now=T0 + 3600 * S)).approved
    pos = {"BTC-USD": Position("BTC-USD", D("0.1"), D("50000"))}
    assert p.check_account(rview(equity="9000", positions=pos, now=T0 + 7200 * S)).action is RiskAction.CLOSE_ALL
    q = make(DailyLoss, max_loss="0.1")
    q.check_account(rview(equity="10000", now=T0 + 86399 * S))
    assert q.check_account(rview(equity="9000", positions=pos, now=T0 + 86400 * S)).approved, "a new day starts at 9000"


# -- kill switch --------------------------------------------------------------------------------


@pytest.fixture
def clean_kill():
    risk.clear_kill()
    yield
    risk.clear_kill()


def test_kill_switch_file(tmp_path, clean_kill):
    kill = tmp_path / "KILL"
    p = make(KillSwitch, path=str(kill), file_check_ms=0)  # the file looked for at every check (the gate: test_kill_gate.py)
    assert p.check_account(rview()).approved
    kill.write_text("")
    d = p.check_account(rview())
    assert d.action is RiskAction.HALT and str(kill) in d.reason
    assert p.check_order(order(), rview()).action is RiskAction.HALT
    assert p.check_order(order(side=Side.SELL, reduce_only=True), rview()).approved


def test_kill_switch_default_path_is_in_the_bots_state_dir(tmp_path, clean_kill):
    class Ctx:
        state_dir = tmp_path

    p = KillSwitch(parse_params(KillSwitch.Params, {}, "kill_switch"), Ctx())
    assert p.kill_path() == tmp_path / "KILL"
    (tmp_path / "KILL").touch()
    assert p.check_account(rview()).action is RiskAction.HALT


async def test_kill_switch_sigusr1(clean_kill):
    if not hasattr(signal, "SIGUSR1"):
        pytest.skip("no SIGUSR1 on this platform")
    loop = asyncio.get_running_loop()
    p = make(KillSwitch)
    p.install(loop)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(100):
            if risk.kill_requested():
                break
            await asyncio.sleep(0.01)
        d = p.check_account(rview())
        assert d.action is RiskAction.HALT and "SIGUSR1" in d.reason
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)


# -- the -15% policy flattens everything with reduce-only orders (real bot, real prices) ----------

from perpbot.core.exchange import BaseExchangeClient, ExchangeCapabilities  # noqa: E402
from perpbot.core.hookspecs import hookimpl  # noqa: E402
from perpbot.core.model import Bar, Fill, Liquidity, OrderParams, OrderResult, OrderStatus, OrderUpdate  # noqa: E402
from perpbot.core.portfolio import Portfolio  # noqa: E402
from perpbot.core.strategy import BaseStrategy, StrategyResult  # noqa: E402
from perpbot.core.testing import ListFeed, bot_config  # noqa: E402
from tests.shared_data import shared_root  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BARS = "merged_ohlcv_df_BTC-ETH_2024-02-01_to_2024-03-08.csv.gz"


def _bars_path() -> Path:
    for p in (REPO / "examples" / "data" / "bars" / BARS,
              shared_root() / "bars" / "pdr_backend_binance_spot_5m" / BARS):
        if p.exists():
            return p
    pytest.skip(f"real 5-minute bars {BARS} not found (examples/data/bars or ../shared/data)")


def real_bar_batches():
    """BTC-USD and ETH-USD bars (Binance spot 5-minute, Feb-Mar 2024), one batch per bar time."""
    out = []
    with gzip.open(_bars_path(), "rt") as f:
        for row in csv.DictReader(f):
            ts = int(row["timestamp"]) * 1_000_000 + 300 * S  # bar close time
            batch = []
            for t, col in (("BTC-USD", "binance:BTC/USDT"), ("ETH-USD", "binance:ETH/USDT")):
                batch.append(Bar(t, ts, D(row[f"{col}:open"]), D(row[f"{col}:high"]), D(row[f"{col}:low"]),
                                 D(row[f"{col}:close"]), D(row[f"{col}:volume"]), 300))
            out.append(batch)
    return out


class BarFillExchange(BaseExchangeClient):
    """Fills market orders at the last bar close (5 bp taker fee); records every order."""

    name = "barfill"

    def __init__(self, config, context):
        super().__init__(config, context)
        self.portfolio = Portfolio(D("10000"), context.markets)
        self.placed = []

    def capabilities(self):
        return ExchangeCapabilities(simulated=True)

    async def connect(self):
        pass

    async def disconnect(self):
        pass

    async def place_order(self, o):
        self.placed.append(o)
        now = self.context.clock.now_ns()
        px = self.context.state_of(o.ticker).last_price
        fee = (o.size * px * D("0.0005")).quantize(D("0.000001"))
        fill = Fill(o.client_id, o.ticker, o.side, px, o.size, fee, Liquidity.TAKER, now, tag=o.tag)
        self.portfolio.apply_fill(fill)
        self.emit(fill)
        self.emit(OrderUpdate(o.client_id, o.ticker, OrderStatus.FILLED, now, filled_size=o.size))
        return OrderResult(True, o.client_id, o.ticker, OrderStatus.FILLED, o.size, px)

    async def cancel_order(self, client_id, ticker):
        return OrderResult(False, client_id, ticker, error="nothing rests here")

    async def get_open_orders(self, ticker=None):
        return []

    async def get_positions(self):
        return self.portfolio.open_positions()

    async def get_balance(self):
        return self.portfolio.balance({}, 0)

    def best_bid_offer(self, ticker):
        px = self.context.state_of(ticker).last_price
        return px, px


class ShortOnce(BaseStrategy):
    """Opens two leveraged shorts (BTC and ETH) at the first decision, then does nothing."""

    name = "short_once"
    done = False

    async def should_execute(self, md):
        return not self.done and {"BTC-USD", "ETH-USD"} <= set(md.tradable)

    async def execute_strategy(self, md):
        self.done = True
        return StrategyResult.place(
            OrderParams("BTC-USD", Side.SELL, OrderType.MARKET, size=D("0.6")),
            OrderParams("ETH-USD", Side.SELL, OrderType.MARKET, size=D("8")),
            reason="test shorts",
        )


class Plugin:
    __name__ = "risk-test-plugin"
    decisions: list = []

    @hookimpl
    def register_feeds(self, register):
        register(ListFeed)

    @hookimpl
    def register_exchanges(self, register):
        register(BarFillExchange)

    @hookimpl
    def register_strategies(self, register):
        register(ShortOnce)

    @hookimpl
    def on_risk_action(self, bot, decision):
        type(self).decisions.append(decision)


def run_two_shorts(tmp_path, params=None):
    from perpbot.core.bot import TradingBot

    Plugin.decisions = []
    cfg = bot_config(
        exchange=("barfill",),
        strategy="short_once",
        tickers=("BTC-USD", "ETH-USD"),
        feed="list",
        state_dir=tmp_path,
        feeds={"list": {"batches": real_bar_batches(), "markets": {"BTC-USD": BTC, "ETH-USD": ETH}}},
        risk_policies=("seed_thresholds",),
        risk={"seed_thresholds": dict(params or {})},
        decision_interval_s=300,
    )
    pm = PluginManager(load_entry_points=False, extra_plugins=(Plugin(),), default_plugins=("perpbot.plugins.risk", "perpbot.plugins.sizers"))
    bot = TradingBot(cfg, pm)
    asyncio.run(bot.run())
    return bot


def test_emergency_minus_15_percent_flattens_everything_with_reduce_only_orders(tmp_path):
    """Shorts of 0.6 BTC and 8 ETH (~4.3x) from 2024-02-01 on real Binance 5-minute bars, with
    only the emergency rule armed (the -10% rule pushed out of the way): BTC's and ETH's
    February rally takes the account to -15%, seed_thresholds answers CLOSE_ALL, the bot closes
    BOTH positions with reduce-only IOC market orders, and once flat the policy HALTs."""
    bot = run_two_shorts(tmp_path, {"account_loss": "0.99"})
    ex = bot.exchange
    actions = [d.action for d in Plugin.decisions]
    assert actions == [RiskAction.CLOSE_ALL, RiskAction.HALT], [(d.action, d.reason) for d in Plugin.decisions]
    close_all, halt = Plugin.decisions
    assert "emergency 15%" in close_all.reason and "closing all 2 positions" in close_all.reason
    closes = [o for o in ex.placed if o.reduce_only]
    assert len(closes) == 2, "one reduce-only close per position"
    assert all(o.order_type is OrderType.MARKET and o.time_in_force is TimeInForce.IOC and o.side is Side.BUY for o in closes)
    assert {(o.ticker, o.size) for o in closes} == {("BTC-USD", D("0.6")), ("ETH-USD", D("8"))}
    assert ex.portfolio.open_positions() == {}, "flat after the emergency"
    assert bot.halted and "seed_thresholds" in bot.halted
    assert bot.total_equity() <= D("8500"), "the loss at the emergency is real"


def test_minus_10_percent_closes_the_worst_position_first_with_default_thresholds(tmp_path):
    """Same run with the seed's defaults: at -10% the worst position (by PnL / notional) is
    closed first, with a reduce-only market order, before anything else happens."""
    bot = run_two_shorts(tmp_path)
    first = Plugin.decisions[0]
    assert first.action is RiskAction.CLOSE_WORST and "account loss 10." in first.reason
    closes = [o for o in bot.exchange.placed if o.reduce_only]
    assert closes[0].ticker == first.ticker and closes[0].reduce_only and closes[0].order_type is OrderType.MARKET
    assert all(d.action in (RiskAction.CLOSE_WORST, RiskAction.CLOSE_ALL, RiskAction.HALT) for d in Plugin.decisions)
