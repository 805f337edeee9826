"""Built-in strategy plugins (sniper, grid, funding_arb).

Each sub-package is a plugin shaped exactly like a third-party one: it imports
only from :mod:`perpbot` and registers its :class:`perpbot.BaseStrategy`
subclass with ``@hookimpl def register_strategies(register)``. The plugin
manager loads them from ``perpbot.core.plugins.DEFAULT_PLUGINS``; core never imports
them by name.

What lives here: ``sniper`` (multi-market sniper on 0-100 scores, seed 000), ``grid``
(seed 002's take-profit grid and a range grid), ``funding_arb`` (delta-neutral funding
arbitrage across two venues, seed 001, with its ``funding_replay`` feed). Each package's
``__init__`` lists its modules. Seeds: ``/work/shared/seeds`` (design documents).

What they may import: the public API ``perpbot`` (and ``perpbot.core`` only for what the
public API lacks; today no strategy needs it) and their own package's modules. Never
``perpbot.exchanges``, ``perpbot.plugins`` or another strategy package: a strategy sees
the exchanges only through :class:`perpbot.MarketData` and the orders it returns.
"""
