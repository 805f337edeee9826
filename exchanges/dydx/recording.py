"""Record the raw dYdX indexer stream and play it back through the live parser.

File format: gzip-compressed JSON lines, one per received message::

    {"recv_ns": 1732262400123456789, "msg": {...the raw indexer message...}}

``recv_ns`` is the receive time (ns since the epoch, the feed's clock). ``msg`` is the
frame exactly as the indexer sent it (written byte for byte, not re-encoded). A frame
that is not valid JSON is kept as ``{"recv_ns": ..., "raw": "<text>"}``. The feed's
own ``perpbot_*`` pseudo-messages (disconnects, REST snapshots used for resyncs,
historical funding; see :mod:`perpbot.exchanges.dydx.parser`) are recorded in line, so a
replay rebuilds the same books the live feed had.

Rotation: with ``max_bytes``, a part is closed once its compressed size reaches the
limit and the next one opens: ``rec.jsonl.gz``, ``rec.0001.jsonl.gz``,
``rec.0002.jsonl.gz``, ... :class:`RecordingReader` reads all parts in order. A part
cut short by a crash (no gzip trailer) is read up to its last complete line.

``RecordingReader(path, tickers, markets)`` with ``async batches()`` is the entry point
the replay feed uses for dYdX recordings (keep name and signature).
"""

from __future__ import annotations

import asyncio
import gzip
import re
import time
import zlib
from pathlib import Path
from typing import Any, AsyncIterator, Iterable, Iterator, Mapping

import orjson
from loguru import logger

from perpbot.core.errors import DataError
from perpbot.core.model import Market
from perpbot.exchanges.dydx.parser import DydxParser

_SUFFIXES = (".jsonl.gz", ".json.gz", ".gz")


def _split_name(path: Path) -> tuple[str, str]:
    name = path.name
    for suf in _SUFFIXES:
        if name.endswith(suf):
            return name[: -len(suf)], suf
    return name, ""


def part_path(path: Path, n: int) -> Path:
    """Path of part ``n`` (0 is ``path`` itself)."""
    if n == 0:
        return path
    base, suf = _split_name(path)
    return path.with_name(f"{base}.{n:04d}{suf}")


def recording_parts(path: Path | str) -> list[Path]:
    """``path`` and its rotated parts, in order."""
    path = Path(path)
    base, suf = _split_name(path)
    rx = re.compile(re.escape(base) + r"\.(\d{4})" + re.escape(suf) + "$")
    parts = [path] if path.exists() else []
    extra = []
    if path.parent.exists():
        for p in path.parent.iterdir():
            m = rx.match(p.name)
            if m:
                extra.append((int(m.group(1)), p))
    return parts + [p for _, p in sorted(extra)]


class Recorder:
    """Writes raw indexer messages with their receive time, gzip JSONL, rotating by size.

    :param path: first part's path (parent directories are created).
    :param max_bytes: rotate after this many compressed bytes (None: one file).
    :param flush_every: flush the gzip stream every this many lines or every second (a
        crash loses at most that much; the reader tolerates a missing trailer).
    """

    def __init__(self, path: Path | str, max_bytes: int | None = None, flush_every: int = 200):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.flush_every = max(1, flush_every)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.part = 0
        self.lines = 0
        self.bytes_in = 0
        self.parts: list[Path] = []
        self._raw = None
        self._gz = None
        self._since_flush = 0
        self._bytes_since_flush = 0
        self._flushed_at = time.monotonic()
        # uncompressed bytes between size checks when rotating (JSON compresses ~5-10x)
        self._flush_bytes = max(4096, (max_bytes or 0) // 2)
        self._open()

    def _open(self) -> None:
        p = part_path(self.path, self.part)
        self._raw = open(p, "wb")
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6)
        self.parts.append(p)

    def _rotate_if_needed(self) -> None:
        if self.max_bytes is None:
            return
        if self._raw.tell() >= self.max_bytes:
            self._close_part()
            self.part += 1
            self._open()

    def write_raw(self, raw: Any, recv_ns: int, *, valid_json: bool = True) -> None:
        """Write one frame as received (``str``/``bytes``); ``valid_json`` False keeps it as text."""
        if self._gz is None:
            return
        if isinstance(raw, str):
            data = raw.encode()
        else:
            data = bytes(raw)
        if valid_json:
            line = b'{"recv_ns":' + str(int(recv_ns)).encode() + b',"msg":' + data + b"}\n"
        else:
            line = orjson.dumps({"recv_ns": int(recv_ns), "raw": data.decode("utf-8", "replace")}) + b"\n"
        self._emit(line)

    def write(self, msg: Mapping[str, Any], recv_ns: int) -> None:
        """Write one decoded message (the feed's pseudo-messages)."""
        if self._gz is None:
            return
        self._emit(orjson.dumps({"recv_ns": int(recv_ns), "msg": msg}) + b"\n")

    def _emit(self, line: bytes) -> None:
        self._gz.write(line)
        self.lines += 1
        self.bytes_in += len(line)
        self._since_flush += 1
        self._bytes_since_flush += len(line)
        now = time.monotonic()
        if (self._since_flush >= self.flush_every or now - self._flushed_at >= 1.0
                or (self.max_bytes is not None and self._bytes_since_flush >= self._flush_bytes)):
            # zlib holds compressed output back; a sync flush makes the part's size (and a
            # crash-safe prefix) visible at the cost of a few bytes
            self.flush()
            self._rotate_if_needed()

    def flush(self) -> None:
        """Make everything written so far readable in the current part (zlib sync flush + file flush)."""
        if self._gz is not None:
            self._gz.flush(zlib.Z_SYNC_FLUSH)
            self._raw.flush()
            self._since_flush = 0
            self._bytes_since_flush = 0
            self._flushed_at = time.monotonic()

    def _close_part(self) -> None:
        if self._gz is not None:
            self._gz.close()
            self._raw.close()
        self._gz = None
        self._raw = None

    def close(self) -> None:
        """Finish the current part (safe to call twice)."""
        self._close_part()

    @property
    def closed(self) -> bool:
        """True once the current part is closed."""
        return self._gz is None

    def summary(self) -> str:
        """One line: messages written, compressed bytes and parts."""
        size = sum(p.stat().st_size for p in self.parts if p.exists())
        return f"{self.lines} messages, {size} bytes compressed in {len(self.parts)} file(s): {self.parts[0]}"


def iter_recording(path: Path | str, progress: list | None = None) -> Iterator[tuple[int, Any, Path, int]]:
    """Yield ``(recv_ns, msg_or_raw_text, part, line_no)`` over all parts.

    ``msg`` is a dict for JSON frames, a ``str`` for frames that were not valid JSON.
    ``progress``, when given, is a one-item list updated with the compressed bytes read.

    :raises DataError: for a line that is not a recording line (naming file and line).
    """
    parts = recording_parts(path)
    if not parts:
        raise DataError(f"recording {path}: file not found")
    done_before = 0
    for part in parts:
        line_no = 0
        try:
            with open(part, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as fh:
                for line in fh:
                    if progress is not None and line_no % 256 == 0:
                        progress[0] = done_before + raw.tell()
                    line_no += 1
                    if not line.strip():
                        continue
                    try:
                        rec = orjson.loads(line)
                        recv_ns = int(rec["recv_ns"])
                    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                        if not line.endswith(b"\n"):
                            logger.warning(f"recording {part}: last line {line_no} is incomplete (ignored)")
                            break
                        raise DataError(f"recording {part}, line {line_no}: not a recording line") from None
                    if "msg" in rec:
                        yield recv_ns, rec["msg"], part, line_no
                    elif "raw" in rec:
                        yield recv_ns, str(rec["raw"]), part, line_no
                    else:
                        raise DataError(f"recording {part}, line {line_no}: neither 'msg' nor 'raw'")
        except (EOFError, zlib.error) as exc:
            logger.warning(f"recording {part}: truncated after line {line_no} ({type(exc).__name__}); rest ignored")
        except gzip.BadGzipFile as exc:
            raise DataError(f"recording {part}: not a gzip file ({exc})") from None
        done_before += part.stat().st_size
        if progress is not None:
            progress[0] = done_before


def is_dydx_recording(path: Path | str) -> bool:
    """Sniff: does ``path`` start like a recording written by :class:`Recorder`?"""
    try:
        with gzip.open(path, "rb") as fh:
            first = fh.readline(1 << 20)
        rec = orjson.loads(first)
        return isinstance(rec, dict) and "recv_ns" in rec and ("msg" in rec or "raw" in rec)
    except Exception:  # noqa: BLE001 - anything unreadable is simply not ours
        return False


class RecordingReader:
    """Replays a recording through :class:`~perpbot.exchanges.dydx.parser.DydxParser` (the live parser).

    :param path: the recording (first part; rotated parts are found next to it).
    :param tickers: dYdX tickers to emit events for (None: every market in the file).
    :param markets: known market parameters (optional; the recorded ``v4_markets``
        snapshot refreshes them).
    """

    def __init__(self, path: Path | str, tickers: Iterable[str] | None = None,
                 markets: Mapping[str, Market] | None = None):
        self.path = Path(path)
        self.tickers = tuple(tickers) if tickers is not None else None
        self._markets = dict(markets or {})
        self.parser = DydxParser(self.tickers, self._markets)
        self.parts = recording_parts(self.path)
        if not self.parts:
            raise DataError(f"recording {self.path}: file not found")
        self.lines = 0
        self.total_bytes = sum(p.stat().st_size for p in self.parts)
        self._progress = [0]

    def markets(self) -> dict[str, Market]:
        """Market parameters: the given ones, updated from the first recorded markets snapshot."""
        found = dict(self._markets)
        probe = DydxParser(self.tickers)
        for _, msg, _, _ in iter_recording(self.path):
            if isinstance(msg, dict) and msg.get("channel") == "v4_markets" and msg.get("type") in (
                "subscribed", "perpbot_rest"
            ):
                probe.on_message(msg, 0)
                found.update(probe.markets)
                break
        return found

    async def batches(self) -> AsyncIterator[list]:
        """Event batches in recorded order, each the events of one recorded message."""
        parser = self.parser
        first = True
        n = 0
        for recv_ns, msg, part, line_no in iter_recording(self.path, self._progress):
            if first:
                first = False
                start = parser.start_events(recv_ns)
                if start:
                    yield start
            self.lines += 1
            events = parser.on_raw(msg, recv_ns) if isinstance(msg, str) else parser.on_message(msg, recv_ns)
            parser.take_resyncs()  # a replay cannot ask REST; the recorded answers follow in line
            if events:
                yield events
            n += 1
            if n % 2000 == 0:
                await asyncio.sleep(0)

    def progress(self) -> tuple[int, int]:
        """``(compressed bytes read, total compressed bytes)`` over all parts."""
        return (self._progress[0], self.total_bytes)

    def stats(self) -> dict:
        """The parser's counters (see :class:`~perpbot.exchanges.dydx.parser.DydxParser`)."""
        return dict(self.parser.stats)
