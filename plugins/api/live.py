"""What the API reads of a running bot: its :class:`~perpbot.core.bot.view.RunView`, nothing else.

:class:`LiveSource` answers every read endpoint from the run's view, on the bot's own event
loop (reads of the live tables take microseconds; nothing blocks). Market rows, ranks and
liquidation prices come from the terminal dashboard's snapshot code
(:func:`perpbot.plugins.dashboard.snapshot.take_snapshot` and
:func:`~perpbot.plugins.dashboard.snapshot.liquidation`: ``perpbot.core.margin``, chain
``protocol/x/perpetuals/lib/lib.go`` rounding); the PnL split is the run summary's
(:meth:`RunView.summary <perpbot.core.bot.view.RunView.summary>`, defined once in
:mod:`perpbot.core.metrics`). Fills and equity samples the view does not keep are kept here
in bounded rings (:class:`RunRecorder`). Runs come from the journal file when there is one.

Imports :mod:`perpbot.core`, the dashboard's snapshot and the journal's read side.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from decimal import Decimal
from typing import Any

from perpbot.core.metrics import plain
from perpbot.plugins.dashboard.snapshot import liquidation, take_snapshot

NS = 1_000_000_000


def dec(value: Any) -> str | None:
    """A Decimal (or int) as an exact plain decimal string; None stays None."""
    return None if value is None else plain(value)


def finite(value: Any) -> float | None:
    """A float, or None when missing or not finite (JSON has no NaN)."""
    if value is None:
        return None
    f = float(value)
    return f if f == f and f not in (float("inf"), float("-inf")) else None


class RunRecorder:
    """The last fills and equity samples of one run (bounded: memory does not grow with run time).

    :param fills: fills kept; :param points: equity samples kept; :param sample_s: the least
        wall time between two samples taken at decisions (equity snapshots are always kept).
    """

    def __init__(self, *, fills: int = 1000, points: int = 2000, sample_s: float = 0.5):
        self.fills: deque[dict] = deque(maxlen=fills)
        self.points: deque[tuple[int, Decimal]] = deque(maxlen=points)
        self.sample_s = sample_s
        self._last_sample = 0.0
        self.peak: Decimal | None = None

    def add_fill(self, row: dict) -> None:
        """Keep one fill row (the shape of :class:`~perpbot.plugins.api.models.FillOut`)."""
        self.fills.append(row)

    def sample(self, ts_ns: int, equity: Decimal, *, force: bool = False) -> bool:
        """Keep ``(ts_ns, equity USD)`` unless the last sample is younger than ``sample_s`` of wall
        time (``force``: keep anyway). Returns True when kept."""
        if ts_ns <= 0:
            return False  # the clock has not started (a replay before its first event)
        wall = time.monotonic()
        if not force and wall - self._last_sample < self.sample_s:
            return False
        self._last_sample = wall
        if self.points and self.points[-1][0] > ts_ns:
            return False  # never back in time (a resumed replay rewinds the clock)
        self.points.append((ts_ns, equity))
        if self.peak is None or equity > self.peak:
            self.peak = equity
        return True

    def equity_points(self) -> list[dict]:
        """The samples with their drawdown from the running peak (a fraction <= 0)."""
        out = []
        peak = None
        for ts, eq in self.points:
            peak = eq if peak is None or eq > peak else peak
            dd = float((eq - peak) / peak) if peak and peak > 0 else 0.0
            out.append({"ts_ns": ts, "equity": plain(eq), "drawdown_frac": dd})
        return out


def subaccount_rows(view: Any) -> list[dict]:
    """Per-subaccount rows of every venue whose client splits the account (``subaccount_positions()``
    and ``subaccount_balances()``, the dYdX plugin: parent and isolated children), sorted by venue
    and number; ``[]`` when no venue does."""
    rows = []
    for venue, ex in sorted(view.exchanges.items()):
        by_sub = getattr(ex, "subaccount_positions", None)
        if by_sub is None:
            continue
        bals_of = getattr(ex, "subaccount_balances", None)
        bals = bals_of() if bals_of is not None else {}
        for n, pos in sorted(by_sub().items()):
            b = bals.get(n)
            rows.append({"venue": venue, "subaccount": int(n), "isolated": int(n) >= 128,
                         "positions": {t: plain(p.size) for t, p in sorted(pos.items())},
                         "equity": dec(b.equity) if b is not None else None,
                         "free_collateral": dec(b.free_collateral) if b is not None else None})
    return rows


def fill_row(view: Any, fill: Any) -> dict:
    """A :class:`~perpbot.core.model.Fill` as a :class:`~perpbot.plugins.api.models.FillOut` dict
    (ticker qualified as the run names it)."""
    venue = fill.venue or view.config.primary_venue
    return {
        "ts_ns": int(fill.ts_ns),
        "client_id": int(fill.client_id),
        "ticker": view.qualify(venue, fill.ticker) if ":" not in fill.ticker else fill.ticker,
        "venue": venue,
        "side": fill.side.value,
        "price": plain(fill.price),
        "size": plain(fill.size),
        "fee": plain(fill.fee),
        "liquidity": getattr(fill.liquidity, "value", str(fill.liquidity)),
        "tag": fill.tag,
        "liquidation": bool(fill.liquidation),
    }


def risk_row(decision: Any) -> dict:
    """A :class:`~perpbot.core.policies.RiskDecision` (or a control action) as a ``RiskOut`` dict."""
    return {
        "ts_ns": int(decision.ts_ns or 0),
        "policy": decision.policy or "",
        "action": getattr(decision.action, "value", str(decision.action)),
        "reason": decision.reason or "",
        "ticker": decision.ticker or "",
        "size": dec(decision.size),
    }


class LiveSource:
    """The read endpoints over a running bot.

    :param view: the run's :class:`~perpbot.core.bot.view.RunView`.
    :param recorder: the run's :class:`RunRecorder`.
    :param control: the run's :class:`~perpbot.core.bot.control.BotControl` (None: no control).
    :param hub: the :class:`~perpbot.plugins.api.events.EventHub` (client counts for status).
    :param journal_path: the journal file the runs are read from (None: no journal).
    """

    mode = "bot"

    def __init__(self, view: Any, recorder: RunRecorder, control: Any = None, hub: Any = None, journal_path: Any = None):
        self.view = view
        self.recorder = recorder
        self.control = control
        self.hub = hub
        self.journal_path = journal_path
        self.wall_start = time.perf_counter()

    def venue_of(self, qualified: str) -> str:
        """The venue of a qualified ticker (``"BTC-USD"`` -> the primary venue)."""
        return qualified.split(":", 1)[0] if ":" in qualified else self.view.config.primary_venue

    async def status(self) -> dict:
        """The :class:`~perpbot.plugins.api.models.Status` of the run."""
        v = self.view
        snap = take_snapshot(v, wall_start=self.wall_start)
        feeds = []
        for venue in v.config.exchange:
            tickers = [t for t in v.states if self.venue_of(t) == venue]
            last = max((v.states[t].last_event_ns for t in tickers), default=0)
            circuit = getattr(v.exchanges.get(venue), "circuit_open", None)
            feeds.append({
                "venue": venue,
                "feed": snap.feed_name,
                "connected": snap.feed_connected,
                "markets": tickers,
                "last_event_ns": int(last or 0),
                "last_message_age_s": finite(snap.last_message_age_s) if last else None,
                "paused": {t: r for t, r in snap.paused.items() if t in tickers},
                "circuit_open": (circuit if isinstance(circuit, str) else "circuit breaker open") if circuit else None,
                "resyncs": snap.resyncs,
                "reconnects": snap.reconnects,
            })
        equity = snap.equity
        try:
            equity = v.total_equity() if v.portfolios else None
        except KeyError:
            equity = None
        peak = v.peak_equity or None
        dd = float((equity - peak) / peak) if equity is not None and peak and peak > 0 and equity < peak else (0.0 if equity is not None else None)
        progress = None
        got = v.feed.progress() if callable(getattr(v.feed, "progress", None)) else None
        if got is not None and got[1]:
            progress = min(1.0, got[0] / got[1])
        control = self.control
        return {
            "mode": "bot",
            "run_id": v.run_id,
            "strategy": v.config.strategy,
            "venues": list(v.config.exchange),
            "ts_ns": int(v.clock.now_ns()),
            "simulated_clock": bool(getattr(v.clock, "simulated", False)),
            "running": bool(control is not None and control.accepting),
            "stop_reason": v.stop_reason,
            "halted": v.halted,
            "entries_paused": v.entries_paused,
            "events": int(v.events_processed),
            "decisions": int(v.decisions),
            "orders_sent": int(v.orders_sent),
            "orders_rejected": int(v.orders_rejected),
            "open_orders": len(v.open_orders),
            "equity": dec(equity),
            "start_equity": dec(v.start_equity or None),
            "peak_equity": dec(peak),
            "drawdown_frac": dd,
            "progress": progress,
            "feeds": feeds,
            "control": False,  # the app sets it (it knows whether a token is configured)
            "event_clients": self.hub.clients_count if self.hub is not None else 0,
            "event_clients_dropped": self.hub.dropped if self.hub is not None else 0,
        }

    async def markets(self) -> dict:
        """Markets with their scores, best rank first."""
        snap = take_snapshot(self.view)
        rows = [
            {
                "ticker": m.ticker,
                "venue": self.venue_of(m.ticker),
                "price": dec(m.price),
                "bid": dec(m.bid),
                "ask": dec(m.ask),
                "spread_bps": finite(m.spread_bps),
                "scores": {k: f for k, s in m.scores.items() if (f := finite(s)) is not None},
                "composite": finite(m.composite),
                "rank": m.rank,
                "funding_next_1h": dec(m.funding_next_1h),
                "paused": m.paused,
            }
            for m in snap.markets
        ]
        rows.sort(key=lambda r: (r["rank"] is None, r["rank"] or 0, r["ticker"]))
        return {"markets": rows}

    async def positions(self) -> dict:
        """Open positions with liquidation price and distance, and every venue's margin."""
        v = self.view
        marks = v.marks()
        positions, accounts = [], []
        for venue, pf in v.portfolios.items():
            bal = v.balance(venue)
            accounts.append({
                "venue": venue,
                "equity": dec(bal.equity),
                "collateral": dec(bal.collateral),
                "free_collateral": dec(bal.free_collateral),
                "initial_margin": dec(bal.initial_margin),
                "maintenance_margin": dec(bal.maintenance_margin),
                "margin_usage": finite(bal.initial_margin / bal.equity) if bal.equity > 0 else None,
            })
            for t, p in pf.open_positions().items():
                q = v.qualify(venue, t)
                mark = marks.get(q)
                liq, dist, note = liquidation(v, venue, t, p, mark, bal.equity)
                positions.append({
                    "ticker": q,
                    "venue": venue,
                    "size": plain(p.size),
                    "entry": dec(p.entry_price),
                    "mark": dec(mark),
                    "notional": dec(abs(p.size) * mark) if mark is not None else None,
                    "unrealized": dec(p.unrealized_pnl(mark)) if mark is not None else None,
                    "liquidation_price": dec(liq),
                    "liquidation_distance": finite(dist),
                    "liquidation_note": note,
                })
        return {"positions": positions, "accounts": accounts, "subaccounts": subaccount_rows(v), "note": ""}

    async def orders(self) -> dict:
        """Every open order of the bot, oldest first."""
        rows = [
            {
                "client_id": o.client_id,
                "ticker": o.ticker,
                "venue": o.venue or self.venue_of(o.ticker),
                "side": o.side.value,
                "size": plain(o.size),
                "filled": plain(o.filled_size),
                "price": dec(o.price),
                "status": o.status.value,
                "order_type": o.order_type.value,
                "reduce_only": bool(o.reduce_only),
                "tag": o.tag,
                "created_ns": int(o.created_ns),
            }
            for o in sorted(self.view.open_orders.values(), key=lambda o: (o.created_ns, o.client_id))
        ]
        return {"orders": rows}

    async def fills(self, limit: int) -> dict:
        """The last ``limit`` fills of this run, oldest first."""
        rows = list(self.recorder.fills)
        return {"fills": rows[-limit:]}

    async def pnl(self) -> dict:
        """The run summary's PnL split (USD)."""
        s = self.view.summary()
        net = s.realized_pnl + s.unrealized_pnl - s.fees - s.liquidation_fees + s.funding_net
        return {
            "source": "bot",
            "realized": plain(s.realized_pnl),
            "unrealized": plain(s.unrealized_pnl),
            "fees": plain(s.fees),
            "liquidation_fees": plain(s.liquidation_fees),
            "funding": plain(s.funding_net),
            "net": plain(net),
            "start_equity": dec(s.starting_equity),
            "equity": dec(s.final_equity),
            "max_drawdown": dec(s.max_drawdown),
            "max_drawdown_frac": finite(s.max_drawdown_frac),
            "closed_trades": int(s.closed_trades),
            "wins": int(s.wins),
        }

    async def risk(self, limit: int) -> dict:
        """The last ``limit`` risk and control actions (the bot keeps its last 200)."""
        return {"actions": [risk_row(d) for d in list(self.view.risk_log)[-limit:]]}

    async def runs(self) -> dict:
        """The journal's runs (read in a thread), or this run alone without a journal."""
        if self.journal_path is not None:
            from perpbot.plugins.api.journal_source import read_runs  # noqa: PLC0415

            try:
                return {"runs": await asyncio.to_thread(read_runs, self.journal_path), "note": ""}
            except Exception as exc:  # a journal not written yet, locked or damaged: say so
                note = f"journal {self.journal_path} not readable: {exc}"
        else:
            note = "no journal: only this run is listed"
        v = self.view
        row = {
            "run_id": v.run_id,
            "strategy": v.config.strategy,
            "venues": ",".join(v.config.exchange),
            "tickers": ",".join(v.config.tickers),
            "started_ns": int(v.start_ns),
            "ended_ns": None,
            "status": "running" if self.control is not None and self.control.accepting else "stopped",
            "stop_reason": v.stop_reason or None,
        }
        return {"runs": [row], "note": note}

    async def equity(self) -> dict:
        """Equity samples of this run with their drawdown."""
        return {"points": self.recorder.equity_points()}
