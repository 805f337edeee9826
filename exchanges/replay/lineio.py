"""Fast line reading of plain or gzip files, counting compressed bytes for progress bars.

:class:`LineFile` decompresses in 256 KiB chunks with :mod:`zlib` (multi-member
gzip files, as written by a rotating recorder that appends, are supported) and
hands out *lists* of lines, so a parser's hot loop is a plain ``for`` over a
list instead of one generator step per line. Memory stays bounded by the chunk
size, not the file size.
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
                        data = d.decompress(raw)
                        while d.eof and d.unused_data:  # next gzip member
                            tail = d.unused_data
                            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                            data += d.decompress(tail)
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
