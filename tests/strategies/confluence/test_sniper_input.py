"""The sniper takes the confluence as an input (confluence_weight) and shows its reasons in the table."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from perpbot.core.analysis import Analyzer, build_hubs
from perpbot.core.analysis.run import blend_confluence, confluence_input
from perpbot.core.model import Trade
from perpbot.core.strategy import StrategyAction, StrategyContext
from perpbot.core.testing import make_market_data
from perpbot.strategies.sniper import Sniper
from perpbot.strategies.sniper.params import SniperParams

D = Decimal
NS = 1_000_000_000
TS = 1_700_000_000 * NS


class Set(Analyzer):
    name = "set"
    handles = (Trade,)
    feature_names = ()

    def __init__(self, ticker, params=None):
        super().__init__(ticker, params)
        self.reading = (1, 100.0, 1.0)

    def on_event(self, state, ev):
        pass

    def interpret(self, ts_ns):
        return self.make(*self.reading, "everything agrees")

    def features(self):
        return {}


class Log:
    def __init__(self):
        self.lines = []

    def info(self, fmt, *args):
        self.lines.append(fmt.format(*args))

    def opt(self, **kw):
        return self

    def debug(self, fmt, *args):
        self.lines.append(fmt.format(*(a() if callable(a) else a for a in args)))

    warning = info


def test_blend_formula():
    hubs = build_hubs(["BTC-USD"], [Set])
    assert blend_confluence(hubs, "BTC-USD", TS, True, 60.0, D("0.5")) == (80.0, ("set long 100 (conf 1.00): everything agrees",))
    assert blend_confluence(hubs, "BTC-USD", TS, False, 60.0, D("0.5"))[0] == pytest.approx(30.0)
    assert blend_confluence(hubs, "ETH-USD", TS, True, 60.0, D("0.5")) == (60.0, ())
    assert confluence_input(D(0)) is None and confluence_input(D("0.3")).analyzers[0] == "technical"


def run_sniper(weight, reading):
    hubs = build_hubs(["BTC-USD"], [Set])
    hubs["BTC-USD"].analyzers[0].reading = reading
    params = SniperParams(confluence_weight=D(weight), entry_threshold=D(70), warmup_s=D(0))
    ctx = StrategyContext(tickers=("BTC-USD",), clock=None, markets={}, options={"analysis": hubs})
    s = Sniper(params, ctx)
    s.log = Log()
    md = make_market_data({"BTC-USD": "100"}, scores={"BTC-USD": {"momentum": 70, "orderbook": 70}}, ts_ns=TS)
    sc = md.markets["BTC-USD"].scores
    sc.warm, sc.samples, sc.momentum_fast, sc.momentum_slow = True, 100, 70, 70
    result = asyncio.run(s.execute_strategy(md))
    return result, "\n".join(s.log.lines)


def test_confluence_lifts_the_composite_over_the_entry_threshold_and_shows_its_reasons():
    alone, _ = run_sniper("0", (1, 100.0, 1.0))
    assert alone.action is not StrategyAction.PLACE_ORDERS  # composite below 70 on its own scores
    result, table = run_sniper("0.5", (1, 100.0, 1.0))
    assert result.action is StrategyAction.PLACE_ORDERS and result.orders[0].ticker == "BTC-USD"
    assert "set long 100 (conf 1.00): everything agrees" in table
    against, _ = run_sniper("0.5", (-1, 100.0, 1.0))  # the confluence says short: no long entry
    assert against.action is not StrategyAction.PLACE_ORDERS or against.orders[0].side.name == "SELL"


def test_the_wiring_builds_hubs_for_the_sniper_only_when_asked(tmp_path):
    from perpbot.core.bot import TradingBot
    from perpbot.core.hookspecs import hookimpl
    from perpbot.core.plugins import PluginManager
    from perpbot.core.testing import ListFeed, bot_config, market

    class Feeds:
        __name__ = "sniper-input-test-feeds"

        @hookimpl
        def register_feeds(self, register):
            register(ListFeed)

    def bot(params):
        cfg = bot_config(exchange=("paper",), strategy="sniper", tickers=("BTC-USD",), feed="list", state_dir=tmp_path,
                         feeds={"list": {"events": [], "markets": {"BTC-USD": market("BTC-USD")}}},
                         strategies={"sniper": params})
        pm = PluginManager(load_entry_points=False, extra_plugins=(Feeds(),),
                           default_plugins=("perpbot.exchanges.paper", "perpbot.strategies.sniper",
                                            "perpbot.plugins.analysis", "perpbot.plugins.sizers", "perpbot.plugins.risk"))
        return TradingBot(cfg, pm)

    assert "analysis" not in bot({}).strategy.context.options
    hubs = bot({"confluence_weight": "0.3"}).strategy.context.options["analysis"]
    assert [a.name for a in hubs["BTC-USD"].analyzers] == ["technical", "volume", "orderflow", "orderbook",
                                                          "structure", "sentiment"]
