"""Frozen attrs records made and copied without their ``__init__``, field by field.

A frozen attrs class stores each field through ``object.__setattr__`` in its ``__init__``,
and runs its converters, validators and ``__attrs_post_init__``. For records built on the
order path from values that were already converted and checked (a copy with one plain field
changed, a record whose fields have no converter or check), that work is done once, not
again: :func:`copy_with` copies with one field changed, :func:`plain_maker` makes a
builder taking every field by keyword. Both give objects equal to what attrs' own
``__init__`` / ``attrs.evolve`` give (tested in ``tests/core/test_decision_shortcuts.py``).
Used by the decision cycle, the order router, the waker and the dYdX parser (issue 11).
"""

from __future__ import annotations

from functools import partial
from types import MemberDescriptorType
from typing import Any

import attrs

from perpbot.core.model import Balance
from perpbot.core.wake import WakeEvent


#: (class, field) pairs :func:`copy_with` copies without attrs.evolve: plain fields (no
#: converter, validator or on_setattr) that no ``__attrs_post_init__`` check reads
_PLAIN_FIELDS = {(Balance, "ts_ns"), (WakeEvent, "decided_ns")}
#: (class, field) -> its copier, ``fn(obj, value) -> copy`` (made by :func:`_make_copier`)
_COPIERS: dict[tuple[type, str], Any] = {}


def _setters(cls: type) -> dict[str, Any]:
    """attrs field name -> a function ``(obj, value)`` setting it on a new ``cls`` instance: the
    slot's own descriptor ``__set__`` for a slotted field (what ``object.__setattr__`` ends up
    calling, without looking the name up), else ``object.__setattr__`` bound to the name."""
    out = {}
    for a in attrs.fields(cls):
        n = a.name
        d = next((k.__dict__[n] for k in cls.__mro__ if n in k.__dict__), None)
        if type(d) is MemberDescriptorType:
            out[n] = d.__set__
        else:
            out[n] = partial(_setattr_by_name, n)
    return out


def _setattr_by_name(name: str, obj: Any, value: Any) -> None:
    object.__setattr__(obj, name, value)


def _build_function(cls: type, fname: str, params: str, values: dict[str, str], scope: dict | None = None) -> Any:
    """A function ``fname(params)`` returning a new ``cls`` (without ``__init__``) whose attrs
    fields are set, in field order, to the expressions ``values[name]`` (Python source;
    ``scope``: names the parameters' defaults refer to)."""
    setters = _setters(cls)
    lines = [f"def {fname}({params}):", "    new = _new(_cls)"]
    scope = {**(scope or {}), "_new": object.__new__, "_cls": cls}
    for i, (n, fn) in enumerate(setters.items()):
        if not n.isidentifier():  # pragma: no cover - attrs field names are identifiers
            raise ValueError(f"field name {n!r} of {cls.__name__}")
        scope[f"_s{i}"] = fn
        lines.append(f"    _s{i}(new, {values[n]})")
    lines.append("    return new")
    exec("\n".join(lines), scope)  # noqa: S102 - code built from attrs field names only
    return scope[fname]


def _make_copier(cls: type, name: str) -> Any:
    """A function ``(obj, value)`` returning a copy of ``obj`` (of exactly ``cls``) with field
    ``name`` set to ``value``: one line per attrs field, the attribute names written into the
    code (no ``getattr`` by name per field), each set as attrs' own ``__init__`` sets a frozen
    field (see :func:`_setters`)."""
    values = {a.name: "value" if a.name == name else f"obj.{a.name}" for a in attrs.fields(cls)}
    return _build_function(cls, "copy", "obj, value", values)


def plain_maker(cls: type) -> Any:
    """A function taking every attrs field of ``cls`` by keyword and returning the instance
    ``cls(**fields)`` would, without running ``__init__``: for frozen classes whose fields
    have no converter, validator or ``on_setattr`` and with no ``__attrs_post_init__`` (so
    ``__init__`` only stores the values). A field with a plain default may be left out (that
    default object is stored, as ``__init__`` does); one without a default or with a factory
    must be given.

    Only worth it for frozen classes (their ``__init__`` stores each field through
    ``object.__setattr__``); a mutable class's ``__init__`` already assigns its slots directly
    and is faster than this (measured).

    :raises TypeError: ``cls`` has a converter, validator or post-init hook.
    """
    if getattr(cls, "__attrs_post_init__", None) is not None or getattr(cls, "__attrs_pre_init__", None) is not None:
        raise TypeError(f"{cls.__name__} has an init hook")
    for a in attrs.fields(cls):
        if a.converter is not None or a.validator is not None or not a.init:
            raise TypeError(f"{cls.__name__}.{a.name} is converted, validated or not set by __init__")
    names = []
    defaults = {}
    for a in attrs.fields(cls):
        d = a.default
        if d is attrs.NOTHING or isinstance(d, attrs.Factory):  # given each time (a factory makes a new object)
            names.append(a.name)
        else:  # the very default object attrs' __init__ would store
            defaults[f"_d_{a.name}"] = d
            names.append(f"{a.name}=_d_{a.name}")
    plain = [a.name for a in attrs.fields(cls)]
    return _build_function(cls, "make", "*, " + ", ".join(names), {n: n for n in plain}, defaults)


def copy_with(obj: Any, name: str, value: Any) -> Any:
    """``attrs.evolve(obj, **{name: value})``, cheaper for the pairs in :data:`_PLAIN_FIELDS`.

    For those (exactly these classes, not subclasses) the other fields were converted and
    validated when ``obj`` was made and the changed one has nothing to convert or check, so the
    copy is made field by field (each slot set as attrs' own ``__init__`` sets frozen fields)
    instead of calling ``__init__`` again. Anything else goes through
    ``attrs.evolve``. Equal to what ``attrs.evolve`` returns (tested).
    """
    key = (type(obj), name)
    copier = _COPIERS.get(key)
    if copier is None:
        if key not in _PLAIN_FIELDS:
            return attrs.evolve(obj, **{name: value})
        copier = _COPIERS[key] = _make_copier(*key)
    return copier(obj, value)
