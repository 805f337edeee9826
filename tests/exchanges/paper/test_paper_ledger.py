"""Issue 10.3: one fill ledger. The bot's portfolio of a paper venue IS the exchange's ledger
(``PaperExchange.account_ledger()``), booked once, with the figures the bot's own booking gave."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import pytest

from perpbot.core.bot import TradingBot
from perpbot.core.hookspecs import hookimpl
from perpbot.core.model import FundingRate, MarginMode, OraclePrice, OrderParams, OrderType, Side
from perpbot.core.plugins import PluginManager
from perpbot.core.portfolio import Portfolio
from perpbot.core.strategy import StrategyResult
from perpbot.core.testing import book_events, bot_config
from perpbot.exchanges.paper.ledger import PaperLedger
from tests.core.simple import ScriptedStrategy, TestPlugin

from paper_harness import make_market

HOUR = 3600 * 10**9
T0 = 1_700_002_800 * 10**9 + 1000  # just after an hour (1_700_002_800 s is a whole hour)
S = 10**9


class Recorder:
    """Observer: every account event the bot announced, booked into a reference Portfolio the
    way the bot booked them before the ledger was shared (apply_fill / apply_funding / charge)."""

    __name__ = "ledger-recorder"

    def __init__(self, collateral: D, markets):
        self.ref = Portfolio(collateral, markets)
        self.seen_at_first_fill = None

    @hookimpl
    def on_fill(self, bot, fill):
        self.ref.apply_fill(fill)

    @hookimpl
    def on_funding_payment(self, bot, payment):
        self.ref.apply_funding(payment)

    @hookimpl
    def on_liquidation(self, bot, liquidation):
        self.ref.charge(liquidation.fee, liquidation.ticker, liquidation_fee=True)


def _events():
    evs = []
    evs += book_events("BTC-USD", T0, D("100"), spread=D("2"), size=D("20"))
    evs += book_events("ETH-USD", T0, D("100"), spread=D("0.2"), size=D("20"))
    t = T0 + 2 * S  # the second decision (after both books) places the orders
    evs.append(OraclePrice("ETH-USD", t, D("100")))
    for k in range(1, 4):  # three hours: positions snapshotted at the hour, the rates published, settled
        h = T0 - T0 % HOUR + k * HOUR
        evs.append(OraclePrice("ETH-USD", h, D("100")))
        evs.append(FundingRate("ETH-USD", h + 2_000_000, D("0.0001"), True, 1, D("100")))
        evs.append(FundingRate("BTC-USD", h + 2_000_000, D("0.0002"), True, 1, D("100")))
        t = h + 61 * S
        evs.append(OraclePrice("ETH-USD", t, D("100")))
        evs.append(OraclePrice("BTC-USD", t, D("100")))
    # BTC falls 3%: the isolated child (about 25 USD behind 500 USD of BTC) is liquidated
    evs += book_events("BTC-USD", t + S, D("97"), spread=D("2"), size=D("20"))
    evs.append(OraclePrice("ETH-USD", t + 2 * S, D("100.5")))
    return evs


PLACE = [
    StrategyResult.nothing(),
    StrategyResult.place(
        OrderParams("BTC-USD", Side.BUY, OrderType.MARKET, size=D("5"), margin_mode=MarginMode.ISOLATED),
        OrderParams("ETH-USD", Side.BUY, OrderType.MARKET, size=D("3")),
    ),
]


def _bot(tmp_path, *extra, script=PLACE, journal=None, **cfg):
    markets = {t: make_market(t) for t in ("BTC-USD", "ETH-USD")}
    ScriptedStrategy.SCRIPT = list(script)
    ScriptedStrategy.seen = []
    ScriptedStrategy.fills = []
    rec = Recorder(D("1000"), markets)
    base = dict(
        exchange=("paper",),
        strategy="scripted",
        tickers=("BTC-USD", "ETH-USD"),
        feed="list",
        state_dir=tmp_path,
        feeds={"list": {"events": _events(), "markets": markets}},
        exchanges={"paper": {"collateral": "1000"}},
        sizer="test_notional",
    )
    defaults = ("perpbot.exchanges.paper",)
    if journal is not None:
        base.update(journal_enabled=True, journal_path=tmp_path / journal, checkpoint_interval_s=D(600))
        defaults += ("perpbot.plugins.journal",)
    base.update(cfg)
    pm = PluginManager(load_entry_points=False, extra_plugins=(TestPlugin(), rec, *extra), default_plugins=defaults)
    return TradingBot(bot_config(**base), pm), rec


def _run(tmp_path, monkeypatch):
    booked_into = []
    for name in ("apply_fill", "apply_funding", "charge"):
        orig = getattr(Portfolio, name)

        def spy(self, *a, _orig=orig, _name=name, **kw):
            booked_into.append((_name, self))
            return _orig(self, *a, **kw)

        monkeypatch.setattr(Portfolio, name, spy)
    bot, rec = _bot(tmp_path)
    summary = asyncio.run(bot.run())
    return bot, summary, rec, booked_into


def test_the_bot_reads_the_exchange_ledger_and_books_nothing_twice(tmp_path, monkeypatch):
    bot, summary, rec, booked_into = _run(tmp_path, monkeypatch)
    ex = bot.exchange
    ledger = bot.portfolios["paper"]
    # one object: the exchange's own ledger, not a second booking
    assert isinstance(ledger, PaperLedger) and ledger is ex.account_ledger()
    assert bot.portfolio is ledger
    # the run had an isolated position, a cross one, funding and a liquidation
    assert set(ex.subs) == {0, 128}
    assert ex.liquidations and ex.liquidations[0].ticker == "BTC-USD"
    assert {p.ticker for p in ex.funding_payments} == {"BTC-USD", "ETH-USD"}
    # every apply_fill / apply_funding / charge went into one of the exchange's subaccounts
    subs = {id(s.portfolio) for s in ex.subs.values()}
    assert {n for n, _ in booked_into} >= {"apply_fill", "apply_funding", "charge"}
    # (besides this test's own reference portfolio, rec.ref)
    others = [(n, pf) for n, pf in booked_into if id(pf) not in subs and pf is not rec.ref]
    assert not others, others
    assert not hasattr(ledger, "apply_fill")


def test_ledger_figures_equal_the_former_bot_booking(tmp_path, monkeypatch):
    bot, summary, rec, _ = _run(tmp_path, monkeypatch)
    ledger, ref = bot.portfolios["paper"], rec.ref
    marks = bot.venue_marks("paper")
    for name in ("collateral", "fees_paid", "funding_net", "realized_pnl", "liquidation_fees", "fills",
                 "starting_collateral"):
        assert getattr(ledger, name) == getattr(ref, name), name
    assert ledger.liquidation_fees > 0 and ledger.funding_net != 0
    assert set(ledger.stats) == set(ref.stats)
    for t in ref.stats:
        assert ledger.stats[t] == ref.stats[t], t
    assert set(ledger.positions) == set(ref.positions)
    for t, p in ref.positions.items():
        q = ledger.positions[t]
        assert (q.size, q.entry_price, q.realized_pnl, q.fees, q.funding) == (
            p.size, p.entry_price, p.realized_pnl, p.fees, p.funding
        ), t
    # the isolated market shows as ISOLATED (documented consequence), the cross one as CROSS
    assert ledger.positions["BTC-USD"].margin_mode is MarginMode.ISOLATED
    assert ledger.positions["ETH-USD"].margin_mode is MarginMode.CROSS
    assert ledger.balance(marks, 7) == ref.balance(marks, 7)
    assert ledger.equity(marks) == ref.equity(marks) == summary.final_equity
    assert ledger.open_positions().keys() == ref.open_positions().keys() == {"ETH-USD"}
    assert ledger.gross_notional(marks) == ref.gross_notional(marks)
    assert ledger.unrealized_pnl(marks) == ref.unrealized_pnl(marks)


def test_the_ledger_is_read_only(tmp_path, monkeypatch):
    bot, _, _, _ = _run(tmp_path, monkeypatch)
    ledger = bot.portfolios["paper"]
    before = ledger.stats["ETH-USD"].trades
    ledger.stats["ETH-USD"].trades += 5  # a copy: the exchange is untouched
    ledger.positions.pop("ETH-USD")
    assert ledger.stats["ETH-USD"].trades == before and "ETH-USD" in ledger.positions
    with pytest.raises(AttributeError):
        ledger.collateral = D(0)


class Crash(BaseException):
    pass


class CrashAtCheckpoint:
    """Raises :class:`Crash` at the n-th ``on_checkpoint`` (after the journal wrote it)."""

    __name__ = "ledger-crash-at-checkpoint"

    def __init__(self, n):
        self.n, self.seen = n, 0

    @hookimpl(trylast=True)
    def on_checkpoint(self, bot):
        self.seen += 1
        if self.seen == self.n:
            raise Crash(f"killed at checkpoint {self.n}")


@pytest.mark.parametrize("crash_at", [2, 4])
def test_a_resumed_paper_run_restores_the_ledger_from_the_exchange_state(tmp_path, crash_at):
    from perpbot.plugins.journal import session_of

    whole, _ = _bot(tmp_path, journal="whole.sqlite")
    s_whole = asyncio.run(whole.run())

    cut, _ = _bot(tmp_path, CrashAtCheckpoint(crash_at), journal="cut.sqlite")
    with pytest.raises(Crash):
        asyncio.run(cut.run())
    session_of(cut).writer.close()
    held = {t: p.size for t, p in cut.portfolios["paper"].positions.items()}
    resumed, _ = _bot(tmp_path, journal="cut.sqlite", script=[])  # the orders were placed before the crash
    s_res = asyncio.run(resumed.run())

    assert resumed.resumed and resumed.portfolios["paper"] is resumed.exchange.account_ledger()
    assert held == {"BTC-USD": D(5), "ETH-USD": D(3)}  # the crash came with isolated and cross positions open
    a, b = resumed.portfolios["paper"], whole.portfolios["paper"]
    for name in ("collateral", "fees_paid", "funding_net", "realized_pnl", "liquidation_fees", "fills"):
        assert getattr(a, name) == getattr(b, name), name
    assert a.positions == b.positions and a.stats == b.stats
    for field in ("final_equity", "realized_pnl", "unrealized_pnl", "fees", "liquidations"):
        assert getattr(s_res, field) == getattr(s_whole, field), field


def test_resume_api_leaves_a_ledger_venue_to_the_exchange(tmp_path, monkeypatch):
    from perpbot.core.model import Fill, Liquidity

    bot, _, _, _ = _run(tmp_path, monkeypatch)
    resume = bot._resume
    ledger = bot.portfolios["paper"]
    assert resume.books_itself("paper")
    figures = (ledger.collateral, ledger.positions, ledger.stats, ledger.fills)
    called = []
    resume.restore_portfolio("paper", called.append)
    resume.drop_position("paper", "ETH-USD")
    trades_before = bot.ledger.state()
    fill = Fill(1, "ETH-USD", Side.SELL, D("100"), D("1"), D("0.05"), Liquidity.TAKER, bot.clock.now_ns() + 1,
                fill_id="while-down-1", venue="paper")
    resume.book_fills_while_down("paper", {}, [fill])
    # nothing restored, dropped or booked into the exchange's ledger; the trade ledger got the fill
    assert called == []
    assert (ledger.collateral, ledger.positions, ledger.stats, ledger.fills) == figures
    assert bot.ledger.state() != trades_before
    assert bot.last_fill_ns == fill.ts_ns


def test_one_subaccount_ledger_reads_as_the_merge_would(tmp_path):
    """Issue 11.4: with the parent alone, positions are that portfolio's, in a new dict each time
    (changing it changes nothing), and sums equal the portfolio's; two subaccounts still merge."""
    from types import SimpleNamespace

    from perpbot.core.model import Fill, Liquidity

    mk = make_market("BTC-USD")
    parent = Portfolio(D("1000.50"), {"BTC-USD": mk})
    parent.apply_fill(Fill(1, "BTC-USD", Side.BUY, D("60000"), D("0.01"), D("0.3"), Liquidity.TAKER, T0))
    subs = {0: SimpleNamespace(portfolio=parent)}
    ledger = PaperLedger(lambda: SimpleNamespace(subs=subs))
    pos = ledger.positions
    assert pos == parent.positions and pos is not parent.positions
    pos.clear()
    assert ledger.positions == parent.positions and ledger.positions["BTC-USD"].size == D("0.01")
    assert str(ledger.collateral) == str(sum((parent.collateral,), D(0)))
    odd = PaperLedger(lambda: SimpleNamespace(subs={0: SimpleNamespace(portfolio=Portfolio(D("1E+3"), {}))}))
    assert str(odd.collateral) == "1000"  # written as the sum over subaccounts writes it
    child = Portfolio(D("0"), {"BTC-USD": mk})
    child.apply_fill(Fill(2, "BTC-USD", Side.SELL, D("61000"), D("0.01"), D("0.2"), Liquidity.TAKER, T0))
    subs[128] = SimpleNamespace(portfolio=child)
    merged = ledger.positions["BTC-USD"]
    assert merged.fees == parent.positions["BTC-USD"].fees + child.positions["BTC-USD"].fees
