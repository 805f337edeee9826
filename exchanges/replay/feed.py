"""The ``replay`` feed: real recorded market data played through the same pipeline as live data.

Each file's format is sniffed (see :func:`open_source`):

- Binance raw WebSocket recordings ``<recv_ns> <json>`` (:mod:`.binance`): L2 depth
  diffs with update-id continuity checks, trades, bookTicker quotes, REST snapshots;
- OHLCV bar files, CSV/CSV.gz/Parquet (:mod:`.bars`);
- funding-rate CSVs in the project's long format (:mod:`.funding`);
- dYdX indexer recordings from ``runbot.py record`` (:mod:`.dydx`, parsed by the
  dYdX plugin's own reader).

Files are merged by timestamp (one clock for all: a Binance recording's receive
time, a bar's close time, a funding settlement time), one batch per raw message.
Binance files that share a market (a recorder's consecutive files) are read as ONE
stream, in time order, whose book sync carries across files (see :mod:`.binance`);
files of different markets are merged side by side.

Progress (:meth:`ReplayFeed.progress`) is measured in market time: from the first
replayed timestamp to the data's last one. The last timestamp comes from the tail
of each file (:meth:`~.lineio.LineFile.tail`: a plain file's last bytes; a gzip
file decompressed once without parsing, in a background thread started by the
first ``progress()`` call, so a run that shows no progress bar never pays for it).
Before the first data batch the feed emits one :class:`MarketInfo` per market,
with parameters from real dYdX metadata (``dydx_markets.json``).

Config keys (``[feed]`` table or CLI): see :class:`ReplayParams`.
"""

from __future__ import annotations

import asyncio
import heapq
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, AsyncIterator, Iterator, Mapping

import attrs
from loguru import logger

from perpbot.core.errors import ConfigError, DataError
from perpbot.core.feed import BaseFeed
from perpbot.core.model import Market, MarketInfo
from perpbot.core.params import in_range, param, parse_params

from perpbot.exchanges.replay import bars as bars_fmt
from perpbot.exchanges.replay import binance as binance_fmt
from perpbot.exchanges.replay import dydx as dydx_fmt
from perpbot.exchanges.replay import funding as funding_fmt
from perpbot.exchanges.replay import samples
from perpbot.exchanges.replay.lineio import LineFile
from perpbot.exchanges.replay.markets import MARKETS_FILE, known_tickers, load_markets
from perpbot.exchanges.replay.symbols import SymbolMapper, normalize_ticker, split_venue

_monotonic = time.monotonic  # pacing clock (wall time: speed is "N x real time")

_SAMPLES = {
    "sample": samples.binance_l2_files,
    "sample:binance": samples.binance_l2_files,
    "sample:l2": samples.binance_l2_files,
    "sample:bars": lambda: [samples.bars_file()],
    "sample:funding": lambda: [samples.funding_file()],
}


def _on_gap(instance, attribute, value):
    if value not in ("error", "resync"):
        raise ValueError(f"parameter on_gap: expected 'error' or 'resync', got {value!r}")


def _bar_ts(instance, attribute, value):
    if value not in ("open", "close"):
        raise ValueError(f"parameter bar_timestamp: expected 'open' or 'close', got {value!r}")


@attrs.frozen
class ReplayParams:
    """Configuration of the ``replay`` feed."""

    files: tuple[str, ...] = param(
        (),
        "data files to replay, merged by time; empty = the embedded Binance BTCUSDT+ETHUSDT L2 sample. "
        "'sample:bars' and 'sample:funding' name the other embedded samples",
    )
    speed: Decimal = param(Decimal(0), "0 = as fast as possible; N = N x real time", in_range(0))
    tickers: tuple[str, ...] = param(
        (), "only these dYdX tickers (BTC-USD or BTC); empty = the bot's tickers, else every market in the files"
    )
    symbol_map: dict = param(attrs.Factory(dict), "venue symbol -> dYdX ticker overrides, e.g. {1000PEPEUSDT = 'PEPE-USD'}")
    on_gap: str = param("error", "a depth update-id gap: 'error' stops with the file and line; 'resync' marks "
                        "the market unhealthy and waits for the next snapshot", _on_gap)
    funding_files: tuple[str, ...] = param((), "funding-rate CSVs (long format) merged into the replay")
    funding_venue: str = param("binance", "whose funding rows to replay from funding files")
    bar_interval_s: int | None = param(None, "bar length in seconds; default: the step between the first two rows")
    bar_timestamp: str = param("open", "what a bar file's time column means: 'open' or 'close'", _bar_ts)
    markets_file: str = param("", "dYdX market metadata (indexer /v4/perpetualMarkets shape); empty = the built-in file")
    venue_files: dict = param(
        attrs.Factory(dict),
        "files of other venues, {venue = [files]}: their events carry 'venue:TICKER'. A qualified ticker of a "
        "venue without files mirrors the primary files' market data",
    )


def _venue_files(raw) -> dict[str, list[str]]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"feed replay: parameter venue_files: expected a table {{venue = [files]}}, got {raw!r}")
    out: dict[str, list[str]] = {}
    for venue, names in raw.items():
        v = str(venue).strip().lower()
        if isinstance(names, (str, Path)):
            names = [names]
        if not v or not isinstance(names, (list, tuple)):
            raise ConfigError(f"feed replay: parameter venue_files: expected venue = [files], got {venue!r} = {names!r}")
        out[v] = [str(n) for n in names]
    return out


def resolve_files(names) -> list[Path]:
    out: list[Path] = []
    for n in names:
        key = str(n).strip()
        if key.lower() in _SAMPLES:
            out.extend(_SAMPLES[key.lower()]())
        else:
            out.append(Path(key).expanduser())
    return out


def sniff(path: Path) -> str:
    """``"binance" | "bars" | "funding" | "dydx"`` for a data file, by its content.

    :raises DataError: missing, empty or unrecognised file.
    """
    lf = LineFile(path)
    if lf.size == 0:
        raise DataError(f"{path}: empty file")
    with open(path, "rb") as f:
        if f.read(4) == bars_fmt.PARQUET_MAGIC:
            return "bars"
    head = lf.head()
    if not head.strip():
        raise DataError(f"{path}: empty file")
    if binance_fmt.looks_like(head):
        return "binance"
    if funding_fmt.looks_like(head):
        return "funding"
    if bars_fmt.looks_like(head):
        return "bars"
    if dydx_fmt.looks_like(head):
        return "dydx"
    first = head.split(b"\n", 1)[0][:80].decode(errors="replace")
    raise DataError(
        f"{path}: unrecognised data format (first line {first!r}); expected a Binance '<recv_ns> <json>' recording, "
        "an OHLCV bar CSV, a funding CSV or a dYdX indexer recording"
    )


class ReplayFeed(BaseFeed):
    """Replays recorded market data files, merged by time (see the module docstring)."""

    name = "replay"
    description = (
        "real recorded data: Binance L2/trades/BBO recordings, OHLCV bars, funding CSVs, dYdX recordings; "
        "default: the embedded Binance BTC+ETH sample"
    )
    replay = True
    Params = ReplayParams

    def __init__(self, config: Mapping[str, Any] | None = None, context: Any = None):
        super().__init__(config or {}, context)
        self._symbols_of: dict[Path, list[str]] = {}  # Binance file -> venue symbols (sniffed once)
        self._streams_logged = False
        raw = dict(self.config)
        if isinstance(raw.get("symbol_map"), str):  # CLI form "SYM=TICKER,SYM2=TICKER2"
            pairs = [kv for kv in raw["symbol_map"].split(",") if kv.strip()]
            if any("=" not in kv for kv in pairs):
                raise ConfigError(f"feed replay: parameter symbol_map: expected SYMBOL=TICKER pairs, got {raw['symbol_map']!r}")
            raw["symbol_map"] = dict(kv.split("=", 1) for kv in pairs)
        elif "symbol_map" in raw and not isinstance(raw["symbol_map"], Mapping):
            raise ConfigError(f"feed replay: parameter symbol_map: expected a table, got {raw['symbol_map']!r}")
        self.params: ReplayParams = parse_params(ReplayParams, raw, "feed replay")
        p = self.params
        self.mapper = SymbolMapper(p.symbol_map)
        self.markets_path = Path(p.markets_file) if p.markets_file else MARKETS_FILE
        files = resolve_files(p.files) if p.files else samples.binance_l2_files()
        if not files:
            raise ConfigError("feed replay: no files to replay")
        self.files = files
        self.funding_paths = resolve_files(p.funding_files)
        #: (path, kind, venue): venue None for the primary venue's files
        self.inputs: list[tuple[Path, str, str | None]] = [(f, sniff(f), None) for f in files]
        for venue, names in _venue_files(p.venue_files).items():
            self.inputs.extend((f, sniff(f), venue) for f in resolve_files(names))
        for f in self.funding_paths:
            if sniff(f) != "funding":
                raise DataError(f"{f}: is not a funding CSV (expected columns {', '.join(funding_fmt.REQUIRED)})")
            self.inputs.append((f, "funding", None))
        self.kinds = [(f, k) for f, k, _ in self.inputs]
        self._venues_with_files = {v for _, k, v in self.inputs if v is not None and k != "funding"}

        requested = list(p.tickers) or list(getattr(context, "tickers", None) or ())
        self.requested = list(dict.fromkeys(normalize_ticker(t) for t in requested))
        known = known_tickers(self.markets_path)
        for t in self.requested:
            base = split_venue(t)[1]
            if base not in known:
                raise ConfigError(f"unknown ticker {base!r} (known: {', '.join(known)})")
        present = self._present_tickers()
        if self.requested:
            has_dydx = any(k == "dydx" for _, k in self.kinds)
            missing = [t for t in self.requested if self._source_key(t) not in present]
            if missing and not has_dydx:
                found = sorted(t if v is None else f"{v}:{t}" for v, t in present)
                raise ConfigError(
                    f"ticker {missing[0]!r} has no data in the replay files (found: {', '.join(found) or 'none'})"
                )
            self.tickers = list(self.requested)
        else:
            self.tickers = sorted(t if v is None else f"{v}:{t}" for v, t in present)
            for t in self.tickers:
                base = split_venue(t)[1]
                if base not in known:
                    raise ConfigError(
                        f"unknown ticker {base!r} (known: {', '.join(known)}); choose tickers or add it to the market metadata"
                    )
        self._wanted = set(self.tickers)
        # qualified tickers of venues without their own files mirror the primary files' data
        self._mirror: dict[str, list[str]] = {}
        for t in self.tickers:
            v, base = split_venue(t)
            if v is not None and v not in self._venues_with_files:
                self._mirror.setdefault(base, []).append(t)
        self._wanted_plain = {t for t in self.tickers if ":" not in t} | set(self._mirror)
        ctx_markets = getattr(context, "markets", None) or {}
        bases = load_markets(sorted({split_venue(t)[1] for t in self.tickers}), self.markets_path)
        self._markets = {t: bases[split_venue(t)[1]] for t in self.tickers}
        for t in self.tickers:
            m = ctx_markets.get(t) if isinstance(ctx_markets, Mapping) else None
            if isinstance(m, Market):
                self._markets[t] = m
        self._warned: set[str] = set()
        self.sources: list = []
        self._iters: list = []
        self._batches = 0
        # progress in market time (ns): first replayed timestamp, latest one, the data's last one
        self._first_ns: int | None = None
        self._cur_ns = 0
        self._end_ns: int | None = None
        self._finished = False
        self._scan: threading.Thread | None = None
        self._scan_stop = threading.Event()
        self._books_warned = False
        self._pacing_held = False

    # -- tickers ----------------------------------------------------------------

    def _source_key(self, ticker: str) -> tuple[str | None, str]:
        """Where a requested ticker's market data comes from: (venue with files or None, base ticker)."""
        v, base = split_venue(ticker)
        return (v if v in self._venues_with_files else None), base

    def _binance_symbols(self, path: Path) -> list[str]:
        """Venue symbols of a Binance recording, from its first MiB (else its file name's first token)."""
        syms = self._symbols_of.get(path)
        if syms is None:
            syms = binance_fmt.sniff_symbols(LineFile(path).head(1 << 20)) or [path.name.split("_")[0]]
            self._symbols_of[path] = syms
        return syms

    def _present_tickers(self) -> set[tuple[str | None, str]]:
        found: set[tuple[str | None, str]] = set()
        for path, kind, venue in self.inputs:
            if kind == "binance":
                found.update((venue, self.mapper(s)) for s in self._binance_symbols(path))
            elif kind == "bars":
                src = bars_fmt.BarFile(path, lambda s: None, self.params.bar_interval_s, self.params.bar_timestamp)
                found.update((venue, self.mapper(s)) for s in src.symbols())
            elif kind == "dydx":
                found.update((venue, t) for t in dydx_fmt.sniff_tickers(LineFile(path).head(1 << 20)))
        return found

    def _selector(self, venue: str | None):
        """Venue symbol -> the ticker its events carry when it is replayed, else None."""
        wanted = self._wanted_plain if venue is None else self._wanted
        prefix = "" if venue is None else f"{venue}:"

        def select(symbol: str) -> str | None:
            ticker = prefix + self.mapper(symbol)
            if ticker in wanted:
                return ticker
            if not self.requested and symbol not in self._warned:
                self._warned.add(symbol)
                logger.warning(
                    "replay: {} ({}) first appears after the start of its file and is not replayed; "
                    "name it in tickers to include it",
                    symbol,
                    ticker,
                )
            return None

        return select

    def _route_funding(self, venue: str, coin: str) -> list[str]:
        """Tickers a funding row of ``venue`` for ``coin`` is replayed to."""
        base = self.mapper(coin)
        out = []
        if venue == self.params.funding_venue.strip().lower() and base in self._wanted:
            out.append(base)
        if f"{venue}:{base}" in self._wanted:
            out.append(f"{venue}:{base}")
        return out

    # -- BaseFeed -----------------------------------------------------------------

    def markets(self) -> dict[str, Market]:
        """Market parameters (real dYdX metadata) of the replayed tickers."""
        return dict(self._markets)

    def _binance_streams(self) -> dict[tuple[Path, str | None], list[Path]]:
        """Binance files grouped into streams: files of one venue that share a symbol, in time order.

        Keyed by (the group's first file in input order, venue). Files are ordered by the receive
        time of their first line; that they do not overlap is checked while reading.
        """
        groups: list[tuple[str | None, set[str], list[Path]]] = []
        for path, kind, venue in self.inputs:
            if kind != "binance":
                continue
            syms = set(self._binance_symbols(path))
            hits = [g for g in groups if g[0] == venue and g[1] & syms]
            if not hits:
                groups.append((venue, syms, [path]))
                continue
            keep = hits[0]
            for g in hits[1:]:  # this file joins streams that were apart so far
                keep[1].update(g[1])
                keep[2].extend(g[2])
                groups.remove(g)
            keep[1].update(syms)
            keep[2].append(path)
        out = {}
        for venue, _, paths in groups:
            first = next(p for p, _, v in self.inputs if p in paths and v == venue)
            out[(first, venue)] = sorted(paths, key=binance_fmt.first_ts)
        return out

    def _open_sources(self) -> list:
        p = self.params
        sources = []
        streams = self._binance_streams()
        for path, kind, venue in self.inputs:
            if kind == "binance":
                paths = streams.get((path, venue))
                if paths is None:
                    continue  # read as part of an earlier file's stream
                if len(paths) > 1 and not self._streams_logged:
                    logger.info(
                        "replay: {} files of {} form one stream: {}",
                        len(paths), ", ".join(sorted({s for f in paths for s in self._binance_symbols(f)})),
                        ", ".join(f.name for f in paths),
                    )
                sources.append(binance_fmt.BinanceRecording(paths, self._selector(venue), p.on_gap))
            elif kind == "bars":
                sources.append(bars_fmt.BarFile(path, self._selector(venue), p.bar_interval_s, p.bar_timestamp))
            elif kind == "funding":
                sources.append(funding_fmt.FundingFile(path, self._route_funding))
            elif kind == "dydx":
                tickers = [t for t in self.tickers if self._source_key(t)[0] == venue]
                sources.append(dydx_fmt.DydxRecording(path, [split_venue(t)[1] for t in tickers], self.markets()))
            sources[-1].venue = venue
        self._streams_logged = True
        return sources

    def _mirrored(self, it):
        """Copy primary-file events to the qualified tickers that mirror them (see ``venue_files``)."""
        mirror = self._mirror
        keep = self._wanted
        evolve = attrs.evolve
        for ts, batch in it:
            out = []
            for ev in batch:
                targets = mirror.get(ev.ticker)
                if targets is None:
                    out.append(ev)
                    continue
                if ev.ticker in keep:
                    out.append(ev)
                out.extend(evolve(ev, ticker=q) for q in targets)
            yield ts, out

    async def start(self) -> None:
        if not self.sources:
            self.sources = self._open_sources()

    async def stop(self) -> None:
        self._scan_stop.set()
        for it in self._iters:
            close = getattr(it, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # noqa: BLE001 - closing must not mask the run's outcome
                    pass
            elif hasattr(it, "close"):
                it.close()
        self._iters = []

    def iter_batches(self) -> Iterator[tuple[int, list]]:
        """Synchronous ``(ts_ns, batch)`` merge of the file sources (no MarketInfo, no pacing).

        For tools and benchmarks; the bot uses :meth:`batches`. dYdX recordings
        whose reader is asynchronous are not supported here.
        """
        if not self.sources:
            self.sources = self._open_sources()
        iters = [self._sync_iter(s) for s in self.sources]
        self._iters.extend(iters)
        return self._tracked(merge_sorted(iters))

    def _tracked(self, merged):
        """Record market-time progress and check book sync along a ``(ts, batch)`` stream."""
        n = 0
        ts = None
        for ts, batch in merged:
            if self._first_ns is None:
                self._first_ns = ts
            self._cur_ns = ts
            n += 1
            if not n & 4095:
                self._check_books(ts)
            yield ts, batch
        self._finished = True
        self._check_books(ts, final=True)

    def _sync_iter(self, src):
        it = self._any_iter(src)
        if hasattr(it, "__anext__"):
            raise ConfigError(f"{src.path}: its reader is asynchronous; use ReplayFeed.batches()")
        return it

    async def batches(self) -> AsyncIterator[list]:
        """Event batches in time order: first one MarketInfo per market, then one batch per raw message."""
        await self.start()
        iters = [self._any_iter(s) for s in self.sources]
        self._iters.extend(iters)
        sync = not any(hasattr(it, "__anext__") for it in iters)
        merged = merge_sorted(iters) if sync else _amerge_sorted(iters)
        speed = float(self.params.speed)
        first = True
        wall0 = None  # pacing anchor (wall time, data time); None: anchor at the next paced batch
        data0 = 0
        n = 0
        while True:
            if sync:
                item = next(merged, None)
            else:
                item = await anext(merged, None)
            if item is None:
                break
            ts, batch = item
            if first:
                first = False
                self._first_ns = ts
                yield [MarketInfo(t, ts, m) for t, m in self._markets.items()]
            self._cur_ns = ts
            if self._pacing_held:
                wall0 = None
            if speed > 0 and not self._pacing_held:
                if wall0 is None:
                    wall0, data0 = _monotonic(), ts
                delay = wall0 + (ts - data0) / 1e9 / speed - _monotonic()
                if delay > 0.0005:
                    await asyncio.sleep(delay)
            else:
                n += 1
                if not n & 1023:
                    await asyncio.sleep(0)  # let signal handlers and the dashboard run
            self._batches += 1
            if not self._batches & 4095:
                self._check_books(ts)
            yield batch
        self._finished = True
        self._check_books(self._cur_ns, final=True)

    def hold_pacing(self, held: bool) -> None:
        """While held, batches are not paced; released, pacing restarts from the next batch's time.

        See :meth:`perpbot.core.feed.BaseFeed.hold_pacing` (a resumed run's warm-up).
        """
        self._pacing_held = bool(held)

    def _any_iter(self, src):
        if isinstance(src, dydx_fmt.DydxRecording):
            it = src.batches()
            if hasattr(it, "__anext__"):
                if self._mirror and src.venue is None:
                    raise ConfigError(f"{src.path}: mirroring a dYdX recording to qualified tickers is not supported")
                return _tag_async(it)
            it = ((b[0].ts_ns, b) for b in it if b)
        else:
            it = src.events()
        if self._mirror and src.venue is None and src.kind != "funding":
            it = self._mirrored(it)
        return it

    # -- progress in market time ---------------------------------------------------

    def progress(self) -> tuple[int, int]:
        """``(market time done, market time total)`` in ns, from the first replayed timestamp.

        ``done`` is the latest replayed timestamp minus the first; ``total`` the data's last
        timestamp (the latest over all files, from their tails) minus the first, and 0 while it
        is not known yet: before the first batch, and while the background scan of the files'
        tails runs (the first call starts it). At the end of the data ``done == total``.
        """
        if self._finished:
            t = max(self._cur_ns - (self._first_ns or self._cur_ns), self._total(), 1)
            return (t, t)
        if self._end_ns is None and self._scan is None:
            self._scan = threading.Thread(target=self._scan_end, name="replay-last-timestamp", daemon=True)
            self._scan.start()
        if self._first_ns is None:
            return (0, 0)
        done = self._cur_ns - self._first_ns
        total = self._total()
        return (done, max(total, done) if total else 0)

    def wait_for_span(self, timeout: float | None = None) -> bool:
        """Start the background scan of the files' tails if needed and wait for it (tools, tests).

        :returns: True when the data's last timestamp is known.
        """
        if self._end_ns is None and self._scan is None:
            self.progress()
        if self._scan is not None:
            self._scan.join(timeout)
        return self._end_ns is not None

    def _total(self) -> int:
        if self._end_ns is None or self._first_ns is None:
            return 0
        return max(0, self._end_ns - self._first_ns)

    def last_timestamp(self, stop=None) -> int | None:
        """The data's last timestamp (ns; the latest over all files' tails), or None when no file tells.

        Synchronous; :meth:`progress` runs it in a background thread. Costs a gzip file one
        decompression without parsing (see :meth:`~.lineio.LineFile.tail`).

        :param stop: optional ``() -> bool`` polled while scanning; True ends the scan (None returned).
        :raises DataError: a file that cannot be read (corrupt gzip, bad last row).
        """
        sources = self.sources or self._open_sources()
        ends = []
        for s in sources:
            end = s.last_ts(stop)
            if stop is not None and stop():
                return None
            if end is not None:
                ends.append(end)
        return max(ends) if ends else None

    def _scan_end(self) -> None:
        try:
            self._end_ns = self.last_timestamp(self._scan_stop.is_set)
        except Exception as exc:  # noqa: BLE001 - a progress estimate must not stop a replay; say why it is missing
            logger.warning("replay: cannot tell where the data ends ({}); the progress bar shows no percentage", exc)

    # -- book sync --------------------------------------------------------------------

    def unsynced_books(self) -> dict[str, str]:
        """``{ticker: reason}`` of the markets with depth data whose order book never synced."""
        out: dict[str, str] = {}
        for s in self.sources:
            get = getattr(s, "unsynced", None)
            if get is not None:
                out.update(get())
        return out

    def _check_books(self, ts: int | None, final: bool = False) -> None:
        """Say loudly, once, when no market's order book has synced after ``STALL_S`` s of data (or at its end)."""
        if self._books_warned or ts is None:
            return
        books: dict[str, bool] = {}
        for s in self.sources:
            get = getattr(s, "book_markets", None)
            if get is not None:
                books.update(get())
        if not books or any(books.values()):
            return
        waited = ts - (self._first_ns if self._first_ns is not None else ts)
        if not final and waited < binance_fmt.STALL_S * 1_000_000_000:
            return
        self._books_warned = True
        reasons = self.unsynced_books()
        logger.error(
            "replay: NO order book has synced {} ({} of market data): no strategy can trade on empty books. {}",
            "by the end of the data" if final else "yet",
            _span(waited),
            "; ".join(f"{t}: {r}" for t, r in sorted(reasons.items())),
        )

    def stats(self) -> dict:
        """Counters summed over files: messages, depth_messages, level_entries, deletes, trades, quotes,
        snapshots, gaps, dropped_messages (pre-snapshot diffs older than the snapshot), bars,
        funding_rates, ignored, and ``events`` (level entries + trades + quotes + bars + funding rates,
        the benchmark's unit)."""
        out: dict[str, int] = {}
        for s in self.sources:
            st = s.reader_stats() if isinstance(s, dydx_fmt.DydxRecording) else s.stats
            for k, v in st.items():
                if isinstance(v, int):
                    out[k] = out.get(k, 0) + v
        for k in ("messages", "level_entries", "deletes", "trades", "quotes", "snapshots", "gaps"):
            out.setdefault(k, 0)
        out["events"] = (
            out.get("level_entries", 0) + out.get("trades", 0) + out.get("quotes", 0)
            + out.get("bars", 0) + out.get("funding_rates", 0)
        )
        out["batches"] = self._batches
        return out


def _span(ns: int) -> str:
    s = ns / 1e9
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def merge_sorted(iters: list) -> Iterator[tuple[int, list]]:
    """Merge ``(ts, batch)`` iterators, each already in time order; ties keep the iterators' order.

    Like :func:`heapq.merge`, but drains one source without heap operations while it
    stays ahead of the others (recordings come in long runs).
    """
    if len(iters) == 1:
        yield from iters[0]
        return
    heap = []
    for i, it in enumerate(iters):
        for item in it:
            heap.append((item[0], i, item, it))
            break
    heapq.heapify(heap)
    heappop, heappush = heapq.heappop, heapq.heappush
    while heap:
        _, i, item, it = heappop(heap)
        yield item
        if not heap:
            yield from it
            return
        bound, bi = heap[0][0], heap[0][1]
        for item in it:
            ts = item[0]
            if ts > bound or (ts == bound and i > bi):
                heappush(heap, (ts, i, item, it))
                break
            yield item


async def _tag_async(it):
    async for b in it:
        if b:
            yield b[0].ts_ns, b


async def _amerge_sorted(iters: list):
    """Async variant of :func:`merge_sorted` for a mix of sync and async iterators."""

    async def pull(it):
        if hasattr(it, "__anext__"):
            return await anext(it, None)
        return next(it, None)

    heap = []
    for i, it in enumerate(iters):
        got = await pull(it)
        if got is not None:
            heap.append((got[0], i, got[1], it))
    heapq.heapify(heap)
    while heap:
        ts, i, b, it = heapq.heappop(heap)
        yield ts, b
        got = await pull(it)
        if got is not None:
            heapq.heappush(heap, (got[0], i, got[1], it))
