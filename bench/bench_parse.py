"""Benchmark: the replay feed's Binance parse alone, in CPU time, fast line reading on and off.

Run ``python bench/bench_parse.py`` from the repository root.

:class:`perpbot.exchanges.replay.feed.ReplayFeed` on the embedded BTC+ETH sample
(``examples/data/binance_usdm``: gunzip, line split, JSON decode or the fast line pattern,
Decimal conversion, validation, sync checks, event objects, merge of the two files), no
consumer. Figure: events per second with the benchmark's unit (level entries + trades +
quotes, 1,027,653 for the sample), median of :data:`RUNS` runs, in CPU seconds of this
process (``time.process_time``: less noisy than wall time on a shared machine) and in wall
seconds. The runs alternate ``BinanceRecording.fast_lines`` on and off (the exact path:
every line through orjson), so both figures see the same machine. Target (issue 11, target
1's parse share): :data:`TARGET_EPS` events/s, twice the parse before the work on it.

``--once`` prints one JSON line.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perpbot.exchanges.replay.binance import BinanceRecording  # noqa: E402
from perpbot.exchanges.replay.feed import ReplayFeed  # noqa: E402

RUNS = 5
#: 2x the ~600k events/s (CPU) the parse gave before issue 11's work on it
TARGET_EPS = 1_200_000


def one(fast: bool) -> tuple[float, float, int]:
    """One parse of the sample: ``(cpu seconds, wall seconds, events)``."""
    BinanceRecording.fast_lines = fast
    try:
        feed = ReplayFeed({}, None)
        gc.collect()
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in feed.iter_batches():
            pass
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    finally:
        BinanceRecording.fast_lines = True
    return cpu, wall, feed.stats()["events"]


def run(runs: int = RUNS) -> dict:
    """Alternate fast and exact runs; medians in a dict (``*_eps``: events per second)."""
    got: dict[bool, list] = {True: [], False: []}
    for _ in range(runs):
        for fast in (True, False):
            got[fast].append(one(fast))
    events = got[True][0][2]
    out = {"events": events, "target_eps": TARGET_EPS}
    for fast, name in ((True, "fast"), (False, "exact")):
        cpu = statistics.median(r[0] for r in got[fast])
        wall = statistics.median(r[1] for r in got[fast])
        out[f"{name}_cpu_s"] = cpu
        out[f"{name}_wall_s"] = wall
        out[f"{name}_eps_cpu"] = events / cpu
        out[f"{name}_eps_wall"] = events / wall
    return out


def main() -> int:
    r = run()
    if "--once" in sys.argv:
        print(json.dumps(r))
        return 0
    ok = r["fast_eps_cpu"] >= r["target_eps"]
    print(
        f"replay parse alone (BTC+ETH sample, {r['events']:,} events), median of {RUNS}: "
        f"{r['fast_eps_cpu']:,.0f} events/s CPU ({r['fast_eps_wall']:,.0f} wall) "
        f"(target >= {r['target_eps']:,}: {'OK' if ok else 'BELOW TARGET'}); "
        f"every line through JSON: {r['exact_eps_cpu']:,.0f} events/s CPU ({r['exact_eps_wall']:,.0f} wall)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
