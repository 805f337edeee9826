"""Reports: every figure recomputed here, independently, from the journal's rows."""

from __future__ import annotations

import asyncio
import json
import math
import re
import sqlite3
import statistics
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from perpbot.core.bot import TradingBot
from perpbot.core.hookspecs import hookimpl
from perpbot.core.model import FundingPayment, Liquidation
from perpbot.core.plugins import PluginManager
from perpbot.core.testing import bot_config
from perpbot.plugins.journal import Journal, session_of
from perpbot.plugins.report import build_report, register_commands, render_html, write_report
from perpbot.plugins.report.analytics import decimate, drawdowns, resample
from tests.plugins.journal_fakes import JournalTestPlugin, oscillating_events

NS = 10**9


class Crash(BaseException):
    pass


class CrashAt:
    __name__ = "crash-at"

    def __init__(self, n):
        self.n, self.seen = n, 0

    @hookimpl(trylast=True)
    def on_decision(self, bot, strategy, result):
        self.seen += 1
        if self.seen == self.n:
            raise Crash()  # between two checkpoints: the rows since the last one get voided


def make_bot(tmp_path, *extra, journal="j.sqlite", events=None, **cfg):
    pm = PluginManager(
        load_entry_points=False,
        extra_plugins=(JournalTestPlugin(), *extra),
        default_plugins=("perpbot.plugins.journal", "perpbot.plugins.report"),
    )
    base = dict(
        exchange=("jsim",),
        strategy="pingpong",
        tickers=("BTC-USD",),
        feed="list",
        state_dir=tmp_path,
        feeds={"list": {"events": events or oscillating_events(400, amplitude=12, period=30)}},
        sizer="jfixed",
        journal_enabled=True,
        journal_path=tmp_path / journal,
        snapshot_interval_s=D(12),
        checkpoint_interval_s=D(9),
        strategies={"pingpong": {"tp": "5", "offset": "3"}},
    )
    base.update(cfg)
    return TradingBot(bot_config(**base), pm)


@pytest.fixture(scope="module")
def journal(tmp_path_factory):
    """A real run's journal, plus one funding payment and one liquidation record added by hand."""
    tmp = tmp_path_factory.mktemp("report")
    bot = make_bot(tmp)
    asyncio.run(bot.run())
    path = tmp / "j.sqlite"
    j = Journal(path)
    run_id = j.runs()[-1]["run_id"]
    last = j.conn.execute("SELECT MAX(ts_ns) FROM fills").fetchone()[0]
    j.record_funding(run_id, FundingPayment("BTC-USD", last, D("0.01"), D("60000"), D("0.0000125"), D("-0.0075")), venue="jsim")
    j.record_liquidation(run_id, Liquidation("BTC-USD", last, D("0"), D("60000"), D("0.25"), "test record"), venue="jsim")
    j.close()
    return path, bot


# ---------------------------------------------------------------------------
# an independent recomputation
# ---------------------------------------------------------------------------


def independent(path: Path) -> dict:
    """Recompute the report's figures with plain SQL and straightforward loops."""
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    fills = con.execute("SELECT * FROM fills WHERE voided=0 ORDER BY seq").fetchall()
    size = entry = realized = D(0)
    trades = []
    current = None  # [realized, fees]
    for f in fills:
        q, px, fee = D(f["size"]), D(f["price"]), D(f["fee"])
        signed = q if f["side"] == "BUY" else -q
        if size == 0 or (size > 0) == (signed > 0):
            entry = (abs(size) * entry + q * px) / abs(size + signed)
            if current is None:
                current = [D(0), D(0)]
            current[1] += fee
            size += signed
            continue
        closing = min(abs(size), q)
        r = closing * (px - entry) * (1 if size > 0 else -1)
        realized += r
        current[0] += r
        current[1] += fee * closing / q
        size += signed
        if size == 0:
            trades.append(current[0] - current[1])
            current, entry = None, D(0)
        elif (size > 0) != (size - signed > 0):
            trades.append(current[0] - current[1])
            current, entry = [D(0), fee - fee * closing / q], px
    mark = D(con.execute("SELECT price FROM marks WHERE voided=0 ORDER BY ts_ns DESC, seq DESC LIMIT 1").fetchone()[0])
    eq = con.execute("SELECT ts_ns, equity FROM equity_snapshots WHERE voided=0 ORDER BY ts_ns, seq").fetchall()
    series = [(r["ts_ns"], D(r["equity"])) for r in eq]
    # max drawdown by brute force
    mdd = D(0)
    for i, (_t, e) in enumerate(series):
        peak = max(v for _tt, v in series[: i + 1])
        mdd = max(mdd, peak - e)
    # Sharpe on the journal's sampling grid
    cfg = json.loads(con.execute("SELECT config_json FROM runs ORDER BY rowid DESC LIMIT 1").fetchone()[0])
    period = float(D(cfg["equity_sample_s"]))
    grid = []
    t, i, cur = series[0][0], 0, series[0][1]
    while t <= series[-1][0]:
        while i < len(series) and series[i][0] <= t:
            cur = series[i][1]
            i += 1
        grid.append(float(cur))
        t += int(period * NS)
    rets = [b / a - 1 for a, b in zip(grid, grid[1:])]
    ppy = 365.25 * 86400 / period
    sharpe = statistics.mean(rets) / statistics.stdev(rets) * math.sqrt(ppy) if len(rets) >= 3 and statistics.stdev(rets) > 0 else None
    return {
        "realized": realized,
        "unrealized": size * (mark - entry) if size else D(0),
        "fees": sum((D(f["fee"]) for f in fills), D(0)),
        "funding": sum((D(r[0]) for r in con.execute("SELECT amount FROM funding_payments WHERE voided=0")), D(0)),
        "liq_fees": sum((D(r[0]) for r in con.execute("SELECT fee FROM liquidations WHERE voided=0")), D(0)),
        "volume": sum((D(f["size"]) * D(f["price"]) for f in fills), D(0)),
        "fills": len(fills),
        "trades": trades,
        "position": size,
        "start_equity": series[0][1],
        "end_equity": series[-1][1],
        "max_dd": mdd,
        "sharpe": sharpe,
        "n_rets": len(rets),
        "counts": {
            t: con.execute(f"SELECT COUNT(*) FROM {t} WHERE voided=0").fetchone()[0]
            for t in ("fills", "funding_payments", "liquidations", "marks", "risk_actions")
        },
    }


def test_report_figures_equal_an_independent_recomputation(journal):
    path, bot = journal
    rep = build_report(path)
    ind = independent(path)
    assert ind["fills"] > 10 and len(ind["trades"]) >= 3, "the fixture run should trade"
    assert rep.realized == ind["realized"]
    assert rep.unrealized == ind["unrealized"]
    assert rep.fees == ind["fees"] and rep.funding == ind["funding"] == D("-0.0075")
    assert rep.liquidation_fees == ind["liq_fees"] == D("0.25")
    assert rep.net_pnl == ind["realized"] + ind["unrealized"] - ind["fees"] - ind["liq_fees"] + ind["funding"]
    assert rep.volume == ind["volume"] and rep.fills == ind["fills"]
    assert rep.start_equity == ind["start_equity"] and rep.end_equity == ind["end_equity"]
    assert rep.total_return == pytest.approx(float(ind["end_equity"] / ind["start_equity"] - 1), rel=1e-12)
    assert rep.max_drawdown == ind["max_dd"]
    closed = rep.closed_trades
    assert [t.pnl for t in closed] == ind["trades"]
    assert rep.win_rate == sum(1 for p in ind["trades"] if p > 0) / len(ind["trades"])
    assert rep.average_trade == sum(ind["trades"], D(0)) / len(ind["trades"])
    assert rep.n_returns == ind["n_rets"]
    assert rep.sharpe == pytest.approx(ind["sharpe"], rel=1e-9)
    assert rep.per_market["BTC-USD"].position == ind["position"] == bot.portfolio.positions["BTC-USD"].size
    # the bot's own books agree with the journal-derived figures (before the hand-added rows)
    assert ind["realized"] == bot.portfolio.realized_pnl and ind["fees"] == bot.portfolio.fees_paid
    # every query is listed with the row count it returned
    by_label = {s.label: s.rows for s in rep.sources}
    assert by_label["fills (live rows of the selected runs)"] == ind["counts"]["fills"]
    assert by_label["funding payments"] == ind["counts"]["funding_payments"] == 1
    assert by_label["liquidations"] == ind["counts"]["liquidations"] == 1
    assert by_label["mark prices"] == ind["counts"]["marks"]


def test_net_pnl_matches_the_equity_change_of_a_run(tmp_path):
    bot = make_bot(tmp_path)
    asyncio.run(bot.run())
    rep = build_report(tmp_path / "j.sqlite")
    assert rep.equity_change == rep.net_pnl  # exact: fills, marks and equity come from one journal
    assert not [n for n in rep.notes if "differs" in n]
    assert rep.period_s == 1.0  # 12 s snapshots sampled 12 times: every 1 s decision


def test_html_is_self_contained_and_shows_traceable_figures(journal, tmp_path):
    path, _bot = journal
    files = write_report(path, tmp_path)
    html = files.html.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html and "<link" not in html and "@import" not in html
    # the only URL is the SVG namespace: nothing is fetched
    assert set(re.findall(r"https?://[^\"' )]+", html)) == {"http://www.w3.org/2000/svg"}
    assert html.count("<svg") >= 3  # equity, drawdown, one price chart
    rep = files.report
    for figure in (f"{rep.net_pnl:+,.2f}", f"{rep.realized:+,.2f}", f"{-rep.fees:+,.2f}", f"{rep.funding:+,.2f}"):
        assert figure in html
    assert f'exact: {rep.net_pnl}' in html  # the exact value behind each rounded figure
    assert "Sources" in html and "SELECT f.*, i.strategy AS strategy FROM fills f" in html
    assert "Sharpe" in html and "annualised with sqrt(" in html and "risk-free rate 0" in html
    figures = json.loads(files.json.read_text())
    assert D(figures["net_pnl"]) == rep.net_pnl and figures["closed_trades"] == len(rep.closed_trades)


def test_png_when_matplotlib_is_there_and_a_clear_note_when_not(journal, tmp_path, monkeypatch):
    path, _bot = journal
    try:
        import matplotlib  # noqa: F401

        files = write_report(path, tmp_path / "with")
        assert files.png is not None and files.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    except ImportError:
        pass
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    files = write_report(path, tmp_path / "without")
    assert files.png is None and "matplotlib is not installed" in files.png_note
    assert "matplotlib is not installed" in files.html.read_text()


def test_report_command(journal, tmp_path):
    path, _bot = journal
    app = typer.Typer()

    @app.callback()
    def main():
        pass

    register_commands(app)
    result = CliRunner().invoke(app, ["report", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "report:" in result.output and "net PnL" in result.output and "Sharpe" in result.output
    assert list((tmp_path / "out").glob("report-*.html"))
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "nope.sqlite")])
    assert missing.exit_code != 0 and "journal not found" in missing.output
    bad_run = CliRunner().invoke(app, ["report", str(path), "--run", "nosuchrun"])
    assert bad_run.exit_code != 0 and "is not in this journal" in bad_run.output


def test_report_is_written_at_the_end_of_a_replay(tmp_path):
    bot = make_bot(tmp_path, report=True)
    summary = asyncio.run(bot.run())
    html = tmp_path / f"report-{bot.run_id}.html"
    assert html.is_file()
    assert any(str(html) in n for n in summary.notes)
    assert session_of(bot).stopped


def test_report_of_a_resumed_run_equals_the_uninterrupted_one(tmp_path):
    whole = make_bot(tmp_path, journal="whole.sqlite")
    asyncio.run(whole.run())
    cut = make_bot(tmp_path, CrashAt(150), journal="cut.sqlite")
    with pytest.raises(Crash):
        asyncio.run(cut.run())
    session_of(cut).writer.close()
    asyncio.run(make_bot(tmp_path, journal="cut.sqlite").run())
    a = build_report(tmp_path / "whole.sqlite").figures()
    b = build_report(tmp_path / "cut.sqlite").figures()
    assert len(b["run_ids"]) == 2
    for key in ("realized", "unrealized", "fees", "net_pnl", "end_equity", "max_drawdown", "fills", "closed_trades", "win_rate"):
        assert a[key] == b[key], key
    assert any("voided" in n for n in build_report(tmp_path / "cut.sqlite").notes)


# ---------------------------------------------------------------------------
# the building blocks
# ---------------------------------------------------------------------------


def test_drawdown_duration_runs_from_the_peak_to_its_recovery():
    s = [(0, D(100)), (10 * NS, D(110)), (20 * NS, D(99)), (30 * NS, D(105)), (40 * NS, D(111)), (50 * NS, D(108))]
    dd = drawdowns(s)
    assert dd["max_dd"] == D(11) and dd["max_dd_frac"] == pytest.approx(0.1)
    assert (dd["peak_ns"], dd["trough_ns"], dd["recovery_ns"]) == (10 * NS, 20 * NS, 40 * NS)
    assert dd["duration_s"] == 30 and dd["recovered"]
    assert dd["longest_underwater_s"] == 30
    never = drawdowns(s[:3])
    assert not never["recovered"] and never["duration_s"] == 10


def test_resample_carries_the_last_value_forward():
    s = [(0, D(1)), (25, D(2)), (70, D(3))]
    assert resample(s, 10) == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 3.0]


def test_decimate_keeps_extremes_and_ends():
    s = [(i, D(i % 97)) for i in range(10_000)]
    out = decimate(s, 300)
    assert len(out) <= 320 and out[0] == s[0] and out[-1] == s[-1]
    assert max(v for _t, v in out) == 96 and min(v for _t, v in out) == 0


def test_render_html_of_a_journal_without_snapshots(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.start_run("r1", ts_ns=0, strategy="grid", venues=["paper"], tickers=["BTC-USD"])
    j.close()
    rep = build_report(tmp_path / "j.sqlite")
    html = render_html(rep)
    assert "no equity snapshots" in html and "n/a" in html
