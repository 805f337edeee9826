"""``max_notional``: position notional per market and in total after an order, USD.

Imports :mod:`perpbot.core` and :mod:`perpbot.plugins.risk.helpers`.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from perpbot.core.model import OrderRequest
from perpbot.core.params import param
from perpbot.core.policies import APPROVE, RiskAction, RiskDecision, RiskView
from perpbot.plugins.risk.helpers import (
    PolicyBase,
    fmt,
    gross_notional_except,
    mark_price,
    market_for,
    max_quantity_for,
    positive,
    post_trade,
    qualified_ticker,
    reduce_or_reject,
    shrinks_exposure,
)


@attrs.frozen
class MaxNotionalParams:
    """Parameters of :class:`MaxNotional` (``[risk.max_notional]``), USD."""

    per_market_usd: Decimal = param(Decimal("50000"), "largest position notional per market after an order, USD", positive)
    total_usd: Decimal = param(Decimal("150000"), "largest gross notional over all markets and venues after an order, USD", positive)


class MaxNotional(PolicyBase):
    """``|S'| * P <= per_market_usd`` and ``sum over all positions <= total_usd`` after the order;
    REDUCE to the largest size that fits both, or REJECT."""

    name = "max_notional"
    description = "position notional per market and in total (USD) after the order"
    Params = MaxNotionalParams

    def check_order(self, order: OrderRequest, view: RiskView) -> RiskDecision:
        """APPROVE orders that shrink exposure or fit both limits; else REDUCE to the largest
        size that fits (floored to the step) or REJECT; REJECT without a mark price."""
        q = qualified_ticker(order, view, self.context)
        if shrinks_exposure(order, view, q):
            return APPROVE
        price = mark_price(view, q, order)
        if price is None:
            return self.decision(RiskAction.REJECT, f"no mark price for {q}: notional cannot be checked")
        pt = post_trade(order, view, q)
        other = gross_notional_except(view.positions, view.marks, q)
        market_after = abs(pt.after) * price
        total_after = other + market_after
        pm, tot = self.params.per_market_usd, self.params.total_usd
        if market_after <= pm and total_after <= tot:
            return APPROVE
        limit_abs = min(pm, tot - other) / price
        allowed = max_quantity_for(limit_abs, pt.before, pt.sign)
        why = (
            f"notional after order {q} {fmt(market_after, 2)} USD (limit {fmt(pm, 2)}), "
            f"total {fmt(total_after, 2)} USD (limit {fmt(tot, 2)})"
        )
        return reduce_or_reject(self, order, allowed, market_for(view, q), why)
