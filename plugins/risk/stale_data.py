"""``stale_data``: no orders on markets whose data is stale or crossed.

Imports :mod:`perpbot.core` and :mod:`perpbot.plugins.risk.helpers`.
"""

from __future__ import annotations

import attrs

from perpbot.core.model import OrderRequest
from perpbot.core.params import param
from perpbot.core.policies import APPROVE, RiskAction, RiskDecision, RiskView
from perpbot.plugins.risk.helpers import PolicyBase, qualified_ticker


@attrs.frozen
class StaleDataParams:
    """Parameters of :class:`StaleData` (``[risk.stale_data]``)."""

    allow_reduce_only: bool = param(True, "let reduce-only orders through on stale data (closing must stay possible)")


class StaleData(PolicyBase):
    """REJECT an order on a market whose data is stale or crossed (``view.stale``), with
    the market's reason."""

    name = "stale_data"
    description = "no orders on markets with stale or crossed data"
    Params = StaleDataParams

    def check_order(self, order: OrderRequest, view: RiskView) -> RiskDecision:
        """REJECT with ``view.stale[ticker]`` as the reason; APPROVE fresh markets (and
        reduce-only orders when ``allow_reduce_only``)."""
        q = qualified_ticker(order, view, self.context)
        reason = view.stale.get(q)
        if reason is None:
            return APPROVE
        if order.reduce_only and self.params.allow_reduce_only:
            return APPROVE
        return self.decision(RiskAction.REJECT, f"stale data on {q}: {reason}")
