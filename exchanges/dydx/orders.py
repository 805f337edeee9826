"""Order requests -> dYdX ``Order`` protos, with exact Decimal conversions and the chain's rules.

Conversions use :mod:`perpbot.core.margin` (integers, no floats) on the market's own
parameters (chain ``protocol/x/clob/types/quantums.go``):

- ``quantums = size * 10^-atomicResolution``, floored to a multiple of
  ``stepBaseQuantums``; a size that floors below one step is :class:`InvalidOrder`
  (never silently raised to the minimum, which the 1.1.5 client's
  ``Market.calculate_quantums`` does, in floats: 0.0003 BTC -> 2,000,000 quantums);
- ``subticks = price * 10^(atomicResolution - quantumConversionExponent + 6)`` on a
  multiple of ``subticksPerTick``: BUY prices round DOWN and SELL prices round UP (never
  more aggressive than asked; the client always rounds down); trigger prices round
  the same way, so a protective stop never triggers later than asked.

Order kinds (chain ``x/clob/types/message_place_order.go ValidateBasic``):

- MARKET -> short-term IOC limit at a worst price: ``best ask * (1 + slippage)`` for a
  buy, ``best bid * (1 - slippage)`` for a sell (the oracle price when the book side is
  empty), capped by the request's price if it has one;
- LIMIT with IOC, or with ``good_til_s <= short_term_max_s`` -> short-term,
  ``good_til_block = height + short_term_blocks`` (<= height + 20);
- other LIMIT orders -> long-term (stateful), ``good_til_block_time = now + good_til_s``
  (default ``default_good_til_s``, at most 95 days); long-term orders cannot be IOC;
- STOP_* / TAKE_PROFIT_* -> conditional (stateful) with ``condition_type`` set
  EXPLICITLY (STOP_LOSS / TAKE_PROFIT; the client's helper returns UNSPECIFIED for
  stops, which the chain rejects) and ``conditional_order_trigger_subticks`` > 0;
  ``*_MARKET`` execute IOC at ``trigger * (1 -/+ slippage)``;
- reduce-only only with IOC (the chain disables reduce-only for other orders);
  post-only and IOC are exclusive; FOK does not exist (deprecated by the chain).

``client_metadata`` is 0 (the proto is built here, so the client's override to 2
does not apply).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import attrs

from perpbot.core import margin
from perpbot.core.errors import InvalidOrder
from perpbot.core.model import Market, OrderRequest, OrderType, Side, TimeInForce

SHORT_TERM = 0
CONDITIONAL = 32
LONG_TERM = 64
MAX_CLIENT_ID = 2**32 - 1
MAX_STATEFUL_S = 95 * 86400


def size_to_quantums(market: Market, size: Decimal) -> int:
    """Base quantums for ``size`` (base units), floored to the step.

    :raises InvalidOrder: when the floored size is below one step (the minimum).
    """
    q = margin.size_to_quantums(size, market.atomic_resolution, ROUND_FLOOR, market.step_base_quantums)
    if q < market.step_base_quantums:
        raise InvalidOrder(
            f"size {size} {market.base} is below the minimum order size {market.min_order_size} of {market.ticker} "
            f"(step {market.step_size}; sizes are rounded down, never up)"
        )
    return q


def price_to_subticks(market: Market, price: Decimal, side: Side) -> int:
    """Subticks for a limit/trigger ``price`` (USD): buys floor, sells ceil to the tick.

    :raises InvalidOrder: for a non-positive price or one that rounds to 0 subticks.
    """
    if price <= 0:
        raise InvalidOrder(f"price {price} of {market.ticker} must be positive")
    rounding = ROUND_FLOOR if side is Side.BUY else ROUND_CEILING
    s = margin.price_to_subticks(price, market.atomic_resolution, market.quantum_conversion_exponent,
                                 rounding, market.subticks_per_tick)
    if s <= 0:
        raise InvalidOrder(f"price {price} of {market.ticker} is below one tick ({market.tick_size})")
    return s


def plain(d: Decimal) -> Decimal:
    """The same value without trailing zeros and without an exponent (``0.0010000`` -> ``0.001``)."""
    n = d.normalize()
    return n.quantize(Decimal(1)) if n.as_tuple().exponent > 0 else n


def subticks_to_price(market: Market, subticks: int) -> Decimal:
    """USD price of ``subticks`` (exact, no trailing zeros)."""
    return plain(margin.subticks_to_price(subticks, market.atomic_resolution, market.quantum_conversion_exponent))


def quantums_to_size(market: Market, quantums: int) -> Decimal:
    """Base units of ``quantums`` (exact, no trailing zeros)."""
    return plain(margin.quantums_to_size(quantums, market.atomic_resolution))


@attrs.frozen
class OrderPlan:
    """Everything decided about one order before it is signed.

    :param flags: 0 short-term, 64 long-term, 32 conditional.
    :param size: / ``price`` / ``trigger_price``: the rounded values (base units, USD).
    """

    ticker: str
    side: Side
    flags: int
    quantums: int
    subticks: int
    size: Decimal
    price: Decimal
    time_in_force: TimeInForce
    reduce_only: bool
    good_til_block: int = 0
    good_til_block_time: int = 0
    condition: str = ""  # "", "STOP_LOSS", "TAKE_PROFIT"
    trigger_subticks: int = 0
    trigger_price: Decimal | None = None

    @property
    def stateful(self) -> bool:
        """True for long-term and conditional orders (order flags 64 / 32; short-term is 0)."""
        return self.flags != SHORT_TERM


def _is_ioc(req: OrderRequest) -> bool:
    return req.order_type in (OrderType.MARKET, OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET) or (
        req.time_in_force is TimeInForce.IOC
    )


def worst_price(market: Market, side: Side, best: Decimal | None, oracle: Decimal | None,
                slippage: Decimal, cap: Decimal | None = None) -> Decimal:
    """The worst acceptable price of a marketable order (USD), before tick rounding.

    ``best`` is the best price on the side the order takes from (ask for a buy, bid for a
    sell); without it the oracle price is the reference.

    :raises InvalidOrder: when neither reference exists.
    """
    ref = best if best is not None and best > 0 else oracle
    if ref is None or ref <= 0:
        raise InvalidOrder(f"no price reference for a {side.value} market order on {market.ticker} "
                           f"(empty book side and no oracle price)")
    px = ref * (1 + slippage) if side is Side.BUY else ref * (1 - slippage)
    if cap is not None:
        px = min(px, cap) if side is Side.BUY else max(px, cap)
    return px


def plan_order(req: OrderRequest, market: Market, *, height: int | None, now_s: int,
               short_term_blocks: int, short_term_max_s: float, default_good_til_s: int,
               slippage: Decimal, best: Decimal | None = None, oracle: Decimal | None = None) -> OrderPlan:
    """Validate ``req`` against dYdX's rules and turn it into an :class:`OrderPlan`.

    :param height: current block height (required for short-term orders).
    :param now_s: current unix time, seconds (for good-til-block-time).
    :param best: best price on the side a marketable order takes from, USD.
    :param oracle: the market's oracle price, USD.
    :raises InvalidOrder: with the reason, before anything is sent.
    """
    t = req.ticker
    ot = req.order_type
    ioc = _is_ioc(req)
    post_only = req.post_only or req.time_in_force is TimeInForce.POST_ONLY
    if req.reduce_only and not ioc:
        raise InvalidOrder(
            f"reduce-only {ot.value} order on {t} must be IOC: dYdX accepts reduce-only only on "
            f"immediate-or-cancel orders (use a MARKET order or time_in_force=IOC)"
        )
    if post_only and ioc:
        raise InvalidOrder(f"{ot.value} order on {t} cannot be both post-only and immediate-or-cancel")
    if req.size is None or req.size <= 0:
        raise InvalidOrder(f"size {req.size} of {t} must be positive")
    quantums = size_to_quantums(market, req.size)
    size = quantums_to_size(market, quantums)
    slip = req.slippage if req.slippage is not None else slippage
    if slip <= 0 or slip >= 1:
        raise InvalidOrder(f"slippage {slip} of {t} must be in (0, 1)")
    side = req.side
    lifetime = req.good_til_s if req.good_til_s is not None else default_good_til_s
    if lifetime <= 0:
        raise InvalidOrder(f"good_til_s {req.good_til_s} of {t} must be positive")
    lifetime = min(int(lifetime), MAX_STATEFUL_S)

    if ot.is_conditional:
        if req.trigger_price is None:
            raise InvalidOrder(f"{ot.value} order on {t} needs a trigger price")
        condition = "STOP_LOSS" if ot in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT) else "TAKE_PROFIT"
        trig = price_to_subticks(market, req.trigger_price, side)
        if ot in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET):
            limit = worst_price(market, side, req.trigger_price, None, slip, req.price)
            tif = TimeInForce.IOC
        else:
            limit = req.price
            tif = TimeInForce.POST_ONLY if post_only else (TimeInForce.IOC if ioc else TimeInForce.GTT)
        subticks = price_to_subticks(market, limit, side)
        return OrderPlan(t, side, CONDITIONAL, quantums, subticks, size, subticks_to_price(market, subticks), tif,
                         req.reduce_only, good_til_block_time=now_s + lifetime, condition=condition,
                         trigger_subticks=trig, trigger_price=subticks_to_price(market, trig))

    if ot is OrderType.MARKET:
        limit = worst_price(market, side, best, oracle, slip, req.price)
        tif = TimeInForce.IOC
    else:
        if req.price is None:
            raise InvalidOrder(f"LIMIT order on {t} needs a price")
        limit = req.price
        tif = TimeInForce.POST_ONLY if post_only else (TimeInForce.IOC if ioc else TimeInForce.GTT)
    subticks = price_to_subticks(market, limit, side)
    price = subticks_to_price(market, subticks)
    short = ioc or (req.good_til_s is not None and req.good_til_s <= short_term_max_s)
    if short:
        if height is None or height <= 0:
            raise InvalidOrder(f"no block height known for a short-term order on {t}")
        return OrderPlan(t, side, SHORT_TERM, quantums, subticks, size, price, tif, req.reduce_only,
                         good_til_block=height + short_term_blocks)
    return OrderPlan(t, side, LONG_TERM, quantums, subticks, size, price, tif, req.reduce_only,
                     good_til_block_time=now_s + lifetime)


def build_order_proto(plan: OrderPlan, *, owner: str, subaccount: int, client_id: int, clob_pair_id: int):
    """The chain ``Order`` message for ``plan`` (v4_proto ``dydxprotocol.clob.Order``)."""
    from v4_proto.dydxprotocol.clob.order_pb2 import Order

    if not 0 <= client_id <= MAX_CLIENT_ID:
        raise InvalidOrder(f"client id {client_id} is not a fixed32")
    oid = order_id_proto(owner=owner, subaccount=subaccount, client_id=client_id, flags=plan.flags,
                         clob_pair_id=clob_pair_id)
    tif = {
        TimeInForce.GTT: Order.TimeInForce.TIME_IN_FORCE_UNSPECIFIED,
        TimeInForce.IOC: Order.TimeInForce.TIME_IN_FORCE_IOC,
        TimeInForce.POST_ONLY: Order.TimeInForce.TIME_IN_FORCE_POST_ONLY,
    }[plan.time_in_force]
    kw = dict(
        order_id=oid,
        side=Order.Side.SIDE_BUY if plan.side is Side.BUY else Order.Side.SIDE_SELL,
        quantums=plan.quantums,
        subticks=plan.subticks,
        time_in_force=tif,
        reduce_only=plan.reduce_only,
        client_metadata=0,
    )
    if plan.flags == SHORT_TERM:
        kw["good_til_block"] = plan.good_til_block
    else:
        kw["good_til_block_time"] = plan.good_til_block_time
    if plan.flags == CONDITIONAL:
        kw["condition_type"] = (
            Order.ConditionType.CONDITION_TYPE_STOP_LOSS
            if plan.condition == "STOP_LOSS"
            else Order.ConditionType.CONDITION_TYPE_TAKE_PROFIT
        )
        kw["conditional_order_trigger_subticks"] = plan.trigger_subticks
    return Order(**kw)


def order_id_proto(*, owner: str, subaccount: int, client_id: int, flags: int, clob_pair_id: int):
    """The chain ``OrderId`` proto (v4-chain ``proto/dydxprotocol/clob/order.proto``):
    subaccount (``owner`` bech32 address, ``subaccount`` number), dYdX ``client_id`` (fixed32),
    order ``flags`` (0 short-term, 32 conditional, 64 long-term) and ``clob_pair_id``.
    """
    from v4_proto.dydxprotocol.clob.order_pb2 import OrderId
    from v4_proto.dydxprotocol.subaccounts.subaccount_pb2 import SubaccountId

    return OrderId(
        subaccount_id=SubaccountId(owner=owner, number=subaccount),
        client_id=client_id,
        order_flags=flags,
        clob_pair_id=clob_pair_id,
    )
