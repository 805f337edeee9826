"""The report and the run summary give the same figures (issue 9).

Both come from ``perpbot.core.metrics``: the summary from the bot's live books, the report
from the journal's rows. These tests run the CLI as a user does, on the embedded sample
(the README's main command) and on the two-venue funding-arbitrage config, then compare
the summary the bot printed and recorded (``runs.summary_json``) with the report.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest

from perpbot.core.metrics import plain
from perpbot.plugins.report import build_report, write_report

REPO = Path(__file__).resolve().parents[2]
EXPONENT = re.compile(r"\d[eE][+-]\d")  # Decimal and float exponents always carry a sign


def runbot(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PERPBOT_OFFLINE="1", COLUMNS="200")
    return subprocess.run(
        [sys.executable, str(REPO / "runbot.py"), *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env
    )


def recorded_summary(journal: Path) -> dict:
    con = sqlite3.connect(journal)
    try:
        (text,) = con.execute("SELECT summary_json FROM runs ORDER BY rowid DESC LIMIT 1").fetchone()
    finally:
        con.close()
    return json.loads(text)


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    """``runbot.py --exchange paper --strategy sniper --ticker BTC,ETH`` with a journal."""
    tmp = tmp_path_factory.mktemp("agree")
    journal = tmp / "m.sqlite"
    res = runbot("--exchange", "paper", "--strategy", "sniper", "--ticker", "BTC,ETH", "--journal", str(journal),
                 "--state-dir", str(tmp), "--no-report", cwd=tmp)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout, journal, tmp


@pytest.fixture(scope="module")
def two_venues(tmp_path_factory):
    """The funding-arbitrage config (paper = primary, binance = second venue), 2000 events."""
    tmp = tmp_path_factory.mktemp("agree2")
    journal = tmp / "fa.sqlite"
    res = runbot("--config", str(REPO / "examples/configs/funding-arb.toml"), "--journal", str(journal),
                 "--state-dir", str(tmp), "--no-report", "--max-events", "2000", cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout, journal, tmp


def assert_report_equals_summary(journal: Path) -> None:
    s = recorded_summary(journal)
    rep = build_report(journal)
    # drawdown: the bot's exact figure (every decision), not a re-computation from sampled rows
    assert rep.max_drawdown == D(s["max_drawdown"])
    assert rep.max_drawdown_frac == pytest.approx(float(D(s["max_drawdown_frac"])), rel=1e-12)
    assert rep.max_drawdown_duration_s == s["max_drawdown_duration_s"]
    assert "the bot's tracker" in rep.drawdown_source
    # money
    assert rep.fees == D(s["fees"])
    assert rep.realized == D(s["realized_pnl"])
    assert rep.unrealized == D(s["unrealized_pnl"])
    assert rep.funding == D(s["funding_received"]) - D(s["funding_paid"])
    assert rep.end_equity == D(s["final_equity"])
    # wins net of fees, closed trades
    assert (len(rep.closed_trades), rep.wins) == (s["closed_trades"], s["wins"])
    # markets: same labels, same figures
    markets = {m["ticker"]: m for m in s["markets"]}
    assert set(markets) == set(rep.per_market)
    for label, m in markets.items():
        b = rep.per_market[label]
        assert (b.fills, b.trades, b.wins) == (m["fills"], m["trades"], m["wins"]), label
        assert (b.fees, b.funding, b.realized, b.unrealized, b.position) == (
            D(m["fees"]), D(m["funding"]), D(m["realized_pnl"]), D(m["unrealized_pnl"]), D(m["position"])
        ), label
    # realized PnL and fees per order tag (exit reason)
    tags = {(t["tag"] or "(no tag)"): (t["fills"], D(t["realized"]), D(t["fees"])) for t in s["per_tag"]}
    assert tags == {k: (b.fills, b.realized, b.fees) for k, b in rep.per_tag.items()}
    # funding per strategy
    assert {k: D(v) for k, v in s["funding_by_strategy"].items() if D(v)} == {
        k: b.funding for k, b in rep.per_strategy.items() if b.funding
    }


def test_report_equals_the_summary_on_the_main_job(main_job, tmp_path):
    out, journal, _tmp = main_job
    assert_report_equals_summary(journal)
    rep = build_report(journal)
    # the figures as printed: the summary's lines and the report's HTML
    printed_dd = re.search(r"^max drawdown\s+([\d,.]+) USD", out, re.M).group(1)
    assert printed_dd == plain(rep.max_drawdown, 2, grouping=True) == "3.74"  # was 3.40 in the report
    closed = re.search(r"^closed trades\s+(\d+)\s+\(won net of fees: (\d+)", out, re.M)
    assert (int(closed.group(1)), int(closed.group(2))) == (len(rep.closed_trades), rep.wins)
    # the strategy's own lines count wins the same way (net of fees)
    won = sum(int(n) for n in re.findall(r"\((\d+) won, \d+ lost after fees\)", out))
    assert won == rep.wins
    # realized PnL per exit reason is not always 0 any more
    assert rep.per_tag["sniper-exit:score decay"].realized == D(recorded_summary(journal)["realized_pnl"]) != 0
    html = write_report(journal, tmp_path).html.read_text()
    assert f"{plain(rep.max_drawdown, 2, grouping=True)} (" in html


def test_two_venue_legs_are_labelled_by_venue_as_in_the_summary(two_venues):
    out, journal, _tmp = two_venues
    assert_report_equals_summary(journal)
    rep = build_report(journal)
    # the primary venue (the first --exchange, "paper") is unqualified; the Binance leg is not BTC-USD
    assert rep.primary_venue == "paper" and rep.venues == ["paper", "binance"]
    assert set(rep.per_market) == {"BTC-USD", "binance:BTC-USD"}
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^(BTC-USD|binance:BTC-USD)\s+\d+\s+[\d,.]+\s+[\d,.]+\s+(-?[\d,.]+)", out, re.M)}
    for label, funding in rows.items():
        assert plain(rep.per_market[label].funding, 2, grouping=True) == funding, label
    assert {t.venue for t in rep.trades} == {"paper", "binance"}
    assert set(rep.markers) <= {"BTC-USD", "binance:BTC-USD"}
    # per-strategy funding is the run's funding, not +0.00
    assert rep.per_strategy["funding_arb"].funding == rep.funding != 0


def test_no_exponent_notation_in_the_summary_report_and_figures(main_job, two_venues, tmp_path):
    for out, journal, _tmp in (main_job, two_venues):
        assert not EXPONENT.search(out), EXPONENT.search(out)
        files = write_report(journal, tmp_path / journal.stem)
        html = files.html.read_text()
        # numbers only: drop the CSS and SVG path data, which have no figures
        text = re.sub(r"<style>.*?</style>", "", html, flags=re.S)
        assert not EXPONENT.search(text), text[max(0, EXPONENT.search(text).start() - 80):][:160]
        # money in the JSON figures is a plain decimal string (ratios are JSON numbers)
        strings = []

        def walk(v):
            if isinstance(v, dict):
                for x in v.values():
                    walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)
            elif isinstance(v, str):
                strings.append(v)

        walk(json.loads(files.json.read_text()))
        assert strings and not [v for v in strings if EXPONENT.search(v)]


def test_report_says_when_its_drawdown_comes_from_sampled_equity(main_job, tmp_path):
    """A run that recorded no summary (killed): the same tracker over the journal's samples, flagged."""
    _out, journal, _tmp = main_job
    copy = tmp_path / "killed.sqlite"
    src, dst = sqlite3.connect(journal), sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.execute("UPDATE runs SET summary_json = NULL, status = 'crashed'")
    dst.commit()
    dst.close()
    rep = build_report(copy)
    assert "sampled equity" in rep.drawdown_source and "not seen" in rep.drawdown_source
    assert D(0) < rep.max_drawdown <= D(recorded_summary(journal)["max_drawdown"])
