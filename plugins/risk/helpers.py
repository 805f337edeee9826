"""Shared pieces of the built-in risk policies: number formatting, ticker/venue mapping,
per-venue balances and total equity, an order's post-trade position, and the
REDUCE-or-REJECT decision.

Tickers: orders reach ``check_order`` with the venue's own ticker and ``venue`` set;
positions, marks, markets and staleness in the :class:`~perpbot.core.policies.RiskView`
are keyed by qualified ticker ("binance:BTC-USD" for a non-primary venue).
:func:`qualified_ticker` maps one to the other with the bot's ``config.primary_venue``
(when the policy's context is the bot).

Imports only :mod:`perpbot.core` and ``attrs``.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Any

import attrs

from perpbot.core.model import ZERO, Balance, Market, OrderRequest, Position
from perpbot.core.model.enums import BUY
from perpbot.core.policies import RiskAction, RiskDecision, RiskPolicy, RiskView

#: nanoseconds per second
NS = 1_000_000_000
ONE = Decimal(1)
HUNDRED = Decimal(100)


# ---------------------------------------------------------------------------
# formatting and parameter validation
# ---------------------------------------------------------------------------


def fmt(d: Decimal | None, places: int = 6) -> str:
    """``d`` as plain decimal text for a reason: rounded to ``places`` decimals (values below
    1e15), trailing zeros dropped; ``"none"`` for None, ``"Infinity"``/``"NaN"`` as such."""
    if d is None:
        return "none"
    if not d.is_finite():
        return str(d)
    s = format(d.quantize(Decimal(1).scaleb(-places)) if abs(d) < Decimal(10) ** 15 else d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s or "0"


def pct(fraction: Decimal) -> str:
    """A fraction as a percentage with at most 2 decimals: ``Decimal("0.1234")`` -> ``"12.34%"``."""
    return f"{fmt(fraction * HUNDRED, 2)}%"


def positive(instance: Any, attribute: Any, value: Decimal | None) -> None:
    """attrs validator for optional positive parameters (None passes).

    :raises ValueError: ``"parameter <name>: must be positive, got <value>"`` for ``value <= 0``.
    """
    if value is not None and value <= 0:
        raise ValueError(f"parameter {attribute.name}: must be positive, got {value}")


# ---------------------------------------------------------------------------
# tickers and venues
# ---------------------------------------------------------------------------


def primary_venue(context: Any) -> str | None:
    """The bot's primary venue name (``context.config.primary_venue``), or None when the
    context has no ``config`` (a standalone policy check)."""
    cfg = getattr(context, "config", None)
    return cfg.primary_venue if cfg is not None else None


def qualified_ticker(order: OrderRequest, view: RiskView, context: Any = None) -> str:
    """The RiskView key of an order's market: the order's ticker on the primary venue (or
    with no venue), ``"<venue>:<ticker>"`` ("binance:BTC-USD") on another venue.

    Without a context naming the primary venue, the qualified form is used when the view
    knows it (in ``markets``, ``marks`` or ``positions``), else the bare ticker.
    """
    t = order.ticker
    if ":" in t:
        return t
    venue = order.venue
    if not venue:
        return t
    primary = primary_venue(context)
    if primary is not None:
        return t if venue == primary else f"{venue}:{t}"
    q = f"{venue}:{t}"
    if q in view.markets or q in view.marks or q in view.positions:
        return q
    return t


def venue_of(qualified: str) -> str | None:
    """The venue prefix of a qualified ticker (``"binance:BTC-USD"`` -> ``"binance"``);
    None for a primary-venue (unqualified) ticker."""
    return qualified.split(":", 1)[0] if ":" in qualified else None


def venue_positions(view: RiskView, qualified: str) -> dict[str, Position]:
    """Open positions on the same venue (same account) as ``qualified``, keyed as in the view."""
    v = venue_of(qualified)
    out = {}
    for t, p in view.positions.items():
        if venue_of(t) == v and p.size:
            out[t] = p
    return out


def mark_price(view: RiskView, qualified: str, order: OrderRequest) -> Decimal | None:
    """The mark (oracle) price of ``qualified`` in the view, else the order's limit price,
    else None (USD)."""
    m = view.marks.get(qualified)
    if m is None:
        m = order.price
    return m


def market_for(view: RiskView, qualified: str) -> Market | None:
    """Market parameters of ``qualified`` (or of its bare ticker), None when unknown."""
    return view.markets.get(qualified) or view.markets.get(qualified.split(":", 1)[-1])


# ---------------------------------------------------------------------------
# balances and equity
# ---------------------------------------------------------------------------


def venue_balance(view: RiskView, qualified: str, context: Any = None) -> Balance:
    """The balance of the account that holds ``qualified`` (USD amounts).

    An unqualified ticker is the primary venue's: ``view.balance``. A qualified one
    (``"binance:BTC-USD"``) is looked up in ``view.balances[venue]``, else with
    ``context.balance(venue)`` (the bot). Only a view that carries no per-venue balances
    and comes without such a context (one account, e.g. a standalone policy check) uses
    ``view.balance`` for it.

    :raises LookupError: when the venue's balance cannot be found (the view has per-venue
        balances without this venue, or ``context.balance(venue)`` fails); never another
        venue's balance in its place.
    """
    v = venue_of(qualified)
    if v is None:
        return view.balance
    balances = getattr(view, "balances", None)
    if balances and v in balances:
        return balances[v]
    fn = getattr(context, "balance", None)
    if callable(fn):
        try:
            return fn(v)
        except Exception as exc:
            raise LookupError(f"no balance for venue {v!r} ({qualified}): {type(exc).__name__}: {exc}") from exc
    if balances:
        raise LookupError(f"no balance for venue {v!r} ({qualified}); the view has balances for {', '.join(sorted(balances))}")
    return view.balance


def total_equity(view: RiskView, context: Any = None) -> Decimal:
    """Equity over all venues, USD, comparable with ``start_equity`` and ``day_start_equity``.

    In this order:

    1. ``view.total_equity`` when nonzero (the bot fills it with the sum over venues);
    2. the sum of ``view.balances`` when the view carries per-venue balances (so a true
       total of 0 is 0);
    3. ``context.total_equity()`` when the context (the bot) has it;
    4. otherwise the view describes one account (a standalone check without per-venue
       balances or context): its ``view.balance.equity`` is the total.

    :raises LookupError: naming the cause when ``context.total_equity()`` fails; never the
        primary venue's equity in its place (the callers turn it into a HALT with the reason).
    """
    te = getattr(view, "total_equity", None)
    if te is not None and te != 0:
        return te
    balances = getattr(view, "balances", None)
    if balances:
        return sum((b.equity for b in balances.values()), ZERO)
    fn = getattr(context, "total_equity", None)
    if callable(fn):
        try:
            return fn()
        except Exception as exc:
            raise LookupError(f"total equity unknown: {type(exc).__name__}: {exc}") from exc
    return view.balance.equity


# ---------------------------------------------------------------------------
# an order's effect on the position
# ---------------------------------------------------------------------------


@attrs.frozen
class PostTrade:
    """An order's effect on its market's position (base units, signed).

    :param before: position size before the order.
    :param after: position size after the order fills completely.
    :param sign: +1 for a buy, -1 for a sell.
    """

    before: Decimal
    after: Decimal
    sign: int

    @property
    def shrinks(self) -> bool:
        """True when the order only reduces the position (no flip, no increase)."""
        return _shrinks(self.before, self.after)

    @property
    def increasing(self) -> bool:
        """True when the order opens a position or adds to it (same direction)."""
        return self.before == 0 or (self.before > 0) == (self.sign > 0)


def post_trade(order: OrderRequest, view: RiskView, qualified: str) -> PostTrade:
    """The position of ``qualified`` before and after ``order`` fills completely (base units)."""
    pos = view.positions.get(qualified)
    before = pos.size if pos is not None else ZERO
    sign = order.side.sign
    return PostTrade(before, before + sign * order.size, sign)


def shrinks_exposure(order: OrderRequest, view: RiskView, qualified: str) -> bool:
    """Reduce-only orders, and orders against the position no larger than it, shrink exposure
    (:attr:`PostTrade.shrinks` of :func:`post_trade`, computed without building it)."""
    return position_change(order, view, qualified)[3]


def _shrinks(before: Decimal, after: Decimal) -> bool:
    """True when a position going from ``before`` to ``after`` (base units, signed) only shrank:
    it was open, and is now smaller on the same side or flat (no flip, no increase)."""
    return before != 0 and abs(after) <= abs(before) and (after == 0 or (after > 0) == (before > 0))


def position_change(order: OrderRequest, view: RiskView, qualified: str) -> tuple[Decimal, Decimal, int, bool]:
    """:func:`post_trade` and :func:`shrinks_exposure` in one, without building a ``PostTrade``:
    ``(before, after, sign, shrinks)`` (base units, signed; ``sign`` +1 buy, -1 sell;
    ``shrinks`` as :func:`shrinks_exposure` answers, reduce-only orders included)."""
    pos = view.positions.get(qualified)
    before = pos.size if pos is not None else ZERO
    sign = 1 if order.side is BUY else -1  # Side.sign without the property call (BUY: module constant)
    after = before + sign * order.size
    if order.reduce_only:
        return before, after, sign, True
    return before, after, sign, _shrinks(before, after)


def other_open_positions(view: RiskView, qualified: str) -> Any:
    """The items of :func:`venue_positions` other than ``qualified`` itself, in the view's
    order, without building the dict: ``(ticker, Position)`` pairs of open positions on the
    venue of ``qualified``."""
    if ":" not in qualified:  # the primary venue: unqualified tickers
        for t, p in view.positions.items():
            if t != qualified and p.size and ":" not in t:
                yield t, p
        return
    v = venue_of(qualified)
    for t, p in view.positions.items():
        if t != qualified and p.size and venue_of(t) == v:
            yield t, p


def max_quantity_for(limit_abs_after: Decimal, before: Decimal, sign: int) -> Decimal:
    """Largest order quantity ``q >= 0`` with ``|before + sign*q| <= limit_abs_after`` (base units)."""
    k = max(limit_abs_after, ZERO)
    if before == 0 or (before > 0) == (sign > 0):
        return max(k - abs(before), ZERO)
    return abs(before) + k


def gross_notional_except(positions: dict[str, Position], marks: dict[str, Decimal], ticker: str) -> Decimal:
    """Sum of |size| x mark (entry price when unmarked) over ``positions`` other than ``ticker``, USD."""
    total = ZERO
    for t, p in positions.items():
        if t != ticker and p.size:
            total += abs(p.size) * (marks.get(t) or p.entry_price)
    return total


# ---------------------------------------------------------------------------
# decisions
# ---------------------------------------------------------------------------


def floor_step(q: Decimal, step: Decimal) -> Decimal:
    """``q`` floored to a multiple of ``step`` (base units); 0 for ``q <= 0``."""
    if q <= 0:
        return ZERO
    return (q / step).to_integral_value(rounding=ROUND_FLOOR) * step


def reduce_or_reject(
    policy: RiskPolicy, order: OrderRequest, allowed: Decimal, market: Market | None, why: str
) -> RiskDecision:
    """REDUCE to ``allowed`` (base units, floored to the step) when that is at least the
    minimum order size and below the order's size, else REJECT; ``why`` carries the numbers.
    """
    if market is not None:
        allowed = floor_step(allowed, market.step_size)
        min_size = market.min_order_size
    else:
        min_size = ZERO
    if allowed > 0 and allowed >= min_size and allowed < order.size:
        return RiskDecision(
            RiskAction.REDUCE,
            f"{why}; order reduced from {fmt(order.size)} to {fmt(allowed)}",
            policy=policy.name,
            size=allowed,
            ticker=order.ticker,
        )
    return RiskDecision(
        RiskAction.REJECT,
        f"{why}; no size >= the minimum {fmt(min_size)} fits (largest allowed {fmt(allowed)})",
        policy=policy.name,
        ticker=order.ticker,
    )


class PolicyBase(RiskPolicy):
    """Base of the built-in policies: an optional ``install(loop)`` the bot may call at
    start (no-op here) and :meth:`decision` to build a decision named after the policy."""

    def install(self, loop: Any) -> None:
        """Hook for policies that need loop resources (signal handlers); default: nothing."""

    def decision(self, action: RiskAction, reason: str, **kw: Any) -> RiskDecision:
        """``RiskDecision(action, reason, policy=self.name, **kw)`` (``kw``: ``size``, ``ticker``)."""
        return RiskDecision(action, reason, policy=self.name, **kw)
