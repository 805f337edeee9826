"""perpbot's framework core: the domain model, the bot, hooks, and everything a plugin builds on.

What lives here:

- values: :mod:`~perpbot.core.model` (markets, market events, orders, fills, positions,
  balances; Decimal money, ns timestamps), :mod:`~perpbot.core.errors` (the error
  types and their exit codes), :mod:`~perpbot.core.params` (declared, validated
  parameters), :mod:`~perpbot.core.config` (:class:`~perpbot.core.config.BotConfig`)
  and :mod:`~perpbot.core.initconfig` (``runbot init``'s template);
- market state: :mod:`~perpbot.core.book` (L2 order book), :mod:`~perpbot.core.state`
  (per-market state a strategy reads), :mod:`~perpbot.core.signals` (0-100 scores);
- accounts: :mod:`~perpbot.core.portfolio` (fills -> positions and PnL),
  :mod:`~perpbot.core.margin` (dYdX v4 margin, liquidation and funding math),
  :mod:`~perpbot.core.balance` (balance cache), :mod:`~perpbot.core.metrics`
  (trade ledger, drawdown, ratios), :mod:`~perpbot.core.report` (the run summary);
- contracts a plugin implements: :mod:`~perpbot.core.strategy`,
  :mod:`~perpbot.core.exchange`, :mod:`~perpbot.core.feed`,
  :mod:`~perpbot.core.policies` (risk policies and sizers), :mod:`~perpbot.core.hookspecs`;
- running: :mod:`~perpbot.core.bot` (``TradingBot`` and its parts),
  :mod:`~perpbot.core.plugins` (the plugin manager), :mod:`~perpbot.core.clock`,
  :mod:`~perpbot.core.logs`, :mod:`~perpbot.core.testing` (pytest plugin and fakes).

What it may import: the standard library, its third-party dependencies and its own
modules. Nothing in this package imports ``perpbot.exchanges``, ``perpbot.strategies``
or ``perpbot.plugins`` (``tests/test_layering.py`` enforces it): built-in plugins reach
core through hooks, exactly like third-party ones. Plugin authors import from
:mod:`perpbot`, the one public API module, not from here.
"""

__version__ = "0.1.0"
