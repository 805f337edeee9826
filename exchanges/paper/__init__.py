"""The paper exchange plugin (``--exchange paper``): a dYdX v4 simulator on real market data.

Registered through the same hook a third-party exchange plugin uses::

    @hookimpl
    def register_exchanges(register):
        register(PaperExchange)

Configure it in ``[exchange.paper]`` (keys and defaults: :mod:`perpbot.exchanges.paper.config`);
what it simulates and how (order rules, L2/queue/bar fill models, fee tiers, hourly
funding, liquidation, isolated margin): :mod:`perpbot.exchanges.paper.exchange`, which
lists the modules of this package (one concern each: rules, orders, lifecycle, matching,
subaccounts, ledger, liquidation, funding, persistence, fees, config).

May import: :mod:`perpbot.core` (the exchange contract, model, margin math, portfolio) and
its own modules; never another exchange, a plugin or a strategy. It reads the bot's market
state only through the read-only :class:`perpbot.core.exchange.MarketView`.
"""

from __future__ import annotations

from perpbot.core.hookspecs import hookimpl
from perpbot.exchanges.paper.config import DYDX_STANDARD_TIERS, FeeTier, PaperConfig
from perpbot.exchanges.paper.exchange import LIQUIDATION_CLIENT_ID, PaperExchange

__all__ = ["PaperExchange", "PaperConfig", "FeeTier", "DYDX_STANDARD_TIERS", "LIQUIDATION_CLIENT_ID"]


@hookimpl
def register_exchanges(register):
    """Register :class:`PaperExchange` as ``--exchange paper`` (the ``register_exchanges`` hook)."""
    register(PaperExchange)
