"""The grid strategy plugin (seed 002's take-profit grid and a classic range grid).

Run it on the embedded real 5-minute bars (paper exchange)::

    python runbot.py --exchange paper --strategy grid --ticker BTC \\
        --param take_profit_pct=0.2 --param grid_step_pct=0.1 --param max_orders=10 \\
        --param wait_time_s=300 --param order_notional=200

    python runbot.py --exchange paper --strategy grid --ticker ETH \\
        --param mode=range --param lower_price=2200 --param upper_price=2600 \\
        --param levels=9 --param spacing=geometric --param order_notional=200

The end-of-run summary prints the grid cycles completed and the profit per cycle
(gross and net of fees). How it works: :mod:`perpbot.strategies.grid.strategy`.

What it may import: the public API (``perpbot``; ``perpbot.core`` only for what the public
API lacks, today nothing) and its own modules; never ``perpbot.exchanges``,
``perpbot.plugins`` or another strategy. It is shaped like a third-party plugin and
registers through the same hook. What lives here:

- ``params``: :class:`GridParams`, :class:`Mode`, :class:`Direction`;
- ``levels``: range-grid level prices (pure Decimal functions);
- ``records``: the bookkeeping records (open/close orders, levels, statistics) and tags;
- ``take_profit``: mode ``take_profit`` (seed 002), a mixin of the strategy;
- ``range_grid``: mode ``range``, a mixin of the strategy;
- ``strategy``: :class:`GridStrategy`, which holds the state and combines the two modes
  (its module docstring describes both; it re-exports the names above).
"""

from perpbot import hookimpl

from perpbot.strategies.grid.levels import Spacing, grid_levels
from perpbot.strategies.grid.strategy import Direction, GridParams, GridStrategy, Mode

__all__ = ["GridStrategy", "GridParams", "Mode", "Direction", "Spacing", "grid_levels", "register_strategies"]


@hookimpl
def register_strategies(register):
    """Register :class:`GridStrategy` (``--strategy grid``)."""
    register(GridStrategy)
