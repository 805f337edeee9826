"""Both legs or neither: what happens after an entry when the second leg fails or fills only partly.

A pair is entered with one order per leg, sent together. A venue can reject the second
(margin, a risk policy, an outage), or an IOC order can fill only part of its size. Until
the legs are seen balanced, the pair's entry is *pending*; at each decision with no order of
the pair resting (:meth:`LeggingGuard.check`), with ``N_p``/``N_h`` the legs' notionals and
``N`` the entry notional:

- both legs flat: the entry did not fill; the pair is flat again (decided elsewhere);
- ``|N_p - N_h| <= rebalance_tolerance * N``: the entry is complete (``entries`` + 1);
- otherwise, while fewer than ``leg_retries`` completion orders were sent and less than
  ``leg_timeout_h`` hours have passed since the entry: complete the lagging leg with a
  market IOC order for the missing notional (the bound: the imbalance left is at most
  ``rebalance_tolerance * N`` once it fills);
- otherwise: unwind -- close both legs at market, reduce-only, so the account is never left
  holding one leg of a pair; the pair goes to ``exiting`` and ``unwinds`` counts it.

Every completion and unwind is logged with its reason (the legs' sizes and notionals, the
last rejection or cancellation the venue gave for the pair's orders, the attempts made).

Source: seed 001 (``/work/shared/seeds/001_*.txt``, week 11 "Cross-market funding rate
arbitrage": legging risk); the rule is this project's. Imports only :mod:`perpbot` and the
strategy's own modules.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from perpbot import OrderParams, OrderType, Side, StrategyAction, StrategyResult, TimeInForce

from perpbot.strategies.funding_arb.params import CLOSE_TAG, HOUR_NS, REBALANCE_TAG, D, FundingArbParams


class LeggingGuard:
    """Completes or unwinds a pair whose entry left the legs unbalanced (rules: module docstring).

    :param params: the strategy's parameters (``rebalance_tolerance``, ``leg_retries``, ``leg_timeout_h``).
    :param primary: the primary leg's ticker; :param hedge: the hedge leg's.
    :param pos: the pair's :class:`~perpbot.strategies.funding_arb.legs.ArbPosition` (updated here).
    :param log: a loguru-style logger (WARNING for each completion or unwind).
    """

    def __init__(self, params: FundingArbParams, primary: str, hedge: str, pos: Any, log: Any):
        self.params = params
        self.primary = primary
        self.hedge = hedge
        self.pos = pos
        self.log = log

    def check(self, md: Any, now: int, pp: Decimal, ph: Decimal, sp: Decimal, sh: Decimal) -> StrategyResult | None:
        """One decision on a pending entry (both legs not flat, nothing of the pair resting).

        :param now: decision time, ns; :param pp, ph: leg prices, USD; :param sp, sh: signed leg sizes.
        :returns: None when the entry is complete (or nothing is pending), else the completion
            order or the unwinding orders.
        """
        pos, p = self.pos, self.params
        if not pos.entry_pending:
            return None
        np_, nh = abs(sp) * pp, abs(sh) * ph
        target = pos.target_notional or p.notional_usd
        if abs(np_ - nh) <= p.rebalance_tolerance * target:
            pos.entry_pending = False
            pos.entries += 1
            pos.leg_attempts = 0
            return None
        lead, lag = (self.primary, self.hedge) if np_ > nh else (self.hedge, self.primary)
        why = f"last venue message: {pos.leg_error}" if pos.leg_error else "no venue message (rejected, risk-vetoed or unfilled)"
        state = f"{self.primary} {sp} ({np_:.2f} USD) vs {self.hedge} {sh} ({nh:.2f} USD)"
        held_h = D(now - pos.entered_ns) / HOUR_NS
        if pos.leg_attempts < p.leg_retries and held_h < p.leg_timeout_h:
            order = self._complete(md, lag, pp if lag == self.primary else ph, sp if lag == self.primary else sh, max(np_, nh))
            if order is not None:
                pos.leg_attempts += 1
                pos.hedge_completions += 1
                reason = (f"second leg short after the entry: {state}; {why}; completing {lag} at market: {order.side.value} "
                          f"{order.size} (attempt {pos.leg_attempts} of {p.leg_retries})")
                pos.leg_log.append(reason)
                self.log.warning(f"funding_arb: {reason}")
                return StrategyResult(StrategyAction.PLACE_ORDERS, orders=(order,), reason=reason)
        reason = (f"both legs or neither: {state} after {pos.leg_attempts} completion attempt(s) and {held_h:.1f} h; {why}; "
                  f"unwinding {lead}")
        pos.entry_pending = False
        pos.state = "exiting"
        pos.unwinds += 1
        pos.exits += 1
        pos.last_reason = reason
        pos.leg_log.append(reason)
        pos.exit_reasons.append(reason)
        self.log.warning(f"funding_arb: {reason}")
        orders = []
        for t, s in ((self.primary, sp), (self.hedge, sh)):
            if s:
                orders.append(OrderParams(ticker=t, side=Side.SELL if s > 0 else Side.BUY, order_type=OrderType.MARKET, size=abs(s),
                                          time_in_force=TimeInForce.IOC, reduce_only=True, tag=CLOSE_TAG, reason=reason))
        return StrategyResult(StrategyAction.PLACE_ORDERS, orders=tuple(orders), reason=reason)

    def _complete(self, md: Any, lag: str, price: Decimal, size: Decimal, want_notional: Decimal) -> OrderParams | None:
        """The market order bringing leg ``lag`` (signed size ``size``, price USD) up to ``want_notional`` USD."""
        market = md.markets[lag].market
        q = market.round_size(want_notional / price - abs(size))
        if q < market.min_order_size:
            return None
        long_primary = self.pos.long_leg == self.primary
        if lag == self.primary:
            side = Side.BUY if long_primary else Side.SELL
        else:
            side = Side.SELL if long_primary else Side.BUY
        return OrderParams(ticker=lag, side=side, order_type=OrderType.MARKET, size=q, time_in_force=TimeInForce.IOC,
                           tag=REBALANCE_TAG, reason="complete the second leg")
