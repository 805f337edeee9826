"""The funding-rate arbitrage strategy plugin, and its two-venue replay feed.

Delta-neutral across two venues: long the perpetual whose funding is cheaper, short the
one whose funding is richer, equal notional; enter when the expected funding edge over
the holding horizon beats fees, slippage (both legs, in and out) and a safety margin;
exit when the spread closes or flips or after a maximum holding time; rebalance when the
legs drift apart. Formulas: :mod:`perpbot.strategies.funding_arb.strategy`.

The legs are ``BTC-USD`` (primary venue) and ``binance:BTC-USD`` (the qualified-ticker
convention; the bot routes each order to its venue). Replay it on the embedded real
sample (dYdX v3 hourly vs Binance 8-hourly funding, Binance spot/perp prices, 2023 Q4)
with the ``funding_replay`` feed (:mod:`perpbot.strategies.funding_arb.feed`), two paper venues::

    # perpbot.toml
    [bot]
    exchange = ["paper", "binance"]
    strategy = "funding_arb"
    tickers = ["BTC-USD", "binance:BTC-USD"]
    feed = "funding_replay"
    decision_interval_s = 3600

    [venues]
    binance = "paper"          # the second venue is another paper exchange

    [strategy.funding_arb]
    notional_usd = "5000"
    horizon_h = "168"

The end-of-run summary prints funding collected per leg, fees per leg, price PnL and the net.

What lives here (one concern per module):

- ``params``: :class:`FundingArbParams`, the execution mode and the order tags;
- ``carry``: expected per-hour funding per leg (rate EMAs), costs per fill and the entry edge;
- ``legs``: leg management (entering both legs, exit, rebalance, completing a half-filled
  pair at market) and the pair's state;
- ``pnl``: the PnL split per leg (funding, fees, price PnL) and the totals;
- ``strategy``: :class:`FundingArb` (leg resolution, the decision cycle, persistence; it
  re-exports the names that lived there before the split);
- ``feed``: the ``funding_replay`` feed (:class:`FundingReplayFeed`).

What it may import: the public API (``perpbot``; ``perpbot.core`` only for what the public
API lacks, today nothing) and its own modules; never ``perpbot.exchanges``,
``perpbot.plugins`` or another strategy. It is shaped like a third-party plugin and
registers through the same hooks.
"""

from perpbot import hookimpl

from perpbot.strategies.funding_arb.feed import FundingReplayFeed, FundingReplayParams
from perpbot.strategies.funding_arb.strategy import FundingArb, FundingArbParams

__all__ = ["FundingArb", "FundingArbParams", "FundingReplayFeed", "FundingReplayParams", "register_strategies", "register_feeds"]


@hookimpl
def register_strategies(register):
    """Plugin hook: register :class:`FundingArb` as strategy ``funding_arb``."""
    register(FundingArb)


@hookimpl
def register_feeds(register):
    """Plugin hook: register :class:`FundingReplayFeed` as feed ``funding_replay``."""
    register(FundingReplayFeed)
