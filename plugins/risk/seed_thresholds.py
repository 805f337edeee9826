"""``seed_thresholds``: seed 002's risk manager (failure stall, -10% close worst, -15% close all).

Imports :mod:`perpbot.core` and :mod:`perpbot.plugins.risk.helpers`.
"""

from __future__ import annotations

import re
from decimal import Decimal

import attrs

from perpbot.core.model import ZERO
from perpbot.core.params import in_range, param
from perpbot.core.policies import APPROVE, RiskAction, RiskDecision, RiskView
from perpbot.plugins.risk.helpers import NS, ONE, PolicyBase, fmt, pct, total_equity


_MARGIN_ERROR = re.compile(r"margin|collateral|insufficient|undercollateral", re.IGNORECASE)


def is_margin_error(error: str) -> bool:
    """True when a venue's rejection text is about margin/collateral (dYdX:
    "insufficient margin", "... undercollateralized ...", "StillUndercollateralized")."""
    return bool(error) and bool(_MARGIN_ERROR.search(error))


def worst_positions(view: RiskView, fraction: Decimal) -> list[tuple[str, Decimal, Decimal]]:
    """Seed 002's "close worst positions": losing positions sorted by unrealized PnL as a
    fraction of notional (worst first), the worst ``max(1, int(n * fraction))`` of them.

    :returns: ``[(ticker, upnl USD, upnl / notional)]``.
    """
    losing = []
    for t, p in view.positions.items():
        if not p.size:
            continue
        mark = view.marks.get(t)
        if mark is None:
            continue
        upnl = p.unrealized_pnl(mark)
        if upnl >= 0:
            continue
        notional = abs(p.size) * mark
        losing.append((t, upnl, upnl / notional if notional else ZERO))
    losing.sort(key=lambda x: x[2])
    if not losing:
        return []
    n = max(1, int(len(losing) * fraction))
    return losing[:n]


@attrs.frozen
class SeedThresholdsParams:
    """Parameters of :class:`SeedThresholds` (``[risk.seed_thresholds]``)."""

    margin_failure_threshold: int = param(
        15, "consecutive (margin) order failures that, lasting time_stall_s, count as a stall", in_range(1, 10**6)
    )
    time_stall_s: int = param(600, "seconds the failure streak must last to be a stall (seed: 10 minutes)", in_range(0, 10**8))
    account_loss: Decimal = param(
        Decimal("0.10"), "loss from the starting equity that closes the worst positions (0.10 = -10%)", in_range(Decimal(0), ONE)
    )
    emergency_loss: Decimal = param(
        Decimal("0.15"), "loss from the starting equity that closes everything (0.15 = -15%)", in_range(Decimal(0), ONE)
    )
    close_worst_fraction: Decimal = param(
        Decimal("0.20"), "share of the losing positions closed by CLOSE_WORST (at least one)", in_range(Decimal(0), ONE)
    )
    close_worst_requires_stall: bool = param(
        False,
        "true: CLOSE_WORST only when the loss AND a failure stall coincide (the seed's original risk manager); "
        "false: the loss alone (the issue's rule)",
    )
    margin_failures_only: bool = param(True, "count only rejections about margin/collateral (else every failure)")
    failure_action: RiskAction = param(RiskAction.HALT, "action on a failure stall (and a no-fill stall)")
    halt_after_emergency: bool = param(True, "after the emergency CLOSE_ALL, HALT once the account is flat")
    no_fill_stall_s: int = param(
        0, "HALT-style failure_action when orders/positions are open and nothing filled for this long, s (0 = off)", in_range(0, 10**8)
    )


class SeedThresholds(PolicyBase):
    """Seed 002's risk manager thresholds.

    With ``loss = (start_equity - equity) / start_equity`` (equity over all venues):

    1. ``loss >= emergency_loss`` (15%): CLOSE_ALL; once flat, HALT.
    2. ``loss >= account_loss`` (10%), with a stall when ``close_worst_requires_stall``:
       CLOSE_WORST, naming the worst losing position (PnL / notional) in ``ticker``; the
       reason lists the worst ``close_worst_fraction`` (20%) of the losing positions.
       It fires once per crossing: it re-arms only after the loss recovers below the
       threshold (otherwise a flat -10% would close one position per cycle until nothing
       is left, which is the emergency rule's job).
    3. a failure stall: ``margin_failure_threshold`` (15) consecutive margin failures,
       the first of them at least ``time_stall_s`` (600 s) ago: ``failure_action`` (HALT;
       NONE disables it). A successful order resets the streak.

    Thresholds are inclusive: exactly -10.00% triggers, -9.99% does not.

    When the total equity cannot be found (:func:`~perpbot.plugins.risk.helpers.total_equity`
    raises) the policy HALTs with the reason: loss limits it cannot measure are not limits.
    """

    name = "seed_thresholds"
    description = "seed 002: 15 margin failures + 10 min stall, -10% close worst, -15% close all"
    Params = SeedThresholdsParams

    def __init__(self, params, context=None):
        super().__init__(params, context)
        self.failures = 0
        self.streak_start_ns: int | None = None
        self._baseline: Decimal | None = None
        self._emergency = False
        self._first_seen_ns: int | None = None
        self._worst_armed = True

    def on_order_result(self, success: bool, error: str, view: RiskView) -> None:
        """Count a failed placement into the streak (only margin errors with
        ``margin_failures_only``), started at ``view.now_ns``; a success resets it."""
        if success:
            self.failures = 0
            self.streak_start_ns = None
            return
        if self.params.margin_failures_only and not is_margin_error(error):
            return
        self.failures += 1
        if self.streak_start_ns is None:
            self.streak_start_ns = view.now_ns

    def _loss(self, view: RiskView) -> tuple[Decimal, Decimal, Decimal] | None:
        equity = total_equity(view, self.context)
        start = view.start_equity if view.start_equity > 0 else None
        if start is None:
            if self._baseline is None and equity > 0:
                self._baseline = equity
            start = self._baseline
        if not start or start <= 0:
            return None
        return (start - equity) / start, start, equity

    def check_account(self, view: RiskView) -> RiskDecision:
        """The rules above in order: emergency CLOSE_ALL/HALT, CLOSE_WORST, stall action;
        APPROVE otherwise. HALT when the total equity is unknown."""
        p = self.params
        if self._first_seen_ns is None:
            self._first_seen_ns = view.now_ns
        try:
            loss = self._loss(view)
        except LookupError as exc:
            return self.decision(RiskAction.HALT, f"{exc}: the account loss cannot be measured")
        if loss is not None:
            frac, start, equity = loss
            if frac >= p.emergency_loss or self._emergency:
                if frac >= p.emergency_loss:
                    self._emergency = True
                numbers = (
                    f"account loss {pct(frac)} (equity {fmt(equity, 2)} vs start {fmt(start, 2)} USD) "
                    f">= emergency {pct(p.emergency_loss)}"
                )
                open_positions = [t for t, pos in view.positions.items() if pos.size]  # only read here
                if open_positions:
                    return self.decision(RiskAction.CLOSE_ALL, numbers + f": closing all {len(open_positions)} positions")
                if p.halt_after_emergency:
                    return self.decision(RiskAction.HALT, numbers + ": positions closed, halting")
        stalled, stall_reason = self._stalled(view)
        if loss is not None:
            frac, start, equity = loss
            if frac < p.account_loss:
                self._worst_armed = True  # recovered above the threshold: re-arm
            elif self._worst_armed and (stalled or not p.close_worst_requires_stall):
                worst = worst_positions(view, p.close_worst_fraction)
                if worst:
                    self._worst_armed = False
                    listing = ", ".join(f"{t} {fmt(u, 2)} USD ({pct(r)})" for t, u, r in worst)
                    return self.decision(
                        RiskAction.CLOSE_WORST,
                        f"account loss {pct(frac)} (equity {fmt(equity, 2)} vs start {fmt(start, 2)} USD) >= "
                        f"{pct(p.account_loss)}: close worst {listing}",
                        ticker=worst[0][0],
                    )
        if stalled and p.failure_action is not RiskAction.NONE:
            return self.decision(p.failure_action, stall_reason)
        return APPROVE

    def _stalled(self, view: RiskView) -> tuple[bool, str]:
        p = self.params
        failures = self.failures
        start = self.streak_start_ns
        if not p.margin_failures_only and view.consecutive_failures > failures:
            failures = view.consecutive_failures
            if start is None:
                start = view.now_ns
                self.streak_start_ns = start
        if failures >= p.margin_failure_threshold and start is not None:
            lasted = (view.now_ns - start) / NS
            if lasted >= p.time_stall_s:
                kind = "margin failures" if p.margin_failures_only else "order failures"
                return True, (
                    f"{failures} consecutive {kind} (threshold {p.margin_failure_threshold}) for {lasted:.0f}s "
                    f"(stall threshold {p.time_stall_s}s)"
                )
        if p.no_fill_stall_s and (view.open_orders or any(pos.size for pos in view.positions.values())):
            since = max(view.last_fill_ns, self._first_seen_ns or view.now_ns)
            idle = (view.now_ns - since) / NS
            if idle >= p.no_fill_stall_s:
                return True, (
                    f"no fill for {idle:.0f}s with {view.open_orders} open orders and "
                    f"{sum(1 for x in view.positions.values() if x.size)} positions (threshold {p.no_fill_stall_s}s)"
                )
        return False, ""

