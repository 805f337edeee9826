"""``runbot.py download``: market history into a local Parquet catalog (see :mod:`perpbot.plugins.catalog`).

    runbot.py download --venue dydx --ticker BTC,ETH --start 2024-02-01 --end 2024-02-08 \\
        --kind candles:5MINS,funding,trades [--catalog .perpbot/catalog]
    runbot.py download --venue ccxt:binanceusdm --ticker BTC --start 2024-02-01 --end 2024-02-08 \\
        --kind candles:1HOUR,funding,mark:1HOUR                  (a ccxt venue; --url for a fake)
    runbot.py download --from-file sample:bars --funding-file sample:funding --venue binance \\
        [--catalog PATH]                                        (offline: local files)

Every bad input is one line on stderr (``error: ...``) and a non-zero exit: a malformed date or
range, a start in the future, an unknown venue, market, kind or resolution (with the closest
valid name), a range without data, a corrupt manifest.
"""

from __future__ import annotations

import asyncio
import difflib
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from perpbot.core.errors import ConfigError, PerpbotError
from perpbot.exchanges.replay.catalog import RESOLUTIONS, parse_date

#: venues ``download`` fetches from the network
VENUES = ("dydx",)
DEFAULT_CATALOG = ".perpbot/catalog"
KIND_DEFAULT = "candles:5MINS,funding"
MAX_GAP_LINES = 20


def _closest(name: str, names) -> str:
    near = difflib.get_close_matches(name, list(names), n=1, cutoff=0.5)
    return f"did you mean {near[0]!r}? " if near else ""


def parse_kinds(text: str) -> list[str]:
    """``candles:5MINS,funding,trades`` -> ``["candles-5MINS", "funding", "trades"]`` (catalog kind names).

    :raises ConfigError: an empty list, an unknown kind or resolution (with the closest valid name).
    """
    out = []
    for item in (k.strip() for k in text.split(",")):
        if not item:
            continue
        fam, _, res = item.partition(":")
        fam = fam.lower()
        if fam in ("candles", "mark"):
            if not res:
                raise ConfigError(f"--kind: {fam} needs a resolution, e.g. {fam}:5MINS (one of {', '.join(RESOLUTIONS)})")
            res = res.upper()
            if res not in RESOLUTIONS:
                raise ConfigError(f"--kind: unknown candle resolution {res!r}; {_closest(res, RESOLUTIONS)}"
                                  f"(known: {', '.join(RESOLUTIONS)})")
            out.append(f"{fam}-{res}")
        elif fam in ("funding", "trades") and not res:
            out.append(fam)
        else:
            known = ("candles:<RES>", "mark:<RES>", "funding", "trades")
            raise ConfigError(f"--kind: unknown kind {item!r}; {_closest(fam, ('candles', 'mark', 'funding', 'trades'))}"
                              f"(known: {', '.join(known)})")
    if not out:
        raise ConfigError("--kind: name at least one kind (candles:5MINS, funding, trades)")
    return list(dict.fromkeys(out))


def check_venue(venue: str) -> str:
    """A ``--venue`` for a network download, lower-cased: ``dydx`` or ``ccxt:<id>``.

    :raises ConfigError: an unknown venue or ccxt id, with the closest known one.
    """
    v = venue.strip().lower()
    if v.startswith("ccxt:"):
        from perpbot.exchanges.ccxt.venues import resolve_venue

        try:
            return "ccxt:" + resolve_venue(v[5:], v).ccxt_id
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("--exchange:", "--venue:", 1)) from None
    if v not in VENUES:
        raise ConfigError(f"--venue: unknown venue {venue!r}; {_closest(v, VENUES)}(known: {', '.join(VENUES)}, "
                          "ccxt:<id> e.g. ccxt:binanceusdm)")
    return v


def parse_tickers(text: str | None) -> list[str]:
    """``BTC,eth`` -> ``["BTC-USD", "ETH-USD"]``.

    :raises ConfigError: a malformed ticker (named).
    """
    from perpbot.core.config import normalize_ticker

    return list(dict.fromkeys(normalize_ticker(t) for t in (text or "").split(",") if t.strip()))


def check_markets(tickers: list[str], known: list[str], venue: str) -> None:
    """Every ticker must be one of the venue's markets.

    :raises ConfigError: ``--ticker: unknown dydx market 'BTX-USD'; did you mean 'BTC-USD'?``
    """
    for t in tickers:
        if t not in known:
            raise ConfigError(f"--ticker: unknown {venue} market {t!r}; {_closest(t, known)}"
                              f"({len(known)} markets, e.g. {', '.join(known[:5])})")


def summary_lines(root: Path, venue: str, markets: list[str], res, damaged: list[str]) -> list[str]:
    """The command's report: days fetched / skipped, requests, rows per kind, damaged partitions, gaps, partial days."""
    from perpbot.plugins.catalog.download import describe_gap

    lines = [f"catalog {root}: {venue} {', '.join(markets)}"]
    lines += [f"re-fetched {d} (its partition was missing or corrupt)" for d in damaged]
    lines.append(f"fetched {res.fetched_days} day partition(s), skipped {res.skipped_days} already held complete; "
                 f"{res.requests} request(s)")
    if res.rows:
        lines.append("rows written: " + ", ".join(f"{k} {n:,}" for k, n in sorted(res.rows.items())))
    gap_list = [(k, g) for k, gs in sorted(res.gaps.items()) for g in gs]
    missing = sum(g[2] for _, g in gap_list)
    if gap_list:
        lines.append(f"gaps in the venue's data: {len(gap_list)} gap(s), {missing} missing interval(s) "
                     "(recorded in manifest.json):")
        for (m, k, _d), g in gap_list[:MAX_GAP_LINES]:
            lines.append(f"  {m} {k}: {describe_gap(g)}")
        if len(gap_list) > MAX_GAP_LINES:
            lines.append(f"  ... and {len(gap_list) - MAX_GAP_LINES} more")
    else:
        lines.append("gaps in the venue's data: none")
    for m, k, d in res.partial:
        lines.append(f"partial: {m} {k} {d} had not ended; the next download fetches it again")
    return lines


async def download_dydx(settings_cfg: dict, root: Path, tickers: list[str], kinds: list[str], start: str,
                        end: str, *, page_size: int, progress_bar: bool, now_ns: int | None = None):
    """Download from the dYdX indexer (``settings_cfg``: a ``[feed.dydx]``-like table); see :func:`download_from`.

    :raises ConfigError: mark-price candles (the indexer serves trade candles only).
    """
    marks = [k for k in kinds if k.startswith("mark-")]
    if marks:
        raise ConfigError(f"--kind: mark:{marks[0][5:]} is downloaded from ccxt venues only "
                          "(the dYdX indexer serves trade candles: candles:<RES>)")
    from perpbot.exchanges.dydx.config import DydxSettings
    from perpbot.exchanges.dydx.rest import IndexerRest
    from perpbot.plugins.catalog.dydx import DydxHistory

    source = DydxHistory(IndexerRest(DydxSettings.from_config(settings_cfg)), page_size)
    return await download_from(source, root, tickers, kinds, start, end, progress_bar=progress_bar, now_ns=now_ns)


async def download_ccxt(venue: str, url: str | None, root: Path, tickers: list[str], kinds: list[str], start: str,
                        end: str, *, page_size: int, progress_bar: bool, now_ns: int | None = None):
    """Download from a ccxt venue (``ccxt:<id>``; ``url`` rewrites its URLs, e.g. to a fake); see :func:`download_from`.

    :raises ConfigError: a kind ccxt venues do not serve here (trades), mark-price candles of a
        venue whose ccxt class has no ``fetchMarkOHLCV``.
    """
    from perpbot.plugins.catalog.ccxt_history import CcxtHistory

    bad = [k for k in kinds if not (k.startswith(("candles-", "mark-")) or k == "funding")]
    if bad:
        raise ConfigError(f"--kind: {bad[0]} is not downloaded from ccxt venues (candles:<RES>, mark:<RES>, funding)")
    source = CcxtHistory(venue.split(":", 1)[1], url=url, page_size=page_size)
    try:
        marks = [k for k in kinds if k.startswith("mark-")]
        if marks and not source.client.has.get("fetchMarkOHLCV"):
            raise ConfigError(f"--kind: mark:{marks[0][5:]}: {venue} has no mark-price candles in ccxt (fetchMarkOHLCV)")
        return await download_from(source, root, tickers, kinds, start, end, progress_bar=progress_bar, now_ns=now_ns)
    finally:
        await source.close()


async def download_from(source, root: Path, tickers: list[str], kinds: list[str], start: str, end: str, *,
                        progress_bar: bool, now_ns: int | None = None):
    """Validate the markets against the source, plan, and download; returns ``(result, markets, damaged)``.

    :raises ConfigError: an unknown market (closest named), a bad range.
    :raises DataError: no data at all in the range; a corrupt manifest.
    :raises ExchangeError: the venue's failures after retries.
    """
    from perpbot.plugins.catalog.download import (DownloadProgressBar, check_range, no_data_error, plan,
                                                  run_download)
    from perpbot.plugins.catalog.store import CatalogWriter

    now = now_ns if now_ns is not None else time.time_ns()
    days = check_range(start, end, now)
    venue = source.venue
    check_markets(tickers, await source.markets(), venue)
    writer = await asyncio.to_thread(CatalogWriter, root)
    jobs = await asyncio.to_thread(plan, writer, venue, tickers, kinds, days)
    damaged = [f"{j.market} {j.kind} {d}" for j in jobs for d in j.damaged]
    bar = DownloadProgressBar() if progress_bar else None
    try:
        res = await run_download(source, writer, jobs, now_ns=now, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    if res.total_rows_in_range == 0:
        raise no_data_error(venue, tickers, start, end)
    return res, tickers, damaged


def register(cli) -> None:
    """Add the ``download`` command to the typer app."""

    @cli.command("download")
    def download_command(
        ticker: Annotated[Optional[str], typer.Option("--ticker", "-t", help="Markets, comma-separated: BTC,ETH (= BTC-USD,ETH-USD).")] = None,
        start: Annotated[Optional[str], typer.Option(help="First UTC day, YYYY-MM-DD.")] = None,
        end: Annotated[Optional[str], typer.Option(help="Last UTC day, YYYY-MM-DD (included).")] = None,
        venue: Annotated[str, typer.Option(help="Where from: dydx (its indexer) or ccxt:<id> (e.g. ccxt:binanceusdm); with --from-file, the venue name to file the data under.")] = "dydx",
        kind: Annotated[str, typer.Option(help="What: candles:<RES> (1MIN,5MINS,15MINS,30MINS,1HOUR,4HOURS,1DAY), funding, trades, mark:<RES> (ccxt venues' mark-price candles); comma-separated.")] = KIND_DEFAULT,
        catalog: Annotated[Path, typer.Option(help="The catalog folder.")] = Path(DEFAULT_CATALOG),
        network: Annotated[Optional[str], typer.Option(help="dYdX network: mainnet (default), testnet, custom.")] = None,
        indexer_rest: Annotated[Optional[str], typer.Option(help="Indexer REST URL (sets network custom).")] = None,
        url: Annotated[Optional[str], typer.Option(help="ccxt venues: base URL replacing every venue URL (a proxy or loopback fake).")] = None,
        page_size: Annotated[int, typer.Option(help="Rows per request (the indexer's limit is 1000).", min=1, max=1000)] = 1000,
        max_requests: Annotated[int, typer.Option(help="Request budget: at most this many requests ...", min=1)] = 100,
        window_s: Annotated[float, typer.Option(help="... per this many seconds (indexer limit: 100 per 10 s).", min=0.001)] = 10.0,
        from_file: Annotated[Optional[str], typer.Option(help="Offline: import this bar file (or sample:bars) instead of downloading.")] = None,
        funding_file: Annotated[Optional[str], typer.Option(help="Offline: with --from-file, a funding CSV (or sample:funding); rows of --venue are kept.")] = None,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar with ETA (on a terminal).")] = True,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Tracebacks on errors.")] = False,
    ):
        """Download market history (dYdX candles, funding, trades) into a Parquet catalog; resumable."""
        try:
            for value, what in ((start, "--start"), (end, "--end")):
                if value is not None:
                    parse_date(value, what)
            tickers = parse_tickers(ticker)
            if from_file is not None:
                extra = [flag for flag, given in (("--kind", kind != KIND_DEFAULT), ("--network", network),
                                                  ("--indexer-rest", indexer_rest), ("--url", url)) if given]
                if extra:
                    raise ConfigError(f"{extra[0]}: not used with --from-file (it imports the file's bars and "
                                      "--funding-file's rows)")
                lines = _import(catalog, venue, from_file, funding_file, tickers, start, end)
            else:
                if funding_file is not None:
                    raise ConfigError("--funding-file: only with --from-file (a download fetches --kind funding)")
                v = check_venue(venue)
                kinds = parse_kinds(kind)
                if not tickers:
                    raise ConfigError("--ticker: name at least one market, e.g. --ticker BTC,ETH")
                if start is None or end is None:
                    raise ConfigError("--start and --end: give the range, e.g. --start 2024-02-01 --end 2024-02-08")
                if v == "dydx":
                    cfg = {"network": "custom" if indexer_rest else network, "indexer_rest": indexer_rest,
                           "rest_max_requests": max_requests, "rest_window_s": window_s}
                    if indexer_rest:  # the download uses REST only; a custom network still names a socket
                        cfg["indexer_ws"] = "ws" + indexer_rest.rstrip("/")[4:] + "/v4/ws" if indexer_rest.startswith("http") else indexer_rest
                    cfg = {k: val for k, val in cfg.items() if val is not None}
                    job = download_dydx(cfg, catalog, tickers, kinds, start, end, page_size=page_size, progress_bar=progress)
                else:
                    job = download_ccxt(v, url, catalog, tickers, kinds, start, end, page_size=page_size,
                                        progress_bar=progress)
                res, markets, damaged = asyncio.run(job)
                lines = summary_lines(catalog, v, markets, res, damaged)
        except PerpbotError as exc:
            if verbose:
                raise
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(getattr(exc, "exit_code", 1))
        except KeyboardInterrupt:
            typer.echo("interrupted: the days written so far are kept; run the same command to resume", err=True)
            raise typer.Exit(130)
        for line in lines:
            typer.echo(line)


def _import(catalog: Path, venue: str, from_file: str, funding_file: str | None, tickers, start, end) -> list[str]:
    from perpbot.plugins.catalog.importer import import_files
    from perpbot.plugins.catalog.store import CatalogWriter

    v = venue.strip().lower()
    if not v or not v.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"--venue: expected a venue name (letters, digits, - or _), got {venue!r}")
    if start is not None and end is not None and end < start:
        raise ConfigError(f"--end {end} is before --start {start}")
    res = import_files(CatalogWriter(catalog), v, from_file, funding_file, tickers or None, start, end)
    return summary_lines(catalog, v, res.markets, res, [])
