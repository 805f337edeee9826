"""The ledger's reads: intents, fills, last statuses, open orders, strategy state, and
:meth:`LedgerReads.verify`, the journal's consistency check.

:class:`LedgerReads` is the part of :class:`~perpbot.plugins.journal.store.Journal` that
reconciliation, resume and the tests read through (the report runs its own SQL,
:mod:`perpbot.plugins.report.queries`). Reads see live rows (``voided = 0``) unless asked.

Imports :mod:`perpbot.core.model` and the journal's :mod:`.connection` and :mod:`.rows`.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from typing import Any

from perpbot.core.model import ZERO, OrderInfo
from perpbot.plugins.journal.connection import JournalFile
from perpbot.plugins.journal.rows import TERMINAL_STATUSES, intent_to_order_info


class LedgerReads(JournalFile):
    """Reads and the consistency check of the ledger (a part of
    :class:`~perpbot.plugins.journal.store.Journal`)."""

    def all_client_ids(self) -> set[int]:
        """Every client id ever journaled (voided included): never to be reused."""
        return {int(r[0]) for r in self.conn.execute("SELECT client_id FROM order_intents")}

    def max_client_id(self) -> int:
        """The largest client id ever journaled (voided included), 0 for none."""
        row = self.conn.execute("SELECT COALESCE(MAX(client_id), 0) FROM order_intents").fetchone()
        return int(row[0])

    def intent(self, client_id: int) -> sqlite3.Row | None:
        """The ``order_intents`` row of ``client_id`` (voided included), or None."""
        return self.conn.execute("SELECT * FROM order_intents WHERE client_id=?", (int(client_id),)).fetchone()

    def intents(self, *, include_voided: bool = False) -> list[sqlite3.Row]:
        """``order_intents`` rows in write order (live rows unless ``include_voided``)."""
        where = "" if include_voided else "WHERE voided=0"
        return self.conn.execute(f"SELECT * FROM order_intents {where} ORDER BY seq").fetchall()

    def fills(self, *, include_voided: bool = False) -> list[sqlite3.Row]:
        """``fills`` rows in write order (live rows unless ``include_voided``)."""
        where = "" if include_voided else "WHERE voided=0"
        return self.conn.execute(f"SELECT * FROM fills {where} ORDER BY seq").fetchall()

    def last_status(self) -> dict[int, str]:
        """client id -> the latest known status (from results and updates, not voided)."""
        status: dict[int, tuple[int, str]] = {}
        # results first, then updates: an update is always later information than the result
        for r in self.conn.execute("SELECT client_id, status, success, seq FROM order_results WHERE voided=0 ORDER BY seq"):
            st = r["status"] if r["success"] else "REJECTED"
            status[int(r["client_id"])] = (0, st)
        for r in self.conn.execute("SELECT client_id, status, seq FROM order_updates WHERE voided=0 ORDER BY seq"):
            status[int(r["client_id"])] = (1, r["status"])
        return {cid: st for cid, (_, st) in status.items()}

    def filled_by_client(self) -> dict[int, Decimal]:
        """client id -> total filled size (base units) of its live fills."""
        out: dict[int, Decimal] = {}
        for r in self.conn.execute("SELECT client_id, size FROM fills WHERE voided=0"):
            out[int(r["client_id"])] = out.get(int(r["client_id"]), ZERO) + Decimal(r["size"])
        return out

    def open_orders(self) -> dict[int, OrderInfo]:
        """Orders the journal believes may still be live (intent sent, no terminal status, not fully filled).

        Market (IOC) orders whose result says nothing else are treated as done:
        an IOC order cannot rest.
        """
        status = self.last_status()
        filled = self.filled_by_client()
        out: dict[int, OrderInfo] = {}
        for r in self.intents():
            cid = int(r["client_id"])
            st = status.get(cid, "PENDING")
            if st in TERMINAL_STATUSES:
                continue
            size = Decimal(r["size"])
            got = filled.get(cid, ZERO)
            if got >= size:
                continue
            if r["time_in_force"] == "IOC" and st != "PENDING":
                continue
            out[cid] = intent_to_order_info(r, status=st, filled=got)
        return out

    def latest_strategy_state(self, strategy: str) -> tuple[Any, sqlite3.Row] | None:
        """The last live state ``strategy`` journaled, decoded, with its row; None when none.

        :raises DataError: the state blob is unreadable (names the file and what to do).
        """
        row = self.conn.execute(
            "SELECT * FROM strategy_state WHERE strategy=? AND voided=0 ORDER BY seq DESC LIMIT 1", (strategy,)
        ).fetchone()
        if row is None:
            return None
        return self._decode(row["state_json"], f"strategy state {row['seq']}"), row


    # -- consistency ------------------------------------------------------------

    def verify(self) -> list[str]:
        """Problems found in the journal (empty list: consistent).

        Checks: SQLite integrity; every result, update, cancel and fill refers to
        a journaled intent (rows with ``source='foreign'`` — orders someone else
        placed on the account — and fills of liquidations or client id 0 excepted); fills agree with their intent's
        ticker and side and never exceed its size; no client id appears twice.
        """
        problems: list[str] = []
        ic = self.integrity_check()
        if ic != "ok":
            problems.append(f"sqlite integrity_check: {ic}")
        intents = {int(r["client_id"]): r for r in self.intents()}
        all_ids = self.all_client_ids()
        dup = self.conn.execute(
            "SELECT client_id, COUNT(*) c FROM order_intents GROUP BY client_id HAVING c > 1"
        ).fetchall()
        for r in dup:
            problems.append(f"client id {r['client_id']} journaled {r['c']} times")
        for table in ("order_results", "order_updates", "cancels"):
            where = "" if table == "order_results" else " AND source != 'foreign'"
            for r in self.conn.execute(f"SELECT seq, client_id FROM {table} WHERE voided=0{where}"):
                cid = int(r["client_id"])
                if cid not in all_ids:
                    problems.append(f"{table} seq {r['seq']}: client id {cid} has no intent")
                elif cid not in intents:
                    problems.append(f"{table} seq {r['seq']}: client id {cid} refers to a voided intent")
        filled: dict[int, Decimal] = {}
        for f in self.fills():
            cid = int(f["client_id"])
            if cid not in intents:
                if cid == 0 or f["liquidation"]:
                    continue
                problems.append(f"fills seq {f['seq']}: client id {cid} has no live intent")
                continue
            it = intents[cid]
            if f["ticker"] != it["ticker"]:
                problems.append(f"fills seq {f['seq']}: ticker {f['ticker']} != intent's {it['ticker']}")
            if f["side"] != it["side"]:
                problems.append(f"fills seq {f['seq']}: side {f['side']} != intent's {it['side']}")
            filled[cid] = filled.get(cid, ZERO) + Decimal(f["size"])
        for cid, total in filled.items():
            size = Decimal(intents[cid]["size"])
            if total > size:
                problems.append(f"client id {cid}: filled {total} > ordered {size}")
        return problems
