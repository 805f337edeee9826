"""One sweep cell: an ordinary backtest on the CLI's code path, and its row of figures.

:func:`run_cell` is what a Ray task executes (``perpbot.plugins.research.engine``). It builds
the run's :class:`~perpbot.core.config.BotConfig` with :func:`perpbot.cli.build_config`
from the same options ``runbot.py backtest`` takes, sets the cell's strategy parameters (as
``--param`` would) and, in walk-forward, the window's data files, then runs it with
:func:`perpbot.cli.run_backtest`, the runner of the root command. So a cell's figures are
those of ``runbot.py backtest`` run alone with the same options.

Objectives (all maximised; money USD):

- ``net_pnl``: ``final_equity - starting_equity`` of the summary (fees, funding, open PnL in).
- ``sharpe``, ``sortino``: :func:`perpbot.core.metrics.sharpe_sortino` of the hourly simple
  returns of the recorded equity curve (:func:`perpbot.core.metrics.period_returns`; the
  samples are the drawdown tracker's, one per decision), annualised with sqrt(24 x 365.25),
  risk-free rate 0, at least 30 returns (else undefined). Hourly, not daily as in the
  report: a 7-day test window has 6 daily returns, too few for any ratio.
- ``calmar``: :func:`perpbot.core.metrics.calmar` of the summary's total return, market time
  span and max drawdown fraction.
- ``profit_factor``: :func:`perpbot.core.metrics.profit_factor` of the closed trades' PnL
  net of fees (recorded by :mod:`perpbot.plugins.research.recorder`).

An undefined objective is None; such a cell never wins a search.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import traceback
from decimal import Decimal
from pathlib import Path
from typing import Any

from perpbot.core.metrics import DAYS_PER_YEAR, calmar, period_returns, profit_factor, sharpe_sortino

__all__ = ["HOUR_NS", "cell_key", "objectives", "run_cell", "thin"]

HOUR_NS = 3600 * 1_000_000_000
#: the most equity points a row keeps for the HTML page's curves
CURVE_POINTS = 400


def cell_key(phase: str, window: int | None, params: dict) -> str:
    """A stable id of a cell: its phase (``grid``, ``train``, ``test``), window and parameters."""
    text = json.dumps([phase, window, sorted(params.items())], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def thin(series: list[tuple[int, Decimal]], points: int = CURVE_POINTS) -> list[list]:
    """At most ``points`` samples of ``series`` (evenly spaced, first and last kept), ``[[ts_ns, "equity"]]``."""
    if len(series) <= points:
        chosen = series
    else:
        step = (len(series) - 1) / (points - 1)
        chosen = [series[round(i * step)] for i in range(points)]
    return [[ts, str(eq)] for ts, eq in chosen]


def objectives(summary: Any, equity: list[tuple[int, Decimal]], closed_pnls: list[Decimal]) -> dict:
    """The five objectives of a finished run (see the module docstring); floats or None."""
    ratios = sharpe_sortino(period_returns(equity, HOUR_NS), DAYS_PER_YEAR * 24)
    pf = profit_factor(closed_pnls)
    cal = calmar(summary.total_return, summary.end_ns - summary.start_ns, summary.max_drawdown_frac)
    return {
        "net_pnl": float(summary.final_equity - summary.starting_equity),
        "sharpe": ratios.sharpe,
        "sortino": ratios.sortino,
        "calmar": cal,
        "profit_factor": None if pf is None else float(pf),
    }


def _unship(task: dict, folder: Path) -> dict:
    """Write the files a task carries in Ray's object store into ``folder``; :returns: the task
    with ``files``, ``funding_files`` (and the config file) pointing at those copies."""
    import ray

    shipped = task["shipped"]
    task = dict(task, opts=dict(task["opts"]))

    def land(items, sub):
        """Write each ``(name, ref)`` of ``items`` under ``folder/sub``; :returns: the paths."""
        out = []
        for name, ref in items:
            path = folder / sub / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(ray.get(ref))
            out.append(str(path))
        return out

    if shipped.get("config") is not None:
        task["opts"]["config"] = land([shipped["config"]], "config")[0]
    task["files"], task["funding_files"] = land(shipped["files"], "data"), land(shipped["funding"], "funding")
    return task


def _config(task: dict, state_dir: Path):
    from perpbot.cli import build_config

    if task.get("shipped"):
        task = _unship(task, state_dir / "shipped")
    opts = dict(task["opts"])
    opts["state_dir"] = state_dir
    opts["no_journal"], opts["journal"], opts["report"] = True, None, False
    cfg = build_config(opts)
    cfg.progress = False
    cfg.strategies.setdefault(cfg.strategy, {}).update(task["params"])
    if task.get("files") is not None:
        cfg.feeds.setdefault(cfg.feed, {})["files"] = list(task["files"])
        cfg.feeds[cfg.feed]["funding_files"] = list(task.get("funding_files") or [])
    return cfg


def run_cell(task: dict) -> dict:
    """Run one cell; never raises for the cell's own failure.

    :param task: ``{"key", "phase", "window", "params": {name: value str}, "opts": the
        backtest options (as :func:`perpbot.cli.build_config` takes them), "files",
        "funding_files": window copies or None, "state_dir": folder for the cell's logs, and
        optionally "shipped": ``{"config": (name, ref) or None, "files": [(name, ref)], "funding":
        [(name, ref)]}``, the data carried in Ray's object store (``--data-via store``)}``.
    :returns: the row: ``key``, ``phase``, ``window``, ``params``, ``status`` (``ok`` or
        ``error``), ``error`` (one line), ``summary`` (``backtest --json``'s figures),
        ``objectives``, ``equity`` (thinned curve).
    """
    from perpbot.cli import run_backtest
    from perpbot.plugins.research.recorder import recording, summary_json

    row = {"key": task["key"], "phase": task["phase"], "window": task["window"], "params": dict(task["params"]),
           "status": "ok", "error": "", "summary": None, "objectives": None, "equity": []}
    base = Path(task.get("state_dir") or tempfile.gettempdir())
    try:
        base.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=base, prefix=f"cell-{task['key']}-") as tmp:
            cfg = _config(task, Path(tmp))
            with recording() as rec:
                bot, summary = run_backtest(cfg, console=False)
            if bot.halted:
                row["status"], row["error"] = "error", f"halted: {bot.halted}"
            row["summary"] = summary_json(summary)
            row["objectives"] = objectives(summary, rec.equity, rec.closed_pnls)
            row["equity"] = thin(rec.equity)
    except Exception as exc:  # the cell failed: its row says why, the sweep goes on
        from perpbot.core.errors import PerpbotError

        row["status"] = "error"
        if isinstance(exc, PerpbotError):
            row["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        else:
            last = traceback.extract_tb(exc.__traceback__)[-1:]
            where = f" at {Path(last[0].filename).name}:{last[0].lineno}" if last else ""
            row["error"] = f"internal error {type(exc).__name__}: {exc}{where}".splitlines()[0]
    return row
