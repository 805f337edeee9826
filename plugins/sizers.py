"""Built-in position sizers: fixed quantity, fixed notional, seed 004's exposure sizer,
volatility target and fractional Kelly.

The bot asks the configured sizer (``[sizer] name = "..."``; default
``fixed_notional``) for the size of every intent whose ``size`` is None. Every
sizer here returns a :class:`~perpbot.core.policies.SizingResult` whose ``quantity`` is in
base units, floored to the market's step size, and whose ``reason`` says which
limit bound it. A quantity below the minimum order size is returned as 0 with the
reason (the bot skips the order; a size is never silently raised to the minimum),
or, with ``below_min = "raise"``, raised as
:class:`~perpbot.core.errors.InsufficientBalance` / :class:`~perpbot.core.errors.InsufficientLeverage`
carrying ``required`` and ``available``.

Limits every sizer applies (``LimitParams``), for risk-increasing orders:

- account leverage after the order <= ``max_leverage`` (configured, x):
  ``T_other + |S + q| * P <= max_leverage * equity``;
- the venue's initial margin, i.e. its maximum leverage ``1 / IMF``:
  ``(|S + q| - |S|) * P * IMF <= free_collateral`` (dYdX: an order may not leave the
  account below its initial margin; chain ``protocol/x/subaccounts/lib/updates.go``);
- ``min_order_size`` <= quantity <= ``max_order_size`` (base units; the minimum
  defaults to the market's, one step);
- a risk-increasing order with no free collateral raises
  :class:`~perpbot.core.errors.InsufficientBalance` (seed 004: "if available_balance <= 0:
  Insufficient balance").

``S`` is the current signed position (base units), ``q`` the order quantity, ``P``
the reference price (USD), ``T_other`` the notional of the other positions at their
marks (USD). Reduce-only intents are sized to at most the position and skip the
leverage limits (they shrink exposure).

Sizers receive a :class:`~perpbot.core.policies.SizingView` and, as ``context``, the bot
(``volatility_target`` reads bars from ``context.states`` when the view carries no
volatility).

Imports only :mod:`perpbot.core` (model, params, policies, errors, balance), the
``perpbot`` package root (``hookimpl``) and ``attrs``.
"""

from __future__ import annotations

import enum
from decimal import ROUND_FLOOR, Decimal
from typing import Callable

import attrs

from perpbot.core.errors import DataError, InsufficientBalance, InsufficientLeverage
from perpbot.core.model import ZERO, Market, OrderParams, Side
from perpbot.core.model.enums import BUY
from perpbot.core.params import in_range, param
from perpbot.core.policies import LazyText, PositionSizer, SizingResult, SizingView
from perpbot import hookimpl
from perpbot.core.balance import LeverageCalculator, market_imf, market_max_leverage
from perpbot.plugins.sizer_reasons import (
    fixed_notional_text as _fixed_notional_text,
    floored_text as _floored_text,
    fmt as _fmt,
    join as _join,
    leverage_text as _leverage_text,
    margin_text as _margin_text,
    sized_text as _sized_text,
    skipped_text as _skipped_text,
)

ONE = Decimal(1)


class BelowMin(enum.Enum):
    """What a sizer does when the allowed quantity is below the minimum order size."""

    SKIP = "skip"  # quantity 0 with the reason; the bot skips the order
    RAISE = "raise"  # InsufficientBalance / InsufficientLeverage with required and available


def _positive(instance, attribute, value):
    if value is not None and value <= 0:
        raise ValueError(f"parameter {attribute.name}: must be positive, got {value}")


@attrs.frozen
class LimitParams:
    """Limits shared by every built-in sizer."""

    max_leverage: Decimal = param(
        Decimal("5"),
        "largest account leverage after the order, x (the market's 1/IMF also applies)",
        _positive,
    )
    min_order_size: Decimal | None = param(
        None, "smallest order, base units (default: the market's minimum, one step)", _positive
    )
    max_order_size: Decimal | None = param(None, "largest order, base units (default: no cap)", _positive)
    below_min: BelowMin = param(
        BelowMin.SKIP,
        "below the minimum: 'skip' (quantity 0 with the reason) or 'raise' (InsufficientBalance/InsufficientLeverage)",
    )


def _floor_step(q: Decimal, step: Decimal) -> Decimal:
    if q <= 0:
        return ZERO
    return (q / step).to_integral_value(rounding=ROUND_FLOOR) * step


def _unqualified(ticker: str) -> str:
    return ticker.split(":", 1)[1] if ":" in ticker else ticker


def _position_size(view: SizingView) -> Decimal:
    return view.position.size if view.position is not None else ZERO


def _other_notional(view: SizingView) -> Decimal:
    """Notional (USD) of the positions in other markets at their marks (entry price if no mark)."""
    if not view.positions:
        return ZERO
    me = {view.market.ticker, _unqualified(view.market.ticker)}
    total = ZERO
    for t, p in view.positions.items():
        if t in me or _unqualified(t) in me or not p.size:
            continue
        px = view.marks.get(t) or p.entry_price
        total += abs(p.size) * px
    return total


def _is_reducing(intent: OrderParams, view: SizingView) -> bool:
    pos = _position_size(view)
    return pos != 0 and (pos > 0) != (intent.side is BUY)


class BaseSizer(PositionSizer):
    """Shared machinery: limits, step flooring, min/max, reasons. Subclasses implement
    :meth:`raw_quantity` (base units before limits, with the reason)."""

    Params = LimitParams

    def raw_quantity(self, intent: OrderParams, view: SizingView) -> tuple[Decimal, str | LazyText]:  # pragma: no cover
        """The sizer's own quantity (base units, before limits, may be 0) and its reason (text,
        or a :class:`~perpbot.core.policies.LazyText` formatted only if the reason is read).

        :raises NotImplementedError: here; every sizer overrides it.
        """
        raise NotImplementedError

    def margin_used(self, notional: Decimal, view: SizingView) -> Decimal:
        """Initial margin the order uses, USD (``notional * IMF``)."""
        return notional / market_max_leverage(view.market)

    # -- the template ----------------------------------------------------------

    def size(self, intent: OrderParams, view: SizingView) -> SizingResult:
        """Size ``intent``: :meth:`raw_quantity`, capped by the intent's size, the leverage and
        initial-margin limits and ``max_order_size``, floored to the step (module docstring).

        :returns: quantity (base units, a step multiple; 0 with the reason when below the
            minimum), notional and margin (USD) and the reason naming the binding limit.
        :raises DataError: the reference price is not positive, or the market's maximum
            leverage is unknown (:func:`~perpbot.core.balance.market_max_leverage`).
        :raises InsufficientBalance: a risk-increasing order with no free collateral, or
            below the minimum with ``below_min = "raise"``.
        :raises InsufficientLeverage: below the minimum because of leverage, with ``below_min = "raise"``
            (and :class:`ExposureSizer` without leverage headroom).
        """
        market: Market = view.market
        price = view.price
        if price is None or not price.is_finite() or price <= 0:
            raise DataError(f"sizer {self.name}: reference price of {market.ticker} must be positive, got {price}")
        step = market.step_size
        m_min = market.min_order_size
        p_min = self.params.min_order_size
        min_size = p_min if p_min is not None and p_min >= m_min else m_min  # the larger (the configured one on a tie)
        if intent.reduce_only:
            return self._size_reduce_only(intent, view, min_size)

        raw, raw_reason = self.raw_quantity(intent, view)
        parts = [raw_reason]
        qty = raw if raw > 0 else ZERO
        bound = "sizer"

        if intent.size is not None and intent.size < qty:
            qty = intent.size
            bound = "intent"
            parts.append(LazyText(lambda v: f"capped by the intent's size {_fmt(v)}", intent.size))

        # leverage and margin limits (risk-increasing part of the order) ------------
        lev_q, lev_kind, lev_text = self._leverage_cap(intent, view)
        if lev_q < qty:
            qty = lev_q
            bound = lev_kind
            parts.append(LazyText(*lev_text))

        if self.params.max_order_size is not None and self.params.max_order_size < qty:
            qty = self.params.max_order_size
            bound = "max_order_size"
            parts.append(LazyText(lambda v: f"capped by max_order_size {_fmt(v)}", self.params.max_order_size))

        floored = _floor_step(qty, step)
        if floored != qty:
            parts.append(LazyText(_floored_text, step, floored))
        qty = floored

        # the reason is formatted only when read (LazyText): it is read when an order is skipped
        if qty < min_size:
            reason = LazyText(_skipped_text, tuple(parts), qty, min_size)
            if raw > 0 and self.params.below_min is BelowMin.RAISE:
                self._raise_below_min(bound, str(reason), view, min_size)
            return SizingResult(ZERO, ZERO, ZERO, reason)
        notional = qty * price
        margin = self.margin_used(notional, view)
        return SizingResult(qty, notional, margin, LazyText(_sized_text, tuple(parts), qty, market, notional, margin))

    def _size_reduce_only(self, intent: OrderParams, view: SizingView, min_size: Decimal) -> SizingResult:
        pos = _position_size(view)
        if not _is_reducing(intent, view):
            return SizingResult(ZERO, ZERO, ZERO, f"reduce-only {intent.side.value} on {view.market.ticker}: no opposite position to reduce")
        qty = abs(pos)
        reason = f"reduce-only: position {_fmt(pos)}"
        if intent.size is not None and intent.size < qty:
            qty = intent.size
            reason += f", capped by the intent's size {_fmt(intent.size)}"
        qty = _floor_step(qty, view.market.step_size)
        if qty < min_size:
            return SizingResult(ZERO, ZERO, ZERO, reason + f"; {_fmt(qty)} is below the minimum order size {_fmt(min_size)}: skipped")
        notional = qty * view.price
        return SizingResult(qty, notional, ZERO, reason + f" -> {_fmt(qty)}")

    def _leverage_cap(self, intent: OrderParams, view: SizingView) -> tuple[Decimal, str, tuple]:
        """Largest quantity the leverage and margin limits allow (base units), its kind, and its
        reason as ``(text function, *arguments)`` (made a LazyText only when the limit binds).

        ``K1 = (max_leverage * equity - T_other) / P`` (configured account leverage),
        ``K2 = |S| + free_collateral / (P * IMF)`` (venue initial margin, 1/IMF);
        the position after the order must satisfy ``|S + q| <= min(K1, K2)``.
        """
        market = view.market
        price = view.price
        pos = _position_size(view)
        bal = view.balance
        equity = bal.equity
        imf = market_imf(market)
        max_lev = self.params.max_leverage
        other = _other_notional(view)
        increasing = pos == 0 or (pos > 0) == (intent.side is BUY)
        if increasing and bal.free_collateral <= 0:
            required = market.min_order_size * price * imf
            raise InsufficientBalance(
                f"sizer {self.name}: no free collateral for a {intent.side.value} on {market.ticker}: "
                f"required {_fmt(required, 2)} USD for the minimum order, available {_fmt(bal.free_collateral, 2)} USD",
                required=required,
                available=bal.free_collateral,
            )
        k1 = (max_lev * equity - other) / price if equity > 0 else ZERO
        k2 = abs(pos) + bal.free_collateral / (price * imf)
        k, kind = (k1, "leverage") if k1 <= k2 else (k2, "margin")
        k = max(k, ZERO)
        if increasing:
            q = max(k - abs(pos), ZERO)
        else:
            q = abs(pos) + k
        if kind == "leverage":
            why = (_leverage_text, max_lev, equity, other, price, k1, q)
        else:
            why = (_margin_text, imf, pos, bal.free_collateral, price, k2, q)
        return q, kind, why

    def _raise_below_min(self, bound: str, reason: str, view: SizingView, min_size: Decimal) -> None:
        market = view.market
        price = view.price
        bal = view.balance
        if bound == "leverage":
            other = _other_notional(view)
            pos = _position_size(view)
            required = (other + (abs(pos) + min_size) * price) / bal.equity if bal.equity > 0 else Decimal("Infinity")
            raise InsufficientLeverage(
                f"sizer {self.name}: {reason}; the minimum order needs leverage {_fmt(required, 4)}x, allowed {_fmt(self.params.max_leverage)}x",
                required=required,
                available=self.params.max_leverage,
            )
        imf = market_imf(market)
        required = min_size * price * imf
        raise InsufficientBalance(
            f"sizer {self.name}: {reason}; the minimum order needs {_fmt(required, 2)} USD of free collateral, "
            f"available {_fmt(bal.free_collateral, 2)} USD",
            required=required,
            available=bal.free_collateral,
        )


# ---------------------------------------------------------------------------
# fixed quantity / fixed notional
# ---------------------------------------------------------------------------


@attrs.frozen
class FixedQuantityParams(LimitParams):
    """Parameters of :class:`FixedQuantitySizer` (``[sizer]``), plus :class:`LimitParams`."""

    quantity: Decimal = param(Decimal("0.001"), "order size, base units (e.g. BTC)", _positive)


class FixedQuantitySizer(BaseSizer):
    """Every order is ``quantity`` base units (within the limits)."""

    name = "fixed_quantity"
    description = "a fixed size in base units per order"
    Params = FixedQuantityParams

    def raw_quantity(self, intent: OrderParams, view: SizingView) -> tuple[Decimal, LazyText]:
        """``quantity`` base units, and the reason."""
        q = self.params.quantity
        return q, LazyText(lambda v, base: f"fixed quantity {_fmt(v)} {base}", q, view.market.base)


@attrs.frozen
class FixedNotionalParams(LimitParams):
    """Parameters of :class:`FixedNotionalSizer` (``[sizer]``), plus :class:`LimitParams`."""

    notional: Decimal = param(Decimal("1000"), "order notional, USD", _positive)


class FixedNotionalSizer(BaseSizer):
    """Every order is worth ``notional`` USD at the reference price: ``q = notional / P``."""

    name = "fixed_notional"
    description = "a fixed USD notional per order (the default sizer)"
    Params = FixedNotionalParams

    def raw_quantity(self, intent: OrderParams, view: SizingView) -> tuple[Decimal, LazyText]:
        """``notional / price`` base units (USD / USD per base unit), and the reason."""
        n = self.params.notional
        q = n / view.price
        return q, LazyText(_fixed_notional_text, n, view.price, q)


# ---------------------------------------------------------------------------
# seed 004: balance x leverage x portfolio exposure
# ---------------------------------------------------------------------------


@attrs.frozen
class ExposureParams(LimitParams):
    """Parameters of :class:`ExposureSizer` (``[sizer]``), plus :class:`LimitParams`."""

    max_portfolio_exposure: Decimal = param(
        Decimal("0.1"),
        "fraction of the available balance one order may commit (seed 004's max_portfolio_exposure, 0.1 = 10%)",
        in_range(Decimal(0), Decimal(1)),
    )


class ExposureSizer(BaseSizer):
    """Seed 004's ``PositionSizer::size_position``, implemented as the seed writes it::

        leverage              = LeverageCalculator.available_leverage
                              = max(0, max_leverage - current_leverage)       (x)
        max_qty_from_balance  = available_balance * leverage / price
        max_qty_from_exposure = available_balance * max_portfolio_exposure / price
        quantity              = min(max_qty_from_balance, max_qty_from_exposure)
        quantity              = min(quantity, max_order_size)
        margin_used           = quantity * price / leverage

    ``available_balance`` is the free collateral (USD, floored at 0);
    ``max_leverage = min(configured max_leverage, 1 / IMF)``. Note the exposure
    term has no leverage in the seed: ``max_portfolio_exposure`` is a fraction of the
    balance committed as notional.

    One deliberate deviation: the seed then raises the quantity to
    ``min_order_size`` (``quantity = max(quantity, min_order_size)``); this project
    never raises a size silently, so a quantity below the minimum is returned as 0
    with the reason (or raised, ``below_min = "raise"``). With no leverage headroom
    left (``available_leverage == 0``) it raises :class:`InsufficientLeverage`
    (required: the leverage one minimum order would need; available: 0).
    The shared limits (account leverage, initial margin, step) then apply as for
    every sizer.
    """

    name = "exposure"
    description = "seed 004: min(balance x leverage, balance x exposure) / price, with min/max size"
    Params = ExposureParams

    def raw_quantity(self, intent: OrderParams, view: SizingView) -> tuple[Decimal, str]:
        """Seed 004's quantity (class docstring), base units, and the reason naming the bound.

        :raises InsufficientLeverage: a risk-increasing order with free collateral but no
            leverage headroom (``required``: the leverage one minimum order needs, x).
        :raises DataError: the market's maximum leverage is unknown.
        """
        price = view.price
        available = view.balance.available
        calc = LeverageCalculator(self.params.max_leverage)
        markets = {view.market.ticker: view.market}
        info = calc.info(view.balance, view.positions, view.marks, markets, market=view.market)
        leverage = info.available_leverage
        increasing = not _is_reducing(intent, view)
        if increasing and available > 0 and leverage <= 0:
            min_size = view.market.min_order_size
            required = (info.gross_notional + min_size * price) / view.balance.equity if view.balance.equity > 0 else Decimal("Infinity")
            raise InsufficientLeverage(
                f"sizer exposure: no leverage headroom on {view.market.ticker}: current {_fmt(info.current_leverage, 4)}x "
                f">= max {_fmt(info.max_leverage, 4)}x; the minimum order needs {_fmt(required, 4)}x",
                required=required,
                available=leverage,
            )
        self._leverage = leverage
        q_bal = available * leverage / price
        q_exp = available * self.params.max_portfolio_exposure / price
        if q_bal <= q_exp:
            q, which = q_bal, "balance x leverage"
        else:
            q, which = q_exp, f"portfolio exposure {_fmt(self.params.max_portfolio_exposure * 100, 4)}%"
        reason = (
            f"exposure (seed 004): min(balance {_fmt(available, 2)} x leverage {_fmt(leverage, 4)} / price {_fmt(price)} = {_fmt(q_bal)}, "
            f"balance {_fmt(available, 2)} x exposure {_fmt(self.params.max_portfolio_exposure)} / price {_fmt(price)} = {_fmt(q_exp)})"
            f" = {_fmt(q)}, bound by {which}"
        )
        return q, reason

    def margin_used(self, notional: Decimal, view: SizingView) -> Decimal:
        """Seed 004's margin, USD: ``notional / available leverage`` of the last
        :meth:`raw_quantity` (``notional * IMF`` when that leverage was 0)."""
        lev = getattr(self, "_leverage", ZERO)
        if lev > 0:
            return notional / lev  # seed 004: notional / leverage
        return super().margin_used(notional, view)


# ---------------------------------------------------------------------------
# volatility target
# ---------------------------------------------------------------------------


@attrs.frozen
class VolatilityTargetParams(LimitParams):
    """Parameters of :class:`VolatilityTargetSizer` (``[sizer]``), plus :class:`LimitParams`."""

    target_usd: Decimal = param(
        Decimal("10"), "target volatility of the position per bar, USD (1 standard deviation)", _positive
    )
    lookback: int = param(60, "bars used to estimate volatility when the view has none", in_range(3, 100000))
    min_volatility: Decimal = param(
        Decimal("0.0001"), "floor on the per-bar return volatility (avoids huge sizes in flat data)", _positive
    )


def bar_volatility(closes: list[Decimal]) -> Decimal | None:
    """Sample standard deviation of simple per-bar returns ``c_i / c_{i-1} - 1`` (fraction).

    None with fewer than three closes.
    """
    if len(closes) < 3:
        return None
    rets = [closes[i] / closes[i - 1] - ONE for i in range(1, len(closes)) if closes[i - 1] > 0]
    n = len(rets)
    if n < 2:
        return None
    mean = sum(rets, ZERO) / n
    var = sum(((r - mean) ** 2 for r in rets), ZERO) / (n - 1)
    return var.sqrt()


class VolatilityTargetSizer(BaseSizer):
    """Size so that one bar's 1-sigma move is worth ``target_usd``:
    ``q = target_usd / (price * vol)`` with ``vol`` the per-bar return standard deviation
    (fraction). ``vol`` comes from the view, else from the last ``lookback`` bars of the
    market's state (``context.states``); without it the order is skipped (quantity 0)."""

    name = "volatility_target"
    description = "size = target USD volatility per bar / (price x per-bar volatility)"
    Params = VolatilityTargetParams

    def _volatility(self, view: SizingView) -> tuple[Decimal | None, str]:
        if view.volatility is not None and view.volatility > 0:
            return view.volatility, "view"
        states = getattr(self.context, "states", None) or {}
        st = states.get(view.market.ticker)
        if st is None:
            for t, s in states.items():
                if _unqualified(t) == _unqualified(view.market.ticker) and ":" not in t:
                    st = s
                    break
        if st is None:
            return None, "no market state"
        bars = list(st.bars.bars)[-(self.params.lookback + 1):]
        vol = bar_volatility([b.close for b in bars])
        if vol is None:
            return None, f"only {len(bars)} bars"
        return vol, f"{len(bars)} bars"

    def raw_quantity(self, intent: OrderParams, view: SizingView) -> tuple[Decimal, str]:
        """``target_usd / (price * max(vol, min_volatility))`` base units and the reason; 0 when
        the volatility is unknown (the reason says why)."""
        vol, src = self._volatility(view)
        if vol is None:
            return ZERO, f"volatility target: volatility of {view.market.ticker} unknown ({src})"
        used = max(vol, self.params.min_volatility)
        q = self.params.target_usd / (view.price * used)
        return q, (
            f"volatility target {_fmt(self.params.target_usd, 2)} USD/bar / (price {_fmt(view.price)} x vol {_fmt(used, 6)}"
            f" from {src}) = {_fmt(q)}"
        )


# ---------------------------------------------------------------------------
# fractional Kelly
# ---------------------------------------------------------------------------


@attrs.frozen
class KellyParams(LimitParams):
    """Parameters of :class:`KellySizer` (``[sizer]``), plus :class:`LimitParams`."""

    fraction: Decimal = param(Decimal("0.25"), "fraction of the full Kelly stake (0.25 = quarter Kelly)", in_range(Decimal(0), Decimal(1)))
    win_rate: Decimal | None = param(
        None, "probability of a winning trade; default: the strategy's score / 100", in_range(Decimal(0), Decimal(1))
    )
    payoff_ratio: Decimal = param(Decimal("1"), "average win / average loss (Kelly's b)", _positive)
    stop_distance: Decimal | None = param(
        None,
        "loss per trade as a fraction of price (e.g. 0.02 for a 2% stop); the stake at risk is then "
        "notional x stop_distance. Default: the whole notional is the stake",
        _positive,
    )


class KellySizer(BaseSizer):
    """Fractional Kelly: ``f* = p - (1 - p) / b`` (``p`` win rate, ``b`` payoff ratio),
    ``f = fraction * f*``; the stake ``f * equity`` is what the trade may lose, so
    ``notional = f * equity / stop_distance`` (or ``f * equity`` without a stop distance),
    ``q = notional / price``. ``p`` is ``win_rate`` or the strategy's 0-100 score / 100.
    No edge (``f* <= 0``) gives quantity 0."""

    name = "kelly"
    description = "fractional Kelly from a win rate (or the score) and a payoff ratio"
    Params = KellyParams

    def raw_quantity(self, intent: OrderParams, view: SizingView) -> tuple[Decimal, str]:
        """The fractional-Kelly quantity (class docstring), base units, and the reason; 0
        without a win-rate estimate or without an edge."""
        p = self.params.win_rate
        src = "win_rate"
        if p is None:
            if view.score is None:
                return ZERO, "kelly: no win-rate estimate (no win_rate parameter and no score)"
            p = min(max(Decimal(view.score) / 100, ZERO), ONE)
            src = f"score {_fmt(Decimal(view.score), 2)}/100"
        b = self.params.payoff_ratio
        f_star = p - (ONE - p) / b
        if f_star <= 0:
            return ZERO, f"kelly: no edge (f* = {_fmt(p, 4)} - {_fmt(ONE - p, 4)}/{_fmt(b)} = {_fmt(f_star, 4)} <= 0)"
        f = self.params.fraction * f_star
        equity = max(view.balance.equity, ZERO)
        stake = f * equity
        if self.params.stop_distance is not None:
            notional = stake / self.params.stop_distance
            how = f"stake {_fmt(stake, 2)} USD / stop distance {_fmt(self.params.stop_distance)}"
        else:
            notional = stake
            how = f"stake {_fmt(stake, 2)} USD"
        q = notional / view.price
        return q, (
            f"kelly: p={_fmt(p, 4)} ({src}), b={_fmt(b)}, f*={_fmt(f_star, 4)}, x{_fmt(self.params.fraction)} = {_fmt(f, 4)} of equity "
            f"{_fmt(equity, 2)}; {how} = notional {_fmt(notional, 2)} USD / price {_fmt(view.price)} = {_fmt(q)}"
        )


#: every built-in sizer class, in registration order
SIZERS = (FixedQuantitySizer, FixedNotionalSizer, ExposureSizer, VolatilityTargetSizer, KellySizer)


@hookimpl
def register_position_sizers(register: Callable[[type], type]) -> None:
    """Hook implementation: register each class of :data:`SIZERS` under its ``name``."""
    for cls in SIZERS:
        register(cls)
