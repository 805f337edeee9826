"""Positions, collateral and PnL, booked from fills and funding payments.

Accounting follows dYdX's subaccount model: the USDC asset position ``Q``
(``collateral``, signed) moves by ``-size*price`` on every fill, minus fees,
plus funding; equity (net collateral) is ``Q + sum(S_i * P_i)`` at the mark
prices (chain ``protocol/lib/margin/risk.go``). Realized PnL is tracked per
position with the average-entry method for reporting; the identity

    equity == starting collateral + realized + unrealized - fees + funding - liquidation fees

holds to Decimal's 28 significant digits (an average entry price can be a
non-terminating quotient; collateral itself is booked exactly) and is tested.

The same class is the paper simulator's account (one per subaccount: the exchange's truth)
and the bot's own view built from the fills a live exchange reports. For an exchange that
books its own account (``BaseExchangeClient.account_ledger()``, e.g. the paper simulator's
:class:`perpbot.exchanges.paper.ledger.PaperLedger`) the bot reads that ledger, which has this
class's read interface, and books nothing a second time.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Mapping

import attrs

from perpbot.core.model import ZERO, Balance, Fill, FundingPayment, Market, Position


@attrs.define
class MarketStats:
    """Per-market counters for the summary and report."""

    trades: int = 0
    volume: Decimal = ZERO  # notional USD
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    maker_fills: int = 0
    taker_fills: int = 0
    liquidations: int = 0
    closed_trades: int = 0
    winning_trades: int = 0


class Portfolio:
    """Account state of one venue.

    :param collateral: starting USDC collateral, USD (Decimal, int or numeric str).
    :param markets: market parameters by ticker (for IMF/MMF).
    :raises TypeError: when ``collateral`` is a float.
    """

    def __init__(self, collateral: Decimal, markets: Mapping[str, Market] | None = None):
        if isinstance(collateral, float):
            raise TypeError("collateral: pass a Decimal, not a float")
        self.starting_collateral = Decimal(collateral)
        self.collateral = Decimal(collateral)
        self.markets = markets if markets is not None else {}
        self.positions: dict[str, Position] = {}
        self.stats: dict[str, MarketStats] = defaultdict(MarketStats)
        self.fees_paid = ZERO
        self.funding_net = ZERO
        self.realized_pnl = ZERO
        self.liquidation_fees = ZERO
        self.fills = 0

    # -- booking ------------------------------------------------------------

    def apply_fill(self, fill: Fill) -> Position:
        """Book a fill: collateral, average entry, realized PnL, fees. Returns the new position.

        ``Q -= signed_size * price + fee`` (signed size + for a buy); adding to a position
        averages the entry price by size, reducing one realizes
        ``closed_size * (price - entry) * direction`` (USD), and a flip opens the remainder
        at the fill price.
        """
        pos = self.positions.get(fill.ticker) or Position(fill.ticker, venue=fill.venue)
        signed = fill.size if fill.side.sign > 0 else -fill.size
        old = pos.size
        new = old + signed
        realized = ZERO
        entry = pos.entry_price
        if old == 0 or (old > 0) == (signed > 0):
            # opening or adding: weighted average entry
            entry = (abs(old) * pos.entry_price + fill.size * fill.price) / abs(new)
        else:
            closed = min(abs(old), fill.size)
            direction = 1 if old > 0 else -1
            realized = closed * (fill.price - pos.entry_price) * direction
            if new == 0:
                entry = ZERO
            elif (new > 0) != (old > 0):
                entry = fill.price  # flipped: the remainder opened at the fill price
        self.collateral -= signed * fill.price
        self.collateral -= fill.fee
        self.fees_paid += fill.fee
        self.realized_pnl += realized
        st = self.stats[fill.ticker]
        st.trades += 1
        st.volume += fill.size * fill.price
        st.fees += fill.fee
        st.realized_pnl += realized
        if fill.liquidity.value == "MAKER":
            st.maker_fills += 1
        else:
            st.taker_fills += 1
        if fill.liquidation:
            st.liquidations += 1
        if realized != 0 or (old != 0 and abs(new) < abs(old)):
            st.closed_trades += 1
            if realized > 0:
                st.winning_trades += 1
        self.fills += 1
        pos = attrs.evolve(
            pos,
            size=new,
            entry_price=entry,
            realized_pnl=pos.realized_pnl + realized,
            fees=pos.fees + fill.fee,
        )
        self.positions[fill.ticker] = pos
        return pos

    def apply_funding(self, payment: FundingPayment) -> None:
        """Book a funding payment (``amount`` USD, + received)."""
        self.collateral += payment.amount
        self.funding_net += payment.amount
        self.stats[payment.ticker].funding += payment.amount
        pos = self.positions.get(payment.ticker)
        if pos is not None:
            self.positions[payment.ticker] = attrs.evolve(pos, funding=pos.funding + payment.amount)

    def charge(self, amount: Decimal, ticker: str = "", liquidation_fee: bool = False) -> None:
        """Debit ``amount`` USD from collateral (e.g. a liquidation fee to the insurance fund)."""
        self.collateral -= amount
        if liquidation_fee:
            self.liquidation_fees += amount
            if ticker:
                self.stats[ticker].fees += amount

    # -- views --------------------------------------------------------------

    def open_positions(self) -> dict[str, Position]:
        """Ticker -> :class:`~perpbot.core.model.Position` for every non-zero position."""
        return {t: p for t, p in self.positions.items() if p.size != 0}

    def unrealized_pnl(self, marks: Mapping[str, Decimal]) -> Decimal:
        """Sum of ``size * (mark - entry_price)`` over open positions, USD.

        :param marks: ticker -> mark price USD; a position without a mark counts 0.
        """
        total = ZERO
        for t, p in self.positions.items():
            if p.size and t in marks and marks[t] is not None:
                total += p.size * (marks[t] - p.entry_price)
        return total

    def equity(self, marks: Mapping[str, Decimal]) -> Decimal:
        """Net collateral ``Q + sum(S*P)`` at ``marks`` (USD). A position without a mark
        is valued at its entry price."""
        total = self.collateral
        for t, p in self.positions.items():
            if p.size:
                price = marks.get(t) or p.entry_price
                total += p.size * price
        return total

    def margin_requirements(self, marks: Mapping[str, Decimal]) -> tuple[Decimal, Decimal]:
        """(total initial, total maintenance) margin, USD, with each market's base IMF/MMF."""
        imr = mmr = ZERO
        for t, p in self.positions.items():
            if not p.size:
                continue
            m = self.markets.get(t)
            if m is None:
                continue
            notional = abs(p.size) * (marks.get(t) or p.entry_price)
            imr += notional * m.initial_margin_fraction
            mmr += notional * m.maintenance_margin_fraction
        return imr, mmr

    def balance(self, marks: Mapping[str, Decimal], ts_ns: int = 0) -> Balance:
        """The account :class:`~perpbot.core.model.Balance` at ``marks`` (ticker -> USD):
        equity (:meth:`equity`), free collateral = equity - initial margin, and the margin
        totals of :meth:`margin_requirements` (base IMF/MMF, no OI scaling)."""
        eq = self.equity(marks)
        imr, mmr = self.margin_requirements(marks)
        return Balance(
            collateral=self.collateral,
            equity=eq,
            free_collateral=eq - imr,
            initial_margin=imr,
            maintenance_margin=mmr,
            ts_ns=ts_ns,
        )

    def gross_notional(self, marks: Mapping[str, Decimal]) -> Decimal:
        """Sum of ``|size| * mark`` over open positions, USD (entry price where a mark is missing)."""
        return sum(
            (abs(p.size) * (marks.get(t) or p.entry_price) for t, p in self.positions.items() if p.size), ZERO
        )
