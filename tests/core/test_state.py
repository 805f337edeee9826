"""MarketState's plugin-facing helpers: last trade, last N bars, high/low over a window, bar-fed flag."""

from decimal import Decimal as D

import pytest

from perpbot import Bar, Side, Trade
from perpbot.core.state import MarketState
from perpbot.core.testing import market, sample_dir

NS = 10**9
T0 = 1_700_000_000 * NS


def tick_state(*prices):
    st = MarketState(market("BTC-USD"))
    for i, p in enumerate(prices):
        st.apply(Trade("BTC-USD", T0 + i * NS, D(p), D("0.1"), Side.BUY))
    return st


def test_last_trade_and_high_low_over_trades():
    st = tick_state(100, 105, 98, 101)
    assert st.last_trade().price == D(101) and not st.is_bar_fed
    assert st.high_low(10) == (D(105), D(98))
    # the window (now - 2 s, now]: the trades at +2 s and +3 s only
    assert st.high_low(2) == (D(101), D(98))
    # an explicit end time excludes later trades
    assert st.high_low(2, now_ns=T0 + 1 * NS) == (D(105), D(100))
    assert st.high_low(1, now_ns=T0 + 100 * NS) is None


def test_empty_state_and_bad_arguments():
    st = MarketState(market("ETH-USD"))
    assert st.last_trade() is None and st.last_bars(3) == [] and st.high_low(60) is None
    with pytest.raises(ValueError, match="seconds"):
        st.high_low(0)
    with pytest.raises(ValueError, match="n must be"):
        st.last_bars(-1)


def test_bar_fed_market_uses_bars():
    st = MarketState(market("BTC-USD"))
    for i, (h, l) in enumerate([(110, 100), (120, 105), (115, 90)]):
        st.apply(Bar("BTC-USD", T0 + (i + 1) * 300 * NS, D(h - 1), D(h), D(l), D(l + 1), D(3), 300))
    assert st.is_bar_fed and st.last_trade() is None
    assert [b.high for b in st.last_bars(2)] == [D(120), D(115)]
    assert len(st.last_bars(10)) == 3
    assert st.high_low(600) == (D(120), D(90))  # the last two bars' closes fall in (now-600 s, now]
    assert st.high_low(900) == (D(120), D(90)) and st.high_low(300) == (D(115), D(90))


def test_make_market_data_applies_trades_and_bars(make_market_data):
    md = make_market_data({"BTC-USD": "100"}, trades={"BTC-USD": [Trade("BTC-USD", T0, D(99), D(1), Side.SELL)]})
    assert md.markets["BTC-USD"].last_trade().price == D(99)
    with pytest.raises(KeyError, match="ETH-USD"):
        make_market_data({"BTC-USD": "100"}, bars={"ETH-USD": []})


def test_sample_path_fixture(sample_path):
    assert sample_path == sample_dir() and (sample_path / "SOURCES.md").is_file()
