"""The ``replay`` feed: real recorded market data played through the same pipeline as live data.

Each file's format is sniffed (see :func:`open_source`):

- Binance raw WebSocket recordings ``<recv_ns> <json>`` (:mod:`.binance`): L2 depth
  diffs with update-id continuity checks, trades, bookTicker quotes, REST snapshots;
- OHLCV bar files, CSV/CSV.gz/Parquet (:mod:`.bars`);
- funding-rate CSVs in the project's long format (:mod:`.funding`);
- dYdX indexer recordings from ``runbot.py record`` (:mod:`.dydx`, parsed by the
  dYdX plugin's own reader);
- a Parquet catalog from ``runbot.py download`` (``catalog:PATH`` or the ``catalog`` key,
  :mod:`.catalog`): one venue's candles as bars with that venue's funding.

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

Where the code lives: this module holds :class:`ReplayFeed` (opening the sources, the
merge loop with its real-time pacing, counters). Its collaborators: :mod:`.params`
(:class:`ReplayParams`), :mod:`.inputs` (file discovery, format sniffing, Binance
streams), :mod:`.routing` (which tickers, which ticker each symbol's events carry),
:mod:`.merge` (merging sources by time) and :mod:`.progress` (market-time progress, the
book-sync watch). The names that used to be defined here (``ReplayParams``,
``resolve_files``, ``sniff``, ``merge_sorted``) are re-exported.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, AsyncIterator, Iterator, Mapping

from loguru import logger

from perpbot.core.errors import ConfigError
from perpbot.core.feed import BaseFeed
from perpbot.core.model import Market, MarketInfo

from perpbot.exchanges.replay import bars as bars_fmt
from perpbot.exchanges.replay import binance as binance_fmt
from perpbot.exchanges.replay import dydx as dydx_fmt
from perpbot.exchanges.replay import funding as funding_fmt
from perpbot.exchanges.replay.inputs import ReplayInputs, resolve_files, sniff
from perpbot.exchanges.replay.markets import MARKETS_FILE, known_tickers, load_markets
from perpbot.exchanges.replay.merge import amerge_sorted, merge_sorted, tag_async
from perpbot.exchanges.replay.params import ReplayParams, parse_replay_params
from perpbot.exchanges.replay.progress import BookSyncWatch, MarketTimeProgress, unsynced_books
from perpbot.exchanges.replay.routing import TickerRouting
from perpbot.exchanges.replay.symbols import SymbolMapper, split_venue

__all__ = ["ReplayFeed", "ReplayParams", "merge_sorted", "resolve_files", "sniff"]

_monotonic = time.monotonic  # pacing clock (wall time: speed is "N x real time")


class ReplayFeed(BaseFeed):
    """Replays recorded market data files, merged by time (see the module docstring).

    :param config: the ``[feed]`` table (see :class:`ReplayParams`).
    :param context: gives ``tickers`` (the bot's, used when ``tickers`` is not configured)
        and ``markets`` (``{ticker: Market}`` overriding the metadata's); may be None.
    :raises ConfigError: a bad parameter, no files, an unknown ticker, or a requested ticker
        without data in the files; each in one line naming it.
    :raises DataError: a missing, empty or unrecognised file.

    Attributes: ``params``, ``mapper`` (:class:`~.symbols.SymbolMapper`), ``markets_path``,
    ``files``, ``funding_paths``, ``inputs`` (``[(path, kind, venue)]``), ``kinds``,
    ``requested`` and ``tickers`` (see :class:`~.routing.TickerRouting`), ``sources`` (the
    opened readers, after :meth:`start`).
    """

    name = "replay"
    description = (
        "real recorded data: Binance L2/trades/BBO recordings, OHLCV bars, funding CSVs, dYdX recordings; "
        "default: the embedded Binance BTC+ETH sample"
    )
    replay = True
    Params = ReplayParams

    def __init__(self, config: Mapping[str, Any] | None = None, context: Any = None):
        super().__init__(config or {}, context)
        self._streams_logged = False
        self.params: ReplayParams = parse_replay_params(self.config)
        p = self.params
        self.mapper = SymbolMapper(p.symbol_map)
        self.markets_path = Path(p.markets_file) if p.markets_file else MARKETS_FILE
        self.input_files = ReplayInputs(p)
        self.files = self.input_files.files
        self.funding_paths = self.input_files.funding_paths
        #: (path, kind, venue): venue None for the primary venue's files
        self.inputs: list[tuple[Path, str, str | None]] = self.input_files.inputs
        self.kinds = self.input_files.kinds
        known = known_tickers(self.markets_path)
        self.routing = TickerRouting(p, self.mapper, self.input_files, getattr(context, "tickers", None), known)
        self.requested = self.routing.requested
        self.tickers = self.routing.tickers
        self._mirror = self.routing.mirror
        ctx_markets = getattr(context, "markets", None) or {}
        bases = load_markets(sorted({split_venue(t)[1] for t in self.tickers}), self.markets_path)
        self._markets = {t: bases[split_venue(t)[1]] for t in self.tickers}
        for t in self.tickers:
            m = ctx_markets.get(t) if isinstance(ctx_markets, Mapping) else None
            if isinstance(m, Market):
                self._markets[t] = m
        self.sources: list = []
        self._iters: list = []
        self._batches = 0
        self.market_time = MarketTimeProgress(self.last_timestamp)
        self._books = BookSyncWatch()
        self._pacing_held = False

    @property
    def _first_ns(self) -> int | None:
        """The first replayed timestamp (ns), None before the first batch (tests read it)."""
        return self.market_time.first_ns

    # -- BaseFeed -----------------------------------------------------------------

    def markets(self) -> dict[str, Market]:
        """Market parameters (real dYdX metadata) of the replayed tickers."""
        return dict(self._markets)

    def _open_sources(self) -> list:
        p = self.params
        route = self.routing
        sources = []
        streams = self.input_files.binance_streams()
        symbols = self.input_files.binance_symbols
        for path, kind, venue in self.inputs:
            if kind == "binance":
                paths = streams.get((path, venue))
                if paths is None:
                    continue  # read as part of an earlier file's stream
                if len(paths) > 1 and not self._streams_logged:
                    logger.info(
                        "replay: {} files of {} form one stream: {}",
                        len(paths), ", ".join(sorted({s for f in paths for s in symbols(f)})),
                        ", ".join(f.name for f in paths),
                    )
                sources.append(binance_fmt.BinanceRecording(paths, route.selector(venue), p.on_gap))
            elif kind == "bars":
                sources.append(bars_fmt.BarFile(path, route.selector(venue), p.bar_interval_s, p.bar_timestamp))
            elif kind == "funding":
                sources.append(funding_fmt.FundingFile(path, route.route_funding))
            elif kind == "catalog":
                sources.append(self.input_files.catalog_source(path, route.selector(venue)))
            elif kind == "dydx":
                tickers = [t for t in self.tickers if route.source_key(t)[0] == venue]
                sources.append(dydx_fmt.DydxRecording(path, [split_venue(t)[1] for t in tickers], self.markets()))
            sources[-1].venue = venue
        self._streams_logged = True
        return sources

    async def start(self) -> None:
        """Open the sources (readers of the files); safe to call twice.

        :raises ConfigError: a dYdX recording whose reader module is missing.
        """
        if not self.sources:
            self.sources = self._open_sources()

    async def stop(self) -> None:
        """Close the iterators handed out and end the background scan of the files' tails; safe to call twice."""
        self.market_time.stop()
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

        :raises ConfigError: a source whose reader is asynchronous.
        :raises DataError: (while iterating) bad data, naming the file and line.
        """
        if not self.sources:
            self.sources = self._open_sources()
        iters = [self._sync_iter(s) for s in self.sources]
        self._iters.extend(iters)
        return self._tracked(merge_sorted(iters))

    def _tracked(self, merged):
        """Record market-time progress and check book sync along a ``(ts, batch)`` stream."""
        prog = self.market_time
        n = 0
        ts = None
        for ts, batch in merged:
            if prog.first_ns is None:
                prog.first_ns = ts
            prog.cur_ns = ts
            n += 1
            if not n & 4095:
                self._check_books(ts)
            yield ts, batch
        prog.finished = True
        self._check_books(ts, final=True)

    def _sync_iter(self, src):
        it = self._any_iter(src)
        if hasattr(it, "__anext__"):
            raise ConfigError(f"{src.path}: its reader is asynchronous; use ReplayFeed.batches()")
        return it

    async def batches(self) -> AsyncIterator[list]:
        """Event batches in time order: first one MarketInfo per market, then one batch per raw message.

        With ``speed`` N > 0 a batch is held until N x the market time since the first paced
        batch has passed in wall time (see :meth:`hold_pacing`).

        :raises DataError: bad data, naming the file and line.
        """
        await self.start()
        iters = [self._any_iter(s) for s in self.sources]
        self._iters.extend(iters)
        sync = not any(hasattr(it, "__anext__") for it in iters)
        merged = merge_sorted(iters) if sync else amerge_sorted(iters)
        prog = self.market_time
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
                prog.first_ns = ts
                yield [MarketInfo(t, ts, m) for t, m in self._markets.items()]
            prog.cur_ns = ts
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
        prog.finished = True
        self._check_books(prog.cur_ns, final=True)

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
                return tag_async(it)
            it = ((b[0].ts_ns, b) for b in it if b)
        else:
            it = src.events()
        if self._mirror and src.venue is None and src.kind != "funding":
            it = self.routing.mirrored(it)
        return it

    # -- progress in market time (see progress.MarketTimeProgress) ---------------------

    def progress(self) -> tuple[int, int]:
        """``(market time done, market time total)`` in ns, from the first replayed timestamp.

        ``done`` is the latest replayed timestamp minus the first; ``total`` the data's last
        timestamp (the latest over all files, from their tails) minus the first, and 0 while it
        is not known yet: before the first batch, and while the background scan of the files'
        tails runs (the first call starts it). At the end of the data ``done == total``.
        """
        return self.market_time.progress()

    def wait_for_span(self, timeout: float | None = None) -> bool:
        """Start the background scan of the files' tails if needed and wait for it (tools, tests).

        :param timeout: seconds to wait at most (None: until the scan ends).
        :returns: True when the data's last timestamp is known.
        """
        return self.market_time.wait_for_span(timeout)

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

    # -- book sync and counters ----------------------------------------------------------

    def unsynced_books(self) -> dict[str, str]:
        """``{ticker: reason}`` of the markets with depth data whose order book never synced."""
        return unsynced_books(self.sources)

    def _check_books(self, ts: int | None, final: bool = False) -> None:
        """Say loudly, once, when no market's order book has synced after ``STALL_S`` s of data (or at its end)."""
        self._books.check(self.sources, ts, self.market_time.first_ns, final)

    def stats(self) -> dict:
        """Counters summed over files: messages, depth_messages, level_entries, deletes, trades, quotes,
        snapshots, gaps, dropped_messages (pre-snapshot diffs older than the snapshot), bars,
        funding_rates, ignored, and ``events`` (level entries + trades + quotes + bars + funding rates,
        the benchmark's unit), and ``batches`` (batches yielded by :meth:`batches`)."""
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
