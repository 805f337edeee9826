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


def coinm_contract_usd(symbol: str) -> Decimal | None:
    """USD value of one COIN-M contract (Binance: 100 for BTCUSD, 10 for the others); None for USD-M."""
    if "_" not in symbol:
        return None
    return Decimal(100) if symbol.startswith("BTCUSD") else Decimal(10)


class _Market:
    """Sync state of one symbol's book inside one file."""

    __slots__ = ("symbol", "ticker", "state", "last_u", "snap_id", "buffer", "contract_usd", "status_sent")

    def __init__(self, symbol: str, ticker: str):
        self.symbol = symbol
        self.ticker = ticker
        self.state = _WAIT_SNAPSHOT
        self.last_u = -1
        self.snap_id = -1
        self.buffer: deque = deque(maxlen=_BUFFER_MAX)
        self.contract_usd = coinm_contract_usd(symbol)
        self.status_sent = False


class BinanceRecording:
    """Reads one Binance raw recording into event batches.

    :param path: the file.
    :param select: venue symbol -> dYdX ticker, or None to skip that symbol (ticker filter).
    :param on_gap: ``"error"`` or ``"resync"``.
    Counters are in :attr:`stats`.
    """

    kind = "binance"

    def __init__(self, path: str | Path, select: Callable[[str], str | None], on_gap: str = "error"):
        self.file = LineFile(path)
        self.path = self.file.path
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
        return self.file.bytes_read

    @property
    def size(self) -> int:
        return self.file.size

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

    def _market(self, symbol: str):
        m = self.markets.get(symbol)
        if m is None:
            if type(symbol) is not str or not symbol:
                raise _Bad(f"symbol {symbol!r} is not a text symbol")
            ticker = self.select(symbol)
            m = _FILTERED if ticker is None else _Market(symbol, ticker)
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
        stem = self.path.name.split(".")[0].split("_")
        name = "_".join(p for p in stem if not p.isdigit()).upper()
        if not name:
            raise _Bad("depth snapshot without a symbol and no symbol in the file name")
        return name

    # -- the reader ---------------------------------------------------------------

    def events(self) -> Iterator[tuple[int, list]]:
        """Yield ``(recv_ns, [events...])`` per raw line, in file order (receive time ascending)."""
        loads = orjson.loads
        JSONDecodeError = orjson.JSONDecodeError
        path = self.path
        stats = self.stats
        markets = self.markets
        prices = self._prices
        sizes = self._sizes
        levels = self._levels
        zero_patterns = self._zero_patterns
        lineno = 0
        prev_ts = 0
        n_msg = n_depth = n_levels = n_dels = n_trades = n_quotes = n_filtered = 0
        try:
            for chunk in self.file.chunks():
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
                            m = markets.get(data["s"]) or self._market(data["s"])
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
                            m = markets.get(data["s"]) or self._market(data["s"])
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
                                batch = None
                            if not m.status_sent:
                                m.status_sent = True
                                batch = [FeedStatus(m.ticker, ts, False, WAITING)] + (batch or [])
                            if batch:
                                yield ts, batch
                        elif e == "trade" or e == "aggTrade":
                            m = markets.get(data["s"]) or self._market(data["s"])
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
        finally:
            stats["messages"] += n_msg
            stats["depth_messages"] += n_depth
            stats["level_entries"] += n_levels
            stats["deletes"] += n_dels
            stats["trades"] += n_trades
            stats["quotes"] += n_quotes
            stats["filtered_messages"] += n_filtered
            self.lineno = lineno
        for m in self.markets.values():
            if m is not _FILTERED and m.state == _WAIT_SNAPSHOT and m.status_sent:
                logger.warning("{}: {} never got a depth snapshot; its book stayed empty", path, m.symbol)

    # -- sync steps -------------------------------------------------------------

    def _snapshot(self, data: dict, ts: int, lineno: int) -> list | None:
        sym = self._snapshot_symbol(data)
        m = self.markets.get(sym) or self._market(sym)
        if m is _FILTERED:
            return None
        snap_id = data["lastUpdateId"]
        if type(snap_id) is not int:
            raise _Bad(f"lastUpdateId {snap_id!r} is not an integer")
        bids = self._levels(data["bids"], m.contract_usd)
        asks = self._levels(data["asks"], m.contract_usd)
        self.stats["snapshots"] += 1
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
        if self.on_gap != "resync":
            raise DataError(f"{self.path}:{lineno}: {reason} (set on_gap = \"resync\" to wait for the next snapshot instead)")
        logger.warning("{}:{}: {}; waiting for the next snapshot", self.path, lineno, reason)
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
