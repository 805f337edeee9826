"""Restart reconciliation: paper resume after a crash, and a live venue that moved while the bot was down.

A crash is simulated in-process by raising a BaseException from a hook (the
bot's observers only contain Exception), so ``run()`` ends without its
shutdown: no cancels, no final checkpoint, exactly like a killed process
(tests/e2e/test_restart.py does the same with SIGKILL on the real CLI).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import pytest

from perpbot.core.bot import TradingBot
from perpbot.core.hookspecs import hookimpl
from perpbot.core.model import Fill, Liquidity, Side, Trade
from perpbot.core.plugins import PluginManager
from perpbot.core.testing import book_events, bot_config
from perpbot.plugins.journal import Journal, UnknownPositionsError, session_of
from tests.plugins import journal_fakes
from tests.plugins.journal_fakes import ACCOUNTS, JournalTestPlugin, PingPong, oscillating_events

S = 10**9


class Crash(BaseException):
    pass


class CrashAtCheckpoint:
    """Raises :class:`Crash` at the n-th ``on_checkpoint`` (after the journal wrote its checkpoint)."""

    __name__ = "crash-at-checkpoint"

    def __init__(self, n):
        self.n = n
        self.seen = 0

    @hookimpl(trylast=True)
    def on_checkpoint(self, bot):
        self.seen += 1
        if self.seen == self.n:
            raise Crash(f"killed at checkpoint {self.n}")


class RecordingPingPong(PingPong):
    """PingPong that records what it sees at start (after reconciliation)."""

    name = "pingpong_rec"
    started_with: list = []

    def on_start(self, market_data):
        type(self).started_with.append(dict(market_data.open_orders))


class Plugin(JournalTestPlugin):
    __name__ = "journal-test-plugin-rec"

    @hookimpl
    def register_strategies(self, register):
        register(PingPong)
        register(RecordingPingPong)


@pytest.fixture(autouse=True)
def _clean():
    ACCOUNTS.clear()
    PingPong.restored = []
    RecordingPingPong.started_with = []
    yield
    ACCOUNTS.clear()


def make_bot(tmp_path, events, *extra, exchange="jsim", journal="j.sqlite", strategy="pingpong", **cfg):
    pm = PluginManager(load_entry_points=False, extra_plugins=(Plugin(), *extra), default_plugins=("perpbot.plugins.journal",))
    base = dict(
        exchange=(exchange,),
        strategy=strategy,
        tickers=("BTC-USD",),
        feed="list",
        state_dir=tmp_path,
        feeds={"list": {"events": events}},
        sizer="jfixed",
        journal_enabled=True,
        journal_path=tmp_path / journal,
        snapshot_interval_s=D(10),
        checkpoint_interval_s=D(7),
        exchanges={exchange: {"account": "acct"}},
    )
    base.update(cfg)
    return TradingBot(bot_config(**base), pm)


def crash(bot):
    with pytest.raises(Crash):
        asyncio.run(bot.run())
    session_of(bot).writer.close()  # the process is gone; its writer thread with it


def fills_of(path):
    j = Journal.open(path, readonly=True)
    return [(r["ts_ns"], r["side"], r["price"], r["size"], r["fee"], r["tag"]) for r in j.fills()]


# ---------------------------------------------------------------------------
# paper resume
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("crash_at", [2, 9, 23, 40])
def test_paper_run_resumed_after_a_crash_equals_the_uninterrupted_run(tmp_path, crash_at):
    events = oscillating_events(300)
    whole = make_bot(tmp_path, events, journal="whole.sqlite")
    s_whole = asyncio.run(whole.run())

    crash(make_bot(tmp_path, events, CrashAtCheckpoint(crash_at), journal="cut.sqlite"))
    resumed = make_bot(tmp_path, events, journal="cut.sqlite")
    s_res = asyncio.run(resumed.run())

    # positions, balances and PnL as if nothing happened
    assert resumed.exchange.imported
    assert resumed.portfolio.positions == whole.portfolio.positions
    assert resumed.exchange.acct["portfolio"].collateral == whole.exchange.acct["portfolio"].collateral
    for field in ("final_equity", "realized_pnl", "unrealized_pnl", "fees", "max_drawdown", "orders_sent", "decisions", "events"):
        assert getattr(s_res, field) == getattr(s_whole, field), field
    assert resumed.strategy.cycles == whole.strategy.cycles
    # the journal's live rows tell the same story; superseded rows are voided, ids never reused
    assert fills_of(tmp_path / "cut.sqlite") == fills_of(tmp_path / "whole.sqlite")
    j = Journal.open(tmp_path / "cut.sqlite", readonly=True)
    ids = [r["client_id"] for r in j.intents(include_voided=True)]
    assert len(ids) == len(set(ids))
    assert j.verify() == []
    runs = j.runs()
    assert [r["status"] for r in runs] == ["crashed", "stopped"]
    assert runs[1]["resumed_from"] == runs[0]["run_id"]
    assert "resumed paper run" in runs[1]["reconcile_summary"]
    assert PingPong.restored, "the strategy got its checkpointed state back"


def test_paper_run_without_a_checkpoint_starts_over_and_cancels_the_lost_orders(tmp_path):
    events = oscillating_events(60)
    crash(make_bot(tmp_path, events, CrashAtCheckpoint(1), checkpoint_interval_s=D(1000)))
    # the first checkpoint (clock 0, before any order) is the only one; its crash is after it
    bot = make_bot(tmp_path, events, checkpoint_interval_s=D(1000))
    asyncio.run(bot.run())
    j = Journal.open(tmp_path / "j.sqlite", readonly=True)
    assert j.verify() == []


# ---------------------------------------------------------------------------
# a live venue moved while the bot was down
# ---------------------------------------------------------------------------


def later_events(start_s: int, n: int = 40, mid=D("60000")):
    """A fresh book and quiet trades at ``mid`` (no fills for PingPong's resting orders)."""
    t0 = journal_fakes.T0 + start_s * S
    out = list(book_events("BTC-USD", t0, mid))
    out += [Trade("BTC-USD", t0 + i * S, mid, D("0.01"), Side.BUY, f"L{i}") for i in range(1, n)]
    return out


def run_live_then_crash(tmp_path, crash_at=6):
    bot = make_bot(tmp_path, oscillating_events(120), CrashAtCheckpoint(crash_at), exchange="jvenue", strategy="pingpong_rec")
    crash(bot)
    return bot


def test_live_restart_adopts_our_orders_books_missed_fills_and_marks_vanished_ones(tmp_path):
    first = run_live_then_crash(tmp_path)
    acct = ACCOUNTS["acct"]
    resting = dict(acct["resting"])
    assert resting, "the crashed run left orders on the venue"
    # while the bot is down: one of our orders fills, the venue drops another, someone else places one
    ours = sorted(resting)
    filled = acct_fill = None
    j = Journal.open(tmp_path / "j.sqlite", readonly=True)
    last_cp = j.last_checkpoint()
    jpos_before = sum((D(r["size"]) if r["side"] == "BUY" else -D(r["size"])) for r in j.fills())
    j.close()
    venue = first.exchange
    filled = ours[0]
    acct_fill = venue.fill_resting(filled, ts_ns=last_cp.last_event_ns + 1)
    vanished = []
    if len(ours) > 1:
        vanished = [ours[1]]
        del acct["resting"][ours[1]]
    foreign = attrs_evolve_order(resting[ours[0]], client_id=99_999_999, tag="someone else")
    acct["resting"][foreign.client_id] = foreign

    bot = make_bot(tmp_path, later_events(1000), exchange="jvenue", strategy="pingpong_rec")
    summary = asyncio.run(bot.run())

    j = Journal.open(tmp_path / "j.sqlite", readonly=True)
    run = j.runs()[-1]
    line = run["reconcile_summary"]
    assert f"adopted {len(ours) - 1 - len(vanished)} orders" in line
    assert f"{len(vanished) + 1} vanished" in line and "(1 of them filled)" in line
    assert "booked 1 fills" in line and "1 foreign orders left alone" in line
    assert run["resumed_from"] == j.runs()[-2]["run_id"]
    # the missed fill is journaled once, marked as found by reconciliation
    rec = j.conn.execute("SELECT * FROM fills WHERE source='reconcile'").fetchall()
    assert [(r["client_id"], r["fill_id"], D(r["price"])) for r in rec] == [(filled, acct_fill.fill_id, acct_fill.price)]
    # the filled order and the vanished one got their terminal status from reconciliation
    ups = {r["client_id"]: r["status"] for r in j.conn.execute("SELECT * FROM order_updates WHERE source='reconcile'")}
    assert ups == {filled: "FILLED", **{cid: "CANCELED" for cid in vanished}}
    # at strategy start: our surviving orders adopted (with their tags), the foreign one not
    started = RecordingPingPong.started_with[-1]
    adopted = set(ours) - {filled} - set(vanished)
    assert set(started) == adopted
    assert all(started[c].tag == resting[c].tag for c in adopted)
    # the bot's position equals the venue's (journal's fills + the missed one)
    signed = acct_fill.size if acct_fill.side is Side.BUY else -acct_fill.size
    assert bot.portfolio.positions["BTC-USD"].size == jpos_before + signed
    assert summary.markets and j.verify() == []
    # no client id was ever used twice; the strategy did not duplicate its open order
    ids = [r["client_id"] for r in j.intents(include_voided=True)]
    assert len(ids) == len(set(ids))
    assert sum(1 for o in ACCOUNTS["acct"]["resting"].values() if o.tag == "open") <= 1


def attrs_evolve_order(order, **changes):
    import attrs

    return attrs.evolve(order, **changes)


def _add_foreign_position(size: D, price=D("60000")):
    acct = ACCOUNTS["acct"]
    acct["portfolio"].apply_fill(
        Fill(0, "BTC-USD", Side.BUY if size > 0 else Side.SELL, price, abs(size), D(0), Liquidity.TAKER, 1, fill_id="manual")
    )


def test_unknown_position_refuse_stops_the_start_with_the_list(tmp_path):
    run_live_then_crash(tmp_path)
    _add_foreign_position(D("0.5"))
    bot = make_bot(tmp_path, later_events(1000), exchange="jvenue", strategy="pingpong_rec", unknown_positions="refuse")
    with pytest.raises(UnknownPositionsError, match=r"BTC-USD.*unexplained \+0\.5") as info:
        asyncio.run(bot.run())
    assert info.value.positions == {"BTC-USD": D("0.5")}
    assert RecordingPingPong.started_with == [{}], "the strategy of the refused run never started"
    j = Journal.open(tmp_path / "j.sqlite", readonly=True)
    assert j.runs()[-1]["status"] == "refused"


def test_unknown_position_adopt_keeps_it(tmp_path):
    run_live_then_crash(tmp_path)
    venue_before = ACCOUNTS["acct"]["portfolio"].positions.get("BTC-USD")
    _add_foreign_position(D("0.5"))
    bot = make_bot(tmp_path, later_events(1000), exchange="jvenue", strategy="pingpong_rec", unknown_positions="adopt")
    asyncio.run(bot.run())
    j = Journal.open(tmp_path / "j.sqlite", readonly=True)
    assert "positions: adopt (BTC-USD +0.5)" in j.runs()[-1]["reconcile_summary"]
    adopted = j.conn.execute("SELECT size FROM positions WHERE reason='adopted'").fetchall()
    assert [D(r["size"]) for r in adopted] == [(venue_before.size if venue_before else 0) + D("0.5")]


def test_unknown_position_flatten_sends_a_reduce_only_order_for_the_unexplained_size(tmp_path):
    run_live_then_crash(tmp_path)
    before = ACCOUNTS["acct"]["portfolio"].positions.get("BTC-USD")
    before = before.size if before else D(0)
    _add_foreign_position(D("0.5"))
    bot = make_bot(tmp_path, later_events(1000), exchange="jvenue", strategy="pingpong_rec", unknown_positions="flatten")
    asyncio.run(bot.run())
    j = Journal.open(tmp_path / "j.sqlite", readonly=True)
    flat = j.conn.execute("SELECT * FROM order_intents WHERE tag='flatten-unknown'").fetchall()
    assert [(r["side"], D(r["size"]), r["reduce_only"], r["order_type"]) for r in flat] == [("SELL", D("0.5"), 1, "MARKET")]
    # it went out at the first decision cycle, before the strategy's first order
    first_intent = j.conn.execute(
        "SELECT tag FROM order_intents WHERE run_id=? ORDER BY seq LIMIT 1", (j.runs()[-1]["run_id"],)
    ).fetchone()
    assert first_intent["tag"] == "flatten-unknown"
    fills = j.conn.execute("SELECT size FROM fills WHERE client_id=?", (flat[0]["client_id"],)).fetchall()
    assert [D(r["size"]) for r in fills] == [D("0.5")]
    assert "positions: flatten (BTC-USD +0.5)" in j.runs()[-1]["reconcile_summary"]
    assert before is not None
