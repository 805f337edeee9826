"""Run analytics computed from a journal, every figure traceable to the rows it came from.

:func:`build_report` reads a journal (read-only) and returns a :class:`Report`.
Each query goes through :class:`Sources`, which keeps the SQL, its parameters
and the number of rows it returned; the HTML report prints them in its
"Sources" section, so a reader can re-run any query with ``sqlite3``.

Which rows: the *run chain* of the selected run (default: the journal's last
run): that run plus the runs it resumed from (``runs.resumed_from``,
transitively). Rows a resumed paper run superseded (``voided = 1``) are left
out. ``all_runs=True`` takes every run of the journal.

Definitions (money in USD, exact Decimal sums; ratios as floats):

- **realized PnL**: closed PnL by the average-entry method per (venue, market),
  replayed from the fills in journal order (the bot's own portfolio method);
  before fees and funding.
- **unrealized PnL**: the final position times (last mark price - average entry);
  the last mark is the latest ``marks`` row of that market (else the last fill price).
- **fees**: sum of ``fills.fee`` (negative = rebates) plus liquidation fees.
- **funding**: sum of ``funding_payments.amount`` (positive = received).
- **net PnL** = realized + unrealized - fees + funding; it is checked against
  the change in journaled equity (``equity_snapshots``) and the difference shown.
- **return** = last equity / first equity - 1 (equity summed over venues at
  each snapshot time).
- **Sharpe / Sortino**: the equity series is resampled onto a regular grid of
  ``period_s`` seconds (the run's equity sampling interval; last value carried
  forward; the journal samples equity 12 times per snapshot interval, see
  ``runs.config_json`` ``equity_sample_s``), simple returns per period, risk-free rate 0. Sharpe = mean / sample
  std x sqrt(periods per year); Sortino = mean / downside deviation (root mean
  square of min(r, 0) over all periods) x sqrt(periods per year); a year is
  365.25 days of 24 h (crypto trades around the clock). Fewer than 3 returns or
  zero deviation: not defined. Runs shorter than a day: annualised figures are
  shown but flagged as not meaningful.
- **max drawdown**: largest fall from a running peak of the (raw) equity series,
  USD and fraction of that peak; its duration runs from that peak to the
  recovery of it (or to the end of the data, "not recovered"). The longest
  time under water is also given.
- **trades** (round trips): per (venue, market) a trade opens when the position
  leaves zero and closes when it returns to zero; a fill that flips the side
  closes one trade and opens the next (its fee split by size). Trade PnL =
  realized PnL of its fills - their fees (funding is not attributed to trades).
  Win rate = trades with PnL > 0 / closed trades; average trade = mean PnL of
  closed trades.
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
from perpbot.plugins.journal.store import Journal

ZERO = Decimal(0)
NS = 1_000_000_000
YEAR_S = 365.25 * 86400


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
class Trade:
    """One round trip on one market."""

    venue: str
    ticker: str
    side: str  # LONG or SHORT
    open_ns: int
    close_ns: int | None
    entry_price: Decimal
    exit_price: Decimal | None
    size: Decimal  # largest absolute size held
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    fills: int = 0
    strategy: str = ""

    @property
    def pnl(self) -> Decimal:
        return self.realized - self.fees

    @property
    def closed(self) -> bool:
        return self.close_ns is not None


@attrs.define
class Breakdown:
    """Figures of one market or one strategy (USD)."""

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
    venues: list
    start_ns: int
    end_ns: int
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
    period_s: float | None = None
    periods_per_year: float | None = None
    n_returns: int = 0
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
    price_series: dict = attrs.Factory(dict)  # ticker -> [(ts_ns, price)]
    markers: dict = attrs.Factory(dict)  # ticker -> [Marker]
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
    def win_rate(self) -> float | None:
        closed = self.closed_trades
        return sum(1 for t in closed if t.pnl > 0) / len(closed) if closed else None

    @property
    def average_trade(self) -> Decimal | None:
        closed = self.closed_trades
        return sum((t.pnl for t in closed), ZERO) / len(closed) if closed else None

    def figures(self) -> dict:
        """The headline figures as JSON-ready values (Decimals as strings)."""

        def s(v):
            return None if v is None else str(v)

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
            "period_s": self.period_s,
            "periods_per_year": self.periods_per_year,
            "max_drawdown": s(self.max_drawdown),
            "max_drawdown_frac": self.max_drawdown_frac,
            "max_drawdown_duration_s": self.max_drawdown_duration_s,
            "max_drawdown_recovered": self.max_drawdown_recovered,
            "longest_underwater_s": self.longest_underwater_s,
            "fills": self.fills,
            "volume": s(self.volume),
            "turnover": self.turnover,
            "closed_trades": len(self.closed_trades),
            "win_rate": self.win_rate,
            "average_trade": s(self.average_trade),
            "time_in_market": self.time_in_market,
            "avg_gross_leverage": self.avg_gross_leverage,
            "per_market": {k: _breakdown_dict(b) for k, b in self.per_market.items()},
            "per_strategy": {k: _breakdown_dict(b) for k, b in self.per_strategy.items()},
        }


def _breakdown_dict(b: Breakdown) -> dict:
    return {
        "fills": b.fills,
        "volume": str(b.volume),
        "realized": str(b.realized),
        "unrealized": str(b.unrealized),
        "fees": str(b.fees),
        "funding": str(b.funding),
        "net": str(b.net),
        "position": str(b.position),
        "trades": b.trades,
        "wins": b.wins,
    }


# ---------------------------------------------------------------------------
# pure computations (also used by tests)
# ---------------------------------------------------------------------------


@attrs.define
class _Book:
    """Average-entry position of one market while replaying fills."""

    size: Decimal = ZERO
    entry: Decimal = ZERO
    realized: Decimal = ZERO
    trade: Trade | None = None


def replay_fills(fills: list[dict], strategy_of: dict | None = None) -> tuple[dict, list[Trade], dict]:
    """Replay fills (dicts with venue, ticker, side, price, size, fee, ts_ns, client_id).

    :returns: ``(books, trades, markers)``: final book per (venue, ticker) with
        ``size``, ``entry``, ``realized``; every round trip; entry/exit markers per ticker.
    """
    strategy_of = strategy_of or {}
    books: dict[tuple, _Book] = defaultdict(_Book)
    trades: list[Trade] = []
    markers: dict[str, list] = defaultdict(list)
    for f in fills:
        key = (f["venue"], f["ticker"])
        b = books[key]
        size, price, fee = f["size"], f["price"], f["fee"]
        signed = size if f["side"] == "BUY" else -size
        old = b.size
        new = old + signed
        strategy = strategy_of.get(f["client_id"], "")
        if old == 0 or (old > 0) == (signed > 0):
            b.entry = (abs(old) * b.entry + size * price) / abs(new)
            if b.trade is None:
                b.trade = Trade(key[0], key[1], "LONG" if signed > 0 else "SHORT", f["ts_ns"], None, price, None, ZERO, strategy=strategy)
                trades.append(b.trade)
            b.trade.fees += fee
            b.trade.fills += 1
            b.trade.entry_price = b.entry
            b.trade.size = max(b.trade.size, abs(new))
            markers[f["ticker"]].append(Marker(f["ts_ns"], price, f["side"], "entry", size, f["client_id"]))
            b.size = new
            continue
        closed = min(abs(old), size)
        direction = 1 if old > 0 else -1
        realized = closed * (price - b.entry) * direction
        b.realized += realized
        t = b.trade
        if t is None:  # a position that existed before the journal's first fill
            t = Trade(key[0], key[1], "LONG" if old > 0 else "SHORT", f["ts_ns"], None, b.entry, None, abs(old), strategy=strategy)
            trades.append(t)
        opened = size - closed
        close_fee = fee * closed / size
        t.realized += realized
        t.fees += close_fee
        t.fills += 1
        markers[f["ticker"]].append(Marker(f["ts_ns"], price, f["side"], "exit", closed, f["client_id"]))
        if new == 0:
            t.close_ns, t.exit_price = f["ts_ns"], price
            b.trade, b.entry = None, ZERO
        elif (new > 0) != (old > 0):  # flipped: close this trade, open the next at the fill price
            t.close_ns, t.exit_price = f["ts_ns"], price
            b.entry = price
            b.trade = Trade(key[0], key[1], "LONG" if new > 0 else "SHORT", f["ts_ns"], None, price, None, abs(new), strategy=strategy)
            b.trade.fees += fee - close_fee
            b.trade.fills += 1
            trades.append(b.trade)
            markers[f["ticker"]].append(Marker(f["ts_ns"], price, f["side"], "entry", opened, f["client_id"]))
        b.size = new
    return dict(books), trades, dict(markers)


def resample(series: list[tuple[int, Decimal]], period_ns: int) -> list[float]:
    """Values of ``series`` on a regular grid from its first time, last value carried forward."""
    if not series or period_ns <= 0:
        return []
    out = []
    t = series[0][0]
    end = series[-1][0]
    i = 0
    current = series[0][1]
    while t <= end:
        while i < len(series) and series[i][0] <= t:
            current = series[i][1]
            i += 1
        out.append(float(current))
        t += period_ns
    if series[-1][0] > t - period_ns:  # the last sample falls after the last grid point
        out.append(float(series[-1][1]))
    return out


def sharpe_sortino(values: list[float], periods_per_year: float) -> tuple[float | None, float | None, int]:
    """Annualised Sharpe and Sortino of the simple returns of ``values`` (risk-free 0)."""
    rets = [values[i] / values[i - 1] - 1 for i in range(1, len(values)) if values[i - 1] > 0]
    n = len(rets)
    if n < 3:
        return None, None, n
    mean = sum(rets) / n
    var = sum((r - mean) ** 2 for r in rets) / (n - 1)
    k = math.sqrt(periods_per_year)
    sharpe = mean / math.sqrt(var) * k if var > 0 else None
    down = math.sqrt(sum(min(r, 0.0) ** 2 for r in rets) / n)
    sortino = mean / down * k if down > 0 else None
    return sharpe, sortino, n


def drawdowns(series: list[tuple[int, Decimal]]) -> dict:
    """Max drawdown (USD, fraction, peak/trough/recovery times) and the longest time under water."""
    peak = None
    peak_ns = 0
    best = {"dd": ZERO, "frac": 0.0, "peak_ns": None, "trough_ns": None, "recovery_ns": None, "peak": None}
    underwater_since = None
    longest = 0
    dd_series = []
    for ts, eq in series:
        if peak is None or eq >= peak:
            if underwater_since is not None:
                longest = max(longest, ts - underwater_since)
                underwater_since = None
            if best["peak"] is not None and best["recovery_ns"] is None and peak is not None and eq >= best["peak"]:
                best["recovery_ns"] = ts
            peak, peak_ns = eq, ts
            dd_series.append((ts, 0.0))
            continue
        if underwater_since is None:
            underwater_since = peak_ns
        dd = peak - eq
        frac = float(dd / peak) if peak > 0 else 0.0
        dd_series.append((ts, -frac))
        if dd > best["dd"]:
            best.update(dd=dd, frac=frac, peak_ns=peak_ns, trough_ns=ts, recovery_ns=None, peak=peak)
    end = series[-1][0] if series else 0
    if underwater_since is not None:
        longest = max(longest, end - underwater_since)
    recovered = best["recovery_ns"] is not None or best["peak_ns"] is None
    if best["peak_ns"] is None:
        duration = 0
    else:
        duration = (best["recovery_ns"] if best["recovery_ns"] is not None else end) - best["peak_ns"]
    return {
        "max_dd": best["dd"],
        "max_dd_frac": best["frac"],
        "peak_ns": best["peak_ns"],
        "trough_ns": best["trough_ns"],
        "recovery_ns": best["recovery_ns"],
        "duration_s": duration / NS,
        "recovered": recovered,
        "longest_underwater_s": longest / NS,
        "series": dd_series,
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
    """Compute every figure of the report from the journal at ``path`` (read-only)."""
    j = Journal.open(path, readonly=True)
    try:
        return _build(j, str(path), run_id=run_id, all_runs=all_runs, max_points=max_points)
    finally:
        j.close()


def _in(ids: list[str]) -> str:
    return ",".join("?" * len(ids)) or "NULL"


def _build(j: Journal, path: str, *, run_id: str | None, all_runs: bool, max_points: int) -> Report:
    src = Sources(j.conn)
    runs = src.query("runs of the journal", "SELECT * FROM runs ORDER BY started_wall_ns, rowid")
    if not runs:
        raise DataError(f"{path}: the journal has no runs yet")
    ids = [r["run_id"] for r in runs] if all_runs else _chain(runs, run_id)
    chain_rows = [dict(r) for r in runs if r["run_id"] in ids]
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
            "liquidity": r["liquidity"],
            "liquidation": r["liquidation"],
        }
        for r in fills_rows
    ]
    books, trades, markers = replay_fills(fills, strategy_of)

    # last marks
    last_mark: dict[tuple, Decimal] = {}
    price_series: dict[str, list] = defaultdict(list)
    for r in mark_rows:
        p = Decimal(r["price"])
        last_mark[(r["venue"], r["ticker"])] = p
        price_series[r["ticker"]].append((r["ts_ns"], p))
    last_fill_price = {(f["venue"], f["ticker"]): f["price"] for f in fills}
    for key, price in last_fill_price.items():
        last_mark.setdefault(key, price)  # no mark journaled for that market: its last fill price

    rep = Report(
        journal=path,
        runs=chain_rows,
        run_ids=ids,
        strategies=sorted({r["strategy"] for r in chain_rows}),
        venues=sorted({v for r in chain_rows for v in (r["venues"] or "").split(",") if v}),
        start_ns=0,
        end_ns=0,
    )

    # per market
    per_market: dict[str, Breakdown] = {}

    def market(venue, ticker):
        key = ticker if venue == (rep.venues[0] if rep.venues else venue) else f"{venue}:{ticker}"
        if key not in per_market:
            per_market[key] = Breakdown(key)
        return per_market[key]

    per_strategy: dict[str, Breakdown] = {}
    per_tag: dict[str, Breakdown] = {}
    for f in fills:
        for b in (
            market(f["venue"], f["ticker"]),
            per_strategy.setdefault(strategy_of.get(f["client_id"]) or "(none)", Breakdown(strategy_of.get(f["client_id"]) or "(none)")),
            per_tag.setdefault(tag_of.get(f["client_id"]) or "(no tag)", Breakdown(tag_of.get(f["client_id"]) or "(no tag)")),
        ):
            b.fills += 1
            b.volume += f["size"] * f["price"]
            b.fees += f["fee"]
            if f["liquidity"] == "MAKER":
                b.maker_fills += 1
            if f["liquidation"]:
                b.liquidations += 1
    for (venue, ticker), book in books.items():
        m = market(venue, ticker)
        m.realized = book.realized
        m.position = book.size
        if book.size:
            mark = last_mark.get((venue, ticker))
            if mark is not None:
                m.unrealized = book.size * (mark - book.entry)
    for t in trades:
        m = market(t.venue, t.ticker)
        st = per_strategy.setdefault(t.strategy or "(none)", Breakdown(t.strategy or "(none)"))
        st.realized += t.realized
        if t.closed:
            for b in (m, st):
                b.trades += 1
                b.wins += 1 if t.pnl > 0 else 0
    for (venue, ticker), book in books.items():
        if book.size and book.trade is not None:
            st = per_strategy.setdefault(book.trade.strategy or "(none)", Breakdown(book.trade.strategy or "(none)"))
            st.unrealized += market(venue, ticker).unrealized
            st.position += book.size
    for r in funding_rows:
        amt = Decimal(r["amount"])
        market(r["venue"], r["ticker"]).funding += amt
        rep.funding += amt
    for r in liq_rows:
        fee = Decimal(r["fee"])
        rep.liquidation_fees += fee
        market(r["venue"], r["ticker"]).fees += fee
        rep.liquidations.append(dict(r))
    rep.per_market = dict(sorted(per_market.items()))
    rep.per_strategy = per_strategy
    rep.per_tag = per_tag
    rep.realized = sum((b.realized for b in books.values()), ZERO)
    rep.unrealized = sum((b.unrealized for b in per_market.values()), ZERO)
    rep.fees = sum((f["fee"] for f in fills), ZERO)
    rep.fills = len(fills)
    rep.volume = sum((f["size"] * f["price"] for f in fills), ZERO)
    rep.trades = trades
    rep.markers = markers
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
        rep.max_drawdown = dd["max_dd"]
        rep.max_drawdown_frac = dd["max_dd_frac"]
        rep.max_drawdown_peak_ns = dd["peak_ns"]
        rep.max_drawdown_trough_ns = dd["trough_ns"]
        rep.max_drawdown_recovery_ns = dd["recovery_ns"]
        rep.max_drawdown_duration_s = dd["duration_s"]
        rep.max_drawdown_recovered = dd["recovered"]
        rep.longest_underwater_s = dd["longest_underwater_s"]
        rep.drawdown_series = dd["series"]
        # Sharpe / Sortino on a regular grid
        period_s = _snapshot_period(chain_rows, series)
        rep.period_s = period_s
        if period_s:
            rep.periods_per_year = YEAR_S / period_s
            grid = resample(series, int(period_s * NS))
            rep.sharpe, rep.sortino, rep.n_returns = sharpe_sortino(grid, rep.periods_per_year)
            span_s = (rep.end_ns - rep.start_ns) / NS
            rep.annualisation_note = (
                f"{rep.n_returns} returns of {period_s:g} s each, annualised with sqrt({rep.periods_per_year:,.0f}) "
                f"(365.25 days x 24 h per year), risk-free rate 0"
            )
            if span_s < 86400:
                rep.annualisation_note += (
                    f"; the data spans only {span_s / 3600:.2f} h, so annualised ratios are not meaningful"
                )
    else:
        rep.notes.append("the journal has no equity snapshots for these runs: return, Sharpe, Sortino and drawdown are not available")
        if fills:
            rep.start_ns, rep.end_ns = fills[0]["ts_ns"], fills[-1]["ts_ns"]
    if rep.equity_change is not None:
        diff = rep.equity_change - rep.net_pnl
        if diff != 0:
            rep.notes.append(
                f"net PnL from fills, funding and marks differs from the equity change by {diff:.6f} USD "
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
