"""The six analyzers on real data: the embedded 5-minute bars with real funding, and the real Binance
L2 + trades recording (both in examples/data, so these run with the shared data hidden too)."""

from __future__ import annotations

import math
from itertools import islice
from pathlib import Path

from perpbot.core.analysis import build_hubs
from perpbot.core.state import MarketState
from perpbot.exchanges.replay.feed import ReplayFeed
from perpbot.plugins.analysis import BUILTIN

REPO = Path(__file__).resolve().parents[3]
BARS = REPO / "examples/data/bars/merged_ohlcv_df_BTC-ETH_2024-02-01_to_2024-03-08.csv.gz"
FUNDING = REPO / "examples/data/funding/funding_binance8h_hyperliquid1h_BTC-ETH_2024-02-01_to_2024-03-08_utc.csv.gz"


def analyse(options, limit=None):
    feed = ReplayFeed(options, None)
    markets = dict(feed.markets())
    states = {t: MarketState(m) for t, m in markets.items()}
    hubs = build_hubs(markets, BUILTIN)
    last = 0
    for _, batch in islice(feed.iter_batches(), limit):
        for ev in batch:
            st = states.get(ev.ticker)
            if st is None:
                continue
            st.apply(ev)
            hubs[ev.ticker].on_event(st, ev)
            last = ev.ts_ns
    return hubs, last


def test_bars_with_funding_give_every_reading_but_the_book():
    hubs, now = analyse({"files": [str(BARS)], "funding_files": [str(FUNDING)]})
    for t, hub in hubs.items():
        got = {i.analyzer: i for i in hub.interpretations(now)}
        assert set(got) == {"technical", "volume", "orderflow", "structure", "sentiment"}, t  # no book on bars
        assert "funding" in got["sentiment"].reason and "estimated from bar closes" in got["orderflow"].reason
        f = hub.features()
        for name in ("technical.rsi", "technical.atr_pct", "volume.rel_volume", "volume.poc_dist", "orderflow.cvd_z",
                     "structure.dist_high_atr", "sentiment.funding_1h"):
            assert math.isfinite(f[name]), (t, name)
        assert 0 <= f["technical.rsi"] <= 100 and 0 < f["technical.atr_pct"] < 0.05
        c = hub.confluence(now)
        assert 0 <= c.score <= 100 and c.total == 5 and all(isinstance(r, str) and r for r in c.reasons)


def test_ticks_give_book_and_trade_readings():
    hubs, now = analyse({}, limit=40_000)  # the Binance BTC+ETH recording: depth, trades, bookTicker
    for t, hub in hubs.items():
        got = {i.analyzer: i for i in hub.interpretations(now)}
        assert {"orderbook", "orderflow"} <= set(got), (t, sorted(got))
        assert "technical" not in got  # six minutes make six 1-minute bars: still warming up (12 needed)
        assert "estimated" not in got["orderflow"].reason  # real trade sides
        f = hub.features()
        assert 0 < f["orderbook.spread_bps"] < 5 and f["orderbook.depth_usd"] > 0
        assert -1 <= f["orderbook.pressure"] <= 1 and -1 <= f["orderflow.imbalance"] <= 1
