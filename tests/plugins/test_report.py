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


def daily_returns_by_hand(series):
    """Equity at the first sample and every whole day after it (last value at or before), returns."""
    days = (series[-1][0] - series[0][0]) // (86400 * NS)
    closes = []
    for k in range(days + 1):
        at = series[0][0] + k * 86400 * NS
        closes.append(float([v for t, v in series if t <= at][-1]))
    return [b / a - 1 for a, b in zip(closes, closes[1:])]


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
    # Sharpe on whole days (at least 30 daily returns, else not defined)
    rets = daily_returns_by_hand(series)
    sharpe = statistics.mean(rets) / statistics.stdev(rets) * math.sqrt(365.25) if len(rets) >= 30 else None
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
    assert ind["sharpe"] is None and rep.sharpe is None and rep.sortino is None  # 400 s: no daily returns
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
    # a 400 s run: no Sharpe/Sortino card, and the performance table says why
    assert "Sharpe (ann.)</div>" not in html and "Sortino (ann.)</div>" not in html
    assert "needs at least 30 daily returns, the data has 0" in html
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
    for key in ("realized", "unrealized", "fees", "net_pnl", "end_equity", "max_drawdown", "fills", "closed_trades", "win_rate",
                "wins", "per_tag", "max_drawdown_duration_s"):
        assert a[key] == b[key], key
    assert "the bot's tracker" in build_report(tmp_path / "cut.sqlite").drawdown_source  # carried across the resume
    # the resumed bot's own summary (ledger and drawdown tracker restored from the checkpoint) equals the whole run's
    def recorded(name):
        j = Journal.open(tmp_path / name, readonly=True)
        try:
            return json.loads(j.runs()[-1]["summary_json"])
        finally:
            j.close()

    sa, sb = recorded("whole.sqlite"), recorded("cut.sqlite")
    for key in ("max_drawdown", "max_drawdown_peak_ns", "max_drawdown_trough_ns", "closed_trades", "wins", "per_tag"):
        assert sa[key] == sb[key], key
    assert sb["closed_trades"] == b["closed_trades"] and sb["wins"] == b["wins"]
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


# ---------------------------------------------------------------------------
# issue 9: labels, plain decimals, per-tag realized PnL, funding per strategy, ratios
# ---------------------------------------------------------------------------


def _hand_journal(path, *, venues=("paper", "binance"), strategy="funding_arb"):
    """A journal written by hand: one run on ``venues`` (the first is the primary)."""
    from perpbot.core.model import Balance, Fill, Liquidity, OrderParams, OrderRequest, OrderType

    j = Journal(path)
    j.start_run("r1", ts_ns=0, strategy=strategy, venues=list(venues), tickers=["BTC-USD"],
                config={"exchange": list(venues), "strategy": strategy})
    cid = iter(range(1, 100))

    def fill(venue, side, price, size, fee, ts, tag):
        c = next(cid)
        order = OrderParams(ticker="BTC-USD", side=side, size=D(size), order_type=OrderType.MARKET, tag=tag)
        j.record_intent("r1", OrderRequest.from_params(order, c, D(size)), ts_ns=ts, venue=venue, strategy=strategy)
        j.record_fill("r1", Fill(c, "BTC-USD", side, D(price), D(size), D(fee), Liquidity.TAKER, ts, fill_id=f"f{c}", tag=tag),
                      venue=venue)

    return j, fill, Balance


def test_two_venue_legs_are_labelled_by_the_primary_venue_not_alphabetically(tmp_path):
    from perpbot.core.model import Side

    j, fill, _ = _hand_journal(tmp_path / "j.sqlite", venues=("paper", "binance"))
    fill("paper", Side.SELL, "35050", "0.1", "1.75", 1 * NS, "farb-open")
    fill("binance", Side.BUY, "35040", "0.1", "1.75", 1 * NS, "farb-open")
    j.close()
    rep = build_report(tmp_path / "j.sqlite")
    assert rep.primary_venue == "paper" and rep.venues == ["paper", "binance"]
    assert rep.per_market["BTC-USD"].position == D("-0.1")  # the paper leg
    assert rep.per_market["binance:BTC-USD"].position == D("0.1")  # the Binance leg, not "BTC-USD"
    html = render_html(rep)
    assert "binance:BTC-USD" in html


def test_prices_sizes_and_figures_print_as_plain_decimals(tmp_path):
    from perpbot.core.model import Side

    j, fill, _ = _hand_journal(tmp_path / "j.sqlite", venues=("paper",))
    fill("paper", Side.BUY, "35050", "0.10", "0E-8", 1 * NS, "in")
    fill("paper", Side.SELL, "35100", "0.10", "0E-8", 2 * NS, "out")
    j.close()
    files = write_report(tmp_path / "j.sqlite", tmp_path)
    html = files.html.read_text()
    assert "3.505E+4" not in html and "E+" not in html and "E-" not in html
    assert ">35050<" in html and ">35100<" in html and ">0.1<" in html  # entry, exit, size in the trades table
    assert "exact: 35050" in html


def test_realized_pnl_per_tag_and_funding_per_strategy(tmp_path):
    from perpbot.core.model import FundingPayment, Side

    j, fill, _ = _hand_journal(tmp_path / "j.sqlite", venues=("paper",), strategy="sniper")
    fill("paper", Side.BUY, "100", "2", "0.1", 1 * NS, "sniper-entry")
    fill("paper", Side.SELL, "104", "1", "0.05", 2 * NS, "sniper-exit:take-profit")  # +4
    fill("paper", Side.SELL, "99", "1", "0.05", 3 * NS, "sniper-exit:stop-loss")  # -1
    j.record_funding("r1", FundingPayment("BTC-USD", 2 * NS, D("1"), D("100"), D("0.0001"), D("-0.02")), venue="paper")
    j.close()
    rep = build_report(tmp_path / "j.sqlite")
    assert {k: b.realized for k, b in rep.per_tag.items()} == {
        "sniper-entry": D(0), "sniper-exit:stop-loss": D(-1), "sniper-exit:take-profit": D(4)
    }
    assert sum((b.realized for b in rep.per_tag.values()), D(0)) == rep.realized == D(3)
    assert rep.per_strategy["sniper"].funding == rep.funding == D("-0.02")
    # one round trip (2 -> 0), closed by the stop-loss fill; won net of fees (3 - 0.2 > 0)
    assert rep.per_tag["sniper-exit:stop-loss"].trades == 1 and rep.wins == 1


def test_sharpe_and_sortino_only_on_enough_daily_returns(tmp_path):
    """Headline ratios need at least 30 daily returns; the values equal a computation by hand."""
    from perpbot.core.metrics import MIN_DAILY_RETURNS
    from perpbot.core.model import Balance

    def journal(days, name):
        j = Journal(tmp_path / name)
        j.start_run("r1", ts_ns=0, strategy="grid", venues=["paper"], tickers=["BTC-USD"])
        eq = D(10000)
        series = []
        for h in range(days * 24 + 1):
            eq += D((h // 24 * 37) % 11 - 5) + D((h * 7919) % 7 - 3)  # days up and days down
            ts = h * 3600 * NS
            j.record_equity("r1", Balance(eq, eq, eq), ts_ns=ts, venue="paper")
            series.append((ts, eq))
        j.close()
        return build_report(tmp_path / name), series

    short, _ = journal(MIN_DAILY_RETURNS - 1, "short.sqlite")
    assert short.sharpe is None and short.sortino is None and short.n_returns == MIN_DAILY_RETURNS - 1
    assert "Sharpe (ann.)</div>" not in render_html(short)
    long, series = journal(MIN_DAILY_RETURNS + 10, "long.sqlite")
    rets = daily_returns_by_hand(series)
    assert long.n_returns == len(rets) == MIN_DAILY_RETURNS + 10
    assert long.sharpe == pytest.approx(statistics.mean(rets) / statistics.stdev(rets) * math.sqrt(365.25), rel=1e-9)
    down = math.sqrt(sum(min(r, 0) ** 2 for r in rets) / len(rets))
    assert long.sortino == pytest.approx(statistics.mean(rets) / down * math.sqrt(365.25), rel=1e-9)
    html = render_html(long)
    assert "Sharpe (ann.)</div>" in html and "Sortino (ann.)</div>" in html
