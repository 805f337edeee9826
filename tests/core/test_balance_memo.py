"""Balances reused between decisions (core/bot/decisions.py, ``BalanceMemo``) are never stale:
after any fill, funding payment, fee, transfer, mark move or market-parameter change the next
balance is computed again, and a reused one is written exactly as a fresh one would be."""

from __future__ import annotations

import random
from decimal import Decimal as D

import attrs

from perpbot.core.bot.decisions import AccountSnapshot, BalanceMemo
from perpbot.core.hookspecs import hookimpl
from perpbot.core.model import Fill, FundingPayment, Liquidity, OrderParams, Side
from perpbot.core.portfolio import Portfolio
from perpbot.core.strategy import StrategyResult
from perpbot.core.testing import market
from tests.core.simple import ScriptedStrategy
from tests.core.test_bot import events, make_bot, run

MARKETS = {"BTC-USD": market("BTC-USD"), "ETH-USD": market("ETH-USD")}


def same(a, b) -> bool:
    """Equal and written the same (every Decimal's text, not only its value)."""
    return a == b and repr(a) == repr(b)


def test_any_change_of_an_input_is_seen_by_the_next_balance():
    rng = random.Random(11)
    pf = Portfolio(D("10000.00"), dict(MARKETS))
    memo = BalanceMemo()
    marks = {"BTC-USD": D("60000.5"), "ETH-USD": D("3000.25")}
    now = 0
    for step in range(600):
        now += 1
        op = rng.randrange(9)
        t = rng.choice(("BTC-USD", "ETH-USD"))
        if op == 0:
            side = rng.choice((Side.BUY, Side.SELL))
            px = marks.get(t, D(100)) + rng.choice((D(-1), D(0), D("0.5")))
            pf.apply_fill(Fill(step, t, side, px, D("0.01") * rng.randint(1, 5), D("0.0123"), Liquidity.TAKER, now))
        elif op == 1:  # funding, sometimes 0 written with another exponent (the value is unchanged)
            amount = rng.choice((D("0.00"), D("0.000"), D("-1.25"), D("0.7")))
            pf.apply_funding(FundingPayment(t, now, D(0), D(1), D(0), amount))
        elif op == 2:
            pf.charge(rng.choice((D("0.10"), D("0"), D("0.0"))), t)
        elif op == 3:  # the mark moves, or is written differently (60000.5 -> 60000.50)
            m0 = marks.get(t, D("100.5"))
            marks[t] = rng.choice((m0 + D(1), m0 - D("0.5"), D(str(m0) + "0")))
        elif op == 4:
            marks.pop(t, None) if rng.random() < 0.3 else marks.setdefault(t, D("100"))
        elif op == 5:  # new market parameters (an equal object, and a changed one)
            m = pf.markets[t]
            pf.markets[t] = rng.choice((
                attrs.evolve(m),  # equal
                attrs.evolve(m, initial_margin_fraction=D(str(m.initial_margin_fraction) + "0")),  # equal, written otherwise
                attrs.evolve(m, initial_margin_fraction=m.initial_margin_fraction * 2),
            ))
        # op 6..8: nothing changes (the memo should be reused)
        got = memo.balance("paper", pf, pf.positions, dict(marks), now)
        want = pf.balance(dict(marks), now)
        assert same(got, want), (step, op, got, want)
    assert memo.hits > 100 and memo.misses > 100  # both paths were exercised


def test_other_account_objects_are_asked_every_time():
    class OwnBalance(Portfolio):
        def balance(self, marks, ts_ns=0):
            return attrs.evolve(super().balance(marks, ts_ns), collateral=D(ts_ns))

    assert BalanceMemo.handles(Portfolio(D(1)))
    assert not BalanceMemo.handles(OwnBalance(D(1)))


class Checker:
    """At every decision: what the strategy saw equals what the bot's queries say now."""

    __name__ = "checker"
    seen: list = []

    @hookimpl
    def on_decision(self, bot, strategy, result):
        md = strategy.last_md
        Checker.seen.append((md.balance, bot.balance(), md.positions, bot.positions()))


def test_a_fill_or_a_funding_payment_is_seen_by_the_very_next_decision(tmp_path):
    class Recording(ScriptedStrategy):
        async def execute_strategy(self, md):
            self.last_md = md
            return await super().execute_strategy(md)

    buy = StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.01")))
    sell = StrategyResult.place(OrderParams("BTC-USD", Side.SELL, size=D("0.004")))
    idle = StrategyResult.nothing()
    ScriptedStrategy.SCRIPT = [buy, idle, sell, idle, idle, buy, idle]
    Checker.seen = []
    bot = make_bot(tmp_path, events(14), Checker())
    bot.strategy.__class__ = Recording
    funded = []

    async def fund():  # a funding payment booked between two decisions (as an exchange reports one)
        funded.append(True)
        bot._account.pending.append(("instant", FundingPayment("BTC-USD", 0, D("0.01"), D(60000), D("0.0001"), D("-0.06"))))

    orig = bot._cycle.run

    async def cycle(now, *a):
        if len(Checker.seen) == 3 and not funded:
            await fund()
            await bot._account.drain()
        await orig(now, *a)

    bot._cycle.run = cycle
    run(bot)
    assert len(Checker.seen) >= 6 and funded
    for i, (seen_bal, bal, seen_pos, pos) in enumerate(Checker.seen):
        assert same(seen_bal, bal) and seen_pos == pos, i
    sizes = [p.get("BTC-USD").size if p.get("BTC-USD") else 0 for _, _, p, _ in Checker.seen]
    assert sizes[:8] == [0, D("0.01"), D("0.01"), D("0.006"), D("0.006"), D("0.006"), D("0.016"), D("0.016")]  # each decision sees the fill before it
    assert bot._cycle.balance_memo.hits > 0  # and balances were reused while nothing changed


def test_the_snapshot_with_a_memo_equals_the_one_without(tmp_path):
    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.01")))]
    bot = make_bot(tmp_path, events(3))
    run(bot)
    memo = BalanceMemo()
    for _ in range(2):  # a miss, then a hit
        a, b = AccountSnapshot.of(bot, memo), AccountSnapshot.of(bot, None)
        b = AccountSnapshot.of(bot, BalanceMemo())
        assert same(a, b) and a.positions == bot.positions() and a.balances == {v: bot.balance(v) for v in bot.portfolios}
    assert memo.hits == 1 and memo.misses == 1


def test_the_snapshot_of_a_two_venue_run_is_what_the_bots_queries_say(tmp_path):
    """Two venues with open positions: positions keyed as ``bot.positions()`` keys them (bare on
    the primary venue, ``venue:ticker`` on the other) and the total equity is every venue's."""
    from tests.strategies.funding_arb.test_funding_multi import COINS, run_bot

    bot = run_bot(tmp_path, {"funding_file": "sample:hl_binance_btc_eth"}, COINS, horizon_h="336")
    snap = AccountSnapshot.of(bot, BalanceMemo())
    assert len(bot.portfolios) == 2
    assert snap.positions == bot.positions() and any(":" in t for t in snap.positions) and any(":" not in t for t in snap.positions)
    assert snap.total_equity == bot.total_equity() == sum((bot.balance(v).equity for v in bot.portfolios), D(0))
    assert snap.balances == {v: bot.balance(v) for v in bot.portfolios}
