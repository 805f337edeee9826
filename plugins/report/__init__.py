"""Built-in plugin: run reports from the journal (self-contained HTML, PNG, JSON figures).

``python runbot.py report JOURNAL [--out DIR] [--run RUN_ID | --all]`` writes
``report-<run>.html`` (inline SVG charts, no scripts, no CDN: open it offline),
``report-<run>.json`` (the headline figures) and, when matplotlib is installed,
``report-<run>.png``; it says so when it is not. At the end of a replay
(``bot.config.report``, on by default; ``--no-report`` turns it off) the same
report is written to ``<state_dir>/report-<run_id>.html`` and its path is added
to the run summary.

Every figure comes from journal rows: the report's "Sources" section lists each
SQL query with its parameters and row count. The figures the report shares with
the run summary (drawdown, wins net of fees, realized PnL per order tag, funding per
strategy, Sharpe and Sortino with their minimum sample, market labels, number and
duration formatting) are defined once in :mod:`perpbot.core.metrics`; report-only
figures (PnL split, exposure, turnover) in :mod:`perpbot.plugins.report.analytics`.

What lives where: :mod:`.queries` (the SQL and the run selection), :mod:`.values` (the
:class:`Report` value), :mod:`.analytics` (rows to figures, :func:`build_report`),
:mod:`.html` (the HTML document and its SVG charts); here the files (:func:`write_report`,
:func:`render_png`), the ``report`` command and the end-of-run hook.

Imports: :mod:`perpbot.core`, the journal plugin's read side
(:class:`perpbot.plugins.journal.store.Journal`, ``session_of``), ``typer`` and optionally
matplotlib; never an exchange or strategy.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Optional

import attrs
import typer
from loguru import logger

from perpbot.core.errors import PerpbotError
from perpbot.core.hookspecs import hookimpl
from perpbot.core.metrics import format_duration, plain
from perpbot.plugins.report.analytics import Report, build_report
from perpbot.plugins.report.html import render_html

__all__ = ["ReportFiles", "build_report", "render_html", "write_report", "render_png"]


@attrs.define
class ReportFiles:
    """What :func:`write_report` wrote. ``png`` is None when matplotlib is missing (``png_note`` says so)."""

    html: Path
    json: Path
    png: Path | None
    png_note: str
    report: Report


def render_png(rep: Report, path: Path) -> str:
    """Write the equity, drawdown and price charts as a PNG; returns a note ('' on success).

    Needs matplotlib (optional): without it, nothing is written and the note says why.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "PNG not written: matplotlib is not installed (pip install matplotlib to get report PNGs)"
    from datetime import datetime, timezone

    def dt(ns):
        return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)

    tickers = sorted(set(rep.price_series) | set(rep.markers))
    n = 2 + len(tickers)
    fig, axes = plt.subplots(n, 1, figsize=(11, 2.6 * n), sharex=True, squeeze=False)
    axes = [a[0] for a in axes]
    if rep.equity_series:
        axes[0].plot([dt(t) for t, _ in rep.equity_series], [float(v) for _, v in rep.equity_series], color="#2463b5")
    axes[0].set_title("Equity (USD)")
    if rep.drawdown_series:
        xs = [dt(t) for t, _ in rep.drawdown_series]
        ys = [v * 100 for _, v in rep.drawdown_series]
        axes[1].fill_between(xs, ys, 0, color="#c0392b", alpha=0.3)
        axes[1].plot(xs, ys, color="#c0392b")
    axes[1].set_title("Drawdown (%)")
    for ax, t in zip(axes[2:], tickers):
        pts = rep.price_series.get(t, [])
        if pts:
            ax.plot([dt(ts) for ts, _ in pts], [float(p) for _, p in pts], color="#5b6672", linewidth=1)
        for m in rep.markers.get(t, []):
            color = "#17803d" if m.side == "BUY" else "#c0392b"
            marker = ("^" if m.side == "BUY" else "v") if m.kind == "entry" else "o"
            ax.scatter([dt(m.ts_ns)], [float(m.price)], color=color, marker=marker, s=30, zorder=3,
                       facecolors="none" if m.kind == "exit" else color)
        ax.set_title(f"{t} (USD) with entries and exits")
    for ax in axes:
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax.grid(alpha=0.25)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return ""


def write_report(
    journal: str | Path, out_dir: str | Path, *, run_id: str | None = None, all_runs: bool = False
) -> ReportFiles:
    """Build the report of ``journal`` and write its files into ``out_dir``.

    :raises DataError: missing or unreadable journal, unknown run id, empty journal.
    """
    rep = build_report(journal, run_id=run_id, all_runs=all_runs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"report-{rep.run_ids[-1] if not all_runs else 'all'}"
    png_path = out / f"{stem}.png"
    png_note = render_png(rep, png_path)
    html_path = out / f"{stem}.html"
    html_path.write_text(render_html(rep, png_note=png_note), encoding="utf-8")
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(rep.figures(), indent=2, sort_keys=True), encoding="utf-8")
    return ReportFiles(html_path, json_path, None if png_note else png_path, png_note, rep)


def summary_lines(files: ReportFiles) -> list[str]:
    """A few lines for the terminal."""
    rep = files.report

    def f(v, **kw):
        return plain(v, 2, grouping=True, **kw)

    if rep.ratios_supported:
        ratios = f"Sharpe {'n/a' if rep.sharpe is None else f'{rep.sharpe:.2f}'}, Sortino {'n/a' if rep.sortino is None else f'{rep.sortino:.2f}'}"
    else:
        ratios = f"Sharpe and Sortino {rep.annualisation_note or 'not shown'}"
    lines = [
        f"report: {files.html}",
        f"  net PnL {f(rep.net_pnl, sign=True)} USD = realized {f(rep.realized, sign=True)} + unrealized {f(rep.unrealized, sign=True)}"
        f" - fees {f(rep.fees + rep.liquidation_fees)} + funding {f(rep.funding, sign=True)}",
        f"  return {'n/a' if rep.total_return is None else f'{rep.total_return * 100:+.3f}%'}, "
        f"max drawdown {f(rep.max_drawdown)} USD ({rep.max_drawdown_frac * 100:.3f}%, lasted {format_duration(rep.max_drawdown_duration_s)}), "
        f"win rate (net of fees) {'n/a' if rep.win_rate is None else f'{rep.win_rate * 100:.1f}%'} "
        f"of {len(rep.closed_trades)} trades",
        f"  {ratios}",
        f"  figures: {files.json}",
        f"  chart: {files.png}" if files.png else f"  {files.png_note}",
    ]
    return lines


# ---------------------------------------------------------------------------
# hooks
# ---------------------------------------------------------------------------


@hookimpl
def register_commands(cli):
    """Hook implementation: add the ``report JOURNAL [--out DIR] [--run ID | --all]`` command
    to the CLI (``cli``: the typer app). Errors are one line on stderr and the error's exit code."""

    @cli.command("report")
    def report_command(
        journal: Annotated[Path, typer.Argument(help="The journal (SQLite) of a run.")],
        out: Annotated[Optional[Path], typer.Option("--out", help="Directory for the report files (default: the journal's).")] = None,
        run: Annotated[Optional[str], typer.Option("--run", help="Report this run (and the runs it resumed); default: the last run.")] = None,
        all_runs: Annotated[bool, typer.Option("--all", help="Report every run of the journal together.")] = False,
    ):
        """Write the HTML/PNG report of a journal (PnL split, drawdown, trades, charts; Sharpe/Sortino on enough daily returns)."""
        try:
            files = write_report(journal, out or Path(journal).resolve().parent, run_id=run, all_runs=all_runs)
        except PerpbotError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(getattr(exc, "exit_code", 1))
        for line in summary_lines(files):
            typer.echo(line)


@hookimpl(trylast=True)
async def on_bot_stop(bot, summary):
    """At the end of a replay, write the report (after the journal flushed: it runs tryfirst)."""
    cfg = bot.config
    if not getattr(cfg, "report", False) or not getattr(cfg, "journal_enabled", True):
        return
    if not getattr(bot.clock, "simulated", False):
        return  # live runs: use `runbot.py report JOURNAL`
    from perpbot.plugins.journal import session_of

    s = session_of(bot)
    path = s.path if s is not None else cfg.resolved_journal_path()
    if not Path(path).is_file():
        return
    try:
        files = await asyncio.to_thread(write_report, path, bot.state_dir, run_id=bot.run_id)
    except Exception as exc:  # a report must never turn a finished run into a failure
        logger.error(f"report not written: {type(exc).__name__}: {exc}")
        return
    logger.info(f"report written: {files.html}")
    notes = getattr(summary, "notes", None)
    if isinstance(notes, list):
        notes.append(f"report: {files.html}" + ("" if files.png else f" ({files.png_note})"))
