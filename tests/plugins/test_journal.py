"""The journal: intent before send, exact Decimal storage, migrations, crash safety, consistency.

Bots here run the real :class:`perpbot.core.bot.TradingBot` with the journal plugin on an
in-memory feed and the deterministic exchanges of ``journal_fakes``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from perpbot.core.testing import driving_bot
from perpbot.core.bot import ClientIdAllocator, TradingBot
from perpbot.core.errors import DataError
from perpbot.core.hookspecs import hookimpl
from perpbot.core.model import Fill, Liquidity, OrderRequest, OrderResult, OrderStatus, OrderType, Side
from perpbot.core.plugins import PluginManager
from perpbot.core.testing import bot_config
from perpbot.plugins.journal import DuplicateClientId, DuplicateFill, Journal, JournalWriter, session_of
from perpbot.plugins.journal.codec import dumps_state, loads_state
from perpbot.plugins.journal.schema import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version
from tests.plugins.journal_fakes import JournalTestPlugin, oscillating_events

REPO = Path(__file__).resolve().parents[2]


def make_bot(tmp_path, *extra, events=None, exchange="jsim", journal="j.sqlite", ex_opts=None, **cfg):
    pm = PluginManager(
        load_entry_points=False,
        extra_plugins=(JournalTestPlugin(), *extra),
        default_plugins=("perpbot.plugins.journal",),
    )
    base = dict(
        exchange=(exchange,),
        strategy="pingpong",
        tickers=("BTC-USD",),
        feed="list",
        state_dir=tmp_path,
        feeds={"list": {"events": events if events is not None else oscillating_events(120)}},
        sizer="jfixed",
        journal_enabled=True,
        journal_path=tmp_path / journal,
        snapshot_interval_s=D(10),
        exchanges={exchange: dict(ex_opts or {})},
    )
    base.update(cfg)
    return TradingBot(bot_config(**base), pm)


def order(cid=7, size="0.0123", price="60000.5", side=Side.BUY):
    return OrderRequest(
        client_id=cid, ticker="BTC-USD", side=side, size=D(size), order_type=OrderType.LIMIT, price=D(price), tag="t"
    )


# ---------------------------------------------------------------------------
# intent before send
# ---------------------------------------------------------------------------


def test_intent_is_committed_before_the_order_reaches_the_exchange(tmp_path):
    path = tmp_path / "j.sqlite"
    bot = make_bot(tmp_path, ex_opts={"raise_on_place": True, "journal_path": str(path)})
    summary = asyncio.run(bot.run())
    seen = bot.exchange.intent_seen
    assert seen, "the strategy should have tried to place orders"
    # at the moment place_order ran, another connection already saw the committed intent
    for cid, row in seen:
        assert row is not None, f"intent of {cid} not committed when the order was sent"
        assert row[0] == cid
    assert summary.orders_rejected == len(seen)  # the exchange raised; the bot recorded a rejection
    j = Journal.open(path, readonly=True)
    intents = {r["client_id"]: r for r in j.intents()}
    assert set(intents) == {cid for cid, _ in seen}
    results = j.conn.execute("SELECT client_id, success, error FROM order_results").fetchall()
    assert {r["client_id"] for r in results} == set(intents)
    assert all(r["success"] == 0 and "venue unreachable" in r["error"] for r in results)
    assert j.verify() == []


class ReuseIdPlugin:
    """Makes the bot's allocator hand out an id the journal already holds."""

    __name__ = "reuse-id"

    def __init__(self, cid):
        self.cid = cid

    @hookimpl
    def on_decision(self, bot, strategy, result):
        driving_bot(bot).client_ids = ClientIdAllocator(start=self.cid)


def test_an_order_whose_client_id_is_journaled_is_not_sent(tmp_path):
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    j.start_run("old", ts_ns=0, strategy="pingpong", venues=["jsim"], tickers=["BTC-USD"])
    j.record_intent("old", order(cid=4242), ts_ns=1, venue="jsim")
    j.close()
    bot = make_bot(tmp_path, ReuseIdPlugin(4242), events=oscillating_events(5))
    summary = asyncio.run(bot.run())
    # the journal refused the duplicate id, so the exchange never saw the order
    assert 4242 not in [o.client_id for o in bot.exchange.acct["resting"].values()]
    assert summary.orders_sent == 0 and summary.orders_rejected >= 1
    j = Journal.open(path, readonly=True)
    assert [r["run_id"] for r in j.intents()] == ["old"]


def test_duplicate_client_id_raises_in_the_store(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.record_intent("r", order(cid=1), ts_ns=1, venue="paper")
    with pytest.raises(DuplicateClientId, match="client id 1 is already in the journal"):
        j.record_intent("r", order(cid=1, size="1"), ts_ns=2, venue="paper")
    assert j.count("order_intents") == 1


def test_restart_reserves_every_journaled_client_id(tmp_path):
    bot1 = make_bot(tmp_path)
    asyncio.run(bot1.run())
    first = Journal.open(tmp_path / "j.sqlite", readonly=True).all_client_ids()
    assert first
    bot2 = make_bot(tmp_path, ReuseIdPlugin(min(first)))  # even a clashing allocator cannot reuse them
    asyncio.run(bot2.run())
    j = Journal.open(tmp_path / "j.sqlite", readonly=True)
    ids = [r["client_id"] for r in j.intents(include_voided=True)]
    assert len(ids) == len(set(ids))
    assert j.verify() == []


# ---------------------------------------------------------------------------
# what a run writes
# ---------------------------------------------------------------------------


def test_a_run_journals_fills_exactly_as_the_exchange_made_them(tmp_path):
    bot = make_bot(tmp_path)
    summary = asyncio.run(bot.run())
    made = bot.exchange.acct["fills"]
    assert made
    j = Journal.open(tmp_path / "j.sqlite", readonly=True)
    rows = j.fills()
    assert len(rows) == len(made)
    for row, f in zip(rows, made):
        assert D(row["price"]) == f.price and row["price"] == str(f.price)
        assert row["size"] == str(f.size) and row["fee"] == str(f.fee)
        assert (row["client_id"], row["side"], row["liquidity"], row["ts_ns"], row["fill_id"], row["tag"]) == (
            f.client_id, f.side.value, f.liquidity.value, f.ts_ns, f.fill_id, f.tag,
        )
    # every intent has a result; the run row holds the summary
    assert j.count("order_results") == j.count("order_intents") == summary.orders_sent
    run = j.runs()[-1]
    assert run["status"] == "stopped" and run["stop_reason"] == "end of data"
    assert D(json.loads(run["summary_json"])["final_equity"]) == summary.final_equity
    # equity snapshots carry exact Decimal text; the last one equals the final equity
    last = j.conn.execute("SELECT equity FROM equity_snapshots ORDER BY seq DESC LIMIT 1").fetchone()
    assert D(last["equity"]) == summary.final_equity
    # position snapshots after fills and strategy state on change
    after_fills = j.conn.execute("SELECT COUNT(*) FROM positions WHERE reason='fill'").fetchone()[0]
    assert after_fills == j.count("fills") > 0  # one position snapshot per fill
    pos = j.conn.execute("SELECT size FROM positions WHERE reason='stop'").fetchall()
    assert [D(p["size"]) for p in pos] == [bot.portfolio.positions["BTC-USD"].size]
    state, _row = j.latest_strategy_state("pingpong")
    assert state["cycles"] == bot.strategy.cycles and state["tp_sum"] == bot.strategy.tp_sum
    # the bot cancels its own open orders at stop: one cancel row per order, requested by the bot
    # (the venue's CANCELED update for it is an update, not a second cancel)
    cancels = j.conn.execute("SELECT source, status, error FROM cancels").fetchall()
    assert [(c["source"], c["status"], c["error"]) for c in cancels] == [("bot", "CANCELED", "")]
    assert j.conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] >= 2
    cursor = j.cursor("list")
    assert cursor["events"] == bot.events_read == j.last_checkpoint().events_read
    assert j.verify() == []


class CancelAtDecision:
    """At the n-th decision, cancels every open order through the bot (and one unknown id)."""

    __name__ = "cancel-at-decision"

    def __init__(self, n):
        self.n = n
        self.seen = 0
        self.canceled = []

    @hookimpl
    async def on_decision(self, bot, strategy, result):
        self.seen += 1
        bot = driving_bot(bot)
        if self.seen == self.n:
            for cid in list(bot.open_orders):
                self.canceled.append(cid)
                await bot.cancel_order(cid)
            await bot.cancel_order(123, "BTC-USD")  # not an order of ours: the venue refuses


def test_cancel_requests_are_journaled_once_with_their_outcome(tmp_path):
    plugin = CancelAtDecision(3)
    bot = make_bot(tmp_path, plugin)
    asyncio.run(bot.run())
    assert plugin.canceled
    j = Journal.open(tmp_path / "j.sqlite", readonly=True)
    rows = j.conn.execute("SELECT client_id, source, status, error FROM cancels ORDER BY seq").fetchall()
    by_bot = [(r["client_id"], r["status"]) for r in rows if r["source"] == "bot"]
    assert by_bot[: len(plugin.canceled)] == [(cid, "CANCELED") for cid in plugin.canceled]
    refused = [r for r in rows if r["client_id"] == 123]
    assert [(r["status"], r["error"]) for r in refused] == [("REFUSED", "unknown order")]
    # the venue's CANCELED update for a bot-requested cancel is an update, not a second cancel
    for cid in plugin.canceled:
        assert sum(1 for r in rows if r["client_id"] == cid) == 1
        assert j.last_status()[cid] == "CANCELED"


def test_journal_off_writes_nothing(tmp_path):
    bot = make_bot(tmp_path, journal_enabled=False)
    asyncio.run(bot.run())
    assert not (tmp_path / "j.sqlite").exists()
    assert session_of(bot) is None


def test_journal_off_hooks_return_nothing_to_await(tmp_path):
    """Issue 11.4: with the journal off, on_order_submit returns None (no coroutine made per order);
    with it on, it returns the commit, and awaiting it journals the intent; session_of answers
    the RunView observers get and the bot alike."""
    import perpbot.plugins.journal as journal

    off = make_bot(tmp_path, journal_enabled=False)
    assert journal.on_order_submit(off.view, order()) is None and session_of(off.view) is None
    on = make_bot(tmp_path)

    async def submit():
        journal.on_bot_start(on.view)
        pending = journal.on_order_submit(on.view, order(cid=99))
        assert asyncio.iscoroutine(pending)
        await pending
        s = session_of(on.view)
        assert s is not None and s is session_of(on)
        s.close()

    asyncio.run(submit())
    assert [r["client_id"] for r in Journal.open(tmp_path / "j.sqlite", readonly=True).intents()] == [99]


decimals = hst.decimals(allow_nan=False, allow_infinity=False, places=None).filter(lambda d: d.is_finite())


@settings(max_examples=60, deadline=None)
@given(price=decimals.filter(lambda d: d > 0), size=decimals.filter(lambda d: d > 0), fee=decimals)
def test_decimals_round_trip_exactly(tmp_path_factory, price, size, fee):
    j = Journal(tmp_path_factory.mktemp("dec") / "j.sqlite")
    f = Fill(1, "BTC-USD", Side.SELL, price, size, fee, Liquidity.MAKER, 5, fill_id="x")
    j.record_fill("r", f, venue="paper")
    row = j.fills()[0]
    back = (D(row["price"]), D(row["size"]), D(row["fee"]))
    assert back == (price, size, fee)
    # not just equal values: the same digits and exponent (e.g. 1.10 stays 1.10)
    assert [str(x) for x in back] == [str(price), str(size), str(fee)]
    j.close()


def test_state_codec_round_trips_types_json_would_lose():
    from perpbot.core.model import OrderInfo, OrderStatus, Position

    state = {
        "cash": D("1.10"),
        "by_id": {17: "open", 18: "close"},
        "levels": (D("1E+3"), D("-0.000")),
        "seen": {3, 1},
        "side": Side.BUY,
        "pos": Position("ETH-USD", size=D("-0.5"), entry_price=D("3000.1")),
        "order": OrderInfo(9, "BTC-USD", Side.SELL, D("0.1"), D("60000"), OrderStatus.OPEN),
        "$odd": 1,
        "nested": [{"a": None, "b": 1.5, "c": True}],
    }
    back = loads_state(dumps_state(state))
    assert back == state
    assert str(back["cash"]) == "1.10" and str(back["levels"][1]) == "-0.000"


def test_state_codec_refuses_untrusted_types():
    text = json.dumps({"x": {"$enum": "os:sep", "v": "/"}})
    with pytest.raises(DataError, match="untrusted module"):
        loads_state(text)


# ---------------------------------------------------------------------------
# migrations
# ---------------------------------------------------------------------------


def _v1_journal(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    migrate(conn, target=1)
    assert schema_version(conn) == 1
    conn.execute(
        "INSERT INTO runs(run_id, started_ns, started_wall_ns, strategy, venues, tickers) VALUES ('v1run', 1, 1, 'grid', 'paper', 'BTC-USD')"
    )
    conn.execute(
        "INSERT INTO order_intents(run_id, ts_ns, wall_ns, client_id, venue, ticker, side, order_type, size, price, "
        "time_in_force, reduce_only, post_only, margin_mode) VALUES ('v1run', 1, 1, 99, 'paper', 'BTC-USD', 'BUY', "
        "'LIMIT', '0.0100', '59000.5', 'GTT', 0, 1, 'CROSS')"
    )
    conn.execute(
        "INSERT INTO fills(run_id, ts_ns, wall_ns, client_id, venue, ticker, side, price, size, fee, liquidity, fill_id) "
        "VALUES ('v1run', 2, 2, 99, 'paper', 'BTC-USD', 'BUY', '59000.5', '0.0040', '0.059', 'MAKER', 'f-1')"
    )
    conn.execute(
        "INSERT INTO equity_snapshots(run_id, ts_ns, venue, collateral, equity, free_collateral, initial_margin, "
        "maintenance_margin) VALUES ('v1run', 3, 'paper', '9409.941', '10000.5', '9900', '10', '6')"
    )
    conn.close()


def test_migrating_a_v1_journal_to_the_current_schema_keeps_every_row(tmp_path):
    path = tmp_path / "old.sqlite"
    _v1_journal(path)
    j = Journal(path)
    assert j.from_version == 1 and j.version == SCHEMA_VERSION == max(MIGRATIONS)
    assert j.meta()["schema_version"] == str(SCHEMA_VERSION)
    # v1 rows are intact, exact, and got the new columns' defaults
    fill = j.fills()[0]
    assert (fill["price"], fill["size"], fill["fee"], fill["voided"]) == ("59000.5", "0.0040", "0.059", 0)
    snap = j.conn.execute("SELECT * FROM equity_snapshots").fetchone()
    assert snap["equity"] == "10000.5" and snap["realized_pnl"] is None
    still_open = j.open_orders()[99]  # partly filled limit order
    assert (still_open.price, still_open.filled_size, still_open.remaining) == (D("59000.5"), D("0.0040"), D("0.0060"))
    # v2 features work on the migrated file
    j.record_checkpoint("v1run", ts_ns=4, events_processed=10, events_read=3, last_event_ns=4, client_id_high=100, state={"a": D("1")})
    assert j.last_checkpoint().events_read == 3
    with pytest.raises(DuplicateClientId):
        j.record_intent("v2run", order(cid=99), ts_ns=5, venue="paper")
    # the same fill reported again is journaled once; another fill under that id is an error (issue 9.2)
    assert not j.record_fill(
        "v2run", Fill(99, "BTC-USD", Side.BUY, D("59000.5"), D("0.004"), D("0.059"), Liquidity.MAKER, 6, fill_id="f-1"),
        venue="paper",
    ), "a venue fill id already journaled is not booked twice"
    with pytest.raises(DuplicateFill, match="fill id 'f-1' of venue 'paper' is already journaled for a different fill"):
        j.record_fill(
            "v2run", Fill(99, "BTC-USD", Side.BUY, D("1"), D("1"), D("0"), Liquidity.MAKER, 6, fill_id="f-1"), venue="paper"
        )
    assert j.count("fills") == 1
    assert j.verify() == []
    j.close()
    # reopening does not migrate again
    assert Journal(path).from_version == SCHEMA_VERSION


def test_a_failing_migration_step_leaves_the_previous_version(tmp_path, monkeypatch):
    path = tmp_path / "old.sqlite"
    _v1_journal(path)
    broken = dict(MIGRATIONS)
    broken[2] = MIGRATIONS[2][:3] + ["THIS IS NOT SQL"]
    monkeypatch.setattr("perpbot.plugins.journal.schema.MIGRATIONS", broken)
    with pytest.raises(DataError, match="cannot open journal"):
        Journal(path)
    conn = sqlite3.connect(path)
    assert schema_version(conn) == 1
    cols = [r[1] for r in conn.execute("PRAGMA table_info(order_intents)")]
    assert "voided" not in cols  # the partial step was rolled back
    conn.close()


def test_a_newer_journal_is_refused(tmp_path):
    path = tmp_path / "new.sqlite"
    Journal(path).set_meta("schema_version", str(SCHEMA_VERSION + 1))
    with pytest.raises(DataError, match="newer than this perpbot supports"):
        Journal(path)


def test_a_file_that_is_not_a_journal_is_a_data_error(tmp_path):
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DataError, match="cannot open journal"):
        Journal(path)


# ---------------------------------------------------------------------------
# crash safety: SIGKILL a writer mid-transaction
# ---------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from decimal import Decimal
    sys.path.insert(0, {repo!r})
    from perpbot.core.model import Fill, Liquidity, Side
    from perpbot.plugins.journal.store import Journal

    j = Journal(sys.argv[1])
    batch, pause = int(sys.argv[2]), sys.argv[3] == "pause"
    j.conn.execute("PRAGMA cache_size=8")  # tiny page cache: open transactions spill into the WAL
    n = 0
    while True:
        j.begin()
        for i in range(batch):
            n += 1
            j.record_fill("kill", Fill(n, "BTC-USD", Side.BUY, Decimal("60000.1"), Decimal("0.001"),
                          Decimal("0.03"), Liquidity.TAKER, n, fill_id=str(n), tag="x" * 200), venue="paper")
            if i == batch // 2:
                print("mid", n, flush=True)   # inside an open transaction
                if pause:
                    sys.stdin.readline()       # wait here, mid-transaction, to be killed
        j.commit()
        print("committed", n, flush=True)
    """
)


def _spawn_writer(tmp_path, mode, batch=400):
    path = tmp_path / "killed.sqlite"
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(repo=str(REPO)))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path), str(batch), mode],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )
    return path, proc


def _reopen_after_kill(path, committed_seen, batch=400):
    j = Journal(path)  # opens (recovering the WAL), read-write
    assert j.integrity_check() == "ok"
    n = j.count("fills")
    # whole transactions only, and at least every one the writer reported committed
    assert n % batch == 0 and n >= committed_seen
    if n:
        assert [r["client_id"] for r in j.fills()] == list(range(1, n + 1))
    j.record_fill("after", Fill(10**6, "BTC-USD", Side.SELL, D("1"), D("1"), D("0"), Liquidity.MAKER, 1), venue="paper")
    assert j.count("fills") == n + 1
    j.close()
    return n


@pytest.mark.parametrize("kill_at_mid", [1, 3])
def test_sigkill_inside_an_open_transaction_leaves_a_journal_that_opens(tmp_path, kill_at_mid):
    path, proc = _spawn_writer(tmp_path, "pause")
    committed = 0
    mids = 0
    try:
        for line in proc.stdout:
            kind, n = line.split()
            if kind == "committed":
                committed = int(n)
                continue
            mids += 1
            if mids == kill_at_mid:
                assert Path(str(path) + "-wal").stat().st_size > 0  # uncommitted pages reached the WAL
                os.kill(proc.pid, signal.SIGKILL)  # the writer sits inside its transaction
                break
            proc.stdin.write("\n")
            proc.stdin.flush()
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stdin.close()
    assert _reopen_after_kill(path, committed) == committed  # the open transaction left no trace


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_at_a_random_moment_leaves_whole_transactions(tmp_path, seed):
    import random
    import threading

    path, proc = _spawn_writer(tmp_path, "run")
    committed = [0]

    def read():
        for line in proc.stdout:
            parts = line.split()
            # the kill may cut the last line short: only whole "committed N" lines count
            if line.endswith("\n") and len(parts) == 2 and parts[0] == "committed":
                committed[0] = int(parts[1])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while committed[0] < 400 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(random.Random(seed).uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        reader.join(timeout=10)
        proc.stdout.close()
        proc.stdin.close()
    assert committed[0] >= 400
    _reopen_after_kill(path, committed[0])


# ---------------------------------------------------------------------------
# the writer thread
# ---------------------------------------------------------------------------


def test_a_failing_write_does_not_lose_the_rest_of_its_batch(tmp_path):
    w = JournalWriter(tmp_path / "j.sqlite").start()
    try:
        futs = [w.submit(Journal.record_intent, "r", order(cid=i), ts_ns=i, venue="p") for i in (1, 2)]
        dup = w.submit(Journal.record_intent, "r", order(cid=1), ts_ns=3, venue="p")
        futs.append(w.submit(Journal.record_intent, "r", order(cid=3), ts_ns=4, venue="p", durable=True))
        assert [f.result(timeout=10) for f in futs] == [1, 2, 3]  # the duplicate was rolled back alone
        with pytest.raises(DuplicateClientId):
            dup.result(timeout=10)
        assert w.call_sync(lambda j: sorted(j.all_client_ids())) == [1, 2, 3]
    finally:
        w.close()


def test_verify_reports_inconsistencies(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.record_intent("r", order(cid=1, size="0.01"), ts_ns=1, venue="p")
    j.record_fill("r", Fill(1, "BTC-USD", Side.BUY, D("1"), D("0.02"), D("0"), Liquidity.MAKER, 2), venue="p")
    j.record_fill("r", Fill(5, "BTC-USD", Side.BUY, D("1"), D("0.01"), D("0"), Liquidity.MAKER, 2), venue="p")
    j.record_result("r", order(cid=6), OrderResult(True, 6, "BTC-USD", OrderStatus.OPEN), ts_ns=3, venue="p")
    problems = j.verify()
    assert any("client id 1: filled 0.02 > ordered 0.01" in p for p in problems)
    assert any("client id 5 has no live intent" in p for p in problems)
    assert any("order_results" in p and "client id 6 has no intent" in p for p in problems)


def test_a_journal_serves_one_running_bot_at_a_time(tmp_path):
    from perpbot.plugins.journal import JournalInUse

    holder = JournalWriter(tmp_path / "j.sqlite").start()
    try:
        bot = make_bot(tmp_path, events=oscillating_events(5))
        with pytest.raises(JournalInUse, match=rf"in use by another running bot \(pid {os.getpid()}\)"):
            asyncio.run(bot.run())
        assert bot.exchange.acct["resting"] == {}  # nothing was traded
    finally:
        holder.close()
    # once released (also when a process dies: the OS drops its lock), the next bot runs
    summary = asyncio.run(make_bot(tmp_path, events=oscillating_events(5)).run())
    assert summary.stop_reason == "end of data"
