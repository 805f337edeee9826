"""``runbot.py download --venue ccxt:binanceusdm`` against the Binance USD-M loopback fake (tests/fakes/ccxt).

The fake speaks Binance's ``/fapi`` REST (``exchangeInfo`` for ccxt's ``load_markets``,
``GET /fapi/v1/klines``, ``GET /fapi/v1/fundingRate`` with Binance's field names). Its klines
are the last minutes up to now at the mark (it ignores ``startTime``/``endTime``), so the
candles test downloads today; its funding history is filled here with rows in Binance's
shape (``symbol, fundingTime, fundingRate, markPrice``, Binance USD-M API "Get Funding Rate History").
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from perpbot import cli as runbot

pytest.importorskip("pyarrow")
pytest.importorskip("ccxt")

from tests.fakes.ccxt import FakeBinanceUsdm  # noqa: E402

NS = 10**9


@pytest.fixture
def fake():
    with FakeBinanceUsdm(mark_interval_s=5) as f:
        yield f


def download(fake, cat, *args):
    return CliRunner().invoke(runbot.build_app(), ["download", "--venue", "ccxt:binanceusdm", "--url", fake.url,
                                                   "--catalog", str(cat), "--no-progress", *map(str, args)])


def test_funding_rate_history_lands_in_the_catalog_per_day(fake, tmp_path):
    today = datetime.now(timezone.utc).date()
    y = today - timedelta(days=1)
    y0 = int(datetime(y.year, y.month, y.day, tzinfo=timezone.utc).timestamp()) * 1000
    fake.funding_history["BTCUSDT"] = [
        {"symbol": "BTCUSDT", "fundingTime": y0 + h * 3_600_000 + 3, "fundingRate": r, "markPrice": "65000.10000000"}
        for h, r in ((0, "0.00010000"), (8, "-0.00002500"), (16, "0.00012345"))]
    res = download(fake, tmp_path, "--ticker", "BTC", "--kind", "funding", "--start", y.isoformat(), "--end",
                   y.isoformat())
    assert res.exit_code == 0, res.output
    assert "gaps in the venue's data: none" in res.output
    parts = json.loads((tmp_path / "manifest.json").read_text())["partitions"]
    e = parts[f"venue=ccxt-binanceusdm/market=BTC-USD/kind=funding/date={y.isoformat()}"]
    assert e["venue"] == "ccxt:binanceusdm" and e["rows"] == 3 and e["complete"]
    assert e["source"] == "ccxt binanceusdm fetch_funding_rate_history BTC/USDT:USDT"
    import pyarrow.parquet as pq

    t = pq.read_table(tmp_path / f"venue=ccxt-binanceusdm/market=BTC-USD/kind=funding/date={y.isoformat()}/part.parquet")
    assert [Decimal(r) for r in t.column("rate_1h").to_pylist()] == [
        Decimal("0.0001") / 8, Decimal("-0.000025") / 8, Decimal("0.00012345") / 8]
    assert t.column("interval_h").to_pylist() == [8, 8, 8]
    assert [Decimal(p) for p in t.column("price").to_pylist()] == [Decimal("65000.1")] * 3


def test_ohlcv_of_today_is_partial_with_its_gap_and_prices_exact(fake, tmp_path):
    today = datetime.now(timezone.utc).date().isoformat()
    # 50 a page: the fake answers every page with the same last 50 minutes, which must be kept once
    res = download(fake, tmp_path, "--ticker", "ETH", "--kind", "candles:1MIN", "--start", today, "--end", today,
                   "--page-size", 50)
    if res.exit_code != 0 and "no data" in res.output:
        pytest.skip("run in the first minute of a UTC day: no whole minute of today yet")
    assert res.exit_code == 0, res.output
    parts = json.loads((tmp_path / "manifest.json").read_text())["partitions"]
    e = parts[f"venue=ccxt-binanceusdm/market=ETH-USD/kind=candles-1MIN/date={today}"]
    assert not e["complete"] and 1 <= e["rows"] <= 50
    assert f"partial: ETH-USD candles-1MIN {today} had not ended" in res.output
    import pyarrow.parquet as pq

    t = pq.read_table(tmp_path / f"venue=ccxt-binanceusdm/market=ETH-USD/kind=candles-1MIN/date={today}/part.parquet")
    closes = {Decimal(c) for c in t.column("close").to_pylist()}
    assert closes == {fake.mark("ETHUSDT")}  # the fake's flat bars at its mark, exact
    first = datetime.fromisoformat(today).replace(tzinfo=timezone.utc)
    minutes_today = int((time.time() - first.timestamp()) // 60)
    if minutes_today > e["rows"] + 1:  # the fake serves the last 50 minutes: the rest of today is a gap
        assert e["gaps"] and e["gaps"][0][0] == int(first.timestamp()) * NS
        assert "gaps in the venue's data: 1 gap(s)" in res.output


@pytest.mark.parametrize("args, message", [
    (["--venue", "ccxt:binanceusdn"], "error: --venue: unknown ccxt venue 'binanceusdn'"),
    (["--kind", "trades"], "error: --kind: trades is not downloaded from ccxt venues"),
    (["--ticker", "BTX"], "error: --ticker: unknown ccxt:binanceusdm market 'BTX-USD'; did you mean 'BTC-USD'?"),
])
def test_bad_ccxt_input_is_one_line(fake, tmp_path, args, message):
    base = {"--ticker": "BTC", "--kind": "funding", "--start": "2024-02-01", "--end": "2024-02-01"}
    base.update(dict(zip(args[::2], args[1::2])))
    argv = ["download", "--url", fake.url, "--catalog", str(tmp_path), "--no-progress",
            "--venue", base.pop("--venue", "ccxt:binanceusdm")] + [x for kv in base.items() for x in kv]
    res = CliRunner().invoke(runbot.build_app(), argv)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code != 0 and len(lines) == 1 and lines[0].startswith(message), res.output


# -- mark-price candles (--kind mark:<RES>) ------------------------------------------------------


def _day_ms(d) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp()) * 1000


def test_mark_price_candles_of_a_past_day_are_complete_and_exact(fake, tmp_path):
    import pyarrow.parquet as pq

    y = datetime.now(timezone.utc).date() - timedelta(days=2)
    res = download(fake, tmp_path, "--ticker", "BTC", "--kind", "mark:1HOUR", "--start", y.isoformat(), "--end",
                   y.isoformat(), "--page-size", 10)  # 10 a page: three pages for 24 bars
    assert res.exit_code == 0, res.output
    assert "gaps in the venue's data: none" in res.output
    key = f"venue=ccxt-binanceusdm/market=BTC-USD/kind=mark-1HOUR/date={y.isoformat()}"
    e = json.loads((tmp_path / "manifest.json").read_text())["partitions"][key]
    assert e["rows"] == 24 and e["complete"] and e["source"] == "ccxt binanceusdm fetch_mark_ohlcv BTC/USDT:USDT 1h"
    assert ("GET", "/fapi/v1/markPriceKlines") in fake.requests and ("GET", "/fapi/v1/klines") not in fake.requests
    t = pq.read_table(tmp_path / key / "part.parquet")
    d0 = _day_ms(y)
    assert t.column("ts_ns").to_pylist() == [(d0 + h * 3_600_000) * 1_000_000 for h in range(24)]
    want = [fake.mark_at("BTCUSDT", d0 + h * 3_600_000, 3_600_000) for h in range(24)]
    assert [Decimal(c) for c in t.column("close").to_pylist()] == want  # the venue's text, exact
    assert [Decimal(c) for c in t.column("high").to_pylist()] == [m + Decimal("0.1") for m in want]
    # the same command again fetches nothing: the day is held complete
    n = len(fake.requests)
    again = download(fake, tmp_path, "--ticker", "BTC", "--kind", "mark:1HOUR", "--start", y.isoformat(), "--end",
                     y.isoformat())
    assert again.exit_code == 0, again.output
    assert not [r for r in fake.requests[n:] if r[1] == "/fapi/v1/markPriceKlines"]


def test_a_gap_in_the_venues_mark_candles_is_reported(fake, tmp_path):
    y = datetime.now(timezone.utc).date() - timedelta(days=3)
    d0 = _day_ms(y)
    fake.mark_missing = {d0 + 5 * 3_600_000, d0 + 6 * 3_600_000}
    res = download(fake, tmp_path, "--ticker", "ETH", "--kind", "mark:1HOUR", "--start", y.isoformat(), "--end",
                   y.isoformat())
    assert res.exit_code == 0, res.output
    assert "gaps in the venue's data: 1 gap(s)" in res.output
    e = json.loads((tmp_path / "manifest.json").read_text())["partitions"][
        f"venue=ccxt-binanceusdm/market=ETH-USD/kind=mark-1HOUR/date={y.isoformat()}"]
    assert e["rows"] == 22 and e["gaps"] == [[(d0 + 5 * 3_600_000) * 1_000_000, (d0 + 7 * 3_600_000) * 1_000_000, 2]]


@pytest.mark.parametrize("args, message", [
    (["--kind", "mark"], "error: --kind: mark needs a resolution, e.g. mark:5MINS"),
    (["--kind", "mark:1HOR"], "error: --kind: unknown candle resolution '1HOR'; did you mean '1HOUR'?"),
    (["--kind", "mark:1HOUR", "--venue", "ccxt:hyperliquid"],
     "error: --kind: mark:1HOUR: ccxt:hyperliquid has no mark-price candles in ccxt (fetchMarkOHLCV)"),
    (["--kind", "mark:1HOUR", "--venue", "dydx"], "error: --kind: mark:1HOUR is downloaded from ccxt venues only"),
])
def test_bad_mark_input_is_one_line(fake, tmp_path, args, message):
    opts = dict(zip(args[::2], args[1::2]))
    argv = ["download", "--catalog", str(tmp_path), "--no-progress", "--ticker", "BTC", "--start", "2024-02-01",
            "--end", "2024-02-01", "--venue", opts.pop("--venue", "ccxt:binanceusdm"), *[x for kv in opts.items() for x in kv]]
    if argv[argv.index("--venue") + 1].startswith("ccxt:"):
        argv += ["--url", fake.url]
    res = CliRunner().invoke(runbot.build_app(), argv)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code != 0 and len(lines) == 1 and lines[0].startswith(message), res.output
