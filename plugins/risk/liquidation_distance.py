"""``liquidation_distance``: the post-trade liquidation price stays ``min_distance`` from the oracle.

Margin math is :mod:`perpbot.core.margin` (the chain's rounding); imports :mod:`perpbot.core`
and :mod:`perpbot.plugins.risk.helpers`.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from perpbot.core import margin as _margin
from perpbot.core.model import ZERO, Market, OrderRequest
from perpbot.core.params import in_range, param
from perpbot.core.policies import APPROVE, RiskAction, RiskDecision, RiskView
from perpbot.plugins.risk.helpers import (
    ONE,
    PolicyBase,
    fmt,
    mark_price,
    market_for,
    other_open_positions,
    pct,
    position_change,
    qualified_ticker,
    reduce_or_reject,
    venue_balance,
)


@attrs.frozen
class LiquidationDistanceParams:
    """Parameters of :class:`LiquidationDistance` (``[risk.liquidation_distance]``)."""

    min_distance: Decimal = param(
        Decimal("0.05"),
        "smallest distance between the post-trade liquidation price and the oracle, fraction of the oracle (0.05 = 5%)",
        in_range(Decimal(0), ONE),
    )


def position_maintenance_margin(size: Decimal, price: Decimal, market: Market | None) -> Decimal:
    """Maintenance margin of a position (``size`` base units at ``price`` USD), USD, with the chain's rounding
    (:func:`perpbot.core.margin.maintenance_margin_requirement_usd`); 0 when flat or the
    market is unknown.

    :raises ValueError: naming the market, when its margin fractions or the price are not
        valid chain values (e.g. an IMF that is not whole ppm); never an unrounded estimate.
    """
    if market is None or not size:
        return ZERO
    try:
        return _margin.maintenance_margin_requirement_usd(
            size, price, market.initial_margin_fraction, market.maintenance_margin_fraction
        )
    except (ValueError, TypeError) as exc:
        raise ValueError(f"maintenance margin of {market.ticker} unknown: {exc}") from exc


def liquidation_price(equity: Decimal, size: Decimal, price: Decimal, mmf: Decimal, mmr_other: Decimal) -> Decimal | None:
    """Cross liquidation price ``(E - s*P - MMR_other) / (|s|*MMF - s)`` (USD) or None:
    :func:`perpbot.core.margin.liquidation_price` (docs ``concepts/trading/liquidations.mdx``).

    :raises TypeError: / ValueError: as :func:`perpbot.core.margin.liquidation_price`.
    """
    return _margin.liquidation_price(equity, size, price, mmf, mmr_other)


class LiquidationDistance(PolicyBase):
    """Refuse or shrink an order whose post-trade liquidation price sits within
    ``min_distance`` of the oracle.

    After the order (filled at its limit price, else at the mark ``P``; fees ignored):
    ``E' = E + s*q*(P - fill)``, position ``S'``, and
    ``p_liq = (E' - S'*P - MMR_other) / (|S'|*MMF - S')`` (``perpbot.core.margin.liquidation_price``;
    ``MMR_other``: the venue's other positions' maintenance margins). The order passes when
    there is no liquidation price or ``|P - p_liq| / P >= min_distance``; otherwise REDUCE
    to the largest size (binary search over steps) that keeps the distance, or REJECT.
    """

    name = "liquidation_distance"
    description = "post-trade liquidation price at least min_distance from the oracle"
    Params = LiquidationDistanceParams

    def _distance(self, order, view, q, qty, price, market, equity, mmr_other, before):
        fill = order.price if order.price is not None else price
        s = order.side.sign
        eq_after = equity + s * qty * (price - fill)
        after = before + s * qty
        if after == 0:
            return None, None
        pl = liquidation_price(eq_after, after, price, market.maintenance_margin_fraction, mmr_other)
        if pl is None:
            return None, None
        return abs(price - pl) / price, pl

    def check_order(self, order: OrderRequest, view: RiskView) -> RiskDecision:
        """APPROVE orders that shrink exposure or keep the distance; else REDUCE (largest
        step multiple that keeps it) or REJECT. REJECT too when the market, oracle price,
        venue balance or another position's maintenance margin is unknown (reason says which)."""
        q = qualified_ticker(order, view, self.context)
        before, _, _, shrinks = position_change(order, view, q)
        if shrinks:
            return APPROVE
        market = market_for(view, q)
        price = mark_price(view, q, order)
        if market is None or price is None:
            return self.decision(RiskAction.REJECT, f"no market parameters or oracle price for {q}: liquidation price unknown")
        try:
            bal = venue_balance(view, q, self.context)
        except LookupError as exc:
            return self.decision(RiskAction.REJECT, f"{exc}: liquidation price unknown")
        mmr_other = ZERO
        try:
            for t, p in other_open_positions(view, q):
                mmr_other += position_maintenance_margin(p.size, view.marks.get(t) or p.entry_price, market_for(view, t))
        except ValueError as exc:
            return self.decision(RiskAction.REJECT, f"{exc}: liquidation price of {q} unknown")
        mind = self.params.min_distance
        dist, pl = self._distance(order, view, q, order.size, price, market, bal.equity, mmr_other, before)
        if dist is None or dist >= mind:
            return APPROVE
        # binary search the largest multiple of the step that keeps the distance
        step = market.step_size
        lo, hi = 0, int(order.size / step)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            d, _ = self._distance(order, view, q, step * mid, price, market, bal.equity, mmr_other, before)
            if d is None or d >= mind:
                lo = mid
            else:
                hi = mid - 1
        allowed = step * lo
        why = (
            f"post-trade liquidation price {fmt(pl, 2)} is {pct(dist)} from the oracle {fmt(price)} "
            f"(minimum {pct(mind)}; equity {fmt(bal.equity, 2)} USD, position after {fmt(before + order.side.sign * order.size)})"
        )
        return reduce_or_reject(self, order, allowed, market, why)
