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
funding received per hour is ``N * (r_rich - r_cheap)`` (both rates per hour: each venue's
rate divided by its own interval, 1 h, 4 h or 8 h)::

    edge  = (r_rich - r_cheap) * horizon_h * N                                   (USD)
    costs = N * (fee_in_p + fee_out_p + slip_in_p + slip_out_p
                 + fee_in_h + fee_out_h + slip_in_h + slip_out_h)              (open + close, both legs)
          + N * safety_margin
    basis = basis_convergence * (P_short - P_long) / ((P_short + P_long) / 2) * N
    net   = edge + basis - costs;      enter when net > 0, the best ``max_pairs`` coins first

``basis`` is the price PnL expected when the gap between the legs' prices closes: selling
the dearer leg and buying the cheaper one gains it, the other way round costs it.

Costs per fill (:meth:`CarryModel.fill_costs`): limit execution pays maker fees and no
slippage (the order rests at the touch); market execution pays taker fees and the
slippage of an order of the intended size walked through the live L2 book
(:func:`book_slippage`: ``|average fill price - mid| / mid``; entry on the entry side of
the book, exit on the other side), or, on a market without a book (bars only),
``max(slippage, half spread / mid)``. A book too thin to fill the size makes the coin
ineligible (``"thin"`` in the economics).

Source: seed 001 (``/work/shared/seeds/001_*.txt``, week 5 "Funding rate arbitrage
strategies", week 11 "Funding rate prediction models": here the simplest predictor, an
EMA). Imports only :mod:`perpbot` and :mod:`perpbot.strategies.funding_arb.params`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

import attrs

from perpbot import Side

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

    def slippage(self, md: Any, t: str, side: Side, size: Decimal) -> Decimal | None:
        """Expected slippage of a market order (fraction of the mid): :func:`book_slippage` on ``t``'s
        live book at ``size`` base units, or ``max(slippage, half spread)`` on a market without
        a book; None when the book cannot fill ``size``."""
        st = md.markets.get(t)
        if st is not None and not st.book.is_empty():
            return book_slippage(st.book, side, size)
        return max(self.params.slippage, self.half_spread(md, t))

    def fill_costs(self, md: Any) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(fee primary, fee hedge, slippage primary, slippage hedge) per fill, fractions of notional,
        for the execution mode, at the touch (no size): limit execution pays maker fees and no
        slippage; market execution taker fees and ``max(slippage, half spread / mid)`` per venue.
        :meth:`entry_economics` walks the books at the intended size instead."""
        p = self.params
        if p.execution is Execution.LIMIT:
            return p.fee_primary_maker, p.fee_hedge_maker, ZERO, ZERO
        return (
            p.fee_primary_taker,
            p.fee_hedge_taker,
            max(p.slippage, self.half_spread(md, self.primary)),
            max(p.slippage, self.half_spread(md, self.hedge)),
        )

    def entry_economics(self, md: Any, notional: Decimal | None = None) -> dict | None:
        """Numbers behind the entry decision and the ranking across coins (formulas: module docstring).

        :param notional: USD per leg (default ``notional_usd``).
        :returns: None without rates or prices, else ``{"rp", "rh"}`` expected per-hour rates
            of the primary and hedge legs, ``"spread"`` = ``|rh - rp|`` per hour, ``"edge"``,
            ``"fees"``, ``"slippage"``, ``"costs"`` (fees + slippage + safety margin), ``"basis"``
            and ``"net"`` in USD over ``horizon_h`` for the notional per leg, ``"long"`` /
            ``"short"`` the tickers of the cheap and the rich leg, ``"thin"`` the ticker whose
            book cannot fill the size (then ``"net"`` is None).
        """
        rates = self.expected_rates()
        if rates is None:
            return None
        pp, ph = leg_price(md, self.primary), leg_price(md, self.hedge)
        if pp is None or ph is None or pp <= 0 or ph <= 0:
            return None
        rp, rh = rates
        p = self.params
        n = p.notional_usd if notional is None else notional
        long_leg, short_leg = (self.primary, self.hedge) if rp < rh else (self.hedge, self.primary)
        spread = abs(rh - rp)
        edge = spread * p.horizon_h * n
        thin = None
        if p.execution is Execution.LIMIT:
            fees = n * 2 * (p.fee_primary_maker + p.fee_hedge_maker)
            slip = ZERO
        else:
            fees = n * 2 * (p.fee_primary_taker + p.fee_hedge_taker)
            slip = ZERO
            for t, px, side in ((long_leg, pp if long_leg == self.primary else ph, Side.BUY),
                                (short_leg, ph if long_leg == self.primary else pp, Side.SELL)):
                q = n / px
                s_in, s_out = self.slippage(md, t, side, q), self.slippage(md, t, side.opposite, q)
                if s_in is None or s_out is None:
                    thin = t
                    break
                slip += n * (s_in + s_out)
        costs = fees + slip + n * p.safety_margin
        p_long, p_short = (pp, ph) if long_leg == self.primary else (ph, pp)
        basis = p.basis_convergence * (p_short - p_long) / ((p_short + p_long) / 2) * n
        net = None if thin else edge + basis - costs
        return {"rp": rp, "rh": rh, "spread": spread, "edge": edge, "fees": fees, "slippage": slip, "costs": costs,
                "basis": basis, "net": net, "long": long_leg, "short": short_leg, "thin": thin}


def leg_price(md: Any, t: str) -> Decimal | None:
    """The price a leg is valued at, USD: ``MarketData.marks[t]``, else the market's mark price, else None."""
    m = md.marks.get(t)
    if m is None:
        st = md.markets.get(t)
        m = st.mark_price() if st is not None else None
    return m


def book_slippage(book: Any, side: Side, size: Decimal) -> Decimal | None:
    """Slippage of a market order of ``size`` base units on ``side`` against an L2 book.

    ``|average fill price - mid| / mid`` (a fraction; includes the half spread), the fills from
    :meth:`perpbot.core.book.OrderBook.walk` (a BUY walks the asks, a SELL the bids).

    :returns: None when the book cannot fill the whole size (or has no mid).
    """
    mid = book.mid()
    if mid is None or mid <= 0 or size <= 0:
        return None
    fills = book.walk(side, size)
    got = sum((q for _, q in fills), ZERO)
    if got < size:
        return None
    avg = sum((px * q for px, q in fills), ZERO) / got
    return abs(avg - mid) / mid
