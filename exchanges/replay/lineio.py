"""Fast line reading of plain or gzip files, counting compressed bytes for progress bars.

:class:`LineFile` decompresses in 256 KiB chunks with :mod:`zlib` (multi-member
gzip files, as written by a rotating recorder that appends, are supported) and
hands out *lists* of lines, so a parser's hot loop is a plain ``for`` over a
list instead of one generator step per line. Memory stays bounded by the chunk
size, not the file size.

:meth:`LineFile.tail` gives the last lines of a file for the replay feed's
progress in market time (the data's last timestamp): a plain file is read
backwards from its end (a few KiB); a gzip file has no random access, so it is
decompressed once without parsing (zlib only, about 300 MB/s of text, 0.1 s for
the embedded 3.6 MB sample file), keeping just the last lines.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Iterator

from perpbot.core.errors import DataError

CHUNK = 1 << 18
GZIP_MAGIC = b"\x1f\x8b"


class LineFile:
    """A plain or gzip text file read as chunks of byte lines.

    :param path: the file. A missing file is a :class:`DataError` naming it.
    ``bytes_read`` (compressed bytes consumed) and ``size`` feed progress bars.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self.size = self.path.stat().st_size
        except FileNotFoundError:
            raise DataError(f"{self.path}: file not found") from None
        except OSError as exc:
            raise DataError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        if self.path.is_dir():
            raise DataError(f"{self.path}: is a directory, expected a data file")
        self.bytes_read = 0

    def head(self, max_bytes: int = 1 << 16) -> bytes:
        """Up to ``max_bytes`` of the decompressed start of the file (for sniffing)."""
        with open(self.path, "rb") as f:
            raw = f.read(CHUNK)
        if raw[:2] == GZIP_MAGIC:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                return d.decompress(raw, max_bytes)
            except zlib.error as exc:
                raise DataError(f"{self.path}: not a valid gzip file ({exc})") from None
        return raw[:max_bytes]

    def tail(self, n: int = 4, stop=None) -> list[bytes]:
        """The last ``n`` non-empty lines (bytes, without line ends), oldest first.

        Plain files are read backwards from the end; gzip files (all members) are
        decompressed once, keeping only the tail, without touching :attr:`bytes_read`.

        :param stop: optional ``() -> bool``, polled between chunks; when it returns
            True the scan ends early and returns ``[]``.
        :raises DataError: a corrupt gzip stream (naming the file). A gzip stream that
            ends early (a recorder killed mid-write) is not an error here: the lines
            before the cut are returned (the reader reports the truncation itself).
        """
        with open(self.path, "rb") as f:
            if f.read(2) != GZIP_MAGIC:
                return _plain_tail(f, self.size, n)
            f.seek(0)
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            keep = b""
            while True:
                if stop is not None and stop():
                    return []
                raw = f.read(CHUNK)
                if not raw:
                    break
                try:
                    d, data = _inflate(d, raw)
                except zlib.error as exc:
                    raise DataError(f"{self.path}: corrupt gzip data ({exc})") from None
                if data:
                    keep = _last_lines(keep + data, n)
        return [ln for ln in keep.split(b"\n") if ln.strip()][-n:]

    def chunks(self) -> Iterator[list[bytes]]:
        """Yield lists of lines (bytes, without the line end). Blank lines are kept as b''."""
        path = self.path
        with open(path, "rb") as f:
            first = f.read(CHUNK)
            gz = first[:2] == GZIP_MAGIC
            d = zlib.decompressobj(16 + zlib.MAX_WBITS) if gz else None
            rest = b""
            raw = first
            while raw:
                self.bytes_read += len(raw)
                if gz:
                    try:
                        d, data = _inflate(d, raw)
                    except zlib.error as exc:
                        raise DataError(f"{path}: corrupt gzip data near byte {self.bytes_read} ({exc})") from None
                else:
                    data = raw
                if rest:
                    data = rest + data
                lines = data.split(b"\n")
                rest = lines.pop()
                if lines:
                    if lines[0].endswith(b"\r") or lines[-1].endswith(b"\r"):
                        lines = [ln.rstrip(b"\r") for ln in lines]
                    yield lines
                raw = f.read(CHUNK)
            if gz and not d.eof:
                raise DataError(
                    f"{path}: the gzip stream ends early (truncated file, e.g. a recorder that was killed); "
                    "repair it with 'gzip -dc FILE > FILE.txt' and replay the text file"
                )
            if rest:
                yield [rest.rstrip(b"\r")]


def _last_lines(buf: bytes, n: int) -> bytes:
    """The end of ``buf`` that holds its last ``n`` lines (plus the unfinished one)."""
    cut = len(buf)
    for _ in range(n + 1):
        cut = buf.rfind(b"\n", 0, cut)
        if cut < 0:
            return buf
    return buf[cut + 1 :]


def _inflate(d, raw: bytes):
    """Feed ``raw`` to the gzip decompressor ``d``, crossing into later gzip members.

    :returns: ``(decompressor to use next, decompressed bytes)``.
    :raises zlib.error: corrupt data (callers name the file).
    """
    data = d.decompress(raw)
    while d.eof and d.unused_data:  # next gzip member
        tail = d.unused_data
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        data += d.decompress(tail)
    return d, data


def _plain_tail(f, size: int, n: int) -> list[bytes]:
    """The last ``n`` non-empty lines of an uncompressed file, read backwards in 64 KiB steps."""
    step = 1 << 16
    pos = size
    buf = b""
    while pos > 0:
        pos = max(0, pos - step)
        f.seek(pos)
        buf = f.read(min(step, size - pos)) + buf
        lines = [ln.rstrip(b"\r") for ln in buf.split(b"\n")]
        if pos > 0:
            lines = lines[1:]  # may be cut
        lines = [ln for ln in lines if ln.strip()]
        if len(lines) >= n or pos == 0:
            return lines[-n:]
    return []
