"""The journal file: one SQLite database per bot instance (WAL, exact Decimal TEXT).

:class:`Journal` is the synchronous store: one connection, used from one
thread. The bot never calls it on the event loop directly; it goes through
:class:`perpbot.plugins.journal.writer.JournalWriter`, which owns a Journal on its own
thread. Reports, tests and reconciliation's reads may open a Journal directly
(``Journal.open(path, readonly=True)``).

Durability: WAL mode with ``synchronous=NORMAL`` (a committed transaction
survives a process crash; an OS crash may lose the last few) and
``synchronous=FULL`` for order intents, which are fsynced before the order is
sent. Every write is a transaction; a process killed at any point leaves a
journal that opens, at its last committed transaction.

:class:`Journal` is composed of one part per concern, each a subclass of the file
(they share one connection and its transaction, so they are not separate objects):

- :class:`~perpbot.plugins.journal.connection.JournalFile`: open, migrate, check, close,
  transactions, ``meta``;
- :class:`~perpbot.plugins.journal.runlog.RunLog`: ``runs`` rows, checkpoints, voiding,
  market cursors;
- :class:`~perpbot.plugins.journal.records.LedgerRecords`: the ledger's writes (orders,
  fills, funding, liquidations, positions, equity, marks, risk actions, strategy state);
- :class:`~perpbot.plugins.journal.reads.LedgerReads`: the ledger's reads and ``verify``.

Errors live in :mod:`~perpbot.plugins.journal.errors`, row conversions in
:mod:`~perpbot.plugins.journal.rows`; this module re-exports them, so every name that was
importable from ``perpbot.plugins.journal.store`` still is.
"""

from __future__ import annotations

from perpbot.plugins.journal.connection import REQUIRED_TABLES, JournalFile, now_wall
from perpbot.plugins.journal.errors import (
    MOVE_ASIDE,
    DuplicateClientId,
    DuplicateFill,
    JournalUnavailable,
    describe_journal_error,
    is_storage_error,
)
from perpbot.plugins.journal.reads import LedgerReads
from perpbot.plugins.journal.records import LedgerRecords
from perpbot.plugins.journal.rows import (
    CANCEL_STATUSES,
    TERMINAL_STATUSES,
    intent_to_order_info,
    intent_to_request,
    row_to_fill,
    same_fill,
)
from perpbot.plugins.journal.runlog import Checkpoint, RunLog

__all__ = [
    "CANCEL_STATUSES",
    "Checkpoint",
    "DuplicateClientId",
    "DuplicateFill",
    "Journal",
    "JournalFile",
    "JournalUnavailable",
    "LedgerReads",
    "LedgerRecords",
    "MOVE_ASIDE",
    "REQUIRED_TABLES",
    "RunLog",
    "TERMINAL_STATUSES",
    "describe_journal_error",
    "intent_to_order_info",
    "intent_to_request",
    "is_storage_error",
    "now_wall",
    "row_to_fill",
    "same_fill",
]


class Journal(RunLog, LedgerRecords, LedgerReads):
    """Synchronous journal store (one connection; use from one thread).

    :param path: the SQLite file (created with its parent directory when missing).
    :param readonly: open without writing (no migration; refuses an old schema).
    :raises JournalUnavailable: the file cannot be opened, is damaged or lacks a table.
    :raises DataError: read-only open of a missing file or a non-journal; a journal newer
        than this perpbot.

    Its methods come from its parts (see the module docstring); callers post them unbound
    to the writer thread (``writer.post(Journal.record_fill, run_id, fill, venue=...)``).
    """
