"""``runbot.py backtest`` and ``runbot.py sweep`` (added by the research plugin's ``register_commands``).

``backtest`` is the root command on replayed data: the same options go through
:func:`perpbot.cli.build_config` (feed ``replay``, or the config file's own replay feed such as
``funding_multi``: :func:`replay_config`; paper exchange) and the same runner,
:func:`perpbot.cli.run_backtest`; ``--json`` prints the summary's figures
(:func:`perpbot.plugins.research.recorder.summary_json`) instead of its text.

``sweep`` runs many backtests (cells) on Ray; see :mod:`perpbot.plugins.research` for the
flags and the files it writes. Every bad input is one ``error: ...`` line and a non-zero exit.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from perpbot.core.errors import ConfigError, PerpbotError

__all__ = ["register", "backtest_opts", "replay_config"]

_Config = Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML config file (flags override it).")]
_Strategy = Annotated[Optional[str], typer.Option("--strategy", "-s", help="Strategy plugin name.")]
_Ticker = Annotated[Optional[str], typer.Option("--ticker", "-t", help="Markets, comma-separated: BTC,ETH.")]
_Data = Annotated[Optional[list[str]], typer.Option("--data", help="Replay data file(s) (repeat or comma-separate).")]
_Funding = Annotated[Optional[list[str]], typer.Option("--funding", help="Funding-rate file(s) to replay with bar data.")]
_Sizer = Annotated[Optional[str], typer.Option(help="Position sizer plugin.")]
_SizerParam = Annotated[Optional[list[str]], typer.Option("--sizer-param", help="Sizer parameter key=value.")]
_Risk = Annotated[Optional[str], typer.Option(help="Risk chain, as the root command's --risk.")]
_RiskParam = Annotated[Optional[list[str]], typer.Option("--risk-param", help="Risk parameter policy.key=value.")]
_Collateral = Annotated[Optional[str], typer.Option(help="Paper starting collateral, USD.")]
_StateDir = Annotated[Optional[Path], typer.Option(help="Directory for journal, logs, reports, sweeps (default .perpbot).")]
_MaxEvents = Annotated[Optional[int], typer.Option(help="Stop each run after this many market events.", min=1)]
_Interval = Annotated[Optional[str], typer.Option(help="Seconds between strategy decisions.", metavar="SECONDS")]


def backtest_opts(**given) -> dict:
    """The options dict :func:`perpbot.cli.build_config` takes for a replay on the paper exchange."""
    opts = {k: v for k, v in given.items() if v is not None}
    opts["feed"] = "replay"
    opts.setdefault("exchange", None)
    return opts


def replay_config(opts: dict):
    """:func:`perpbot.cli.build_config` of a replay: the config file's feed when it is a replay feed
    (its class says ``replay = True``, e.g. ``funding_multi``), else ``replay``.

    Sets ``opts["feed"]`` to the chosen feed, so every sweep cell builds the same run.
    :raises PerpbotError: what :func:`perpbot.cli.build_config` raises (bad input, one line).
    """
    from perpbot.cli import _plugin_manager, build_config

    if opts.get("config"):
        named = build_config({k: v for k, v in opts.items() if k != "feed"}).feed
        if getattr(_plugin_manager().registry.feeds.get(named), "replay", False):
            opts["feed"] = named
    return build_config(dict(opts))


def _check_paper(cfg) -> None:
    other = [v for v in cfg.exchange if cfg.venue_plugin(v) != "paper"]
    if other:
        raise ConfigError(f"backtest: replays run on the paper exchange; this config trades {', '.join(other)} "
                          "(use --exchange paper or VENUE=paper)")


def _fail(exc: BaseException) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(getattr(exc, "exit_code", 1))


def register(cli: typer.Typer) -> None:
    """Add ``backtest`` and ``sweep`` to ``cli`` (a typer app)."""

    @cli.command("backtest")
    def backtest_command(
        config: _Config = None, strategy: _Strategy = None, ticker: _Ticker = None, data: _Data = None,
        funding: _Funding = None,
        param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="Strategy parameter key=value (repeatable).")] = None,
        sizer: _Sizer = None, sizer_param: _SizerParam = None, risk: _Risk = None, risk_param: _RiskParam = None,
        collateral: _Collateral = None, state_dir: _StateDir = None, max_events: _MaxEvents = None,
        decision_interval: _Interval = None,
        journal: Annotated[Optional[Path], typer.Option(help="Journal file (SQLite).")] = None,
        no_journal: Annotated[bool, typer.Option("--no-journal", help="Do not keep a journal.")] = False,
        fresh: Annotated[bool, typer.Option("--fresh", help="Ignore an existing journal's state and start over.")] = False,
        report: Annotated[Optional[bool], typer.Option("--report/--no-report", help="Write the HTML report.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the summary's figures as JSON (Decimals as strings).")] = False,
    ):
        """Replay data through a strategy on the paper exchange: the root command's run, explicitly."""
        from perpbot.cli import run_backtest
        from perpbot.plugins.research.recorder import summary_json

        opts = backtest_opts(config=config, strategy=strategy, ticker=ticker, data=data, funding=funding, param=param,
                             sizer=sizer, sizer_param=sizer_param, risk=risk, risk_param=risk_param,
                             collateral=collateral, state_dir=state_dir, max_events=max_events,
                             decision_interval=decision_interval, journal=journal, no_journal=no_journal or None,
                             fresh=fresh or None, report=report)
        try:
            cfg = replay_config(opts)
            _check_paper(cfg)
            bot, summary = run_backtest(cfg, console=not as_json)
        except PerpbotError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130)
        typer.echo(json.dumps(summary_json(summary), indent=2) if as_json else summary.render())
        if bot.halted:
            typer.echo(f"halted: {bot.halted}", err=True)
            raise typer.Exit(6)

    @cli.command("sweep")
    def sweep_command(
        param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="NAME=VALUES: a list 55,60,65 or an inclusive range 45:55:5 (repeat per parameter).")] = None,
        config: _Config = None, strategy: _Strategy = None, ticker: _Ticker = None, data: _Data = None,
        funding: _Funding = None, sizer: _Sizer = None, sizer_param: _SizerParam = None, risk: _Risk = None,
        risk_param: _RiskParam = None, collateral: _Collateral = None, state_dir: _StateDir = None,
        max_events: _MaxEvents = None, decision_interval: _Interval = None,
        search: Annotated[str, typer.Option(help="grid (every cell), random or optuna (TPE).")] = "grid",
        trials: Annotated[Optional[int], typer.Option(help="Cells to try (random, optuna).", min=1)] = None,
        seed: Annotated[int, typer.Option(help="Seed of random and optuna searches.")] = 0,
        objective: Annotated[str, typer.Option(help="What to maximise: net_pnl, sharpe, sortino, calmar, profit_factor.")] = "net_pnl",
        min_trades: Annotated[int, typer.Option("--min-trades", help="A cell with fewer closed trades cannot be chosen.", min=0)] = 0,
        walk_forward: Annotated[Optional[str], typer.Option("--walk-forward", help="Rolling windows train=14d,test=7d[,step=7d]: choose on train, report test only.")] = None,
        workers: Annotated[Optional[int], typer.Option(help="Most cells running at once (default: every CPU of the cluster).")] = None,
        ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="auto or ray://HOST:PORT: an existing Ray cluster (default: embedded on this machine).")] = None,
        data_via: Annotated[str, typer.Option("--data-via", help="How cells get the data: path (shared storage), store (Ray's object store, small sets) or auto (store with --ray-address when <= 64 MB).")] = "auto",
        heatmap: Annotated[Optional[str], typer.Option(help="Two parameters A,B for the HTML heatmap (default: the first two -p).")] = None,
        out: Annotated[Optional[Path], typer.Option(help="Folder of sweep directories (default STATE_DIR/sweeps).")] = None,
    ):
        """Run many backtests (a grid, random or Optuna search; optionally walk-forward) on Ray; resumable."""
        from perpbot.plugins.research.driver import run_sweep

        opts = backtest_opts(config=config, strategy=strategy, ticker=ticker, data=data, funding=funding, sizer=sizer,
                             sizer_param=sizer_param, risk=risk, risk_param=risk_param, collateral=collateral,
                             max_events=max_events, decision_interval=decision_interval)
        try:
            code = run_sweep(opts, state_dir=state_dir, grid_items=param, search=search, trials=trials, seed=seed,
                             objective=objective, min_trades=min_trades, walk_forward=walk_forward, workers=workers,
                             ray_address=ray_address, heatmap=heatmap, out=out, config_sha=_sha(config),
                             data_via=data_via)
        except PerpbotError as exc:
            _fail(exc)
        raise typer.Exit(code)


def _sha(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None  # build_config names the missing file
