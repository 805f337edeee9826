"""The funding-rate arbitrage strategy plugin, and its two-venue replay feed.

Delta-neutral across two venues, over every coin listed on both: long the perpetual whose
funding is cheaper, short the one whose funding is richer, equal notional. Each coin's
expected net carry over the holding horizon (the per-hour funding spread, each venue's rate
divided by its own interval, minus maker/taker fees on both legs in and out, minus the
slippage of the intended size walked through the live books, plus the basis between the
legs) ranks the coins; the best ``max_pairs`` with a positive net carry are entered within
the risk limits. Both legs or neither: a failed or partly filled second leg is completed
or the first unwound within a stated bound. Exit when the spread reverses or decays
(hysteresis), or after a maximum holding time; rebalance when the legs drift apart. PnL is
split per leg and per coin into funding, fees and price. Formulas:
:mod:`perpbot.strategies.funding_arb.strategy`.

Legs: ``BTC-USD`` (primary venue) and ``binance:BTC-USD`` (the qualified-ticker
convention; the bot routes each order to its venue). A single coin replays on the embedded
real sample (dYdX v3 hourly vs Binance 8-hourly funding, Binance prices, 2023 Q4) with the
``funding_replay`` feed (:mod:`perpbot.strategies.funding_arb.feed`) and two paper venues::

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

Many coins (Hyperliquid 1 h vs Binance 8 h, 7 coins, 2023-05 to 2026-03) replay with the
``funding_multi`` feed of :mod:`perpbot.exchanges.replay.funding_multi`:
``examples/configs/funding-arb-multi.toml``. The end-of-run summary prints funding, fees
and price PnL per leg, per coin and in total.

What lives here (one concern per module):

- ``params``: :class:`FundingArbParams`, the execution mode and the order tags;
- ``carry``: expected per-hour funding per leg (rate EMAs), fees, book slippage, basis and
  the expected net carry;
- ``pair``: one coin's legs (:class:`~perpbot.strategies.funding_arb.pair.Pair`: its decision
  step and state) and the discovery of the coins listed on both venues;
- ``legs``: leg management (entering both legs, exit, rebalance, completing a half-filled
  pair at market) and the pair's state;
- ``legging``: both legs or neither after an entry (complete or unwind);
- ``pnl``: the PnL split per leg and per coin (funding, fees, price PnL) and the totals;
- ``strategy``: :class:`FundingArb` (the pairs, the ranking, merging the pairs' orders,
  persistence; it re-exports the names that lived there before the split);
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
