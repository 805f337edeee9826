"""The ``funding_replay`` feed: two venues' funding rates and prices, replayed for funding arbitrage.

It merges, by time:

- a funding file in the project's long format (``ts_utc[,settlement_hour_utc],venue,coin[,market],interval_h,rate``,
  UTC; e.g. ``../shared/data/funding/derived/*.csv.gz``): each row becomes a settled
  :class:`~perpbot.FundingRate` with ``rate_1h = rate / interval_h`` and the row's
  ``interval_h`` (funding intervals are data: dYdX and Hyperliquid 1 h, Binance 8 h);
- a price file, either
  * the AHA-HH ``all_exchanges.csv`` format (``time,exchange,crypto,pair,contract,open,high,low,close,volume,funding rate``;
    ``time`` is the bar OPEN in **Europe/London local time**, converted here with
    :mod:`zoneinfo`; 8-hour bars), or
  * a merged-bars CSV (``timestamp`` in ms UTC, bar open, and ``<exchange>:<BASE>/USDT:<field>`` columns,
    e.g. the pdr-backend 5-minute file), or
  * a CryptoDataDownload export (URL banner, ``Unix`` ms UTC bar open, newest first; e.g. Binance
    BTCUSD_PERP hourly, ``examples/data/funding/BTCUSD_PERP_Binance_futures_CM_hour_2023Q4.csv.gz``);

  with a single-series file (merged bars, CryptoDataDownload) every leg of a coin gets the
  same price (no basis between venues);

  each bar becomes a :class:`~perpbot.Bar` stamped with its CLOSE time (no look-ahead).

Tickers follow the multi-venue convention: ``BTC-USD`` is the primary venue
(``primary_venue``, default ``dydx``: its funding rows), ``binance:BTC-USD`` the
Binance leg (the venue name is the funding file's ``venue``). Built without tickers (a run
that names none), the feed lists every market of its funding file
(:meth:`FundingReplayFeed.listed_tickers`). Prices: the primary leg
is marked to a spot price (``primary_price = "spot"``, a proxy for dYdX's oracle, an
index of spot prices; an :class:`~perpbot.OraclePrice` is emitted with it), the other
legs to their own venue's perpetual (AHA-HH format). With a merged-bars file every leg
gets the same spot price (no basis).

Defaults read the embedded real sample (``examples/data/funding``: dYdX v3 hourly and
Binance 8-hour funding with Binance spot/perp 8-hour prices, BTC and ETH, 2023 Q4), else
the full files from ``../shared/data/funding``. ``prices_file = "sample:btc_1h"`` selects
the embedded hourly Binance BTCUSD_PERP bars (BTC only): 8-hour bars are coarse for
execution (the paper exchange fills bar-only data conservatively, a whole bar later), so
the hourly file is the better choice for BTC.

Config (``[feed.funding_replay]``): see :class:`FundingReplayParams`.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import AsyncIterator
from zoneinfo import ZoneInfo

import attrs

from perpbot import Bar, DataError, FundingRate, Market, OraclePrice, param
from perpbot.core.feed import MergedEventFeed
from perpbot import parse_params

D = Decimal
NS = 1_000_000_000
REPO = Path(__file__).resolve().parents[2]
SAMPLE_DIR = REPO / "examples" / "data" / "funding"
SAMPLE_FUNDING = SAMPLE_DIR / "funding_dydxv3_1h_binance_8h_BTC-ETH_2023Q4_utc.csv.gz"
SAMPLE_PRICES = SAMPLE_DIR / "prices_binance_spot_perp_8h_BTC-ETH_2023Q4_london.csv.gz"
SAMPLE_BTC_1H = SAMPLE_DIR / "BTCUSD_PERP_Binance_futures_CM_hour_2023Q4.csv.gz"


def shared_data_dir() -> Path:
    """The shared data folder: ``$PERPBOT_SHARED_DATA``, else ``../shared/data`` next to the repository."""
    return Path(os.environ.get("PERPBOT_SHARED_DATA", REPO.parent / "shared" / "data"))


SHARED_FUNDING = "funding/derived/funding_btc_eth_dydxv3_vs_6cex_2020_2023_utc.csv.gz"
SHARED_PRICES = "funding/aha_hh_binance_bybit_okx_8h/all_exchanges.csv.gz"

#: dYdX perpetual parameters of the example markets (2023-24 values: IMF 0.05, MMF 0.03;
#: docs/dydx-v4.md "BTC example"; read the live values from /v4/perpetualMarkets).
MARKETS = {
    "BTC": dict(clob_pair_id=0, tick_size="1", step_size="0.0001", atomic_resolution=-10, quantum_conversion_exponent=-9,
                step_base_quantums=1_000_000, subticks_per_tick=100_000, initial_margin_fraction="0.05",
                maintenance_margin_fraction="0.03"),
    "ETH": dict(clob_pair_id=1, tick_size="0.1", step_size="0.001", atomic_resolution=-9, quantum_conversion_exponent=-9,
                step_base_quantums=1_000_000, subticks_per_tick=100_000, initial_margin_fraction="0.05",
                maintenance_margin_fraction="0.03"),
}
_CRYPTO = {"bitcoin": "BTC", "ethereum": "ETH"}


def _spot_or_perp(instance, attribute, value):
    if value not in ("spot", "perp"):
        raise ValueError(f"parameter {attribute.name}: expected 'spot' or 'perp', got {value!r}")


@attrs.frozen
class FundingReplayParams:
    """Parameters of the ``funding_replay`` feed (``[feed.funding_replay]``): files, venue
    mapping, time zone of the AHA-HH prices, and the UTC window replayed.

    :raises ValueError: (at construction) ``primary_price`` not ``spot``/``perp``.
    """

    funding_file: str = param("", "funding CSV (long format, UTC); default: the embedded 2023 Q4 sample, else ../shared/data")
    prices_file: str = param("", "price CSV (AHA-HH all_exchanges format, London time, or merged bars); default: the embedded sample")
    primary_venue: str = param("dydx", "the funding file's venue whose rows go to the unqualified (primary) tickers")
    primary_price: str = param("spot", "AHA-HH prices: mark the primary leg to 'spot' (oracle proxy) or 'perp'", _spot_or_perp)
    spot_exchange: str = param("binance", "exchange whose spot price marks the primary leg")
    prices_timezone: str = param("Europe/London", "time zone of the AHA-HH 'time' column")
    start: str = param("", "first UTC time to replay (ISO date or datetime; default: the data's start)")
    end: str = param("", "replay before this UTC time (default: the data's end)")
    files: tuple[str, ...] = param((), "alias of prices_file (the CLI's --data): the first file is the price file")
    funding_files: tuple[str, ...] = param((), "alias of funding_file (the CLI's --funding): the first file is used")
    speed: Decimal = param(D(0), "accepted for CLI compatibility; a funding replay always runs as fast as possible")


def _parse_utc(text: str, where: str) -> int:
    t = text.strip()
    try:
        if t.endswith("Z"):
            t = t[:-1] + "+00:00"
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise DataError(f"{where}: not a time: {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * NS + dt.microsecond * 1000


def _dec(text: str, where: str) -> Decimal:
    try:
        d = D(text.strip())
    except (InvalidOperation, AttributeError):
        raise DataError(f"{where}: not a number: {text!r}") from None
    if not d.is_finite():
        raise DataError(f"{where}: not a finite number: {text!r}")
    return d


def _open(path: Path):
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def split_ticker(t: str) -> tuple[str | None, str]:
    """``"binance:BTC-USD"`` -> ``("binance", "BTC-USD")``; an unqualified ticker -> ``(None, ticker)``."""
    return (t.split(":", 1)[0], t.split(":", 1)[1]) if ":" in t else (None, t)


class FundingReplayFeed(MergedEventFeed):
    """Replay of two (or more) venues' settled funding rates with prices (see the module docstring)."""

    name = "funding_replay"
    description = "funding-arbitrage replay: two venues' settled funding + prices (dYdX v3 1h vs Binance 8h sample)"
    replay = True

    def __init__(self, config, context):
        super().__init__(config, context)
        self.params: FundingReplayParams = parse_params(FundingReplayParams, config, "feed funding_replay")
        tickers = tuple(getattr(context, "tickers", None) or ())
        p = self.params
        funding_given = p.funding_file or (p.funding_files[0] if p.funding_files else "")
        prices_given = p.prices_file or (p.files[0] if p.files else "")
        if len(p.files) > 1 or len(p.funding_files) > 1:
            raise DataError("feed funding_replay: one price file and one funding file (got several)")
        self.funding_path = self._resolve(funding_given, SAMPLE_FUNDING, SHARED_FUNDING)
        self.prices_path = self._resolve(prices_given, SAMPLE_PRICES, SHARED_PRICES)
        self.start_ns = _parse_utc(self.params.start, "feed funding_replay: start") if self.params.start else None
        self.end_ns = _parse_utc(self.params.end, "feed funding_replay: end") if self.params.end else None
        self.counts = {"bars": 0, "funding_rates": 0, "oracle_prices": 0}
        # no tickers: every market the funding file holds (the wiring's market discovery)
        self.tickers = tickers or self.listed_tickers()
        for t in self.tickers:
            base = split_ticker(t)[1].split("-")[0]
            if base not in MARKETS:
                raise DataError(f"feed funding_replay: no market parameters for {t!r} (known coins: {', '.join(MARKETS)})")

    def listed_tickers(self) -> tuple:
        """Every market of the funding file whose coin has market parameters (:data:`MARKETS`):
        ``COIN-USD`` for ``primary_venue`` rows, ``venue:COIN-USD`` for another venue's; sorted by
        coin, primary legs first.

        :raises DataError: a missing file or one without ``venue`` and ``coin`` columns.
        """
        pairs = set()
        with _open(self.funding_path) as f:
            reader = csv.DictReader(f)
            if not {"venue", "coin"} <= set(reader.fieldnames or ()):
                raise DataError(f"{self.funding_path}: not a funding file in the long format (needs venue and coin columns)")
            for row in reader:
                pairs.add((row["venue"].strip().lower(), row["coin"].strip().upper()))
        primary = self.params.primary_venue.strip().lower()
        keyed = sorted(((v != primary, c, v) for v, c in pairs if c in MARKETS))
        listed = tuple(f"{c}-USD" if not other else f"{v}:{c}-USD" for other, c, v in keyed)
        priced = self._priced(listed)
        return tuple(t for t in listed if t in priced)

    def _priced(self, tickers: tuple) -> set:
        """The ``tickers`` the price file has a series for (one scan of its symbols, no values parsed)."""
        path = self.prices_path
        with _open(path) as f:
            header = f.readline()
            if "cryptodatadownload" in header.lower():
                coins = {row.get("Symbol", "").strip().upper().split("USD")[0].rstrip("/-_") for row in csv.DictReader(f)}
                return {t for t in tickers if split_ticker(t)[1].split("-")[0] in coins}
            cols = [c.strip() for c in header.strip().split(",")]
            if "timestamp" in cols:
                return {t for t in tickers if any(c.endswith(":close") and f":{split_ticker(t)[1].split('-')[0]}/" in c for c in cols)}
            if not {"exchange", "pair", "contract"} <= set(cols):
                return set(tickers)  # an unknown format: loading says so, in one line
            keys = {(r["exchange"].strip().lower(), r["pair"].strip(), r["contract"].strip())
                    for r in csv.DictReader(f, fieldnames=cols)}
        return {t for t, k in self._leg_series(tickers).items() if k in keys}

    @staticmethod
    def _resolve(given: str, sample: Path, shared_rel: str) -> Path:
        if given == "sample:btc_1h":
            return SAMPLE_BTC_1H
        if given:
            return Path(given).expanduser()
        if sample.exists():
            return sample
        return shared_data_dir() / shared_rel

    # -- contract ----------------------------------------------------------------

    def markets(self) -> dict[str, Market]:
        """dYdX market parameters (:data:`MARKETS`) for each ticker, keyed by the (qualified) ticker."""
        out = {}
        for t in self.tickers:
            plain = split_ticker(t)[1]
            out[t] = Market(ticker=plain, **MARKETS[plain.split("-")[0]])
        return out

    def stats(self) -> dict:
        """Counts of bars, funding rates and oracle prices loaded, and the two file paths."""
        return dict(self.counts, funding_file=str(self.funding_path), prices_file=str(self.prices_path))

    # -- loading -----------------------------------------------------------------------

    def _in_range(self, ts: int) -> bool:
        if self.start_ns is not None and ts < self.start_ns:
            return False
        if self.end_ns is not None and ts >= self.end_ns:
            return False
        return True

    def _wanted(self) -> dict[tuple[str, str], str]:
        """(venue, coin) -> ticker for the funding rows."""
        out = {}
        for t in self.tickers:
            v, plain = split_ticker(t)
            out[((v or self.params.primary_venue).lower(), plain.split("-")[0])] = t
        return out

    def load_events(self) -> list:
        events: list = []
        prices = self._load_prices()
        if not prices:
            raise DataError(f"{self.prices_path}: no prices for {', '.join(self.tickers)} in the replay range")
        missing = [t for t in self.tickers if not any(ev.ticker == t for _, _, ev in prices)]
        if missing:
            raise DataError(f"{self.prices_path}: no prices for {missing[0]!r}")
        events.extend(prices)
        funding = self._load_funding()
        missing = [t for t in self.tickers if not any(ev.ticker == t for _, _, ev in funding)]
        if missing:
            raise DataError(f"{self.funding_path}: no funding rows for {missing[0]!r} (venue/coin not in the file or range)")
        events.extend(funding)
        events.sort(key=lambda e: (e[0], e[1]))
        # attach the last known price to each settled rate (the paper exchange and strategies may use it)
        last: dict[str, Decimal] = {}
        out = []
        for ts, order, ev in events:
            if type(ev) is Bar:
                last[ev.ticker] = ev.close
            elif type(ev) is FundingRate and ev.ticker in last:
                ev = attrs.evolve(ev, oracle_price=last[ev.ticker])
            out.append((ts, order, ev))
        return out

    def _load_funding(self) -> list:
        want = self._wanted()
        out = []
        path = self.funding_path
        with _open(path) as f:
            reader = csv.DictReader(f)
            cols = set(reader.fieldnames or ())
            need = {"ts_utc", "venue", "coin", "interval_h", "rate"}
            if not need <= cols:
                raise DataError(f"{path}: not a funding file in the long format (needs columns {', '.join(sorted(need))})")
            has_hour = "settlement_hour_utc" in cols
            for n, row in enumerate(reader, start=2):
                key = (row["venue"].strip().lower(), row["coin"].strip().upper())
                t = want.get(key)
                if t is None:
                    continue
                where = f"{path}:{n}"
                ts = _parse_utc(row["settlement_hour_utc"] if has_hour and row.get("settlement_hour_utc") else row["ts_utc"], where)
                if not self._in_range(ts):
                    continue
                interval = int(_dec(row["interval_h"], where))
                if interval <= 0:
                    raise DataError(f"{where}: interval_h must be positive, got {row['interval_h']!r}")
                rate = _dec(row["rate"], where)
                out.append((ts, 1, FundingRate(t, ts, rate / interval, settled=True, interval_h=interval)))
                self.counts["funding_rates"] += 1
        return out

    def _load_prices(self) -> list:
        path = self.prices_path
        with _open(path) as f:
            header = f.readline()
            if "cryptodatadownload" in header.lower():
                return self._load_cdd(path)
        cols = [c.strip() for c in header.strip().split(",")]
        if {"time", "exchange", "pair", "contract", "close"} <= set(cols):
            return self._load_aha(path)
        if "timestamp" in cols and any(c.endswith(":close") for c in cols):
            return self._load_merged(path, cols)
        raise DataError(f"{path}: unknown price format (expected AHA-HH all_exchanges.csv or merged bars with a timestamp column)")

    def _leg_series(self, tickers: tuple | None = None) -> dict[str, tuple[str, str, str]]:
        """ticker -> (exchange, pair, contract) in the AHA-HH file, for ``tickers`` (default the feed's)."""
        out = {}
        for t in self.tickers if tickers is None else tickers:
            v, plain = split_ticker(t)
            coin = plain.split("-")[0]
            if v is None:
                if self.params.primary_price == "spot":
                    out[t] = (self.params.spot_exchange, f"{coin}/USDT", "spot")
                else:
                    out[t] = (self.params.spot_exchange, f"{coin}USDT", "perpetual")
            else:
                out[t] = (v.lower(), f"{coin}USDT", "perpetual")
        return out

    def _load_aha(self, path: Path) -> list:
        tz = ZoneInfo(self.params.prices_timezone)
        series = self._leg_series()
        by_key: dict[tuple[str, str, str], list[str]] = {}
        for t, k in series.items():
            by_key.setdefault(k, []).append(t)
        rows: dict[str, list] = {t: [] for t in self.tickers}
        with _open(path) as f:
            reader = csv.DictReader(f)
            for n, row in enumerate(reader, start=2):
                key = (row["exchange"].strip().lower(), row["pair"].strip(), row["contract"].strip())
                ts_list = by_key.get(key)
                if not ts_list:
                    continue
                where = f"{path}:{n}"
                try:
                    local = datetime.strptime(row["time"].strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=tz)
                except ValueError:
                    raise DataError(f"{where}: not a time: {row['time']!r}") from None
                open_ns = int(local.astimezone(timezone.utc).timestamp()) * NS
                vals = [_dec(row[k], where) for k in ("open", "high", "low", "close", "volume")]
                for t in ts_list:
                    rows[t].append((open_ns, vals))
        out = []
        for t, rs in rows.items():
            rs.sort(key=lambda r: r[0])
            if len(rs) < 2:
                continue
            interval_ns = rs[1][0] - rs[0][0]
            for i, (open_ns, (o, h, lo, c, v)) in enumerate(rs):
                step = (rs[i + 1][0] - open_ns) if i + 1 < len(rs) else interval_ns
                step = min(step, interval_ns) if step > 0 else interval_ns
                close_ns = open_ns + step
                if not self._in_range(close_ns):
                    continue
                out.append((close_ns, 0, Bar(t, close_ns, o, h, lo, c, v, step // NS)))
                self.counts["bars"] += 1
                if split_ticker(t)[0] is None:
                    out.append((close_ns, 0, OraclePrice(t, close_ns, c)))
                    self.counts["oracle_prices"] += 1
        return out

    def _load_cdd(self, path: Path) -> list:
        """A CryptoDataDownload export (URL banner line, then ``Unix,Date,Symbol,Open,High,Low,Close,...``,
        newest row first; ``Unix`` = bar open, ms UTC): one symbol's bars for every leg of its coin."""
        rows = []
        with _open(path) as f:
            f.readline()  # banner
            reader = csv.DictReader(f)
            need = {"Unix", "Symbol", "Open", "High", "Low", "Close"}
            if not need <= set(reader.fieldnames or ()):
                raise DataError(f"{path}: CryptoDataDownload file without the columns {', '.join(sorted(need))}")
            vol_col = "Volume Base Asset" if "Volume Base Asset" in reader.fieldnames else "Volume"
            for n, row in enumerate(reader, start=3):
                where = f"{path}:{n}"
                sym = row["Symbol"].strip().upper()
                coin = sym.split("USD")[0].rstrip("/-_")
                open_ns = int(_dec(row["Unix"], where)) * 1_000_000
                vals = [_dec(row[k], where) for k in ("Open", "High", "Low", "Close")] + [_dec(row.get(vol_col) or "0", where)]
                rows.append((open_ns, coin, vals))
        rows.sort(key=lambda r: r[0])
        if len(rows) < 2:
            raise DataError(f"{path}: fewer than two bars")
        steps = sorted(b[0] - a[0] for a, b in zip(rows, rows[1:]) if b[0] > a[0])
        interval = steps[0] if steps else 3600 * NS
        out = []
        for open_ns, coin, (o, h, lo, c, v) in rows:
            close_ns = open_ns + interval
            if not self._in_range(close_ns):
                continue
            for t in self.tickers:
                if split_ticker(t)[1].split("-")[0] != coin:
                    continue
                out.append((close_ns, 0, Bar(t, close_ns, o, h, lo, c, v, interval // NS)))
                self.counts["bars"] += 1
                if split_ticker(t)[0] is None:
                    out.append((close_ns, 0, OraclePrice(t, close_ns, c)))
                    self.counts["oracle_prices"] += 1
        return out

    def _load_merged(self, path: Path, cols: list[str]) -> list:
        coins = {t: split_ticker(t)[1].split("-")[0] for t in self.tickers}
        prefix = {}
        for t, coin in coins.items():
            cands = [c[: -len(":close")] for c in cols if c.endswith(":close") and f":{coin}/" in c]
            if not cands:
                raise DataError(f"{path}: no price columns for {coin} (wanted '<exchange>:{coin}/USDT:close')")
            prefix[t] = cands[0]
        out = []
        prev = None
        interval = None
        with _open(path) as f:
            reader = csv.DictReader(f)
            for n, row in enumerate(reader, start=2):
                where = f"{path}:{n}"
                open_ns = int(_dec(row["timestamp"], where)) * 1_000_000
                if prev is not None and interval is None:
                    interval = open_ns - prev
                prev = open_ns
                step = interval or 300 * NS
                close_ns = open_ns + step
                if not self._in_range(close_ns):
                    continue
                for t, p in prefix.items():
                    vals = [_dec(row[f"{p}:{k}"], where) for k in ("open", "high", "low", "close", "volume")]
                    out.append((close_ns, 0, Bar(t, close_ns, *vals, step // NS)))
                    self.counts["bars"] += 1
                    if split_ticker(t)[0] is None:
                        out.append((close_ns, 0, OraclePrice(t, close_ns, vals[3])))
                        self.counts["oracle_prices"] += 1
        # the first bar's interval is known only after the second row: fix it up
        if interval is not None:
            fixed = []
            for ts, o, ev in out:
                if type(ev) is Bar and ev.interval_s != interval // NS:
                    ev = attrs.evolve(ev, ts_ns=ev.ts_ns - 300 * NS + interval, interval_s=interval // NS)
                    ts = ev.ts_ns
                fixed.append((ts, o, ev))
            out = fixed
        return out
