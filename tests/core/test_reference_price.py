"""``OrderRouter.reference_price``: the price ``best_bid_offer()`` then the mark give (best ask to
buy, best bid to sell), in every case."""

from __future__ import annotations

from decimal import Decimal as D
from types import SimpleNamespace

import pytest

from perpbot.core.bot.orders import OrderRouter
from perpbot.core.model import BookSnapshot, Quote, Side, Trade
from perpbot.core.testing import state_with

T0 = 1_733_000_000 * 1_000_000_000


_state = state_with


def cases():
    lvl = lambda p: ((D(p), D("1")),)  # noqa: E731
    return {
        "both sides": _state(BookSnapshot("BTC-USD", T0, bids=lvl("59999"), asks=lvl("60001"))),
        "bids only, traded": _state(BookSnapshot("BTC-USD", T0, bids=lvl("59999")),
                                    Trade("BTC-USD", T0 + 1, Side.BUY, D("60005"), D("0.1"))),
        "asks only": _state(BookSnapshot("BTC-USD", T0, asks=lvl("60001"))),
        "quote only": _state(Quote("BTC-USD", T0, D("59990"), D("2"), D("60010"), D("3"))),
        "nothing": _state(),
    }


def reference(st, side):
    """The rule as first written: best_bid_offer()'s side, else the mark."""
    bid, ask = st.best_bid_offer()
    px = ask if side is Side.BUY else bid
    return px if px is not None else st.mark_price()


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_the_reference_price_is_the_rules_in_every_case(side):
    states = cases()
    router = SimpleNamespace(bot=SimpleNamespace(states=states))
    got = {name: OrderRouter.reference_price(router, name, side) for name in states}
    assert got == {name: reference(st, side) for name, st in states.items()}
    assert got["both sides"] == (D("60001") if side is Side.BUY else D("59999"))
    assert got["quote only"] == (D("60010") if side is Side.BUY else D("59990"))
    assert OrderRouter.reference_price(router, "ETH-USD", side) is None
