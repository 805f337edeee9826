"""Venue symbols to dYdX tickers.

``BTCUSDT`` (Binance USD-M), ``BTCUSD_PERP`` (Binance COIN-M), ``BTC/USDT`` and
``binance:BTC/USDT`` (ccxt-style bar columns), ``BTC-USD`` and plain ``BTC`` all
map to the dYdX ticker ``BTC-USD``. A ``symbol_map`` (venue symbol -> dYdX
ticker, case-insensitive keys) overrides the rule, e.g. ``{"1000PEPEUSDT": "PEPE-USD"}``.
"""

from __future__ import annotations

import re
from typing import Mapping

from perpbot.core.errors import ConfigError

# Longest first, so "USDT" wins over "USD".
_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD")
_TICKER_RE = re.compile(r"^[A-Z0-9]+-USD$")


def split_venue(ticker: str) -> tuple[str | None, str]:
    """``"binance:BTC-USD"`` -> ``("binance", "BTC-USD")``; ``"BTC-USD"`` -> ``(None, "BTC-USD")``."""
    if ":" in ticker:
        venue, t = ticker.split(":", 1)
        return venue, t
    return None, ticker


def normalize_ticker(value: str) -> str:
    """``"btc"``/``"BTC"``/``"btc-usd"`` -> ``"BTC-USD"`` (what a user types for ``--ticker``).

    A venue-qualified ticker keeps its venue, lower-cased: ``"Binance:btc"`` -> ``"binance:BTC-USD"``.
    """
    text = str(value).strip()
    if ":" in text:
        venue, rest = text.split(":", 1)
        venue = venue.strip().lower()
        if not venue or not venue.replace("_", "").isalnum():
            raise ConfigError(f"ticker: bad venue in {value!r}")
        return f"{venue}:{normalize_ticker(rest)}"
    v = text.upper()
    if not v:
        raise ConfigError("ticker: empty ticker")
    if "-" not in v:
        v = f"{v}-USD"
    if not _TICKER_RE.match(v):
        raise ConfigError(f"ticker: expected a dYdX ticker like BTC-USD, got {value!r}")
    return v


class SymbolMapper:
    """Maps venue symbols to dYdX tickers, with overrides; results are cached.

    :param overrides: venue symbol -> dYdX ticker.
    """

    def __init__(self, overrides: Mapping[str, str] | None = None):
        self.overrides: dict[str, str] = {}
        for k, v in (overrides or {}).items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ConfigError(f"symbol_map: expected text -> text, got {k!r}: {v!r}")
            self.overrides[k.strip().upper()] = normalize_ticker(v)
        self._cache: dict[str, str] = {}

    def __call__(self, symbol: str) -> str:
        hit = self._cache.get(symbol)
        if hit is None:
            hit = self._cache[symbol] = self._map(symbol)
        return hit

    def _map(self, symbol: str) -> str:
        s = symbol.strip().upper()
        if s in self.overrides:
            return self.overrides[s]
        if ":" in s:  # ccxt-style "binance:BTC/USDT" column prefix
            s = s.split(":", 1)[1]
            if s in self.overrides:
                return self.overrides[s]
        if "/" in s:  # "BTC/USDT", "BTC/USDT:USDT"
            base = s.split("/", 1)[0]
        elif s.endswith("-USD") or "-" in s:
            base = s.split("-", 1)[0]
        else:
            if s.endswith("_PERP"):
                s = s[: -len("_PERP")]
            base = s
            for q in _QUOTES:
                if s.endswith(q) and len(s) > len(q):
                    base = s[: -len(q)]
                    break
        if not base or not base.isalnum():
            raise ConfigError(f"symbol_map: cannot map venue symbol {symbol!r} to a dYdX ticker; add it to symbol_map")
        return f"{base}-USD"
