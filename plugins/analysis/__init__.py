"""Built-in analysis modules of the analysis hub (seed 003's Analysis Engine), as a plugin.

Registers six :class:`~perpbot.core.analysis.Analyzer` classes through the
``register_analyzers`` hook:

========== =========================================================================
name        reads
========== =========================================================================
technical   closed bars: EMA trend in ATRs, RSI momentum, ATR volatility
volume      closed bars: relative volume, up-volume share, volume profile POC
orderflow   trades (or bars, estimated): volume delta, imbalance, large trades
orderbook   L2 book or top of book: depth imbalance, pressure, spread, microprice
structure   closed bars: swing highs/lows, support/resistance, breakouts
sentiment   funding, open interest, oracle basis, long/short ratio
========== =========================================================================

Each is O(1) per event and works on bar-only data (the order book gives no reading there).
"""

from __future__ import annotations

from perpbot.core.hookspecs import hookimpl
from perpbot.plugins.analysis.orderbook import OrderbookAnalyzer
from perpbot.plugins.analysis.orderflow import OrderflowAnalyzer
from perpbot.plugins.analysis.sentiment import SentimentAnalyzer
from perpbot.plugins.analysis.structure import StructureAnalyzer
from perpbot.plugins.analysis.technical import TechnicalAnalyzer
from perpbot.plugins.analysis.volume import VolumeAnalyzer

__version__ = "0.1.0"

#: the built-in analyzer classes, in the order the hub runs them
BUILTIN = (TechnicalAnalyzer, VolumeAnalyzer, OrderflowAnalyzer, OrderbookAnalyzer, StructureAnalyzer,
           SentimentAnalyzer)

__all__ = ["BUILTIN", "OrderbookAnalyzer", "OrderflowAnalyzer", "SentimentAnalyzer", "StructureAnalyzer",
           "TechnicalAnalyzer", "VolumeAnalyzer"]


@hookimpl
def register_analyzers(register):
    """Hook implementation: register the six built-in analyzers (``register(cls)`` each)."""
    for cls in BUILTIN:
        register(cls)
