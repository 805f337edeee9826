"""The journal's errors, and one line for a journal file that failed.

:class:`DuplicateClientId` and :class:`DuplicateFill` are refused rows (the caller's data);
:class:`JournalUnavailable` is a failure of the FILE (:func:`is_storage_error` tells them
apart for :class:`~perpbot.plugins.journal.writer.JournalWriter`). Imports only
:mod:`perpbot.core.errors` and the standard library.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from perpbot.core.errors import DataError, PerpbotError


class DuplicateClientId(PerpbotError):
    """An order intent reused a client id already in the journal: the order is not sent."""


class DuplicateFill(DataError):
    """A fill's venue fill id is already journaled for a DIFFERENT fill (issue 9.2).

    A venue's fill id names one fill for good: the same id with other figures
    (order, market, side, price or size) is a collision, never a repeat, and the
    journal refuses it loudly rather than keep one of the two. A venue reporting
    the SAME fill again (a reconnect, reconciliation) is not an error:
    :meth:`~perpbot.plugins.journal.store.Journal.record_fill` returns False for it.
    """


class JournalUnavailable(DataError):
    """The journal file cannot be opened, read or written: damaged, read-only, a folder,
    a table missing, the disk full... The message is one line naming the file and
    what to do (see :func:`describe_journal_error`)."""


#: what to do with a damaged or foreign journal file (the end of the error line)
MOVE_ASIDE = "move it aside (keep it for inspection) and run again: a new journal starts"


def describe_journal_error(path: str | Path, exc: BaseException, doing: str = "cannot use journal") -> str:
    """One line for a journal file that failed: ``"<doing> <path>: <what> (<sqlite error>): <what to do>"``.

    :param path: the journal file.
    :param exc: the :class:`sqlite3.Error` or :class:`OSError` raised.
    :param doing: the start of the line (``"cannot open journal"``, ``"cannot write journal"``...).
    The kind of failure comes from SQLite's primary result code (``exc.sqlite_errorcode & 0xff``,
    https://www.sqlite.org/rescode.html), not from the message text.
    """
    path = Path(path)
    err = " ".join(str(exc).split()) or type(exc).__name__  # one line
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    head = f"{doing} {path}"
    if path.is_dir():
        return f"{head}: the journal path is a folder: give --journal a file path (e.g. {path / 'journal.sqlite'})"
    if isinstance(exc, OSError):
        return f"{head}: {err}: check that its folder exists and is writable, or give another --journal"
    if primary == sqlite3.SQLITE_READONLY:
        return (
            f"{head}: the file (or its folder) is read-only ({err}): make it writable "
            f"(chmod u+w {path} {path.parent}) or give another --journal"
        )
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return f"{head}: the file is damaged or not a journal ({err}): {MOVE_ASIDE}"
    if primary == sqlite3.SQLITE_FULL:
        return f"{head}: the disk is full ({err}): free space and run again (committed rows are kept)"
    if primary == sqlite3.SQLITE_IOERR:
        return f"{head}: the disk failed ({err}): check the disk and the file, or {MOVE_ASIDE}"
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return f"{head}: another process holds the file ({err}): stop it, or give this bot another --journal"
    if primary == sqlite3.SQLITE_CANTOPEN:
        return f"{head}: the file cannot be opened ({err}): check that it and its folder exist and are writable"
    if "no such table" in err or "no such column" in err:
        return f"{head}: it is not a complete perpbot journal ({err}): {MOVE_ASIDE}"
    return f"{head}: {err}: {MOVE_ASIDE}"


def is_storage_error(exc: BaseException) -> bool:
    """True for a failure of the journal FILE (damaged, read-only, full, missing table...),
    False for a refused row (a constraint: duplicate client id or fill id) or a caller's bug."""
    if isinstance(exc, (sqlite3.IntegrityError, DuplicateClientId, DuplicateFill)):
        return False
    return isinstance(exc, (sqlite3.DatabaseError, OSError, JournalUnavailable))
