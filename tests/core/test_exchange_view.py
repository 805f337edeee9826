"""The read-only MarketView an exchange client gets instead of state_of/book_of closures (issue 10.3)."""

from decimal import Decimal as D

import attrs

from perpbot.core.clock import SimulatedClock
from perpbot.core.exchange import ExchangeContext, MarketView
from perpbot.core.model import BookSnapshot, OraclePrice, OrderRequest, OrderStatus, OrderType, Side
from perpbot.core.plugins import PluginManager
from perpbot.core.state import MarketState
from perpbot.core.testing import book_events, bot_config, market

T0 = 1_723_161_255 * 10**9


def snapshot(ticker="BTC-USD", ts=T0, bid="59999", ask="60001"):
    return BookSnapshot(ticker, ts, bids=((D(bid), D("2")),), asks=((D(ask), D("2")),))


def test_view_reads_the_states_mapping_when_called_with_the_venue_prefix():
    states: dict = {}
    markets = {"BTC-USD": market("BTC-USD")}
    primary = MarketView(states, markets)
    other = MarketView(states, markets, "binance:")
    assert primary.state("BTC-USD") is None and primary.book("BTC-USD") is None
    # filled after the views were built (the bot knows its markets only later)
    states["BTC-USD"] = MarketState(market("BTC-USD"))
    states["binance:BTC-USD"] = MarketState(market("BTC-USD"))
    assert primary.state("BTC-USD") is states["BTC-USD"]
    assert other.state("BTC-USD") is states["binance:BTC-USD"]
    assert other.book("BTC-USD") is states["binance:BTC-USD"].book
    assert primary.state("ETH-USD") is None and primary.market("ETH-USD") is None


def test_mark_is_oracle_then_mid_then_the_market_tables_oracle():
    st = MarketState(market("BTC-USD"))
    table = {"BTC-USD": attrs.evolve(market("BTC-USD"), oracle_price=D("123"))}
    view = MarketView({"BTC-USD": st}, table)
    # no prices yet: the state's own market parameters (the live copy) give the oracle price
    assert view.market("BTC-USD") is st.market
    assert view.mark("BTC-USD") == st.market.oracle_price
    st.apply(snapshot())
    assert view.mark("BTC-USD") == D("60000")  # mid
    st.apply(OraclePrice("BTC-USD", T0 + 1, D("60010")))
    assert view.mark("BTC-USD") == D("60010")  # oracle first
    # a market without a state: the venue's table
    only_table = MarketView({}, table)
    assert only_table.market("BTC-USD") is table["BTC-USD"]
    assert only_table.mark("BTC-USD") == D("123")


def test_context_keeps_state_of_and_book_of_as_aliases_of_the_view():
    st = MarketState(market("BTC-USD"))
    view = MarketView({"BTC-USD": st}, {})
    ctx = ExchangeContext(clock=SimulatedClock(T0), markets={}, view=view)
    assert ctx.state_of("BTC-USD") is st and ctx.book_of("BTC-USD") is st.book
    # the older form: callables in, a view out
    old = ExchangeContext(clock=SimulatedClock(T0), markets={}, state_of={"BTC-USD": st}.get)
    assert old.view.state("BTC-USD") is st and old.view.book("BTC-USD") is st.book
    bare = ExchangeContext(clock=SimulatedClock(T0), markets={})
    assert bare.view.state("BTC-USD") is None and bare.book_of("BTC-USD") is None
    # duck-typed contexts without a view (older tests and plugins)
    assert MarketView.of(ctx) is view
    assert MarketView.of(old).state("BTC-USD") is st


def test_paper_exchange_matches_against_the_views_book():
    from perpbot.exchanges.paper import PaperExchange

    clock = SimulatedClock(T0)
    states: dict = {}
    ctx = ExchangeContext(clock=clock, markets={"BTC-USD": market("BTC-USD")}, view=MarketView(states, {}))
    ex = PaperExchange({}, ctx)
    states["BTC-USD"] = st = MarketState(market("BTC-USD"))
    ev = snapshot()
    st.apply(ev)
    ex.on_market_event(ev)
    res = ex.submit(OrderRequest(1, "BTC-USD", Side.BUY, D("0.001"), OrderType.MARKET))
    assert res.status is OrderStatus.FILLED and res.avg_price == D("60001")


def test_the_bot_hands_each_exchange_a_view_of_its_own_states(tmp_path):
    from tests.core.simple import TestPlugin

    pm = PluginManager(
        load_entry_points=False, extra_plugins=(TestPlugin(),), default_plugins=("perpbot.exchanges.paper",)
    )
    from perpbot.core.bot import TradingBot

    cfg = bot_config(
        exchange=("paper",), strategy="scripted", tickers=("BTC-USD",), feed="list", state_dir=tmp_path,
        feeds={"list": {"events": book_events("BTC-USD", T0, D("60000"))}}, sizer="test_notional",
    )
    bot = TradingBot(cfg, pm)
    view = bot.exchanges["paper"].context.view
    assert isinstance(view, MarketView)
    assert view.state("BTC-USD") is bot.states["BTC-USD"]
    assert bot.exchanges["paper"].context.state_of("BTC-USD") is bot.states["BTC-USD"]
