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
