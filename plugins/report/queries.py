"""The report's SQL: every query it runs against a journal, recorded for its "Sources" section.

:class:`Sources` runs each query and keeps its label, SQL, parameters and row count, so
a reader can re-run any figure's query with ``sqlite3``. :func:`select_rows` picks the
runs (the *run chain* of the selected run, or every run) and reads their live rows
(``voided = 0``); :func:`voided_counts` counts the rows a resumed run superseded.

Tables and columns: :mod:`perpbot.plugins.journal.schema`. Imports only
:mod:`perpbot.core` and the standard library (and ``attrs``).
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from typing import Any, Iterable

import attrs

from perpbot.core.errors import DataError

NS = 1_000_000_000


@attrs.define
class Source:
    """One query the report ran.

    :param label: what the rows are, in words ("funding payments").
    :param sql: the SQL text, whitespace collapsed to single spaces.
    :param params: its ``?`` parameters (run ids).
    :param rows: number of rows it returned.
    """

    label: str
    sql: str
    params: tuple
    rows: int


class Sources:
    """Runs queries on ``conn`` and remembers each one (label, SQL, parameters, row count)
    in :attr:`used`, in the order they ran."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.used: list[Source] = []

    def query(self, label: str, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Run ``sql`` with ``params``, record it as a :class:`Source` and return all rows.

        :raises sqlite3.Error: as ``Connection.execute`` (the caller names the journal).
        """
        params = tuple(params)
        rows = self.conn.execute(sql, params).fetchall()
        self.used.append(Source(label, " ".join(sql.split()), params, len(rows)))
        return rows


def run_chain(runs: list[sqlite3.Row], run_id: str | None) -> list[str]:
    """Run ids of ``run_id``'s resume chain, oldest first: the run and the runs it resumed
    from (``runs.resumed_from``, transitively). ``run_id=None``: the last of ``runs``.

    :raises DataError: ``run_id`` is not in ``runs`` (the message lists the known ids).
    """
    by_id = {r["run_id"]: r for r in runs}
    if not runs:
        return []
    if run_id is None:
        run_id = runs[-1]["run_id"]
    if run_id not in by_id:
        known = ", ".join(by_id) or "none"
        raise DataError(f"run {run_id!r} is not in this journal (runs: {known})")
    chain = []
    seen = set()
    cur = run_id
    while cur and cur in by_id and cur not in seen:
        seen.add(cur)
        chain.append(cur)
        cur = by_id[cur]["resumed_from"]
    return list(reversed(chain))


def placeholders(ids: list[str]) -> str:
    """``"?,?,?"`` for an SQL ``IN (...)`` over ``ids`` (``"NULL"`` when empty: matches nothing)."""
    return ",".join("?" * len(ids)) or "NULL"


def venues_in_order(runs: list[dict]) -> list[str]:
    """Venues of the runs, primary first: the order of ``--exchange`` (``config_json``
    ``exchange``, else the ``runs.venues`` column as written), last run first."""
    out: list[str] = []
    for r in reversed(runs):
        try:
            listed = json.loads(r.get("config_json") or "{}").get("exchange") or []
        except (ValueError, AttributeError):
            listed = []
        if not listed:
            listed = [v for v in (r.get("venues") or "").split(",") if v]
        for v in listed:
            if v not in out:
                out.append(v)
    return out


def recorded_summary(runs: list[dict], ids: list[str], all_runs: bool, by_id: dict) -> dict | None:
    """The run summary (``runs.summary_json``) the last selected run recorded, when it covers
    every selected run (one resume chain: the bot carries its drawdown tracker across a
    resume) and holds ``max_drawdown``; else None (no summary, unreadable JSON, or
    independent runs selected with ``all_runs``)."""
    if not runs:
        return None
    last = runs[-1]
    if all_runs and run_chain(list(by_id.values()), last["run_id"]) != ids:
        return None
    try:
        summary = json.loads(last.get("summary_json") or "null")
    except ValueError:
        return None
    if not isinstance(summary, dict) or summary.get("max_drawdown") is None:
        return None
    return summary


def snapshot_period(runs: list[dict], series: list) -> float | None:
    """The equity sampling interval, s: the last run's configured ``equity_sample_s`` (or
    ``snapshot_interval_s``), else the median gap of ``series`` (``[(ts_ns, equity)]``),
    else None."""
    for r in reversed(runs):
        try:
            cfg = json.loads(r.get("config_json") or "{}")
        except ValueError:
            continue
        for key in ("equity_sample_s", "snapshot_interval_s"):
            if cfg.get(key):
                return float(Decimal(str(cfg[key])))
    if len(series) >= 2:
        gaps = sorted(b[0] - a[0] for a, b in zip(series, series[1:]) if b[0] > a[0])
        if gaps:
            return gaps[len(gaps) // 2] / NS
    return None


@attrs.define
class SelectedRows:
    """The journal rows the report is computed from (live rows of the selected runs).

    :param runs: every ``runs`` row of the journal, oldest first.
    :param ids: the selected run ids (the chain, or every run).
    :param chain_rows: the selected ``runs`` rows as dicts.
    :param fills: ``fills`` rows (with ``strategy`` from ``order_intents``), by ``seq``.
    :param funding: ``funding_payments`` rows. :param liquidations: ``liquidations`` rows.
    :param equity: ``equity_snapshots`` rows (ts_ns, venue, equity USD, gross_notional USD).
    :param marks: ``marks`` rows (ts_ns, venue, ticker, price USD).
    :param risk: ``risk_actions`` rows. :param intents: ``order_intents`` (client_id, strategy, tag).
    """

    runs: list
    ids: list
    chain_rows: list
    fills: list
    funding: list
    liquidations: list
    equity: list
    marks: list
    risk: list
    intents: list


def select_rows(src: Sources, path: str, run_id: str | None, all_runs: bool) -> SelectedRows:
    """Pick the runs (``run_id``'s chain, the last run's by default, or all) and read their
    live rows through ``src``, in the order the "Sources" section lists them.

    :raises DataError: the journal at ``path`` has no runs, or ``run_id`` is unknown.
    """
    runs = src.query("runs of the journal", "SELECT * FROM runs ORDER BY started_wall_ns, rowid")
    if not runs:
        raise DataError(f"{path}: the journal has no runs yet")
    ids = [r["run_id"] for r in runs] if all_runs else run_chain(runs, run_id)
    chain_rows = [dict(r) for r in runs if r["run_id"] in ids]
    ph = placeholders(ids)

    fills_rows = src.query(
        "fills (live rows of the selected runs)",
        f"SELECT f.*, i.strategy AS strategy FROM fills f LEFT JOIN order_intents i ON i.client_id = f.client_id "
        f"WHERE f.voided = 0 AND f.run_id IN ({ph}) ORDER BY f.seq",
        ids,
    )
    funding_rows = src.query(
        "funding payments",
        f"SELECT * FROM funding_payments WHERE voided = 0 AND run_id IN ({ph}) ORDER BY seq",
        ids,
    )
    liq_rows = src.query(
        "liquidations",
        f"SELECT * FROM liquidations WHERE voided = 0 AND run_id IN ({ph}) ORDER BY seq",
        ids,
    )
    eq_rows = src.query(
        "equity snapshots (summed over venues per time)",
        f"SELECT ts_ns, venue, equity, gross_notional FROM equity_snapshots WHERE voided = 0 AND run_id IN ({ph}) "
        f"ORDER BY ts_ns, seq",
        ids,
    )
    mark_rows = src.query(
        "mark prices",
        f"SELECT ts_ns, venue, ticker, price FROM marks WHERE voided = 0 AND run_id IN ({ph}) ORDER BY ts_ns, seq",
        ids,
    )
    risk_rows = src.query(
        "risk actions",
        f"SELECT ts_ns, policy, action, reason, ticker, size FROM risk_actions WHERE voided = 0 AND run_id IN ({ph}) ORDER BY seq",
        ids,
    )
    intents = src.query(
        "order intents (strategy and tag of each client id)",
        f"SELECT client_id, strategy, tag FROM order_intents WHERE voided = 0 AND run_id IN ({ph})",
        ids,
    )
    return SelectedRows(
        runs=runs,
        ids=ids,
        chain_rows=chain_rows,
        fills=fills_rows,
        funding=funding_rows,
        liquidations=liq_rows,
        equity=eq_rows,
        marks=mark_rows,
        risk=risk_rows,
        intents=intents,
    )


def voided_counts(src: Sources, ids: list[str]) -> dict[str, int]:
    """Rows of ``fills``, ``order_intents`` and ``equity_snapshots`` a resumed run superseded
    (``voided = 1``) within the runs ``ids``, by table name."""
    ph = placeholders(ids)
    voided = src.query(
        "rows superseded by a resumed run (voided, excluded)",
        " UNION ALL ".join(
            f"SELECT '{t}' AS t, COUNT(*) AS n FROM {t} WHERE voided = 1 AND run_id IN ({ph})"
            for t in ("fills", "order_intents", "equity_snapshots")
        ),
        ids * 3,
    )
    return {r["t"]: r["n"] for r in voided}
