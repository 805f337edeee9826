"""Benchmark: the analysis hub's cost per market event (issue 15 acceptance: at most 20 us on average).

Run ``python bench/bench_analysis.py`` from the repository root.

- **ticks**: the Binance USD-M BTCUSDT + ETHUSDT recording (``examples/data/binance_usdm``:
  depth diffs, trades, bookTicker quotes) is parsed once into the feed's events. Each market
  gets a :class:`~perpbot.core.state.MarketState` and an :class:`~perpbot.core.analysis.AnalysisHub`
  with the six built-in analyzers. Timed twice over every event: ``state.apply(ev)`` alone, then
  ``state.apply(ev)`` + ``hub.on_event(state, ev)``; the analysis cost per event is the difference
  divided by the events (median of 3 runs).
- **bars**: the same on the embedded five-week 5-minute BTC+ETH bars (``examples/data/bars``).
- **confluence**: one :meth:`AnalysisHub.confluence` (six interpretations combined, with reasons),
  the per-decision cost, after the tick run.

``run()`` returns the figures as a dict for ``bench/run.py``.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perpbot.core.analysis import build_hubs  # noqa: E402
from perpbot.core.state import MarketState  # noqa: E402
from perpbot.exchanges.replay.feed import ReplayFeed  # noqa: E402
from perpbot.plugins.analysis import BUILTIN  # noqa: E402

TARGET_US_PER_EVENT = 20.0
RUNS = 3
ROOT = Path(__file__).resolve().parents[1]
BARS = ROOT / "examples/data/bars/merged_ohlcv_df_BTC-ETH_2024-02-01_to_2024-03-08.csv.gz"


def events(options: dict) -> tuple[list, dict]:
    """Every market event of a replay (options as the ``[feed]`` table) and its markets."""
    feed = ReplayFeed(options, None)
    markets = dict(feed.markets())
    out = [ev for _, batch in feed.iter_batches() for ev in batch if ev.ticker in markets]
    return out, markets


def _pass(evs: list, markets: dict, analyse: bool) -> tuple[float, dict]:
    states = {t: MarketState(m) for t, m in markets.items()}
    hubs = build_hubs(markets, BUILTIN)
    gc.collect()
    gc.disable()
    try:
        t0 = time.process_time()
        if analyse:
            for ev in evs:
                st = states[ev.ticker]
                st.apply(ev)
                hubs[ev.ticker].on_event(st, ev)
        else:
            for ev in evs:
                states[ev.ticker].apply(ev)
        return time.process_time() - t0, hubs
    finally:
        gc.enable()


def per_event_us(evs: list, markets: dict) -> tuple[float, dict]:
    """Median analysis cost per event (us) over :data:`RUNS` runs, and the last run's hubs."""
    costs = []
    hubs: dict = {}
    for _ in range(RUNS):
        base, _ = _pass(evs, markets, False)
        full, hubs = _pass(evs, markets, True)
        costs.append(max(0.0, full - base) / len(evs) * 1e6)
    return statistics.median(costs), hubs


def confluence_us(hubs: dict, n: int = 2000) -> float:
    """Cost of one confluence (cache defeated: a new timestamp per call), us."""
    hub = next(iter(hubs.values()))
    t0 = time.process_time()
    for i in range(n):
        hub.confluence(i + 1)
    return (time.process_time() - t0) / n * 1e6


def run() -> dict:
    """The figures: ``{"ticks_us": .., "ticks_events": .., "bars_us": .., "bars_events": .., "confluence_us": ..}``."""
    tick_evs, tick_markets = events({})
    ticks_us, hubs = per_event_us(tick_evs, tick_markets)
    bar_evs, bar_markets = events({"files": [str(BARS)]})
    bars_us, _ = per_event_us(bar_evs, bar_markets)
    return {"ticks_us": ticks_us, "ticks_events": len(tick_evs), "bars_us": bars_us, "bars_events": len(bar_evs),
            "confluence_us": confluence_us(hubs)}


def main() -> None:
    """Print each figure beside its target."""
    r = run()
    ok = "ok" if r["ticks_us"] <= TARGET_US_PER_EVENT else "MISSED"
    print(f"analysis, ticks (Binance BTC+ETH, {r['ticks_events']:,} events): {r['ticks_us']:.2f} us/event "
          f"(target <= {TARGET_US_PER_EVENT:g} us) {ok}")
    ok = "ok" if r["bars_us"] <= TARGET_US_PER_EVENT else "MISSED"
    print(f"analysis, bars (5-min BTC+ETH, {r['bars_events']:,} events): {r['bars_us']:.2f} us/event "
          f"(target <= {TARGET_US_PER_EVENT:g} us) {ok}")
    print(f"confluence of six interpretations, per decision: {r['confluence_us']:.1f} us (no target)")


if __name__ == "__main__":
    main()
