"""A minimal deterministic exchange and plugin objects for bot unit tests.

``InstantExchange`` fills market orders at the bot's best bid/ask (taker fee
5 bp), rests limit orders without filling, and records every call.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from perpbot.core.exchange import BaseExchangeClient, ExchangeCapabilities
from perpbot.core.hookspecs import hookimpl
from perpbot.core.model import (
    Balance,
    Fill,
    Liquidity,
    OrderInfo,
    OrderResult,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
)
from perpbot.core.policies import PositionSizer, SizingResult
from perpbot.core.portfolio import Portfolio
from perpbot.core.strategy import BaseStrategy, StrategyResult
from perpbot.core.testing import ListFeed

D = Decimal


class InstantExchange(BaseExchangeClient):
    name = "instant"
    description = "test exchange: market orders fill at the BBO"

    def __init__(self, config, context):
        super().__init__(config, context)
        self.portfolio = Portfolio(D(str(config.get("collateral", "10000"))), context.markets)
        self.placed = []
        self.canceled = []
        self.resting = {}
        self.connected = False
        self.reject_next = int(config.get("reject_next", 0))

    def capabilities(self):
        return ExchangeCapabilities(consumes_market_data=True, simulated=True)

    async def connect(self):
        self.connected = True

    async def disconnect(self):
        self.connected = False

    async def place_order(self, order):
        self.placed.append(order)
        now = self.context.clock.now_ns()
        if self.reject_next:
            self.reject_next -= 1
            self.emit(OrderUpdate(order.client_id, order.ticker, OrderStatus.REJECTED, now, reason="test rejection"))
            return OrderResult(False, order.client_id, order.ticker, OrderStatus.REJECTED, error="test rejection")
        if order.order_type is OrderType.MARKET:
            book = self.context.book_of(order.ticker)
            px = book.best_ask_price() if order.side is Side.BUY else book.best_bid_price()
            fee = (order.size * px * D("0.0005")).quantize(D("0.000001"))
            fill = Fill(order.client_id, order.ticker, order.side, px, order.size, fee, Liquidity.TAKER, now, tag=order.tag)
            self.portfolio.apply_fill(fill)
            self.emit(fill)
            self.emit(OrderUpdate(order.client_id, order.ticker, OrderStatus.FILLED, now, filled_size=order.size))
            return OrderResult(True, order.client_id, order.ticker, OrderStatus.FILLED, order.size, px)
        self.resting[order.client_id] = order
        return OrderResult(True, order.client_id, order.ticker, OrderStatus.OPEN)

    async def cancel_order(self, client_id, ticker):
        self.canceled.append(client_id)
        order = self.resting.pop(client_id, None)
        if order is None:
            return OrderResult(False, client_id, ticker, error="unknown order")
        self.emit(OrderUpdate(client_id, ticker, OrderStatus.CANCELED, self.context.clock.now_ns()))
        return OrderResult(True, client_id, ticker, OrderStatus.CANCELED)

    async def get_open_orders(self, ticker=None):
        return [
            OrderInfo(o.client_id, o.ticker, o.side, o.size, o.price, OrderStatus.OPEN, o.order_type, tag=o.tag)
            for o in self.resting.values()
            if ticker in (None, o.ticker)
        ]

    async def get_positions(self):
        return self.portfolio.open_positions()

    async def get_balance(self):
        self.balance_calls = getattr(self, "balance_calls", 0) + 1
        return self.portfolio.balance({}, 0)

    def best_bid_offer(self, ticker):
        book = self.context.book_of(ticker)
        return book.best_bid_price(), book.best_ask_price()


@attrs.frozen
class ScriptParams:
    pass


class ScriptedStrategy(BaseStrategy):
    """Returns the results in ``SCRIPT`` one per decision, then nothing; records calls."""

    name = "scripted"
    SCRIPT: list = []
    seen: list = []
    fills: list = []

    async def should_execute(self, market_data):
        type(self).seen.append(market_data)
        return True

    async def execute_strategy(self, market_data):
        script = type(self).SCRIPT
        if not script:
            return StrategyResult.nothing()
        item = script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def on_fill(self, fill):
        type(self).fills.append(fill)


@attrs.frozen
class NotionalParams:
    notional: Decimal = Decimal("1000")


class NotionalSizer(PositionSizer):
    """size = notional / price, floored to the step."""

    name = "test_notional"
    Params = NotionalParams

    def size(self, intent, view):
        q = view.market.round_size(self.params.notional / view.price)
        return SizingResult(q, q * view.price, q * view.price * view.market.initial_margin_fraction, "test notional")


class TestPlugin:
    """Registers the list feed, the instant exchange and the scripted strategy."""

    __name__ = "test-plugin"

    @hookimpl
    def register_feeds(self, register):
        register(ListFeed)

    @hookimpl
    def register_exchanges(self, register):
        register(InstantExchange)

    @hookimpl
    def register_strategies(self, register):
        register(ScriptedStrategy)

    @hookimpl
    def register_position_sizers(self, register):
        register(NotionalSizer)
