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
        # the rule in other words, written apart from the helpers (which share one _shrinks)
        before = pos if held else D(0)
        after = before + (qty if side is Side.BUY else -qty)
        assert want is (reduce_only or (before != 0 and (after == 0 or (after * before > 0 and abs(after) <= abs(before))))), (
            pos, qty, side, reduce_only, held)
        checked += want
    assert 0 < checked < 640  # both answers occur


def test_position_change_agrees_with_post_trade_and_shrinks_exposure():
    from perpbot.plugins.risk.helpers import position_change

    sizes = [D("0"), D("0.5"), D("-0.5"), D("1"), D("-1"), D("-2"), D("0.50")]
    bal = Balance(collateral=D(1), equity=D(1), free_collateral=D(1))
    for pos, qty, side, reduce_only, held in itertools.product(
        sizes, (D("0.25"), D("0.5"), D("1.5"), D("0.50")), (Side.BUY, Side.SELL), (False, True), (True, False)
    ):
        positions = {"BTC-USD": Position("BTC-USD", pos, D(100))} if held else {}
        view = RiskView(now_ns=0, balance=bal, positions=positions, marks={}, markets={})
        order = OrderRequest(client_id=1, ticker="BTC-USD", side=side, size=qty, reduce_only=reduce_only)
        pt = post_trade(order, view, "BTC-USD")
        before, after, sign, shrinks = position_change(order, view, "BTC-USD")
        assert (before, after, sign) == (pt.before, pt.after, pt.sign)
        assert str(after) == str(pt.after) and type(sign) is int
        assert shrinks is shrinks_exposure(order, view, "BTC-USD"), (pos, qty, side, reduce_only, held)


def test_other_open_positions_are_the_venues_others_in_order():
    from perpbot.plugins.risk.helpers import other_open_positions, venue_positions

    bal = Balance(collateral=D(1), equity=D(1), free_collateral=D(1))
    positions = {
        "ETH-USD": Position("ETH-USD", D("2"), D(3000)),
        "binance:BTC-USD": Position("BTC-USD", D("1"), D(60000)),
        "BTC-USD": Position("BTC-USD", D("-1"), D(60000)),
        "SOL-USD": Position("SOL-USD", D("0"), D(100)),
        "binance:ETH-USD": Position("ETH-USD", D("-3"), D(3000)),
        "AVAX-USD": Position("AVAX-USD", D("5"), D(30)),
        "binance:SOL-USD": Position("SOL-USD", D("0"), D(100)),
    }
    view = RiskView(now_ns=0, balance=bal, positions=positions, marks={}, markets={})
    for q in ("BTC-USD", "DOGE-USD", "binance:BTC-USD", "binance:DOGE-USD", "okx:BTC-USD"):
        want = [(t, p) for t, p in venue_positions(view, q).items() if t != q]
        assert list(other_open_positions(view, q)) == want, q
    assert [t for t, _ in other_open_positions(view, "BTC-USD")] == ["ETH-USD", "AVAX-USD"]
    assert [t for t, _ in other_open_positions(view, "binance:BTC-USD")] == ["binance:ETH-USD"]


def test_max_leverage_counts_other_positions_at_their_marks_on_the_same_venue_only():
    """T_other: the venue's other open positions at their marks (entry price when unmarked)."""
    from perpbot.core.model import Market
    from perpbot.core.params import parse_params
    from perpbot.core.policies import RiskAction
    from perpbot.plugins.risk import MaxLeverage

    btc = Market("BTC-USD", 0, tick_size="1", step_size="0.0001", initial_margin_fraction="0.05", maintenance_margin_fraction="0.03")
    positions = {
        "ETH-USD": Position("ETH-USD", D("-4"), D("2000")),  # marked at 2500: 10,000 USD (8,000 at entry)
        "SOL-USD": Position("SOL-USD", D("10"), D("100")),  # no mark: 1,000 USD at entry
        "binance:ETH-USD": Position("ETH-USD", D("100"), D("2000")),  # another venue: not counted
        "AVAX-USD": Position("AVAX-USD", D("0"), D("30")),  # closed
    }
    marks = {"BTC-USD": D("50000"), "ETH-USD": D("2500"), "binance:ETH-USD": D("2500")}
    view = RiskView(now_ns=0, balance=Balance(collateral=D(10000), equity=D(10000), free_collateral=D(10000)),
                    positions=positions, marks=marks, markets={"BTC-USD": btc})
    policy = MaxLeverage(parse_params(MaxLeverage.Params, {"max_leverage": "5"}, "max_leverage"), None)
    order = OrderRequest(client_id=1, ticker="BTC-USD", side=Side.BUY, size=D("1"), venue="dydx")
    d = policy.check_order(order, view)
    # (5 x 10,000 - 11,000) / 50,000 = 0.78 BTC allowed; leverage after (11,000 + 50,000) / 10,000 = 6.1x
    assert d.action is RiskAction.REDUCE and d.size == D("0.78")
    assert "6.1x > max 5x (other notional 11000 + |1| x 50000" in d.reason
    assert policy.check_order(OrderRequest(client_id=2, ticker="BTC-USD", side=Side.BUY, size=D("0.78"), venue="dydx"),
                              view).approved


def test_seed_emergency_counts_open_positions_only():
    """The emergency rule closes the open positions (closed ones in the view are not counted) and
    halts when only closed ones are left."""
    from perpbot.core.params import parse_params
    from perpbot.core.policies import RiskAction
    from perpbot.plugins.risk import SeedThresholds

    def view(positions):
        return RiskView(now_ns=0, balance=Balance(collateral=D(8500), equity=D(8500), free_collateral=D(8500)),
                        positions=positions, marks={}, markets={}, start_equity=D(10000), total_equity=D(8500))

    policy = SeedThresholds(parse_params(SeedThresholds.Params, {}, "seed_thresholds"), None)
    closed = Position("ETH-USD", D("0"), D(3000))
    d = policy.check_account(view({"ETH-USD": closed, "BTC-USD": Position("BTC-USD", D("0.1"), D(60000))}))
    assert d.action is RiskAction.CLOSE_ALL and d.reason.endswith(": closing all 1 positions")
    d = policy.check_account(view({"ETH-USD": closed}))
    assert d.action is RiskAction.HALT and "halting" in d.reason
