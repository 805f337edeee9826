"""Tests for the example plugin, using perpbot's own pytest fixtures (the pytest plugin perpbot installs)."""

import subprocess
import sys
from decimal import Decimal as D

import pytest

from perpbot import Bar, Position
from perpbot_meanrev import MeanReversion, MeanRevParams


def feed_bars(md, ticker, closes):
    st = md.markets[ticker]
    for i, c in enumerate(closes):
        st.bars.add_bar(Bar(ticker, i * 60 * 10**9, D(c), D(c), D(c), D(c), D(1)))


async def test_buys_below_the_average(make_market_data):
    strat = MeanReversion(MeanRevParams(lookback=3, band=D("0.01")), context=None)
    md = make_market_data({"BTC-USD": D("98")})
    feed_bars(md, "BTC-USD", ["100", "100", "100"])
    result = await strat.execute_strategy(md)
    (order,) = result.orders
    assert order.side.value == "BUY" and order.size is None  # the sizer decides


async def test_exits_at_the_average(make_market_data):
    strat = MeanReversion(MeanRevParams(lookback=3, band=D("0.01")), context=None)
    md = make_market_data({"BTC-USD": D("100")}, positions={"BTC-USD": Position("BTC-USD", size=D("0.5"), entry_price=D("98"))})
    feed_bars(md, "BTC-USD", ["100", "100", "100"])
    (order,) = (await strat.execute_strategy(md)).orders
    assert order.reduce_only and order.size == D("0.5") and order.side.value == "SELL"


def test_bad_parameter_is_rejected():
    from perpbot import ConfigError
    from perpbot import parse_params

    with pytest.raises(ConfigError, match="lookback"):
        parse_params(MeanRevParams, {"lookback": "1"}, "strategy meanrev")


def test_listed_by_the_host_cli():
    out = subprocess.run([sys.executable, "-m", "runbot", "plugins"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "meanrev" in out.stdout and "strategy:meanrev" in out.stdout.replace(" ", "")


def test_runs_on_the_embedded_sample(run_replay):
    bot, summary = run_replay("meanrev", {"lookback": "5", "band": "0.0005"}, max_events=150_000)
    assert bot.events_read == 150_000  # max_events counts feed events (messages)
    assert summary.decisions > 0 and summary.events > 150_000  # level entries count individually
