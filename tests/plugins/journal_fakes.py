"""Deterministic exchanges and a stateful strategy for the journal/reconciliation tests.

- :class:`SimExchange` (``jsim``): a simulator (``simulated=True``) with
  ``export_state()/import_state()``: market orders fill at the bot's best
  bid/ask (taker 5 bp), limit orders rest and fill at their price when a trade
  prints through it (maker 1 bp). ``raise_on_place`` makes ``place_order`` fail
  after checking, from a separate SQLite connection, that the intent is
  committed (``intent_seen`` records what it saw).
- :class:`VenueExchange` (``jvenue``): a "live" venue (``simulated=False``)
  whose account lives in :data:`ACCOUNTS` under ``config["account"]``, so a
  second bot instance (a restart) finds the orders, fills and positions the
  first one left, plus whatever a test did to the account in between.
- :class:`PingPong` (``pingpong``): rests a buy below the bid; when it fills,
  rests a sell ``tp`` ticks above the fill; counts cycles; persists its state
  (which order is which) through ``get_state()/restore_state()``.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import attrs

from perpbot.core.errors import ExchangeError
from perpbot.core.exchange import BaseExchangeClient, ExchangeCapabilities
from perpbot.core.hookspecs import hookimpl
from perpbot.core.model import (
    Fill,
    Liquidity,
    OrderInfo,
    OrderParams,
    OrderResult,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    Trade,
)
from perpbot.core.params import param
from perpbot.core.policies import PositionSizer, SizingResult
from perpbot.core.portfolio import Portfolio
from perpbot.core.strategy import BaseStrategy, StrategyResult
from perpbot.core.testing import ListFeed, book_events

D = Decimal
T0 = 1_723_161_255 * 10**9
S = 10**9

ACCOUNTS: dict[str, dict] = {}


def _fee(size, price, rate):
    return (size * price * D(rate)).quantize(D("0.000001"))


class _Matching(BaseExchangeClient):
    """Shared matching logic over ``self.acct`` = {portfolio, resting, fills, seq}."""

    def _new_account(self):
        return {
            "portfolio": Portfolio(D(str(self.config.get("collateral", "10000"))), self.context.markets),
            "resting": {},
            "fills": [],
            "seq": 0,
        }

    async def connect(self):
        pass

    async def disconnect(self):
        pass

    def _fill(self, order, price, liquidity, filled_before=D(0)):
        acct = self.acct
        now = self.context.clock.now_ns()
        acct["seq"] += 1
        rate = "0.0005" if liquidity is Liquidity.TAKER else "0.0001"
        size = order.size - filled_before
        fill = Fill(
            order.client_id, order.ticker, order.side, price, size, _fee(size, price, rate), liquidity, now,
            fill_id=f"{self.name}-{acct['seq']}", tag=order.tag,
        )
        acct["portfolio"].apply_fill(fill)
        acct["fills"].append(fill)
        self.emit(fill)
        self.emit(OrderUpdate(order.client_id, order.ticker, OrderStatus.FILLED, now, filled_size=order.size, tag=order.tag))
        return fill

    async def place_order(self, order):
        if order.order_type is OrderType.MARKET:
            book = self.context.book_of(order.ticker)
            px = book.best_ask_price() if order.side is Side.BUY else book.best_bid_price()
            if px is None:
                return OrderResult(False, order.client_id, order.ticker, OrderStatus.REJECTED, error="empty book")
            self._fill(order, px, Liquidity.TAKER)
            return OrderResult(True, order.client_id, order.ticker, OrderStatus.FILLED, order.size, px)
        self.acct["resting"][order.client_id] = order
        return OrderResult(True, order.client_id, order.ticker, OrderStatus.OPEN)

    async def cancel_order(self, client_id, ticker):
        order = self.acct["resting"].pop(client_id, None)
        if order is None:
            return OrderResult(False, client_id, ticker, error="unknown order")
        self.emit(OrderUpdate(client_id, ticker, OrderStatus.CANCELED, self.context.clock.now_ns(), tag=order.tag))
        return OrderResult(True, client_id, ticker, OrderStatus.CANCELED)

    def on_market_event(self, event):
        if type(event) is not Trade:
            return
        for cid, order in list(self.acct["resting"].items()):
            if order.ticker != event.ticker:
                continue
            if (order.side is Side.BUY and event.price < order.price) or (
                order.side is Side.SELL and event.price > order.price
            ):
                del self.acct["resting"][cid]
                self._fill(order, order.price, Liquidity.MAKER)

    async def get_open_orders(self, ticker=None):
        return [
            OrderInfo(o.client_id, o.ticker, o.side, o.size, o.price, OrderStatus.OPEN, o.order_type, tag=o.tag, venue=self.name)
            for o in self.acct["resting"].values()
            if ticker in (None, o.ticker)
        ]

    async def get_positions(self):
        return dict(self.acct["portfolio"].open_positions())

    async def get_balance(self):
        return self.acct["portfolio"].balance({}, 0)

    def best_bid_offer(self, ticker):
        book = self.context.book_of(ticker)
        return book.best_bid_price(), book.best_ask_price()


class SimExchange(_Matching):
    name = "jsim"
    description = "journal tests: a simulator with export/import state"

    def __init__(self, config, context):
        super().__init__(config, context)
        self.acct = self._new_account()
        self.raise_on_place = bool(config.get("raise_on_place", False))
        self.journal_path = config.get("journal_path")
        self.intent_seen: list = []
        self.imported = False

    def capabilities(self):
        return ExchangeCapabilities(consumes_market_data=True, simulated=True)

    async def place_order(self, order):
        if self.journal_path:
            # what another process would see at the moment the order is sent: committed rows only
            con = sqlite3.connect(f"file:{self.journal_path}?mode=ro", uri=True)
            try:
                row = con.execute(
                    "SELECT client_id, size, side FROM order_intents WHERE client_id=?", (order.client_id,)
                ).fetchone()
            finally:
                con.close()
            self.intent_seen.append((order.client_id, row))
        if self.raise_on_place:
            raise ExchangeError("venue unreachable (test)")
        return await super().place_order(order)

    def export_state(self):
        pf = self.acct["portfolio"]
        return {
            "portfolio": {k: v for k, v in vars(pf).items() if k != "markets"},
            "resting": dict(self.acct["resting"]),
            "seq": self.acct["seq"],
        }

    def import_state(self, state):
        from perpbot.plugins.journal.state import restore_portfolio

        restore_portfolio(self.acct["portfolio"], state["portfolio"])
        self.acct["resting"] = dict(state["resting"])
        self.acct["seq"] = state["seq"]
        self.imported = True


class VenueExchange(_Matching):
    name = "jvenue"
    description = "journal tests: a persistent 'live' venue"

    def __init__(self, config, context):
        super().__init__(config, context)
        key = config.get("account", "default")
        if key not in ACCOUNTS:
            ACCOUNTS[key] = self._new_account()
        self.acct = ACCOUNTS[key]

    def capabilities(self):
        return ExchangeCapabilities(consumes_market_data=True, simulated=False)

    async def get_fills_since(self, ts_ns):
        return [f for f in self.acct["fills"] if f.ts_ns >= ts_ns]

    # -- what happens while the bot is down (test helpers) --------------------

    def fill_resting(self, client_id, price=None, ts_ns=None):
        order = self.acct["resting"].pop(client_id)
        acct = self.acct
        acct["seq"] += 1
        px = price or order.price
        fill = Fill(
            order.client_id, order.ticker, order.side, px, order.size, _fee(order.size, px, "0.0001"),
            Liquidity.MAKER, ts_ns or T0, fill_id=f"{self.name}-{acct['seq']}", tag=order.tag,
        )
        acct["portfolio"].apply_fill(fill)
        acct["fills"].append(fill)
        return fill


@attrs.frozen
class PingPongParams:
    offset: Decimal = param(D("2"), "buy this many USD below the best bid")
    tp: Decimal = param(D("3"), "sell this many USD above the buy fill")
    size: Decimal = param(D("0.01"), "order size, BTC")


class PingPong(BaseStrategy):
    """A tiny take-profit grid with persisted state (see the module docstring)."""

    name = "pingpong"
    Params = PingPongParams
    restored: list = []

    def __init__(self, params, context):
        super().__init__(params, context)
        self.pending_close: list = []  # fill prices waiting for their close order
        self.cycles = 0
        self.tp_sum = D(0)

    async def should_execute(self, md):
        return bool(md.tradable)

    async def execute_strategy(self, md):
        orders = []
        t = md.tradable[0]
        for px in self.pending_close:
            orders.append(OrderParams(t, Side.SELL, OrderType.LIMIT, size=self.params.size, price=px + self.params.tp, tag="close"))
        self.pending_close = []
        resting = {o.tag for o in md.open_orders.values()}
        if not orders and not resting and not md.position_size(t):
            bid, _ask = md.markets[t].best_bid_offer()
            if bid is not None:
                orders.append(OrderParams(t, Side.BUY, OrderType.LIMIT, size=self.params.size, price=bid - self.params.offset, tag="open"))
        return StrategyResult.place(*orders, reason="pingpong") if orders else StrategyResult.nothing()

    def on_fill(self, fill):
        if fill.tag == "open":
            self.pending_close.append(fill.price)
        elif fill.tag == "close":
            self.cycles += 1
            self.tp_sum += self.params.tp * fill.size

    def get_state(self):
        return {"pending_close": list(self.pending_close), "cycles": self.cycles, "tp_sum": self.tp_sum}

    def restore_state(self, state):
        type(self).restored.append(state)
        self.pending_close = list(state["pending_close"])
        self.cycles = state["cycles"]
        self.tp_sum = state["tp_sum"]


class FixedSizer(PositionSizer):
    """Always one step (tests set sizes themselves)."""

    name = "jfixed"

    def size(self, intent, view):
        q = view.market.step_size
        return SizingResult(q, q * view.price, q * view.price * view.market.initial_margin_fraction, "one step")


class JournalTestPlugin:
    """Registers the list feed (unless another plugin does), the two exchanges and PingPong."""

    __name__ = "journal-test-plugin"

    def __init__(self, with_feed: bool = True):
        self.with_feed = with_feed

    @hookimpl
    def register_feeds(self, register):
        if self.with_feed:
            register(ListFeed)

    @hookimpl
    def register_exchanges(self, register):
        register(SimExchange)
        register(VenueExchange)

    @hookimpl
    def register_strategies(self, register):
        register(PingPong)

    @hookimpl
    def register_position_sizers(self, register):
        register(FixedSizer)


def oscillating_events(n: int = 120, ticker: str = "BTC-USD", mid: Decimal = D("60000"), amplitude: int = 8, period: int = 20):
    """A book snapshot, then one trade per second oscillating around ``mid`` (triangle wave, USD)."""
    out = list(book_events(ticker, T0, mid))
    for i in range(1, n):
        phase = i % period
        up = phase if phase <= period // 2 else period - phase
        px = mid - amplitude + D(2 * amplitude * up) / (period // 2)
        out.append(Trade(ticker, T0 + i * S, px, D("0.05"), Side.BUY if i % 2 else Side.SELL, str(i)))
    return out
