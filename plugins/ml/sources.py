"""Data for ``ml train`` / ``ml evaluate``: named files -> one time-ordered list of events.

``--data`` names (repeatable, or comma-separated):

- ``catalog:PATH``: a Parquet catalog written by ``runbot.py download`` (its candles as bars with
  its settled funding, :class:`perpbot.exchanges.replay.catalog.CatalogSource`);
- ``sample:bars``: the embedded Binance 5-minute BTC/ETH bars (``examples/data/SOURCES.md``);
- a *panel* Parquet file: one market on one venue per file, hourly rows with ``timestamp`` (bar
  open, UTC) and ``<field>_<venue>`` columns, ``open_perp_<v>``, ``high_perp_<v>``,
  ``low_perp_<v>``, ``close_perp_<v>``, ``volume_perp_<v>``, ``funding_rate_1h_<v>`` (a per-hour
  fraction), ``open_interest_usd_<v>`` -- the layout of ``../shared/data/bars/pietro_okx_1h/`` and
  ``pietro_binance_1h/`` (PietroC21/Crypto-PerpetualFutures, MIT). The file name gives venue and
  coin (``okx_SOL_2020-09-30_2026-03-05.parquet`` -> ticker ``okx:SOL-USD``). Each row becomes a
  :class:`~perpbot.core.model.Bar` (perp OHLCV), a settled
  :class:`~perpbot.core.model.FundingRate` and an :class:`~perpbot.core.analysis.OpenInterest`
  (USD notional), ALL stamped at the bar's close (open + 1 h): a value printed for an hour is
  used only once that hour is over, never earlier. Empty cells give no event;
- any other bar file the replay reads (:class:`perpbot.exchanges.replay.bars.BarFile`).

``--funding`` names long-format funding CSVs (``ts_utc,venue,coin,interval_h,rate``, or
``sample:funding``), routed to the bars' tickers of the same coin from venue ``funding_venue``
(default ``binance``). ``--oi`` names open-interest Parquet files with ``open_interest`` and a
``datetime``/``timestamp`` column, one coin per file named ``<COIN>USDT.parquet`` (Bybit's layout
in ``../shared/data/bars/pietro_bybit_open_interest_1h/``, 2020-12 to 2026-02, where the panels' own
open interest covers only 2026-01 to 2026-03), stamped one hour after their time like the panels'
(the sample's hour must be over); an ``--oi`` file REPLACES the panels' open interest of its coin
(one series per market: two venues' OI interleaved would read as jumps).
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from perpbot.core.analysis import OpenInterest
from perpbot.core.errors import ConfigError, DataError
from perpbot.core.model import Bar, FundingRate

__all__ = ["load_events", "panel_events", "oi_events", "split_names"]

HOUR_NS = 3600 * 1_000_000_000
_PANEL_RE = re.compile(r"^([a-z0-9]+)_([A-Za-z0-9]+)_")


def split_names(values) -> list[str]:
    """``["a,b", "c"]`` (or ``"a,b"``) -> ``["a", "b", "c"]`` (blank items dropped)."""
    if isinstance(values, str):
        values = [values]
    return [v.strip() for item in (values or []) for v in str(item).split(",") if v.strip()]


def _read_parquet(path: Path):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(f"ml: reading {path} needs pyarrow: pip install 'perpbot[research]'") from None
    try:
        return pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"ml: cannot read {path} as Parquet ({str(exc).splitlines()[0]})") from None


def _ts_ns(table, path: Path, names=("timestamp", "datetime")) -> list[int]:
    import pyarrow as pa
    import pyarrow.compute as pc

    name = next((n for n in names if n in table.column_names), None)
    if name is None:
        raise DataError(f"ml: {path} has no time column ({' or '.join(names)}; columns: {', '.join(table.column_names[:8])})")
    col = table.column(name)
    if pa.types.is_timestamp(col.type):
        return pc.cast(pc.cast(col, pa.timestamp("ns", tz=col.type.tz)), pa.int64()).to_pylist()
    if pa.types.is_integer(col.type):
        return col.to_pylist()
    raise DataError(f"ml: {path}: column {name} is {col.type}, not a timestamp")


def _dec(v) -> Decimal:
    return Decimal(repr(float(v)))


def is_panel(path: Path) -> bool:
    """True for a Parquet file with ``close_perp_<venue>`` columns (see the module docstring)."""
    if path.suffix != ".parquet" or not path.is_file():
        return False
    import pyarrow.parquet as pq

    return any(c.startswith("close_perp_") for c in pq.read_schema(path).names)


def panel_events(path: Path) -> list:
    """Bars, settled funding and open interest of one panel file (module docstring), time order.

    :raises DataError: unreadable file, a name without venue and coin, missing columns, a bad bar.
    """
    m = _PANEL_RE.match(path.name)
    if not m:
        raise DataError(f"ml: {path.name}: a panel file is named <venue>_<COIN>_..., e.g. okx_SOL_2020-09-30_2026-03-05.parquet")
    venue, coin = m.group(1).lower(), m.group(2).upper()
    ticker = f"{venue}:{coin}-USD"
    table = _read_parquet(path)
    need = [f"{f}_perp_{venue}" for f in ("open", "high", "low", "close", "volume")]
    missing = [c for c in need if c not in table.column_names]
    if missing:
        raise DataError(f"ml: {path} lacks column {missing[0]} (a panel of venue {venue!r})")
    cols = {c: table.column(c).to_pylist() for c in need}
    fund = table.column(f"funding_rate_1h_{venue}").to_pylist() if f"funding_rate_1h_{venue}" in table.column_names else None
    oi = table.column(f"open_interest_usd_{venue}").to_pylist() if f"open_interest_usd_{venue}" in table.column_names else None
    out: list = []
    o, h, lo, c, v = (cols[n] for n in need)
    for i, ts in enumerate(_ts_ns(table, path)):
        t = ts + HOUR_NS
        if None not in (o[i], h[i], lo[i], c[i], v[i]):
            if min(o[i], h[i], lo[i], c[i]) <= 0 or not (lo[i] <= min(o[i], c[i]) and max(o[i], c[i]) <= h[i]) or v[i] < 0:
                raise DataError(f"ml: {path}: row {i}: inconsistent bar open={o[i]} high={h[i]} low={lo[i]} close={c[i]} volume={v[i]}")
            out.append(Bar(ticker, t, _dec(o[i]), _dec(h[i]), _dec(lo[i]), _dec(c[i]), _dec(v[i]), 3600))
        if fund is not None and fund[i] is not None:
            out.append(FundingRate(ticker, t, _dec(fund[i]), True, 1))
        if oi is not None and oi[i] is not None and oi[i] > 0:
            out.append(OpenInterest(ticker, t, _dec(oi[i])))
    return out


def oi_events(path: Path, tickers: list[str]) -> list:
    """Open-interest samples of ``<COIN>USDT.parquet`` for every ticker of that coin (module docstring)."""
    coin = re.sub(r"(USDT|USD|USDC)$", "", path.name.split(".")[0].upper())
    targets = [t for t in tickers if t.split(":", 1)[-1] == f"{coin}-USD"]
    if not targets:
        raise DataError(f"ml: --oi {path}: no market of coin {coin} in the data (markets: {', '.join(tickers)})")
    table = _read_parquet(path)
    if "open_interest" not in table.column_names:
        raise DataError(f"ml: --oi {path} has no open_interest column (columns: {', '.join(table.column_names[:8])})")
    vals = table.column("open_interest").to_pylist()
    out = []
    for ts, v in zip(_ts_ns(table, path, ("datetime", "timestamp")), vals):
        if v is not None and v > 0:
            out.extend(OpenInterest(t, ts + HOUR_NS, _dec(v)) for t in targets)
    return out


def _bar_source_events(name: str) -> list:
    from perpbot.exchanges.replay import samples
    from perpbot.exchanges.replay.bars import BarFile
    from perpbot.exchanges.replay.catalog import PREFIX, CatalogSource
    from perpbot.exchanges.replay.symbols import SymbolMapper

    if name.startswith(PREFIX):
        src = CatalogSource(name[len(PREFIX):], select=lambda m: m)
    else:
        path = samples.bars_file() if name.lower() == "sample:bars" else Path(name).expanduser()
        if not path.exists():
            raise ConfigError(f"ml: --data {name}: no such file (a bar file, a panel .parquet, catalog:PATH or sample:bars)")
        if is_panel(path):
            return panel_events(path)
        src = BarFile(path, select=SymbolMapper())
    return [ev for _, batch in src.events() for ev in batch]


def load_events(data, funding=None, oi=None, tickers=None, funding_venue: str = "binance") -> tuple[list, list[str]]:
    """Every event of the named data, in time order, and the tickers analysed.

    :param data: ``--data`` names; :param funding: ``--funding`` names; :param oi: ``--oi`` files.
    :param tickers: keep only these markets (``BTC-USD``, or qualified ``okx:SOL-USD``; an unqualified
        one keeps that coin on every venue); None: all.
    :raises ConfigError: no data named, a missing file, a ticker the data does not hold (named with
        the markets held); :raises DataError: a malformed file (from its reader).
    """
    from perpbot.exchanges.replay import samples
    from perpbot.exchanges.replay.funding import FundingFile
    from perpbot.exchanges.replay.symbols import normalize_ticker

    names = split_names(data)
    if not names:
        raise ConfigError("ml: name the data with --data (catalog:PATH, a bar or panel file, or sample:bars)")
    events = [ev for name in names for ev in _bar_source_events(name)]
    held = sorted({ev.ticker for ev in events if isinstance(ev, Bar)})
    if tickers:
        want = [normalize_ticker(t) for t in split_names(tickers)]
        keep = []
        for w in want:
            match = [h for h in held if h == w or (":" not in w and h.split(":", 1)[-1] == w)]
            if not match:
                raise ConfigError(f"ml: --ticker {w}: not in the data (markets: {', '.join(held)})")
            keep.extend(m for m in match if m not in keep)
        held = keep
        events = [ev for ev in events if ev.ticker in held]
    for fname in split_names(funding):
        path = samples.funding_file() if fname.lower() == "sample:funding" else Path(fname).expanduser()
        if not path.exists():
            raise ConfigError(f"ml: --funding {fname}: no such file")

        def route(venue: str, coin: str, _held=tuple(held)) -> list[str]:
            if venue != funding_venue:
                return []
            return [h for h in _held if h.split(":", 1)[-1] == f"{coin.upper()}-USD"]

        events.extend(ev for _, batch in FundingFile(path, route).events() for ev in batch)
    extra_oi = []
    for oname in split_names(oi):
        path = Path(oname).expanduser()
        if not path.exists():
            raise ConfigError(f"ml: --oi {oname}: no such file")
        extra_oi.extend(oi_events(path, held))
    if extra_oi:  # one open-interest series per market: an --oi file replaces the panels' own
        replaced = {ev.ticker for ev in extra_oi}
        events = [ev for ev in events if not (isinstance(ev, OpenInterest) and ev.ticker in replaced)] + extra_oi
    events.sort(key=lambda ev: ev.ts_ns)
    return events, held
