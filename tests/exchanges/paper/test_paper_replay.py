"""Replays of real data through the paper exchange (via the replay feed's parsers).

- Binance USD-M BTCUSDT L2 (2024-08-08 23:54-24:00 UTC, MIT, nkaz001/hftbacktest): a
  leveraged long opened near the 6 minutes' high is liquidated when the real mid falls
  through its liquidation price; the fill price and the insurance-fund fee are
  recomputed independently with perpbot.core.margin.
- Binance spot BTC/ETH 5-minute bars (2024-02-01..03-08, Apache-2.0, oceanprotocol/pdr-backend)
  with Binance's real 8-hour funding rates (MIT, derived from PietroC21/Crypto-PerpetualFutures,
  UTC; per hour = rate / 8): funding is paid at every hour boundary with an open position
  and the total is recomputed from the raw CSVs.
"""

from __future__ import annotations

import csv
import gzip
import io
from datetime import datetime, timezone
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from types import SimpleNamespace

import attrs
import pytest

from perpbot.core.margin import (
    PositionRisk,
    account_risk,
    bankruptcy_quote,
    liquidation_fee,
    liquidation_fill_price,
)
from perpbot.core.model import Bar, Fill, FundingRate, Liquidation, OrderType, Side
from tests.shared_data import shared_root

from paper_harness import D, Harness

replay = pytest.importorskip("perpbot.exchanges.replay.feed", reason="the replay feed package is not installed")

SHARED = shared_root()
REPO_SAMPLES = Path(__file__).resolve().parents[3] / "examples" / "data"
HOUR = 3600 * 1_000_000_000
MIN5 = 300 * 1_000_000_000


def _first_existing(*paths: Path) -> Path:
    for p in paths:
        if p.is_file():
            return p
    pytest.skip(f"real data not found (looked for {', '.join(str(p) for p in paths)})")


def _feed(files, tickers, **extra):
    cfg = {"files": [str(f) for f in files], "tickers": list(tickers), **extra}
    return replay.ReplayFeed(cfg, SimpleNamespace(tickers=list(tickers), markets={}))


# ---------------------------------------------------------------------------------------
# liquidation on the real Binance L2 sample
# ---------------------------------------------------------------------------------------


def test_leveraged_long_is_liquidated_when_the_real_mid_crosses_its_liquidation_price():
    btc = _first_existing(
        SHARED / "tick_l2/hftbacktest_binance/binance_usdm/btcusdt_20240808.gz",
        REPO_SAMPLES / "binance_usdm/btcusdt_20240808.gz",
    )
    feed = _feed([btc], ["BTC-USD"])
    # The real dYdX BTC-USD parameters allow 50x (IMF 2%): the 6 minutes move only 0.4%, so
    # the test market allows 250x (IMF 0.4%, MMF 0.24%: dYdX's MMF/IMF ratio of 0.6).
    market = attrs.evolve(feed.markets()["BTC-USD"], initial_margin_fraction=D("0.004"), maintenance_margin_fraction=D("0.0024"))
    hh = Harness({"collateral": "30"}, markets={"BTC-USD": market})
    st = hh.states["BTC-USD"]
    seen = {}
    prev_mark = [None]

    def sink(ev):
        hh.events.append(ev)
        if isinstance(ev, Liquidation):
            seen["mark"] = st.mark_price()
            seen["prev"] = prev_mark[0]

    hh.ex.set_event_sink(sink)
    entry_ts = 1723161282532616354  # the sample's high (mid 61839.75), 27 s in
    opened = None
    p_liq = None
    for ts, batch in feed.iter_batches():
        for ev in batch:
            if ev.ticker != "BTC-USD":
                continue
            prev_mark[0] = st.mark_price()
            hh.feed(ev)
        if opened is None and ts >= entry_ts and st.book_ready:
            opened = hh.order("buy", "0.1", order_type=OrderType.MARKET)
            assert opened.success and opened.filled_size == D("0.1"), opened
            p_liq = hh.ex.liquidation_price("BTC-USD")
        if seen:
            break
    assert opened is not None and p_liq is not None
    [liq] = hh.liquidations
    [lf] = [f for f in hh.fills() if f.liquidation]
    entry = hh.fills(opened.client_id)
    q_before = D(30) - sum(f.price * f.size for f in entry) - sum(f.fee for f in entry)
    # it happened at the first mark below the liquidation price
    assert seen["mark"] < p_liq <= seen["prev"]
    pr = PositionRisk(size=D("0.1"), oracle_price=seen["mark"], imf=D("0.004"), mmf=D("0.0024"), ticker="BTC-USD")
    ar = account_risk(q_before, [pr])
    assert ar.is_liquidatable
    assert not account_risk(q_before, [pr.with_price(seen["prev"])]).is_liquidatable
    expected_px = liquidation_fill_price(pr, ar.equity, ar.maintenance_margin).quantize(D(1), rounding=ROUND_CEILING)
    expected_fee = liquidation_fee(D("0.1") * expected_px, bankruptcy_quote(pr, D("-0.1"), ar.equity, ar.maintenance_margin))
    assert lf.price == liq.price == expected_px and lf.side is Side.SELL and lf.size == D("0.1")
    assert liq.fee == expected_fee and liq.fee > 0
    assert hh.ex.portfolio.liquidation_fees == expected_fee
    assert hh.ex.portfolio.collateral == q_before + D("0.1") * expected_px - expected_fee
    assert not hh.ex.portfolio.open_positions()
    assert hh.ex.liquidations == [liq]


# ---------------------------------------------------------------------------------------
# hourly funding over multi-week bars with real Binance funding rates
# ---------------------------------------------------------------------------------------


def _iso_ns(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(dt.replace(tzinfo=dt.tzinfo or timezone.utc).timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def test_funding_accrues_hourly_over_weeks_of_bars_with_real_rates():
    bars = _first_existing(
        SHARED / "bars/pdr_backend_binance_spot_5m/merged_ohlcv_df_BTC-ETH_2024-02-01_to_2024-03-08.csv.gz",
        REPO_SAMPLES / "bars/merged_ohlcv_df_BTC-ETH_2024-02-01_to_2024-03-08.csv.gz",
    )
    funding = _first_existing(
        SHARED / "funding/derived/funding_hyperliquid1h_vs_binance8h_7coins_2023-05_2026-03_utc.csv.gz",
        REPO_SAMPLES / "funding/funding_binance8h_hyperliquid1h_BTC-ETH_2024-02-01_to_2024-03-08_utc.csv.gz",
    )
    tickers = ("BTC-USD", "ETH-USD")
    feed = _feed([bars], tickers, funding_files=[str(funding)], funding_venue="binance")
    hh = Harness({"collateral": "100000"}, markets=feed.markets())
    open_after = _iso_ns("2024-02-03T05:10:00Z")
    sizes = {"BTC-USD": D("0.5"), "ETH-USD": D("-4")}
    placed = False
    last_bar_ts = None
    end = _iso_ns("2024-03-08T00:05:00Z")  # the last bar closes here; funding rows go on for years
    for ts, batch in feed.iter_batches():
        if ts > end:
            break
        for ev in batch:
            hh.feed(ev)
            if isinstance(ev, Bar):
                last_bar_ts = ev.ts_ns
        if not placed and ts >= open_after and any(isinstance(e, Bar) for e in batch):
            for t, s in sizes.items():
                r = hh.order("buy" if s > 0 else "sell", abs(s), ticker=t, order_type=OrderType.MARKET)
                assert r.success, r
            placed = True
    assert not hh.ex.funding_missing
    for t, s in sizes.items():
        assert hh.ex.portfolio.positions[t].size == s

    # --- independent recomputation from the raw CSV files --------------------------------
    closes: dict[str, dict[int, Decimal]] = {t: {} for t in tickers}
    with gzip.open(bars, "rt") as fh:
        rd = csv.reader(fh)
        header = next(rd)
        col = {t: header.index(f"binance:{t.split('-')[0]}/USDT:close") for t in tickers}
        for row in rd:
            close_ts = int(row[0]) * 1_000_000 + MIN5
            for t in tickers:
                closes[t][close_ts] = Decimal(row[col[t]])
    rates: dict[str, list[tuple[int, Decimal]]] = {t: [] for t in tickers}
    with gzip.open(funding, "rt") as fh:
        for row in csv.DictReader(fh):
            if row["venue"] == "binance" and row["coin"] in ("BTC", "ETH"):
                rates[row["coin"] + "-USD"].append((_iso_ns(row["ts_utc"]), Decimal(row["rate"]) / int(row["interval_h"])))
    for t in tickers:
        rates[t].sort()

    def rate_at(t, hour):
        best = None
        for ts, r in rates[t]:
            lh = ts - ts % HOUR
            if 0 <= hour - lh < 8 * HOUR:
                best = r
        return best

    # by hand, in the chain's integers (issue 13.4): 8-hour ppm truncated toward zero; index delta
    # trunc(ppm * price * 10^(AR+6) / 8) (GetFundingIndexDelta); settlement -delta * quantums ppm,
    # summed over the (cross) subaccount and floored once; the floor's remainder carries over
    # while the subaccount has no new fill (the chain settles lazily, at the next update)
    def trunc(x):
        return int(x)  # Decimal -> int truncates toward zero

    ar = {t: m.atomic_resolution for t, m in feed.markets().items()}
    ppm_by_hour: dict[int, int] = {}
    exact_by_hour: dict[int, Decimal] = {}
    for t, size in sizes.items():
        [entry] = [f for f in hh.fills() if f.ticker == t]
        # hours at or after the fill, settled by an event >= H + 60 s (the last bar closes later)
        first = entry.ts_ns - entry.ts_ns % HOUR + (HOUR if entry.ts_ns % HOUR else 0)
        hours = list(range(first, last_bar_ts - 60 * 10**9 + 1, HOUR))
        pays = [p for p in hh.funding_payments if p.ticker == t]
        assert len(hours) > 24 * 30  # multi-week
        assert len(pays) == len(hours)
        assert [p.ts_ns for p in pays] == hours
        quantums = int(size.scaleb(-ar[t]))
        for hour, p in zip(hours, pays):
            r = rate_at(t, hour)
            ppm = trunc(r * 8_000_000)
            delta = trunc(ppm * closes[t][hour] * Decimal(10) ** (ar[t] + 6) / 8)
            assert p.rate_1h == Decimal(ppm) / 8_000_000 and p.oracle_price == closes[t][hour] and p.size == size
            ppm_by_hour[hour] = ppm_by_hour.get(hour, 0) - delta * quantums
            exact_by_hour[hour] = exact_by_hour.get(hour, D(0)) - size * closes[t][hour] * r
    paid_by_hour: dict[int, Decimal] = {}
    for p in hh.funding_payments:
        paid_by_hour[p.ts_ns] = paid_by_hour.get(p.ts_ns, D(0)) + p.amount
    carry, total = 0, D(0)
    for hour in sorted(ppm_by_hour):
        booked, carry = divmod(carry + ppm_by_hour[hour], 1_000_000)
        assert paid_by_hour[hour] == Decimal(booked).scaleb(-6)
        total += Decimal(booked).scaleb(-6)
    assert hh.ex.portfolio.funding_net == total == sum(p.amount for p in hh.funding_payments)
    # the chain's truncations move the total by well under 1% of -size * price * rate here
    exact_total = sum(exact_by_hour.values())
    assert abs(total - exact_total) < abs(exact_total) / 100
    assert total != 0
