"""Built-in exchange and market-data plugins (dYdX v4, the paper simulator, replay feeds).

What lives here: ``dydx`` (the live dYdX v4 client: indexer REST/WebSocket feed, account
stream, order placement through the node), ``paper`` (the simulated exchange: dYdX order
rules, matching against the market data's book, isolated subaccounts, liquidation, funding,
persistence) and ``replay`` (recorded-data feeds: dYdX indexer captures, Binance depth and
trades, OHLCV bars, historical funding). Each subpackage is shaped like a third-party
plugin: a module with ``@hookimpl`` registration functions, listed in
:data:`perpbot.core.plugins.DEFAULT_PLUGINS`.

What they may import: :mod:`perpbot` (the public API, e.g. ``hookimpl``), ``perpbot.core``
(the model, errors, margin math and the exchange/feed contracts), their own subpackage and,
where one reuses another's parsing, a sibling (``replay`` reads dYdX captures with
``perpbot.exchanges.dydx``'s parser). Never ``perpbot.strategies`` or ``perpbot.plugins``:
a strategy or plugin sees an exchange only through the core contracts.
"""
