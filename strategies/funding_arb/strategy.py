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

D = Decimal
ZERO = D(0)
ONE = D(1)
NS = 1_000_000_000
HOUR_NS = 3600 * NS
OPEN_TAG = "farb-open"
CLOSE_TAG = "farb-close"
REBALANCE_TAG = "farb-rebalance"


class Execution(enum.Enum):
    LIMIT = "limit"
    MARKET = "market"


def _positive(instance, attribute, value):
    if value is not None and value <= 0:
        raise ValueError(f"parameter {attribute.name}: must be positive, got {value}")


@attrs.frozen
class FundingArbParams:
    """Funding-arbitrage parameters. Rates and fees are fractions (0.0005 = 5 bp); hours in h."""

    ticker: str = param("", "primary leg, e.g. BTC-USD (default: the run's first unqualified ticker)")
    hedge_venue: str = param("", "venue of the second leg (default: the venue of the run's qualified ticker, else binance)", flag="--hedge-venue")
    notional_usd: Decimal = param(D("1000"), "notional per leg, USD", _positive, flag="--notional-usd")
    horizon_h: Decimal = param(D("168"), "expected holding horizon used to value the funding edge, hours", _positive, flag="--horizon")
    execution: Execution = param(
        Execution.LIMIT,
        "limit: post-only orders at the touch (maker fees, re-quoted after requote_s); market: IOC market orders (taker fees + slippage)",
    )
    fee_primary_maker: Decimal = param(D("0.0001"), "maker fee per fill on the primary venue (dYdX tier 1: 1 bp)", in_range(D("-1"), ONE))
    fee_primary_taker: Decimal = param(D("0.0005"), "taker fee per fill on the primary venue (dYdX tier 1: 5 bp)", in_range(D("-1"), ONE))
    fee_hedge_maker: Decimal = param(D("0.0002"), "maker fee per fill on the hedge venue (Binance USD-M: 2 bp)", in_range(D("-1"), ONE))
    fee_hedge_taker: Decimal = param(D("0.0005"), "taker fee per fill on the hedge venue (Binance USD-M: 5 bp)", in_range(D("-1"), ONE))
    slippage: Decimal = param(D("0.0002"), "market execution: expected slippage per fill, fraction (at least the half spread)", in_range(D(0), ONE))
    complete_with_market: bool = param(
        True,
        "limit execution: when one leg has filled and the other's order still rests, cancel it and complete the "
        "hedge with a market order (never stay unhedged waiting for a maker fill)",
    )
    requote_s: Decimal = param(
        D("32400"),
        "limit execution: cancel resting orders not filled after this many seconds, then decide again "
        "(default 9 h: longer than the 8-hour bars of the replay sample; funding arbitrage is not in a hurry)",
        _positive,
    )
    safety_margin: Decimal = param(D("0.0005"), "extra edge required on top of fees and slippage, fraction of notional", in_range(D(0), ONE))
    rate_halflife_h: Decimal = param(D("24"), "half-life of the moving average of settled per-hour rates, hours", _positive)
    warmup_h: Decimal = param(D("24"), "hours of funding history needed on both legs before entering", in_range(D(0)), flag="--funding-warmup")
    exit_spread_1h: Decimal = param(D("0"), "exit when the per-hour spread in our favour falls to this (0: closed or flipped)")
    max_hold_h: Decimal = param(D("336"), "exit after holding this long, hours", _positive, flag="--max-hold")
    rebalance_tolerance: Decimal = param(D("0.05"), "rebalance when |N_primary - N_hedge| exceeds this fraction of the notional", _positive)
    reentry_cooldown_h: Decimal = param(D("8"), "hours to wait after an exit before entering again", in_range(D(0)), flag="--reentry-cooldown")


@attrs.define
class LegBook:
    """Accounting of one leg from its fills and funding (USD, base units)."""

    ticker: str
    size: Decimal = ZERO
    entry: Decimal = ZERO
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    funding_acc: Decimal = ZERO  # funding counted before the current baseline (e.g. before a restart)
    funding_base: Decimal | None = ZERO  # Position.funding at the baseline (None: take the next value seen)
    funding_seen: Decimal = ZERO  # last cumulative Position.funding seen
    funding_paid_exact: Decimal = ZERO  # sum of forwarded FundingPayment amounts
    exact: bool = False
    last_mark: Decimal | None = None
    fills: int = 0

    @property
    def funding(self) -> Decimal:
        if self.exact:
            return self.funding_paid_exact
        base = self.funding_base if self.funding_base is not None else self.funding_seen
        return self.funding_acc + self.funding_seen - base

    def apply_fill(self, side: Side, size: Decimal, price: Decimal, fee: Decimal) -> None:
        signed = size if side is Side.BUY else -size
        old = self.size
        new = old + signed
        if old == 0 or (old > 0) == (signed > 0):
            self.entry = (abs(old) * self.entry + size * price) / abs(new)
        else:
            closed = min(abs(old), size)
            self.realized += closed * (price - self.entry) * (1 if old > 0 else -1)
            if new == 0:
                self.entry = ZERO
            elif (new > 0) != (old > 0):
                self.entry = price
        self.size = new
        self.fees += fee
        self.fills += 1

    def observe_position(self, funding: Decimal | None) -> None:
        """Track ``Position.funding``: cumulative per market for the account's life (the bot's
        portfolio keeps a market's position object when it goes flat, so re-opening continues
        the sum). None (no open position) keeps the last value."""
        if funding is None:
            return
        if self.funding_base is None:
            self.funding_base = funding  # first value after a restart: the new baseline
        self.funding_seen = funding

    def rebase(self) -> None:
        """After a restart: keep what was counted, measure only increments from the next value."""
        self.funding_acc = self.funding
        self.funding_base = None
        self.funding_seen = ZERO

    def unrealized(self) -> Decimal:
        if not self.size or self.last_mark is None:
            return ZERO
        return self.size * (self.last_mark - self.entry)

    def to_json(self) -> dict:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in attrs.asdict(self).items()}

    @classmethod
    def from_json(cls, d: Mapping) -> "LegBook":
        decimals = {"size", "entry", "realized", "fees", "funding_acc", "funding_base", "funding_seen", "funding_paid_exact", "last_mark"}
        kw = {}
        for f in attrs.fields(cls):
            v = d.get(f.name, f.default)
            if f.name in decimals and v is not None:
                v = D(str(v))
            kw[f.name] = v
        return cls(**kw)


@attrs.define
class RateEma:
    """Moving average of one leg's settled per-hour funding rate."""

    value: Decimal | None = None
    last_ts: int | None = None
    hours: Decimal = ZERO  # hours of history covered
    interval_h: int = 1

    def update(self, rate_1h: Decimal, ts_ns: int, interval_h: int, halflife_h: Decimal) -> None:
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


class FundingArb(BaseStrategy):
    """Delta-neutral funding arbitrage between two venues (see the module docstring)."""

    name = "funding_arb"
    description = "delta-neutral funding arbitrage: long the cheap-funding perp, short the rich one, equal notional"
    Params = FundingArbParams

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
        self.rates = {self.primary: RateEma(), self.hedge: RateEma()}
        self.state = "flat"  # flat | open | exiting
        self.long_leg: str | None = None
        self.entered_ns = 0
        self.exited_ns: int | None = None
        self.target_notional = ZERO
        self.entries = 0  # entries that got at least one leg filled
        self.entry_orders = 0  # entry attempts (pairs of orders sent)
        self._entry_pending = False
        self.exits = 0
        self.rebalances = 0
        self.hedge_completions = 0
        self.max_drift = ZERO  # largest |N_p - N_h| / N seen after a decision with both legs on
        self.last_reason = ""
        self._exit_reasons: list[str] = []

    # -- inputs ----------------------------------------------------------------------

    def _update_rates(self, md) -> None:
        for t, ema in self.rates.items():
            st = md.markets.get(t)
            lf = getattr(st, "last_funding", None) if st is not None else None
            if lf is not None:
                ema.update(lf.rate_1h, lf.ts_ns, lf.interval_h, self.params.rate_halflife_h)

    def _observe(self, md) -> None:
        for t, leg in self.legs.items():
            pos = md.positions.get(t)
            leg.observe_position(pos.funding if pos is not None else None)
            mark = md.marks.get(t)
            if mark is not None:
                leg.last_mark = mark

    def _price(self, md, t: str) -> Decimal | None:
        m = md.marks.get(t)
        if m is None:
            st = md.markets.get(t)
            m = st.mark_price() if st is not None else None
        return m

    def _half_spread(self, md, t: str) -> Decimal:
        st = md.markets.get(t)
        if st is None:
            return ZERO
        bid, ask = st.best_bid_offer()
        if bid is None or ask is None or bid <= 0 or ask < bid:
            return ZERO
        return (ask - bid) / (ask + bid)

    def _resting(self, md) -> dict:
        return {cid: o for cid, o in md.open_orders.items() if (o.tag or "").startswith("farb") and o.ticker in self.legs}

    # -- decisions ----------------------------------------------------------------------

    async def should_execute(self, market_data) -> bool:
        self._update_rates(market_data)
        self._observe(market_data)
        return self.primary in market_data.tradable and self.hedge in market_data.tradable

    def expected_rates(self) -> tuple[Decimal, Decimal] | None:
        a, b = self.rates[self.primary], self.rates[self.hedge]
        if a.value is None or b.value is None:
            return None
        return a.value, b.value

    def fill_costs(self, md) -> tuple[Decimal, Decimal, Decimal, Decimal]:
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
            max(p.slippage, self._half_spread(md, self.primary)),
            max(p.slippage, self._half_spread(md, self.hedge)),
        )

    def entry_economics(self, md) -> dict | None:
        """Numbers behind the entry decision (USD, per-hour fractions), or None without rates."""
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

    async def execute_strategy(self, market_data) -> StrategyResult:
        md = market_data
        now = md.ts_ns
        resting = self._resting(md)
        if resting and self.params.complete_with_market:
            done = self._complete_hedge(md, resting)
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
        pp, ph = self._price(md, self.primary), self._price(md, self.hedge)
        if pp is None or ph is None:
            return StrategyResult.nothing("funding_arb: no prices yet")
        sp, sh = md.position_size(self.primary), md.position_size(self.hedge)
        if self.state == "exiting":
            if sp == 0 and sh == 0:
                self.state = "flat"
                self.exited_ns = now
                self.long_leg = None
            else:
                return self._close_all(md, sp, sh, "finishing exit")
        if self.state == "flat":
            if sp or sh:
                # positions the strategy did not open (adopted after a restart without state): manage them
                self.state = "open"
                self.long_leg = self.primary if sp > 0 else self.hedge
                self.target_notional = max(abs(sp) * pp, abs(sh) * ph)
                self.entered_ns = now
                self.log.info(f"funding_arb: adopted existing legs {self.primary} {sp}, {self.hedge} {sh}")
            else:
                return self._maybe_enter(md, now, pp, ph)
        return self._manage(md, now, pp, ph, sp, sh)

    def _complete_hedge(self, md, resting: dict) -> StrategyResult | None:
        """One leg filled, the other's limit order still rests: cancel it and finish that leg with
        a market order, so the pair is delta-neutral again at once (legging risk control)."""
        pp, ph = self._price(md, self.primary), self._price(md, self.hedge)
        if pp is None or ph is None:
            return None
        sp, sh = md.position_size(self.primary), md.position_size(self.hedge)
        np_, nh = abs(sp) * pp, abs(sh) * ph
        target = self.target_notional or self.params.notional_usd
        if not target or abs(np_ - nh) / target <= self.params.rebalance_tolerance:
            return None
        mp, mh = md.markets[self.primary].market, md.markets[self.hedge].market
        if self.state == "exiting":
            # the leg still open is closed at market
            lag, size, market = (self.primary, sp, mp) if np_ > nh else (self.hedge, sh, mh)
            q = market.round_size(abs(size))
            side = Side.SELL if size > 0 else Side.BUY
            ro = True
        else:
            # the smaller leg is brought up to the larger one's notional
            if np_ < nh:
                lag, market, q = self.primary, mp, mp.round_size(nh / pp - abs(sp))
                side = Side.BUY if self.long_leg == self.primary else Side.SELL
            else:
                lag, market, q = self.hedge, mh, mh.round_size(np_ / ph - abs(sh))
                side = Side.SELL if self.long_leg == self.primary else Side.BUY
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
        self.hedge_completions += 1
        return StrategyResult(StrategyAction.REPLACE_ORDERS, orders=(order,), cancels=cancels, reason=reason)

    def _warm(self) -> bool:
        w = self.params.warmup_h
        return all(r.hours >= w and r.value is not None for r in self.rates.values())

    def _maybe_enter(self, md, now: int, pp: Decimal, ph: Decimal) -> StrategyResult:
        if not self._warm():
            return StrategyResult.nothing("funding_arb: warming up funding history")
        if self.exited_ns is not None and D(now - self.exited_ns) / HOUR_NS < self.params.reentry_cooldown_h:
            return StrategyResult.nothing("funding_arb: cooling down after an exit")
        econ = self.entry_economics(md)
        if econ is None or econ["edge"] <= econ["costs"]:
            return StrategyResult.nothing()
        mp = md.markets[self.primary].market
        mh = md.markets[self.hedge].market
        n = self.params.notional_usd
        qp = mp.round_size(n / pp)
        qh = mh.round_size(qp * pp / ph)
        if qp < mp.min_order_size or qh < mh.min_order_size:
            self.log.warning(f"funding_arb: notional {n} USD is below a leg's minimum order size; not entering")
            return StrategyResult.nothing()
        reason = (
            f"enter: expected funding {self.primary} {econ['rp'] * 10000:.4f} bp/h vs {self.hedge} {econ['rh'] * 10000:.4f} bp/h, "
            f"spread {econ['spread'] * 10000:.4f} bp/h x {self.params.horizon_h} h x {n} USD = edge {econ['edge']:.2f} USD "
            f"> costs {econ['costs']:.2f} USD ({self.params.execution.value} execution: fees + slippage on both legs, in and out, + safety margin); "
            f"long {econ['long']}, short {econ['short']}"
        )
        self.state = "open"
        self.long_leg = econ["long"]
        self.entered_ns = now
        self.target_notional = qp * pp
        self.entry_orders += 1
        self._entry_pending = True
        self.last_reason = reason
        self.log.info(f"funding_arb: {reason}")
        side_p = Side.BUY if self.long_leg == self.primary else Side.SELL
        return StrategyResult(
            StrategyAction.PLACE_ORDERS,
            orders=(self._order(md, self.primary, side_p, qp, OPEN_TAG, reason),
                    self._order(md, self.hedge, side_p.opposite, qh, OPEN_TAG, reason)),
            reason=reason,
        )

    def _order(self, md, ticker: str, side: Side, size: Decimal, tag: str, reason: str, reduce_only: bool = False) -> OrderParams:
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
            price = market.round_price(min(bid, ask - tick), Side.BUY)
        else:
            price = market.round_price(max(ask, bid + tick), Side.SELL)
        return OrderParams(ticker=ticker, side=side, order_type=OrderType.LIMIT, size=size, price=price,
                           post_only=True, time_in_force=TimeInForce.POST_ONLY, tag=tag, reason=reason)

    def _close_all(self, md, sp: Decimal, sh: Decimal, reason: str) -> StrategyResult:
        orders = []
        for t, s in ((self.primary, sp), (self.hedge, sh)):
            if s:
                orders.append(self._order(md, t, Side.SELL if s > 0 else Side.BUY, abs(s), CLOSE_TAG, reason, reduce_only=True))
        if not orders:
            return StrategyResult.nothing(reason)
        return StrategyResult(StrategyAction.PLACE_ORDERS, orders=tuple(orders), reason=reason)

    def _manage(self, md, now: int, pp: Decimal, ph: Decimal, sp: Decimal, sh: Decimal) -> StrategyResult:
        p = self.params
        rates = self.expected_rates()
        held_h = D(now - self.entered_ns) / HOUR_NS
        exit_reason = None
        if rates is not None and self.long_leg is not None:
            r_long = rates[0] if self.long_leg == self.primary else rates[1]
            r_short = rates[1] if self.long_leg == self.primary else rates[0]
            favour = r_short - r_long
            if favour <= p.exit_spread_1h:
                exit_reason = (
                    f"exit: spread in our favour {favour * 10000:.4f} bp/h <= {p.exit_spread_1h * 10000:.4f} bp/h "
                    f"({'flipped' if favour < 0 else 'closed'})"
                )
        if exit_reason is None and held_h >= p.max_hold_h:
            exit_reason = f"exit: held {held_h:.1f} h >= max {p.max_hold_h} h"
        if exit_reason is not None:
            self.state = "exiting"
            self.exits += 1
            self._exit_reasons.append(exit_reason)
            self.last_reason = exit_reason
            self.log.info(f"funding_arb: {exit_reason}")
            return self._close_all(md, sp, sh, exit_reason)
        # rebalance the hedge leg to the primary leg's notional
        np_, nh = abs(sp) * pp, abs(sh) * ph
        target = self.target_notional or p.notional_usd
        drift = abs(np_ - nh) / target if target else ZERO
        if sp == 0 and sh == 0:
            self.state = "flat"
            self.long_leg = None
            if self._entry_pending:
                self._entry_pending = False
                return StrategyResult.nothing("funding_arb: entry orders did not fill; deciding again")
            self.exited_ns = now  # both legs gone (closed by a risk policy)
            return StrategyResult.nothing("funding_arb: legs closed outside the strategy")
        if self._entry_pending:
            self._entry_pending = False
            self.entries += 1
        if drift <= p.rebalance_tolerance:
            self.max_drift = max(self.max_drift, drift)
            return StrategyResult.nothing()
        mp = md.markets[self.primary].market
        mh = md.markets[self.hedge].market
        if sp == 0:
            # the primary leg is missing: place it (equal notional to the hedge)
            side = Side.BUY if self.long_leg == self.primary else Side.SELL
            q = mp.round_size(nh / pp)
            if q < mp.min_order_size:
                return StrategyResult.nothing()
            reason = f"rebalance: primary leg missing, {side.value} {q} {self.primary} to match {nh:.2f} USD"
            self.rebalances += 1
            return StrategyResult(StrategyAction.PLACE_ORDERS, orders=(self._order(md, self.primary, side, q, REBALANCE_TAG, reason),), reason=reason)
        want_h = mh.round_size(np_ / ph)
        hedge_side = Side.SELL if self.long_leg == self.primary else Side.BUY  # the hedge leg's direction
        delta = want_h - abs(sh)
        if delta > 0:
            side, q = hedge_side, delta
            ro = False
        else:
            side, q = hedge_side.opposite, -delta
            ro = True
        q = mh.round_size(q)
        if q < mh.min_order_size:
            self.max_drift = max(self.max_drift, drift)
            return StrategyResult.nothing()
        reason = (
            f"rebalance: notional {self.primary} {np_:.2f} USD vs {self.hedge} {nh:.2f} USD, drift {drift * 100:.2f}% "
            f"> {p.rebalance_tolerance * 100}%: {side.value} {q} {self.hedge}"
        )
        self.rebalances += 1
        self.log.info(f"funding_arb: {reason}")
        return StrategyResult(
            StrategyAction.PLACE_ORDERS,
            orders=(self._order(md, self.hedge, side, q, REBALANCE_TAG, reason, reduce_only=ro),),
            reason=reason,
        )

    # -- feedback -----------------------------------------------------------------------------

    def on_fill(self, fill) -> None:
        leg = self.legs.get(fill.ticker)
        if leg is None:
            return
        leg.apply_fill(fill.side, fill.size, fill.price, fill.fee)

    def on_funding_payment(self, payment) -> None:
        """Exact per-leg funding (``payment.amount`` USD, + received), when the bot forwards payments."""
        leg = self.legs.get(payment.ticker)
        if leg is None:
            return
        if not leg.exact:
            leg.exact = True
            leg.funding_paid_exact = ZERO
        leg.funding_paid_exact += payment.amount

    # -- persistence ------------------------------------------------------------------------------

    def get_state(self) -> Mapping[str, Any]:
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
            "rates": {t: {"value": None if r.value is None else str(r.value), "last_ts": r.last_ts, "hours": str(r.hours),
                          "interval_h": r.interval_h} for t, r in self.rates.items()},
        }

    def restore_state(self, state: Mapping[str, Any]) -> None:
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
                self.rates[t] = RateEma(None if d.get("value") is None else D(d["value"]), d.get("last_ts"),
                                        D(d.get("hours", "0")), int(d.get("interval_h", 1)))

    # -- report ---------------------------------------------------------------------------------------

    def totals(self) -> dict:
        legs = list(self.legs.values())
        funding = sum((leg.funding for leg in legs), ZERO)
        fees = sum((leg.fees for leg in legs), ZERO)
        price = sum((leg.realized + leg.unrealized() for leg in legs), ZERO)
        return {"funding": funding, "fees": fees, "price_pnl": price, "net": funding - fees + price}

    def summary_lines(self) -> list[str]:
        lines = [
            f"funding_arb {self.primary} vs {self.hedge}: {self.entries} entries ({self.entry_orders} attempts), {self.exits} exits, "
            f"{self.rebalances} rebalances, {self.hedge_completions} hedge completions at market; now {self.state}"
            + (f" (long {self.long_leg})" if self.long_leg else "")
        ]
        for t, leg in self.legs.items():
            r = self.rates[t]
            rate = f", expected rate {r.value * 10000:+.4f} bp/h (interval {r.interval_h} h)" if r.value is not None else ""
            lines.append(
                f"  leg {t}: funding {leg.funding:+.4f} USD, fees {leg.fees:.4f} USD, price PnL "
                f"{leg.realized + leg.unrealized():+.4f} USD, position {leg.size}{rate}"
            )
        tot = self.totals()
        lines.append(
            f"  total: funding {tot['funding']:+.4f} USD - fees {tot['fees']:.4f} USD + price PnL {tot['price_pnl']:+.4f} USD "
            f"= net {tot['net']:+.4f} USD"
        )
        lines.append(f"  largest leg notional drift left after a decision: {self.max_drift * 100:.3f}% (tolerance {self.params.rebalance_tolerance * 100}%)")
        return lines
