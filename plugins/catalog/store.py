"""Writing the catalog: one Parquet partition per (venue, market, kind, UTC day), atomically, and its manifest.

The layout, schema and manifest fields are defined with the reader in
:mod:`perpbot.exchanges.replay.catalog` (the replay feed reads a catalog without this plugin).
Here:

- :func:`arrow_table`: rows (dicts of the catalog's columns; prices and sizes as Decimal or
  their exact text) -> a ``pyarrow.Table`` whose decimal columns are strings, never float64;
- :class:`CatalogWriter`: writes a partition to ``part.parquet.tmp-<pid>`` then renames it
  over ``part.parquet`` (:func:`os.replace`, atomic on POSIX), then records it in the
  manifest, itself written to a temporary file and renamed. A Ctrl-C at any point leaves
  either the old partition and entry or the new ones, never a half-written file; a partition
  written but not yet in the manifest is simply fetched again by the next run.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Iterable

from perpbot.core.errors import DataError
from perpbot.exchanges.replay.catalog import (COLUMNS, MANIFEST, PART, kind_family, load_manifest,
                                              partition_key, sha256_file)

#: the int64 columns; every other column (prices, sizes, rates, ids, sides) is a string
_INT_COLUMNS = {"ts_ns", "trades", "interval_h", "height"}


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):  # never on the order path; a float here is a bug upstream
        raise TypeError(f"catalog: binary float {v!r} in a decimal column (pass Decimal or text)")
    if isinstance(v, Decimal):
        return format(v, "f")
    return str(v)


def arrow_table(kind: str, rows: list[dict]):
    """Rows of one kind -> a ``pyarrow.Table`` with the catalog's columns (see the reader's module docstring).

    :param kind: ``candles-<RES>``, ``funding`` or ``trades``.
    :param rows: dicts with every column of the kind's family.
    :raises KeyError: a row without one of the columns.
    :raises TypeError: a binary float in a decimal column.
    """
    import pyarrow as pa

    cols = COLUMNS[kind_family(kind)]
    arrays = []
    for c in cols:
        if c in _INT_COLUMNS:
            arrays.append(pa.array([int(r[c]) for r in rows], type=pa.int64()))
        else:
            arrays.append(pa.array([_text(r[c]) for r in rows], type=pa.string()))
    return pa.Table.from_arrays(arrays, names=list(cols))


def utc_now_iso() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SSZ`` (the manifest's ``downloaded_at``)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _atomic_write_bytes(path: Path, write) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class CatalogWriter:
    """The catalog at ``root`` opened for writing (created when missing).

    :param root: the catalog folder.
    :raises DataError: a corrupt manifest (named), or pyarrow missing.

    Attributes: ``root``, ``manifest`` (the loaded document; :meth:`entry` reads it).
    """

    def __init__(self, root: str | Path):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise DataError("the catalog needs pyarrow (pip install 'perpbot[research]')") from None
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self.manifest = load_manifest(self.root)

    def entry(self, venue: str, market: str, kind: str, date: str) -> dict | None:
        """The manifest entry of a partition, or None when it is not held."""
        return self.manifest["partitions"].get(partition_key(venue, market, kind, date))

    def is_complete(self, venue: str, market: str, kind: str, date: str) -> bool:
        """True when the partition is held complete AND its file is present with the recorded digest.

        A missing or corrupt file (a partition named in the manifest but damaged) is not
        complete, so the next download fetches it again.
        """
        e = self.entry(venue, market, kind, date)
        if not e or not e.get("complete"):
            return False
        path = self.root / partition_key(venue, market, kind, date) / PART
        return path.is_file() and sha256_file(path) == e.get("sha256")

    def write_partition(self, venue: str, market: str, kind: str, date: str, rows: list[dict], *,
                        complete: bool, source: str, gaps: Iterable = ()) -> dict:
        """Write one day's rows (sorted by ``ts_ns``) and record it in the manifest; returns the entry.

        :param complete: the whole UTC day was covered (it had ended when it was fetched).
        :param source: the endpoint or file the rows came from.
        :param gaps: ``[(from_ns, to_ns, count)]`` missing intervals found in the day.
        """
        import pyarrow.parquet as pq

        rows = sorted(rows, key=lambda r: r["ts_ns"])
        key = partition_key(venue, market, kind, date)
        folder = self.root / key
        folder.mkdir(parents=True, exist_ok=True)
        table = arrow_table(kind, rows)
        _atomic_write_bytes(folder / PART, lambda f: pq.write_table(table, f, compression="zstd"))
        entry = {
            "venue": venue, "market": market, "kind": kind, "date": date, "rows": len(rows),
            "first_ts": rows[0]["ts_ns"] if rows else None, "last_ts": rows[-1]["ts_ns"] if rows else None,
            "complete": bool(complete), "sha256": sha256_file(folder / PART), "source": source,
            "downloaded_at": utc_now_iso(), "gaps": [list(g) for g in gaps],
        }
        self.manifest["partitions"][key] = entry
        self._save()
        return entry

    def _save(self) -> None:
        doc = {"version": 1, "partitions": dict(sorted(self.manifest["partitions"].items()))}
        data = json.dumps(doc, indent=1).encode()
        _atomic_write_bytes(self.root / MANIFEST, lambda f: f.write(data))
