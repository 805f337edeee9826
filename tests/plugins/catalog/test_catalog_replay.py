"""The replay feed reads a catalog directly: ``--data catalog:PATH`` or ``[feed.replay] catalog``.

The offline catalog is built from the embedded bar sample (examples/data/bars, see its
SOURCES.md) by ``runbot.py download --from-file``; the online one by ``download`` from the
loopback indexer fake (tests/fakes/indexer). Neither reads the shared data folder.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from perpbot import cli as runbot
from perpbot.core.errors import ConfigError, DataError
from perpbot.core.model import Bar, FundingRate
from perpbot.exchanges.replay.feed import ReplayFeed
from tests.fakes.indexer import FakeIndexer
from tests.fakes.indexer.history import install_history

pytest.importorskip("pyarrow")

NS = 10**9
FEB1 = int(datetime(2024, 2, 1, tzinfo=timezone.utc).timestamp()) * NS
WEEK_END = FEB1 + 7 * 86_400 * NS  # the import keeps 2024-02-01 .. 2024-02-07


def invoke(*args):
    return CliRunner().invoke(runbot.build_app(), [str(a) for a in args])


@pytest.fixture(scope="module")
def sample_catalog(tmp_path_factory) -> Path:
    cat = tmp_path_factory.mktemp("catalog") / "sample"
    res = invoke("download", "--from-file", "sample:bars", "--funding-file", "sample:funding", "--venue", "binance",
                 "--start", "2024-02-01", "--end", "2024-02-07", "--catalog", cat)
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[:3] == [
        f"catalog {cat}: binance BTC-USD, ETH-USD",
        "fetched 28 day partition(s), skipped 0 already held complete; 0 request(s)",
        "rows written: candles-5MINS 4,032, funding 42",
    ]
    return cat


def events(feed) -> list:
    return [ev for _, batch in feed.iter_batches() for ev in batch]


def test_the_catalog_replays_the_same_bars_and_funding_as_the_files(sample_catalog):
    from_catalog = events(ReplayFeed({"files": [f"catalog:{sample_catalog}"]}))
    from_files = events(ReplayFeed({"files": ["sample:bars"], "funding_files": ["sample:funding"],
                                    "funding_venue": "binance"}))

    def window(evs):  # bars that opened in the imported week, settlements in it
        return [e for e in evs if (isinstance(e, Bar) and FEB1 <= e.ts_ns - e.interval_s * NS < WEEK_END)
                or (isinstance(e, FundingRate) and FEB1 <= e.ts_ns < WEEK_END)]

    a, b = window(from_catalog), window(from_files)
    assert len(a) == len(from_catalog) == 4032 + 42
    assert a == b  # same tickers, times, exact Decimal prices, rates and intervals, same order


@pytest.mark.parametrize("args, message", [
    (["--kind", "trades"], "error: --kind: not used with --from-file"),
    (["--ticker", "SOL"], "error: --ticker: SOL-USD is not in merged_ohlcv_df_BTC-ETH_2024-02-01_to_2024-03-08.csv.gz "
                          "(found: BTC-USD, ETH-USD)"),
    (["--start", "2030-01-01", "--end", "2030-01-02"], "error: no data: merged_ohlcv_df_BTC-ETH"),
    (["--start", "2024-02-09", "--end", "2024-02-01"], "error: --end 2024-02-01 is before --start 2024-02-09"),
    (["--funding-file", "sample:bars"], "error: --funding-file: "),
])
def test_bad_import_input_is_one_line(tmp_path, args, message):
    res = invoke("download", "--from-file", "sample:bars", "--venue", "binance", "--catalog", tmp_path / "c", *args)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code != 0 and len(lines) == 1 and lines[0].startswith(message), res.output


def test_the_feed_table_key_and_venue_choice(sample_catalog, tmp_path):
    feed = ReplayFeed({"catalog": str(sample_catalog), "tickers": ["ETH"]})
    evs = events(feed)
    assert {e.ticker for e in evs} == {"ETH-USD"} and feed.stats()["bars"] == 2016
    with pytest.raises(ConfigError, match=r"no venue 'dydx' \(held: binance\)"):
        ReplayFeed({"catalog": str(sample_catalog), "catalog_venue": "dydx"})
    with pytest.raises(ConfigError, match="no 3600-second candles for binance \\(held: candles-5MINS\\)"):
        ReplayFeed({"catalog": str(sample_catalog), "bar_interval_s": 3600})
    with pytest.raises(DataError, match="no such folder"):
        ReplayFeed({"files": [f"catalog:{tmp_path / 'nope'}"]})


def test_a_missing_or_corrupt_partition_is_named_in_one_line(sample_catalog, tmp_path):
    import shutil

    cat = tmp_path / "cat"
    shutil.copytree(sample_catalog, cat)
    key = "venue=binance/market=BTC-USD/kind=candles-5MINS/date=2024-02-03"
    part = cat / key / "part.parquet"
    part.write_bytes(part.read_bytes()[:-100] + b"x" * 100)
    with pytest.raises(DataError, match=f"partition {key} is corrupt"):
        events(ReplayFeed({"files": [f"catalog:{cat}"]}))
    part.unlink()
    res = invoke("--feed", "replay", "--data", f"catalog:{cat}", "--strategy", "sniper", "--ticker", "BTC",
                 "--exchange", "paper", "--state-dir", tmp_path / "state", "--no-report")
    assert res.exit_code != 0
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert errors == [f"error: catalog {cat}: partition {key} is missing (part.parquet not found); "
                      "run download again to fetch it"], res.output
    (cat / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="manifest.json is corrupt"):
        ReplayFeed({"files": [f"catalog:{cat}"]})


def test_the_offline_catalog_runs_the_bot(sample_catalog, tmp_path):
    res = invoke("--feed", "replay", "--data", f"catalog:{sample_catalog}", "--strategy", "sniper", "--ticker",
                 "BTC,ETH", "--exchange", "paper", "--decision-interval", "300", "--state-dir", tmp_path,
                 "--no-report", "--no-journal")
    assert res.exit_code == 0, res.output
    assert "stopped: end of data" in res.output
    assert "events processed  4,074" in res.output


def test_the_bot_runs_end_to_end_on_a_catalog_downloaded_from_the_fake(tmp_path):
    t0 = FEB1 // NS
    fake = FakeIndexer(use_shared_data=False).start_in_thread()
    try:
        install_history(fake, ["BTC-USD", "ETH-USD"], t0, t0 + 2 * 86_400, resolution="5MINS")
        cat = tmp_path / "cat"
        res = invoke("download", "--ticker", "BTC,ETH", "--start", "2024-02-01", "--end", "2024-02-02",
                     "--kind", "candles:5MINS,funding", "--catalog", cat, "--indexer-rest", fake.rest_url,
                     "--no-progress")
        assert res.exit_code == 0, res.output
    finally:
        fake.stop_thread()
    parts = json.loads((cat / "manifest.json").read_text())["partitions"]
    assert {e["venue"] for e in parts.values()} == {"dydx"} and len(parts) == 8
    res = invoke("--feed", "replay", "--data", f"catalog:{cat}", "--strategy", "sniper", "--ticker", "BTC,ETH",
                 "--exchange", "paper", "--decision-interval", "300", "--state-dir", tmp_path / "state",
                 "--no-report", "--no-journal")
    assert res.exit_code == 0, res.output
    assert "stopped: end of data" in res.output
    # 2 markets x 576 candles + 2 x 48 hourly settlements
    assert "events processed  1,248" in res.output
