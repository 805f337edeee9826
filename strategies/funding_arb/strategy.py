"""Delta-neutral funding-rate arbitrage across two venues.

Legs: the primary market ``BTC-USD`` (primary venue, e.g. dYdX) and the same coin on a
second venue, ``"<hedge_venue>:BTC-USD"`` (the multi-venue ticker convention; the bot
routes each order to its venue). Funding is compared per hour: every settled
:class:`~perpbot.FundingRate` carries ``rate_1h`` (the venue's rate / ``interval_h``;
dYdX pays every hour, Binance every 8: intervals are data, never constants).

Expected rates: per leg, an exponential moving average of the settled per-hour rates,
weighted by the hours each settlement covers: ``ema += a * (rate_1h - ema)`` with
``a = 1 - 0.5 ** (hours / rate_halflife_h)``, where ``hours`` is the time since the
previous settlement seen on that leg.

Entry (flat, both legs warmed up with ``warmup_h`` hours of funding history). With ``N``
the notional per leg (USD), the cheap leg (lower expected rate ``r_cheap``) bought and the
rich leg (``r_rich``) sold, funding received per hour is ``N * (r_rich - r_cheap)``
(longs pay a positive rate, shorts receive it; docs/dydx-v4.md section 2)::

    edge  = (r_rich - r_cheap) * horizon_h * N                                  (USD)
    costs = N * (2 * (fee_primary + slip_primary) + 2 * (fee_hedge + slip_hedge))   (open + close, both legs)
          + N * safety_margin
    enter when edge > costs

Execution (``execution``): ``limit`` (default) rests post-only orders at the touch
(maker fees, no slippage; orders not filled after ``requote_s`` are canceled and the
next cycle decides again, placing a missing leg through the rebalance rule); ``market``
sends IOC market orders (taker fees; slippage = the larger of ``slippage`` and the
venue's half spread / mid). Both legs have equal notional: ``q_primary = N / P_primary``,
``q_hedge = q_primary * P_primary / P_hedge``, each floored to its market's step.

While held:

- exit (both legs; reduce-only with market execution) when the expected spread in the
  position's favour ``<= exit_spread_1h`` (closed or flipped), or after ``max_hold_h``;
- rebalance when the legs' notionals drift apart: ``|N_primary - N_hedge| >
  rebalance_tolerance * N`` trades the hedge leg back to the primary leg's notional (a
  missing leg, e.g. a rejected order, is re-placed the same way).

Bookkeeping per leg (``summary_lines``): funding collected (from
``MarketData.positions[leg].funding`` each cycle, or exactly from
:meth:`FundingArb.on_funding_payment` when the bot forwards payments), fees (from fills),
price PnL (average-entry accounting of the fills, marked to the last mark), and the net.

Source: seed 001 (``/work/shared/seeds/001_*.txt``, week 5 "Funding rate arbitrage
strategies", week 11 "Cross-market funding rate arbitrage"); the rules above are this
project's.

Layout: parameters in :mod:`~perpbot.strategies.funding_arb.params`, the expected rates
and entry economics in :mod:`~perpbot.strategies.funding_arb.carry`, entering, exiting,
rebalancing and completing legs in :mod:`~perpbot.strategies.funding_arb.legs`, the PnL
split per leg in :mod:`~perpbot.strategies.funding_arb.pnl`. This module holds
:class:`FundingArb`, which resolves the legs, runs the decision cycle and persists the
state, and re-exports the names that used to live here.
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Any, Mapping

import attrs
from loguru import logger as _default_logger

from perpbot import (
    BaseStrategy,
    ConfigError,
    OrderParams,
    OrderType,
    Side,
    StrategyAction,
    StrategyResult,
    TimeInForce,
    in_range,
    param,
)

from perpbot.strategies.funding_arb.carry import CarryModel, RateEma
from perpbot.strategies.funding_arb.legs import ArbPosition, LegManager, price
from perpbot.strategies.funding_arb.params import (
    CLOSE_TAG,
    HOUR_NS,
    NS,
    ONE,
    OPEN_TAG,
    REBALANCE_TAG,
    ZERO,
    D,
    Execution,
    FundingArbParams,
    _positive,
)
from perpbot.strategies.funding_arb.pnl import LegBook, leg_lines, totals

__all__ = [
    "CLOSE_TAG", "D", "Execution", "FundingArb", "FundingArbParams", "HOUR_NS", "LegBook", "NS", "ONE",
    "OPEN_TAG", "REBALANCE_TAG", "RateEma", "ZERO",
]


def _pos_attr(name: str, doc: str) -> property:
    """A read-write attribute of the strategy that lives in its :class:`ArbPosition`."""

    def get(self):
        return getattr(self.position, name)

    def set(self, value):
        setattr(self.position, name, value)

    return property(get, set, doc=doc)


class FundingArb(BaseStrategy):
    """Delta-neutral funding arbitrage between two venues (see the module docstring).

    Collaborators: ``carry`` (:class:`CarryModel`: expected per-hour rates, costs, edge),
    ``position`` (:class:`ArbPosition`: state and counters), ``legs_manager``
    (:class:`LegManager`: entry, exit, rebalance, hedge completion) and ``legs``
    (ticker -> :class:`LegBook`: funding, fees and price PnL per leg, USD).

    :param params: :class:`FundingArbParams`.
    :param context: the :class:`perpbot.StrategyContext` (``tickers``: the run's tickers).
    :raises ConfigError: no primary ticker, or a leg not among the run's tickers (one line
        naming the leg and the ``--ticker`` to use).
    """

    name = "funding_arb"
    description = "delta-neutral funding arbitrage: long the cheap-funding perp, short the rich one, equal notional"
    Params = FundingArbParams

    state = _pos_attr("state", "``flat``, ``open`` or ``exiting``")
    long_leg = _pos_attr("long_leg", "ticker of the leg held long, None when flat")
    entered_ns = _pos_attr("entered_ns", "time of the entry decision, ns since the epoch")
    exited_ns = _pos_attr("exited_ns", "time the pair was last found flat after an exit, ns (None: never)")
    target_notional = _pos_attr("target_notional", "notional per leg at entry, USD")
    entries = _pos_attr("entries", "entries that got at least one leg filled")
    entry_orders = _pos_attr("entry_orders", "entry attempts (pairs of orders sent)")
    exits = _pos_attr("exits", "exit decisions")
    rebalances = _pos_attr("rebalances", "rebalance orders sent")
    hedge_completions = _pos_attr("hedge_completions", "half-filled pairs completed at market")
    max_drift = _pos_attr("max_drift", "largest |N_p - N_h| / N left after a decision with both legs on (fraction)")
    last_reason = _pos_attr("last_reason", "the last entry or exit reason")

    def __init__(self, params: FundingArbParams, context):
        super().__init__(params, context)
        self.log = context.logger or _default_logger.bind(strategy=self.name)
        tickers = tuple(context.tickers or ())
        primary = params.ticker or next((t for t in tickers if ":" not in t), "")
        if not primary:
            raise ConfigError("strategy funding_arb: no primary ticker (set the ticker parameter or run with --ticker BTC,binance:BTC)")
        venue = params.hedge_venue or next(
            (t.split(":", 1)[0] for t in tickers if ":" in t and t.split(":", 1)[1] == primary), "binance"
        )
        self.primary = primary
        self.hedge = f"{venue}:{primary}"
        self.hedge_venue = venue
        if tickers and (self.hedge not in tickers or self.primary not in tickers):
            missing = self.primary if self.primary not in tickers else self.hedge
            raise ConfigError(
                f"strategy funding_arb: leg {missing!r} is not among the run's tickers ({', '.join(tickers)}); "
                f"run with both legs, e.g. --ticker {primary.split('-')[0]},{venue}:{primary.split('-')[0]}"
            )
        self.legs = {self.primary: LegBook(self.primary), self.hedge: LegBook(self.hedge)}
        self.carry = CarryModel(params, self.primary, self.hedge)
        self.position = ArbPosition()
        self.legs_manager = LegManager(params, self.primary, self.hedge, self.carry, self.position, self.log)

    @property
    def rates(self) -> dict[str, RateEma]:
        """ticker -> :class:`RateEma` of its settled per-hour funding (primary leg first)."""
        return self.carry.rates

    # -- inputs ----------------------------------------------------------------------

    def _observe(self, md) -> None:
        for t, leg in self.legs.items():
            pos = md.positions.get(t)
            leg.observe_position(pos.funding if pos is not None else None)
            mark = md.marks.get(t)
            if mark is not None:
                leg.last_mark = mark

    def _resting(self, md) -> dict:
        return {cid: o for cid, o in md.open_orders.items() if (o.tag or "").startswith("farb") and o.ticker in self.legs}

    # -- decisions ----------------------------------------------------------------------

    async def should_execute(self, market_data) -> bool:
        """Fold in new funding settlements and the legs' funding and marks (every cycle), then
        decide only when both legs are tradable."""
        self.carry.update(market_data)
        self._observe(market_data)
        return self.primary in market_data.tradable and self.hedge in market_data.tradable

    def expected_rates(self) -> tuple[Decimal, Decimal] | None:
        """``(primary, hedge)`` expected per-hour funding rates (fractions), None until both legs have one."""
        return self.carry.expected_rates()

    def fill_costs(self, md) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(fee primary, fee hedge, slippage primary, slippage hedge) per fill, fractions of notional.

        Limit execution: maker fees, no slippage (the order rests at the touch). Market
        execution: taker fees and ``max(slippage, half spread / mid)`` per venue.
        """
        return self.carry.fill_costs(md)

    def entry_economics(self, md) -> dict | None:
        """Numbers behind the entry decision (USD, per-hour fractions), or None without rates
        (:meth:`perpbot.strategies.funding_arb.carry.CarryModel.entry_economics`)."""
        return self.carry.entry_economics(md)

    async def execute_strategy(self, market_data) -> StrategyResult:
        """One decision: deal with our resting orders first (complete a half-filled pair at
        market, cancel orders older than ``requote_s``, else wait), then by state: finish an
        exit, adopt legs found open, enter from flat, or manage the open pair (exit/rebalance).
        """
        md = market_data
        now = md.ts_ns
        lm = self.legs_manager
        resting = self._resting(md)
        if resting and self.params.complete_with_market:
            done = lm.complete_hedge(md, resting)
            if done is not None:
                return done
        if resting:
            stale = [
                (cid, o.ticker)
                for cid, o in resting.items()
                if o.order_type is OrderType.LIMIT and D(now - (o.created_ns or now)) / NS >= self.params.requote_s
            ]
            if stale:
                return StrategyResult(StrategyAction.CANCEL_ORDERS, cancels=tuple(stale),
                                      reason=f"funding_arb: {len(stale)} order(s) unfilled after {self.params.requote_s}s: cancel, then decide again")
            return StrategyResult.nothing("funding_arb: orders in flight")
        pp, ph = price(md, self.primary), price(md, self.hedge)
        if pp is None or ph is None:
            return StrategyResult.nothing("funding_arb: no prices yet")
        sp, sh = md.position_size(self.primary), md.position_size(self.hedge)
        if self.state == "exiting":
            if sp == 0 and sh == 0:
                self.state = "flat"
                self.exited_ns = now
                self.long_leg = None
            else:
                return lm.close_all(md, sp, sh, "finishing exit")
        if self.state == "flat":
            if sp or sh:
                # positions the strategy did not open (adopted after a restart without state): manage them
                self.state = "open"
                self.long_leg = self.primary if sp > 0 else self.hedge
                self.target_notional = max(abs(sp) * pp, abs(sh) * ph)
                self.entered_ns = now
                self.log.info(f"funding_arb: adopted existing legs {self.primary} {sp}, {self.hedge} {sh}")
            else:
                return lm.maybe_enter(md, now, pp, ph)
        return lm.manage(md, now, pp, ph, sp, sh)

    # -- feedback -----------------------------------------------------------------------------

    def on_fill(self, fill) -> None:
        """Book a fill on one of the legs (:meth:`LegBook.apply_fill`); other markets are ignored."""
        leg = self.legs.get(fill.ticker)
        if leg is None:
            return
        leg.apply_fill(fill.side, fill.size, fill.price, fill.fee)

    def on_funding_payment(self, payment) -> None:
        """Exact per-leg funding (``payment.amount`` USD, + received), when the bot forwards payments."""
        leg = self.legs.get(payment.ticker)
        if leg is None:
            return
        leg.add_payment(payment.amount)

    # -- persistence ------------------------------------------------------------------------------

    def get_state(self) -> Mapping[str, Any]:
        """The pair's state, counters, leg books and rate averages, JSON-ready (version 1)."""
        return {
            "version": 1,
            "primary": self.primary,
            "hedge": self.hedge,
            "state": self.state,
            "long_leg": self.long_leg,
            "entered_ns": self.entered_ns,
            "exited_ns": self.exited_ns,
            "target_notional": str(self.target_notional),
            "counts": [self.entries, self.exits, self.rebalances, self.entry_orders],
            "legs": {t: leg.to_json() for t, leg in self.legs.items()},
            "rates": {t: r.to_json() for t, r in self.rates.items()},
        }

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Load :meth:`get_state`'s data; a state for other legs is ignored. Leg funding is
        rebased (:meth:`LegBook.rebase`): counted funding kept, increments measured anew."""
        if not state or state.get("primary") != self.primary or state.get("hedge") != self.hedge:
            return
        self.state = state.get("state", "flat")
        self.long_leg = state.get("long_leg")
        self.entered_ns = int(state.get("entered_ns") or 0)
        self.exited_ns = state.get("exited_ns")
        self.target_notional = D(state.get("target_notional", "0"))
        counts = list(state.get("counts", [])) + [0, 0, 0, 0]
        self.entries, self.exits, self.rebalances, self.entry_orders = (int(c) for c in counts[:4])
        for t, d in (state.get("legs") or {}).items():
            if t in self.legs:
                leg = LegBook.from_json(d)
                leg.rebase()
                self.legs[t] = leg
        for t, d in (state.get("rates") or {}).items():
            if t in self.rates:
                self.rates[t] = RateEma.from_json(d)

    # -- report ---------------------------------------------------------------------------------------

    def totals(self) -> dict:
        """Both legs summed, USD: ``{"funding", "fees", "price_pnl", "net"}`` (:func:`perpbot.strategies.funding_arb.pnl.totals`)."""
        return totals(self.legs.values())

    def summary_lines(self) -> list[str]:
        """End-of-run lines: counts and state, then funding, fees and price PnL per leg (USD), the net, and the drift left."""
        lines = [
            f"funding_arb {self.primary} vs {self.hedge}: {self.entries} entries ({self.entry_orders} attempts), {self.exits} exits, "
            f"{self.rebalances} rebalances, {self.hedge_completions} hedge completions at market; now {self.state}"
            + (f" (long {self.long_leg})" if self.long_leg else "")
        ]
        lines += leg_lines(self.legs, self.rates)
        lines.append(f"  largest leg notional drift left after a decision: {self.max_drift * 100:.3f}% (tolerance {self.params.rebalance_tolerance * 100}%)")
        return lines
