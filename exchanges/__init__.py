"""Built-in exchange and market-data plugins (dYdX v4, the paper simulator, replay feeds).

Each subpackage is shaped like a third-party plugin: a module with ``@hookimpl``
registration functions, listed in :data:`perpbot.core.plugins.DEFAULT_PLUGINS`.
"""
