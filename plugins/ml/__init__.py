"""Built-in plugin: ML validation of signals (issue 15 item 5, seed 003's "ML Validation").

A gradient-boosting model (scikit-learn's ``HistGradientBoostingClassifier``, the ``ml`` extra)
predicts whether a confluence signal's forward return over ``h`` bars beats its round-trip costs;
it is trained walk-forward on feature rows of the analysis hub, with purged, embargoed,
time-ordered splits, calibrated probabilities and permutation importances; the model file
carries its feature list, training window, library versions and metrics; a strategy gates
its signals by the model's probability.

::

    runbot.py ml train --data PANEL.parquet|catalog:PATH|sample:bars [--funding F] [--oi F] \\
        --horizon 4 --walk-forward train=180d,test=30d --out model.joblib
    runbot.py ml evaluate --model model.joblib --data ... [--start 2025-01-01]

Modules: :mod:`.sources` (data -> events), :mod:`.features` (feature rows with the confluence
signal), :mod:`.dataset` (labels and costs), :mod:`.splits` (walk-forward, purge, embargo, the
leak guard), :mod:`.model` (fit, calibration, figures, importances), :mod:`.store` (the model
file), :mod:`.gate` (the ``SignalGate``), :mod:`.pipeline` (train / evaluate), :mod:`.cli`.

Hooks: ``register_commands`` (``ml``) and ``load_signal_gate`` (a model file -> :class:`.gate.MLGate`).
Imports :mod:`perpbot.core`, the research plugin's walk-forward windows, the replay's file readers;
scikit-learn, numpy and joblib only when a command or gate runs.
"""

from __future__ import annotations

from pathlib import Path

from perpbot.core.hookspecs import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_commands(cli):
    """Hook implementation: add ``ml train`` and ``ml evaluate`` to the CLI (``cli``: the typer app)."""
    from perpbot.plugins.ml.cli import register

    register(cli)


def is_model_file(path: str | Path) -> bool:
    """True when ``path`` has this plugin's metadata file beside it (``PATH.json``, kind ``perpbot-ml-signal-gate``)."""
    import json

    from perpbot.plugins.ml.store import KIND, meta_path

    mp = meta_path(Path(path).expanduser())
    try:
        return json.loads(mp.read_text(encoding="utf-8")).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


@hookimpl
def load_signal_gate(path):
    """Hook implementation: the model file at ``path`` as an :class:`~perpbot.plugins.ml.gate.MLGate`,
    or None when ``path`` is not one of this plugin's files (no ``PATH.json`` of its kind beside it).

    :raises ConfigError: / :raises DataError: a model file of ours that cannot be used (another
        scikit-learn or numpy version, a newer format, a pickle not matching its metadata), one line.
    """
    if not is_model_file(path):
        return None
    from perpbot.plugins.ml.gate import load_gate

    return load_gate(Path(path).expanduser())
