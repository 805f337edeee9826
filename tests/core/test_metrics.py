"""core/metrics.py: the definitions the run summary and the report share (issue 9)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from perpbot.core.metrics import (
    MIN_DAILY_RETURNS,
    DrawdownTracker,
    TradeLedger,
    daily_returns,
    format_duration,
    market_label,
    plain,
    sharpe_sortino,
)
from perpbot.core.report import MarketLine, RunSummary

NS = 10**9


# ---------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,kw,text",
    [
        (D("3.505E+4"), {}, "35050"),
        (D("35050.0").normalize(), {}, "35050"),
        (D("0E-8"), {}, "0"),
        (D("-0.0162"), {}, "-0.0162"),
        (D("1E-7"), {}, "0.0000001"),
        (D("1234567.891"), {"places": 2, "grouping": True, "sign": True}, "+1,234,567.89"),
        (D("-0.001"), {"places": 2}, "0.00"),  # no "-0.00"
        (D("-0.001"), {"places": 2, "sign": True}, "+0.00"),
        (1e-05, {}, "0.00001"),
        (None, {}, "n/a"),
    ],
)
def test_plain_never_prints_an_exponent(value, kw, text):
    assert plain(value, **kw) == text


@pytest.mark.parametrize(
    "seconds,text",
    [(3003000, "34d 18h 10m"), (86, "1m 26s"), (7300, "2h 1m"), (42.4, "42s"), (0, "0s"), (86400, "1d 0h 0m"), (None, "n/a")],
)
def test_durations_in_days_hours_minutes(seconds, text):
    assert format_duration(seconds) == text


def test_summary_prints_durations_and_positions_plainly():
    s = RunSummary(
        "r", "grid", ("paper",), 0, 3003000 * NS,
        markets=[MarketLine("BTC-USD", 1, D(1), D(0), D(0), D(0), D(0), D("1E+1"), 0)],
        max_drawdown=D("3.7412"), max_drawdown_frac=D("0.0004"), max_drawdown_duration_s=3003000.0,
        max_drawdown_peak_ns=0, longest_underwater_s=3003000.0,
    )
    text = s.render()
    assert "3003000 s" not in text and "lasted 34d 18h 10m, not recovered" in text
    row = next(line for line in text.splitlines() if line.startswith("BTC-USD"))
    assert "1E+1" not in row and " 10 " in row


def test_labels_follow_the_primary_venue():
    assert market_label("paper", "BTC-USD", "paper") == "BTC-USD"
    assert market_label("binance", "BTC-USD", "paper") == "binance:BTC-USD"


# ---------------------------------------------------------------------------
# drawdown
# ---------------------------------------------------------------------------


def test_drawdown_tracker_peak_trough_recovery_and_longest_under_water():
    t = DrawdownTracker.of([(0, D(100)), (10 * NS, D(110)), (20 * NS, D(99)), (30 * NS, D(105)), (40 * NS, D(111)),
                            (50 * NS, D(108)), (90 * NS, D(109))])
    assert t.max_dd == D(11) and t.max_dd_frac == D(11) / D(110)
    assert (t.max_dd_peak_ns, t.max_dd_trough_ns, t.max_dd_recovery_ns) == (10 * NS, 20 * NS, 40 * NS)
    assert t.max_dd_duration_ns == 30 * NS and t.recovered
    assert t.longest_underwater_ns == 50 * NS  # the smaller dip from 40 s, still under water at 90 s


def test_drawdown_tracker_state_round_trip_and_old_checkpoints():
    series = [(0, D(100)), (10 * NS, D(90)), (20 * NS, D(95)), (30 * NS, D(80)), (40 * NS, D(120))]
    whole = DrawdownTracker.of(series)
    part = DrawdownTracker.of(series[:3])
    resumed = DrawdownTracker()
    resumed.restore(part.state())
    for ts, eq in series[3:]:
        resumed.update(eq, ts)
    assert resumed.state() == whole.state()
    old = DrawdownTracker()  # a checkpoint written before issue 9 (fewer keys)
    old.restore({"peak": "100", "max_dd": "10", "max_dd_frac": "0.1", "peak_ns": 0, "dd_start_ns": 0,
                 "max_dd_duration_ns": 10, "samples": 2})
    assert old.max_dd == D(10) and old.peak == D(100) and old.samples == 2


# ---------------------------------------------------------------------------
# trades, wins, tags, funding
# ---------------------------------------------------------------------------


def test_wins_are_net_of_fees_and_flips_split_the_fee():
    led = TradeLedger(keep_trades=True)
    led.add_fill("paper", "BTC-USD", "BUY", D(100), D(1), D("0.5"), 1, tag="in")
    r = led.add_fill("paper", "BTC-USD", "SELL", D("100.5"), D(1), D("0.5"), 2, tag="out")  # +0.5 gross, -0.5 net
    assert r.realized == D("0.5") and r.closed[0].pnl == D("-0.5")
    assert (led.closed_trades, led.wins) == (1, 0)  # a gross win, a net loss: not a win
    led.add_fill("paper", "BTC-USD", "BUY", D(100), D(1), D("0.1"), 3, tag="in")
    r = led.add_fill("paper", "BTC-USD", "SELL", D(110), D(3), D("0.3"), 4, tag="flip")  # closes 1, opens 2 short
    assert r.realized == D(10) and r.closed_size == D(1) and r.opened_size == D(2)
    assert r.closed[0].fees == D("0.1") + D("0.1") and r.opened[0].fees == D("0.2") and r.opened[0].side == "SHORT"
    assert (led.closed_trades, led.wins) == (2, 1)
    assert led.realized_by_tag() == {"flip": D(10), "in": D(0), "out": D("0.5")}
    assert {k: f.fees for k, f in led.per_tag.items()} == {"in": D("0.6"), "out": D("0.5"), "flip": D("0.3")}


def test_ledger_state_round_trip_continues_an_open_trade():
    fills = [("BUY", "100", "2", "0.2", "a"), ("SELL", "105", "1", "0.1", "b"), ("SELL", "95", "1", "0.1", "c")]
    whole = TradeLedger()
    for i, (side, px, q, fee, tag) in enumerate(fills):
        whole.add_fill("v", "T", side, D(px), D(q), D(fee), i, tag=tag)
    whole.add_funding(D("0.3"), "s")
    part = TradeLedger()
    for i, (side, px, q, fee, tag) in enumerate(fills[:2]):
        part.add_fill("v", "T", side, D(px), D(q), D(fee), i, tag=tag)
    part.add_funding(D("0.3"), "s")
    resumed = TradeLedger()
    resumed.restore(part.state())
    resumed.add_fill("v", "T", "SELL", D(95), D(1), D("0.1"), 2, tag="c")
    assert resumed.state() == whole.state()
    assert (resumed.closed_trades, resumed.wins) == (1, 0)  # +5 - 5 realized, 0.4 fees: a loss net of fees


# ---------------------------------------------------------------------------
# Sharpe and Sortino
# ---------------------------------------------------------------------------


def test_ratios_need_the_stated_minimum_of_daily_returns():
    six_minutes = [(i * 5 * NS, D(10000) + i) for i in range(73)]
    assert daily_returns(six_minutes) == []
    r = sharpe_sortino(daily_returns(six_minutes))
    assert r.sharpe is None and r.sortino is None and not r.supported
    assert r.note == f"not shown: needs at least {MIN_DAILY_RETURNS} daily returns, the data has 0"
    rets = [0.01 if i % 3 else -0.005 for i in range(MIN_DAILY_RETURNS)]
    ok = sharpe_sortino(rets)
    assert ok.supported and ok.n_returns == MIN_DAILY_RETURNS and ok.sharpe > 0 and ok.sortino > 0
    assert sharpe_sortino(rets[:-1]).sharpe is None


def test_daily_returns_use_whole_days_only():
    day = 86400 * NS
    series = [(0, D(100)), (day, D(110)), (2 * day, D(99)), (2 * day + day // 2, D(500))]  # a half day at the end
    assert daily_returns(series) == pytest.approx([0.1, -0.1])
