"""The simulator's own order records (mutable, private to the paper exchange).

A :class:`SimOrder` moves through stages:

- ``pending``: sent, not yet at the book (``latency_ms``);
- ``untriggered``: a conditional order waiting for its trigger price;
- ``resting``: a limit order on the book (maker), with its queue position;
- ``bar_taker``: on bar-only data, a taker order waiting for the next bar;
- ``done``: terminal (filled, canceled, expired or rejected).

:class:`OrderTable` holds the live orders by client id and, per market, by stage, plus the
queue of requests still travelling to the book (``latency_ms``). It is a plain container:
the coordinator (:class:`~perpbot.exchanges.paper.exchange.PaperExchange`) moves orders
between stages and emits their updates; the matcher, the subaccounts and persistence read it.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any, Iterable

from perpbot.core.model import (
    ZERO,
    MarginMode,
    OrderInfo,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)

PENDING = "pending"
UNTRIGGERED = "untriggered"
RESTING = "resting"
BAR_TAKER = "bar_taker"
DONE = "done"

_MARKET_TYPES = (OrderType.MARKET, OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET)
_STOP_TYPES = (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)


class SimOrder:
    """One order inside the simulator (sizes base units, prices USD)."""

    __slots__ = (
        "client_id",
        "ticker",
        "side",
        "size",
        "orig_size",
        "order_type",
        "price",
        "trigger_price",
        "time_in_force",
        "reduce_only",
        "post_only",
        "margin_mode",
        "tag",
        "good_til_s",
        "status",
        "stage",
        "filled",
        "notional",
        "created_ns",
        "arrive_ns",
        "rest_ns",
        "expire_ns",
        "queue_ahead",
        "sub",
        "worst",
        "triggered",
        "transferred",
        "slippage",
        "reason",
    )

    def __init__(self, req: OrderRequest, created_ns: int, arrive_ns: int, default_mode: MarginMode):
        self.client_id = req.client_id
        self.ticker = req.ticker
        self.side = req.side
        self.size = req.size
        self.orig_size = req.size
        self.order_type = req.order_type
        self.price = req.price
        self.trigger_price = req.trigger_price
        self.post_only = bool(req.post_only or req.time_in_force is TimeInForce.POST_ONLY)
        self.time_in_force = TimeInForce.POST_ONLY if self.post_only else req.time_in_force
        self.reduce_only = req.reduce_only
        mode = req.margin_mode
        if mode is MarginMode.CROSS and default_mode is MarginMode.ISOLATED:
            mode = MarginMode.ISOLATED
        self.margin_mode = mode
        self.tag = req.tag
        self.good_til_s = req.good_til_s
        self.status = OrderStatus.PENDING
        self.stage = PENDING
        self.filled = ZERO
        self.notional = ZERO
        self.created_ns = created_ns
        self.arrive_ns = arrive_ns
        self.rest_ns = 0
        self.expire_ns = 0
        self.queue_ahead = ZERO
        self.sub = 0
        self.worst: Decimal | None = None
        self.triggered = False
        self.transferred = ZERO
        self.slippage: Decimal | None = req.slippage
        self.reason = ""

    # -- derived --------------------------------------------------------------

    @property
    def remaining(self) -> Decimal:
        """Size still to fill, base units (``size - filled``)."""
        return self.size - self.filled

    @property
    def avg_price(self) -> Decimal | None:
        """Average fill price, USD (None before the first fill)."""
        return self.notional / self.filled if self.filled else None

    @property
    def is_market(self) -> bool:
        """Acts as a market order (IOC at a worst price) once live/triggered."""
        return self.order_type in _MARKET_TYPES

    @property
    def is_ioc(self) -> bool:
        """Immediate-or-cancel: a market order or ``time_in_force=IOC`` (what cannot fill at once is canceled)."""
        return self.is_market or self.time_in_force is TimeInForce.IOC

    @property
    def is_conditional(self) -> bool:
        """A stop or take-profit order (waits for its trigger price)."""
        return self.order_type.is_conditional

    @property
    def is_stop(self) -> bool:
        """A stop order (STOP_MARKET or STOP_LIMIT); a take-profit otherwise, when conditional."""
        return self.order_type in _STOP_TYPES

    @property
    def live(self) -> bool:
        """Not yet terminal (any stage but ``done``)."""
        return self.stage != DONE

    def trigger_hit(self, price: Decimal) -> bool:
        """dYdX trigger rule (chain ``x/clob/types/order.go`` ``CanTrigger``): stop-loss buys
        trigger when the oracle price >= trigger, sells when <= trigger; take-profit the reverse."""
        tp = self.trigger_price
        if self.is_stop:
            return price >= tp if self.side is Side.BUY else price <= tp
        return price <= tp if self.side is Side.BUY else price >= tp

    def info(self, venue: str = "") -> OrderInfo:
        """The order as the exchange contract reports it (:class:`~perpbot.core.model.OrderInfo`;
        ``exchange_order_id`` is ``paper-<client id>``)."""
        return OrderInfo(
            client_id=self.client_id,
            ticker=self.ticker,
            side=self.side,
            size=self.size,
            price=self.price,
            status=self.status,
            order_type=self.order_type,
            filled_size=self.filled,
            reduce_only=self.reduce_only,
            post_only=self.post_only,
            time_in_force=self.time_in_force,
            tag=self.tag,
            created_ns=self.created_ns,
            exchange_order_id=f"paper-{self.client_id}",
            venue=venue,
        )

    # -- persistence ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Every slot, JSON-serialisable (Decimals and enums as strings); see :meth:`from_dict`."""
        out: dict[str, Any] = {}
        for k in self.__slots__:
            v = getattr(self, k)
            if isinstance(v, Decimal):
                v = str(v)
            elif isinstance(v, (Side, OrderType, TimeInForce, MarginMode, OrderStatus)):
                v = v.value
            out[k] = v
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SimOrder":
        """Rebuild an order from :meth:`to_dict` output.

        :raises ValueError: / KeyError: for an unknown enum value or a malformed number.
        """
        o = cls.__new__(cls)
        enums = {
            "side": Side,
            "order_type": OrderType,
            "time_in_force": TimeInForce,
            "margin_mode": MarginMode,
            "status": OrderStatus,
        }
        decimals = {
            "size", "orig_size", "price", "trigger_price", "filled", "notional", "queue_ahead", "worst",
            "transferred", "slippage",
        }
        optional = ("price", "trigger_price", "worst", "slippage")
        for k in cls.__slots__:
            v = d.get(k)
            if k in enums:
                v = enums[k](v)
            elif k in decimals:
                v = Decimal(v) if v is not None else (None if k in optional else ZERO)
            setattr(o, k, v)
        return o


class OrderTable:
    """The simulator's live orders: by client id, and per market by stage.

    Attributes (read by the matcher, the subaccounts and persistence; changed by the
    coordinator and the matcher):

    - ``by_id``: client id -> :class:`SimOrder`, every order not yet terminal;
    - ``resting`` / ``conditionals`` / ``bar_takers``: ticker -> orders in stage ``resting``,
      ``untriggered`` and ``bar_taker``, in arrival order (lists are dropped when empty);
    - ``pending``: requests still travelling to the book, ``(arrive_ns, "place", SimOrder)``
      or ``(arrive_ns, "cancel", client_id)``, in arrival order;
    - ``next_expiry_ns``: the earliest good-til time of a resting or untriggered order, ns
      (0 when none; kept by :meth:`recompute_expiry`).
    """

    __slots__ = ("by_id", "resting", "conditionals", "bar_takers", "pending", "next_expiry_ns")

    def __init__(self) -> None:
        self.by_id: dict[int, SimOrder] = {}
        self.resting: dict[str, list[SimOrder]] = {}
        self.conditionals: dict[str, list[SimOrder]] = {}
        self.bar_takers: dict[str, list[SimOrder]] = {}
        self.pending: deque = deque()
        self.next_expiry_ns = 0

    def add(self, index: dict[str, list[SimOrder]], o: SimOrder) -> None:
        """Append ``o`` to ``index`` (one of :attr:`resting`, :attr:`conditionals`, :attr:`bar_takers`)."""
        index.setdefault(o.ticker, []).append(o)

    def unindex(self, o: SimOrder) -> None:
        """Remove ``o`` from the per-market stage indexes (not from :attr:`by_id`)."""
        for index in (self.resting, self.conditionals, self.bar_takers):
            lst = index.get(o.ticker)
            if lst and o in lst:
                lst.remove(o)
                if not lst:
                    del index[o.ticker]

    def has_work(self, ticker: str) -> bool:
        """True when ``ticker`` has resting, untriggered or bar-taker orders."""
        return bool(self.resting.get(ticker) or self.conditionals.get(ticker) or self.bar_takers.get(ticker))

    def has_live_orders(self, number: int, ticker: str, exclude: SimOrder) -> bool:
        """True when subaccount ``number`` has an order on ``ticker`` at the book (resting or
        waiting for a bar), other than ``exclude``."""
        for x in self.by_id.values():
            if x is not exclude and x.sub == number and x.ticker == ticker and x.stage in (RESTING, BAR_TAKER):
                return True
        return False

    def holds_subaccount(self, number: int) -> bool:
        """True when an order that reached the book (any stage but pending and done) trades in
        subaccount ``number`` (its collateral must stay there)."""
        for o in self.by_id.values():
            if o.sub == number and o.stage != DONE and o.stage != PENDING:
                return True
        return False

    def recompute_expiry(self) -> int:
        """Recompute and return :attr:`next_expiry_ns`."""
        e = 0
        for o in self.by_id.values():
            if o.expire_ns and o.stage in (RESTING, UNTRIGGERED) and (not e or o.expire_ns < e):
                e = o.expire_ns
        self.next_expiry_ns = e
        return e

    def load(self, orders: Iterable[SimOrder]) -> None:
        """Replace the whole table with ``orders`` (indexed by their stage); :attr:`pending` is
        emptied and :attr:`next_expiry_ns` reset (the caller refills and recomputes them)."""
        self.by_id = {}
        self.resting, self.conditionals, self.bar_takers = {}, {}, {}
        for o in orders:
            self.by_id[o.client_id] = o
            if o.stage == RESTING:
                self.add(self.resting, o)
            elif o.stage == UNTRIGGERED:
                self.add(self.conditionals, o)
            elif o.stage == BAR_TAKER:
                self.add(self.bar_takers, o)
        self.pending = deque()
        self.next_expiry_ns = 0
