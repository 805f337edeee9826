"""Walk-forward never uses test data for choosing, and ``backtest --json`` prints the summary's figures."""

from __future__ import annotations

import json
from decimal import Decimal

from tests.plugins.research.conftest import DAY_NS, START_NS, make_config
from tests.plugins.research.test_research_sweep import _figures, _rows, _sweep_dir

WF = ("-p", "entry_threshold=55,65", "--walk-forward", "train=2d,test=1d,step=2d")


def _by_window(rows):
    out = {}
    for r in rows:
        out.setdefault((r["phase"], r["window"]), []).append(r)
    return out


def test_walk_forward_chooses_on_train_only(cli, ray_session, tmp_path):
    from perpbot.plugins.research.search import best

    clean = make_config(tmp_path / "clean", 6)
    # the same data, except that every bar from window 0's test start on is invalid: a train
    # cell of window 0 that read one test row would fail or change its figures
    poisoned = make_config(tmp_path / "poisoned", 6, poison_from_ns=START_NS + 2 * DAY_NS)
    runs = {}
    for name, config in (("clean", clean), ("poisoned", poisoned)):
        code, stdout, err = cli("sweep", "--config", config, "--out", tmp_path / f"out-{name}", *WF)
        assert code == 0, err
        runs[name] = (_by_window(_rows(_sweep_dir(tmp_path / f"out-{name}"))), stdout)
    rows, stdout = runs["clean"]
    assert "out-of-sample total" in stdout and "window 0: train 2024-02-01 00:00 .. 2024-02-03 00:00" in stdout
    train0, test0 = rows[("train", 0)], rows[("test", 0)]
    assert len(train0) == 2 and all(r["status"] == "ok" for r in train0)
    chosen = best(train0, "net_pnl", 0)
    assert [t["params"] for t in test0] == [chosen["params"]]
    for r in train0:  # train cells end before the test window starts; the test cell starts at it
        assert START_NS <= r["summary"]["start_ns"] and r["summary"]["end_ns"] <= START_NS + 2 * DAY_NS
    assert START_NS + 2 * DAY_NS <= test0[0]["summary"]["start_ns"] and test0[0]["summary"]["end_ns"] <= START_NS + 3 * DAY_NS
    assert ("test", 1) in rows  # two windows: train days 0-2 / test 2-3, train 2-4 / test 4-5

    bad, _ = runs["poisoned"]
    bad_train0 = sorted(bad[("train", 0)], key=lambda r: r["key"])
    assert all(r["status"] == "ok" for r in bad_train0)
    assert [_figures(r["summary"]) for r in bad_train0] == [_figures(r["summary"]) for r in sorted(train0, key=lambda r: r["key"])]
    assert [t["params"] for t in bad[("test", 0)]] == [chosen["params"]]
    assert bad[("test", 0)][0]["status"] == "error" and "bars.csv" in bad[("test", 0)][0]["error"]
    assert all(r["status"] == "error" for r in bad[("train", 1)]) and ("test", 1) not in bad


def test_backtest_json_is_the_summary(cli, small_config, tmp_path):
    from perpbot.cli import build_config, run_backtest
    from perpbot.core.metrics import DrawdownTracker, plain
    from perpbot.core.report import RunSummary
    from perpbot.plugins.research.commands import backtest_opts
    from perpbot.plugins.research.recorder import recording, summary_json

    code, text, err = cli("backtest", "--config", small_config, "--state-dir", tmp_path / "a", "--no-journal", "--json")
    assert code == 0, err
    figures = json.loads(text)
    # what the root command prints for the same run
    code, rendered, err = cli("--config", small_config, "--state-dir", tmp_path / "b", "--no-journal", "--no-report")
    assert code == 0, err
    for label, key in (("starting equity", "starting_equity"), ("realized PnL", "realized_pnl"), ("fees paid", "fees"),
                       ("final equity", "final_equity"), ("max drawdown", "max_drawdown")):
        line = next(line for line in rendered.splitlines() if line.startswith(label))
        assert plain(Decimal(figures[key]), 2, grouping=True) in line, (label, line)
    assert f"closed trades     {figures['closed_trades']:>14}" in rendered
    # the keys are exactly the summary's (every field and the derived rates), Decimals as strings
    cfg = build_config(backtest_opts(config=small_config, state_dir=tmp_path / "c", no_journal=True, report=False))
    with recording() as rec:
        _bot, summary = run_backtest(cfg, console=False)
    assert isinstance(summary, RunSummary)
    assert set(figures) == set(summary.as_dict())
    assert _figures(figures) == _figures(summary_json(summary))
    assert figures["final_equity"] == str(summary.final_equity) and isinstance(figures["fees"], str)
    # the recorder's curve is the drawdown tracker's samples, its trades the ledger's
    assert len(rec.closed_pnls) == summary.closed_trades > 0
    assert DrawdownTracker.of(rec.equity).max_dd == summary.max_drawdown
