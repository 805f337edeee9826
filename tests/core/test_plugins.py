import pytest

from perpbot.core.errors import PluginError
from perpbot.core.hookspecs import hookimpl
from perpbot.core.plugins import PluginManager
from perpbot.core.strategy import BaseStrategy
from tests.core.simple import ScriptedStrategy, TestPlugin


def pm(*extra, defaults=()):
    return PluginManager(load_entry_points=False, extra_plugins=extra, default_plugins=defaults)


def test_registers_through_hooks_and_lists():
    m = pm(TestPlugin())
    assert m.registry.strategies["scripted"] is ScriptedStrategy
    assert "list" in m.registry.feeds and "instant" in m.registry.exchanges
    row = next(r for r in m.listing() if r["name"] == "test-plugin")
    assert "strategy:scripted" in row["registers"] and "exchange:instant" in row["registers"]
    assert "register_strategies" in row["hooks"]


def test_duplicate_name_names_both_plugins():
    class Other:
        __name__ = "other-plugin"

        @hookimpl
        def register_strategies(self, register):
            register(ScriptedStrategy)

    with pytest.raises(PluginError) as exc:
        pm(TestPlugin(), Other())
    msg = str(exc.value)
    assert "'scripted'" in msg and "test-plugin" in msg and "other-plugin" in msg


def test_registering_a_non_strategy_names_the_plugin():
    class Bad:
        __name__ = "bad-plugin"

        @hookimpl
        def register_strategies(self, register):
            register(dict)

    with pytest.raises(PluginError, match="bad-plugin.*not a subclass of BaseStrategy"):
        pm(Bad())


def test_unnamed_strategy_is_refused():
    class Nameless(BaseStrategy):
        async def should_execute(self, md):
            return False

        async def execute_strategy(self, md):
            return None

    class P:
        __name__ = "nameless-plugin"

        @hookimpl
        def register_strategies(self, register):
            register(Nameless)

    with pytest.raises(PluginError, match="nameless-plugin.*no 'name'"):
        pm(P())


def test_unknown_hook_is_an_error_naming_the_plugin():
    class Typo:
        __name__ = "typo-plugin"

        @hookimpl
        def register_strategys(self, register):  # typo
            pass

    with pytest.raises(PluginError, match="typo-plugin"):
        pm(Typo())


def test_plugin_raising_in_registration_is_reported():
    class Broken:
        __name__ = "broken-plugin"

        @hookimpl
        def register_exchanges(self, register):
            raise RuntimeError("boom")

    with pytest.raises(PluginError, match="broken-plugin.*register_exchanges.*boom"):
        pm(Broken())


def test_builtins_load_from_default_plugins():
    m = PluginManager(load_entry_points=False)
    # every built-in registers through the same hooks
    assert "paper" in m.registry.exchanges
    assert "sniper" in m.registry.strategies
    assert all(r["builtin"] for r in m.listing())


def test_disable_switch(monkeypatch):
    monkeypatch.setenv("PERPBOT_DISABLE_PLUGINS", "perpbot.strategies.sniper")
    m = PluginManager(load_entry_points=False)
    assert "sniper" not in m.registry.strategies


def test_registry_get_unknown_is_one_line_config_error():
    from perpbot.core.errors import ConfigError

    m = pm(TestPlugin())
    with pytest.raises(ConfigError, match="unknown strategy 'nope' \\(available: scripted\\)"):
        m.registry.get("strategies", "nope")


# -- issue 9.14: registration checks; a broken plugin never breaks the CLI for everyone ---------


def _strategy_plugin(plugin_name, cls):
    class P:
        __name__ = plugin_name

        @hookimpl
        def register_strategies(self, register):
            register(cls)

    return P()


def test_misspelt_hook_names_the_closest_hook():
    class Typo:
        __name__ = "typo-plugin"

        @hookimpl
        def on_fil(self, fill):  # typo of on_fill
            pass

    with pytest.raises(PluginError, match="typo-plugin.*unknown hook 'on_fil' \\(did you mean 'on_fill'\\?\\)"):
        pm(Typo())


def test_not_strict_a_broken_plugin_is_listed_and_left_out_and_a_run_refuses():
    class Typo:
        __name__ = "typo-plugin"

        @hookimpl
        def register_strategys(self, register):  # typo of register_strategies
            pass

    m = PluginManager(load_entry_points=False, extra_plugins=(TestPlugin(), Typo()), default_plugins=(), strict=False)
    assert "scripted" in m.registry.strategies  # the others still load
    assert m.pm.get_plugin("typo-plugin") is None  # its hooks are never called
    row = next(r for r in m.listing() if r["name"] == "typo-plugin")
    assert "did you mean 'register_strategies'" in row["broken"]
    assert next(r for r in m.listing() if r["name"] == "test-plugin")["broken"] is None
    with pytest.raises(PluginError, match="typo-plugin.*PERPBOT_DISABLE_PLUGINS=typo-plugin"):
        m.raise_if_broken()


def test_not_strict_a_plugin_failing_mid_registration_loses_all_it_registered():
    class Half:
        __name__ = "half-plugin"

        @hookimpl
        def register_strategies(self, register):
            register(ScriptedStrategy)
            raise RuntimeError("boom")

    m = PluginManager(load_entry_points=False, extra_plugins=(Half(),), default_plugins=(), strict=False)
    assert "scripted" not in m.registry.strategies and "half-plugin" in m.broken


class _SyncExecute(BaseStrategy):
    name = "sync-exec"

    async def should_execute(self, market_data):
        return True

    def execute_strategy(self, market_data):  # missing async
        return None


class _SyncShould(BaseStrategy):
    name = "sync-should"

    def should_execute(self, market_data):  # missing async
        return True

    async def execute_strategy(self, market_data):
        return None


@pytest.mark.parametrize("cls,method", [(_SyncExecute, "execute_strategy"), (_SyncShould, "should_execute")])
def test_a_plain_def_decision_method_is_refused_at_registration(cls, method):
    with pytest.raises(PluginError, match=f"sync-plugin.*{cls.__name__}.{method} must be 'async def'"):
        pm(_strategy_plugin("sync-plugin", cls))


def _params_strategy(name, params_cls):
    return type(name, (ScriptedStrategy,), {"name": name, "Params": params_cls})


def test_a_float_or_untyped_parameter_is_refused_naming_plugin_and_field():
    import attrs

    from perpbot.core.params import param

    @attrs.frozen
    class FloatParams:
        ratio: float = param(0.5, "a ratio")

    with pytest.raises(PluginError, match="float-plugin.*strategy floaty: Params field ratio is declared float"):
        pm(_strategy_plugin("float-plugin", _params_strategy("floaty", FloatParams)))

    @attrs.define
    class Untyped:
        ratio = attrs.field(default="1")

    with pytest.raises(PluginError, match="untyped-plugin.*field ratio has no type"):
        pm(_strategy_plugin("untyped-plugin", _params_strategy("untyped", Untyped)))


def test_a_flag_declared_twice_names_both_owners():
    from decimal import Decimal

    import attrs

    from perpbot.core.params import param

    @attrs.frozen
    class A:
        x: Decimal = param(Decimal(1), "x", flag="--size")

    @attrs.frozen
    class B:
        y: Decimal = param(Decimal(1), "y", flag="--size")

    with pytest.raises(PluginError, match="plugin-b.*flag --size.*already declared by strategy sa \\(plugin 'plugin-a'"):
        pm(_strategy_plugin("plugin-a", _params_strategy("sa", A)), _strategy_plugin("plugin-b", _params_strategy("sb", B)))
    m = pm(_strategy_plugin("plugin-a", _params_strategy("sa", A)))
    owner = m.registry.flags["--size"]
    assert (owner.kind, owner.name, owner.field, owner.plugin) == ("strategies", "sa", "x", "plugin-a")


def test_builtin_strategies_declare_the_seed_flags():
    m = PluginManager(load_entry_points=False)
    grid = {f: o.field for f, o in m.registry.flags.items() if o.name == "grid"}
    for flag, field in {"--quantity": "quantity", "--take-profit": "take_profit_pct", "--direction": "direction",
                        "--max-orders": "max_orders", "--wait-time": "wait_time_s", "--grid-step": "grid_step_pct",
                        "--stop-price": "stop_price", "--pause-price": "pause_price"}.items():
        assert grid.get(flag) == field, flag
