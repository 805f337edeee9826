"""perpbot.core.signals: each score moves the right way, stays in [0, 100], O(1) memory, bar mode, real data."""

from __future__ import annotations

import gzip
import heapq
import math
import random
import tracemalloc
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import perpbot.core.signals as signals
from perpbot.core.model import Bar, BookDelta, BookSnapshot, FundingRate, Market, OraclePrice, Quote, Side, Trade
from perpbot.core.signals import Scores, SignalConfig, SignalEngine, ratio_score, squash
from perpbot.core.state import MarketState
from tests.shared_data import shared_root

D = Decimal
NS = 1_000_000_000
T0 = 1_723_161_255 * NS
SCORE_FIELDS = ("momentum", "momentum_fast", "momentum_slow", "volume", "volatility", "orderbook", "funding")


def make_state(ticker: str = "BTC-USD") -> MarketState:
    return MarketState(Market(ticker, 0, "0.01", "0.001"))


def feed(state: MarketState, engine: SignalEngine, ev) -> None:
    state.apply(ev)
    engine.on_event(state, ev)


def quote(ts: int, mid: float, ticker: str = "BTC-USD", half_spread: float = 0.05) -> Quote:
    bid = D(f"{mid - half_spread:.2f}")
    ask = D(f"{mid + half_spread:.2f}")
    return Quote(ticker, ts, bid, D("1"), ask, D("1"))


def random_walk(
    state: MarketState,
    engine: SignalEngine,
    *,
    start_ns: int,
    seconds: int,
    price: float,
    drift_per_s: float = 0.0,
    sigma_per_s: float = 0.0002,
    trades_per_s: int = 2,
    trade_size: str = "0.01",
    seed: int = 1,
) -> float:
    """Quotes every 250 ms along a geometric random walk, plus trades; returns the last price."""
    rng = random.Random(seed)
    step = 0.25
    for i in range(int(seconds / step)):
        ts = start_ns + int(i * step * NS)
        price *= math.exp(drift_per_s * step + sigma_per_s * math.sqrt(step) * rng.gauss(0, 1))
        feed(state, engine, quote(ts, price, state.ticker))
        if i % max(1, int(1 / (step * trades_per_s))) == 0:
            feed(state, engine, Trade(state.ticker, ts + 1, D(f"{price:.2f}"), D(trade_size), Side.BUY))
    return price


def assert_bounded(sc: Scores) -> None:
    for name in SCORE_FIELDS:
        v = getattr(sc, name)
        assert 0.0 <= v <= 100.0, f"{name} = {v}"
        assert math.isfinite(v)


# ---------------------------------------------------------------------------
# squashing
# ---------------------------------------------------------------------------


def test_squash_and_ratio_score_shapes():
    assert squash(0.0, 2.0) == 50.0
    assert squash(10.0, 2.0) > 99 and squash(-10.0, 2.0) < 1
    # k = 2 on ln R is exactly 100 R / (1 + R)
    for r in (0.1, 0.5, 1.0, 3.0, 10.0):
        assert ratio_score(r, 2.0) == pytest.approx(100 * r / (1 + r))
    assert ratio_score(0.0, 2.0) == 0.0
    assert ratio_score(float("inf"), 2.0) == 50.0


# ---------------------------------------------------------------------------
# each score moves the right way
# ---------------------------------------------------------------------------


def test_momentum_up_trend_above_50_and_down_trend_below_50():
    up, up_engine = make_state(), SignalEngine()
    random_walk(up, up_engine, start_ns=T0, seconds=600, price=100.0, drift_per_s=0.0001)
    down, down_engine = make_state(), SignalEngine()
    random_walk(down, down_engine, start_ns=T0, seconds=600, price=100.0, drift_per_s=-0.0001)
    flat, flat_engine = make_state(), SignalEngine()
    random_walk(flat, flat_engine, start_ns=T0, seconds=600, price=100.0, drift_per_s=0.0)

    assert up.scores.warm and down.scores.warm
    assert up.scores.momentum_fast > 60 and up.scores.momentum_slow > 65 and up.scores.momentum > 65
    assert down.scores.momentum_fast < 40 and down.scores.momentum_slow < 35 and down.scores.momentum < 35
    assert 25 < flat.scores.momentum < 75
    # the composite is the configured blend of fast and slow
    s = up.scores
    assert s.momentum == pytest.approx(0.5 * s.momentum_fast + 0.5 * s.momentum_slow)


def test_fast_momentum_reacts_before_slow_momentum():
    state, engine = make_state(), SignalEngine()
    p = random_walk(state, engine, start_ns=T0, seconds=600, price=100.0, drift_per_s=0.0001)
    assert state.scores.momentum_slow > 60
    # sharp reversal for 45 s: fast turns bearish while slow still remembers the up-trend
    random_walk(state, engine, start_ns=T0 + 600 * NS, seconds=45, price=p, drift_per_s=-0.0004, seed=2)
    assert state.scores.momentum_fast < 35
    assert state.scores.momentum_slow > state.scores.momentum_fast + 15


def test_volume_score_is_relative_to_the_markets_own_baseline():
    state, engine = make_state(), SignalEngine()
    p = random_walk(state, engine, start_ns=T0, seconds=900, price=100.0, trades_per_s=2, trade_size="0.01")
    base = state.scores.volume
    assert 40 < base < 60
    # five times the usual size for one minute: busier than usual
    p = random_walk(state, engine, start_ns=T0 + 900 * NS, seconds=60, price=p, trades_per_s=2, trade_size="0.05", seed=3)
    assert state.scores.volume > 70
    assert state.scores.volume_ratio > 2
    # then almost nothing for two minutes: quieter than usual
    random_walk(state, engine, start_ns=T0 + 960 * NS, seconds=120, price=p, trades_per_s=2, trade_size="0.001", seed=4)
    assert state.scores.volume < 30


def test_volume_score_does_not_depend_on_units():
    """A market trading 1000x the size with the same pattern scores the same."""
    a, ea = make_state(), SignalEngine()
    b, eb = make_state(), SignalEngine()
    random_walk(a, ea, start_ns=T0, seconds=300, price=100.0, trade_size="0.01")
    random_walk(b, eb, start_ns=T0, seconds=300, price=100.0, trade_size="10")
    assert a.scores.volume == pytest.approx(b.scores.volume, abs=1e-6)


def test_volatility_score_rises_when_the_market_gets_turbulent():
    state, engine = make_state(), SignalEngine()
    p = random_walk(state, engine, start_ns=T0, seconds=900, price=100.0, sigma_per_s=0.0001)
    calm = state.scores.volatility
    assert 35 < calm < 65
    random_walk(state, engine, start_ns=T0 + 900 * NS, seconds=90, price=p, sigma_per_s=0.0006, seed=5)
    assert state.scores.volatility > 75
    assert state.scores.volatility_ratio > 3


def _book(state, engine, ts, bid_sizes, ask_sizes, bid=D("100.00"), tick=D("0.01"), spread_ticks=1):
    bids = tuple((bid - i * tick, D(s)) for i, s in enumerate(bid_sizes))
    ask0 = bid + spread_ticks * tick
    asks = tuple((ask0 + i * tick, D(s)) for i, s in enumerate(ask_sizes))
    feed(state, engine, BookSnapshot(state.ticker, ts, bids, asks))


def _hold_book(state, engine, seconds, bid_sizes, ask_sizes, **kw):
    for i in range(seconds * 2):
        _book(state, engine, T0 + i * NS // 2, bid_sizes, ask_sizes, **kw)


def test_orderbook_bid_heavy_above_50_ask_heavy_below_50():
    bid_heavy, e1 = make_state(), SignalEngine()
    _hold_book(bid_heavy, e1, 30, ["5"] * 10, ["1"] * 10)
    ask_heavy, e2 = make_state(), SignalEngine()
    _hold_book(ask_heavy, e2, 30, ["1"] * 10, ["5"] * 10)
    balanced, e3 = make_state(), SignalEngine()
    _hold_book(balanced, e3, 30, ["2"] * 10, ["2"] * 10)
    # I = (50 - 10) / 60; spread 0.01 on 100 = 1 bp -> q_spread = 1 / (1 + 1/5); full depth
    expected = 50 + 50 * (4 / 6) / 1.2
    assert bid_heavy.scores.orderbook == pytest.approx(expected, rel=1e-4)
    assert ask_heavy.scores.orderbook == pytest.approx(100 - expected, rel=1e-4)
    assert bid_heavy.scores.orderbook > 75 and ask_heavy.scores.orderbook < 25
    assert balanced.scores.orderbook == pytest.approx(50.0)
    assert bid_heavy.scores.imbalance == pytest.approx(4 / 6)
    assert bid_heavy.scores.spread_bps == pytest.approx(1.0, rel=1e-3)
    assert bid_heavy.scores.book_known


def test_orderbook_only_top_n_levels_count():
    cfg = SignalConfig(book_levels=3)
    state, engine = make_state(), SignalEngine(cfg)
    # 3 balanced levels near the touch, a wall of bids deeper: ignored with N = 3
    _hold_book(state, engine, 10, ["1", "1", "1", "100"], ["1", "1", "1", "1"])
    assert state.scores.imbalance == pytest.approx(0.0)


def test_a_wide_spread_shrinks_the_orderbook_signal():
    tight, e1 = make_state(), SignalEngine()
    _hold_book(tight, e1, 30, ["5"] * 10, ["1"] * 10, spread_ticks=1)
    wide, e2 = make_state(), SignalEngine()
    _hold_book(wide, e2, 30, ["5"] * 10, ["1"] * 10, spread_ticks=100)  # 1.00 on 100: ~100 bps
    assert wide.scores.spread_bps == pytest.approx(100.0, rel=0.01)
    assert 50 < wide.scores.orderbook < tight.scores.orderbook - 20


def test_a_thin_book_shrinks_the_orderbook_signal():
    state, engine = make_state(), SignalEngine()
    _hold_book(state, engine, 60, ["50"] * 10, ["10"] * 10)
    thick = state.scores.orderbook
    # same imbalance at a tenth of the usual depth, for 30 s
    for i in range(60):
        _book(state, engine, T0 + 60 * NS + i * NS // 2, ["5"] * 10, ["1"] * 10)
    assert state.scores.imbalance == pytest.approx(4 / 6)
    assert 50 < state.scores.orderbook < thick - 10


def test_orderbook_uses_the_quote_when_there_is_no_book():
    state, engine = make_state(), SignalEngine()
    for i in range(40):
        feed(state, engine, Quote("BTC-USD", T0 + i * NS // 2, D("99.99"), D("9"), D("100.01"), D("1")))
    assert state.scores.book_known
    assert state.scores.imbalance == pytest.approx(0.8)
    assert state.scores.orderbook == pytest.approx(50 + 50 * 0.8 / (1 + 2 / 5), rel=1e-3)  # 2 bp spread


def test_book_deltas_are_rescored_at_most_every_book_interval():
    state, engine = make_state(), SignalEngine(SignalConfig(book_interval_ms=500))
    _book(state, engine, T0, ["1"] * 10, ["1"] * 10)
    assert state.scores.imbalance == 0.0
    # a delta 100 ms later makes the book bid-heavy: not rescored yet (throttled)
    feed(state, engine, BookDelta("BTC-USD", T0 + 100_000_000, bids=((D("100.00"), D("50")),)))
    assert state.scores.imbalance == 0.0
    # the next event after the 500 ms grid point rescores
    feed(state, engine, BookDelta("BTC-USD", T0 + 600_000_000, bids=((D("99.99"), D("1")),)))
    assert state.scores.imbalance > 0.5


def test_funding_score_is_attractiveness_for_a_long():
    state, engine = make_state(), SignalEngine()
    feed(state, engine, OraclePrice("BTC-USD", T0, D("100")))
    assert state.scores is None or state.scores.funding == 50.0
    feed(state, engine, FundingRate("BTC-USD", T0, D("0.0001")))  # longs pay 1 bp/h
    assert state.scores.funding_known
    assert state.scores.funding == pytest.approx(50 - 50 * math.tanh(1.0))
    assert state.scores.funding < 15
    feed(state, engine, FundingRate("BTC-USD", T0 + NS, D("-0.00005")))  # shorts pay: good for longs
    assert state.scores.funding > 70
    assert state.scores.funding_rate_1h == pytest.approx(-0.00005)


def test_funding_falls_back_to_the_last_settled_rate():
    state, engine = make_state(), SignalEngine()
    feed(state, engine, FundingRate("BTC-USD", T0, D("0.00002"), settled=True, interval_h=8))
    assert state.scores.funding_known and state.scores.funding < 50
    no_rate, e2 = make_state(), SignalEngine()
    random_walk(no_rate, e2, start_ns=T0, seconds=30, price=100.0)
    assert no_rate.scores.funding == 50.0 and not no_rate.scores.funding_known


# ---------------------------------------------------------------------------
# warm-up, bounds, memory
# ---------------------------------------------------------------------------


def test_scores_become_warm_after_warmup_seconds_of_event_time():
    state, engine = make_state(), SignalEngine(SignalConfig(warmup_s=60))
    random_walk(state, engine, start_ns=T0, seconds=50, price=100.0)
    assert state.scores is not None and not state.scores.warm
    random_walk(state, engine, start_ns=T0 + 50 * NS, seconds=20, price=100.0, seed=9)
    assert state.scores.warm
    assert state.scores.mode == "ticks"
    assert state.scores.samples >= 60


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=5_000),  # ms since the previous event
            st.floats(min_value=-0.2, max_value=0.2),  # log return
            st.sampled_from(["quote", "trade", "book", "funding", "bar"]),
            st.integers(min_value=0, max_value=10_000),  # a size in thousandths
        ),
        min_size=1,
        max_size=200,
    )
)
def test_every_score_stays_within_0_and_100(steps):
    state, engine = make_state(), SignalEngine()
    ts, price = T0, 100.0
    for dt_ms, r, kind, size in steps:
        ts += dt_ms * 1_000_000
        price = min(max(price * math.exp(r), 0.05), 1e7)
        px = D(f"{price:.2f}")
        sz = D(size) / 1000
        if kind == "quote":
            ev = Quote("BTC-USD", ts, px, sz, px + D("0.01"), D("0.5"))
        elif kind == "trade":
            ev = Trade("BTC-USD", ts, px, sz or D("0.001"), Side.SELL)
        elif kind == "book":
            ev = BookSnapshot("BTC-USD", ts, ((px, sz),), ((px + D("0.01"), D("0.5")),))
        elif kind == "funding":
            ev = FundingRate("BTC-USD", ts, D(size - 5000) / 10_000_000)
        else:
            ev = Bar("BTC-USD", ts, px, px, px, px, sz, 60)
        feed(state, engine, ev)
        if state.scores is not None:
            assert_bounded(state.scores)


def test_memory_does_not_grow_with_events():
    state, engine = make_state(), SignalEngine()
    p = random_walk(state, engine, start_ns=T0, seconds=120, price=100.0)  # fill ring buffers
    assert not hasattr(engine, "__dict__")  # slots only: a fixed set of scalars
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        random_walk(state, engine, start_ns=T0 + 120 * NS, seconds=1200, price=p, seed=7)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    flt = [tracemalloc.Filter(True, str(Path(signals.__file__).parent / "*.py"))]  # the whole package
    grown = sum(s.size_diff for s in after.filter_traces(flt).compare_to(before.filter_traces(flt), "filename"))
    assert grown < 2_000, f"core/signals/ allocations grew by {grown} bytes over 9,600 events"


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="momentum_fast_half_life_s"):
        SignalConfig(momentum_fast_half_life_s=600, momentum_slow_half_life_s=300)
    with pytest.raises(ValueError, match="book_levels"):
        SignalConfig(book_levels=0)
    with pytest.raises(ValueError, match="volume_k"):
        SignalConfig(volume_k=-1)
    cfg = SignalConfig(momentum_fast_half_life_s=D("15"), warmup_s="30")  # TOML Decimals / CLI strings
    assert cfg.momentum_fast_half_life_s == 15.0 and cfg.warmup_s == 30.0


# ---------------------------------------------------------------------------
# bar-only data
# ---------------------------------------------------------------------------


def _bars(state, engine, n, start_price, drift, start_ns=T0, interval_s=300, volume="10", seed=11):
    rng = random.Random(seed)
    p = start_price
    for i in range(n):
        o = p
        p *= math.exp(drift + 0.002 * rng.gauss(0, 1))
        hi, lo = max(o, p) * 1.001, min(o, p) * 0.999
        feed(
            state,
            engine,
            Bar(state.ticker, start_ns + (i + 1) * interval_s * NS, D(f"{o:.2f}"), D(f"{hi:.2f}"),
                D(f"{lo:.2f}"), D(f"{p:.2f}"), D(volume), interval_s),
        )
    return p


def test_bar_only_data_scores_trend_volume_and_stays_neutral_on_the_book():
    up, e1 = make_state(), SignalEngine()
    _bars(up, e1, 60, 100.0, 0.003)
    down, e2 = make_state(), SignalEngine()
    _bars(down, e2, 60, 100.0, -0.003)
    assert up.scores.mode == "bars" and up.scores.warm
    assert up.scores.momentum > 65 and down.scores.momentum < 35
    assert up.scores.orderbook == 50.0 and not up.scores.book_known
    # a burst of volume on the last bars
    _bars(up, e1, 3, 130.0, 0.0, start_ns=T0 + 60 * 300 * NS, volume="60", seed=12)
    assert up.scores.volume > 70


def test_bar_warmup_counts_bars():
    state, engine = make_state(), SignalEngine(SignalConfig(warmup_bars=10))
    _bars(state, engine, 9, 100.0, 0.0)
    assert not state.scores.warm
    _bars(state, engine, 1, 100.0, 0.0, start_ns=T0 + 9 * 300 * NS)
    assert state.scores.warm


def test_ticks_supersede_bars():
    state, engine = make_state(), SignalEngine()
    _bars(state, engine, 30, 100.0, 0.003)
    assert state.scores.mode == "bars"
    random_walk(state, engine, start_ns=T0 + 31 * 300 * NS, seconds=10, price=100.0)
    assert state.scores.mode == "ticks"
    samples = state.scores.samples
    _bars(state, engine, 1, 100.0, 0.0, start_ns=T0 + 40 * 300 * NS)  # a bar after ticks: ignored
    assert state.scores.samples == samples


# ---------------------------------------------------------------------------
# real data
# ---------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DIRS = (REPO / "examples" / "data" / "binance_usdm", shared_root() / "tick_l2" / "hftbacktest_binance" / "binance_usdm")
BARS_DIRS = (REPO / "examples" / "data" / "bars", shared_root() / "bars" / "pdr_backend_binance_spot_5m")
TICKERS = {"BTCUSDT": "BTC-USD", "ETHUSDT": "ETH-USD"}


def _find(dirs, pattern):
    for d in dirs:
        found = sorted(d.glob(pattern)) if d.is_dir() else []
        if found:
            return found
    return []


def binance_sample_events():
    files = _find(SAMPLE_DIRS, "*usdt_20240808.gz")
    if len(files) < 2:
        pytest.skip("the Binance USD-M L2 sample (examples/data/binance_usdm) is not present")
    from perpbot.exchanges.replay.binance import BinanceRecording

    def per_file(f):
        rec = BinanceRecording(f, TICKERS.get)
        for _, batch in rec.events():
            yield from batch

    return heapq.merge(*(per_file(f) for f in files), key=lambda e: e.ts_ns)


def test_real_binance_l2_sample_scores_are_warm_bounded_and_differ_between_markets():
    states = {t: MarketState(Market(t, 0, "0.01", "0.001")) for t in TICKERS.values()}
    engines = {t: SignalEngine() for t in states}
    history = {t: [] for t in states}
    next_check = dict.fromkeys(states, 0)
    n = 0
    for ev in binance_sample_events():
        stt = states.get(ev.ticker)
        if stt is None:
            continue
        stt.apply(ev)
        engines[ev.ticker].on_event(stt, ev)
        n += 1
        sc = stt.scores
        if sc is not None and ev.ts_ns >= next_check[ev.ticker]:
            next_check[ev.ticker] = ev.ts_ns + 5 * NS
            assert_bounded(sc)
            history[ev.ticker].append(attrs.evolve(sc))
    assert n > 150_000
    btc, eth = states["BTC-USD"].scores, states["ETH-USD"].scores
    for sc in (btc, eth):
        assert sc.warm and sc.mode == "ticks" and sc.book_known
        assert sc.samples > 300  # one per second of a ~6-minute recording
        assert 0 < sc.spread_bps < 1  # Binance BTC/ETH: a fraction of a basis point
        assert_bounded(sc)
    # the two markets are scored independently: their paths differ
    diffs = [abs(a.momentum - b.momentum) for a, b in zip(history["BTC-USD"], history["ETH-USD"]) if a.warm]
    assert max(diffs) > 10
    assert btc.spread_bps != eth.spread_bps
    # BTC fell about 0.3 % over the first four minutes of the recording: its momentum said so
    assert min(s.momentum_slow for s in history["BTC-USD"] if s.warm) < 30
    # scores actually move over the run (not stuck at 50)
    for t in states:
        vals = [s.orderbook for s in history[t]]
        assert max(vals) - min(vals) > 10
        assert max(s.volume for s in history[t]) > 55


def _bar_events(path: Path):
    try:
        from perpbot.exchanges.replay.bars import BarFile
    except ImportError:
        BarFile = None
    select = {"BTC": "BTC-USD", "ETH": "ETH-USD"}
    if BarFile is not None:
        rec = BarFile(path, lambda s: next((v for k, v in select.items() if k in s.upper()), None))
        for _, batch in rec.events():
            yield from batch
        return
    with gzip.open(path, "rt") as fh:
        header = fh.readline().strip().split(",")
        for line in fh:
            row = line.strip().split(",")
            ts = int(row[0]) * 1_000_000 + 300 * NS  # open time (ms) -> close time (ns)
            for base, ticker in select.items():
                i = next(j for j, h in enumerate(header) if f"{base}/" in h and h.endswith(":open"))
                o, h, lo, c, v = (D(x) for x in row[i : i + 5])
                yield Bar(ticker, ts, o, h, lo, c, v, 300)


def test_real_bar_only_data_is_scored_in_bar_mode():
    files = _find(BARS_DIRS, "*BTC-ETH*.csv.gz")
    if not files:
        pytest.skip("the Binance 5-minute BTC/ETH bar sample (examples/data/bars) is not present")
    states = {t: MarketState(Market(t, 0, "0.01", "0.001")) for t in ("BTC-USD", "ETH-USD")}
    engines = {t: SignalEngine() for t in states}
    seen = {t: [] for t in states}
    for ev in _bar_events(files[0]):
        if type(ev) is not Bar or ev.ticker not in states:
            continue
        feed(states[ev.ticker], engines[ev.ticker], ev)
        seen[ev.ticker].append(states[ev.ticker].scores.momentum)
        if len(seen[ev.ticker]) >= 2000:
            break
    for t, stt in states.items():
        sc = stt.scores
        assert sc.mode == "bars" and sc.warm and not sc.book_known
        assert_bounded(sc)
        assert max(seen[t]) - min(seen[t]) > 20


def test_composite_is_only_known_once_a_strategy_set_it():
    sc = Scores()
    assert not hasattr(sc, "composite")
    assert getattr(sc, "composite", None) is None
    sc.strategy_composite = 71.5
    assert sc.composite == 71.5
    assert sc.as_dict()["strategy_composite"] == 71.5


def test_other_events_are_ignored_safely():
    from perpbot.core.model import FeedStatus, MarketInfo

    state, engine = make_state(), SignalEngine()
    feed(state, engine, FeedStatus("BTC-USD", T0, healthy=False, reason="waiting for book snapshot"))
    feed(state, engine, MarketInfo("BTC-USD", T0, Market("BTC-USD", 0, "0.01", "0.001")))
    feed(state, engine, OraclePrice("BTC-USD", T0, D("100")))
    assert state.scores is None or (not state.scores.warm and state.scores.funding == 50.0)
