"""Real dYdX v4 market parameters for replays (``dydx_markets.json``, see its ``_source``)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from perpbot.core.errors import ConfigError, DataError
from perpbot.core.model import Market

MARKETS_FILE = Path(__file__).resolve().with_name("dydx_markets.json")


@lru_cache(maxsize=8)
def _load(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: market metadata file not found") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    markets = doc.get("markets") if isinstance(doc, dict) else None
    if not isinstance(markets, dict) or not markets:
        raise DataError(f"{path}: expected an object with a 'markets' map (indexer /v4/perpetualMarkets shape)")
    return markets


def known_tickers(path: str | Path = MARKETS_FILE) -> list[str]:
    """Tickers the metadata file describes."""
    return sorted(_load(str(path)))


def load_markets(tickers, path: str | Path = MARKETS_FILE) -> dict[str, Market]:
    """:class:`Market` per ticker, built with ``Market.from_indexer`` from the metadata file.

    :raises ConfigError: ``unknown ticker 'XYZ-USD' (known: ...)``.
    """
    payloads = _load(str(path))
    out = {}
    for t in tickers:
        payload = payloads.get(t)
        if payload is None:
            raise ConfigError(f"unknown ticker {t!r} (known: {', '.join(sorted(payloads))})")
        try:
            out[t] = Market.from_indexer(payload)
        except (ValueError, TypeError) as exc:
            raise DataError(f"{path}: market {t}: {exc}") from None
    return out
