"""Example third-party perpbot plugin: a breakout strategy with a trailing stop, and a risk policy.

Written from perpbot's public docs only; everything comes from ``perpbot``. The entry point in
``pyproject.toml`` (``[project.entry-points.perpbot] breakout = "perpbot_breakout"``) makes
``runbot.py --strategy breakout --risk +max_positions`` find both.
"""

from decimal import Decimal

import attrs

from perpbot import (APPROVE, BaseStrategy, OrderParams, RiskAction, RiskDecision, RiskPolicy, Side, StrategyResult,
                     TimeInForce, hookimpl, in_range, param)


@attrs.frozen
class BreakoutParams:
    window_s: int = param(60, "channel: high and low of trades over this many seconds", validator=in_range(1, 86_400))
    trail: Decimal = param(Decimal("0.001"), "exit when price gives back this fraction from its best", validator=in_range(Decimal(0), Decimal(1)))


class Breakout(BaseStrategy):
    """Buy above the window's high, sell below its low; a trailing stop closes the position."""

    name, Params = "breakout", BreakoutParams

    def __init__(self, params, context):
        super().__init__(params, context)
        self.channel: dict = {}  # ticker -> (high, low) of the window before this cycle
        self.best: dict = {}  # ticker -> best price since entry

    async def should_execute(self, market_data) -> bool:
        return bool(market_data.tradable)

    async def execute_strategy(self, market_data) -> StrategyResult:
        orders = []
        for t in market_data.tradable:
            state, size = market_data.markets[t], market_data.position_size(t)
            last, prev = state.last_trade(), self.channel.get(t)
            self.channel[t] = state.high_low(self.params.window_s, market_data.ts_ns)
            if last is None:
                continue
            px = last.price
            if size:  # trailing stop: track the best price since entry, exit on a give-back of `trail`
                best = self.best[t] = max(self.best.get(t, px), px) if size > 0 else min(self.best.get(t, px), px)
                if abs(px - best) >= best * self.params.trail:
                    orders.append(OrderParams(t, Side.SELL if size > 0 else Side.BUY, size=abs(size), reduce_only=True, time_in_force=TimeInForce.IOC, reason=f"trailing stop {best} -> {px}"))
                    self.best.pop(t)
            elif prev and (px > prev[0] or px < prev[1]):
                orders.append(OrderParams(t, Side.BUY if px > prev[0] else Side.SELL, reason=f"{px} broke the {self.params.window_s}s channel {prev[1]}-{prev[0]}"))
        return StrategyResult.place(*orders) if orders else StrategyResult.nothing()


@attrs.frozen
class MaxPositionsParams:
    limit: int = param(1, "open positions allowed at once", validator=in_range(1, 1000))


class MaxPositions(RiskPolicy):
    """Reject an order that would open a position beyond ``limit`` open positions."""

    name, Params = "max_positions", MaxPositionsParams

    def check_order(self, order, view) -> RiskDecision:
        open_ = [t for t, p in view.positions.items() if p.size]
        if order.reduce_only or order.ticker in open_ or len(open_) < self.params.limit:
            return APPROVE
        return RiskDecision(RiskAction.REJECT, f"{len(open_)} positions open, limit {self.params.limit}")


@hookimpl
def register_strategies(register):
    register(Breakout)


@hookimpl
def register_risk_policies(register):
    register(MaxPositions)
