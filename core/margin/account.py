"""Account (subaccount) risk: equity, total margins, free collateral, leverage, the order check.

All functions take the signed USDC balance and :class:`~perpbot.core.margin.requirements.PositionRisk`
values, whose chain-rounded per-position figures are summed. Imports only
:mod:`perpbot.core.margin._exact`, :mod:`perpbot.core.margin.requirements`, ``attrs`` and
the standard library.

Sources: chain ``protocol/lib/margin/risk.go``, ``protocol/x/subaccounts/lib/updates.go``;
frontend metrics from v4-abacus ``calculator/SubaccountCalculator.kt``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

import attrs

from perpbot.core.margin._exact import (
    ZERO,
    _add,
    _div,
    _mul,
    _num,
    _qq_to_usd,
    _sub,
)
from perpbot.core.margin.requirements import PositionRisk

__all__ = [
    "AccountRisk",
    "account_risk",
    "equity",
    "total_initial_margin",
    "total_maintenance_margin",
    "free_collateral",
    "margin_usage",
    "account_leverage",
    "position_leverage",
    "buying_power",
    "is_initially_collateralized",
    "is_liquidatable",
    "OrderMarginCheck",
    "check_order_initial_margin",
]


def _totals(positions: Iterable[PositionRisk]) -> tuple[int, int, int, int]:
    """(net notional, IMR, MMR, gross notional) sums in quote quantums."""
    nnv = imr = mmr = gross = 0
    for p in positions:
        a, b, c, d, _, _, _, _ = p._k
        nnv += a
        imr += b
        mmr += c
        gross += d
    return nnv, imr, mmr, gross


@attrs.frozen
class AccountRisk:
    """An account's (subaccount's) collateral and margin totals, USD.

    :param equity: net collateral ``Q + sum(S_i * P_i)`` (each position value truncated to
        a quote quantum as on chain).
    :param initial_margin: total initial margin requirement (TIMR).
    :param maintenance_margin: total maintenance margin requirement (TMMR).
    :param gross_notional: ``sum(|S_i| * P_i)``.

    Built by :func:`account_risk` (fields are not validated here; it raises nothing).
    Source: chain ``protocol/lib/margin/risk.go`` (``Risk``: ``NC``, ``IMR``, ``MMR``);
    leverage and margin usage from v4-abacus ``calculator/SubaccountCalculator.kt``.
    """

    equity: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    gross_notional: Decimal

    @property
    def free_collateral(self) -> Decimal:
        """``equity - initial_margin``, USD (negative when under-collateralized)."""
        return _sub(self.equity, self.initial_margin)

    @property
    def margin_usage(self) -> Decimal | None:
        """``initial_margin / equity``; ``None`` when equity <= 0."""
        return _div(self.initial_margin, self.equity) if self.equity > 0 else None

    @property
    def leverage(self) -> Decimal | None:
        """``gross_notional / equity``; ``None`` when equity <= 0."""
        return _div(self.gross_notional, self.equity) if self.equity > 0 else None

    @property
    def is_initially_collateralized(self) -> bool:
        """``equity >= initial_margin`` (chain ``Risk.IsInitialCollateralized``)."""
        return self.equity >= self.initial_margin

    @property
    def is_liquidatable(self) -> bool:
        """``maintenance_margin > 0 and equity < maintenance_margin`` (chain ``Risk.IsLiquidatable``)."""
        return self.maintenance_margin > 0 and self.equity < self.maintenance_margin


def account_risk(usdc_balance: Decimal, positions: Iterable[PositionRisk]) -> AccountRisk:
    """All account totals in one pass.

    :param usdc_balance: Decimal USD, the signed USDC asset position ``Q`` (after funding
        settlement; negative after buying perpetuals with borrowed quote).
    :param positions: iterable of :class:`PositionRisk`, one per market.
    :returns: :class:`AccountRisk` (USD).
    :raises TypeError: for a float balance.

    Source: chain ``protocol/lib/margin/risk.go``, ``protocol/x/subaccounts/keeper/subaccount.go``.
    """
    q = _num("usdc_balance", usdc_balance)
    nnv, imr, mmr, gross = _totals(positions)
    return AccountRisk(
        equity=_add(q, _qq_to_usd(nnv)),
        initial_margin=_qq_to_usd(imr),
        maintenance_margin=_qq_to_usd(mmr),
        gross_notional=_qq_to_usd(gross),
    )


def equity(usdc_balance: Decimal, positions: Iterable[PositionRisk]) -> Decimal:
    """Net collateral (equity) ``NC = Q + sum(S_i * P_i)``, USD.

    Each position's value is truncated toward zero to a quote quantum, as the chain's
    ``BaseToQuoteQuantums`` does; ``Q`` is used exactly.

    :param usdc_balance: Decimal USD, signed USDC balance ``Q``.
    :param positions: iterable of :class:`PositionRisk`.
    :returns: Decimal USD.
    :raises TypeError: for a float balance.

    Source: chain ``protocol/lib/margin/risk.go`` (``NC``), ``protocol/x/perpetuals/lib/lib.go``.
    """
    q = _num("usdc_balance", usdc_balance)
    total = 0
    for p in positions:
        total += p._k[0]
    return _add(q, _qq_to_usd(total))


def total_initial_margin(positions: Iterable[PositionRisk]) -> Decimal:
    """Total initial margin requirement ``TIMR = sum(IMR_i)``, USD (each IMR rounded up).

    :param positions: iterable of :class:`PositionRisk` (their OI-scaled IMRs, quote
        quantums, are summed exactly).
    :returns: Decimal USD >= 0, a whole number of quote quantums.

    Source: chain ``protocol/lib/margin/risk.go``, ``protocol/x/perpetuals/lib/lib.go``.
    """
    total = 0
    for p in positions:
        total += p._k[1]
    return _qq_to_usd(total)


def total_maintenance_margin(positions: Iterable[PositionRisk]) -> Decimal:
    """Total maintenance margin requirement ``TMMR = sum(MMR_i)``, USD (each rounded up twice).

    :param positions: iterable of :class:`PositionRisk`.
    :returns: Decimal USD >= 0, a whole number of quote quantums.

    Source: chain ``protocol/lib/margin/risk.go``, ``protocol/x/perpetuals/lib/lib.go``.
    """
    total = 0
    for p in positions:
        total += p._k[2]
    return _qq_to_usd(total)


def free_collateral(usdc_balance: Decimal, positions: Iterable[PositionRisk]) -> Decimal:
    """Free collateral ``NC - TIMR``, USD (negative when not initially collateralized).

    :param usdc_balance: Decimal USD, signed USDC balance.
    :param positions: iterable of :class:`PositionRisk`.
    :returns: Decimal USD, signed.
    :raises TypeError: for a float balance.

    Source: chain ``protocol/lib/margin/risk.go``; indexer ``comlink/src/lib/helpers.ts``.
    """
    return account_risk(usdc_balance, positions).free_collateral


def margin_usage(usdc_balance: Decimal, positions: Iterable[PositionRisk]) -> Decimal | None:
    """Margin usage ``TIMR / equity`` (= ``1 - FC/E``), a fraction; ``None`` when equity <= 0.

    :param usdc_balance: Decimal USD, signed USDC balance.
    :param positions: iterable of :class:`PositionRisk`.
    :returns: Decimal fraction (28 digits) or ``None``.
    :raises TypeError: for a float balance.

    Source: v4-abacus ``calculator/SubaccountCalculator.kt``.
    """
    return account_risk(usdc_balance, positions).margin_usage


def account_leverage(usdc_balance: Decimal, positions: Iterable[PositionRisk]) -> Decimal | None:
    """Account leverage ``sum(|S_i| * P_i) / equity``; ``None`` when equity <= 0.

    :param usdc_balance: Decimal USD, signed USDC balance.
    :param positions: iterable of :class:`PositionRisk`.
    :returns: Decimal ratio >= 0 (28 digits) or ``None``.
    :raises TypeError: for a float balance.

    Source: v4-abacus ``calculator/SubaccountCalculator.kt``.
    """
    return account_risk(usdc_balance, positions).leverage


def position_leverage(position: PositionRisk, equity: Decimal) -> Decimal | None:
    """Signed leverage of one position ``S * P / equity``; ``None`` when equity <= 0.

    :param position: :class:`PositionRisk`.
    :param equity: Decimal USD, the account's (or isolated child subaccount's) equity.
    :returns: Decimal ratio, signed like the position (28 digits), or ``None``.
    :raises TypeError: for a float equity.

    Source: v4-abacus ``calculator/SubaccountCalculator.kt``.
    """
    e = _num("equity", equity)
    return _div(position.notional, e) if e > 0 else None


def buying_power(usdc_balance: Decimal, positions: Iterable[PositionRisk], imf: Decimal) -> Decimal:
    """Buying power ``free_collateral / imf``, USD of new notional; 0 when FC <= 0.

    :param usdc_balance: Decimal USD, signed USDC balance.
    :param positions: iterable of :class:`PositionRisk`.
    :param imf: Decimal fraction > 0, the IMF of the market to be traded (its effective,
        OI-scaled IMF where that applies).
    :returns: Decimal USD >= 0 (28 digits).
    :raises TypeError: for floats.
    :raises ValueError: for ``imf`` <= 0.

    Source: v4-abacus ``calculator/SubaccountCalculator.kt``.
    """
    f = _num("imf", imf)
    if f <= 0:
        raise ValueError(f"imf must be > 0, got {f}")
    fc = free_collateral(usdc_balance, positions)
    return _div(fc, f) if fc > 0 else ZERO


def is_initially_collateralized(usdc_balance: Decimal, positions: Iterable[PositionRisk]) -> bool:
    """``NC >= TIMR``: required after any risk-increasing update (orders, withdrawals).

    :param usdc_balance: Decimal USD, signed USDC balance.
    :param positions: iterable of :class:`PositionRisk`.
    :returns: bool.
    :raises TypeError: for a float balance.

    Source: chain ``protocol/lib/margin/risk.go`` (``IsInitialCollateralized``).
    """
    return account_risk(usdc_balance, positions).is_initially_collateralized


def is_liquidatable(usdc_balance: Decimal, positions: Iterable[PositionRisk]) -> bool:
    """``TMMR > 0 and NC < TMMR`` (strict): the account can be liquidated.

    :param usdc_balance: Decimal USD, signed USDC balance.
    :param positions: iterable of :class:`PositionRisk`.
    :returns: bool.
    :raises TypeError: for a float balance.

    Source: chain ``protocol/lib/margin/risk.go`` (``IsLiquidatable``).
    """
    return account_risk(usdc_balance, positions).is_liquidatable


@attrs.frozen
class OrderMarginCheck:
    """The outcome of :func:`check_order_initial_margin`, with the numbers behind it (USD).

    :param accepted: whether the chain would accept the collateral change of the fill.
    :param reason: one line explaining the decision with the numbers.
    :param equity_before: / ``equity_after``: net collateral before and after the fill.
    :param initial_margin_before: / ``initial_margin_after``: TIMR before and after.
    :param maintenance_margin_before: / ``maintenance_margin_after``: TMMR before and after.

    Built by :func:`check_order_initial_margin`; raises nothing. Source of the rule: chain
    ``protocol/x/subaccounts/lib/updates.go``.
    """

    accepted: bool
    reason: str
    equity_before: Decimal
    equity_after: Decimal
    initial_margin_before: Decimal
    initial_margin_after: Decimal
    maintenance_margin_before: Decimal
    maintenance_margin_after: Decimal

    @property
    def required(self) -> Decimal:
        """Initial margin required after the fill, USD."""
        return self.initial_margin_after

    @property
    def available(self) -> Decimal:
        """Collateral (equity) available after the fill, USD."""
        return self.equity_after

    @property
    def free_collateral_after(self) -> Decimal:
        """``equity_after - initial_margin_after``, USD."""
        return _sub(self.equity_after, self.initial_margin_after)

    @property
    def shortfall(self) -> Decimal:
        """How much equity is missing to meet the initial margin after the fill, USD (>= 0)."""
        s = _sub(self.initial_margin_after, self.equity_after)
        return s if s > 0 else ZERO


def check_order_initial_margin(
    usdc_balance: Decimal,
    positions: Sequence[PositionRisk],
    position: PositionRisk,
    order_size: Decimal,
    fill_price: Decimal,
    fee: Decimal = ZERO,
    *,
    allow_undercollateralized_risk_reduction: bool = True,
) -> OrderMarginCheck:
    """Would filling this order keep the account's collateral rules? With the numbers.

    After the fill: ``Q' = Q - order_size * fill_price - fee`` and the position becomes
    ``position.size + order_size`` (marked at ``position.oracle_price``, margins from its
    IMF/MMF and OI as given). The fill is accepted when ``NC' >= TIMR'``. Otherwise, like
    the chain, it is still accepted (if ``allow_undercollateralized_risk_reduction``) when
    the maintenance margin does not rise and ``NC'/TMMR'`` does not fall; with both TMMRs
    zero, only when NC rises.

    :param usdc_balance: Decimal USD, signed USDC balance ``Q`` before the fill.
    :param positions: sequence of :class:`PositionRisk`, the account's positions in the
        *other* markets; an entry that is the very object ``position`` is skipped, so the
        full list may be passed.
    :param position: :class:`PositionRisk` of the order's market as it stands (size 0 if flat).
    :param order_size: Decimal, signed base units (buy > 0, sell < 0), nonzero.
    :param fill_price: Decimal > 0, USD per base unit.
    :param fee: Decimal USD paid for the fill (negative for a rebate).
    :param allow_undercollateralized_risk_reduction: apply the chain's exception above.
    :returns: :class:`OrderMarginCheck` whose ``required``/``available``/``shortfall`` fill a
        rejection reason.
    :raises TypeError: for floats.
    :raises ValueError: for a zero order size or a non-positive fill price.

    Source: chain ``protocol/x/subaccounts/lib/updates.go``
    (``IsValidStateTransitionForUndercollateralizedSubaccount``), ``protocol/lib/margin/risk.go``.
    """
    q0 = _num("usdc_balance", usdc_balance)
    ds = _num("order_size", order_size)
    px = _num("fill_price", fill_price)
    fee = _num("fee", fee)
    if not ds:
        raise ValueError("order_size must not be zero")
    if px <= 0:
        raise ValueError(f"fill_price must be > 0, got {px}")
    o_nnv, o_imr, o_mmr, _ = _totals(p for p in positions if p is not position)
    after = position.with_size(_add(position.size, ds))
    q1 = _sub(_sub(q0, _mul(ds, px)), fee)

    k0, k1 = position._k, after._k
    nc0 = _add(q0, _qq_to_usd(o_nnv + k0[0]))
    nc1 = _add(q1, _qq_to_usd(o_nnv + k1[0]))
    imr0 = _qq_to_usd(o_imr + k0[1])
    imr1 = _qq_to_usd(o_imr + k1[1])
    mmr0 = _qq_to_usd(o_mmr + k0[2])
    mmr1 = _qq_to_usd(o_mmr + k1[2])

    def result(accepted: bool, reason: str) -> OrderMarginCheck:
        return OrderMarginCheck(
            accepted=accepted,
            reason=reason,
            equity_before=nc0,
            equity_after=nc1,
            initial_margin_before=imr0,
            initial_margin_after=imr1,
            maintenance_margin_before=mmr0,
            maintenance_margin_after=mmr1,
        )

    if nc1 >= imr1:
        return result(True, f"initial margin ok: equity after fill {nc1:f} USDC >= required {imr1:f} USDC")
    reject = (
        f"insufficient margin: initial margin required {imr1:f} USDC but equity after fill would be "
        f"{nc1:f} USDC (short by {_sub(imr1, nc1):f} USDC; free collateral before {_sub(nc0, imr0):f} USDC)"
    )
    if not allow_undercollateralized_risk_reduction:
        return result(False, reject)
    if mmr1 > mmr0:
        return result(False, reject)
    if not mmr1 or not mmr0:
        if not mmr1 and not mmr0 and nc1 > nc0:
            return result(True, "undercollateralized but accepted: no positions and equity rises")
        return result(False, reject)
    # New state more risky when NC1/MMR1 < NC0/MMR0, i.e. NC0*MMR1 > NC1*MMR0.
    if _mul(nc0, mmr1) > _mul(nc1, mmr0):
        return result(False, reject)
    return result(
        True,
        f"undercollateralized but accepted: maintenance margin does not rise ({mmr0:f} -> {mmr1:f} USDC) "
        f"and equity/maintenance does not fall",
    )
