"""The run log: ``runs`` rows, checkpoints (and voiding the rows after one), market cursors.

:class:`RunLog` is the part of :class:`~perpbot.plugins.journal.store.Journal` that records
where a run is: which runs the journal holds, the resumable points of each
(:class:`Checkpoint`: counters, per-table high-water marks and the state blob), and the
feed position per feed. Its interface to the file is :class:`~.connection.JournalFile`'s
(``conn``, transactions, ``_exec``, ``_decode``).

Imports :mod:`perpbot.plugins.journal` siblings (:mod:`.codec`, :mod:`.connection`,
:mod:`.schema`) and ``attrs``.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterable, Mapping

import attrs

from perpbot.plugins.journal.codec import dumps_state
from perpbot.plugins.journal.connection import JournalFile, now_wall
from perpbot.plugins.journal.schema import LEDGER_TABLES


@attrs.frozen
class Checkpoint:
    """A resumable point of a run.

    :param events_processed: market events the bot had fully processed (benchmark count:
        each book level entry, trade, quote...).
    :param events_read: feed events (batch items) read: the unit of ``bot.resume_from_event``.
    :param last_event_ns: time of the last processed event, ns.
    :param high_water: table -> largest ``seq`` written at the checkpoint.
    :param state: the decoded state blob (exchange states, portfolio, open orders, strategy state...).
    """

    seq: int
    run_id: str
    ts_ns: int
    events_processed: int
    events_read: int
    last_event_ns: int
    client_id_high: int
    high_water: dict
    state: dict
    reason: str


class RunLog(JournalFile):
    """Runs, checkpoints and market cursors of a journal (a part of
    :class:`~perpbot.plugins.journal.store.Journal`; all times in ns)."""

    # -- runs -------------------------------------------------------------------

    def start_run(
        self,
        run_id: str,
        *,
        ts_ns: int,
        strategy: str,
        venues: Iterable[str],
        tickers: Iterable[str],
        config: Mapping[str, Any] | None = None,
    ) -> None:
        """Add a row to ``runs`` (status ``running``); a run id already present is kept."""
        self._exec(
            "INSERT INTO runs(run_id, started_ns, started_wall_ns, strategy, venues, tickers, config_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(run_id) DO NOTHING",
            (
                run_id,
                int(ts_ns),
                now_wall(),
                strategy,
                ",".join(venues),
                ",".join(tickers),
                json.dumps(config or {}, default=str, sort_keys=True),
            ),
        )
        meta = self.meta()
        if "first_run_id" not in meta:
            self.set_meta("first_run_id", run_id)
        self.set_meta("last_run_id", run_id)

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set columns of a ``runs`` row: ``ended_ns``, ``ended_wall_ns``, ``status``,
        ``stop_reason``, ``summary_json``, ``reconcile_summary``, ``resumed_from``, ``resume_event``.

        :raises ValueError: naming any other column.
        """
        allowed = {
            "ended_ns",
            "ended_wall_ns",
            "status",
            "stop_reason",
            "summary_json",
            "reconcile_summary",
            "resumed_from",
            "resume_event",
        }
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"update_run: unknown column(s) {sorted(bad)}")
        if not fields:
            return
        cols = ", ".join(f"{k}=?" for k in fields)
        self._exec(f"UPDATE runs SET {cols} WHERE run_id=?", (*fields.values(), run_id))

    def end_run(self, run_id: str, *, ts_ns: int, status: str = "stopped", stop_reason: str = "", summary: Any = None) -> None:
        """Close a run: end times (clock ``ts_ns`` and wall), ``status``, ``stop_reason`` and the
        run summary as JSON (``summary``: a JSON-ready dict, None for none)."""
        self.update_run(
            run_id,
            ended_ns=int(ts_ns),
            ended_wall_ns=now_wall(),
            status=status,
            stop_reason=stop_reason,
            summary_json=None if summary is None else json.dumps(summary, default=str, sort_keys=True),
        )

    def runs(self) -> list[sqlite3.Row]:
        """Every ``runs`` row, in the order the runs started (wall clock)."""
        return self.conn.execute("SELECT * FROM runs ORDER BY started_wall_ns, rowid").fetchall()

    # -- checkpoints ------------------------------------------------------------

    def high_water(self) -> dict[str, int]:
        """table -> largest ``seq`` written so far (0 for an empty table)."""
        out = {}
        for t in LEDGER_TABLES:
            row = self.conn.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {t}").fetchone()
            out[t] = int(row[0])
        return out

    def record_checkpoint(
        self,
        run_id: str,
        *,
        ts_ns: int,
        events_processed: int,
        last_event_ns: int,
        client_id_high: int,
        events_read: int = 0,
        state: Mapping[str, Any] | None = None,
        reason: str = "",
        state_json: str | None = None,
    ) -> int:
        """Write a checkpoint (the high-water marks are read inside the same transaction).

        Pass ``state_json`` (from :func:`~perpbot.plugins.journal.codec.dumps_state`) when the
        state was captured on another thread: live objects may change before this runs.
        """
        if state_json is None:
            state_json = dumps_state(dict(state or {}))
        own = not self._in_tx
        if own:
            self.begin()
        try:
            hw = self.high_water()
            cur = self.conn.execute(
                "INSERT INTO checkpoints(run_id, ts_ns, wall_ns, events_processed, events_read, last_event_ns, "
                "client_id_high, high_water_json, state_json, reason) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    int(ts_ns),
                    now_wall(),
                    int(events_processed),
                    int(events_read),
                    int(last_event_ns),
                    int(client_id_high),
                    json.dumps(hw, sort_keys=True),
                    state_json,
                    reason,
                ),
            )
            if own:
                self.commit()
        except BaseException:
            if own:
                self.rollback()
            raise
        return int(cur.lastrowid)

    def last_checkpoint(self, *, with_state: bool = True) -> Checkpoint | None:
        """The latest checkpoint, or None.

        :param with_state: decode its state blob (False: ``state`` is ``{}``, for callers that
            only need its counters and run id).
        :raises DataError: the state or high-water marks are not readable (bad JSON); the
            message names the file and says to run with ``--fresh``.
        """
        row = self.conn.execute("SELECT * FROM checkpoints ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            return None
        what = f"checkpoint {row['seq']}"
        return Checkpoint(
            seq=row["seq"],
            run_id=row["run_id"],
            ts_ns=row["ts_ns"],
            events_processed=row["events_processed"],
            events_read=row["events_read"],
            last_event_ns=row["last_event_ns"],
            client_id_high=row["client_id_high"],
            high_water=self._decode(row["high_water_json"], what, json.loads),
            state=self._decode(row["state_json"], what) if with_state else {},
            reason=row["reason"],
        )

    def void_after(self, checkpoint: Checkpoint, *, run_ids: Iterable[str] | None = None) -> dict[str, int]:
        """Mark rows written after ``checkpoint`` as voided (a paper run rewound to it).

        Only rows of ``run_ids`` (default: every run) are touched. Returns table -> rows voided.
        Client ids of voided intents stay reserved (the UNIQUE constraint still holds them).
        """
        counts = {}
        own = not self._in_tx
        if own:
            self.begin()
        try:
            for t in LEDGER_TABLES:
                hw = int(checkpoint.high_water.get(t, 0))
                if run_ids is None:
                    cur = self.conn.execute(f"UPDATE {t} SET voided=1 WHERE seq>? AND voided=0", (hw,))
                else:
                    ids = list(run_ids)
                    marks = ",".join("?" * len(ids))
                    cur = self.conn.execute(
                        f"UPDATE {t} SET voided=1 WHERE seq>? AND voided=0 AND run_id IN ({marks})", (hw, *ids)
                    )
                counts[t] = cur.rowcount
            if own:
                self.commit()
        except BaseException:
            if own:
                self.rollback()
            raise
        return counts

    def set_cursor(self, feed: str, run_id: str, *, events: int, last_event_ns: int, position: Any = None) -> None:
        """Insert or replace the ``market_cursor`` row of ``feed``: events read, time of the
        last event (ns) and the feed's own position (any state :func:`dumps_state` encodes)."""
        self._exec(
            "INSERT INTO market_cursor(feed, run_id, events, last_event_ns, position_json, wall_ns) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT(feed) DO UPDATE SET run_id=excluded.run_id, events=excluded.events, "
            "last_event_ns=excluded.last_event_ns, position_json=excluded.position_json, wall_ns=excluded.wall_ns",
            (feed, run_id, int(events), int(last_event_ns), dumps_state(position or {}), now_wall()),
        )

    def cursor(self, feed: str) -> dict | None:
        """The cursor of ``feed`` as a dict (``feed``, ``run_id``, ``events``, ``last_event_ns``,
        ``position``), or None.

        :raises DataError: its position blob is unreadable (names the file and what to do).
        """
        row = self.conn.execute("SELECT * FROM market_cursor WHERE feed=?", (feed,)).fetchone()
        if row is None:
            return None
        return {
            "feed": row["feed"],
            "run_id": row["run_id"],
            "events": row["events"],
            "last_event_ns": row["last_event_ns"],
            "position": self._decode(row["position_json"], f"market cursor {feed!r}"),
        }
