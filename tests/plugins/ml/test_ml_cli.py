"""``runbot.py ml train`` / ``ml evaluate`` on the embedded real sample (Binance 5-minute BTC/ETH bars
with Binance/Hyperliquid funding, examples/data/SOURCES.md), and their one-line errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from perpbot.cli import build_app
from perpbot.plugins.ml import store

DATA = ["--data", "sample:bars", "--funding", "sample:funding"]
FAST = ["--analyzers", "technical,sentiment,structure", "--every", "5m", "--horizon", "12", "--max-iter", "30"]


def run(*args):
    res = CliRunner().invoke(build_app(), ["ml", *map(str, args)])
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ml") / "sample.joblib"
    code, stdout, stderr = run("train", *DATA, *FAST, "--walk-forward", "train=10d,test=5d", "--end", "2024-03-01",
                               "--out", out)
    assert code == 0, stderr
    return out, stdout


def test_train_prints_walk_forward_figures_and_writes_the_model(trained):
    out, stdout = trained
    assert "window  test period (UTC)" in stdout and "pooled test rows" in stdout and "permutation importance" in stdout
    assert f"wrote {out}" in stdout
    meta = store.load_meta(out)
    assert meta["analyzers"] == ["technical", "sentiment", "structure"]
    assert meta["horizon"] == 12 and meta["every_ns"] == 300 * 10**9 and meta["costs"]["round_trip"] == "0.0010"
    assert all(f.split(".")[0] in ("technical", "sentiment", "structure", "confluence") for f in meta["features"])
    assert {"confluence.direction", "confluence.score"} <= set(meta["features"])
    assert meta["training_window"]["end"] <= "2024-03-01T00:00Z"
    w = meta["metrics"]["windows"]
    assert len(w) == 3 and all(0.0 <= x["auc"] <= 1.0 for x in w)   # test windows starting day 10, 15, 20
    assert w[0]["test_start"] - w[0]["train_start"] == 10 * 86400 * 10**9
    assert meta["tickers"] == ["BTC-USD", "ETH-USD"] and meta["data"] == ["sample:bars", "sample:funding"]


def test_evaluate_scores_rows_after_the_training_window_only(trained):
    out, _ = trained
    code, stdout, stderr = run("evaluate", "--model", out, *DATA, "--json")
    assert code == 0, stderr
    res = json.loads(stdout)
    assert res["first"] > res["model"]["end"] and res["rows"] > 1000
    assert 0.0 <= res["auc"] <= 1.0 and 0.0 <= res["base_rate"] <= 1.0
    code, stdout, stderr = run("evaluate", "--model", out, *DATA, "--in-sample")
    assert code == 0 and "AUC" in stdout and "precision" in stdout and "all rows" in stdout
    assert f"{out}: {res['rows']} signal rows" not in stdout  # more rows: the training window's too


def test_a_model_whose_features_do_not_match_the_data_is_refused(trained, tmp_path):
    out, _ = trained
    dst = tmp_path / out.name
    dst.write_bytes(out.read_bytes())
    meta = json.loads(store.meta_path(out).read_text())
    meta["features"] = [f for f in meta["features"] if f != "technical.rsi"] + ["orderflow.cvd_z"]
    store.meta_path(dst).write_text(json.dumps(meta))
    code, stdout, stderr = run("evaluate", "--model", dst, *DATA)
    assert code == 2
    assert stderr.strip().splitlines() == [
        f"error: ml: model {dst} does not match the data's features (missing: orderflow.cvd_z; extra: technical.rsi)"]


def test_a_model_from_another_scikit_learn_is_refused_before_reading_data(trained, tmp_path):
    out, _ = trained
    dst = tmp_path / out.name
    dst.write_bytes(out.read_bytes())
    meta = json.loads(store.meta_path(out).read_text())
    meta["libraries"]["scikit-learn"] = "1.0.2"
    store.meta_path(dst).write_text(json.dumps(meta))
    code, _, stderr = run("evaluate", "--model", dst, "--data", "/nonexistent/bars.csv")
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert "was written with scikit-learn 1.0.2" in stderr and "retrain it" in stderr


@pytest.mark.parametrize("args,message", [
    (["--analyzers", "technicl"], "did you mean 'technical'"),
    (["--walk-forward", "train=10d"], "missing test=DURATION"),
    (["--every", "5x"], "--every: '5x' is not a duration"),
    (["--ticker", "DOGE"], "--ticker DOGE-USD: not in the data (markets: BTC-USD, ETH-USD)"),
    (["--fee", "abc"], "--fee: 'abc' is not a number"),
    (["--fee", "-0.1"], "fee = Decimal('-0.1') must be a fraction"),
    (["--walk-forward", "train=60d,test=30d"], "does not fit the data's"),
    (["--embargo", "5m"], "shorter than the horizon"),
    (["--threshold", "1.5"], "--threshold 1.5 must be between 0 and 1"),
    (["--start", "2024-13-01"], "--start: expected a date YYYY-MM-DD"),
])
def test_train_bad_input_is_one_line(tmp_path, args, message):
    base = [*DATA, *FAST, "--walk-forward", "train=10d,test=5d", "--out", tmp_path / "m.joblib"]
    code, _, stderr = run("train", *base, *args)
    lines = stderr.strip().splitlines()
    assert code != 0 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], stderr
    assert not (tmp_path / "m.joblib").exists()


def test_missing_data_and_model_are_one_line(tmp_path):
    code, _, stderr = run("train", "--data", tmp_path / "none.csv", "--out", tmp_path / "m.joblib")
    assert code == 2 and "no such file" in stderr and len(stderr.strip().splitlines()) == 1
    code, _, stderr = run("evaluate", "--model", tmp_path / "m.joblib", *DATA)
    assert code == 2 and "does not exist" in stderr
