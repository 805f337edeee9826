"""Risk policies never fall back silently (issue 10.7): not to the primary venue's balance
when another venue's lookup fails, not to a margin formula without the chain's rounding,
and no dead ``ImportError`` fallback for ``perpbot.core.margin``."""

from __future__ import annotations

import ast
from decimal import Decimal as D
from pathlib import Path

import pytest

from perpbot.core import margin
from perpbot.core.model import Balance, Market, OrderRequest, Position, Side
from perpbot.core.params import parse_params
from perpbot.core.policies import RiskAction, RiskView
from perpbot.plugins import risk
from perpbot.plugins.risk import LiquidationDistance, MaxLeverage, venue_balance

REPO = Path(__file__).resolve().parents[2]
T0 = 1_706_745_600 * 10**9
BTC = Market("BTC-USD", 0, tick_size="1", step_size="0.0001", initial_margin_fraction="0.05", maintenance_margin_fraction="0.03")


def bal(equity: str) -> Balance:
    e = D(equity)
    return Balance(collateral=e, equity=e, free_collateral=e)


def view(**kw) -> RiskView:
    base = dict(
        now_ns=T0,
        balance=bal("1000000"),  # the primary (dydx) account: rich
        positions={},
        marks={"BTC-USD": D("50000"), "binance:BTC-USD": D("50000")},
        markets={"BTC-USD": BTC, "binance:BTC-USD": BTC},
    )
    base.update(kw)
    return RiskView(**base)


def order(size: str, venue: str = "binance") -> OrderRequest:
    return OrderRequest(client_id=1, ticker="BTC-USD", side=Side.BUY, size=D(size), venue=venue)


class Bot:
    """A context whose ``balance(venue)`` fails for every venue but the primary."""

    class config:
        primary_venue = "dydx"

    def balance(self, venue):
        if venue == "dydx":
            return bal("1000000")
        raise KeyError(venue)


def make(cls, context=None, **params):
    return cls(parse_params(cls.Params, params, cls.name), context)


def test_a_failed_venue_balance_lookup_is_an_error_not_the_primary_balance():
    with pytest.raises(LookupError, match="binance"):
        venue_balance(view(), "binance:BTC-USD", Bot())
    # the policy rejects with the reason instead of measuring binance leverage on dydx's equity
    d = make(MaxLeverage, Bot(), max_leverage="5").check_order(order("1"), view())
    assert d.action is RiskAction.REJECT and "no balance for venue 'binance'" in d.reason
    d = make(LiquidationDistance, Bot()).check_order(order("1"), view())
    assert d.action is RiskAction.REJECT and "no balance for venue 'binance'" in d.reason


def test_a_view_with_per_venue_balances_but_not_this_one_is_an_error():
    v = view(balances={"dydx": bal("1000000")})
    with pytest.raises(LookupError, match="the view has balances for dydx"):
        venue_balance(v, "binance:BTC-USD")
    # the venue's own balance is used when there
    v = view(balances={"dydx": bal("1000000"), "binance": bal("100")})
    assert venue_balance(v, "binance:BTC-USD").equity == 100
    d = make(MaxLeverage, max_leverage="5").check_order(order("1"), v)
    assert d.action is RiskAction.REDUCE and "equity 100 USD" in d.reason and d.size == D("0.01")


def test_maintenance_margin_is_the_chains_or_an_error_never_an_unrounded_estimate():
    assert risk.position_maintenance_margin(D("1"), D("3000"), Market("ETH-USD", 1, tick_size="0.1", step_size="0.001",
                                                   initial_margin_fraction="0.05", maintenance_margin_fraction="0.03")) == D(90)
    # an IMF that is not whole ppm is not a chain value: no margin formula without its rounding
    odd = Market("ETH-USD", 1, tick_size="0.1", step_size="0.001",
                 initial_margin_fraction="0.0500001", maintenance_margin_fraction="0.03")
    with pytest.raises(ValueError, match="maintenance margin of ETH-USD unknown"):
        risk.position_maintenance_margin(D("1"), D("3000"), odd)
    v = view(
        balance=bal("100000"),
        positions={"ETH-USD": Position("ETH-USD", D("1"), D("3000"))},
        marks={"BTC-USD": D("50000"), "ETH-USD": D("3000")},
        markets={"BTC-USD": BTC, "ETH-USD": odd},
    )
    d = make(LiquidationDistance).check_order(order("0.01", venue="dydx"), v)
    assert d.action is RiskAction.REJECT and "maintenance margin of ETH-USD unknown" in d.reason


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(t, ast.Name) and t.id in ("ImportError", "ModuleNotFoundError") for t in types)


def test_no_import_error_fallback_for_the_margin_package():
    assert risk.liquidation_distance._margin is margin
    offenders = []
    for folder in ("core", "plugins", "exchanges", "strategies", "perpbot"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers):
                    body = ast.dump(ast.Module(body=node.body, type_ignores=[]))
                    if "margin" in body:
                        offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, offenders


# -- total equity (issue 10.7): no silent fallback to the primary venue's equity ------------


class BrokenTotal:
    """A context whose ``total_equity()`` fails (e.g. a venue's balance lookup raising)."""

    def total_equity(self):
        raise KeyError("binance")


def test_a_failed_total_equity_lookup_is_an_error_not_the_primary_equity():
    v = view(start_equity=D("1000000"))  # no total_equity, no per-venue balances: ask the context
    with pytest.raises(LookupError, match="total equity unknown: KeyError"):
        risk.total_equity(v, BrokenTotal())
    # the loss policies HALT with the reason instead of measuring the loss on dydx's equity alone
    d = make(risk.SeedThresholds, BrokenTotal()).check_account(v)
    assert d.action is RiskAction.HALT and "total equity unknown" in d.reason and "account loss cannot be measured" in d.reason
    d = make(risk.DailyLoss, BrokenTotal()).check_account(view(day_start_equity=D("1000000")))
    assert d.action is RiskAction.HALT and "total equity unknown" in d.reason and "daily loss cannot be measured" in d.reason


def test_total_equity_sources_in_their_documented_order():
    class Ctx:
        def total_equity(self):
            return D("42")

    # 1. the bot's total; 2. the per-venue balances' sum; 3. the context; 4. one account
    assert risk.total_equity(view(total_equity=D("7"), balances={"dydx": bal("5")}), Ctx()) == 7
    assert risk.total_equity(view(balances={"dydx": bal("5"), "binance": bal("3")}), Ctx()) == 8
    assert risk.total_equity(view(), Ctx()) == 42
    assert risk.total_equity(view()) == 1000000


# -- a market's maximum leverage (core/balance.py): the chain's scaled IMF or an error -------


def test_market_max_leverage_is_an_error_for_invalid_chain_values_not_the_unscaled_imf():
    from perpbot.core.balance import LeverageCalculator, market_max_leverage
    from perpbot.core.errors import DataError
    from perpbot.core.model import OrderParams
    from perpbot.core.policies import SizingView
    from perpbot.plugins.sizers import FixedNotionalSizer

    # SOL-USD (IMF 0.1, caps 20M/50M USDC) at 35M USDC OI: IMF 0.55 (core/margin docs)
    sol = Market("SOL-USD", 5, tick_size="0.01", step_size="0.1", initial_margin_fraction="0.1",
                 maintenance_margin_fraction="0.05", open_interest_lower_cap="20000000",
                 open_interest_upper_cap="50000000", open_interest="350000", oracle_price="100")
    assert market_max_leverage(sol) == 1 / D("0.55")
    # the same market with an IMF that is not whole ppm: the scaled IMF cannot be computed
    odd = Market("SOL-USD", 5, tick_size="0.01", step_size="0.1", initial_margin_fraction="0.1000001",
                 maintenance_margin_fraction="0.05", open_interest_lower_cap="20000000",
                 open_interest_upper_cap="50000000", open_interest="350000", oracle_price="100")
    with pytest.raises(DataError, match="maximum leverage of SOL-USD unknown"):
        market_max_leverage(odd)
    with pytest.raises(DataError, match="maximum leverage of SOL-USD unknown"):
        LeverageCalculator(D("5")).max_leverage_for(odd)
    # the sizer refuses (a PerpbotError: the bot logs it and skips the order) instead of sizing at 1/IMF
    sizer = FixedNotionalSizer(parse_params(FixedNotionalSizer.Params, {"notional": "1000"}, "fixed_notional"), None)
    sv = SizingView(market=odd, price=D("100"), balance=bal("100000"), position=None, positions={}, marks={})
    with pytest.raises(DataError, match="maximum leverage of SOL-USD unknown"):
        sizer.size(OrderParams("SOL-USD", Side.BUY), sv)
    # no upper cap: scaling is disabled on chain, the base IMF is exact
    plain = Market("SOL-USD", 5, tick_size="0.01", step_size="0.1", initial_margin_fraction="0.1",
                   maintenance_margin_fraction="0.05", open_interest="350000", oracle_price="100")
    assert market_max_leverage(plain) == 10
