"""Whole-pipeline benchmark: replay the BTC+ETH Binance L2 sample through the bot.

Feed parse -> market state -> signals -> sniper -> sizer -> risk -> paper fills,
exactly as ``runbot.py --exchange paper --strategy sniper --ticker BTC,ETH``
runs it (journal, report and progress bar off: they are I/O, not the pipeline).
Each run is a fresh subprocess so peak RSS is that run's own.

    python bench/bench_pipeline.py            # median of 3 runs
    python bench/bench_pipeline.py --once     # one run, JSON on stdout (used by the runner)
"""

from __future__ import annotations

import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: issue 11: 2.0x nautilus_trader's parse + run (logging bypassed), 263,902 events/s in its harness README
#: (``bench/run.py --nautilus`` measures nautilus in the same run instead)
TARGET_EPS = 2 * 263_902
TARGET_RSS_MB = 100


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). ``ru_maxrss`` is not used: Linux carries it across
    fork+exec, so a child would report its parent's high-water mark."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def once() -> dict:
    sys.path.insert(0, str(ROOT))
    from loguru import logger

    logger.remove()  # logging is bypassed, as in the reference figures
    from perpbot.core.bot import TradingBot
    from perpbot.core.config import BotConfig
    from perpbot.core.plugins import PluginManager

    cfg = BotConfig(
        exchange=("paper",),
        strategy="sniper",
        tickers=("BTC-USD", "ETH-USD"),
        feed="replay",
        journal_enabled=False,
        report=False,
        progress=False,
        state_dir=Path("/tmp/perpbot-bench"),
    )
    bot = TradingBot(cfg, PluginManager(load_entry_points=False))
    t0 = time.perf_counter()
    c0 = time.process_time()
    m0 = time.thread_time()
    summary = asyncio.run(bot.run())
    main_cpu = time.thread_time() - m0  # this thread's CPU: the gzip reader's worker threads excluded
    cpu = time.process_time() - c0
    wall = time.perf_counter() - t0
    rss_mb = peak_rss_mb()
    return {
        "events": summary.events_read,
        "seconds": wall,
        "events_per_s": summary.events_read / wall,
        "events_per_s_cpu": summary.events_read / cpu,
        "events_per_s_main_cpu": summary.events_read / main_cpu,
        "fills": sum(m.fills for m in summary.markets),
        "peak_rss_mb": rss_mb,
    }


def run(repeats: int = 3) -> dict:
    results = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, __file__, "--once"], capture_output=True, text=True, check=True, cwd=ROOT)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "events": results[0]["events"],
        "fills": results[0]["fills"],
        "events_per_s": statistics.median(r["events_per_s"] for r in results),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
        "runs": results,
    }


def main() -> None:
    if "--once" in sys.argv:
        print(json.dumps(once()))
        return
    r = run()
    print(f"whole pipeline (sniper + paper) on {r['events']:,} events, {r['fills']} fills:")
    print(f"  {r['events_per_s']:>12,.0f} events/s    target >= {TARGET_EPS:,}   {'OK' if r['events_per_s'] >= TARGET_EPS else 'BELOW TARGET'}")
    print(f"  {r['peak_rss_mb']:>12,.1f} MB peak RSS target <= {TARGET_RSS_MB}   {'OK' if r['peak_rss_mb'] <= TARGET_RSS_MB else 'ABOVE TARGET'}")


if __name__ == "__main__":
    main()
