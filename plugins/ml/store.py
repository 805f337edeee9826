"""The model file: a joblib pickle of the fitted model plus a JSON file of what it is.

``PATH`` (e.g. ``model.joblib``) holds ``{"format": FORMAT, "model": <calibrated classifier>}``;
``PATH.json`` (``model.joblib.json``) holds the metadata::

    {"format": 1, "kind": "perpbot-ml-signal-gate", "features": [...], "direction_key": "confluence.score",
     "horizon": 4, "every_ns": 3600000000000, "costs": {"fee": "0.0005", "slippage": "0", "round_trip": "0.001"},
     "threshold": 0.5, "training_window": {"start_ns", "end_ns", "start", "end", "rows"},
     "libraries": {"python", "scikit-learn", "numpy", "joblib", "perpbot"}, "params": {...},
     "metrics": {"windows": [...], "overall": {...}, "importance": {...}}, "data": [...], "sha256": "<of PATH>"}

Loading checks, before unpickling anything (a pickle runs code when loaded: load only model
files you made), in order: both files exist; the metadata's ``format`` is one this perpbot reads
(a newer one is refused: upgrade perpbot); the pickle's SHA-256 equals the metadata's (the two
files belong together); the scikit-learn and numpy versions the model was written with equal
the installed ones (a pickle of another version may load wrong or not at all,
scikit-learn's "model persistence" documentation) -- each refusal is one line naming the file
and what differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

from perpbot.core.errors import ConfigError, DataError

__all__ = ["FORMAT", "KIND", "libraries", "save", "load_meta", "load", "meta_path"]

FORMAT = 1
KIND = "perpbot-ml-signal-gate"
#: libraries whose version must match exactly for a pickle to be trusted
PINNED = ("scikit-learn", "numpy")


def libraries() -> dict[str, str]:
    """Installed versions: ``{"python", "scikit-learn", "numpy", "joblib", "perpbot"}``."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("scikit-learn", "numpy", "joblib", "perpbot"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "absent"
    return out


def meta_path(path: Path) -> Path:
    """The metadata file beside a model file: ``model.joblib`` -> ``model.joblib.json``."""
    return path.with_name(path.name + ".json")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save(path: Path, model, meta: dict) -> dict:
    """Write the model and its metadata (each whole or not at all: temporary files renamed).

    :param meta: the metadata without ``format``, ``kind``, ``libraries`` and ``sha256`` (added here).
    :returns: the metadata written.
    """
    import joblib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    joblib.dump({"format": FORMAT, "model": model}, tmp, compress=3)
    full = {"format": FORMAT, "kind": KIND, **meta, "libraries": libraries(), "sha256": _sha256(tmp)}
    mtmp = meta_path(path).with_name(meta_path(path).name + ".part")
    mtmp.write_text(json.dumps(full, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    os.replace(mtmp, meta_path(path))
    return full


def load_meta(path: Path) -> dict:
    """The metadata of a model file, checked (format, kind, library versions); nothing unpickled.

    :raises ConfigError: a missing file, unreadable JSON, another kind of file, a newer format,
        a scikit-learn/numpy version other than the installed one (one line naming both versions).
    """
    path = Path(path)
    mp = meta_path(path)
    if not path.is_file():
        raise ConfigError(f"ml: model file {path} does not exist (make one with: runbot.py ml train ... --out {path})")
    if not mp.is_file():
        raise ConfigError(f"ml: model file {path} has no metadata file {mp.name} beside it (both are written by ml train)")
    try:
        meta = json.loads(mp.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"ml: cannot read {mp}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise ConfigError(f"ml: {mp} is not a perpbot ML model's metadata (kind {meta.get('kind') if isinstance(meta, dict) else None!r})")
    fmt = meta.get("format")
    if not isinstance(fmt, int) or fmt > FORMAT:
        raise ConfigError(f"ml: model file {path} has format {fmt!r}, newer than this perpbot reads ({FORMAT}): upgrade perpbot")
    have = libraries()
    for lib in PINNED:
        want = (meta.get("libraries") or {}).get(lib)
        if want != have[lib]:
            raise ConfigError(f"ml: model file {path} was written with {lib} {want}, this is {lib} {have[lib]}: "
                              f"retrain it (runbot.py ml train) or install {lib}=={want}")
    return meta


def load(path: Path) -> tuple[object, dict]:
    """``(model, metadata)`` of a model file, after :func:`load_meta`'s checks and the digest check.

    :raises ConfigError: as :func:`load_meta`; :raises DataError: the pickle's digest differs from
        the metadata's, or it cannot be read.
    """
    import joblib

    path = Path(path)
    meta = load_meta(path)
    if _sha256(path) != meta.get("sha256"):
        raise DataError(f"ml: model file {path} does not match its metadata {meta_path(path).name} (SHA-256 differs): "
                        "the two files come from different trainings")
    try:
        blob = joblib.load(path)
    except Exception as exc:  # noqa: BLE001 -- unpickling raises anything; surfaced as one line
        raise DataError(f"ml: cannot load model file {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(blob, dict) or "model" not in blob:
        raise DataError(f"ml: model file {path} does not hold a perpbot model")
    return blob["model"], meta
