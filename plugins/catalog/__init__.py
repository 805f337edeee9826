"""Built-in plugin: market history into a local Parquet catalog (``runbot.py download``).

``runbot.py download --venue dydx --ticker BTC,ETH --start 2024-02-01 --end 2024-02-08
--kind candles:5MINS,funding,trades [--catalog .perpbot/catalog]`` fetches dYdX indexer history
(candles at its resolutions, historical funding, trades), paged backwards in time through the
dYdX plugin's :class:`~perpbot.exchanges.dydx.rest.IndexerRest` (request budget, retries), with
a progress bar and ETA. ``--venue ccxt:ID`` (e.g. ``ccxt:binanceusdm``) fetches a ccxt venue's
OHLCV and funding-rate history through the ccxt plugin's client (:mod:`.ccxt_history`). It is resumable: days the manifest holds complete (file present, digest
matching) are skipped, a day that had not ended is fetched again. Gaps in the venue's data
(missing candles, hours without funding) are counted, listed and recorded in the manifest.
``--from-file FILE [--funding-file FILE] --venue NAME`` builds the same catalog from local files
(offline; ``sample:bars`` and ``sample:funding`` name the embedded samples).

The catalog's layout, schema and manifest are defined with its reader,
:mod:`perpbot.exchanges.replay.catalog` (the replay feed reads ``--data catalog:PATH``).

What lives where: :mod:`.store` (atomic Parquet partitions and the manifest), :mod:`.dydx`
(the indexer's history endpoints and their paging), :mod:`.ccxt_history` (ccxt venues), :mod:`.download` (planning, paging into
days, gaps, progress), :mod:`.importer` (local files), :mod:`.cli` (the command).

Imports: :mod:`perpbot.core`, the replay feed's catalog format and file readers
(:mod:`perpbot.exchanges.replay`), the dYdX plugin's REST client, the ccxt plugin's client and
market mapping, pyarrow, typer and rich;
never a strategy.
"""

from __future__ import annotations

from perpbot.core.hookspecs import hookimpl


@hookimpl
def register_commands(cli):
    """Register the ``download`` command (:func:`perpbot.plugins.catalog.cli.register`)."""
    from perpbot.plugins.catalog.cli import register

    register(cli)
