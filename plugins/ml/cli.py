"""``runbot.py ml train`` and ``runbot.py ml evaluate`` (added by the ML plugin's ``register_commands``).

::

    runbot.py ml train --data ../shared/data/bars/pietro_okx_1h/okx_SOL_2020-09-30_2026-03-05.parquet \\
        [--data catalog:PATH | sample:bars] [--funding FILE] [--oi FILE] [--ticker SOL] \\
        [--analyzers technical,volume,sentiment] [--every 1h] [--horizon 4] [--fee 0.0005] [--slippage 0] \\
        [--walk-forward train=180d,test=30d[,step=30d]] [--embargo 4h] [--threshold 0.5] \\
        [--start 2021-01-01] [--end 2025-01-01] --out model.joblib [--json]
    runbot.py ml evaluate --model model.joblib --data ... [--start 2025-01-01] [--in-sample] [--json]

Every bad input is one ``error: ...`` line and a non-zero exit: an unknown analyzer (closest
name), a malformed duration or date, windows that do not fit the data, a model whose features
differ from the data's (missing and extra names listed), a model file written by another
scikit-learn or numpy, a newer model-file format.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Optional

import typer

from perpbot.core.errors import ConfigError, PerpbotError

__all__ = ["register", "parse_duration_ns", "render_metrics"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

_Data = Annotated[Optional[list[str]], typer.Option("--data", help="catalog:PATH, a bar or panel .parquet file, or sample:bars (repeat or comma-separate).")]
_Funding = Annotated[Optional[list[str]], typer.Option("--funding", help="Long-format funding CSV(s), or sample:funding.")]
_Oi = Annotated[Optional[list[str]], typer.Option("--oi", help="Open-interest Parquet file(s) <COIN>USDT.parquet.")]
_Ticker = Annotated[Optional[str], typer.Option("--ticker", "-t", help="Markets to use, comma-separated (default: all in the data).")]
_Start = Annotated[Optional[str], typer.Option("--start", help="First day used, YYYY-MM-DD (UTC).")]
_End = Annotated[Optional[str], typer.Option("--end", help="Day the data stops, YYYY-MM-DD (UTC, exclusive).")]
_Json = Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")]


def parse_duration_ns(flag: str, text: str) -> int:
    """``"4h"`` -> ns. Units s, m, h, d, w. :raises ConfigError: naming ``flag`` and the value."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", str(text))
    if not m or int(m.group(1)) <= 0:
        raise ConfigError(f"{flag}: {text!r} is not a duration > 0 (e.g. 1h, 5m, 2d)")
    return int(m.group(1)) * _UNITS[m.group(2)] * 1_000_000_000


def _fraction(flag: str, text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(str(text).strip())
    except InvalidOperation:
        raise ConfigError(f"{flag}: {text!r} is not a number (a fraction: 0.0005 = 5 bp)") from None


def _day_ns(flag: str, text: str | None) -> int | None:
    if text is None:
        return None
    from datetime import datetime, timezone

    from perpbot.exchanges.replay.catalog import parse_date

    day = parse_date(text, flag)
    return int(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp()) * 1_000_000_000


def _events(data, funding, oi, ticker, start, end):
    from perpbot.plugins.ml.sources import load_events

    events, tickers = load_events(data, funding, oi, ticker)
    lo, hi = _day_ns("--start", start), _day_ns("--end", end)
    if lo is not None or hi is not None:
        events = [e for e in events if (lo is None or e.ts_ns >= lo) and (hi is None or e.ts_ns < hi)]
        if not events:
            raise ConfigError(f"ml: no data between --start {start or '...'} and --end {end or '...'}")
    return events, tickers


def _registered() -> dict:
    from perpbot.cli import _plugin_manager

    return dict(_plugin_manager().registry.analyzers)


def _analyzers(names: str | None) -> list[type]:
    from perpbot.core.analysis.hub import resolve_analyzers

    reg = _registered()
    if not reg:
        raise ConfigError("ml: no analyzers are registered (the analysis plugin is not loaded)")
    wanted = [n.strip() for n in names.split(",") if n.strip()] if names else sorted(reg)
    try:
        return resolve_analyzers(reg, wanted)
    except ValueError as exc:
        raise ConfigError(f"ml: --analyzers: {exc}") from None


def _f(v, fmt="{:.3f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def render_metrics(meta: dict, top: int = 10) -> str:
    """The walk-forward figures of a model's metadata as a text table (one line per window, overall,
    the ``top`` permutation importances)."""
    from perpbot.plugins.ml.pipeline import iso

    m = meta["metrics"]
    lines = [f"{'window':>6}  {'test period (UTC)':<35} {'rows':>6} {'AUC':>6} {'precision':>9} {'base':>6} {'taken':>6}"]
    for w in m["windows"]:
        lines.append(f"{w['window']:>6}  {iso(w['test_start']) + ' .. ' + iso(w['test_end']):<35} {w['rows']:>6} "
                     f"{_f(w['auc']):>6} {_f(w['precision']):>9} {_f(w['base_rate']):>6} {_f(w['coverage'], '{:.0%}'):>6}")
    o = m["overall"]
    lines.append(f"{'all':>6}  {'pooled test rows':<35} {o['rows']:>6} {_f(o['auc']):>6} {_f(o['precision']):>9} "
                 f"{_f(o['base_rate']):>6} {_f(o['coverage'], '{:.0%}'):>6}")
    lines.append(f"mean signed return, signals taken: {_f(o['mean_return_taken'], '{:+.5f}')}, all signals: "
                 f"{_f(o['mean_return_all'], '{:+.5f}')} (round-trip cost {meta['costs']['round_trip']})")
    if m.get("importance"):
        lines.append("permutation importance (drop in AUC): " + ", ".join(
            f"{k} {v:+.4f}" for k, v in list(m["importance"].items())[:top]))
    return "\n".join(lines)


def _fail(exc: BaseException) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(getattr(exc, "exit_code", 1))


def register(cli: typer.Typer) -> None:
    """Add the ``ml`` command group (``train``, ``evaluate``) to ``cli`` (a typer app)."""
    ml = typer.Typer(help="Validate signals with a gradient-boosting model (train, evaluate).", no_args_is_help=True,
                   add_completion=False)

    @ml.command("train")
    def train_command(
        out: Annotated[Path, typer.Option("--out", "-o", help="Model file to write (and OUT.json beside it).")],
        data: _Data = None, funding: _Funding = None, oi: _Oi = None, ticker: _Ticker = None,
        analyzers: Annotated[Optional[str], typer.Option(help="Analyzers, comma-separated (default: every registered one).")] = None,
        every: Annotated[str, typer.Option(help="Sampling step of the feature rows (the bar length), e.g. 1h, 5m.")] = "1h",
        horizon: Annotated[int, typer.Option(help="Forward bars a signal is held (the label's horizon).", min=1)] = 4,
        fee: Annotated[Optional[str], typer.Option(help="Fee per side, a fraction (default dYdX tier-1 taker 0.0005).")] = None,
        slippage: Annotated[Optional[str], typer.Option(help="Slippage per side, a fraction.")] = None,
        walk_forward: Annotated[str, typer.Option("--walk-forward", help="Windows train=180d,test=30d[,step=30d].")] = "train=180d,test=30d",
        embargo: Annotated[Optional[str], typer.Option(help="Gap before each test window (default: the horizon), e.g. 4h.")] = None,
        threshold: Annotated[float, typer.Option(help="Probability a signal needs to pass the gate.")] = 0.5,
        start: _Start = None, end: _End = None,
        max_iter: Annotated[int, typer.Option("--max-iter", help="Boosting rounds.", min=1)] = 150,
        seed: Annotated[int, typer.Option(help="Random state.")] = 0,
        threads: Annotated[int, typer.Option(help="Most threads per fit (more pay off on large data and an idle machine).", min=1)] = 1,
        as_json: _Json = False,
    ):
        """Train walk-forward (out-of-sample figures), then write the model file."""
        from perpbot.plugins.ml.dataset import Costs
        from perpbot.plugins.ml.model import ModelParams
        from perpbot.plugins.ml.pipeline import train
        from perpbot.plugins.ml.splits import parse_walk_forward

        try:
            classes = _analyzers(analyzers)
            wf = parse_walk_forward(walk_forward)
            every_ns = parse_duration_ns("--every", every)
            kw = {k: v for k, v in (("fee", _fraction("--fee", fee)), ("slippage", _fraction("--slippage", slippage)))
                  if v is not None}
            costs = Costs(**kw)
            emb = parse_duration_ns("--embargo", embargo) if embargo else None
            events, tickers = _events(data, funding, oi, ticker, start, end)
            meta = train(events, tickers, classes, out=out, every_ns=every_ns, horizon=horizon, costs=costs, wf=wf,
                         embargo_ns=emb, params=ModelParams(max_iter=max_iter, seed=seed, threads=threads), threshold=threshold,
                         data_names=[*(data or []), *(funding or []), *(oi or [])])
        except PerpbotError as exc:
            _fail(exc)
        if as_json:
            typer.echo(json.dumps(meta, indent=2))
            return
        w = meta["training_window"]
        typer.echo(f"signal rows: {meta['signal_rows']} ({', '.join(meta['tickers'])}); horizon {horizon} bars; "
                   f"round-trip cost {meta['costs']['round_trip']}; threshold {threshold:g}")
        typer.echo(render_metrics(meta))
        typer.echo(f"wrote {out} (+ {out.name}.json): trained {w['start']} .. {w['end']} on {w['rows']} rows "
                   f"({w['calibration']} calibration on the newest {w['calibration_rows']})")

    @ml.command("evaluate")
    def evaluate_command(
        model: Annotated[Path, typer.Option("--model", "-m", help="Model file written by ml train.")],
        data: _Data = None, funding: _Funding = None, oi: _Oi = None, ticker: _Ticker = None,
        start: _Start = None, end: _End = None,
        in_sample: Annotated[bool, typer.Option("--in-sample", help="Also score rows inside the training window.")] = False,
        threshold: Annotated[Optional[float], typer.Option(help="Override the model's threshold.")] = None,
        as_json: _Json = False,
    ):
        """Score a model file on data after its training window: AUC, precision, base rate."""
        from perpbot.plugins.ml.pipeline import evaluate
        from perpbot.plugins.ml.store import load_meta

        try:
            load_meta(model)  # a wrong or foreign model file is refused before any data is read
            events, tickers = _events(data, funding, oi, ticker, start, end)
            res = evaluate(model, events, tickers, _registered(), in_sample=in_sample, threshold=threshold)
        except PerpbotError as exc:
            _fail(exc)
        if as_json:
            typer.echo(json.dumps(res, indent=2))
            return
        typer.echo(f"{model}: {res['rows']} signal rows {res['first']} .. {res['last']} "
                   f"({'all rows' if in_sample else 'after the training window, ' + res['model']['end']})")
        typer.echo(f"AUC {_f(res['auc'])}  precision {_f(res['precision'])} at p >= {res['threshold']:g}  "
                   f"base rate {_f(res['base_rate'])}  taken {_f(res['coverage'], '{:.0%}')}  brier {_f(res['brier'], '{:.4f}')}")
        typer.echo(f"mean signed return, signals taken: {_f(res['mean_return_taken'], '{:+.5f}')}, all signals: "
                   f"{_f(res['mean_return_all'], '{:+.5f}')}")

    # the plugin manager copies a plugin's commands, not its typer groups: one ``ml`` command that
    # hands its arguments to the group (``runbot.py ml train --help`` is the group's own help)
    @cli.command("ml", add_help_option=False,
                 context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def ml_command(ctx: typer.Context):
        """Validate signals with a gradient-boosting model: ml train, ml evaluate (ml --help)."""
        import typer.main

        typer.main.get_command(ml).main(args=list(ctx.args), prog_name="runbot.py ml", standalone_mode=True)
