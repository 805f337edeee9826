"""Built-in strategy plugins (sniper, grid, funding_arb).

Each sub-package is a plugin shaped exactly like a third-party one: it imports
only from :mod:`perpbot` and registers its :class:`perpbot.BaseStrategy`
subclass with ``@hookimpl def register_strategies(register)``. The plugin
manager loads them from ``perpbot.core.plugins.DEFAULT_PLUGINS``; core never imports
them by name.
"""
