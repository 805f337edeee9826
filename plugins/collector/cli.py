"""``runbot.py collect``: stream several venues' market data into storage (see :mod:`perpbot.plugins.collector`).

    runbot.py collect --venues binance=ccxt:binanceusdm,bybit=ccxt:bybit,hyperliquid=ccxt:hyperliquid,dydx \\
        --markets BTC,ETH [--store duckdb:collect.duckdb[,postgresql://...][,redis://...]] [--duration S]
    (--url binance=http://127.0.0.1:PORT,... points a venue at a loopback fake)

Runs until Ctrl-C (or ``--duration`` seconds), then flushes and prints per-venue counts. Bad
input is one line on stderr (``error: ...``) and exit code 2: an unknown venue plugin or ccxt id,
a malformed market, an unknown storage scheme (closest names given), a store that cannot be
opened. A venue whose market turns out unknown stops alone (named in the counts; exit code 1).
"""

from __future__ import annotations

import asyncio
import difflib
from typing import Annotated, Optional

import typer

from perpbot.core.errors import ConfigError, PerpbotError
from perpbot.core.tasks import install_stop_signals, remove_signals
from perpbot.plugins.collector.runner import VenueSpec

DEFAULT_STORE = "duckdb:.perpbot/collect.duckdb"
PLUGINS = ("ccxt", "dydx")


def parse_venues(text: str) -> list[VenueSpec]:
    """``binance=ccxt:binanceusdm,dydx`` -> venue specs (``dydx`` alone = ``dydx=dydx``).

    :raises ConfigError: an empty list, a repeated name, an unknown plugin or ccxt id (closest named).
    """
    from perpbot.exchanges.ccxt.venues import resolve_venue

    out: list[VenueSpec] = []
    for item in (x.strip() for x in (text or "").split(",")):
        if not item:
            continue
        name, eq, target = item.partition("=")
        name = name.strip().lower()
        target = (target if eq else name).strip().lower()
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"--venues: {item!r}: a venue name is letters, digits, - or _ (e.g. binance=ccxt:binanceusdm)")
        plugin, _, arg = target.partition(":")
        if plugin == "dydx":
            spec = VenueSpec(name, "dydx")
        elif plugin == "ccxt":
            try:
                prof = resolve_venue(arg, name)
            except ConfigError as exc:
                raise ConfigError(str(exc).replace("--exchange:", "--venues:", 1)) from None
            spec = VenueSpec(name, "ccxt", prof.ccxt_id)
        else:
            near = difflib.get_close_matches(plugin, PLUGINS, n=1)
            raise ConfigError(f"--venues: {item!r}: unknown venue plugin {plugin!r}"
                              + (f"; did you mean {near[0]!r}?" if near else "")
                              + " (NAME=ccxt:ID, e.g. binance=ccxt:binanceusdm, or dydx)")
        if any(s.name == name for s in out):
            raise ConfigError(f"--venues: venue {name!r} named twice")
        out.append(spec)
    if not out:
        raise ConfigError("--venues: name at least one venue, e.g. --venues binance=ccxt:binanceusdm,dydx")
    return out


def parse_markets(text: str) -> list[str]:
    """``BTC,eth`` -> ``["BTC-USD", "ETH-USD"]``.

    :raises ConfigError: none given, or a malformed ticker (named).
    """
    from perpbot.core.config import normalize_ticker

    out = []
    for t in (x for x in (text or "").split(",") if x.strip()):
        try:
            m = normalize_ticker(t)
        except ConfigError as exc:
            raise ConfigError(f"--markets: {exc}") from None
        if ":" in m:
            raise ConfigError(f"--markets: {t!r}: give plain markets (BTC,ETH); every venue collects them")
        out.append(m)
    if not out:
        raise ConfigError("--markets: name at least one market, e.g. --markets BTC,ETH")
    return list(dict.fromkeys(out))


def apply_urls(specs: list[VenueSpec], text: str | None) -> None:
    """``binance=http://127.0.0.1:PORT,...`` -> each named venue's ``url``.

    :raises ConfigError: a malformed entry, a venue not in ``--venues`` (closest named), a URL
        that is not http(s).
    """
    by_name = {s.name: s for s in specs}
    for item in (x.strip() for x in (text or "").split(",")):
        if not item:
            continue
        name, eq, url = item.partition("=")
        name = name.strip().lower()
        url = url.strip()
        if not eq or not url:
            raise ConfigError(f"--url: {item!r}: expected VENUE=URL, e.g. binance=http://127.0.0.1:8080")
        if name not in by_name:
            near = difflib.get_close_matches(name, list(by_name), n=1)
            raise ConfigError(f"--url: {name!r} is not one of --venues" + (f"; did you mean {near[0]!r}?" if near else "")
                              + f" ({', '.join(by_name)})")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"--url: {name}: expected an http(s) URL, got {url!r}")
        by_name[name].url = url


def open_stores(text: str) -> list:
    """Open every comma-separated storage URL (closing those opened when one fails).

    :raises ConfigError: an unknown scheme, a store that cannot be opened.
    """
    from perpbot.plugins.storage import open_storage

    urls = [u.strip() for u in (text or "").split(",") if u.strip()]
    if not urls:
        raise ConfigError(f"--store: name at least one store, e.g. {DEFAULT_STORE}")
    stores = []
    try:
        for u in urls:
            stores.append(open_storage(u))
    except BaseException:
        for s in stores:
            s.close()
        raise
    return stores


async def run_collect(collector, duration_s: float | None) -> None:
    """Run ``collector`` until ``duration_s`` or SIGINT/SIGTERM (a second Ctrl-C is ignored while flushing)."""
    stop = asyncio.Event()
    installed = install_stop_signals(lambda _name: stop.set())
    try:
        await collector.run(duration_s, stop)
    finally:
        remove_signals(installed)


def register(cli) -> None:
    """Add the ``collect`` command to the typer app."""

    @cli.command("collect")
    def collect_command(
        venues: Annotated[str, typer.Option(help="Venues, comma-separated: NAME=ccxt:ID (binance=ccxt:binanceusdm, bybit=ccxt:bybit, coinbase=ccxt:coinbaseinternational, hyperliquid=ccxt:hyperliquid) or dydx.")],
        markets: Annotated[str, typer.Option(help="Markets collected on every venue, comma-separated: BTC,ETH (= BTC-USD,ETH-USD).")],
        store: Annotated[str, typer.Option(help="Storage, comma-separated: duckdb:PATH, postgresql://user@host:port/db, redis://host:port/0 (every row goes to each).")] = DEFAULT_STORE,
        url: Annotated[Optional[str], typer.Option(help="VENUE=URL,...: send a venue's REST and WebSocket requests to URL (a loopback fake).")] = None,
        duration: Annotated[Optional[float], typer.Option(help="Stop after this many seconds (default: run until Ctrl-C).", min=0.1)] = None,
        depth: Annotated[int, typer.Option(help="Book levels stored per side.", min=1, max=1000)] = 10,
        oi_poll_s: Annotated[float, typer.Option(help="Seconds between open-interest polls (0: none).", min=0)] = 10.0,
        batch_rows: Annotated[int, typer.Option(help="Rows per write batch (a batch is written when full ...).", min=1)] = 1000,
        batch_age_s: Annotated[float, typer.Option(help="... or when its oldest row is this many seconds old.", min=0.01)] = 1.0,
        silence_s: Annotated[float, typer.Option(help="Seconds without market data before a venue's session is restarted.", min=1)] = 60.0,
        signals: Annotated[Optional[str], typer.Option(help="Analysis signals: 'all' or analyzer names (technical,orderflow,...); each market's confluence across venues is stored as 'signal' rows (and published on Redis).")] = None,
        signals_every_s: Annotated[float, typer.Option(help="Seconds between signal rows.", min=0.05)] = 1.0,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Tracebacks on errors.")] = False,
    ):
        """Stream books, trades, funding and open interest of several venues into storage; Ctrl-C flushes and prints counts."""
        from perpbot.plugins.collector.collect import Collector

        try:
            specs = parse_venues(venues)
            tickers = parse_markets(markets)
            apply_urls(specs, url)
            maker = None
            if signals is not None:
                from perpbot.plugins.collector.signals import SignalMaker, load_analyzers

                maker = SignalMaker(load_analyzers(signals))
            stores = open_stores(store)
        except PerpbotError as exc:
            if verbose:
                raise
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(getattr(exc, "exit_code", 2) or 2)
        col = Collector(specs, tickers, stores, batch_rows=batch_rows, batch_age_s=batch_age_s, depth=depth,
                        oi_poll_s=oi_poll_s, silence_s=silence_s, signals=maker, signals_every_s=signals_every_s)
        try:
            asyncio.run(run_collect(col, duration))
        finally:
            col.close()
        for line in col.report():
            typer.echo(line)
        fatal = [r for r in col.runners if r.fatal]
        for r in fatal:
            typer.echo(f"error: {r.venue}: {r.fatal}", err=True)
        if fatal or col.lost_rows:
            raise typer.Exit(1)
