"""The decision path's shortcuts give what the long way gave (issue 11 item 4): ``copy_with``
(core/bot/decisions.py) equals ``attrs.evolve``; the order request built in one go
(core/bot/orders.py, ``OrderRouter.submit``) carries every field of the intent as
``OrderRequest.from_params`` does."""

from __future__ import annotations

from decimal import Decimal as D

import attrs
import pytest

from perpbot.core.records import copy_with
from perpbot.core.model import MarginMode, OrderParams, OrderRequest, OrderType, Side, TimeInForce
from perpbot.core.strategy import StrategyAction, StrategyResult
from tests.core.simple import ScriptedStrategy
from tests.core.test_bot import events, make_bot, run

FULL = OrderParams(
    "BTC-USD", Side.SELL, order_type=OrderType.STOP_LIMIT, size=D("0.0123"), price=D("59000.4"),
    trigger_price=D("59100.6"), time_in_force=TimeInForce.IOC, reduce_only=True, post_only=True, good_til_s=77,
    margin_mode=MarginMode.ISOLATED, tag="t", reason="because", venue=None, slippage=D("0.01"),
)


def test_every_field_of_the_intent_is_set_to_something_not_default():
    for a in attrs.fields(OrderParams):
        if a.name != "venue":
            assert getattr(FULL, a.name) != a.default, a.name  # else the request test below proves nothing for it


@pytest.mark.parametrize("obj, name, value", [
    (FULL, "reason", "because [woken by trade BTC-USD at 1.000000002]"),
    (OrderParams("ETH-USD", "buy"), "reason", "[woken by bbo]"),
    (StrategyResult.place(FULL, reason="r"), "orders", (FULL, FULL)),
    (StrategyResult(StrategyAction.PLACE_ORDERS, cancels=((1, "BTC-USD"),), close=("ETH-USD",), wait_s=2.5), "orders", (FULL,)),
])
def test_copy_with_equals_evolve(obj, name, value):
    got = copy_with(obj, name, value)
    want = attrs.evolve(obj, **{name: value})
    assert type(got) is type(want) and got == want and hash(got) == hash(want) and repr(got) == repr(want)
    assert got is not obj and getattr(obj, name) != value  # the original is left as it was


def test_copy_with_of_other_classes_or_fields_goes_through_evolve():
    @attrs.frozen
    class Checked(OrderParams):
        def __attrs_post_init__(self):
            super().__attrs_post_init__()
            if "forbidden" in self.reason:
                raise ValueError("reason: forbidden")

    with pytest.raises(ValueError, match="forbidden"):
        copy_with(Checked("BTC-USD", Side.BUY), "reason", "forbidden words")
    with pytest.raises(ValueError, match="size"):  # a field with a validator is validated
        copy_with(FULL, "size", D("-1"))


def test_every_intent_field_reaches_the_request(tmp_path):
    intent = attrs.evolve(FULL, order_type=OrderType.LIMIT, trigger_price=None, price=D("60000.4"), reduce_only=False)
    ScriptedStrategy.SCRIPT = [StrategyResult.place(intent)]
    bot = make_bot(tmp_path, events())
    run(bot)
    (req,) = bot.exchange.placed
    market = bot.markets["BTC-USD"]
    want = attrs.evolve(
        OrderRequest.from_params(intent, req.client_id, market.round_size(intent.size)),
        ticker="BTC-USD", price=market.round_price(intent.price, intent.side), trigger_price=None, venue=bot.config.primary_venue,
    )
    assert req == want
    assert {a.name for a in attrs.fields(OrderParams)} <= {a.name for a in attrs.fields(OrderRequest)}
