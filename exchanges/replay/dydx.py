"""dYdX indexer recordings (gzip JSONL written by ``runbot.py record``), replayed by the dYdX plugin's parser.

The replay feed only recognises such a file and hands it to
``perpbot.exchanges.dydx.recording.RecordingReader(path, tickers, markets)``, imported
lazily, so a recording is parsed by exactly the code that parses the live
WebSocket. ``RecordingReader.batches()`` may be a plain or an async iterator
of event batches (lists of normalized events in time order).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

from perpbot.core.errors import ConfigError

from perpbot.exchanges.replay.lineio import LineFile

_ID_RE = re.compile(rb'"id"\s*:\s*"([A-Z0-9]+-USD)"')


def looks_like(head: bytes) -> bool:
    """True for JSON lines that mention dYdX indexer channels (``v4_*``) or say they are dYdX."""
    start = head.lstrip()
    if start[:1] != b"{":
        return False
    if start.startswith(b'{"recv_ns"'):  # the recorder's line shape: {"recv_ns": ..., "msg": {...}}
        return True
    probe = head[:16384]
    return b'"v4_' in probe or b"dydx" in probe.lower()


def sniff_tickers(head: bytes) -> list[str]:
    """dYdX tickers (``"id": "BTC-USD"``) named in a recording's first bytes ``head``, in order of first appearance."""
    out: list[str] = []
    for m in _ID_RE.finditer(head):
        t = m.group(1).decode()
        if t not in out:
            out.append(t)
    return out


class DydxRecording:
    """Adapter from the dYdX plugin's recording reader to the replay feed's source interface."""

    kind = "dydx"

    def __init__(self, path: str | Path, tickers: list[str] | None, markets: dict[str, Any]):
        self.file = LineFile(path)
        self.path = self.file.path
        try:
            module = importlib.import_module("perpbot.exchanges.dydx.recording")
        except ModuleNotFoundError as exc:
            if exc.name in ("exchanges", "perpbot.exchanges.dydx", "perpbot.exchanges.dydx.recording"):
                raise ConfigError(
                    f"{self.path}: is a dYdX indexer recording, but the dYdX plugin's recording reader "
                    "(perpbot.exchanges.dydx.recording) is not installed"
                ) from None
            raise
        reader_cls = getattr(module, "RecordingReader", None)
        if reader_cls is None:
            raise ConfigError(f"{self.path}: perpbot.exchanges.dydx.recording has no RecordingReader")
        self.reader = reader_cls(self.path, tickers, markets)
        self.stats: dict = {}

    @property
    def bytes_read(self) -> int:
        """Bytes consumed so far, from the reader's ``progress()`` (0 when it has none), for progress bars."""
        prog = getattr(self.reader, "progress", None)
        if callable(prog):
            got = prog()
            if got:
                return int(got[0])
        return 0

    @property
    def size(self) -> int:
        """The recording's size in bytes on disk (its first part)."""
        return self.file.size

    def last_ts(self, stop=None) -> int | None:
        """``recv_ns`` of the recording's last complete line (last rotated part), or None."""
        import orjson

        parts = list(getattr(self.reader, "parts", None) or [self.path])
        for part in reversed(parts):
            for line in reversed(LineFile(part).tail(4, stop)):
                try:
                    return int(orjson.loads(line)["recv_ns"])
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue  # a line cut by a recorder that was killed
        return None

    def reader_stats(self) -> dict:
        """The reader's counters (its ``stats`` dict or ``stats()`` result) as a new dict; empty when it keeps none."""
        st = getattr(self.reader, "stats", None)
        if callable(st):
            st = st()
        return dict(st or {})

    def batches(self):
        """The reader's batches (sync or async iterator of lists of events)."""
        return self.reader.batches()
