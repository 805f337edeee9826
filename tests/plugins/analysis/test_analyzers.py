"""Each built-in analyzer's direction on constructed markets (rising/falling, buying/selling, ...)."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from perpbot.core.analysis import OpenInterest
from perpbot.core.model import Bar, BookSnapshot, FundingRate, MarketInfo, OraclePrice, Quote, Side, Trade
from perpbot.core.plugins import PluginManager
from perpbot.core.state import MarketState
from perpbot.core.testing import market
from perpbot.plugins.analysis import (
    BUILTIN, OrderbookAnalyzer, OrderflowAnalyzer, SentimentAnalyzer, StructureAnalyzer, TechnicalAnalyzer,
    VolumeAnalyzer,
)

D = Decimal
NS = 1_000_000_000
T = "BTC-USD"


def run(analyzer, events, state=None):
    st = state or MarketState(market(T))
    for ev in events:
        st.apply(ev)
        if type(ev) in analyzer.handles:
            analyzer.on_event(st, ev)
    return analyzer.interpret(events[-1].ts_ns if events else 0)


def bars(closes, *, volumes=None, wick=0.2, open_from_prev=True, start=0):
    out = []
    prev = closes[0]
    for i, c in enumerate(closes):
        o = prev if open_from_prev else c
        v = volumes[i] if volumes else 10
        out.append(Bar(T, (start + i + 1) * 3600 * NS, D(str(round(o, 6))), D(str(round(max(o, c) + wick, 6))),
                       D(str(round(min(o, c) - wick, 6))), D(str(round(c, 6))), D(str(v)), 3600))
        prev = c
    return out


def trend(n, step, base=100.0):
    # a trend with a pull-back every 4th bar, so RSI is not pinned at 0/100
    out = []
    x = base
    for i in range(n):
        x += -step * 0.5 if i % 4 == 3 else step
        out.append(x)
    return out


def test_all_six_register_through_the_hook():
    pm = PluginManager(load_entry_points=False, default_plugins=("perpbot.plugins.analysis",))
    assert sorted(pm.registry.analyzers) == ["orderbook", "orderflow", "sentiment", "structure", "technical", "volume"]
    for cls in BUILTIN:
        a = cls(T)
        assert tuple(a.features()) == cls.feature_names
        assert all(n.startswith(cls.name + ".") for n in cls.feature_names)


@pytest.mark.parametrize("step, expect", [(1.0, 1), (-1.0, -1)])
def test_technical_follows_the_trend(step, expect):
    it = run(TechnicalAnalyzer(T), bars(trend(60, step)))
    assert it.direction == expect and it.strength > 20 and it.confidence >= 0.5
    assert ("above" if expect > 0 else "below") in it.reason and "RSI" in it.reason


def test_technical_flat_market_is_neutral_and_warms_up():
    a = TechnicalAnalyzer(T)
    assert run(a, bars([100.0] * 5)) is None  # fewer than `fast` bars
    it = run(TechnicalAnalyzer(T), bars([100.0, 100.1] * 30))
    assert it.direction == 0


def test_technical_on_bars_built_from_trades():
    evs = []
    for i, c in enumerate(trend(40, 1.0)):
        evs.append(Trade(T, (i * 60 + 1) * NS, D(str(c)), D(1), Side.BUY))
        evs.append(Trade(T, (i * 60 + 30) * NS, D(str(c)), D(1), Side.SELL))
    it = run(TechnicalAnalyzer(T), evs)
    assert it is not None and it.direction == 1


def test_volume_spike_on_an_up_bar_and_profile_below():
    closes = [100.0, 99.9] * 15 + [103.0]  # balanced, then a jump on heavy volume above the POC
    vols = [10] * 30 + [60]
    a = VolumeAnalyzer(T)
    it = run(a, bars(closes, volumes=vols))
    assert it.direction == 1
    assert "6.0x" in it.reason and "above the volume POC" in it.reason
    f = a.features()
    assert f["volume.rel_volume"] == pytest.approx(6.0, rel=0.01) and f["volume.poc_dist"] > 0


def test_volume_on_down_bars_reads_short():
    closes = [100.0 - 0.3 * i for i in range(30)]
    it = run(VolumeAnalyzer(T), bars(closes, volumes=[10 + (i % 3) for i in range(30)]))
    assert it.direction == -1


def test_volume_profile_poc_is_the_heaviest_price():
    a = VolumeAnalyzer(T, {"bin_pct": 1, "profile_half_life": 1000})
    closes = [120.0] * 5 + [100.0] * 10  # the heavier price comes second: the POC must move to it
    run(a, bars(closes, volumes=[10] * 15, wick=0.0, open_from_prev=False))
    assert a.poc_price == pytest.approx(100.0, rel=0.011)


@pytest.mark.parametrize("side, expect", [(Side.BUY, 1), (Side.SELL, -1)])
def test_orderflow_aggressors_set_the_direction(side, expect):
    evs = []
    for i in range(200):
        s = side if i % 4 else side.opposite  # 3 of 4 trades by the one side
        evs.append(Trade(T, (i + 1) * NS, D("100"), D("1"), s))
    a = OrderflowAnalyzer(T)
    it = run(a, evs)
    assert it.direction == expect and it.confidence > 0.5
    assert ("buyers" if expect > 0 else "sellers") in it.reason
    assert "estimated" not in it.reason


def test_orderflow_large_trades_detected():
    evs = [Trade(T, (i + 1) * NS, D("100"), D("1"), Side.BUY if i % 2 else Side.SELL) for i in range(100)]
    evs += [Trade(T, (101 + i) * NS, D("100"), D("20"), Side.SELL) for i in range(3)]
    a = OrderflowAnalyzer(T)
    run(a, evs)
    assert a.large_seen == 3 and a.features()["orderflow.large_net"] == pytest.approx(-1.0)


def test_orderflow_estimates_delta_from_bars():
    # closes near the highs: accumulation; near the lows: distribution
    up = [Bar(T, (i + 1) * 3600 * NS, D(100), D(102), D(99), D("101.8"), D(10), 3600) for i in range(40)]
    it = run(OrderflowAnalyzer(T), up)
    assert it.direction == 1 and "estimated from bar closes" in it.reason and it.confidence <= 0.5
    dn = [Bar(T, (i + 1) * 3600 * NS, D(100), D(101), D(98), D("98.2"), D(10), 3600) for i in range(40)]
    assert run(OrderflowAnalyzer(T), dn).direction == -1


def book(ts, bid_size, ask_size):
    bids = tuple((D(100) - D(i) / 10, D(bid_size)) for i in range(10))
    asks = tuple((D("100.1") + D(i) / 10, D(ask_size)) for i in range(10))
    return BookSnapshot(T, ts, bids, asks)


@pytest.mark.parametrize("bid, ask, expect", [(30, 10, 1), (10, 30, -1), (10, 10, 0)])
def test_orderbook_pressure(bid, ask, expect):
    evs = [book((i + 1) * NS, bid, ask) for i in range(30)]
    a = OrderbookAnalyzer(T)
    it = run(a, evs)
    assert it.direction == expect
    assert a.features()["orderbook.spread_bps"] == pytest.approx(10.0, rel=0.01)
    if expect:
        assert ("bids outweigh" if expect > 0 else "asks outweigh") in it.reason


def test_orderbook_samples_at_most_every_sample_ms():
    a = OrderbookAnalyzer(T, {"sample_ms": 1000})
    run(a, [book(NS + i * 1_000_000, 30, 10) for i in range(500)])  # 500 updates in 0.5 s
    assert a._pressure.n == 1


def test_orderbook_top_of_book_quotes_and_bar_only_market():
    evs = [Quote(T, (i + 1) * NS, D(100), D(5), D("100.1"), D(1)) for i in range(10)]
    assert run(OrderbookAnalyzer(T), evs).direction == 1
    assert run(OrderbookAnalyzer(T), bars(trend(30, 1.0))) is None  # no book: no reading


def test_structure_breakout_and_breakdown():
    wave = [100, 101, 102, 103, 102, 101, 100, 99, 98, 99, 100, 101, 102, 101, 100, 99]
    up = [float(x) for x in wave] + [104.5]
    a = StructureAnalyzer(T)
    it = run(a, bars(up, wick=0.1))
    assert it.direction == 1 and "broke above resistance" in it.reason
    down = [float(x) for x in wave] + [96.0]
    it = run(StructureAnalyzer(T), bars(down, wick=0.1))
    assert it.direction == -1 and "broke below support" in it.reason


def test_structure_higher_highs_and_lows():
    closes = []
    base = 100.0
    for _ in range(5):  # waves, each higher than the last
        closes += [base + x for x in (0, 1, 2, 3, 2, 1, 0.5)]
        base += 1.5
    a = StructureAnalyzer(T, {"breakout_atr": 100})  # no breakout: structure alone
    it = run(a, bars(closes, wick=0.1))
    assert it.direction == 1 and "higher swing highs" in it.reason
    lower = [200 - x for x in closes]
    it = run(StructureAnalyzer(T, {"breakout_atr": 100}), bars(lower, wick=0.1))
    assert it.direction == -1 and "lower swing highs" in it.reason


def test_sentiment_funding_is_contrarian():
    pos = [FundingRate(T, (i + 1) * 3600 * NS, D("0.0002"), settled=True) for i in range(10)]
    it = run(SentimentAnalyzer(T), pos)
    assert it.direction == -1 and "longs pay shorts" in it.reason
    neg = [FundingRate(T, (i + 1) * 3600 * NS, D("-0.0002"), settled=True) for i in range(10)]
    assert run(SentimentAnalyzer(T), neg).direction == 1


def test_sentiment_rising_open_interest_confirms_the_price():
    st = MarketState(market(T))
    evs = []
    for i in range(20):
        evs.append(Bar(T, (i + 1) * 3600 * NS, D(100 + i), D(101 + i), D(99 + i), D(100 + i), D(10), 3600))
        evs.append(OpenInterest(T, (i + 1) * 3600 * NS + 1, D(1000 + 50 * i + (i % 3))))
    a = SentimentAnalyzer(T)
    it = run(a, evs, st)
    assert it.direction == 1 and "open interest rising" in it.reason and "price rises" in it.reason
    assert a.features()["sentiment.oi_z"] > 1


def test_sentiment_basis_long_short_and_market_info():
    st = MarketState(market(T))
    evs = [Trade(T, NS, D(101), D(1), Side.BUY), OraclePrice(T, 2 * NS, D(100))]  # +100 bp premium
    assert run(SentimentAnalyzer(T), evs, st).direction == -1
    ls = [OpenInterest(T, NS, D(1000), long_short_ratio=0.6)]
    assert run(SentimentAnalyzer(T), ls).direction == 1
    a = SentimentAnalyzer(T)
    st = MarketState(market(T))
    m = market(T)
    for i in range(6):
        st.apply(Trade(T, (i + 1) * NS, D(100 - i), D(1), Side.SELL))
        info = MarketInfo(T, (i + 1) * NS + 1, market=type(m)(**{**_fields(m), "open_interest": D(500 + 40 * i + i % 2)}))
        st.apply(info)
        a.on_event(st, info)
    assert a.interpret(10 * NS).direction == -1  # OI rising into a falling price: shorts adding


def _fields(m):
    import attrs

    return {f.name: getattr(m, f.name) for f in attrs.fields(type(m))}


def test_unknown_and_bad_parameters_are_one_line():
    with pytest.raises(ValueError, match=r"unknown parameter 'fsat' \(did you mean 'fast'\?\)"):
        TechnicalAnalyzer(T, {"fsat": 3})
    with pytest.raises(ValueError, match="parameter slow must be a number"):
        TechnicalAnalyzer(T, {"slow": "x"})
    with pytest.raises(ValueError, match="fast .* below slow"):
        TechnicalAnalyzer(T, {"fast": 30})


def test_features_are_nan_before_data_and_finite_after():
    for cls in BUILTIN:
        f = cls(T).features()
        assert all(math.isnan(v) or v == 0.0 for v in f.values()), cls.name
    a = TechnicalAnalyzer(T)
    run(a, bars(trend(40, 1.0)))
    assert all(math.isfinite(v) for v in a.features().values())
