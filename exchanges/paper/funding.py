"""Hourly funding in the paper exchange, settled through the funding index as the dYdX v4 chain does.

At the top of each hour of clock time the open positions and their marks are snapshotted as
of the hour (at the first event strictly after it, so that everything stamped exactly on the
hour, such as a bar closing at the hour, is included), and settled at the first event
``funding_grace_s`` after the hour with, per market, the settled rate for that hour if the
feed has delivered one (``FundingRate(settled=True)``; a venue with ``interval_h > 1`` applies
its latest settled rate to every hour of its interval), else the running prediction
(``MarketState.funding_rate_1h``). A market with an open position and no funding data at all
is NOT assumed to pay zero: it is logged once and listed in :attr:`FundingSimulator.missing`.

Settlement is the chain's, in its integer units, not ``-size * price * rate``:

1. the rate becomes the chain's integer 8-hour ppm (``rate_1h * 8e6``; exact for every rate
   the chain produced, else truncated toward zero with a one-time log line:
   :func:`perpbot.core.margin.funding_ppm_8h_from_rate_1h`); a running prediction (the
   indexer's ``nextFundingRate``: neither truncated nor clamped) is projected to the rate the
   chain would set: its premium truncated, plus the market's default funding, clamped by the
   liquidity tier (:func:`perpbot.core.margin.project_next_funding_rate`);
2. the market's funding index (ppm of quote quantums per base quantum, as the chain stores
   it) moves by ``trunc(trunc(3600 * ppm * oracle * 10^(AR+6)) / 28800)``
   (:func:`perpbot.core.margin.funding_index_delta_at_price`; chain
   ``protocol/x/perpetuals/funding/funding.go`` ``GetFundingIndexDelta``);
3. each position's settlement is ``-delta * quantums`` ppm (chain
   ``protocol/x/perpetuals/lib/lib.go`` ``GetSettlementPpmWithPerpetual``); a subaccount's
   ppm are summed and floored once to quote quantums (Euclidean division, chain
   ``protocol/x/subaccounts/lib/updates.go`` ``GetSettledSubaccountWithPerpetuals``).

The chain settles lazily, on the subaccount's next update, so it floors the sum of every
tick since then once. The simulator books every hour, and keeps the floor's remainder (the
*carry*, ppm in [0, 1e6)) per subaccount until the subaccount's next fill, where the chain
would have dropped it: the booked total then equals the chain's at every fill. (Transfers
between a parent and its isolated children also settle on the chain; they do not reset the
carry here: a difference below one quote quantum.)

With ``funding_settlement = "notional"`` (a paper venue simulating another exchange's rules, e.g.
Binance or Hyperliquid) the payment is ``-size * oracle * rate_1h`` with the rate as given
(:func:`perpbot.core.margin.funding_payment`), the subaccount's sum floored once to 1e-6 USD,
no index and no carry.

For 1 BTC long at 65,000 and 100 ppm per 8 h the index moves by 81 (not 81.25) and the long
pays 0.81 USDC, where ``-size * price * rate_1h`` would give 0.8125.

Each :class:`~perpbot.core.model.FundingPayment` carries the rate applied
(``ppm / 8e6`` per hour) and its amount; a subaccount's payments add up to exactly what its
collateral moved (per position ``floor(ppm_i / 1e6)``, and the quanta the single floor of the
sum adds on top go to its first positions).
"""

from __future__ import annotations

from collections import deque
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Callable

from loguru import logger

from perpbot.core.exchange import MarketView
from perpbot.core.margin import (
    ONE_MILLION,
    funding_index_delta_at_price,
    funding_payment,
    funding_ppm_8h_from_rate_1h,
    funding_rate_1h_from_ppm,
    project_next_funding_rate,
    settle_funding_ppm,
    size_to_quantums,
)
from perpbot.core.model import FundingPayment, FundingRate
from perpbot.exchanges.paper.fees import QUOTE_QUANTUM
from perpbot.exchanges.paper.liquidation import Liquidator
from perpbot.exchanges.paper.subaccounts import Accounts

NS = 1_000_000_000
HOUR_S = 3600
HOUR_NS = HOUR_S * NS
#: settled rates remembered per market (hours)
SETTLED_RATES_KEPT = 64


class FundingSimulator:
    """Snapshots positions at each hour and settles funding after the grace period.

    :param accounts: the subaccounts paid or charged.
    :param view: the bot's read-only market view (running predictions, latest settled rate).
    :param liquidator: re-checks a subaccount after its payment (forced full check).
    :param grace_s: seconds after the hour at which the hour is settled (``funding_grace_s``).
    :param emit: hands each :class:`~perpbot.core.model.FundingPayment` to the bot.
    :param venue: the venue name put on payments.
    :param settlement: ``"chain"`` (dYdX funding index, default) or ``"notional"``.
    :raises ValueError: for another ``settlement``.

    Attributes: ``next_hour_ns`` (the next hour boundary, ns; 0 before the first event),
    ``due`` (``[hour_ns, settle_at_ns, [(subaccount, ticker, size, mark USD)]]`` snapshots
    awaiting settlement, oldest first), ``settled_rates`` (ticker -> recent
    ``(hour_ns, rate_1h, oracle USD or None, interval_h)``), ``payments`` (every payment, or
    after a resume the exported tail), ``missing`` (markets paid no funding for lack of data)
    and ``warned`` (those already logged), ``index`` (ticker -> the market's funding index, ppm
    of quote quantums per base quantum, 0 at the start of the run; only differences matter)
    and ``carry`` (subaccount number -> ``(settlement ppm not yet booked, in [0, 1e6), the
    subaccount's fill count when it was kept)``); ``truncated``, ``clamped`` and ``unclamped``
    (markets whose rate truncation, prediction clamp or missing clamp was already logged).
    """

    def __init__(
        self,
        accounts: Accounts,
        view: MarketView,
        liquidator: Liquidator,
        grace_s: int,
        emit: Callable[[Any], None],
        venue: str,
        settlement: str = "chain",
    ):
        if settlement not in ("chain", "notional"):
            raise ValueError(f"settlement must be 'chain' or 'notional', got {settlement!r}")
        self.settlement = settlement
        self.accounts = accounts
        self.view = view
        self.liquidator = liquidator
        self.grace_ns = grace_s * NS
        self.emit = emit
        self.venue = venue
        self.next_hour_ns = 0
        self.due: list = []
        self.warned: set[str] = set()
        self.missing: set[str] = set()
        self.settled_rates: dict[str, deque] = {}
        self.payments: list[FundingPayment] = []
        self.index: dict[str, int] = {}
        self.carry: dict[int, tuple[int, int]] = {}
        self.truncated: set[str] = set()
        self.clamped: set[str] = set()
        self.unclamped: set[str] = set()

    def record_rate(self, event: FundingRate) -> None:
        """Remember a settled rate by its hour (the market state's ``last_funding`` may already be
        the NEXT hour's rate when the previous hour is settled in the same batch)."""
        ts = event.ts_ns
        hist = self.settled_rates.get(event.ticker)
        if hist is None:
            hist = self.settled_rates[event.ticker] = deque(maxlen=SETTLED_RATES_KEPT)
        hist.append((ts - ts % HOUR_NS, event.rate_1h, event.oracle_price, max(1, event.interval_h)))

    def next_due_ns(self) -> int:
        """The earliest time funding work is due, ns: just after the next hour, or the oldest
        snapshot's settlement time."""
        nxt = self.next_hour_ns + 1  # the hour is processed at the first event strictly after it
        if self.due:
            nxt = min(nxt, self.due[0][1])
        return nxt

    def advance(self, ts: int) -> None:
        """Take the snapshots of every hour boundary before ``ts`` (ns) and settle those due by ``ts``."""
        if not self.next_hour_ns:
            self.next_hour_ns = ts - ts % HOUR_NS + HOUR_NS
        # The boundary H is taken at the first event strictly after H, so every event stamped
        # exactly H (a bar closing at H, a rate settled at H) is part of the state at H.
        while ts > self.next_hour_ns:
            self.boundary(self.next_hour_ns)
            self.next_hour_ns += HOUR_NS
        while self.due and ts >= self.due[0][1]:
            hour, _, snap = self.due.pop(0)
            self.settle(hour, snap, ts)

    def boundary(self, hour_ns: int) -> None:
        """Snapshot the open positions and their marks as of the hour (the marks seen before
        the current event, which is the first one after the hour)."""
        snap = []
        for sub in self.accounts.subs.values():
            for t, p in sub.portfolio.positions.items():
                if p.size:
                    mark = self.accounts.marks.get(t) or self.view.mark(t) or p.entry_price
                    snap.append((sub.number, t, p.size, mark))
        if snap:
            self.due.append([hour_ns, hour_ns + self.grace_ns, snap])

    def rate_for(self, ticker: str, hour_ns: int) -> tuple[Decimal, Decimal | None, str] | None:
        """The 1-hour rate that applies at the top of ``hour_ns``: ``(rate, oracle price USD or
        None, source)`` with source ``"settled"`` or ``"predicted"``.

        The settled rate for that hour (or, for a venue with ``interval_h > 1``, its latest
        settled rate within its interval), else the running prediction, else None.
        """
        hist = self.settled_rates.get(ticker)
        if hist:
            for lh, rate, oracle, interval_h in reversed(hist):
                if lh <= hour_ns:
                    if hour_ns - lh < interval_h * HOUR_NS:
                        return rate, (oracle if lh == hour_ns else None), "settled"
                    break
        st = self.view.state(ticker)
        if st is None:
            return None
        lf = st.last_funding
        if lf is not None:
            lh = lf.ts_ns - lf.ts_ns % HOUR_NS
            if 0 <= hour_ns - lh < max(1, lf.interval_h) * HOUR_NS:
                return lf.rate_1h, (lf.oracle_price if lh == hour_ns else None), "settled"
        if st.funding_rate_1h is not None:
            return st.funding_rate_1h, None, "predicted"
        return None

    def _warn_missing(self, t: str, why: str) -> None:
        self.missing.add(t)
        if t not in self.warned:
            self.warned.add(t)
            logger.warning(
                f"paper: {why} for {t} at the top of the hour; funding is NOT simulated for {t} "
                f"and NOT assumed zero - see the run summary"
            )

    def chain_rate_ppm(self, ticker: str, rate_1h: Decimal) -> int:
        """The chain's integer 8-hour ppm for ``rate_1h`` (truncated toward zero; logged once per
        market when that changed the rate, e.g. another venue's rate or a running prediction)."""
        ppm = funding_ppm_8h_from_rate_1h(rate_1h)
        if ticker not in self.truncated and funding_rate_1h_from_ppm(ppm) != rate_1h:
            self.truncated.add(ticker)
            logger.info(
                f"paper: {ticker} funding rate {rate_1h}/h is not a whole number of 8-hour ppm; settled as the "
                f"chain's integer rate {ppm} ppm per 8 h (truncated toward zero; further cases not logged)"
            )
        return ppm

    def predicted_ppm(self, ticker: str, rate_1h: Decimal, market: Any) -> int:
        """The chain's rate for an hour settled on the running prediction (the indexer's
        ``nextFundingRate``): truncated, plus the market's default, clamped by its tier
        (:func:`perpbot.core.margin.project_next_funding_rate`); logged once per market when the
        clamp binds. Margin fractions finer than a ppm (not a dYdX tier) cannot give the tier's
        clamp: then only the truncation applies, logged once."""
        try:
            p = project_next_funding_rate(
                rate_1h, market.default_funding_rate_1h, market.initial_margin_fraction, market.maintenance_margin_fraction
            )
        except ValueError as e:
            if ticker not in self.unclamped:
                self.unclamped.add(ticker)
                logger.warning(f"paper: {ticker}: no funding clamp for the predicted rate ({e}); truncation only")
            return self.chain_rate_ppm(ticker, rate_1h)
        if p.clamped and ticker not in self.clamped:
            self.clamped.add(ticker)
            logger.info(
                f"paper: {ticker} predicted funding {rate_1h}/h is beyond the tier's clamp; settled at the chain's "
                f"bound {p.rate_8h_ppm} ppm per 8 h ({p.rate_1h}/h; further cases not logged)"
            )
        return p.rate_8h_ppm

    def settle(self, hour_ns: int, snap: list, ts: int) -> None:
        """Pay the hour ``hour_ns`` for the snapshot ``snap`` at event time ``ts`` (ns) through the
        funding index: book each payment, emit it, then force a liquidation check (or sweep a
        flat child)."""
        ticks: dict[str, tuple[int, int, Decimal, Decimal] | None] = {}  # ticker -> (delta, AR, price, rate)
        by_sub: dict[int, list] = {}
        for number, t, size, mark in snap:
            if t not in ticks:
                ticks[t] = self._tick(t, hour_ns, mark)
            tick = ticks[t]
            if tick is None:
                continue
            delta, ar, price, rate = tick
            if delta is None:  # notional settlement
                value: Any = funding_payment(size, price, rate)
            else:
                value = settle_funding_ppm(size_to_quantums(size, ar), delta)
            by_sub.setdefault(number, []).append((t, size, price, rate, value))
        for number, items in by_sub.items():
            sub = self.accounts.subs.get(number)
            if sub is None:
                continue
            values = [x[4] for x in items]
            if self.settlement == "notional":
                amounts = _split_notional(values)
            else:
                amounts = self._split(number, sub.portfolio.fills, values)
            for (t, size, price, rate, _), amount in zip(items, amounts):
                pay = FundingPayment(
                    ticker=t, ts_ns=hour_ns, size=size, oracle_price=price, rate_1h=rate, amount=amount, venue=self.venue
                )
                sub.portfolio.apply_funding(pay)
                self.payments.append(pay)
                self.emit(pay)
            sub.cushion = None
            if sub.has_positions():
                self.liquidator.check(sub, ts, force=True)
            else:
                self.accounts.sweep(sub)

    def _tick(self, t: str, hour_ns: int, mark: Decimal) -> tuple[int | None, int, Decimal, Decimal] | None:
        """Move ``t``'s funding index for the hour: ``(delta, atomic_resolution, oracle USD, rate
        applied per hour)``, or None (logged, listed in :attr:`missing`) without a rate or market.
        With ``notional`` settlement: ``(None, 0, oracle USD, the rate as given)``."""
        r = self.rate_for(t, hour_ns)
        if r is None:
            self._warn_missing(t, "no funding rate (the data has no funding for it)")
            return None
        if self.settlement == "notional":
            return None, 0, (r[1] if r[1] is not None else mark), r[0]
        market = self.view.market(t)
        if market is None:
            self._warn_missing(t, "no market parameters (atomic resolution)")
            return None
        rate, oracle, source = r
        price = oracle if oracle is not None else mark
        ppm = self.predicted_ppm(t, rate, market) if source == "predicted" else self.chain_rate_ppm(t, rate)
        delta = funding_index_delta_at_price(ppm, HOUR_S, market.atomic_resolution, price)
        self.index[t] = self.index.get(t, 0) + delta
        return delta, market.atomic_resolution, price, funding_rate_1h_from_ppm(ppm)

    def _split(self, number: int, fills: int, ppms: list[int]) -> list[Decimal]:
        """Book a subaccount's settlement ppm: the floor of (carry + sum) in quote quantums, split
        over its positions (``floor(ppm_i / 1e6)`` each, the floor's extra quanta to the first
        ones); the remainder is carried while the subaccount has no new fill."""
        carry, seen = self.carry.get(number, (0, fills))
        if seen != fills:
            carry = 0  # the chain settled at that fill and dropped the remainder
        total = carry + sum(ppms)
        booked, rest = divmod(total, ONE_MILLION)
        self.carry[number] = (rest, fills)
        amounts = [p // ONE_MILLION for p in ppms]
        extra = booked - sum(amounts)
        if not 0 <= extra <= len(amounts):
            raise AssertionError(f"funding split: {extra} extra quanta for {len(amounts)} positions")
        for i in range(extra):
            amounts[i] += 1
        return [Decimal(a).scaleb(-6) for a in amounts]


def _split_notional(values: list[Decimal]) -> list[Decimal]:
    """``notional`` settlement of one subaccount's exact amounts (USD, + received): the sum floored
    once to 1e-6 USD, each position floored, the extra quanta to the first positions."""
    total = sum(values, Decimal(0)).quantize(QUOTE_QUANTUM, rounding=ROUND_FLOOR)
    amounts = [v.quantize(QUOTE_QUANTUM, rounding=ROUND_FLOOR) for v in values]
    extra = int((total - sum(amounts, Decimal(0))) / QUOTE_QUANTUM)
    for i in range(min(extra, len(amounts))):
        amounts[i] += QUOTE_QUANTUM
    return amounts
