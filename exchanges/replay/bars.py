"""OHLCV bar files (CSV, CSV.gz, Parquet) -> :class:`~perpbot.core.model.Bar` events.

Two layouts are recognised from the header:

- *merged* (oceanprotocol/pdr-backend's lake format): ``timestamp`` then five
  columns per symbol, ``<exchange>:<BASE/QUOTE>:open|high|low|close|volume``,
  several symbols side by side (e.g. ``binance:BTC/USDT:open``);
- *simple*: ``timestamp,open,high,low,close,volume[,ticker]`` (``time``/``ts``/
  ``datetime``/``date`` and ``symbol`` are accepted as column names). Without
  a ticker column the ticker comes from the file name's first token
  (``BTCUSDT_5m.csv`` -> BTC-USD).

Timestamps are epoch numbers (s/ms/us/ns, by magnitude) or ISO-8601 (naive =
UTC). They are bar OPEN times (Binance/ccxt convention; ``bar_timestamp =
"close"`` says otherwise); every :class:`Bar` is stamped with its CLOSE time
(open + interval), the moment the bar is known. The interval is
``bar_interval_s`` or the step between the first two rows.

Validation: prices finite and positive, volume finite and not negative,
``low <= open, close <= high``, times strictly increasing: anything else is a
:class:`~perpbot.core.errors.DataError` naming file, line and value. A symbol whose
five cells are all empty in a merged row has no bar at that time (counted as
``missing_bars``); a partly empty bar is an error.

Parquet needs ``pyarrow``; without it, reading a Parquet file is a clear error.
"""

from __future__ import annotations

import csv
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable, Iterator

from perpbot.core.errors import ConfigError, DataError
from perpbot.core.model import Bar

from perpbot.exchanges.replay.lineio import LineFile
from perpbot.exchanges.replay.timeparse import epoch_ns

_FIELDS = ("open", "high", "low", "close", "volume")
_TIME_COLS = ("timestamp", "time", "ts", "datetime", "date", "open_time")
_TICKER_COLS = ("ticker", "symbol")
PARQUET_MAGIC = b"PAR1"


class _Bad(Exception):
    pass


def looks_like(head: bytes) -> bool:
    """True for a CSV whose header starts with a time column and has OHLC columns."""
    first = head.split(b"\n", 1)[0].strip().lower().decode(errors="replace")
    cols = [c.strip().strip('"') for c in first.split(",")]
    if not cols or cols[0] not in _TIME_COLS:
        return False
    return any(c == "close" or c.endswith(":close") for c in cols)


def is_parquet(path: Path) -> bool:
    """True when ``path`` starts with Parquet's magic bytes ``PAR1``.

    :raises OSError: the file cannot be opened.
    """
    with open(path, "rb") as f:
        return f.read(4) == PARQUET_MAGIC


class _Layout:
    """Column positions: ``groups`` = [(venue symbol or None, {field: index})], ``ticker_col``."""

    def __init__(self, header: list[str], where: str):
        cols = [c.strip() for c in header]
        low = [c.lower() for c in cols]
        if not low or low[0] not in _TIME_COLS:
            raise DataError(f"{where}: first column must be a timestamp ({', '.join(_TIME_COLS)}), got {cols[:1]}")
        self.ticker_col = next((i for i, c in enumerate(low) if c in _TICKER_COLS), None)
        groups: dict[str | None, dict[str, int]] = {}
        for i, c in enumerate(cols[1:], 1):
            if ":" in c:
                sym, field = c.rsplit(":", 1)
                if field.lower() in _FIELDS:
                    groups.setdefault(sym, {})[field.lower()] = i
            elif c.lower() in _FIELDS:
                groups.setdefault(None, {})[c.lower()] = i
        if not groups:
            raise DataError(f"{where}: no open/high/low/close/volume columns in the header {cols}")
        for sym, fields in groups.items():
            missing = [f for f in _FIELDS if f not in fields]
            if missing:
                name = f"{sym}:" if sym else ""
                raise DataError(f"{where}: column {name}{missing[0]} is missing from the header")
        if None in groups and len(groups) > 1:
            raise DataError(f"{where}: mixes plain and '<symbol>:field' columns")
        self.groups = [(sym, tuple(f[k] for k in _FIELDS)) for sym, f in groups.items()]

    def symbols(self) -> list[str]:
        return [s for s, _ in self.groups if s is not None]


def sniff_symbols(head: bytes, path: Path) -> list[str]:
    """Venue symbols of a bar CSV from its first bytes ``head``: the merged layout's column
    prefixes, else the ticker column's values in the first 50 rows, else the file name's
    first token (see :func:`file_symbol`).

    :raises DataError: a header without a time column or without complete OHLCV columns (naming ``path``).
    """
    first = head.split(b"\n", 1)[0].decode(errors="replace")
    layout = _Layout(next(csv.reader([first])), str(path))
    syms = layout.symbols()
    if syms:
        return syms
    if layout.ticker_col is not None:
        rows = list(csv.reader(head.decode(errors="replace").splitlines()[1:50]))
        out = []
        for r in rows:
            if len(r) > layout.ticker_col and r[layout.ticker_col] and r[layout.ticker_col] not in out:
                out.append(r[layout.ticker_col])
        return out
    return [file_symbol(path)]


def file_symbol(path: Path) -> str:
    """The symbol a single-symbol bar file is about, from its name (``BTCUSDT_5m.csv`` -> ``BTCUSDT``)."""
    stem = path.name.split(".")[0]
    token = re.split(r"[_\s]", stem)[0]
    if re.match(r"^[A-Za-z0-9]+-USD$", token, re.I):
        return token
    return token.split("-")[0]


def _dec(s: str, what: str) -> Decimal:
    try:
        d = Decimal(s)
    except (InvalidOperation, TypeError):
        raise _Bad(f"{what} {s!r} is not a number") from None
    if not d.is_finite():
        raise _Bad(f"{what} {s!r} must be finite")
    return d


class BarFile:
    """One bar file as event batches (one batch of :class:`Bar` per row).

    :param select: venue symbol -> dYdX ticker, or None to skip it.
    :param interval_s: bar length, seconds (None: inferred from the first two rows).
    :param timestamp_is: ``"open"`` or ``"close"``: what the time column means.
    """

    kind = "bars"

    def __init__(
        self,
        path: str | Path,
        select: Callable[[str], str | None],
        interval_s: int | None = None,
        timestamp_is: str = "open",
    ):
        self.path = Path(path)
        self.parquet = False
        self.file = LineFile(path)  # raises DataError for a missing file
        self.parquet = is_parquet(self.path)
        self.select = select
        self.interval_s = interval_s
        if timestamp_is not in ("open", "close"):
            raise ConfigError(f"bar_timestamp: expected 'open' or 'close', got {timestamp_is!r}")
        self.timestamp_is = timestamp_is
        self.stats = {"messages": 0, "bars": 0, "missing_bars": 0}
        self._done_bytes = 0
        self._last_ts = 0

    @property
    def bytes_read(self) -> int:
        """Bytes consumed so far (compressed for gzip; a Parquet file counts whole once read), for progress bars."""
        return self._done_bytes if self.parquet else self.file.bytes_read

    @property
    def size(self) -> int:
        """The file's size in bytes on disk."""
        return self.file.size

    def last_ts(self, stop=None) -> int | None:
        """Event time (ns) of the file's last bar: its close time (see the module docstring), or None.

        Reads the last CSV line (:meth:`LineFile.tail`) or the Parquet time column; the bar
        interval comes from ``interval_s`` or the step between the first two rows of one symbol.

        :raises DataError: a last row whose time cannot be read (naming the file).
        """
        if self.parquet:
            first, last = self._parquet_times()
            if last is None:
                return None
        else:
            lines = self.file.tail(1, stop)
            if not lines:
                return None
            text = lines[-1].decode(errors="replace")
            row = next(csv.reader([text])) if '"' in text else text.split(",")
            try:
                last = epoch_ns(row[0])
            except ValueError:
                if len(self.file.tail(2, stop)) < 2:  # the header is the only line
                    return None
                raise DataError(f"{self.path}: last row: time {row[0]!r} is neither an epoch number nor ISO-8601") from None
        if self.timestamp_is == "close":
            return last
        return last + (self._head_interval_ns() or 0)

    def _head_interval_ns(self) -> int | None:
        """``interval_s`` in ns, else the step between the first two rows of one symbol (None if unknown)."""
        if self.interval_s:
            return self.interval_s * 1_000_000_000
        if self.parquet:
            header, rows = self._parquet_rows(limit=200)
        else:
            head = self.file.head(1 << 16)
            lines = head.decode(errors="replace").splitlines()
            if len(head) >= 1 << 16:
                lines = lines[:-1]  # the last line may be cut
            rows = list(csv.reader(lines[:200]))
            header, rows = (rows[0], rows[1:]) if rows else ([], [])
        if not header:
            return None
        low = [c.strip().lower() for c in header]
        tcol = next((i for i, c in enumerate(low) if c in _TICKER_COLS), None)
        seen: dict = {}
        for r in rows:
            if not r or (tcol is not None and len(r) <= tcol):
                continue
            key = r[tcol] if tcol is not None else None
            try:
                t = epoch_ns(r[0])
            except ValueError:
                return None
            if key in seen and t > seen[key]:
                return t - seen[key]
            seen[key] = t
        return None

    def _parquet_times(self) -> tuple[int | None, int | None]:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            return None, None
        pf = pq.ParquetFile(self.path)
        name = pf.schema_arrow.names[0]
        col = pq.read_table(self.path, columns=[name]).column(0)
        if len(col) == 0:
            return None, None
        first, last = col[0].as_py(), col[len(col) - 1].as_py()
        conv = lambda v: epoch_ns(v if isinstance(v, str) else _cell(v))  # noqa: E731
        return conv(first), conv(last)

    def symbols(self) -> list[str]:
        """Venue symbols in the file (see :func:`sniff_symbols`; for Parquet, from its first 50 rows).

        :raises DataError: a bad header, or a Parquet file without ``pyarrow`` installed.
        """
        if self.parquet:
            header, rows = self._parquet_rows(limit=50)
            layout = _Layout(header, str(self.path))
            syms = layout.symbols()
            if syms:
                return syms
            if layout.ticker_col is not None:
                return list(dict.fromkeys(r[layout.ticker_col] for r in rows))
            return [file_symbol(self.path)]
        return sniff_symbols(self.file.head(), self.path)

    # -- rows -------------------------------------------------------------------

    def _csv_rows(self) -> Iterator[tuple[int, list[str]]]:
        lineno = 0
        for chunk in self.file.chunks():
            for line in chunk:
                lineno += 1
                if not line.strip():
                    continue
                try:
                    text = line.decode()
                except UnicodeDecodeError:
                    raise DataError(f"{self.path}:{lineno}: not UTF-8 text") from None
                if '"' in text:
                    row = next(csv.reader([text]))
                else:
                    row = text.split(",")
                yield lineno, row

    def _parquet_rows(self, limit: int | None = None) -> tuple[list[str], list[list[str]]]:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError(
                f"{self.path}: is a Parquet file; reading Parquet needs pyarrow (pip install pyarrow), "
                "or convert it to CSV"
            ) from None
        table = pq.read_table(self.path)
        if limit is not None:
            table = table.slice(0, limit)
        header = [str(c) for c in table.column_names]
        cols = [table.column(i).to_pylist() for i in range(table.num_columns)]
        rows = []
        for values in zip(*cols):
            rows.append(["" if v is None else (v if isinstance(v, str) else _cell(v)) for v in values])
        return header, rows

    def _rows(self) -> Iterator[tuple[int, list[str]]]:
        if self.parquet:
            header, rows = self._parquet_rows()
            self._done_bytes = self.file.size
            yield 1, header
            for i, r in enumerate(rows, 2):
                yield i, r
        else:
            yield from self._csv_rows()

    def events(self) -> Iterator[tuple[int, list]]:
        """Yield ``(close_ns, [Bar, ...])`` per row, in time order."""
        path = self.path
        rows = self._rows()
        try:
            _, header = next(rows)
        except StopIteration:
            raise DataError(f"{path}: empty bar file") from None
        layout = _Layout(header, str(path))
        groups = []
        for sym, idx in layout.groups:
            if sym is None:
                groups.append((None, None, idx))
                continue
            ticker = self.select(sym)
            if ticker is not None:
                groups.append((sym, ticker, idx))
        fixed_ticker = None
        if layout.ticker_col is None and groups and groups[0][0] is None:
            fixed_ticker = self.select(file_symbol(path))
            if fixed_ticker is None:
                return
        tcol = layout.ticker_col
        interval_ns = self.interval_s * 1_000_000_000 if self.interval_s else None
        close_shift = 0 if self.timestamp_is == "close" else None
        pending: list = []  # rows held until the interval is known
        last_open: dict = {}
        width = len(header)
        for lineno, row in rows:
            try:
                if len(row) != width:
                    raise _Bad(f"expected {width} columns, got {len(row)}")
                try:
                    t = epoch_ns(row[0])
                except ValueError as exc:
                    raise _Bad(str(exc)) from None
                if tcol is not None:
                    ticker = self.select(row[tcol].strip())
                    if ticker is None:
                        continue
                    key = ticker
                else:
                    ticker = fixed_ticker
                    key = None
                prev = last_open.get(key)
                if prev is not None and t <= prev:
                    raise _Bad(f"timestamp {row[0]} is not after the previous row's")
                if interval_ns is None and prev is not None:
                    interval_ns = t - prev
                last_open[key] = t
                bars = []
                for sym, tk, idx in groups:
                    cells = [row[i].strip() for i in idx]
                    if not any(cells):
                        self.stats["missing_bars"] += 1
                        continue
                    if not all(cells):
                        raise _Bad(f"{sym or ticker}: incomplete bar {dict(zip(_FIELDS, cells))}")
                    o, h, l, c, v = (_dec(s, f) for s, f in zip(cells, _FIELDS))
                    if o <= 0 or h <= 0 or l <= 0 or c <= 0:
                        raise _Bad(f"{sym or ticker}: prices must be positive, got open={o} high={h} low={l} close={c}")
                    if v < 0:
                        raise _Bad(f"{sym or ticker}: volume {v} must not be negative")
                    if not (l <= o <= h and l <= c <= h):
                        raise _Bad(f"{sym or ticker}: inconsistent bar open={o} high={h} low={l} close={c}")
                    bars.append((tk or ticker, o, h, l, c, v))
            except _Bad as exc:
                raise DataError(f"{path}:{lineno}: {exc}") from None
            self.stats["messages"] += 1
            if not bars:
                continue
            if interval_ns is None:
                pending.append((t, bars))
                continue
            if pending:
                yield from self._emit_pending(pending, interval_ns, close_shift)
                pending = []
            yield from self._emit(t, bars, interval_ns, close_shift)
        if pending:
            if interval_ns is None:
                raise DataError(f"{path}: cannot infer the bar interval from a single row; set bar_interval_s")
            yield from self._emit_pending(pending, interval_ns, close_shift)

    def _emit_pending(self, pending, interval_ns, close_shift):
        for t, bars in pending:
            yield from self._emit(t, bars, interval_ns, close_shift)

    def _emit(self, t, bars, interval_ns, close_shift):
        ts = t if close_shift == 0 else t + interval_ns
        if ts < self._last_ts:
            raise DataError(f"{self.path}: rows are not in time order at {ts} ns (sort the file by time)")
        self._last_ts = ts
        interval_s = interval_ns // 1_000_000_000
        self.stats["bars"] += len(bars)
        yield ts, [Bar(tk, ts, o, h, l, c, v, interval_s) for tk, o, h, l, c, v in bars]


def _cell(v) -> str:
    """A Parquet cell as text: numbers by their shortest round-trip text, datetimes as ns."""
    from datetime import datetime

    if isinstance(v, datetime):
        return str(epoch_ns(v))
    if hasattr(v, "value") and hasattr(v, "to_pydatetime"):  # pandas Timestamp
        return str(v.value)
    return repr(v) if isinstance(v, float) else str(v)
