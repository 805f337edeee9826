"""Leg management of the funding arbitrage: entering both legs, exiting, rebalancing, and
completing a half-filled pair at market.

Orders (:meth:`LegManager.order`): with ``execution = market`` IOC market orders; with
``limit`` post-only limits at the touch, a buy at ``min(best bid, ask - tick)`` and a sell
at ``max(best ask, bid + tick)`` (never crossing; on bar-only data bid = ask = the last
close). dYdX accepts reduce-only only on IOC orders (``../shared/docs/dydx-v4.md``
section 3), so limit closes are plain orders sized to the position.

Entry (:meth:`LegManager.candidate` then :meth:`LegManager.enter`; flat, both legs warm,
not cooling down, expected net carry > 0: :mod:`perpbot.strategies.funding_arb.carry`;
across coins the strategy enters the best ones first): equal notional,
``q_primary = N / P_primary``, ``q_hedge = q_primary * P_primary / P_hedge``, each
floored to its market's step; below a leg's minimum order size nothing is entered.

While held (:meth:`LegManager.manage`):

- first, while the entry is pending, both legs or neither
  (:class:`~perpbot.strategies.funding_arb.legging.LeggingGuard`: complete a failed or
  partly filled second leg within ``leg_retries`` orders and ``leg_timeout_h`` hours, else
  unwind the first);
- exit (both legs; reduce-only with market execution) when the expected spread in the
  position's favour ``favour = r_short - r_long`` (per hour) reverses or closes,
  ``favour <= exit_spread_1h``, or decays, ``favour < exit_decay * spread at entry``, or after
  ``max_hold_h``. Hysteresis: entering needs the spread to pay for the round trip
  (``spread * horizon_h * N > costs - basis``), staying only ``exit_decay`` of the entry
  spread, so a spread hovering near the entry threshold does not churn;
- rebalance when the legs' notionals drift apart: ``|N_primary - N_hedge| >
  rebalance_tolerance * N`` trades the hedge leg back to the primary leg's notional (a
  missing leg, e.g. a rejected order, is re-placed the same way).

Legging risk (:meth:`LegManager.complete_hedge`, limit execution with
``complete_with_market``): one leg filled while the other's limit order still rests ->
cancel it and finish that leg at market, so the pair is delta-neutral again at once.

Source: seed 001 (``/work/shared/seeds/001_*.txt``, week 11 "Cross-market funding rate
arbitrage", week 6 "Cross-margin position limit management"); the rules above are this
project's. Units: prices USD, sizes base units, notionals USD, times ns since the epoch.

Imports only :mod:`perpbot` and the strategy's own modules.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from perpbot import OrderParams, OrderType, Side, StrategyAction, StrategyResult, TimeInForce

from perpbot.strategies.funding_arb.carry import CarryModel, leg_price
from perpbot.strategies.funding_arb.legging import LeggingGuard
from perpbot.strategies.funding_arb.params import (
    CLOSE_TAG,
    D,
    HOUR_NS,
    OPEN_TAG,
    REBALANCE_TAG,
    ZERO,
    Execution,
    FundingArbParams,
)


@attrs.define
class ArbPosition:
    """The pair's state and counters (persisted by the strategy's ``get_state``).

    :ivar state: ``"flat"``, ``"open"`` or ``"exiting"``.
    :ivar long_leg: ticker of the leg held long, None when flat.
    :ivar entered_ns: time of the entry decision, ns since the epoch.
    :ivar exited_ns: time the pair was last found flat after an exit, ns (None: never).
    :ivar target_notional: notional per leg at entry, USD (the rebalance reference).
    :ivar entries: entries with at least one leg filled; ``entry_orders``: pairs sent.
    :ivar entry_pending: an entry was sent and not yet seen filled or abandoned.
    :ivar exits, rebalances, hedge_completions: decisions of each kind.
    :ivar max_drift: largest ``|N_p - N_h| / N`` left after a decision with both legs on (fraction).
    :ivar last_reason: the last entry or exit reason; ``exit_reasons``: every exit's.
    :ivar entry_spread: the expected per-hour spread at entry (the decay exit's reference).
    :ivar leg_attempts: completion orders sent for the pending entry; ``unwinds``: entries unwound.
    :ivar leg_error: the venue's last rejection or cancellation message for the pair's orders;
        ``leg_log``: every completion and unwind reason.
    """

    state: str = "flat"  # flat | open | exiting
    long_leg: str | None = None
    entered_ns: int = 0
    exited_ns: int | None = None
    target_notional: Decimal = ZERO
    entries: int = 0  # entries that got at least one leg filled
    entry_orders: int = 0  # entry attempts (pairs of orders sent)
    entry_pending: bool = False
    exits: int = 0
    rebalances: int = 0
    hedge_completions: int = 0
    max_drift: Decimal = ZERO  # largest |N_p - N_h| / N seen after a decision with both legs on
    last_reason: str = ""
    exit_reasons: list = attrs.Factory(list)
    entry_spread: Decimal = ZERO
    leg_attempts: int = 0
    unwinds: int = 0
    leg_error: str = ""
    leg_log: list = attrs.Factory(list)


def price(md: Any, t: str) -> Decimal | None:
    """The price a leg is valued at, USD: ``MarketData.marks[t]``, else the market's mark price, else None."""
    return leg_price(md, t)


class LegManager:
    """Places, closes and rebalances the two legs (rules: module docstring).

    :param params: the strategy's parameters.
    :param primary: the primary leg's ticker; :param hedge: the hedge leg's.
    :param carry: the expected rates and entry economics.
    :param pos: the pair's state; the methods update it.
    :param log: a loguru-style logger (INFO for each decision).
    """

    def __init__(self, params: FundingArbParams, primary: str, hedge: str, carry: CarryModel, pos: ArbPosition, log: Any):
        self.params = params
        self.primary = primary
        self.hedge = hedge
        self.carry = carry
        self.pos = pos
        self.log = log
        self.guard = LeggingGuard(params, primary, hedge, pos, log)

    def order(self, md: Any, ticker: str, side: Side, size: Decimal, tag: str, reason: str, reduce_only: bool = False) -> OrderParams:
        """A market IOC order, or a post-only limit at the touch (``execution``).

        Limit prices: a buy at ``min(best bid, ask - tick)``, a sell at ``max(best ask, bid + tick)``
        (never crossing; on bar-only data bid = ask = the last close). dYdX accepts reduce-only
        only on IOC orders, so limit closes are plain orders sized to the position.
        """
        if self.params.execution is Execution.MARKET:
            return OrderParams(ticker=ticker, side=side, order_type=OrderType.MARKET, size=size,
                               time_in_force=TimeInForce.IOC, reduce_only=reduce_only, tag=tag, reason=reason)
        st = md.markets[ticker]
        market = st.market
        bid, ask = st.best_bid_offer()
        ref = md.marks.get(ticker) or st.mark_price()
        bid = bid if bid is not None else ref
        ask = ask if ask is not None else ref
        tick = market.tick_size
        if side is Side.BUY:
            px = market.round_price(min(bid, ask - tick), Side.BUY)
        else:
            px = market.round_price(max(ask, bid + tick), Side.SELL)
        return OrderParams(ticker=ticker, side=side, order_type=OrderType.LIMIT, size=size, price=px,
                           post_only=True, time_in_force=TimeInForce.POST_ONLY, tag=tag, reason=reason)

    def close_all(self, md: Any, sp: Decimal, sh: Decimal, reason: str) -> StrategyResult:
        """Orders closing both legs (``sp``/``sh`` signed sizes of the primary/hedge legs, base units)."""
        orders = []
        for t, s in ((self.primary, sp), (self.hedge, sh)):
            if s:
                orders.append(self.order(md, t, Side.SELL if s > 0 else Side.BUY, abs(s), CLOSE_TAG, reason, reduce_only=True))
        if not orders:
            return StrategyResult.nothing(reason)
        return StrategyResult(StrategyAction.PLACE_ORDERS, orders=tuple(orders), reason=reason)

    def complete_hedge(self, md: Any, resting: dict) -> StrategyResult | None:
        """One leg filled, the other's limit order still rests: cancel it and finish that leg with
        a market order, so the pair is delta-neutral again at once (legging risk control).

        :param resting: our resting orders (client id -> order info).
        :returns: ``REPLACE_ORDERS`` (cancel + market order), or None when the legs are within
            ``rebalance_tolerance``, there is nothing to cancel, or a market order is already on its way.
        """
        pos = self.pos
        pp, ph = price(md, self.primary), price(md, self.hedge)
        if pp is None or ph is None:
            return None
        sp, sh = md.position_size(self.primary), md.position_size(self.hedge)
        np_, nh = abs(sp) * pp, abs(sh) * ph
        target = pos.target_notional or self.params.notional_usd
        if not target or abs(np_ - nh) / target <= self.params.rebalance_tolerance:
            return None
        mp, mh = md.markets[self.primary].market, md.markets[self.hedge].market
        if pos.state == "exiting":
            # the leg still open is closed at market
            lag, size, market = (self.primary, sp, mp) if np_ > nh else (self.hedge, sh, mh)
            q = market.round_size(abs(size))
            side = Side.SELL if size > 0 else Side.BUY
            ro = True
        else:
            # the smaller leg is brought up to the larger one's notional
            if np_ < nh:
                lag, market, q = self.primary, mp, mp.round_size(nh / pp - abs(sp))
                side = Side.BUY if pos.long_leg == self.primary else Side.SELL
            else:
                lag, market, q = self.hedge, mh, mh.round_size(np_ / ph - abs(sh))
                side = Side.SELL if pos.long_leg == self.primary else Side.BUY
            ro = False
        if q < market.min_order_size:
            return None
        lag_orders = [(cid, o) for cid, o in resting.items() if o.ticker == lag]
        if any(o.order_type is not OrderType.LIMIT for _, o in lag_orders):
            return None  # a market order for that leg is already on its way
        cancels = tuple((cid, o.ticker) for cid, o in lag_orders)
        if not cancels:
            return None
        reason = (
            f"complete the hedge: {self.primary} {np_:.2f} USD vs {self.hedge} {nh:.2f} USD; "
            f"cancel the resting {lag} order and {side.value} {q} {lag} at market"
        )
        self.log.info(f"funding_arb: {reason}")
        order = OrderParams(ticker=lag, side=side, order_type=OrderType.MARKET, size=q, time_in_force=TimeInForce.IOC,
                            reduce_only=ro, tag=REBALANCE_TAG if not ro else CLOSE_TAG, reason=reason)
        pos.hedge_completions += 1
        return StrategyResult(StrategyAction.REPLACE_ORDERS, orders=(order,), cancels=cancels, reason=reason)

    def candidate(self, md: Any, now: int) -> tuple[dict | None, str]:
        """From flat: the entry economics when the pair may enter now, else None and why.

        :param now: decision time, ns.
        :returns: ``(economics, "")`` (:meth:`CarryModel.entry_economics`, with ``net > 0``),
            or ``(None, reason)``: warming up, cooling down, no rates or prices, a book too
            thin for the size, or a net carry not above zero (reason empty then).
        """
        pos = self.pos
        if not self.carry.warm():
            return None, "funding_arb: warming up funding history"
        if pos.exited_ns is not None and D(now - pos.exited_ns) / HOUR_NS < self.params.reentry_cooldown_h:
            return None, "funding_arb: cooling down after an exit"
        econ = self.carry.entry_economics(md)
        if econ is None:
            return None, ""
        if econ["thin"]:
            return None, f"funding_arb: {econ['thin']} book too thin for {self.params.notional_usd} USD"
        if econ["net"] <= 0:
            return None, ""
        return econ, ""

    def maybe_enter(self, md: Any, now: int, pp: Decimal, ph: Decimal) -> StrategyResult:
        """From flat: both entry orders when :meth:`candidate` allows (a single pair's decision).

        :param now: decision time, ns; :param pp: primary price, USD; :param ph: hedge price, USD.
        """
        econ, why = self.candidate(md, now)
        if econ is None:
            return StrategyResult.nothing(why)
        return self.enter(md, now, pp, ph, econ)

    def enter(self, md: Any, now: int, pp: Decimal, ph: Decimal, econ: dict, rank: str = "") -> StrategyResult:
        """Both entry orders, equal notional (sizes floored to each market's step).

        :param econ: the pair's :meth:`CarryModel.entry_economics`; :param rank: text put in the
            reason (e.g. ``"rank 1 of 4"``).
        :returns: ``PLACE_ORDERS`` with the two orders, or nothing when a leg is below its
            market's minimum order size (logged).
        """
        pos = self.pos
        mp = md.markets[self.primary].market
        mh = md.markets[self.hedge].market
        n = self.params.notional_usd
        qp = mp.round_size(n / pp)
        qh = mh.round_size(qp * pp / ph)
        if qp < mp.min_order_size or qh < mh.min_order_size:
            self.log.warning(f"funding_arb: notional {n} USD is below a leg's minimum order size ({self.primary}); not entering")
            return StrategyResult.nothing()
        edge, costs = econ["edge"], econ["costs"]
        reason = (
            f"enter{' (' + rank + ')' if rank else ''}: expected funding {self.primary} {econ['rp'] * 10000:.4f} bp/h vs "
            f"{self.hedge} {econ['rh'] * 10000:.4f} bp/h, "
            f"spread {econ['spread'] * 10000:.4f} bp/h x {self.params.horizon_h} h x {n} USD = edge {edge:.2f} USD "
            f"{'>' if edge > costs else '<='} costs {costs:.2f} USD ({self.params.execution.value} execution: fees "
            f"{econ['fees']:.2f} + slippage {econ['slippage']:.2f} on both legs, in and out, + safety margin), "
            f"basis {econ['basis']:+.2f} USD: net {econ['net']:+.2f} USD; long {econ['long']}, short {econ['short']}"
        )
        pos.state = "open"
        pos.long_leg = econ["long"]
        pos.entered_ns = now
        pos.target_notional = qp * pp
        pos.entry_orders += 1
        pos.entry_pending = True
        pos.entry_spread = econ["spread"]
        pos.leg_attempts = 0
        pos.leg_error = ""
        pos.last_reason = reason
        self.log.info(f"funding_arb: {reason}")
        side_p = Side.BUY if pos.long_leg == self.primary else Side.SELL
        return StrategyResult(
            StrategyAction.PLACE_ORDERS,
            orders=(self.order(md, self.primary, side_p, qp, OPEN_TAG, reason),
                    self.order(md, self.hedge, side_p.opposite, qh, OPEN_TAG, reason)),
            reason=reason,
        )

    def manage(self, md: Any, now: int, pp: Decimal, ph: Decimal, sp: Decimal, sh: Decimal) -> StrategyResult:
        """While held: exit (spread closed or flipped, or max hold), else rebalance the hedge leg
        (or re-place a missing primary leg) when the notionals drift beyond the tolerance.

        :param pp, ph: leg prices, USD; :param sp, sh: signed leg sizes, base units.
        """
        p = self.params
        pos = self.pos
        rates = self.carry.expected_rates()
        held_h = D(now - pos.entered_ns) / HOUR_NS
        exit_reason = None
        if rates is not None and pos.long_leg is not None:
            r_long = rates[0] if pos.long_leg == self.primary else rates[1]
            r_short = rates[1] if pos.long_leg == self.primary else rates[0]
            favour = r_short - r_long
            if favour <= p.exit_spread_1h:
                exit_reason = (
                    f"exit: spread in our favour {favour * 10000:.4f} bp/h <= {p.exit_spread_1h * 10000:.4f} bp/h "
                    f"({'flipped' if favour < 0 else 'closed'})"
                )
            elif pos.entry_spread > 0 and favour < p.exit_decay * pos.entry_spread:
                exit_reason = (
                    f"exit: spread in our favour decayed to {favour * 10000:.4f} bp/h < {p.exit_decay} x "
                    f"{pos.entry_spread * 10000:.4f} bp/h at entry"
                )
        if exit_reason is None and held_h >= p.max_hold_h:
            exit_reason = f"exit: held {held_h:.1f} h >= max {p.max_hold_h} h"
        if exit_reason is not None:
            pos.state = "exiting"
            pos.exits += 1
            pos.exit_reasons.append(exit_reason)
            pos.last_reason = exit_reason
            self.log.info(f"funding_arb: {exit_reason}")
            return self.close_all(md, sp, sh, exit_reason)
        # rebalance the hedge leg to the primary leg's notional
        np_, nh = abs(sp) * pp, abs(sh) * ph
        target = pos.target_notional or p.notional_usd
        drift = abs(np_ - nh) / target if target else ZERO
        if sp == 0 and sh == 0:
            pos.state = "flat"
            pos.long_leg = None
            if pos.entry_pending:
                pos.entry_pending = False
                return StrategyResult.nothing("funding_arb: entry orders did not fill; deciding again")
            pos.exited_ns = now  # both legs gone (closed by a risk policy)
            return StrategyResult.nothing("funding_arb: legs closed outside the strategy")
        if pos.entry_pending:
            legging = self.guard.check(md, now, pp, ph, sp, sh)
            if legging is not None:
                return legging
        if drift <= p.rebalance_tolerance:
            pos.max_drift = max(pos.max_drift, drift)
            return StrategyResult.nothing()
        mp = md.markets[self.primary].market
        mh = md.markets[self.hedge].market
        if sp == 0:
            # the primary leg is missing: place it (equal notional to the hedge)
            side = Side.BUY if pos.long_leg == self.primary else Side.SELL
            q = mp.round_size(nh / pp)
            if q < mp.min_order_size:
                return StrategyResult.nothing()
            reason = f"rebalance: primary leg missing, {side.value} {q} {self.primary} to match {nh:.2f} USD"
            pos.rebalances += 1
            return StrategyResult(StrategyAction.PLACE_ORDERS, orders=(self.order(md, self.primary, side, q, REBALANCE_TAG, reason),), reason=reason)
        want_h = mh.round_size(np_ / ph)
        hedge_side = Side.SELL if pos.long_leg == self.primary else Side.BUY  # the hedge leg's direction
        delta = want_h - abs(sh)
        if delta > 0:
            side, q = hedge_side, delta
            ro = False
        else:
            side, q = hedge_side.opposite, -delta
            ro = True
        q = mh.round_size(q)
        if q < mh.min_order_size:
            pos.max_drift = max(pos.max_drift, drift)
            return StrategyResult.nothing()
        reason = (
            f"rebalance: notional {self.primary} {np_:.2f} USD vs {self.hedge} {nh:.2f} USD, drift {drift * 100:.2f}% "
            f"> {p.rebalance_tolerance * 100}%: {side.value} {q} {self.hedge}"
        )
        pos.rebalances += 1
        self.log.info(f"funding_arb: {reason}")
        return StrategyResult(
            StrategyAction.PLACE_ORDERS,
            orders=(self.order(md, self.hedge, side, q, REBALANCE_TAG, reason, reduce_only=ro),),
            reason=reason,
        )
