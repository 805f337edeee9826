"""Typed, validated parameters for strategies and policies.

A plugin declares its parameters as an ``attrs`` class whose fields carry a
type annotation, a default (or none: required) and ``metadata={"help": ...}``.
:func:`parse_params` turns a raw mapping (TOML table, ``--param k=v`` strings)
into an instance, with a one-line :class:`~perpbot.core.errors.ConfigError` naming the
owner, the field and the bad value.

Supported field types: ``Decimal``, ``int``, ``bool``, ``str``, ``tuple[str, ...]``,
``tuple[Decimal, ...]``, ``Decimal | None`` / ``int | None``, ``enum.Enum`` subclasses
and ``dict`` (a TOML table, kept as given).
A float is never accepted for a Decimal field from code; TOML floats are read
as Decimal by the config loader. :func:`check_params_class` (run when a plugin
registers) refuses a field declared ``float`` (money and ratios are Decimal), a
field with no type, and any other type the converter does not know, so a value is
never handed to a strategy unconverted.

A field may name its command-line flag: ``param(D("0.1"), "...", flag="--take-profit")``
(metadata ``"flag"``). The CLI adds one option per declared flag, grouped per plugin
in ``--help``, and maps it onto the field (:func:`param_flags`).
"""

from __future__ import annotations

import difflib
import enum
import re
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
    if tp is float:  # not for plugins (check_params_class refuses it); core's SignalConfig scales
        try:
            if isinstance(value, float) and not isinstance(value, bool):
                if value != value or value in (float("inf"), float("-inf")):
                    raise ValueError(f"must be finite, got {value!r}")
                return value
            return float(parse_decimal(value))
        except ValueError as exc:
            raise ConfigError(f"{owner}: parameter {name}: {exc}") from None
    if tp is dict or origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{owner}: parameter {name}: expected a table, got {value!r}")
        return dict(value)
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
    problem = _type_problem(tp) if tp is not Any else "has no type"
    raise ConfigError(f"{owner}: parameter {name} {problem or f'has unsupported type {tp}'}; the plugin must declare it")


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
        raise ConfigError(f"{owner}: unknown parameter {unknown[0]!r}{did_you_mean(unknown[0], fields)} (known: {known})")
    kwargs = {}
    for name, value in raw.items():
        kwargs[name] = _convert(owner, name, hints.get(name, Any), value)
    missing = [n for n, f in fields.items() if f.default is attrs.NOTHING and n not in kwargs]
    if missing:
        raise ConfigError(f"{owner}: missing required parameter {missing[0]!r}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        if not msg.startswith("parameter "):
            field = _failing_field(cls, kwargs)
            if field is not None:
                msg = f"parameter {field}: {msg}"
        raise ConfigError(f"{owner}: {msg}") from None


def did_you_mean(name: str, choices) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices`` (difflib), or ``""``."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _failing_field(cls: type, kwargs: Mapping[str, Any]) -> str | None:
    """The field whose own validator rejects its value (given or default), for the error prefix.

    Each field validator is called alone with ``instance=None``; a validator that needs the
    instance (or raises anything but ValueError/TypeError) is skipped. None when no single
    field is to blame (a check across fields in ``__attrs_post_init__``).
    """
    for f in attrs.fields(cls):
        if f.validator is None:
            continue
        if f.name in kwargs:
            value = kwargs[f.name]
        elif isinstance(f.default, attrs.Factory):  # type: ignore[arg-type]
            continue
        elif f.default is attrs.NOTHING:
            continue
        else:
            value = f.default
        try:
            f.validator(None, f, value)
        except (ValueError, TypeError):
            return f.name
        except Exception:
            continue
    return None


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
                "flag": f.metadata.get("flag"),
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


def _prefixed(validator):
    """Wrap a field validator so its ValueError reads ``parameter <field>: ...`` like :func:`in_range`'s."""
    if validator is None:
        return None
    if isinstance(validator, (list, tuple)):
        return [_prefixed(v) for v in validator]

    def check(instance, attribute, value):
        try:
            validator(instance, attribute, value)
        except ValueError as exc:
            msg = str(exc)
            if msg.startswith("parameter "):
                raise
            raise ValueError(f"parameter {attribute.name}: {msg}") from None

    check.__wrapped__ = validator  # type: ignore[attr-defined]
    return check


def param(default: Any = attrs.NOTHING, help: str = "", validator=None, *, flag: str | None = None, **kw):
    """Shorthand for an attrs field with a help text: ``x: Decimal = param(Decimal(1), "...")``.

    :param validator: an attrs validator (or a list); a ValueError it raises is shown as
        ``parameter <field>: <message>``.
    :param flag: the command-line flag that sets this field, e.g. ``"--take-profit"``
        (lower case, ``--`` then letters, digits and dashes); unique across the installed
        plugins. The CLI adds it to ``--help`` under the plugin's name.
    """
    metadata = {"help": help}
    if flag is not None:
        metadata["flag"] = flag
    return attrs.field(default=default, validator=_prefixed(validator), metadata=metadata, **kw)


_FLAG_RE = re.compile(r"^--[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def param_flags(cls: type | None) -> list[tuple[str, str]]:
    """``[(flag, field name)]`` for the fields of params class ``cls`` that declare a flag."""
    if cls is None or not attrs.has(cls):
        return []
    return [(f.metadata["flag"], f.name) for f in attrs.fields(cls) if f.metadata.get("flag")]


def _type_problem(tp: Any) -> str | None:
    """Why ``tp`` cannot be a parameter type (None: supported by :func:`_convert`)."""
    if tp is float:
        return "is declared float; money, prices and ratios are Decimal (declare it Decimal)"
    if tp in (Decimal, int, bool, str, dict):
        return None
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return None
    origin = typing.get_origin(tp)
    if origin is dict:
        return None
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            return f"has type {tp}; only X | None unions are supported"
        return _type_problem(args[0])
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            inner = _type_problem(args[0])
            return None if inner is None else inner
        return f"has type {tp}; use tuple[X, ...]"
    return (
        f"has type {getattr(tp, '__name__', tp)}, which parameters do not support "
        "(Decimal, int, bool, str, an Enum, tuple[X, ...], dict or X | None)"
    )


def check_params_class(cls: type) -> None:
    """Refuse a params class whose values could reach a plugin unconverted.

    Every field needs a type annotation of a supported type (see the module docstring);
    ``float`` is refused (inexact; money and ratios are Decimal); a declared ``flag`` must look
    like ``--name``.

    :raises ValueError: ``field <name> ...`` naming the first bad field.
    """
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:  # an annotation that does not resolve
        raise ValueError(f"its annotations do not resolve: {type(exc).__name__}: {exc}") from None
    for f in attrs.fields(cls):
        tp = hints.get(f.name, f.type)
        if tp is None or tp is Any or isinstance(tp, str):
            raise ValueError(f"field {f.name} has no type; annotate it (e.g. {f.name}: Decimal = param(...))")
        problem = _type_problem(tp)
        if problem:
            raise ValueError(f"field {f.name} {problem}")
        flag = f.metadata.get("flag")
        if flag is not None and (not isinstance(flag, str) or not _FLAG_RE.match(flag)):
            raise ValueError(f"field {f.name}: flag {flag!r} must look like '--some-name'")


@attrs.frozen
class NoParams:
    """A parameter class with no parameters."""
