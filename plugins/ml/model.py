"""Training and scoring: gradient boosting, calibrated in time order, judged walk-forward.

One fit (:func:`fit_calibrated`): scikit-learn's ``HistGradientBoostingClassifier`` (missing
values handled natively) on the older part of the training rows, then its probabilities
calibrated on the newer tail (isotonic regression with at least ``ISOTONIC_MIN`` calibration
rows, else Platt's sigmoid; ``CalibratedClassifierCV`` over a ``FrozenEstimator``, scikit-learn
``sklearn/calibration.py``), the two parts purged and embargoed (:mod:`.splits`).

:func:`walk_forward` fits one model per window on its training rows and scores its test rows
only, then pools the test rows for the overall figures: ROC AUC (``roc_auc_score``), precision
at the threshold (of the signals the gate lets through, the fraction that beat costs), the base
rate (the fraction of all test signals that beat costs: what precision must beat), coverage
(fraction let through), the Brier score, and the mean signed forward return of the signals let
through versus of all signals. Feature importances are permutation importances (L. Breiman, "Random
Forests", 2001; as ``sklearn.inspection.permutation_importance`` computes them: the drop in ROC
AUC when one feature's column is shuffled) on each window's test rows, averaged over the windows.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from perpbot.plugins.ml.dataset import Dataset
from perpbot.plugins.ml.splits import Split, fit_calibration_split

__all__ = ["ModelParams", "fit_calibrated", "walk_forward", "scores", "ISOTONIC_MIN"]

#: fewest calibration rows for isotonic calibration (fewer: sigmoid, which has 2 parameters)
ISOTONIC_MIN = 400


class ModelParams:
    """Gradient-boosting and calibration settings (small defaults: the data sets are small).

    :param max_iter: boosting rounds; :param learning_rate: shrinkage; :param max_leaf_nodes: tree size;
    :param min_samples_leaf: fewest rows per leaf; :param calibration_fraction: newest share of
    each training window used to calibrate (0 < f < 1); :param seed: random state;
    :param threads: most OpenMP threads a fit or prediction uses (default 1; None: scikit-learn's
        default, every core). One thread is the default because on a busy machine OpenMP's
        busy-waiting threads made a small fit 60 times slower in CPU time (measured: 0.08 s with
        1 thread, 5.5 s with 2, at load 14 on 2 cores); small data gains little from more.
    """

    def __init__(self, max_iter: int = 150, learning_rate: float = 0.05, max_leaf_nodes: int = 15,
                 min_samples_leaf: int = 50, l2_regularization: float = 1.0, calibration_fraction: float = 0.25,
                 seed: int = 0, threads: int | None = 1):
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.calibration_fraction = calibration_fraction
        self.seed = seed
        self.threads = threads

    def limits(self):
        """A context manager holding scikit-learn's thread pools to :attr:`threads` (threadpoolctl)."""
        from contextlib import nullcontext

        if self.threads is None:
            return nullcontext()
        import sklearn.ensemble  # noqa: F401 -- loads its OpenMP runtime: threadpoolctl limits loaded libraries only
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=self.threads)

    def as_dict(self) -> dict:
        """The settings as a JSON-able dict (written into the model file's metadata)."""
        return dict(vars(self))


def _booster(p: ModelParams):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=p.max_iter, learning_rate=p.learning_rate,
                                          max_leaf_nodes=p.max_leaf_nodes, min_samples_leaf=p.min_samples_leaf,
                                          l2_regularization=p.l2_regularization, early_stopping=False,
                                          random_state=p.seed)


class _Constant:
    """A classifier for a training set holding one class: that class's rate as the probability."""

    def __init__(self, rate: float):
        self.rate = rate
        self.classes_ = np.array([0, 1])

    def predict_proba(self, X):
        """``(n, 2)`` probabilities of class 0 and 1 for ``X`` ``(n, k)``."""
        p = np.full(len(X), self.rate)
        return np.column_stack([1 - p, p])


class _Columns:
    """A fitted classifier that reads only some columns of ``X``: features with no value in the
    training rows (all NaN; e.g. order-book features on bar data) stay in the model's feature
    list, so data is checked against the full list, but carry nothing and are left out."""

    def __init__(self, model, columns: np.ndarray):
        self.model = model
        self.columns = columns
        self.classes_ = np.array([0, 1])

    def predict_proba(self, X):
        """``(n, 2)`` probabilities of class 0 and 1 for ``X`` ``(n, k)`` (all the features)."""
        return self.model.predict_proba(np.asarray(X, dtype=np.float64)[:, self.columns])

    def fit(self, X, y):
        """Not refitted (scikit-learn's estimator checks call ``fit`` on clones only); :raises TypeError:."""
        raise TypeError("a fitted perpbot ML model is not refitted")


def fit_calibrated(data: Dataset, rows: np.ndarray, params: ModelParams, embargo_ns: int):
    """A calibrated classifier fitted on ``data``'s rows ``rows`` (sorted by time).

    :returns: ``(model, info)``: an object with ``predict_proba(X) -> (n, 2)`` (``X``: every
        feature of ``data``), and a dict ``{fit_rows, calibration_rows, calibration, unused_features}``
        (method ``isotonic``, ``sigmoid`` or ``constant`` when a part holds a single class;
        ``unused_features``: names with no value in the fit rows, left out).
    """
    with params.limits():
        return _fit_calibrated(data, rows, params, embargo_ns)


def _fit_calibrated(data: Dataset, rows: np.ndarray, params: ModelParams, embargo_ns: int):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    fit, cal = fit_calibration_split(data.ts_ns, data.label_end_ns, rows, fraction=params.calibration_fraction,
                                     embargo_ns=embargo_ns)
    info = {"fit_rows": int(len(fit)), "calibration_rows": int(len(cal))}
    y_fit, y_cal = data.y[fit], data.y[cal]
    if len(set(y_fit.tolist())) < 2 or len(set(y_cal.tolist())) < 2:
        info["calibration"] = "constant"
        return _Constant(float(data.y[rows].mean()) if len(rows) else 0.0), info
    cols = np.flatnonzero(~np.all(np.isnan(data.X[fit]), axis=0))
    info["unused_features"] = [f for j, f in enumerate(data.features) if j not in set(cols.tolist())]
    booster = _booster(params).fit(data.X[fit][:, cols], y_fit)
    method = "isotonic" if len(cal) >= ISOTONIC_MIN else "sigmoid"
    model = CalibratedClassifierCV(FrozenEstimator(booster), method=method).fit(data.X[cal][:, cols], y_cal)
    info["calibration"] = method
    return _Columns(model, cols), info


def scores(y: np.ndarray, p: np.ndarray, fwd: np.ndarray, threshold: float) -> dict:
    """Out-of-sample figures of probabilities ``p`` for labels ``y`` (see the module docstring).

    ``auc`` is None when ``y`` holds one class (undefined); ``precision`` None when nothing passes.
    """
    from sklearn.metrics import brier_score_loss, roc_auc_score

    take = p >= threshold
    n, k = int(len(y)), int(take.sum())
    return {
        "rows": n,
        "auc": float(roc_auc_score(y, p)) if len(set(y.tolist())) == 2 else None,
        "precision": float(y[take].mean()) if k else None,
        "base_rate": float(y.mean()) if n else None,
        "coverage": k / n if n else None,
        "brier": float(brier_score_loss(y, p)) if n else None,
        "mean_return_taken": float(fwd[take].mean()) if k else None,
        "mean_return_all": float(fwd.mean()) if n else None,
    }


def _importance(model, data: Dataset, rows: np.ndarray, seed: int, repeats: int = 3) -> np.ndarray | None:
    """Permutation importance: mean drop in ROC AUC when one column of the rows is shuffled
    (``repeats`` shuffles), per feature; NaN for features the model does not read; None when the
    rows hold one class (AUC undefined) or the model is a constant."""
    from sklearn.metrics import roc_auc_score

    y = data.y[rows]
    if len(set(y.tolist())) < 2 or isinstance(model, _Constant):
        return None
    X = data.X[rows].copy()
    base = roc_auc_score(y, model.predict_proba(X)[:, 1])
    rng = np.random.default_rng(seed)
    out = np.full(X.shape[1], np.nan)
    for j in getattr(model, "columns", range(X.shape[1])):
        keep = X[:, j].copy()
        drops = []
        for _ in range(repeats):
            X[:, j] = rng.permutation(keep)
            drops.append(base - roc_auc_score(y, model.predict_proba(X)[:, 1]))
        X[:, j] = keep
        out[j] = float(np.mean(drops))
    return out


def walk_forward(data: Dataset, splits: list[Split], params: ModelParams, *, embargo_ns: int,
                 threshold: float) -> dict:
    """Fit per window, score its test rows; pool the tests.

    :returns: ``{"windows": [{window, train_start, test_start, test_end, train_rows, calibration, **scores}],
        "overall": scores of all test rows pooled, "importance": {feature: mean drop in AUC}}`` (times in ns).
    """
    with params.limits():
        return _walk_forward(data, splits, params, embargo_ns, threshold)


def _walk_forward(data, splits, params, embargo_ns, threshold) -> dict:
    windows, ys, ps, fwds, imps = [], [], [], [], []
    for s in splits:
        model, info = fit_calibrated(data, s.train, params, embargo_ns)
        p = model.predict_proba(data.X[s.test])[:, 1]
        ys.append(data.y[s.test])
        ps.append(p)
        fwds.append(data.fwd_return[s.test])
        imp = _importance(model, data, s.test, params.seed)
        if imp is not None:
            imps.append(imp)
        windows.append({"window": s.window, "train_start": s.train_start, "test_start": s.test_start,
                        "test_end": s.test_end, "train_rows": int(len(s.train)), **info,
                        **scores(data.y[s.test], p, data.fwd_return[s.test], threshold)})
    overall = scores(np.concatenate(ys), np.concatenate(ps), np.concatenate(fwds), threshold)
    importance = {}
    if imps:
        with warnings.catch_warnings():  # a feature unused in every window: the mean of NaNs is NaN, left out
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(np.vstack(imps), axis=0)
        known = [(f, float(v)) for f, v in zip(data.features, mean) if not math.isnan(v)]
        importance = dict(sorted(known, key=lambda t: -t[1]))
    return {"windows": windows, "overall": overall, "importance": importance}
