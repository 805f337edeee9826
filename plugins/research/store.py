"""A sweep's directory: its spec, its finished cells (written as they finish), its tables.

The directory is keyed by the sweep's spec (:func:`spec_key`: the options, the grid, the
search, the objective, the walk-forward, and each data file's path, size and modification
time), so running the same command again finds it and runs only the cells it lacks
(resume after Ctrl-C), while a changed command gets its own directory.

Layout of ``<root>/<strategy>-<key>/``:

- ``spec.json``: what was asked (for people; the key is its hash);
- ``cells.jsonl``: one JSON row per finished cell (:func:`perpbot.plugins.research.cells.run_cell`),
  appended and flushed to disk as each cell finishes;
- ``results.csv``, ``results.parquet``: the table (:func:`table_rows`), rewritten at the end;
- ``report.html``: the page (:mod:`perpbot.plugins.research.html`);
- ``data/``: walk-forward copies of the data cut to each window.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

from perpbot.core.errors import DataError

__all__ = ["SweepStore", "spec_key", "table_rows", "TABLE_FIGURES"]

#: summary figures put in the table, in order (Decimals as strings, exact)
TABLE_FIGURES = ("final_equity", "realized_pnl", "unrealized_pnl", "fees", "funding_received", "funding_paid",
                 "max_drawdown", "max_drawdown_frac", "closed_trades", "wins", "start_ns", "end_ns")


def spec_key(spec: dict) -> str:
    """16 hex digits of the SHA-256 of ``spec`` (canonical JSON: sorted keys)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


class SweepStore:
    """The files of one sweep (see the module docstring)."""

    def __init__(self, root: Path, strategy: str, spec: dict):
        self.spec = spec
        self.key = spec_key(spec)
        self.dir = Path(root) / f"{strategy}-{self.key}"
        self.cells_path = self.dir / "cells.jsonl"

    def open(self) -> dict[str, dict]:
        """Create the directory (writing ``spec.json``) and return the finished rows by cell key.

        A last line cut short by a kill is dropped (that cell runs again).

        :raises DataError: a damaged line before the last, naming the file and line.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        spec_path = self.dir / "spec.json"
        if not spec_path.exists():
            spec_path.write_text(json.dumps(self.spec, indent=2, sort_keys=True, default=str) + "\n")
        done: dict[str, dict] = {}
        if not self.cells_path.exists():
            return done
        lines = self.cells_path.read_text().splitlines()
        good = 0
        for i, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines):  # a write cut short by a kill: forget it
                    break
                raise DataError(f"{self.cells_path}: line {i} is not JSON; delete the line or the file to rerun those cells") from None
            done[row["key"]] = row
            good = i
        if good != len(lines):  # rewrite without the broken tail, so later appends start on a new line
            self.cells_path.write_text("".join(line + "\n" for line in lines[:good] if line.strip()))
        return done

    def append(self, row: dict) -> None:
        """Add one finished cell's row, flushed to disk before returning."""
        with open(self.cells_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def write_tables(self, rows: list[dict], param_names: list[str]) -> tuple[Path, Path]:
        """Write ``results.csv`` and ``results.parquet`` from ``rows``; :returns: their paths."""
        flat = table_rows(rows, param_names)
        columns = list(flat[0]) if flat else ["phase", "window", *param_names, "status", "error"]
        csv_path, pq_path = self.dir / "results.csv", self.dir / "results.parquet"
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            w.writerows(flat)
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({c: pa.array([r.get(c) for r in flat], type=_arrow_type(c, flat)) for c in columns})
        pq.write_table(table, pq_path)
        return csv_path, pq_path


def _arrow_type(column: str, rows: list[dict]):
    import pyarrow as pa

    values = [r.get(column) for r in rows if r.get(column) is not None]
    if values and all(isinstance(v, bool) for v in values):
        return pa.bool_()
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return pa.int64()
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return pa.float64()
    return pa.string()  # Decimals stay exact strings


def table_rows(rows: list[dict], param_names: list[str]) -> list[dict]:
    """Flat rows for the CSV/Parquet table and the printed table: phase, window, the
    parameters, status, error, the objectives (floats), then :data:`TABLE_FIGURES`."""
    out = []
    for r in rows:
        s = r.get("summary") or {}
        o = r.get("objectives") or {}
        flat = {"phase": r["phase"], "window": "" if r["window"] is None else r["window"]}
        flat.update({n: r["params"].get(n, "") for n in param_names})
        flat.update({"status": r["status"], "error": r["error"]})
        for name in ("net_pnl", "sharpe", "sortino", "calmar", "profit_factor"):
            flat[name] = o.get(name)
        for name in TABLE_FIGURES:
            flat[name] = s.get(name)
        out.append(flat)
    return out
