"""Calling plugin code safely: observer hooks and the strategy's methods.

A plugin's bug is contained (logged once naming the plugin and its file:line, counted, and
shown in the run summary) so that the run, and the other plugins, go on. Imports only
:mod:`perpbot.core` modules.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from loguru import logger
from pluggy import _callers as _pluggy_callers

from perpbot.core.bot.support import await_me_maybe, error_location, halts_trading, source_folder
from perpbot.core.plugins import call_one, implementations

#: pluggy's own call loop (``pluggy/_callers.py``, ``_multicall``): while a plugin manager still
#: calls through it (no ``add_hookcall_monitoring``/``enable_tracing``), an implementation
#: can be called directly with the arguments it names, as that loop does; otherwise (or if a
#: pluggy release renames it: None) every call goes through pluggy
_MULTICALL = getattr(_pluggy_callers, "_multicall", None)


class ObserverCalls:
    """Calls observer hooks (:mod:`perpbot.core.hookspecs`) one implementation at a time.

    :param pm: the :class:`~perpbot.core.plugins.PluginManager`.
    :param view: what observers receive as ``bot`` (the :class:`~perpbot.core.bot.TradingBot`,
        typed for plugins as :class:`~perpbot.core.bot.view.RunView`).
    :param verbose: log tracebacks of contained failures.
    """

    def __init__(self, pm: Any, view: Any, *, verbose: bool = False):
        self.pm = pm
        self.view = view
        self.verbose = verbose
        #: (plugin, hook, error type) -> how many times an observer raised it; logged once
        self.errors: dict[tuple, int] = {}
        #: hook name -> (pluggy's implementation list when planned, whether calls were direct, the
        #: call plan); see :meth:`plan`
        self._plans: dict[str, tuple[list, bool, tuple | None]] = {}
        #: hook name -> pluggy's HookCaller (pluggy keeps one per hook name for the manager's life)
        self._callers: dict[str, Any] = {}
        #: pluggy's own manager (ours wraps it as ``pm.pm``)
        self._pluggy = getattr(pm, "pm", pm)

    def plan(self, caller: Any) -> tuple | None:
        """How to call hook ``caller``'s implementations: ``((impl, function, argnames, pick), ...)``
        in pluggy's call order (``pick``: ``operator.itemgetter`` of two or more argument names,
        giving their values as a tuple; None for zero or one name, read directly), or None when they must go through pluggy one at a time
        (:func:`~perpbot.core.plugins.call_one`: the hook has wrappers, or hook calls are traced).

        Cached per hook and re-checked at every call against ``caller.get_hookimpls()`` (a
        plugin registered or unregistered since, or a reordering, makes a new plan); a hook no
        plugin implements gives ``()``, and nothing is called.
        """
        impls = caller.get_hookimpls()
        direct = self._direct()
        cached = self._plans.get(caller.name)
        if cached is not None and cached[0] == impls and cached[1] == direct:
            return cached[2]
        if not direct or any(i.hookwrapper or i.wrapper for i in impls):
            plan = None
        else:
            plan = tuple(
                (i, i.function, tuple(i.argnames), itemgetter(*i.argnames) if len(i.argnames) > 1 else None)
                for i in implementations(caller)
            )
        self._plans[caller.name] = (impls, direct, plan)
        return plan

    def _direct(self) -> bool:
        """True while pluggy's manager calls implementations with its plain loop (not traced)."""
        return _MULTICALL is not None and getattr(self._pluggy, "_inner_hookexec", None) is _MULTICALL

    async def notify(self, hook: str, **kwargs) -> list:
        """Call observer hook ``hook`` with ``bot=view`` and ``kwargs``, and await the results.

        An implementation that raises is logged once naming its plugin, counted (the summary
        notes it) and skipped; the implementations after it still get the event. Two kinds of
        error propagate instead: any failure of ``on_order_submit`` (the order must not be sent
        without its intent recorded) and an error raised on purpose to stop trading
        (:func:`~perpbot.core.bot.support.halts_trading`).

        Each implementation gets only the arguments it names, as pluggy passes them
        (``pluggy/_callers.py``); without wrappers or tracing it is called directly (see
        :meth:`plan`), else through pluggy.

        :returns: the implementations' non-None results, awaited, in pluggy's call order.
        """
        caller = self._callers.get(hook)
        if caller is None:
            caller = self._callers[hook] = getattr(self.pm.hook, hook)
        kwargs["bot"] = self.view
        # each implementation on its own: one observer that raises must not keep the event
        # from the observers after it (the journal's on_fill among them). As pluggy does, all
        # are called first, then the awaitables of async ones are awaited, in the same order
        called = []
        cached = self._plans.get(hook)
        # pluggy's own list of the hook's implementations (changed in place when a plugin is
        # registered or unregistered: ``pluggy/_hooks.py`` HookCaller._add_hookimpl and
        # _remove_plugin), compared without the copy get_hookimpls() makes
        live = getattr(caller, "_hookimpls", None)
        if type(live) is not list:
            live = caller.get_hookimpls()
        if (cached is not None and cached[0] == live
                and cached[1] == (_MULTICALL is not None and getattr(self._pluggy, "_inner_hookexec", None) is _MULTICALL)):
            plan = cached[2]  # what plan() would return, without building its answer again
        else:
            plan = self.plan(caller)
        if plan is not None:
            if not plan:
                return []
            for impl, function, argnames, pick in plan:
                try:  # the named arguments (a KeyError for one the hook was not given, as before)
                    if pick is not None:
                        r = function(*pick(kwargs))
                    else:
                        r = function(kwargs[argnames[0]]) if argnames else function()
                except Exception as exc:
                    self.failed(hook, impl.plugin_name, exc)
                    continue
                if r is not None:
                    called.append((impl, r))
            if not called:
                return []
        else:
            for impl in implementations(caller):
                try:
                    called.extend((impl, r) for r in call_one(caller, impl, **kwargs))
                except Exception as exc:
                    self.failed(hook, impl.plugin_name, exc)
        out = []
        for impl, r in called:
            try:
                out.append(await await_me_maybe(r))
            except Exception as exc:
                self.failed(hook, impl.plugin_name, exc)
        return out

    def failed(self, hook: str, plugin: str, exc: BaseException) -> None:
        """Log an observer's failure once per (plugin, hook, error type) and count every one.

        :raises Exception: ``exc`` itself when it must not be contained: any failure of
            ``on_order_submit``, or an error raised to stop the run (``halts_trading``).
        """
        if hook == "on_order_submit" or halts_trading(exc):
            raise exc
        key = (plugin, hook, type(exc).__name__)
        n = self.errors.get(key, 0) + 1
        self.errors[key] = n
        if n == 1:
            logger.opt(exception=self.verbose).error(
                f"observer plugin {plugin!r} failed in {hook}: {type(exc).__name__}: {exc}{error_location(exc)} "
                "(the other observers still got the event; repeats are counted in the summary)"
            )

    def notes(self) -> list[str]:
        """One summary line per (plugin, hook, error type) that failed, with its count."""
        return [
            f"observer plugin {plugin!r} failed in {hook} with {err} {n} time{'s' if n != 1 else ''} "
            "(logged once; the other observers still got each event)"
            for (plugin, hook, err), n in self.errors.items()
        ]


class StrategyCalls:
    """Calls the strategy's event methods and counts what it raises.

    :param bot: the :class:`~perpbot.core.bot.TradingBot` (its ``strategy``, ``config`` and
        the ``strategy_errors`` counter, which this object increments).
    """

    def __init__(self, bot: Any):
        self.bot = bot
        #: (method, error type, " at file:line") -> how many times the strategy raised it; logged once
        self.counts: dict[tuple, int] = {}

    def call(self, method: str, arg: Any) -> None:
        """``strategy.<method>(arg)`` (``on_fill``, ``on_order_update``, ...); an error is contained and counted."""
        try:
            getattr(self.bot.strategy, method)(arg)
        except Exception as exc:
            self.failed(method, exc, "contained")

    def failed(self, method: str, exc: BaseException, consequence: str) -> None:
        """Count a strategy exception; log it only the first time it is raised at that place.

        The place is the last traceback frame inside the strategy plugin's own folder, so the
        log names the plugin's file and line; the summary counts the repeats.

        :param consequence: what the bot did about it, for the log line (e.g. ``"cycle skipped"``).
        """
        bot = self.bot
        bot.strategy_errors += 1
        where = error_location(exc, source_folder(bot.strategy))
        key = (method, type(exc).__name__, where)
        n = self.counts.get(key, 0) + 1
        self.counts[key] = n
        name = bot.config.strategy
        if n == 1:
            logger.opt(exception=bot.config.verbose).error(
                f"strategy {name}.{method} raised {type(exc).__name__}: {exc}{where} "
                f"({consequence}; repeats are counted in the summary, not logged)"
            )
        else:
            logger.debug(f"strategy {name}.{method} raised {type(exc).__name__}: {exc} again ({n} times)")

    def notes(self) -> list[str]:
        """One summary line per (method, error type, place) the strategy raised, with its count."""
        name = self.bot.config.strategy
        return [
            f"strategy {name}.{method} raised {err}{where} {n} time{'s' if n != 1 else ''} (logged once)"
            for (method, err, where), n in self.counts.items()
        ]
