"""Walk-forward of funding arbitrage: the ``funding_multi`` feed's files (a CSV funding file, a
merged-bars CSV or a folder of Hyperliquid Parquet panels) are cut by time, and ``backtest`` /
``sweep`` run the config's own replay feed.

Data: the embedded BTC/ETH slice (``examples/data/funding/funding_binance8h_hyperliquid1h_*``,
``examples/data/bars/merged_ohlcv_*``; MIT, ``examples/data/SOURCES.md``); the Parquet panels are
built here with the shape of ``../shared/data/funding/pietro_hyperliquid_1h/*.parquet``
(``timestamp`` timestamp[ns, tz=UTC], ``close_perp`` double), so no test needs the shared data.
"""

from __future__ import annotations

import json

import pytest

from perpbot.core.errors import ConfigError
from tests.plugins.research.conftest import BARS, DAY_NS, FUNDING, REPO, START_NS
from tests.plugins.research.test_research_sweep import _rows, _sweep_dir

MULTI = REPO / "examples/configs/funding-arb-multi.toml"
TICKERS = "BTC,ETH,binance:BTC,binance:ETH"


def _panel(path, start_ns, hours, *, unit="ns", column="timestamp"):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    ts = [start_ns + h * 3600 * 10**9 for h in range(hours)]
    if unit != "ns":
        ts = [t // 10**9 for t in ts]
    table = pa.table({column: pa.array(ts, type=pa.timestamp(unit, tz="UTC")),
                      "close_perp": pa.array([100.0 + h for h in range(hours)])})
    pq.write_table(table, path)


def test_parquet_folder_is_cut_by_its_timestamp_column(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    from perpbot.plugins.research.windows import cut, data_span, window_files

    src = tmp_path / "pietro_hyperliquid_1h"
    src.mkdir()
    _panel(src / "hyperliquid_BTC_x.parquet", START_NS, 48)
    _panel(src / "hyperliquid_ETH_x.parquet", START_NS + 3600 * 10**9, 48)
    assert data_span([src]) == (START_NS, START_NS + 48 * 3600 * 10**9)
    a, b = START_NS + 10 * 3600 * 10**9, START_NS + 20 * 3600 * 10**9
    out = window_files([str(src)], tmp_path / "w0-train", a, b)
    assert out == [str(tmp_path / "w0-train" / "pietro_hyperliquid_1h")]
    for name in ("hyperliquid_BTC_x.parquet", "hyperliquid_ETH_x.parquet"):
        table = pq.read_table(tmp_path / "w0-train" / "pietro_hyperliquid_1h" / name)
        ts = table.column("timestamp").cast("int64").to_pylist()
        assert len(ts) == 10 and min(ts) == a and max(ts) < b  # half-open [a, b)
        assert table.column_names == ["timestamp", "close_perp"]  # every column kept
    assert not list((tmp_path / "w0-train").glob("*.part"))
    assert cut(src, tmp_path / "none", b + 100 * 3600 * 10**9, b + 200 * 3600 * 10**9) == 0


@pytest.mark.parametrize("kind", ["no timestamp column", "seconds", "not parquet"])
def test_uncuttable_parquet_is_one_line(tmp_path, kind):
    pytest.importorskip("pyarrow")
    from perpbot.plugins.research.windows import data_span

    path = tmp_path / "panel.parquet"
    if kind == "no timestamp column":
        _panel(path, START_NS, 3, column="time")
    elif kind == "seconds":
        _panel(path, START_NS, 3, unit="s")
    else:
        path.write_text("time,close\n")
    with pytest.raises(ConfigError) as err:
        data_span([path])
    text = str(err.value)
    assert "\n" not in text and str(path) in text and "--walk-forward" in text


def test_backtest_runs_the_configs_replay_feed(cli, tmp_path):
    # the funding_multi config's own feed, not the bar replay (which would never trade funding arb)
    code, out, err = cli("backtest", "--config", MULTI, "--ticker", TICKERS, "--funding", "sample:hl_binance_btc_eth",
                         "--state-dir", tmp_path, "--no-journal", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["strategy"] == "funding_arb" and summary["closed_trades"] > 0
    assert summary["funding_received"] != "0" and summary["funding_paid"] != "0"


@pytest.mark.parametrize("args, expected", [
    (["--funding", "sample:hl_binance_btc_eth"], "sample:hl_binance_btc_eth: no such file or folder"),
    ([], "feed funding_multi would read its default funding file whole"),
])
def test_walk_forward_refuses_what_it_cannot_cut(cli, tmp_path, args, expected):
    code, out, err = cli("sweep", "--config", MULTI, "--ticker", TICKERS, "--data", BARS, *args,
                         "-p", "horizon_h=72,168", "--walk-forward", "train=14d,test=7d", "--out", tmp_path)
    assert code != 0 and expected in err and len(err.strip().splitlines()) == 1, err


def test_walk_forward_refuses_a_funding_file_key(cli, tmp_path):
    config = tmp_path / "multi.toml"
    config.write_text(MULTI.read_text().replace('# funding_file = "sample', 'funding_file = "sample'))
    code, out, err = cli("sweep", "--config", config, "--ticker", TICKERS, "--data", BARS, "--funding", FUNDING,
                         "-p", "horizon_h=72,168", "--walk-forward", "train=14d,test=7d", "--out", tmp_path)
    assert code != 0 and len(err.strip().splitlines()) == 1, err
    assert "cannot cut [feed.funding_multi] funding_file = 'sample:hl_binance_btc_eth'" in err


def test_funding_arb_walk_forward_on_the_embedded_slice(cli, ray_session, tmp_path):
    from perpbot.plugins.research.search import best
    from perpbot.plugins.research.windows import cut

    days = 8
    bars, funding = tmp_path / "bars.csv", tmp_path / "funding.csv"
    cut(BARS, bars, START_NS, START_NS + days * DAY_NS)
    # funding from day 1 on: the windows start where both the prices and the funding have rows
    cut(FUNDING, funding, START_NS + DAY_NS, START_NS + days * DAY_NS)
    config = tmp_path / "multi.toml"  # short warm-up and cool-down so one test day can trade
    config.write_text(MULTI.read_text() + "warmup_h = 6\nreentry_cooldown_h = 1\n")  # last table: [strategy.funding_arb]
    code, out, err = cli("sweep", "--config", config, "--ticker", TICKERS, "--data", bars, "--funding", funding,
                         "-p", "horizon_h=72,336", "-p", "execution=limit,market",
                         "--walk-forward", "train=3d,test=1d,step=2d", "--out", tmp_path / "out")
    assert code == 0, err
    assert "window 0: train 2024-02-02 00:00 .. 2024-02-05 00:00" in out and "out-of-sample total" in out
    assert "window 1: train 2024-02-04 00:00 .. 2024-02-07 00:00" in out and "window 2" not in out
    rows = _rows(_sweep_dir(tmp_path / "out"))
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
    for w, (a, b, c) in enumerate([(1, 4, 5), (3, 6, 7)]):
        train = [r for r in rows if r["phase"] == "train" and r["window"] == w]
        test = [r for r in rows if r["phase"] == "test" and r["window"] == w]
        assert len(train) == 4 and len(test) == 1
        top = best(train, "net_pnl", 0)["objectives"]["net_pnl"]  # the test cell's parameters scored best on train
        assert [r["objectives"]["net_pnl"] for r in train if r["params"] == test[0]["params"]] == [top]
        for r in train:
            assert START_NS + a * DAY_NS <= r["summary"]["start_ns"] and r["summary"]["end_ns"] <= START_NS + b * DAY_NS
        assert START_NS + b * DAY_NS <= test[0]["summary"]["start_ns"] and test[0]["summary"]["end_ns"] <= START_NS + c * DAY_NS
    # the cells ran the funding_multi feed: funding arbitrage traded and was paid funding
    assert any(r["summary"]["closed_trades"] > 0 for r in rows)
    assert any(r["summary"]["funding_received"] != "0" for r in rows)
