"""The enum properties and the order path read members through module constants
(``core/model/enums.py``: Python 3.11's ``EnumType.__getattr__`` makes ``Side.BUY`` a slow
read, issue 11's tick path). They must answer as the rules read when written with the
members: this checks every member against the rule written out here."""

from __future__ import annotations

import pytest

from perpbot.core.model import OrderParams, OrderStatus, OrderType, Side
from perpbot.core.model import enums as E


def test_the_constants_are_the_members():
    assert E.BUY is Side.BUY and E.SELL is Side.SELL and E.PENDING is OrderStatus.PENDING
    assert set(E.PRICED_TYPES) == {OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT}


@pytest.mark.parametrize("side", list(Side))
def test_sides(side):
    assert side.sign == {"BUY": 1, "SELL": -1}[side.value]
    assert side.opposite is Side[{"BUY": "SELL", "SELL": "BUY"}[side.value]]
    assert Side.parse(side.value.lower()) is side and Side.parse(side) is side
    assert Side.parse({"BUY": "long", "SELL": "short"}[side.value]) is side


@pytest.mark.parametrize("kind", list(OrderType))
def test_order_types(kind):
    assert kind.is_conditional == (kind.name.startswith("STOP") or kind.name.startswith("TAKE_PROFIT"))
    needs_price = kind.name.endswith("LIMIT")
    trigger = {"trigger_price": "60000"} if kind.is_conditional else {}
    if needs_price:
        with pytest.raises(ValueError, match="price: required"):
            OrderParams("BTC-USD", Side.BUY, kind, size="1", **trigger)
        OrderParams("BTC-USD", Side.BUY, kind, size="1", price="60000", **trigger)
    else:
        OrderParams("BTC-USD", Side.BUY, kind, size="1", **trigger)


@pytest.mark.parametrize("status", list(OrderStatus))
def test_statuses(status):
    assert status.is_terminal == (status.name in {"FILLED", "CANCELED", "EXPIRED", "REJECTED"})
