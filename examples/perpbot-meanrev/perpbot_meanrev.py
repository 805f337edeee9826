"""Example third-party strategy for perpbot: mean reversion on bar closes.

It shows everything a plugin package needs: one module, typed parameters,
the two decision methods, state for restarts, and the entry point in
``pyproject.toml`` (``[project.entry-points.perpbot] meanrev = "perpbot_meanrev"``).

Rule: when the last close is more than ``band`` (fraction) below its
``lookback``-bar simple moving average, buy; more than ``band`` above, sell
(if ``allow_short``). Exit when the price is back at the average, or at
``stop_loss`` (fraction of entry). Sizes come from the bot's position sizer.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from perpbot import (
    BaseStrategy,
    OrderParams,
    OrderType,
    Side,
    StrategyResult,
    TimeInForce,
    hookimpl,
    in_range,
    param,
)

__version__ = "0.1.0"


@attrs.frozen
class MeanRevParams:
    lookback: int = param(20, "bars in the moving average", validator=in_range(2, 10_000))
    band: Decimal = param(Decimal("0.002"), "entry distance from the average (fraction)", validator=in_range(Decimal(0), Decimal(1)))
    stop_loss: Decimal = param(Decimal("0.01"), "exit when the loss reaches this fraction of entry", validator=in_range(Decimal(0), Decimal(1)))
    allow_short: bool = param(True, "also fade upward moves")


class MeanReversion(BaseStrategy):
    """Fade moves away from the moving average of bar closes."""

    name = "meanrev"
    description = "example third-party strategy: mean reversion on bar closes"
    Params = MeanRevParams

    def __init__(self, params, context):
        super().__init__(params, context)
        self.entries: dict[str, Decimal] = {}
        self.trades = 0

    async def should_execute(self, market_data) -> bool:
        return bool(market_data.tradable)

    def _average(self, state) -> Decimal | None:
        bars = list(state.bars.bars)[-self.params.lookback :]
        if len(bars) < self.params.lookback:
            return None
        return sum((b.close for b in bars), Decimal(0)) / len(bars)

    async def execute_strategy(self, market_data) -> StrategyResult:
        orders = []
        for ticker in market_data.tradable:
            state = market_data.markets[ticker]
            mark = market_data.marks.get(ticker)
            avg = self._average(state)
            if mark is None or avg is None:
                continue
            size = market_data.position_size(ticker)
            if size:
                entry = self.entries.get(ticker, mark)
                loss = (entry - mark) / entry if size > 0 else (mark - entry) / entry
                back = (size > 0 and mark >= avg) or (size < 0 and mark <= avg)
                if back or loss >= self.params.stop_loss:
                    why = "back at the average" if back else f"stop loss {loss:.4f}"
                    orders.append(
                        OrderParams(ticker, Side.SELL if size > 0 else Side.BUY, OrderType.MARKET, size=abs(size),
                                    reduce_only=True, time_in_force=TimeInForce.IOC, reason=why)
                    )
                continue
            gap = (mark - avg) / avg
            if gap <= -self.params.band:
                orders.append(OrderParams(ticker, Side.BUY, reason=f"{gap:.4%} below the {self.params.lookback}-bar average"))
            elif gap >= self.params.band and self.params.allow_short:
                orders.append(OrderParams(ticker, Side.SELL, reason=f"{gap:.4%} above the {self.params.lookback}-bar average"))
        return StrategyResult.place(*orders) if orders else StrategyResult.nothing()

    def on_fill(self, fill) -> None:
        self.trades += 1
        self.entries[fill.ticker] = fill.price

    def get_state(self):
        return {"entries": {t: str(p) for t, p in self.entries.items()}, "trades": self.trades}

    def restore_state(self, state) -> None:
        self.entries = {t: Decimal(p) for t, p in state.get("entries", {}).items()}
        self.trades = int(state.get("trades", 0))

    def summary_lines(self) -> list[str]:
        return [f"meanrev: {self.trades} fills"]


@hookimpl
def register_strategies(register):
    register(MeanReversion)
