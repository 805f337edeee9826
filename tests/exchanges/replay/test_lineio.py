"""LineFile.chunks: plain and gzip files as lists of lines, gzip inflated ahead by a worker thread.

The worker must never change what is read (the same lines, byte counts and errors as reading
in the caller's thread) and must never outlive the reader: closing the generator early, or
an error, ends it.
"""

from __future__ import annotations

import gzip
import random
import threading
import time
import zlib

import pytest

from perpbot.core.errors import DataError
from perpbot.exchanges.replay import lineio
from perpbot.exchanges.replay.lineio import CHUNK, LineFile


def _lines(n: int, seed: int = 7) -> list[bytes]:
    rnd = random.Random(seed)  # digits compress poorly: the file spans several CHUNKs
    return [b"%d {\"p\":\"%d.%d\"}" % (i, rnd.getrandbits(40), rnd.getrandbits(20)) for i in range(n)]


def _inflate_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("inflate ")]


def _wait_no_worker() -> None:
    deadline = time.monotonic() + 5
    while _inflate_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _inflate_threads()


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("lines")
    lines = _lines(120_000)
    text = b"\n".join(lines) + b"\n"
    gz = tmp_path / "big.gz"
    half = len(text) // 2
    cut = text.index(b"\n", half) + 1
    gz.write_bytes(gzip.compress(text[:cut]) + gzip.compress(text[cut:]))  # two members, like a rotating recorder
    plain = tmp_path / "big.txt"
    plain.write_bytes(text.replace(b"\n", b"\r\n"))
    assert gz.stat().st_size > 3 * CHUNK
    return lines, gz, plain


def test_gzip_and_plain_files_read_the_same_lines_and_count_every_byte(big):
    lines, gz, plain = big
    for path in (gz, plain):
        lf = LineFile(path)
        got = [ln for chunk in lf.chunks() for ln in chunk]
        assert got == lines
        assert lf.bytes_read == path.stat().st_size
    _wait_no_worker()


def test_closing_the_reader_early_stops_the_worker(big):
    _, gz, _ = big
    it = LineFile(gz).chunks()
    first = next(it)
    assert first and _inflate_threads()
    it.close()
    _wait_no_worker()

    class Counting:
        """The file, counting the chunks the worker reads."""

        def __init__(self, f):
            self.f, self.reads = f, 0

        def read(self, n):
            self.reads += 1
            return self.f.read(n)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    f = Counting(open(gz, "rb"))
    pieces = lineio._inflated(f, f.read(CHUNK), gz)
    next(pieces)
    pieces.close()
    _wait_no_worker()
    assert f.f.closed and f.reads <= 3 < gz.stat().st_size // CHUNK  # not read to the end


def test_corrupt_data_names_the_file_and_byte_and_stops_the_worker(big, tmp_path):
    _, gz, _ = big
    data = bytearray(gz.read_bytes())
    at = 2 * CHUNK + 100
    data[at : at + 64] = b"\x00" * 64
    bad = tmp_path / "bad.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"bad\.gz: corrupt gzip data near byte \d+ \(Error -3"):
        for _ in LineFile(bad).chunks():
            pass
    _wait_no_worker()


def test_a_truncated_stream_is_an_error_after_its_complete_lines(big, tmp_path):
    lines, gz, _ = big
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(b"\n".join(lines).rstrip(b"\n") + b"\n")[:-40])
    got = []
    with pytest.raises(DataError, match="cut.gz: the gzip stream ends early"):
        for chunk in LineFile(cut).chunks():
            got.extend(chunk)
    assert got and got == lines[: len(got)]
    _wait_no_worker()


def test_a_read_error_in_the_worker_is_raised_to_the_reader(tmp_path):
    class Failing:
        """A file whose second read fails like a disk error."""

        def read(self, n):
            raise OSError(5, "Input/output error")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    first = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    head = first.compress(b"1 {}\n" * 1000) + first.flush(zlib.Z_SYNC_FLUSH)
    it = lineio._inflated(Failing(), head, tmp_path / "disk.gz")
    n_raw, data = next(it)
    assert n_raw == len(head) and data.startswith(b"1 {}\n")
    with pytest.raises(DataError, match=r"disk\.gz: cannot read: Input/output error"):
        next(it)
    _wait_no_worker()
