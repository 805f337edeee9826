"""All benchmarks, one command: ``python bench/run.py``. Prints each figure beside its target.

    python bench/run.py                                    # nautilus figures from its harness README
    python bench/run.py --nautilus NT_VENV/bin/python      # nautilus measured in this run, interleaved
    python bench/run.py --rounds 5                         # more interleaved rounds (default 3)

Issue 11's targets, against nautilus_trader 1.221.0 on the same events (the embedded
Binance BTC+ETH sample; harness and reference figures in ../shared/tools/nautilus/):

1. full pipeline (perpbot: sniper + paper fills; nautilus: parse + engine run, logging
   bypassed): at least 2.0x nautilus's events/s;
2. L2 book alone (perpbot ``OrderBook`` vs nautilus ``OrderBook`` L2_MBP ``apply_deltas``):
   at least 1.0x nautilus's level entries/s;
3. peak RSS at most 100 MB, and flat from 1M to 4M events (``bench_rss_long``);
5. cost per event flat from 2 to 125 markets (``bench_markets``).

Machines here are shared and noisy: only ratios from one run, interleaved (perpbot,
nautilus, perpbot, ...), mean anything; each measurement is a fresh process.
Other benchmarks (architecture.md, Benchmarks): margin of a 50-position account < 50 us;
sweep on embedded Ray (issue 14): parallel efficiency with 2 workers >= 0.8.
Analysis hub (issue 15): analysis of one market's event <= 20 us on average.
dYdX full-node stream (issue 12): its lead over the indexer, printed (no target).
Event-driven decisions (issue 11.4, ``bench_tick``): tick-to-order p50/p99.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

PIPELINE_RATIO = 2.0
BOOK_RATIO = 1.0
RSS_MB = 100


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _once(script: str) -> dict:
    """Run ``bench/<script>.py --once`` in a fresh process; its last stdout line is JSON."""
    out = subprocess.run([sys.executable, str(HERE / f"{script}.py"), "--once"], capture_output=True, text=True,
                         cwd=HERE.parent)
    if out.returncode != 0:
        raise RuntimeError(f"{script} --once failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def versus_nautilus(nautilus: str | None, rounds: int) -> None:
    """Targets 1-3 (RSS at 1M): perpbot and nautilus interleaved, ``rounds`` times each; medians."""
    anchor = _load("anchor")
    ours: dict[str, list] = {"pipe": [], "pipe_cpu": [], "pipe_main": [], "rss": [], "book": [], "book_cpu": [],
                             "parse": []}
    theirs: dict[str, list] = {"pipe": [], "pipe_cpu": [], "rss": [], "book": [], "book_cpu": []}
    for i in range(rounds):
        p = _once("bench_pipeline")
        ours["pipe"].append(p["events_per_s"])
        ours["pipe_cpu"].append(p["events_per_s_cpu"])
        ours["pipe_main"].append(p["events_per_s_main_cpu"])
        ours["rss"].append(p["peak_rss_mb"])
        if nautilus:
            e = anchor.engine_figures(nautilus)
            theirs["pipe"].append(e["pipeline_events_per_s"])
            theirs["pipe_cpu"].append(e["pipeline_events_per_s_cpu"])
            theirs["rss"].append(e["peak_rss_mb"])
        b = _once("bench_book")
        ours["book"].append(b["book_level_entries_per_s"])
        ours["book_cpu"].append(b["book_level_entries_per_s_cpu"])
        ours["parse"].append(b["parse_events_per_s"])
        if nautilus:
            nb = anchor.book_figures(nautilus)
            theirs["book"].append(nb["book_level_entries_per_s"])
            theirs["book_cpu"].append(nb["book_level_entries_per_s_cpu"])
        print(f"  round {i + 1}/{rounds}: pipeline {ours['pipe'][-1]:,.0f} ev/s"
              + (f" (nautilus {theirs['pipe'][-1]:,.0f})" if nautilus else "")
              + f", book {ours['book'][-1]:,.0f} levels/s"
              + (f" (nautilus {theirs['book'][-1]:,.0f})" if nautilus else ""), flush=True)
    if nautilus:
        ref = {"pipe": statistics.median(theirs["pipe"]), "book": statistics.median(theirs["book"]),
               "rss": max(theirs["rss"])}
        src = f"nautilus_trader measured in this run ({rounds} interleaved rounds, medians)"
    else:
        f = anchor.README_FIGURES
        ref = {"pipe": f["pipeline_events_per_s"], "book": f["book_level_entries_per_s"], "rss": f["peak_rss_mb"]}
        src = "nautilus_trader figures from ../shared/tools/nautilus/README.md (not measured here; pass --nautilus)"
    pipe = statistics.median(ours["pipe"])
    book = statistics.median(ours["book"])
    rss = max(ours["rss"])
    print(f"perpbot vs {src}:")
    print(f"  {'metric':<34}{'perpbot':>14}{'nautilus':>14}{'ratio':>8}   target")
    rows = (
        ("1 full pipeline, events/s", pipe, ref["pipe"], pipe / ref["pipe"], f">= {PIPELINE_RATIO:.1f}x",
         pipe / ref["pipe"] >= PIPELINE_RATIO),
        ("2 L2 book alone, level entries/s", book, ref["book"], book / ref["book"], f">= {BOOK_RATIO:.1f}x",
         book / ref["book"] >= BOOK_RATIO),
        ("3 peak RSS (1M events), MB", rss, ref["rss"], rss / ref["rss"], f"<= {RSS_MB} MB", rss <= RSS_MB),
    )
    for name, a, b, ratio, target, ok in rows:
        print(f"  {name:<34}{a:>14,.1f}{b:>14,.1f}{ratio:>8.2f}   {target:<10} {'OK' if ok else 'BELOW TARGET'}"
              if "RSS" in name else
              f"  {name:<34}{a:>14,.0f}{b:>14,.0f}{ratio:>8.2f}   {target:<10} {'OK' if ok else 'BELOW TARGET'}")
    if nautilus:
        pc = statistics.median(ours["pipe_cpu"]) / statistics.median(theirs["pipe_cpu"])
        bc = statistics.median(ours["book_cpu"]) / statistics.median(theirs["book_cpu"])
        pm = statistics.median(ours["pipe_main"]) / statistics.median(theirs["pipe_cpu"])
        print(f"  per CPU second (less distorted by other work on the machine): pipeline ratio {pc:.2f} "
              f"({'OK' if pc >= PIPELINE_RATIO else 'BELOW TARGET'}), book ratio {bc:.2f} "
              f"({'OK' if bc >= BOOK_RATIO else 'BELOW TARGET'}); per CPU second of perpbot's main thread "
              f"(the gzip reader's inflating thread excluded): pipeline ratio {pm:.2f}")
    print(f"  (replay feed parse alone: {statistics.median(ours['parse']):,.0f} events/s)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="perpbot benchmarks, each figure beside its target")
    ap.add_argument("--nautilus", metavar="PYTHON", help="the python of a nautilus_trader==1.221.0 venv: "
                    "measure nautilus in the same run, interleaved")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds for targets 1-3 (default 3)")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        print(f"error: --rounds must be >= 1, got {args.rounds}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE.parent))
    if args.nautilus:
        anchor = _load("anchor")
        try:
            anchor.harness_path()
            anchor.run_harness(args.nautilus, "--mode", "decode")  # fails fast on a wrong venv
        except anchor.AnchorError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print("== issue 11: perpbot vs nautilus_trader on the same events", flush=True)
    versus_nautilus(args.nautilus, args.rounds)
    for name in ("bench_rss_long", "bench_markets", "bench_margin", "bench_sweep", "bench_analysis", "bench_stream",
                 "bench_tick", "bench_collector"):
        if not (HERE / f"{name}.py").exists():
            print(f"{name}: missing")
            continue
        print(f"== {name}", flush=True)
        _load(name).main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
