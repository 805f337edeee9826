"""``runbot.py record``: write the raw dYdX indexer stream to a gzip JSONL file.

    runbot.py record --ticker BTC,ETH --out btc-eth.jsonl.gz [--network mainnet]
                     [--indexer-rest URL --indexer-ws URL] [--duration S] [--max-bytes N]

Runs the live ``dydx`` feed (no keys needed) with its recorder on, until
``--duration`` seconds have passed or Ctrl-C, then prints one summary line. The file
replays with ``runbot.py --feed replay --data FILE`` through the same parser.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Optional

import attrs
import typer

from perpbot.core.tasks import cancel_and_wait, install_stop_signals, remove_signals
from perpbot.core.errors import ConfigError, PerpbotError


@attrs.define
class _Context:
    clock: object
    tickers: tuple
    state_dir: Path
    markets: dict = attrs.Factory(dict)
    options: dict = attrs.Factory(dict)


async def record_stream(config: dict, tickers: tuple, duration: float | None, *, stop: asyncio.Event | None = None):
    """Run the feed with ``config["record"]`` set until ``duration`` or ``stop``; returns the feed."""
    from perpbot.core.clock import LiveClock
    from perpbot.exchanges.dydx.feed import DydxFeed

    feed = DydxFeed(config, _Context(LiveClock(), tickers, Path(".")))
    stop = stop or asyncio.Event()
    installed = install_stop_signals(lambda _name: stop.set())
    await feed.start()
    deadline = None if duration is None else time.monotonic() + duration

    async def consume():
        async for _ in feed.batches():
            pass

    consumer = asyncio.create_task(consume())
    try:
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            try:
                async with asyncio.timeout(0.2 if deadline is None else
                                           max(0.01, min(0.2, deadline - time.monotonic()))):
                    await stop.wait()
            except TimeoutError:
                pass
            if consumer.done():
                break
    finally:
        await feed.stop()
        await cancel_and_wait([consumer])
        remove_signals(installed)
    return feed


def register(cli) -> None:
    """Add the ``record`` command to the typer app."""

    @cli.command("record")
    def record_command(
        ticker: Annotated[str, typer.Option("--ticker", "-t", help="Markets, comma-separated: BTC,ETH (= BTC-USD,ETH-USD).")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Recording file (gzip JSONL), e.g. rec.jsonl.gz.")],
        network: Annotated[Optional[str], typer.Option(help="dYdX network: mainnet (default), testnet, custom.")] = None,
        indexer_rest: Annotated[Optional[str], typer.Option(help="Indexer REST URL (custom network).")] = None,
        indexer_ws: Annotated[Optional[str], typer.Option(help="Indexer WebSocket URL (custom network).")] = None,
        duration: Annotated[Optional[float], typer.Option(help="Stop after this many seconds (default: Ctrl-C).", min=0.0)] = None,
        max_bytes: Annotated[Optional[int], typer.Option(help="Rotate to a new file after this many compressed bytes.", min=1024)] = None,
        candles: Annotated[Optional[str], typer.Option(help="Candle resolutions to record too, e.g. 1MIN,5MINS.")] = None,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Tracebacks on errors.")] = False,
    ):
        """Record the raw dYdX indexer stream (order books, trades, markets) to a gzip JSONL file."""
        from perpbot.core.config import normalize_ticker

        try:
            tickers = tuple(normalize_ticker(t) for t in ticker.split(",") if t.strip())
            if not tickers:
                raise ConfigError("--ticker: name at least one market")
            if any(":" in t for t in tickers):
                raise ConfigError(f"--ticker: the recorder takes dYdX markets only, got {ticker!r}")
            if out.exists():
                raise ConfigError(f"--out: {out} exists; choose a new file")
            cfg = {"network": network, "indexer_rest": indexer_rest, "indexer_ws": indexer_ws,
                   "record": str(out), "record_max_bytes": max_bytes, "candles": candles}
            feed = asyncio.run(record_stream({k: v for k, v in cfg.items() if v is not None}, tickers, duration))
        except PerpbotError as exc:
            if verbose:
                raise
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(getattr(exc, "exit_code", 1))
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130)
        rec = feed.recorder
        typer.echo(f"recorded {rec.summary() if rec else 'nothing'}")
