"""Tests of the example plugin, with the fixtures perpbot installs for plugin authors
(``make_market_data``, ``run_replay``); imports only ``perpbot`` and the plugin."""

from decimal import Decimal as D

import pytest

from perpbot import ConfigError, OrderRequest, Position, RiskAction, RiskView, Side, Trade, parse_params
from perpbot_breakout import Breakout, BreakoutParams, MaxPositions, MaxPositionsParams

NS = 10**9
T0 = 1_700_000_000 * NS


def trades(*prices, start=T0):
    return [Trade("BTC-USD", start + i * NS, D(p), D("0.1"), Side.BUY) for i, p in enumerate(prices)]


async def decide(strategy, make_market_data, tape, position=None, at=None):
    md = make_market_data({"BTC-USD": tape[-1].price}, trades={"BTC-USD": tape},
                          positions={"BTC-USD": position} if position else None, ts_ns=at or tape[-1].ts_ns)
    return (await strategy.execute_strategy(md)).orders


async def test_buys_when_price_breaks_the_channel_high(make_market_data):
    s = Breakout(BreakoutParams(window_s=10), None)
    assert await decide(s, make_market_data, trades(100, 101, 100)) == ()  # first cycle only records the channel
    (order,) = await decide(s, make_market_data, trades(100, 101, 100, 102))
    assert order.side is Side.BUY and "broke" in order.reason and order.size is None  # the sizer sizes it


async def test_trailing_stop_closes_a_long_after_a_give_back(make_market_data):
    s = Breakout(BreakoutParams(window_s=10, trail=D("0.01")), None)
    pos = Position("BTC-USD", D("0.5"), D("100"))
    assert await decide(s, make_market_data, trades(100, 110), pos) == ()
    assert await decide(s, make_market_data, trades(100, 110, 109), pos) == ()  # gave back < 1% of 110
    (order,) = await decide(s, make_market_data, trades(100, 110, 109, 108.8), pos)
    assert order.side is Side.SELL and order.reduce_only and order.size == D("0.5")


def test_params_are_validated_with_the_parameter_named():
    with pytest.raises(ConfigError, match="trail"):
        parse_params(BreakoutParams, {"trail": "2"}, "breakout")


def test_max_positions_rejects_a_second_market_but_not_an_exit(real_markets):
    policy = MaxPositions(MaxPositionsParams(limit=1))
    view = RiskView(now_ns=T0, balance=None, positions={"BTC-USD": Position("BTC-USD", D("1"), D("100"))}, marks={}, markets=real_markets)
    eth = OrderRequest(client_id=1, ticker="ETH-USD", side=Side.BUY, size=D("1"))
    assert policy.check_order(eth, view).action is RiskAction.REJECT
    exit_btc = OrderRequest(client_id=2, ticker="BTC-USD", side=Side.SELL, size=D("1"), reduce_only=True)
    assert policy.check_order(exit_btc, view).approved


@pytest.mark.slow
def test_runs_on_the_embedded_sample(run_replay):
    bot, summary = run_replay("breakout", {"window_s": 30, "trail": "0.0005"}, max_events=200_000)
    assert summary.decisions > 0 and summary.strategy_errors == 0
