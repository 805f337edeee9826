"""The paper account: cross and isolated subaccounts, the fill ledger, margin checks.

Cross positions live in subaccount 0; an order with ``margin_mode=ISOLATED`` (or any order on
a market whose ``market_type`` is ISOLATED) opens its position in its own child subaccount
(numbers 128, 256, ...; parent ``n % 128 == 0``; dYdX docs ``isolated-positions.md``). On
entry the parent transfers to the child what the child needs to be initially collateralized
after the order (the order's initial margin plus its fee and any fill price above the mark);
when the child is flat with no live orders its collateral goes back to the parent (what
dYdX's front end does). A market is held in one subaccount only, so a child never holds a
second market (chain ``protocol/x/subaccounts/keeper/isolated_subaccount.go``).

Each subaccount's :class:`~perpbot.core.portfolio.Portfolio` is this venue's ledger: every
fill, funding payment and liquidation fee of the simulator is booked there, and only there:
the bot reads their sum through :class:`~perpbot.exchanges.paper.ledger.PaperLedger` and books
none of them again. Margin figures are exact chain math (:mod:`perpbot.core.margin`,
``protocol/lib/margin/risk.go``) at the marks of the :class:`~perpbot.core.exchange.MarketView`.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Callable, Mapping

from perpbot.core.exchange import MarketView
from perpbot.core.margin import OrderMarginCheck, PositionRisk, account_risk, check_order_initial_margin
from perpbot.core.model import ZERO, Balance, Fill, MarginMode, Market, Position, Side, ceil_to
from perpbot.core.portfolio import Portfolio
from perpbot.exchanges.paper.fees import QUOTE_QUANTUM, FeeSchedule
from perpbot.exchanges.paper.orders import OrderTable, SimOrder
from perpbot.exchanges.paper.rules import fmt_usd

#: child subaccount numbers step (parent 0 -> children 128, 256, ...; docs isolated-positions.md)
CHILD_STEP = 128
#: the highest child subaccount number dYdX allows
MAX_CHILD = 128_000


class Subaccount:
    """One dYdX subaccount: its USDC balance and positions (a :class:`perpbot.core.portfolio.Portfolio`).

    :param number: 0 for the cross-margin parent; 128, 256, ... for isolated children.
    :param portfolio: its ledger (collateral USD, positions in base units).
    :param ticker: the one market an isolated child holds.

    ``cushion`` (equity - maintenance margin at the last full liquidation check, USD, or None)
    and ``eval_marks`` (the marks of that check) let the liquidation check skip subaccounts
    far from liquidation (:mod:`perpbot.exchanges.paper.liquidation`).
    """

    __slots__ = ("number", "portfolio", "ticker", "cushion", "eval_marks")

    def __init__(self, number: int, portfolio: Portfolio, ticker: str | None = None):
        self.number = number
        self.portfolio = portfolio
        self.ticker = ticker
        self.cushion: Decimal | None = None  # equity - maintenance at the last full check, USD
        self.eval_marks: dict[str, Decimal] = {}

    @property
    def isolated(self) -> bool:
        """True for an isolated child (number != 0)."""
        return self.number != 0

    def size(self, ticker: str) -> Decimal:
        """Signed position size in ``ticker``, base units (0 when none)."""
        p = self.portfolio.positions.get(ticker)
        return p.size if p is not None else ZERO

    def has_positions(self) -> bool:
        """True when any position is open."""
        return any(p.size for p in self.portfolio.positions.values())


class Accounts:
    """The venue's subaccounts, its fill history and fill ids.

    :param collateral: starting USDC of the parent subaccount 0, USD.
    :param markets: the venue's market table (for new children's portfolios).
    :param view: the bot's read-only market view (marks, market parameters).
    :param orders: the live orders (a child keeps its collateral while it has orders).
    :param fills_kept: how many recent fills :attr:`fills` keeps (``get_fills_since``).
    :param fill_prefix: fill ids are ``<fill_prefix><n>`` (``paper-<run>-``).
    :param watch: called with a ticker whenever the set of markets holding a position changes
        (the coordinator then re-evaluates which markets need per-event work).

    Attributes: ``subs`` (number -> :class:`Subaccount`), ``child_of`` (ticker -> child number
    once a child was made for it), ``pos_tickers`` (markets with a position in any
    subaccount), ``marks`` (the last mark seen per such market, USD; funding snapshots and the
    liquidation bound use it), ``fills`` (recent :class:`~perpbot.core.model.Fill`),
    ``fill_seq`` and ``fill_prefix``.
    """

    def __init__(
        self,
        collateral: Decimal,
        markets: Mapping[str, Market],
        view: MarketView,
        orders: OrderTable,
        fills_kept: int,
        fill_prefix: str,
        watch: Callable[[str], None],
    ):
        self.markets = markets
        self.view = view
        self.orders = orders
        self.subs: dict[int, Subaccount] = {0: Subaccount(0, Portfolio(collateral, markets))}
        self.child_of: dict[str, int] = {}
        self.pos_tickers: set[str] = set()
        self.marks: dict[str, Decimal] = {}
        self.fills: deque[Fill] = deque(maxlen=fills_kept)
        self.fill_seq = 0
        self.fill_prefix = fill_prefix
        self._watch = watch

    @property
    def parent(self) -> Subaccount:
        """The cross-margin parent, subaccount 0."""
        return self.subs[0]

    # -- routing -----------------------------------------------------------------

    def route(self, o: SimOrder) -> tuple[Subaccount | None, str]:
        """Which subaccount ``o`` trades in: ``(subaccount, "")`` or ``(None, reason)``.

        One market lives in one subaccount at a time: the child that holds it (position or
        live orders), else the parent if it does, else a child for isolated orders (created
        on first use, numbers ``CHILD_STEP * k`` up to ``MAX_CHILD``) or the parent for cross
        ones. An isolated order on a market held in cross margin is refused unless it reduces.
        """
        t = o.ticker
        child_no = self.child_of.get(t)
        child = self.subs.get(child_no) if child_no is not None else None
        if child is not None and (child.size(t) or self.orders.has_live_orders(child.number, t, o)):
            return child, ""
        parent = self.subs[0]
        market = self.view.market(t)
        isolated_market = getattr(market, "market_type", "CROSS") == "ISOLATED"
        wants_isolated = o.margin_mode is MarginMode.ISOLATED or isolated_market
        ps = parent.size(t)
        if ps or self.orders.has_live_orders(0, t, o):
            if wants_isolated and not o.reduce_only and not (ps and o.side.sign * ps < 0):
                return None, (
                    f"{t} is held in cross margin in subaccount 0 (position {ps} or live orders); "
                    "close it before trading it in isolated margin"
                )
            return parent, ""
        if not wants_isolated or o.reduce_only:
            return parent, ""
        if child is None:
            child_no = CHILD_STEP * (len(self.child_of) + 1)
            if child_no > MAX_CHILD:
                return None, "no isolated child subaccount left (dYdX allows 128..128000)"
            self.child_of[t] = child_no
            child = self.subs[child_no] = Subaccount(child_no, Portfolio(ZERO, self.markets), ticker=t)
        return child, ""

    # -- margin ------------------------------------------------------------------

    def position_risks(self, sub: Subaccount) -> list[PositionRisk]:
        """The open positions of ``sub`` as :class:`~perpbot.core.margin.PositionRisk` at the
        view's marks (a position without a mark at its entry price)."""
        out = []
        for t, p in sub.portfolio.positions.items():
            if p.size:
                mark = self.view.mark(t) or p.entry_price
                out.append(PositionRisk.from_market(self.view.market(t), p.size, mark))
        return out

    def risk_of(self, risks: list[PositionRisk], ticker: str, fallback_price: Decimal) -> PositionRisk:
        """The entry of ``ticker`` in ``risks``, else a flat one at the mark (else ``fallback_price``, USD)."""
        for r in risks:
            if r.ticker == ticker:
                return r
        return PositionRisk.from_market(self.view.market(ticker), ZERO, self.view.mark(ticker) or fallback_price)

    def margin_check(self, sub: Subaccount, ticker: str, signed: Decimal, price: Decimal, fee: Decimal) -> OrderMarginCheck:
        """The chain's initial-margin rule for a fill of ``signed`` base units at ``price`` USD with
        ``fee`` USD in ``sub`` (:func:`perpbot.core.margin.check_order_initial_margin`, including the
        exception for risk-reducing fills of an under-collateralized account)."""
        risks = self.position_risks(sub)
        cur = self.risk_of(risks, ticker, fallback_price=price)
        return check_order_initial_margin(sub.portfolio.collateral, risks, cur, signed, price, fee)

    def order_margin_reason(
        self, o: SimOrder, sub: Subaccount, qty: Decimal, avg: Decimal, fee: Decimal, fees: FeeSchedule, now_ns: int
    ) -> str:
        """Initial-margin check of a whole order expected to fill ``qty`` base units at ``avg`` USD
        with ``fee`` USD; for an isolated child, funds it from the parent (:meth:`fund_child`).

        :returns: ``""`` or the rejection reason (with the numbers).
        """
        signed = qty if o.side is Side.BUY else -qty
        chk = self.margin_check(sub, o.ticker, signed, avg, fee)
        if chk.accepted and not sub.isolated:
            return ""
        if not sub.isolated:
            return (
                f"insufficient margin for {o.side.value} {qty} {o.ticker} at ~{fmt_usd(avg)}: initial margin required "
                f"{fmt_usd(chk.required)} USD, available {fmt_usd(chk.available)} USD equity after the order "
                f"(short by {fmt_usd(chk.shortfall)} USD)"
            )
        return self.fund_child(o, sub, qty, avg, chk.shortfall, fees, now_ns)

    def fund_child(
        self, o: SimOrder, sub: Subaccount, qty: Decimal, avg: Decimal, shortfall: Decimal, fees: FeeSchedule, now_ns: int
    ) -> str:
        """Transfer from the parent what the child needs to be initially collateralized after the
        order, also when the position is valued at the order's own price (so a resting order far
        from the mark is funded with its initial margin), plus 0.00001 USD of rounding dust.

        :returns: ``""`` or the rejection reason when the parent's free collateral is short.
        """
        t = o.ticker
        risks = self.position_risks(sub)
        cur = self.risk_of(risks, t, fallback_price=avg)
        at_price = PositionRisk.from_market(self.view.market(t), cur.size, avg)
        others = [r for r in risks if r is not cur]
        signed = qty if o.side is Side.BUY else -qty
        reduces = cur.size and (signed > 0) != (cur.size > 0) and qty <= abs(cur.size)
        if not reduces:
            fee = fees.fee(avg * qty, False, now_ns)
            chk = check_order_initial_margin(
                sub.portfolio.collateral, others, at_price, signed, avg, fee, allow_undercollateralized_risk_reduction=False
            )
            shortfall = max(shortfall, chk.shortfall)
        if not shortfall:
            return ""
        # the parent funds what the child needs (+ rounding dust)
        need = ceil_to(shortfall, QUOTE_QUANTUM) + Decimal("0.00001")
        parent = self.subs[0]
        prisk = account_risk(parent.portfolio.collateral, self.position_risks(parent))
        if prisk.free_collateral < need:
            return (
                f"insufficient margin for isolated {o.side.value} {qty} {t} at ~{fmt_usd(avg)}: the child subaccount "
                f"{sub.number} needs a transfer of {fmt_usd(need)} USD (its initial margin, fee and entry cost) but the parent's "
                f"free collateral is {fmt_usd(prisk.free_collateral)} USD"
            )
        parent.portfolio.collateral -= need
        sub.portfolio.collateral += need
        o.transferred += need
        parent.cushion = sub.cushion = None
        return ""

    def sweep(self, sub: Subaccount | None) -> None:
        """An isolated child that is flat and has no live orders returns its collateral to the parent."""
        if sub is None or not sub.isolated or sub.has_positions():
            return
        if self.orders.holds_subaccount(sub.number):
            return
        amount = sub.portfolio.collateral
        if amount:
            sub.portfolio.collateral -= amount
            self.subs[0].portfolio.collateral += amount
            self.subs[0].cushion = None

    # -- the ledger --------------------------------------------------------------

    def next_fill_id(self) -> str:
        """The next venue fill id, ``paper-<run>-<n>`` (unique across runs, issue 9.2)."""
        self.fill_seq += 1
        return f"{self.fill_prefix}{self.fill_seq}"

    def book_fill(self, sub: Subaccount, fill: Fill) -> None:
        """Book ``fill`` into ``sub``'s portfolio (an isolated child's position is ISOLATED),
        remember it in :attr:`fills` and keep :attr:`pos_tickers` / :attr:`marks` current."""
        pf = sub.portfolio
        t = fill.ticker
        if sub.isolated and t not in pf.positions:
            pf.positions[t] = Position(t, margin_mode=MarginMode.ISOLATED, venue=fill.venue)
        pos = pf.apply_fill(fill)
        self.fills.append(fill)
        sub.cushion = None
        if pos.size:
            if t not in self.pos_tickers:
                self.pos_tickers.add(t)
                self._watch(t)
                m = self.view.mark(t)
                if m is not None:
                    self.marks[t] = m
        else:
            self.recompute_pos_ticker(t)

    def recompute_pos_ticker(self, t: str) -> None:
        """Re-derive whether ``t`` has a position in any subaccount (and tell the watcher)."""
        if any(s.size(t) for s in self.subs.values()):
            self.pos_tickers.add(t)
        else:
            self.pos_tickers.discard(t)
            self.marks.pop(t, None)
        self._watch(t)

    # -- figures -----------------------------------------------------------------

    def positions(self) -> dict[str, Position]:
        """Open positions by ticker over every subaccount (size != 0)."""
        out: dict[str, Position] = {}
        for sub in self.subs.values():
            for t, p in sub.portfolio.positions.items():
                if p.size:
                    out[t] = p
        return out

    def balance(self, now_ns: int) -> Balance:
        """Account totals over the parent and its isolated children, USD (exact chain margin)."""
        q = eq = imr = mmr = ZERO
        for sub in self.subs.values():
            ar = account_risk(sub.portfolio.collateral, self.position_risks(sub))
            q += sub.portfolio.collateral
            eq += ar.equity
            imr += ar.initial_margin
            mmr += ar.maintenance_margin
        return Balance(
            collateral=q, equity=eq, free_collateral=eq - imr, initial_margin=imr, maintenance_margin=mmr, ts_ns=now_ns
        )

    def subaccount_balances(self, now_ns: int) -> dict[int, Balance]:
        """Per-subaccount figures (0 = cross parent, 128.. = isolated children), USD."""
        out = {}
        for n, sub in self.subs.items():
            ar = account_risk(sub.portfolio.collateral, self.position_risks(sub))
            out[n] = Balance(
                collateral=sub.portfolio.collateral,
                equity=ar.equity,
                free_collateral=ar.free_collateral,
                initial_margin=ar.initial_margin,
                maintenance_margin=ar.maintenance_margin,
                ts_ns=now_ns,
            )
        return out
