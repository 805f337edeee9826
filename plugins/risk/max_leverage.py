"""``max_leverage``: account leverage after an order, per venue (REDUCE or REJECT).

Imports :mod:`perpbot.core` and :mod:`perpbot.plugins.risk.helpers`.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from perpbot.core.model import ZERO, OrderRequest
from perpbot.core.params import param
from perpbot.core.policies import APPROVE, RiskAction, RiskDecision, RiskView
from perpbot.plugins.risk.helpers import (
    PolicyBase,
    fmt,
    mark_price,
    market_for,
    max_quantity_for,
    other_open_positions,
    position_change,
    positive,
    qualified_ticker,
    reduce_or_reject,
    venue_balance,
)


@attrs.frozen
class MaxLeverageParams:
    """Parameters of :class:`MaxLeverage` (``[risk.max_leverage]``)."""

    max_leverage: Decimal = param(Decimal("5"), "largest account leverage after an order, x (gross notional / equity)", positive)


class MaxLeverage(PolicyBase):
    """Account leverage after the order, ``(T_other + |S'| * P) / equity``, must not exceed
    ``max_leverage``. Otherwise REDUCE to ``|S'| <= (max * equity - T_other) / P`` or REJECT.

    ``T_other``: notional of the venue's other positions at their marks; ``S'`` the position
    after the order; ``P`` the mark (oracle) of the order's market; ``equity`` the venue's.
    """

    name = "max_leverage"
    description = "account leverage after the order <= max_leverage (REDUCE or REJECT)"
    Params = MaxLeverageParams

    def check_order(self, order: OrderRequest, view: RiskView) -> RiskDecision:
        """APPROVE orders that shrink exposure or keep leverage <= ``max_leverage``; else REDUCE
        to the largest size that fits (floored to the step) or REJECT. REJECT too when the mark
        price or the venue's balance is unknown, or its equity is <= 0 (the reason says which)."""
        q = qualified_ticker(order, view, self.context)
        before, after, sign, shrinks = position_change(order, view, q)
        if shrinks:
            return APPROVE
        price = mark_price(view, q, order)
        if price is None:
            return self.decision(RiskAction.REJECT, f"no mark price for {q}: leverage cannot be checked")
        try:
            bal = venue_balance(view, q, self.context)
        except LookupError as exc:
            return self.decision(RiskAction.REJECT, f"{exc}: leverage cannot be checked")
        equity = bal.equity
        if equity <= 0:
            return self.decision(RiskAction.REJECT, f"equity {fmt(equity, 2)} USD <= 0: no leverage available")
        marks = view.marks
        other = ZERO  # gross_notional_except(venue_positions(view, q), view.marks, q), summed in the same order
        for t, p in other_open_positions(view, q):
            other += abs(p.size) * (marks.get(t) or p.entry_price)
        lev_after = (other + abs(after) * price) / equity
        mx = self.params.max_leverage
        if lev_after <= mx:
            return APPROVE
        limit_abs = (mx * equity - other) / price
        allowed = max_quantity_for(limit_abs, before, sign)
        why = (
            f"leverage after order {fmt(lev_after, 3)}x > max {fmt(mx)}x (other notional {fmt(other, 2)} + "
            f"|{fmt(after)}| x {fmt(price)} over equity {fmt(equity, 2)} USD)"
        )
        return reduce_or_reject(self, order, allowed, market_for(view, q), why)
