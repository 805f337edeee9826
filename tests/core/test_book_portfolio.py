from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from perpbot.core.book import OrderBook
from perpbot.core.model import Fill, FundingPayment, Liquidity, Side
from perpbot.core.portfolio import Portfolio
from perpbot.core.testing import market


def test_book_snapshot_delta_and_unknown_delete():
    b = OrderBook("BTC-USD")
    b.apply_snapshot([(D(100), D(1)), (D(99), D(2))], [(D(101), D(1)), (D(102), D(3))])
    b.apply_delta(bids=[(D(100), D(0)), (D(98), D(0))], asks=[(D(101), D("0.5"))])  # 98 unknown: ignored
    assert b.best_bid() == (D(99), D(2)) and b.best_ask() == (D(101), D("0.5"))
    assert b.levels("ask", 5) == [(D(101), D("0.5")), (D(102), D(3))]
    assert b.walk(Side.BUY, D(2)) == [(D(101), D("0.5")), (D(102), D("1.5"))]
    assert b.walk(Side.SELL, D(5), limit_price=D(99)) == [(D(99), D(2))]


def test_uncross_recency_then_size():
    b = OrderBook("ETH-USD")
    b.apply_snapshot([(D(100), D(1))], [(D(101), D(1))])
    b.apply_delta(bids=[(D(102), D(4))])  # newer bid crosses the older ask
    assert b.is_crossed()
    assert b.uncross() == 1
    assert b.best_bid() == (D(102), D(4)) and b.best_ask() is None
    b2 = OrderBook("ETH-USD")
    b2.apply_snapshot([(D(102), D(1))], [(D(101), D(3))])  # same age: larger size wins
    b2.uncross()
    assert b2.best_bid() is None and b2.best_ask() == (D(101), D(3))


def fill(side, price, size, fee="0", ts=0):
    return Fill(1, "BTC-USD", side, D(price), D(size), D(fee), Liquidity.TAKER, ts)


def test_average_entry_realized_and_flip():
    pf = Portfolio(D(10000), {"BTC-USD": market("BTC-USD")})
    pf.apply_fill(fill(Side.BUY, "60000", "0.1", "3"))
    pf.apply_fill(fill(Side.BUY, "62000", "0.1", "3.1"))
    assert pf.positions["BTC-USD"].entry_price == D(61000)
    pos = pf.apply_fill(fill(Side.SELL, "63000", "0.3", "9.45"))
    assert pf.realized_pnl == D("400.0")  # 0.2 * (63000 - 61000)
    assert pos.size == D("-0.1") and pos.entry_price == D(63000)  # flipped short at the fill price
    assert pf.fees_paid == D("15.55")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(50_000, 70_000), st.integers(1, 50), st.integers(0, 30)), min_size=1, max_size=30
    ),
    st.integers(50_000, 70_000),
    st.integers(-500, 500),
)
def test_equity_identity(trades, mark, funding_cents):
    """equity == start + realized + unrealized - fees + funding (to Decimal's 28 digits:
    an average entry price can be a non-terminating quotient)."""
    pf = Portfolio(D(10000), {"BTC-USD": market("BTC-USD")})
    for buy, px, size, fee in trades:
        pf.apply_fill(fill(Side.BUY if buy else Side.SELL, px, D(size) / 1000, D(fee) / 100))
    pf.apply_funding(FundingPayment("BTC-USD", 0, D(0), D(mark), D(0), D(funding_cents) / 100))
    marks = {"BTC-USD": D(mark)}
    expected = pf.starting_collateral + pf.realized_pnl + pf.unrealized_pnl(marks) - pf.fees_paid + pf.funding_net
    assert abs(pf.equity(marks) - expected) < D("1e-15")
