"""The signal gate: a trained model file as a :class:`perpbot.core.analysis.SignalGate`.

A strategy asks ``gate.probability(features)`` with the market's current features -- the
analysis hub's :meth:`~perpbot.core.analysis.AnalysisHub.features` plus the signal's
``confluence.direction`` and ``confluence.score`` (:func:`perpbot.plugins.ml.features.signal_columns`
of the market's confluence) -- and takes the signal only when the probability is at least
``gate.threshold`` (:meth:`MLGate.allows`). The feature names must be exactly the model's: a
missing or extra name raises ``ValueError`` naming them (checked once per distinct set of
names; the keys ``ts_ns``, ``ticker`` and ``close`` are ignored).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

import numpy as np

from perpbot.core.errors import ConfigError
from perpbot.plugins.ml.dataset import RESERVED

__all__ = ["MLGate", "feature_mismatch", "load_gate"]


def feature_mismatch(model_features, data_features) -> str | None:
    """One phrase naming how two feature lists differ, or None when they hold the same names.

    ``"missing: a, b; extra: c"``: ``missing`` are the model's names the data lacks, ``extra`` the
    data's names the model was not trained on.
    """
    want, have = set(model_features), set(data_features) - set(RESERVED)
    missing, extra = sorted(want - have), sorted(have - want)
    if not missing and not extra:
        return None
    parts = []
    if missing:
        parts.append(f"missing: {', '.join(missing)}")
    if extra:
        parts.append(f"extra: {', '.join(extra)}")
    return "; ".join(parts)


def _day(ns) -> str:
    return datetime.fromtimestamp(int(ns) / 1e9, tz=timezone.utc).strftime("%Y-%m-%d")


class MLGate:
    """A model file's calibrated classifier behind the ``SignalGate`` protocol.

    :param model: an object with ``predict_proba(X (1, k)) -> (1, 2)``.
    :param meta: the model file's metadata (:mod:`perpbot.plugins.ml.store`).
    :param path: the model file (for :meth:`describe`).
    :param threshold: probability needed (default: the metadata's), in (0, 1).
    :raises ConfigError: a threshold outside (0, 1).
    """

    def __init__(self, model, meta: dict, path: str | Path = "", threshold: float | None = None):
        self.model = model
        self.meta = meta
        self.path = str(path)
        self.features: tuple[str, ...] = tuple(meta["features"])
        self.threshold = float(meta.get("threshold", 0.5) if threshold is None else threshold)
        if not (0.0 < self.threshold < 1.0):
            raise ConfigError(f"ml: threshold {self.threshold!r} must be between 0 and 1")
        self._checked: frozenset = frozenset()
        self._threads = None  # a threadpoolctl controller, made at the first call

    def _one_thread(self):
        """Hold OpenMP to one thread for a prediction: one row has nothing to share, and on a busy
        machine OpenMP's spinning threads made a call cost 151 ms of CPU instead of 2.7 ms (measured,
        load 35 on 2 cores)."""
        if self._threads is None:
            import sklearn.ensemble  # noqa: F401 -- load its OpenMP runtime first: the controller sees loaded libraries
            from threadpoolctl import ThreadpoolController

            self._threads = ThreadpoolController()
        return self._threads.limit(limits=1, user_api="openmp")

    def _check(self, features: Mapping[str, float]) -> None:
        keys = frozenset(features)
        if keys == self._checked:
            return
        why = feature_mismatch(self.features, keys)
        if why is not None:
            raise ValueError(f"ml model {self.path}: features do not match the model's ({why})")
        self._checked = keys

    def probability(self, features: Mapping[str, float]) -> float:
        """Calibrated probability (0-1) that the signal beats round-trip costs over the model's horizon.

        :param features: name -> float (``nan``/None: unknown) for exactly the model's features.
        :raises ValueError: missing or extra feature names (named), or a non-numeric value.
        """
        self._check(features)
        row = np.empty((1, len(self.features)), dtype=np.float64)
        for j, name in enumerate(self.features):
            v = features[name]
            try:
                row[0, j] = math.nan if v is None else float(v)
            except (TypeError, ValueError):
                raise ValueError(f"ml model {self.path}: feature {name} = {v!r} is not a number") from None
        with self._one_thread():
            return float(self.model.predict_proba(row)[0, 1])

    def allows(self, features: Mapping[str, float]) -> bool:
        """True when :meth:`probability` is at least :attr:`threshold`."""
        return self.probability(features) >= self.threshold

    def describe(self) -> str:
        """One line: file, horizon and costs, training window, out-of-sample AUC and precision."""
        m = self.meta
        w = m.get("training_window", {})
        o = (m.get("metrics") or {}).get("overall", {})
        auc = "n/a" if o.get("auc") is None else f"{o['auc']:.3f}"
        prec = "n/a" if o.get("precision") is None else f"{o['precision']:.3f}"
        return (f"ml gate {self.path}: p >= {self.threshold:g} that a signal beats {float(m['costs']['round_trip']) * 1e4:.1f} bp "
                f"over {m['horizon']} bars; trained {_day(w.get('start_ns', 0))}..{_day(w.get('end_ns', 0))} on "
                f"{len(self.features)} features; walk-forward AUC {auc}, precision {prec}")


def load_gate(path: str | Path, threshold: float | None = None) -> MLGate:
    """:class:`MLGate` of a model file (checked and loaded by :func:`perpbot.plugins.ml.store.load`).

    :raises ConfigError: / :raises DataError: as :func:`~perpbot.plugins.ml.store.load`.
    """
    from perpbot.plugins.ml.store import load

    model, meta = load(Path(path))
    return MLGate(model, meta, path, threshold)
