"""Liquidation: liquidation prices (cross and isolated), the liquidation order's fill price,
bankruptcy price and the insurance-fund fee.

Imports only :mod:`perpbot.core.margin._exact`, :mod:`perpbot.core.margin.requirements`
and the standard library.

Sources: docs ``concepts/trading/liquidations.mdx``; chain
``protocol/x/clob/keeper/liquidations.go``; v4-abacus ``calculatePositionLiquidationPrice``.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

from perpbot.core.margin._exact import (
    _MAX_UINT64,
    ONE_MILLION,
    ZERO,
    _add,
    _ceil_div,
    _div,
    _fraction_to_decimal,
    _int,
    _mul,
    _num,
    _qq_to_usd,
    _scaled_ratio,
    _sub,
    _sub28,
    _thread_context_is_default,
)
from perpbot.core.margin.requirements import PositionRisk

__all__ = [
    "DEFAULT_MAX_LIQUIDATION_FEE_PPM",
    "DEFAULT_BANKRUPTCY_ADJUSTMENT",
    "DEFAULT_SPREAD_TO_MAINTENANCE_MARGIN_RATIO",
    "liquidation_price",
    "isolated_liquidation_price",
    "liquidation_prices",
    "liquidation_fill_price",
    "liquidation_fill_subticks",
    "bankruptcy_quote",
    "bankruptcy_price",
    "liquidation_fee",
]

#: Genesis default of ``max_liquidation_fee_ppm`` (1.5%, paid to the insurance fund).
DEFAULT_MAX_LIQUIDATION_FEE_PPM = 15_000
#: Genesis default of ``bankruptcy_adjustment_ppm`` (1e6 ppm) as a fraction.
DEFAULT_BANKRUPTCY_ADJUSTMENT = Decimal(1)
#: Genesis default of ``spread_to_maintenance_margin_ratio_ppm`` (1.5e6 ppm) as a fraction.
DEFAULT_SPREAD_TO_MAINTENANCE_MARGIN_RATIO = Decimal("1.5")


def liquidation_price(
    equity: Decimal,
    size: Decimal,
    oracle_price: Decimal,
    mmf: Decimal,
    maintenance_other: Decimal = ZERO,
) -> Decimal | None:
    """Oracle price of this market at which equity falls to the maintenance margin (cross).

    ``p_liq = (E - s*P - MMR_other) / (|s|*MMF - s)``, with everything else held fixed.
    Solves ``E + s*(p - P) = MMR_other + |s|*p*MMF``.

    :param equity: Decimal USD, the account's *current* equity (net collateral).
    :param size: Decimal, signed base units of the position.
    :param oracle_price: Decimal > 0, the *current* oracle price, USD.
    :param mmf: Decimal fraction in [0, 1], this market's maintenance margin fraction.
    :param maintenance_other: Decimal USD >= 0, maintenance margin of all the other
        positions (0 for an isolated position).
    :returns: Decimal USD (28 significant digits, not rounded to a tick), or ``None`` when
        the result is <= 0, the size is 0, or the position cannot be liquidated by its own
        price (e.g. a long with MMF = 1). If the account is already liquidatable the price
        lies on the "safe" side of ``oracle_price``.
    :raises TypeError: for floats.
    :raises ValueError: for a non-positive price, ``mmf`` outside [0, 1] or negative ``maintenance_other``.

    Examples: deposit 1000, long 1 ETH at 3000, MMF 0.03 -> 2061.86;
    E=1000, short 3 at 3000, MMF 0.05 -> 3174.60.
    Source: docs ``concepts/trading/liquidations.mdx``; v4-abacus ``calculatePositionLiquidationPrice``.
    """
    e = _num("equity", equity)
    s = _num("size", size)
    p = _num("oracle_price", oracle_price)
    m = _num("mmf", mmf)
    other = _num("maintenance_other", maintenance_other)
    if p <= 0:
        raise ValueError(f"oracle_price must be > 0, got {p}")
    if not 0 <= m <= 1:
        raise ValueError(f"mmf must be in [0, 1], got {m}")
    if other < 0:
        raise ValueError(f"maintenance_other must not be negative, got {other}")
    den = _sub(_mul(abs(s), m), s)
    if not den:
        return None
    r = _div(_sub(_sub(e, _mul(s, p)), other), den)
    return r if r > 0 else None


def isolated_liquidation_price(
    child_equity: Decimal, size: Decimal, oracle_price: Decimal, mmf: Decimal
) -> Decimal | None:
    """Liquidation price of an isolated position: :func:`liquidation_price` with no other positions.

    Isolated positions live in their own child subaccount (number 128..128000, parent
    ``n % 128``), so ``MMR_other = 0`` and the equity is the child's.

    :param child_equity: Decimal USD, equity of the isolated child subaccount.
    :param size: Decimal, signed base units.
    :param oracle_price: Decimal > 0, USD.
    :param mmf: Decimal fraction.
    :returns: Decimal USD or ``None`` (see :func:`liquidation_price`).
    :raises TypeError: / ValueError: as :func:`liquidation_price`.

    Source: docs ``concepts/trading/isolated-positions.md``, ``concepts/trading/liquidations.mdx``.
    """
    return liquidation_price(child_equity, size, oracle_price, mmf, ZERO)


def liquidation_prices(usdc_balance: Decimal, positions: Sequence[PositionRisk]) -> list[Decimal | None]:
    """Cross-margin liquidation price of every position of an account, in order.

    For position ``i``: :func:`liquidation_price` with the account equity and
    ``MMR_other = TMMR - MMR_i`` (chain-rounded requirements).

    :param usdc_balance: Decimal USD, signed USDC balance.
    :param positions: sequence of :class:`PositionRisk`.
    :returns: list of Decimal USD or ``None``, aligned with ``positions``.
    :raises TypeError: for a float balance.

    Source: docs ``concepts/trading/liquidations.mdx``; v4-abacus ``calculatePositionLiquidationPrice``.
    """
    q = _num("usdc_balance", usdc_balance)
    nnv = mmr = 0
    for p in positions:
        k = p._k
        nnv += k[0]
        mmr += k[2]
    # E - s*P - (TMMR - MMR_i) = (E - TMMR) - (s*P - MMR_i); the last term is per position.
    base = _sub(_add(q, _qq_to_usd(nnv)), _qq_to_usd(mmr))
    out: list[Decimal | None] = []
    append = out.append
    if _thread_context_is_default():
        # Same 28-digit half-even arithmetic as the branch below, via faster operators.
        for p in positions:
            _, _, _, _, off, den, _, _ = p._k
            if den:
                r = (base - off) / den
                append(r if r > 0 else None)
            else:
                append(None)
        return out
    for p in positions:
        _, _, _, _, off, den, _, _ = p._k
        if den:
            r = _div(_sub28(base, off), den)
            append(r if r > 0 else None)
        else:
            append(None)
    return out


def _fillable_price_fraction(
    position: PositionRisk,
    total_net_collateral: Decimal,
    total_maintenance_margin: Decimal,
    bankruptcy_adjustment: Decimal,
    spread_to_maintenance_margin_ratio: Decimal,
) -> Fraction:
    tnc = _num("total_net_collateral", total_net_collateral)
    tmmr = _num("total_maintenance_margin", total_maintenance_margin)
    ba = _num("bankruptcy_adjustment", bankruptcy_adjustment)
    smmr = _num("spread_to_maintenance_margin_ratio", spread_to_maintenance_margin_ratio)
    if not position.size:
        raise ValueError("position size must not be zero")
    if tmmr <= 0:
        raise ValueError(f"total_maintenance_margin must be > 0, got {tmmr}")
    if ba < 0 or smmr < 0:
        raise ValueError("bankruptcy_adjustment and spread_to_maintenance_margin_ratio must not be negative")
    abr = Fraction(ba) * (1 - Fraction(tnc) / Fraction(tmmr))
    abr = min(max(abr, Fraction(0)), Fraction(1))
    pnnv = Fraction(position.notional_quote_quantums, ONE_MILLION)
    pmmr = Fraction(position.maintenance_margin_quote_quantums, ONE_MILLION)
    price = (pnnv - abr * Fraction(smmr) * pmmr) / Fraction(position.size)
    if price < 0:
        raise ValueError(f"fillable price is negative ({price}); inconsistent inputs")
    return price


def liquidation_fill_price(
    position: PositionRisk,
    total_net_collateral: Decimal,
    total_maintenance_margin: Decimal,
    *,
    bankruptcy_adjustment: Decimal = DEFAULT_BANKRUPTCY_ADJUSTMENT,
    spread_to_maintenance_margin_ratio: Decimal = DEFAULT_SPREAD_TO_MAINTENANCE_MARGIN_RATIO,
) -> Decimal:
    """Worst price a liquidation order of this position may fill at ("fillable price"), USD.

    ``ABR = clamp(BA * (1 - TNC/TMMR), 0, 1)`` and
    ``fillable = (PNNV - ABR * SMMR * PMMR) / PS`` where PNNV and PMMR are the whole
    position's net notional and maintenance margin (chain-rounded) and PS its size. So
    ``~ P * (1 - ABR*SMMR*MMF)`` for longs and ``P * (1 + ABR*SMMR*MMF)`` for shorts. It
    depends on the whole position and the account totals, not on the amount liquidated.

    :param position: :class:`PositionRisk`, the position being liquidated (nonzero size).
    :param total_net_collateral: Decimal USD, the account's TNC (equity).
    :param total_maintenance_margin: Decimal USD > 0, the account's TMMR.
    :param bankruptcy_adjustment: Decimal fraction >= 0, ``bankruptcy_adjustment_ppm / 1e6``
        (genesis default 1.0).
    :param spread_to_maintenance_margin_ratio: Decimal >= 0,
        ``spread_to_maintenance_margin_ratio_ppm / 1e6`` (genesis default 1.5).
    :returns: Decimal USD per base unit, the exact rational rounded to 28 digits. Use
        :func:`liquidation_fill_subticks` for the chain's tick-rounded order price.
    :raises TypeError: for floats.
    :raises ValueError: for a zero size, ``TMMR <= 0`` or negative parameters.

    Source: chain ``protocol/x/clob/keeper/liquidations.go`` (``GetFillablePrice``).
    """
    return _fraction_to_decimal(
        _fillable_price_fraction(
            position,
            total_net_collateral,
            total_maintenance_margin,
            bankruptcy_adjustment,
            spread_to_maintenance_margin_ratio,
        )
    )


def liquidation_fill_subticks(
    position: PositionRisk,
    total_net_collateral: Decimal,
    total_maintenance_margin: Decimal,
    atomic_resolution: int,
    quantum_conversion_exponent: int,
    subticks_per_tick: int,
    *,
    bankruptcy_adjustment: Decimal = DEFAULT_BANKRUPTCY_ADJUSTMENT,
    spread_to_maintenance_margin_ratio: Decimal = DEFAULT_SPREAD_TO_MAINTENANCE_MARGIN_RATIO,
) -> int:
    """The liquidation order's price in subticks, rounded as the chain does.

    The exact fillable price (see :func:`liquidation_fill_price`) is converted to subticks
    and rounded conservatively: up when liquidating a long (a sell), down for a short (a
    buy), then to a multiple of ``subticks_per_tick`` in the same direction, and clamped
    to ``[subticks_per_tick, max uint64 aligned]`` (at least one tick).

    :param position: :class:`PositionRisk` being liquidated.
    :param total_net_collateral: Decimal USD.
    :param total_maintenance_margin: Decimal USD > 0.
    :param atomic_resolution: int, market ``atomicResolution``.
    :param quantum_conversion_exponent: int, clob pair ``quantumConversionExponent``.
    :param subticks_per_tick: int > 0, clob pair ``subticksPerTick``.
    :returns: int, subticks.
    :raises TypeError: / ValueError: as :func:`liquidation_fill_price`.

    Source: chain ``protocol/x/clob/keeper/liquidations.go`` (``ConvertFillablePriceToSubticks``).
    """
    ar = _int("atomic_resolution", atomic_resolution)
    qce = _int("quantum_conversion_exponent", quantum_conversion_exponent)
    spt = _int("subticks_per_tick", subticks_per_tick)
    if spt <= 0:
        raise ValueError(f"subticks_per_tick must be > 0, got {spt}")
    price = _fillable_price_fraction(
        position,
        total_net_collateral,
        total_maintenance_margin,
        bankruptcy_adjustment,
        spread_to_maintenance_margin_ratio,
    )
    e = ar - qce + 6
    subticks = price * 10**e if e >= 0 else price / 10 ** (-e)
    n, d = subticks.numerator, subticks.denominator
    if position.size > 0:  # liquidating a long: sell, round up
        st = _ceil_div(n, d)
        st = _ceil_div(st, spt) * spt
    else:
        st = n // d
        st = (st // spt) * spt
    top = _MAX_UINT64 - _MAX_UINT64 % spt
    return min(max(st, spt), top)


def bankruptcy_quote(
    position: PositionRisk,
    delta_size: Decimal,
    total_net_collateral: Decimal,
    total_maintenance_margin: Decimal,
) -> Decimal:
    """Quote the account must receive for closing ``delta_size`` at the bankruptcy price, USD.

    ``-dNNV - floor(TNC * |dMMR| / TMMR)`` in quote quantums, where ``dNNV`` and ``dMMR`` are
    the position's net notional and maintenance margin after minus before the close
    (chain-rounded, whole position), and the floor is Euclidean (toward -infinity), so
    the result rounds toward +infinity. Positive when selling a long, negative (an amount
    paid) when buying back a short.

    :param position: :class:`PositionRisk` (nonzero size).
    :param delta_size: Decimal, signed base units, opposite sign to ``position.size`` and
        ``|delta_size| <= |position.size|``.
    :param total_net_collateral: Decimal USD, account TNC.
    :param total_maintenance_margin: Decimal USD > 0, account TMMR.
    :returns: Decimal USD, signed, a whole number of quote quantums.
    :raises TypeError: for floats.
    :raises ValueError: for an invalid delta or ``TMMR <= 0``.

    Source: chain ``protocol/x/clob/keeper/liquidations.go`` (``GetBankruptcyPriceInQuoteQuantums``).
    """
    return _qq_to_usd(_bankruptcy_qq(position, delta_size, total_net_collateral, total_maintenance_margin))


def _bankruptcy_qq(
    position: PositionRisk, delta_size: Decimal, total_net_collateral: Decimal, total_maintenance_margin: Decimal
) -> int:
    ds = _num("delta_size", delta_size)
    tnc = _num("total_net_collateral", total_net_collateral)
    tmmr = _num("total_maintenance_margin", total_maintenance_margin)
    s = position.size
    if (s > 0) == (ds > 0) or not s or not ds or abs(ds) > abs(s):
        raise ValueError(
            f"delta_size {ds} must reduce the position {s}: opposite sign and |delta| <= |size|"
        )
    if tmmr <= 0:
        raise ValueError(f"total_maintenance_margin must be > 0, got {tmmr}")
    after = position.with_size(_add(s, ds))
    d_nnv = after.notional_quote_quantums - position.notional_quote_quantums
    d_mmr = after.maintenance_margin_quote_quantums - position.maintenance_margin_quote_quantums
    a, b = tnc.as_integer_ratio()
    c, d = tmmr.as_integer_ratio()
    # floor(TNC * |dMMR| / TMMR) with TNC = a/b, TMMR = c/d (USD; units cancel to quote quantums)
    cut = (a * d * abs(d_mmr)) // (b * c)
    return -d_nnv - cut


def bankruptcy_price(
    position: PositionRisk,
    delta_size: Decimal,
    total_net_collateral: Decimal,
    total_maintenance_margin: Decimal,
) -> Decimal:
    """Bankruptcy price for closing ``delta_size`` of ``position``, USD per base unit.

    ``-bankruptcy_quote / delta_size``: the price at which the close uses up exactly the
    share ``|dMMR| / TMMR`` of the account's net collateral. Filling a liquidation better
    than this pays a fee to the insurance fund; worse, the insurance fund pays.

    :param position: :class:`PositionRisk`.
    :param delta_size: Decimal, signed base units (reduces the position).
    :param total_net_collateral: Decimal USD.
    :param total_maintenance_margin: Decimal USD > 0.
    :returns: Decimal USD (28 digits).
    :raises TypeError: / ValueError: as :func:`bankruptcy_quote`.

    Source: chain ``protocol/x/clob/keeper/liquidations.go`` (``GetBankruptcyPriceInQuoteQuantums``).
    """
    qq = _bankruptcy_qq(position, delta_size, total_net_collateral, total_maintenance_margin)
    ds = _num("delta_size", delta_size)
    return _fraction_to_decimal(Fraction(-qq, ONE_MILLION) / Fraction(ds))


def liquidation_fee(
    quote_received: Decimal,
    bankruptcy_quote: Decimal,
    max_liquidation_fee_ppm: int = DEFAULT_MAX_LIQUIDATION_FEE_PPM,
) -> Decimal:
    """Insurance-fund delta of a liquidation fill, USD: the fee, or the fund's payment if negative.

    ``delta = quote_received - bankruptcy_quote``. If ``delta <= 0`` the insurance fund
    covers the loss and ``delta`` (<= 0) is returned. Otherwise the liquidated account pays
    ``min(delta, floor(|quote_received| * max_liquidation_fee_ppm / 1e6))`` to the fund.

    :param quote_received: Decimal USD, signed quote of the fill for the liquidated account
        (positive when it sells, negative when it buys), e.g. from :func:`fill_quote_quantums`.
    :param bankruptcy_quote: Decimal USD, :func:`bankruptcy_quote` for the same amount.
    :param max_liquidation_fee_ppm: int >= 0, genesis default 15,000 (1.5%).
    :returns: Decimal USD; > 0 fee paid to the insurance fund, <= 0 paid by the fund.
    :raises TypeError: for floats.
    :raises ValueError: for a negative fee ppm.

    Source: chain ``protocol/x/clob/keeper/liquidations.go`` (``GetLiquidationInsuranceFundDelta``).
    """
    qr = _num("quote_received", quote_received)
    bq = _num("bankruptcy_quote", bankruptcy_quote)
    ppm = _int("max_liquidation_fee_ppm", max_liquidation_fee_ppm)
    if ppm < 0:
        raise ValueError(f"max_liquidation_fee_ppm must not be negative, got {ppm}")
    delta = _sub(qr, bq)
    if delta <= 0:
        return delta
    n, d = _scaled_ratio(abs(qr), 6)
    max_fee = _qq_to_usd((n * ppm) // (d * ONE_MILLION))
    return max_fee if max_fee < delta else delta
