"""Benchmark: does the collector keep up with 5 venues x 2 markets of real-rate data on one core?

Run ``python bench/bench_collector.py`` from the repository root.

Real rate: the embedded Binance USD-M recording (``examples/data/binance_usdm``: BTCUSDT and
ETHUSDT depth diffs, snapshots and trades, i.e. one venue x 2 markets) replayed through the
replay feed's parser into :mod:`perpbot.core.model` events. Its rate is the number of book and
trade events per second of market time: the mean over the recording and the busiest second.
Five venues x 2 markets need five times that.

Timed (CPU time of this process, ``time.process_time``: one core, the DuckDB writes included,
as the collector's writer thread shares the process): the collector's own path for every event
of the recording, five times over (one copy per venue name): events -> rows
(:class:`~perpbot.plugins.collector.rows.RowMaker`, a local book per market and the top 10
levels per side of each book update), the :class:`~perpbot.plugins.collector.validator.Validator`,
the :class:`~perpbot.plugins.collector.batcher.Batcher` (1000 rows) and
:class:`~perpbot.plugins.storage.duckdb_store.DuckDBStorage` writes into a temporary file. Not
timed: the venues' own message parsing (ccxt / the dYdX parser), which runs in the same process
live; the figure is the headroom left for it.

Figures: events per CPU-second, against the needed rate (mean and busiest second x 5).

With ``collect --signals``: the analysis (every event into a market state and the built-in
analyzers, :class:`~perpbot.plugins.collector.signals.SignalMaker`) timed over one copy of the
recording: CPU microseconds per event, and the share of one core it takes at 5 x the mean rate.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perpbot.core.model import BookDelta, BookSnapshot, Trade  # noqa: E402
from perpbot.exchanges.replay.feed import ReplayFeed  # noqa: E402

VENUES = 5
KEEP = (BookSnapshot, BookDelta, Trade)


def load() -> list[list]:
    """The recording's batches, book and trade events only (as a live feed hands them over)."""
    out = []
    for _, batch in ReplayFeed({}, None).iter_batches():
        kept = [e for e in batch if type(e) in KEEP]
        if kept:
            out.append(kept)
    return out


def rates(batches: list[list]) -> tuple[float, int, float]:
    """``(mean events/s, busiest-second events, span seconds)`` of the recording's market time."""
    per_second: dict[int, int] = {}
    first = last = None
    n = 0
    for batch in batches:
        for e in batch:
            s = e.ts_ns // 1_000_000_000
            per_second[s] = per_second.get(s, 0) + 1
            first = e.ts_ns if first is None else min(first, e.ts_ns)
            last = e.ts_ns if last is None else max(last, e.ts_ns)
            n += 1
    span = max((last - first) / 1e9, 1.0)
    return n / span, max(per_second.values()), span


def time_collector(batches: list[list]) -> tuple[float, int, dict]:
    """CPU seconds to take every batch through the collector's path for :data:`VENUES` venues."""
    from perpbot.plugins.collector.batcher import Batcher
    from perpbot.plugins.collector.rows import RowMaker
    from perpbot.plugins.collector.validator import Validator
    from perpbot.plugins.storage.duckdb_store import DuckDBStorage

    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStorage(str(Path(tmp) / "bench.duckdb"))
        makers = [RowMaker(f"venue{i}", "", depth=10) for i in range(VENUES)]
        validator = Validator()
        batcher = Batcher(1000, 1.0)
        events = 0
        t0 = time.process_time()
        for batch in batches:
            for maker in makers:
                events += len(batch)
                for kind, row, levels in maker.rows(batch):
                    reason = validator.check_book(row, *levels) if levels is not None else validator.check(kind, row)
                    if reason is None:
                        for k, rows in batcher.add(kind, row):
                            store.write(k, rows)
        for k, rows in batcher.drain():
            store.write(k, rows)
        cpu = time.process_time() - t0
        counts = store.counts()
        store.close()
    return cpu, events, {"rejected": dict(validator.rejected), "rows": sum(counts.values())}


def time_signals(batches: list[list]) -> float:
    """CPU microseconds per event of the ``--signals`` analysis (one venue's copy of the recording)."""
    from perpbot.plugins.analysis import BUILTIN
    from perpbot.plugins.collector.signals import SignalMaker

    maker = SignalMaker(BUILTIN)
    n = sum(len(b) for b in batches)
    t0 = time.process_time()
    for batch in batches:
        maker.on_events("venue0", "", batch)
    return (time.process_time() - t0) / n * 1e6


def run() -> dict:
    """The figures as a dict (for ``bench/run.py``)."""
    batches = load()
    mean, peak, span = rates(batches)
    cpu, events, info = time_collector(batches)
    return {"events": events, "cpu_s": cpu, "capacity": events / cpu, "need_mean": mean * VENUES,
            "need_peak": peak * VENUES, "span_s": span, "signals_us": time_signals(batches), **info}


def main() -> None:
    """Print the figures beside the target."""
    r = run()
    print(f"collector path, {VENUES} venues x 2 markets (Binance BTC+ETH recording x {VENUES}, "
          f"{r['span_s']:.0f} s of market time): {r['events']:,} events in {r['cpu_s']:.2f} CPU-s -> "
          f"{r['capacity']:,.0f} events/CPU-s, {r['rows']:,} rows stored")
    for what, need in (("mean", r["need_mean"]), ("busiest second", r["need_peak"])):
        verdict = "keeps up" if r["capacity"] >= need else "FALLS BEHIND"
        print(f"  needed at the recording's {what} rate: {need:,.0f} events/s -> {verdict} "
              f"({r['capacity'] / need:.1f}x, target >= 1x on one core)")
    share = r["signals_us"] * r["need_mean"] / 1e6
    print(f"  with --signals (built-in analyzers): {r['signals_us']:.1f} CPU-us per event -> "
          f"{share:.0%} of one core at the mean rate x {VENUES}")
    if r["rejected"]:
        print(f"  rejected by the validator: {r['rejected']}")


if __name__ == "__main__":
    main()
