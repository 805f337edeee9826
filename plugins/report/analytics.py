"""Run analytics computed from a journal, every figure traceable to the rows it came from.

:func:`build_report` reads a journal (read-only) and returns a :class:`Report`.
Each query goes through :class:`Sources`, which keeps the SQL, its parameters
and the number of rows it returned; the HTML report prints them in its
"Sources" section, so a reader can re-run any query with ``sqlite3``.

Which rows: the *run chain* of the selected run (default: the journal's last
run): that run plus the runs it resumed from (``runs.resumed_from``,
transitively). Rows a resumed paper run superseded (``voided = 1``) are left
out. ``all_runs=True`` takes every run of the journal.

Definitions: the figures the report shares with the run summary (realized PnL per
fill and per order tag, trades and wins net of fees, funding per strategy, max drawdown,
Sharpe and Sortino with their minimum sample, market labels, number and duration
formatting) are defined once, in :mod:`perpbot.core.metrics`, and computed here with the
same classes the bot uses. Report-only figures:

- **unrealized PnL**: the final position times (last mark price - average entry);
  the last mark is the latest ``marks`` row of that market (else the last fill price).
- **fees**: sum of ``fills.fee`` (negative = rebates) plus liquidation fees.
- **funding**: sum of ``funding_payments.amount`` (positive = received).
- **net PnL** = realized + unrealized - fees + funding; it is checked against
  the change in journaled equity (``equity_snapshots``) and the difference shown.
- **return** = last equity / first equity - 1 (equity summed over venues at
  each snapshot time).
- **max drawdown**: the figure the bot recorded in its run summary
  (``runs.summary_json``, every decision cycle) when the selected runs are one resume
  chain whose last run recorded it; otherwise computed by the same tracker from the
  journal's sampled equity, and the report says so. The drawdown chart is drawn from the
  sampled equity.
- **exposure**: share of equity snapshots with open positions (time in market),
  and the average gross leverage (gross notional / equity) over the snapshots.
- **turnover**: traded notional (sum of |size x price| of the fills), and that
  divided by the average equity.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable

import attrs

from perpbot.core.errors import DataError
from perpbot.core.metrics import (
    DAYS_PER_YEAR,
    MIN_DAILY_RETURNS,
    DrawdownTracker,
    Trade,
    TradeLedger,
    daily_returns,
    market_label,
    plain,
    resample,
    sharpe_sortino,
)
from perpbot.plugins.journal.store import Journal

__all__ = [
    "Breakdown", "Marker", "Report", "Source", "Sources", "Trade", "build_report", "decimate", "drawdowns",
    "replay_fills", "resample",
]

ZERO = Decimal(0)
NS = 1_000_000_000


# ---------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------


@attrs.define
class Source:
    label: str
    sql: str
    params: tuple
    rows: int


class Sources:
    """Runs queries and remembers each one (label, SQL, parameters, row count)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.used: list[Source] = []

    def query(self, label: str, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        params = tuple(params)
        rows = self.conn.execute(sql, params).fetchall()
        self.used.append(Source(label, " ".join(sql.split()), params, len(rows)))
        return rows


# ---------------------------------------------------------------------------
# result values
# ---------------------------------------------------------------------------


@attrs.define
class Breakdown:
    """Figures of one market, one strategy or one order tag (USD).

    ``realized`` sums the realized PnL of the group's fills; ``trades``/``wins`` count the
    round trips closed by them (wins net of fees, :mod:`perpbot.core.metrics`).
    """

    key: str
    fills: int = 0
    volume: Decimal = ZERO
    realized: Decimal = ZERO
    unrealized: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    position: Decimal = ZERO
    trades: int = 0
    wins: int = 0
    maker_fills: int = 0
    liquidations: int = 0

    @property
    def net(self) -> Decimal:
        return self.realized + self.unrealized - self.fees + self.funding

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.trades if self.trades else None


@attrs.define
class Marker:
    ts_ns: int
    price: Decimal
    side: str
    kind: str  # "entry" or "exit"
    size: Decimal
    client_id: int


@attrs.define
class Report:
    """Everything the HTML report shows; see the module docstring for definitions."""

    journal: str
    runs: list  # dicts of the runs rows in the chain
    run_ids: list
    strategies: list
    venues: list  # primary venue first
    start_ns: int
    end_ns: int
    primary_venue: str = ""
    # pnl
    realized: Decimal = ZERO
    unrealized: Decimal = ZERO
    fees: Decimal = ZERO
    liquidation_fees: Decimal = ZERO
    funding: Decimal = ZERO
    start_equity: Decimal | None = None
    end_equity: Decimal | None = None
    # performance
    total_return: float | None = None
    period_s: float | None = None  # the journal's equity sampling interval
    periods_per_year: float | None = None
    n_returns: int = 0  # daily returns
    sharpe: float | None = None
    sortino: float | None = None
    annualisation_note: str = ""
    max_drawdown: Decimal = ZERO
    max_drawdown_frac: float = 0.0
    max_drawdown_peak_ns: int | None = None
    max_drawdown_trough_ns: int | None = None
    max_drawdown_recovery_ns: int | None = None
    max_drawdown_duration_s: float = 0.0
    max_drawdown_recovered: bool = True
    longest_underwater_s: float = 0.0
    #: where the drawdown figures come from (the run summary or the sampled equity)
    drawdown_source: str = ""
    # trading
    trades: list = attrs.Factory(list)
    fills: int = 0
    volume: Decimal = ZERO
    turnover: float | None = None
    time_in_market: float | None = None
    avg_gross_leverage: float | None = None
    max_gross_leverage: float | None = None
    # breakdowns and series
    per_market: dict = attrs.Factory(dict)
    per_strategy: dict = attrs.Factory(dict)
    per_tag: dict = attrs.Factory(dict)
    equity_series: list = attrs.Factory(list)  # (ts_ns, equity)
    drawdown_series: list = attrs.Factory(list)  # (ts_ns, fraction <= 0)
    price_series: dict = attrs.Factory(dict)  # market label -> [(ts_ns, price)]
    markers: dict = attrs.Factory(dict)  # market label -> [Marker]
    risk_actions: list = attrs.Factory(list)
    liquidations: list = attrs.Factory(list)
    sources: list = attrs.Factory(list)
    notes: list = attrs.Factory(list)

    @property
    def net_pnl(self) -> Decimal:
        return self.realized + self.unrealized - self.fees - self.liquidation_fees + self.funding

    @property
    def equity_change(self) -> Decimal | None:
        if self.start_equity is None or self.end_equity is None:
            return None
        return self.end_equity - self.start_equity

    @property
    def closed_trades(self) -> list:
        return [t for t in self.trades if t.closed]

    @property
    def wins(self) -> int:
        """Closed trades won net of fees."""
        return sum(1 for t in self.trades if t.won)

    @property
    def win_rate(self) -> float | None:
        closed = self.closed_trades
        return self.wins / len(closed) if closed else None

    @property
    def average_trade(self) -> Decimal | None:
        closed = self.closed_trades
        return sum((t.pnl for t in closed), ZERO) / len(closed) if closed else None

    @property
    def ratios_supported(self) -> bool:
        """Sharpe/Sortino are shown only on at least ``MIN_DAILY_RETURNS`` daily returns."""
        return self.sharpe is not None or self.sortino is not None

    def label(self, venue: str, ticker: str) -> str:
        """The market's name as the run summary prints it."""
        return market_label(venue, ticker, self.primary_venue)

    def figures(self) -> dict:
        """The headline figures as JSON-ready values (Decimals as plain decimal strings)."""

        def s(v):
            return None if v is None else plain(v)

        return {
            "journal": self.journal,
            "run_ids": self.run_ids,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "realized": s(self.realized),
            "unrealized": s(self.unrealized),
            "fees": s(self.fees),
            "liquidation_fees": s(self.liquidation_fees),
            "funding": s(self.funding),
            "net_pnl": s(self.net_pnl),
            "start_equity": s(self.start_equity),
            "end_equity": s(self.end_equity),
            "equity_change": s(self.equity_change),
            "total_return": self.total_return,
            "sharpe": self.sharpe,
            "sortino": self.sortino,
            "daily_returns": self.n_returns,
            "min_daily_returns": MIN_DAILY_RETURNS,
            "period_s": self.period_s,
            "max_drawdown": s(self.max_drawdown),
            "max_drawdown_frac": self.max_drawdown_frac,
            "max_drawdown_duration_s": self.max_drawdown_duration_s,
            "max_drawdown_recovered": self.max_drawdown_recovered,
            "max_drawdown_source": self.drawdown_source,
            "longest_underwater_s": self.longest_underwater_s,
            "fills": self.fills,
            "volume": s(self.volume),
            "turnover": self.turnover,
            "closed_trades": len(self.closed_trades),
            "wins": self.wins,
            "win_rate": self.win_rate,
            "average_trade": s(self.average_trade),
            "time_in_market": self.time_in_market,
            "avg_gross_leverage": self.avg_gross_leverage,
            "per_market": {k: _breakdown_dict(b) for k, b in self.per_market.items()},
            "per_strategy": {k: _breakdown_dict(b) for k, b in self.per_strategy.items()},
            "per_tag": {k: _breakdown_dict(b) for k, b in self.per_tag.items()},
        }


def _breakdown_dict(b: Breakdown) -> dict:
    return {
        "fills": b.fills,
        "volume": plain(b.volume),
        "realized": plain(b.realized),
        "unrealized": plain(b.unrealized),
        "fees": plain(b.fees),
        "funding": plain(b.funding),
        "net": plain(b.net),
        "position": plain(b.position),
        "trades": b.trades,
        "wins": b.wins,
    }


# ---------------------------------------------------------------------------
# pure computations (also used by tests)
# ---------------------------------------------------------------------------


def replay_fills(fills: list[dict], strategy_of: dict | None = None, tag_of: dict | None = None):
    """Replay fills (dicts with venue, ticker, side, price, size, fee, ts_ns, client_id and
    optionally tag) through a :class:`~perpbot.core.metrics.TradeLedger`.

    :returns: ``(ledger, results, markers)``: the ledger (books, every trade, per-tag sums),
        the :class:`~perpbot.core.metrics.FillResult` of each fill (same order), and the
        entry/exit markers per ``(venue, ticker)``.
    """
    strategy_of = strategy_of or {}
    tag_of = tag_of or {}
    ledger = TradeLedger(keep_trades=True)
    results = []
    markers: dict[tuple, list] = defaultdict(list)
    for f in fills:
        tag = tag_of.get(f["client_id"]) or f.get("tag") or ""
        r = ledger.add_fill(
            f["venue"], f["ticker"], f["side"], f["price"], f["size"], f["fee"], f["ts_ns"],
            tag=tag, strategy=strategy_of.get(f["client_id"]) or "",
        )
        results.append(r)
        key = (f["venue"], f["ticker"])
        if r.closed_size:
            markers[key].append(Marker(f["ts_ns"], f["price"], f["side"], "exit", r.closed_size, f["client_id"]))
        if r.opened_size:
            markers[key].append(Marker(f["ts_ns"], f["price"], f["side"], "entry", r.opened_size, f["client_id"]))
    return ledger, results, dict(markers)


def drawdowns(series: list[tuple[int, Decimal]]) -> dict:
    """Max drawdown of ``series`` by :class:`~perpbot.core.metrics.DrawdownTracker`, and the
    drawdown series for the chart (fraction of the running peak, <= 0)."""
    t = DrawdownTracker()
    dd_series = []
    for ts, eq in series:
        t.update(eq, ts)
        frac = float((t.peak - eq) / t.peak) if t.peak and t.peak > 0 else 0.0
        dd_series.append((ts, -frac if frac else 0.0))
    return {
        "max_dd": t.max_dd,
        "max_dd_frac": float(t.max_dd_frac),
        "peak_ns": t.max_dd_peak_ns,
        "trough_ns": t.max_dd_trough_ns,
        "recovery_ns": t.max_dd_recovery_ns,
        "duration_s": t.max_dd_duration_ns / NS,
        "recovered": t.recovered,
        "longest_underwater_s": t.longest_underwater_ns / NS,
        "series": dd_series,
        "samples": t.samples,
    }


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------


def _chain(runs: list[sqlite3.Row], run_id: str | None) -> list[str]:
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


def build_report(path: str | Path, *, run_id: str | None = None, all_runs: bool = False, max_points: int = 1500) -> Report:
    """Compute every figure of the report from the journal at ``path`` (read-only).

    :raises DataError: missing or unreadable journal, unknown run id, a journal without runs.
    """
    j = Journal.open(path, readonly=True)
    try:
        return _build(j, str(path), run_id=run_id, all_runs=all_runs, max_points=max_points)
    finally:
        j.close()


def _in(ids: list[str]) -> str:
    return ",".join("?" * len(ids)) or "NULL"


def _venues_in_order(runs: list[dict]) -> list[str]:
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


def _recorded_summary(runs: list[dict], ids: list[str], all_runs: bool, by_id: dict) -> dict | None:
    """The run summary the last selected run recorded, when it covers every selected run
    (one resume chain: the bot carries its drawdown tracker across a resume)."""
    if not runs:
        return None
    last = runs[-1]
    if all_runs and _chain(list(by_id.values()), last["run_id"]) != ids:
        return None
    try:
        summary = json.loads(last.get("summary_json") or "null")
    except ValueError:
        return None
    if not isinstance(summary, dict) or summary.get("max_drawdown") is None:
        return None
    return summary


def _build(j: Journal, path: str, *, run_id: str | None, all_runs: bool, max_points: int) -> Report:
    src = Sources(j.conn)
    runs = src.query("runs of the journal", "SELECT * FROM runs ORDER BY started_wall_ns, rowid")
    if not runs:
        raise DataError(f"{path}: the journal has no runs yet")
    ids = [r["run_id"] for r in runs] if all_runs else _chain(runs, run_id)
    chain_rows = [dict(r) for r in runs if r["run_id"] in ids]
    strategy_of_run = {r["run_id"]: r["strategy"] for r in chain_rows}
    ph = _in(ids)

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
    strategy_of = {r["client_id"]: r["strategy"] for r in intents}
    tag_of = {r["client_id"]: r["tag"] for r in intents}

    fills = [
        {
            "venue": r["venue"],
            "ticker": r["ticker"],
            "side": r["side"],
            "price": Decimal(r["price"]),
            "size": Decimal(r["size"]),
            "fee": Decimal(r["fee"]),
            "ts_ns": r["ts_ns"],
            "client_id": r["client_id"],
            "tag": r["tag"] if "tag" in r.keys() else "",
            "liquidity": r["liquidity"],
            "liquidation": r["liquidation"],
        }
        for r in fills_rows
    ]
    ledger, results, markers = replay_fills(fills, strategy_of, tag_of)
    for r in funding_rows:
        ledger.add_funding(Decimal(r["amount"]), strategy_of_run.get(r["run_id"], ""))

    venues = _venues_in_order(chain_rows)
    rep = Report(
        journal=path,
        runs=chain_rows,
        run_ids=ids,
        strategies=sorted({r["strategy"] for r in chain_rows}),
        venues=venues,
        start_ns=0,
        end_ns=0,
        primary_venue=venues[0] if venues else "",
    )

    # last marks
    last_mark: dict[tuple, Decimal] = {}
    price_series: dict[str, list] = defaultdict(list)
    for r in mark_rows:
        p = Decimal(r["price"])
        last_mark[(r["venue"], r["ticker"])] = p
        price_series[rep.label(r["venue"], r["ticker"])].append((r["ts_ns"], p))
    for f in fills:
        last_mark.setdefault((f["venue"], f["ticker"]), f["price"])  # no mark journaled: its last fill price

    per_market: dict[str, Breakdown] = {}
    per_strategy: dict[str, Breakdown] = {}
    per_tag: dict[str, Breakdown] = {}

    def group(table: dict, key: str) -> Breakdown:
        b = table.get(key)
        if b is None:
            b = table[key] = Breakdown(key)
        return b

    def market(venue, ticker):
        return group(per_market, rep.label(venue, ticker))

    for f, res in zip(fills, results):
        tag = tag_of.get(f["client_id"]) or f["tag"] or "(no tag)"
        for b in (market(f["venue"], f["ticker"]), group(per_strategy, strategy_of.get(f["client_id"]) or "(none)"), group(per_tag, tag)):
            b.fills += 1
            b.volume += f["size"] * f["price"]
            b.fees += f["fee"]
            b.realized += res.realized
            if f["liquidity"] == "MAKER":
                b.maker_fills += 1
            if f["liquidation"]:
                b.liquidations += 1
            for t in res.closed:
                b.trades += 1
                b.wins += 1 if t.won else 0
    for (venue, ticker), book in ledger.books.items():
        m = market(venue, ticker)
        m.position = book.size
        if book.size:
            mark = last_mark.get((venue, ticker))
            if mark is not None:
                m.unrealized = book.size * (mark - book.entry)
            if book.trade is not None:
                st = group(per_strategy, book.trade.strategy or "(none)")
                st.unrealized += m.unrealized
                st.position += book.size
    for r in funding_rows:
        amt = Decimal(r["amount"])
        market(r["venue"], r["ticker"]).funding += amt
        rep.funding += amt
    for name, amt in ledger.funding_by_strategy.items():
        group(per_strategy, name or "(none)").funding += amt
    for r in liq_rows:
        fee = Decimal(r["fee"])
        rep.liquidation_fees += fee
        market(r["venue"], r["ticker"]).fees += fee
        rep.liquidations.append(dict(r))
    rep.per_market = dict(sorted(per_market.items()))
    rep.per_strategy = per_strategy
    rep.per_tag = dict(sorted(per_tag.items()))
    rep.realized = sum((r.realized for r in results), ZERO)
    rep.unrealized = sum((b.unrealized for b in per_market.values()), ZERO)
    rep.fees = sum((f["fee"] for f in fills), ZERO)
    rep.fills = len(fills)
    rep.volume = sum((f["size"] * f["price"] for f in fills), ZERO)
    rep.trades = ledger.trades
    rep.markers = {rep.label(v, t): m for (v, t), m in markers.items()}
    rep.risk_actions = [dict(r) for r in risk_rows]

    # equity
    by_ts: dict[int, list] = {}
    for r in eq_rows:
        slot = by_ts.setdefault(r["ts_ns"], [ZERO, ZERO, 0])
        slot[0] += Decimal(r["equity"])
        slot[1] += Decimal(r["gross_notional"]) if r["gross_notional"] is not None else ZERO
        slot[2] += 1
    series = [(ts, v[0]) for ts, v in sorted(by_ts.items())]
    rep.equity_series = series
    if series:
        rep.start_ns, rep.end_ns = series[0][0], series[-1][0]
        rep.start_equity, rep.end_equity = series[0][1], series[-1][1]
        if rep.start_equity > 0:
            rep.total_return = float(rep.end_equity / rep.start_equity - 1)
        in_market = [v[1] > 0 for _ts, v in sorted(by_ts.items())]
        rep.time_in_market = sum(in_market) / len(in_market)
        lev = [float(v[1] / v[0]) for _ts, v in sorted(by_ts.items()) if v[0] > 0]
        if lev:
            rep.avg_gross_leverage = sum(lev) / len(lev)
            rep.max_gross_leverage = max(lev)
        avg_eq = sum((v for _t, v in series), ZERO) / len(series)
        if avg_eq > 0:
            rep.turnover = float(rep.volume / avg_eq)
        dd = drawdowns(series)
        rep.drawdown_series = dd["series"]
        recorded = _recorded_summary(chain_rows, ids, all_runs, {r["run_id"]: r for r in runs})
        if recorded is not None:
            rep.max_drawdown = Decimal(str(recorded["max_drawdown"]))
            rep.max_drawdown_frac = float(Decimal(str(recorded.get("max_drawdown_frac") or 0)))
            rep.max_drawdown_peak_ns = recorded.get("max_drawdown_peak_ns")
            rep.max_drawdown_trough_ns = recorded.get("max_drawdown_trough_ns")
            rep.max_drawdown_recovery_ns = recorded.get("max_drawdown_recovery_ns")
            rep.max_drawdown_duration_s = float(recorded.get("max_drawdown_duration_s") or 0.0)
            rep.max_drawdown_recovered = rep.max_drawdown_peak_ns is None or rep.max_drawdown_recovery_ns is not None
            rep.longest_underwater_s = float(recorded.get("longest_underwater_s") or rep.max_drawdown_duration_s)
            n = recorded.get("equity_samples")
            rep.drawdown_source = (
                f"the bot's tracker over every decision cycle{f' ({n:,} equity samples)' if n else ''}, recorded in the "
                f"run summary of {chain_rows[-1]['run_id']}; the chart shows the journal's {len(series):,} sampled points"
            )
        else:
            rep.max_drawdown = dd["max_dd"]
            rep.max_drawdown_frac = dd["max_dd_frac"]
            rep.max_drawdown_peak_ns = dd["peak_ns"]
            rep.max_drawdown_trough_ns = dd["trough_ns"]
            rep.max_drawdown_recovery_ns = dd["recovery_ns"]
            rep.max_drawdown_duration_s = dd["duration_s"]
            rep.max_drawdown_recovered = dd["recovered"]
            rep.longest_underwater_s = dd["longest_underwater_s"]
            rep.drawdown_source = (
                f"the journal's {len(series):,} sampled equity points: the selected runs recorded no run summary "
                "covering them all (a killed run, or independent runs), so a fall between samples is not seen"
            )
        rep.period_s = _snapshot_period(chain_rows, series)
        rep.periods_per_year = DAYS_PER_YEAR
        ratios = sharpe_sortino(daily_returns(series))
        rep.sharpe, rep.sortino, rep.n_returns = ratios.sharpe, ratios.sortino, ratios.n_returns
        rep.annualisation_note = ratios.note
    else:
        rep.notes.append("the journal has no equity snapshots for these runs: return, Sharpe, Sortino and drawdown are not available")
        if fills:
            rep.start_ns, rep.end_ns = fills[0]["ts_ns"], fills[-1]["ts_ns"]
    if rep.equity_change is not None:
        diff = rep.equity_change - rep.net_pnl
        if diff != 0:
            rep.notes.append(
                f"net PnL from fills, funding and marks differs from the equity change by {plain(diff, 6)} USD "
                "(deposits/withdrawals, positions held before the journal began, or marks taken at different times)"
            )
    rep.price_series = {t: decimate(s, max_points) for t, s in price_series.items()}
    rep.equity_series = decimate(series, max_points)
    rep.drawdown_series = decimate(rep.drawdown_series, max_points)
    voided = src.query(
        "rows superseded by a resumed run (voided, excluded)",
        " UNION ALL ".join(
            f"SELECT '{t}' AS t, COUNT(*) AS n FROM {t} WHERE voided = 1 AND run_id IN ({ph})"
            for t in ("fills", "order_intents", "equity_snapshots")
        ),
        ids * 3,
    )
    nv = {r["t"]: r["n"] for r in voided}
    if any(nv.values()):
        rep.notes.append(
            f"{nv.get('fills', 0)} fills, {nv.get('order_intents', 0)} order intents and "
            f"{nv.get('equity_snapshots', 0)} equity snapshots were written after a checkpoint by a run that "
            "was then killed; the resumed run replaced them (voided rows, excluded)"
        )
    rep.sources = src.used
    return rep


def _snapshot_period(runs: list[dict], series: list) -> float | None:
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


def decimate(series: list, max_points: int) -> list:
    """At most about ``max_points`` points, keeping each bucket's first, min and max (shape-preserving)."""
    n = len(series)
    if n <= max_points or max_points < 4:
        return list(series)
    bucket = math.ceil(n / (max_points / 3))
    out = []
    for i in range(0, n, bucket):
        chunk = series[i : i + bucket]
        lo = min(chunk, key=lambda p: p[1])
        hi = max(chunk, key=lambda p: p[1])
        for p in sorted({chunk[0], lo, hi}, key=lambda p: p[0]):
            out.append(p)
    if out[-1] != series[-1]:
        out.append(series[-1])
    return out
