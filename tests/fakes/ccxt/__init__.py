"""Loopback fakes of ccxt venues that speak each venue's real REST and WebSocket protocol.

* :class:`FakeBinanceUsdm` (binance_usdm.py, state in binance_engine.py): Binance USD-M
  futures ``/fapi`` REST, market streams and the listenKey user-data stream, signed requests
  checked.
* :class:`FakeHyperliquid` (hyperliquid.py): Hyperliquid ``POST /info``, ``POST /exchange``
  (nonce and signature shape checked) and the ``/ws`` subscriptions.

Point a ccxt client at one with the ccxt plugin's ``url`` option (every REST and WebSocket
URL of the venue rewritten to the fake's 127.0.0.1 port).
"""

from tests.fakes.ccxt.binance_usdm import API_KEY, API_SECRET, FakeBinanceUsdm
from tests.fakes.ccxt.hyperliquid import TEST_ADDRESS, TEST_PRIVATE_KEY, FakeHyperliquid

__all__ = ["FakeBinanceUsdm", "FakeHyperliquid", "API_KEY", "API_SECRET", "TEST_ADDRESS", "TEST_PRIVATE_KEY"]
