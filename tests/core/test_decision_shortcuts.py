"""Round three of issue 11.4's shortcuts give what the long way gave: the sizer's score
(``core/bot/orders.py``, ``sizing_score``) and the cycle's snapshot of marks and paused markets
(``core/bot/decisions.py``, ``AccountSnapshot.of``, the mark handed to ``MarketState.stale_reason``)."""

from __future__ import annotations

from decimal import Decimal as D

import attrs
import pytest

from perpbot.core.bot.orders import sizing_score
from perpbot.core.signals.scores import Scores


def long_way(scores):
    """The rule as first written (``OrderRouter._size``)."""
    composite = getattr(scores, "composite", None) if scores is not None else None
    return D(str(round(composite, 4))) if composite is not None else None


@attrs.define
class FixedComposite(Scores):
    """A subclass whose composite is its own (the shortcut must ask it)."""

    @property
    def composite(self) -> float:
        return 12.345678


@pytest.mark.parametrize("scores", [
    None,
    Scores(),
    Scores(strategy_composite=71.234567),
    Scores(strategy_composite=0.0),
    Scores(strategy_composite=100.0),
    FixedComposite(),
    FixedComposite(strategy_composite=55.0),
])
def test_sizing_score_is_the_composite_rounded(scores):
    assert sizing_score(scores) == long_way(scores)
    assert type(sizing_score(scores)) is type(long_way(scores))


def test_sizing_score_values():
    assert sizing_score(Scores()) is None
    assert sizing_score(Scores(strategy_composite=71.234567)) == D("71.2346")
    assert sizing_score(Scores(strategy_composite=0.0)) == D("0.0")
    assert sizing_score(FixedComposite(strategy_composite=55.0)) == D("12.3457")


# -- the snapshot's marks and paused markets: each mark read once -------------------------------

from perpbot.core.model import BookSnapshot, OraclePrice, Quote, Side, Trade  # noqa: E402
from perpbot.core.state import MarketState  # noqa: E402
from perpbot.core.testing import book_events, state_with  # noqa: E402

T0 = 1_733_000_000 * 1_000_000_000


_state = state_with


def _lvl(p):
    return ((D(p), D("1")),)


def market_states():
    """One market in each case the mark and stale_reason distinguish."""
    return {
        "empty": _state(),
        "both sides": _state(*book_events("BTC-USD", T0, D("60000"))),
        "odd mid": _state(BookSnapshot("BTC-USD", T0, bids=_lvl("60000"), asks=_lvl("60001.5"))),
        "bids only": _state(BookSnapshot("BTC-USD", T0, bids=_lvl("59999"))),
        "asks only, traded": _state(BookSnapshot("BTC-USD", T0, asks=_lvl("60001")),
                                    Trade("BTC-USD", T0 + 1, Side.BUY, D("60005"), D("0.1"))),
        "quote only": _state(Quote("BTC-USD", T0, D("59990"), D("2"), D("60010"), D("3"))),
        "crossed": _state(BookSnapshot("BTC-USD", T0, bids=_lvl("60001"), asks=_lvl("60000"))),
        "locked": _state(BookSnapshot("BTC-USD", T0, bids=_lvl("60000"), asks=_lvl("60000"))),
        "oracle and book": _state(*book_events("BTC-USD", T0, D("60000")), OraclePrice("BTC-USD", T0 + 2, D("59950.25"))),
        "oracle, crossed": _state(BookSnapshot("BTC-USD", T0, bids=_lvl("60001"), asks=_lvl("60000")),
                                  OraclePrice("BTC-USD", T0 + 2, D("60000.5"))),
        "oracle only": _state(OraclePrice("BTC-USD", T0, D("61000"))),
    }


@pytest.mark.parametrize("name", list(market_states()))
def test_the_mark_handed_to_stale_reason_gives_the_same_reason(name):
    """The snapshot reads each mark once and hands it to stale_reason: the same reason as asking it alone."""
    st = market_states()[name]
    m = st.mark_price()
    for now in (T0 + 3, T0 + 3 + 3600 * 1_000_000_000):  # fresh, and stale by the clock
        assert st.stale_reason(now, m) == st.stale_reason(now), now


# -- objects built without __init__: equal to the ones __init__ builds --------------------------

from perpbot.core.bot.decisions import AccountSnapshot  # noqa: E402
from perpbot.core.records import copy_with, plain_maker  # noqa: E402
from perpbot.core.model import Balance, OrderParams, Position  # noqa: E402
from perpbot.core.wake import WakeEvent  # noqa: E402


def same(a, b):
    return type(a) is type(b) and a == b and repr(a) == repr(b) and hash(a) == hash(b)


@pytest.mark.parametrize("obj, name, value", [
    (WakeEvent("trade", "BTC-USD", T0, "SELL 0.002 at 60000"), "decided_ns", T0 + 5),
    (WakeEvent("bbo", "ETH-USD", T0, "bid 1 ask 2", decided_ns=T0 + 1), "decided_ns", T0 + 9),
    (Balance(collateral=D("10.5"), equity=D("11"), free_collateral=D("9"), ts_ns=3), "ts_ns", 4),
])
def test_copy_with_of_wake_events_and_balances_equals_evolve(obj, name, value):
    assert same(copy_with(obj, name, value), attrs.evolve(obj, **{name: value}))


def test_a_snapshot_made_without_init_equals_one_made_with_it():
    bal = Balance(collateral=D("10.5"), equity=D("11"), free_collateral=D("9"), ts_ns=3)
    pos = {"BTC-USD": Position("BTC-USD", D("0.1"), D("60000"))}
    fields = dict(balances={"paper": bal}, primary=bal, marks={"BTC-USD": D("60000.5")}, positions=pos,
                  paused={"ETH-USD": "no book snapshot yet"}, total_equity=D("11"),
                  venue_positions={"paper": pos}, venue_marks={"paper": {"BTC-USD": D("60000.5")}})
    made = plain_maker(AccountSnapshot)(**fields)
    want = AccountSnapshot(**fields)
    assert type(made) is AccountSnapshot and made == want and repr(made) == repr(want)
    assert all(getattr(made, a.name) is getattr(want, a.name) for a in attrs.fields(AccountSnapshot))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.marks = {}
    with pytest.raises(TypeError):
        plain_maker(AccountSnapshot)(**{k: v for k, v in fields.items() if k != "paused"})  # every field is given


def test_classes_with_converters_or_checks_are_not_made_without_init():
    with pytest.raises(TypeError, match="hook"):
        plain_maker(OrderParams)

    @attrs.frozen
    class Converted:
        x: int = attrs.field(converter=int)

    with pytest.raises(TypeError, match="converted"):
        plain_maker(Converted)

    @attrs.frozen
    class Checked:
        x: int

        def __attrs_post_init__(self):
            pass

    with pytest.raises(TypeError, match="hook"):
        plain_maker(Checked)


def test_a_trade_wake_up_reads_as_before():
    from perpbot.core.bot.wake import Waker
    from perpbot.core.wake import Wake

    waker = Waker(Wake.parse("trade"), 0)
    for side in (Side.BUY, Side.SELL):
        ev = Trade("BTC-USD", T0, price=D("60000.50"), size=D("0.0020"), side=side)
        wake = waker.trigger(None, ev)
        assert wake == WakeEvent("trade", "BTC-USD", T0, f"{side.value} 0.0020 at 60000.50")
        done = waker.decided(wake, T0 + 7, T0 + 7)
        assert same(done, attrs.evolve(wake, decided_ns=T0 + 7)) and done.delay_ns == 7


def test_the_snapshot_is_what_the_bots_queries_say(tmp_path):
    from perpbot.core.strategy import StrategyResult
    from tests.core.simple import ScriptedStrategy
    from tests.core.test_bot import events, make_bot, run

    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.01")))]
    bot = make_bot(tmp_path, events(3))
    run(bot)
    snap = AccountSnapshot.of(bot)
    assert type(snap) is AccountSnapshot
    assert snap.marks == bot.marks() and snap.marks and snap.paused == bot.paused()
    assert snap.positions == bot.positions() and snap.positions
    assert snap.balances == {v: bot.balance(v) for v in bot.portfolios} and snap.primary == bot.balance()
    assert snap.total_equity == bot.total_equity()


def test_the_strategys_and_the_policies_views_are_what_the_bot_says(tmp_path):
    from perpbot.core.bot.decisions import risk_view
    from perpbot.core.policies import RiskView
    from perpbot.core.state import MarketData
    from perpbot.core.strategy import StrategyResult
    from tests.core.simple import ScriptedStrategy
    from tests.core.test_bot import events, make_bot, run

    ScriptedStrategy.SCRIPT = [StrategyResult.place(OrderParams("BTC-USD", Side.BUY, size=D("0.01")))]
    bot = make_bot(tmp_path, events(3))
    run(bot)
    now = bot.clock.now_ns()
    md = AccountSnapshot.of(bot).market_data(bot, now)
    want = bot.market_data()
    assert type(md) is MarketData and md == want and repr(md) == repr(want) and md.positions
    rv = risk_view(bot)
    rebuilt = RiskView(**{a.name: getattr(rv, a.name) for a in attrs.fields(RiskView)})
    assert type(rv) is RiskView and rv == rebuilt and repr(rv) == repr(rebuilt)
    assert rv.marks == bot.marks() and rv.positions == bot.positions() and rv.balance == bot.balance()


def test_plain_defaults_are_stored_as_init_stores_them():
    from perpbot.core.model import OrderInfo, OrderStatus, OrderType

    fields = dict(client_id=7, ticker="BTC-USD", side=Side.BUY, size=D("0.0100"), price=None,
                  status=OrderStatus.PENDING, order_type=OrderType.MARKET, reduce_only=False, post_only=False,
                  tag="t", created_ns=T0, venue="paper")
    made = plain_maker(OrderInfo)(**fields)
    want = OrderInfo(**fields)
    assert same(made, want)
    assert all(getattr(made, a.name) is getattr(want, a.name) for a in attrs.fields(OrderInfo))  # filled_size, exchange_order_id
    assert same(plain_maker(OrderInfo)(**fields, filled_size=D("0.005")), OrderInfo(**fields, filled_size=D("0.005")))
    with pytest.raises(TypeError):
        plain_maker(OrderInfo)(**{k: v for k, v in fields.items() if k != "status"})  # no default: must be given


def test_the_open_order_record_is_the_one_init_makes(tmp_path):
    from perpbot.core.model import OrderInfo, OrderType
    from perpbot.core.strategy import StrategyResult
    from tests.core.simple import ScriptedStrategy
    from tests.core.test_bot import events, make_bot, run

    seen = []

    class Looking(ScriptedStrategy):
        async def execute_strategy(self, md):
            seen.append(dict(md.open_orders))
            return await super().execute_strategy(md)

    limit = OrderParams("BTC-USD", Side.BUY, order_type=OrderType.LIMIT, size=D("0.01"), price=D("1000"), tag="far", reason="r")
    ScriptedStrategy.SCRIPT = [StrategyResult.place(limit)]
    bot = make_bot(tmp_path, events(4))
    bot.strategy.__class__ = Looking
    run(bot)
    infos = [i for i in bot.open_orders.values()] or [i for d in seen for i in d.values()]
    assert infos, "the resting order is recorded"
    info = infos[0]
    assert type(info) is OrderInfo
    rebuilt = OrderInfo(**{a.name: getattr(info, a.name) for a in attrs.fields(OrderInfo)})
    assert same(info, rebuilt) and info.tag == "far" and info.price == D("1000") and info.venue


def describe_as_first_written(w):
    if w.kind == "schedule":
        return "schedule"
    s, ns = divmod(w.ts_ns, 1_000_000_000)
    text = f"{w.kind} {w.ticker} at {s}.{ns:09d}"
    if w.detail:
        text += f" ({w.detail})"
    if w.delay_ns:
        text += f", held {w.delay_ns / 1e6:.3f} ms by the throttle"
    return text


@pytest.mark.parametrize("wake", [
    WakeEvent("schedule", ts_ns=T0),
    WakeEvent("trade", "BTC-USD", T0 + 7, "SELL 0.002 at 60000"),
    WakeEvent("trade", "BTC-USD", T0 + 7, "SELL 0.002 at 60000", decided_ns=T0 + 7),
    WakeEvent("bbo", "ETH-USD", T0, "bid 1 ask 2", decided_ns=T0 + 12_345_678),
    WakeEvent("score", "ETH-USD", 5, "", decided_ns=3),  # decided "before" the event: no delay
    WakeEvent("bbo", "ETH-USD", 999_999_999, "", decided_ns=1_000_000_999),
    WakeEvent("trade", "BTC-USD", 0, "x"),
])
def test_describe_reads_as_first_written(wake):
    assert wake.describe() == describe_as_first_written(wake)
