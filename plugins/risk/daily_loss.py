"""``daily_loss``: loss limit per UTC day (CLOSE_ALL, then HALT or no new risk until the next day).

Imports :mod:`perpbot.core` and :mod:`perpbot.plugins.risk.helpers`.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from perpbot.core.model import ZERO, OrderRequest
from perpbot.core.params import in_range, param
from perpbot.core.policies import APPROVE, RiskAction, RiskDecision, RiskView
from perpbot.plugins.risk.helpers import (
    NS,
    ONE,
    PolicyBase,
    fmt,
    pct,
    positive,
    qualified_ticker,
    shrinks_exposure,
    total_equity,
)


@attrs.frozen
class DailyLossParams:
    """Parameters of :class:`DailyLoss` (``[risk.daily_loss]``)."""

    max_loss: Decimal = param(
        Decimal("0.05"), "largest loss since the UTC day start, fraction of that day's starting equity (0.05 = 5%)", in_range(Decimal(0), ONE)
    )
    max_loss_usd: Decimal | None = param(None, "largest loss since the UTC day start, USD (optional, either limit triggers)", positive)
    halt: bool = param(True, "after closing everything, HALT (false: block new risk until the next UTC day)")


class DailyLoss(PolicyBase):
    """Loss since the start of the UTC day (``view.day_start_equity``, else the first equity
    this policy saw that day) beyond ``max_loss`` (fraction) or ``max_loss_usd``: CLOSE_ALL
    while positions are open, then HALT (``halt``) or REJECT risk-increasing orders until
    the next UTC day.

    Equity is the total over all venues (:func:`~perpbot.plugins.risk.helpers.total_equity`);
    when it cannot be found the policy HALTs with the reason (a loss limit it cannot measure
    is not a limit).
    """

    name = "daily_loss"
    description = "daily loss limit (UTC day): CLOSE_ALL, then HALT"
    Params = DailyLossParams

    def __init__(self, params, context=None):
        super().__init__(params, context)
        self._day: int | None = None
        self._day_start: Decimal | None = None
        self._tripped_day: int | None = None
        self._reason = ""

    def _state(self, view: RiskView) -> tuple[Decimal, Decimal, int]:
        day = view.now_ns // (86400 * NS)
        equity = total_equity(view, self.context)
        if day != self._day:
            self._day = day
            self._day_start = equity
        start = view.day_start_equity if view.day_start_equity > 0 else self._day_start
        return start, equity, day

    def check_account(self, view: RiskView) -> RiskDecision:
        """CLOSE_ALL while the day's loss is at a limit and positions are open, then HALT
        (``halt``); HALT when the total equity is unknown; APPROVE otherwise."""
        try:
            start, equity, day = self._state(view)
        except LookupError as exc:
            return self.decision(RiskAction.HALT, f"{exc}: the daily loss cannot be measured")
        if self._tripped_day is not None and self._tripped_day != day:
            self._tripped_day = None  # a new UTC day
        loss = start - equity
        hit = False
        if start and start > 0 and loss >= self.params.max_loss * start:
            hit = True
        if self.params.max_loss_usd is not None and loss >= self.params.max_loss_usd:
            hit = True
        if hit or self._tripped_day == day:
            if hit:
                self._tripped_day = day
                frac = loss / start if start else ZERO
                self._reason = (
                    f"daily loss {fmt(loss, 2)} USD ({pct(frac)}) since the UTC day start equity {fmt(start, 2)} USD "
                    f">= limit {pct(self.params.max_loss)}"
                    + (f" / {fmt(self.params.max_loss_usd, 2)} USD" if self.params.max_loss_usd is not None else "")
                )
            if any(p.size for p in view.positions.values()):
                return self.decision(RiskAction.CLOSE_ALL, self._reason + ": closing all positions")
            if self.params.halt:
                return self.decision(RiskAction.HALT, self._reason + ": positions closed, halting")
        return APPROVE

    def check_order(self, order: OrderRequest, view: RiskView) -> RiskDecision:
        """After the limit tripped today: REJECT orders that add risk (with the trip reason);
        APPROVE everything else."""
        day = view.now_ns // (86400 * NS)
        if self._tripped_day == day:
            q = qualified_ticker(order, view, self.context)
            if not shrinks_exposure(order, view, q):
                return self.decision(RiskAction.REJECT, f"{self._reason}: no new risk until the next UTC day")
        return APPROVE
