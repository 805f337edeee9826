"""Built-in plugin: the multi-venue market-data collector (``runbot.py collect``), issue 15 item 1.

``runbot.py collect --venues binance=ccxt:binanceusdm,hyperliquid=ccxt:hyperliquid,dydx
--markets BTC,ETH --store duckdb:collect.duckdb`` streams L2 books, trades, funding, mark
prices and open interest from several venues at once through the bot's own feeds, and writes
them to storage (:mod:`perpbot.plugins.storage`: DuckDB, PostgreSQL, Redis).

What lives where: :mod:`.runner` (a venue's sessions: feed, open-interest poll, backoff, circuit
breaker), :mod:`.rows` (events -> rows), :mod:`.validator` (rejects and counts bad rows),
:mod:`.batcher` (by size and by time), :mod:`.collect` (the pipeline and its writer),
:mod:`.cli` (the command).

Imports: :mod:`perpbot.core`, the ccxt and dYdX plugins' feeds and clients, the storage plugin.
"""

from __future__ import annotations

from perpbot.core.hookspecs import hookimpl


@hookimpl
def register_commands(cli):
    """Register the ``collect`` command (:func:`perpbot.plugins.collector.cli.register`)."""
    from perpbot.plugins.collector.cli import register

    register(cli)
