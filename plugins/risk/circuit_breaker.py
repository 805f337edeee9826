"""``circuit_breaker``: no orders to a venue whose circuit breaker is open; HALT if it stays open.

Imports :mod:`perpbot.core` and :mod:`perpbot.plugins.risk.helpers`.
"""

from __future__ import annotations

import attrs

from perpbot.core.model import OrderRequest
from perpbot.core.params import in_range, param
from perpbot.core.policies import APPROVE, RiskAction, RiskDecision, RiskView
from perpbot.plugins.risk.helpers import NS, PolicyBase, primary_venue, qualified_ticker, venue_of


@attrs.frozen
class CircuitBreakerParams:
    """Parameters of :class:`CircuitBreaker` (``[risk.circuit_breaker]``)."""

    halt_after_s: int = param(300, "HALT when a venue's circuit stays open this long, s (0 = never)", in_range(0, 10**8))


class CircuitBreaker(PolicyBase):
    """Venue circuit breakers (``view.circuit_open``: venue -> reason): REJECT every order
    for an open venue; HALT when a circuit has been open ``halt_after_s`` seconds."""

    name = "circuit_breaker"
    description = "no orders to a venue whose circuit breaker is open; HALT if it stays open"
    Params = CircuitBreakerParams

    def __init__(self, params, context=None):
        super().__init__(params, context)
        self.opened_ns: dict[str, int] = {}

    def _track(self, view: RiskView) -> None:
        for v in list(self.opened_ns):
            if v not in view.circuit_open:
                del self.opened_ns[v]
        for v in view.circuit_open:
            self.opened_ns.setdefault(v, view.now_ns)

    def check_order(self, order: OrderRequest, view: RiskView) -> RiskDecision:
        """REJECT an order for a venue in ``view.circuit_open`` (or of unknown venue while any
        circuit is open), naming the venue and its reason; APPROVE otherwise."""
        self._track(view)
        if not view.circuit_open:
            return APPROVE
        venue = order.venue or primary_venue(self.context)
        if venue is None:
            q = qualified_ticker(order, view, self.context)
            venue = venue_of(q)
        if venue in view.circuit_open:
            return self.decision(RiskAction.REJECT, f"circuit breaker open on {venue}: {view.circuit_open[venue]}")
        if venue is None:  # unknown venue: be safe
            v, why = next(iter(view.circuit_open.items()))
            return self.decision(RiskAction.REJECT, f"circuit breaker open on {v}: {why} (order venue unknown)")
        return APPROVE

    def check_account(self, view: RiskView) -> RiskDecision:
        """HALT when a venue's circuit has been open at least ``halt_after_s`` seconds of
        clock time (``view.now_ns``, ns) since this policy first saw it open; else APPROVE."""
        self._track(view)
        if not self.params.halt_after_s:
            return APPROVE
        for v, since in self.opened_ns.items():
            lasted = (view.now_ns - since) / NS
            if lasted >= self.params.halt_after_s:
                return self.decision(
                    RiskAction.HALT,
                    f"circuit breaker on {v} open for {lasted:.0f}s (limit {self.params.halt_after_s}s): {view.circuit_open.get(v, '')}",
                )
        return APPROVE
