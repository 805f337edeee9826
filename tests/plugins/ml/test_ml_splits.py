"""Walk-forward splits: time order, purge, embargo, and the leak guard (plugins/ml/splits.py)."""

from __future__ import annotations

import numpy as np
import pytest

from perpbot.core.errors import ConfigError
from perpbot.plugins.ml.dataset import Costs, build_dataset
from perpbot.plugins.ml.model import ModelParams, walk_forward
from perpbot.plugins.ml.splits import LeakError, check_split, fit_calibration_split, parse_walk_forward, walk_forward_splits

from ml_synth import HOUR, synth_rows


def _times(n, h):
    ts = np.arange(n, dtype=np.int64) * HOUR
    return ts, ts + h * HOUR


@pytest.mark.parametrize("horizon", [1, 6, 24])
def test_no_training_label_reaches_the_test_period(horizon):
    ts, end = _times(24 * 60, horizon)
    wf = parse_walk_forward("train=20d,test=10d,step=5d")
    splits = walk_forward_splits(ts, end, wf, embargo_ns=horizon * HOUR, horizon_ns=horizon * HOUR)
    assert len(splits) == 6  # starts 0, 5, ..., 25 days: the last test ends at day 55 + 5 <= 60
    for s in splits:
        first_test = ts[s.test].min()
        assert ts[s.train].max() < first_test - horizon * HOUR + 1 - 1  # embargo: strictly before test - embargo
        assert end[s.train].max() < first_test                           # purge: every label known before the test
        assert ts[s.test].min() >= s.test_start and ts[s.test].max() < s.test_end
        assert not set(s.train.tolist()) & set(s.test.tolist())
        # the purge costs exactly the embargo's rows, nothing more
        assert len(s.train) == 20 * 24 - horizon


def test_embargo_shorter_than_horizon_is_refused():
    ts, end = _times(1000, 24)
    with pytest.raises(ConfigError, match="shorter than the horizon"):
        walk_forward_splits(ts, end, parse_walk_forward("train=10d,test=5d"), embargo_ns=HOUR, horizon_ns=24 * HOUR)


def test_windows_that_do_not_fit_are_one_line():
    ts, end = _times(48, 1)
    with pytest.raises(ConfigError, match="does not fit the data's 2.0 days"):
        walk_forward_splits(ts, end, parse_walk_forward("train=10d,test=5d"), embargo_ns=HOUR, horizon_ns=HOUR)


def test_unsorted_rows_are_refused():
    ts, end = _times(100, 1)
    with pytest.raises(ConfigError, match="time order"):
        walk_forward_splits(ts[::-1].copy(), end[::-1].copy(), parse_walk_forward("train=1d,test=1d"),
                            embargo_ns=HOUR, horizon_ns=HOUR)


def test_the_guard_refuses_leaking_splits():
    ts, end = _times(100, 5)
    train, test = np.arange(0, 50), np.arange(50, 100)
    with pytest.raises(LeakError, match="label is known"):  # train rows 46..49 see prices of the test
        check_split(ts, end, train, test, embargo_ns=5 * HOUR)
    with pytest.raises(LeakError, match="not before"):
        check_split(ts, end, np.arange(0, 60), test, embargo_ns=0)
    with pytest.raises(LeakError, match="embargo"):
        check_split(ts, ts, np.arange(0, 48), test, embargo_ns=5 * HOUR)
    check_split(ts, end, np.arange(0, 45), test, embargo_ns=5 * HOUR)  # purged and embargoed: fine


def test_calibration_tail_is_purged_against_the_fit_part():
    ts, end = _times(1000, 10)
    fit, cal = fit_calibration_split(ts, end, np.arange(1000), fraction=0.25, embargo_ns=10 * HOUR)
    assert end[fit].max() < ts[cal].min() and ts[fit].max() < ts[cal].min() - 10 * HOUR + 1
    assert len(cal) == 250 and len(fit) == 740


def test_time_ordered_splits_prevent_the_leak_a_shuffled_split_has():
    """A planted leak: on a pure random walk, a feature that only says WHEN a row is (its time) lets a
    model that sees neighbours of each test row (shuffled k-fold) read the overlapping h-bar labels of
    those neighbours: AUC near 1 with no predictive content. The walk-forward splits, purged and
    embargoed, leave it nothing: AUC near 0.5."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import KFold
    from threadpoolctl import threadpool_limits

    rows = synth_rows(2000, signal=0.0, seed=3)
    for r in rows:
        r["t.x"] = float(r["ts_ns"])  # the planted feature: time itself
        r["confluence.direction"] = 1.0
    ds = build_dataset(rows, horizon=48, costs=Costs(fee=0 * Costs().fee))
    # the leaking way: shuffled k-fold
    leaky = []
    with threadpool_limits(limits=1):
        for tr, te in KFold(5, shuffle=True, random_state=0).split(ds.X):
            m = HistGradientBoostingClassifier(max_iter=60, random_state=0).fit(ds.X[tr], ds.y[tr])
            leaky.append(roc_auc_score(ds.y[te], m.predict_proba(ds.X[te])[:, 1]))
    assert np.mean(leaky) > 0.9
    # ours
    splits = walk_forward_splits(ds.ts_ns, ds.label_end_ns, parse_walk_forward("train=30d,test=15d"),
                                 embargo_ns=48 * HOUR, horizon_ns=48 * HOUR, min_rows=50)
    res = walk_forward(ds, splits, ModelParams(max_iter=60, min_samples_leaf=20, threads=1), embargo_ns=48 * HOUR, threshold=0.5)
    assert abs(res["overall"]["auc"] - 0.5) < 0.1
