"""The funding-arbitrage strategy: entry economics, exits, rebalancing, legging control,
per-leg bookkeeping, restart state; a replay on real dYdX-v3/Binance funding and Binance
prices with a two-venue fill simulator, and through the real bot with two paper venues."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal as D

import attrs
import pytest

from perpbot.core.model import Bar, Fill, FundingPayment, FundingRate, Liquidity, Market, OrderInfo, OrderStatus, OrderType, Position, Side
from perpbot.core.params import parse_params
from perpbot.core.state import MarketData, MarketState
from perpbot.core.strategy import StrategyAction, StrategyContext
from perpbot.strategies.funding_arb import FundingArb
from perpbot.strategies.funding_arb.feed import MARKETS, SAMPLE_BTC_1H, SAMPLE_FUNDING, FundingReplayFeed
from perpbot.strategies.funding_arb.strategy import LegBook

S = 10**9
H = 3600 * S
T0 = 1_696_118_400 * S  # 2023-10-01 00:00 UTC
P, Hd = "BTC-USD", "binance:BTC-USD"


def market() -> Market:
    return Market(ticker="BTC-USD", **MARKETS["BTC"])


def make(**params) -> FundingArb:
    p = parse_params(FundingArb.Params, params, "strategy funding_arb")
    return FundingArb(p, StrategyContext(tickers=(P, Hd), clock=None, markets={P: market(), Hd: market()}))


class Book:
    """MarketStates of both legs fed with bars and settled funding rates."""

    def __init__(self):
        self.states = {t: MarketState(market()) for t in (P, Hd)}
        self.ts = T0

    def price(self, ts, pp, ph=None):
        for t, px in ((P, pp), (Hd, ph if ph is not None else pp)):
            px = D(px)
            self.states[t].apply(Bar(t, ts, px, px, px, px, D(1), 3600))
        self.ts = max(self.ts, ts)

    def rate(self, t, ts, rate_1h, interval_h):
        self.states[t].apply(FundingRate(t, ts, D(rate_1h), settled=True, interval_h=interval_h))
        self.ts = max(self.ts, ts)

    def md(self, positions=None, open_orders=None, ts=None):
        return MarketData(
            ts_ns=ts or self.ts,
            markets=self.states,
            tradable=(P, Hd),
            paused={},
            positions=dict(positions or {}),
            open_orders=dict(open_orders or {}),
            balance=None,
            marks={t: st.last_price for t, st in self.states.items()},
        )


async def warm(s: FundingArb, book: Book, r_primary, r_hedge, hours=30, price="30000"):
    """Feed ``hours`` of hourly dYdX rates and 8-hourly Binance rates at constant levels."""
    for h in range(hours + 1):
        ts = T0 + h * H
        book.price(ts, price)
        book.rate(P, ts, r_primary, 1)
        if h % 8 == 0:
            book.rate(Hd, ts, r_hedge, 8)
        await s.should_execute(book.md(ts=ts))


# -- decisions -----------------------------------------------------------------------------------


async def test_enters_long_cheap_short_rich_with_equal_notional_when_edge_beats_costs():
    s = make(notional_usd="3000")
    book = Book()
    await warm(s, book, "0.00005", "0.00001")  # dYdX 0.5 bp/h, Binance 0.1 bp/h per hour
    res = await s.execute_strategy(book.md())
    assert res.action is StrategyAction.PLACE_ORDERS
    by_t = {o.ticker: o for o in res.orders}
    assert by_t[P].side is Side.SELL and by_t[Hd].side is Side.BUY, "short the rich (dYdX), long the cheap (Binance)"
    assert by_t[P].size == D("0.1") and by_t[Hd].size == D("0.1")  # 3000 / 30000
    assert all(o.order_type is OrderType.LIMIT and o.post_only for o in res.orders)
    assert by_t[P].price == D("30001") and by_t[Hd].price == D("29999"), "at the touch, never crossing"
    # edge = 0.4 bp/h x 168 h x 3000 = 20.16 USD; costs (maker) = 3000 x (2 x 0.0001 + 2 x 0.0002) + 3000 x 0.0005 = 3.3
    econ = s.entry_economics(book.md())
    assert econ["edge"] == D("0.00004") * 168 * 3000
    assert econ["costs"] == D("3000") * (2 * D("0.0001") + 2 * D("0.0002")) + D("3000") * D("0.0005")
    assert "edge 20.16 USD > costs 3.30 USD" in res.reason


async def test_no_entry_when_costs_exceed_the_edge_with_market_execution():
    s = make(execution="market", notional_usd="3000")
    book = Book()
    await warm(s, book, "0.000012", "0.00001")  # 0.02 bp/h spread: edge 1.0 USD
    res = await s.execute_strategy(book.md())
    assert res.action is StrategyAction.NONE
    econ = s.entry_economics(book.md())
    # taker 5 bp both venues, slippage 2 bp: 3000 x 4 x 7 bp + 1.5 = 9.9 USD
    assert econ["costs"] == D("3000") * 4 * D("0.0007") + D("1.5") and econ["edge"] < econ["costs"]


async def test_market_execution_orders_are_ioc_and_exits_reduce_only():
    s = make(execution="market", notional_usd="3000", horizon_h="1000")
    book = Book()
    await warm(s, book, "0.00005", "0.00001")
    res = await s.execute_strategy(book.md())
    assert all(o.order_type is OrderType.MARKET and o.time_in_force.value == "IOC" for o in res.orders)
    pos = {P: Position(P, D("-0.1"), D("30000")), Hd: Position(Hd, D("0.1"), D("30000"))}
    for h in range(31, 80):  # the dYdX rate falls below Binance's: the spread flips
        ts = T0 + h * H
        book.price(ts, "30000")
        book.rate(P, ts, "-0.00005", 1)
        await s.should_execute(book.md(pos, ts=ts))
    res = await s.execute_strategy(book.md(pos))
    assert s.state == "exiting" and "flipped" in res.reason
    assert {(o.ticker, o.side, o.size, o.reduce_only) for o in res.orders} == {(P, Side.BUY, D("0.1"), True), (Hd, Side.SELL, D("0.1"), True)}


def test_both_legs_must_be_among_the_runs_tickers():
    from perpbot.core.errors import ConfigError

    with pytest.raises(ConfigError, match="leg 'binance:BTC-USD' is not among the run's tickers"):
        FundingArb(parse_params(FundingArb.Params, {}, "s"), StrategyContext(tickers=(P,), clock=None, markets={}))
    s = FundingArb(parse_params(FundingArb.Params, {"hedge_venue": "okx"}, "s"),
                   StrategyContext(tickers=(P, "okx:BTC-USD"), clock=None, markets={}))
    assert s.hedge == "okx:BTC-USD"


async def test_warmup_and_cooldown():
    s = make(warmup_h="24")
    book = Book()
    await warm(s, book, "0.00005", "0.00001", hours=10)
    assert (await s.execute_strategy(book.md())).action is StrategyAction.NONE, "not warmed up"
    s = make(reentry_cooldown_h="8", max_hold_h="1")
    book = Book()
    await warm(s, book, "0.00005", "0.00001")
    assert (await s.execute_strategy(book.md())).orders
    pos = {P: Position(P, D("-0.0333"), D("30000")), Hd: Position(Hd, D("0.0333"), D("30000"))}
    await s.execute_strategy(book.md(pos, ts=book.ts + H))  # max hold: exit
    assert s.state == "exiting"
    t_flat = book.ts + 2 * H
    assert (await s.execute_strategy(book.md(ts=t_flat))).action is StrategyAction.NONE and s.state == "flat"
    res = await s.execute_strategy(book.md(ts=t_flat + 8 * H - 1))
    assert res.action is StrategyAction.NONE and "cooling down" in res.reason
    assert (await s.execute_strategy(book.md(ts=t_flat + 8 * H))).orders, "enters again after the cool-down"


async def test_exit_after_max_hold():
    s = make(max_hold_h="48")
    book = Book()
    await warm(s, book, "0.00005", "0.00001")
    await s.execute_strategy(book.md())
    pos = {P: Position(P, D("-0.0333"), D("30000")), Hd: Position(Hd, D("0.0333"), D("30000"))}
    res = await s.execute_strategy(book.md(pos, ts=book.ts + 47 * H))
    assert res.action is StrategyAction.NONE
    res = await s.execute_strategy(book.md(pos, ts=book.ts + 48 * H))
    assert s.state == "exiting" and "held 48" in res.reason and len(res.orders) == 2


async def test_rebalance_brings_the_hedge_back_to_the_primary_notional():
    s = make(notional_usd="3000", rebalance_tolerance="0.02")
    book = Book()
    await warm(s, book, "0.00005", "0.00001")
    await s.execute_strategy(book.md())
    pos = {P: Position(P, D("-0.1"), D("30000")), Hd: Position(Hd, D("0.0985"), D("30000"))}  # 1.5% apart
    assert (await s.execute_strategy(book.md(pos))).action is StrategyAction.NONE
    pos[Hd] = Position(Hd, D("0.097"), D("30000"))  # 3% apart
    res = await s.execute_strategy(book.md(pos))
    (o,) = res.orders
    assert (o.ticker, o.side, o.size, o.tag) == (Hd, Side.BUY, D("0.003"), "farb-rebalance")
    pos[Hd] = Position(Hd, D("0.104"), D("30000"))  # too much hedge: sell back
    (o,) = (await s.execute_strategy(book.md(pos))).orders
    assert (o.side, o.size) == (Side.SELL, D("0.004"))


async def test_one_leg_filled_the_other_resting_is_completed_at_market():
    s = make(notional_usd="3000")
    book = Book()
    await warm(s, book, "0.00005", "0.00001")
    res = await s.execute_strategy(book.md())
    hedge = next(o for o in res.orders if o.ticker == Hd)
    resting = {77: OrderInfo(77, Hd, Side.BUY, hedge.size, hedge.price, OrderStatus.OPEN, OrderType.LIMIT, tag="farb-open", created_ns=book.ts)}
    pos = {P: Position(P, D("-0.1"), D("30000"))}
    res = await s.execute_strategy(book.md(pos, resting))
    assert res.action is StrategyAction.REPLACE_ORDERS and res.cancels == ((77, Hd),)
    (o,) = res.orders
    assert (o.ticker, o.side, o.size, o.order_type) == (Hd, Side.BUY, D("0.1"), OrderType.MARKET)
    # while that market order is on its way, nothing else happens
    flying = {78: OrderInfo(78, Hd, Side.BUY, D("0.1"), None, OrderStatus.OPEN, OrderType.MARKET, tag="farb-rebalance", created_ns=book.ts)}
    assert (await s.execute_strategy(book.md(pos, flying))).action is StrategyAction.NONE


async def test_unfilled_entry_is_requoted_then_forgotten():
    s = make(requote_s="3600")
    book = Book()
    await warm(s, book, "0.00005", "0.00001")
    res = await s.execute_strategy(book.md())
    rest = {i: OrderInfo(i, o.ticker, o.side, o.size, o.price, OrderStatus.OPEN, OrderType.LIMIT, tag="farb-open", created_ns=book.ts)
            for i, o in enumerate(res.orders, start=1)}
    assert (await s.execute_strategy(book.md(None, rest, ts=book.ts + 3599 * S))).action is StrategyAction.NONE
    res = await s.execute_strategy(book.md(None, rest, ts=book.ts + 3600 * S))
    assert res.action is StrategyAction.CANCEL_ORDERS and len(res.cancels) == 2
    res = await s.execute_strategy(book.md(ts=book.ts + 3601 * S))
    assert s.state == "flat" and s.entries == 0 and s.entry_orders == 1 and "did not fill" in res.reason


def test_leg_book_funding_across_reopenings_restarts_and_exact_payments():
    leg = LegBook(P)
    leg.observe_position(D("1.5"))
    leg.observe_position(D("-2.5"))
    leg.observe_position(None)  # flat: the portfolio keeps the market's cumulative funding
    leg.observe_position(D("-3.0"))  # re-opened, same cumulative sum continues
    assert leg.funding == D("-3.0")
    leg.rebase()  # a restart: what was counted stays, the next value seen is the new baseline
    leg.observe_position(D("0.4"))
    leg.observe_position(D("0.1"))
    assert leg.funding == D("-3.3")
    leg.apply_fill(Side.SELL, D("0.1"), D("30000"), D("0.3"))
    leg.apply_fill(Side.BUY, D("0.1"), D("29000"), D("0.29"))
    assert leg.realized == D("100") and leg.fees == D("0.59") and leg.size == 0
    s = make()
    s.on_funding_payment(FundingPayment(P, T0, D("-0.1"), D("30000"), D("0.00005"), D("0.15")))
    s.on_funding_payment(FundingPayment(P, T0 + H, D("-0.1"), D("30000"), D("0.00005"), D("0.15")))
    assert s.legs[P].funding == D("0.30")


async def test_state_roundtrip_json():
    s = make()
    book = Book()
    await warm(s, book, "0.00005", "0.00001")
    await s.execute_strategy(book.md())
    s.on_fill(Fill(1, P, Side.SELL, D("30000"), D("0.0333"), D("0.1"), Liquidity.MAKER, T0))
    state = json.loads(json.dumps(s.get_state()))
    t = make()
    t.restore_state(state)
    assert t.state == "open" and t.long_leg == Hd and t.legs[P].size == D("-0.0333") and t.legs[P].fees == D("0.1")
    assert t.rates[P].value == s.rates[P].value and t.rates[Hd].interval_h == 8


# -- replay on real data with a two-venue fill simulator --------------------------------------------


class TwoVenueSim:
    """Both venues: post-only limits fill at their price when a LATER bar trades through them
    (strictly), market orders at the next bar's open; maker 1 bp / taker 5 bp; funding on each
    settled rate: ``-size * price * rate_1h * interval_h`` (each venue settles at its own
    interval), booked on the position like the bot's portfolio does."""

    def __init__(self, strategy: FundingArb):
        self.s = strategy
        self.states = {t: MarketState(market()) for t in (P, Hd)}
        self.pos = {t: Position(t) for t in (P, Hd)}
        self.orders: dict[int, OrderInfo] = {}
        self.cid = 0
        self.funding = {P: D(0), Hd: D(0)}
        self.fees = {P: D(0), Hd: D(0)}
        self.drifts = []
        self.now = 0

    def _fill(self, o: OrderInfo, px: D, liq: Liquidity):
        fee = o.size * px * (D("0.0001") if liq is Liquidity.MAKER else D("0.0005"))
        p = self.pos[o.ticker]
        signed = o.size if o.side is Side.BUY else -o.size
        new = p.size + signed
        entry = p.entry_price
        if p.size == 0 or (p.size > 0) == (signed > 0):
            entry = (abs(p.size) * p.entry_price + o.size * px) / abs(new)
        elif new == 0:
            entry = D(0)
        self.pos[o.ticker] = attrs.evolve(p, size=new, entry_price=entry, fees=p.fees + fee)
        self.fees[o.ticker] += fee
        del self.orders[o.client_id]
        self.s.on_fill(Fill(o.client_id, o.ticker, o.side, px, o.size, fee, liq, self.now, tag=o.tag))

    def on_event(self, ev):
        st = self.states[ev.ticker]
        st.apply(ev)
        if type(ev) is Bar:
            start = ev.ts_ns - ev.interval_s * S
            for o in [o for o in self.orders.values() if o.ticker == ev.ticker and o.created_ns <= start]:
                if o.order_type is OrderType.MARKET:
                    self._fill(o, ev.open, Liquidity.TAKER)
                elif (o.side is Side.BUY and ev.low < o.price) or (o.side is Side.SELL and ev.high > o.price):
                    self._fill(o, o.price, Liquidity.MAKER)
        elif type(ev) is FundingRate:
            p = self.pos[ev.ticker]
            if p.size:
                amount = -p.size * (ev.oracle_price or st.last_price) * ev.rate_1h * ev.interval_h
                self.pos[ev.ticker] = attrs.evolve(p, funding=p.funding + amount)
                self.funding[ev.ticker] += amount

    def md(self) -> MarketData:
        return MarketData(
            ts_ns=self.now, markets=self.states, tradable=(P, Hd), paused={},
            positions={t: p for t, p in self.pos.items() if p.size},
            open_orders=dict(self.orders), balance=None,
            marks={t: st.last_price for t, st in self.states.items()},
        )

    async def decide(self):
        md = self.md()
        if not await self.s.should_execute(md):
            return
        np_, nh = abs(self.pos[P].size) * md.marks[P], abs(self.pos[Hd].size) * md.marks[Hd]
        if not self.orders and self.pos[P].size and self.pos[Hd].size:
            assert (self.pos[P].size > 0) != (self.pos[Hd].size > 0), "the legs are always opposite"
            self.drifts.append(abs(np_ - nh) / self.s.target_notional)
        res = await self.s.execute_strategy(md)
        for cid, _t in res.cancels:
            self.orders.pop(cid, None)
        for o in res.orders:
            self.cid += 1
            self.orders[self.cid] = OrderInfo(self.cid, o.ticker, o.side, o.size, o.price, OrderStatus.OPEN, o.order_type,
                                              reduce_only=o.reduce_only, post_only=o.post_only, tag=o.tag, created_ns=self.now)

    async def run(self, feed):
        async for batch in feed.batches():
            self.now = batch[0].ts_ns
            for ev in batch:
                self.on_event(ev)
            await self.decide()
        return self


@pytest.fixture
def hourly_feed():
    if not SAMPLE_FUNDING.exists() or not SAMPLE_BTC_1H.exists():
        pytest.skip("embedded funding sample missing (examples/data/funding)")

    class Ctx:
        tickers = (P, Hd)

    return FundingReplayFeed({"prices_file": "sample:btc_1h"}, Ctx())


async def test_replay_on_real_funding_legs_stay_within_tolerance_and_funding_is_booked_per_leg(hourly_feed):
    s = make(notional_usd="5000", rebalance_tolerance="0.02")
    sim = await TwoVenueSim(s).run(hourly_feed)
    assert s.entries >= 3 and s.exits >= 2, s.summary_lines()
    assert sim.drifts, "the legs were held together"
    assert max(sim.drifts) <= D("0.02"), f"legs drifted {max(sim.drifts)}"
    # per-leg funding from the position snapshots equals what the venues paid
    assert s.legs[P].funding == sim.funding[P]
    assert s.legs[Hd].funding == sim.funding[Hd]
    assert s.legs[P].fees == sim.fees[P] and s.legs[Hd].fees == sim.fees[Hd]
    # the arbitrage is short dYdX's richer funding in this quarter: it collects there, pays less on Binance
    assert sim.funding[P] > 0 and sim.funding[P] + sim.funding[Hd] > 0
    lines = s.summary_lines()
    assert lines[1].startswith(f"  leg {P}: funding +") and lines[2].startswith(f"  leg {Hd}: funding ")
    assert "= net" in lines[3]
    tot = s.totals()
    assert tot["net"] == tot["funding"] - tot["fees"] + tot["price_pnl"]


# -- through the real bot with two paper venues ------------------------------------------------------


def test_funding_arb_through_the_bot_with_two_paper_venues(tmp_path, hourly_feed):
    pytest.importorskip("perpbot.exchanges.paper")
    from perpbot.core.bot import TradingBot
    from perpbot.core.plugins import PluginManager
    from perpbot.core.testing import bot_config

    cfg = bot_config(
        exchange=("paper", "binance"),
        venues={"binance": "paper"},
        strategy="funding_arb",
        tickers=(P, Hd),
        feed="funding_replay",
        feeds={"funding_replay": {"prices_file": "sample:btc_1h", "end": "2023-11-15"}},
        state_dir=tmp_path,
        decision_interval_s=D(3600),
        strategies={"funding_arb": {"notional_usd": "5000"}},
    )
    pm = PluginManager(load_entry_points=False, default_plugins=("perpbot.exchanges.paper", "perpbot.strategies.funding_arb", "perpbot.plugins.sizers", "perpbot.plugins.risk"))
    bot = TradingBot(cfg, pm)
    asyncio.run(bot.run())
    s = bot.strategy
    assert s.entries >= 1, s.summary_lines()
    # the strategy's per-leg books agree with each venue's portfolio
    assert s.legs[P].fees == bot.portfolios["paper"].fees_paid
    assert s.legs[Hd].fees == bot.portfolios["binance"].fees_paid
    assert s.legs[P].funding == bot.portfolios["paper"].funding_net
    assert s.legs[Hd].funding == bot.portfolios["binance"].funding_net
    sp = bot.portfolios["paper"].positions.get("BTC-USD")
    sh = bot.portfolios["binance"].positions.get("BTC-USD")
    if sp is not None and sh is not None and sp.size and sh.size:
        assert abs(abs(sp.size) - abs(sh.size)) <= D("0.0001") * 10
    assert s.max_drift <= D("0.05")
