"""core/params.py: parameters are typed, converted and validated, with the field in every error (issue 9.14)."""

from __future__ import annotations

from decimal import Decimal

import attrs
import pytest

from perpbot.core.errors import ConfigError
from perpbot.core.params import check_params_class, param, param_flags, parse_params


@attrs.frozen
class Good:
    ratio: Decimal = param(Decimal("0.5"), "a ratio")
    size: Decimal | None = param(None, "a size", flag="--size")


def test_a_float_field_is_refused_with_its_name():
    @attrs.frozen
    class P:
        ratio: float = param(0.5, "a ratio")

    with pytest.raises(ValueError, match="field ratio is declared float.*Decimal"):
        check_params_class(P)


def test_a_field_with_no_type_is_refused_with_its_name():
    @attrs.define
    class P:
        ratio = attrs.field(default="1")

    with pytest.raises(ValueError, match="field ratio has no type"):
        check_params_class(P)


def test_an_unsupported_type_is_refused():
    @attrs.frozen
    class P:
        items: list = param(attrs.Factory(list), "a list")

    with pytest.raises(ValueError, match="field items has type list"):
        check_params_class(P)


def test_a_value_for_an_untyped_field_never_reaches_the_plugin_unconverted():
    @attrs.define
    class P:
        ratio = attrs.field(default="1")

    with pytest.raises(ConfigError, match="strategy x: parameter ratio has no type"):
        parse_params(P, {"ratio": "abc"}, "strategy x")


def test_supported_types_pass_and_flags_are_listed():
    check_params_class(Good)
    assert param_flags(Good) == [("--size", "size")]


@pytest.mark.parametrize("flag", ["size", "--Size", "-s", "--size_x", "--"])
def test_a_badly_formed_flag_is_refused(flag):
    @attrs.frozen
    class P:
        size: Decimal = param(Decimal(1), "a size", flag=flag)

    with pytest.raises(ValueError, match="field size: flag"):
        check_params_class(P)


def _plain_positive(instance, attribute, value):
    if value <= 0:
        raise ValueError(f"must be positive, got {value}")


def test_a_custom_validator_message_gets_the_parameter_prefix():
    @attrs.frozen
    class P:
        qty: Decimal = param(Decimal(1), "a size", _plain_positive)

    with pytest.raises(ConfigError) as exc:
        parse_params(P, {"qty": "-1"}, "strategy x")
    assert str(exc.value) == "strategy x: parameter qty: must be positive, got -1"


def test_a_raw_attrs_validator_message_gets_the_prefix_too():
    @attrs.frozen
    class P:
        a: Decimal = attrs.field(default=Decimal(1), validator=_plain_positive)
        qty: Decimal = attrs.field(default=Decimal(1), validator=_plain_positive)

    with pytest.raises(ConfigError) as exc:
        parse_params(P, {"qty": "0"}, "strategy x")
    assert str(exc.value) == "strategy x: parameter qty: must be positive, got 0"


def test_the_builtin_range_message_is_not_prefixed_twice():
    from perpbot.core.params import in_range

    @attrs.frozen
    class P:
        n: int = param(1, "n", in_range(1, 5))

    with pytest.raises(ConfigError) as exc:
        parse_params(P, {"n": "9"}, "strategy x")
    assert str(exc.value) == "strategy x: parameter n: must be <= 5, got 9"


def test_an_unknown_parameter_names_the_closest():
    with pytest.raises(ConfigError, match="unknown parameter 'raito' \\(did you mean 'ratio'\\?\\)"):
        parse_params(Good, {"raito": "1"}, "strategy x")
