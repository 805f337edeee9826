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
Before the first data batch the feed emits one :class:`MarketInfo` per market,
with parameters from real dYdX metadata (``dydx_markets.json``).

Config keys (``[feed]`` table or CLI): see :class:`ReplayParams`.
"""

from __future__ import annotations

import asyncio
import heapq
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
        self._pacing_held = False

    # -- tickers ----------------------------------------------------------------

    def _source_key(self, ticker: str) -> tuple[str | None, str]:
        """Where a requested ticker's market data comes from: (venue with files or None, base ticker)."""
        v, base = split_venue(ticker)
        return (v if v in self._venues_with_files else None), base

    def _present_tickers(self) -> set[tuple[str | None, str]]:
        found: set[tuple[str | None, str]] = set()
        for path, kind, venue in self.inputs:
            if kind == "binance":
                syms = binance_fmt.sniff_symbols(LineFile(path).head(1 << 20))
                if not syms:
                    syms = [path.name.split("_")[0]]
                found.update((venue, self.mapper(s)) for s in syms)
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

    def _open_sources(self) -> list:
        p = self.params
        sources = []
        for path, kind, venue in self.inputs:
            if kind == "binance":
                sources.append(binance_fmt.BinanceRecording(path, self._selector(venue), p.on_gap))
            elif kind == "bars":
                sources.append(bars_fmt.BarFile(path, self._selector(venue), p.bar_interval_s, p.bar_timestamp))
            elif kind == "funding":
                sources.append(funding_fmt.FundingFile(path, self._route_funding))
            elif kind == "dydx":
                tickers = [t for t in self.tickers if self._source_key(t)[0] == venue]
                sources.append(dydx_fmt.DydxRecording(path, [split_venue(t)[1] for t in tickers], self.markets()))
            sources[-1].venue = venue
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
        return merge_sorted(iters)

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
                yield [MarketInfo(t, ts, m) for t, m in self._markets.items()]
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
            yield batch

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

    def progress(self) -> tuple[int, int] | None:
        """(compressed bytes read, total bytes) over all files."""
        srcs = self.sources or []
        if not srcs:
            return (0, sum(p.stat().st_size for p, _ in self.kinds))
        return (sum(s.bytes_read for s in srcs), sum(s.size for s in srcs))

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
