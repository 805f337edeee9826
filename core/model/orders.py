"""Orders and executions: intents, sized requests, exchange results, order states and fills.

The order path: a strategy returns :class:`OrderParams` (an intent), the bot sizes
and risk-checks it into an :class:`OrderRequest`, the exchange answers with an
:class:`OrderResult`, then reports :class:`OrderUpdate` state changes and
:class:`Fill` executions; :class:`OrderInfo` is an order's current state.

Prices USD per base unit, sizes base units, fees USD. Import these names from
:mod:`perpbot.core.model`.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from perpbot.core.model.enums import PRICED_TYPES, Liquidity, MarginMode, OrderStatus, OrderType, Side, TimeInForce
from perpbot.core.model.values import ZERO, _dec, _opt_dec, _positive


@attrs.frozen
class OrderParams:
    """What a strategy wants to trade (an order intent), before sizing and risk.

    :param size: base units; ``None`` lets the position sizer choose.
    :param price: limit price USD (required for LIMIT and *_LIMIT types).
    :param trigger_price: for conditional (stop / take-profit) orders, USD.
    :param reduce_only: dYdX accepts reduce-only only with IOC (validated by the exchange).
    :param good_til_s: lifetime in seconds for resting orders (long-term / stateful on dYdX);
        ``None`` uses the exchange default.
    :param tag: free text the strategy uses to recognise its orders (e.g. ``"grid-open"``).
    :param reason: why the strategy wants this order (shown and journaled).
    :param venue: exchange name for multi-venue strategies; ``None`` means the primary exchange.
    """

    ticker: str
    side: Side = attrs.field(converter=Side.parse)
    order_type: OrderType = OrderType.MARKET
    size: Decimal | None = attrs.field(default=None, converter=_opt_dec("size"), validator=_positive)
    price: Decimal | None = attrs.field(default=None, converter=_opt_dec("price"), validator=_positive)
    trigger_price: Decimal | None = attrs.field(
        default=None, converter=_opt_dec("trigger_price"), validator=_positive
    )
    time_in_force: TimeInForce = TimeInForce.GTT
    reduce_only: bool = False
    post_only: bool = False
    good_til_s: int | None = None
    margin_mode: MarginMode = MarginMode.CROSS
    tag: str = ""
    reason: str = ""
    venue: str | None = None
    slippage: Decimal | None = attrs.field(default=None, converter=_opt_dec("slippage"))

    def __attrs_post_init__(self):
        if self.order_type in PRICED_TYPES and (
            self.price is None
        ):
            raise ValueError(f"price: required for a {self.order_type.value} order on {self.ticker}")
        if self.order_type.is_conditional and self.trigger_price is None:
            raise ValueError(f"trigger_price: required for a {self.order_type.value} order on {self.ticker}")


@attrs.frozen
class OrderRequest:
    """A sized, risk-approved order ready for an exchange client.

    ``client_id`` is unique per bot instance (dYdX: fixed32, recoverable after a
    restart so an order is never sent twice).
    """

    client_id: int
    ticker: str
    side: Side
    size: Decimal = attrs.field(converter=_dec("size"), validator=_positive)
    order_type: OrderType = OrderType.MARKET
    price: Decimal | None = attrs.field(default=None, converter=_opt_dec("price"))
    trigger_price: Decimal | None = attrs.field(default=None, converter=_opt_dec("trigger_price"))
    time_in_force: TimeInForce = TimeInForce.GTT
    reduce_only: bool = False
    post_only: bool = False
    good_til_s: int | None = None
    margin_mode: MarginMode = MarginMode.CROSS
    tag: str = ""
    reason: str = ""
    venue: str | None = None
    slippage: Decimal | None = attrs.field(default=None, converter=_opt_dec("slippage"))

    @classmethod
    def from_params(cls, params: OrderParams, client_id: int, size: Decimal) -> "OrderRequest":
        """The request for ``params`` with the sizer's ``size`` (base units) and a fresh ``client_id``.

        Every other field is copied from ``params`` unchanged.

        :raises ValueError: when ``size`` is not positive; TypeError for a float size.
        """
        return cls(
            client_id=client_id,
            ticker=params.ticker,
            side=params.side,
            size=size,
            order_type=params.order_type,
            price=params.price,
            trigger_price=params.trigger_price,
            time_in_force=params.time_in_force,
            reduce_only=params.reduce_only,
            post_only=params.post_only,
            good_til_s=params.good_til_s,
            margin_mode=params.margin_mode,
            tag=params.tag,
            reason=params.reason,
            venue=params.venue,
            slippage=params.slippage,
        )


@attrs.frozen
class OrderResult:
    """What an exchange says about a place/cancel request.

    ``success`` False carries ``error`` (the venue's reason, e.g. the chain's raw log).
    ``filled_size``/``avg_price`` are known at once for IOC orders on the simulator;
    live venues report fills later as :class:`Fill` events.
    """

    success: bool
    client_id: int | None = None
    ticker: str = ""
    status: OrderStatus = OrderStatus.PENDING
    filled_size: Decimal = ZERO
    avg_price: Decimal | None = None
    error: str = ""
    exchange_order_id: str = ""


@attrs.frozen
class OrderInfo:
    """An order's current state as the exchange knows it.

    ``size``/``filled_size`` base units, ``price`` USD (None for a market order),
    ``created_ns`` when the venue accepted it; ``venue`` the exchange name.
    """

    client_id: int
    ticker: str
    side: Side
    size: Decimal
    price: Decimal | None
    status: OrderStatus
    order_type: OrderType = OrderType.LIMIT
    filled_size: Decimal = ZERO
    reduce_only: bool = False
    post_only: bool = False
    time_in_force: TimeInForce = TimeInForce.GTT
    tag: str = ""
    created_ns: int = 0
    exchange_order_id: str = ""
    venue: str = ""

    @property
    def remaining(self) -> Decimal:
        """Size still open, base units: ``size - filled_size``."""
        return self.size - self.filled_size


@attrs.frozen
class OrderUpdate:
    """An order's state changed (acknowledged, partially filled, canceled, expired...).

    ``filled_size`` is the cumulative filled size, base units; ``reason`` the venue's
    explanation (e.g. why it was canceled or rejected); ``ts_ns`` when it changed.
    """

    client_id: int
    ticker: str
    status: OrderStatus
    ts_ns: int
    filled_size: Decimal = ZERO
    reason: str = ""
    venue: str = ""
    tag: str = ""


@attrs.frozen
class Fill:
    """One execution of one of our orders.

    ``price`` USD, ``size`` base units (positive; the direction is ``side``), ``ts_ns``
    of the execution, ``fill_id`` unique per venue (used to drop duplicates).

    :param fee: USD paid (negative is a rebate).
    :param liquidity: MAKER or TAKER.
    :param liquidation: True when the fill came from a liquidation.
    """

    client_id: int
    ticker: str
    side: Side
    price: Decimal = attrs.field(converter=_dec("price"), validator=_positive)
    size: Decimal = attrs.field(converter=_dec("size"), validator=_positive)
    fee: Decimal = attrs.field(converter=_dec("fee"))
    liquidity: Liquidity
    ts_ns: int
    fill_id: str = ""
    venue: str = ""
    tag: str = ""
    liquidation: bool = False
