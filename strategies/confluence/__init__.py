"""The ``confluence`` strategy plugin (issue 15 item 6): trades markets whose analyzers agree.

The analysis hub's analyzers (:mod:`perpbot.plugins.analysis`) read every event of each
market; each decision cycle the strategy's signal generator takes the market's confluence
score (:func:`perpbot.core.analysis.combine`), optionally asks an ML gate (``ml_model``, a
model from ``runbot.py ml train``) and enters the strongest agreeing markets through the
bot's sizer and risk chain; exits on take-profit, stop-loss or the signal turning.

Run it on the embedded sample::

    python runbot.py backtest --strategy confluence --ticker BTC \\
        --data examples/data/bars/merged_ohlcv_df_BTC-ETH_2024-02-01_to_2024-03-08.csv.gz

Details: :mod:`perpbot.strategies.confluence.strategy`; parameters:
:class:`~perpbot.strategies.confluence.params.ConfluenceParams`.
"""

from __future__ import annotations

from perpbot.core.hookspecs import hookimpl
from perpbot.strategies.confluence.params import ConfluenceParams
from perpbot.strategies.confluence.strategy import ConfluenceStrategy, Signal, SignalGenerator

__version__ = "0.1.0"
__all__ = ["ConfluenceParams", "ConfluenceStrategy", "Signal", "SignalGenerator", "register_strategies"]


@hookimpl
def register_strategies(register):
    """Register :class:`ConfluenceStrategy` (``--strategy confluence``)."""
    register(ConfluenceStrategy)
