"""Sweeps on embedded Ray (2 workers): a cell equals the backtest run alone, a failed cell is
reported without stopping the sweep, an interrupted sweep resumes with only its missing cells,
and Optuna/random searches run the trials asked."""

from __future__ import annotations

import csv
import json

import pytest

#: figures that differ between two runs of the same backtest (ids and wall-clock timing)
VOLATILE = {"run_id", "wall_seconds", "events_per_second"}


def _rows(sweep_dir):
    return [json.loads(line) for line in (sweep_dir / "cells.jsonl").read_text().splitlines()]


def _sweep_dir(out):
    (d,) = [p for p in out.iterdir() if p.is_dir()]
    return d


def _figures(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in VOLATILE}


def test_three_cells_equal_backtest_json_and_failed_cell_is_reported(cli, ray_session, small_config, tmp_path):
    out = tmp_path / "sweeps"
    grid = ("-p", "entry_threshold=55,60,65", "-p", "exit_threshold=50,58")
    # (55, 58): exit_threshold must be below entry_threshold -> that cell fails, the others run
    code, stdout, err = cli("sweep", "--config", small_config, "--out", out, "--state-dir", tmp_path, *grid)
    assert code == 0, err
    assert "running on Ray with 2 workers" in err
    rows = {(r["params"]["entry_threshold"], r["params"]["exit_threshold"]): r for r in _rows(_sweep_dir(out))}
    assert set(rows) == {(e, x) for e in ("55", "60", "65") for x in ("50", "58")}
    failed = [k for k, r in rows.items() if r["status"] != "ok"]
    assert failed == [("55", "58")]
    assert "exit_threshold" in rows[("55", "58")]["error"] and rows[("55", "58")]["summary"] is None
    assert "error: strategy sniper" in stdout  # the failed cell's error line is in the printed table
    assert "html: " in stdout and (_sweep_dir(out) / "report.html").is_file()
    table = list(csv.DictReader(open(_sweep_dir(out) / "results.csv")))
    assert len(table) == 6 and sum(r["status"] == "error" for r in table) == 1
    import pyarrow.parquet as pq

    parquet = pq.read_table(_sweep_dir(out) / "results.parquet").to_pylist()
    assert [r["final_equity"] for r in parquet] == [r["final_equity"] or None for r in table]  # exact strings
    page = (_sweep_dir(out) / "report.html").read_text()
    assert page.count("<svg") == 2 and "<script" not in page and "src=" not in page  # self-contained, inline SVG
    # the same command again: the finished cells are kept, the failed one runs again (and fails again)
    code, _, err = cli("sweep", "--config", small_config, "--out", out, "--state-dir", tmp_path, *grid)
    assert code == 0 and "5 cells already done, 1 failed cells run again" in err
    assert [line.split(":")[0] for line in err.splitlines() if line.startswith("  grid ")] == [
        "  grid entry_threshold=55 exit_threshold=58"]
    # three cells, each equal to `backtest --json` run alone with its parameters
    for entry, exit_ in (("55", "50"), ("60", "58"), ("65", "50")):
        code, text, err = cli("backtest", "--config", small_config, "--state-dir", tmp_path / f"bt-{entry}-{exit_}",
                              "--no-journal", "--no-report", "--json",
                              "-p", f"entry_threshold={entry}", "-p", f"exit_threshold={exit_}")
        assert code == 0, err
        alone = json.loads(text)
        cell = rows[(entry, exit_)]["summary"]
        assert _figures(cell) == _figures(alone)
        assert int(alone["closed_trades"]) > 0  # the data is long enough to trade: the comparison means something
    assert len({rows[k]["summary"]["final_equity"] for k in rows if k not in failed}) > 1  # the parameters matter


def test_third_cell_through_the_object_store_equals_backtest(cli, ray_session, tmp_path, monkeypatch):
    """A cell fed through Ray's object store (as on a cluster without shared storage) equals the
    backtest run alone: the data files are moved away once shipped, so only the copies can be read."""
    from tests.plugins.research.conftest import make_config

    from perpbot.plugins.research import engine

    config = make_config(tmp_path / "data", 2)
    code, text, err = cli("backtest", "--config", config, "--state-dir", tmp_path / "bt", "--no-journal",
                          "--no-report", "--json", "-p", "stop_loss=0.003")
    assert code == 0, err
    original = engine.RayEngine.ship_data

    def ship_then_hide(self, *args):
        original(self, *args)
        (tmp_path / "data").rename(tmp_path / "elsewhere")

    monkeypatch.setattr(engine.RayEngine, "ship_data", ship_then_hide)
    out = tmp_path / "sweeps"
    code, _, err = cli("sweep", "--config", config, "--out", out, "-p", "stop_loss=0.003", "--workers", "1",
                       "--data-via", "store")
    assert code == 0, err
    assert "running on Ray with 1 workers, data through the object store" in err
    assert not (tmp_path / "data").exists()
    (row,) = _rows(_sweep_dir(out))
    assert row["status"] == "ok", row["error"]
    assert _figures(row["summary"]) == _figures(json.loads(text))


def test_interrupted_sweep_resumes_with_only_missing_cells(cli, ray_session, small_config, tmp_path, monkeypatch):
    from perpbot.plugins.research import store

    out = tmp_path / "sweeps"
    args = ("sweep", "--config", small_config, "--out", out, "-p", "entry_threshold=55,60", "-p", "exit_threshold=45,50",
            "--max-events", "1500", "--workers", "1")
    original = store.SweepStore.append
    calls = []

    def append_then_ctrl_c(self, row):
        original(self, row)
        calls.append(row["key"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # what Ctrl-C raises in the driver while it waits for cells

    monkeypatch.setattr(store.SweepStore, "append", append_then_ctrl_c)
    code, _, err = cli(*args)
    assert code == 130, err
    assert "interrupted: 2 finished cells kept" in err and "run the same command to resume" in err
    first = [r["key"] for r in _rows(_sweep_dir(out))]
    assert first == calls
    monkeypatch.setattr(store.SweepStore, "append", original)
    code, stdout, err = cli(*args)
    assert code == 0, err
    assert "2 cells already done" in err
    rows = _rows(_sweep_dir(out))
    assert len(rows) == 4 and len({r["key"] for r in rows}) == 4
    assert [r["key"] for r in rows[:2]] == first  # kept as they were; only the two missing cells ran
    assert sum(line.startswith("  grid ") for line in err.splitlines()) == 2
    # a third run: nothing left to run
    code, _, err = cli(*args)
    assert code == 0 and "4 cells already done" in err
    assert sum(line.startswith("  grid ") for line in err.splitlines()) == 0


@pytest.mark.parametrize("search", ["random", "optuna"])
def test_random_and_optuna_run_the_trials_asked(cli, ray_session, small_config, tmp_path, search):
    out = tmp_path / "sweeps"
    code, stdout, err = cli("sweep", "--config", small_config, "--out", out, "-p", "entry_threshold=55,60,65",
                            "-p", "exit_threshold=40,45", "--search", search, "--trials", "3", "--objective",
                            "profit_factor", "--min-trades", "1", "--max-events", "1500")
    assert code == 0, err
    rows = _rows(_sweep_dir(out))
    assert 1 <= len({r["key"] for r in rows}) <= 3  # Optuna may ask a combination twice: it runs once
    assert all(r["status"] == "ok" for r in rows)
    assert all(set(r["objectives"]) == {"net_pnl", "sharpe", "sortino", "calmar", "profit_factor"} for r in rows)
