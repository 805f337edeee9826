"""Sweep throughput on embedded Ray: cells per second with 1 and 2 workers, and parallel efficiency.

Each cell is an ordinary backtest (``perpbot.plugins.research.cells.run_cell``: the sniper on
four days of the repository's 5-minute bar sample, ``examples/data/bars``), run as a Ray task
exactly as ``runbot.py sweep`` runs it. Ray starts once (``num_cpus=2``) and every worker is
warmed up (imports done) before timing, so the figures are the sweep's steady state.

Parallel efficiency = (cells/s with 2 workers) / (2 x cells/s with 1 worker). Target >= 0.8
on this 2-core machine (issue 14, item 5); other processes on the machine lower it.

    python bench/bench_sweep.py [--cells 8]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_EFFICIENCY = 0.8
BARS = ROOT / "examples/data/bars/merged_ohlcv_df_BTC-ETH_2024-02-01_to_2024-03-08.csv.gz"
START_NS = 1706745600 * 10**9
DAY_NS = 86400 * 10**9


def _tasks(folder: Path, n: int, tag: str) -> list[dict]:
    from perpbot.plugins.research.cells import cell_key
    from perpbot.plugins.research.commands import backtest_opts
    from perpbot.plugins.research.windows import cut

    bars = folder / "bars.csv"
    if not bars.exists():
        cut(BARS, bars, START_NS, START_NS + 4 * DAY_NS)
    opts = backtest_opts(strategy="sniper", ticker="BTC,ETH", data=[str(bars)], decision_interval="300")
    out = []
    for i in range(n):
        params = {"entry_threshold": str(55 + i % 10)}
        out.append({"key": cell_key(tag, i, params), "phase": tag, "window": i, "params": params, "opts": opts,
                    "files": None, "funding_files": None, "state_dir": str(folder / "cells")})
    return out


def measure(n: int) -> dict:
    """Run ``n`` cells with 1 then 2 workers; :returns: cells/s of each and the efficiency."""
    import ray

    from perpbot.plugins.research.engine import RayEngine

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    engine = RayEngine(workers=2)
    engine.start()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        engine.run(_tasks(folder, 4, "warm"), rows.append, 2)  # both workers import perpbot first
        out, inside = {}, {}
        for workers in (1, 2):
            rows.clear()
            t0 = time.perf_counter()
            engine.run(_tasks(folder, n, f"w{workers}"), rows.append, workers)
            wall = time.perf_counter() - t0
            failed = [r["error"] for r in rows if r["status"] != "ok"]
            if failed:
                raise SystemExit(f"bench_sweep: a cell failed: {failed[0]}")
            out[workers] = n / wall
            inside[workers] = sum(float(r["summary"]["wall_seconds"]) for r in rows) / n
    return {"cells": n, "cps_1": out[1], "cps_2": out[2], "efficiency": out[2] / (2 * out[1]),
            "run_s_1": inside[1], "run_s_2": inside[2], "load": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> None:
    """Print the figures beside the target (used by ``bench/run.py``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=8)
    args = ap.parse_args(argv if argv is not None else [])
    sys.path.insert(0, str(ROOT))
    r = measure(args.cells)
    print(f"sweep cells/s, 1 worker    {r['cps_1']:8.2f}  ({r['cells']} cells: sniper, 4 days of 5-minute bars)")
    print(f"sweep cells/s, 2 workers   {r['cps_2']:8.2f}")
    print(f"one cell's run, s          {r['run_s_1']:8.2f} alone, {r['run_s_2']:.2f} beside another "
          f"(machine load average {r['load']:.1f} on {os.cpu_count()} cores: other processes share them)")
    verdict = "ok" if r["efficiency"] >= TARGET_EFFICIENCY else "BELOW TARGET"
    print(f"parallel efficiency        {r['efficiency']:8.2f}  target >= {TARGET_EFFICIENCY}  {verdict}")


if __name__ == "__main__":
    main(sys.argv[1:])
