"""The model file (plugins/ml/store.py) and the signal gate behind the load_signal_gate hook (plugins/ml/gate.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from perpbot.core.analysis import SignalGate
from perpbot.core.errors import ConfigError, DataError
from perpbot.plugins.ml import store
from perpbot.plugins.ml.dataset import Costs, build_dataset
from perpbot.plugins.ml.gate import MLGate, feature_mismatch
from perpbot.plugins.ml.model import ModelParams, fit_calibrated

from ml_synth import HOUR, synth_rows


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    ds = build_dataset(synth_rows(1200, signal=0.8, seed=7), horizon=1, costs=Costs())
    model, info = fit_calibrated(ds, np.arange(1000), ModelParams(max_iter=30, min_samples_leaf=30), HOUR)
    path = tmp_path_factory.mktemp("model") / "gate.joblib"
    meta = {"features": list(ds.features), "direction_key": "confluence.direction", "horizon": 1, "every_ns": HOUR,
            "costs": {"fee": "0.0005", "slippage": "0", "round_trip": "0.0010"}, "threshold": 0.55,
            "analyzers": [], "training_window": {"start_ns": int(ds.ts_ns[0]), "end_ns": int(ds.ts_ns[999]), **info},
            "metrics": {"windows": [], "overall": {"auc": 0.71, "precision": 0.62}, "importance": {}}}
    store.save(path, model, meta)
    return path, ds


def _copy(src, dst_dir, edit=None):
    dst = dst_dir / src.name
    dst.write_bytes(src.read_bytes())
    meta = json.loads(store.meta_path(src).read_text())
    if edit:
        edit(meta)
    store.meta_path(dst).write_text(json.dumps(meta))
    return dst


def test_model_file_carries_features_window_versions_and_metrics(model_file):
    path, ds = model_file
    meta = store.load_meta(path)
    assert meta["format"] == store.FORMAT and meta["kind"] == store.KIND
    assert meta["features"] == list(ds.features)
    assert meta["training_window"]["end_ns"] == int(ds.ts_ns[999])
    assert set(meta["libraries"]) >= {"python", "scikit-learn", "numpy", "joblib", "perpbot"}
    assert meta["metrics"]["overall"]["auc"] == 0.71
    model, meta2 = store.load(path)
    p = model.predict_proba(ds.X[1000:])[:, 1]
    assert ((p >= 0) & (p <= 1)).all() and meta2 == meta


@pytest.mark.parametrize("edit,match", [
    (lambda m: m["libraries"].update({"scikit-learn": "0.24.2"}), r"written with scikit-learn 0\.24\.2, this is scikit-learn \S+: retrain"),
    (lambda m: m["libraries"].update({"numpy": "1.0.0"}), "written with numpy 1.0.0"),
    (lambda m: m.update({"format": store.FORMAT + 1}), "newer than this perpbot reads"),
    (lambda m: m.update({"kind": "something-else"}), "not a perpbot ML model"),
])
def test_a_model_file_from_another_library_or_format_is_one_line(model_file, tmp_path, edit, match):
    dst = _copy(model_file[0], tmp_path, edit)
    with pytest.raises(ConfigError, match=match) as e:
        store.load(dst)
    assert "\n" not in str(e.value)


def test_a_pickle_that_does_not_match_its_metadata_is_refused_before_unpickling(model_file, tmp_path):
    dst = _copy(model_file[0], tmp_path, lambda m: m.update({"sha256": "0" * 64}))
    with pytest.raises(DataError, match="SHA-256 differs"):
        store.load(dst)


def test_missing_files_are_one_line(tmp_path, model_file):
    with pytest.raises(ConfigError, match="does not exist"):
        store.load_meta(tmp_path / "nope.joblib")
    lone = tmp_path / "lone.joblib"
    lone.write_bytes(model_file[0].read_bytes())
    with pytest.raises(ConfigError, match="no metadata file lone.joblib.json"):
        store.load_meta(lone)


def test_hook_loads_the_gate_and_answers_none_for_other_files(model_file, tmp_path):
    from perpbot.core.plugins import PluginManager

    pm = PluginManager(load_entry_points=False, default_plugins=("perpbot.plugins.ml",))
    gate = pm.pm.hook.load_signal_gate(path=str(model_file[0]))
    assert isinstance(gate, MLGate) and isinstance(gate, SignalGate)
    assert gate.threshold == 0.55
    other = tmp_path / "x.csv"
    other.write_text("a,b\n")
    assert pm.pm.hook.load_signal_gate(path=str(other)) is None
    # a model file of ours that cannot be used is an error, not "not mine"
    bad = _copy(model_file[0], tmp_path, lambda m: m["libraries"].update({"numpy": "1.0.0"}))
    with pytest.raises(ConfigError, match="numpy 1.0.0"):
        pm.pm.hook.load_signal_gate(path=str(bad))


def test_gate_probability_threshold_and_feature_checks(model_file):
    path, ds = model_file
    model, meta = store.load(path)
    gate = MLGate(model, meta, path)
    feats = dict(zip(ds.features, ds.X[1100].tolist()))
    p = gate.probability(feats)
    assert 0.0 <= p <= 1.0
    assert p == pytest.approx(model.predict_proba(ds.X[1100:1101])[0, 1])
    assert gate.allows(feats) == (p >= 0.55)
    # extra keys the feature rows carry are not features
    assert gate.probability({**feats, "ts_ns": 1, "ticker": "AAA-USD", "close": 1.0}) == p
    # unknown values are NaN, which the booster handles
    assert 0.0 <= gate.probability({**feats, "t.noise": None}) <= 1.0
    assert 0.0 <= gate.probability({**feats, "t.noise": math.nan}) <= 1.0
    with pytest.raises(ValueError, match=r"missing: t\.x"):
        gate.probability({k: v for k, v in feats.items() if k != "t.x"})
    with pytest.raises(ValueError, match=r"extra: orderflow\.cvd_z"):
        gate.probability({**feats, "orderflow.cvd_z": 0.1})
    with pytest.raises(ValueError, match="t.x = 'high' is not a number"):
        gate.probability({**feats, "t.x": "high"})
    assert MLGate(model, meta, path, threshold=0.01).allows(feats)
    with pytest.raises(ConfigError, match="threshold"):
        MLGate(model, meta, path, threshold=1.5)
    line = gate.describe()
    assert "\n" not in line and "AUC 0.710" in line and "precision 0.620" in line and "10.0 bp" in line


def test_feature_mismatch_names_both_sides():
    assert feature_mismatch(["a", "b"], ["b", "a", "ts_ns", "ticker", "close"]) is None
    assert feature_mismatch(["a", "b", "c"], ["a", "d"]) == "missing: b, c; extra: d"
