"""Issue 9.11: files of one market are ONE stream; a book that never synced is said loudly and named.

A Binance recorder fetches a depth snapshot only when it starts, so a file that continues an
earlier one has none. Before the fix each file kept its own sync state: the second file of a
market was never applied (0 decisions, exit 0, one warning at the end). Now consecutive files
of one market form one stream in time order whose sync (update ids) carries across files; a
market that never synced is warned about during the run and named in the run summary.

The synthetic split of the embedded sample always runs; the real COIN-M and USD-M recordings
in ``../shared/data/tick_l2`` are split the same way when that folder is present.
"""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path
from types import SimpleNamespace

import pytest
from loguru import logger

from perpbot.core.book import OrderBook
from perpbot.core.errors import DataError
from perpbot.core.model import BookDelta, BookSnapshot
from perpbot.core.testing import bot_config
from perpbot.exchanges.replay import binance as binance_fmt
from perpbot.exchanges.replay import samples
from perpbot.exchanges.replay.feed import ReplayFeed

SNAPSHOT_LINE = 55  # of the embedded BTCUSDT recording (its only depth snapshot)


def lines_of(path: Path, stop: int | None = None, start: int = 0) -> list[bytes]:
    out = []
    with gzip.open(path, "rb") as f:
        for i, line in enumerate(f):
            if stop is not None and i >= stop:
                break
            if i >= start:
                out.append(line)
    return out


def write(tmp_path: Path, name: str, lines: list[bytes]) -> Path:
    p = tmp_path / name
    p.write_bytes(gzip.compress(b"".join(lines)))
    return p


def split(tmp_path: Path, src: Path, cut: int, stop: int | None = None, stem: str | None = None) -> tuple[Path, Path]:
    """``src``'s first ``stop`` lines as two files, cut at line ``cut`` (the second has no snapshot)."""
    lines = lines_of(src, stop)
    assert any(b"lastUpdateId" in ln for ln in lines[:cut]) and not any(b"lastUpdateId" in ln for ln in lines[cut:])
    stem = stem or src.name.split(".")[0]
    return write(tmp_path, f"{stem}.part1.gz", lines[:cut]), write(tmp_path, f"{stem}.part2.gz", lines[cut:])


def replay(files, tickers=()) -> SimpleNamespace:
    """Replay ``files``; the books rebuilt from the events, per ticker deltas, and the feed."""
    feed = ReplayFeed({"files": [str(f) for f in files]}, SimpleNamespace(tickers=tuple(tickers)))
    books: dict[str, OrderBook] = {}
    deltas: dict[str, int] = {}
    last_delta_ts: dict[str, int] = {}
    for _, batch in feed.iter_batches():
        for ev in batch:
            if type(ev) is BookSnapshot:
                books[ev.ticker] = OrderBook(ev.ticker)
                books[ev.ticker].apply_snapshot(ev.bids, ev.asks, ev.ts_ns)
            elif type(ev) is BookDelta:
                books[ev.ticker].apply_delta(ev.bids, ev.asks, ev.ts_ns)
                deltas[ev.ticker] = deltas.get(ev.ticker, 0) + 1
                last_delta_ts[ev.ticker] = ev.ts_ns
    return SimpleNamespace(feed=feed, books=books, deltas=deltas, last_delta_ts=last_delta_ts, stats=feed.stats())


def assert_same_books(a: SimpleNamespace, b: SimpleNamespace):
    assert a.deltas == b.deltas
    assert set(a.books) == set(b.books)
    for t in a.books:
        assert (a.books[t].best_bid(), a.books[t].best_ask()) == (b.books[t].best_bid(), b.books[t].best_ask())
        for side in ("bid", "ask"):
            assert a.books[t].levels(side) == b.books[t].levels(side)


@pytest.fixture
def log_lines():
    got: list[tuple[str, str]] = []
    sink = logger.add(lambda m: got.append((m.record["level"].name, m.record["message"])), level="WARNING")
    yield got
    logger.remove(sink)


# -- the embedded sample, split in two (runs everywhere) ----------------------------------------


def test_a_split_recording_replays_as_one_stream(tmp_path, log_lines):
    src = samples.binance_l2_files()[0]  # BTCUSDT, snapshot at line 55
    whole = write(tmp_path, "btcusdt_whole.gz", lines_of(src, 8000))
    part1, part2 = split(tmp_path, src, 3000, 8000)
    one = replay([whole])
    # given in either order: the files are put in time order
    for files in ([part1, part2], [part2, part1]):
        two = replay(files)
        assert two.stats["messages"] == 8000 and two.stats["snapshots"] == 1 and two.stats["gaps"] == 0
        assert_same_books(one, two)
        # the book kept moving through the second file (it was frozen at the cut before the fix)
        first_ts_part2 = binance_fmt.first_ts(part2)
        assert two.last_delta_ts["BTC-USD"] > first_ts_part2
        assert two.feed.unsynced_books() == {}
    assert not [m for lvl, m in log_lines if "never synced" in m or "NO order book" in m]


def test_a_continuation_file_alone_is_named_during_the_run_and_in_the_summary(tmp_path, log_lines):
    src = samples.binance_l2_files()[0]
    lines = lines_of(src, 24_000)
    cont = write(tmp_path, "btcusdt_20240809.gz", lines[3000:])  # ~75 s of data, no snapshot
    feed = ReplayFeed({"files": [str(cont)]}, SimpleNamespace(tickers=()))
    n = 0
    said_at = {}
    for _, _batch in feed.iter_batches():
        n += 1
        for lvl, m in log_lines:
            said_at.setdefault(m, n)
    total = n
    loud = [m for m in said_at if "NO order book has synced yet" in m]
    assert loud, log_lines
    assert said_at[loud[0]] < total  # during the run (seen while batches were still coming), not at its end
    assert "BTC-USD" in loud[0] and "no depth snapshot" in loud[0]
    per_market = [m for m in said_at if "has not synced after 60 s" in m]
    assert per_market and said_at[per_market[0]] < total
    reasons = feed.unsynced_books()
    assert list(reasons) == ["BTC-USD"]
    assert "no depth snapshot in btcusdt_20240809.gz" in reasons["BTC-USD"]
    assert "earlier file" in reasons["BTC-USD"]


def test_one_unsynced_market_among_synced_ones_is_named_but_not_alarmed_as_all(tmp_path, log_lines):
    btc, eth = samples.binance_l2_files()
    btc_cont = write(tmp_path, "btcusdt_20240809.gz", lines_of(btc, 24_000)[3000:])  # ~75 s, no snapshot
    eth_head = write(tmp_path, "ethusdt_20240808.gz", lines_of(eth, 4000))
    run = replay([btc_cont, eth_head])
    assert list(run.feed.unsynced_books()) == ["BTC-USD"]
    assert run.deltas.get("ETH-USD", 0) > 0 and "BTC-USD" not in run.deltas
    assert not [m for _, m in log_lines if "NO order book" in m]
    assert [m for _, m in log_lines if "BTCUSDT (BTC-USD): its order book has not synced" in m]


def test_overlapping_files_of_one_market_are_an_error_naming_both(tmp_path):
    src = samples.binance_l2_files()[0]
    a = write(tmp_path, "btcusdt_a.gz", lines_of(src, 2000))
    b = write(tmp_path, "btcusdt_b.gz", lines_of(src, 3000, start=1000))
    feed = ReplayFeed({"files": [str(a), str(b)]}, SimpleNamespace(tickers=()))
    with pytest.raises(DataError, match=r"btcusdt_b\.gz:1: .* earlier than the end of the previous file .*btcusdt_a\.gz"):
        for _ in feed.iter_batches():
            pass


def test_files_of_different_markets_stay_side_by_side(tmp_path):
    btc, eth = samples.binance_l2_files()
    b = write(tmp_path, "btcusdt_20240808.gz", lines_of(btc, 2000))
    e = write(tmp_path, "ethusdt_20240808.gz", lines_of(eth, 2000))
    run = replay([b, e])
    assert [len(s.paths) for s in run.feed.sources] == [1, 1]
    assert set(run.deltas) == {"BTC-USD", "ETH-USD"}


def test_the_run_summary_names_a_book_that_never_synced(tmp_path):
    from perpbot.core.bot import TradingBot
    from perpbot.core.plugins import PluginManager

    src = samples.binance_l2_files()[0]
    lines = lines_of(src, 6000)
    cont = write(tmp_path, "btcusdt_20240809.gz", lines[3000:])
    config = bot_config(
        exchange=("paper",), strategy="sniper", tickers=("BTC-USD",), feed="replay",
        feeds={"replay": {"files": [str(cont)]}}, state_dir=tmp_path / "state",
    )
    summary = asyncio.run(TradingBot(config, PluginManager()).run())
    assert list(summary.unsynced_books) == ["BTC-USD"]
    text = summary.render()
    assert "order book never synced: BTC-USD: no depth snapshot in btcusdt_20240809.gz" in text

    part1 = write(tmp_path, "btcusdt_20240808.gz", lines[:3000])
    config = bot_config(
        exchange=("paper",), strategy="sniper", tickers=("BTC-USD",), feed="replay",
        feeds={"replay": {"files": [str(part1), str(cont)]}}, state_dir=tmp_path / "state2",
    )
    summary = asyncio.run(TradingBot(config, PluginManager()).run())
    assert summary.unsynced_books == {} and "never synced" not in summary.render()


# -- real recordings from ../shared/data (skip without it) --------------------------------------


N_REAL = 12_000  # lines of each real recording used (about 1.5 minutes of COIN-M data)


@pytest.mark.parametrize("name", ["btcusd_perp_20240808.gz", "ethusd_perp_20240808.gz"])
def test_real_coinm_recording_split_in_two_replays_like_the_whole(shared_data, tmp_path, name):
    src = shared_data / "tick_l2" / "hftbacktest_binance" / "binance_coinm" / name
    lines = lines_of(src, N_REAL)
    snap = next(i for i, ln in enumerate(lines) if b"lastUpdateId" in ln)
    cut = len(lines) // 2  # the second half has no snapshot, like a recorder's next file
    assert cut > snap
    stem = name.split(".")[0]
    whole = write(tmp_path, f"{stem}.gz", lines)
    part1 = write(tmp_path, f"{stem}.1.gz", lines[:cut])
    part2 = write(tmp_path, f"{stem}.2.gz", lines[cut:])
    one = replay([whole])
    two = replay([part2, part1])
    assert two.stats["messages"] == one.stats["messages"] == len(lines)
    assert two.stats["gaps"] == 0 and two.feed.unsynced_books() == {}
    assert_same_books(one, two)
    ticker = next(iter(one.deltas))
    assert two.last_delta_ts[ticker] > binance_fmt.first_ts(part2)
    # the second half alone never syncs, and says why
    alone = replay([part2])
    assert list(alone.feed.unsynced_books()) == [ticker]
    assert "no depth snapshot" in alone.feed.unsynced_books()[ticker]


def test_real_recordings_of_two_markets_in_four_files(shared_data, tmp_path):
    """COIN-M BTC and ETH, each split in two: four files, two streams, merged by time."""
    folder = shared_data / "tick_l2" / "hftbacktest_binance" / "binance_coinm"
    srcs, parts = [], []
    for name in ("btcusd_perp_20240808.gz", "ethusd_perp_20240808.gz"):
        lines = lines_of(folder / name, N_REAL // 2)
        cut = len(lines) // 3
        stem = name.split(".")[0]
        srcs.append(write(tmp_path, name, lines))
        parts += [write(tmp_path, f"{stem}.1.gz", lines[:cut]), write(tmp_path, f"{stem}.2.gz", lines[cut:])]
    one = replay(srcs)
    four = replay([parts[3], parts[0], parts[2], parts[1]])
    assert [len(s.paths) for s in four.feed.sources] == [2, 2]
    assert_same_books(one, four)
    assert four.feed.unsynced_books() == {}
