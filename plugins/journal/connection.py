"""The journal file: one SQLite connection (WAL, exact Decimal TEXT), its transactions and meta.

:class:`JournalFile` opens (and migrates) the file, refuses a damaged or incomplete one,
and gives the parts of :class:`~perpbot.plugins.journal.store.Journal` what they share:

- ``conn``: the :class:`sqlite3.Connection` (autocommit mode, ``sqlite3.Row`` rows);
- ``begin()`` / ``commit()`` / ``rollback()`` and ``_in_tx`` (True inside an explicit
  transaction; :class:`~perpbot.plugins.journal.writer.JournalWriter` resyncs it with
  ``conn.in_transaction`` after SQLite rolled back on its own);
- ``_exec(sql, args)``: one write inside the open transaction, or its own;
- ``_decode(text, what)``: a stored JSON blob, a damaged one a :class:`DataError`.

Durability: WAL mode with ``synchronous=NORMAL`` (a committed transaction survives a
process crash; an OS crash may lose the last few); ``set_synchronous("FULL")`` for writes
that must be fsynced (order intents, before the order is sent).

Imports :mod:`perpbot.core.errors` and the journal's :mod:`.codec`, :mod:`.errors`,
:mod:`.schema`.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Self

from perpbot.core.errors import DataError
from perpbot.plugins.journal.codec import loads_state
from perpbot.plugins.journal.errors import MOVE_ASIDE, JournalUnavailable, describe_journal_error
from perpbot.plugins.journal.schema import LEDGER_TABLES, SCHEMA_VERSION, migrate, schema_version

#: every table of the current schema (a journal missing one is refused at open)
REQUIRED_TABLES = ("meta", "runs", *LEDGER_TABLES, "checkpoints", "market_cursor")


def now_wall() -> int:
    """Wall-clock time, ns since the epoch (``time.time_ns()``): the ``wall_ns`` columns."""
    return time.time_ns()


class JournalFile:
    """The journal's SQLite file and connection (use from one thread).

    :param path: the SQLite file (created with its parent directory when missing).
    :param readonly: open without writing (no migration; refuses an old schema).
    :raises JournalUnavailable: the file cannot be opened, is damaged or lacks a table (one
        line naming the file and what to do).
    :raises DataError: read-only open of a missing file, of a non-journal, or of a journal
        newer than this perpbot; SQLite refusing WAL mode.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if self.path.is_dir():
            raise JournalUnavailable(describe_journal_error(self.path, IsADirectoryError(str(self.path)), "cannot open journal"))
        try:
            if readonly:
                if not self.path.is_file():
                    raise DataError(f"journal not found: {self.path}")
                uri = f"file:{self.path}?mode=ro"
                self.conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        except (sqlite3.Error, OSError) as exc:
            raise JournalUnavailable(describe_journal_error(self.path, exc, "cannot open journal")) from None
        self.conn.row_factory = sqlite3.Row
        try:
            self.conn.execute("PRAGMA busy_timeout=5000")
            if not readonly:
                mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise DataError(f"{self.path}: SQLite refused WAL mode (got {mode})")
                self.conn.execute("PRAGMA synchronous=NORMAL")
                self.from_version, _ = migrate(self.conn, path=str(self.path))
                # a write now: a read-only file (or folder) is refused at open, not at the first fill
                self.conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('opened_wall_ns', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (str(now_wall()),),
                )
            else:
                self.from_version = schema_version(self.conn)
                if self.from_version == 0:
                    raise DataError(f"{self.path}: not a perpbot journal (no meta table)")
                if self.from_version > SCHEMA_VERSION:
                    raise DataError(
                        f"{self.path}: journal schema version {self.from_version} is newer than "
                        f"this perpbot supports ({SCHEMA_VERSION})"
                    )
            self._check_file()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise JournalUnavailable(describe_journal_error(self.path, exc, "cannot open journal")) from None
        except BaseException:
            self.conn.close()
            raise
        self.version = schema_version(self.conn)
        self._in_tx = False

    def _check_file(self) -> None:
        """Refuse, at open, a journal whose pages are damaged or that lacks a table.

        ``PRAGMA quick_check`` reads every page (linear in the file size; about a
        millisecond per 500 KB), so damage is found before the bot trades, not at its
        first failing write.

        :raises JournalUnavailable: one line naming the file and what to do.
        """
        problem = str(self.conn.execute("PRAGMA quick_check(1)").fetchone()[0])
        if problem != "ok":
            lines = [ln.strip() for ln in problem.splitlines() if ln.strip() and not ln.startswith("***")]
            problem = "; ".join(lines) or problem.strip()
            raise JournalUnavailable(
                f"cannot open journal {self.path}: the file is damaged (sqlite quick_check: {problem}): {MOVE_ASIDE}"
            )
        have = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = [t for t in REQUIRED_TABLES if t not in have]
        if missing and schema_version(self.conn) == SCHEMA_VERSION:
            raise JournalUnavailable(
                f"cannot open journal {self.path}: it is not a complete perpbot journal "
                f"(table{'s' if len(missing) > 1 else ''} {', '.join(missing)} missing): {MOVE_ASIDE}"
            )

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False) -> Self:
        """``cls(path, readonly=readonly)``: open (and, writable, create and migrate) a journal.

        :raises JournalUnavailable: / DataError: as the constructor.
        """
        return cls(path, readonly=readonly)

    def close(self) -> None:
        """Commit an open transaction and close the connection; closing twice does nothing
        (the second close's ``sqlite3.ProgrammingError``, "closed database", is ignored)."""
        try:
            if self._in_tx:
                self.commit()
            self.conn.close()
        except sqlite3.ProgrammingError:
            pass

    # -- transactions ---------------------------------------------------------

    def begin(self) -> None:
        """Start an explicit ``BEGIN IMMEDIATE`` transaction (no-op inside one): writes until
        :meth:`commit` are one unit."""
        if not self._in_tx:
            self.conn.execute("BEGIN IMMEDIATE")
            self._in_tx = True

    def commit(self) -> None:
        """Commit the explicit transaction (no-op outside one)."""
        if self._in_tx:
            self.conn.execute("COMMIT")
            self._in_tx = False

    def rollback(self) -> None:
        """Roll back the explicit transaction (no-op outside one)."""
        if self._in_tx:
            self.conn.execute("ROLLBACK")
            self._in_tx = False

    def _exec(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        """Run one write inside the open transaction (or its own one when none is open)."""
        if self._in_tx:
            return self.conn.execute(sql, tuple(args))
        self.begin()
        try:
            cur = self.conn.execute(sql, tuple(args))
            self.commit()
            return cur
        except BaseException:
            self.rollback()
            raise

    def set_synchronous(self, mode: str) -> None:
        """``NORMAL`` or ``FULL`` (outside a transaction)."""
        self.conn.execute(f"PRAGMA synchronous={'FULL' if mode.upper() == 'FULL' else 'NORMAL'}")

    # -- meta ---------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        """The ``meta`` table as a dict (``schema_version``, ``first_run_id``, ``last_run_id``...)."""
        return {r["key"]: r["value"] for r in self.conn.execute("SELECT key, value FROM meta")}

    def set_meta(self, key: str, value: str) -> None:
        """Insert or replace one ``meta`` row (``value`` stored as text)."""
        self._exec(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, str(value)),
        )

    def _decode(self, text: str, what: str, loads=loads_state) -> Any:
        """Decode a stored JSON blob; a damaged one is a :class:`DataError` naming the file and what to do."""
        try:
            return loads(text)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(
                f"journal {self.path}: the state of {what} is unreadable ({type(exc).__name__}: {exc}); "
                "run with --fresh to start over without it (the journal keeps its rows), or move the journal aside"
            ) from None

    def count(self, table: str, *, include_voided: bool = False) -> int:
        """Rows of ``table`` (ledger tables: live rows only unless ``include_voided``).

        :raises ValueError: ``table`` is not a journal table.
        """
        if table not in LEDGER_TABLES and table not in ("runs", "checkpoints", "meta", "market_cursor"):
            raise ValueError(f"unknown journal table {table!r}")
        where = "" if include_voided or table not in LEDGER_TABLES else " WHERE voided=0"
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {table}{where}").fetchone()[0])

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` result: ``"ok"`` or the first problem found."""
        return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])
