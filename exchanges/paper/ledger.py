"""The paper venue's one fill ledger, as the bot reads it: a read-only sum of its subaccounts.

Every fill, funding payment and liquidation fee of the simulator is booked once, into the
:class:`~perpbot.core.portfolio.Portfolio` of the subaccount it happened in
(:meth:`perpbot.exchanges.paper.subaccounts.Accounts.book_fill`, :mod:`.funding`,
:mod:`.liquidation`). :class:`PaperLedger` is what the bot uses as this venue's portfolio
(``bot.portfolios["paper"]``, through
:meth:`perpbot.core.exchange.BaseExchangeClient.account_ledger`): the same read interface as
``Portfolio``, summed over the parent and its isolated children, so there is no second
booking that must agree with the first.

Figures are those of a single ``Portfolio`` that booked every fill: ``collateral`` and the
counters are sums (transfers between parent and child cancel out); positions are merged per
ticker (a market lives in one subaccount at a time, so its size, entry price and margin mode
come from the subaccount holding it, while realized PnL, fees and funding add up over
subaccounts); ``balance`` / ``equity`` / ``margin_requirements`` are ``Portfolio``'s own
formulas (``core/portfolio.py``: base IMF/MMF, no OI scaling), not the exchange's exact chain
margin (:meth:`perpbot.exchanges.paper.exchange.PaperExchange.get_balance`).

Differences from the bot's former own portfolio: a position held in an isolated child shows
``margin_mode=ISOLATED``, and the ledger is always the exchange's present state, so an
observer of the first ``on_fill`` of an order that filled in several pieces already sees
the whole order booked.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Mapping

import attrs

from perpbot.core.model import ZERO, Position
from perpbot.core.portfolio import MarketStats, Portfolio

if TYPE_CHECKING:  # pragma: no cover
    from perpbot.core.model import Market
    from perpbot.exchanges.paper.subaccounts import Accounts

#: MarketStats fields that add up over subaccounts (all of them: counters and USD sums)
_STAT_FIELDS = tuple(f.name for f in attrs.fields(MarketStats))


class PaperLedger:
    """Read-only view of a paper exchange's subaccounts with :class:`~perpbot.core.portfolio.Portfolio`'s
    read interface (it has no ``apply_fill``, ``apply_funding`` or ``charge``).

    :param accounts_of: a function returning the exchange's current
        :class:`~perpbot.exchanges.paper.subaccounts.Accounts` (read on every access, so a
        restored checkpoint, which replaces the subaccounts, is seen at once).

    Attributes (all computed on access; amounts USD, sizes base units): ``starting_collateral``
    (the parent's), ``collateral``, ``fees_paid``, ``funding_net``, ``realized_pnl``,
    ``liquidation_fees`` (sums), ``fills`` (count), ``positions`` (ticker ->
    :class:`~perpbot.core.model.Position`, merged), ``stats`` (ticker ->
    :class:`~perpbot.core.portfolio.MarketStats`, summed; a ``defaultdict``, a fresh copy each
    time), ``markets`` (the parent's market table).
    """

    __slots__ = ("_accounts_of",)

    def __init__(self, accounts_of: Any):
        self._accounts_of = accounts_of

    def _portfolios(self) -> list[Portfolio]:
        subs = self._accounts_of().subs
        if len(subs) == 1:  # the usual case: the parent alone (nothing to sort)
            return [sub.portfolio for sub in subs.values()]
        return [subs[n].portfolio for n in sorted(subs)]

    # -- summed figures ----------------------------------------------------------

    @property
    def starting_collateral(self) -> Decimal:
        """The parent subaccount's starting collateral, USD (children start at 0)."""
        return self._accounts_of().subs[0].portfolio.starting_collateral

    @property
    def markets(self) -> "Mapping[str, Market]":
        """The venue's market table (ticker -> :class:`~perpbot.core.model.Market`)."""
        return self._accounts_of().subs[0].portfolio.markets

    @property
    def collateral(self) -> Decimal:
        """USDC asset position ``Q`` summed over subaccounts, USD (signed)."""
        pfs = self._portfolios()
        if len(pfs) == 1:  # the sum of one: ZERO + Q, written as the sum writes it
            return ZERO + pfs[0].collateral
        return sum((pf.collateral for pf in pfs), ZERO)

    @property
    def fees_paid(self) -> Decimal:
        """Trading fees paid over subaccounts, USD."""
        return sum((pf.fees_paid for pf in self._portfolios()), ZERO)

    @property
    def funding_net(self) -> Decimal:
        """Net funding over subaccounts, USD (+ received)."""
        return sum((pf.funding_net for pf in self._portfolios()), ZERO)

    @property
    def realized_pnl(self) -> Decimal:
        """Realized PnL over subaccounts (average-entry method), USD."""
        return sum((pf.realized_pnl for pf in self._portfolios()), ZERO)

    @property
    def liquidation_fees(self) -> Decimal:
        """Liquidation fees charged over subaccounts, USD."""
        return sum((pf.liquidation_fees for pf in self._portfolios()), ZERO)

    @property
    def fills(self) -> int:
        """Fills booked over subaccounts."""
        return sum(pf.fills for pf in self._portfolios())

    @property
    def positions(self) -> dict[str, Position]:
        """Ticker -> merged :class:`~perpbot.core.model.Position` (a new dict each time).

        Size, entry price and margin mode come from the subaccount holding the market (the
        last one in subaccount order when none does); realized PnL, fees and funding are
        summed over every subaccount that ever held it.
        """
        pfs = self._portfolios()
        if len(pfs) == 1:  # one subaccount: its own positions (the loop below would copy them as they are)
            return dict(pfs[0].positions)
        out: dict[str, Position] = {}
        for pf in pfs:
            for t, p in pf.positions.items():
                prev = out.get(t)
                if prev is None:
                    out[t] = p
                    continue
                holder, other = (prev, p) if prev.size and not p.size else (p, prev)
                out[t] = attrs.evolve(
                    holder,
                    realized_pnl=holder.realized_pnl + other.realized_pnl,
                    fees=holder.fees + other.fees,
                    funding=holder.funding + other.funding,
                )
        return out

    @property
    def stats(self) -> dict[str, MarketStats]:
        """Ticker -> :class:`~perpbot.core.portfolio.MarketStats` summed over subaccounts (a fresh
        ``defaultdict(MarketStats)``; changing it changes nothing in the exchange)."""
        out: dict[str, MarketStats] = defaultdict(MarketStats)
        for pf in self._portfolios():
            for t, s in pf.stats.items():
                acc = out[t]
                for name in _STAT_FIELDS:
                    setattr(acc, name, getattr(acc, name) + getattr(s, name))
        return out

    # -- Portfolio's own formulas over the figures above (core/portfolio.py) -----------

    open_positions = Portfolio.open_positions
    unrealized_pnl = Portfolio.unrealized_pnl
    equity = Portfolio.equity
    margin_requirements = Portfolio.margin_requirements
    balance = Portfolio.balance
    gross_notional = Portfolio.gross_notional

    def __repr__(self) -> str:
        return f"PaperLedger(subaccounts={sorted(self._accounts_of().subs)})"

