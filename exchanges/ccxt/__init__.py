"""The ccxt exchange plugin (``--exchange NAME=ccxt:ID``): any ccxt venue with perpetual swaps.

``--exchange dydx,binance=ccxt:binanceusdm`` adds Binance USD-M as venue ``binance``
(tickers ``binance:BTC-USD``); ``hyperliquid=ccxt:hyperliquid``, ``bybit=ccxt:bybit`` and
``okx=ccxt:okx`` likewise. Built on ccxt's async client and its ``ccxt.pro`` WebSocket
client (ccxt pinned in pyproject's ``venues`` extra).

Modules, one concern each: :mod:`~perpbot.exchanges.ccxt.venues` (venue ids, published fees
and funding intervals), :mod:`~perpbot.exchanges.ccxt.credentials` (keys from the environment
or an owner-only file), :mod:`~perpbot.exchanges.ccxt.client` (building clients, loopback URLs),
:mod:`~perpbot.exchanges.ccxt.markets` (ccxt markets -> ``Market``),
:mod:`~perpbot.exchanges.ccxt.feed` (WebSocket market data), :mod:`~perpbot.exchanges.ccxt.convert`
(orders, fills, errors), :mod:`~perpbot.exchanges.ccxt.account` (private streams,
reconciliation, funding payments), :mod:`~perpbot.exchanges.ccxt.exchange` (the client).

May import :mod:`perpbot.core`, ccxt, its own modules, and :mod:`perpbot.exchanges.paper`
(the simulator behind ``paper = true``).
"""

from __future__ import annotations

import attrs

from perpbot.core.hookspecs import hookimpl
from perpbot.core.params import param
from perpbot.exchanges.ccxt.exchange import CcxtExchange
from perpbot.exchanges.ccxt.venues import PROFILES, VenueProfile, resolve_venue, tested_venues

__all__ = ["CcxtExchange", "CcxtParams", "PROFILES", "VenueProfile", "resolve_venue", "tested_venues"]


@attrs.frozen
class CcxtParams:
    """Command-line flags of the ccxt plugin (they set ``[exchange.ccxt]``, shared by every ccxt
    venue of the run; per-venue values go in ``[exchange.<venue>]``)."""

    key_file: str = param("", "owner-only file (mode 600) with PERPBOT_<VENUE>_API_KEY=... lines", flag="--key-file")
    url: str = param("", "send every REST and WebSocket request of the ccxt venue to this base URL (a loopback fake)",
                     flag="--ccxt-url")
    testnet: bool = param(False, "use ccxt's sandbox (testnet) mode", flag="--ccxt-testnet")
    paper: bool = param(False, "paper-trade the ccxt venue on its live public data (venue fees, funding interval, margins)",
                        flag="--ccxt-paper")


CcxtExchange.Params = CcxtParams


@hookimpl
def register_exchanges(register):
    """Register :class:`CcxtExchange` as exchange plugin ``ccxt`` (the ``register_exchanges`` hook)."""
    register(CcxtExchange)
