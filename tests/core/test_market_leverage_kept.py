"""A market's maximum leverage (``1 / IMF``) and the IMF it stands for are kept per frozen
``Market`` object (``core/balance.py``, ``market_max_leverage`` and ``market_imf``; issue 11's
sizing path reads them on every order): the kept answer is the one a fresh computation in
the default context gives, a new Market object (a new oracle price or open interest moves
the OI-scaled IMF) is computed afresh, and the caller's decimal context changes nothing."""

from __future__ import annotations

import decimal
from decimal import Decimal as D

import attrs
import pytest

from perpbot.core import balance as B
from perpbot.core import margin
from perpbot.core.errors import DataError
from perpbot.core.model import Market

SOL = Market("SOL-USD", 5, tick_size="0.01", step_size="0.1", initial_margin_fraction="0.1",
             maintenance_margin_fraction="0.05", open_interest_lower_cap="20000000",
             open_interest_upper_cap="50000000", oracle_price="140", open_interest="100000")
ODD = Market("ODD-USD", 9, tick_size="0.01", step_size="0.1", initial_margin_fraction="0.03")


def fresh(market: Market) -> tuple[D, D]:
    """The leverage and IMF written out in the default context (chain
    ``protocol/x/perpetuals/types/liquidity_tier.go`` scaling through perpbot.core.margin)."""
    with decimal.localcontext(decimal.Context()):
        imf = market.initial_margin_fraction
        if market.open_interest_upper_cap > 0 and market.oracle_price:
            imf = margin.adjusted_initial_margin_fraction(imf, market.open_interest * market.oracle_price,
                                                          market.open_interest_lower_cap, market.open_interest_upper_cap)
        lev = D(1) / imf
        return lev, D(1) / lev


@pytest.mark.parametrize("market", [SOL, ODD], ids=["oi-scaled", "1/0.03"])
def test_kept_answers_are_the_fresh_ones(market):
    B._LEVERAGE.clear()
    lev, imf = fresh(market)
    for _ in range(2):  # computed, then kept
        assert B.market_max_leverage(market) == lev and str(B.market_max_leverage(market)) == str(lev)
        assert B.market_imf(market) == imf and str(B.market_imf(market)) == str(imf)
    assert B.market_max_leverage(market) is B.market_max_leverage(market)


def test_a_new_market_object_is_computed_afresh():
    B._LEVERAGE.clear()
    before = B.market_max_leverage(SOL)
    busier = attrs.evolve(SOL, open_interest="300000")  # 42M USD of OI: the IMF scales up
    after = B.market_max_leverage(busier)
    assert after == fresh(busier)[0] and after < before
    assert B.market_imf(busier) == fresh(busier)[1]
    assert B.market_max_leverage(SOL) == before


def test_the_callers_context_changes_nothing():
    B._LEVERAGE.clear()
    want = fresh(ODD)
    with decimal.localcontext(decimal.Context(prec=6, rounding=decimal.ROUND_FLOOR)):
        got = B.market_max_leverage(ODD), B.market_imf(ODD)
    assert got == want and len(str(got[0]).replace(".", "")) > 6


def test_bad_parameters_raise_every_time_and_are_not_kept():
    B._LEVERAGE.clear()
    bad = attrs.evolve(SOL, initial_margin_fraction="0.0500001")  # not whole ppm
    for _ in range(2):
        with pytest.raises(DataError, match="maximum leverage of SOL-USD unknown"):
            B.market_max_leverage(bad)
    assert id(bad) not in B._LEVERAGE


def test_the_kept_table_is_bounded(monkeypatch):
    B._LEVERAGE.clear()
    monkeypatch.setattr(B, "_LEVERAGE_KEPT", 3)
    markets = [attrs.evolve(ODD, clob_pair_id=i) for i in range(7)]
    for mk in markets:
        assert B.market_max_leverage(mk) == fresh(mk)[0]
    assert len(B._LEVERAGE) <= 3
