"""Delta-neutral funding-rate arbitrage across two venues, scanning every coin listed on both.

Legs: for each coin, the primary market ``BTC-USD`` (primary venue, e.g. dYdX or
Hyperliquid) and the same coin on a second venue, ``"<hedge_venue>:BTC-USD"`` (the
multi-venue ticker convention; the bot routes each order to its venue). The coins scanned
are every coin whose two legs are among the run's markets
(:func:`~perpbot.strategies.funding_arb.pair.discover_pairs`; ``coins`` or ``ticker``
narrow it). A run that names no tickers (or ``tickers = "all"``) gets both legs of every
coin listed on both venues: the strategy ``discovers_markets`` and its
:meth:`FundingArb.select_markets` picks them from the venues' listings at start. Funding is compared per hour: every settled :class:`~perpbot.FundingRate`
carries ``rate_1h`` (the venue's rate / ``interval_h``; dYdX and Hyperliquid pay every
hour, Binance every 8 or 4: intervals are data, never constants).

Expected rates: per leg, an exponential moving average of the settled per-hour rates,
weighted by the hours each settlement covers: ``ema += a * (rate_1h - ema)`` with
``a = 1 - 0.5 ** (hours / rate_halflife_h)``, where ``hours`` is the time since the
previous settlement seen on that leg.

Ranking and entry (flat pairs, both legs warmed up with ``warmup_h`` hours of funding
history, not cooling down): each coin's expected net carry over ``horizon_h`` for
``notional_usd`` per leg, long the cheap leg and short the rich one (longs pay a positive
rate, shorts receive it; docs/dydx-v4.md section 2)::

    edge  = (r_rich - r_cheap) * horizon_h * N                                  (USD)
    costs = fees in and out on both legs (maker or taker by ``execution``)
          + slippage in and out on both legs (market execution: the live L2 book walked at the size)
          + N * safety_margin
    basis = basis_convergence * (P_short - P_long) / mid * N
    net   = edge + basis - costs

(:mod:`~perpbot.strategies.funding_arb.carry`). The coins with ``net > 0`` are entered best
first while fewer than ``max_pairs`` pairs are held and the gross notional (both legs,
all pairs) stays within ``max_gross_usd``.

Execution (``execution``): ``limit`` (default) rests post-only orders at the touch
(maker fees, no slippage; orders not filled after ``requote_s`` are canceled and the
next cycle decides again); ``market`` sends IOC market orders (taker fees, book
slippage). Both legs have equal notional: ``q_primary = N / P_primary``,
``q_hedge = q_primary * P_primary / P_hedge``, each floored to its market's step.

While held (:mod:`~perpbot.strategies.funding_arb.legs`):

- both legs or neither (:mod:`~perpbot.strategies.funding_arb.legging`): a failed or
  partly filled second leg is completed at market within ``leg_retries`` orders and
  ``leg_timeout_h`` hours, else the first leg is unwound; each with its reason logged;
- exit (both legs) when the expected spread in the position's favour reverses or closes
  (``<= exit_spread_1h``), decays below ``exit_decay`` x the spread at entry (hysteresis:
  entry needs the round trip paid, staying much less), or after ``max_hold_h``;
- rebalance when the legs' notionals drift apart: ``|N_primary - N_hedge| >
  rebalance_tolerance * N`` trades the hedge leg back to the primary leg's notional.

Bookkeeping per leg and per coin (``summary_lines``): funding collected (from
``MarketData.positions[leg].funding`` each cycle, or exactly from
:meth:`FundingArb.on_funding_payment` when the bot forwards payments), fees (from fills),
price PnL (average-entry accounting of the fills, marked to the last mark), and the net;
the coins' totals sum to the run's total (:mod:`~perpbot.strategies.funding_arb.pnl`).

Source: seed 001 (``/work/shared/seeds/001_*.txt``, week 5 "Funding rate arbitrage
strategies", week 11 "Cross-market funding rate arbitrage"); the rules above are this
project's.

Layout: parameters in :mod:`~perpbot.strategies.funding_arb.params`, the expected rates
and entry economics in :mod:`~perpbot.strategies.funding_arb.carry`, one coin's legs and
decision in :mod:`~perpbot.strategies.funding_arb.pair`, entering, exiting, rebalancing and
completing legs in :mod:`~perpbot.strategies.funding_arb.legs`, the PnL split in
:mod:`~perpbot.strategies.funding_arb.pnl`. This module holds :class:`FundingArb`, which
finds the pairs, ranks the candidates, merges the pairs' orders into one decision and
persists the state, and re-exports the names that used to live here.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

from loguru import logger as _default_logger

from perpbot import BaseStrategy, StrategyAction, StrategyResult

from perpbot.strategies.funding_arb.carry import CarryModel, RateEma
from perpbot.strategies.funding_arb.legs import price
from perpbot.strategies.funding_arb.pair import FLAT, Pair, discover_pairs, select_listed
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
)
from perpbot.strategies.funding_arb.pnl import LegBook, coin_lines, leg_lines, totals

__all__ = [
    "CLOSE_TAG", "CarryModel", "D", "Execution", "FundingArb", "FundingArbParams", "HOUR_NS", "LegBook", "NS", "ONE",
    "OPEN_TAG", "REBALANCE_TAG", "RateEma", "ZERO",
]


def _pos_attr(name: str, doc: str) -> property:
    """A read-write attribute of the strategy that lives in its first pair's :class:`ArbPosition`
    (the single-coin view kept from before the multi-coin scan)."""

    def get(self):
        return getattr(self.position, name)

    def set(self, value):
        setattr(self.position, name, value)

    return property(get, set, doc=doc)


def merge(results: list[StrategyResult]) -> StrategyResult:
    """One decision from the pairs' decisions: every pair's cancels, then every pair's orders.

    :returns: the only result when there is one; else ``REPLACE_ORDERS`` (cancels and
        orders), ``CANCEL_ORDERS``, ``PLACE_ORDERS`` or nothing, the reasons joined by ``"; "``.
    """
    if len(results) == 1:
        return results[0]
    orders = tuple(o for r in results for o in r.orders)
    cancels = tuple(c for r in results for c in r.cancels)
    acting = [r.reason for r in results if (r.orders or r.cancels) and r.reason]
    reason = "; ".join(acting or [r.reason for r in results if r.reason])
    if orders and cancels:
        return StrategyResult(StrategyAction.REPLACE_ORDERS, orders=orders, cancels=cancels, reason=reason)
    if cancels:
        return StrategyResult(StrategyAction.CANCEL_ORDERS, cancels=cancels, reason=reason)
    if orders:
        return StrategyResult(StrategyAction.PLACE_ORDERS, orders=orders, reason=reason)
    return StrategyResult.nothing(reason)


class FundingArb(BaseStrategy):
    """Delta-neutral funding arbitrage between two venues over every coin listed on both
    (see the module docstring).

    Collaborators: ``pairs`` (coin -> :class:`~perpbot.strategies.funding_arb.pair.Pair`, each
    with its ``carry``, ``position``, ``legs_manager`` and ``legs``). The attributes
    ``primary``, ``hedge``, ``carry``, ``position``, ``legs_manager``, ``legs`` and the
    counters (``state``, ``entries``, ...) are the FIRST pair's (a single-coin run's view).

    :param params: :class:`FundingArbParams`.
    :param context: the :class:`perpbot.StrategyContext` (``tickers``: the run's tickers).
    :raises ConfigError: no primary ticker, a leg not among the run's tickers, or a requested
        coin not listed on both venues (one line naming it).
    """

    name = "funding_arb"
    description = "delta-neutral funding arbitrage over every coin on two venues: long the cheap-funding perp, short the rich one"
    Params = FundingArbParams
    #: a run without tickers (or ``--ticker all``) trades every coin listed on both venues
    discovers_markets = True

    @classmethod
    def select_markets(cls, params: FundingArbParams, listings: Mapping[str, tuple], primary_venue: str) -> tuple:
        """Both legs of every coin listed on both venues
        (:func:`~perpbot.strategies.funding_arb.pair.select_listed`; ``coins``/``ticker`` narrow it).

        :raises ConfigError: no coin on both venues, or a requested coin missing on one (one line).
        """
        return select_listed(params, listings, primary_venue, _default_logger.bind(strategy=cls.name))

    state = _pos_attr("state", "``flat``, ``open`` or ``exiting``")
    long_leg = _pos_attr("long_leg", "ticker of the leg held long, None when flat")
    entered_ns = _pos_attr("entered_ns", "time of the entry decision, ns since the epoch")
    exited_ns = _pos_attr("exited_ns", "time the pair was last found flat after an exit, ns (None: never)")
    target_notional = _pos_attr("target_notional", "notional per leg at entry, USD")
    entries = _pos_attr("entries", "entries whose two legs were seen balanced")
    entry_orders = _pos_attr("entry_orders", "entry attempts (pairs of orders sent)")
    exits = _pos_attr("exits", "exit decisions (unwinds included)")
    rebalances = _pos_attr("rebalances", "rebalance orders sent")
    hedge_completions = _pos_attr("hedge_completions", "half-filled pairs completed at market (resting or failed second legs)")
    unwinds = _pos_attr("unwinds", "entries unwound because the second leg could not be completed")
    max_drift = _pos_attr("max_drift", "largest |N_p - N_h| / N left after a decision with both legs on (fraction)")
    last_reason = _pos_attr("last_reason", "the last entry or exit reason")

    def __init__(self, params: FundingArbParams, context):
        super().__init__(params, context)
        self.log = context.logger or _default_logger.bind(strategy=self.name)
        #: coin -> its :class:`Pair`, in the order of the run's tickers
        self.pairs: dict[str, Pair] = {}
        for primary, hedge in discover_pairs(tuple(context.tickers or ()), params):
            pair = Pair(params, primary, hedge, self.log)
            self.pairs.setdefault(pair.coin, pair)
        first = next(iter(self.pairs.values()))
        self.primary, self.hedge = first.primary, first.hedge
        self.hedge_venue = first.hedge.split(":", 1)[0]
        self.carry, self.position, self.legs_manager, self.legs = first.carry, first.position, first.legs_manager, first.legs
        self._by_ticker = {t: pair for pair in self.pairs.values() for t in pair.legs}
        #: the last ranking of flat candidates: ``[(coin, expected net carry USD), ...]`` best first
        self.last_ranking: list[tuple[str, Decimal]] = []
        #: most pairs held (open, entering or exiting) after a decision (bounded by ``max_pairs``)
        self.max_held = 0

    @property
    def rates(self) -> dict[str, RateEma]:
        """ticker -> :class:`RateEma` of its settled per-hour funding, the first pair's (primary leg first)."""
        return self.carry.rates

    # -- decisions ----------------------------------------------------------------------

    async def should_execute(self, market_data) -> bool:
        """Fold in new funding settlements and the legs' funding and marks (every cycle, every
        pair), then decide when at least one pair has both legs tradable."""
        for pair in self.pairs.values():
            pair.observe(market_data)
        return any(pair.tradable(market_data) for pair in self.pairs.values())

    def expected_rates(self) -> tuple[Decimal, Decimal] | None:
        """``(primary, hedge)`` expected per-hour funding rates of the first pair (fractions), None until both legs have one."""
        return self.carry.expected_rates()

    def fill_costs(self, md) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(fee primary, fee hedge, slippage primary, slippage hedge) per fill at the touch, the
        first pair's (:meth:`CarryModel.fill_costs`)."""
        return self.carry.fill_costs(md)

    def entry_economics(self, md) -> dict | None:
        """The first pair's entry economics (USD, per-hour fractions), or None without rates
        (:meth:`perpbot.strategies.funding_arb.carry.CarryModel.entry_economics`)."""
        return self.carry.entry_economics(md)

    def rank(self, md, pairs) -> tuple[list[tuple[Pair, dict]], list[str]]:
        """The flat ``pairs`` that may enter, best expected net carry first.

        :returns: ``([(pair, economics), ...] sorted by net USD descending, [reasons of those that may not])``.
        """
        cands, why = [], []
        for pair in pairs:
            econ, reason = pair.legs_manager.candidate(md, md.ts_ns)
            if econ is not None:
                cands.append((pair, econ))
            elif reason:
                why.append(reason)
        cands.sort(key=lambda pe: (-pe[1]["net"], pe[0].coin))
        return cands, why

    async def execute_strategy(self, market_data) -> StrategyResult:
        """One decision over all pairs: each pair's own step (:meth:`Pair.step`: resting
        orders, exits, legging, rebalancing), then the flat pairs ranked by expected net
        carry and the best entered within ``max_pairs`` and ``max_gross_usd``; the pairs'
        orders are merged into one result (:func:`merge`)."""
        md = market_data
        p = self.params
        results: list[StrategyResult] = []
        flat: list[Pair] = []
        held = 0
        gross = ZERO
        for pair in self.pairs.values():
            if not pair.tradable(md):
                if pair.position.state != "flat":
                    held += 1
                    gross += pair.notional(md)
                continue
            r = pair.step(md)
            if r == FLAT:
                flat.append(pair)
                continue
            results.append(r)
            if pair.position.state != "flat":
                held += 1
                gross += max(pair.notional(md), 2 * pair.position.target_notional)
        if flat:
            cands, why = self.rank(md, flat)
            self.last_ranking = [(pair.coin, econ["net"]) for pair, econ in cands]
            limit = p.max_gross_usd or p.max_pairs * 2 * p.notional_usd
            for i, (pair, econ) in enumerate(cands, start=1):
                if held >= p.max_pairs:
                    why.append(f"funding_arb: {pair.coin} ranks {i} (net {econ['net']:+.2f} USD) but {held} pairs are held (max_pairs {p.max_pairs})")
                    break
                if gross + 2 * p.notional_usd > limit:
                    why.append(f"funding_arb: {pair.coin} would take the gross notional to {gross + 2 * p.notional_usd} USD > {limit} USD")
                    break
                pp, ph = price(md, pair.primary), price(md, pair.hedge)
                rank = f"rank {i} of {len(cands)}" if len(self.pairs) > 1 else ""
                r = pair.legs_manager.enter(md, md.ts_ns, pp, ph, econ, rank)
                if r.orders:
                    held += 1
                    gross += 2 * p.notional_usd
                results.append(r)
            if not results and why:
                results.append(StrategyResult.nothing("; ".join(dict.fromkeys(why)) if len(self.pairs) > 1 else why[0]))
        self.max_held = max(self.max_held, held)
        if not results:
            return StrategyResult.nothing()
        return merge(results)

    # -- feedback -----------------------------------------------------------------------------

    def on_fill(self, fill) -> None:
        """Book a fill on its leg (:meth:`LegBook.apply_fill`); other markets are ignored."""
        pair = self._by_ticker.get(fill.ticker)
        if pair is None:
            return
        pair.legs[fill.ticker].apply_fill(fill.side, fill.size, fill.price, fill.fee)

    def on_order_update(self, update) -> None:
        """Remember the venue's message of a rejected or canceled order on a leg (for the legging log)."""
        pair = self._by_ticker.get(update.ticker)
        if pair is not None:
            pair.on_order_update(update)

    def on_funding_payment(self, payment) -> None:
        """Exact per-leg funding (``payment.amount`` USD, + received), when the bot forwards payments."""
        pair = self._by_ticker.get(payment.ticker)
        if pair is None:
            return
        pair.legs[payment.ticker].add_payment(payment.amount)

    # -- persistence ------------------------------------------------------------------------------

    def get_state(self) -> Mapping[str, Any]:
        """Every pair's state, counters, leg books and rate averages, JSON-ready (version 2:
        ``{"version": 2, "pairs": {coin: Pair.get_state()}}``, plus the first pair's fields at the
        top level as version 1 had them)."""
        first = next(iter(self.pairs.values()))
        return dict(first.get_state(), version=2, pairs={c: pair.get_state() for c, pair in self.pairs.items()})

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Load :meth:`get_state`'s data (version 2, or a version-1 single-pair state); pairs
        not in this run are ignored."""
        if not state:
            return
        per_pair = state.get("pairs") if state.get("version", 1) >= 2 else None
        if per_pair is None:
            per_pair = {"": state}
        for d in per_pair.values():
            for pair in self.pairs.values():
                pair.restore_state(d)

    # -- report ---------------------------------------------------------------------------------------

    def totals(self) -> dict:
        """Every leg of every pair summed, USD: ``{"funding", "fees", "price_pnl", "net"}``
        (:func:`perpbot.strategies.funding_arb.pnl.totals`)."""
        return totals(leg for pair in self.pairs.values() for leg in pair.legs.values())

    def coin_totals(self) -> dict[str, dict]:
        """coin -> its two legs summed, USD (``{"funding", "fees", "price_pnl", "net"}``); they add up to :meth:`totals`."""
        return {c: totals(pair.legs.values()) for c, pair in self.pairs.items()}

    def summary_lines(self) -> list[str]:
        """End-of-run lines. One pair: counts and state, then funding, fees and price PnL per leg
        (USD), the net, and the drift left. Several: the same per coin (counts, legs, the
        coin's total), then the run's total (:func:`perpbot.strategies.funding_arb.pnl.coin_lines`)."""
        if len(self.pairs) == 1:
            pair = next(iter(self.pairs.values()))
            pos = pair.position
            lines = [
                f"funding_arb {pair.primary} vs {pair.hedge}: {pos.entries} entries ({pos.entry_orders} attempts), {pos.exits} exits, "
                f"{pos.rebalances} rebalances, {pos.hedge_completions} hedge completions at market, {pos.unwinds} unwinds; now {pos.state}"
                + (f" (long {pos.long_leg})" if pos.long_leg else "")
            ]
            lines += leg_lines(pair.legs, pair.rates)
            lines.append(f"  largest leg notional drift left after a decision: {pos.max_drift * 100:.3f}% (tolerance {self.params.rebalance_tolerance * 100}%)")
            return lines
        return coin_lines(self.pairs, self.hedge_venue, self.params)
