"""``ml train`` and ``ml evaluate`` as functions: events in, a model file and figures out.

:func:`train`: feature rows with the confluence signal (:func:`.features.signal_rows`), labels
(:func:`.dataset.build_dataset`), walk-forward windows purged and embargoed
(:func:`.splits.walk_forward_splits`), one calibrated model per window scored on its test rows
(:func:`.model.walk_forward`: the out-of-sample figures), then the model written to the file:
fitted on the newest ``train`` span of the data (the same length as a window's training), its
newest ``calibration_fraction`` used to calibrate. The file's metadata records the analyzers and
their parameters, so :func:`evaluate` rebuilds the same features.

:func:`evaluate`: the model file's features rebuilt on (other) data and compared by name first
(a mismatch is one error naming the missing and extra features), then the model scored on the
rows after its training window only (rows it never saw; ``in_sample=True`` scores every row).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

import attrs
import numpy as np

from perpbot.core.errors import ConfigError, DataError
from perpbot.plugins.ml.dataset import Costs, Dataset, build_dataset
from perpbot.plugins.ml.features import DIRECTION, signal_rows
from perpbot.plugins.ml.gate import feature_mismatch
from perpbot.plugins.ml.model import ModelParams, fit_calibrated, scores, walk_forward
from perpbot.plugins.ml.splits import WalkForward, walk_forward_splits

__all__ = ["train", "evaluate", "make_dataset", "iso"]


def iso(ns: int) -> str:
    """``ns`` since the epoch as ``YYYY-MM-DDTHH:MMZ`` (UTC)."""
    return datetime.fromtimestamp(int(ns) / 1e9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def make_dataset(events, tickers, analyzers: Sequence[type], *, every_ns: int, horizon: int, costs: Costs,
                 analyzer_params: Mapping[str, Mapping] | None = None, weights: Mapping[str, float] | None = None,
                 features: tuple[str, ...] | None = None) -> Dataset:
    """Events -> the labelled :class:`~.dataset.Dataset` (signal rows, then labels).

    :raises ConfigError: a bad analyzer parameter (one line); :raises DataError: see ``build_dataset``.
    """
    try:
        rows = signal_rows(events, tickers, analyzers, every_ns, analyzer_params, weights)
        return build_dataset(rows, horizon=horizon, costs=costs, direction_key=DIRECTION, features=features)
    except ValueError as exc:
        if isinstance(exc, (ConfigError, DataError)):
            raise
        raise ConfigError(f"ml: {exc}") from None


def _window(data: Dataset, rows: np.ndarray) -> dict:
    a, b = int(data.ts_ns[rows].min()), int(data.label_end_ns[rows].max())
    return {"start_ns": a, "end_ns": b, "start": iso(a), "end": iso(b), "rows": int(len(rows))}


def train(events, tickers, analyzers: Sequence[type], *, out: Path, every_ns: int, horizon: int, costs: Costs,
          wf: WalkForward, embargo_ns: int | None = None, params: ModelParams | None = None, threshold: float = 0.5,
          analyzer_params: Mapping[str, Mapping] | None = None, weights: Mapping[str, float] | None = None,
          data_names: Sequence[str] = (), min_rows: int = 50) -> dict:
    """Walk-forward figures, then the model file (see the module docstring).

    :param embargo_ns: gap before each test window, ns (default: the horizon, ``horizon * every_ns``).
    :param events: a time-ordered list (its first and last times give the data's span).
    :param min_rows: fewest rows a window's train and test need to be scored.
    :returns: the metadata written beside ``out``.
    :raises ConfigError: windows that do not fit the data, an embargo shorter than the horizon, a
        threshold outside (0, 1); :raises DataError: no signal rows.
    """
    from perpbot.plugins.ml.store import save

    if not (0.0 < threshold < 1.0):
        raise ConfigError(f"ml: --threshold {threshold} must be between 0 and 1")
    params = params or ModelParams()
    horizon_ns = horizon * every_ns
    embargo_ns = horizon_ns if embargo_ns is None else embargo_ns
    if embargo_ns < horizon_ns:  # the splits refuse it too; said here before the features are built
        raise ConfigError(f"ml: --embargo {embargo_ns // 10**9}s is shorter than the horizon ({horizon_ns // 10**9}s): "
                          "labels would overlap the test period")
    if events:
        span = events[-1].ts_ns - events[0].ts_ns
        if (wf.train_s + wf.test_s) * 1_000_000_000 > span:
            raise ConfigError(f"ml: --walk-forward train={wf.train_s // 86400}d,test={wf.test_s // 86400}d does not fit "
                              f"the data's {span / 86400e9:.1f} days (shorten the windows or add data)")
    data = make_dataset(events, tickers, analyzers, every_ns=every_ns, horizon=horizon, costs=costs,
                        analyzer_params=analyzer_params, weights=weights)
    if len(data) < 2 * min_rows:
        raise DataError(f"ml: only {len(data)} signal rows (rows with a confluence direction and a label); "
                        f"need at least {2 * min_rows}: use more data or other analyzers")
    splits = walk_forward_splits(data.ts_ns, data.label_end_ns, wf, embargo_ns=embargo_ns, horizon_ns=horizon_ns,
                                 min_rows=min_rows)
    metrics = walk_forward(data, splits, params, embargo_ns=embargo_ns, threshold=threshold)
    final_rows = np.flatnonzero(data.ts_ns >= int(data.ts_ns[-1]) - wf.train_s * 1_000_000_000)
    with params.limits():
        model, info = fit_calibrated(data, final_rows, params, embargo_ns)
    meta = {
        "features": list(data.features),
        "direction_key": DIRECTION,
        "horizon": horizon,
        "every_ns": every_ns,
        "embargo_ns": embargo_ns,
        "costs": {"fee": str(costs.fee), "slippage": str(costs.slippage), "round_trip": str(costs.round_trip)},
        "threshold": threshold,
        "analyzers": [a.name for a in analyzers],
        "analyzer_params": {k: dict(v) for k, v in (analyzer_params or {}).items()},
        "weights": dict(weights or {}),
        "tickers": list(tickers),
        "data": list(data_names),
        "training_window": {**_window(data, final_rows), **info},
        "walk_forward": {"train_s": wf.train_s, "test_s": wf.test_s, "step_s": wf.step_s},
        "params": params.as_dict(),
        "metrics": metrics,
        "signal_rows": len(data),
    }
    return save(Path(out), model, meta)


def evaluate(model_path: Path, events, tickers, registered: Mapping[str, type], *, in_sample: bool = False,
             threshold: float | None = None) -> dict:
    """Score a model file on data (see the module docstring).

    :param registered: analyzer name -> class (the plugin registry's); the model's analyzers must be there.
    :returns: ``{"rows", "first", "last", **scores}`` plus ``"model"`` (its metadata's training window).
    :raises ConfigError: an analyzer the model used that is not registered, a feature mismatch (one line
        naming the missing and extra features), no rows after the training window; plus :func:`store.load`'s.
    """
    from perpbot.plugins.ml.store import load

    model, meta = load(Path(model_path))
    missing = [n for n in meta["analyzers"] if n not in registered]
    if missing:
        raise ConfigError(f"ml: model {model_path} uses analyzer {missing[0]!r}, which no plugin registers here")
    analyzers = [registered[n] for n in meta["analyzers"]]
    costs = Costs(fee=_decimal(meta["costs"]["fee"]), slippage=_decimal(meta["costs"]["slippage"]))
    data = make_dataset(events, tickers, analyzers, every_ns=int(meta["every_ns"]), horizon=int(meta["horizon"]),
                        costs=costs, analyzer_params=meta.get("analyzer_params"), weights=meta.get("weights"))
    why = feature_mismatch(meta["features"], data.features)
    if why is not None:
        raise ConfigError(f"ml: model {model_path} does not match the data's features ({why})")
    order = [data.features.index(f) for f in meta["features"]]  # same names: put the columns in the model's order
    data = attrs.evolve(data, features=tuple(meta["features"]), X=data.X[:, order])
    if not in_sample:
        end = int(meta["training_window"]["end_ns"])
        data = data.subset(data.ts_ns > end)
        if not len(data):
            raise ConfigError(f"ml: no signal rows after the model's training window (ends {iso(end)}); "
                              "evaluate on later data, or pass --in-sample")
    thr = float(meta["threshold"] if threshold is None else threshold)
    with ModelParams().limits():  # one thread, as for training (see ModelParams.threads)
        p = model.predict_proba(data.X)[:, 1]
    return {"rows": len(data), "first": iso(data.ts_ns[0]), "last": iso(data.ts_ns[-1]), "threshold": thr,
            **scores(data.y, p, data.fwd_return, thr), "model": meta["training_window"]}


def _decimal(text: str):
    from decimal import Decimal

    return Decimal(text)
