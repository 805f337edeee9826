"""Loopback fakes of ccxt venues that speak each venue's real REST and WebSocket protocol.

* :class:`FakeBinanceUsdm` (binance_usdm.py, state in binance_engine.py): Binance USD-M
  futures ``/fapi`` REST, market streams and the listenKey user-data stream, signed requests
  checked.

Point a ccxt client at one with the ccxt plugin's ``url`` option (every REST and WebSocket
URL of the venue rewritten to the fake's 127.0.0.1 port).
"""

from tests.fakes.ccxt.binance_usdm import API_KEY, API_SECRET, FakeBinanceUsdm

__all__ = ["FakeBinanceUsdm", "API_KEY", "API_SECRET"]
