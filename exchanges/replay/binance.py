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
batch per raw line and keeps its counters in locals.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable, Iterator

import orjson
from loguru import logger

from perpbot.core.errors import DataError
from perpbot.core.model import BookDelta, BookSnapshot, FeedStatus, Quote, Side, Trade

from perpbot.exchanges.replay.lineio import LineFile

WAITING = "waiting for book snapshot"
#: market time (seconds) a market may wait for its first book sync before the reader warns
STALL_S = 60
_STALL_NS = STALL_S * 1_000_000_000
_CACHE_MAX = 1 << 18
_EXP_MAX = 30  # |decimal exponent| of a sane price or size (rejects "1e999999999")
_BUFFER_MAX = 10_000  # pre-snapshot diffs kept per market
_WAIT_SNAPSHOT, _WAIT_FIRST, _SYNCED = 0, 1, 2
_BUY, _SELL = Side.BUY, Side.SELL
_FILTERED = object()


class _Bad(Exception):
    """A bad value inside one line; the reader adds file:line and raises DataError."""


def looks_like(head: bytes) -> bool:
    """True when the first line is ``<integer> {json}`` (a Binance raw recording)."""
    line = head.split(b"\n", 1)[0].strip()
    sp = line.find(b" ")
    return sp > 0 and line[:sp].isdigit() and line[sp + 1 : sp + 2] == b"{"


def sniff_symbols(head: bytes) -> list[str]:
    """Venue symbols named in the first lines (``"s":"BTCUSDT"`` or ``"symbol":...``)."""
    import re

    found = []
    for m in re.finditer(rb'"(?:s|symbol)"\s*:\s*"([A-Za-z0-9_]+)"', head):
        s = m.group(1).decode()
        if s not in found:
            found.append(s)
    return found


def first_ts(path: str | Path) -> int:
    """Receive time (ns) of a recording's first line; 0 when it has none (it sorts first)."""
    for line in LineFile(path).head(1 << 16).split(b"\n"):
        sp = line.find(b" ")
        if sp > 0 and line[:sp].isdigit():
            return int(line[:sp])
        if line.strip():
            break
    return 0


def coinm_contract_usd(symbol: str) -> Decimal | None:
    """USD value of one COIN-M contract (Binance: 100 for BTCUSD, 10 for the others); None for USD-M."""
    if "_" not in symbol:
        return None
    return Decimal(100) if symbol.startswith("BTCUSD") else Decimal(10)


class _Market:
    """Sync state of one symbol's book, carried across the files of one stream."""

    __slots__ = (
        "symbol", "ticker", "state", "last_u", "snap_id", "buffer", "contract_usd", "status_sent",
        "ever_synced", "first_ts", "waiting_depth", "snapshots", "problem", "stall_warned",
    )

    def __init__(self, symbol: str, ticker: str, first_ts: int = 0):
        self.symbol = symbol
        self.ticker = ticker
        self.state = _WAIT_SNAPSHOT
        self.last_u = -1
        self.snap_id = -1
        self.buffer: deque = deque(maxlen=_BUFFER_MAX)
        self.contract_usd = coinm_contract_usd(symbol)
        self.status_sent = False
        self.ever_synced = False
        self.first_ts = first_ts  # receive time of the symbol's first line
        self.waiting_depth = 0  # depth updates read while the book was never synced
        self.snapshots = 0
        self.problem = ""  # the last reason the book could not sync (a gap after a snapshot)
        self.stall_warned = False


class BinanceRecording:
    """Reads one Binance raw recording, or several consecutive ones, into event batches.

    :param path: the file, or a list of files of the same market(s) in time order: they
        are read as one stream whose book sync (update ids, buffered diffs) carries from
        one file to the next, so a file that continues an earlier one needs no snapshot.
    :param select: venue symbol -> dYdX ticker, or None to skip that symbol (ticker filter).
    :param on_gap: ``"error"`` or ``"resync"``.
    :raises DataError: (while reading) a file that starts before the previous one ended,
        naming both.
    Counters are in :attr:`stats`; markets whose book never synced in :meth:`unsynced`.
    """

    kind = "binance"

    def __init__(self, path: str | Path | list, select: Callable[[str], str | None], on_gap: str = "error"):
        paths = list(path) if isinstance(path, (list, tuple)) else [path]
        if not paths:
            raise ValueError("BinanceRecording: no files")
        self.files = [LineFile(p) for p in paths]
        self.file = self.files[0]
        self.path = self.file.path  # the first file (names the source)
        self.paths = [f.path for f in self.files]
        self._cur_path = self.path  # the file being read (error messages)
        self.select = select
        self.on_gap = on_gap
        self.markets: dict[str, object] = {}
        self.stats = dict.fromkeys(
            (
                "messages",
                "depth_messages",
                "level_entries",
                "deletes",
                "trades",
                "quotes",
                "snapshots",
                "gaps",
                "dropped_messages",
                "dropped_level_entries",
                "filtered_messages",
                "ignored",
            ),
            0,
        )
        self._prices: dict = {}
        self._sizes: dict = {}
        self._zero_patterns: list[bytes] = []
        self._file_symbol: str | None = None
        self._warned: set = set()
        self.lineno = 0

    # -- progress -------------------------------------------------------------

    @property
    def bytes_read(self) -> int:
        return sum(f.bytes_read for f in self.files)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def last_ts(self, stop=None) -> int | None:
        """Receive time (ns) of the last line of the last file (see :meth:`LineFile.tail`), or None."""
        for f in reversed(self.files):
            for line in reversed(f.tail(4, stop)):
                sp = line.find(b" ")
                if sp > 0 and line[:sp].isdigit():
                    return int(line[:sp])
        return None

    # -- book sync ------------------------------------------------------------------

    def _names(self) -> str:
        return ", ".join(p.name for p in self.paths)

    def _unsynced_reason(self, m: _Market) -> str:
        if m.snapshots:
            return (
                f"its {m.snapshots} depth snapshot(s) in {self._names()} were never followed by a matching "
                f"depth update ({m.problem or 'no update after the snapshot'})"
            )
        if m.waiting_depth:
            return (
                f"no depth snapshot in {self._names()}, so its {m.waiting_depth} depth updates could not be "
                "applied; a Binance file that continues an earlier recording has no snapshot: replay it "
                "together with the earlier file(s) of that market"
            )
        return f"no depth data in {self._names()} (only trades or quotes)"

    def unsynced(self) -> dict[str, str]:
        """``{ticker: reason}`` of the markets read so far whose book never synced once."""
        return {
            m.ticker: self._unsynced_reason(m)
            for m in self.markets.values()
            if m is not _FILTERED and not m.ever_synced and m.status_sent
        }

    def book_markets(self) -> dict[str, bool]:
        """``{ticker: synced at least once}`` of the markets read so far."""
        return {m.ticker: m.ever_synced for m in self.markets.values() if m is not _FILTERED and m.status_sent}

    def _check_stall(self, ts: int) -> None:
        """Warn once per market that has waited :data:`STALL_S` s of market time for its first sync."""
        for m in self.markets.values():
            if m is _FILTERED or m.ever_synced or m.stall_warned or not m.status_sent:
                continue
            if ts - m.first_ts >= _STALL_NS:
                m.stall_warned = True
                logger.warning(
                    "{} ({}): its order book has not synced after {} s of market data: {}. "
                    "Until it does the book is empty and no strategy can trade {}",
                    m.symbol, m.ticker, STALL_S, self._unsynced_reason(m), m.ticker,
                )

    def book_update_id(self, symbol: str) -> int | None:
        """The last depth update id ``u`` applied to ``symbol``'s book (None until synced)."""
        m = self.markets.get(symbol)
        if m is None or m is _FILTERED or m.state != _SYNCED:
            return None
        return m.last_u

    # -- value conversion (validated once per distinct string) -----------------

    def _price(self, s) -> Decimal:
        if type(s) is not str:
            raise _Bad(f"price {s!r} is not a decimal string")
        try:
            d = Decimal(s)
        except InvalidOperation:
            raise _Bad(f"price {s!r} is not a number") from None
        if not d.is_finite() or d <= 0:
            raise _Bad(f"price {s!r} must be finite and positive")
        if not -_EXP_MAX <= d.adjusted() <= _EXP_MAX:
            raise _Bad(f"price {s!r} is out of range")
        if len(self._prices) >= _CACHE_MAX:
            self._prices.clear()
        self._prices[s] = d
        return d

    def _size(self, s) -> Decimal:
        if type(s) is not str:
            raise _Bad(f"size {s!r} is not a decimal string")
        try:
            d = Decimal(s)
        except InvalidOperation:
            raise _Bad(f"size {s!r} is not a number") from None
        if not d.is_finite() or d < 0:
            raise _Bad(f"size {s!r} must be finite and not negative")
        if d and not -_EXP_MAX <= d.adjusted() <= _EXP_MAX:
            raise _Bad(f"size {s!r} is out of range")
        if not d:  # count deletes on the raw line (compact and spaced JSON)
            for pat in (b'","' + s.encode() + b'"]', b'", "' + s.encode() + b'"]'):
                if pat not in self._zero_patterns:
                    self._zero_patterns.append(pat)
        if len(self._sizes) >= _CACHE_MAX:
            self._sizes.clear()
        self._sizes[s] = d
        return d

    def _levels(self, raw, contract_usd) -> tuple:
        """``[[price, size], ...]`` -> ``((Decimal, Decimal), ...)``; sizes in base units."""
        prices = self._prices
        sizes = self._sizes
        if contract_usd is None:  # strings seen before come from the caches; new ones are validated once
            P = self._price
            S = self._size
            return tuple([(prices[p] if p in prices else P(p), sizes[q] if q in sizes else S(q)) for p, q in raw])
        out = []
        append = out.append
        for p, q in raw:
            pd = prices.get(p)
            if pd is None:
                pd = self._price(p)
            qd = sizes.get(q)
            if qd is None:
                qd = self._size(q)
            if contract_usd is not None and qd:
                qd = qd * contract_usd / pd
            append((pd, qd))
        return tuple(out)

    # -- markets ----------------------------------------------------------------

    def _market(self, symbol: str, ts: int = 0):
        m = self.markets.get(symbol)
        if m is None:
            if type(symbol) is not str or not symbol:
                raise _Bad(f"symbol {symbol!r} is not a text symbol")
            ticker = self.select(symbol)
            m = _FILTERED if ticker is None else _Market(symbol, ticker, ts)
            self.markets[symbol] = m
            if self._file_symbol is None:
                self._file_symbol = symbol
        return m

    def _snapshot_symbol(self, msg: dict) -> str:
        sym = msg.get("symbol") or msg.get("s")
        if sym:
            return sym
        seen = [s for s in self.markets]
        if len(seen) == 1:
            return seen[0]
        if len(seen) > 1:
            raise _Bad(f"depth snapshot without a symbol in a file with several symbols ({', '.join(seen)})")
        # snapshot first, no symbol: take it from the file name (e.g. btcusdt_20240808.gz)
        stem = self._cur_path.name.split(".")[0].split("_")
        name = "_".join(p for p in stem if not p.isdigit()).upper()
        if not name:
            raise _Bad("depth snapshot without a symbol and no symbol in the file name")
        return name

    # -- the reader ---------------------------------------------------------------

    def events(self) -> Iterator[tuple[int, list]]:
        """Yield ``(recv_ns, [events...])`` per raw line, file after file (receive time ascending).

        :raises DataError: a malformed line, a gap (``on_gap="error"``), or a file whose lines go
            back in time, or that starts before the previous file of the stream ended.
        """
        loads = orjson.loads
        JSONDecodeError = orjson.JSONDecodeError
        stats = self.stats
        markets = self.markets
        prices = self._prices
        sizes = self._sizes
        levels = self._levels
        zero_patterns = self._zero_patterns
        lineno = 0
        prev_ts = 0
        n_msg = n_depth = n_levels = n_dels = n_trades = n_quotes = n_filtered = 0
        path = prev_path = None
        try:
            for lf in self.files:
                prev_path, path = path, lf.path
                self._cur_path = path
                start_ts = prev_ts  # lines of this file must not be earlier (files of one stream follow each other)
                lineno = 0
                for chunk in lf.chunks():
                    for line in chunk:
                        lineno += 1
                        if not line:
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
                                m = markets.get(data["s"]) or self._market(data["s"], ts)
                                if m is _FILTERED:
                                    n_filtered += 1
                                    continue
                                b, bq, a, aq = data["b"], data["B"], data["a"], data["A"]
                                bd = prices[b] if b in prices else self._price(b)
                                ad = prices[a] if a in prices else self._price(a)
                                bqd = sizes[bq] if bq in sizes else self._size(bq)
                                aqd = sizes[aq] if aq in sizes else self._size(aq)
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
                                m = markets.get(data["s"]) or self._market(data["s"], ts)
                                if m is _FILTERED:
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
                                if m.state == _SYNCED:
                                    if (pu if pu is not None else U - 1) == m.last_u:
                                        m.last_u = u
                                        yield ts, [BookDelta(m.ticker, ts, bids, asks)]
                                        continue
                                    batch = self._gap(m, ts, lineno, U, u, pu, bids, asks)
                                elif m.state == _WAIT_FIRST:
                                    batch = self._first(m, ts, lineno, U, u, pu, bids, asks)
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
                                m = markets.get(data["s"]) or self._market(data["s"], ts)
                                if m is _FILTERED:
                                    n_filtered += 1
                                    continue
                                x = data.get("X")
                                if x is not None and x != "MARKET":
                                    stats["ignored"] += 1  # insurance-fund / ADL prints are not market trades
                                    continue
                                p = data["p"]
                                pd = prices[p] if p in prices else self._price(p)
                                qs = data["q"]
                                qd = sizes[qs] if qs in sizes else self._size(qs)
                                if not qd:
                                    raise _Bad(f"trade size {qs!r} must be positive")
                                if m.contract_usd is not None:
                                    qd = qd * m.contract_usd / pd
                                maker_is_buyer = data["m"]
                                if maker_is_buyer is True:
                                    side = _SELL
                                elif maker_is_buyer is False:
                                    side = _BUY
                                else:
                                    raise _Bad(f"trade flag m={maker_is_buyer!r} is not true/false")
                                n_trades += 1
                                tr = Trade(m.ticker, ts, pd, qd, side, str(data["t"] if e == "trade" else data["a"]))
                                if not m.status_sent:
                                    m.status_sent = True
                                    yield ts, [FeedStatus(m.ticker, ts, False, WAITING), tr]
                                else:
                                    yield ts, [tr]
                            elif "lastUpdateId" in data:
                                batch = self._snapshot(data, ts, lineno)
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
                        except _Bad as exc:
                            raise DataError(f"{path}:{lineno}: {exc}") from None
                        except KeyError as exc:
                            raise DataError(f"{path}:{lineno}: missing field {exc.args[0]!r} in {_what(msg)}") from None
                        except (TypeError, ValueError, AttributeError) as exc:
                            raise DataError(f"{path}:{lineno}: malformed {_what(msg)} ({exc})") from None
                    stats["messages"] += n_msg
                    stats["depth_messages"] += n_depth
                    stats["level_entries"] += n_levels
                    stats["deletes"] += n_dels
                    stats["trades"] += n_trades
                    stats["quotes"] += n_quotes
                    stats["filtered_messages"] += n_filtered
                    n_msg = n_depth = n_levels = n_dels = n_trades = n_quotes = n_filtered = 0
                    self.lineno = lineno
                    self._check_stall(prev_ts)
        finally:
            stats["messages"] += n_msg
            stats["depth_messages"] += n_depth
            stats["level_entries"] += n_levels
            stats["deletes"] += n_dels
            stats["trades"] += n_trades
            stats["quotes"] += n_quotes
            stats["filtered_messages"] += n_filtered
            self.lineno = lineno
        for ticker, reason in self.unsynced().items():
            logger.warning("{}: the order book of {} never synced: {}", self._names(), ticker, reason)

    # -- sync steps -------------------------------------------------------------

    def _snapshot(self, data: dict, ts: int, lineno: int) -> list | None:
        sym = self._snapshot_symbol(data)
        m = self.markets.get(sym) or self._market(sym, ts)
        if m is _FILTERED:
            return None
        snap_id = data["lastUpdateId"]
        if type(snap_id) is not int:
            raise _Bad(f"lastUpdateId {snap_id!r} is not an integer")
        bids = self._levels(data["bids"], m.contract_usd)
        asks = self._levels(data["asks"], m.contract_usd)
        self.stats["snapshots"] += 1
        m.snapshots += 1
        batch: list = []
        if not m.status_sent:
            m.status_sent = True
            batch.append(FeedStatus(m.ticker, ts, False, WAITING))
        batch.append(BookSnapshot(m.ticker, ts, bids, asks))
        m.state = _WAIT_FIRST
        m.snap_id = snap_id
        buffered = list(m.buffer)
        m.buffer.clear()
        for i, (U, u, pu, b, a, ln) in enumerate(buffered):
            if m.state == _SYNCED:
                if (pu if pu is not None else U - 1) == m.last_u:
                    m.last_u = u
                    batch.append(BookDelta(m.ticker, ts, b, a))
                    continue
                got = self._gap(m, ts, ln, U, u, pu, b, a)
            else:
                got = self._first(m, ts, ln, U, u, pu, b, a)
            if got:
                batch.extend(got)
            if m.state == _WAIT_SNAPSHOT:  # a gap while syncing (resync mode): keep the rest buffered
                m.buffer.extend(buffered[i + 1 :])
                break
        if m.state != _WAIT_SNAPSHOT:
            batch.append(FeedStatus(m.ticker, ts, True, ""))
        return batch

    def _first(self, m: _Market, ts: int, lineno: int, U, u, pu, bids, asks) -> list | None:
        """A diff while waiting for the first one after a snapshot."""
        target = m.snap_id if pu is not None else m.snap_id + 1  # futures rule / spot rule
        if u < target:
            self.stats["dropped_messages"] += 1
            self.stats["dropped_level_entries"] += len(bids) + len(asks)
            return None
        if U <= target:
            m.state = _SYNCED
            m.ever_synced = True
            m.last_u = u
            return [BookDelta(m.ticker, ts, bids, asks)]
        reason = (
            f"{m.symbol} depth update U={U} u={u} starts after the snapshot's lastUpdateId={m.snap_id}: "
            "the updates in between are missing"
        )
        return self._on_gap(m, ts, lineno, reason, (U, u, pu, bids, asks, lineno))

    def _gap(self, m: _Market, ts: int, lineno: int, U, u, pu, bids, asks) -> list | None:
        if pu is not None:
            reason = f"{m.symbol} depth gap: update U={U} u={u} has pu={pu} but the previous update ended at u={m.last_u}"
        else:
            reason = f"{m.symbol} depth gap: update U={U} u={u} does not follow the previous u={m.last_u} (expected U={m.last_u + 1})"
        return self._on_gap(m, ts, lineno, reason, (U, u, pu, bids, asks, lineno))

    def _on_gap(self, m: _Market, ts: int, lineno: int, reason: str, pending: tuple) -> list:
        self.stats["gaps"] += 1
        m.problem = f"{self._cur_path.name}:{lineno}: {reason}"
        if self.on_gap != "resync":
            raise DataError(f"{self._cur_path}:{lineno}: {reason} (set on_gap = \"resync\" to wait for the next snapshot instead)")
        logger.warning("{}:{}: {}; waiting for the next snapshot", self._cur_path, lineno, reason)
        m.state = _WAIT_SNAPSHOT
        m.buffer.clear()
        m.buffer.append(pending)
        return [FeedStatus(m.ticker, ts, False, f"book gap at line {lineno}; {WAITING}")]


def _what(msg) -> str:
    if not isinstance(msg, dict):
        return f"message (a JSON {type(msg).__name__}, expected an object)"
    data = msg.get("data", msg)
    if not isinstance(data, dict):
        return "message ('data' is not an object)"
    if "lastUpdateId" in data:
        return "depth snapshot"
    return f"{data.get('e') or 'message'}"
