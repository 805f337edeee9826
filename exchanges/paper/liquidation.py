"""Liquidation in the paper exchange, by the chain's rule.

After every mark change of a market with a position, each subaccount holding it is checked
with the strict chain rule (``TMMR > 0 and NC < TMMR``, :attr:`perpbot.core.margin.AccountRisk.is_liquidatable`;
chain ``IsLiquidatable`` in dydxprotocol/v4-chain ``protocol/x/clob/keeper/liquidations.go``); a cheap exact bound skips the full check
while the mark stays far from liquidation. A liquidatable subaccount's positions are closed
one by one (largest maintenance margin first) until it is no longer liquidatable, each at the
chain's fillable price (:func:`perpbot.core.margin.liquidation_fill_price`, rounded to the tick
like the chain's liquidation order: up for a long, down for a short) with the insurance-fund
fee (:func:`perpbot.core.margin.liquidation_fee`; negative when the fund covers a bankruptcy).
Each emits ``Fill(liquidation=True, fee=0)`` and ``Liquidation(fee=...)``: the bot books the
fee from the ``Liquidation`` (``Portfolio.charge(..., liquidation_fee=True)``). The whole
position is closed at once (the chain may liquidate in parts per block).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable

from perpbot.core.exchange import MarketView
from perpbot.core.margin import (
    account_risk,
    bankruptcy_quote,
    isolated_liquidation_price,
    liquidation_fee,
    liquidation_fill_price,
    liquidation_prices,
)
from perpbot.core.model import ZERO, Fill, Liquidation, Liquidity, Side, ceil_to, floor_to
from perpbot.exchanges.paper.rules import fmt_usd
from perpbot.exchanges.paper.subaccounts import Accounts, Subaccount

#: client id of liquidation fills (dYdX client ids are uint32, so -1 never collides)
LIQUIDATION_CLIENT_ID = -1
#: chain rounding of net collateral / maintenance margin per position, USD (keeps the skip bound safe)
SLACK_PER_POSITION = Decimal("0.000003")


class Liquidator:
    """Checks subaccounts against the maintenance-margin rule and liquidates them.

    :param accounts: the subaccounts (positions, collateral, last marks).
    :param view: the bot's read-only market view (marks, market parameters).
    :param max_fee_ppm: the insurance-fund fee cap, parts per million of the closed notional
        (``max_liquidation_fee_ppm``).
    :param emit: hands each ``Fill`` and ``Liquidation`` to the bot.
    :param venue: the venue name put on the events.

    ``liquidations``: every :class:`~perpbot.core.model.Liquidation` of the run (or, after a
    resume, since the exported tail).
    """

    def __init__(self, accounts: Accounts, view: MarketView, max_fee_ppm: int, emit: Callable[[Any], None], venue: str):
        self.accounts = accounts
        self.view = view
        self.max_fee_ppm = max_fee_ppm
        self.emit = emit
        self.venue = venue
        self.liquidations: list[Liquidation] = []

    def check_market(self, ticker: str, ts: int) -> None:
        """The mark of ``ticker`` changed: check every subaccount holding it."""
        for sub in list(self.accounts.subs.values()):
            if sub.size(ticker):
                self.check(sub, ts)

    def check(self, sub: Subaccount, ts: int, force: bool = False) -> None:
        """Liquidate ``sub`` if it is liquidatable (strict chain rule), cheaply when far from it.

        Unless ``force``, the full check is skipped while ``sum(|size| * (1 + mmf) * |mark - mark at
        the last check|)`` stays below the cushion (equity - maintenance margin - rounding slack)
        found by the last full check.
        """
        positions = [(t, p.size) for t, p in sub.portfolio.positions.items() if p.size]
        if not positions:
            sub.cushion = None
            return
        if not force and sub.cushion is not None:
            bound = ZERO
            for t, size in positions:
                m = self.accounts.marks.get(t) or self.view.mark(t)
                m0 = sub.eval_marks.get(t)
                if m is None or m0 is None:
                    bound = None
                    break
                bound += abs(size) * (1 + self.view.market(t).maintenance_margin_fraction) * abs(m - m0)
            if bound is not None and bound < sub.cushion:
                return
        risks = self.accounts.position_risks(sub)
        ar = account_risk(sub.portfolio.collateral, risks)
        if ar.is_liquidatable:
            self.liquidate(sub, ts)
            return
        sub.cushion = ar.equity - ar.maintenance_margin - SLACK_PER_POSITION * len(risks)
        sub.eval_marks = {r.ticker: r.oracle_price for r in risks}

    def liquidate(self, sub: Subaccount, ts: int) -> None:
        """Close ``sub``'s positions, largest maintenance margin first, until it is not
        liquidatable; book each fill and fee, emit ``Fill`` and ``Liquidation``."""
        while True:
            risks = self.accounts.position_risks(sub)
            if not risks:
                break
            ar = account_risk(sub.portfolio.collateral, risks)
            if not ar.is_liquidatable:
                break
            pr = max(risks, key=lambda r: r.maintenance_margin_quote_quantums)
            t = pr.ticker
            market = self.view.market(t)
            size = pr.size
            try:
                exact = liquidation_fill_price(pr, ar.equity, ar.maintenance_margin)
            except ValueError:
                exact = pr.oracle_price
            if size > 0:
                price = ceil_to(exact, market.tick_size)
            else:
                price = floor_to(exact, market.tick_size)
            if price <= 0:
                price = market.tick_size
            bq = bankruptcy_quote(pr, -size, ar.equity, ar.maintenance_margin)
            quote_received = size * price
            fee = liquidation_fee(quote_received, bq, self.max_fee_ppm)
            side = Side.SELL if size > 0 else Side.BUY
            fill = Fill(
                client_id=LIQUIDATION_CLIENT_ID,
                ticker=t,
                side=side,
                price=price,
                size=abs(size),
                fee=ZERO,
                liquidity=Liquidity.TAKER,
                ts_ns=ts,
                fill_id=self.accounts.next_fill_id(),
                venue=self.venue,
                tag="liquidation",
                liquidation=True,
            )
            self.accounts.book_fill(sub, fill)
            sub.portfolio.charge(fee, t, liquidation_fee=True)
            where = f"isolated subaccount {sub.number}" if sub.isolated else "cross subaccount 0"
            liq = Liquidation(
                ticker=t,
                ts_ns=ts,
                size=size,
                price=price,
                fee=fee,
                reason=(
                    f"{'long' if size > 0 else 'short'} {abs(size)} {t} in {where}: equity {fmt_usd(ar.equity)} USD < "
                    f"maintenance margin {fmt_usd(ar.maintenance_margin)} USD at mark {fmt_usd(pr.oracle_price)}; "
                    f"closed at the fillable price {price}, insurance fund fee {fee} USD"
                ),
                venue=self.venue,
            )
            self.liquidations.append(liq)
            self.emit(fill)
            self.emit(liq)
        sub.cushion = None
        if sub.isolated:
            self.accounts.sweep(sub)

    def liquidation_price(self, ticker: str) -> Decimal | None:
        """Oracle price at which the position in ``ticker`` would be liquidated, USD (None if flat
        or not liquidatable by its own price). Isolated: the child's own; cross: with the other
        positions' maintenance margin held fixed (docs ``liquidations.mdx``;
        :func:`perpbot.core.margin.liquidation_prices`)."""
        for sub in self.accounts.subs.values():
            size = sub.size(ticker)
            if not size:
                continue
            risks = self.accounts.position_risks(sub)
            if sub.isolated:
                r = risks[0]
                eq = account_risk(sub.portfolio.collateral, risks).equity
                return isolated_liquidation_price(eq, r.size, r.oracle_price, r.mmf)
            prices = liquidation_prices(sub.portfolio.collateral, risks)
            for r, p in zip(risks, prices):
                if r.ticker == ticker:
                    return p
        return None
