"""Margin requirements of one position: IMF/MMF, the open-interest-scaled IMF, and :class:`PositionRisk`.

Integer functions work in quote quantums and ppm exactly as the chain does; the ``_usd``
variants and :class:`PositionRisk` take Decimal USD and fractions and round the same
way. Imports only :mod:`perpbot.core.margin._exact`, ``attrs`` and the standard library.

Sources: chain ``protocol/x/perpetuals/lib/lib.go``
(``GetMarginRequirementsInQuoteQuantums``), ``protocol/x/perpetuals/types/liquidity_tier.go``
(``GetAdjustedInitialMarginPpm``, ``GetInitialMarginQuoteQuantums``),
``protocol/lib/big_math.go`` (``BigMulPpm``).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from perpbot.core.margin._exact import (
    _EXACT,
    ONE_MILLION,
    ZERO,
    _ceil_div,
    _fraction_to_ppm,
    _int,
    _mul,
    _num,
    _qq_to_usd,
    _sub,
    _usd_to_qq_exact,
)

__all__ = [
    "adjusted_initial_margin_ppm",
    "adjusted_initial_margin_fraction",
    "initial_margin_requirement",
    "maintenance_margin_requirement",
    "initial_margin_requirement_usd",
    "maintenance_margin_requirement_usd",
    "PositionRisk",
]


def adjusted_initial_margin_ppm(
    imf_ppm: int, oi_notional_quote_quantums: int, lower_cap: int, upper_cap: int
) -> int:
    """The open-interest-scaled initial margin fraction, in integer ppm.

    - ``upper_cap == 0`` (scaling disabled) or OI notional <= ``lower_cap``: ``imf_ppm``;
    - OI notional >= ``upper_cap``: 1,000,000 (100%);
    - otherwise ``imf_ppm + floor((1e6 - imf_ppm) * (oi - lower_cap) / (upper_cap - lower_cap))``.

    Both caps are inclusive. The maintenance margin is *not* scaled.

    :param imf_ppm: int in [0, 1e6], the liquidity tier's base ``initial_margin_ppm``.
    :param oi_notional_quote_quantums: int, the market's open interest valued at the oracle
        price, quote quantums (``base_to_quote_quantums(open_interest_quantums, ...)``).
    :param lower_cap: int >= 0, ``open_interest_lower_cap``, quote quantums.
    :param upper_cap: int >= ``lower_cap`` (or 0 to disable), ``open_interest_upper_cap``,
        quote quantums. (The indexer shows the caps in USDC; multiply by 1e6.)
    :returns: int, effective IMF in ppm.
    :raises TypeError: for non-int arguments.
    :raises ValueError: for ``imf_ppm`` outside [0, 1e6], negative caps or
        ``lower_cap > upper_cap`` with a nonzero upper cap (the chain rejects such a tier).

    Source: chain ``protocol/x/perpetuals/types/liquidity_tier.go`` (``GetAdjustedInitialMarginPpm``).
    """
    imf_ppm = _int("imf_ppm", imf_ppm)
    oi = _int("oi_notional_quote_quantums", oi_notional_quote_quantums)
    lower = _int("lower_cap", lower_cap)
    upper = _int("upper_cap", upper_cap)
    if not 0 <= imf_ppm <= ONE_MILLION:
        raise ValueError(f"imf_ppm must be in [0, 1000000], got {imf_ppm}")
    if lower < 0 or upper < 0:
        raise ValueError(f"open interest caps must not be negative, got {lower} and {upper}")
    if upper == 0:
        return imf_ppm
    if lower > upper:
        raise ValueError(f"open interest lower cap {lower} is larger than upper cap {upper}")
    if oi <= lower:
        return imf_ppm
    if oi >= upper:
        return ONE_MILLION
    return imf_ppm + (ONE_MILLION - imf_ppm) * (oi - lower) // (upper - lower)


def adjusted_initial_margin_fraction(
    imf: Decimal, open_interest_notional: Decimal, lower_cap: Decimal, upper_cap: Decimal
) -> Decimal:
    """:func:`adjusted_initial_margin_ppm` with Decimal fractions and USD amounts.

    :param imf: Decimal fraction in [0, 1] with at most 6 decimals (whole ppm), base IMF.
    :param open_interest_notional: Decimal USD, open interest * oracle price; truncated to
        whole quote quantums as the chain does.
    :param lower_cap: Decimal USD (``openInterestLowerCap`` from the indexer), whole quote quantums.
    :param upper_cap: Decimal USD (``openInterestUpperCap``), 0 disables scaling.
    :returns: Decimal fraction, the effective IMF (ppm floored as on chain).
    :raises TypeError: for floats.
    :raises ValueError: for an IMF that is not whole ppm, caps with sub-quantum digits, or
        inconsistent caps.

    Example: SOL-USD (IMF 0.1, caps 20M/50M USDC) at 35M USDC OI -> 0.55.
    Source: chain ``protocol/x/perpetuals/types/liquidity_tier.go``.
    """
    imf_ppm = _fraction_to_ppm("imf", _num("imf", imf))
    oi_qq = int(_num("open_interest_notional", open_interest_notional).scaleb(6, _EXACT))
    lower = _usd_to_qq_exact("lower_cap", _num("lower_cap", lower_cap))
    upper = _usd_to_qq_exact("upper_cap", _num("upper_cap", upper_cap))
    ppm = adjusted_initial_margin_ppm(imf_ppm, oi_qq, lower, upper)
    return Decimal(ppm).scaleb(-6, _EXACT)


def initial_margin_requirement(
    notional_quote_quantums: int,
    initial_margin_ppm: int,
    *,
    open_interest_notional_quote_quantums: int = 0,
    open_interest_lower_cap: int = 0,
    open_interest_upper_cap: int = 0,
    custom_imf_ppm: int = 0,
) -> int:
    """Initial margin requirement of one position: ``ceil(|notional| * IMF_eff)``, quote quantums.

    ``IMF_eff`` is :func:`adjusted_initial_margin_ppm` of the base IMF and the market's OI
    (no scaling with the default caps), raised to ``custom_imf_ppm`` when that is larger
    (per-subaccount leverage setting; 0 = none).

    :param notional_quote_quantums: int, the position's value in quote quantums as
        :func:`base_to_quote_quantums` gives it (sign ignored: ``|truncate(x)| == truncate(|x|)``).
    :param initial_margin_ppm: int in [0, 1e6], the liquidity tier's base IMF in ppm.
    :param open_interest_notional_quote_quantums: int, market OI valued at the oracle price.
    :param open_interest_lower_cap: int, quote quantums.
    :param open_interest_upper_cap: int, quote quantums; 0 disables OI scaling.
    :param custom_imf_ppm: int >= 0, per-subaccount IMF floor (chain #3141); 0 = none.
    :returns: int >= 0, quote quantums, rounded up.
    :raises TypeError: for non-int arguments.
    :raises ValueError: as :func:`adjusted_initial_margin_ppm`.

    Source: chain ``protocol/x/perpetuals/lib/lib.go`` (``GetMarginRequirementsInQuoteQuantums``),
    ``protocol/x/perpetuals/types/liquidity_tier.go`` (``GetInitialMarginQuoteQuantums``).
    """
    n = abs(_int("notional_quote_quantums", notional_quote_quantums))
    ppm = adjusted_initial_margin_ppm(
        initial_margin_ppm,
        open_interest_notional_quote_quantums,
        open_interest_lower_cap,
        open_interest_upper_cap,
    )
    custom = _int("custom_imf_ppm", custom_imf_ppm)
    if custom > ppm:
        ppm = custom
    return _ceil_div(n * ppm, ONE_MILLION)


def maintenance_margin_requirement(
    notional_quote_quantums: int, initial_margin_ppm: int, maintenance_fraction_ppm: int
) -> int:
    """Maintenance margin requirement of one position, quote quantums, rounded up twice.

    ``MMR = ceil(ceil(|notional| * IMF_base) * maintenance_fraction)``: the base-IMF
    requirement (never OI-scaled) is rounded up first, then scaled by the tier's
    maintenance fraction and rounded up again. This can exceed
    ``ceil(|notional| * IMF_base * maintenance_fraction)`` by one quote quantum.

    :param notional_quote_quantums: int, the position's value in quote quantums (sign ignored).
    :param initial_margin_ppm: int in [0, 1e6], the liquidity tier's base ``initial_margin_ppm``.
    :param maintenance_fraction_ppm: int in [0, 1e6], the tier's ``maintenance_fraction_ppm``
        (the indexer's ``maintenanceMarginFraction`` is IMF * this fraction).
    :returns: int >= 0, quote quantums.
    :raises TypeError: for non-int arguments.
    :raises ValueError: for ppm values outside [0, 1e6].

    Source: chain ``protocol/x/perpetuals/lib/lib.go`` (``GetMarginRequirementsInQuoteQuantums``)
    and ``protocol/lib/big_math.go`` (``BigMulPpm`` with round-up).
    """
    n = abs(_int("notional_quote_quantums", notional_quote_quantums))
    imf_ppm = _int("initial_margin_ppm", initial_margin_ppm)
    mf_ppm = _int("maintenance_fraction_ppm", maintenance_fraction_ppm)
    if not 0 <= imf_ppm <= ONE_MILLION or not 0 <= mf_ppm <= ONE_MILLION:
        raise ValueError(f"ppm values must be in [0, 1000000], got {imf_ppm} and {mf_ppm}")
    base_imr = _ceil_div(n * imf_ppm, ONE_MILLION)
    return _ceil_div(base_imr * mf_ppm, ONE_MILLION)


_IMF_MMF_CACHE: dict[tuple[Decimal, Decimal], tuple[int, int, int]] = {}


def _check_imf_mmf(imf: Decimal, mmf: Decimal) -> tuple[int, int, int]:
    """Validate IMF/MMF fractions; return (imf_ppm, mm_num, mm_den) with MF = mm_num/mm_den.

    Markets share a handful of (IMF, MMF) pairs, so results are memoized (bounded).
    """
    key = (imf, mmf)
    hit = _IMF_MMF_CACHE.get(key)
    if hit is not None:
        return hit
    result = _check_imf_mmf_uncached(imf, mmf)
    if len(_IMF_MMF_CACHE) >= 1024:
        _IMF_MMF_CACHE.clear()
    _IMF_MMF_CACHE[key] = result
    return result


def _check_imf_mmf_uncached(imf: Decimal, mmf: Decimal) -> tuple[int, int, int]:
    imf_ppm = _fraction_to_ppm("imf", imf)
    if not 0 <= imf_ppm <= ONE_MILLION:
        raise ValueError(f"imf must be in [0, 1], got {imf}")
    if mmf < 0 or mmf > imf:
        raise ValueError(f"mmf must be in [0, imf] = [0, {imf}], got {mmf}")
    if imf_ppm == 0:
        return 0, 0, 1
    a, b = mmf.as_integer_ratio()
    # maintenance fraction = mmf / imf = a / b / (imf_ppm / 1e6)
    return imf_ppm, a * ONE_MILLION, b * imf_ppm


def initial_margin_requirement_usd(
    size: Decimal,
    oracle_price: Decimal,
    imf: Decimal,
    *,
    open_interest: Decimal = ZERO,
    open_interest_lower_cap: Decimal = ZERO,
    open_interest_upper_cap: Decimal = ZERO,
) -> Decimal:
    """Initial margin requirement of one position in USD, with the chain's rounding.

    The notional ``|size| * oracle_price`` is truncated to whole quote quantums, the IMF is
    OI-scaled when an upper cap is given, and the product is rounded up to a quote quantum.

    :param size: Decimal, signed base units.
    :param oracle_price: Decimal > 0, USD per base unit.
    :param imf: Decimal fraction in [0, 1], whole ppm (e.g. 0.05 for BTC-USD in 2024).
    :param open_interest: Decimal >= 0, market open interest in base units (for OI scaling).
    :param open_interest_lower_cap: Decimal USD.
    :param open_interest_upper_cap: Decimal USD; 0 disables OI scaling.
    :returns: Decimal USD, a whole number of quote quantums.
    :raises TypeError: for floats.
    :raises ValueError: for out-of-range fractions or prices.

    Source: chain ``protocol/x/perpetuals/lib/lib.go``.
    """
    p = PositionRisk(
        size=size,
        oracle_price=oracle_price,
        imf=imf,
        mmf=ZERO,
        open_interest=open_interest,
        open_interest_lower_cap=open_interest_lower_cap,
        open_interest_upper_cap=open_interest_upper_cap,
    )
    return p.initial_margin


def maintenance_margin_requirement_usd(size: Decimal, oracle_price: Decimal, imf: Decimal, mmf: Decimal) -> Decimal:
    """Maintenance margin requirement of one position in USD, rounded up twice as on chain.

    ``ceil(ceil(notional * imf) * (mmf / imf))`` in quote quantums, where ``notional`` is
    ``|size| * oracle_price`` truncated to quote quantums and ``mmf / imf`` is the tier's
    maintenance fraction (0.6 for BTC-USD's 0.05/0.03).

    :param size: Decimal, signed base units.
    :param oracle_price: Decimal > 0, USD per base unit.
    :param imf: Decimal fraction in [0, 1], whole ppm: the *base* IMF (never OI-scaled here).
    :param mmf: Decimal fraction in [0, imf], the maintenance margin fraction as the indexer
        reports it (``maintenanceMarginFraction`` = IMF * maintenance fraction).
    :returns: Decimal USD, a whole number of quote quantums.
    :raises TypeError: for floats.
    :raises ValueError: for out-of-range fractions or prices.

    Source: chain ``protocol/x/perpetuals/lib/lib.go`` (``GetMarginRequirementsInQuoteQuantums``).
    """
    return PositionRisk(size=size, oracle_price=oracle_price, imf=imf, mmf=mmf).maintenance_margin


def _conv(name: str):
    def convert(value: Any) -> Decimal:
        if type(value) is Decimal and value.is_finite():
            return value
        return _num(name, value)

    convert.__name__ = f"to_decimal_{name}"
    return convert


@attrs.frozen
class PositionRisk:
    """One perpetual position marked to its oracle price, with its chain margin figures.

    The per-position numbers (notional, IMR, MMR in quote quantums) are computed once
    when the value is built, so account totals and liquidation prices over many
    positions are plain sums. Build a new value (``attrs.evolve`` or :meth:`with_price`)
    when the oracle price or size changes.

    :param size: Decimal, signed base units (long > 0, short < 0; 0 = flat).
    :param oracle_price: Decimal > 0, USD per base unit.
    :param imf: Decimal fraction in [0, 1], whole ppm: the base initial margin fraction
        (indexer ``initialMarginFraction``).
    :param mmf: Decimal fraction in [0, imf]: the maintenance margin fraction (indexer
        ``maintenanceMarginFraction``, already IMF * maintenance fraction).
    :param open_interest: Decimal >= 0, the market's open interest in base units; only
        used when ``open_interest_upper_cap`` > 0.
    :param open_interest_lower_cap: Decimal USD, whole quote quantums.
    :param open_interest_upper_cap: Decimal USD, whole quote quantums; 0 disables OI scaling.
    :param ticker: optional market name, e.g. ``"BTC-USD"``; informational.
    :raises TypeError: for float fields.
    :raises ValueError: for a non-positive price, fractions out of range or not whole ppm,
        negative OI or caps, or ``lower > upper``.

    Derived figures (read-only properties): ``notional`` (USD), ``notional_quote_quantums``,
    ``effective_imf`` / ``effective_imf_ppm``, ``initial_margin`` / ``maintenance_margin``
    (USD) and their ``_quote_quantums`` forms. The private tuple ``_k`` holds them for the
    sibling modules' hot loops (package-internal).

    Sources: chain ``protocol/x/perpetuals/lib/lib.go``, ``protocol/x/perpetuals/types/liquidity_tier.go``.
    """

    size: Decimal = attrs.field(converter=_conv("size"))
    oracle_price: Decimal = attrs.field(converter=_conv("oracle_price"))
    imf: Decimal = attrs.field(converter=_conv("imf"))
    mmf: Decimal = attrs.field(converter=_conv("mmf"))
    open_interest: Decimal = attrs.field(default=ZERO, converter=_conv("open_interest"))
    open_interest_lower_cap: Decimal = attrs.field(default=ZERO, converter=_conv("open_interest_lower_cap"))
    open_interest_upper_cap: Decimal = attrs.field(default=ZERO, converter=_conv("open_interest_upper_cap"))
    ticker: str = ""

    # Derived figures, computed once in __attrs_post_init__ (not part of equality or repr).
    # One tuple, so the account loops do a single attribute lookup per position:
    # (net notional qq, IMR qq, MMR qq, |notional| qq, s*P - MMR USD, |s|*MMF - s,
    #  s*P USD exact, effective IMF ppm)
    _k: tuple = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        size, price, imf, mmf = self.size, self.oracle_price, self.imf, self.mmf
        if price <= 0:
            raise ValueError(f"oracle_price must be > 0, got {price}")
        imf_ppm, mm_num, mm_den = _check_imf_mmf(imf, mmf)
        upper = self.open_interest_upper_cap
        eff = imf_ppm
        if upper:
            oi = self.open_interest
            if oi < 0:
                raise ValueError(f"open_interest must not be negative, got {oi}")
            lo_qq = _usd_to_qq_exact("open_interest_lower_cap", self.open_interest_lower_cap)
            hi_qq = _usd_to_qq_exact("open_interest_upper_cap", upper)
            oi_qq = int(_mul(oi, price).scaleb(6, _EXACT))
            eff = adjusted_initial_margin_ppm(imf_ppm, oi_qq, lo_qq, hi_qq)
        notional = _mul(size, price)
        nnv = int(notional.scaleb(6, _EXACT))  # int() truncates toward zero, like Go Quo
        absn = abs(nnv)
        imr = -(-absn * eff // ONE_MILLION)
        base_imr = -(-absn * imf_ppm // ONE_MILLION)
        mmr = -(-base_imr * mm_num // mm_den)
        object.__setattr__(
            self,
            "_k",
            (
                nnv,
                imr,
                mmr,
                absn,
                _sub(notional, _qq_to_usd(mmr)),
                _sub(_mul(abs(size), mmf), size),
                notional,
                eff,
            ),
        )

    # -- named constructors -------------------------------------------------

    @classmethod
    def from_market(cls, market: Any, size: Decimal, oracle_price: Decimal | None = None) -> PositionRisk:
        """Build from any object with the ``perpbot.core.model.Market`` attribute names.

        Reads ``initial_margin_fraction``, ``maintenance_margin_fraction``, ``oracle_price``
        (unless given), ``open_interest``, ``open_interest_lower_cap``,
        ``open_interest_upper_cap`` and ``ticker``.

        :param market: a market object (duck-typed; this module imports no model).
        :param size: Decimal, signed base units.
        :param oracle_price: Decimal USD, overrides ``market.oracle_price``.
        :returns: :class:`PositionRisk`.
        :raises ValueError: when no oracle price is known, or as the constructor.
        :raises TypeError: for float fields, as the constructor.

        Source of the field meanings: indexer ``/v4/perpetualMarkets`` (see :meth:`from_indexer`).
        """
        price = oracle_price if oracle_price is not None else getattr(market, "oracle_price", None)
        if price is None:
            raise ValueError(f"market {getattr(market, 'ticker', '?')}: no oracle price")
        return cls(
            size=size,
            oracle_price=price,
            imf=market.initial_margin_fraction,
            mmf=market.maintenance_margin_fraction,
            open_interest=getattr(market, "open_interest", ZERO) or ZERO,
            open_interest_lower_cap=getattr(market, "open_interest_lower_cap", ZERO) or ZERO,
            open_interest_upper_cap=getattr(market, "open_interest_upper_cap", ZERO) or ZERO,
            ticker=str(getattr(market, "ticker", "")),
        )

    @classmethod
    def from_indexer(cls, payload: Mapping[str, Any], size: Decimal) -> PositionRisk:
        """Build from one entry of the indexer's ``/v4/perpetualMarkets`` ``markets`` map.

        :param payload: mapping with string fields ``oraclePrice``, ``initialMarginFraction``,
            ``maintenanceMarginFraction`` and optionally ``openInterest``,
            ``openInterestLowerCap``, ``openInterestUpperCap`` (USDC), ``ticker``.
        :param size: Decimal, signed base units.
        :returns: :class:`PositionRisk`.
        :raises ValueError: when a required field is missing, naming it, or as the constructor.

        Source: indexer ``indexer/services/comlink/public/swagger.json`` (``PerpetualMarketResponseObject``).
        """
        try:
            return cls(
                size=size,
                oracle_price=str(payload["oraclePrice"]),
                imf=str(payload["initialMarginFraction"]),
                mmf=str(payload["maintenanceMarginFraction"]),
                open_interest=str(payload.get("openInterest") or "0"),
                open_interest_lower_cap=str(payload.get("openInterestLowerCap") or "0"),
                open_interest_upper_cap=str(payload.get("openInterestUpperCap") or "0"),
                ticker=str(payload.get("ticker", "")),
            )
        except KeyError as exc:
            raise ValueError(f"market {payload.get('ticker', '?')}: missing field {exc.args[0]!r}") from None

    def with_price(self, oracle_price: Decimal) -> PositionRisk:
        """This position marked to another oracle price (USD); like ``attrs.evolve``, faster.

        :param oracle_price: Decimal > 0, USD per base unit.
        :returns: a new :class:`PositionRisk`.
        :raises TypeError: / ValueError: as the constructor.
        """
        return PositionRisk(
            self.size,
            oracle_price,
            self.imf,
            self.mmf,
            self.open_interest,
            self.open_interest_lower_cap,
            self.open_interest_upper_cap,
            self.ticker,
        )

    def with_size(self, size: Decimal) -> PositionRisk:
        """The same market with another signed size (base units); like ``attrs.evolve``, faster.

        :param size: Decimal, signed base units.
        :returns: a new :class:`PositionRisk`.
        :raises TypeError: / ValueError: as the constructor.
        """
        return PositionRisk(
            size,
            self.oracle_price,
            self.imf,
            self.mmf,
            self.open_interest,
            self.open_interest_lower_cap,
            self.open_interest_upper_cap,
            self.ticker,
        )

    # -- derived figures ----------------------------------------------------

    @property
    def notional(self) -> Decimal:
        """Signed value ``size * oracle_price``, USD, exact."""
        return self._k[6]

    @property
    def notional_quote_quantums(self) -> int:
        """Signed value in quote quantums, truncated toward zero (chain net notional)."""
        return self._k[0]

    @property
    def effective_imf_ppm(self) -> int:
        """OI-scaled initial margin fraction, ppm."""
        return self._k[7]

    @property
    def effective_imf(self) -> Decimal:
        """OI-scaled initial margin fraction, Decimal fraction."""
        return Decimal(self._k[7]).scaleb(-6, _EXACT)

    @property
    def initial_margin_quote_quantums(self) -> int:
        """Initial margin requirement, quote quantums (``ceil(notional * IMF_eff)``)."""
        return self._k[1]

    @property
    def maintenance_margin_quote_quantums(self) -> int:
        """Maintenance margin requirement, quote quantums (rounded up twice)."""
        return self._k[2]

    @property
    def initial_margin(self) -> Decimal:
        """Initial margin requirement, USD."""
        return _qq_to_usd(self._k[1])

    @property
    def maintenance_margin(self) -> Decimal:
        """Maintenance margin requirement, USD."""
        return _qq_to_usd(self._k[2])
