"""All benchmarks, one command: ``python bench/run.py``. Prints each figure beside its target.

Targets (../shared/docs/architecture.md, Benchmarks; 2-core machine):
whole pipeline >= 230k events/s, book alone >= 1M level entries/s, peak RSS <= 150 MB,
margin requirements + liquidation prices of a 50-position account < 50 us.
Sweep on embedded Ray (issue 14): parallel efficiency with 2 workers >= 0.8.
Analysis hub (issue 15): analysis of one market's event <= 20 us on average.
dYdX full-node stream (issue 12): its lead over the indexer, printed (no target).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> int:
    sys.path.insert(0, str(HERE.parent))
    for name in ("bench_margin", "bench_book", "bench_pipeline", "bench_sweep", "bench_analysis", "bench_stream", "bench_tick"):
        if not (HERE / f"{name}.py").exists():
            print(f"{name}: missing")
            continue
        print(f"== {name}")
        _load(name).main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
