"""Carry estimation for funding arbitrage: expected per-hour funding per leg, costs, and the entry edge.

Expected rates (:class:`RateEma`): per leg, an exponential moving average of the settled
per-hour rates (``FundingRate.rate_1h`` = the venue's rate / ``interval_h``; dYdX pays
every hour, Binance every 8: intervals are data, never constants), weighted by the hours
each settlement covers::

    ema += a * (rate_1h - ema),   a = 1 - 0.5 ** (hours / rate_halflife_h)

where ``hours`` is the time since the previous settlement seen on that leg (the first
settlement seeds the average and counts ``interval_h`` hours).

Entry economics (:meth:`CarryModel.entry_economics`), with ``N`` the notional per leg
(USD), the cheap leg (lower expected rate ``r_cheap``) bought and the rich leg sold;
longs pay a positive rate, shorts receive it (``../shared/docs/dydx-v4.md`` section 2:
dydxprotocol/v4-chain ``protocol/x/perpetuals/lib/lib.go`` ``GetSettlementPpmWithPerpetual``), so
funding received per hour is ``N * (r_rich - r_cheap)``::

    edge  = (r_rich - r_cheap) * horizon_h * N                                         (USD)
    costs = N * (2 * (fee_primary + slip_primary) + 2 * (fee_hedge + slip_hedge))     (open + close, both legs)
          + N * safety_margin
    enter when edge > costs

Costs per fill (:meth:`CarryModel.fill_costs`): limit execution pays maker fees and no
slippage (the order rests at the touch); market execution pays taker fees and
``max(slippage, half spread / mid)`` per venue, the half spread being
``(ask - bid) / (ask + bid)``.

Source: seed 001 (``/work/shared/seeds/001_*.txt``, week 5 "Funding rate arbitrage
strategies", week 11 "Funding rate prediction models": here the simplest predictor, an
EMA). Imports only :mod:`perpbot` and :mod:`perpbot.strategies.funding_arb.params`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

import attrs

from perpbot.strategies.funding_arb.params import D, HOUR_NS, ONE, ZERO, Execution, FundingArbParams


@attrs.define
class RateEma:
    """Moving average of one leg's settled per-hour funding rate (formula: module docstring).

    :ivar value: the average, a per-hour rate (fraction), None before the first settlement.
    :ivar last_ts: time of the last settlement used, ns since the epoch.
    :ivar hours: hours of funding history covered (compared with ``warmup_h``).
    :ivar interval_h: the venue's funding interval at the last settlement, hours.
    """

    value: Decimal | None = None
    last_ts: int | None = None
    hours: Decimal = ZERO  # hours of history covered
    interval_h: int = 1

    def update(self, rate_1h: Decimal, ts_ns: int, interval_h: int, halflife_h: Decimal) -> None:
        """Fold in one settlement: ``rate_1h`` per-hour rate (fraction) settled at ``ts_ns`` (ns) on
        a venue paying every ``interval_h`` hours; ``halflife_h`` hours. A settlement not newer
        than the last one is ignored (the same rate is seen every cycle until the next)."""
        if self.last_ts is not None and ts_ns <= self.last_ts:
            return
        hours = D(interval_h) if self.last_ts is None else D(ts_ns - self.last_ts) / HOUR_NS
        self.interval_h = interval_h
        if self.value is None:
            self.value = rate_1h
        else:
            a = ONE - D("0.5") ** (hours / halflife_h)
            self.value += a * (rate_1h - self.value)
        self.hours += hours
        self.last_ts = ts_ns

    def to_json(self) -> dict:
        """``{"value", "last_ts", "hours", "interval_h"}`` with the Decimals as strings."""
        return {"value": None if self.value is None else str(self.value), "last_ts": self.last_ts, "hours": str(self.hours),
                "interval_h": self.interval_h}

    @classmethod
    def from_json(cls, d: Mapping) -> "RateEma":
        """Inverse of :meth:`to_json` (missing fields: no value, 0 hours, 1-hour interval)."""
        return cls(None if d.get("value") is None else D(d["value"]), d.get("last_ts"),
                   D(d.get("hours", "0")), int(d.get("interval_h", 1)))


class CarryModel:
    """Expected funding of the two legs and the costs of trading them (formulas: module docstring).

    :param params: the strategy's parameters.
    :param primary: the primary leg's ticker, e.g. ``"BTC-USD"``.
    :param hedge: the hedge leg's ticker, e.g. ``"binance:BTC-USD"``.
    """

    def __init__(self, params: FundingArbParams, primary: str, hedge: str):
        self.params = params
        self.primary = primary
        self.hedge = hedge
        #: ticker -> :class:`RateEma`, primary leg first
        self.rates = {primary: RateEma(), hedge: RateEma()}

    def update(self, md: Any) -> None:
        """Fold each leg's last settled funding (``MarketState.last_funding``) into its average."""
        for t, ema in self.rates.items():
            st = md.markets.get(t)
            lf = getattr(st, "last_funding", None) if st is not None else None
            if lf is not None:
                ema.update(lf.rate_1h, lf.ts_ns, lf.interval_h, self.params.rate_halflife_h)

    def expected_rates(self) -> tuple[Decimal, Decimal] | None:
        """``(primary, hedge)`` expected per-hour funding rates (fractions), None until both legs have one."""
        a, b = self.rates[self.primary], self.rates[self.hedge]
        if a.value is None or b.value is None:
            return None
        return a.value, b.value

    def warm(self) -> bool:
        """Both legs have at least ``warmup_h`` hours of funding history."""
        w = self.params.warmup_h
        return all(r.hours >= w and r.value is not None for r in self.rates.values())

    @staticmethod
    def half_spread(md: Any, t: str) -> Decimal:
        """``(ask - bid) / (ask + bid)`` of ``t``'s book (half the spread over the mid, a fraction); 0 without a sane book."""
        st = md.markets.get(t)
        if st is None:
            return ZERO
        bid, ask = st.best_bid_offer()
        if bid is None or ask is None or bid <= 0 or ask < bid:
            return ZERO
        return (ask - bid) / (ask + bid)

    def fill_costs(self, md: Any) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(fee primary, fee hedge, slippage primary, slippage hedge) per fill, fractions of notional.

        Limit execution: maker fees, no slippage (the order rests at the touch). Market
        execution: taker fees and ``max(slippage, half spread / mid)`` per venue.
        """
        p = self.params
        if p.execution is Execution.LIMIT:
            return p.fee_primary_maker, p.fee_hedge_maker, ZERO, ZERO
        return (
            p.fee_primary_taker,
            p.fee_hedge_taker,
            max(p.slippage, self.half_spread(md, self.primary)),
            max(p.slippage, self.half_spread(md, self.hedge)),
        )

    def entry_economics(self, md: Any) -> dict | None:
        """Numbers behind the entry decision, or None without rates.

        :returns: ``{"rp", "rh"}`` expected per-hour rates of the primary and hedge legs,
            ``"spread"`` = ``|rh - rp|`` per hour, ``"edge"`` and ``"costs"`` in USD over
            ``horizon_h`` for ``notional_usd`` per leg, ``"long"`` / ``"short"`` the tickers
            of the cheap and the rich leg.
        """
        rates = self.expected_rates()
        if rates is None:
            return None
        rp, rh = rates
        p = self.params
        n = p.notional_usd
        fee_p, fee_h, slip_p, slip_h = self.fill_costs(md)
        long_leg, short_leg = (self.primary, self.hedge) if rp < rh else (self.hedge, self.primary)
        spread = abs(rh - rp)
        edge = spread * p.horizon_h * n
        costs = n * (2 * (fee_p + slip_p) + 2 * (fee_h + slip_h)) + n * p.safety_margin
        return {"rp": rp, "rh": rh, "spread": spread, "edge": edge, "costs": costs, "long": long_leg, "short": short_leg}
