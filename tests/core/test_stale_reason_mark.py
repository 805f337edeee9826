"""``MarketState.stale_reason(now, mark)`` (issue 11.4): the decision cycle's snapshot hands it the
mark it has just read; the answer is the one ``stale_reason(now)`` gives, for every case."""

from __future__ import annotations

from decimal import Decimal as D

from perpbot.core.model import BookSnapshot
from perpbot.core.state import MarketState
from perpbot.core.testing import book_events, market

T0 = 1_733_000_000 * 1_000_000_000


def states():
    """Markets in each stale_reason case: no book, one-sided book (no price), usable, crossed."""
    empty = MarketState(market("BTC-USD"))
    one_sided = MarketState(market("BTC-USD"))
    one_sided.apply(BookSnapshot("BTC-USD", T0, bids=((D("60000"), D("1")),)))
    usable = MarketState(market("BTC-USD"))
    for ev in book_events("BTC-USD", T0, D("60000")):
        usable.apply(ev)
    crossed = MarketState(market("BTC-USD"))
    crossed.apply(BookSnapshot("BTC-USD", T0, bids=((D("60001"), D("1")),), asks=((D("60000"), D("1")),)))
    return {"empty": empty, "one_sided": one_sided, "usable": usable, "crossed": crossed}


def test_a_given_mark_gives_the_same_reason_as_reading_it():
    seen = {}
    for name, st in states().items():
        now = T0 + 1
        seen[name] = st.stale_reason(now)
        assert st.stale_reason(now, st.mark_price()) == seen[name], name
    assert seen["one_sided"] == "no price yet" and seen["usable"] is None
    assert seen["empty"] == "no book snapshot yet" and seen["crossed"].startswith("crossed book")


def test_the_given_mark_is_the_one_used():
    usable = states()["usable"]
    assert usable.stale_reason(T0 + 1, None) == "no price yet"  # the caller read no mark
    one_sided = states()["one_sided"]
    assert one_sided.stale_reason(T0 + 1, D("60000")) is None
