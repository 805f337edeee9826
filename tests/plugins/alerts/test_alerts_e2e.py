"""Alerts end to end through the CLI: a short replay posts real apprise ``json://`` bodies to a
loopback webhook receiver.

The receiver is a tiny ``http.server`` on port 0. What it receives is apprise's JSON
notification body, ``{"version": "1.0", "title", "message", "attachments", "type"}``
(apprise ``apprise/plugins/custom_json.py``, ``NotifyJSON.send``: the payload built from
``JSONPayloadField``), POSTed to the URL's path, with HTTP basic auth when the URL has
``user:password@`` (same file, ``auth = (self.user, self.password)``).

The replay data is the embedded real Binance USD-M sample (``examples/data/binance_usdm``,
MIT, see its SOURCES.md; in the repository, so these tests also run with
``PERPBOT_NO_SHARED_DATA=1``), rewritten into ``tmp_path`` with two planted changes:

- every receive time shifted by :data:`SHIFT_S`, so the run crosses a UTC midnight
  (2024-08-08 23:56:45 to 2024-08-09 00:02:29) and a daily summary is due;
- ETH's lines of a 120 s window dropped (a feed outage), the first depth diff after it
  re-chained (its ``pu`` set to the last kept diff's ``u``) so the book stays in sync:
  ETH goes stale (no events) and must raise a feed-down alert, then a feed-back one.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "examples/data/binance_usdm"
NS = 1_000_000_000
SHIFT_S = 150
#: ETH lines received in [OUT_FROM, OUT_TO) (original clock) are dropped: 23:56:00-23:58:00 UTC
OUT_FROM = 1_723_161_360 * NS
OUT_TO = OUT_FROM + 120 * NS
MNEMONIC = "abandon ability able about above absent absorb abstract absurd abuse access accident"
ENV_SECRETS = {"DYDX_MNEMONIC": MNEMONIC, "BINANCE_API_KEY": "AKIA9PLANTEDKEY42",
               "TELEGRAM_BOT_TOKEN": "555000111:AAplantedTelegramTok"}
URL_USER, URL_PASS, URL_TOKEN = "hookuser", "Pl4ntedPassw0rd", "T0KENplanted99"
CFG_SECRET = "cfgPlantedSecret77"


class Receiver:
    """Records every POST: its path, its basic-auth user:password and its JSON body."""

    def __init__(self):
        self.posts: list[dict] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                auth = self.headers.get("Authorization", "")
                user = base64.b64decode(auth[6:]).decode() if auth.startswith("Basic ") else ""
                outer.posts.append({"path": self.path, "auth": user, "body": json.loads(raw), "raw": raw.decode()})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def titles(self) -> list[str]:
        return [p["body"]["title"] for p in self.posts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def plant(src: Path, dst: Path, outage: bool) -> None:
    """Copy a recording with its receive clock shifted by SHIFT_S; with ``outage``, drop the
    window's lines and re-chain the first depth diff after it."""
    last_u = None
    rechain = False
    with gzip.open(src, "rb") as fin, gzip.open(dst, "wb") as fout:
        for line in fin:
            ts_raw, rest = line.split(b" ", 1)
            ts = int(ts_raw)
            is_depth = b'"depthUpdate"' in rest
            if outage and OUT_FROM <= ts < OUT_TO:
                rechain = True
                continue
            if is_depth:
                msg = orjson.loads(rest)
                data = msg["data"]
                if rechain:
                    data["pu"] = last_u
                    rest = orjson.dumps(msg) + b"\n"
                    rechain = False
                last_u = data["u"]
            fout.write(str(ts + SHIFT_S * NS).encode() + b" " + rest)


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("planted")
    plant(SAMPLE / "btcusdt_20240808.gz", d / "btcusdt_20240808.gz", outage=False)
    plant(SAMPLE / "ethusdt_20240808.gz", d / "ethusdt_20240808.gz", outage=True)
    return [d / "btcusdt_20240808.gz", d / "ethusdt_20240808.gz"]


def runbot(*args, env=None, cwd=None):
    full = dict(os.environ, PERPBOT_OFFLINE="1", COLUMNS="200", **(env or {}))
    return subprocess.run([sys.executable, str(REPO / "runbot.py"), *args], capture_output=True, text=True,
                          timeout=240, cwd=cwd or REPO, env=full)


BASE = ["--exchange", "paper", "--strategy", "sniper", "--ticker", "BTC,ETH", "--feed", "replay", "--no-report"]


@pytest.fixture(scope="module")
def main_run(planted, tmp_path_factory):
    """One replay with every kind of alert: fills (2 sent, the rest coalesced), the planted ETH
    outage, the UTC midnight, the stop; secrets planted in the environment, config and URL."""
    tmp = tmp_path_factory.mktemp("alerts")
    rx = Receiver()
    url = f"json://{URL_USER}:{URL_PASS}@127.0.0.1:{rx.port}/hooks/{URL_TOKEN}"
    cfg = tmp / "perpbot.toml"
    cfg.write_text(f'[exchange.dydx]\napi_secret = "{CFG_SECRET}"\n[alerts]\nurls = ["{url}"]\nfeed_down_s = 60\n')
    try:
        res = runbot(*BASE, "--config", str(cfg), "--data", ",".join(map(str, planted)), "--state-dir", str(tmp / "s"),
                     "--max-events", "2000000", "--entry-threshold", "55", "--exit-threshold", "54", "--cooldown", "0",
                     "--min-hold", "0", "--alert-param", "fill_burst=2", "--alert-param", "fill_per_min=0.01",
                     env=ENV_SECRETS)
    finally:
        rx.close()
    log = "".join(p.read_text() for p in (tmp / "s" / "logs").glob("*.jsonl"))
    return res, rx, log


def test_the_replay_runs_and_every_alert_reaches_the_webhook(main_run):
    res, rx, _ = main_run
    assert res.returncode == 0, res.stderr[-3000:]
    titles = rx.titles()
    assert titles[0] == "perpbot started: sniper on BTC-USD, ETH-USD"
    assert titles[-1].startswith("perpbot stopped: end of data")
    assert all(p["path"] == f"/hooks/{URL_TOKEN}" and p["auth"] == f"{URL_USER}:{URL_PASS}" for p in rx.posts)
    assert all(set(p["body"]) == {"version", "title", "message", "attachments", "type"} for p in rx.posts)


def test_fills_arrive_and_a_burst_is_coalesced_into_one_digest(main_run):
    res, rx, _ = main_run
    fills = [p["body"] for p in rx.posts if p["body"]["title"].startswith("perpbot fill: ")]
    assert len(fills) == 2  # fill_burst=2, then one token per 100 minutes
    first = fills[0]["message"].splitlines()
    assert first[0].split(" (fee ")[0] in fills[0]["title"] and first[1].startswith("market time 2024-08-0")
    (digest,) = [p["body"] for p in rx.posts if "more fills (rate limit)" in p["body"]["title"]]
    held = int(digest["title"].split()[1])
    stop = rx.posts[-1]["body"]["message"]
    total = int(stop.split(" fill(s), ")[0].rsplit(" ", 1)[1])
    assert total >= 5 and held == total - 2, (held, total)
    assert digest["message"].startswith(f"{held} fills held back by the rate limit since ")
    assert digest["message"].count("\n- ") == 5  # the last five are listed


def test_the_planted_outage_raises_feed_down_then_feed_back(main_run):
    _, rx, _ = main_run
    down = [p["body"] for p in rx.posts if p["body"]["title"].startswith("perpbot feed down: ")]
    back = [p["body"] for p in rx.posts if p["body"]["title"].startswith("perpbot feed back: ")]
    assert [d["title"].split()[3] for d in down] == ["ETH-USD"] and [b["title"].split()[3] for b in back] == ["ETH-USD"]
    secs = int(down[0]["title"].rsplit(" ", 1)[1].rstrip("s"))
    assert 60 <= secs <= 65 and "stale data" in down[0]["message"]
    # stale 30 s after its last event; usable again once events resume (00:00:30) and the book
    # left over from before the gap is no longer crossed (about 00:01:18); checks run at every
    # decision (1 s of run clock), so each end of the spell is seen within a second
    assert "at 2024-08-09 00:01:1" in back[0]["message"]
    assert 136 <= int(back[0]["title"].rsplit(" ", 1)[1].rstrip("s")) <= 140
    assert rx.titles().index(down[0]["title"]) < rx.titles().index(back[0]["title"])


def test_the_daily_summary_arrives_at_utc_midnight_and_at_stop(main_run):
    _, rx, _ = main_run
    (daily,) = [p["body"] for p in rx.posts if p["body"]["title"].startswith("perpbot daily summary ")]
    assert daily["title"].startswith("perpbot daily summary 2024-08-08: ")
    lines = daily["message"].splitlines()
    assert lines[0] == "UTC day 2024-08-08 (run clock)" and lines[1].startswith("equity ")
    assert " day PnL " in lines[1] and " fill(s)" in lines[2] and lines[3].startswith("open positions: ")
    stop = rx.posts[-1]["body"]["message"]
    assert "stopped at 2024-08-09 00:02:" in stop and "UTC day 2024-08-09 so far:" in stop


def test_no_alert_and_no_log_line_contains_a_planted_secret(main_run):
    res, rx, log = main_run
    secrets = [*ENV_SECRETS.values(), " ".join(MNEMONIC.split()[:3]), URL_PASS, URL_TOKEN, CFG_SECRET]
    for p in rx.posts:
        for s in secrets:
            assert s not in p["raw"], (s, p["body"]["title"])
    for s in [URL_PASS, URL_TOKEN, f"{URL_USER}:"]:
        assert s not in res.stderr and s not in res.stdout and s not in log
    assert f"alerts: 1 service(s): json://127.0.0.1:" in res.stderr


def test_a_halt_is_alerted_and_the_exit_code_is_the_halt_code(tmp_path):
    rx = Receiver()
    state = tmp_path / "s"
    state.mkdir()
    (state / "KILL").write_text("")
    try:
        res = runbot(*BASE, "--state-dir", str(state), "--max-events", "50000", "--alert",
                     f"json://127.0.0.1:{rx.port}/")
    finally:
        rx.close()
    assert res.returncode == 6, res.stderr[-2000:]
    (halt,) = [p["body"] for p in rx.posts if p["body"]["title"].startswith("perpbot risk: HALT")]
    assert halt["type"] == "failure" and "by kill_switch" in halt["title"] and "KILL" in halt["message"]
    assert rx.titles()[-1].startswith("perpbot stopped: HALT: ")


def test_an_unknown_scheme_is_one_line_before_the_run(tmp_path):
    res = runbot(*BASE, "--state-dir", str(tmp_path), "--alert", "tgramm://123456789:AAHsecret77/42",
                 "--alert", "json://127.0.0.1:9/")
    assert res.returncode == 2
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: alert URL #1: unknown alert scheme 'tgramm' (closest supported: tgram")
    assert "AAHsecret77" not in line and not (tmp_path / "logs").exists()  # refused before the run started


def test_a_dead_service_is_logged_and_never_stops_trading(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = runbot(*BASE, "--state-dir", str(tmp_path), "--max-events", "300000", "--alert",
                 f"json://127.0.0.1:{port}/hook/T0KENdead42", "--alert-param", "retries=1",
                 "--alert-param", "backoff_s=0")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "stopped: max events 300000 reached" in res.stdout
    failures = [x for x in res.stderr.splitlines() if "given up" in x]
    assert failures and all(f"to json://127.0.0.1:{port} failed after 2 attempt(s)" in x for x in failures)
    assert "T0KENdead42" not in res.stderr
