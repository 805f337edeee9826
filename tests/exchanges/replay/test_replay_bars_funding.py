"""OHLCV bar files and funding CSVs: the embedded real samples plus small edge-case files."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

from perpbot.core.errors import DataError
from perpbot.core.model import Bar, FundingRate, MarketInfo
from perpbot.exchanges.replay.bars import BarFile
from perpbot.exchanges.replay.feed import ReplayFeed
from perpbot.exchanges.replay.funding import FundingFile
from perpbot.exchanges.replay.samples import bars_file, funding_file

FEB1 = 1_706_745_600_000_000_000  # 2024-02-01T00:00:00Z in ns


def select(symbol: str):
    return {"binance:BTC/USDT": "BTC-USD", "binance:ETH/USDT": "ETH-USD", "BTCUSDT": "BTC-USD", "BTC-USD": "BTC-USD"}.get(
        symbol
    )


@pytest.fixture(scope="module")
def sample_bars():
    src = BarFile(bars_file(), select)
    return src, list(src.events())


def test_sample_bars_two_tickers_in_time_order(sample_bars):
    src, batches = sample_bars
    assert len(batches) == 10_369
    assert all(len(b) == 2 and [e.ticker for e in b] == ["BTC-USD", "ETH-USD"] for _, b in batches)
    times = [ts for ts, _ in batches]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert src.stats == {"messages": 10_369, "bars": 20_738, "missing_bars": 0}


def test_sample_bar_values_are_exact_and_stamped_at_close(sample_bars):
    _, batches = sample_bars
    ts, (btc, eth) = batches[0]
    # first row: 1706745600000,42580.0,42687.63,42573.46,42607.62,159.72134,2283.15,2289.5,2282.43,2286.99,1032.3188
    assert ts == btc.ts_ns == FEB1 + 300 * 10**9  # open time + 5 minutes
    assert (btc.open, btc.high, btc.low, btc.close, btc.volume) == (
        Decimal("42580.0"), Decimal("42687.63"), Decimal("42573.46"), Decimal("42607.62"), Decimal("159.72134"),
    )
    assert btc.interval_s == 300 and eth.close == Decimal("2286.99")
    assert batches[-1][0] == 1_709_856_000_000_000_000 + 300 * 10**9  # last row 2024-03-08 00:00 open


def write_csv(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    return p


def test_simple_format_with_ticker_from_the_file_name(tmp_path):
    p = write_csv(
        tmp_path,
        "BTCUSDT_1m.csv",
        "timestamp,open,high,low,close,volume\n"
        "2024-02-01T00:00:00Z,100,101,99,100.5,3\n"
        "2024-02-01T00:01:00Z,100.5,102,100,101,0\n",
    )
    bars = [e for _, b in BarFile(p, select).events() for e in b]
    assert [b.ticker for b in bars] == ["BTC-USD", "BTC-USD"]
    assert bars[0].ts_ns == FEB1 + 60 * 10**9 and bars[0].interval_s == 60
    assert bars[1].volume == 0


def test_simple_format_with_ticker_column_and_close_stamps(tmp_path):
    p = write_csv(
        tmp_path,
        "bars.csv.gz",
        "ts,open,high,low,close,volume,ticker\n1706745600,1,2,1,2,5,BTC-USD\n1706745660,2,3,2,3,5,BTC-USD\n",
    )
    bars = [e for _, b in BarFile(p, select, timestamp_is="close").events() for e in b]
    assert [b.ts_ns for b in bars] == [FEB1, FEB1 + 60 * 10**9]


@pytest.mark.parametrize(
    "row, message",
    [
        ("1706745660000,100,99,101,100,1", "inconsistent bar"),
        ("1706745660000,100,101,99,100,-1", "volume -1 must not be negative"),
        ("1706745660000,NaN,101,99,100,1", "open 'NaN' must be finite"),
        ("1706745660000,0,101,0,100,1", "prices must be positive"),
        ("1706745660000,100,101,99,,1", "incomplete bar"),
        ("1706745600000,100,101,99,100,1", "is not after the previous row"),
        ("yesterday,100,101,99,100,1", "neither an epoch number nor an ISO-8601"),
        ("1706745660000,100,101,99,100", "expected 6 columns, got 5"),
    ],
)
def test_bad_bar_rows_name_file_line_and_value(tmp_path, row, message):
    p = write_csv(tmp_path, "BTCUSDT.csv", f"timestamp,open,high,low,close,volume\n1706745600000,100,101,99,100,1\n{row}\n")
    with pytest.raises(DataError) as exc:
        list(BarFile(p, select).events())
    assert f"{p}:3:" in str(exc.value) and message in str(exc.value)


def test_single_row_needs_an_interval(tmp_path):
    p = write_csv(tmp_path, "BTCUSDT.csv", "timestamp,open,high,low,close,volume\n1706745600000,100,101,99,100,1\n")
    with pytest.raises(DataError, match="set bar_interval_s"):
        list(BarFile(p, select).events())
    assert [ts for ts, _ in BarFile(p, select, interval_s=3600).events()] == [FEB1 + 3600 * 10**9]


def test_parquet_needs_pyarrow_or_reads(tmp_path):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        p = tmp_path / "BTCUSDT.parquet"
        p.write_bytes(b"PAR1" + b"\0" * 64 + b"PAR1")
        with pytest.raises(DataError, match="pip install pyarrow"):
            list(BarFile(p, select).events())
        return
    p = tmp_path / "BTCUSDT.parquet"
    pq.write_table(
        pa.table({"timestamp": [1706745600000, 1706745660000], "open": [1.5, 2.0], "high": [2.0, 3.0],
                  "low": [1.0, 2.0], "close": [2.0, 3.0], "volume": [1.0, 1.0]}),
        p,
    )
    bars = [e for _, b in BarFile(p, select).events() for e in b]
    assert bars[0].open == Decimal("1.5") and bars[1].ts_ns == FEB1 + 120 * 10**9


# -- funding --------------------------------------------------------------------------


def route_binance(venue, coin):
    return [f"{coin}-USD"] if venue == "binance" else []


def test_sample_funding_binance_rates_per_hour():
    src = FundingFile(funding_file(), route_binance)
    events = [e for _, b in src.events() for e in b]
    assert len(events) == 222 and {e.ticker for e in events} == {"BTC-USD", "ETH-USD"}
    first = events[0]
    # 2024-01-31T16:00:00.000Z,binance,BTC,8,0.0001
    assert first.ts_ns == FEB1 - 8 * 3600 * 10**9
    assert first.rate_1h == Decimal("0.0001") / 8 == Decimal("0.0000125")
    assert first.settled and first.interval_h == 8
    eth = next(e for e in events if e.ticker == "ETH-USD" and e.ts_ns == FEB1)
    assert eth.rate_1h == Decimal("5.527e-05") / 8  # 2024-02-01T00:00:00.000Z,binance,ETH,8,5.527e-05
    times = [e.ts_ns for e in events]
    assert times == sorted(times)
    # a settlement stamped 16:00:00.002Z keeps its milliseconds (values are never rewritten)
    assert any(e.ts_ns % 10**9 == 2_000_000 for e in events)


def test_funding_file_without_the_venue(tmp_path):
    p = write_csv(tmp_path, "f.csv", "ts_utc,venue,coin,interval_h,rate\n2024-01-01T00:00:00Z,okx,BTC,8,0.0001\n")
    with pytest.raises(DataError, match=r"no funding rows .* \(venues in the file: okx"):
        list(FundingFile(p, route_binance).events())


@pytest.mark.parametrize(
    "row, message",
    [
        ("2024-01-01T00:00:00Z,binance,BTC,8,abc", "rate 'abc' is not a number"),
        ("2024-01-01T00:00:00Z,binance,BTC,8,NaN", "rate 'NaN' must be finite"),
        ("2024-01-01T00:00:00Z,binance,BTC,0,0.0001", "interval_h '0' must be a positive whole number"),
        ("soon,binance,BTC,8,0.0001", "ts_utc"),
    ],
)
def test_bad_funding_rows(tmp_path, row, message):
    p = write_csv(tmp_path, "f.csv", f"ts_utc,venue,coin,interval_h,rate\n{row}\n")
    with pytest.raises(DataError) as exc:
        list(FundingFile(p, route_binance).events())
    assert f"{p}:2:" in str(exc.value) and message in str(exc.value)


def test_older_format_uses_the_settlement_hour(tmp_path):
    p = write_csv(
        tmp_path,
        "f.csv",
        "ts_utc,settlement_hour_utc,venue,coin,market,interval_h,rate\n"
        "2024-02-01T00:00:00.020Z,2024-02-01T00:00:00Z,binance,BTC,BTCUSDT,8,-0.00012359\n",
    )
    (ev,) = [e for _, b in FundingFile(p, route_binance).events() for e in b]
    assert ev.ts_ns == FEB1 and ev.rate_1h == Decimal("-0.00012359") / 8


async def test_bars_and_funding_merge_in_time_order():
    feed = ReplayFeed({"files": ["sample:bars"], "funding_files": ["sample:funding"]}, SimpleNamespace(tickers=("BTC",)))
    prev = 0
    kinds = []
    async for batch in feed.batches():
        for ev in batch:
            assert ev.ts_ns >= prev
            prev = ev.ts_ns
            assert ev.ticker == "BTC-USD"
            kinds.append(type(ev))
    assert kinds[0] is MarketInfo
    assert kinds.count(Bar) == 10_369 and kinds.count(FundingRate) == 111
    # a funding settlement at 00:00 sorts before the bar that closes at 00:05
    assert kinds[1] is FundingRate and kinds[2] is FundingRate and kinds[3] is Bar


def test_funding_rows_are_routed_per_venue():
    feed = ReplayFeed(
        {"files": ["sample:bars"], "funding_files": ["sample:funding"]},
        SimpleNamespace(tickers=("BTC", "hyperliquid:BTC")),
    )
    rates = [e for _, b in feed.iter_batches() for e in b if type(e) is FundingRate]
    binance = [e for e in rates if e.ticker == "BTC-USD"]
    hyper = [e for e in rates if e.ticker == "hyperliquid:BTC-USD"]
    assert len(binance) == 111 and {e.interval_h for e in binance} == {8}
    assert len(hyper) == 881 and {e.interval_h for e in hyper} == {1}
    # 2024-01-31T16:00:00.000Z,hyperliquid,BTC,1,-3.025e-06: an hourly rate is already per hour
    assert hyper[0].rate_1h == Decimal("-3.025e-06")
    other = ReplayFeed(
        {"files": ["sample:bars"], "funding_files": ["sample:funding"], "funding_venue": "hyperliquid"},
        SimpleNamespace(tickers=("ETH",)),
    )
    rates = [e for _, b in other.iter_batches() for e in b if type(e) is FundingRate]
    assert len(rates) == 881 and {e.ticker for e in rates} == {"ETH-USD"}
