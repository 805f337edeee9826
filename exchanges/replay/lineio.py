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
import queue
import threading
import zlib
from pathlib import Path
from typing import Iterator

from perpbot.core.errors import DataError

CHUNK = 1 << 18
#: decompressed chunks the worker thread of a gzip file may hold ready ahead of the parser
AHEAD = 4
#: most decompressed bytes per piece the worker hands over (small pieces keep peak memory low:
#: large buffers freed by another thread than the one that made them fragment the heap)
PIECE = 1 << 16
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
        """Yield lists of lines (bytes, without the line end). Blank lines are kept as b''.

        A gzip file is read and decompressed up to :data:`AHEAD` pieces ahead by a worker
        thread (zlib releases the GIL while it inflates, so this runs on another core beside
        the parser); the lines are cut here, in the caller's thread. Closing the generator
        early stops the worker.

        :raises DataError: corrupt gzip data (naming the file and the byte), a gzip stream
            that ends early, or a read error.
        """
        path = self.path
        f = open(path, "rb")
        first = f.read(CHUNK)
        if first[:2] == GZIP_MAGIC:
            pieces = _inflated(f, first, path)
        else:
            pieces = _plain(f, first)
        try:
            rest = b""
            for n_raw, data in pieces:
                self.bytes_read += n_raw
                if rest:
                    data = rest + data
                lines = data.split(b"\n")
                rest = lines.pop()
                if lines:
                    if lines[0].endswith(b"\r") or lines[-1].endswith(b"\r"):
                        lines = [ln.rstrip(b"\r") for ln in lines]
                    yield lines
            if rest:
                yield [rest.rstrip(b"\r")]
        finally:
            pieces.close()


def _plain(f, first: bytes) -> Iterator[tuple[int, bytes]]:
    """``(bytes read, data)`` pieces of the uncompressed file ``f`` (closed at the end)."""
    with f:
        raw = first
        while raw:
            yield len(raw), raw
            raw = f.read(CHUNK)


def _inflated(f, first: bytes, path: Path) -> Iterator[tuple[int, bytes]]:
    """``(compressed bytes read, decompressed data)`` pieces of the gzip file ``f``, inflated ahead
    by a worker thread (which owns and closes ``f``); closing this generator stops the worker.

    :raises DataError: corrupt or truncated gzip data, or a read error (naming ``path``).
    """
    out: queue.Queue = queue.Queue(maxsize=AHEAD)
    stop = threading.Event()
    worker = threading.Thread(target=_inflate_worker, args=(f, first, out, stop), name=f"inflate {path.name}",
                              daemon=True)
    worker.start()
    done = 0
    try:
        while True:
            n_raw, data, end = out.get()
            done += n_raw
            if end is None:
                yield n_raw, data
            elif end is True:  # the end of a complete stream
                return
            elif end is False:
                raise DataError(
                    f"{path}: the gzip stream ends early (truncated file, e.g. a recorder that was killed); "
                    "repair it with 'gzip -dc FILE > FILE.txt' and replay the text file"
                )
            elif isinstance(end, zlib.error):
                raise DataError(f"{path}: corrupt gzip data near byte {done} ({end})") from None
            else:
                raise DataError(f"{path}: cannot read: {getattr(end, 'strerror', None) or end}") from None
    finally:
        stop.set()
        while worker.is_alive():  # unblock a worker waiting to put, then let it see ``stop``
            try:
                out.get_nowait()
            except queue.Empty:
                worker.join(0.01)


def _inflate_worker(f, first: bytes, out: queue.Queue, stop: threading.Event) -> None:
    """Read and inflate the gzip file ``f`` (closed at the end) into ``out``: ``(compressed bytes,
    data, None)`` items of at most :data:`PIECE` bytes of data, then one ``(bytes, b"", end)`` item, ``end`` True (a complete stream),
    False (the stream ends early) or the read or zlib exception. Stops when ``stop`` is set."""

    def put(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    with f:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        raw = first
        try:
            while raw:
                n = len(raw)  # counted with the chunk's first piece
                buf = raw
                while True:
                    data = d.decompress(buf, PIECE)
                    buf = d.unconsumed_tail
                    if d.eof and d.unused_data:  # next gzip member
                        buf = d.unused_data
                        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    if data or n:
                        if not put((n, data, None)):
                            return
                        n = 0
                    if not buf and len(data) < PIECE:  # input used up and no output held back
                        break
                raw = f.read(CHUNK)
        except (zlib.error, OSError) as exc:
            put((len(raw), b"", exc))
            return
        put((0, b"", bool(d.eof)))


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
