"""runbot: the command line. Parse, build the config, call into core, map errors to exit codes.

    python runbot.py --exchange paper --strategy sniper --ticker BTC,ETH
    python runbot.py plugins
    python runbot.py init perpbot.toml

Every domain error is printed as one line (``error: ...``) with a non-zero exit
code; ``--verbose`` adds the traceback. Plugins add subcommands (``record``,
``report``) through the ``register_commands`` hook.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Optional

import typer

from perpbot.core.config import DEFAULT_RISK_POLICIES
from perpbot.core.errors import ConfigError, PerpbotError

# the config half lives in perpbot.cliconfig; re-exported here (plugins and tests import them from perpbot.cli)
from perpbot.cliconfig import (  # noqa: F401
    _BOT_FLAG_LABELS,
    _BOT_FLAGS,
    _FLAG_DEST,
    _PM,
    DYDX_INDEXER_HOST,
    _apply_plugin_flags,
    _auto_feed,
    _flag_dest,
    _kv_pairs,
    _online,
    _owner_params,
    _plugin_manager,
    _split,
    build_config,
    risk_chain,
)

app = typer.Typer(
    add_completion=False,
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    help="Automated trading of perpetual futures (dYdX v4 first). Paper trading is the default.",
    context_settings={"help_option_names": ["-h", "--help"]},
)

_STATE: dict = {"verbose": False}


def _fail(exc: BaseException, verbose: bool) -> None:
    """Print one line for a domain error (traceback only with --verbose) and exit."""
    if verbose:
        import traceback

        traceback.print_exception(exc)
    code = getattr(exc, "exit_code", 1)
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(code)


def _metavar(tp) -> str:
    """The metavar shown in --help for a params field type."""
    import enum
    import types
    import typing

    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = args[0] if args else str
    if typing.get_origin(tp) is tuple:
        return f"{_metavar(typing.get_args(tp)[0])},..."
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "|".join(str(m.value) for m in tp)
    return {Decimal: "DECIMAL", int: "INTEGER", str: "TEXT"}.get(tp, "VALUE")


def _plugin_parameters(pm) -> list:
    """One ``inspect.Parameter`` (a typer option) per flag the installed plugins declare.

    Flags are grouped in ``--help`` by plugin (typer's ``rich_help_panel``). A flag that
    collides with a core option marks its plugin broken (``runbot.py plugins`` shows it).
    """
    import inspect
    import typing

    from perpbot.core.plugins import _LABELS

    core = set()
    for p in inspect.signature(main_callback, eval_str=True).parameters.values():
        for meta in getattr(p.annotation, "__metadata__", ()):
            for decl in (getattr(meta, "param_decls", None) or ()) + ((meta.default,) if isinstance(getattr(meta, "default", None), str) else ()):
                core.update(d for d in str(decl).split("/"))
    out = []
    for flag, owner in sorted(pm.registry.flags.items(), key=lambda kv: (kv[1].kind, kv[1].name, kv[0])):
        if flag in core or f"--no-{flag[2:]}" in core:
            pm.mark_broken(owner.plugin, f"plugin {owner.plugin!r}: {_LABELS[owner.kind]} {owner.name}: flag {flag} "
                                         "is a core option of runbot.py; choose another name")
            continue
        if owner.plugin in pm.broken:
            continue
        panel = f"{_LABELS[owner.kind].capitalize()} {owner.name} (plugin {owner.plugin})"
        default = owner.default
        default_txt = "" if default is None else f"; default {getattr(default, 'value', default)}"
        help_text = f"{owner.help} (parameter {owner.field}{default_txt})"
        if owner.type is bool:
            decl = f"{flag}/--no-{flag[2:]}"
            ann = typing.Annotated[Optional[bool], typer.Option(decl, help=help_text, rich_help_panel=panel,
                                                               show_default=False)]
        else:
            ann = typing.Annotated[Optional[str], typer.Option(flag, help=help_text, rich_help_panel=panel,
                                                              metavar=_metavar(owner.type), show_default=False)]
        out.append(inspect.Parameter(_flag_dest(flag), inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ann))
    return out


def run_backtest(cfg, *, console: bool = True):
    """Run the bot of ``cfg`` to its end -> ``(bot, RunSummary)``: the one runner of the root command,
    ``backtest`` and sweep cells. ``console=False``: no terminal logs or progress bar. Raises PerpbotError."""
    from perpbot.core.bot import TradingBot
    from perpbot.core.logs import configure_logging
    pm = _plugin_manager()
    pm.raise_if_broken()
    bot = TradingBot(cfg, pm)
    configure_logging(
        verbose=cfg.verbose,
        log_dir=Path(cfg.state_dir) / "logs",
        run_id=bot.run_id,
        quiet_console=cfg.dashboard or not console,
    )
    bar = None
    if console and cfg.progress and not cfg.dashboard:
        from perpbot.progress import attach_progress_bar
        bar = attach_progress_bar(bot)  # None for live feeds
    try:
        return bot, asyncio.run(bot.run())
    finally:
        if bar is not None:
            bar.close()


def run_bot(cfg) -> int:
    """Build the bot, run it to the end, print the summary. Returns the exit code."""
    bot, summary = run_backtest(cfg)
    typer.echo(summary.render())  # `backtest --json` prints summary_json(summary) instead
    if bot.halted:
        typer.echo(f"halted: {bot.halted}", err=True)
        return 6
    return 0


@app.callback()
def main_callback(
    ctx: typer.Context,
    exchange: Annotated[Optional[str], typer.Option("--exchange", "-e", help="Venue(s), comma-separated; first is primary: paper, dydx; VENUE=PLUGIN names a venue run by a plugin (binance=paper); any ccxt venue as VENUE=ccxt:ID (binance=ccxt:binanceusdm, hyperliquid=ccxt:hyperliquid).", envvar="PERPBOT_EXCHANGE")] = None,
    strategy: Annotated[Optional[str], typer.Option("--strategy", "-s", help="Strategy plugin name: sniper, grid, funding_arb, ...")] = None,
    ticker: Annotated[Optional[str], typer.Option("--ticker", "-t", help="Markets, comma-separated: BTC,ETH (= BTC-USD,ETH-USD); 'all' (or none named) = every market a strategy that discovers its own picks (funding_arb: every coin on both venues).")] = None,
    feed: Annotated[Optional[str], typer.Option(help="Market-data feed: replay (recorded files), dydx (live), auto.")] = None,
    data: Annotated[Optional[list[str]], typer.Option("--data", help="Data file(s) for the replay feed (repeat or comma-separate).")] = None,
    funding: Annotated[Optional[list[str]], typer.Option("--funding", help="Funding-rate file(s) to replay with bar data.")] = None,
    speed: Annotated[Optional[float], typer.Option(help="Replay pace: 0 = full speed, 1 = real time, 10 = 10x.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML config file (flags override it).", envvar="PERPBOT_CONFIG")] = None,
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="Strategy parameter key=value (repeatable).")] = None,
    sizer: Annotated[Optional[str], typer.Option(help="Position sizer plugin (default fixed_notional).")] = None,
    sizer_param: Annotated[Optional[list[str]], typer.Option("--sizer-param", help="Sizer parameter key=value.")] = None,
    risk: Annotated[Optional[str], typer.Option(help="Risk chain: 'a,b' replaces it ('' for none); '+name' adds and '-name' removes a policy. Default: " + ",".join(DEFAULT_RISK_POLICIES) + ".")] = None,
    risk_param: Annotated[Optional[list[str]], typer.Option("--risk-param", help="Risk parameter policy.key=value.")] = None,
    collateral: Annotated[Optional[str], typer.Option(help="Paper starting collateral, USD.")] = None,
    journal: Annotated[Optional[Path], typer.Option(help="Journal file (SQLite); reused to resume.")] = None,
    no_journal: Annotated[bool, typer.Option("--no-journal", help="Do not keep a journal.")] = False,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ignore an existing journal's state and start over.")] = False,
    state_dir: Annotated[Optional[Path], typer.Option(help="Directory for journal, logs, reports (default .perpbot).")] = None,
    dashboard: Annotated[bool, typer.Option("--dashboard", help="Live terminal dashboard.")] = False,
    alert: Annotated[Optional[list[str]], typer.Option("--alert", help="Send alerts to this apprise URL (repeatable): tgram://, slack://, discord://, mailto://, json://HOST:PORT/PATH ...", metavar="URL")] = None,
    alert_file: Annotated[Optional[Path], typer.Option("--alert-file", help="File of alert URLs, one a line, owner-only (chmod 600): URLs embed tokens.")] = None,
    alert_param: Annotated[Optional[list[str]], typer.Option("--alert-param", help="Alerts parameter key=value (repeatable): feed_down_s=60, fill_burst=3, ...")] = None,
    api: Annotated[Optional[str], typer.Option("--api", help="Serve the REST API and web dashboard on HOST:PORT (e.g. 127.0.0.1:8080); control needs a token.", metavar="HOST:PORT")] = None,
    api_token_file: Annotated[Optional[Path], typer.Option("--api-token-file", help="File holding the API's bearer token, owner-only (chmod 600); default: $PERPBOT_API_TOKEN.")] = None,
    report: Annotated[Optional[bool], typer.Option("--report/--no-report", help="Write the HTML report at the end of a replay.")] = None,
    live: Annotated[bool, typer.Option("--live", help="Explicit opt-in to trade real money on dYdX mainnet.")] = False,
    network: Annotated[Optional[str], typer.Option(help="dYdX network: mainnet, testnet, custom.")] = None,
    indexer_rest: Annotated[Optional[str], typer.Option(help="dYdX indexer REST URL (custom network).")] = None,
    indexer_ws: Annotated[Optional[str], typer.Option(help="dYdX indexer WebSocket URL (custom network).")] = None,
    node: Annotated[Optional[str], typer.Option(help="dYdX node gRPC address host:port (custom network).")] = None,
    node_secure: Annotated[Optional[bool], typer.Option("--node-secure/--no-node-secure", help="TLS to the node (default: on, off for a loopback custom node).")] = None,
    chain_id: Annotated[Optional[str], typer.Option(help="dYdX chain id (custom network).")] = None,
    dydx_stream: Annotated[Optional[str], typer.Option("--dydx-stream", help="dYdX full node gRPC HOST:PORT streaming the order book (StreamOrderbookUpdates): books and trades from the node, the indexer as fallback and cross-check.", metavar="HOST:PORT")] = None,
    subaccount: Annotated[Optional[int], typer.Option(help="dYdX subaccount number (default 0).", min=0)] = None,
    address: Annotated[Optional[str], typer.Option(help="dYdX address dydx1... (default: derived from the mnemonic).")] = None,
    mnemonic_file: Annotated[Optional[Path], typer.Option(help="File holding the wallet mnemonic; must be readable by its owner only (chmod 600).")] = None,
    trading_key_file: Annotated[Optional[Path], typer.Option(help="dYdX trading-key file from 'runbot.py dydx add-trading-key' (owner-only, chmod 600): sign orders with it instead of the mnemonic.")] = None,
    max_events: Annotated[Optional[int], typer.Option(help="Stop after this many market events (an event: one depth level entry, trade or quote; the summary counts the same).", min=1)] = None,
    decision_interval: Annotated[Optional[str], typer.Option(help="Seconds between strategy decisions (clock time), > 0.", metavar="SECONDS")] = None,
    unknown_positions: Annotated[Optional[str], typer.Option(help="Positions the journal does not know at start: adopt, flatten or refuse (default).")] = None,
    close_on_stop: Annotated[bool, typer.Option("--close-on-stop", help="Close positions with reduce-only orders when stopping.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs and tracebacks.")] = False,
):
    """Run a strategy (the default command), or one of the subcommands below."""
    _STATE["verbose"] = verbose
    if ctx.invoked_subcommand is not None:
        from perpbot.core.logs import configure_logging

        configure_logging(verbose=verbose)
        return
    opts = dict(ctx.params)
    try:
        if opts.get("speed") is not None and opts["speed"] < 0:
            raise ConfigError(f"--speed: must be >= 0, got {opts['speed']}")
        from perpbot.core.logs import configure_logging

        configure_logging(verbose=verbose)
        _plugin_manager().raise_if_broken()
        cfg = build_config(opts)
        code = run_bot(cfg)
    except PerpbotError as exc:
        _fail(exc, verbose)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130)
    except OSError as exc:  # a file or network problem the code did not anticipate
        exc.exit_code = 3
        _fail(exc, verbose)
    except Exception as exc:  # a bug: say so in one line; the traceback is in the log file and with --verbose
        from loguru import logger

        logger.opt(exception=exc).debug("unexpected error")
        exc.exit_code = 70
        typer.echo(
            f"error: internal error {type(exc).__name__}: {exc} (please report it; --verbose shows the traceback)", err=True
        )
        if verbose:
            import traceback

            traceback.print_exception(exc)
        raise typer.Exit(70)
    raise typer.Exit(code)


@app.command("plugins")
def plugins_command(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
):
    """List every plugin, its version and what it registers."""
    try:
        pm = _plugin_manager()
    except PerpbotError as exc:
        _fail(exc, _STATE["verbose"])
    rows = pm.listing()
    if as_json:
        import json

        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="perpbot plugins")
    table.add_column("plugin")
    table.add_column("version")
    table.add_column("kind")
    table.add_column("registers")
    table.add_column("hooks")
    for r in rows:
        if r.get("broken"):
            table.add_row(
                r["name"],
                r["version"],
                "BROKEN",
                "-",
                f"[red]{escape(r['broken'])}[/red]",
            )
            continue
        table.add_row(
            r["name"],
            r["version"],
            "built-in" if r["builtin"] else "third-party",
            "\n".join(r["registers"]) or "-",
            ", ".join(h for h in r["hooks"] if not h.startswith("register_")) or "-",
        )
    Console(width=160).print(table)
    for r in rows:
        if r.get("broken"):
            typer.echo(f"broken plugin {r['name']}: {r['broken']}", err=True)


@app.command("init")
def init_command(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("perpbot.toml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
):
    """Write a commented default configuration file (TOML)."""
    from perpbot.core.initconfig import default_config_text

    try:
        if path.exists() and not force:
            raise ConfigError(f"{path} exists; use --force to overwrite")
        pm = _plugin_manager()
        for name, reason in pm.broken.items():
            typer.echo(f"warning: plugin {name} is broken and left out of {path}: {reason}", err=True)
        text = default_config_text(pm)
        path.write_text(text)
    except PerpbotError as exc:
        _fail(exc, _STATE["verbose"])
    typer.echo(f"wrote {path}")


_BUILT: list = []


def build_app() -> typer.Typer:
    """The CLI with the installed plugins' subcommands and flags added (once per process).

    The default command's options are those of :func:`main_callback` plus one option per
    flag a plugin's params declare (``param(..., flag="--take-profit")``), grouped per plugin
    in ``--help``. A plugin that fails here is marked broken, never breaks the CLI.

    :returns: the :class:`typer.Typer` app, ready to call.
    """
    if _BUILT:
        return app
    import functools
    import inspect

    pm = _plugin_manager()
    pm.register_commands(app)
    extra = _plugin_parameters(pm)
    if extra:
        base = inspect.signature(main_callback, eval_str=True)

        @functools.wraps(main_callback)
        def callback(**kwargs):
            return main_callback(**{k: v for k, v in kwargs.items() if k in base.parameters})

        callback.__signature__ = base.replace(parameters=[*base.parameters.values(), *extra])
        callback.__annotations__ = {**main_callback.__annotations__, **{p.name: p.annotation for p in extra}}
        del callback.__wrapped__  # typer must read __signature__, not main_callback's
        app.callback()(callback)
    _BUILT.append(True)
    return app


def main() -> None:
    """Console-script entry point (``runbot``)."""
    build_app()()


if __name__ == "__main__":
    main()
