"""Every hook is documented and exercised (a test_hook_<name> per hookspec)."""

import asyncio
import inspect
from decimal import Decimal as D

import pytest

from perpbot.core import hookspecs
from perpbot.core.hookspecs import hookimpl
from perpbot.core.model import OrderParams, Side
from perpbot.core.strategy import StrategyResult
from tests.core.simple import ScriptedStrategy, TestPlugin
from tests.core.test_bot import counted, events, make_bot

HOOKS = sorted(
    name for name, fn in vars(hookspecs).items() if callable(fn) and hasattr(fn, "perpbot_spec")
)


def test_every_hook_is_documented_with_params():
    assert len(HOOKS) >= 15
    for name in HOOKS:
        fn = getattr(hookspecs, name)
        doc = inspect.getdoc(fn) or ""
        assert len(doc) > 30, f"hook {name} has no docstring"
        for p in inspect.signature(fn).parameters:
            assert f":param {p}:" in doc, f"hook {name}: parameter {p} undocumented"


def test_every_hook_has_a_test():
    here = inspect.getsource(__import__("tests.core.test_hooks", fromlist=["x"]))
    missing = [h for h in HOOKS if f"def test_hook_{h}" not in here]
    assert not missing, f"hooks without a test_hook_<name>: {missing}"


class Recorder:
    __name__ = "recorder"

    def __init__(self):
        self.calls = []

    @hookimpl
    def on_bot_start(self, bot):
        self.calls.append(("on_bot_start", None))

    @hookimpl
    def reconcile_startup(self, bot):
        self.calls.append(("reconcile_startup", None))
        return "nothing to reconcile"

    @hookimpl
    async def on_bot_stop(self, bot, summary):  # async observers are awaited
        await asyncio.sleep(0)
        self.calls.append(("on_bot_stop", summary))

    @hookimpl
    def on_order_submit(self, bot, order):
        self.calls.append(("on_order_submit", order))

    @hookimpl
    def on_order_result(self, bot, order, result):
        self.calls.append(("on_order_result", result))

    @hookimpl
    def on_order_update(self, bot, update):
        self.calls.append(("on_order_update", update))

    @hookimpl
    def on_fill(self, bot, fill):
        self.calls.append(("on_fill", fill))

    @hookimpl
    def on_decision(self, bot, strategy, result):
        self.calls.append(("on_decision", result))

    @hookimpl
    def on_equity_snapshot(self, bot, ts_ns, balance):
        self.calls.append(("on_equity_snapshot", balance))

    def names(self):
        return [c[0] for c in self.calls]


@pytest.fixture
def recorded(tmp_path):
    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.01")))]
    ScriptedStrategy.seen, ScriptedStrategy.fills = [], []
    rec = Recorder()
    bot = make_bot(tmp_path, events(), rec)
    summary = asyncio.run(bot.run())
    return rec, bot, summary


def test_hook_on_bot_start(recorded):
    rec, _, _ = recorded
    assert rec.names()[0] == "on_bot_start"


def test_hook_reconcile_startup(recorded):
    rec, _, _ = recorded
    names = rec.names()
    assert names.index("reconcile_startup") < names.index("on_decision")


def test_hook_on_bot_stop(recorded):
    rec, _, summary = recorded
    assert rec.calls[-1] == ("on_bot_stop", summary)


def test_hook_on_order_submit(recorded):
    rec, bot, _ = recorded
    names = rec.names()
    # the intent is announced before the exchange sees the order
    assert names.index("on_order_submit") < names.index("on_fill")
    assert rec.calls[names.index("on_order_submit")][1].client_id == bot.exchange.placed[0].client_id


def test_hook_on_order_submit_failure_blocks_the_order(tmp_path):
    class Refuse:
        __name__ = "refuse"

        @hookimpl
        def on_order_submit(self, bot, order):
            raise OSError("disk full")

    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.01")))]
    bot = make_bot(tmp_path, events(), Refuse())
    summary = asyncio.run(bot.run())
    assert bot.exchange.placed == [] and summary.orders_rejected == 1


def test_hook_on_order_result(recorded):
    rec, _, _ = recorded
    (result,) = [c[1] for c in rec.calls if c[0] == "on_order_result"]
    assert result.success and result.filled_size == D("0.01")


def test_hook_on_order_update(recorded):
    rec, _, _ = recorded
    updates = [c[1] for c in rec.calls if c[0] == "on_order_update"]
    assert updates[-1].status.value == "FILLED"


def test_hook_on_fill(recorded):
    rec, _, _ = recorded
    (fill,) = [c[1] for c in rec.calls if c[0] == "on_fill"]
    assert fill.side is Side.BUY and fill.price == D("60000.5")


def test_hook_on_decision(recorded):
    rec, _, summary = recorded
    assert rec.names().count("on_decision") == summary.decisions >= 1


def test_hook_on_equity_snapshot(recorded):
    rec, _, _ = recorded
    (snap,) = [c[1] for c in rec.calls if c[0] == "on_equity_snapshot"][:1]
    assert snap.equity == D("10000")


def test_hook_on_funding_payment(tmp_path):
    from perpbot.core.model import FundingPayment

    got = []

    class Obs:
        __name__ = "obs"

        @hookimpl
        def on_funding_payment(self, bot, payment):
            got.append((payment, next(iter(bot.portfolios.values())).funding_net))

    class Pay:
        __name__ = "pay"

        @hookimpl
        def on_fill(self, bot, fill):
            next(iter(bot.exchanges.values())).emit(FundingPayment(fill.ticker, fill.ts_ns, fill.size, D("60000"), D("0.00001"), D("-0.006")))

    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.01")))]
    bot = make_bot(tmp_path, events(), Obs(), Pay())
    summary = asyncio.run(bot.run())
    assert got and got[0][0].amount == D("-0.006") and got[0][1] == D("-0.006")
    assert summary.funding_paid == D("0.006")


def test_hook_on_liquidation(tmp_path):
    from perpbot.core.model import Liquidation

    got = []

    class Obs:
        __name__ = "obs"

        @hookimpl
        def on_liquidation(self, bot, liquidation):
            got.append(liquidation)

        @hookimpl
        def on_bot_start(self, bot):
            next(iter(bot.exchanges.values())).emit(Liquidation("BTC-USD", 1, D("0.1"), D("50000"), D("7.5"), "test"))

    bot = make_bot(tmp_path, events(), Obs())
    summary = asyncio.run(bot.run())
    assert got[0].fee == D("7.5") and summary.liquidation_fees == D("7.5")


def test_hook_on_collateral_transfer(tmp_path):
    from perpbot.core.model import CollateralTransfer

    got = []

    class Obs:
        __name__ = "obs"

        @hookimpl
        def on_collateral_transfer(self, bot, transfer):
            got.append(transfer)

        @hookimpl
        def on_bot_start(self, bot):
            next(iter(bot.exchanges.values())).emit(CollateralTransfer(
                1, "TRANSFER", "dydx1x/0", "dydx1x/128", D("150.5"), "fund isolated ETH-USD order 1", "AB12",
                "confirmed"))

    bot = make_bot(tmp_path, events(), Obs())
    summary = asyncio.run(bot.run())
    assert got and got[0].amount == D("150.5") and got[0].ok
    assert summary.final_equity == summary.starting_equity  # the venue's own ledger move books nothing


def test_hook_on_risk_action(tmp_path):
    from tests.core.test_bot import RiskPlugin

    got = []

    class Obs:
        __name__ = "obs"

        @hookimpl
        def on_risk_action(self, bot, decision):
            got.append(decision)

    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.01")))]
    bot = make_bot(tmp_path, events(), RiskPlugin(), Obs(), risk_policies=("test_reject",))
    asyncio.run(bot.run())
    assert got and got[0].action.value == "REJECT" and got[0].ticker == "BTC-USD"


def _registration_test(kind):
    from perpbot.core.plugins import PluginManager

    pm = PluginManager(load_entry_points=False, extra_plugins=(TestPlugin(),), default_plugins=())
    return getattr(pm.registry, kind)


def test_hook_register_exchanges():
    assert "instant" in _registration_test("exchanges")


def test_hook_register_strategies():
    assert "scripted" in _registration_test("strategies")


def test_hook_register_feeds():
    assert "list" in _registration_test("feeds")


def test_hook_register_risk_policies():
    from perpbot.core.plugins import PluginManager
    from tests.core.test_bot import RiskPlugin

    pm = PluginManager(load_entry_points=False, extra_plugins=(RiskPlugin(),), default_plugins=())
    assert {"test_reject", "test_reduce", "test_halt"} <= set(pm.registry.risk_policies)


def test_hook_register_position_sizers():
    assert "test_notional" in _registration_test("position_sizers")


def test_hook_register_analyzers():
    from perpbot.core.analysis import Analyzer
    from perpbot.core.errors import PluginError
    from perpbot.core.plugins import PluginManager

    class Mine(Analyzer):
        name = "mine"

        def on_event(self, state, ev):
            pass

        def interpret(self, ts_ns):
            return None

        def features(self):
            return {}

    class Plugin:
        __name__ = "analyzer-plugin"

        @hookimpl
        def register_analyzers(self, register):
            register(Mine)

    pm = PluginManager(load_entry_points=False, extra_plugins=(Plugin(),), default_plugins=("perpbot.plugins.analysis",))
    assert {"mine", "technical", "sentiment"} <= set(pm.registry.analyzers)

    class NotOne:
        name = "x"

    class Bad:
        __name__ = "bad-analyzer-plugin"

        @hookimpl
        def register_analyzers(self, register):
            register(NotOne)

    with pytest.raises(PluginError, match="not a subclass of Analyzer"):
        PluginManager(load_entry_points=False, extra_plugins=(Bad(),), default_plugins=())


def test_hook_load_signal_gate():
    from perpbot.core.plugins import PluginManager

    class Gate:
        threshold = 0.5

        def probability(self, features):
            return 0.9

        def describe(self):
            return "gate"

    class Loader:
        __name__ = "gate-loader"

        @hookimpl
        def load_signal_gate(self, path):
            return Gate() if path.endswith(".gate") else None

    pm = PluginManager(load_entry_points=False, extra_plugins=(Loader(),), default_plugins=())
    assert pm.hook.load_signal_gate(path="m.gate").probability({}) == 0.9
    assert pm.hook.load_signal_gate(path="m.other") is None  # firstresult: None when no plugin reads it


def test_hook_register_commands():
    import typer

    from perpbot.core.plugins import PluginManager

    class Cmd:
        __name__ = "cmd"

        @hookimpl
        def register_commands(self, cli):
            @cli.command()
            def hello():
                """Say hello."""
                typer.echo("hello")

    app = typer.Typer()
    PluginManager(load_entry_points=False, extra_plugins=(Cmd(),), default_plugins=()).register_commands(app)
    from typer.testing import CliRunner

    assert CliRunner().invoke(app, []).output.strip() == "hello"


def test_hook_on_order_cancel(tmp_path):
    from perpbot.core.model import OrderType

    got = []

    class Obs:
        __name__ = "obs"

        @hookimpl
        def on_order_cancel(self, bot, client_id, ticker, result):
            got.append((client_id, ticker, result.success))

    ScriptedStrategy.SCRIPT = [
        StrategyResult.place(OrderParams("BTC-USD", Side.BUY, OrderType.LIMIT, size=D("0.01"), price=D("50000"))),
    ]

    class CancelNext:
        __name__ = "cancel-next"

        @hookimpl
        def on_order_result(self, bot, order, result):
            ScriptedStrategy.SCRIPT.append(StrategyResult(cancels=((order.client_id, order.ticker),)))

    bot = make_bot(tmp_path, events(), Obs(), CancelNext())
    asyncio.run(bot.run())
    cid = bot.exchange.placed[0].client_id
    assert got == [(cid, "BTC-USD", True)]
    assert cid not in bot.open_orders


def test_hook_on_checkpoint(tmp_path):
    from perpbot.core.testing import bot_config  # noqa: F401

    got = []

    class Obs:
        __name__ = "obs"

        @hookimpl
        def on_checkpoint(self, bot):
            got.append((bot.events_read, bot.export_state()["events_read"]))

    bot = make_bot(tmp_path, events(130), Obs(), checkpoint_interval_s=D("60"))
    asyncio.run(bot.run())
    # 130 one-second events: checkpoints at t=0, 60 and 120 s, each at a batch boundary
    assert [g[0] for g in got] == [1, 62, 122]  # snapshot+oracle share t=0
    assert all(a == b for a, b in got)


def test_resume_warm_up_and_state_round_trip(tmp_path):
    bot = make_bot(tmp_path, events(30), max_events=20)
    asyncio.run(bot.run())
    state = bot.export_state()

    bot2 = make_bot(tmp_path, events(30))
    bot2.import_state(state)
    assert bot.events_read == 21  # max_events counts events (20: the oracle and 19 trades) + the snapshot
    bot2.resume_from_event = bot.events_read  # as the journal does: the checkpoint's feed-item cursor
    summary = asyncio.run(bot2.run())
    assert summary.events == counted(events(30)) and bot2.events_read == len(events(30))
    # one per event after the warm-up, none during it
    assert bot2.decisions == bot.decisions + len(events(30)) - bot.events_read
    assert bot2.states["BTC-USD"].book.best_bid() is not None  # state was warmed from the start


def test_an_observer_that_raises_does_not_keep_the_event_from_the_others(tmp_path):
    """Issue 9.13: one pluggy call in one try: the first observer to raise kept the event from
    the observers after it (the journal then missed on_fill)."""
    from loguru import logger

    class Broken:
        __name__ = "broken"

        @hookimpl
        def on_fill(self, bot, fill):
            raise ValueError("observer bug")

        @hookimpl
        async def on_order_result(self, bot, order, result):  # an async observer fails when awaited
            raise KeyError("async observer bug")

    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.01"))) for _ in range(3)]
    rec = Recorder()
    lines = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="ERROR")
    try:
        # registered last, pluggy calls it first: before the fix the recorder never saw a fill
        bot = make_bot(tmp_path, events(), rec, Broken())
        summary = asyncio.run(bot.run())
    finally:
        logger.remove(sink)
    assert [c[0] for c in rec.calls].count("on_fill") == 3
    assert [c[0] for c in rec.calls].count("on_order_result") == 3
    failures = [m for m in lines if "observer plugin" in m]
    assert len(failures) == 2  # once per (plugin, hook, error), not once per event
    assert any(m.startswith("observer plugin 'broken' failed in on_fill: ValueError: observer bug") for m in failures)
    assert any(m.startswith("observer plugin 'broken' failed in on_order_result: KeyError") for m in failures)
    assert bot.observer_errors == {("broken", "on_fill", "ValueError"): 3, ("broken", "on_order_result", "KeyError"): 3}
    text = summary.render()
    assert "observer plugin 'broken' failed in on_fill with ValueError 3 times" in text


def test_an_error_raised_to_halt_is_not_contained_by_observer_isolation(tmp_path):
    """A plugin that stops trading on purpose (a journal that cannot write) is not an observer bug."""

    class Halt(Exception):
        halts_trading = True

    class Stopper:
        __name__ = "stopper"

        @hookimpl
        def on_fill(self, bot, fill):
            raise Halt("journal unavailable")

    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.01")))]
    bot = make_bot(tmp_path, events(), Stopper())
    with pytest.raises(Halt, match="journal unavailable"):
        asyncio.run(bot.notify("on_fill", fill=None))


def test_hooks_are_called_through_pluggy_so_fewer_arguments_work(tmp_path):
    """Issue 9.13: register hooks were called as impl.function(register): an implementation taking
    fewer arguments than the spec (as pluggy allows, core/hookspecs.py) failed to load."""
    import typer

    from perpbot.core.plugins import PluginManager

    seen = []

    class Few:
        __name__ = "few"

        @hookimpl
        def register_strategies(self):
            seen.append("register_strategies")

        @hookimpl
        def register_commands(self):
            seen.append("register_commands")

        @hookimpl
        def on_fill(self, fill):  # no bot
            seen.append(("on_fill", fill.size))

    pm = PluginManager(load_entry_points=False, extra_plugins=(TestPlugin(), Few()), default_plugins=())
    pm.register_commands(typer.Typer())
    assert seen == ["register_strategies", "register_commands"]
    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.01")))]
    bot = make_bot(tmp_path, events(), Few())
    asyncio.run(bot.run())
    assert ("on_fill", D("0.01")) in seen


# -- configure: historic -------------------------------------------------------------------


class Configured:
    __name__ = "configured"

    def __init__(self):
        self.configs = []

    @hookimpl
    def configure(self, config):
        self.configs.append(config)


def test_hook_configure(tmp_path):
    """The run's configuration reaches plugins when the bot is built, before anything runs,
    and a plugin registered after that call still receives it (pluggy historic hook)."""
    early = Configured()
    bot = make_bot(tmp_path, events(), early)
    assert early.configs == [bot.config]
    bot.pm.configure(bot.config)  # the same configuration again: not announced twice
    assert early.configs == [bot.config]

    late = Configured()
    bot.pm.pm.register(late, name="late")  # registered after the call: receives it at registration
    assert late.configs == [bot.config]
    summary = asyncio.run(bot.run())
    assert summary.events and early.configs == late.configs == [bot.config]


def test_hook_configure_errors_name_the_plugin(tmp_path):
    from perpbot.core.errors import ConfigError, PluginError
    from perpbot.core.plugins import PluginManager

    class Refuses:
        __name__ = "refuses"

        @hookimpl
        def configure(self, config):
            raise ConfigError("refuses: bot.tickers: needs ETH-USD, got BTC-USD")

    class Buggy:
        __name__ = "buggy"

        @hookimpl
        def configure(self, config):
            return {}["missing"]

    class Async:
        __name__ = "async-configure"

        @hookimpl
        async def configure(self, config):
            pass

    # a plugin's own ConfigError is the configuration error it is (exit code 2)
    with pytest.raises(ConfigError, match="needs ETH-USD"):
        make_bot(tmp_path, events(), Refuses())
    # any other failure is a PluginError naming the plugin (exit code 4)
    with pytest.raises(PluginError, match="plugin 'buggy' failed in configure: KeyError"):
        make_bot(tmp_path, events(), Configured(), Buggy())
    with pytest.raises(PluginError, match="plugin 'async-configure': its configure hook is async"):
        make_bot(tmp_path, events(), Async())
    # the same checks for a plugin registered after the configuration was announced
    pm = PluginManager(load_entry_points=False, extra_plugins=(TestPlugin(),), default_plugins=())
    pm.configure(object())
    with pytest.raises(PluginError, match="async-configure"):
        pm.pm.register(Async(), name="async-configure")


def test_every_hook_is_typed():
    """Every hookspec parameter and return value is annotated, and the annotations (imported
    under TYPE_CHECKING in core/hookspecs.py) resolve to real types."""
    import ast
    import typing

    tree = ast.parse(inspect.getsource(hookspecs))
    names: dict = {}
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            exec(compile(ast.Module(body=node.body, type_ignores=[]), "hookspecs-type-checking", "exec"), names)
    assert "RunView" in names and "ResumeAPI" in names and "BotConfig" in names
    for name in HOOKS:
        fn = getattr(hookspecs, name)
        hints = typing.get_type_hints(fn, globalns={**vars(hookspecs), **names})
        assert set(hints) == set(inspect.signature(fn).parameters) | {"return"}, f"hook {name}: not fully annotated"
        if "bot" in hints:  # observers get the narrow, documented view of the run (issue 10.2)
            assert hints["bot"] is names["RunView"], f"hook {name}: bot is not typed as RunView"


def test_hook_on_feed_status(tmp_path):
    """Each FeedStatus of the run's markets reaches on_feed_status after its batch was applied."""
    from perpbot.core.model import FeedStatus

    seen = []

    class Watch:
        __name__ = "feed_watch"

        @hookimpl
        def on_feed_status(self, bot, status):
            seen.append((status.ticker, status.healthy, status.reason, bot.paused().get(status.ticker)))

    evs = events()
    evs.insert(3, FeedStatus("BTC-USD", evs[2].ts_ns, False, "book gap"))
    evs.append(FeedStatus("ETH-USD", evs[-1].ts_ns, False, "not a market of this run"))
    asyncio.run(make_bot(tmp_path, evs, Watch()).run())
    assert seen == [("BTC-USD", False, "book gap", "book gap")]
