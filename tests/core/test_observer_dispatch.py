"""Observer hooks called directly (core/bot/calls.py, ``ObserverCalls.plan``): the same
implementations, order, arguments and results as through pluggy; a plugin registered or
unregistered between two events is seen at the next one; wrappers and tracing still go
through pluggy."""

from __future__ import annotations

import asyncio

import pluggy
import pytest

from perpbot.core import hookspecs
from perpbot.core.bot.calls import ObserverCalls
from perpbot.core.hookspecs import hookimpl

VIEW = object()


class Manager:
    """What ObserverCalls needs of perpbot's PluginManager: ``hook`` and pluggy's ``pm``."""

    def __init__(self):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)

    @property
    def hook(self):
        return self.pm.hook


class Named:
    """An observer recording what it received; ``on_fill`` takes fewer arguments than the spec."""

    def __init__(self, name, log, result=None):
        self.__name__ = name
        self.log = log
        self.result = result

    @hookimpl
    def on_fill(self, fill):
        self.log.append((self.__name__, fill))
        return self.result

    @hookimpl
    async def on_order_update(self, bot, update):
        await asyncio.sleep(0)
        self.log.append((self.__name__, bot is VIEW, update))
        return f"{self.__name__}:{update}"


def notify(calls, hook, **kw):
    return asyncio.run(calls.notify(hook, **kw))


def test_same_order_arguments_and_results_as_pluggy():
    m, log = Manager(), []
    for name in ("a", "b", "c"):
        m.pm.register(Named(name, log, result=name.upper()), name)
    calls = ObserverCalls(m, VIEW)
    assert notify(calls, "on_fill", fill=1) == m.pm.hook.on_fill(bot=VIEW, fill=1) == ["C", "B", "A"]
    assert log[:3] == log[3:] == [("c", 1), ("b", 1), ("a", 1)]
    assert calls.plan(m.pm.hook.on_fill) is not None  # called directly
    assert notify(calls, "on_order_update", update=7) == ["c:7", "b:7", "a:7"]  # async ones awaited, in order


def test_a_plugin_registered_or_unregistered_between_events_is_seen_at_the_next():
    m, log = Manager(), []
    m.pm.register(Named("a", log), "a")
    calls = ObserverCalls(m, VIEW)
    notify(calls, "on_fill", fill=1)
    late = Named("late", log)
    m.pm.register(late, "late")
    notify(calls, "on_fill", fill=2)
    m.pm.unregister(name="a")
    notify(calls, "on_fill", fill=3)
    assert log == [("a", 1), ("late", 2), ("a", 2), ("late", 3)]


def test_a_hook_nobody_implements_calls_nothing():
    m = Manager()
    calls = ObserverCalls(m, VIEW)
    assert notify(calls, "on_checkpoint") == []
    assert calls.plan(m.pm.hook.on_checkpoint) == ()


def test_wrappers_still_wrap_each_call():
    m, log = Manager(), []

    class Wrapper:
        __name__ = "wrapper"

        @hookimpl(wrapper=True)
        def on_fill(self, fill):
            log.append(("enter", fill))
            result = yield
            log.append(("exit", fill))
            return result

    m.pm.register(Named("a", log), "a")
    m.pm.register(Named("b", log), "b")
    calls = ObserverCalls(m, VIEW)
    notify(calls, "on_fill", fill=1)
    m.pm.register(Wrapper(), "wrapper")
    assert calls.plan(m.pm.hook.on_fill) is None
    notify(calls, "on_fill", fill=2)
    assert log == [("b", 1), ("a", 1), ("enter", 2), ("b", 2), ("exit", 2), ("enter", 2), ("a", 2), ("exit", 2)]


def test_traced_hook_calls_go_through_pluggy():
    m, log, seen = Manager(), [], []
    m.pm.register(Named("a", log), "a")
    calls = ObserverCalls(m, VIEW)
    notify(calls, "on_fill", fill=1)
    undo = m.pm.add_hookcall_monitoring(lambda name, impls, kw: seen.append((name, kw["fill"])), lambda *a: None)
    notify(calls, "on_fill", fill=2)
    undo()
    notify(calls, "on_fill", fill=3)
    assert seen == [("on_fill", 2)]
    assert log == [("a", 1), ("a", 2), ("a", 3)]
    assert calls.plan(m.pm.hook.on_fill) is not None  # direct calls again once tracing is undone


def test_a_raising_observer_is_contained_and_the_next_still_gets_the_event():
    m, log = Manager(), []

    class Broken:
        __name__ = "broken"

        @hookimpl
        def on_fill(self, fill):
            raise RuntimeError("boom")

    m.pm.register(Named("a", log), "a")
    m.pm.register(Broken(), "broken")  # called first (registered last)
    calls = ObserverCalls(m, VIEW)
    assert notify(calls, "on_fill", fill=1) == []
    assert log == [("a", 1)]
    assert calls.errors == {("broken", "on_fill", "RuntimeError"): 1}

    class Journal:
        __name__ = "journal"

        @hookimpl
        def on_order_submit(self, order):
            raise OSError("disk full")

    m.pm.register(Journal(), "journal")
    with pytest.raises(OSError, match="disk full"):  # an order must not go out without its intent
        notify(calls, "on_order_submit", order=1)


def test_awaitables_other_than_coroutines_are_awaited_too():
    m = Manager()

    class Awaitable:
        def __await__(self):
            yield from asyncio.sleep(0).__await__()
            return "awaited"

    class Returns:
        __name__ = "returns"

        @hookimpl
        def on_fill(self, fill):
            return Awaitable()

    m.pm.register(Returns(), "returns")
    assert notify(ObserverCalls(m, VIEW), "on_fill", fill=1) == ["awaited"]


def test_the_bots_notify_is_the_dispatchers_coroutine_itself(tmp_path):
    """Issue 11.4: ``TradingBot.notify`` hands back ObserverCalls.notify's coroutine (no frame of its
    own per hook call); awaited, it gives the observers' results."""
    from tests.core.test_bot import events, make_bot

    class Obs:
        __name__ = "obs"

        @hookimpl
        def on_fill(self, bot, fill):
            return ("seen", fill, type(bot).__name__)

    bot = make_bot(tmp_path, events(), Obs())
    pending = bot.notify("on_fill", fill="f")
    assert asyncio.iscoroutine(pending) and pending.cr_code is ObserverCalls.notify.__code__
    assert asyncio.run(pending) == [("seen", "f", "RunViewProxy")]


def test_implementations_naming_none_one_or_several_arguments_get_them_as_pluggy_gives():
    """Issue 11.4: arguments are picked per implementation (none, one read directly, several by
    one itemgetter call); each gets what pluggy's own call gives it, in the order it names them."""
    seen = []

    class Shapes:
        __name__ = "shapes"

        @hookimpl
        def on_decision(self):
            seen.append(("none",))

    class One:
        __name__ = "one"

        @hookimpl
        def on_decision(self, result):
            seen.append(("one", result))

    class Reordered:
        __name__ = "reordered"

        @hookimpl
        def on_decision(self, result, bot, strategy):
            seen.append(("three", result, bot, strategy))

    m = Manager()
    for p in (Shapes(), One(), Reordered()):
        m.pm.register(p, p.__name__)
    calls = ObserverCalls(m, VIEW)
    assert notify(calls, "on_decision", strategy="s", result="r") == []
    direct = list(seen)
    seen.clear()
    m.pm.hook.on_decision(bot=VIEW, strategy="s", result="r")
    assert direct == seen == [("three", "r", VIEW, "s"), ("one", "r"), ("none",)]


def test_the_bots_notify_is_the_dispatchers_bound_method(tmp_path):
    """Issue 11.4: a bot's ``notify`` is its dispatcher's ``notify`` itself (no call of the
    TradingBot method per hook); the class method still works the same when called."""
    from perpbot.core.bot import TradingBot
    from tests.core.test_bot import events, make_bot

    class Obs:
        __name__ = "obs"

        @hookimpl
        def on_fill(self, bot, fill):
            return ("seen", fill)

    bot = make_bot(tmp_path, events(), Obs())
    assert bot.notify == bot._observers.notify
    assert asyncio.run(TradingBot.notify(bot, "on_fill", fill="f")) == [("seen", "f")]
