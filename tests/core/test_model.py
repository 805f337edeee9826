from decimal import Decimal as D

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from perpbot.core.model import Market, OrderParams, OrderRequest, OrderType, Side, to_decimal
from perpbot.core.params import param, parse_params
from perpbot.core.testing import market
from perpbot.core.errors import ConfigError


def test_float_money_is_a_type_error():
    with pytest.raises(TypeError, match="price: got float"):
        OrderParams("BTC-USD", Side.BUY, OrderType.LIMIT, size=D("1"), price=65000.0)
    with pytest.raises(TypeError):
        to_decimal(0.1, "size")


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-1", "0"])
def test_non_finite_or_non_positive_prices_are_refused(bad):
    with pytest.raises(ValueError, match="price"):
        OrderParams("BTC-USD", Side.BUY, OrderType.LIMIT, size=D("1"), price=bad)


@pytest.mark.parametrize("bad", [D("NaN"), D("Infinity"), D("-Infinity"), D("sNaN")])
@pytest.mark.parametrize("field", ["size", "price", "trigger_price", "slippage"])
def test_non_finite_decimals_are_refused_by_every_converter(field, bad):
    """The converters keep a finite Decimal as it is without calling to_decimal: a non-finite
    one must still be refused, naming the field (OrderParams and OrderRequest alike)."""
    base = dict(size=D("1"), price=D("65000"), trigger_price=D("64000"))
    with pytest.raises(ValueError, match=field):
        OrderParams("BTC-USD", Side.BUY, OrderType.STOP_LIMIT, **{**base, field: bad})
    with pytest.raises(ValueError, match=field):
        OrderRequest(1, "BTC-USD", Side.BUY, **{**base, field: bad})
    kept = D("0.0100")
    assert getattr(OrderParams("BTC-USD", Side.BUY, OrderType.STOP_LIMIT, **{**base, field: kept}), field) is kept


def test_limit_needs_price_and_stop_needs_trigger():
    with pytest.raises(ValueError, match="price: required"):
        OrderParams("BTC-USD", Side.BUY, OrderType.LIMIT, size=D("1"))
    with pytest.raises(ValueError, match="trigger_price: required"):
        OrderParams("BTC-USD", Side.SELL, OrderType.STOP_MARKET, size=D("1"))


def test_rounding_is_deliberate():
    btc = market("BTC-USD")  # tick $1, step 0.0001
    assert btc.round_size(D("0.00039")) == D("0.0003")  # sizes floor
    assert btc.round_price(D("65000.9"), Side.BUY) == D("65000")  # buys floor
    assert btc.round_price(D("65000.1"), Side.SELL) == D("65001")  # sells ceil
    assert btc.round_price(D("65000"), Side.SELL) == D("65000")  # exact stays
    assert btc.round_price_aggressive(D("65000.1"), Side.BUY) == D("65001")


def test_float_trap_quantums():
    btc = market("BTC-USD")
    # dydx-v4-client 1.1.5's float conversion yields 2,000,000 here
    assert btc.size_to_quantums(D("0.0003")) == 3_000_000
    assert btc.price_to_subticks(D("65000")) == 6_500_000_000
    with pytest.raises(ValueError):
        btc.size_to_quantums(D("0.00000000001"))


@given(st.decimals(min_value=D("0.0001"), max_value=D("1000"), places=6))
def test_round_size_never_exceeds_and_is_a_step_multiple(size):
    eth = market("ETH-USD")
    r = eth.round_size(size)
    assert r <= size and r % eth.step_size == 0 and size - r < eth.step_size


def test_market_from_indexer_payload(shared_data):
    import json

    payload = json.loads((shared_data / "dydx_v4/nautilus_py/http/list_perpetual_markets.json").read_text())
    btc = Market.from_indexer(payload["markets"]["BTC-USD"])
    assert btc.atomic_resolution == -10 and btc.step_size == D("0.0001") and btc.tick_size == D("1")
    sol = Market.from_indexer(payload["markets"]["SOL-USD"])
    assert sol.open_interest_upper_cap > sol.open_interest_lower_cap > 0


def test_market_from_indexer_names_missing_field():
    with pytest.raises(ValueError, match="missing field 'tickSize'"):
        Market.from_indexer({"ticker": "X-USD", "clobPairId": "9"})


@attrs.frozen
class P:
    threshold: D = param(D("60"), "entry score")
    count: int = param(3, "how many")
    names: tuple[str, ...] = param(("a",), "names")
    flag: bool = param(False, "a flag")


def test_params_convert_and_name_bad_values():
    p = parse_params(P, {"threshold": "65.5", "count": "4", "names": "x,y", "flag": "yes"}, "strategy t")
    assert p == P(D("65.5"), 4, ("x", "y"), True)
    with pytest.raises(ConfigError, match="strategy t: parameter threshold: expected a decimal number, got 'high'"):
        parse_params(P, {"threshold": "high"}, "strategy t")
    with pytest.raises(ConfigError, match="strategy t: unknown parameter 'tresh'"):
        parse_params(P, {"tresh": "1"}, "strategy t")
    with pytest.raises(ConfigError, match="got float"):
        parse_params(P, {"threshold": 0.5}, "strategy t")
