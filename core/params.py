"""Typed, validated parameters for strategies and policies.

A plugin declares its parameters as an ``attrs`` class whose fields carry a
type annotation, a default (or none: required) and ``metadata={"help": ...}``.
:func:`parse_params` turns a raw mapping (TOML table, ``--param k=v`` strings)
into an instance, with a one-line :class:`~perpbot.core.errors.ConfigError` naming the
owner, the field and the bad value.

Supported field types: ``Decimal``, ``int``, ``bool``, ``str``, ``tuple[str, ...]``,
``tuple[Decimal, ...]``, ``Decimal | None`` / ``int | None`` and ``enum.Enum`` subclasses.
A float is never accepted for a Decimal field from code; TOML floats are read
as Decimal by the config loader.
"""

from __future__ import annotations

import enum
import types
import typing
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

import attrs

from perpbot.core.errors import ConfigError


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_bool(value: Any) -> bool:
    """``True``/``False`` or the strings 1/0, true/false, yes/no, on/off (any case).

    :raises ValueError: ``expected true or false, got <value>``.
    """
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def parse_decimal(value: Any) -> Decimal:
    """A finite Decimal from a Decimal, int or numeric string (config and parameter values).

    :raises ValueError: for a float (inexact), a bool, a non-number or a non-finite value.
    """
    if isinstance(value, float):
        raise ValueError(f"got float {value!r}; use a Decimal or a string (floats are inexact)")
    if isinstance(value, bool):
        raise ValueError(f"expected a decimal number, got {value!r}")
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"expected a decimal number, got {value!r}") from None
    if not d.is_finite():
        raise ValueError(f"must be finite, got {value!r}")
    return d


def _convert(owner: str, name: str, tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
            return None
        return _convert(owner, name, args[0], value)
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise ConfigError(f"{owner}: parameter {name}: expected a list, got {value!r}")
        return tuple(_convert(owner, name, inner, v) for v in items)
    if tp is Decimal:
        try:
            return parse_decimal(value)
        except ValueError as exc:
            raise ConfigError(f"{owner}: parameter {name}: {exc}") from None
    if tp is bool:
        try:
            return parse_bool(value)
        except ValueError as exc:
            raise ConfigError(f"{owner}: parameter {name}: {exc}") from None
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{owner}: parameter {name}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, Decimal) and value == value.to_integral_value():
            return int(value)
        try:
            return int(str(value).strip())
        except ValueError:
            raise ConfigError(f"{owner}: parameter {name}: expected an integer, got {value!r}") from None
    if tp is str:
        if not isinstance(value, (str, int, Decimal)):
            raise ConfigError(f"{owner}: parameter {name}: expected text, got {value!r}")
        return str(value)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        for member in tp:
            if str(value).strip().lower() in (str(member.value).lower(), member.name.lower()):
                return member
        choices = ", ".join(str(m.value) for m in tp)
        raise ConfigError(f"{owner}: parameter {name}: expected one of {choices}, got {value!r}")
    return value


def parse_params(cls: type, raw: Mapping[str, Any] | None, owner: str) -> Any:
    """Build ``cls`` (an attrs class) from ``raw``, converting and validating each field.

    :param owner: shown in errors, e.g. ``"strategy sniper"``.
    :raises ConfigError: unknown parameter, missing required parameter, wrong type,
        or a field validator's ValueError, each in one line naming the field and value.
    """
    raw = dict(raw or {})
    fields = {f.name: f for f in attrs.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields)) or "none"
        raise ConfigError(f"{owner}: unknown parameter {unknown[0]!r} (known: {known})")
    kwargs = {}
    for name, value in raw.items():
        kwargs[name] = _convert(owner, name, hints.get(name, Any), value)
    missing = [n for n, f in fields.items() if f.default is attrs.NOTHING and n not in kwargs]
    if missing:
        raise ConfigError(f"{owner}: missing required parameter {missing[0]!r}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{owner}: {exc}") from None


def describe_params(cls: type | None) -> list[dict]:
    """``[{name, type, default, required, help}]`` for docs, ``init`` and ``plugins``."""
    if cls is None:
        return []
    hints = typing.get_type_hints(cls)
    out = []
    for f in attrs.fields(cls):
        default = f.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        out.append(
            {
                "name": f.name,
                "type": getattr(hints.get(f.name), "__name__", str(hints.get(f.name))),
                "default": None if default is attrs.NOTHING else default,
                "required": default is attrs.NOTHING,
                "help": f.metadata.get("help", ""),
            }
        )
    return out


def params_to_dict(obj: Any) -> dict:
    """An attrs params instance as a plain dict (enums by value) for TOML and the journal."""
    out = {}
    for f in attrs.fields(type(obj)):
        v = getattr(obj, f.name)
        if isinstance(v, enum.Enum):
            v = v.value
        out[f.name] = v
    return out


def in_range(lo: Decimal | int | None = None, hi: Decimal | int | None = None):
    """attrs validator: ``lo <= value <= hi`` (either bound optional), with the field name in the error."""

    def check(instance, attribute, value):
        if value is None:
            return
        if lo is not None and value < lo:
            raise ValueError(f"parameter {attribute.name}: must be >= {lo}, got {value}")
        if hi is not None and value > hi:
            raise ValueError(f"parameter {attribute.name}: must be <= {hi}, got {value}")

    return check


def param(default: Any = attrs.NOTHING, help: str = "", validator=None, **kw):
    """Shorthand for an attrs field with a help text: ``x: Decimal = param(Decimal(1), "...")``."""
    return attrs.field(default=default, validator=validator, metadata={"help": help}, **kw)


@attrs.frozen
class NoParams:
    """A parameter class with no parameters."""
