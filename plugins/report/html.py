"""The self-contained HTML report: inline CSS and inline SVG charts, no scripts, no CDN.

:func:`render_html` turns a :class:`~perpbot.plugins.report.analytics.Report` into one
HTML document that opens offline in any browser. Charts are SVG drawn here
(:func:`svg_chart`): equity with the drawdown below it, and one price chart per
market with the fills marked (entries as triangles pointing in the trade's
direction, exits as circles). Hovering a marker or a table figure shows its
exact value.

Imports :mod:`perpbot.core` and :mod:`perpbot.plugins.report.values` (the standard library
otherwise).
"""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable

from perpbot.core.metrics import MIN_DAILY_RETURNS, format_duration, plain
from perpbot.plugins.report.values import Report

NS = 1_000_000_000

ESC = html.escape

CSS = """
body{font:14px/1.45 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#1d232b;margin:0;background:#f4f6f8}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d5dbe1;padding-bottom:4px}
.sub{color:#5b6672;margin:0 0 16px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:10px}
.card{background:#fff;border:1px solid #dde3e9;border-radius:6px;padding:10px 12px}
.card .k{color:#5b6672;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
.card .v{font-size:19px;font-weight:600;margin-top:2px}
.pos{color:#17803d} .neg{color:#c0392b}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde3e9;font-size:13px}
table.kv td:first-child{width:38%;white-space:normal} table.kv td{white-space:normal}
th,td{padding:5px 8px;border-bottom:1px solid #edf0f3;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left} th{background:#f0f3f6;font-weight:600}
td.l,th.l{text-align:left;white-space:normal}
.chart{background:#fff;border:1px solid #dde3e9;border-radius:6px;padding:6px;margin:8px 0}
code{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace;background:#f0f3f6;padding:1px 3px;border-radius:3px;white-space:pre-wrap}
.note{background:#fff8e1;border:1px solid #f0d98c;border-radius:6px;padding:8px 12px;margin:8px 0}
footer{color:#5b6672;font-size:12px;margin-top:32px}
"""


# ---------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------


def usd(v: Decimal | None, places: int = 2) -> str:
    """Money rounded to ``places``, thousands separated, plain decimal ("n/a" for None)."""
    return plain(v, places, grouping=True)


def signed_usd(v: Decimal | None) -> str:
    """Money with its sign, 2 decimals, thousands separated ("+1,234.50"; "n/a" for None)."""
    return plain(v, 2, sign=True, grouping=True)


def pct(v: float | None, places: int = 2) -> str:
    """A fraction as a signed percentage (``0.0123`` -> ``"+1.23%"``; "n/a" for None)."""
    return "n/a" if v is None else f"{v * 100:+.{places}f}%"


def num(v: float | None, places: int = 2) -> str:
    """A plain number with ``places`` decimals ("n/a" for None)."""
    return "n/a" if v is None else f"{v:.{places}f}"


def cls(v: Any) -> str:
    """CSS class by sign: ``"pos"`` above 0, ``"neg"`` below, ``""`` at 0 or for values that do not compare."""
    try:
        return "pos" if v > 0 else "neg" if v < 0 else ""
    except TypeError:
        return ""


def exact(v: Any, shown: str, *, colour: bool = True) -> str:
    """A figure with its exact value on hover (green/red by sign when ``colour``)."""
    text = plain(v) if isinstance(v, (Decimal, float, int)) and not isinstance(v, bool) else str(v)
    return f'<span title="exact: {ESC(text)}" class="{cls(v) if colour else ""}">{ESC(shown)}</span>'


def when(ts_ns: int | None) -> str:
    """A time in ns since the epoch as ``"YYYY-MM-DD HH:MM:SS UTC"`` ("n/a" for 0/None)."""
    if not ts_ns:
        return "n/a"
    return datetime.fromtimestamp(ts_ns / NS, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


duration = format_duration  # days, hours, minutes (core/metrics.py)


# ---------------------------------------------------------------------------
# SVG
# ---------------------------------------------------------------------------


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + (abs(lo) * 0.01 or 1.0)
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    out = []
    v = start
    while v <= hi + step * 1e-9:
        out.append(round(v, 12))
        v += step
    return out


def _time_label(ts_ns: int, span_s: float) -> str:
    t = datetime.fromtimestamp(ts_ns / NS, tz=timezone.utc)
    if span_s <= 2 * 3600:
        return t.strftime("%H:%M:%S")
    if span_s <= 3 * 86400:
        return t.strftime("%d %H:%M")
    return t.strftime("%Y-%m-%d")


def svg_chart(
    lines: list[dict],
    *,
    title: str,
    width: int = 1060,
    height: int = 260,
    y_format=lambda v: f"{v:,.2f}",
    markers: Iterable[dict] = (),
    x_range: tuple[int, int] | None = None,
) -> str:
    """One chart: ``lines`` = [{points: [(ts_ns, value)], color, label, area: bool}],
    ``markers`` = [{ts, value, shape: up|down|circle, color, tip}]."""
    pad_l, pad_r, pad_t, pad_b = 78, 16, 28, 30
    pts = [p for ln in lines for p in ln["points"]]
    markers = list(markers)
    allv = [float(v) for _t, v in pts] + [float(m["value"]) for m in markers]
    allt = [t for t, _v in pts] + [m["ts"] for m in markers]
    if not allv:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="60" role="img">'
            f'<text x="10" y="35" font-size="13" fill="#5b6672">{ESC(title)}: no data</text></svg>'
        )
    t0, t1 = x_range if x_range else (min(allt), max(allt))
    if t1 <= t0:
        t1 = t0 + NS
    lo, hi = min(allv), max(allv)
    if any(ln.get("area") for ln in lines):
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi == lo:
        lo, hi = lo - (abs(lo) * 0.001 or 1.0), hi + (abs(hi) * 0.001 or 1.0)
    margin = (hi - lo) * 0.05
    lo, hi = lo - margin, hi + margin
    pw, ph = width - pad_l - pad_r, height - pad_t - pad_b

    def x(t):
        return pad_l + (t - t0) / (t1 - t0) * pw

    def y(v):
        return pad_t + (hi - float(v)) / (hi - lo) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{ESC(title)}" font-family="Helvetica,Arial,sans-serif">',
        f'<text x="{pad_l}" y="17" font-size="13" font-weight="600" fill="#1d232b">{ESC(title)}</text>',
    ]
    for tv in _nice_ticks(lo, hi):
        yy = y(tv)
        out.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#edf0f3"/>')
        out.append(
            f'<text x="{pad_l - 6}" y="{yy + 4:.1f}" font-size="11" text-anchor="end" fill="#5b6672">{ESC(y_format(tv))}</text>'
        )
    span_s = (t1 - t0) / NS
    for i in range(6):
        tt = t0 + (t1 - t0) * i // 5
        xx = x(tt)
        out.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{pad_t}" y2="{pad_t + ph}" stroke="#f3f5f7"/>')
        anchor = "start" if i == 0 else "end" if i == 5 else "middle"
        out.append(
            f'<text x="{xx:.1f}" y="{height - 10}" font-size="11" text-anchor="{anchor}" fill="#5b6672">{ESC(_time_label(tt, span_s))}</text>'
        )
    out.append(
        f'<rect x="{pad_l}" y="{pad_t}" width="{pw}" height="{ph}" fill="none" stroke="#cfd6dd"/>'
    )
    legend_x = width - pad_r
    for ln in reversed(lines):
        label = ln.get("label")
        if label:
            legend_x -= 8 + 7 * len(label) + 14
            out.append(f'<rect x="{legend_x}" y="8" width="10" height="10" fill="{ln["color"]}"/>')
            out.append(f'<text x="{legend_x + 14}" y="17" font-size="11" fill="#1d232b">{ESC(label)}</text>')
    for ln in lines:
        p = ln["points"]
        if not p:
            continue
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in p)
        if ln.get("area"):
            base = y(0.0)
            poly = f"{x(p[0][0]):.1f},{base:.1f} {path} {x(p[-1][0]):.1f},{base:.1f}"
            out.append(f'<polygon points="{poly}" fill="{ln["color"]}" fill-opacity="0.25" stroke="none"/>')
        out.append(f'<polyline points="{path}" fill="none" stroke="{ln["color"]}" stroke-width="1.4"/>')
    for m in markers:
        mx, my = x(m["ts"]), y(m["value"])
        tip = f'<title>{ESC(m.get("tip", ""))}</title>'
        if m["shape"] == "up":
            out.append(
                f'<polygon points="{mx:.1f},{my - 6:.1f} {mx - 5:.1f},{my + 4:.1f} {mx + 5:.1f},{my + 4:.1f}" '
                f'fill="{m["color"]}" stroke="#fff" stroke-width="0.8">{tip}</polygon>'
            )
        elif m["shape"] == "down":
            out.append(
                f'<polygon points="{mx:.1f},{my + 6:.1f} {mx - 5:.1f},{my - 4:.1f} {mx + 5:.1f},{my - 4:.1f}" '
                f'fill="{m["color"]}" stroke="#fff" stroke-width="0.8">{tip}</polygon>'
            )
        else:
            out.append(
                f'<circle cx="{mx:.1f}" cy="{my:.1f}" r="4" fill="#fff" stroke="{m["color"]}" stroke-width="2">{tip}</circle>'
            )
    out.append("</svg>")
    return "".join(out)


# ---------------------------------------------------------------------------
# the document
# ---------------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[str]], left: int = 1, kv: bool = False) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{ESC(h)}</th>' for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(r)) + "</tr>" for r in rows
    )
    return f"<table{' class=kv' if kv else ''}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _card(k: str, v: str) -> str:
    return f'<div class="card"><div class="k">{ESC(k)}</div><div class="v">{v}</div></div>'


def _breakdown_rows(items) -> list[list[str]]:
    rows = []
    for key, b in items:
        rows.append(
            [
                ESC(key),
                str(b.fills),
                exact(b.volume, usd(b.volume), colour=False),
                exact(b.realized, signed_usd(b.realized)),
                exact(b.unrealized, signed_usd(b.unrealized)),
                exact(-b.fees, signed_usd(-b.fees)),
                exact(b.funding, signed_usd(b.funding)),
                exact(b.net, signed_usd(b.net)),
                str(b.trades),
                pct(b.win_rate, 1).lstrip("+") if b.win_rate is not None else "n/a",
                exact(b.position, plain(b.position), colour=False) if b.position else "0",
            ]
        )
    return rows


BREAKDOWN_HEADERS = [
    "", "fills", "volume USD", "realized", "unrealized", "fees", "funding", "net PnL", "closed trades", "win rate", "position",
]


def render_html(rep: Report, *, png_note: str = "") -> str:
    """The whole report as one self-contained HTML document."""
    title = f"perpbot report — {', '.join(rep.strategies) or 'run'} on {', '.join(rep.venues) or '?'}"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta name='viewport' content='width=device-width,initial-scale=1'><title>{ESC(title)}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f"<h1>{ESC(title)}</h1>",
        f"<p class='sub'>{when(rep.start_ns)} → {when(rep.end_ns)} · runs {ESC(', '.join(rep.run_ids))} · "
        f"journal <code>{ESC(rep.journal)}</code></p>",
    ]
    for n in rep.notes:
        parts.append(f"<div class='note'>{ESC(n)}</div>")

    # headline cards
    closed = rep.closed_trades
    cards = [
        _card("net PnL (USD)", exact(rep.net_pnl, signed_usd(rep.net_pnl))),
        _card("return", exact(rep.total_return, pct(rep.total_return, 3))),
    ]
    if rep.ratios_supported:  # only on at least MIN_DAILY_RETURNS daily returns (core/metrics.py)
        cards += [
            _card("Sharpe (ann.)", exact(rep.sharpe, num(rep.sharpe))),
            _card("Sortino (ann.)", exact(rep.sortino, num(rep.sortino))),
        ]
    cards += [
        _card("max drawdown", exact(rep.max_drawdown, f"{usd(rep.max_drawdown)} ({rep.max_drawdown_frac * 100:.2f}%)", colour=False)),
        _card("win rate (net of fees)", exact(rep.win_rate, "n/a" if rep.win_rate is None else f"{rep.win_rate * 100:.1f}% of {len(closed)}")),
        _card("average trade (USD)", exact(rep.average_trade, signed_usd(rep.average_trade))),
        _card("final equity (USD)", exact(rep.end_equity, usd(rep.end_equity), colour=False)),
    ]
    parts.append("<div class='cards'>" + "".join(cards) + "</div>")

    # PnL split
    parts.append("<h2>PnL</h2>")
    pnl_rows = [
        ["realized (closed positions, average-entry method)", exact(rep.realized, signed_usd(rep.realized))],
        ["unrealized (open positions at the last mark)", exact(rep.unrealized, signed_usd(rep.unrealized))],
        ["fees (negative: rebates)", exact(-rep.fees, signed_usd(-rep.fees))],
        ["liquidation fees", exact(-rep.liquidation_fees, signed_usd(-rep.liquidation_fees))],
        ["funding (received +, paid −)", exact(rep.funding, signed_usd(rep.funding))],
        ["<b>net PnL</b>", exact(rep.net_pnl, signed_usd(rep.net_pnl))],
        [
            "equity at start → end",
            f"{exact(rep.start_equity, usd(rep.start_equity), colour=False)} → "
            f"{exact(rep.end_equity, usd(rep.end_equity), colour=False)}",
        ],
        ["equity change (check: equals net PnL)", exact(rep.equity_change, signed_usd(rep.equity_change))],
    ]
    parts.append(_table(["", "USD"], pnl_rows, kv=True))

    # performance
    parts.append("<h2>Performance</h2>")
    perf = [
        ["return", exact(rep.total_return, pct(rep.total_return, 4))],
        ["Sharpe ratio (annualised, daily returns)", exact(rep.sharpe, num(rep.sharpe, 3))],
        ["Sortino ratio (annualised, daily returns)", exact(rep.sortino, num(rep.sortino, 3))],
        [f"Sharpe and Sortino (at least {MIN_DAILY_RETURNS} daily returns)", ESC(rep.annualisation_note or "n/a")],
        [
            "max drawdown",
            f"{exact(rep.max_drawdown, usd(rep.max_drawdown), colour=False)} USD, {rep.max_drawdown_frac * 100:.3f}% of the peak at "
            f"{when(rep.max_drawdown_peak_ns)}; trough {when(rep.max_drawdown_trough_ns)}",
        ],
        ["max drawdown from", ESC(rep.drawdown_source or "n/a")],
        [
            "max drawdown duration",
            f"{duration(rep.max_drawdown_duration_s)}"
            + (f" (recovered {when(rep.max_drawdown_recovery_ns)})" if rep.max_drawdown_recovery_ns else " (not recovered by the end)" if rep.max_drawdown_peak_ns else ""),
        ],
        ["longest time under water", duration(rep.longest_underwater_s)],
        ["closed trades (round trips)", f"{len(closed)} ({rep.wins} won net of fees), {len(rep.trades) - len(closed)} open"],
        ["win rate (trades won net of fees)", "n/a" if rep.win_rate is None else f"{rep.win_rate * 100:.1f}%"],
        ["average trade (after fees)", exact(rep.average_trade, signed_usd(rep.average_trade))],
        ["fills", str(rep.fills)],
        ["traded notional (USD)", exact(rep.volume, usd(rep.volume), colour=False)],
        ["turnover (traded notional / average equity)", num(rep.turnover, 2) + "×" if rep.turnover is not None else "n/a"],
        ["time in market (snapshots with open positions)", "n/a" if rep.time_in_market is None else f"{rep.time_in_market * 100:.1f}%"],
        ["average / max gross leverage", f"{num(rep.avg_gross_leverage, 3)}× / {num(rep.max_gross_leverage, 3)}×"],
    ]
    parts.append(_table(["", ""], perf, kv=True))

    # charts
    parts.append("<h2>Equity and drawdown</h2>")
    eq_pts = [(t, float(v)) for t, v in rep.equity_series]
    parts.append("<div class='chart'>" + svg_chart(
        [{"points": eq_pts, "color": "#2463b5", "label": "equity USD"}], title="Equity (USD)"
    ) + "</div>")
    x_range = (eq_pts[0][0], eq_pts[-1][0]) if len(eq_pts) > 1 else None
    dd_pts = [(t, v * 100) for t, v in rep.drawdown_series]
    parts.append("<div class='chart'>" + svg_chart(
        [{"points": dd_pts, "color": "#c0392b", "label": "drawdown %", "area": True}],
        title="Drawdown (% of the running peak)", height=170, y_format=lambda v: f"{v:.2f}%", x_range=x_range,
    ) + "</div>")
    if png_note:
        parts.append(f"<p class='sub'>{ESC(png_note)}</p>")

    parts.append("<h2>Prices with entries and exits</h2>")
    parts.append(
        "<p class='sub'>Line: journaled mark prices. ▲ buy entry, ▼ sell entry, ○ exit (green buy, red sell). "
        "Hover a marker for the fill.</p>"
    )
    tickers = sorted(set(rep.price_series) | set(rep.markers))
    for t in tickers:
        pts = [(ts, float(p)) for ts, p in rep.price_series.get(t, [])]
        ms = []
        for m in rep.markers.get(t, []):
            color = "#17803d" if m.side == "BUY" else "#c0392b"
            shape = ("up" if m.side == "BUY" else "down") if m.kind == "entry" else "circle"
            ms.append(
                {
                    "ts": m.ts_ns,
                    "value": float(m.price),
                    "shape": shape,
                    "color": color,
                    "tip": f"{m.kind} {m.side} {plain(m.size)} @ {plain(m.price)} (client id {m.client_id}, {when(m.ts_ns)})",
                }
            )
        if len(ms) > 600:
            ms = ms[:: math.ceil(len(ms) / 600)]
        parts.append("<div class='chart'>" + svg_chart(
            [{"points": pts, "color": "#5b6672", "label": "mark"}], title=f"{t} (USD)", markers=ms, x_range=x_range
        ) + "</div>")

    # breakdowns
    parts.append("<h2>Per market</h2>")
    parts.append(_table(BREAKDOWN_HEADERS, _breakdown_rows(rep.per_market.items())))
    parts.append("<h2>Per strategy</h2>")
    parts.append(_table(BREAKDOWN_HEADERS, _breakdown_rows(rep.per_strategy.items())))
    parts.append(
        "<p class='sub'>Per order tag (what the strategy called its orders; an exit's tag names its reason). "
        "Each fill's realized PnL and fee count under its order's tag; trades under the tag of the fill that closed them.</p>"
    )
    parts.append(_table(BREAKDOWN_HEADERS, _breakdown_rows(sorted(rep.per_tag.items()))))

    # trades
    parts.append("<h2>Trades</h2>")
    shown = rep.trades[-200:]
    if len(rep.trades) > len(shown):
        parts.append(f"<p class='sub'>The last {len(shown)} of {len(rep.trades)} trades.</p>")
    trows = []
    for t in shown:
        trows.append(
            [
                ESC(rep.label(t.venue, t.ticker)),
                t.side,
                when(t.open_ns),
                when(t.close_ns) if t.closed else "open",
                exact(t.entry_price, plain(t.entry_price), colour=False),
                exact(t.exit_price, plain(t.exit_price), colour=False) if t.exit_price is not None else "",
                exact(t.size, plain(t.size), colour=False),
                str(t.fills),
                exact(t.realized, signed_usd(t.realized)),
                exact(-t.fees, signed_usd(-t.fees)),
                exact(t.pnl, signed_usd(t.pnl)),
            ]
        )
    parts.append(_table(["market", "side", "opened", "closed", "entry", "exit", "size", "fills", "realized", "fees", "PnL"], trows))

    # risk and runs
    parts.append("<h2>Risk actions</h2>")
    if rep.risk_actions:
        rrows = [
            [when(r["ts_ns"]), ESC(r["policy"]), ESC(r["action"]), ESC(r["ticker"] or ""), f"<span class='l'>{ESC(r['reason'])}</span>"]
            for r in rep.risk_actions[-200:]
        ]
        parts.append(_table(["time", "policy", "action", "market", "reason"], rrows))
    else:
        parts.append("<p class='sub'>None.</p>")
    if rep.liquidations:
        parts.append("<h2>Liquidations</h2>")
        parts.append(_table(
            ["time", "market", "size", "price", "fee", "reason"],
            [
                [when(r["ts_ns"]), ESC(rep.label(r["venue"], r["ticker"])), plain(Decimal(r["size"])), plain(Decimal(r["price"])),
                 plain(Decimal(r["fee"])), ESC(r["reason"])]
                for r in rep.liquidations
            ],
        ))
    parts.append("<h2>Runs</h2>")
    rrows = []
    for r in rep.runs:
        rrows.append(
            [
                ESC(r["run_id"]),
                ESC(r["status"]),
                ESC(r["strategy"]),
                ESC(r.get("resumed_from") or ""),
                ESC(r.get("stop_reason") or ""),
                f"<span class='l'>{ESC(r.get('reconcile_summary') or '')}</span>",
            ]
        )
    parts.append(_table(["run", "status", "strategy", "resumed from", "stop reason", "reconciliation"], rrows, left=6))

    # sources
    parts.append("<h2>Sources</h2>")
    parts.append(
        "<p class='sub'>Every figure above is computed from these queries on the journal "
        "(open it with <code>sqlite3</code>; parameters replace the <code>?</code> in order).</p>"
    )
    srows = [
        [ESC(s.label), str(s.rows), f"<code>{ESC(s.sql)}</code>", f"<code>{ESC(', '.join(map(str, s.params)))}</code>"]
        for s in rep.sources
    ]
    parts.append(_table(["what", "rows", "SQL", "parameters"], srows, left=1))
    parts.append(
        "<footer>Definitions: see <code>plugins/report/analytics.py</code>. Money is summed exactly (Decimal); "
        "ratios are floating point. Generated by perpbot.</footer></main></body></html>"
    )
    return "".join(parts)
