"""Issue 9.8: replay progress is market time (not compressed bytes), with events/s and an ETA.

The feed reports ``(market time done, market time total)`` in ns; the bot hands it to
progress observers; the command line draws the bar (``perpbot/progress.py``), not the bot.
"""

from __future__ import annotations

import ast
import asyncio
import gzip
import io
from pathlib import Path
from types import SimpleNamespace

import pytest

from perpbot.core.feed import ProgressUpdate
from perpbot.core.testing import bot_config, run_bot_async
from perpbot.exchanges.replay import samples
from perpbot.exchanges.replay.feed import ReplayFeed
from perpbot.progress import ProgressTracker, ReplayProgressBar, attach_progress_bar, describe

REPO = Path(__file__).resolve().parents[3]


def fractions_along(feed: ReplayFeed) -> tuple[list[tuple[int, float]], int, int]:
    """``[(ts, fraction)]`` after each batch, the first timestamp and the data's last one."""
    assert feed.wait_for_span(30)
    out = []
    for ts, _ in feed.iter_batches():
        done, total = feed.progress()
        out.append((ts, done / total))
    return out, out[0][0], feed.last_timestamp()


def check_market_time_progress(points, first, end):
    fr = [f for _, f in points]
    assert all(0.0 <= f <= 1.0 for f in fr)
    assert all(b >= a for a, b in zip(fr, fr[1:])), "progress went backwards"
    assert fr[-1] == 1.0
    mid = first + (end - first) // 2
    at_mid = next(f for ts, f in points if ts >= mid)
    assert at_mid == pytest.approx(0.5, abs=0.01)


def test_bars_and_funding_progress_is_market_time():
    # the config: 5-minute bars + a funding file. In compressed bytes the bar sat at ~71%
    # after the first read chunk (the funding file is read whole at once) and then jumped to 100%.
    feed = ReplayFeed({"files": ["sample:bars"], "funding_files": ["sample:funding"]}, SimpleNamespace(tickers=()))
    points, first, end = fractions_along(feed)
    check_market_time_progress(points, first, end)
    quarter = next(f for ts, f in points if ts >= first + (end - first) // 4)
    assert quarter == pytest.approx(0.25, abs=0.01)


def head_copy(tmp_path: Path, src: Path, n: int) -> Path:
    out = []
    with gzip.open(src, "rt") as f:
        for line in f:
            out.append(line)
            if len(out) == n:
                break
    p = tmp_path / src.name
    p.write_bytes(gzip.compress("".join(out).encode()))
    return p


def test_l2_recordings_progress_is_market_time(tmp_path):
    files = [head_copy(tmp_path, f, 4000) for f in samples.binance_l2_files()]
    feed = ReplayFeed({"files": [str(f) for f in files]}, SimpleNamespace(tickers=()))
    points, first, end = fractions_along(feed)
    check_market_time_progress(points, first, end)


def test_plain_text_files_are_read_from_their_tail(tmp_path):
    src = head_copy(tmp_path, samples.binance_l2_files()[0], 500)
    plain = tmp_path / "btcusdt_20240808.txt"
    text = gzip.decompress(src.read_bytes())
    plain.write_bytes(text + b"\n\n")  # trailing blank lines do not hide the last line
    feed = ReplayFeed({"files": [str(plain)]}, SimpleNamespace(tickers=()))
    last_line = text.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    assert feed.last_timestamp() == int(last_line.split(b" ", 1)[0])


def test_progress_before_any_data_and_unknown_span():
    feed = ReplayFeed({"files": ["sample:bars"]}, SimpleNamespace(tickers=()))
    assert feed.progress() == (0, 0)  # nothing replayed yet: no fraction to show, not a fake 0%


# -- the tracker (what the bar shows) ---------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_tracker_fraction_eta_and_rate():
    clock = FakeClock()
    tr = ProgressTracker(clock)
    clock.t = 101.0
    a = tr.update(ProgressUpdate(0, 0, 0, 0, False))
    assert a.fraction is None and a.eta_s is None  # span not known yet
    clock.t = 102.0
    b = tr.update(ProgressUpdate(100, 1000, 5_000, 0, False))
    assert b.fraction == pytest.approx(0.1)
    clock.t = 111.0  # 10 s after the first update, half done: 10 s more at that pace
    c = tr.update(ProgressUpdate(500, 1000, 50_000, 0, False))
    assert c.fraction == pytest.approx(0.5)
    assert c.eta_s == pytest.approx(10.0)
    assert c.events_per_s == pytest.approx(5_000.0)
    clock.t = 112.0
    d = tr.update(ProgressUpdate(400, 1000, 51_000, 0, False))  # a smaller 'done' never moves the bar back
    assert d.fraction == pytest.approx(0.5)
    clock.t = 120.0
    e = tr.update(ProgressUpdate(1000, 1000, 90_000, 0, True))
    assert e.fraction == 1.0 and e.eta_s == 0.0 and e.final
    assert "ETA 0:00:00" in describe(e) and "events/s" in describe(e)


def test_rich_bar_shows_percent_rate_and_eta():
    from rich.console import Console

    out = io.StringIO()
    clock = FakeClock()
    bar = ReplayProgressBar(Console(file=out, force_terminal=True, width=160), clock=clock)
    clock.t = 101.0
    bar(ProgressUpdate(0, 10, 0, 1_723_161_255_000_000_000, False))
    clock.t = 103.0
    bar(ProgressUpdate(5, 10, 2_000, 1_723_161_300_000_000_000, False))
    assert bar.figures.fraction == 0.5 and bar.figures.eta_s == pytest.approx(2.0)
    text = describe(bar.figures)
    assert " 50.0%" in text and "1,000 events/s" in text and "ETA 0:00:02" in text and "2024-08-08 23:55:00 UTC" in text
    bar(ProgressUpdate(10, 10, 4_000, 1_723_161_400_000_000_000, True))  # the final update closes it
    bar.close()  # idempotent


def test_no_bar_for_a_feed_without_an_end():
    feed = SimpleNamespace(progress=lambda: None)
    bot = SimpleNamespace(feed=feed, add_progress_observer=lambda obs: pytest.fail("no observer expected"))
    assert attach_progress_bar(bot) is None


# -- the bot hands progress to observers; it draws nothing itself ------------------------------


def test_bot_reports_market_time_progress_to_observers(tmp_path):
    from perpbot.core.bot import TradingBot
    from perpbot.core.plugins import PluginManager

    config = bot_config(
        exchange=("paper",), strategy="sniper", tickers=("BTC-USD", "ETH-USD"), feed="replay",
        feeds={"replay": {"files": ["sample:bars"], "funding_files": ["sample:funding"]}},
        decision_interval_s=300, state_dir=tmp_path / "state",
    )
    bot = TradingBot(config, PluginManager())
    updates: list[ProgressUpdate] = []
    bot.add_progress_observer(updates.append)

    def broken(update):
        raise RuntimeError("a broken display")

    bot.add_progress_observer(broken)  # dropped with a warning; the run and the other observer go on
    assert bot.feed.wait_for_span(30)
    summary = asyncio.run(bot.run())
    assert summary.stop_reason == "end of data"
    assert len(updates) > 10 and updates[-1].final and not any(u.final for u in updates[:-1])
    fr = [u.done / u.total for u in updates if u.total]
    assert all(b >= a for a, b in zip(fr, fr[1:])) and fr[-1] == 1.0
    assert updates[-1].events == summary.events
    # the update halfway through the data's market time reads about 50%
    first = bot.feed._first_ns
    span = updates[-1].total
    mid = min(updates, key=lambda u: abs(u.market_ns - (first + span // 2)))
    assert mid.done / mid.total == pytest.approx(0.5, abs=0.02)


def test_core_bot_draws_no_progress_bar():
    """The UI lives in the command line (perpbot/progress.py); no module of core/bot/ imports rich."""
    names = []
    for path in sorted((REPO / "core" / "bot").glob("*.py")):
        tree = ast.parse(path.read_text())
        names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert "perpbot.core.bot.supervisor" in names  # the package was read
    assert not [n for n in names if n == "rich" or n.startswith("rich.")]
