"""The fakes charge fees as the chain does: ``BigMulPpm(fillQuoteQuantums, feePpm, roundUp=true)``.

Source: dydxprotocol/v4-chain ``protocol/x/clob/keeper/process_single_match.go``
(``persistMatchedOrders``: "Taker fees and maker fees/rebates are rounded towards positive
infinity") and ``protocol/lib/big_math.go`` (``BigMulPpm`` -> ``BigDivCeil``, which adds one
to the truncated quotient only when the exact result is positive). Issue 9, item 1.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

import pytest

from perpbot.exchanges.paper.fees import fee_amount
from tests.fakes.matching import fee_quantums


@pytest.mark.parametrize(
    "quote, ppm, want",
    [
        (1_000_001, 500, 501),        # 500.0005 -> up
        (1_000_000, 500, 500),        # exact
        (1_000_001, -110, -110),      # rebate -110.00011 -> toward zero (was -111: toward -inf)
        (65_001_000, -110, -7150),    # rebate -7150.11 -> toward zero
        (999, -110, 0),               # rebate -0.10989 -> 0, never a rebate larger than exact
        (1_000_000, -110, -110),      # exact rebate
        (0, 500, 0),
        (1, 1, 1),                    # 1e-6 of a quantum still costs one quantum
    ],
)
def test_fee_quantums_round_toward_plus_infinity(quote, ppm, want):
    assert fee_quantums(quote, ppm) == want


@pytest.mark.parametrize("ppm", [500, 100, -110, -70, 0, 1, -1])
def test_fake_and_paper_fees_agree_with_the_chain_rounding(ppm):
    """The paper exchange (exchanges/paper/fees.py) rounds like the fakes, on whole quote quantums."""
    for quote in (1, 7, 999, 1_000_001, 65_001_000, 123_456_789):
        exact = Decimal(quote * ppm) / Decimal(1_000_000)
        assert fee_quantums(quote, ppm) == int(exact.to_integral_value(ROUND_CEILING))
        usd = Decimal(quote).scaleb(-6)
        assert fee_amount(usd, Decimal(ppm).scaleb(-6)) == Decimal(fee_quantums(quote, ppm)).scaleb(-6)
