"""The analysis interface: interpretations, score weighting (confluence), the hub, offline feature rows."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from perpbot.core.analysis import (
    AnalysisHub, Analyzer, Interpretation, OpenInterest, SignalGate, build_hubs, combine, feature_rows,
    market_confluence,
)
from perpbot.core.analysis.hub import HubEngine, resolve_analyzers
from perpbot.core.model import Bar, FundingRate, Side, Trade
from perpbot.core.state import MarketState
from perpbot.core.testing import market

D = Decimal
NS = 1_000_000_000


def it(name, d, s, c=1.0, venue=None, ticker="BTC-USD"):
    return Interpretation(name, ticker, d, s, c, f"{name} says {d}", venue)


class Fixed(Analyzer):
    """Reads trades only; returns what the test sets."""

    name = "fixed"
    handles = (Trade,)
    defaults = {"k": 1}
    feature_names = ("fixed.count",)

    def __init__(self, ticker, params=None):
        super().__init__(ticker, params)
        self.count = 0
        self.reading = (1, 50.0, 1.0)

    def on_event(self, state, ev):
        self.count += 1

    def interpret(self, ts_ns):
        if self.count == 0:
            return None
        return self.make(*self.reading, f"{self.count} trades")

    def features(self):
        return {"fixed.count": float(self.count)}


class Bars(Fixed):
    name = "bars"
    handles = (Bar,)
    feature_names = ("bars.count",)

    def features(self):
        return {"bars.count": float(self.count)}


def test_interpretation_validates_its_fields():
    with pytest.raises(ValueError, match="direction must be -1, 0 or \\+1, got 2"):
        it("a", 2, 10)
    with pytest.raises(ValueError, match="strength must be in \\[0.0, 100.0\\], got 101"):
        it("a", 1, 101)
    with pytest.raises(ValueError, match="confidence must be in \\[0.0, 1.0\\], got 1.5"):
        it("a", 1, 10, 1.5)
    assert it("a", -1, 80, 0.5).signed == -40


def test_combine_agreement_adds_and_disagreement_cancels():
    agree = combine([it("a", 1, 80), it("b", 1, 60), it("c", 0, 0)])
    assert agree.score == pytest.approx((80 + 60) / 3) and agree.direction == 1
    assert agree.agreeing == 2 and agree.total == 3
    assert agree.reasons[0].startswith("a long 80") and agree.reasons[1].startswith("b long 60")
    split = combine([it("a", 1, 80), it("b", -1, 60)])
    assert split.score == pytest.approx(10) and split.direction == 1
    assert split.reasons == ("a long 80 (conf 1.00): a says 1", "against: b short 60 (conf 1.00): b says -1")
    assert combine([it("a", 1, 50), it("b", -1, 50)]).direction == 0
    assert combine([]).score == 0 and combine([]).direction == 0


def test_combine_weights_and_confidence():
    c = combine([it("a", 1, 80, 0.5), it("b", -1, 60)], {"a": 3.0, "b": 1.0})
    assert c.score == pytest.approx((3 * 40 - 60) / 4) and c.direction == 1
    assert combine([it("a", 1, 80), it("b", -1, 60)], {"a": 0}).direction == -1  # weight 0 leaves it out
    assert combine([it("a", 1, 80)], {"a": 0}).total == 0


def test_hub_dispatches_by_event_type_and_merges_features():
    hub = build_hubs(["BTC-USD"], [Fixed, Bars])["BTC-USD"]
    st = MarketState(market("BTC-USD"))
    for i in range(3):
        ev = Trade("BTC-USD", (i + 1) * NS, D(100), D(1), Side.BUY)
        st.apply(ev)
        hub.on_event(st, ev)
    f = hub.features()
    assert f == {"fixed.count": 3.0, "bars.count": 0.0}
    assert hub.feature_names == ("fixed.count", "bars.count")
    its = hub.interpretations(5 * NS)
    assert [i.analyzer for i in its] == ["fixed"]  # the bar analyzer is still warming up
    c = hub.confluence(5 * NS)
    assert c.direction == 1 and c.score == 50 and c.reasons == ("fixed long 50 (conf 1.00): 3 trades",)


def test_hub_confluence_is_cached_until_the_next_event():
    hub = AnalysisHub("BTC-USD", [Fixed("BTC-USD")])
    st = MarketState(market("BTC-USD"))
    ev = Trade("BTC-USD", NS, D(100), D(1), Side.BUY)
    hub.on_event(st, ev)
    first = hub.confluence(2 * NS)
    hub.analyzers[0].reading = (-1, 20.0, 1.0)
    assert hub.confluence(2 * NS) is first  # same time, no event: cached
    hub.on_event(st, ev)
    assert hub.confluence(2 * NS).direction == -1


def test_market_confluence_combines_venues():
    hubs = build_hubs(["BTC-USD", "binance:BTC-USD", "ETH-USD"], [Fixed])
    st = MarketState(market("BTC-USD"))
    for t, reading in (("BTC-USD", (1, 60.0, 1.0)), ("binance:BTC-USD", (1, 40.0, 1.0)), ("ETH-USD", (-1, 90.0, 1.0))):
        hubs[t].analyzers[0].reading = reading
        hubs[t].on_event(st, Trade(t, NS, D(100), D(1), Side.BUY))
    c = market_confluence(hubs, "BTC-USD", 2 * NS)
    assert c.score == pytest.approx(50) and c.total == 2
    assert any("@binance" in r for r in c.reasons)
    assert market_confluence(hubs, "binance:BTC-USD", 2 * NS).score == pytest.approx(50)


def test_hub_engine_feeds_both():
    seen = []

    class Engine:
        cfg = "engine config"

        def on_event(self, st, ev):
            seen.append(ev)

    hub = AnalysisHub("BTC-USD", [Fixed("BTC-USD")])
    eng = HubEngine(Engine(), hub)
    ev = Trade("BTC-USD", NS, D(100), D(1), Side.BUY)
    eng.on_event(MarketState(market("BTC-USD")), ev)
    assert seen == [ev] and hub.analyzers[0].count == 1 and eng.cfg == "engine config"
    HubEngine(None, hub).on_event(None, ev)
    assert hub.analyzers[0].count == 2


def test_resolve_and_build_errors_are_one_line():
    with pytest.raises(ValueError, match=r"unknown analyzer 'fixd' \(did you mean 'fixed'\?\) \(available: bars, fixed\)"):
        resolve_analyzers({"fixed": Fixed, "bars": Bars}, ["fixd"])
    with pytest.raises(ValueError, match="named twice"):
        resolve_analyzers({"fixed": Fixed}, ["fixed", "fixed"])
    with pytest.raises(ValueError, match="analysis parameters for 'fixd', which is not analysed"):
        build_hubs(["BTC-USD"], [Fixed], {"fixd": {}})
    with pytest.raises(ValueError, match="unknown parameter 'x'"):
        build_hubs(["BTC-USD"], [Fixed], {"fixed": {"x": 1}})
    with pytest.raises(ValueError, match="weight fixed=-1"):
        build_hubs(["BTC-USD"], [Fixed], None, {"fixed": -1})


def bar(i, close):
    c = D(str(close))
    return Bar("BTC-USD", i * 3600 * NS, c, c + 1, c - 1, c, D(10), 3600)


def test_feature_rows_sample_without_look_ahead():
    events = [bar(i, 100 + i) for i in range(1, 7)]
    events.insert(3, FundingRate("BTC-USD", 3 * 3600 * NS + 1, D("0.0001"), settled=True))
    events.append(OpenInterest("BTC-USD", 6 * 3600 * NS + 5, D(1000)))
    events.append(bar(1, 1).__class__("ETH-USD", 3600 * NS, D(1), D(1), D(1), D(1), D(1), 3600))  # not asked for
    rows = list(feature_rows(events, ["BTC-USD"], [Bars], every_ns=2 * 3600 * NS))
    # samples at 2h, 4h, 6h and the last one at 8h (the OI sample after the 6h bar)
    assert [r["ts_ns"] // (3600 * NS) for r in rows] == [2, 4, 6, 8]
    assert [r["close"] for r in rows] == [102.0, 104.0, 106.0, 106.0]
    assert [r["bars.count"] for r in rows] == [2.0, 4.0, 6.0, 6.0]  # no bar after its sample time
    assert list(rows[0]) == ["ts_ns", "ticker", "close", "bars.count"]
    with pytest.raises(ValueError, match="every_ns must be > 0"):
        list(feature_rows(events, ["BTC-USD"], [Bars], every_ns=0))


def test_feature_rows_with_the_builtins_give_stable_names():
    from perpbot.plugins.analysis import BUILTIN

    events = [bar(i, 100 + (i % 5)) for i in range(1, 60)]
    rows = list(feature_rows(events, ["BTC-USD"], BUILTIN, every_ns=3600 * NS))
    assert len(rows) == 59
    names = [n for cls in BUILTIN for n in cls.feature_names]
    assert all(list(r)[3:] == names for r in rows)
    assert math.isfinite(rows[-1]["technical.rsi"])


def test_signal_gate_protocol():
    class Gate:
        threshold = 0.6

        def probability(self, features):
            return 0.7

        def describe(self):
            return "test gate"

    assert isinstance(Gate(), SignalGate)
    assert not isinstance(object(), SignalGate)
