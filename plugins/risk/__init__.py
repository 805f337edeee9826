"""Built-in risk policies: the links of the bot's risk chain, one module per policy.

Configure the chain with ``[risk] policies = [...]`` (default, from perpbot.core.config:
kill_switch, stale_data, circuit_breaker, max_leverage, liquidation_distance,
seed_thresholds) and each policy's thresholds with ``[risk.<name>]``.

Every policy returns a :class:`~perpbot.core.policies.RiskDecision` with an action, a
reason with the numbers, and ``policy=<name>``:

- ``check_order`` (before each order): NONE (approve), REDUCE (``size`` = the
  largest size that fits, floored to the step), REJECT, or HALT;
- ``check_account`` (every decision cycle): NONE, CLOSE_WORST, CLOSE_ALL or HALT.

The bot, not the policy, executes escalations (``core/bot/orders.py``
``OrderRouter.handle_risk``): CLOSE_WORST closes one position with a reduce-only
IOC market order; CLOSE_ALL cancels every open order on every venue, then closes
every position with reduce-only IOC market orders; HALT cancels every open order,
keeps positions and stops the bot. Those closing orders bypass the chain
(``risk_exempt``); in any case exposure policies here always approve orders that
shrink exposure (reduce-only, or opposite to the position and no larger than it).

What lives here:

- :mod:`~perpbot.plugins.risk.helpers`: formatting, ticker/venue mapping (orders carry
  the venue's own ticker, the view qualified ones, "binance:BTC-USD"), per-venue balance
  and total equity, post-trade position, REDUCE-or-REJECT, :class:`PolicyBase`;
- one module per policy: :mod:`.kill_switch`, :mod:`.stale_data`, :mod:`.circuit_breaker`,
  :mod:`.max_leverage`, :mod:`.max_notional`, :mod:`.liquidation_distance`,
  :mod:`.seed_thresholds`, :mod:`.daily_loss`;
- here: the ``register_risk_policies`` hook implementation and the re-exports, so
  ``from perpbot.plugins.risk import MaxLeverage`` keeps working.

Imports: :mod:`perpbot.core`, the ``perpbot`` package root (``hookimpl``) and ``attrs``;
never another plugin, exchange or strategy.
"""

from __future__ import annotations

from typing import Callable

from perpbot import hookimpl
from perpbot.plugins.risk.circuit_breaker import CircuitBreaker, CircuitBreakerParams
from perpbot.plugins.risk.daily_loss import DailyLoss, DailyLossParams
from perpbot.plugins.risk.helpers import (
    HUNDRED,
    NS,
    ONE,
    PolicyBase,
    PostTrade,
    max_quantity_for,
    post_trade,
    qualified_ticker,
    shrinks_exposure,
    total_equity,
    venue_balance,
    venue_positions,
)
from perpbot.plugins.risk.kill_switch import (
    KillSwitch,
    KillSwitchParams,
    clear_kill,
    install_kill_signal,
    kill_requested,
    request_kill,
)
from perpbot.plugins.risk.liquidation_distance import (
    LiquidationDistance,
    LiquidationDistanceParams,
    liquidation_price,
    position_maintenance_margin,
)
from perpbot.plugins.risk.max_leverage import MaxLeverage, MaxLeverageParams
from perpbot.plugins.risk.max_notional import MaxNotional, MaxNotionalParams
from perpbot.plugins.risk.seed_thresholds import SeedThresholds, SeedThresholdsParams, is_margin_error, worst_positions
from perpbot.plugins.risk.stale_data import StaleData, StaleDataParams

__all__ = [
    "HUNDRED",
    "NS",
    "ONE",
    "POLICIES",
    "CircuitBreaker",
    "CircuitBreakerParams",
    "DailyLoss",
    "DailyLossParams",
    "KillSwitch",
    "KillSwitchParams",
    "LiquidationDistance",
    "LiquidationDistanceParams",
    "MaxLeverage",
    "MaxLeverageParams",
    "MaxNotional",
    "MaxNotionalParams",
    "PolicyBase",
    "PostTrade",
    "SeedThresholds",
    "SeedThresholdsParams",
    "StaleData",
    "StaleDataParams",
    "clear_kill",
    "install_kill_signal",
    "is_margin_error",
    "kill_requested",
    "liquidation_price",
    "max_quantity_for",
    "position_maintenance_margin",
    "post_trade",
    "qualified_ticker",
    "register_risk_policies",
    "request_kill",
    "shrinks_exposure",
    "total_equity",
    "venue_balance",
    "venue_positions",
    "worst_positions",
]

#: every built-in policy class, in registration order
POLICIES = (SeedThresholds, MaxLeverage, MaxNotional, LiquidationDistance, StaleData, CircuitBreaker, DailyLoss, KillSwitch)


@hookimpl
def register_risk_policies(register: Callable[[type], type]) -> None:
    """Hook implementation: register each class of :data:`POLICIES` under its ``name``."""
    for cls in POLICIES:
        register(cls)
