"""The multi-market sniper strategy plugin (seed 000, issue 2 item 7, issue 5 item 3).

Every decision cycle it scores each tradable market with a weighted,
direction-aware composite of the 0-100 signal scores (momentum, volume,
volatility, order book, funding; see :mod:`perpbot.core.signals`), exits positions on
take-profit, stop-loss or score decay, and enters the best markets above the
entry threshold (top-N, per-market cool-down, no stacking of correlated
same-direction positions). It logs a ranked score table each cycle so a trader
sees why it acted. Details and formulas: :mod:`perpbot.strategies.sniper.strategy`.

Run it::

    python runbot.py --exchange paper --strategy sniper --ticker BTC,ETH \\
        --param entry_threshold=65 --param max_positions=2

This package is shaped like a third-party plugin: it imports only from
``perpbot`` and registers through the same hook.
"""

from perpbot import hookimpl

from perpbot.strategies.sniper.strategy import Sniper, SniperParams

__all__ = ["Sniper", "SniperParams", "register_strategies"]


@hookimpl
def register_strategies(register):
    register(Sniper)
