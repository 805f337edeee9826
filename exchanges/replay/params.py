"""Configuration of the ``replay`` feed: :class:`ReplayParams` and the parsing of its raw tables.

Re-exported by :mod:`perpbot.exchanges.replay.feed` (``ReplayParams``), where it was defined
before the feed was split. Imports only :mod:`perpbot.core.params` and the core errors.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping

import attrs

from perpbot.core.errors import ConfigError
from perpbot.core.params import in_range, param, parse_params


def _on_gap(instance, attribute, value):
    if value not in ("error", "resync"):
        raise ValueError(f"parameter on_gap: expected 'error' or 'resync', got {value!r}")


def _bar_ts(instance, attribute, value):
    if value not in ("open", "close"):
        raise ValueError(f"parameter bar_timestamp: expected 'open' or 'close', got {value!r}")


@attrs.frozen
class ReplayParams:
    """Configuration of the ``replay`` feed (``[feed]`` table or CLI); each field's help text says its unit."""

    files: tuple[str, ...] = param(
        (),
        "data files to replay, merged by time; empty = the embedded Binance BTCUSDT+ETHUSDT L2 sample. "
        "'sample:bars' and 'sample:funding' name the other embedded samples",
    )
    speed: Decimal = param(Decimal(0), "0 = as fast as possible; N = N x real time", in_range(0))
    tickers: tuple[str, ...] = param(
        (), "only these dYdX tickers (BTC-USD or BTC); empty = the bot's tickers, else every market in the files"
    )
    symbol_map: dict = param(attrs.Factory(dict), "venue symbol -> dYdX ticker overrides, e.g. {1000PEPEUSDT = 'PEPE-USD'}")
    on_gap: str = param("error", "a depth update-id gap: 'error' stops with the file and line; 'resync' marks "
                        "the market unhealthy and waits for the next snapshot", _on_gap)
    funding_files: tuple[str, ...] = param((), "funding-rate CSVs (long format) merged into the replay")
    funding_venue: str = param("binance", "whose funding rows to replay from funding files")
    bar_interval_s: int | None = param(None, "bar length in seconds; default: the step between the first two rows")
    bar_timestamp: str = param("open", "what a bar file's time column means: 'open' or 'close'", _bar_ts)
    catalog: str = param("", "a catalog folder written by 'runbot.py download' (same as files = ['catalog:PATH']): "
                         "its candles replay as bars with that venue's funding")
    catalog_venue: str = param("", "the catalog's venue to replay (dydx, ccxt:binanceusdm...); empty = the only one held")
    markets_file: str = param("", "dYdX market metadata (indexer /v4/perpetualMarkets shape); empty = the built-in file")
    venue_files: dict = param(
        attrs.Factory(dict),
        "files of other venues, {venue = [files]}: their events carry 'venue:TICKER'. A qualified ticker of a "
        "venue without files mirrors the primary files' market data",
    )


def parse_replay_params(config: Mapping[str, Any]) -> ReplayParams:
    """The feed's raw config -> :class:`ReplayParams`.

    ``symbol_map`` may also be the CLI form ``"SYM=TICKER,SYM2=TICKER2"``.

    :raises ConfigError: a bad ``symbol_map`` (not pairs, not a table) or any field that
        :func:`~perpbot.core.params.parse_params` rejects, in one line naming it.
    """
    raw = dict(config)
    if isinstance(raw.get("symbol_map"), str):  # CLI form "SYM=TICKER,SYM2=TICKER2"
        pairs = [kv for kv in raw["symbol_map"].split(",") if kv.strip()]
        if any("=" not in kv for kv in pairs):
            raise ConfigError(f"feed replay: parameter symbol_map: expected SYMBOL=TICKER pairs, got {raw['symbol_map']!r}")
        raw["symbol_map"] = dict(kv.split("=", 1) for kv in pairs)
    elif "symbol_map" in raw and not isinstance(raw["symbol_map"], Mapping):
        raise ConfigError(f"feed replay: parameter symbol_map: expected a table, got {raw['symbol_map']!r}")
    return parse_params(ReplayParams, raw, "feed replay")


def venue_files_table(raw) -> dict[str, list[str]]:
    """The ``venue_files`` parameter -> ``{venue (lower case): [file names]}``; a single name becomes a list.

    :raises ConfigError: not a table, an empty venue name, or files that are not a list.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"feed replay: parameter venue_files: expected a table {{venue = [files]}}, got {raw!r}")
    out: dict[str, list[str]] = {}
    for venue, names in raw.items():
        v = str(venue).strip().lower()
        if isinstance(names, (str, Path)):
            names = [names]
        if not v or not isinstance(names, (list, tuple)):
            raise ConfigError(f"feed replay: parameter venue_files: expected venue = [files], got {venue!r} = {names!r}")
        out[v] = [str(n) for n in names]
    return out
