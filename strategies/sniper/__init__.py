"""The multi-market sniper strategy plugin (seed 000, issue 2 item 7, issue 5 item 3).

Every decision cycle it scores each tradable market with a weighted,
direction-aware composite of the 0-100 signal scores (momentum, volume,
volatility, order book, funding; see :mod:`perpbot.core.signals`), exits positions on
take-profit, stop-loss or score decay, and enters the best markets above the
entry threshold (top-N, per-market cool-down, no stacking of correlated
same-direction positions). It logs a ranked score table each cycle so a trader
sees why it acted. Details and formulas: :mod:`perpbot.strategies.sniper.strategy`.

**A template, not a strategy that makes money.** Its defaults lose on real data (-1.95 % on
the five-week 5-minute BTC/ETH sample, ``examples/configs/sniper-bars.toml``), and walk-forward
(``runbot.py sweep --walk-forward``, issue 14 item 6) found no parameter set that beats costs
out of sample: -151.99 USD over 3 test weeks on that sample (entry 65-80, exit 45/55, stop
1-2 %) and -1,505.07 USD over 10 test months of hourly BTC bars (2023-08..2024-08), every
window a loss (README "Out-of-sample figures of the built-in strategies"). Use it as the
skeleton of a scoring strategy of your own: the scoring, ranking, exits and state are the
reusable part; the weights and thresholds are not an edge.

Run it::

    python runbot.py --exchange paper --strategy sniper --ticker BTC,ETH \\
        --param entry_threshold=65 --param max_positions=2

What lives here (one concern per module):

- ``params``: :class:`SniperParams` (names, defaults, units, command-line flags) and the order tags;
- ``scoring``: the direction-aware composite (:class:`~perpbot.strategies.sniper.scoring.Scorer`);
- ``table``: the ranked score table (rows and their text);
- ``entries``: the entry logic (threshold, warm-up, top-N, cool-down, correlation guard);
- ``exits``: the exit policy (take-profit, stop-loss, score decay after the minimum hold);
- ``correlation``: Pearson correlation of bar log returns (the stacking guard);
- ``state``: everything remembered between cycles (fills, round trips, orders in flight)
  and its JSON form for checkpoints;
- ``strategy``: :class:`Sniper`, which wires them into one decision cycle (and re-exports
  the names that lived there before the split).

What it may import: the public API (``perpbot``; ``perpbot.core`` only for what the public
API lacks, today nothing) and its own modules; never ``perpbot.exchanges``,
``perpbot.plugins`` or another strategy. It is shaped like a third-party plugin and
registers through the same hook.
"""

from perpbot import hookimpl

from perpbot.strategies.sniper.strategy import Sniper, SniperParams

__all__ = ["Sniper", "SniperParams", "register_strategies"]


@hookimpl
def register_strategies(register):
    """Plugin hook: register :class:`Sniper` as strategy ``sniper``."""
    register(Sniper)
