"""Walk-forward data: the time span of a replay's files and copies cut to one window.

A walk-forward cell replays only its window: the driver writes, once per window and phase,
copies of the run's CSV files (bars and funding) holding only the rows whose time is in
``[start, end)`` (half-open, so the last train instant is never a test instant), and the
cell's replay reads those copies by path. A train cell therefore cannot see a test row:
the rows are not in its files.

The time of a row is its first column, parsed by the replay's own
:func:`perpbot.exchanges.replay.timeparse.epoch_ns` (epoch s/ms/us/ns or ISO-8601). For bar
files that is the bar's open time (the replay's default ``bar_timestamp = "open"``,
``exchanges/replay/bars.py``). Files that are not line-per-row CSVs with a time first
(tick recordings, other Parquet) cannot be cut: one line names the file.

A Parquet file is cut on its ``timestamp`` column (a timestamp or epoch ns integer column,
as in the Hyperliquid panels ``../shared/data/funding/pietro_hyperliquid_1h/*.parquet``
that the ``funding_multi`` feed reads). A folder (such a feed's ``prices``) is cut file by
file into a folder of the same name; its span is that of all its files.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

from perpbot.core.errors import ConfigError
from perpbot.exchanges.replay.timeparse import epoch_ns

__all__ = ["data_span", "cut", "window_files"]


def _open_text(path: Path):
    """``path`` opened as UTF-8 text, gzip or plain by its first bytes (closing it closes the file)."""
    with open(path, "rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    if gz:
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _row_ns(path: Path, line: str, lineno: int) -> int:
    cell = line.split(",", 1)[0].strip().strip('"')
    try:
        return epoch_ns(cell)
    except ValueError:
        raise ConfigError(f"--walk-forward: cannot cut {path} by time: line {lineno} starts with {cell!r}, not a time "
                          "(walk-forward needs CSV bar or funding files with the time in the first column)") from None


def _parquet_ts(path: Path):
    """``(table, its timestamp column as int64 ns)`` of a Parquet file; :raises ConfigError: no such column."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(f"--walk-forward: cutting {path} needs pyarrow: pip install 'perpbot[research]'") from None
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--walk-forward: cannot read {path} as Parquet ({str(exc).splitlines()[0]})") from None
    if "timestamp" not in table.column_names:
        raise ConfigError(f"--walk-forward: cannot cut {path} by time: no 'timestamp' column "
                          f"(columns: {', '.join(table.column_names[:8])})")
    import pyarrow.types as pt

    col = table.column("timestamp")
    if pt.is_timestamp(col.type) and col.type.unit == "ns":
        return table, col.cast("int64")
    if pt.is_int64(col.type):
        return table, col
    raise ConfigError(f"--walk-forward: cannot cut {path} by time: its timestamp column is {col.type}, "
                      "not timestamp[ns] or int64 ns")


def _members(path: Path) -> list[Path]:
    """The data files of a folder (sorted; hidden files skipped); :raises ConfigError: none."""
    out = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    if not out:
        raise ConfigError(f"--walk-forward: folder {path} holds no files")
    return out


def _rows(path: Path):
    """Yield ``(header, None)`` then ``(line, ts_ns)`` for every data line of ``path``
    (a Parquet file yields ``(None, None)`` then ``(None, ts_ns)`` per row)."""
    if path.is_dir():
        for member in _members(path):
            yield from ((row, ts) for row, ts in _rows(member) if ts is not None)
        return
    if path.suffix == ".parquet":
        yield None, None
        for ts in _parquet_ts(path)[1].to_pylist():
            if ts is not None:
                yield None, ts
        return
    with _open_text(path) as f:
        header = f.readline()
        if not header:
            raise ConfigError(f"--walk-forward: {path} is empty")
        yield header, None
        for lineno, line in enumerate(f, start=2):
            if line.strip():
                yield line, _row_ns(path, line, lineno)


def data_span(files: list[Path]) -> tuple[int, int]:
    """``(first, last)`` row time (ns) over ``files`` (bar files: open times).

    :raises ConfigError: no file, a file without rows, a row whose first column is not a time.
    """
    first = last = None
    for path in files:
        for _line, ts in _rows(Path(path)):
            if ts is None:
                continue
            first = ts if first is None else min(first, ts)
            last = ts if last is None else max(last, ts)
    if first is None or last is None:
        raise ConfigError(f"--walk-forward: no data rows in {', '.join(map(str, files)) or 'no files'}")
    return first, last


def cut(src: Path, dst: Path, start_ns: int, end_ns: int) -> int:
    """Write to ``dst`` the header of ``src`` and its rows with ``start_ns <= time < end_ns``.

    ``dst`` is written whole or not at all (a temporary file renamed), gzip-compressed when
    its name ends in ``.gz``; a Parquet ``src`` gives a Parquet ``dst`` (every column kept); a
    folder gives a folder of its files cut. :returns: the number of rows kept.
    :raises ConfigError: a row or file that cannot be cut by time (one line naming it).
    """
    if src.is_dir():  # cut into a temporary folder renamed at the end: a folder copy is whole or absent
        tmp_dir = dst.with_name(dst.name + ".part")
        shutil.rmtree(tmp_dir, ignore_errors=True)
        kept = sum(cut(member, tmp_dir / member.name, start_ns, end_ns) for member in _members(src))
        os.replace(tmp_dir, dst)
        return kept
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    kept = 0
    if src.suffix == ".parquet":
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        table, ts = _parquet_ts(src)
        keep = pc.and_(pc.greater_equal(ts, start_ns), pc.less(ts, end_ns))
        part = table.filter(keep)
        pq.write_table(part, tmp)
        os.replace(tmp, dst)
        return part.num_rows
    opener = (lambda p: gzip.open(p, "wt", encoding="utf-8", compresslevel=1, newline="")) if dst.name.endswith(".gz") \
        else (lambda p: open(p, "w", encoding="utf-8", newline=""))
    with opener(tmp) as out:
        for line, ts in _rows(src):
            if ts is None:
                out.write(line)
            elif start_ns <= ts < end_ns:
                out.write(line)
                kept += 1
    os.replace(tmp, dst)
    return kept


def window_files(files: list[Path], folder: Path, start_ns: int, end_ns: int) -> list[str]:
    """Cut each of ``files`` to ``[start_ns, end_ns)`` into ``folder`` (same file names; a copy
    already there is reused). :returns: the copies' paths, as strings, in the order given.

    :raises ConfigError: two files with the same name, or a window with no bar rows.
    """
    out = []
    names = [Path(f).name for f in files]
    if len(set(names)) != len(names):
        raise ConfigError(f"--walk-forward: two data files share a name ({', '.join(names)}); rename one")
    for f in files:
        dst = folder / Path(f).name
        if not dst.exists():
            cut(Path(f), dst, start_ns, end_ns)
        out.append(str(dst))
    return out
