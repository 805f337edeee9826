"""The confluence strategy: signal generator, entries/exits, the ML gate, the wiring, end to end."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from perpbot.core.analysis import Analyzer, build_hubs
from perpbot.core.errors import ConfigError
from perpbot.core.hookspecs import hookimpl
from perpbot.core.model import Position, Side, Trade
from perpbot.core.strategy import StrategyAction, StrategyContext
from perpbot.core.testing import make_market_data
from perpbot.strategies.confluence import ConfluenceParams, ConfluenceStrategy

D = Decimal
NS = 1_000_000_000
REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "examples/configs/confluence-bars.toml"  # the embedded 5-minute sample, weights and analyzer params
TS = 1_700_000_000 * NS


class Set(Analyzer):
    """An analyzer whose reading the test sets (no events needed)."""

    name = "set"
    handles = (Trade,)
    feature_names = ("set.x",)

    def __init__(self, ticker, params=None):
        super().__init__(ticker, params)
        self.reading = None

    def on_event(self, state, ev):
        pass

    def interpret(self, ts_ns):
        return None if self.reading is None else self.make(*self.reading, "set by the test")

    def features(self):
        return {"set.x": 1.0}


class Set2(Set):
    name = "set2"
    feature_names = ("set2.x",)

    def features(self):
        return {"set2.x": 1.0}


class Gate:
    def __init__(self, p, threshold=0.5):
        self.p = p
        self.threshold = threshold
        self.asked = []

    def probability(self, features):
        self.asked.append(dict(features))
        return self.p

    def describe(self):
        return "test gate"


def strategy(tickers=("BTC-USD", "ETH-USD"), gate=None, **params):
    hubs = build_hubs(tickers, [Set, Set2])
    options = {"analysis": hubs}
    if gate is not None:
        options["signal_gate"] = gate
    ctx = StrategyContext(tickers=tuple(tickers), clock=None, markets={}, options=options)
    return ConfluenceStrategy(ConfluenceParams(**params), ctx), hubs


def read(hubs, t, a, b):
    hubs[t].analyzers[0].reading = a
    hubs[t].analyzers[1].reading = b
    hubs[t]._cache_ts = -1


def decide(s, md):
    return asyncio.run(s.execute_strategy(md))


def test_entries_need_score_and_agreement_and_rank_by_score():
    s, hubs = strategy(entry_score=D(30), max_positions=1)
    read(hubs, "BTC-USD", (1, 80.0, 1.0), (1, 60.0, 1.0))  # score 70, 2 agree
    read(hubs, "ETH-USD", (-1, 100.0, 1.0), (-1, 90.0, 1.0))  # score 95 short
    r = decide(s, make_market_data({"BTC-USD": "100", "ETH-USD": "10"}, ts_ns=TS))
    assert r.action is StrategyAction.PLACE_ORDERS
    (o,) = r.orders
    assert o.ticker == "ETH-USD" and o.side is Side.SELL and o.size is None and o.tag == "confluence-entry"
    assert "confluence 95.0 >= 30" in o.reason and "set short 100" in o.reason


def test_no_entry_below_the_score_or_with_one_analyzer():
    s, hubs = strategy(entry_score=D(30))
    read(hubs, "BTC-USD", (1, 50.0, 1.0), (0, 0.0, 1.0))  # score 25
    read(hubs, "ETH-USD", (1, 100.0, 1.0), (-1, 10.0, 1.0))  # score 45, but one agrees
    md = make_market_data({"BTC-USD": "100", "ETH-USD": "10"}, ts_ns=TS)
    assert decide(s, md).action is StrategyAction.NONE
    table = s.table({t: s.generator.signal(t, TS) for t in md.tradable}, md)
    assert "score 25.0 < entry 30" in table and "1 analyzer(s) agree < 2" in table
    s, hubs = strategy(entry_score=D(30), allow_short=False)
    read(hubs, "ETH-USD", (-1, 100.0, 1.0), (-1, 90.0, 1.0))
    assert decide(s, md).action is StrategyAction.NONE


def test_ml_gate_refuses_and_passes():
    gate = Gate(0.3, threshold=0.5)
    s, hubs = strategy(gate=gate, entry_score=D(30))
    read(hubs, "BTC-USD", (1, 80.0, 1.0), (1, 60.0, 1.0))
    md = make_market_data({"BTC-USD": "100", "ETH-USD": "10"}, ts_ns=TS)
    assert decide(s, md).action is StrategyAction.NONE
    # asked once at start (a neutral signal: the feature check), then only for the qualified market
    assert gate.asked == [{"set.x": 1.0, "set2.x": 1.0, "confluence.direction": 0.0, "confluence.score": 0.0},
                          {"set.x": 1.0, "set2.x": 1.0, "confluence.direction": 1.0, "confluence.score": 70.0}]
    assert s.generator.gated_out == 1 and "ML gate refused 1" in s.summary_lines()[-1]
    gate.p = 0.8
    r = decide(s, md)
    assert r.orders[0].ticker == "BTC-USD" and "ML p=0.80" in r.orders[0].reason


def pos(t, size, entry):
    return Position(t, D(size), D(entry))


@pytest.mark.parametrize("mark, reading, kind", [
    ("104", (1, 80.0, 1.0), "take-profit"),
    ("97", (1, 80.0, 1.0), "stop-loss"),
    ("100", (-1, 80.0, 1.0), "signal"),
])
def test_exits(mark, reading, kind):
    s, hubs = strategy(tickers=("BTC-USD",), take_profit=D("0.03"), stop_loss=D("0.02"))
    read(hubs, "BTC-USD", reading, (0, 0.0, 1.0))
    md = make_market_data({"BTC-USD": mark}, positions={"BTC-USD": pos("BTC-USD", "0.5", "100")}, ts_ns=TS)
    r = decide(s, md)
    (o,) = r.orders
    assert o.side is Side.SELL and o.reduce_only and o.size == D("0.5") and o.tag == f"confluence-exit:{kind}"
    # the exit is in flight: no second order, and no re-entry during the cool-down
    assert decide(s, md).action is StrategyAction.NONE
    read(hubs, "BTC-USD", (1, 90.0, 1.0), (1, 90.0, 1.0))
    flat = make_market_data({"BTC-USD": mark}, ts_ns=TS + 60 * NS)
    s.pending.clear()
    assert decide(s, flat).action is StrategyAction.NONE
    later = make_market_data({"BTC-USD": mark}, ts_ns=TS + 3601 * NS)
    assert decide(s, later).orders[0].tag == "confluence-entry"


def test_a_held_position_with_the_signal_is_kept():
    s, hubs = strategy(tickers=("BTC-USD",))
    read(hubs, "BTC-USD", (1, 30.0, 1.0), (0, 0.0, 1.0))
    md = make_market_data({"BTC-USD": "101"}, positions={"BTC-USD": pos("BTC-USD", "0.5", "100")}, ts_ns=TS)
    assert decide(s, md).action is StrategyAction.NONE


def test_params_and_state():
    with pytest.raises(ValueError, match="exit_score: must be below entry_score"):
        ConfluenceParams(entry_score=D(10), exit_score=D(10))
    with pytest.raises(ValueError, match="analyzers: name at least one analyzer"):
        ConfluenceParams(analyzers=" , ")
    with pytest.raises(ValueError, match="weight of technical must be a number >= 0"):
        ConfluenceParams(weights={"technical": -1})
    with pytest.raises(ConfigError, match="no analysis hubs"):
        ConfluenceStrategy(ConfluenceParams(), StrategyContext(tickers=("BTC-USD",), clock=None, markets={}))
    s, _ = strategy()
    s.cooldown_until["BTC-USD"] = 5
    s2, _ = strategy()
    s2.restore_state(json.loads(json.dumps(s.get_state())))
    assert s2.cooldown_until == {"BTC-USD": 5}
    with pytest.raises(ValueError, match="unknown version 7"):
        s2.restore_state({"version": 7})


def _bot(tmp_path, params, extra=()):
    from perpbot.core.bot import TradingBot
    from perpbot.core.plugins import PluginManager
    from perpbot.core.testing import ListFeed, bot_config, market

    class Feeds:
        __name__ = "confluence-test-feeds"

        @hookimpl
        def register_feeds(self, register):
            register(ListFeed)

    cfg = bot_config(exchange=("paper",), strategy="confluence", tickers=("BTC-USD",), feed="list", state_dir=tmp_path,
                     feeds={"list": {"events": [], "markets": {"BTC-USD": market("BTC-USD")}}},
                     strategies={"confluence": params})
    pm = PluginManager(load_entry_points=False, extra_plugins=(Feeds(), *extra),
                       default_plugins=("perpbot.exchanges.paper", "perpbot.strategies.confluence",
                                        "perpbot.plugins.analysis", "perpbot.plugins.sizers", "perpbot.plugins.risk"))
    return TradingBot(cfg, pm)


def test_wiring_builds_hubs_and_feeds_them(tmp_path):
    from perpbot.core.analysis.hub import HubEngine

    bot = _bot(tmp_path, {"analyzers": "technical,orderflow", "weights": {"technical": 2}})
    hub = bot.strategy.generator.hubs["BTC-USD"]
    assert [a.name for a in hub.analyzers] == ["technical", "orderflow"] and hub.weights == {"technical": 2.0}
    eng = bot._events.engines["BTC-USD"]  # what the loop calls on every event
    assert isinstance(eng, HubEngine) and eng.hub is hub and eng.engine is not None


def test_wiring_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown analyzer 'technicl' \(did you mean 'technical'\?\)"):
        _bot(tmp_path, {"analyzers": "technicl"})
    with pytest.raises(ConfigError, match="parameter ml_model: no such file '/nowhere/model.bin'"):
        _bot(tmp_path, {"ml_model": "/nowhere/model.bin"})
    junk = tmp_path / "junk.bin"
    junk.write_text("not a model")
    with pytest.raises(ConfigError, match=f"no plugin can load '{junk}' as a signal gate"):
        _bot(tmp_path, {"ml_model": str(junk)})


def test_a_gate_that_refuses_the_features_fails_at_start():
    class Picky(Gate):
        def probability(self, features):
            raise ValueError("ml model m.bin: features do not match the model's (missing: volume.x)")

    with pytest.raises(ConfigError, match=r"ml_model: ml model m.bin: features do not match .*missing: volume.x"):
        strategy(gate=Picky(0.5))


def test_wiring_hands_the_gate_over_with_the_threshold(tmp_path):
    gate = Gate(0.9, threshold=0.5)

    class Loader:
        __name__ = "confluence-test-gate"

        @hookimpl
        def load_signal_gate(self, path):
            return gate if path.endswith(".gate") else None

    bot = _bot(tmp_path, {"ml_model": "m.gate", "ml_threshold": "0.7"}, extra=(Loader(),))
    assert bot.strategy.generator.gate is gate and gate.threshold == pytest.approx(0.7)


@pytest.mark.slow
def test_backtest_on_the_embedded_sample_through_runbot(tmp_path):
    """End to end: runbot.py backtest with the example config (weights, analyzer parameters from TOML), the
    replay feed with funding, the hub on every bar, the paper exchange."""
    cmd = [sys.executable, str(REPO / "runbot.py"), "backtest", "--config", str(CONFIG), "--max-events", "3000",
           "--state-dir", str(tmp_path), "--no-journal", "--no-report", "--json", "-p", "entry_score=15"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout[out.stdout.index("{"):])
    text = json.dumps(summary)
    assert "confluence-entry" in text and "confluence-exit" in text, text[:2000]
