"""Hourly funding in the paper exchange.

At the top of each hour of clock time the open positions and their marks are snapshotted as
of the hour (at the first event strictly after it, so that everything stamped exactly on the
hour, such as a bar closing at the hour, is included), and settled at the first event
``funding_grace_s`` after the hour with, per market, the settled rate for that hour if the
feed has delivered one (``FundingRate(settled=True)``; a venue with ``interval_h > 1`` applies
its latest settled rate to every hour of its interval), else the running prediction
(``MarketState.funding_rate_1h``). Payment per position
:func:`perpbot.core.margin.funding_payment` = ``-size * oracle * rate_1h`` (docs
``funding.mdx``), floored per subaccount to 1e-6 USD like the chain's settlement (chain
``protocol/x/perpetuals/lib/lib.go`` ``GetSettlementPpmWithPerpetual``). A market with an open
position and no funding data at all is NOT assumed to pay zero: it is logged once and listed
in :attr:`FundingSimulator.missing`.
"""

from __future__ import annotations

from collections import deque
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Callable

from loguru import logger

from perpbot.core.exchange import MarketView
from perpbot.core.margin import funding_payment
from perpbot.core.model import ZERO, FundingPayment, FundingRate
from perpbot.exchanges.paper.fees import QUOTE_QUANTUM
from perpbot.exchanges.paper.liquidation import Liquidator
from perpbot.exchanges.paper.subaccounts import Accounts

NS = 1_000_000_000
HOUR_NS = 3600 * NS
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

    Attributes: ``next_hour_ns`` (the next hour boundary, ns; 0 before the first event),
    ``due`` (``[hour_ns, settle_at_ns, [(subaccount, ticker, size, mark USD)]]`` snapshots
    awaiting settlement, oldest first), ``settled_rates`` (ticker -> recent
    ``(hour_ns, rate_1h, oracle USD or None, interval_h)``), ``payments`` (every payment, or
    after a resume the exported tail), ``missing`` (markets paid no funding for lack of data)
    and ``warned`` (those already logged).
    """

    def __init__(
        self,
        accounts: Accounts,
        view: MarketView,
        liquidator: Liquidator,
        grace_s: int,
        emit: Callable[[Any], None],
        venue: str,
    ):
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

    def settle(self, hour_ns: int, snap: list, ts: int) -> None:
        """Pay the hour ``hour_ns`` for the snapshot ``snap`` at event time ``ts`` (ns): book each
        payment, emit it, then force a liquidation check (or sweep a flat child)."""
        by_sub: dict[int, list] = {}
        for number, t, size, mark in snap:
            r = self.rate_for(t, hour_ns)
            if r is None:
                self.missing.add(t)
                if t not in self.warned:
                    self.warned.add(t)
                    logger.warning(
                        f"paper: no funding rate for {t} at the top of the hour (the data has no funding for it); "
                        f"funding is NOT simulated for {t} and NOT assumed zero - see the run summary"
                    )
                continue
            rate, oracle, _ = r
            price = oracle if oracle is not None else mark
            by_sub.setdefault(number, []).append((t, size, price, rate, funding_payment(size, price, rate)))
        for number, items in by_sub.items():
            sub = self.accounts.subs.get(number)
            if sub is None:
                continue
            # chain: the subaccount's sum is floored once to a quote quantum (lib.go
            # GetSettlementPpmWithPerpetual); per position we floor, then hand the
            # remaining quanta to the first positions so the sum matches.
            total = sum((x[4] for x in items), ZERO).quantize(QUOTE_QUANTUM, rounding=ROUND_FLOOR)
            amounts = [x[4].quantize(QUOTE_QUANTUM, rounding=ROUND_FLOOR) for x in items]
            extra = int((total - sum(amounts, ZERO)) / QUOTE_QUANTUM)
            for i in range(min(extra, len(amounts))):
                amounts[i] += QUOTE_QUANTUM
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
