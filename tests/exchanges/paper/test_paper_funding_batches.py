"""Regression: a settled rate for hour H+1 arriving in the same batch that settles hour H."""

from decimal import Decimal as D

from perpbot.core.model import Bar, FundingRate, OrderRequest, OrderType, Side
from perpbot.core.state import MarketState
from perpbot.core.testing import market

HOUR = 3600 * 10**9
T0 = 1_700_000_000 * 10**9 - (1_700_000_000 * 10**9) % HOUR


class Ctx:
    def __init__(self, states, clock):
        self.clock = clock
        self.markets = {t: s.market for t, s in states.items()}
        self._states = states
        self.state_dir = None
        self.options = {"replay": True}

    def book_of(self, t):
        return self._states[t].book

    def state_of(self, t):
        return self._states.get(t)


async def test_each_hour_is_paid_with_its_own_settled_rate():
    from perpbot.core.clock import SimulatedClock
    from perpbot.exchanges.paper import PaperExchange

    clock = SimulatedClock(T0)
    st = MarketState(market("BTC-USD"))
    states = {"BTC-USD": st}
    ex = PaperExchange({}, Ctx(states, clock))  # default grace: an hour settles 60 s after the top
    got = []
    ex.set_event_sink(got.append)
    await ex.connect()

    def feed(ev):
        clock.advance_to(ev.ts_ns)
        st.apply(ev)
        ex.on_market_event(ev)

    feed(FundingRate("BTC-USD", T0, D("0.0001"), settled=True))
    feed(Bar("BTC-USD", T0 + 60 * 10**9, D(60000), D(60000), D(60000), D(60000), D(5)))
    await ex.place_order(OrderRequest(1, "BTC-USD", Side.BUY, D("0.1"), OrderType.MARKET))
    feed(Bar("BTC-USD", T0 + 120 * 10**9, D(60000), D(60000), D(60000), D(60000), D(5)))
    # hourly rates arrive alone: hour h is settled (after the grace) on the event that brings
    # hour h+1's rate, so the market state already holds the NEXT rate at that moment
    for h, rate in ((1, "0.0002"), (2, "-0.0003"), (3, "0.0004"), (4, "0.0001")):
        feed(FundingRate("BTC-USD", T0 + h * HOUR, D(rate), settled=True))
    payments = [e for e in got if type(e).__name__ == "FundingPayment"]
    assert [p.rate_1h for p in payments] == [D("0.0002"), D("-0.0003"), D("0.0004")]
    assert ex.funding_missing == set()
