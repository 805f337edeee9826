"""The API from the command line: bad input is one line and a non-zero exit; ``runbot.py api
--journal`` serves a journal; the journal-mode app answers from the journal's rows."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from perpbot.plugins.api.app import create_app
from perpbot.plugins.api.journal_source import JournalSource
from perpbot.plugins.report.analytics import build_report
from tests.plugins.api.conftest import journal_rows, make_bot

REPO = Path(__file__).resolve().parents[3]
# starlette's TestClient warns that it prefers httpx2 (not installed; httpx works)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
BASE = ["--exchange", "paper", "--strategy", "sniper", "--ticker", "BTC", "--feed", "replay", "--no-report",
        "--max-events", "1000"]


def runbot(args, env=None, timeout=120):
    e = dict(os.environ, PERPBOT_OFFLINE="1", COLUMNS="200")
    e.pop("PERPBOT_API_TOKEN", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "runbot.py", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=e)


def one_error(res) -> str:
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    return lines[0]


def test_bad_api_input_is_one_line_each(tmp_path):
    state = ["--state-dir", str(tmp_path)]
    # a port already in use
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        res = runbot([*BASE, *state, "--api", f"127.0.0.1:{port}"])
        assert res.returncode == 2
        assert one_error(res) == (f"error: --api 127.0.0.1:{port}: address already in use "
                                  "(another process listens there; choose another port)")
    # a token file others can read: refused with the chmod to run
    tok = tmp_path / "token"
    tok.write_text("s3cret-token-value-123456\n")
    tok.chmod(0o644)
    res = runbot([*BASE, *state, "--api", "127.0.0.1:0", "--api-token-file", str(tok)])
    assert res.returncode == 2
    assert one_error(res) == f"error: --api-token-file {tok} is readable or writable by group or others (mode 0644); refusing to use it. Fix: chmod 600 {tok}"
    assert "s3cret" not in res.stderr + res.stdout


def test_bad_listen_addresses_tokens_and_journals_are_one_line_each(tmp_path):
    from perpbot.core.config import bot_settings
    from perpbot.core.errors import ConfigError, DataError
    from perpbot.plugins.api.server import load_token

    with pytest.raises(ConfigError) as e:
        bot_settings({"api": "localhost"}, labels={"api": "--api"})
    assert str(e.value) == "--api: expected HOST:PORT with a port 0-65535 (e.g. 127.0.0.1:8080), got 'localhost'"
    with pytest.raises(ConfigError, match=r"bot.api: expected HOST:PORT .* got '127.0.0.1:70000'"):
        bot_settings({"api": "127.0.0.1:70000"})
    assert bot_settings({"api": "[::1]:8080"})["api"] == ("::1", 8080)
    with pytest.raises(ConfigError) as e:
        load_token(None, environ={"PERPBOT_API_TOKEN": "short"})
    assert str(e.value).startswith("PERPBOT_API_TOKEN: the token is too short (5 characters; use at least 16")
    assert load_token(None, environ={}) is None
    empty = tmp_path / "empty"
    empty.write_text("")
    empty.chmod(0o600)
    with pytest.raises(ConfigError, match="the file is empty"):
        load_token(empty)
    good = tmp_path / "token"
    good.write_text("a-good-token-of-32-characters-xx\n")
    good.chmod(0o600)
    assert load_token(good, environ={"PERPBOT_API_TOKEN": "the-file-wins-over-the-env"}) == "a-good-token-of-32-characters-xx"
    good.chmod(0o640)
    with pytest.raises(ConfigError, match=r"readable or writable by group or others \(mode 0640\); refusing to use it. Fix: chmod 600 "):
        load_token(good)
    # beyond loopback without a token: refused (the same configure path as the two cases above)
    from perpbot.plugins.api.server import bind

    with pytest.raises(ConfigError) as e:
        bind(("0.0.0.0", 0), None)
    assert str(e.value) == ("--api 0.0.0.0:0: refusing to listen beyond loopback without a token "
                            "(set PERPBOT_API_TOKEN or --api-token-file, or listen on 127.0.0.1)")
    bind(("127.0.0.1", 0), None).close()  # loopback needs no token
    with pytest.raises(DataError) as e:
        JournalSource(tmp_path / "nope.sqlite")
    assert str(e.value) == f"--journal {tmp_path / 'nope.sqlite'}: no such journal file (a run writes one with --journal PATH)"


@pytest.fixture(scope="module")
def journal(tmp_path_factory) -> Path:
    """A journal of a short paper run that traded (entries and exits)."""
    tmp = tmp_path_factory.mktemp("api-journal")
    bot = make_bot(tmp, seconds=40)
    asyncio.run(bot.run())
    return tmp / "journal.sqlite"


def test_journal_mode_answers_from_the_journal(journal, token):
    from starlette.testclient import TestClient

    rep = build_report(journal)
    client = TestClient(create_app(JournalSource(journal), token=token))
    st = client.get("/api/status").json()
    assert st["mode"] == "journal" and st["run_id"] == rep.run_ids[-1] and not st["running"] and not st["control"]
    pnl = client.get("/api/pnl").json()
    assert pnl["source"] == "journal"
    assert (Decimal(pnl["realized"]), Decimal(pnl["fees"]), Decimal(pnl["net"])) == (rep.realized, rep.fees, rep.net_pnl)
    fills = client.get("/api/fills", params={"limit": 1000}).json()["fills"]
    assert len(fills) == len(journal_rows(journal, "SELECT 1 FROM fills WHERE voided = 0"))
    assert client.get("/api/fills", params={"limit": 3}).json()["fills"] == fills[-3:]
    pos = client.get("/api/positions").json()
    assert [p["ticker"] for p in pos["positions"]] == ["BTC-USD"]
    assert Decimal(pos["positions"][0]["size"]) == rep.per_market["BTC-USD"].position
    assert "liquidation prices need the live market parameters" in pos["positions"][0]["liquidation_note"]
    assert [r["run_id"] for r in client.get("/api/runs").json()["runs"]] == rep.run_ids
    assert client.get("/api/equity").json()["points"]
    # nothing to control or stream over a journal
    auth = {"Authorization": f"Bearer {token}"}
    r = client.post("/api/control/halt", headers=auth)
    assert (r.status_code, r.json()) == (409, {"error": "nothing to control: this API serves a journal, not a running bot"})
    assert client.post("/api/control/halt").status_code == 401
    assert client.get("/api/events").status_code == 409
    # bad input: 4xx with one clear line, never a 500
    r = client.get("/api/fills", params={"limit": 0})
    assert r.status_code == 422 and r.json() == {"error": "query parameter limit: Input should be greater than or equal to 1 (got '0')"}
    assert client.get("/api/nope").json() == {"error": "no such endpoint (see /openapi.json)"}
    assert client.delete("/api/status").status_code == 405
    assert client.get("/").text.startswith("<!doctype html>")
    # listening beyond loopback, reads need the token too
    guarded = TestClient(create_app(JournalSource(journal), token=token, read_needs_token=True))
    assert guarded.get("/api/pnl").status_code == 401
    assert guarded.get("/api/pnl", headers=auth).json() == pnl
    assert guarded.get("/").status_code == 200  # the page itself holds no data
    assert "renderChart" not in client.get("/static/app.js").text and client.get("/static/style.css").status_code == 200


def test_runbot_api_serves_a_journal_until_interrupted(journal):
    proc = subprocess.Popen([sys.executable, "runbot.py", "api", "--journal", str(journal), "--listen", "127.0.0.1:0"],
                            cwd=REPO, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PERPBOT_OFFLINE="1"))
    try:
        line = proc.stderr.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)
        assert line.startswith(f"api: serving journal {journal} on {url}")
        pnl = httpx.get(f"{url}/api/pnl", timeout=10).json()
        assert pnl["source"] == "journal" and Decimal(pnl["net"]) == build_report(journal).net_pnl
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
