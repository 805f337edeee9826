"""Order conversion and validation on real dYdX market parameters (BTC, ETH, SOL, DOGE)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpbot.core.errors import InvalidOrder
from perpbot.core.model import OrderRequest, OrderType, Side, TimeInForce
from perpbot.exchanges.dydx.orders import (
    CONDITIONAL,
    LONG_TERM,
    SHORT_TERM,
    build_order_proto,
    plan_order,
    price_to_subticks,
    quantums_to_size,
    size_to_quantums,
)

D = Decimal
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
_MARKETS = json.loads((Path(__file__).resolve().parents[3] / "exchanges/replay/dydx_markets.json").read_text())["markets"]


def plan(req, market, **kw):
    args = dict(height=1000, now_s=NOW, short_term_blocks=20, short_term_max_s=15, default_good_til_s=3600,
                slippage=D("0.01"))
    args.update(kw)
    return plan_order(req, market, **args)


# ---------------------------------------------------------------- the float trap


def test_float_trap_0_0003_btc_is_3_000_000_quantums(real_markets, market_of):
    from dydx_v4_client.node.market import Market as ClientMarket

    btc = market_of("BTC-USD")
    assert size_to_quantums(btc, D("0.0003")) == 3_000_000
    # the 1.1.5 client computes it in floats and gets 0.0002 BTC: the reason we never call it
    assert ClientMarket(real_markets["BTC-USD"]).calculate_quantums(0.0003) == 2_000_000


def test_client_raises_tiny_sizes_silently_we_refuse(real_markets, market_of):
    from dydx_v4_client.node.market import Market as ClientMarket

    btc = market_of("BTC-USD")
    assert ClientMarket(real_markets["BTC-USD"]).calculate_quantums(0.00001) == 1_000_000  # raised to 0.0001!
    with pytest.raises(InvalidOrder) as err:
        size_to_quantums(btc, D("0.00001"))
    assert "below the minimum order size 0.0001" in str(err.value)


# ---------------------------------------------------------------- sizes: floor to the step


@pytest.mark.parametrize(
    "ticker, size, quantums, rounded",
    [
        ("BTC-USD", "0.00035", 3_000_000, "0.0003"),
        ("BTC-USD", "1.23456789", 12_345_000_000, "1.2345"),
        ("ETH-USD", "0.0109", 10_000_000, "0.01"),
        ("ETH-USD", "2", 2_000_000_000, "2"),
        ("SOL-USD", "1.25", 12_000_000, "1.2"),
        ("DOGE-USD", "250", 2_000_000, "200"),
        ("DOGE-USD", "100", 1_000_000, "100"),
    ],
)
def test_sizes_floor_to_the_step(market_of, ticker, size, quantums, rounded):
    m = market_of(ticker)
    q = size_to_quantums(m, D(size))
    assert q == quantums
    assert q % m.step_base_quantums == 0
    assert quantums_to_size(m, q) == D(rounded)
    assert m.round_size(D(size)) == D(rounded)  # same answer as the core model


@pytest.mark.parametrize("ticker, size", [("BTC-USD", "0.00009"), ("ETH-USD", "0.0009"), ("SOL-USD", "0.09"),
                                          ("DOGE-USD", "99.99")])
def test_below_minimum_is_invalid_never_raised(market_of, ticker, size):
    with pytest.raises(InvalidOrder, match="below the minimum"):
        size_to_quantums(market_of(ticker), D(size))


# ---------------------------------------------------------------- prices: buys floor, sells ceil


@pytest.mark.parametrize(
    "ticker, price, side, subticks",
    [
        ("BTC-USD", "65000.7", Side.BUY, 6_500_000_000),
        ("BTC-USD", "65000.2", Side.SELL, 6_500_100_000),
        ("BTC-USD", "65000", Side.SELL, 6_500_000_000),
        ("ETH-USD", "3000.05", Side.BUY, 3_000_000_000),
        ("ETH-USD", "3000.05", Side.SELL, 3_000_100_000),
        ("SOL-USD", "150.005", Side.BUY, 15_000_000_000),
        ("SOL-USD", "150.005", Side.SELL, 15_001_000_000),
        ("DOGE-USD", "0.123456", Side.BUY, 12_345_000_000),
        ("DOGE-USD", "0.123451", Side.SELL, 12_346_000_000),
    ],
)
def test_prices_round_in_the_traders_favour(market_of, ticker, price, side, subticks):
    m = market_of(ticker)
    s = price_to_subticks(m, D(price), side)
    assert s == subticks
    assert s % m.subticks_per_tick == 0
    assert m.price_to_subticks(m.round_price(D(price), side)) == s  # agrees with the core model


def test_client_rounds_sells_down_we_round_them_up(real_markets, market_of):
    from dydx_v4_client.node.market import Market as ClientMarket

    eth = market_of("ETH-USD")
    client = ClientMarket(real_markets["ETH-USD"]).calculate_subticks(3000.05)
    assert client == 3_000_000_000  # down, even for a sell (more aggressive than asked)
    assert price_to_subticks(eth, D("3000.05"), Side.SELL) == 3_000_100_000


@settings(max_examples=200, deadline=None)
@given(
    ticker=st.sampled_from(["BTC-USD", "ETH-USD", "SOL-USD", "DOGE-USD"]),
    size=st.decimals(min_value=D("0.0001"), max_value=D("100000"), places=8, allow_nan=False, allow_infinity=False),
    price=st.decimals(min_value=D("0.0001"), max_value=D("200000"), places=6, allow_nan=False, allow_infinity=False),
    side=st.sampled_from([Side.BUY, Side.SELL]),
)
def test_conversion_properties(ticker, size, price, side):
    from perpbot.core.model import Market

    m = Market.from_indexer(_MARKETS[ticker])
    try:
        q = size_to_quantums(m, size)
    except InvalidOrder:
        assert size < m.step_size
    else:
        back = quantums_to_size(m, q)
        assert q % m.step_base_quantums == 0 and back <= size < back + m.step_size
    try:
        s = price_to_subticks(m, price, side)
    except InvalidOrder:
        assert side is Side.BUY and price < m.tick_size
        return
    from perpbot.exchanges.dydx.orders import subticks_to_price

    px = subticks_to_price(m, s)
    assert s % m.subticks_per_tick == 0
    if side is Side.BUY:
        assert px <= price < px + m.tick_size
    else:
        assert px - m.tick_size < price <= px


# ---------------------------------------------------------------- order kinds


def req(**kw):
    base = dict(client_id=7, ticker="BTC-USD", side=Side.BUY, size=D("0.001"))
    base.update(kw)
    return OrderRequest(**base)


def test_market_order_is_short_term_ioc_at_a_worst_price(market_of):
    btc = market_of("BTC-USD")
    p = plan(req(order_type=OrderType.MARKET), btc, best=D("65000"), oracle=D("64000"))
    assert p.flags == SHORT_TERM and p.time_in_force is TimeInForce.IOC
    assert p.good_til_block == 1020  # height + 20, never more
    assert p.price == D("65650")  # 65000 * 1.01, buy rounded down
    s = plan(req(order_type=OrderType.MARKET, side=Side.SELL), btc, best=D("64999"), oracle=None)
    assert s.price == D("64350")  # 64999 * 0.99 = 64349.01 -> ceil 64350
    # empty book side: the oracle price is the reference; a given price caps the bound
    o = plan(req(order_type=OrderType.MARKET), btc, best=None, oracle=D("60000"))
    assert o.price == D("60600")
    c = plan(req(order_type=OrderType.MARKET, price=D("65100")), btc, best=D("65000"))
    assert c.price == D("65100")
    with pytest.raises(InvalidOrder, match="no price reference"):
        plan(req(order_type=OrderType.MARKET), btc, best=None, oracle=None)
    with pytest.raises(InvalidOrder, match="block height"):
        plan(req(order_type=OrderType.MARKET), btc, best=D("1"), height=None)


def test_limit_orders_long_term_or_short_term(market_of):
    eth = market_of("ETH-USD")
    lt = plan(req(ticker="ETH-USD", order_type=OrderType.LIMIT, price=D("3000.07")), eth)
    assert lt.flags == LONG_TERM and lt.good_til_block_time == NOW + 3600 and lt.good_til_block == 0
    assert lt.price == D("3000") and lt.time_in_force is TimeInForce.GTT
    gt = plan(req(ticker="ETH-USD", order_type=OrderType.LIMIT, price=D("3000"), good_til_s=200 * 86400), eth)
    assert gt.good_til_block_time == NOW + 95 * 86400  # capped at the chain's 95 days
    st_ = plan(req(ticker="ETH-USD", order_type=OrderType.LIMIT, price=D("3000"), good_til_s=10), eth)
    assert st_.flags == SHORT_TERM and st_.good_til_block == 1020
    ioc = plan(req(ticker="ETH-USD", order_type=OrderType.LIMIT, price=D("3000"), time_in_force=TimeInForce.IOC), eth)
    assert ioc.flags == SHORT_TERM and ioc.time_in_force is TimeInForce.IOC  # long-term cannot be IOC
    po = plan(req(ticker="ETH-USD", side=Side.SELL, order_type=OrderType.LIMIT, price=D("3000.01"), post_only=True), eth)
    assert po.time_in_force is TimeInForce.POST_ONLY and po.price == D("3000.1")


def test_reduce_only_only_with_ioc(market_of):
    btc = market_of("BTC-USD")
    with pytest.raises(InvalidOrder) as err:
        plan(req(order_type=OrderType.LIMIT, price=D("65000"), reduce_only=True), btc)
    assert "must be IOC" in str(err.value)
    ok = plan(req(order_type=OrderType.MARKET, reduce_only=True), btc, best=D("65000"))
    assert ok.reduce_only and ok.time_in_force is TimeInForce.IOC
    ok2 = plan(req(order_type=OrderType.LIMIT, price=D("65000"), reduce_only=True, time_in_force=TimeInForce.IOC), btc)
    assert ok2.flags == SHORT_TERM
    with pytest.raises(InvalidOrder, match="post-only"):
        plan(req(order_type=OrderType.LIMIT, price=D("1"), post_only=True, time_in_force=TimeInForce.IOC), btc)


def test_conditional_orders_set_condition_type_explicitly(market_of):
    from v4_proto.dydxprotocol.clob.order_pb2 import Order

    btc = market_of("BTC-USD")
    sl = plan(req(side=Side.SELL, order_type=OrderType.STOP_MARKET, trigger_price=D("60000.4"), reduce_only=True), btc)
    assert sl.flags == CONDITIONAL and sl.condition == "STOP_LOSS" and sl.time_in_force is TimeInForce.IOC
    assert sl.trigger_price == D("60001")  # a sell stop triggers no later than asked (ceil)
    assert sl.price == D("59401")  # trigger 60000.4 * 0.99 = 59400.396 -> sell ceil
    tp = plan(req(side=Side.SELL, order_type=OrderType.TAKE_PROFIT_LIMIT, price=D("70000"), trigger_price=D("70000")), btc)
    assert tp.condition == "TAKE_PROFIT" and tp.good_til_block_time == NOW + 3600
    proto = build_order_proto(sl, owner="dydx1abc", subaccount=0, client_id=42, clob_pair_id=0)
    assert proto.condition_type == Order.ConditionType.CONDITION_TYPE_STOP_LOSS
    assert proto.conditional_order_trigger_subticks == 6_000_100_000
    assert proto.order_id.order_flags == 32 and proto.WhichOneof("good_til_oneof") == "good_til_block_time"
    assert proto.time_in_force == Order.TimeInForce.TIME_IN_FORCE_IOC and proto.reduce_only
    assert proto.client_metadata == 0
    # the client's helper would have sent UNSPECIFIED for a stop (rejected by the chain)
    from dydx_v4_client.indexer.rest.constants import OrderType as ClientOrderType
    from dydx_v4_client.node.chain_helpers import OrderHelper

    assert OrderHelper.calculate_condition_type(ClientOrderType.STOP_MARKET) == Order.ConditionType.CONDITION_TYPE_UNSPECIFIED


def test_short_term_proto(market_of):
    from v4_proto.dydxprotocol.clob.order_pb2 import Order

    btc = market_of("BTC-USD")
    p = plan(req(order_type=OrderType.MARKET, size=D("0.0003")), btc, best=D("65000"))
    proto = build_order_proto(p, owner="dydx1abc", subaccount=2, client_id=2**32 - 1, clob_pair_id=0)
    assert proto.quantums == 3_000_000 and proto.subticks == 6_565_000_000
    assert proto.WhichOneof("good_til_oneof") == "good_til_block" and proto.good_til_block == 1020
    assert proto.order_id.subaccount_id.number == 2 and proto.order_id.client_id == 2**32 - 1
    assert proto.side == Order.Side.SIDE_BUY
    with pytest.raises(InvalidOrder):
        build_order_proto(p, owner="dydx1abc", subaccount=0, client_id=2**32, clob_pair_id=0)
