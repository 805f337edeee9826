"""The sniper's decisions on hand-made market data: ranking, top-N, cool-down, correlation
guard, TP/SL/decay exits, the ranked table, paused markets, persistence."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from perpbot.core.errors import ConfigError
from perpbot.core.model import OrderStatus, OrderType, OrderUpdate, Side, TimeInForce
from perpbot.core.params import parse_params
from perpbot.core.plugins import PluginManager
from sniper_testkit import NS, T0, decide, fill_for, long_scores, open_order, scores, short_scores

D = Decimal


def orders_of(result):
    return [] if result is None else list(result.orders)


# ---------------------------------------------------------------------------
# registration and parameters
# ---------------------------------------------------------------------------


def test_registered_through_the_plugin_hook():
    from perpbot.strategies.sniper import Sniper

    pm = PluginManager(load_entry_points=False, default_plugins=("perpbot.strategies.sniper",))
    assert pm.registry.strategies["sniper"] is Sniper
    assert pm.registry.owners[("strategies", "sniper")] == "perpbot.strategies.sniper"


def test_every_parameter_has_a_default_and_help():
    from perpbot.strategies.sniper import Sniper

    described = Sniper.describe_parameters()
    assert Sniper.get_required_parameters() == []
    assert {p["name"] for p in described} >= {
        "weight_momentum", "weight_volume", "weight_volatility", "weight_orderbook", "weight_funding",
        "entry_threshold", "exit_threshold", "take_profit", "stop_loss", "max_positions", "cooldown_s",
        "allow_short", "correlation_threshold", "min_hold_s", "order_type", "warmup_s",
    }
    assert all(p["help"] for p in described)


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"exit_threshold": "70"}, "exit_threshold"),
        ({"entry_threshold": "101"}, "entry_threshold"),
        ({"take_profit": "-0.01"}, "take_profit"),
        ({"max_positions": "0"}, "max_positions"),
        ({"order_type": "STOP_MARKET"}, "order_type"),
        ({"correlation_threshold": "1.5"}, "correlation_threshold"),
        ({"weight_momentum": "0", "weight_volume": "0", "weight_volatility": "0", "weight_orderbook": "0",
          "weight_funding": "0"}, "weight"),
        ({"take_profit": 0.01}, "take_profit"),  # a float for a Decimal parameter
    ],
)
def test_bad_parameters_fail_with_the_field_named(raw, field):
    from perpbot.strategies.sniper import SniperParams

    with pytest.raises(ConfigError, match=field):
        parse_params(SniperParams, raw, "strategy sniper")


# ---------------------------------------------------------------------------
# composite
# ---------------------------------------------------------------------------


def test_composite_is_direction_aware(make_sniper):
    s = make_sniper()
    sc = scores(momentum=80, volume=60, volatility=70, orderbook=30, funding=40)
    long = 0.40 * 80 + 0.15 * 60 + 0.10 * 70 + 0.25 * 30 + 0.10 * 40
    short = 0.40 * 20 + 0.15 * 60 + 0.10 * 70 + 0.25 * 70 + 0.10 * 60
    assert s.composite(sc, Side.BUY) == pytest.approx(long)
    assert s.composite(sc, Side.SELL) == pytest.approx(short)
    assert s.best_side(sc) == (Side.BUY, pytest.approx(long))
    assert s.best_side(scores(momentum=10, orderbook=20))[0] is Side.SELL
    assert make_sniper(allow_short="false").best_side(scores(momentum=10, orderbook=20))[0] is Side.BUY


def test_weights_are_normalised(make_sniper):
    s = make_sniper(weight_momentum="4", weight_volume="0", weight_volatility="0", weight_orderbook="0", weight_funding="0")
    assert s.composite(scores(momentum=73), Side.BUY) == pytest.approx(73)


# ---------------------------------------------------------------------------
# entries
# ---------------------------------------------------------------------------


def test_picks_the_best_market_above_the_threshold(scene, make_sniper):
    scene.add("BTC-USD", "60000", long_scores(68))
    scene.add("ETH-USD", "3000", long_scores(74))
    scene.add("SOL-USD", "150", long_scores(60))
    s = make_sniper(max_positions="1")
    result = decide(s, scene.market_data())
    (order,) = orders_of(result)
    assert order.ticker == "ETH-USD" and order.side is Side.BUY
    assert order.size is None  # the sizer decides
    assert order.order_type is OrderType.MARKET and not order.reduce_only
    assert order.reason.startswith("long composite 74.0 >= 65 (mom ")
    assert "book" in order.reason and "fund" in order.reason
    # the conviction is published for score-aware sizers
    assert scene.states["ETH-USD"].scores.composite == pytest.approx(74.0)


def test_nothing_below_the_threshold(scene, make_sniper):
    scene.add("BTC-USD", "60000", long_scores(64.9))
    scene.add("ETH-USD", "3000", short_scores(64.0))
    assert orders_of(decide(make_sniper(), scene.market_data())) == []


def test_short_entry_when_the_short_composite_is_best(scene, make_sniper):
    scene.add("BTC-USD", "60000", short_scores(72))
    (order,) = orders_of(decide(make_sniper(), scene.market_data()))
    assert order.side is Side.SELL
    assert order.reason.startswith("short composite 72.0 >= 65")
    # long-only: the same market is not shorted
    assert orders_of(decide(make_sniper(allow_short="false"), scene.market_data())) == []


def test_respects_max_positions(scene, make_sniper):
    for t, lvl in (("BTC-USD", 70), ("ETH-USD", 75), ("SOL-USD", 72), ("DOGE-USD", 71)):
        scene.add(t, "100", long_scores(lvl))
    # uncorrelated markets (no bars): only the limit stops entries
    result = decide(make_sniper(max_positions="2"), scene.market_data())
    assert [o.ticker for o in orders_of(result)] == ["ETH-USD", "SOL-USD"]
    # one position held: one more slot
    scene.hold("BTC-USD", "0.01", "100")
    result = decide(make_sniper(max_positions="2"), scene.market_data())
    assert [o.ticker for o in orders_of(result)] == ["ETH-USD"]


def test_an_entry_in_flight_is_not_repeated_and_counts_against_max_positions(scene, make_sniper):
    scene.add("BTC-USD", "60000", long_scores(70))
    scene.add("ETH-USD", "3000", long_scores(69))
    s = make_sniper(max_positions="1", order_timeout_s="10")
    assert [o.ticker for o in orders_of(decide(s, scene.market_data(T0)))] == ["BTC-USD"]
    # no fill yet one second later: nothing new (BTC in flight, ETH blocked by the limit)
    assert orders_of(decide(s, scene.market_data(T0 + NS))) == []
    # after the timeout the in-flight entry no longer blocks
    assert [o.ticker for o in orders_of(decide(s, scene.market_data(T0 + 11 * NS)))] == ["BTC-USD"]


def test_a_rejected_entry_frees_its_market(scene, make_sniper):
    scene.add("BTC-USD", "60000", long_scores(70))
    s = make_sniper()
    assert orders_of(decide(s, scene.market_data(T0)))
    s.on_order_update(OrderUpdate(7, "BTC-USD", OrderStatus.REJECTED, T0, reason="margin", tag="sniper-entry"))
    assert orders_of(decide(s, scene.market_data(T0 + NS)))


def test_an_open_order_of_ours_blocks_a_new_entry(scene, make_sniper):
    scene.add("BTC-USD", "60000", long_scores(70))
    scene.open_orders[5] = open_order(5, "BTC-USD", Side.BUY)
    assert orders_of(decide(make_sniper(), scene.market_data())) == []


def test_cooldown_after_an_exit(scene, make_sniper):
    scene.add("BTC-USD", "60000", long_scores(70))
    s = make_sniper(cooldown_s="60", take_profit="0.003")
    (entry,) = orders_of(decide(s, scene.market_data(T0)))
    s.on_fill(fill_for(entry, "60000", T0, size="0.01"))
    scene.hold("BTC-USD", "0.01", "60000")
    scene.marks["BTC-USD"] = D("60200")  # +0.33 %: take profit
    (exit_order,) = orders_of(decide(s, scene.market_data(T0 + 5 * NS)))
    assert exit_order.reduce_only
    s.on_fill(fill_for(exit_order, "60200", T0 + 5 * NS))
    scene.flat("BTC-USD")
    # still the best market, but cooling down for 60 s after the exit
    result = decide(s, scene.market_data(T0 + 30 * NS))
    assert orders_of(result) == []
    result = decide(s, scene.market_data(T0 + 66 * NS))
    assert [o.ticker for o in orders_of(result)] == ["BTC-USD"]


def test_warmup_and_cold_scores_block_entries(scene, make_sniper):
    scene.add("BTC-USD", "60000", long_scores(70))
    s = make_sniper(warmup_s="60")
    assert orders_of(decide(s, scene.market_data(T0))) == []
    assert orders_of(decide(s, scene.market_data(T0 + 30 * NS))) == []
    assert orders_of(decide(s, scene.market_data(T0 + 61 * NS)))
    cold = long_scores(70)
    cold.warm = False
    scene.add("ETH-USD", "3000", cold)
    assert all(o.ticker != "ETH-USD" for o in orders_of(decide(make_sniper(), scene.market_data())))


def test_limit_entries_rest_at_the_touch(scene, make_sniper):
    scene.add("BTC-USD", "60000", long_scores(70))
    scene.add("ETH-USD", "3000", short_scores(70))
    result = decide(make_sniper(order_type="LIMIT", limit_good_til_s="20"), scene.market_data())
    by = {o.ticker: o for o in orders_of(result)}
    assert by["BTC-USD"].order_type is OrderType.LIMIT and by["BTC-USD"].price == D("59999")  # best bid
    assert by["ETH-USD"].price == D("3000.1")  # best ask for a sell
    assert by["BTC-USD"].time_in_force is TimeInForce.GTT and by["BTC-USD"].good_til_s == 20


# ---------------------------------------------------------------------------
# correlation guard
# ---------------------------------------------------------------------------

RETURNS = [0.001, -0.002, 0.0015, 0.003, -0.001, -0.0025, 0.002, 0.0005, -0.0015, 0.001]


def test_correlated_same_direction_positions_are_not_stacked(scene, make_sniper):
    scene.add("BTC-USD", "60000", long_scores(70))
    scene.add("ETH-USD", "3000", long_scores(72))
    scene.set_bars("BTC-USD", RETURNS)
    scene.set_bars("ETH-USD", [r * 1.3 + 0.0001 for r in RETURNS])  # rho ~ 1
    result = decide(make_sniper(max_positions="2"), scene.market_data())
    assert [o.ticker for o in orders_of(result)] == ["ETH-USD"]
    # with a held ETH long, BTC long is still blocked on the next cycle
    scene.hold("ETH-USD", "0.3", "3000")
    s = make_sniper(max_positions="2")
    assert orders_of(decide(s, scene.market_data())) == []


def test_the_guard_allows_uncorrelated_markets_and_opposite_directions(scene, make_sniper):
    scene.add("BTC-USD", "60000", long_scores(70))
    scene.add("ETH-USD", "3000", long_scores(72))
    scene.set_bars("BTC-USD", RETURNS)
    scene.set_bars("ETH-USD", [RETURNS[(i * 3) % 10] * (-1) ** i for i in range(10)])  # unrelated path
    result = decide(make_sniper(max_positions="2"), scene.market_data())
    assert sorted(o.ticker for o in orders_of(result)) == ["BTC-USD", "ETH-USD"]
    # perfectly correlated, but one long and one short: hedged, allowed
    scene.states["BTC-USD"].scores = short_scores(70)
    scene.set_bars("ETH-USD", RETURNS)
    result = decide(make_sniper(max_positions="2"), scene.market_data())
    assert sorted((o.ticker, o.side) for o in orders_of(result)) == [("BTC-USD", Side.SELL), ("ETH-USD", Side.BUY)]


def test_the_blocked_market_says_why_in_the_table(scene, make_sniper, log_lines):
    scene.add("BTC-USD", "60000", long_scores(70))
    scene.add("ETH-USD", "3000", long_scores(72))
    scene.set_bars("BTC-USD", RETURNS)
    scene.set_bars("ETH-USD", RETURNS)
    decide(make_sniper(), scene.market_data())
    table = next(msg for lvl, msg in log_lines if msg.startswith("sniper ranking"))
    btc_line = next(line for line in table.splitlines() if "BTC-USD" in line)
    assert "correlated with ETH-USD long (rho 1.00 > 0.8 over 10 bars)" in btc_line


# ---------------------------------------------------------------------------
# exits
# ---------------------------------------------------------------------------


def _held(scene, make_sniper, sc, size="0.01", entry="60000", mark="60000", **params):
    scene.add("BTC-USD", mark, sc)
    scene.hold("BTC-USD", size, entry)
    return make_sniper(**params)


def test_take_profit_exit_is_a_reduce_only_ioc_market_order_for_the_whole_position(scene, make_sniper):
    s = _held(scene, make_sniper, long_scores(70), size="0.0123", mark="60200", take_profit="0.003")
    (o,) = orders_of(decide(s, scene.market_data()))
    assert o.side is Side.SELL and o.size == D("0.0123")
    assert o.reduce_only and o.time_in_force is TimeInForce.IOC and o.order_type is OrderType.MARKET
    assert o.tag == "sniper-exit:take-profit"
    assert o.reason == "take-profit: long mark 60200 vs entry 60000 = +0.333% >= +0.300%"


def test_stop_loss_on_a_short(scene, make_sniper):
    s = _held(scene, make_sniper, short_scores(70), size="-0.5", mark="60150", stop_loss="0.002")
    (o,) = orders_of(decide(s, scene.market_data()))
    assert o.side is Side.BUY and o.size == D("0.5") and o.reduce_only and o.time_in_force is TimeInForce.IOC
    assert o.reason == "stop-loss: short mark 60150 vs entry 60000 = -0.250% <= -0.200%"


def test_score_decay_exit_after_min_hold(scene, make_sniper):
    s = _held(scene, make_sniper, long_scores(70), min_hold_s="15")
    # the sniper opened it: it knows when
    s.on_fill(fill_for(_entry_like("BTC-USD", Side.BUY), "60000", T0, size="0.01"))
    scene.states["BTC-USD"].scores = long_scores(45)
    assert orders_of(decide(s, scene.market_data(T0 + 10 * NS))) == []  # held 10 s < 15 s
    (o,) = orders_of(decide(s, scene.market_data(T0 + 16 * NS)))
    assert o.reduce_only and o.side is Side.SELL and o.tag == "sniper-exit:score decay"
    assert o.reason.startswith("score decay: long composite 45.0 < exit 50 (mom ")


def test_score_decay_is_judged_for_the_held_direction(scene, make_sniper):
    # a short whose SHORT composite is still strong is kept, though the long composite is weak
    s = _held(scene, make_sniper, short_scores(68), size="-0.01", min_hold_s="0")
    assert orders_of(decide(s, scene.market_data())) == []
    scene.states["BTC-USD"].scores = long_scores(60)  # momentum turned up: the short decays
    (o,) = orders_of(decide(s, scene.market_data()))
    assert o.side is Side.BUY and o.tag == "sniper-exit:score decay"


def test_exit_priority_take_profit_before_stop_loss_before_decay(scene, make_sniper):
    s = _held(scene, make_sniper, long_scores(30), mark="60300", min_hold_s="0")  # TP and decay both true
    (o,) = orders_of(decide(s, scene.market_data()))
    assert o.tag == "sniper-exit:take-profit"
    s = _held(scene, make_sniper, long_scores(30), mark="59800", min_hold_s="0")  # SL and decay both true
    (o,) = orders_of(decide(s, scene.market_data()))
    assert o.tag == "sniper-exit:stop-loss"


def test_an_exit_in_flight_is_not_sent_twice(scene, make_sniper):
    s = _held(scene, make_sniper, long_scores(70), mark="60200")
    assert len(orders_of(decide(s, scene.market_data(T0)))) == 1
    assert orders_of(decide(s, scene.market_data(T0 + NS))) == []


def test_exits_come_before_entries_and_free_no_slot_until_filled(scene, make_sniper):
    s = _held(scene, make_sniper, long_scores(70), mark="60200", max_positions="1")
    scene.add("ETH-USD", "3000", long_scores(80))
    result = decide(s, scene.market_data())
    assert [(o.ticker, o.reduce_only) for o in orders_of(result)] == [("BTC-USD", True)]


def _entry_like(ticker, side):
    from perpbot.core.model import OrderParams

    return OrderParams(ticker, side, tag="sniper-entry")


# ---------------------------------------------------------------------------
# paused markets and the ranked table
# ---------------------------------------------------------------------------


def test_paused_markets_are_never_traded(scene, make_sniper, log_lines):
    scene.add("BTC-USD", "60000", long_scores(80))
    scene.add("ETH-USD", "3000", long_scores(80))
    scene.hold("ETH-USD", "1", "2900")  # far beyond take-profit
    scene.paused.update({"BTC-USD": "crossed book (bid 60001 >= ask 60000)", "ETH-USD": "stale data: last event 40.0s ago"})
    s = make_sniper()
    md = scene.market_data()
    assert decide(s, md) is None  # nothing tradable: should_execute says no
    scene.add("SOL-USD", "150", long_scores(50))
    result = decide(s, scene.market_data())
    assert orders_of(result) == []
    table = next(msg for lvl, msg in log_lines if msg.startswith("sniper ranking"))
    assert "paused: crossed book (bid 60001 >= ask 60000)" in table
    assert "paused: stale data: last event 40.0s ago" in table


def test_ranked_table_is_logged_at_info_when_acting_and_debug_otherwise(scene, make_sniper, log_lines):
    scene.add("BTC-USD", "60000", long_scores(68))
    scene.add("ETH-USD", "3000", short_scores(74))
    scene.add("SOL-USD", "150", long_scores(55))
    scene.paused["DOGE-USD"] = "no book snapshot yet"
    scene.add("DOGE-USD", "0.1", None)
    s = make_sniper(max_positions="1")
    decide(s, scene.market_data())
    tables = [(lvl, msg) for lvl, msg in log_lines if msg.startswith("sniper ranking")]
    assert len(tables) == 1 and tables[0][0] == "INFO"
    lines = tables[0][1].splitlines()
    assert "3 tradable, 1 paused, positions 0/1" in lines[0]
    assert lines[1].split()[:4] == ["rank", "ticker", "side", "comp"]
    body = lines[2:]
    assert [line.split()[1] for line in body] == ["ETH-USD", "BTC-USD", "SOL-USD", "DOGE-USD"]
    assert body[0].split()[:4] == ["1", "ETH-USD", "short", "74.0"]
    assert "ENTER short composite 74.0 >= 65" in body[0]
    assert "max positions (1/1)" in body[1]
    assert "below entry 65 (long 55.0)" in body[2]
    assert body[3].split()[0] == "-" and "paused: no book snapshot yet" in body[3]
    # each row shows the five scores and the position
    assert "flat" in body[0]

    log_lines.clear()
    decide(make_sniper(entry_threshold="90"), scene.market_data())
    tables = [(lvl, msg) for lvl, msg in log_lines if msg.startswith("sniper ranking")]
    assert [lvl for lvl, _ in tables] == ["DEBUG"]


def test_the_table_shows_positions_and_holds(scene, make_sniper, log_lines):
    s = _held(scene, make_sniper, long_scores(60), size="0.01", entry="60000", mark="60010")
    assert orders_of(decide(s, scene.market_data())) == []
    table = next(msg for lvl, msg in log_lines if msg.startswith("sniper ranking"))
    row = next(line for line in table.splitlines() if "BTC-USD" in line)
    assert "+0.01 @ 60000" in row and "hold long: composite 60.0 >= exit 50" in row


# ---------------------------------------------------------------------------
# fills, summary, persistence
# ---------------------------------------------------------------------------


def _round_trip(s, scene, ticker, side, entry_px, exit_px, t0, reason_mark):
    scene.states[ticker].scores = long_scores(70) if side is Side.BUY else short_scores(70)
    (entry,) = [o for o in orders_of(decide(s, scene.market_data(t0))) if o.ticker == ticker]
    s.on_fill(fill_for(entry, entry_px, t0, size="0.01"))
    scene.hold(ticker, "0.01" if side is Side.BUY else "-0.01", entry_px)
    scene.marks[ticker] = D(reason_mark)
    (ex,) = [o for o in orders_of(decide(s, scene.market_data(t0 + NS))) if o.ticker == ticker]
    s.on_fill(fill_for(ex, exit_px, t0 + NS))
    scene.flat(ticker)
    return ex


def test_fills_feed_the_summary(scene, make_sniper):
    scene.add("BTC-USD", "60000", long_scores(70))
    s = make_sniper(cooldown_s="0")
    _round_trip(s, scene, "BTC-USD", Side.BUY, "60000", "60200", T0, "60200")  # TP, +2 USD
    _round_trip(s, scene, "BTC-USD", Side.SELL, "60000", "60150", T0 + 10 * NS, "60150")  # SL, -1.5 USD
    lines = s.summary_lines()
    assert lines[0].startswith("sniper: 2 entries, 2 exits (by reason: stop-loss 1, take-profit 1), 0 open")
    assert "BTC-USD: 2 entries, 2 exits (1 won, 1 lost after fees), gross PnL +0.50 USD" in lines[1]


def test_exits_by_others_are_counted_as_outside(scene, make_sniper):
    from perpbot.core.model import OrderParams

    scene.add("BTC-USD", "60000", long_scores(70))
    s = make_sniper()
    (entry,) = orders_of(decide(s, scene.market_data()))
    s.on_fill(fill_for(entry, "60000", T0, size="0.01"))
    close = OrderParams("BTC-USD", Side.SELL, size=D("0.01"), reduce_only=True, tag="close")
    s.on_fill(fill_for(close, "59000", T0 + NS))
    assert "outside (close) 1" in s.summary_lines()[0]


def test_restore_state_round_trip(scene, make_sniper):
    scene.add("BTC-USD", "60000", long_scores(70))
    scene.add("ETH-USD", "3000", long_scores(60))
    s = make_sniper(cooldown_s="120")
    _round_trip(s, scene, "BTC-USD", Side.BUY, "60000", "60200", T0, "60200")
    scene.states["ETH-USD"].scores = long_scores(66)
    orders = orders_of(decide(s, scene.market_data(T0 + 2 * NS)))
    (eth,) = [o for o in orders if o.ticker == "ETH-USD"]
    s.on_fill(fill_for(eth, "3000", T0 + 2 * NS, size="0.5"))
    scene.hold("ETH-USD", "0.5", "3000")

    saved = json.loads(json.dumps(s.get_state()))  # JSON-serialisable, as the journal stores it
    restored = make_sniper(cooldown_s="120")
    restored.restore_state(saved)
    assert restored.get_state() == saved
    assert restored.summary_lines() == s.summary_lines()
    # the cool-down survives the restart: BTC is not re-entered 30 s after its exit
    scene.states["ETH-USD"].scores = long_scores(66)
    result = decide(restored, scene.market_data(T0 + 30 * NS))
    assert all(o.ticker != "BTC-USD" for o in orders_of(result))
    # and the entry time survives: min-hold is measured from the original fill
    assert restored.entries["ETH-USD"].ts_ns == T0 + 2 * NS
