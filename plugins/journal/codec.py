"""Exact encoding of journal values: Decimal as TEXT, enums by value, state as tagged JSON.

Rows: :func:`dec` / :func:`opt_dec` write ``str(Decimal)`` (exact, no float
anywhere); :func:`parse_dec` reads it back.

State blobs (strategy state, simulator state, bot state at a checkpoint) use
:func:`dumps_state` / :func:`loads_state`, a JSON dialect that round-trips the
types JSON would lose:

- ``Decimal`` -> ``{"$dec": "0.1"}``;
- dicts with non-string keys (client ids) -> ``{"$map": [[k, v], ...]}``;
- tuples -> ``{"$tuple": [...]}``, sets -> ``{"$set": [...]}``;
- enums -> ``{"$enum": "module:Qualname", "v": value}``;
- attrs instances -> ``{"$attrs": "module:Qualname", "v": {field: value}}``; a field added
  later with ``metadata={"omit_default": True}`` is left out while it holds its default, so
  blobs of values saved before it existed keep their exact encoding;

Enum and attrs classes are only re-imported from perpbot's own modules (names that
start with ``perpbot.``); anything else is refused, so a journal cannot make perpbot import
arbitrary code.

Stored names are public import paths, not file locations: the packages
:mod:`perpbot.core.model` and :mod:`perpbot.core.signals` set each public class's
``__module__`` to the package, so values are stored as ``perpbot.core.model:Fill``
whichever submodule defines ``Fill``, and blobs written before those modules were
split still load (``tests/core/test_model_names.py``).
"""

from __future__ import annotations

import enum
import importlib
import json
from decimal import Decimal
from typing import Any

import attrs

from perpbot.core.errors import DataError

_TRUSTED_PREFIX = "perpbot."  # exactly perpbot's own modules (not perpbot_anything)


def dec(value: Decimal) -> str:
    """Exact TEXT of a Decimal (``str`` keeps every digit and the exponent)."""
    if isinstance(value, float):
        raise TypeError(f"journal: float {value!r} where a Decimal is required")
    return str(Decimal(value))


def opt_dec(value: Decimal | None) -> str | None:
    """:func:`dec`, or None (SQL NULL) for None.

    :raises TypeError: for a float.
    """
    return None if value is None else dec(value)


def parse_dec(text: str | None) -> Decimal | None:
    """A stored decimal TEXT back to its exact Decimal; None for NULL."""
    return None if text is None else Decimal(text)


def enum_value(value: Any) -> str:
    """The stored text of an enum member (its ``value``); any other value as ``str``."""
    return value.value if isinstance(value, enum.Enum) else str(value)


# ---------------------------------------------------------------------------
# tagged JSON for state blobs
# ---------------------------------------------------------------------------


def _qualname(obj_type: type) -> str:
    return f"{obj_type.__module__}:{obj_type.__qualname__}"


_PLAIN = frozenset({str, int, bool, float, type(None)})


def _encode(value: Any) -> Any:
    # exact-type fast paths first (checkpoints encode large states often); the general
    # isinstance chain below handles subclasses, enums, attrs values and containers
    t = type(value)
    if t in _PLAIN:
        return value  # floats are allowed in strategy state (not money)
    if t is Decimal:
        return {"$dec": str(value)}
    if t is dict:
        for k in value:
            if type(k) is not str or k[:1] == "$":
                return {"$map": [[_encode(k), _encode(v)] for k, v in value.items()]}
        return {k: _encode(v) for k, v in value.items()}
    if t is list:
        return [_encode(v) for v in value]
    return _encode_other(value)


def _encode_other(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, Decimal):
        return {"$dec": str(value)}
    if isinstance(value, enum.Enum):
        return {"$enum": _qualname(type(value)), "v": _encode(value.value)}
    if attrs.has(type(value)):
        return {
            "$attrs": _qualname(type(value)),
            "v": {a.name: _encode(getattr(value, a.name)) for a in attrs.fields(type(value))
                  if a.init and not (a.metadata.get("omit_default") and getattr(value, a.name) == a.default)},
        }
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not any(k.startswith("$") for k in value):
            return {k: _encode(v) for k, v in value.items()}
        return {"$map": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {"$set": [_encode(v) for v in sorted(value, key=repr)]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if hasattr(value, "__fspath__"):
        return str(value)
    raise TypeError(f"journal state: cannot store a {type(value).__name__} ({value!r:.80})")


def _resolve(name: str) -> Any:
    module, _, qual = name.partition(":")
    if not module.startswith(_TRUSTED_PREFIX):
        raise DataError(f"journal state names a type from an untrusted module: {name}")
    obj: Any = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (key, inner), = value.items()
        if key == "$dec":
            return Decimal(inner)
        if key == "$map":
            return {_decode(k): _decode(v) for k, v in inner}
        if key == "$tuple":
            return tuple(_decode(v) for v in inner)
        if key == "$set":
            return {_decode(v) for v in inner}
    if set(value) == {"$enum", "v"}:
        return _resolve(value["$enum"])(_decode(value["v"]))
    if set(value) == {"$attrs", "v"}:
        cls = _resolve(value["$attrs"])
        return cls(**{k: _decode(v) for k, v in value["v"].items()})
    return {k: _decode(v) for k, v in value.items()}


def dumps_state(value: Any) -> str:
    """Tagged JSON text of ``value`` (exact for Decimal; see the module docstring)."""
    return json.dumps(_encode(value), separators=(",", ":"), sort_keys=False, allow_nan=False)


def loads_state(text: str) -> Any:
    """Inverse of :func:`dumps_state`."""
    return _decode(json.loads(text))
