"""Exact dYdX v4 margin, liquidation and funding math.

This is the one package to import margin math from: every public name below is
importable from ``perpbot.core.margin``. Everything here is pure
(no I/O, no clock; the only module state is a small memo of validated IMF/MMF
pairs) and exact: amounts are :class:`decimal.Decimal` (USD / USDC, prices,
sizes, fractions) or Python ``int`` (chain integers: base quantums, quote
quantums, subticks, ppm). Where a Decimal is expected, an ``int`` or a numeric
``str`` is also taken as exact. A ``float`` passed where a number is expected
raises :class:`TypeError` naming the argument: ``0.0003`` as a float is not
0.0003 BTC, and the dYdX 1.1.5 client's float conversion really does turn it
into 2,000,000 quantums instead of 3,000,000.

Speed: a :class:`PositionRisk` computes its chain-rounded notional, IMR and MMR
once, when it is built, so account totals and the liquidation prices of a
50-position account are plain sums plus one division per position (about
30 us in CPython 3.11; ``bench/bench_margin.py``). Re-marking a position to a
new oracle price builds a new value (a few microseconds each).

Units used in every docstring:

- *USD*: USDC amounts and prices, :class:`~decimal.Decimal`.
- *base units*: position or order size in the market's coin (BTC for BTC-USD),
  signed where the name says so (long > 0, short < 0).
- *base quantums*: ``size * 10^-atomic_resolution``, ``int``.
- *quote quantums* (qq): 1e-6 USDC, ``int``.
- *subticks*: chain price units, ``price * 10^(atomic_resolution -
  quantum_conversion_exponent + 6)``, ``int``.
- *ppm*: parts per million, ``int`` (50_000 ppm = 5%).
- *fractions*: IMF, MMF and rates as plain Decimal fractions (0.05 = 5%).
- funding rates are per hour (``rate_1h``) unless the name says ``8h``.

Rounding follows the chain exactly; three rules appear and each is named where
it is used: truncation toward zero (``BaseToQuoteQuantums``), floor toward
-infinity (Go ``big.Int.Div`` with a positive divisor) and ceiling (margin
requirements). Decimal results that are true quotients (liquidation prices,
leverage) are computed with this package's own context (28 significant digits,
half-even), so a caller's :func:`decimal.getcontext` never changes a result.

Layout
------
One module per concern; each imports only the standard library, ``attrs`` and the
modules listed before it (never the rest of perpbot: no model, no plugin, no exchange;
markets are duck-typed):

- ``_exact``: private Decimal contexts, argument checks (floats rejected by name) and
  exact rounding helpers. Not public API.
- ``quantums``: sizes <-> base quantums, prices <-> subticks, values in quote quantums.
- ``requirements``: IMF/MMF, the open-interest-scaled IMF, initial and maintenance margin
  of one position, and :class:`PositionRisk` (imports ``_exact``).
- ``account``: account risk, equity, free collateral, leverage and the order's initial
  margin check (imports ``_exact``, ``requirements``).
- ``liquidation``: liquidation prices, the liquidation fill price, bankruptcy price and
  fee (imports ``_exact``, ``requirements``).
- ``funding``: funding payments, index deltas and settlement (imports ``_exact``,
  ``quantums``).
- ``funding_premium``: premium votes from a book and the index price, impact prices,
  ``QuoteToBaseQuantums`` (imports ``_exact``).
- ``funding_rate``: samples, the hourly zero-padded average, the liquidity tier's clamp, the
  predicted rate and the indexer's ``nextFundingRate`` (imports ``_exact``, ``funding_premium``).

Functions
---------
Conversions, ``quantums`` (chain ``protocol/x/clob/types/quantums.go``, ``protocol/lib/quantums.go``):
    ``size_to_quantums(size, atomic_resolution, rounding=EXACT, step_base_quantums=1)``
    ``quantums_to_size(quantums, atomic_resolution)``
    ``price_to_subticks(price, atomic_resolution, quantum_conversion_exponent, rounding=EXACT, subticks_per_tick=1)``
    ``subticks_to_price(subticks, atomic_resolution, quantum_conversion_exponent)``
    ``base_to_quote_quantums(base_quantums, atomic_resolution, price_value, price_exponent)``
    ``base_to_quote_quantums_at_price(base_quantums, atomic_resolution, oracle_price)``
    ``notional_quote_quantums(size, oracle_price)``
    ``fill_quote_quantums(subticks, quantums, quantum_conversion_exponent)``

Margin requirements of one position, ``requirements`` (chain ``protocol/x/perpetuals/lib/lib.go``,
``protocol/x/perpetuals/types/liquidity_tier.go``):
    ``adjusted_initial_margin_ppm(imf_ppm, oi_notional_quote_quantums, lower_cap, upper_cap)``
    ``adjusted_initial_margin_fraction(imf, open_interest_notional, lower_cap, upper_cap)``
    ``initial_margin_requirement(notional_quote_quantums, initial_margin_ppm, ...)``
    ``maintenance_margin_requirement(notional_quote_quantums, initial_margin_ppm, maintenance_fraction_ppm)``
    ``initial_margin_requirement_usd(size, oracle_price, imf, ...)``
    ``maintenance_margin_requirement_usd(size, oracle_price, imf, mmf)``
    ``PositionRisk`` (frozen value: one position marked to its oracle price)

Accounts, ``account`` (chain ``protocol/lib/margin/risk.go``, ``protocol/x/subaccounts/lib/updates.go``;
frontend metrics from v4-abacus ``SubaccountCalculator.kt``):
    ``AccountRisk``, ``account_risk(usdc_balance, positions)``
    ``equity``, ``total_initial_margin``, ``total_maintenance_margin``, ``free_collateral``,
    ``margin_usage``, ``account_leverage``, ``position_leverage``, ``buying_power``,
    ``is_initially_collateralized``, ``is_liquidatable``
    ``OrderMarginCheck``, ``check_order_initial_margin(usdc_balance, positions, position, order_size, fill_price, fee=0)``

Liquidation, ``liquidation`` (docs ``concepts/trading/liquidations.mdx``; chain
``protocol/x/clob/keeper/liquidations.go``):
    ``liquidation_price(equity, size, oracle_price, mmf, maintenance_other=0)``
    ``isolated_liquidation_price(child_equity, size, oracle_price, mmf)``
    ``liquidation_prices(usdc_balance, positions)``
    ``liquidation_fill_price(position, total_net_collateral, total_maintenance_margin, ...)``
    ``liquidation_fill_subticks(position, total_net_collateral, total_maintenance_margin, atomic_resolution, quantum_conversion_exponent, subticks_per_tick, ...)``
    ``bankruptcy_quote(position, delta_size, total_net_collateral, total_maintenance_margin)``
    ``bankruptcy_price(position, delta_size, total_net_collateral, total_maintenance_margin)``
    ``liquidation_fee(quote_received, bankruptcy_quote, max_liquidation_fee_ppm=15000)``

Funding, ``funding`` (chain ``protocol/x/perpetuals/funding/funding.go``,
``protocol/x/perpetuals/lib/lib.go``, ``protocol/x/subaccounts/lib/updates.go``):
    ``funding_payment(size, oracle_price, rate_1h)``
    ``funding_rate_1h_from_8h(rate_8h)``
    ``funding_index_delta(funding_rate_8h_ppm, seconds, atomic_resolution, price_value, price_exponent)``
    ``settle_funding_quote_quantums(positions)``
    ``funding_index_delta_at_price(rate_8h_ppm, seconds, atomic_resolution, oracle_price)``
    ``settle_funding_ppm(quantums, funding_index_delta)``

Funding prediction, ``funding_premium`` and ``funding_rate`` (chain ``protocol/x/clob/memclob/memclob.go``,
``protocol/x/perpetuals/keeper/perpetual.go``, ``protocol/x/perpetuals/types/liquidity_tier.go``,
``protocol/lib/quantums.go``; indexer ``packages/redis/src/caches/next-funding-cache.ts``):
    ``quote_to_base_quantums(quote_quantums, atomic_resolution, price_value, price_exponent)``
    ``index_price_subticks``, ``impact_price_subticks``, ``premium_ppm_from_impact``, ``premium_vote_ppm``
    ``maintenance_margin_ppm(initial_margin_ppm, maintenance_fraction_ppm)`` (floored)
    ``max_abs_funding_clamp_ppm(clamp_factor_ppm, initial_margin_ppm, maintenance_fraction_ppm)``
    ``funding_clamp_ppm_from_fractions(imf, mmf, clamp_factor_ppm)``
    ``median_ppm``, ``premium_sample_ppm``, ``average_premium_ppm``, ``clamp_funding_rate_ppm``
    ``FundingPrediction``, ``predict_funding_rate(samples, default_funding_ppm, imf_ppm, fraction_ppm, ...)``
    ``funding_rate_1h_from_ppm``, ``funding_ppm_8h_from_rate_1h``, ``indexer_next_funding_rate``
    ``project_next_funding_rate(next_funding_rate, default_rate_1h, imf, mmf)`` (the indexer's running
    prediction -> the chain's rate: truncated, plus default, clamped)

Example::

    >>> from decimal import Decimal as D
    >>> size_to_quantums(D("0.0003"), -10)          # BTC-USD: exactly 3,000,000 quantums
    3000000
    >>> eth = PositionRisk(size=D("1"), oracle_price=D("3000"), imf=D("0.05"), mmf=D("0.03"))
    >>> acct = account_risk(D("-2000"), [eth])       # deposited 1000, bought 1 ETH at 3000
    >>> acct.equity, acct.initial_margin, acct.maintenance_margin
    (Decimal('1000.000000'), Decimal('150.000000'), Decimal('90.000000'))
    >>> round(liquidation_prices(D("-2000"), [eth])[0], 2)
    Decimal('2061.86')
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_UP

from perpbot.core.margin._exact import EXACT, ONE_MILLION
from perpbot.core.margin.account import (
    AccountRisk,
    OrderMarginCheck,
    account_leverage,
    account_risk,
    buying_power,
    check_order_initial_margin,
    equity,
    free_collateral,
    is_initially_collateralized,
    is_liquidatable,
    margin_usage,
    position_leverage,
    total_initial_margin,
    total_maintenance_margin,
)
from perpbot.core.margin.funding import (
    funding_index_delta,
    funding_index_delta_at_price,
    funding_payment,
    funding_rate_1h_from_8h,
    settle_funding_ppm,
    settle_funding_quote_quantums,
)
from perpbot.core.margin.funding_premium import (
    INT32_MAX,
    impact_price_subticks,
    index_price_subticks,
    premium_ppm_from_impact,
    premium_vote_ppm,
    quote_to_base_quantums,
)
from perpbot.core.margin.funding_rate import (
    DEFAULT_FUNDING_RATE_CLAMP_FACTOR_PPM,
    DEFAULT_MIN_NUM_VOTES_PER_SAMPLE,
    DEFAULT_PREMIUM_VOTE_CLAMP_FACTOR_PPM,
    SAMPLES_PER_TICK,
    FundingPrediction,
    average_premium_ppm,
    clamp_funding_rate_ppm,
    funding_clamp_ppm_from_fractions,
    funding_ppm_8h_from_rate_1h,
    funding_rate_1h_from_ppm,
    indexer_next_funding_rate,
    maintenance_margin_ppm,
    max_abs_funding_clamp_ppm,
    median_ppm,
    predict_funding_rate,
    premium_sample_ppm,
    project_next_funding_rate,
)
from perpbot.core.margin.liquidation import (
    DEFAULT_BANKRUPTCY_ADJUSTMENT,
    DEFAULT_MAX_LIQUIDATION_FEE_PPM,
    DEFAULT_SPREAD_TO_MAINTENANCE_MARGIN_RATIO,
    bankruptcy_price,
    bankruptcy_quote,
    isolated_liquidation_price,
    liquidation_fee,
    liquidation_fill_price,
    liquidation_fill_subticks,
    liquidation_price,
    liquidation_prices,
)
from perpbot.core.margin.quantums import (
    base_to_quote_quantums,
    base_to_quote_quantums_at_price,
    fill_quote_quantums,
    notional_quote_quantums,
    price_to_subticks,
    quantums_to_size,
    size_to_quantums,
    subticks_to_price,
)
from perpbot.core.margin.requirements import (
    PositionRisk,
    adjusted_initial_margin_fraction,
    adjusted_initial_margin_ppm,
    initial_margin_requirement,
    initial_margin_requirement_usd,
    maintenance_margin_requirement,
    maintenance_margin_requirement_usd,
)

from perpbot.core.margin import account as _account
from perpbot.core.margin import funding as _funding
from perpbot.core.margin import funding_premium as _funding_premium
from perpbot.core.margin import funding_rate as _funding_rate
from perpbot.core.margin import liquidation as _liquidation
from perpbot.core.margin import quantums as _quantums
from perpbot.core.margin import requirements as _requirements

# the package's public names: each module's own __all__, plus the shared constants
__all__ = [
    "EXACT", "ONE_MILLION", "ROUND_CEILING", "ROUND_DOWN", "ROUND_FLOOR", "ROUND_UP",
    *_quantums.__all__, *_requirements.__all__, *_account.__all__, *_liquidation.__all__, *_funding.__all__,
    *_funding_premium.__all__, *_funding_rate.__all__,
]
