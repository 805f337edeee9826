"""Data for the ML commands: panel and open-interest files to events (plugins/ml/sources.py), feature
rows with the confluence signal (plugins/ml/features.py), and a run on the real shared data."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

import pytest

from perpbot.core.analysis import OpenInterest, combine, feature_rows
from perpbot.core.errors import ConfigError, DataError
from perpbot.core.model import Bar, FundingRate
from perpbot.plugins.ml.features import DIRECTION, SCORE, signal_rows
from perpbot.plugins.ml.sources import load_events, panel_events

from tests.shared_data import absent_reason, shared_data_dir

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

HOUR = 3600 * 10**9
T0 = 1_704_067_200 * 10**9  # 2024-01-01 00:00 UTC


def _panel(path: Path, venue="okx", n=5, gap_at=None):
    """A small panel in the layout of ../shared/data/bars/pietro_okx_1h (columns <field>_perp_<venue>)."""
    import datetime as dt

    ts = [dt.datetime(2024, 1, 1) + dt.timedelta(hours=i) for i in range(n)]
    close = [100.0 + i for i in range(n)]
    cols = {"timestamp": pa.array(ts, pa.timestamp("us"))}
    for f, vals in (("open", [c - 0.5 for c in close]), ("high", [c + 1 for c in close]), ("low", [c - 1 for c in close]),
                    ("close", close), ("volume", [10.0] * n)):
        cols[f"{f}_perp_{venue}"] = [None if i == gap_at else v for i, v in enumerate(vals)]
    cols[f"funding_rate_1h_{venue}"] = [1e-5 if i % 2 == 0 else None for i in range(n)]
    cols[f"open_interest_usd_{venue}"] = [1e6 + i for i in range(n)]
    pq.write_table(pa.table(cols), path)
    return path


def test_panel_rows_become_bars_funding_and_oi_stamped_at_the_bar_close(tmp_path):
    evs = panel_events(_panel(tmp_path / "okx_SOL_2024-01-01_2024-01-02.parquet", gap_at=2))
    bars = [e for e in evs if isinstance(e, Bar)]
    assert [b.ts_ns for b in bars] == [T0 + HOUR, T0 + 2 * HOUR, T0 + 4 * HOUR, T0 + 5 * HOUR]  # row 2 empty: no bar
    assert bars[0] == Bar("okx:SOL-USD", T0 + HOUR, Decimal("99.5"), Decimal("101.0"), Decimal("99.0"), Decimal("100.0"),
                          Decimal("10.0"), 3600)
    fund = [e for e in evs if isinstance(e, FundingRate)]
    assert [(f.ts_ns, f.rate_1h, f.settled) for f in fund] == [(T0 + (i + 1) * HOUR, Decimal("1e-05"), True) for i in (0, 2, 4)]
    oi = [e for e in evs if isinstance(e, OpenInterest)]
    assert [(o.ticker, o.ts_ns) for o in oi][:2] == [("okx:SOL-USD", T0 + HOUR), ("okx:SOL-USD", T0 + 2 * HOUR)]


def test_panel_errors_are_one_line(tmp_path):
    with pytest.raises(DataError, match="named <venue>_<COIN>_"):
        panel_events(_panel(tmp_path / "SOL.parquet"))
    p = _panel(tmp_path / "okx_SOL_x.parquet")
    q = p.rename(tmp_path / "kraken_SOL_x.parquet")  # columns say okx, the name says kraken
    with pytest.raises(DataError, match="lacks column open_perp_kraken"):
        panel_events(q)


def test_load_events_merges_panels_oi_files_and_filters_tickers(tmp_path):
    a = _panel(tmp_path / "okx_SOL_a.parquet")
    b = _panel(tmp_path / "binance_SOL_b.parquet", venue="binance")
    c = _panel(tmp_path / "okx_BNB_c.parquet")
    oi = tmp_path / "SOLUSDT.parquet"
    import datetime as dt

    pq.write_table(pa.table({"open_interest": [5.0, 6.0],
                             "datetime": pa.array([dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)] * 2, pa.timestamp("us", "UTC"))}), oi)
    events, tickers = load_events([f"{a},{b}", str(c)], oi=[str(oi)], tickers="SOL")
    assert tickers == ["binance:SOL-USD", "okx:SOL-USD"]
    assert all(e.ticker in tickers for e in events)
    assert [e.ts_ns for e in events] == sorted(e.ts_ns for e in events)
    ois = [e for e in events if isinstance(e, OpenInterest)]
    assert {e.ticker for e in ois} == set(tickers) and {e.ts_ns for e in ois} == {T0 + HOUR}
    assert {e.open_interest for e in ois} == {5, 6}  # the --oi file replaced the panels' own series
    with pytest.raises(ConfigError, match=r"--ticker ETH-USD: not in the data \(markets: binance:SOL-USD, okx:BNB-USD, okx:SOL-USD\)"):
        load_events([f"{a},{b},{c}"], tickers="ETH")
    with pytest.raises(ConfigError, match="name the data with --data"):
        load_events([])


def test_signal_rows_are_feature_rows_plus_the_confluence_signal():
    from perpbot.cli import _plugin_manager

    reg = _plugin_manager().registry.analyzers
    classes = [reg[n] for n in ("technical", "sentiment", "structure")]
    events, tickers = load_events(["sample:bars"], ["sample:funding"])
    events = [e for e in events if e.ts_ns < events[0].ts_ns + 3 * 86400 * 10**9]
    ours = list(signal_rows(events, tickers, classes, 300 * 10**9))
    theirs = list(feature_rows(events, tickers, classes, 300 * 10**9))
    assert len(ours) == len(theirs) > 1000
    signals = 0
    for a, b in zip(ours, theirs):
        assert {k: v for k, v in a.items() if k not in (DIRECTION, SCORE)}.keys() == b.keys()
        assert all(a[k] == b[k] or (isinstance(b[k], float) and math.isnan(b[k]) and math.isnan(a[k])) for k in b)
        assert a[DIRECTION] in (-1.0, 0.0, 1.0) and abs(a[SCORE]) <= 100
        assert (a[SCORE] > 0) == (a[DIRECTION] > 0)
        signals += a[DIRECTION] != 0
    assert signals > 100


@pytest.mark.skipif(shared_data_dir() is None, reason=absent_reason())
def test_train_on_real_okx_bars_funding_and_open_interest(tmp_path):
    """The real panel (OKX BNB-USDT perp, hourly OHLCV with funding) with Bybit's hourly BNBUSDT open
    interest (both PietroC21/Crypto-PerpetualFutures, MIT) through the whole command: it trains, every
    window is scored out of sample, and the open-interest and funding features carry values."""
    from typer.testing import CliRunner

    from perpbot.cli import build_app
    from perpbot.plugins.ml import store

    panel = shared_data_dir() / "bars/pietro_okx_1h/okx_BNB_2022-12-21_2026-03-05.parquet"
    oi = shared_data_dir() / "bars/pietro_bybit_open_interest_1h/BNBUSDT.parquet"
    out = tmp_path / "bnb.joblib"
    res = CliRunner().invoke(build_app(), ["ml", "train", "--data", str(panel), "--oi", str(oi), "--start", "2024-01-01", "--end", "2024-07-01",
                                           "--analyzers", "technical,sentiment", "--horizon", "4", "--max-iter", "30",
                                           "--walk-forward", "train=90d,test=30d", "--out", str(out)])
    assert res.exit_code == 0, res.stderr
    meta = store.load_meta(out)
    assert meta["tickers"] == ["okx:BNB-USD"] and len(meta["metrics"]["windows"]) == 3
    assert {"sentiment.oi_change", "sentiment.funding_1h"} <= set(meta["features"])
    assert "sentiment.oi_change" not in meta["training_window"]["unused_features"]
    assert 0.3 < meta["metrics"]["overall"]["auc"] < 0.7  # hourly bars: no strong edge; the figure is honest
