"""Issue 9.3: a journal that fails stops the bot; a bad journal is one line naming the file and what to do.

- A write that fails mid-run (here: the disk fills up after the first fill) halts
  the bot with "journal unavailable": no order goes out unrecorded after it, the
  bot's open orders are cancelled, and the CLI exits with the halt code 6.
- A journal that cannot be used at start (4 KB of garbage in the middle, a
  read-only file, a folder, a dropped table, unreadable checkpoint state) gives
  one ``error:`` line naming the file and what to do, never "internal error".
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from decimal import Decimal as D
from pathlib import Path

import pytest

from perpbot.core.testing import driving_bot
from perpbot.core.bot import TradingBot
from perpbot.core.hookspecs import hookimpl
from perpbot.core.plugins import PluginManager
from perpbot.core.testing import bot_config
from perpbot.plugins.journal import Journal, JournalWriter, session_of
from tests.plugins.journal_fakes import JournalTestPlugin, oscillating_events

REPO = Path(__file__).resolve().parents[2]
MAIN = ["--exchange", "paper", "--strategy", "sniper", "--ticker", "BTC,ETH", "--no-report"]


def runbot(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "runbot.py"), *args],
        capture_output=True, text=True, timeout=600, cwd=REPO,
        env=dict(os.environ, PERPBOT_OFFLINE="1", COLUMNS="200", **(env or {})),
    )


def error_lines(res: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]


def fill_the_disk(j: Journal) -> None:
    """From now on the journal file may not grow: SQLite reports SQLITE_FULL, as on a full disk."""
    pages = j.conn.execute("PRAGMA page_count").fetchone()[0]
    j.conn.execute(f"PRAGMA max_page_count = {pages}")


# ---------------------------------------------------------------------------
# a write fails mid-run: halt
# ---------------------------------------------------------------------------

DISK_FULL_PLUGIN = textwrap.dedent(
    '''
    """A third-party plugin: after the bot's first fill, the journal's disk is full."""
    from perpbot.core.hookspecs import hookimpl
    from perpbot.plugins.journal import session_of

    FILLED = []


    def fill_the_disk(j):
        pages = j.conn.execute("PRAGMA page_count").fetchone()[0]
        j.conn.execute(f"PRAGMA max_page_count = {pages}")


    @hookimpl
    def on_fill(bot, fill):
        if not FILLED:
            FILLED.append(fill)
            session_of(bot).writer.post(fill_the_disk)
    '''
)


def install_plugin(folder: Path, name: str, source: str) -> dict:
    """A plugin module plus its distribution metadata (an entry point in group ``perpbot``) in ``folder``."""
    (folder / f"{name}.py").write_text(source)
    dist = folder / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[perpbot]\n{name} = {name}\n")
    return {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]), "PERPBOT_LOAD_PLUGINS": name}


def test_a_journal_write_failing_mid_run_halts_the_cli_with_code_6(tmp_path):
    env = install_plugin(tmp_path, "diskfull", DISK_FULL_PLUGIN)
    journal = tmp_path / "J.sqlite"
    res = runbot(*MAIN, "--journal", str(journal), "--state-dir", str(tmp_path / "state"), env=env)
    assert res.returncode == 6, res.stderr[-3000:]
    halted = [ln for ln in res.stderr.splitlines() if ln.startswith("halted:")]
    assert len(halted) == 1 and halted[0].startswith("halted: journal unavailable: cannot write journal"), res.stderr[-3000:]
    assert str(journal) in halted[0] and "the disk is full" in halted[0]
    assert "internal error" not in res.stderr and "Traceback" not in res.stderr
    # the run stopped at the halt (not at the end of the data) and every order it sent is journaled
    assert "end of data" not in res.stdout and "HALT" in res.stdout
    sent = int(re.search(r"orders sent (\d+)", res.stdout).group(1))
    j = Journal.open(journal, readonly=True)
    try:
        assert j.count("order_intents") == sent >= 1
    finally:
        j.close()


class DiskFullAfterFirstFill:
    """After the first fill the journal's file may not grow; records the orders the exchange got after that."""

    __name__ = "disk-full"

    def __init__(self):
        self.failed_at_order: int | None = None

    @hookimpl
    def on_fill(self, bot, fill):
        if self.failed_at_order is None:
            self.failed_at_order = len(driving_bot(bot).orders)
            session_of(bot).writer.post(fill_the_disk)


def test_after_a_failed_write_no_order_goes_out_and_open_orders_are_cancelled(tmp_path):
    path = tmp_path / "j.sqlite"
    breaker = DiskFullAfterFirstFill()
    pm = PluginManager(load_entry_points=False, extra_plugins=(JournalTestPlugin(), breaker),
                       default_plugins=("perpbot.plugins.journal",))
    cfg = bot_config(
        exchange=("jsim",), strategy="pingpong", tickers=("BTC-USD",), feed="list", state_dir=tmp_path,
        feeds={"list": {"events": oscillating_events(400)}}, sizer="jfixed", journal_enabled=True,
        journal_path=path, snapshot_interval_s=D(10), exchanges={"jsim": {}},
    )
    bot = TradingBot(cfg, pm)
    summary = asyncio.run(bot.run())
    assert breaker.failed_at_order is not None, "the strategy never filled"
    assert bot.halted and bot.halted.startswith(f"journal unavailable: cannot write journal {path}: the disk is full")
    assert summary.stop_reason.startswith("HALT")
    assert bot.exchange.acct["resting"] == {}, "the bot's resting orders were not cancelled"
    # no order reached the exchange without its intent journaled first
    j = Journal.open(path, readonly=True)
    try:
        intents = {int(r["client_id"]) for r in j.intents()}
    finally:
        j.close()
    assert set(bot.orders) <= intents
    assert len(bot.orders) == len(intents)


def test_the_writer_reports_its_first_failure_but_not_a_refused_row(tmp_path):
    from tests.plugins.test_journal import order

    seen = []
    w = JournalWriter(tmp_path / "j.sqlite").start()
    try:
        w.on_failure(seen.append)
        w.submit(Journal.record_intent, "r", order(cid=1), ts_ns=1, venue="p").result(timeout=10)
        dup = w.submit(Journal.record_intent, "r", order(cid=1), ts_ns=2, venue="p")
        with pytest.raises(Exception, match="already in the journal"):
            dup.result(timeout=10)
        w.flush_sync()
        assert w.failure is None and seen == []  # the caller handles a refused row: not a journal failure
        w.post(fill_the_disk)
        for i in range(2, 200):  # posted writes nobody waits for: lost ones are failures
            w.post(Journal.record_intent, "r", order(cid=i), ts_ns=i, venue="p")
        w.flush_sync()
        assert w.failure is not None and "the disk is full" in w.failure
        assert seen == [w.failure]  # once
        late = []
        w.on_failure(late.append)  # registered after the failure: told at once
        assert late == [w.failure]
    finally:
        w.close()


# ---------------------------------------------------------------------------
# bad journals at start: one line naming the file and what to do
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def used_journal(tmp_path_factory) -> Path:
    """A journal of the README's main command, stopped by --max-events (it has checkpoints to resume)."""
    folder = tmp_path_factory.mktemp("used")
    journal = folder / "J.sqlite"
    res = runbot(*MAIN, "--journal", str(journal), "--state-dir", str(folder / "state"), "--max-events", "60000")
    assert res.returncode == 0, res.stderr[-3000:]
    return journal


def _copy(src: Path, folder: Path) -> Path:
    dst = folder / "J.sqlite"
    shutil.copyfile(src, dst)
    return dst


def damaged(journal: Path) -> None:
    """4 KB of garbage over the page in the middle of the file."""
    size = journal.stat().st_size
    with journal.open("r+b") as f:
        f.seek((size // 2) // 4096 * 4096)
        f.write(random.Random(9).randbytes(4096))


def dropped_table(journal: Path) -> None:
    con = sqlite3.connect(journal)
    con.execute("DROP TABLE fills")
    con.commit()
    con.close()


def bad_checkpoint(journal: Path) -> None:
    con = sqlite3.connect(journal)
    con.execute("UPDATE checkpoints SET state_json = '{not json'")
    con.commit()
    con.close()


@pytest.mark.parametrize(
    "spoil,advice",
    [
        (damaged, "is damaged"),
        (dropped_table, "table fills missing"),
        (bad_checkpoint, "run with --fresh"),
    ],
    ids=["4KB-garbage", "dropped-table", "bad-checkpoint-json"],
)
def test_a_bad_journal_is_one_line_naming_the_file_and_what_to_do(used_journal, tmp_path, spoil, advice):
    journal = _copy(used_journal, tmp_path)
    spoil(journal)
    res = runbot(*MAIN, "--journal", str(journal), "--state-dir", str(tmp_path / "state"))
    assert res.returncode == 3, res.stderr[-3000:]
    lines = error_lines(res)
    assert len(lines) == 1, res.stderr[-3000:]
    assert str(journal) in lines[0] and advice in lines[0]
    assert "internal error" not in res.stderr and "Traceback" not in res.stderr
    if spoil is bad_checkpoint:  # the advice works
        fresh = runbot(*MAIN, "--journal", str(journal), "--state-dir", str(tmp_path / "state"), "--max-events", "2000", "--fresh")
        assert fresh.returncode == 0, fresh.stderr[-3000:]


def test_a_journal_path_that_is_a_folder(tmp_path):
    folder = tmp_path / "J.sqlite"
    folder.mkdir()
    res = runbot(*MAIN, "--journal", str(folder), "--state-dir", str(tmp_path / "state"))
    assert res.returncode == 3, res.stderr[-3000:]
    lines = error_lines(res)
    assert lines == [
        f"error: cannot open journal {folder}: the journal path is a folder: give --journal a file path "
        f"(e.g. {folder / 'journal.sqlite'})"
    ], res.stderr[-3000:]


def _make_read_only(journal: Path) -> bool:
    """chmod 444; root ignores permissions, so for root the file is made immutable (chattr +i)."""
    os.chmod(journal, 0o444)
    if os.geteuid() != 0:
        return False
    res = subprocess.run(["chattr", "+i", str(journal)], capture_output=True, text=True) if shutil.which("chattr") else None
    if res is None or res.returncode != 0:
        pytest.skip("running as root without chattr +i: a read-only file cannot be made here")
    return True


def test_a_read_only_journal(used_journal, tmp_path):
    journal = _copy(used_journal, tmp_path)
    immutable = _make_read_only(journal)
    try:
        res = runbot(*MAIN, "--journal", str(journal), "--state-dir", str(tmp_path / "state"))
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(journal)], check=True)
    assert res.returncode == 3, res.stderr[-3000:]
    lines = error_lines(res)
    assert len(lines) == 1, res.stderr[-3000:]
    assert lines[0].startswith(f"error: cannot open journal {journal}: the file (or its folder) is read-only")
    assert f"chmod u+w {journal}" in lines[0]
    assert "internal error" not in res.stderr and "Traceback" not in res.stderr
