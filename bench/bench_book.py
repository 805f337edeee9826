"""Benchmark: the L2 book alone, and the replay feed's parser alone, on the real BTC+ETH sample.

Run ``python bench/bench_book.py`` from the repository root.

- **book**: the Binance USD-M BTCUSDT + ETHUSDT recording (``examples/data/binance_usdm``)
  is parsed once into the feed's own events (Decimal levels in two columns,
  :class:`~perpbot.core.model.Levels`, as the reader hands them over); then only
  applying them to :class:`perpbot.core.book.OrderBook` is timed: one ``apply_snapshot`` per market
  and every ``apply_delta``, in the recording's merged time order. Figure: level entries
  applied per second (each price level of a depth diff, update or delete), median of 5
  runs, against the target of at least 1M level entries/s (architecture.md, Benchmarks).
- **parse**: :class:`perpbot.exchanges.replay.feed.ReplayFeed` alone (gunzip, JSON decode, Decimal
  conversion, validation, sync checks, event objects, merge of the two files), no consumer.
  Figure: events per second with the benchmark's unit (level entries + trades + quotes,
  1,027,653 for the sample), median of 3 runs.

``run()`` returns the figures as a dict for ``bench/run.py``; ``--once`` prints them as one
JSON line (the runner starts each measurement in a fresh process, interleaved with
nautilus_trader's).
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

from perpbot.core.book import OrderBook  # noqa: E402
from perpbot.core.model import BookDelta, BookSnapshot  # noqa: E402
from perpbot.exchanges.replay.feed import ReplayFeed  # noqa: E402

TARGET_BOOK_LEVELS_PER_S = 1_000_000
BOOK_RUNS = 5
PARSE_RUNS = 3


def _feed() -> ReplayFeed:
    return ReplayFeed({}, None)  # the embedded Binance BTC+ETH sample


def preparse() -> tuple[list, int]:
    """The sample's book events in merged order: ``[(ticker, is_snapshot, bids, asks)]`` and the delta level count."""
    ops = []
    levels = 0
    for _, batch in _feed().iter_batches():
        for ev in batch:
            t = type(ev)
            if t is BookDelta:
                ops.append((ev.ticker, False, ev.bids, ev.asks))
                levels += len(ev.bids) + len(ev.asks)
            elif t is BookSnapshot:
                ops.append((ev.ticker, True, ev.bids, ev.asks))
    return ops, levels


def time_book(ops: list, cpu: list | None = None) -> tuple[float, dict]:
    """Apply every op to fresh books; returns (seconds, books); appends the CPU seconds to ``cpu`` when given."""
    books = {t: OrderBook(t) for t in {op[0] for op in ops}}
    gc.collect()
    c0 = time.process_time()
    t0 = time.perf_counter()
    for ticker, is_snapshot, bids, asks in ops:
        if is_snapshot:
            books[ticker].apply_snapshot(bids, asks)
        else:
            books[ticker].apply_delta(bids, asks)
    wall = time.perf_counter() - t0
    if cpu is not None:
        cpu.append(time.process_time() - c0)
    return wall, books


def time_parse() -> tuple[float, dict]:
    feed = _feed()
    gc.collect()
    t0 = time.perf_counter()
    for _ in feed.iter_batches():
        pass
    return time.perf_counter() - t0, feed.stats()


def run() -> dict:
    ops, levels = preparse()
    book_times = []
    book_cpu: list = []
    books = None
    for _ in range(BOOK_RUNS):
        seconds, books = time_book(ops, book_cpu)
        book_times.append(seconds)
    book_s = statistics.median(book_times)
    parse_times = []
    stats: dict = {}
    for _ in range(PARSE_RUNS):
        seconds, stats = time_parse()
        parse_times.append(seconds)
    parse_s = statistics.median(parse_times)
    return {
        "book_level_entries": levels,
        "book_seconds": book_s,
        "book_level_entries_per_s": levels / book_s,
        "book_level_entries_per_s_cpu": levels / statistics.median(book_cpu),
        "book_target_per_s": TARGET_BOOK_LEVELS_PER_S,
        "book_runs_s": book_times,
        "book_final_levels": {t: len(b) for t, b in sorted(books.items())},
        "parse_events": stats["events"],
        "parse_seconds": parse_s,
        "parse_events_per_s": stats["events"] / parse_s,
        "parse_runs_s": parse_times,
        "parse_stats": stats,
    }


def main() -> int:
    if "--once" in sys.argv:
        r = run()
        r.pop("parse_stats", None)
        print(json.dumps(r))
        return 0
    r = run()
    ok = r["book_level_entries_per_s"] >= r["book_target_per_s"]
    print(
        f"book alone (perpbot.core.book.OrderBook, BTC+ETH sample): {r['book_level_entries']:,} level entries, "
        f"median {r['book_seconds']:.3f} s of {BOOK_RUNS} -> {r['book_level_entries_per_s']:,.0f} level entries/s "
        f"(target >= {r['book_target_per_s']:,}: {'OK' if ok else 'BELOW TARGET'})"
    )
    st = r["parse_stats"]
    print(
        f"replay feed parse alone: {r['parse_events']:,} events ({st['level_entries']:,} level entries, "
        f"{st['trades']:,} trades, {st['quotes']:,} quotes), median {r['parse_seconds']:.3f} s of {PARSE_RUNS} -> "
        f"{r['parse_events_per_s']:,.0f} events/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
