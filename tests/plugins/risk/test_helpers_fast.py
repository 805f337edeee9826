"""``shrinks_exposure`` (plugins/risk/helpers.py), computed without building a ``PostTrade``,
agrees with ``post_trade(...).shrinks`` on every sign, size and reduce-only combination."""

from __future__ import annotations

import itertools
from decimal import Decimal as D

from perpbot.core.model import Balance, OrderRequest, Position, Side
from perpbot.core.policies import RiskView
from perpbot.plugins.risk.helpers import post_trade, shrinks_exposure


def test_shrinks_exposure_agrees_with_post_trade():
    sizes = [D("0"), D("0.5"), D("-0.5"), D("1"), D("-1"), D("0.25"), D("-2"), D("0.50")]
    bal = Balance(collateral=D(1), equity=D(1), free_collateral=D(1))
    checked = 0
    for pos, qty, side, reduce_only, held in itertools.product(
        sizes, (D("0.25"), D("0.5"), D("1"), D("1.5"), D("0.50")), (Side.BUY, Side.SELL), (False, True), (True, False)
    ):
        positions = {"BTC-USD": Position("BTC-USD", pos, D(100))} if held else {}
        view = RiskView(now_ns=0, balance=bal, positions=positions, marks={}, markets={})
        order = OrderRequest(client_id=1, ticker="BTC-USD", side=side, size=qty, reduce_only=reduce_only)
        want = reduce_only or post_trade(order, view, "BTC-USD").shrinks
        assert shrinks_exposure(order, view, "BTC-USD") is want, (pos, qty, side, reduce_only, held)
        checked += want
    assert 0 < checked < 640  # both answers occur
