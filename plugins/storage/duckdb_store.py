"""``duckdb:PATH``: the embedded default backend (one DuckDB file, no server).

One table per kind (:mod:`.schema`): text -> ``VARCHAR``, int -> ``BIGINT``, bool -> ``BOOLEAN``,
float -> ``DOUBLE``, dec -> ``DECIMAL(38,18)`` (exact, 18 fractional digits: enough for every venue's price, size and
per-hour funding rate). A batch goes in as one Arrow table (decimals as text, cast by DuckDB
in one ``INSERT ... SELECT`` statement): all rows of a batch or none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from perpbot.core.errors import ConfigError
from perpbot.plugins.storage import Storage
from perpbot.plugins.storage.schema import COLUMNS, KINDS, TYPES, check_kind, text_of

_SQL_TYPE = {"text": "VARCHAR", "int": "BIGINT", "bool": "BOOLEAN", "dec": "DECIMAL(38,18)", "float": "DOUBLE"}


def _arrow_type(logical: str):
    import pyarrow as pa

    return {"text": pa.string(), "int": pa.int64(), "bool": pa.bool_(), "dec": pa.string(), "float": pa.float64()}[logical]


class DuckDBStorage(Storage):
    """Collected rows in a DuckDB file (created with its tables when missing).

    :param path: the database file (``:memory:`` for a throwaway one).
    :raises ConfigError: the file cannot be opened (locked by another process, not a database).
    """

    def __init__(self, path: str):
        import duckdb

        self.path = path
        self.url = f"duckdb:{path}"
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(Path(path).expanduser()) if path != ":memory:" else path)
        except duckdb.Error as exc:
            raise ConfigError(f"--store: cannot open DuckDB file {path!r}: {' '.join(str(exc).split())[:200]}") from None
        for kind in KINDS:
            cols = ", ".join(f"{c} {_SQL_TYPE[TYPES[kind][c]]}" for c in COLUMNS[kind])
            self.con.execute(f"CREATE TABLE IF NOT EXISTS {kind} ({cols})")
        self._closed = False

    def write(self, kind: str, rows: Sequence[tuple]) -> int:
        """Insert ``rows`` of ``kind`` in one transaction (see module docstring); returns ``len(rows)``.

        :raises ValueError: an unknown kind.
        """
        check_kind(kind)
        if not rows:
            return 0
        import pyarrow as pa

        cols = COLUMNS[kind]
        types = TYPES[kind]
        arrays = []
        for i, c in enumerate(cols):
            t = types[c]
            if t == "dec":
                values = [text_of(r[i]) for r in rows]
            else:
                values = [r[i] for r in rows]
            arrays.append(pa.array(values, type=_arrow_type(t)))
        batch = pa.Table.from_arrays(arrays, names=list(cols))  # noqa: F841 - read by DuckDB by name
        select = ", ".join(f"CAST({c} AS DECIMAL(38,18))" if types[c] == "dec" else c for c in cols)
        self.con.register("perpbot_batch", batch)
        try:  # one statement: atomic (a value that does not cast fails the whole batch)
            self.con.execute(f"INSERT INTO {kind} SELECT {select} FROM perpbot_batch")
        finally:
            self.con.unregister("perpbot_batch")
        return len(rows)

    def counts(self) -> dict[tuple[str, str], int]:
        """``{(venue, kind): rows}`` over every table."""
        out: dict[tuple[str, str], int] = {}
        for kind in KINDS:
            for venue, n in self.con.execute(f"SELECT venue, count(*) FROM {kind} GROUP BY venue").fetchall():
                out[(venue, kind)] = int(n)
        return out

    def query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """Run a read query (for tests and analysis); returns all rows."""
        return self.con.execute(sql, list(params)).fetchall()

    def close(self) -> None:
        """Checkpoint and close the file (safe twice)."""
        if not self._closed:
            self._closed = True
            self.con.close()
