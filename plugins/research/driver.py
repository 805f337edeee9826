"""``runbot.py sweep``: check the input, open the sweep directory, run the cells on Ray, write the results.

Order: every flag is checked before Ray starts (grid, search, objective, walk-forward,
parameter names against the strategy's ``Params``, the Ray address), so bad input costs
one line and no cluster. Rows are appended to the sweep directory as cells finish
(:class:`perpbot.plugins.research.store.SweepStore`); Ctrl-C keeps them and the same command
resumes. At the end: the table (rich), ``results.csv``, ``results.parquet`` and
``report.html`` in the sweep directory, whose path is printed.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable

import typer

from perpbot.core.errors import ConfigError
from perpbot.core.metrics import plain

__all__ = ["run_sweep", "print_table"]


def _file_id(path) -> list:
    p = Path(path)
    try:
        st = p.stat()
        return [str(p.resolve()), st.st_size, st.st_mtime_ns]
    except OSError:
        return [str(p), None, None]


def _day(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def _heat_axes(heatmap: str | None, names: list[str]) -> tuple[str, str] | None:
    if heatmap is None:
        return (names[0], names[1]) if len(names) >= 2 else None
    axes = [a.strip() for a in heatmap.split(",") if a.strip()]
    from perpbot.core.params import did_you_mean

    if len(axes) != 2:
        raise ConfigError(f"--heatmap: expected two parameters A,B, got {heatmap!r}")
    for a in axes:
        if a not in names:
            raise ConfigError(f"--heatmap: {a!r} is not a swept parameter{did_you_mean(a, names)} (swept: {', '.join(names)})")
    return axes[0], axes[1]


def _fig(v, places=2) -> str:
    if v is None or v == "":
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{places}f}"
    return plain(v, places, grouping=True) if str(v).replace(".", "").lstrip("-").isdigit() else str(v)


def print_table(rows: list[dict], names: list[str], objective: str, title: str, *, chosen: dict | None = None,
                echo: Callable = typer.echo) -> None:
    """Print ``rows`` as a rich table: window, parameters, net PnL, the ratios, trades, drawdown, error."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    has_window = any(r["window"] is not None for r in rows)
    if has_window:
        table.add_column("window")
    for n in names:
        table.add_column(n)
    for c in ("net PnL", "sharpe", "sortino", "calmar", "PF", "trades", "won", "max DD %", "status"):
        table.add_column(c, justify="right" if c != "status" else "left")
    for r in rows:
        o, s = r.get("objectives") or {}, r.get("summary") or {}
        mark = "*" if chosen is not None and r["key"] == chosen.get("key") else ""
        cells = ([f"{r['window']}"] if has_window else []) + [f"{r['params'].get(n, '')}{mark}" for n in names]
        dd = s.get("max_drawdown_frac")
        cells += [_fig(o.get("net_pnl")), _fig(o.get("sharpe")), _fig(o.get("sortino")), _fig(o.get("calmar")),
                  _fig(o.get("profit_factor")), str(s.get("closed_trades", "")), str(s.get("wins", "")),
                  "n/a" if dd is None else f"{float(dd) * 100:.2f}", "ok" if r["status"] == "ok" else f"error: {r['error']}"]
        table.add_row(*cells)
    Console(width=220, soft_wrap=True).print(table)


def _need(*modules: str) -> None:
    """:raises ConfigError: naming the first of ``modules`` that is not installed, and the extra that has it."""
    import importlib.util

    for m in modules:
        if importlib.util.find_spec(m) is None:
            raise ConfigError(f"sweep: needs {m}, which is not installed: pip install 'perpbot[research]'")


#: feed keys naming data that walk-forward cannot cut (only ``files`` and ``funding_files`` are cut)
UNCUT_KEYS = ("funding_file", "prices", "prices_file")


def _check_cuttable(feed_name: str, feed: dict, files: list, funding: list) -> None:
    """Refuse a walk-forward whose cells would read data the windows do not cut (a look-ahead).

    Walk-forward cuts the files named by the feed's ``files`` (``--data``) and ``funding_files``
    (``--funding``); a feed key in :data:`UNCUT_KEYS` would be read whole, and the funding feeds
    other than ``replay`` (``funding_multi``, ``funding_replay``) read a default funding file
    when none is named (``exchanges/replay/funding_multi.py``, ``strategies/funding_arb/feed.py``).

    :raises ConfigError: one line naming the feed, the key and the flag to use instead.
    """
    if not files:
        raise ConfigError("--walk-forward: needs the data files named (--data FILE or [feed.replay] files in --config)")
    for key in UNCUT_KEYS:
        if feed.get(key):
            raise ConfigError(f"--walk-forward: cannot cut [feed.{feed_name}] {key} = {feed[key]!r} by time; "
                              f"name the files with --data (prices) and --funding (funding) instead")
    for f in files + funding:
        if not Path(f).exists():
            hint = " (walk-forward cuts files: name the sample's files by path)" if str(f).startswith("sample:") else ""
            raise ConfigError(f"--walk-forward: {f}: no such file or folder{hint}")
    if feed_name != "replay" and not funding:
        raise ConfigError(f"--walk-forward: feed {feed_name} would read its default funding file whole; "
                          "name it with --funding FILE so the windows cut it")


def _via(data_via: str, ray_address: str | None, paths: list[str]) -> str:
    """``path`` or ``store`` (see :mod:`perpbot.plugins.research.engine`); :raises ConfigError: another value."""
    from perpbot.core.params import did_you_mean
    from perpbot.plugins.research.engine import SHIP_MAX_BYTES

    if data_via not in ("auto", "path", "store"):
        raise ConfigError(f"--data-via: expected auto, path or store, got {data_via!r}{did_you_mean(data_via, ('auto', 'path', 'store'))}")
    if data_via != "auto":
        return data_via
    size = sum(Path(p).stat().st_size for p in paths if Path(p).is_file())
    return "store" if ray_address and size <= SHIP_MAX_BYTES else "path"


def run_sweep(opts: dict, *, state_dir, grid_items, search, trials, seed, objective, min_trades, walk_forward,
              workers, ray_address, heatmap, out, config_sha, data_via: str = "auto", echo: Callable = typer.echo) -> int:
    """Run the sweep the flags describe; :returns: the exit code (0; 130 after Ctrl-C).

    :raises PerpbotError: bad input (one line), an unreachable Ray cluster, a damaged sweep directory.
    """
    from perpbot.cli import _plugin_manager
    from perpbot.plugins.research.commands import _check_paper, replay_config
    from perpbot.plugins.research.engine import RayEngine
    from perpbot.plugins.research.search import Sweep, best
    from perpbot.plugins.research.spec import (
        check_objective, check_param_names, check_search, parse_grid, parse_walk_forward,
    )
    from perpbot.plugins.research.store import SweepStore, table_rows
    from perpbot.plugins.research.windows import data_span, window_files

    check_search(search)
    check_objective(objective)
    _need("ray", "pyarrow", *(("optuna",) if search == "optuna" else ()))
    grid = parse_grid(grid_items)
    wf = parse_walk_forward(walk_forward) if walk_forward else None
    if state_dir is not None:
        opts["state_dir"] = state_dir
    cfg = replay_config(opts)
    _check_paper(cfg)
    pm = _plugin_manager()
    pm.raise_if_broken()
    check_param_names(grid, getattr(pm.registry.get("strategies", cfg.strategy), "Params", None), cfg.strategy)
    axes = _heat_axes(heatmap, grid.names)
    engine = RayEngine(ray_address, workers)
    feed = cfg.feeds.get(cfg.feed, {})
    files, funding = [str(f) for f in feed.get("files") or []], [str(f) for f in feed.get("funding_files") or []]
    if wf is not None:
        _check_cuttable(cfg.feed, feed, files, funding)
    spec = {"opts": {k: str(v) for k, v in opts.items() if k != "state_dir"}, "config_sha": config_sha,
            "data": [_file_id(f) for f in files + funding], "grid": [[n, list(v)] for n, v in grid.axes],
            "search": search, "trials": trials, "seed": seed, "objective": objective, "min_trades": min_trades,
            "walk_forward": None if wf is None else [wf.train_s, wf.test_s, wf.step_s]}
    store = SweepStore(Path(out) if out else Path(cfg.state_dir) / "sweeps", cfg.strategy, spec)
    via = _via(data_via, ray_address, files + funding)
    done = store.open()
    parallel = engine.start()
    if via == "store":
        engine.ship_data(str(Path(opts["config"]).resolve()) if opts.get("config") else None, files, funding)
    retry = sum(1 for r in done.values() if r["status"] != "ok")
    echo(f"sweep {store.dir}: {len(done) - retry} cells already done" + (f", {retry} failed cells run again" if retry else "")
         + f"; running on Ray with {parallel} workers, "
         f"data {'through the object store' if via == 'store' else 'by path'}", err=True)

    def record(row: dict) -> None:
        """Append a finished cell to the sweep directory and print its line (stderr)."""
        store.append(row)
        params = " ".join(f"{k}={v}" for k, v in row["params"].items())
        what = f"net PnL {_fig((row.get('objectives') or {}).get('net_pnl'))}" if row["status"] == "ok" else f"error: {row['error']}"
        echo(f"  {row['phase']}{'' if row['window'] is None else ' w' + str(row['window'])} {params}: {what}", err=True)

    sweep = Sweep(opts=opts, grid=grid, search=search, trials=trials, seed=seed, objective=objective,
                  min_trades=min_trades, done=done, record=record, cell_dir=store.dir / "cells", parallel=parallel,
                  run=lambda tasks, on_row: engine.run(tasks, on_row, parallel))

    def cut(i: int, phase: str, a: int, b: int):
        """Window ``i``'s copies of the data for ``phase``, rows in ``[a, b)`` ns."""
        folder = store.dir / "data" / f"w{i}-{phase}"
        return window_files(files, folder, a, b), (window_files(funding, folder / "funding", a, b) if funding else [])

    info: list = []
    try:
        if wf is None:
            rows, heat_rows, shown = sweep.plain(), None, None
        else:
            span = data_span([Path(f) for f in files])
            if funding:  # windows only where both the prices and the funding have rows
                first, last = data_span([Path(f) for f in funding])
                span = (max(span[0], first), min(span[1], last))
            train_rows, shown, info = sweep.walk_forward(wf, span, cut)
            rows, heat_rows = train_rows + shown, train_rows
    except KeyboardInterrupt:
        kept = list(sweep.done.values())
        store.write_tables(kept, grid.names)
        echo(f"interrupted: {len(kept)} finished cells kept in {store.dir}; run the same command to resume", err=True)
        return 130
    csv_path, pq_path = store.write_tables(rows, grid.names)
    names = grid.names
    lines = [f"strategy {cfg.strategy}, {search} search, objective {objective}, min trades {min_trades}; "
             f"{sweep.ran} cells run now, {max(0, len({r['key'] for r in rows}) - sweep.ran)} from {store.dir}"]
    failed = sum(1 for r in rows if r["status"] != "ok")
    if wf is None:
        top = best(rows, objective, min_trades)
        print_table(rows, names, objective, f"sweep: {len(rows)} cells ({failed} failed), * = best {objective}", chosen=top)
        lines.append(f"best {objective}: " + (" ".join(f"{k}={v}" for k, v in top["params"].items()) if top is not None
                                               else f"none (no finished cell with at least {min_trades} closed trades)"))
        echo(lines[-1])
        curves_rows = sorted((r for r in rows if r["status"] == "ok"),
                             key=lambda r: -((r.get("objectives") or {}).get(objective) or float("-inf")))[:5]
        curve_title = "equity of the 5 best cells (in-sample: chosen and measured on the same data)"
    else:
        for w in info:
            chosen = " ".join(f"{k}={v}" for k, v in (w["chosen"] or {}).items()) or "nothing (no train cell qualified)"
            lines.append(f"window {w['window']}: train {_day(w['train'][0])} .. {_day(w['train'][1])}, test "
                         f"{_day(w['test'][0])} .. {_day(w['test'][1])} UTC: chose {chosen}")
        for line in lines[1:]:
            echo(line)
        print_table(shown, names, objective, f"walk-forward: out-of-sample (test) figures of {len(shown)} windows")
        oos = [r for r in shown if r["status"] == "ok"]
        total = sum((r["objectives"]["net_pnl"] for r in oos), 0.0)
        trades = sum(int(r["summary"]["closed_trades"]) for r in oos)
        lines.append(f"out-of-sample total: net PnL {total:,.2f} USD over {len(oos)} test windows, {trades} closed trades")
        echo(lines[-1])
        curves_rows, curve_title = shown, "out-of-sample equity: each window's test run (fresh start)"
    page = _page(store, lines, heat_rows if heat_rows is not None else rows, axes, objective, curves_rows, curve_title,
                 table_rows(rows, names))
    if failed:
        echo(f"{failed} cells failed (their error is in the table)", err=True)
    echo(f"results: {csv_path} and {pq_path.name}")
    echo(f"html: {page}")
    return 0


def _page(store, lines, heat_rows, axes, objective, curves_rows, curve_title, flat) -> Path:
    from perpbot.plugins.research.html import curves_svg, heatmap_svg, write_page

    heat = heatmap_svg(heat_rows, axes[0], axes[1], objective) if axes else "<p>one swept parameter: no heatmap</p>"
    curves = [((f"window {r['window']} " if r["window"] is not None else "") + " ".join(f"{k}={v}" for k, v in r["params"].items()),
               r["equity"]) for r in curves_rows]
    return write_page(store.dir / "report.html", title=f"sweep {store.dir.name}", lines=lines, heatmap=heat,
                      curves=curves_svg(curves, curve_title), table=flat)
