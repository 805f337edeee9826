"""Observers receive a read-only RunView of the run, not the bot (issue 10.2)."""

import pytest

from perpbot.core.bot.view import RunViewProxy, run_view_members


class FakeBot:
    run_id = "abc123def456"
    halted = None

    def __init__(self):
        self.calls = []

    def submit(self, *a):  # a bot method RunView does not offer
        self.calls.append(a)

    def halt(self, reason, *, source=""):
        self.halted = reason


def test_the_view_answers_run_view_members_and_nothing_else():
    bot = FakeBot()
    view = RunViewProxy(bot)
    assert view.run_id == "abc123def456"
    view.halt("journal unavailable")
    assert bot.halted == "journal unavailable" and view.halted == "journal unavailable"  # reads are live
    with pytest.raises(AttributeError, match="RunView has no 'submit'"):
        view.submit("order")
    with pytest.raises(AttributeError, match="read-only"):
        view.run_id = "x"
    assert bot.calls == [] and set(dir(view)) == set(run_view_members())


def test_observers_of_a_real_run_get_the_view(tmp_path):
    from tests.core.test_bot import make_bot  # noqa: F401  (the suite's small bot builder)
    import asyncio

    from perpbot.core.hookspecs import hookimpl
    from tests.core.test_bot import events

    seen = []

    class Obs:
        __name__ = "obs"

        @hookimpl
        def on_bot_stop(self, bot, summary):
            seen.append(bot)

    bot = make_bot(tmp_path, events(), Obs())
    asyncio.run(bot.run())
    assert seen == [bot.view] and type(seen[0]) is RunViewProxy
    assert not hasattr(seen[0], "submit") and not hasattr(seen[0], "import_state")


def test_members_are_class_properties_reading_the_live_bot():
    """Issue 11.4: each RunView member is a property of the proxy class (one descriptor call, not a
    failed lookup plus __getattr__); reads stay live, a member the bot lacks still raises."""
    for name in run_view_members():
        assert isinstance(vars(RunViewProxy).get(name), property), name
    bot = FakeBot()
    view = RunViewProxy(bot)
    assert view.run_id == "abc123def456"
    bot.run_id = "0123456789ab"
    assert view.run_id == "0123456789ab"
    with pytest.raises(AttributeError, match="clock"):
        view.clock  # documented, but this fake bot has none
    with pytest.raises(AttributeError, match="read-only"):
        view.config = None
