"""The simulator's own order records (mutable, private to the paper exchange).

A :class:`SimOrder` moves through stages:

- ``pending``: sent, not yet at the book (``latency_ms``);
- ``untriggered``: a conditional order waiting for its trigger price;
- ``resting``: a limit order on the book (maker), with its queue position;
- ``bar_taker``: on bar-only data, a taker order waiting for the next bar;
- ``done``: terminal (filled, canceled, expired or rejected).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

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
        return self.size - self.filled

    @property
    def avg_price(self) -> Decimal | None:
        return self.notional / self.filled if self.filled else None

    @property
    def is_market(self) -> bool:
        """Acts as a market order (IOC at a worst price) once live/triggered."""
        return self.order_type in _MARKET_TYPES

    @property
    def is_ioc(self) -> bool:
        return self.is_market or self.time_in_force is TimeInForce.IOC

    @property
    def is_conditional(self) -> bool:
        return self.order_type.is_conditional

    @property
    def is_stop(self) -> bool:
        return self.order_type in _STOP_TYPES

    @property
    def live(self) -> bool:
        return self.stage != DONE

    def trigger_hit(self, price: Decimal) -> bool:
        """dYdX trigger rule (chain ``x/clob/types/order.go`` ``CanTrigger``): stop-loss buys
        trigger when the oracle price >= trigger, sells when <= trigger; take-profit the reverse."""
        tp = self.trigger_price
        if self.is_stop:
            return price >= tp if self.side is Side.BUY else price <= tp
        return price <= tp if self.side is Side.BUY else price >= tp

    def info(self, venue: str = "") -> OrderInfo:
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
