"""``postgresql://...``: PostgreSQL through psycopg 3, daily time-partitioned tables, batched ``COPY``.

Each kind is a table ``PARTITION BY RANGE (ts_ns)`` (declarative partitioning, PostgreSQL docs
"5.11 Table Partitioning"); a partition holds one UTC day, ``<kind>_YYYYMMDD`` with bounds
``[day_start_ns, next_day_start_ns)``, created (``IF NOT EXISTS``) before the first batch that
needs it. A batch is one ``COPY <kind> (...) FROM STDIN`` (psycopg 3 ``Cursor.copy`` /
``Copy.write_row``; PostgreSQL routes copied rows to their partitions since version 11) in one
transaction: all rows or none. Types: text -> ``text``, int -> ``bigint``, bool -> ``boolean``,
dec -> ``numeric`` (exact, any precision), float -> ``double precision``.

The password of the URL never reaches a log line, repr or error (:func:`~perpbot.plugins.storage.redact`).
"""

from __future__ import annotations

from typing import Sequence

from perpbot.core.errors import ConfigError
from perpbot.plugins.storage import Storage, redact
from perpbot.plugins.storage.schema import COLUMNS, KINDS, TYPES, check_kind

_SQL_TYPE = {"text": "text", "int": "bigint", "bool": "boolean", "dec": "numeric", "float": "double precision"}
DAY_NS = 86_400 * 1_000_000_000


def day_bounds(ts_ns: int) -> tuple[int, int]:
    """The UTC day holding ``ts_ns``: ``(start_ns, next_start_ns)``."""
    start = ts_ns - ts_ns % DAY_NS
    return start, start + DAY_NS


def partition_name(kind: str, start_ns: int) -> str:
    """``<kind>_YYYYMMDD`` for the day starting at ``start_ns`` (UTC)."""
    import datetime as dt

    day = dt.datetime.fromtimestamp(start_ns // 1_000_000_000, tz=dt.timezone.utc)
    return f"{kind}_{day:%Y%m%d}"


class PostgresStorage(Storage):
    """Collected rows in PostgreSQL (tables created when missing).

    :param url: a libpq URL, ``postgresql://user[:password]@host:port/dbname``.
    :raises ConfigError: the server cannot be reached or refuses the login (one line, no password).
    """

    def __init__(self, url: str):
        import psycopg

        self.url = url
        try:
            self.con = psycopg.connect(url, connect_timeout=10)
        except psycopg.Error as exc:
            msg = " ".join(str(exc).split())[:300]
            pw = _password(url)
            if pw:
                msg = msg.replace(pw, "***")
            raise ConfigError(f"--store: cannot connect to PostgreSQL {redact(url)}: {msg}") from None
        self._partitions: set[str] = set()
        self._closed = False
        with self.con.transaction():
            for kind in KINDS:
                cols = ", ".join(f"{c} {_SQL_TYPE[TYPES[kind][c]]}" for c in COLUMNS[kind])
                self.con.execute(f"CREATE TABLE IF NOT EXISTS {kind} ({cols}) PARTITION BY RANGE (ts_ns)")

    def _ensure_partitions(self, kind: str, rows: Sequence[tuple]) -> None:
        days = {day_bounds(r[2]) for r in rows}
        for start, end in sorted(days):
            name = partition_name(kind, start)
            if name in self._partitions:
                continue
            self.con.execute(f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {kind} "
                             f"FOR VALUES FROM ({start}) TO ({end})")
            self._partitions.add(name)

    def write(self, kind: str, rows: Sequence[tuple]) -> int:
        """``COPY`` ``rows`` of ``kind`` into their day partitions in one transaction; returns ``len(rows)``.

        :raises ValueError: an unknown kind. psycopg errors (a lost server) propagate; the
            transaction is rolled back.
        """
        check_kind(kind)
        if not rows:
            return 0
        cols = ", ".join(COLUMNS[kind])
        try:
            with self.con.transaction():
                self._ensure_partitions(kind, rows)
                with self.con.cursor() as cur:
                    with cur.copy(f"COPY {kind} ({cols}) FROM STDIN") as copy:
                        for r in rows:
                            copy.write_row(r)
        except BaseException:
            self._partitions.clear()  # a rolled-back CREATE is gone: check again next time
            raise
        return len(rows)

    def counts(self) -> dict[tuple[str, str], int]:
        """``{(venue, kind): rows}`` over every table."""
        out: dict[tuple[str, str], int] = {}
        with self.con.transaction():
            for kind in KINDS:
                for venue, n in self.con.execute(f"SELECT venue, count(*) FROM {kind} GROUP BY venue").fetchall():
                    out[(venue, kind)] = int(n)
        return out

    def partitions(self, kind: str) -> list[str]:
        """Names of ``kind``'s partitions (``pg_inherits``), sorted."""
        rows = self.con.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s ORDER BY 1", (kind,)).fetchall()
        self.con.commit()
        return [r[0] for r in rows]

    def query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """Run a read query (for tests and analysis); returns all rows."""
        rows = self.con.execute(sql, list(params)).fetchall()
        self.con.commit()
        return rows

    def close(self) -> None:
        """Close the connection (safe twice)."""
        if not self._closed:
            self._closed = True
            self.con.close()


def _password(url: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password
    except ValueError:
        return None
