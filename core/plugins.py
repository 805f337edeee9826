"""The plugin manager: built-ins from ``DEFAULT_PLUGINS``, third parties from entry points.

Built-in features are plugins registered on the same manager and hooks as a
third party's. Core never imports a built-in by name at import time: the
dotted module paths below are loaded with :func:`importlib.import_module`.
Third-party plugins load after built-ins (from the ``perpbot`` entry-point
group) so they can add to them; a name registered twice is an error that
names both plugins.

Environment switches:

- ``PERPBOT_LOAD_PLUGINS``: comma-separated allow-list of third-party
  distributions/entry-point names to load (empty string: none).
- ``PERPBOT_DISABLE_PLUGINS``: comma-separated names of plugins (built-in module
  names or entry-point names) not to load.

A plugin is checked when it registers: hook names against :mod:`perpbot.core.hookspecs`
(a misspelt one is named with the closest real hook), each registered class against
its base, a strategy's ``should_execute``/``execute_strategy`` must be ``async def``,
and its ``Params`` fields must be typed (:func:`perpbot.core.params.check_params_class`)
with unique command-line flags. With ``strict=False`` (the CLI) a plugin that fails
is recorded in :attr:`PluginManager.broken` and left out instead of raising, so
``--help`` and ``runbot.py plugins`` keep working for everyone;
:meth:`PluginManager.raise_if_broken` raises before a run.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
import os
import typing
from typing import Any, Callable

import attrs
import pluggy

from perpbot.core import hookspecs
from perpbot.core.errors import PluginError
from perpbot.core.params import check_params_class, describe_params, param_flags

#: Built-in plugins, registered through the same hooks as third-party ones.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "perpbot.exchanges.paper",
    "perpbot.exchanges.dydx",
    "perpbot.exchanges.replay",
    "perpbot.exchanges.ccxt",
    "perpbot.strategies.sniper",
    "perpbot.strategies.grid",
    "perpbot.strategies.funding_arb",
    "perpbot.strategies.confluence",
    "perpbot.plugins.sizers",
    "perpbot.plugins.risk",
    "perpbot.plugins.journal",
    "perpbot.plugins.journal.transfers",
    "perpbot.plugins.dashboard",
    "perpbot.plugins.alerts",
    "perpbot.plugins.report",
    "perpbot.plugins.api",
    "perpbot.plugins.research",
    "perpbot.plugins.analysis",
    "perpbot.plugins.catalog",
    "perpbot.plugins.collector",
    "perpbot.plugins.ml",
)


def implementations(hook, *, registration_order: bool = False) -> list:
    """The plain (non-wrapper) implementations of a pluggy hook.

    :param hook: a pluggy ``HookCaller`` (``pm.hook.<name>``).
    :param registration_order: False: the order pluggy calls them (the last registered
        first, ``tryfirst``/``trylast`` respected); True: the reverse, the plugins' load order.
    :returns: a list of ``pluggy.HookImpl``.
    """
    impls = [i for i in hook.get_hookimpls() if not (i.hookwrapper or i.wrapper)]
    return impls if registration_order else impls[::-1]


def call_one(hook, impl, **kwargs) -> list:
    """Call ONE implementation of a hook through pluggy, so that a failure is its own.

    pluggy passes each implementation only the arguments it names (an implementation may
    take fewer than the spec lists, ``perpbot/core/hookspecs.py``); calling ``impl.function``
    directly would not. The hook's wrappers (``hookwrapper``/``wrapper``), if any, wrap
    this one call.

    :param hook: the pluggy ``HookCaller`` the implementation belongs to.
    :param impl: one ``pluggy.HookImpl`` from :func:`implementations`.
    :param kwargs: the hook's arguments, by name.
    :returns: the implementation's result in a list (empty when it returned None); an
        async implementation's result is its un-awaited coroutine.
    :raises Exception: whatever the implementation raised, unchanged.
    """
    wrappers = [i for i in hook.get_hookimpls() if i.hookwrapper or i.wrapper]
    return hook._hookexec(hook.name, [impl, *wrappers], kwargs, False)


def _traceback_codes(tb) -> list:
    """The code objects of a traceback's frames, innermost first."""
    codes = []
    while tb is not None:
        codes.append(tb.tb_frame.f_code)
        tb = tb.tb_next
    return codes[::-1]


def _impl_owner(pm: pluggy.PluginManager, hook, *codes) -> str:
    """The name of the plugin whose implementation of ``hook`` has one of ``codes``
    (innermost first), or ``"?"``. Also finds a plugin that is registering right now
    (pluggy replays a historic hook before it adds the implementation to the hook)."""
    by_code = {}
    for name, plugin in pm.list_name_plugin():
        code = getattr(getattr(plugin, hook.name, None), "__code__", None)
        if code is not None:
            by_code[code] = name
    for impl in hook.get_hookimpls():
        code = getattr(impl.function, "__code__", None)
        if code is not None:
            by_code[code] = impl.plugin_name
    for code in codes:
        if code in by_code:
            return by_code[code]
    return "?"


@attrs.frozen
class FlagOwner:
    """Who declared a command-line flag: ``kind`` (``"strategies"``, ...), the registered
    ``name`` (``"grid"``), the params ``field`` it sets and the ``plugin`` that registered it."""

    kind: str
    name: str
    field: str
    plugin: str
    help: str = ""
    type: Any = None
    default: Any = None


@attrs.define
class Registry:
    """Everything plugins registered, by kind then name."""

    exchanges: dict = attrs.Factory(dict)
    strategies: dict = attrs.Factory(dict)
    risk_policies: dict = attrs.Factory(dict)
    position_sizers: dict = attrs.Factory(dict)
    feeds: dict = attrs.Factory(dict)
    analyzers: dict = attrs.Factory(dict)
    owners: dict = attrs.Factory(dict)  # (kind, name) -> plugin name
    flags: dict = attrs.Factory(dict)  # "--take-profit" -> FlagOwner

    def get(self, kind: str, name: str) -> type:
        """The class registered as ``name`` under ``kind`` (``"strategies"``, ``"risk_policies"``, ...).

        :raises ConfigError: for an unknown name, with the closest registered name and the list.
        """
        table = getattr(self, kind)
        if name not in table:
            known = ", ".join(sorted(table)) or "none"
            from perpbot.core.errors import ConfigError
            from perpbot.core.params import did_you_mean

            raise ConfigError(f"unknown {_LABELS[kind]} {name!r}{did_you_mean(name, table)} (available: {known})")
        return table[name]


_LABELS = {
    "exchanges": "exchange",
    "strategies": "strategy",
    "risk_policies": "risk policy",
    "position_sizers": "position sizer",
    "feeds": "feed",
    "analyzers": "analyzer",
}

_BASES = {
    "exchanges": ("perpbot.core.exchange", "BaseExchangeClient"),
    "strategies": ("perpbot.core.strategy", "BaseStrategy"),
    "risk_policies": ("perpbot.core.policies", "RiskPolicy"),
    "position_sizers": ("perpbot.core.policies", "PositionSizer"),
    "feeds": ("perpbot.core.feed", "BaseFeed"),
    "analyzers": ("perpbot.core.analysis", "Analyzer"),
}


class PluginManager:
    """Loads plugins and validates what they register.

    :param load_entry_points: load third-party plugins from the entry-point group.
    :param extra_plugins: objects/modules to register in addition (tests).
    :param strict: raise :class:`PluginError` at the first plugin that fails (default);
        ``False`` records it in :attr:`broken` (plugin name -> one-line reason), leaves it
        out (its hooks unregistered, its registrations removed) and goes on.
    """

    def __init__(self, *, load_entry_points: bool = True, extra_plugins: tuple = (), default_plugins=None,
                 strict: bool = True):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.versions: dict[str, str] = {}
        self.builtin: set[str] = set()
        self.strict = strict
        #: plugin name -> why it was left out (only with ``strict=False``)
        self.broken: dict[str, str] = {}
        disabled = {n.strip() for n in os.environ.get("PERPBOT_DISABLE_PLUGINS", "").split(",") if n.strip()}
        for modname in DEFAULT_PLUGINS if default_plugins is None else default_plugins:
            if modname in disabled:
                continue
            try:
                mod = importlib.import_module(modname)
            except ModuleNotFoundError as exc:
                if exc.name and (exc.name == modname or modname.startswith(exc.name + ".")):
                    continue  # an optional built-in that is not present in this build
                self._fail(modname, f"built-in plugin {modname} failed to import: {exc}", exc)
                continue
            except Exception as exc:
                self._fail(modname, f"built-in plugin {modname} failed to import: {type(exc).__name__}: {exc}", exc)
                continue
            self._register_plugin(mod, modname, builtin=True)
        if load_entry_points:
            self._load_entry_points(disabled)
        for obj in extra_plugins:
            name = getattr(obj, "__name__", None) or type(obj).__name__
            self._register_plugin(obj, name, builtin=False)
        for name, message in self._unknown_hooks().items():
            self._fail(name, message)
        self._collect()

    # -- failures ------------------------------------------------------------

    def _fail(self, name: str, message: str, cause: BaseException | None = None) -> None:
        """A plugin failed: raise (strict) or record it in :attr:`broken` and leave it out."""
        if self.strict:
            raise PluginError(message) from cause
        self.broken.setdefault(name, message)
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin=plugin, name=name)
        for key, owner in list(self.registry.owners.items()):
            if owner == name:
                kind, reg_name = key
                getattr(self.registry, kind).pop(reg_name, None)
                del self.registry.owners[key]
        for flag, owner in list(self.registry.flags.items()):
            if owner.plugin == name:
                del self.registry.flags[flag]

    def mark_broken(self, name: str, message: str) -> None:
        """Record plugin ``name`` as broken (a problem found outside registration, e.g. by the CLI);
        raises :class:`PluginError` when the manager is strict."""
        self._fail(name, message)

    def _unknown_hooks(self) -> dict[str, str]:
        """Plugin name -> one line naming its hook implementations that match no hook spec,
        each with the closest real hook name (difflib)."""
        spec_names = sorted(n for n in vars(hookspecs) if callable(getattr(hookspecs, n)) and
                            hasattr(getattr(hookspecs, n), f"{hookspecs.PROJECT}_spec"))
        bad: dict[str, list[str]] = {}
        for name in list(self.pm.hook.__dict__):
            if name.startswith("_"):
                continue
            caller = getattr(self.pm.hook, name)
            if caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if not impl.optionalhook:
                    bad.setdefault(impl.plugin_name, []).append(name)
        out = {}
        for plugin, names in bad.items():
            parts = []
            for hook in sorted(names):
                close = difflib.get_close_matches(hook, spec_names, n=1, cutoff=0.6)
                parts.append(f"{hook!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            out[plugin] = (
                f"plugin {plugin!r} implements unknown hook {', '.join(parts)}; "
                "hook names are listed in perpbot.core.hookspecs"
            )
        return out

    def raise_if_broken(self) -> None:
        """Raise :class:`PluginError` for the first broken plugin (a run must not start without it).

        :raises PluginError: ``<reason>; fix the plugin or disable it with PERPBOT_DISABLE_PLUGINS=<name>``.
        """
        if not self.broken:
            return
        name, message = next(iter(self.broken.items()))
        more = f" ({len(self.broken) - 1} more broken: runbot.py plugins lists them)" if len(self.broken) > 1 else ""
        raise PluginError(f"{message}; fix the plugin or disable it with PERPBOT_DISABLE_PLUGINS={name}{more}")

    # -- configuration -----------------------------------------------------

    def configure(self, config: Any) -> None:
        """Give every plugin the run's configuration: the historic ``configure`` hook.

        pluggy keeps the call (``call_historic``), so a plugin registered afterwards
        receives the same configuration when it registers (an exception its ``configure``
        raises then propagates from the registration). Calling again with the very
        same object does nothing; with another configuration (a second bot on this
        manager) the hook is called again and both stay in the history, oldest first.

        :param config: the :class:`perpbot.core.config.BotConfig` of the run.
        :raises ConfigError: raised by a plugin that refuses the configuration, unchanged.
        :raises PluginError: any other failure of an implementation, naming its plugin;
            also for an ``async`` implementation (``configure`` is never awaited).
        """
        if getattr(self, "_configured", None) is config:
            return
        self._configured = config
        hook = self.pm.hook.configure

        def check_result(result: Any) -> None:
            if inspect.isawaitable(result):
                code = getattr(result, "cr_code", None)
                if inspect.iscoroutine(result):
                    result.close()
                raise PluginError(
                    f"plugin {_impl_owner(self.pm, hook, code)!r}: its configure hook is async; "
                    "configure must be a plain function (it is never awaited)"
                )

        from perpbot.core.errors import ConfigError

        try:
            hook.call_historic(result_callback=check_result, kwargs={"config": config})
        except (ConfigError, PluginError):
            raise
        except Exception as exc:
            owner = _impl_owner(self.pm, hook, *_traceback_codes(exc.__traceback__))
            raise PluginError(f"plugin {owner!r} failed in configure: {type(exc).__name__}: {exc}") from exc

    # -- loading -----------------------------------------------------------

    def _load_entry_points(self, disabled: set[str]) -> None:
        allow_env = os.environ.get("PERPBOT_LOAD_PLUGINS")
        allow = None if allow_env is None else {n.strip() for n in allow_env.split(",") if n.strip()}
        for ep in importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else ep.name
            if ep.name in disabled or dist in disabled:
                continue
            if allow is not None and ep.name not in allow and dist not in allow:
                continue
            self.versions[ep.name] = ep.dist.version if ep.dist else "?"
            try:
                obj = ep.load()
            except Exception as exc:  # a broken third-party plugin must say who it is
                self._fail(ep.name, f"plugin {ep.name!r} (from {dist}) failed to load: {type(exc).__name__}: {exc}", exc)
                continue
            self._register_plugin(obj, ep.name, builtin=False)

    def _register_plugin(self, obj: Any, name: str, builtin: bool) -> None:
        if self.pm.get_plugin(name) is not None:
            return
        try:
            self.pm.register(obj, name=name)
        except pluggy.PluginValidationError as exc:
            self._fail(name, f"plugin {name!r} is invalid: {exc}")
            return
        except ValueError as exc:
            self._fail(name, f"plugin {name!r} could not be registered: {exc}")
            return
        if builtin:
            self.builtin.add(name)
            from perpbot.core import __version__

            self.versions.setdefault(name, __version__)

    # -- registration ------------------------------------------------------

    def _collect(self) -> None:
        for kind in _BASES:
            hook = getattr(self.pm.hook, f"register_{kind}")
            for impl in implementations(hook, registration_order=True):
                if impl.plugin_name in self.broken:
                    continue
                register = self._make_register(kind, impl.plugin_name)
                try:
                    call_one(hook, impl, register=register)
                except PluginError as exc:
                    self._fail(impl.plugin_name, str(exc), exc)
                except Exception as exc:
                    self._fail(impl.plugin_name, f"plugin {impl.plugin_name!r} failed in register_{kind}: {exc}", exc)

    def _make_register(self, kind: str, plugin_name: str) -> Callable[[type], type]:
        modname, basename = _BASES[kind]
        base = getattr(importlib.import_module(modname), basename)
        table = getattr(self.registry, kind)

        def register(cls: type) -> type:
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise PluginError(
                    f"plugin {plugin_name!r} registered {cls!r} as one of {kind}, "
                    f"but it is not a subclass of {basename}"
                )
            name = getattr(cls, "name", "")
            if not name or not isinstance(name, str):
                raise PluginError(f"plugin {plugin_name!r}: {cls.__name__} has no 'name'")
            if name in table:
                other = self.registry.owners[(kind, name)]
                raise PluginError(
                    f"{_LABELS[kind]} name {name!r} is registered twice: "
                    f"by plugin {other!r} and by plugin {plugin_name!r}"
                )
            label = f"plugin {plugin_name!r}: {_LABELS[kind]} {name}"
            if kind == "strategies":
                for method in ("should_execute", "execute_strategy"):
                    fn = getattr(cls, method, None)
                    if fn is not None and not inspect.iscoroutinefunction(fn):
                        raise PluginError(
                            f"{label}: {cls.__name__}.{method} must be 'async def' (the bot awaits it), "
                            f"but it is a plain function"
                        )
            params = getattr(cls, "Params", None)
            if params is not None and not attrs.has(params):
                raise PluginError(f"{label}: {cls.__name__}.Params must be an attrs class")
            flags: dict[str, FlagOwner] = {}
            if params is not None:
                try:
                    check_params_class(params)
                except ValueError as exc:
                    raise PluginError(f"{label}: Params {exc}") from None
                described = {p["name"]: p for p in describe_params(params)}
                hints = typing.get_type_hints(params)
                for flag, field in param_flags(params):
                    other = self.registry.flags.get(flag) or flags.get(flag)
                    if other is not None:
                        raise PluginError(
                            f"{label}: flag {flag} (parameter {field}) is already declared by "
                            f"{_LABELS[other.kind]} {other.name} (plugin {other.plugin!r}, parameter {other.field})"
                        )
                    flags[flag] = FlagOwner(kind, name, field, plugin_name, described[field]["help"],
                                            hints.get(field), described[field]["default"])
            table[name] = cls
            self.registry.owners[(kind, name)] = plugin_name
            self.registry.flags.update(flags)
            return cls

        return register

    # -- helpers -----------------------------------------------------------

    @property
    def hook(self):
        """pluggy's hook relay: ``manager.hook.<hookspec>(**kwargs)`` calls every implementation
        (see :mod:`perpbot.core.hookspecs` for the hooks, their arguments and results)."""
        return self.pm.hook

    def register_commands(self, cli) -> None:
        """Let plugins add CLI subcommands.

        Each plugin's commands are built on a scratch Typer app first, so a plugin
        whose command cannot be built fails with a PluginError naming it instead of
        breaking the whole command line.
        """
        import typer
        import typer.main

        hook = self.pm.hook.register_commands
        for impl in implementations(hook, registration_order=True):
            if impl.plugin_name in self.broken:
                continue
            scratch = typer.Typer()
            try:
                call_one(hook, impl, cli=scratch)
                if scratch.registered_commands:
                    typer.main.get_command(scratch)
            except Exception as exc:
                self._fail(
                    impl.plugin_name,
                    f"plugin {impl.plugin_name!r}: its commands are invalid: {type(exc).__name__}: {exc}",
                    exc,
                )
                continue
            cli.registered_commands.extend(scratch.registered_commands)

    def listing(self) -> list[dict]:
        """One row per plugin: name, version, built-in?, hooks, what it registered, and
        ``broken`` (None, or why the plugin was left out)."""
        rows = []
        for name, plugin in self.pm.list_name_plugin():
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            registered = sorted(
                f"{_LABELS[kind]}:{n}{suffix}"
                for (kind, n), owner in self.registry.owners.items()
                if owner == name
                # a class naming its tested variants (the ccxt plugin's venues) lists each one
                for suffix in ([""] + [f":{v}" for v in getattr(getattr(self.registry, kind, {}).get(n), "listed_variants", ())])
            )
            rows.append(
                {
                    "name": name,
                    "version": self.versions.get(name, "?"),
                    "builtin": name in self.builtin,
                    "hooks": hooks,
                    "registers": registered,
                    "broken": None,
                }
            )
        for name, reason in self.broken.items():
            rows.append(
                {
                    "name": name,
                    "version": self.versions.get(name, "?"),
                    "builtin": name in DEFAULT_PLUGINS,
                    "hooks": [],
                    "registers": [],
                    "broken": reason,
                }
            )
        return rows
