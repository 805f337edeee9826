"""The sweep's HTML page: one self-contained file, charts as inline SVG (no script, no CDN).

- A heatmap of the objective over two parameters (``--heatmap A,B``; default the first two
  ``-p``): the colour of a square is the best value over the other parameters (and, in
  walk-forward, the mean over the windows' train cells); a missing or undefined value is grey.
- Equity curves: in walk-forward the test (out-of-sample) cells, one colour per window, on
  one time axis; otherwise the best cells' curves, labelled in-sample.
- The table of rows (:func:`perpbot.plugins.research.store.table_rows`).
"""

from __future__ import annotations

import html
from decimal import Decimal
from pathlib import Path

__all__ = ["write_page", "heatmap_svg", "curves_svg"]

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")


def _fmt(v) -> str:
    if v is None or v == "":
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def _sort_key(v: str):
    try:
        return (0, Decimal(v), "")
    except Exception:
        return (1, Decimal(0), v)


def heatmap_svg(rows: list[dict], a: str, b: str, objective: str) -> str:
    """An SVG heatmap of ``objective`` with ``a`` across and ``b`` down (see the module docstring)."""
    cells: dict[tuple[str, str], list[float]] = {}
    by_window: dict[tuple[str, str, object], float] = {}
    for r in rows:
        v = (r.get("objectives") or {}).get(objective) if r["status"] == "ok" else None
        k = (str(r["params"].get(a, "")), str(r["params"].get(b, "")))
        cells.setdefault(k, [])
        if v is None:
            continue
        wk = (*k, r["window"])
        by_window[wk] = max(v, by_window.get(wk, v))
    for (x, y, _w), v in by_window.items():
        cells[(x, y)].append(v)
    value = {k: (sum(v) / len(v) if v else None) for k, v in cells.items()}
    xs = sorted({k[0] for k in value}, key=_sort_key)
    ys = sorted({k[1] for k in value}, key=_sort_key)
    known = [v for v in value.values() if v is not None]
    lo, hi = (min(known), max(known)) if known else (0.0, 0.0)
    cw, ch, left, top = 70, 34, 90, 40
    w, h = left + cw * len(xs) + 20, top + ch * len(ys) + 50
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">']
    out.append(f'<text x="{left}" y="15">{html.escape(objective)} over {html.escape(a)} (across) and {html.escape(b)} (down)</text>')
    for i, x in enumerate(xs):
        out.append(f'<text x="{left + i * cw + cw / 2}" y="{top - 6}" text-anchor="middle">{html.escape(x)}</text>')
    for j, y in enumerate(ys):
        out.append(f'<text x="{left - 6}" y="{top + j * ch + ch / 2 + 4}" text-anchor="end">{html.escape(y)}</text>')
        for i, x in enumerate(xs):
            v = value.get((x, y))
            if v is None:
                fill = "#cccccc"
            else:
                t = 0.5 if hi == lo else (v - lo) / (hi - lo)
                fill = f"rgb({int(220 - 180 * t)},{int(60 + 150 * t)},{int(70 + 30 * t)})"
            out.append(f'<rect x="{left + i * cw}" y="{top + j * ch}" width="{cw - 2}" height="{ch - 2}" fill="{fill}">'
                       f'<title>{html.escape(a)}={html.escape(x)}, {html.escape(b)}={html.escape(y)}: {_fmt(v)}</title></rect>')
            out.append(f'<text x="{left + i * cw + cw / 2 - 1}" y="{top + j * ch + ch / 2 + 3}" text-anchor="middle">{_fmt(v)}</text>')
    out.append(f'<text x="{left}" y="{h - 12}">low {_fmt(lo if known else None)} (red) .. high {_fmt(hi if known else None)} (green); grey: no value</text>')
    out.append("</svg>")
    return "\n".join(out)


def curves_svg(curves: list[tuple[str, list[list]]], title: str) -> str:
    """An SVG line chart of ``[(label, [[ts_ns, "equity"], ...])]`` on one time axis."""
    pts = [(int(t), float(e)) for _, c in curves for t, e in c]
    w, h, left, top, right, bottom = 900, 320, 80, 30, 20, 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h + 20 * len(curves)}" font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="16">{html.escape(title)}</text>']
    if not pts:
        out.append(f'<text x="{left}" y="{top + 20}">no equity samples</text></svg>')
        return "\n".join(out)
    t0, t1 = min(p[0] for p in pts), max(p[0] for p in pts)
    e0, e1 = min(p[1] for p in pts), max(p[1] for p in pts)
    if e1 == e0:
        e0, e1 = e0 - 1, e1 + 1
    sx = (w - left - right) / max(1, t1 - t0)
    sy = (h - top - bottom) / (e1 - e0)
    out.append(f'<rect x="{left}" y="{top}" width="{w - left - right}" height="{h - top - bottom}" fill="none" stroke="#999"/>')
    for v in (e0, (e0 + e1) / 2, e1):
        out.append(f'<text x="{left - 4}" y="{top + (e1 - v) * sy + 4:.1f}" text-anchor="end">{v:,.2f}</text>')
    import datetime as dt

    for t in (t0, t1):
        label = dt.datetime.fromtimestamp(t / 1e9, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
        out.append(f'<text x="{left + (t - t0) * sx:.1f}" y="{h - bottom + 16}" text-anchor="middle">{label} UTC</text>')
    for k, (label, c) in enumerate(curves):
        colour = _COLOURS[k % len(_COLOURS)]
        path = " ".join(f"{left + (int(t) - t0) * sx:.1f},{top + (e1 - float(e)) * sy:.1f}" for t, e in c)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>')
        out.append(f'<text x="{left}" y="{h + 14 + 20 * k}" fill="{colour}">{html.escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def write_page(path: Path, *, title: str, lines: list[str], heatmap: str, curves: str, table: list[dict]) -> Path:
    """Write the page to ``path``; :returns: ``path``."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in (table[0] if table else {}))
    body = "\n".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in r.values()) + "</tr>" for r in table)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:20px}} table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}} th{{background:#eee}}</style></head>
<body><h1>{html.escape(title)}</h1>
{''.join(f'<p>{html.escape(line)}</p>' for line in lines)}
<h2>Heatmap</h2>
{heatmap}
<h2>Equity curves</h2>
{curves}
<h2>Cells</h2>
<table><tr>{head}</tr>
{body}
</table></body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path
