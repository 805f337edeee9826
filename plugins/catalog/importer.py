"""``runbot.py download --from-file``: a catalog built from local files, no network.

The bar file is read by the replay feed's own reader (:class:`perpbot.exchanges.replay.bars.BarFile`:
CSV, CSV.gz or Parquet, merged or simple layout, every row validated), so whatever replays as
``--data FILE`` imports the same way. Its bars are stamped at their close time; the catalog
stores open times (``close - interval``). The interval must be one of dYdX's candle resolutions
(:data:`perpbot.exchanges.replay.catalog.RESOLUTIONS`), which names the kind (300 s ->
``candles-5MINS``).

A funding CSV (the replay feed's long format, :mod:`perpbot.exchanges.replay.funding`) adds the
rows of ``--venue`` (its ``venue`` column) as that venue's funding. Venue symbols map to dYdX
tickers as in the replay (``binance:BTC/USDT`` -> ``BTC-USD``, :class:`~perpbot.exchanges.replay.symbols.SymbolMapper`).

Every day is written complete (a file does not grow), with its candle gaps recorded.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from perpbot.core.errors import ConfigError, DataError
from perpbot.core.model import Bar, FundingRate
from perpbot.exchanges.replay.bars import BarFile
from perpbot.exchanges.replay.catalog import RESOLUTIONS
from perpbot.exchanges.replay.funding import FundingFile
from perpbot.exchanges.replay.inputs import resolve_files, sniff
from perpbot.exchanges.replay.symbols import SymbolMapper
from perpbot.plugins.catalog.download import DAY_NS, DownloadResult, find_gaps
from perpbot.plugins.catalog.store import CatalogWriter


def _day(ns: int) -> str:
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc).date().isoformat()


def _one_file(name: str, what: str) -> Path:
    paths = resolve_files([name])
    if len(paths) != 1:
        raise ConfigError(f"{what}: {name!r} names {len(paths)} files; give one file")
    if not paths[0].is_file():
        raise DataError(f"{what}: {paths[0]}: no such file")
    return paths[0]


def import_files(writer: CatalogWriter, venue: str, bars_name: str, funding_name: str | None,
                 tickers: list[str] | None, start: str | None, end: str | None) -> DownloadResult:
    """Write the bars (and funding) of local files into the catalog as ``venue``; blocking (run it in a thread).

    :param bars_name: a bar file or ``sample:bars``.
    :param funding_name: a funding CSV, ``sample:funding`` or None.
    :param tickers: dYdX tickers to keep (None or empty: every market in the file).
    :param start: / ``end``: ``YYYY-MM-DD`` days to keep, both included (None: no bound).
    :raises ConfigError: a bar interval that is not a dYdX resolution, a ticker not in the file
        (naming those found).
    :raises DataError: a missing, unrecognised or malformed file (file and line named), or no
        bars in the range.
    """
    mapper = SymbolMapper({})
    path = _one_file(bars_name, "--from-file")
    if sniff(path) != "bars":
        raise DataError(f"--from-file: {path} is not a bar file (CSV/Parquet with timestamp and OHLCV columns)")
    src = BarFile(path, lambda s: mapper(s))
    found = sorted({mapper(s) for s in src.symbols()})
    wanted = set(tickers or found)
    missing = sorted(wanted - set(found))
    if missing:
        raise ConfigError(f"--ticker: {missing[0]} is not in {path.name} (found: {', '.join(found)})")
    lo = None if start is None else _ns(start)
    hi = None if end is None else _ns(end) + DAY_NS
    rows: dict[tuple[str, str], list] = {}
    interval = None
    for _, batch in src.events():
        for b in batch:
            if not isinstance(b, Bar) or b.ticker not in wanted:
                continue
            interval = b.interval_s
            open_ns = b.ts_ns - b.interval_s * 1_000_000_000
            if (lo is not None and open_ns < lo) or (hi is not None and open_ns >= hi):
                continue
            rows.setdefault((b.ticker, _day(open_ns)), []).append(
                {"ts_ns": open_ns, "open": b.open, "high": b.high, "low": b.low, "close": b.close,
                 "volume": b.volume, "usd_volume": "", "trades": 0})
    if not rows:
        raise DataError(f"no data: {path.name} has no bars for {', '.join(sorted(wanted))} between "
                        f"{start or 'its start'} and {end or 'its end'}")
    res_name = next((k for k, v in RESOLUTIONS.items() if v == interval), None)
    if res_name is None:
        raise ConfigError(f"--from-file: {path.name} has {interval}-second bars; the catalog holds dYdX "
                          f"resolutions ({', '.join(f'{v}s' for v in RESOLUTIONS.values())})")
    kind = f"candles-{res_name}"
    step = interval * 1_000_000_000
    res = DownloadResult()
    res.markets = sorted(wanted)
    span: dict[str, tuple[int, int]] = {}  # ticker -> (first open, last open + step): the file's own coverage
    for (ticker, _d), rs in rows.items():
        a, b = min(r["ts_ns"] for r in rs), max(r["ts_ns"] for r in rs) + step
        old = span.get(ticker)
        span[ticker] = (a, b) if old is None else (min(a, old[0]), max(b, old[1]))
    for (ticker, d), rs in sorted(rows.items()):
        day0 = _ns(d)
        first, last = span[ticker]
        gaps = find_gaps([r["ts_ns"] for r in rs], max(day0, first), min(day0 + DAY_NS, last), step)
        writer.write_partition(venue, ticker, kind, d, rs, complete=True, source=str(path), gaps=gaps)
        _count(res, ticker, kind, d, len(rs), gaps)
    if funding_name:
        _import_funding(writer, venue, funding_name, wanted, {d for _, d in rows}, lo, hi, res)
    return res


def _import_funding(writer, venue, name, wanted, days, lo, hi, res) -> None:
    path = _one_file(name, "--funding-file")
    if sniff(path) != "funding":
        raise DataError(f"--funding-file: {path} is not a funding CSV")
    mapper = SymbolMapper({})
    src = FundingFile(path, lambda v, coin: [mapper(coin)] if v == venue and mapper(coin) in wanted else [])
    rows: dict[tuple[str, str], list] = {}
    for _, batch in src.events():
        for f in batch:
            if not isinstance(f, FundingRate) or (lo is not None and f.ts_ns < lo) or (hi is not None and f.ts_ns >= hi):
                continue
            rows.setdefault((f.ticker, _day(f.ts_ns)), []).append(
                {"ts_ns": f.ts_ns, "rate_1h": f.rate_1h, "interval_h": f.interval_h, "price": f.oracle_price})
    if not rows:
        raise DataError(f"--funding-file: {path.name} has no {venue} funding for {', '.join(sorted(wanted))} "
                        f"in the bars' days (its venue column names the venue)")
    for (ticker, d) in sorted({(t, d) for t in wanted for d in days}):
        rs = rows.get((ticker, d), [])
        writer.write_partition(venue, ticker, "funding", d, rs, complete=True, source=str(path))
        _count(res, ticker, "funding", d, len(rs), [])


def _count(res: DownloadResult, ticker, kind, d, n, gaps) -> None:
    res.rows[kind] = res.rows.get(kind, 0) + n
    res.total_rows_in_range += n
    res.fetched_days += 1
    if gaps:
        res.gaps[(ticker, kind, d)] = gaps


def _ns(d: str) -> int:
    return int(datetime.fromisoformat(d).replace(tzinfo=timezone.utc).timestamp()) * 1_000_000_000
