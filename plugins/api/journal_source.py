"""What the API reads from a journal file when no bot runs (``runbot.py api --journal PATH``).

:class:`JournalSource` answers the same read endpoints as a running bot, from the journal's
live rows (``voided = 0``) of its last run's resume chain. Figures are the report's
(:func:`perpbot.plugins.report.analytics.build_report`: PnL split, equity and drawdown series,
positions per market, risk actions); open orders and fills come from the journal's read side
(:class:`perpbot.plugins.journal.store.Journal`: ``open_orders``, ``fills``). Nothing is
computed twice. Every read opens the journal read-only in a worker thread
(:func:`asyncio.to_thread`), so a bot may keep writing it; the report is rebuilt only when
the file changed. What a journal cannot tell (scores, liquidation prices: they need live
market parameters) is null with a note.

Imports :mod:`perpbot.core`, the journal's read side and the report's analytics.
"""

from __future__ import annotations

import asyncio
import os
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from perpbot.core.errors import DataError
from perpbot.core.metrics import plain
from perpbot.plugins.api.live import dec, finite
from perpbot.plugins.journal.store import Journal
from perpbot.plugins.report.analytics import build_report

NS = 1_000_000_000


def read_runs(path: str | Path) -> list[dict]:
    """The ``runs`` rows of the journal at ``path``, oldest first, as ``RunOut`` dicts.

    :raises DataError: / JournalUnavailable: the journal is missing or unreadable.
    """
    j = Journal.open(path, readonly=True)
    try:
        rows = j.conn.execute("SELECT * FROM runs ORDER BY started_wall_ns, rowid").fetchall()
    finally:
        j.close()
    return [
        {
            "run_id": r["run_id"],
            "strategy": r["strategy"],
            "venues": r["venues"],
            "tickers": r["tickers"],
            "started_ns": int(r["started_ns"]),
            "ended_ns": r["ended_ns"],
            "status": r["status"],
            "stop_reason": r["stop_reason"],
        }
        for r in rows
    ]


class JournalSource:
    """The read endpoints over a journal file (read-only).

    :param path: the journal (SQLite) file.
    :raises DataError: the file does not exist (checked at once, naming it).
    """

    mode = "journal"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"--journal {self.path}: no such journal file (a run writes one with --journal PATH)")
        self._lock = threading.Lock()
        self._cached: tuple[tuple, Any] | None = None

    def _stamp(self) -> tuple:
        out = []
        for suffix in ("", "-wal"):
            try:
                st = os.stat(f"{self.path}{suffix}")
                out.append((st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def report(self):
        """The report of the journal's last run chain (cached until the file changes); blocking.

        :raises DataError: unreadable journal or a journal without runs.
        """
        with self._lock:
            stamp = self._stamp()
            if self._cached is not None and self._cached[0] == stamp:
                return self._cached[1]
            rep = build_report(self.path, max_points=2000)
            self._cached = (stamp, rep)
            return rep

    async def _report(self):
        return await asyncio.to_thread(self.report)

    async def status(self) -> dict:
        """The last run's :class:`~perpbot.plugins.api.models.Status` as the journal recorded it."""
        rep = await self._report()
        run = rep.runs[-1] if rep.runs else {}
        open_orders = await asyncio.to_thread(self._open_orders)
        peak = max((e for _t, e in rep.equity_series), default=None)
        dd = rep.drawdown_series[-1][1] if rep.drawdown_series else None
        tickers = [t for t in (run.get("tickers") or "").split(",") if t]
        return {
            "mode": "journal",
            "run_id": run.get("run_id", ""),
            "strategy": run.get("strategy", ""),
            "venues": rep.venues,
            "ts_ns": int(rep.end_ns or 0),
            "simulated_clock": False,
            "running": run.get("status") == "running",
            "stop_reason": run.get("stop_reason") or "",
            "halted": run.get("stop_reason") if run.get("status") == "halted" else None,
            "entries_paused": None,
            "events": 0,
            "decisions": 0,
            "orders_sent": 0,
            "orders_rejected": 0,
            "open_orders": len(open_orders),
            "equity": dec(rep.end_equity),
            "start_equity": dec(rep.start_equity),
            "peak_equity": dec(peak),
            "drawdown_frac": finite(dd),
            "progress": None,
            "feeds": [
                {"venue": v, "feed": "journal", "connected": None, "markets": tickers if v == rep.primary_venue else [],
                 "last_event_ns": int(rep.end_ns or 0), "last_message_age_s": None, "paused": {}, "circuit_open": None}
                for v in rep.venues
            ],
            "control": False,
        }

    async def markets(self) -> dict:
        """Markets of the run with their last journaled mark (no scores: the journal keeps none)."""
        rep = await self._report()
        rows = []
        for label, series in sorted(rep.price_series.items()):
            rows.append({"ticker": label, "venue": label.split(":", 1)[0] if ":" in label else rep.primary_venue,
                         "price": dec(series[-1][1]) if series else None, "scores": {}})
        return {"markets": rows}

    async def positions(self) -> dict:
        """Positions per market from the journal's fills, valued at the last journaled mark."""
        rep = await self._report()
        rows = []
        for label, b in rep.per_market.items():
            if not b.position:
                continue
            rows.append({
                "ticker": label,
                "venue": label.split(":", 1)[0] if ":" in label else rep.primary_venue,
                "size": plain(b.position),
                "unrealized": dec(b.unrealized),
                "liquidation_note": "not in the journal: liquidation prices need the live market parameters",
            })
        return {"positions": rows, "accounts": [], "note": "from the journal's fills and marks"}

    def _open_orders(self) -> list:
        j = Journal.open(self.path, readonly=True)
        try:
            return sorted(j.open_orders().values(), key=lambda o: (o.created_ns, o.client_id))
        finally:
            j.close()

    async def orders(self) -> dict:
        """Orders the journal believes may still be open (``Journal.open_orders``)."""
        orders = await asyncio.to_thread(self._open_orders)
        return {"orders": [
            {
                "client_id": o.client_id, "ticker": o.ticker, "venue": o.venue, "side": o.side.value,
                "size": plain(o.size), "filled": plain(o.filled_size), "price": dec(o.price),
                "status": o.status.value, "order_type": o.order_type.value, "reduce_only": bool(o.reduce_only),
                "tag": o.tag, "created_ns": int(o.created_ns),
            }
            for o in orders
        ]}

    def _fills(self, limit: int) -> list[dict]:
        j = Journal.open(self.path, readonly=True)
        try:
            rows = j.fills()[-limit:]
        finally:
            j.close()
        return [
            {
                "ts_ns": int(r["ts_ns"]), "client_id": int(r["client_id"]), "ticker": r["ticker"], "venue": r["venue"],
                "side": r["side"], "price": plain(Decimal(r["price"])), "size": plain(Decimal(r["size"])),
                "fee": plain(Decimal(r["fee"])), "liquidity": r["liquidity"] or "",
                "tag": (r["tag"] if "tag" in r.keys() else "") or "", "liquidation": bool(r["liquidation"]),
            }
            for r in rows
        ]

    async def fills(self, limit: int) -> dict:
        """The journal's last ``limit`` live fills, oldest first."""
        return {"fills": await asyncio.to_thread(self._fills, limit)}

    async def pnl(self) -> dict:
        """The report's PnL split of the last run chain (USD)."""
        rep = await self._report()
        return {
            "source": "journal",
            "realized": plain(rep.realized),
            "unrealized": plain(rep.unrealized),
            "fees": plain(rep.fees),
            "liquidation_fees": plain(rep.liquidation_fees),
            "funding": plain(rep.funding),
            "net": plain(rep.net_pnl),
            "start_equity": dec(rep.start_equity),
            "equity": dec(rep.end_equity),
            "max_drawdown": dec(rep.max_drawdown),
            "max_drawdown_frac": finite(rep.max_drawdown_frac),
            "closed_trades": len(rep.closed_trades),
            "wins": rep.wins,
        }

    async def risk(self, limit: int) -> dict:
        """The last ``limit`` risk and control actions of the run chain."""
        rep = await self._report()
        rows = [
            {"ts_ns": int(r["ts_ns"]), "policy": r["policy"], "action": r["action"], "reason": r["reason"],
             "ticker": r["ticker"] or "", "size": r["size"]}
            for r in rep.risk_actions[-limit:]
        ]
        return {"actions": rows}

    async def runs(self) -> dict:
        """Every run of the journal."""
        return {"runs": await asyncio.to_thread(read_runs, self.path), "note": ""}

    async def equity(self) -> dict:
        """The journal's equity samples (decimated by the report) with their drawdown from the running peak."""
        rep = await self._report()
        points, peak = [], None
        for t, e in rep.equity_series:
            peak = e if peak is None or e > peak else peak
            points.append({"ts_ns": int(t), "equity": plain(e), "drawdown_frac": float((e - peak) / peak) if peak > 0 else 0.0})
        return {"points": points}
