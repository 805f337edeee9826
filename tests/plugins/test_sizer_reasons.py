"""Built-in sizers' reasons are formatted lazily (plugins/sizers.py, core/policies.py ``LazyText``)
and read exactly as the eager formatting did: the texts below were produced by the code before
the change (commit b554932), for every branch of the reason (sizer, intent cap, leverage and
margin bounds, max_order_size, step floor, below the minimum, the raise paths, reduce-only)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from perpbot.core.model import Balance, Market, OrderParams, Position, Side
from perpbot.core.params import parse_params
from perpbot.core.policies import LazyText, SizingResult, SizingView
from perpbot.plugins import sizer_reasons as R
from perpbot.plugins import sizers as S

BTC = Market("BTC-USD", 0, tick_size="1", step_size="0.0001", initial_margin_fraction="0.05", maintenance_margin_fraction="0.03")
ETH = Market("ETH-USD", 1, tick_size="0.1", step_size="0.001", initial_margin_fraction="0.05", maintenance_margin_fraction="0.03")

def view(m=BTC, price="50000", equity="10000", free=None, pos=None, others=None, score=None, vol=None):
    e = D(equity)
    b = Balance(collateral=e, equity=e, free_collateral=D(free) if free is not None else e)
    positions = dict(others or {})
    position = None
    if pos is not None:
        position = Position(m.ticker, D(pos), D(price))
        positions[m.ticker] = position
    marks = {"BTC-USD": D("50000"), "ETH-USD": D("2000")}
    return SizingView(market=m, price=D(price), balance=b, position=position, positions=positions, marks=marks,
                      score=D(score) if score is not None else None, volatility=D(vol) if vol is not None else None)

def sizer(cls, **p):
    return cls(parse_params(cls.Params, p, cls.name), None)

CASES = [
    ("notional default", S.FixedNotionalSizer, {}, OrderParams("BTC-USD", Side.BUY), {}),
    ("notional odd price", S.FixedNotionalSizer, {"notional": "777.77"}, OrderParams("BTC-USD", Side.SELL), {"price": "60001.5"}),
    ("notional intent cap", S.FixedNotionalSizer, {}, OrderParams("BTC-USD", Side.BUY, size=D("0.0123")), {}),
    ("notional leverage bound", S.FixedNotionalSizer, {"notional": "100000", "max_leverage": "2"}, OrderParams("BTC-USD", Side.BUY), {"free": "9000"}),
    ("notional margin bound", S.FixedNotionalSizer, {"notional": "100000", "max_leverage": "20"}, OrderParams("BTC-USD", Side.BUY), {"free": "1234.56"}),
    ("notional other positions", S.FixedNotionalSizer, {"notional": "60000", "max_leverage": "3"}, OrderParams("BTC-USD", Side.BUY),
        {"others": {"ETH-USD": Position("ETH-USD", D("5"), D("2100"))}}),
    ("notional reducing", S.FixedNotionalSizer, {"notional": "100000", "max_leverage": "2"}, OrderParams("BTC-USD", Side.SELL), {"pos": "0.3"}),
    ("notional reducing, negative free collateral", S.FixedNotionalSizer, {"notional": "100000", "max_leverage": "20"},
        OrderParams("BTC-USD", Side.SELL), {"pos": "0.3", "free": "-1000"}),
    ("notional max_order_size", S.FixedNotionalSizer, {"max_order_size": "0.005"}, OrderParams("BTC-USD", Side.BUY), {}),
    ("notional below min", S.FixedNotionalSizer, {"notional": "1", "min_order_size": "0.01"}, OrderParams("BTC-USD", Side.BUY), {}),
    ("notional below min raise", S.FixedNotionalSizer, {"notional": "1", "below_min": "raise"}, OrderParams("BTC-USD", Side.BUY), {}),
    ("notional lev raise", S.FixedNotionalSizer, {"notional": "100000", "max_leverage": "1", "below_min": "raise"}, OrderParams("BTC-USD", Side.BUY),
        {"others": {"ETH-USD": Position("ETH-USD", D("5"), D("2000"))}}),
    ("notional no free", S.FixedNotionalSizer, {}, OrderParams("BTC-USD", Side.BUY), {"free": "0"}),
    ("quantity", S.FixedQuantitySizer, {"quantity": "0.00375"}, OrderParams("BTC-USD", Side.BUY), {}),
    ("quantity eth", S.FixedQuantitySizer, {"quantity": "1.23456"}, OrderParams("ETH-USD", Side.SELL), {"m": ETH, "price": "2000.3"}),
    ("reduce only", S.FixedQuantitySizer, {}, OrderParams("BTC-USD", Side.SELL, reduce_only=True, size=D("0.05")), {"pos": "0.12345"}),
    ("exposure", S.ExposureSizer, {}, OrderParams("BTC-USD", Side.BUY), {}),
    ("vol", S.VolatilityTargetSizer, {}, OrderParams("BTC-USD", Side.BUY), {"vol": "0.0021"}),
    ("kelly", S.KellySizer, {"win_rate": "0.6", "stop_distance": "0.02"}, OrderParams("BTC-USD", Side.BUY), {}),
]


#: (case, quantity, notional, margin, reason) or (case, error type, message), from the eager code
EXPECTED = [
    ('notional default', '0.02', '1000.00', '50.000', 'fixed notional 1000 USD / price 50000 = 0.02 -> 0.02 BTC = 1000 USD notional, margin 50 USD'),
    ('notional odd price', '0.0129', '774.01935', '38.7009675', 'fixed notional 777.77 USD / price 60001.5 = 0.01296251; floored to step 0.0001: 0.0129 -> 0.0129 BTC = 774.02 USD notional, margin 38.7 USD'),
    ('notional intent cap', '0.0123', '615.0000', '30.75000', "fixed notional 1000 USD / price 50000 = 0.02; capped by the intent's size 0.0123 -> 0.0123 BTC = 615 USD notional, margin 30.75 USD"),
    ('notional leverage bound', '0.4', '20000.0', '1000.00', 'fixed notional 100000 USD / price 50000 = 2; account leverage cap 2x: |position after| <= (2 x equity 10000 - other notional 0) / 50000 = 0.4 -> at most 0.4 -> 0.4 BTC = 20000 USD notional, margin 1000 USD'),
    ('notional margin bound', '0.4938', '24690.0000', '1234.50000', 'fixed notional 100000 USD / price 50000 = 2; initial margin (max 20x = 1/IMF 0.05): |position after| <= |0| + free collateral 1234.56 / (50000 x 0.05) = 0.493824 -> at most 0.493824; floored to step 0.0001: 0.4938 -> 0.4938 BTC = 24690 USD notional, margin 1234.5 USD'),
    ('notional other positions', '0.4', '20000.0', '1000.00', 'fixed notional 60000 USD / price 50000 = 1.2; account leverage cap 3x: |position after| <= (3 x equity 10000 - other notional 10000) / 50000 = 0.4 -> at most 0.4 -> 0.4 BTC = 20000 USD notional, margin 1000 USD'),
    ('notional reducing', '0.7', '35000.0', '1750.00', 'fixed notional 100000 USD / price 50000 = 2; account leverage cap 2x: |position after| <= (2 x equity 10000 - other notional 0) / 50000 = 0.4 -> at most 0.7 -> 0.7 BTC = 35000 USD notional, margin 1750 USD'),
    ('notional reducing, negative free collateral', '0.3', '15000.0', '750.00', 'fixed notional 100000 USD / price 50000 = 2; initial margin (max 20x = 1/IMF 0.05): |position after| <= |0.3| + free collateral -1000 / (50000 x 0.05) = 0 -> at most 0.3 -> 0.3 BTC = 15000 USD notional, margin 750 USD'),
    ('notional max_order_size', '0.005', '250.000', '12.5000', 'fixed notional 1000 USD / price 50000 = 0.02; capped by max_order_size 0.005 -> 0.005 BTC = 250 USD notional, margin 12.5 USD'),
    ('notional below min', '0', '0', '0', 'fixed notional 1 USD / price 50000 = 0.00002; floored to step 0.0001: 0; 0 is below the minimum order size 0.01: skipped'),
    ('notional below min raise', 'InsufficientBalance', 'sizer fixed_notional: fixed notional 1 USD / price 50000 = 0.00002; floored to step 0.0001: 0; 0 is below the minimum order size 0.0001: skipped; the minimum order needs 0.25 USD of free collateral, available 10000 USD'),
    ('notional lev raise', 'InsufficientLeverage', 'sizer fixed_notional: fixed notional 100000 USD / price 50000 = 2; account leverage cap 1x: |position after| <= (1 x equity 10000 - other notional 10000) / 50000 = 0 -> at most 0; 0 is below the minimum order size 0.0001: skipped; the minimum order needs leverage 1.0005x, allowed 1x'),
    ('notional no free', 'InsufficientBalance', 'sizer fixed_notional: no free collateral for a BUY on BTC-USD: required 0.25 USD for the minimum order, available 0 USD'),
    ('quantity', '0.0037', '185.0000', '9.25000', 'fixed quantity 0.00375 BTC; floored to step 0.0001: 0.0037 -> 0.0037 BTC = 185 USD notional, margin 9.25 USD'),
    ('quantity eth', '1.234', '2468.3702', '123.41851', 'fixed quantity 1.23456 ETH; floored to step 0.001: 1.234 -> 1.234 ETH = 2468.37 USD notional, margin 123.42 USD'),
    ('reduce only', '0.05', '2500.00', '0', "reduce-only: position 0.12345, capped by the intent's size 0.05 -> 0.05"),
    ('exposure', '0.02', '1000.00', '200.00', 'exposure (seed 004): min(balance 10000 x leverage 5 / price 50000 = 1, balance 10000 x exposure 0.1 / price 50000 = 0.02) = 0.02, bound by portfolio exposure 10% -> 0.02 BTC = 1000 USD notional, margin 200 USD'),
    ('vol', '0.0952', '4760.0000', '238.00000', 'volatility target 10 USD/bar / (price 50000 x vol 0.0021 from view) = 0.0952381; floored to step 0.0001: 0.0952 -> 0.0952 BTC = 4760 USD notional, margin 238 USD'),
    ('kelly', '0.5', '25000.0', '1250.00', 'kelly: p=0.6 (win_rate), b=1, f*=0.2, x0.25 = 0.05 of equity 10000; stake 500 USD / stop distance 0.02 = notional 25000 USD / price 50000 = 0.5 -> 0.5 BTC = 25000 USD notional, margin 1250 USD'),
]


def outcome(name, cls, params, intent, kw):
    kw = dict(kw)
    m = kw.pop("m", BTC)
    try:
        r = sizer(cls, **params).size(intent, view(m=m, **kw))
    except Exception as e:
        return (name, type(e).__name__, str(e))
    return (name, str(r.quantity), str(r.notional), str(r.margin_used), r.reason)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_reasons_read_as_the_eager_code_wrote_them(case):
    (expected,) = [e for e in EXPECTED if e[0] == case[0]]
    assert outcome(*case) == expected


def test_the_reason_is_not_formatted_until_read(monkeypatch):
    calls = []
    real = R.fmt
    counting = lambda *a: calls.append(a) or real(*a)  # noqa: E731
    monkeypatch.setattr(S, "_fmt", counting)  # the sizers' eager texts
    monkeypatch.setattr(R, "fmt", counting)  # the texts a LazyText formats when read
    r = sizer(S.FixedNotionalSizer, notional="777.77").size(OrderParams("BTC-USD", Side.BUY), view(price="60001.5"))
    assert r.quantity == D("0.0129") and calls == []
    text = r.reason
    assert calls and isinstance(text, str) and text.startswith("fixed notional 777.77 USD / price 60001.5")
    n = len(calls)
    assert r.reason == text and len(calls) == n  # rendered once, kept


def test_a_lazy_reason_compares_hashes_and_prints_as_its_text():
    eager = SizingResult(D(1), D(2), D(3), "why")
    lazy = SizingResult(D(1), D(2), D(3), LazyText(lambda a, b: f"{a} {b}"[0:3], "why", "not"))
    assert lazy == eager and hash(lazy) == hash(eager) and repr(lazy) == repr(eager)
    assert repr(eager) == "SizingResult(quantity=Decimal('1'), notional=Decimal('2'), margin_used=Decimal('3'), reason='why')"
    assert SizingResult(D(1), D(2), D(3), "other") != lazy
    assert type(lazy.reason) is str and str(LazyText(str.upper, "x")) == "X"
