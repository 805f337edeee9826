"""Binance raw WebSocket recordings: ``<recv_ns> <json>`` per line (plain or gzip).

This is the format of hftbacktest's Binance collector (nkaz001/hftbacktest,
``collector``): the first column is the recorder's receive time in ns since the
epoch, the rest is the combined-stream message as Binance sent it
(``{"stream": ..., "data": {...}}``; a bare event object is accepted too), or a
REST depth snapshot (``{"lastUpdateId": ..., "bids": [...], "asks": [...]}``,
USD-M snapshots carry no symbol: it is the file's symbol).

Events (all timestamped with the RECEIVE clock, the first column, so that
events of several files and venues merge on one clock; the venue's event time
``E``/``T`` runs about 1.27 s AHEAD of the receive clock in the embedded sample,
i.e. the recorder's clock is behind Binance's, which is why the two are never
mixed):

- ``depthUpdate`` -> :class:`BookDelta` (absolute sizes; ``"0.000"`` deletes);
- ``trade`` / ``aggTrade`` -> :class:`Trade`, taker side from ``m`` (``m`` true:
  the buyer is the maker, so the taker SOLD);
- ``bookTicker`` -> :class:`Quote` (the venue's own best bid/offer);
- the REST snapshot line -> :class:`BookSnapshot`.

Book synchronisation follows Binance's documented procedure for futures
("How to manage a local order book correctly", USD-M and COIN-M): diffs that
arrive before the snapshot are buffered; on the snapshot, buffered diffs with
``u < lastUpdateId`` are dropped and the first applied diff must satisfy
``U <= lastUpdateId <= u``; after that each diff's ``pu`` must equal the
previous diff's ``u``. Spot recordings (no ``pu``) use the spot rule
(``U <= lastUpdateId+1 <= u``, then ``U == previous u + 1``). A broken chain is
a gap: a :class:`~perpbot.core.errors.DataError` naming the file, the line and the ids,
or with ``on_gap="resync"`` a ``FeedStatus(healthy=False)`` and a wait for the
next snapshot line. Until a market's book is synced the reader emits
``FeedStatus(healthy=False, reason="waiting for book snapshot")``, and
``FeedStatus(healthy=True)`` once it is.

Several files of one market (a recorder that rotates daily, say) are ONE stream:
:class:`BinanceRecording` takes them all, in time order, and carries each
market's sync state (the last applied ``u``, buffered diffs) from one file to the
next. A Binance file that continues an earlier one has no snapshot of its own
(the recorder fetched one only at its start), so it can only be replayed after
the file before it. A market whose book never synced is reported: a warning once
it has waited :data:`STALL_S` seconds of market time, another at the end of its
data, and :meth:`BinanceRecording.unsynced` for the run summary.

COIN-M quantities are contracts (BTCUSD_PERP: 100 USD each, every other COIN-M
contract: 10 USD); they are converted to base units (``contracts * usd / price``)
so every book and trade in this framework is in base units.

Performance: each price and size string is converted to Decimal (and
validated) once and then served from a bounded cache; the parser yields one
batch per raw line and keeps its counters in locals. bookTicker and trade lines
of the venue's compact shape (93% of the embedded sample's lines) are read by one
regular expression (:data:`~.binance_parse.FAST_LINE`) instead of a JSON decode:
the pattern accounts for every byte of such a line, so it gives exactly the events
and errors the decode would (any other line is decoded in full; the tests compare
both ways, :attr:`BinanceRecording.fast_lines`).

Where the code lives: this module holds :class:`BinanceRecording` (the files of one
stream, read line by line: the hot loop); :mod:`.binance_parse` the line and value
format (sniffing, Decimal conversion, COIN-M contracts); :mod:`.binance_sync` the
depth-sync state machine and the unsynced-book reports. Their public names are
re-exported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import orjson
from loguru import logger

from perpbot.core.errors import DataError
from perpbot.core.model import BookDelta, FeedStatus, Quote, Side, Trade

from perpbot.exchanges.replay.binance_parse import (
    FAST_LINE,
    BadValue,
    ValueParser,
    coinm_contract_usd,
    describe_message,
    first_ts,
    looks_like,
    sniff_symbols,
    snapshot_symbol,
)
from perpbot.exchanges.replay.binance_sync import (
    FILTERED,
    STALL_S,
    SYNCED,
    WAIT_FIRST,
    WAITING,
    DepthSync,
    MarketSync,
)
from perpbot.exchanges.replay.lineio import LineFile

__all__ = [
    "STALL_S", "WAITING", "BinanceRecording", "DepthSync", "MarketSync", "ValueParser",
    "coinm_contract_usd", "first_ts", "looks_like", "sniff_symbols",
]

_BUY, _SELL = Side.BUY, Side.SELL
_STATS = (
    "messages", "depth_messages", "level_entries", "deletes", "trades", "quotes", "snapshots", "gaps",
    "dropped_messages", "dropped_level_entries", "filtered_messages", "ignored",
)



def _no_match(line: bytes) -> None:
    """The fast-line matcher when :attr:`BinanceRecording.fast_lines` is off: no line matches."""
    return None


def _add_counts(stats: dict, messages: int, depth: int, levels: int, deletes: int, trades: int, quotes: int,
                filtered: int) -> None:
    """Add one chunk's local counters to the recording's ``stats`` (the hot loop counts in locals)."""
    stats["messages"] += messages
    stats["depth_messages"] += depth
    stats["level_entries"] += levels
    stats["deletes"] += deletes
    stats["trades"] += trades
    stats["quotes"] += quotes
    stats["filtered_messages"] += filtered

class BinanceRecording:
    """Reads one Binance raw recording, or several consecutive ones, into event batches.

    :param path: the file, or a list of files of the same market(s) in time order: they
        are read as one stream whose book sync (update ids, buffered diffs) carries from
        one file to the next, so a file that continues an earlier one needs no snapshot.
    :param select: venue symbol -> dYdX ticker, or None to skip that symbol (ticker filter).
    :param on_gap: ``"error"`` or ``"resync"``.
    :raises ValueError: an empty list of files.
    :raises DataError: a missing file (here); while reading, a file that starts before the
        previous one ended, naming both (see :meth:`events`).

    Counters are in :attr:`stats` (``str -> int``: messages, depth_messages, level_entries,
    deletes, trades, quotes, snapshots, gaps, dropped_messages, dropped_level_entries,
    filtered_messages, ignored); markets whose book never synced in :meth:`unsynced`.
    The sync state is :attr:`sync` (:class:`~.binance_sync.DepthSync`), the value caches
    :attr:`values` (:class:`~.binance_parse.ValueParser`).
    """

    kind = "binance"
    #: read the commonest line shapes (:data:`~.binance_parse.FAST_LINE`) without a JSON
    #: decoder; False decodes every line in full (the reference the fast reading is tested against)
    fast_lines = True

    def __init__(self, path: str | Path | list, select: Callable[[str], str | None], on_gap: str = "error"):
        paths = list(path) if isinstance(path, (list, tuple)) else [path]
        if not paths:
            raise ValueError("BinanceRecording: no files")
        self.files = [LineFile(p) for p in paths]
        self.file = self.files[0]
        self.path = self.file.path  # the first file (names the source)
        self.paths = [f.path for f in self.files]
        self.select = select
        self.on_gap = on_gap
        self.stats = dict.fromkeys(_STATS, 0)
        self.values = ValueParser()
        self.sync = DepthSync(select, on_gap, self.stats, ", ".join(p.name for p in self.paths), self.path)
        #: venue symbol -> :class:`~.binance_sync.MarketSync`, or ``FILTERED`` for a symbol not replayed
        self.markets = self.sync.markets
        self._warned: set = set()
        self.lineno = 0

    # -- progress -------------------------------------------------------------

    @property
    def bytes_read(self) -> int:
        """Bytes of the stream's files consumed so far (compressed bytes for gzip), for progress bars."""
        return sum(f.bytes_read for f in self.files)

    @property
    def size(self) -> int:
        """Total size in bytes of the stream's files (on disk, compressed for gzip)."""
        return sum(f.size for f in self.files)

    def last_ts(self, stop=None) -> int | None:
        """Receive time (ns) of the last line of the last file (see :meth:`LineFile.tail`), or None.

        :param stop: optional ``() -> bool`` polled while a gzip file is scanned; True ends the scan.
        :raises DataError: a corrupt gzip file.
        """
        for f in reversed(self.files):
            for line in reversed(f.tail(4, stop)):
                sp = line.find(b" ")
                if sp > 0 and line[:sp].isdigit():
                    return int(line[:sp])
        return None

    # -- book sync (see binance_sync.DepthSync) ----------------------------------

    def unsynced(self) -> dict[str, str]:
        """``{ticker: reason}`` of the markets read so far whose book never synced once."""
        return self.sync.unsynced()

    def book_markets(self) -> dict[str, bool]:
        """``{ticker: synced at least once}`` of the markets read so far."""
        return self.sync.book_markets()

    def book_update_id(self, symbol: str) -> int | None:
        """The last depth update id ``u`` applied to ``symbol``'s book (None until synced)."""
        return self.sync.book_update_id(symbol)

    # -- the reader ---------------------------------------------------------------

    def events(self) -> Iterator[tuple[int, list]]:
        """Yield ``(recv_ns, [events...])`` per raw line, file after file (receive time ascending).

        :raises DataError: a malformed line, a gap (``on_gap="error"``), or a file whose lines go
            back in time, or that starts before the previous file of the stream ended.
        """
        loads = orjson.loads
        JSONDecodeError = orjson.JSONDecodeError
        stats = self.stats
        sync = self.sync
        markets = sync.markets
        market = sync.market
        first = sync.first
        gap = sync.gap
        values = self.values
        prices = values.prices
        sizes = values.sizes
        levels = values.levels
        zero_patterns = values.zero_patterns
        prices_b = values.prices_b
        fast = FAST_LINE if self.fast_lines else _no_match
        by_bytes: dict = {}  # symbol bytes -> MarketSync or FILTERED (lines read by FAST_LINE)
        lineno = 0
        prev_ts = 0
        n_msg = n_depth = n_levels = n_dels = n_trades = n_quotes = n_filtered = 0
        path = prev_path = None
        try:
            for lf in self.files:
                prev_path, path = path, lf.path
                sync.cur_path = path
                start_ts = prev_ts  # lines of this file must not be earlier (files of one stream follow each other)
                lineno = 0
                for chunk in lf.chunks():
                    for line in chunk:
                        lineno += 1
                        if not line:
                            continue
                        fm = fast(line)
                        if fm is not None:
                            ts_b, sym, b, bq, a, aq, tsym, tid, p, qs, mflag = fm.groups()
                            ts = int(ts_b)
                            if ts >= prev_ts:  # else: the exact path below names the error
                                prev_ts = ts
                                n_msg += 1
                                try:
                                    key = sym if sym is not None else tsym
                                    m = by_bytes.get(key)
                                    if m is None:
                                        m = by_bytes[key] = market(key.decode(), ts)
                                    if m is FILTERED:
                                        n_filtered += 1
                                        continue
                                    if sym is not None:  # bookTicker
                                        bd = prices_b[b]
                                        ad = prices_b[a]
                                        bqd = sizes[bq.decode()]
                                        aqd = sizes[aq.decode()]
                                        cu = m.contract_usd
                                        if cu is not None:
                                            bqd = bqd * cu / bd
                                            aqd = aqd * cu / ad
                                        n_quotes += 1
                                        ev = Quote(m.ticker, ts, bd, bqd, ad, aqd)
                                    else:  # trade
                                        pd = prices_b[p]
                                        qd = sizes[qs.decode()]
                                        if not qd:
                                            raise BadValue(f"trade size {qs.decode()!r} must be positive")
                                        if m.contract_usd is not None:
                                            qd = qd * m.contract_usd / pd
                                        n_trades += 1
                                        ev = Trade(m.ticker, ts, pd, qd, _SELL if mflag == b"true" else _BUY, tid.decode())
                                except BadValue as exc:
                                    raise DataError(f"{path}:{lineno}: {exc}") from None
                                if not m.status_sent:
                                    m.status_sent = True
                                    yield ts, [FeedStatus(m.ticker, ts, False, WAITING), ev]
                                else:
                                    yield ts, [ev]
                                continue
                        sp = line.find(b" ")
                        try:
                            ts = int(line[:sp]) if sp > 0 else None
                        except ValueError:
                            ts = None
                        if ts is None:
                            raise DataError(
                                f"{path}:{lineno}: expected '<receive_ns> <json>', got {line[:60].decode(errors='replace')!r}"
                            )
                        if ts < prev_ts:
                            if ts < start_ts and prev_path is not None:
                                raise DataError(
                                    f"{path}:{lineno}: receive time {ts} is earlier than the end of the previous file "
                                    f"{prev_path} ({start_ts}): files of one market are replayed as one stream in "
                                    "time order and must not overlap"
                                )
                            raise DataError(
                                f"{path}:{lineno}: receive time {ts} is earlier than the previous line's {prev_ts}"
                            )
                        prev_ts = ts
                        try:
                            msg = loads(line[sp + 1 :])
                        except JSONDecodeError as exc:
                            raise DataError(f"{path}:{lineno}: malformed JSON ({exc})") from None
                        n_msg += 1
                        try:
                            data = msg.get("data", msg)
                            e = data.get("e")
                            if e == "bookTicker" or (e is None and "A" in data and "u" in data):
                                m = markets.get(data["s"]) or market(data["s"], ts)
                                if m is FILTERED:
                                    n_filtered += 1
                                    continue
                                b, bq, a, aq = data["b"], data["B"], data["a"], data["A"]
                                bd = prices[b]
                                ad = prices[a]
                                bqd = sizes[bq]
                                aqd = sizes[aq]
                                cu = m.contract_usd
                                if cu is not None:
                                    bqd = bqd * cu / bd
                                    aqd = aqd * cu / ad
                                n_quotes += 1
                                q = Quote(m.ticker, ts, bd, bqd, ad, aqd)
                                if not m.status_sent:
                                    m.status_sent = True
                                    yield ts, [FeedStatus(m.ticker, ts, False, WAITING), q]
                                else:
                                    yield ts, [q]
                            elif e == "depthUpdate":
                                m = markets.get(data["s"]) or market(data["s"], ts)
                                if m is FILTERED:
                                    n_filtered += 1
                                    continue
                                raw_b = data["b"]
                                raw_a = data["a"]
                                n_depth += 1
                                n_levels += len(raw_b) + len(raw_a)
                                bids = levels(raw_b, m.contract_usd)
                                asks = levels(raw_a, m.contract_usd)
                                for pat in zero_patterns:
                                    n_dels += line.count(pat)
                                U = data["U"]
                                u = data["u"]
                                pu = data.get("pu")
                                if m.state == SYNCED:
                                    if (pu if pu is not None else U - 1) == m.last_u:
                                        m.last_u = u
                                        yield ts, [BookDelta(m.ticker, ts, bids, asks)]
                                        continue
                                    batch = gap(m, ts, lineno, U, u, pu, bids, asks)
                                elif m.state == WAIT_FIRST:
                                    batch = first(m, ts, lineno, U, u, pu, bids, asks)
                                else:
                                    m.buffer.append((U, u, pu, bids, asks, lineno))
                                    if not m.ever_synced:
                                        m.waiting_depth += 1
                                    batch = None
                                if not m.status_sent:
                                    m.status_sent = True
                                    batch = [FeedStatus(m.ticker, ts, False, WAITING)] + (batch or [])
                                if batch:
                                    yield ts, batch
                            elif e == "trade" or e == "aggTrade":
                                m = markets.get(data["s"]) or market(data["s"], ts)
                                if m is FILTERED:
                                    n_filtered += 1
                                    continue
                                x = data.get("X")
                                if x is not None and x != "MARKET":
                                    stats["ignored"] += 1  # insurance-fund / ADL prints are not market trades
                                    continue
                                p = data["p"]
                                pd = prices[p]
                                qs = data["q"]
                                qd = sizes[qs]
                                if not qd:
                                    raise BadValue(f"trade size {qs!r} must be positive")
                                if m.contract_usd is not None:
                                    qd = qd * m.contract_usd / pd
                                maker_is_buyer = data["m"]
                                if maker_is_buyer is True:
                                    side = _SELL
                                elif maker_is_buyer is False:
                                    side = _BUY
                                else:
                                    raise BadValue(f"trade flag m={maker_is_buyer!r} is not true/false")
                                n_trades += 1
                                tr = Trade(m.ticker, ts, pd, qd, side, str(data["t"] if e == "trade" else data["a"]))
                                if not m.status_sent:
                                    m.status_sent = True
                                    yield ts, [FeedStatus(m.ticker, ts, False, WAITING), tr]
                                else:
                                    yield ts, [tr]
                            elif "lastUpdateId" in data:
                                batch = self._snapshot(data, ts)
                                if batch:
                                    yield ts, batch
                            else:
                                kind = e or next(iter(data), "?")
                                stats["ignored"] += 1
                                if kind not in self._warned:
                                    self._warned.add(kind)
                                    logger.warning(
                                        "{}:{}: Binance message type {!r} is not replayed (skipping every such message)",
                                        path,
                                        lineno,
                                        kind,
                                    )
                        except BadValue as exc:
                            raise DataError(f"{path}:{lineno}: {exc}") from None
                        except KeyError as exc:
                            raise DataError(f"{path}:{lineno}: missing field {exc.args[0]!r} in {describe_message(msg)}") from None
                        except (TypeError, ValueError, AttributeError) as exc:
                            raise DataError(f"{path}:{lineno}: malformed {describe_message(msg)} ({exc})") from None
                    _add_counts(stats, n_msg, n_depth, n_levels, n_dels, n_trades, n_quotes, n_filtered)
                    n_msg = n_depth = n_levels = n_dels = n_trades = n_quotes = n_filtered = 0
                    self.lineno = lineno
                    sync.check_stall(prev_ts)
        finally:
            _add_counts(stats, n_msg, n_depth, n_levels, n_dels, n_trades, n_quotes, n_filtered)
            self.lineno = lineno
        for ticker, reason in self.unsynced().items():
            logger.warning("{}: the order book of {} never synced: {}", sync.names, ticker, reason)

    def _snapshot(self, data: dict, ts: int) -> list | None:
        """A REST depth snapshot line -> its events (None for a filtered symbol)."""
        sync = self.sync
        sym = snapshot_symbol(data, list(sync.markets), sync.cur_path)
        m = sync.markets.get(sym) or sync.market(sym, ts)
        if m is FILTERED:
            return None
        snap_id = data["lastUpdateId"]
        if type(snap_id) is not int:
            raise BadValue(f"lastUpdateId {snap_id!r} is not an integer")
        bids = self.values.levels(data["bids"], m.contract_usd)
        asks = self.values.levels(data["asks"], m.contract_usd)
        return sync.snapshot(m, ts, snap_id, bids, asks)
