"""Order validation, taker walks, makers (trades through, queue position, book crossing),
latency, conditional orders, bar fills: the paper exchange's matching behaviour."""

from __future__ import annotations

from decimal import Decimal

import pytest

from perpbot.core.model import Fill, Liquidity, OrderStatus, OrderType, Side, TimeInForce
from perpbot.exchanges.paper import PaperExchange

from paper_harness import D, Harness

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# -- registration ---------------------------------------------------------------


def test_registered_as_paper_through_the_hook():
    from perpbot.core.plugins import PluginManager

    pm = PluginManager(load_entry_points=False)
    assert pm.registry.exchanges["paper"] is PaperExchange


def test_capabilities(h):
    c = h.ex.capabilities()
    assert c.simulated and c.consumes_market_data and c.conditional_orders and c.isolated_margin
    assert c.funding_interval_h == 1 and c.reduce_only_requires_ioc


# -- validation like the chain ---------------------------------------------------


@pytest.mark.parametrize(
    "kw, needle",
    [
        (dict(size="0.00015", order_type=OrderType.MARKET), "not a multiple of the step size 0.0001"),
        (dict(size="0.00005", order_type=OrderType.MARKET), "step size"),
        (dict(size="1", order_type=OrderType.LIMIT, price=D("99.5")), "not a multiple of the tick size 1"),
        (dict(size="1", order_type=OrderType.LIMIT, price=D("99"), reduce_only=True), "reduce-only is only allowed on IOC"),
        (dict(size="1", order_type=OrderType.LIMIT, price=D("99"), post_only=True, time_in_force=TimeInForce.IOC), "post-only cannot"),
        (dict(size="1", order_type=OrderType.LIMIT), "price required"),
        (dict(size="1", order_type=OrderType.STOP_MARKET), "trigger price required"),
    ],
)
def test_invalid_orders_are_rejected_with_the_reason(h, kw, needle):
    size = kw.pop("size")
    res = h.order("buy", size, **kw)
    assert not res.success and res.status is OrderStatus.REJECTED
    assert needle in res.error
    assert h.updates()[-1].status is OrderStatus.REJECTED and needle in h.updates()[-1].reason
    assert not h.fills()


def test_unknown_market_rejected(h):
    res = h.order("buy", "1", ticker="ETH-USD", order_type=OrderType.MARKET)
    assert not res.success and "unknown market" in res.error


def test_min_size_is_one_step(make_harness):
    hh = make_harness()
    hh.book(bids=[("99", "1")], asks=[("101", "1")])
    res = hh.order("buy", "0.0001", order_type=OrderType.MARKET)
    assert res.success and res.filled_size == D("0.0001")


def test_no_data_rejects():
    hh = Harness()
    res = hh.order("buy", "1", order_type=OrderType.MARKET)
    assert not res.success and "no market data" in res.error


# -- taker: walks the book ----------------------------------------------------------


def test_market_buy_walks_levels_with_real_slippage_and_taker_fees(h):
    res = h.order("buy", "2.5", order_type=OrderType.MARKET)
    assert res.success and res.status is OrderStatus.FILLED
    fills = h.fills(res.client_id)
    assert [(f.price, f.size) for f in fills] == [(D(101), D(1)), (D(102), D("1.5"))]
    assert all(f.liquidity is Liquidity.TAKER for f in fills)
    # 5 bp taker, rounded up to 1e-6 USD
    assert [f.fee for f in fills] == [D("0.0505"), D("0.0765")]
    assert res.avg_price == (D(101) + D("1.5") * 102) / D("2.5")
    assert h.statuses(res.client_id)[-1] == "FILLED"
    pos = h.ex.portfolio.positions["BTC-USD"]
    assert pos.size == D("2.5") and pos.entry_price == res.avg_price


def test_market_order_is_bounded_by_the_worst_price_and_the_rest_canceled(make_harness):
    hh = make_harness({"max_slippage": "0.02"})
    hh.book(bids=[("99", "1")], asks=[("101", "1"), ("103", "5"), ("110", "5")])
    res = hh.order("buy", "3", order_type=OrderType.MARKET)
    # worst = 101 * 1.02 = 103.02 -> 104 (rounded up to the 1 USD tick): 110 is out of bounds
    assert res.status is OrderStatus.FILLED and res.filled_size == D(3)
    res = hh.order("buy", "10", order_type=OrderType.MARKET)
    assert res.success and res.status is OrderStatus.CANCELED
    assert res.filled_size == D(3)  # the 3 left at 103 (5 - 2 already taken); 110 is beyond 104
    assert "IOC" in res.error


def test_liquidity_is_not_taken_twice_within_one_book_state(h):
    a = h.order("buy", "1", order_type=OrderType.MARKET)
    b = h.order("buy", "1", order_type=OrderType.MARKET)
    assert h.fills(a.client_id)[0].price == D(101)
    assert h.fills(b.client_id)[0].price == D(102)  # 101 was used up by the first order
    # the level is refreshed (its size changes): it can be taken again
    h.delta(asks=[("101", "0.5")])
    c = h.order("buy", "0.5", order_type=OrderType.MARKET)
    assert h.fills(c.client_id)[0].price == D(101)


def test_market_order_with_empty_side_is_canceled():
    hh = Harness()
    hh.book(bids=[("99", "1")], asks=[])
    res = hh.order("buy", "1", order_type=OrderType.MARKET)
    assert res.success and res.status is OrderStatus.CANCELED and res.filled_size == 0
    assert "no asks" in hh.updates()[-1].reason


def test_marketable_limit_takes_then_rests(h):
    res = h.order("buy", "2", order_type=OrderType.LIMIT, price=D(101))
    assert res.status is OrderStatus.PARTIALLY_FILLED and res.filled_size == D(1)
    orders = _open(h)
    assert len(orders) == 1 and orders[0].remaining == D(1)


def test_post_only_that_would_cross_is_rejected(h):
    res = h.order("buy", "1", order_type=OrderType.LIMIT, price=D(101), post_only=True)
    assert not res.success and "would cross" in res.error
    res = h.order("buy", "1", order_type=OrderType.LIMIT, price=D(100), post_only=True)
    assert res.success and res.status is OrderStatus.OPEN


# -- makers ------------------------------------------------------------------------


def test_trade_through_fills_maker_at_its_price_up_to_the_trade_size(h):
    res = h.order("buy", "2", order_type=OrderType.LIMIT, price=D(100))
    h.trade("99", "0.5", "sell")
    f = h.fills(res.client_id)
    assert len(f) == 1 and f[0].price == D(100) and f[0].size == D("0.5") and f[0].liquidity is Liquidity.MAKER
    assert f[0].fee == D("0.005")  # 1 bp maker on 50 USD
    assert h.statuses(res.client_id)[-1] == "PARTIALLY_FILLED"
    h.trade("98", "5", "sell")
    assert h.statuses(res.client_id)[-1] == "FILLED"
    assert sum(x.size for x in h.fills(res.client_id)) == D(2)


def test_trade_at_the_price_fills_only_after_the_queue_ahead(h):
    res = h.order("buy", "1", order_type=OrderType.LIMIT, price=D(99))  # 1 BTC ahead at 99
    h.trade("99", "0.6", "sell")
    assert not h.fills(res.client_id)
    h.trade("99", "0.6", "sell")  # 0.4 left of the queue, 0.2 reaches us
    f = h.fills(res.client_id)
    assert len(f) == 1 and f[0].size == D("0.2") and f[0].price == D(99)
    h.trade("99", "1", "buy")  # a buyer aggressor never trades with a resting buy
    assert len(h.fills(res.client_id)) == 1


def test_queue_only_shrinks_when_the_level_shrinks(h):
    res = h.order("buy", "1", order_type=OrderType.LIMIT, price=D(99))
    h.delta(bids=[("99", "0.3")])  # cancels ahead of us
    h.delta(bids=[("99", "5")])  # others join behind us
    h.trade("99", "0.5", "sell")
    assert h.fills(res.client_id)[0].size == D("0.2")


def test_without_queue_position_at_price_trades_fill_at_once(make_harness):
    hh = make_harness({"queue_position": False})
    hh.book(bids=[("99", "1")], asks=[("101", "1")])
    res = hh.order("buy", "1", order_type=OrderType.LIMIT, price=D(99))
    hh.trade("99", "0.4", "sell")
    assert hh.fills(res.client_id)[0].size == D("0.4")


def test_book_moving_through_a_resting_order_fills_it(h):
    res = h.order("sell", "3", order_type=OrderType.LIMIT, price=D(100))
    h.delta(bids=[("100", "0.7"), ("101", "1")], asks=[("101", "0")])  # the bids move up through 100
    fills = h.fills(res.client_id)
    assert sum(f.size for f in fills) == D("1.7") and all(f.price == D(100) for f in fills)
    assert all(f.liquidity is Liquidity.MAKER for f in fills)
    # the same crossing liquidity is not used twice
    h.delta(asks=[("105", "1")])
    assert sum(f.size for f in h.fills(res.client_id)) == D("1.7")


def test_crossed_input_book_does_not_fill_makers(h):
    res = h.order("buy", "1", order_type=OrderType.LIMIT, price=D(100))
    h.delta(bids=[("102", "1")], asks=[("100", "1")])  # bid 102 >= ask 100: bad data
    assert not h.fills(res.client_id)


async def test_cancel_and_open_orders(h):
    res = h.order("buy", "1", order_type=OrderType.LIMIT, price=D(95), tag="grid")
    infos = await h.ex.get_open_orders("BTC-USD")
    assert [(i.client_id, i.tag, i.status) for i in infos] == [(res.client_id, "grid", OrderStatus.OPEN)]
    c = await h.ex.cancel_order(res.client_id, "BTC-USD")
    assert c.success and c.status is OrderStatus.CANCELED
    assert await h.ex.get_open_orders() == []
    c2 = await h.ex.cancel_order(res.client_id, "BTC-USD")
    assert not c2.success
    h.trade("90", "5", "sell")
    assert not h.fills(res.client_id)


async def test_cancel_all(h):
    for p in (95, 96, 97):
        h.order("buy", "1", order_type=OrderType.LIMIT, price=D(p))
    out = await h.ex.cancel_all()
    assert len(out) == 3 and all(r.success for r in out)
    assert not await h.ex.get_open_orders()


def test_good_til_expires(h):
    res = h.order("buy", "1", order_type=OrderType.LIMIT, price=D(95), good_til_s=10)
    h.trade("99", "0.1", "sell", ts=h.at(5))
    assert h.statuses(res.client_id)[-1] == "OPEN"
    h.trade("99", "0.1", "sell", ts=h.at(11))
    assert h.statuses(res.client_id)[-1] == "EXPIRED"


def test_best_bid_offer_from_the_book(h):
    assert h.ex.best_bid_offer("BTC-USD") == (D(99), D(101))


# -- reduce-only --------------------------------------------------------------------


def test_reduce_only_rejected_when_it_would_increase(h):
    res = h.order("sell", "1", order_type=OrderType.MARKET, reduce_only=True)
    assert not res.success and "reduce-only" in res.error
    h.order("buy", "1", order_type=OrderType.MARKET)
    res = h.order("buy", "1", order_type=OrderType.MARKET, reduce_only=True)
    assert not res.success and "would increase" in res.error


def test_reduce_only_is_cut_to_the_position(h):
    h.order("buy", "1", order_type=OrderType.MARKET)
    res = h.order("sell", "3", order_type=OrderType.MARKET, reduce_only=True)
    assert res.success and res.filled_size == D(1)
    assert h.ex.portfolio.positions["BTC-USD"].size == 0
    assert "cut" in " ".join(u.reason for u in h.updates(res.client_id)) or res.filled_size == 1


# -- latency ---------------------------------------------------------------------------


def test_latency_orders_reach_the_book_later(make_harness):
    hh = make_harness({"latency_ms": 250})
    hh.book(bids=[("99", "1")], asks=[("101", "1")])
    res = hh.order("buy", "1", order_type=OrderType.MARKET)
    assert res.success and res.status is OrderStatus.PENDING and not hh.fills()
    hh.delta(asks=[("101", "0"), ("105", "1")], ts=hh.at("0.1"))  # before arrival: nothing
    assert not hh.fills()
    hh.delta(asks=[("104", "1")], ts=hh.at("0.3"))  # first event after arrival: executes on this book
    f = hh.fills(res.client_id)
    assert len(f) == 1 and f[0].price == D(104) and f[0].ts_ns == hh.at("0.3")


async def test_latency_applies_to_cancels(make_harness):
    hh = make_harness({"latency_ms": 100})
    hh.book(bids=[("99", "1")], asks=[("101", "1")])
    res = hh.order("buy", "1", order_type=OrderType.LIMIT, price=D(100))
    hh.delta(bids=[("98", "1")], ts=hh.at("0.2"))
    c = await hh.ex.cancel_order(res.client_id, "BTC-USD")
    assert c.success and c.status is OrderStatus.BEST_EFFORT_CANCELED
    hh.trade("99", "0.5", "sell", ts=hh.at("0.25"))  # the cancel is still on its way: fills
    assert hh.fills(res.client_id)
    hh.trade("99", "0.5", "sell", ts=hh.at("0.5"))
    assert hh.statuses(res.client_id)[-1] == "CANCELED"


# -- conditional orders --------------------------------------------------------------


def test_stop_market_triggers_on_the_oracle_and_executes_as_market(h):
    h.oracle("100")
    h.order("buy", "1", order_type=OrderType.MARKET)
    res = h.order("sell", "1", order_type=OrderType.STOP_MARKET, trigger_price=D(95), reduce_only=True)
    assert res.status is OrderStatus.UNTRIGGERED
    h.oracle("96")
    assert not h.fills(res.client_id)
    h.oracle("95")
    f = h.fills(res.client_id)
    assert len(f) == 1 and f[0].side is Side.SELL and f[0].price == D(99)
    assert h.statuses(res.client_id)[-1] == "FILLED"


def test_take_profit_limit_triggers_then_rests(h):
    h.oracle("100")
    res = h.order("sell", "1", order_type=OrderType.TAKE_PROFIT_LIMIT, trigger_price=D(104), price=D(105))
    assert res.status is OrderStatus.UNTRIGGERED
    h.oracle("104")
    assert h.statuses(res.client_id)[-2:] == ["UNTRIGGERED", "OPEN"]
    h.trade("106", "1", "buy")
    assert h.fills(res.client_id)[0].price == D(105)


def test_stop_triggers_on_last_trade_without_oracle(h):
    res = h.order("buy", "1", order_type=OrderType.STOP_LIMIT, trigger_price=D(103), price=D(104),
                  time_in_force=TimeInForce.IOC)
    h.trade("102", "1", "buy")
    assert h.statuses(res.client_id) == ["UNTRIGGERED"]
    h.trade("103", "1", "buy")
    assert h.fills(res.client_id)  # executes against the asks up to 104


# -- bar-only data -------------------------------------------------------------------


def _bar_harness(**cfg):
    hh = Harness(cfg)
    hh.bar("100", "102", "98", "100", ts=hh.at(300))
    return hh


def test_bar_market_order_fills_at_next_open_plus_half_range():
    hh = _bar_harness()
    res = hh.order("buy", "1", order_type=OrderType.MARKET)
    assert res.success and res.status is OrderStatus.OPEN and not hh.fills()
    hh.bar("101", "105", "99", "104", ts=hh.at(600))
    f = hh.fills(res.client_id)
    assert len(f) == 1 and f[0].price == D(104) and f[0].liquidity is Liquidity.TAKER  # 101 + (105-99)/2
    assert hh.statuses(res.client_id)[-1] == "FILLED"


def test_bar_market_sell_clamped_to_low_and_rounded_against_the_trader():
    hh = _bar_harness()
    res = hh.order("sell", "1", order_type=OrderType.MARKET)
    hh.bar("99.5", "100.5", "97.5", "98", ts=hh.at(600))  # 99.5 - 1.5 = 98 -> floor to tick 1 = 98
    assert hh.fills(res.client_id)[0].price == D(98)


def test_bar_limit_fills_only_when_traded_through():
    hh = _bar_harness()
    res = hh.order("buy", "1", order_type=OrderType.LIMIT, price=D(97))
    hh.bar("100", "101", "97", "99", ts=hh.at(600))  # touches 97: no fill
    assert not hh.fills(res.client_id)
    hh.bar("99", "100", "96", "97", "0.4", ts=hh.at(900))  # trades through: fill at 97, at most the bar's volume
    f = hh.fills(res.client_id)
    assert f[0].price == D(97) and f[0].size == D("0.4") and f[0].liquidity is Liquidity.MAKER


def test_bar_market_order_beyond_worst_price_is_canceled():
    hh = _bar_harness(max_slippage="0.01")
    res = hh.order("buy", "1", order_type=OrderType.MARKET)  # worst = 100 * 1.01 = 101
    hh.bar("103", "104", "102", "103", ts=hh.at(600))
    assert not hh.fills(res.client_id) and hh.statuses(res.client_id)[-1] == "CANCELED"


def test_fast_path_ignores_events_without_work(h):
    n = len(h.events)
    for i in range(100):
        h.delta(bids=[("99", str(1 + i))])
    assert len(h.events) == n


def _open(h):
    return [o for o in h.ex._orders.values()]
