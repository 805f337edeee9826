"""The funding_replay feed on the real embedded sample (dYdX v3 1h vs Binance 8h funding,
Binance prices in London local time) and on the other supported price formats."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from decimal import Decimal as D
from pathlib import Path

import pytest

from perpbot.core.errors import ConfigError, DataError
from perpbot.core.model import Bar, FundingRate, OraclePrice
from perpbot.core.plugins import PluginManager
from perpbot.strategies.funding_arb.feed import SAMPLE_BTC_1H, SAMPLE_FUNDING, FundingReplayFeed

S = 10**9
REPO = Path(__file__).resolve().parents[3]


class Ctx:
    def __init__(self, tickers):
        self.tickers = tuple(tickers)


def utc(*a) -> int:
    return int(datetime(*a, tzinfo=timezone.utc).timestamp()) * S


def load(tickers=("BTC-USD", "binance:BTC-USD"), **cfg):
    if not SAMPLE_FUNDING.exists():
        pytest.skip("embedded funding sample missing")
    f = FundingReplayFeed(cfg, Ctx(tickers))

    async def collect():
        return [b async for b in f.batches()]

    return f, asyncio.run(collect())


def test_registered_as_a_feed_plugin():
    pm = PluginManager(load_entry_points=False, default_plugins=("perpbot.strategies.funding_arb",))
    assert pm.registry.feeds["funding_replay"] is FundingReplayFeed
    assert "funding_arb" in pm.registry.strategies
    assert FundingReplayFeed.replay is True


def test_london_local_time_is_converted_to_utc_settlement_times():
    f, batches = load()
    bars = [e for b in batches for e in b if type(e) is Bar and e.ticker == "binance:BTC-USD"]
    assert len(bars) == 277  # 2023-09-30T16:00Z .. 2023-12-31T16:00Z opens, 8-hour bars
    hours = {datetime.fromtimestamp(b.ts_ns / S, timezone.utc).hour for b in bars}
    assert hours == {0, 8, 16}, "8-hour bars close on Binance's settlement hours in UTC, summer (BST) and winter"
    by_ts = {b.ts_ns: b for b in bars}
    # the source row "2023-10-01 01:00:00,binance,bitcoin,BTCUSDT,perpetual,..." is BST: opens 00:00Z, closes 08:00Z
    oct1 = by_ts[utc(2023, 10, 1, 8)]
    assert oct1.interval_s == 8 * 3600
    assert (oct1.open, oct1.high, oct1.low, oct1.close) == (D("26951.0"), D("27148.0"), D("26939.0"), D("27092.1"))
    # across the end of BST (2023-10-29 02:00 BST -> 01:00 GMT) there is no gap and no overlap
    around = sorted(t for t in by_ts if utc(2023, 10, 28) <= t <= utc(2023, 10, 30, 16))
    assert [b - a for a, b in zip(around, around[1:])] == [8 * 3600 * S] * (len(around) - 1)


def test_funding_rates_are_per_hour_with_their_interval_and_price():
    f, batches = load()
    rates = [e for b in batches for e in b if type(e) is FundingRate]
    dydx = [r for r in rates if r.ticker == "BTC-USD"]
    bn = [r for r in rates if r.ticker == "binance:BTC-USD"]
    assert len(dydx) == 2208 and len(bn) == 276
    assert all(r.settled and r.interval_h == 1 for r in dydx)
    assert all(r.settled and r.interval_h == 8 for r in bn)
    # first Binance row: 2023-10-01T00:00Z BTCUSDT 8h rate 0.00000295 -> 3.6875e-7 per hour
    first = bn[0]
    assert first.ts_ns == utc(2023, 10, 1) and first.rate_1h == D("0.00000295") / 8
    assert dydx[0].rate_1h == D("0.0000103856")
    assert first.oracle_price is not None and first.oracle_price > 0, "the settlement carries the last price"


def test_batches_are_time_ordered_with_prices_before_funding():
    f, batches = load()
    last = 0
    for b in batches:
        ts = {e.ts_ns for e in b}
        assert len(ts) == 1, "one timestamp per batch"
        t = ts.pop()
        assert t > last
        last = t
        kinds = [type(e) for e in b]
        if FundingRate in kinds and Bar in kinds:
            assert max(i for i, k in enumerate(kinds) if k in (Bar, OraclePrice)) < min(i for i, k in enumerate(kinds) if k is FundingRate)
    oracle = [e for b in batches for e in b if type(e) is OraclePrice]
    assert oracle and all(e.ticker == "BTC-USD" for e in oracle), "only the primary (dYdX) leg has an oracle price"
    assert f.progress() == (f.progress()[1], f.progress()[1])


def test_primary_leg_is_marked_to_spot_and_hedge_to_perp():
    f, batches = load()
    at = utc(2023, 12, 1, 8)
    bars = {e.ticker: e for b in batches for e in b if type(e) is Bar and e.ts_ns == at}
    assert bars["BTC-USD"].close != bars["binance:BTC-USD"].close, "spot vs perpetual: a real basis"
    assert abs(bars["BTC-USD"].close / bars["binance:BTC-USD"].close - 1) < D("0.005")


def test_hourly_bars_give_both_legs_one_price():
    f, batches = load(prices_file="sample:btc_1h")
    bars = [e for b in batches for e in b if type(e) is Bar]
    assert bars and all(b.interval_s == 3600 for b in bars)
    pairs = {}
    for b in bars:
        pairs.setdefault(b.ts_ns, {})[b.ticker] = b.close
    assert all(len(v) == 2 and len(set(v.values())) == 1 for v in pairs.values())
    # CryptoDataDownload row "1696118400000,2023-10-01 00:00:00,BTCUSD_PERP,26957.3,...,26981.0" closes at 01:00Z
    assert pairs[utc(2023, 10, 1, 1)]["BTC-USD"] == D("26981.0")


def test_start_end_and_cli_aliases():
    f, batches = load(files=["sample:btc_1h"], start="2023-11-01", end="2023-11-02")
    ts = [e.ts_ns for b in batches for e in b]
    assert min(ts) >= utc(2023, 11, 1) and max(ts) < utc(2023, 11, 2)
    assert f.prices_path == SAMPLE_BTC_1H


def test_merged_bars_with_hyperliquid_funding():
    bars = REPO / "examples" / "data" / "bars" / "merged_ohlcv_df_BTC-ETH_2024-02-01_to_2024-03-08.csv.gz"
    fund = REPO / "examples" / "data" / "funding" / "funding_binance8h_hyperliquid1h_BTC-ETH_2024-02-01_to_2024-03-08_utc.csv.gz"
    if not bars.exists() or not fund.exists():
        pytest.skip("embedded bars/funding samples missing")
    f, batches = load(("ETH-USD", "binance:ETH-USD"), prices_file=str(bars), funding_file=str(fund),
                      primary_venue="hyperliquid", end="2024-02-03")
    evs = [e for b in batches for e in b]
    assert {e.ticker for e in evs if type(e) is FundingRate} == {"ETH-USD", "binance:ETH-USD"}
    assert all(e.interval_s == 300 for e in evs if type(e) is Bar)
    hl = [e for e in evs if type(e) is FundingRate and e.ticker == "ETH-USD"]
    assert all(r.interval_h == 1 for r in hl) and len(hl) >= 48


def test_bad_inputs_are_data_errors_naming_the_thing(tmp_path):
    with pytest.raises(DataError, match="no market parameters for 'SOL-USD'"):
        FundingReplayFeed({}, Ctx(("SOL-USD",)))
    f = FundingReplayFeed({"funding_file": str(tmp_path / "nope.csv")}, Ctx(("BTC-USD",)))
    with pytest.raises(DataError, match="nope.csv: file not found"):
        asyncio.run(f.start())
    f = FundingReplayFeed({}, Ctx(("BTC-USD", "okx:BTC-USD")))
    with pytest.raises(DataError, match="no prices for 'okx:BTC-USD'"):
        asyncio.run(f.start())
    f = FundingReplayFeed({"prices_file": "sample:btc_1h"}, Ctx(("BTC-USD", "okx:BTC-USD")))
    with pytest.raises(DataError, match="no funding rows for 'okx:BTC-USD'"):
        asyncio.run(f.start())
    bad = tmp_path / "bad.csv"
    bad.write_text("ts_utc,venue,coin,interval_h,rate\n2023-10-01T00:00:00Z,dydx,BTC,1,abc\n")
    f = FundingReplayFeed({"funding_file": str(bad)}, Ctx(("BTC-USD",)))
    with pytest.raises(DataError, match=r"bad.csv:2: not a number: 'abc'"):
        asyncio.run(f.start())
    with pytest.raises(ConfigError, match="primary_price"):
        FundingReplayFeed({"primary_price": "mid"}, Ctx(("BTC-USD",)))
