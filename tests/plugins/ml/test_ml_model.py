"""Gradient boosting, calibration and importances, walk-forward (plugins/ml/model.py)."""

from __future__ import annotations

import numpy as np
import pytest

from perpbot.plugins.ml.dataset import Costs, build_dataset
from perpbot.plugins.ml.model import ISOTONIC_MIN, ModelParams, fit_calibrated, scores, walk_forward
from perpbot.plugins.ml.splits import parse_walk_forward, walk_forward_splits

from ml_synth import HOUR, synth_rows

FAST = dict(max_iter=40, min_samples_leaf=30, threads=1)


def _run(rows, wf="train=25d,test=12d", horizon=1):
    ds = build_dataset(rows, horizon=horizon, costs=Costs())
    splits = walk_forward_splits(ds.ts_ns, ds.label_end_ns, parse_walk_forward(wf), embargo_ns=horizon * HOUR,
                                 horizon_ns=horizon * HOUR, min_rows=50)
    return ds, walk_forward(ds, splits, ModelParams(**FAST), embargo_ns=horizon * HOUR, threshold=0.5)


def test_a_real_signal_is_found_out_of_sample_and_ranked_first():
    ds, res = _run(synth_rows(1500, signal=0.8, seed=1))
    o = res["overall"]
    assert o["auc"] > 0.65
    assert o["precision"] > o["base_rate"] + 0.05           # the gate picks better than taking every signal
    assert o["mean_return_taken"] > o["mean_return_all"]
    assert next(iter(res["importance"])) == "t.x"             # the informative feature first
    assert res["importance"]["t.x"] > 5 * abs(res["importance"]["t.noise"])
    assert len(res["windows"]) == 3 and all(w["auc"] > 0.6 for w in res["windows"])
    assert {w["calibration"] for w in res["windows"]} == {"sigmoid"}  # < ISOTONIC_MIN calibration rows


def test_noise_gives_chance_auc():
    _, res = _run(synth_rows(1500, signal=0.0, seed=2))
    assert abs(res["overall"]["auc"] - 0.5) < 0.06


def test_probabilities_are_calibrated_on_the_newer_tail():
    """An overfitting booster (deep trees, no regularisation) gives overconfident probabilities; the
    calibration on the newer tail of the training rows brings them back in line with later outcomes."""
    ds = build_dataset(synth_rows(2400, signal=0.8, seed=4), horizon=1, costs=Costs())
    rows = np.arange(1700)
    overfit = ModelParams(max_iter=200, min_samples_leaf=5, learning_rate=0.3, l2_regularization=0.0,
                          max_leaf_nodes=31, threads=1)
    model, info = fit_calibrated(ds, rows, overfit, HOUR)
    assert info["calibration"] == "isotonic" and info["calibration_rows"] >= ISOTONIC_MIN
    assert info["fit_rows"] + info["calibration_rows"] == 1700 - 1  # one row purged before the tail
    p = model.predict_proba(ds.X[1700:])[:, 1]
    assert ((p >= 0) & (p <= 1)).all()
    # expected calibration error over later rows: per probability bin, |mean predicted - observed rate|,
    # weighted by the bin's rows (uncalibrated, this booster is off by about 0.25)
    y = ds.y[1700:]
    bins = np.minimum((p * 5).astype(int), 4)
    ece = sum(abs(p[bins == b].mean() - y[bins == b].mean()) * (bins == b).sum() for b in range(5) if (bins == b).any()) / len(p)
    assert ece < 0.1


def test_small_calibration_sets_use_sigmoid_and_one_class_gives_a_constant():
    ds = build_dataset(synth_rows(700, signal=0.8, seed=5), horizon=1, costs=Costs())
    _, info = fit_calibrated(ds, np.arange(600), ModelParams(**FAST), HOUR)
    assert info["calibration"] == "sigmoid"
    ds.y[:] = 0
    model, info = fit_calibrated(ds, np.arange(600), ModelParams(**FAST), HOUR)
    assert info["calibration"] == "constant" and model.predict_proba(ds.X[:3])[:, 1].tolist() == [0.0] * 3


def test_features_with_no_value_are_kept_in_the_list_but_left_out_of_the_fit():
    rows = synth_rows(1500, signal=0.8, seed=6)
    for r in rows:
        r["orderbook.spread_bps"] = float("nan")  # bar data: no book
    ds = build_dataset(rows, horizon=1, costs=Costs())
    model, info = fit_calibrated(ds, np.arange(1200), ModelParams(**FAST), HOUR)
    assert "orderbook.spread_bps" in ds.features and info["unused_features"] == ["orderbook.spread_bps"]
    assert model.predict_proba(ds.X[1200:]).shape == (len(ds) - 1200, 2)


def test_scores_definitions():
    y = np.array([1, 0, 1, 0, 1])
    p = np.array([0.9, 0.8, 0.6, 0.2, 0.1])
    fwd = np.array([0.01, -0.01, 0.02, -0.02, 0.03])
    s = scores(y, p, fwd, 0.5)
    assert s["precision"] == pytest.approx(2 / 3) and s["coverage"] == pytest.approx(3 / 5)
    assert s["base_rate"] == pytest.approx(3 / 5) and s["auc"] == pytest.approx(3 / 6)  # 3 of 6 pairs ordered
    assert s["mean_return_taken"] == pytest.approx(0.02 / 3)
    assert scores(np.array([1, 1]), np.array([0.2, 0.3]), np.zeros(2), 0.5)["auc"] is None  # one class: undefined
    assert scores(y, p, fwd, 0.95)["precision"] is None  # nothing taken
