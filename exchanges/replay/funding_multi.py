"""The ``funding_multi`` feed: many coins' settled funding on two venues, with prices, for funding-arbitrage backtests.

Inputs (``[feed.funding_multi]``, :class:`FundingMultiParams`):

- a funding file in the project's long format (``ts_utc,venue,coin,interval_h,rate``, UTC;
  the 2020-2023 file also has ``settlement_hour_utc,market``), e.g.
  ``../shared/data/funding/derived/funding_hyperliquid1h_vs_binance8h_7coins_2023-05_2026-03_utc.csv.gz``
  (Hyperliquid hourly and Binance USD-M 8-hourly funding for AVAX BNB BTC DOGE ETH SOL XRP,
  2023-05-12 to 2026-03-07). ``rate`` is the venue's rate per ``interval_h`` hours; each row
  becomes a settled :class:`~perpbot.core.model.FundingRate` with ``rate_1h = rate / interval_h``
  and the row's ``interval_h`` (per market and per row: intervals are data, never constants).
  Binance settlement times carry a few ms (``08:00:00.002Z``): times are floored to the second;
- prices, one of

  * ``hyperliquid`` (default): the Hyperliquid panels ``hyperliquid_<COIN>_*.parquet`` of
    ``../shared/data/funding/pietro_hyperliquid_1h/`` (column ``close_perp``; the data set's
    README: "Hyperliquid price and volume columns are daily values repeated per hour" -- in
    fact 8-hourly until 2025-08, hourly after). A bar is emitted at each row where the value
    changes, stamped with that row's time, its interval the time since the previous change;
  * a merged-bars CSV (``timestamp`` = bar open in ms UTC, ``<exchange>:<COIN>/USDT:<field>``
    columns; e.g. ``examples/data/bars/merged_ohlcv_df_BTC-ETH_2024-02-01_to_2024-03-08.csv.gz``,
    Binance spot 5-minute bars), aggregated to ``bar_minutes`` bars stamped with their CLOSE time;

  both legs of a coin are marked to the one price series (no basis between the venues in
  this data set: the backtest's price PnL is the hedge's residual, not a basis trade).

Tickers: ``COIN-USD`` is the primary venue (``primary_venue``, default ``hyperliquid``),
``<hedge_venue>:COIN-USD`` the other (default ``binance``). :meth:`FundingMultiFeed.markets`
reports every coin with funding rows on BOTH venues and prices -- the coins a funding
arbitrage can scan; the run's tickers select among them. A run that names no tickers lists
them all through this feed (built without tickers) and trades what its strategy selects
(:func:`perpbot.core.bot.wiring.discover_tickers`). Market parameters: dYdX v4's
(``dydx_markets.json``) where it has the coin, else :data:`EXTRA_MARKETS`.

``sample:hl_binance_btc_eth`` (for ``funding_file``) selects the embedded real slice
(``examples/data/funding/funding_binance8h_hyperliquid1h_BTC-ETH_2024-02-01_to_2024-03-08_utc.csv.gz``
with the merged Binance spot bars of the same period; both MIT, ``examples/data/SOURCES.md``),
which runs without the shared data.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import AsyncIterator

import attrs

from perpbot.core.errors import ConfigError, DataError
from perpbot.core.feed import MergedEventFeed
from perpbot.core.model import Bar, FundingRate, Market, OraclePrice
from perpbot.core.params import in_range, param, parse_params

from perpbot.exchanges.replay.markets import known_tickers, load_markets
from perpbot.exchanges.replay.timeparse import epoch_ns

D = Decimal
NS = 1_000_000_000
REPO = Path(__file__).resolve().parents[2]
SAMPLE_FUNDING = REPO / "examples" / "data" / "funding" / "funding_binance8h_hyperliquid1h_BTC-ETH_2024-02-01_to_2024-03-08_utc.csv.gz"
SAMPLE_BARS = REPO / "examples" / "data" / "bars" / "merged_ohlcv_df_BTC-ETH_2024-02-01_to_2024-03-08.csv.gz"
SHARED_FUNDING = "funding/derived/funding_hyperliquid1h_vs_binance8h_7coins_2023-05_2026-03_utc.csv.gz"
SHARED_HL_DIR = "funding/pietro_hyperliquid_1h"

#: Market parameters of coins the dYdX metadata file lacks: dYdX v4 mainnet values from the
#: 125-market indexer response in the project data set
#: (``../shared/data/dydx_v4/nautilus_py/http/list_perpetual_markets.json``, entries ``BNB-USD`` and ``XRP-USD``).
EXTRA_MARKETS = {
    "BNB-USD": dict(clob_pair_id=37, tick_size="0.1", step_size="0.01", atomic_resolution=-8, quantum_conversion_exponent=-9,
                    step_base_quantums=1_000_000, subticks_per_tick=1_000_000, initial_margin_fraction="0.1",
                    maintenance_margin_fraction="0.05"),
    "XRP-USD": dict(clob_pair_id=32, tick_size="0.0001", step_size="10", atomic_resolution=-5, quantum_conversion_exponent=-9,
                    step_base_quantums=1_000_000, subticks_per_tick=1_000_000, initial_margin_fraction="0.1",
                    maintenance_margin_fraction="0.05"),
}


def shared_data_dir() -> Path:
    """The shared data folder: ``$PERPBOT_SHARED_DATA``, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("PERPBOT_SHARED_DATA", REPO.parent / "shared" / "data"))


@attrs.frozen
class FundingMultiParams:
    """Parameters of the ``funding_multi`` feed (``[feed.funding_multi]``).

    :raises ValueError: (at construction) ``bar_minutes`` below 1.
    """

    funding_file: str = param("", "funding CSV in the long format (UTC); default: the shared 7-coin Hyperliquid/Binance file; "
                                  "'sample:hl_binance_btc_eth' = the embedded BTC/ETH slice")
    prices: str = param("", "'hyperliquid' (the shared Hyperliquid panels), a folder of them, or a merged-bars CSV; "
                            "default: hyperliquid, or the embedded bars with the sample")
    primary_venue: str = param("hyperliquid", "the funding file's venue whose rows go to the unqualified (primary) tickers")
    hedge_venue: str = param("binance", "the other venue: its rows go to '<hedge_venue>:COIN-USD'")
    coins: tuple[str, ...] = param((), "coins to load (default: every coin of the file)")
    bar_minutes: int = param(5, "merged-bars CSV: aggregate to bars of this many minutes (5: the embedded file's own; "
                                "coarser bars make the paper venue's bar fills, at the next bar's open with half its range, dearer)",
                             in_range(1))
    start: str = param("", "first UTC time to replay (ISO date or datetime; default: the data's start)")
    end: str = param("", "replay before this UTC time (default: where the first (venue, coin) funding series ends)")
    files: tuple[str, ...] = param((), "alias of prices (the CLI's --data)")
    funding_files: tuple[str, ...] = param((), "alias of funding_file (the CLI's --funding)")
    speed: Decimal = param(D(0), "accepted for CLI compatibility; this replay always runs as fast as possible")


def _open_text(path: Path):
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _dec(text: str, where: str) -> Decimal:
    try:
        d = D(text.strip())
    except (InvalidOperation, AttributeError):
        raise DataError(f"{where}: not a number: {text!r}") from None
    if not d.is_finite():
        raise DataError(f"{where}: not a finite number: {text!r}")
    return d


def _time(text: str, where: str) -> int:
    try:
        return epoch_ns(text.strip())
    except (ValueError, TypeError):
        raise DataError(f"{where}: not a time: {text!r}") from None


def read_funding(path: Path, venues: tuple[str, str], coins: set[str] | None, start: int | None, end: int | None) -> dict:
    """The funding rows of ``venues`` (lower-case names), per ``(venue, coin)``.

    :returns: ``{(venue, COIN): [(ts_ns floored to the second, rate_1h, interval_h), ...]}`` in time order.
    :raises DataError: a missing file, a missing column, or a malformed row (naming file:line and value).
    """
    out: dict[tuple[str, str], list] = {}
    with _open_text(path) as f:
        reader = csv.reader(f)
        header = [c.strip().lower() for c in next(reader, [])]
        need = ("ts_utc", "venue", "coin", "interval_h", "rate")
        if not all(c in header for c in need):
            raise DataError(f"{path}: not a funding file in the long format (needs columns {', '.join(need)})")
        i_ts = header.index("settlement_hour_utc") if "settlement_hour_utc" in header else header.index("ts_utc")
        i_v, i_c, i_i, i_r = (header.index(c) for c in need[1:])
        for n, row in enumerate(reader, start=2):
            venue = row[i_v].strip().lower()
            if venue not in venues:
                continue
            coin = row[i_c].strip().upper()
            if coins is not None and coin not in coins:
                continue
            where = f"{path}:{n}"
            ts = _time(row[i_ts], where)
            ts -= ts % NS
            if (start is not None and ts < start) or (end is not None and ts >= end):
                continue
            interval = _dec(row[i_i], where)
            if interval <= 0 or interval != interval.to_integral_value():
                raise DataError(f"{where}: interval_h must be a positive whole number of hours, got {row[i_i]!r}")
            out.setdefault((venue, coin), []).append((ts, _dec(row[i_r], where) / interval, int(interval)))
    for rows in out.values():
        rows.sort(key=lambda r: r[0])
    return out


def read_hyperliquid_prices(folder: Path, coins, start: int | None, end: int | None) -> dict[str, list]:
    """Price bars per coin from the Hyperliquid panels (``hyperliquid_<COIN>_*.parquet``, column ``close_perp``).

    :returns: ``{COIN: [(ts_ns, close USD, interval_s), ...]}``: one entry per change of the value.
    :raises DataError: pyarrow missing, or a panel without the columns.
    """
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("reading the Hyperliquid parquet panels needs pyarrow (pip install 'perpbot[research]')") from None
    out = {}
    for coin in coins:
        files = sorted(folder.glob(f"hyperliquid_{coin}_*.parquet"))
        if not files:
            continue
        try:
            table = pq.read_table(files[0], columns=["timestamp", "close_perp"])
        except (KeyError, ValueError, OSError) as exc:
            raise DataError(f"{files[0]}: not a Hyperliquid panel with timestamp and close_perp ({exc})") from None
        rows = []
        prev_v = prev_ts = None
        # timestamp[ns, tz=UTC] -> int64 ns since the epoch
        for ts, v in zip(table.column("timestamp").cast("int64").to_pylist(), table.column("close_perp").to_pylist()):
            if v is None or v != v or ts is None:
                continue
            if v == prev_v:
                continue
            step = (ts - prev_ts) // NS if prev_ts is not None else 3600
            prev_v, prev_ts = v, ts
            if (start is not None and ts < start) or (end is not None and ts >= end):
                continue
            rows.append((ts, D(repr(v)), max(1, step)))
        out[coin] = rows
    return out


def read_merged_bars(path: Path, coins, minutes: int, start: int | None, end: int | None) -> dict[str, list]:
    """Bars per coin from a merged-bars CSV (``timestamp`` ms UTC bar open, ``<ex>:<COIN>/USDT:<field>`` columns),
    aggregated to ``minutes``-minute bars.

    :returns: ``{COIN: [(close ts_ns, (open, high, low, close, volume)), ...]}`` (Decimals, USD and base units).
    :raises DataError: no ``timestamp`` column or a malformed value.
    """
    span = minutes * 60 * NS
    out: dict[str, dict] = {}
    with _open_text(path) as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        if "timestamp" not in cols:
            raise DataError(f"{path}: not a merged-bars CSV (no timestamp column)")
        prefix = {}
        for coin in coins:
            cands = [c[: -len(":close")] for c in cols if c.endswith(":close") and f":{coin}/" in c]
            if cands:
                prefix[coin] = cands[0]
        for n, row in enumerate(reader, start=2):
            where = f"{path}:{n}"
            open_ns = int(_dec(row["timestamp"], where)) * 1_000_000
            close_ns = open_ns - open_ns % span + span
            if (start is not None and close_ns < start) or (end is not None and close_ns >= end):
                continue
            for coin, p in prefix.items():
                o, h, lo, c, v = (_dec(row[f"{p}:{k}"], where) for k in ("open", "high", "low", "close", "volume"))
                agg = out.setdefault(coin, {})
                cur = agg.get(close_ns)
                agg[close_ns] = [o, h, lo, c, v] if cur is None else [cur[0], max(cur[1], h), min(cur[2], lo), c, cur[4] + v]
    return {coin: sorted((ts, tuple(vals)) for ts, vals in agg.items()) for coin, agg in out.items()}


class FundingMultiFeed(MergedEventFeed):
    """Replay of many coins' funding on two venues with prices (see the module docstring).

    :raises DataError: (at construction) the shared data is absent (one line naming the
        file and the embedded sample to use instead), or a file is malformed.
    :raises ConfigError: a requested coin is not in the data.
    """

    name = "funding_multi"
    description = "funding-arbitrage backtest: many coins' funding on two venues + prices (Hyperliquid 1h vs Binance 8h, 7 coins)"
    replay = True

    def __init__(self, config, context):
        super().__init__(config, context)
        p = self.params = parse_params(FundingMultiParams, config, "feed funding_multi")
        if len(p.files) > 1 or len(p.funding_files) > 1:
            raise DataError("feed funding_multi: one price source and one funding file (got several)")
        funding = p.funding_file or (p.funding_files[0] if p.funding_files else "")
        prices = p.prices or (p.files[0] if p.files else "")
        self.sample = funding == "sample:hl_binance_btc_eth"
        if self.sample:
            self.funding_path = SAMPLE_FUNDING
            prices = prices or str(SAMPLE_BARS)
        else:
            self.funding_path = Path(funding).expanduser() if funding else shared_data_dir() / SHARED_FUNDING
        if not self.funding_path.exists():
            raise DataError(
                f"feed funding_multi: funding file {self.funding_path} not found (the shared data is absent?); "
                "run the embedded slice with funding_file = 'sample:hl_binance_btc_eth'"
            )
        if not prices or prices == "hyperliquid":
            self.prices_path = shared_data_dir() / SHARED_HL_DIR
        else:
            self.prices_path = Path(prices).expanduser()
        if not self.prices_path.exists():
            raise DataError(f"feed funding_multi: prices {self.prices_path} not found")
        self.primary = p.primary_venue.strip().lower()
        self.hedge = p.hedge_venue.strip().lower()
        self.start_ns = _time(p.start, "feed funding_multi: start") if p.start else None
        self.end_ns = _time(p.end, "feed funding_multi: end") if p.end else None
        self.tickers = tuple(getattr(context, "tickers", None) or ())
        self.counts = {"bars": 0, "funding_rates": 0, "oracle_prices": 0}
        coins = {c.strip().upper() for c in p.coins} or None
        funding = read_funding(self.funding_path, (self.primary, self.hedge), None, self.start_ns, self.end_ns)
        listed = sorted({c for _, c in funding})
        if coins:
            absent = sorted(coins - set(listed))
            if absent:
                raise ConfigError(f"feed funding_multi: coin {absent[0]!r} has no funding rows in {self.funding_path} (found: {', '.join(listed) or 'none'})")
            listed = sorted(coins)
        if self.end_ns is None and funding:
            # by default stop where the first venue's data ends (funding after it would be paid on one leg only)
            self.end_ns = min(rows[-1][0] + rows[-1][2] * 3600 * NS for rows in funding.values() if rows)
            funding = {k: [r for r in rows if r[0] < self.end_ns] for k, rows in funding.items()}
        self._funding = {k: rows for k, rows in funding.items() if k[1] in listed}
        both = [c for c in listed if (self.primary, c) in self._funding and (self.hedge, c) in self._funding]
        if self.prices_path.is_dir():
            self._prices = {c: [(ts, (px, px, px, px, D(0)), step) for ts, px, step in rows]
                            for c, rows in read_hyperliquid_prices(self.prices_path, both, self.start_ns, self.end_ns).items()}
        else:
            step = p.bar_minutes * 60
            self._prices = {c: [(ts, vals, step) for ts, vals in rows]
                            for c, rows in read_merged_bars(self.prices_path, both, p.bar_minutes, self.start_ns, self.end_ns).items()}
        #: coins listed on both venues with prices, in alphabetical order
        self.coins = [c for c in both if self._prices.get(c)]
        self.intervals = {(v, c): rows[-1][2] for (v, c), rows in self._funding.items()}

    # -- contract ----------------------------------------------------------------

    def markets(self) -> dict[str, Market]:
        """``COIN-USD`` and ``<hedge>:COIN-USD`` for every coin listed on both venues with prices.

        :raises DataError: a coin with no market parameters (neither the dYdX metadata nor :data:`EXTRA_MARKETS`).
        """
        known = set(known_tickers())
        out = {}
        for coin in self.coins:
            t = f"{coin}-USD"
            if t in known:
                m = load_markets([t])[t]
            elif t in EXTRA_MARKETS:
                m = Market(ticker=t, **EXTRA_MARKETS[t])
            else:
                raise DataError(f"feed funding_multi: no market parameters for {t!r} (dYdX metadata or EXTRA_MARKETS)")
            out[t] = m
            out[f"{self.hedge}:{t}"] = m
        return out

    def stats(self) -> dict:
        """Counts of bars, funding rates and oracle prices, the coins, and the input paths."""
        return dict(self.counts, coins=",".join(self.coins), funding_file=str(self.funding_path), prices=str(self.prices_path))

    # -- building ---------------------------------------------------------------------

    def _wanted(self) -> set[str]:
        every = {t for c in self.coins for t in (f"{c}-USD", f"{self.hedge}:{c}-USD")}
        return set(self.tickers) & every if self.tickers else every

    def load_events(self) -> list:
        wanted = self._wanted()
        events = []
        for coin in self.coins:
            plain, hedged = f"{coin}-USD", f"{self.hedge}:{coin}-USD"
            for ts, (o, h, lo, c, v), step in self._prices[coin]:
                for t in (plain, hedged):
                    if t in wanted:
                        events.append((ts, 0, Bar(t, ts, o, h, lo, c, v, step)))
                        self.counts["bars"] += 1
                if plain in wanted:
                    events.append((ts, 0, OraclePrice(plain, ts, c)))
                    self.counts["oracle_prices"] += 1
            for venue, t in ((self.primary, plain), (self.hedge, hedged)):
                if t not in wanted:
                    continue
                for ts, rate_1h, interval in self._funding[(venue, coin)]:
                    events.append((ts, 1, FundingRate(t, ts, rate_1h, settled=True, interval_h=interval)))
                    self.counts["funding_rates"] += 1
        events.sort(key=lambda e: (e[0], e[1]))
        last: dict[str, Decimal] = {}
        out = []
        for ts, order, ev in events:
            if order == 0 and type(ev) is Bar:
                last[ev.ticker] = ev.close
            elif order == 1 and ev.ticker in last:
                ev = attrs.evolve(ev, oracle_price=last[ev.ticker])
            out.append((ts, order, ev))
        return out
