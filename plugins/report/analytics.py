"""Run analytics computed from a journal, every figure traceable to the rows it came from.

:func:`build_report` reads a journal (read-only) and returns a :class:`Report`.
Each query goes through :class:`~perpbot.plugins.report.queries.Sources`, which keeps the
SQL, its parameters and the number of rows it returned; the HTML report prints them in
its "Sources" section, so a reader can re-run any query with ``sqlite3``.

Layout: the SQL lives in :mod:`perpbot.plugins.report.queries`, the result values
(:class:`Report`, :class:`Breakdown`, :class:`Marker`) in
:mod:`perpbot.plugins.report.values`; this module turns rows into figures (and re-exports
those names, so ``from perpbot.plugins.report.analytics import Report`` keeps working).

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

import math
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from perpbot.core.metrics import (
    DAYS_PER_YEAR,
    DrawdownTracker,
    Trade,
    TradeLedger,
    daily_returns,
    plain,
    resample,
    sharpe_sortino,
)
from perpbot.plugins.journal.store import Journal
from perpbot.plugins.report.queries import (
    SelectedRows,
    Source,
    Sources,
    recorded_summary,
    select_rows,
    snapshot_period,
    venues_in_order,
    voided_counts,
)
from perpbot.plugins.report.values import Breakdown, Marker, Report

__all__ = [
    "Breakdown", "Marker", "Report", "Source", "Sources", "Trade", "build_report", "decimate", "drawdowns",
    "replay_fills", "resample",
]

ZERO = Decimal(0)
NS = 1_000_000_000


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
    """Max drawdown of ``series`` (``[(ts_ns, equity USD)]``) by
    :class:`~perpbot.core.metrics.DrawdownTracker`, and the drawdown series for the chart
    (fraction of the running peak, <= 0).

    :returns: dict with ``max_dd`` (USD), ``max_dd_frac``, ``peak_ns``/``trough_ns``/
        ``recovery_ns`` (ns or None), ``duration_s``, ``recovered``, ``longest_underwater_s``,
        ``series`` (``[(ts_ns, fraction)]``) and ``samples``.
    """
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


def decimate(series: list, max_points: int) -> list:
    """At most about ``max_points`` points of ``[(ts_ns, value)]``, keeping each bucket's
    first, min and max (shape-preserving) and the last point; unchanged when short enough
    or ``max_points < 4``."""
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


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------


def build_report(path: str | Path, *, run_id: str | None = None, all_runs: bool = False, max_points: int = 1500) -> Report:
    """Compute every figure of the report from the journal at ``path`` (read-only).

    :param run_id: the run whose resume chain is reported (default: the journal's last run).
    :param all_runs: every run of the journal instead of one chain.
    :param max_points: chart series are decimated to about this many points (:func:`decimate`).
    :raises DataError: missing or unreadable journal, unknown run id, a journal without runs.
    """
    j = Journal.open(path, readonly=True)
    try:
        return _build(j, str(path), run_id=run_id, all_runs=all_runs, max_points=max_points)
    finally:
        j.close()


def _fill_dict(r) -> dict:
    """A ``fills`` row as the dict :func:`replay_fills` takes (Decimal price, size, fee)."""
    return {
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


def _build(j: Journal, path: str, *, run_id: str | None, all_runs: bool, max_points: int) -> Report:
    src = Sources(j.conn)
    rows = select_rows(src, path, run_id, all_runs)
    ids, chain_rows = rows.ids, rows.chain_rows
    strategy_of_run = {r["run_id"]: r["strategy"] for r in chain_rows}
    strategy_of = {r["client_id"]: r["strategy"] for r in rows.intents}
    tag_of = {r["client_id"]: r["tag"] for r in rows.intents}

    fills = [_fill_dict(r) for r in rows.fills]
    ledger, results, markers = replay_fills(fills, strategy_of, tag_of)
    for r in rows.funding:
        ledger.add_funding(Decimal(r["amount"]), strategy_of_run.get(r["run_id"], ""))

    venues = venues_in_order(chain_rows)
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
    price_series = _pnl_figures(rep, rows, fills, ledger, results, markers, strategy_of, tag_of)
    series = _equity_figures(rep, rows, all_runs)
    if not series and fills:
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
    nv = voided_counts(src, ids)
    if any(nv.values()):
        rep.notes.append(
            f"{nv.get('fills', 0)} fills, {nv.get('order_intents', 0)} order intents and "
            f"{nv.get('equity_snapshots', 0)} equity snapshots were written after a checkpoint by a run that "
            "was then killed; the resumed run replaced them (voided rows, excluded)"
        )
    rep.sources = src.used
    return rep


def _pnl_figures(
    rep: Report, rows: SelectedRows, fills: list[dict], ledger: TradeLedger, results: list, markers: dict,
    strategy_of: dict, tag_of: dict,
) -> dict[str, list]:
    """Fill PnL, fees, funding and liquidations into ``rep`` and its per-market, per-strategy
    and per-tag breakdowns; returns the price series per market label (``[(ts_ns, price)]``)."""
    # last marks
    last_mark: dict[tuple, Decimal] = {}
    price_series: dict[str, list] = defaultdict(list)
    for r in rows.marks:
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
    for r in rows.funding:
        amt = Decimal(r["amount"])
        market(r["venue"], r["ticker"]).funding += amt
        rep.funding += amt
    for name, amt in ledger.funding_by_strategy.items():
        group(per_strategy, name or "(none)").funding += amt
    for r in rows.liquidations:
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
    rep.risk_actions = [dict(r) for r in rows.risk]
    return price_series


def _equity_figures(rep: Report, rows: SelectedRows, all_runs: bool) -> list[tuple[int, Decimal]]:
    """Equity, return, exposure, turnover, drawdown and Sharpe/Sortino into ``rep`` (a note
    when there are no snapshots); returns the equity series summed over venues
    (``[(ts_ns, USD)]``, undecimated). Needs ``rep.volume`` (from :func:`_pnl_figures`)."""
    by_ts: dict[int, list] = {}
    for r in rows.equity:
        slot = by_ts.setdefault(r["ts_ns"], [ZERO, ZERO, 0])
        slot[0] += Decimal(r["equity"])
        slot[1] += Decimal(r["gross_notional"]) if r["gross_notional"] is not None else ZERO
        slot[2] += 1
    series = [(ts, v[0]) for ts, v in sorted(by_ts.items())]
    rep.equity_series = series
    if not series:
        rep.notes.append("the journal has no equity snapshots for these runs: return, Sharpe, Sortino and drawdown are not available")
        return series
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
    chain_rows = rows.chain_rows
    recorded = recorded_summary(chain_rows, rows.ids, all_runs, {r["run_id"]: r for r in rows.runs})
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
    rep.period_s = snapshot_period(chain_rows, series)
    rep.periods_per_year = DAYS_PER_YEAR
    ratios = sharpe_sortino(daily_returns(series))
    rep.sharpe, rep.sortino, rep.n_returns = ratios.sharpe, ratios.sortino, ratios.n_returns
    rep.annualisation_note = ratios.note
    return series
