"""Order rules of the paper exchange: what dYdX v4 refuses, checked without touching the account.

Sources: chain ``protocol/x/clob/types/message_place_order.go`` ``ValidateBasic`` (stateless
checks the node's CheckTx applies) and the memclob's handling of reduce-only and post-only
orders (``protocol/x/clob/memclob/memclob.go``), dydxprotocol/v4-chain.

- :func:`static_check`: size a multiple of the step size and >= the minimum order size; limit
  and trigger prices multiples of the tick size (no silent rounding: the sender rounds, the
  venue checks); reduce-only only with IOC; post-only never IOC; a duplicate live client id.
- :func:`reduce_only_check`: a reduce-only order that would open or increase the position is
  rejected; one larger than the position is cut to it.
- :func:`post_only_check`: a post-only order that would cross is rejected.
- :func:`market_worst_price`: a market order's worst acceptable price (slippage bound).

The collateral rule (initial margin after the order) lives with the account:
:meth:`perpbot.exchanges.paper.subaccounts.Accounts.order_margin_reason`.

Every check returns ``""`` when the order passes, else one line naming the field, the value
and the rule; none raises.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Container

from perpbot.core.model import Market, OrderRequest, Side, TimeInForce, is_multiple
from perpbot.exchanges.paper.fees import QUOTE_QUANTUM
from perpbot.exchanges.paper.orders import SimOrder


def static_check(req: OrderRequest, o: SimOrder, market: Market | None, live_ids: Container[int]) -> str:
    """The stateless checks of ``req`` (what the node's CheckTx would refuse).

    :param req: the order as sent (sizes base units, prices USD).
    :param o: its simulator record (carries the derived IOC / post-only / market flags).
    :param market: the market's parameters, None when the venue does not list it.
    :param live_ids: client ids of orders still live (a reused id is refused).
    :returns: ``""`` or the reason for the rejection.
    """
    t = req.ticker
    m = market
    if m is None:
        return f"unknown market {t!r}"
    if req.client_id in live_ids:
        return f"duplicate client id {req.client_id}: an order with this id is still live"
    if not is_multiple(req.size, m.step_size):
        return f"size {req.size} is not a multiple of the step size {m.step_size} of {t}"
    if req.size < m.min_order_size:
        return f"size {req.size} is below the minimum order size {m.min_order_size} of {t}"
    if req.price is not None:
        if req.price <= 0:
            return f"price {req.price} must be > 0"
        if not is_multiple(req.price, m.tick_size):
            return f"price {req.price} is not a multiple of the tick size {m.tick_size} of {t}"
    elif not o.is_market:
        return f"price required for a {req.order_type.value} order on {t}"
    if req.order_type.is_conditional:
        if req.trigger_price is None or req.trigger_price <= 0:
            return f"trigger price required for a {req.order_type.value} order on {t}"
        if not is_multiple(req.trigger_price, m.tick_size):
            return f"trigger price {req.trigger_price} is not a multiple of the tick size {m.tick_size} of {t}"
    if o.post_only and (o.is_market or req.time_in_force is TimeInForce.IOC):
        return f"post-only cannot be combined with IOC or a market order ({req.order_type.value}, {req.time_in_force.value})"
    if req.reduce_only and not o.is_ioc:
        return (
            "reduce-only is only allowed on IOC orders (chain x/clob/types/message_place_order.go ValidateBasic); "
            f"got {req.order_type.value} {o.time_in_force.value}"
        )
    if req.slippage is not None and not (0 < req.slippage < 1):
        return f"slippage {req.slippage} must be a fraction in (0, 1)"
    if req.good_til_s is not None and req.good_til_s <= 0:
        return f"good_til_s {req.good_til_s} must be > 0 seconds"
    return ""


def reduce_only_check(o: SimOrder, position: Decimal) -> str:
    """Reduce-only rule when ``o`` reaches the book, against the signed ``position`` (base units)
    of the subaccount it trades in.

    Cuts ``o.size`` to the position when larger (and says so in ``o.reason``).

    :returns: ``""``, or the rejection reason when the order would open, increase or flip
        the position.
    """
    if not o.reduce_only:
        return ""
    if not position or (position > 0) == (o.side is Side.BUY):
        return (
            f"reduce-only {o.side.value} {o.size} {o.ticker} would increase or open the position (position {position})"
        )
    if o.size > abs(position):
        o.reason = f"reduce-only size cut from {o.size} to the position size {abs(position)}"
        o.size = abs(position)
    return ""


def post_only_check(o: SimOrder, limit: Decimal, best_opposite: Decimal | None, bars: bool) -> str:
    """Post-only rule: the order must not cross the best opposite price (USD; on bar-only data,
    ``bars=True``, the last close stands for it).

    :returns: ``""`` or the rejection reason.
    """
    if not o.post_only or best_opposite is None:
        return ""
    if (o.side is Side.BUY and limit >= best_opposite) or (o.side is Side.SELL and limit <= best_opposite):
        what = "best ask" if o.side is Side.BUY else "best bid"
        if bars:
            what = "last close"
        return f"post-only {o.side.value} at {limit} would cross the {what} {best_opposite} of {o.ticker}"
    return ""


def market_worst_price(o: SimOrder, best_opposite: Decimal, market: Market, max_slippage: Decimal) -> Decimal:
    """Worst price of a market order without its own ``price``, USD: ``best opposite price *
    (1 +/- slippage)`` (the order's ``slippage``, else ``max_slippage``), rounded to the tick in
    the permissive direction (buys up, sells down), never below one tick."""
    slip = o.slippage if o.slippage is not None else max_slippage
    raw = best_opposite * (1 + slip) if o.side is Side.BUY else best_opposite * (1 - slip)
    limit = market.round_price_aggressive(raw, o.side)
    if limit <= 0:
        limit = market.tick_size
    return limit


def fmt_usd(x: Decimal) -> str:
    """A USD amount for messages: 6 decimals at most, no exponent (NaN as is)."""
    return f"{x.quantize(QUOTE_QUANTUM):f}" if x == x else str(x)
