"""Built-in risk policies: the links of the bot's risk chain.

Configure the chain with ``[risk] policies = [...]`` (default, from perpbot.core.config:
kill_switch, stale_data, circuit_breaker, max_leverage, liquidation_distance,
seed_thresholds) and each policy's thresholds with ``[risk.<name>]``.

Every policy returns a :class:`~perpbot.core.policies.RiskDecision` with an action, a
reason with the numbers, and ``policy=<name>``:

- ``check_order`` (before each order): NONE (approve), REDUCE (``size`` = the
  largest size that fits, floored to the step), REJECT, or HALT;
- ``check_account`` (every decision cycle): NONE, CLOSE_WORST, CLOSE_ALL or HALT.

The bot, not the policy, executes escalations (``core/bot.py``
``TradingBot._handle_risk``): CLOSE_WORST closes one position with a reduce-only
IOC market order; CLOSE_ALL cancels every open order on every venue, then closes
every position with reduce-only IOC market orders; HALT cancels every open order,
keeps positions and stops the bot. Those closing orders bypass the chain
(``risk_exempt``); in any case exposure policies here always approve orders that
shrink exposure (reduce-only, or opposite to the position and no larger than it).

Tickers: orders reach ``check_order`` with the venue's own ticker and ``venue`` set;
positions, marks, markets and staleness in the :class:`~perpbot.core.policies.RiskView` are
keyed by qualified ticker ("binance:BTC-USD" for a non-primary venue). The policies
map one to the other with the bot's ``config.primary_venue`` (when the context is
the bot).

Kill switch: :func:`request_kill` sets a process-wide flag (the bot's SIGUSR1
handler calls it; :func:`install_kill_signal` installs that handler on a running
asyncio loop); the ``kill_switch`` policy then HALTs. It also HALTs while a file
exists (``path``, default ``<state_dir>/KILL``).
"""

from __future__ import annotations

import re
import signal
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import attrs

from perpbot.core.model import ZERO, Balance, Market, OrderRequest, Position
from perpbot.core.params import in_range, param
from perpbot.core.policies import APPROVE, RiskAction, RiskDecision, RiskPolicy, RiskView
from perpbot import hookimpl

from perpbot.core import margin as _margin

NS = 1_000_000_000
ONE = Decimal(1)
HUNDRED = Decimal(100)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _fmt(d: Decimal | None, places: int = 6) -> str:
    if d is None:
        return "none"
    if not d.is_finite():
        return str(d)
    s = format(d.quantize(Decimal(1).scaleb(-places)) if abs(d) < Decimal(10) ** 15 else d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s or "0"


def _pct(fraction: Decimal) -> str:
    return f"{_fmt(fraction * HUNDRED, 2)}%"


def _positive(instance, attribute, value):
    if value is not None and value <= 0:
        raise ValueError(f"parameter {attribute.name}: must be positive, got {value}")


def _primary_venue(context: Any) -> str | None:
    cfg = getattr(context, "config", None)
    try:
        return cfg.primary_venue if cfg is not None else None
    except Exception:  # pragma: no cover - defensive: a partial config
        return None


def qualified_ticker(order: OrderRequest, view: RiskView, context: Any = None) -> str:
    """The RiskView key of an order's market ("binance:BTC-USD" for a non-primary venue)."""
    t = order.ticker
    if ":" in t:
        return t
    venue = order.venue
    if not venue:
        return t
    primary = _primary_venue(context)
    if primary is not None:
        return t if venue == primary else f"{venue}:{t}"
    q = f"{venue}:{t}"
    if q in view.markets or q in view.marks or q in view.positions:
        return q
    return t


def _venue_of(qualified: str) -> str | None:
    return qualified.split(":", 1)[0] if ":" in qualified else None


def venue_positions(view: RiskView, qualified: str) -> dict[str, Position]:
    """Positions on the same venue (same account) as ``qualified``."""
    v = _venue_of(qualified)
    out = {}
    for t, p in view.positions.items():
        if _venue_of(t) == v and p.size:
            out[t] = p
    return out


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
    v = _venue_of(qualified)
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
    """Equity over all venues, USD (``view.total_equity`` / ``context.total_equity()`` /
    ``view.balance.equity``), comparable with ``start_equity`` and ``day_start_equity``."""
    te = getattr(view, "total_equity", None)
    if te is not None and (te != 0 or getattr(view, "balances", None)):
        return te
    fn = getattr(context, "total_equity", None)
    if callable(fn):
        try:
            return fn()
        except Exception:  # pragma: no cover
            pass
    return view.balance.equity


def _mark(view: RiskView, qualified: str, order: OrderRequest) -> Decimal | None:
    m = view.marks.get(qualified)
    if m is None:
        m = order.price
    return m


def _market(view: RiskView, qualified: str) -> Market | None:
    return view.markets.get(qualified) or view.markets.get(qualified.split(":", 1)[-1])


@attrs.frozen
class PostTrade:
    """An order's effect on its market's position (base units, signed)."""

    before: Decimal
    after: Decimal
    sign: int

    @property
    def shrinks(self) -> bool:
        """True when the order only reduces the position (no flip, no increase)."""
        return self.before != 0 and abs(self.after) <= abs(self.before) and (self.after == 0 or (self.after > 0) == (self.before > 0))

    @property
    def increasing(self) -> bool:
        return self.before == 0 or (self.before > 0) == (self.sign > 0)


def post_trade(order: OrderRequest, view: RiskView, qualified: str) -> PostTrade:
    pos = view.positions.get(qualified)
    before = pos.size if pos is not None else ZERO
    sign = order.side.sign
    return PostTrade(before, before + sign * order.size, sign)


def shrinks_exposure(order: OrderRequest, view: RiskView, qualified: str) -> bool:
    """Reduce-only orders, and orders against the position no larger than it, shrink exposure."""
    if order.reduce_only:
        return True
    return post_trade(order, view, qualified).shrinks


def max_quantity_for(limit_abs_after: Decimal, before: Decimal, sign: int) -> Decimal:
    """Largest order quantity ``q >= 0`` with ``|before + sign*q| <= limit_abs_after`` (base units)."""
    k = max(limit_abs_after, ZERO)
    if before == 0 or (before > 0) == (sign > 0):
        return max(k - abs(before), ZERO)
    return abs(before) + k


def _floor_step(q: Decimal, step: Decimal) -> Decimal:
    if q <= 0:
        return ZERO
    return (q / step).to_integral_value(rounding=ROUND_FLOOR) * step


def _reduce_or_reject(
    policy: RiskPolicy, order: OrderRequest, allowed: Decimal, market: Market | None, why: str
) -> RiskDecision:
    """REDUCE to ``allowed`` (floored to the step) when that is at least the minimum order size,
    else REJECT; ``why`` carries the numbers."""
    if market is not None:
        allowed = _floor_step(allowed, market.step_size)
        min_size = market.min_order_size
    else:
        min_size = ZERO
    if allowed > 0 and allowed >= min_size and allowed < order.size:
        return RiskDecision(
            RiskAction.REDUCE,
            f"{why}; order reduced from {_fmt(order.size)} to {_fmt(allowed)}",
            policy=policy.name,
            size=allowed,
            ticker=order.ticker,
        )
    return RiskDecision(
        RiskAction.REJECT,
        f"{why}; no size >= the minimum {_fmt(min_size)} fits (largest allowed {_fmt(allowed)})",
        policy=policy.name,
        ticker=order.ticker,
    )


class _Policy(RiskPolicy):
    """Base: an optional ``install(loop)`` the bot may call at start (no-op here)."""

    def install(self, loop) -> None:
        """Hook for policies that need loop resources (signal handlers); default: nothing."""

    def decision(self, action: RiskAction, reason: str, **kw) -> RiskDecision:
        return RiskDecision(action, reason, policy=self.name, **kw)


# ---------------------------------------------------------------------------
# seed 002 thresholds
# ---------------------------------------------------------------------------

_MARGIN_ERROR = re.compile(r"margin|collateral|insufficient|undercollateral", re.IGNORECASE)


def is_margin_error(error: str) -> bool:
    """True when a venue's rejection text is about margin/collateral (dYdX:
    "insufficient margin", "... undercollateralized ...", "StillUndercollateralized")."""
    return bool(error) and bool(_MARGIN_ERROR.search(error))


def worst_positions(view: RiskView, fraction: Decimal) -> list[tuple[str, Decimal, Decimal]]:
    """Seed 002's "close worst positions": losing positions sorted by unrealized PnL as a
    fraction of notional (worst first), the worst ``max(1, int(n * fraction))`` of them.

    :returns: ``[(ticker, upnl USD, upnl / notional)]``.
    """
    losing = []
    for t, p in view.positions.items():
        if not p.size:
            continue
        mark = view.marks.get(t)
        if mark is None:
            continue
        upnl = p.unrealized_pnl(mark)
        if upnl >= 0:
            continue
        notional = abs(p.size) * mark
        losing.append((t, upnl, upnl / notional if notional else ZERO))
    losing.sort(key=lambda x: x[2])
    if not losing:
        return []
    n = max(1, int(len(losing) * fraction))
    return losing[:n]


@attrs.frozen
class SeedThresholdsParams:
    margin_failure_threshold: int = param(
        15, "consecutive (margin) order failures that, lasting time_stall_s, count as a stall", in_range(1, 10**6)
    )
    time_stall_s: int = param(600, "seconds the failure streak must last to be a stall (seed: 10 minutes)", in_range(0, 10**8))
    account_loss: Decimal = param(
        Decimal("0.10"), "loss from the starting equity that closes the worst positions (0.10 = -10%)", in_range(Decimal(0), ONE)
    )
    emergency_loss: Decimal = param(
        Decimal("0.15"), "loss from the starting equity that closes everything (0.15 = -15%)", in_range(Decimal(0), ONE)
    )
    close_worst_fraction: Decimal = param(
        Decimal("0.20"), "share of the losing positions closed by CLOSE_WORST (at least one)", in_range(Decimal(0), ONE)
    )
    close_worst_requires_stall: bool = param(
        False,
        "true: CLOSE_WORST only when the loss AND a failure stall coincide (the seed's original risk manager); "
        "false: the loss alone (the issue's rule)",
    )
    margin_failures_only: bool = param(True, "count only rejections about margin/collateral (else every failure)")
    failure_action: RiskAction = param(RiskAction.HALT, "action on a failure stall (and a no-fill stall)")
    halt_after_emergency: bool = param(True, "after the emergency CLOSE_ALL, HALT once the account is flat")
    no_fill_stall_s: int = param(
        0, "HALT-style failure_action when orders/positions are open and nothing filled for this long, s (0 = off)", in_range(0, 10**8)
    )


class SeedThresholds(_Policy):
    """Seed 002's risk manager thresholds.

    With ``loss = (start_equity - equity) / start_equity`` (equity over all venues):

    1. ``loss >= emergency_loss`` (15%): CLOSE_ALL; once flat, HALT.
    2. ``loss >= account_loss`` (10%), with a stall when ``close_worst_requires_stall``:
       CLOSE_WORST, naming the worst losing position (PnL / notional) in ``ticker``; the
       reason lists the worst ``close_worst_fraction`` (20%) of the losing positions.
       It fires once per crossing: it re-arms only after the loss recovers below the
       threshold (otherwise a flat -10% would close one position per cycle until nothing
       is left, which is the emergency rule's job).
    3. a failure stall: ``margin_failure_threshold`` (15) consecutive margin failures,
       the first of them at least ``time_stall_s`` (600 s) ago: ``failure_action`` (HALT;
       NONE disables it). A successful order resets the streak.

    Thresholds are inclusive: exactly -10.00% triggers, -9.99% does not.
    """

    name = "seed_thresholds"
    description = "seed 002: 15 margin failures + 10 min stall, -10% close worst, -15% close all"
    Params = SeedThresholdsParams

    def __init__(self, params, context=None):
        super().__init__(params, context)
        self.failures = 0
        self.streak_start_ns: int | None = None
        self._baseline: Decimal | None = None
        self._emergency = False
        self._first_seen_ns: int | None = None
        self._worst_armed = True

    def on_order_result(self, success: bool, error: str, view: RiskView) -> None:
        if success:
            self.failures = 0
            self.streak_start_ns = None
            return
        if self.params.margin_failures_only and not is_margin_error(error):
            return
        self.failures += 1
        if self.streak_start_ns is None:
            self.streak_start_ns = view.now_ns

    def _loss(self, view: RiskView) -> tuple[Decimal, Decimal, Decimal] | None:
        equity = total_equity(view, self.context)
        start = view.start_equity if view.start_equity > 0 else None
        if start is None:
            if self._baseline is None and equity > 0:
                self._baseline = equity
            start = self._baseline
        if not start or start <= 0:
            return None
        return (start - equity) / start, start, equity

    def check_account(self, view: RiskView) -> RiskDecision:
        p = self.params
        if self._first_seen_ns is None:
            self._first_seen_ns = view.now_ns
        loss = self._loss(view)
        open_positions = {t: pos for t, pos in view.positions.items() if pos.size}
        if loss is not None:
            frac, start, equity = loss
            if frac >= p.emergency_loss or self._emergency:
                if frac >= p.emergency_loss:
                    self._emergency = True
                numbers = (
                    f"account loss {_pct(frac)} (equity {_fmt(equity, 2)} vs start {_fmt(start, 2)} USD) "
                    f">= emergency {_pct(p.emergency_loss)}"
                )
                if open_positions:
                    return self.decision(RiskAction.CLOSE_ALL, numbers + f": closing all {len(open_positions)} positions")
                if p.halt_after_emergency:
                    return self.decision(RiskAction.HALT, numbers + ": positions closed, halting")
        stalled, stall_reason = self._stalled(view)
        if loss is not None:
            frac, start, equity = loss
            if frac < p.account_loss:
                self._worst_armed = True  # recovered above the threshold: re-arm
            elif self._worst_armed and (stalled or not p.close_worst_requires_stall):
                worst = worst_positions(view, p.close_worst_fraction)
                if worst:
                    self._worst_armed = False
                    listing = ", ".join(f"{t} {_fmt(u, 2)} USD ({_pct(r)})" for t, u, r in worst)
                    return self.decision(
                        RiskAction.CLOSE_WORST,
                        f"account loss {_pct(frac)} (equity {_fmt(equity, 2)} vs start {_fmt(start, 2)} USD) >= "
                        f"{_pct(p.account_loss)}: close worst {listing}",
                        ticker=worst[0][0],
                    )
        if stalled and p.failure_action is not RiskAction.NONE:
            return self.decision(p.failure_action, stall_reason)
        return APPROVE

    def _stalled(self, view: RiskView) -> tuple[bool, str]:
        p = self.params
        failures = self.failures
        start = self.streak_start_ns
        if not p.margin_failures_only and view.consecutive_failures > failures:
            failures = view.consecutive_failures
            if start is None:
                start = view.now_ns
                self.streak_start_ns = start
        if failures >= p.margin_failure_threshold and start is not None:
            lasted = (view.now_ns - start) / NS
            if lasted >= p.time_stall_s:
                kind = "margin failures" if p.margin_failures_only else "order failures"
                return True, (
                    f"{failures} consecutive {kind} (threshold {p.margin_failure_threshold}) for {lasted:.0f}s "
                    f"(stall threshold {p.time_stall_s}s)"
                )
        if p.no_fill_stall_s and (view.open_orders or any(pos.size for pos in view.positions.values())):
            since = max(view.last_fill_ns, self._first_seen_ns or view.now_ns)
            idle = (view.now_ns - since) / NS
            if idle >= p.no_fill_stall_s:
                return True, (
                    f"no fill for {idle:.0f}s with {view.open_orders} open orders and "
                    f"{sum(1 for x in view.positions.values() if x.size)} positions (threshold {p.no_fill_stall_s}s)"
                )
        return False, ""


# ---------------------------------------------------------------------------
# max account leverage
# ---------------------------------------------------------------------------


@attrs.frozen
class MaxLeverageParams:
    max_leverage: Decimal = param(Decimal("5"), "largest account leverage after an order, x (gross notional / equity)", _positive)


class MaxLeverage(_Policy):
    """Account leverage after the order, ``(T_other + |S'| * P) / equity``, must not exceed
    ``max_leverage``. Otherwise REDUCE to ``|S'| <= (max * equity - T_other) / P`` or REJECT.

    ``T_other``: notional of the venue's other positions at their marks; ``S'`` the position
    after the order; ``P`` the mark (oracle) of the order's market; ``equity`` the venue's.
    """

    name = "max_leverage"
    description = "account leverage after the order <= max_leverage (REDUCE or REJECT)"
    Params = MaxLeverageParams

    def check_order(self, order: OrderRequest, view: RiskView) -> RiskDecision:
        q = qualified_ticker(order, view, self.context)
        if shrinks_exposure(order, view, q):
            return APPROVE
        price = _mark(view, q, order)
        if price is None:
            return self.decision(RiskAction.REJECT, f"no mark price for {q}: leverage cannot be checked")
        try:
            bal = venue_balance(view, q, self.context)
        except LookupError as exc:
            return self.decision(RiskAction.REJECT, f"{exc}: leverage cannot be checked")
        equity = bal.equity
        if equity <= 0:
            return self.decision(RiskAction.REJECT, f"equity {_fmt(equity, 2)} USD <= 0: no leverage available")
        pt = post_trade(order, view, q)
        other = _gross_notional_except(venue_positions(view, q), view.marks, q)
        lev_after = (other + abs(pt.after) * price) / equity
        mx = self.params.max_leverage
        if lev_after <= mx:
            return APPROVE
        limit_abs = (mx * equity - other) / price
        allowed = max_quantity_for(limit_abs, pt.before, pt.sign)
        why = (
            f"leverage after order {_fmt(lev_after, 3)}x > max {_fmt(mx)}x (other notional {_fmt(other, 2)} + "
            f"|{_fmt(pt.after)}| x {_fmt(price)} over equity {_fmt(equity, 2)} USD)"
        )
        return _reduce_or_reject(self, order, allowed, _market(view, q), why)


def _gross_notional_except(positions, marks, ticker: str) -> Decimal:
    """Sum of |size| x mark (entry price when unmarked) over ``positions`` other than ``ticker``, USD."""
    total = ZERO
    for t, p in positions.items():
        if t != ticker and p.size:
            total += abs(p.size) * (marks.get(t) or p.entry_price)
    return total


# ---------------------------------------------------------------------------
# max notional
# ---------------------------------------------------------------------------


@attrs.frozen
class MaxNotionalParams:
    per_market_usd: Decimal = param(Decimal("50000"), "largest position notional per market after an order, USD", _positive)
    total_usd: Decimal = param(Decimal("150000"), "largest gross notional over all markets and venues after an order, USD", _positive)


class MaxNotional(_Policy):
    """``|S'| * P <= per_market_usd`` and ``sum over all positions <= total_usd`` after the order;
    REDUCE to the largest size that fits both, or REJECT."""

    name = "max_notional"
    description = "position notional per market and in total (USD) after the order"
    Params = MaxNotionalParams

    def check_order(self, order: OrderRequest, view: RiskView) -> RiskDecision:
        q = qualified_ticker(order, view, self.context)
        if shrinks_exposure(order, view, q):
            return APPROVE
        price = _mark(view, q, order)
        if price is None:
            return self.decision(RiskAction.REJECT, f"no mark price for {q}: notional cannot be checked")
        pt = post_trade(order, view, q)
        other = _gross_notional_except(view.positions, view.marks, q)
        market_after = abs(pt.after) * price
        total_after = other + market_after
        pm, tot = self.params.per_market_usd, self.params.total_usd
        if market_after <= pm and total_after <= tot:
            return APPROVE
        limit_abs = min(pm, tot - other) / price
        allowed = max_quantity_for(limit_abs, pt.before, pt.sign)
        why = (
            f"notional after order {q} {_fmt(market_after, 2)} USD (limit {_fmt(pm, 2)}), "
            f"total {_fmt(total_after, 2)} USD (limit {_fmt(tot, 2)})"
        )
        return _reduce_or_reject(self, order, allowed, _market(view, q), why)


# ---------------------------------------------------------------------------
# liquidation distance
# ---------------------------------------------------------------------------


@attrs.frozen
class LiquidationDistanceParams:
    min_distance: Decimal = param(
        Decimal("0.05"),
        "smallest distance between the post-trade liquidation price and the oracle, fraction of the oracle (0.05 = 5%)",
        in_range(Decimal(0), ONE),
    )


def _mmr(size: Decimal, price: Decimal, market: Market | None) -> Decimal:
    """Maintenance margin of a position, USD, with the chain's rounding
    (:func:`perpbot.core.margin.maintenance_margin_requirement_usd`); 0 when flat or the
    market is unknown.

    :raises ValueError: naming the market, when its margin fractions or the price are not
        valid chain values (e.g. an IMF that is not whole ppm); never an unrounded estimate.
    """
    if market is None or not size:
        return ZERO
    try:
        return _margin.maintenance_margin_requirement_usd(
            size, price, market.initial_margin_fraction, market.maintenance_margin_fraction
        )
    except (ValueError, TypeError) as exc:
        raise ValueError(f"maintenance margin of {market.ticker} unknown: {exc}") from exc


def liquidation_price(equity: Decimal, size: Decimal, price: Decimal, mmf: Decimal, mmr_other: Decimal) -> Decimal | None:
    """Cross liquidation price ``(E - s*P - MMR_other) / (|s|*MMF - s)`` (USD) or None:
    :func:`perpbot.core.margin.liquidation_price` (docs ``concepts/trading/liquidations.mdx``).

    :raises TypeError: / ValueError: as :func:`perpbot.core.margin.liquidation_price`.
    """
    return _margin.liquidation_price(equity, size, price, mmf, mmr_other)


class LiquidationDistance(_Policy):
    """Refuse or shrink an order whose post-trade liquidation price sits within
    ``min_distance`` of the oracle.

    After the order (filled at its limit price, else at the mark ``P``; fees ignored):
    ``E' = E + s*q*(P - fill)``, position ``S'``, and
    ``p_liq = (E' - S'*P - MMR_other) / (|S'|*MMF - S')`` (``perpbot.core.margin.liquidation_price``;
    ``MMR_other``: the venue's other positions' maintenance margins). The order passes when
    there is no liquidation price or ``|P - p_liq| / P >= min_distance``; otherwise REDUCE
    to the largest size (binary search over steps) that keeps the distance, or REJECT.
    """

    name = "liquidation_distance"
    description = "post-trade liquidation price at least min_distance from the oracle"
    Params = LiquidationDistanceParams

    def _distance(self, order, view, q, qty, price, market, equity, mmr_other, before):
        fill = order.price if order.price is not None else price
        s = order.side.sign
        eq_after = equity + s * qty * (price - fill)
        after = before + s * qty
        if after == 0:
            return None, None
        pl = liquidation_price(eq_after, after, price, market.maintenance_margin_fraction, mmr_other)
        if pl is None:
            return None, None
        return abs(price - pl) / price, pl

    def check_order(self, order: OrderRequest, view: RiskView) -> RiskDecision:
        q = qualified_ticker(order, view, self.context)
        if shrinks_exposure(order, view, q):
            return APPROVE
        market = _market(view, q)
        price = _mark(view, q, order)
        if market is None or price is None:
            return self.decision(RiskAction.REJECT, f"no market parameters or oracle price for {q}: liquidation price unknown")
        try:
            bal = venue_balance(view, q, self.context)
        except LookupError as exc:
            return self.decision(RiskAction.REJECT, f"{exc}: liquidation price unknown")
        pos = view.positions.get(q)
        before = pos.size if pos is not None else ZERO
        mmr_other = ZERO
        try:
            for t, p in venue_positions(view, q).items():
                if t != q:
                    mmr_other += _mmr(p.size, view.marks.get(t) or p.entry_price, _market(view, t))
        except ValueError as exc:
            return self.decision(RiskAction.REJECT, f"{exc}: liquidation price of {q} unknown")
        mind = self.params.min_distance
        dist, pl = self._distance(order, view, q, order.size, price, market, bal.equity, mmr_other, before)
        if dist is None or dist >= mind:
            return APPROVE
        # binary search the largest multiple of the step that keeps the distance
        step = market.step_size
        lo, hi = 0, int(order.size / step)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            d, _ = self._distance(order, view, q, step * mid, price, market, bal.equity, mmr_other, before)
            if d is None or d >= mind:
                lo = mid
            else:
                hi = mid - 1
        allowed = step * lo
        why = (
            f"post-trade liquidation price {_fmt(pl, 2)} is {_pct(dist)} from the oracle {_fmt(price)} "
            f"(minimum {_pct(mind)}; equity {_fmt(bal.equity, 2)} USD, position after {_fmt(before + order.side.sign * order.size)})"
        )
        return _reduce_or_reject(self, order, allowed, market, why)


# ---------------------------------------------------------------------------
# stale data
# ---------------------------------------------------------------------------


@attrs.frozen
class StaleDataParams:
    allow_reduce_only: bool = param(True, "let reduce-only orders through on stale data (closing must stay possible)")


class StaleData(_Policy):
    """REJECT an order on a market whose data is stale or crossed (``view.stale``), with
    the market's reason."""

    name = "stale_data"
    description = "no orders on markets with stale or crossed data"
    Params = StaleDataParams

    def check_order(self, order: OrderRequest, view: RiskView) -> RiskDecision:
        q = qualified_ticker(order, view, self.context)
        reason = view.stale.get(q)
        if reason is None:
            return APPROVE
        if order.reduce_only and self.params.allow_reduce_only:
            return APPROVE
        return self.decision(RiskAction.REJECT, f"stale data on {q}: {reason}")


# ---------------------------------------------------------------------------
# circuit breaker
# ---------------------------------------------------------------------------


@attrs.frozen
class CircuitBreakerParams:
    halt_after_s: int = param(300, "HALT when a venue's circuit stays open this long, s (0 = never)", in_range(0, 10**8))


class CircuitBreaker(_Policy):
    """Venue circuit breakers (``view.circuit_open``: venue -> reason): REJECT every order
    for an open venue; HALT when a circuit has been open ``halt_after_s`` seconds."""

    name = "circuit_breaker"
    description = "no orders to a venue whose circuit breaker is open; HALT if it stays open"
    Params = CircuitBreakerParams

    def __init__(self, params, context=None):
        super().__init__(params, context)
        self.opened_ns: dict[str, int] = {}

    def _track(self, view: RiskView) -> None:
        for v in list(self.opened_ns):
            if v not in view.circuit_open:
                del self.opened_ns[v]
        for v in view.circuit_open:
            self.opened_ns.setdefault(v, view.now_ns)

    def check_order(self, order: OrderRequest, view: RiskView) -> RiskDecision:
        self._track(view)
        if not view.circuit_open:
            return APPROVE
        venue = order.venue or _primary_venue(self.context)
        if venue is None:
            q = qualified_ticker(order, view, self.context)
            venue = _venue_of(q)
        if venue in view.circuit_open:
            return self.decision(RiskAction.REJECT, f"circuit breaker open on {venue}: {view.circuit_open[venue]}")
        if venue is None:  # unknown venue: be safe
            v, why = next(iter(view.circuit_open.items()))
            return self.decision(RiskAction.REJECT, f"circuit breaker open on {v}: {why} (order venue unknown)")
        return APPROVE

    def check_account(self, view: RiskView) -> RiskDecision:
        self._track(view)
        if not self.params.halt_after_s:
            return APPROVE
        for v, since in self.opened_ns.items():
            lasted = (view.now_ns - since) / NS
            if lasted >= self.params.halt_after_s:
                return self.decision(
                    RiskAction.HALT,
                    f"circuit breaker on {v} open for {lasted:.0f}s (limit {self.params.halt_after_s}s): {view.circuit_open.get(v, '')}",
                )
        return APPROVE


# ---------------------------------------------------------------------------
# daily loss
# ---------------------------------------------------------------------------


@attrs.frozen
class DailyLossParams:
    max_loss: Decimal = param(
        Decimal("0.05"), "largest loss since the UTC day start, fraction of that day's starting equity (0.05 = 5%)", in_range(Decimal(0), ONE)
    )
    max_loss_usd: Decimal | None = param(None, "largest loss since the UTC day start, USD (optional, either limit triggers)", _positive)
    halt: bool = param(True, "after closing everything, HALT (false: block new risk until the next UTC day)")


class DailyLoss(_Policy):
    """Loss since the start of the UTC day (``view.day_start_equity``, else the first equity
    this policy saw that day) beyond ``max_loss`` (fraction) or ``max_loss_usd``: CLOSE_ALL
    while positions are open, then HALT (``halt``) or REJECT risk-increasing orders until
    the next UTC day."""

    name = "daily_loss"
    description = "daily loss limit (UTC day): CLOSE_ALL, then HALT"
    Params = DailyLossParams

    def __init__(self, params, context=None):
        super().__init__(params, context)
        self._day: int | None = None
        self._day_start: Decimal | None = None
        self._tripped_day: int | None = None
        self._reason = ""

    def _state(self, view: RiskView) -> tuple[Decimal, Decimal, int]:
        day = view.now_ns // (86400 * NS)
        equity = total_equity(view, self.context)
        if day != self._day:
            self._day = day
            self._day_start = equity
        start = view.day_start_equity if view.day_start_equity > 0 else self._day_start
        return start, equity, day

    def check_account(self, view: RiskView) -> RiskDecision:
        start, equity, day = self._state(view)
        if self._tripped_day is not None and self._tripped_day != day:
            self._tripped_day = None  # a new UTC day
        loss = start - equity
        hit = False
        if start and start > 0 and loss >= self.params.max_loss * start:
            hit = True
        if self.params.max_loss_usd is not None and loss >= self.params.max_loss_usd:
            hit = True
        if hit or self._tripped_day == day:
            if hit:
                self._tripped_day = day
                frac = loss / start if start else ZERO
                self._reason = (
                    f"daily loss {_fmt(loss, 2)} USD ({_pct(frac)}) since the UTC day start equity {_fmt(start, 2)} USD "
                    f">= limit {_pct(self.params.max_loss)}"
                    + (f" / {_fmt(self.params.max_loss_usd, 2)} USD" if self.params.max_loss_usd is not None else "")
                )
            if any(p.size for p in view.positions.values()):
                return self.decision(RiskAction.CLOSE_ALL, self._reason + ": closing all positions")
            if self.params.halt:
                return self.decision(RiskAction.HALT, self._reason + ": positions closed, halting")
        return APPROVE

    def check_order(self, order: OrderRequest, view: RiskView) -> RiskDecision:
        day = view.now_ns // (86400 * NS)
        if self._tripped_day == day:
            q = qualified_ticker(order, view, self.context)
            if not shrinks_exposure(order, view, q):
                return self.decision(RiskAction.REJECT, f"{self._reason}: no new risk until the next UTC day")
        return APPROVE


# ---------------------------------------------------------------------------
# kill switch
# ---------------------------------------------------------------------------

_KILL_REASON: str | None = None


def request_kill(reason: str = "SIGUSR1") -> None:
    """Trip the process-wide kill switch: every ``kill_switch`` policy HALTs at its next check.

    Safe to call from a signal handler (it only sets a module variable). The bot's SIGUSR1
    handler calls it: ``loop.add_signal_handler(signal.SIGUSR1, request_kill, "SIGUSR1")``.
    """
    global _KILL_REASON
    _KILL_REASON = reason or "kill switch"


def clear_kill() -> None:
    """Reset the process-wide kill switch (tests; a restarted bot starts clear)."""
    global _KILL_REASON
    _KILL_REASON = None


def kill_requested() -> str | None:
    """The reason the kill switch was tripped, or None."""
    return _KILL_REASON


def install_kill_signal(loop=None) -> bool:
    """Install ``SIGUSR1 -> request_kill("SIGUSR1")`` on the running asyncio loop.

    :returns: True when installed (False where signals are unsupported, e.g. Windows).
    """
    import asyncio

    loop = loop or asyncio.get_running_loop()
    sig = getattr(signal, "SIGUSR1", None)
    if sig is None:
        return False
    try:
        loop.add_signal_handler(sig, request_kill, "SIGUSR1")
        return True
    except (NotImplementedError, RuntimeError, ValueError):
        return False


@attrs.frozen
class KillSwitchParams:
    path: str = param("", "HALT while this file exists (default: KILL in the bot's state directory)")


class KillSwitch(_Policy):
    """HALT when the kill file exists or :func:`request_kill` was called (SIGUSR1).

    ``check_account`` and ``check_order`` both HALT (reduce-only orders still pass, so a
    human can flatten). Remove the file and restart to trade again.
    """

    name = "kill_switch"
    description = "HALT when a kill file exists or on SIGUSR1"
    Params = KillSwitchParams

    def kill_path(self) -> Path | None:
        if self.params.path:
            return Path(self.params.path).expanduser()
        state_dir = getattr(self.context, "state_dir", None)
        return Path(state_dir) / "KILL" if state_dir is not None else None

    def install(self, loop) -> None:
        """Called by the bot at start: a new run starts with the signal flag clear (the kill
        FILE still halts it) and SIGUSR1 trips it."""
        clear_kill()
        install_kill_signal(loop)

    def _tripped(self) -> str | None:
        if _KILL_REASON is not None:
            return f"kill switch: {_KILL_REASON}"
        p = self.kill_path()
        if p is not None and p.exists():
            return f"kill switch: file {p} exists"
        return None

    def check_account(self, view: RiskView) -> RiskDecision:
        why = self._tripped()
        return self.decision(RiskAction.HALT, why) if why else APPROVE

    def check_order(self, order: OrderRequest, view: RiskView) -> RiskDecision:
        if order.reduce_only:
            return APPROVE
        why = self._tripped()
        return self.decision(RiskAction.HALT, why) if why else APPROVE


POLICIES = (SeedThresholds, MaxLeverage, MaxNotional, LiquidationDistance, StaleData, CircuitBreaker, DailyLoss, KillSwitch)


@hookimpl
def register_risk_policies(register):
    for cls in POLICIES:
        register(cls)
