"""The collector's parts on their own: bad data of each kind rejected, counted and never stored;
the batcher by size and by time; the circuit breaker; events -> rows (dYdX deltas on a local book)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest

from perpbot.core.model import BookDelta, BookSnapshot, FundingRate, OraclePrice, Side, Trade
from perpbot.plugins.collector.batcher import Batcher
from perpbot.plugins.collector.collect import Collector
from perpbot.plugins.collector.rows import RowMaker, oi_row
from perpbot.plugins.collector.runner import CircuitBreaker
from perpbot.plugins.collector.validator import REASONS
from perpbot.plugins.storage import open_storage

D = Decimal
T = 1_765_000_000 * 10**9
NAN, INF = D("NaN"), D("Infinity")


def book(venue, ts, bids, asks, market="BTC-USD"):
    """A book item as RowMaker makes them: ``(kind, row, (bids, asks))``."""
    b0 = bids[0] if bids else (None, None)
    a0 = asks[0] if asks else (None, None)
    return ("book", (venue, market, ts, b0[0], b0[1], a0[0], a0[1], "[]", "[]"), (tuple(bids), tuple(asks)))


def trade(venue, ts, price=D("100"), size=D("1"), seq=None, market="BTC-USD"):
    return ("trade", (venue, market, ts, price, size, "buy", str(seq or ""), seq), None)


def funding(venue, ts, rate=D("0.0001"), settled=False, interval=8, nxt=None, oracle=None, market="BTC-USD"):
    return ("funding", (venue, market, ts, rate, settled, interval, nxt, oracle), None)


GOOD = [book("v", T, [(D("100"), D("1")), (D("99"), D("2"))], [(D("101"), D("1"))]),
        trade("v", T, seq=10), trade("v", T + 1, seq=11),
        funding("v", T, rate=D("-0.0002")), funding("v", T - 3600 * 10**9, settled=True, oracle=D("99.5")),
        ("oi", oi_row("v", "BTC-USD", T, "10659.509"), None), ("mark", ("v", "BTC-USD", T, D("100.5")), None)]

#: reason -> bad items of every kind that break that rule (each after GOOD was accepted)
BAD = {
    "non_finite": [book("v", T + 5, [(NAN, D("1"))], [(D("101"), D("1"))]), trade("v", T + 5, price=INF, seq=12),
                   funding("v", T + 5, rate=NAN), ("oi", oi_row("v", "BTC-USD", T + 5, "not a number"), None),
                   ("mark", ("v", "BTC-USD", T + 5, float("nan")), None), trade("v", T + 5, size=None, seq=12)],
    "non_positive": [book("v", T + 5, [(D("100"), D("0"))], [(D("101"), D("1"))]), trade("v", T + 5, price=D("-1"), seq=12),
                     funding("v", T + 5, interval=0), funding("v", T + 5, oracle=D("0")),
                     ("oi", oi_row("v", "BTC-USD", T + 5, "0"), None), ("mark", ("v", "BTC-USD", T + 5, D("-3")), None),
                     trade("v", 0, seq=12)],
    "crossed_book": [book("v", T + 5, [(D("101"), D("1"))], [(D("101"), D("1"))]),
                     book("v", T + 5, [(D("99"), D("1")), (D("100"), D("1"))], [(D("101"), D("1"))]),
                     book("v", T + 5, [(D("99"), D("1"))], [(D("102"), D("1")), (D("101"), D("1"))])],
    "non_monotonic_time": [book("v", T - 1, [(D("100"), D("1"))], [(D("101"), D("1"))]), trade("v", T, seq=12),
                           funding("v", T - 1), funding("v", T - 7200 * 10**9, settled=True),
                           ("oi", oi_row("v", "BTC-USD", T - 1, "5"), None), ("mark", ("v", "BTC-USD", T - 1, D("1")), None)],
    "duplicate": [funding("v", T - 3600 * 10**9, settled=True), trade("v", T + 5, seq=11), trade("v", T + 5, seq=3)],
    "sequence_gap": [trade("v", T + 5, seq=14)],
}


async def test_bad_data_of_each_kind_is_rejected_counted_and_never_stored(tmp_path):
    assert set(BAD) == set(REASONS)
    store = open_storage(f"duckdb:{tmp_path / 'v.duckdb'}")
    col = Collector([], [], [store], batch_rows=3, batch_age_s=0.05)
    await col.start()
    col._accept("v", GOOD)
    expected = {}
    for reason, items in BAD.items():
        for item in items:
            col._accept("v", [item])
            expected[("v", reason)] = expected.get(("v", reason), 0) + 1
    col._accept("v", [trade("v", T + 6, seq=15)])  # after the gap at 14 the stream resumes: 15 is stored
    await col.stop()
    col.close()
    assert dict(col.validator.rejected) == expected
    assert {k: n for k, n in col.validator.accepted.items()} == {("v", "book"): 1, ("v", "trade"): 3, ("v", "funding"): 2,
                                                                 ("v", "oi"): 1, ("v", "mark"): 1}
    with open_storage(f"duckdb:{tmp_path / 'v.duckdb'}") as s:
        assert s.counts() == {("v", "book"): 1, ("v", "trade"): 3, ("v", "funding"): 2, ("v", "oi"): 1, ("v", "mark"): 1}
        assert [r[0] for r in s.query("SELECT seq FROM trade ORDER BY seq")] == [10, 11, 15]
        assert s.query("SELECT count(*) FROM book WHERE bid >= ask")[0][0] == 0
    report = "\n".join(col.report())
    assert "sequence_gap 1" in report and "crossed_book 3" in report


def test_streams_are_separate_per_market_and_funding_kind():
    from perpbot.plugins.collector.validator import Validator

    v = Validator()
    assert v.check("mark", ("v", "BTC-USD", T, D("1"))) is None
    assert v.check("mark", ("v", "ETH-USD", T - 5, D("1"))) is None  # another market: its own clock
    assert v.check("mark", ("w", "BTC-USD", T - 5, D("1"))) is None  # another venue too
    assert v.check(*funding("v", T)[:2]) is None
    assert v.check(*funding("v", T - 10**12, settled=True)[:2]) is None  # settled rows: their own stream
    assert v.check("trade", trade("v", T, seq=None)[1]) is None  # no sequence: no gap check
    assert v.check("trade", trade("v", T, seq=None)[1]) is None
    assert v.summary() == {"v": {"accepted": {"funding": 2, "mark": 2, "trade": 2}, "rejected": {}},
                           "w": {"accepted": {"mark": 1}, "rejected": {}}}


def test_batcher_by_size_by_time_and_drain():
    now = [0.0]
    b = Batcher(max_rows=3, max_age_s=1.0, clock=lambda: now[0])
    assert b.add("trade", (1,)) == [] and b.add("trade", (2,)) == []
    assert b.add("trade", (3,)) == [("trade", [(1,), (2,), (3,)])]  # by size
    b.add("trade", (4,))
    now[0] = 0.5
    b.add("book", (5,))
    assert b.due() == []
    now[0] = 1.0
    assert b.due() == [("trade", [(4,)])]  # by time: the oldest trade waited 1 s, the book 0.5 s
    assert b.pending() == 1
    now[0] = 1.2
    assert b.due() == []
    assert b.drain() == [("book", [(5,)])] and b.pending() == 0
    assert (b.by_size, b.by_time, b.at_drain) == (1, 1, 1)
    with pytest.raises(ValueError):
        Batcher(max_rows=0)
    with pytest.raises(ValueError):
        Batcher(max_age_s=0)


def test_circuit_breaker_opens_after_failures_in_a_row_and_half_opens():
    now = [0.0]
    cb = CircuitBreaker(threshold=3, cooldown_s=10, clock=lambda: now[0])
    cb.failure()
    cb.failure()
    assert cb.state == "closed" and cb.wait_s() == 0
    cb.success()
    cb.failure()
    cb.failure()
    assert cb.state == "closed"  # the success reset the count
    cb.failure()
    assert cb.state == "open" and cb.wait_s() == 10
    now[0] = 10
    assert cb.state == "half-open" and cb.wait_s() == 0
    cb.failure()  # the trial failed: open again at once
    assert cb.state == "open" and cb.opens == 2
    now[0] = 20
    cb.success()
    assert cb.state == "closed" and cb.in_a_row == 0


def test_rows_from_feed_events_dydx_deltas_on_a_local_book():
    rm = RowMaker("dydx", "", depth=2)
    assert rm.rows([BookDelta("BTC-USD", T, bids=((D("1"), D("1")),))]) == []  # no snapshot yet
    assert rm.counters["orphan_deltas"] == 1
    items = rm.rows([
        BookSnapshot("BTC-USD", T, bids=((D("100"), D("1")), (D("99"), D("2")), (D("98"), D("3"))),
                     asks=((D("101"), D("1")), (D("102"), D("2")))),
        BookDelta("BTC-USD", T + 1, bids=((D("100"), D("0")), (D("99.5"), D("4"))), asks=()),
        Trade("BTC-USD", T + 2, price=D("101"), size=D("0.5"), side=Side.SELL, trade_id="0a0b"),
        FundingRate("BTC-USD", T + 3, rate_1h=D("0.00001"), settled=True, interval_h=1, oracle_price=D("100")),
        OraclePrice("BTC-USD", T + 4, price=D("100.5")),
    ])
    kinds = [k for k, _, _ in items]
    assert kinds == ["book", "book", "trade", "funding", "mark"]
    _, row, (bids, asks) = items[1]
    assert bids == ((D("99.5"), D("4")), (D("99"), D("2"))) and asks == ((D("101"), D("1")), (D("102"), D("2")))
    assert row[3:7] == (D("99.5"), D("4"), D("101"), D("1")) and row[7] == '[["99.5","4"],["99","2"]]'
    assert items[2][1] == ("dydx", "BTC-USD", T + 2, D("101"), D("0.5"), "sell", "0a0b", None)
    ccxt = RowMaker("binance", "binance:", consecutive_ids=True)
    (item,) = ccxt.rows([Trade("binance:ETH-USD", T, price=D("1"), size=D("2"), side=Side.BUY, trade_id="77")])
    assert item[1][1] == "ETH-USD" and item[1][7] == 77


async def test_a_failing_store_is_retried_until_it_takes_the_batch(tmp_path):
    class Flaky:
        def __init__(self):
            self.fail = 2
            self.rows = []

        def write(self, kind, rows):
            if self.fail:
                self.fail -= 1
                raise ConnectionError("database restarting")
            self.rows += rows
            return len(rows)

        def close(self):
            pass

    flaky = Flaky()
    col = Collector([], [], [flaky], batch_rows=2, batch_age_s=1.0, write_retry_s=0.01)
    await col.start()
    col._accept("v", [("mark", ("v", "BTC-USD", T + i, D("1")), None) for i in range(3)])
    await asyncio.sleep(0.1)
    await col.stop()
    assert len(flaky.rows) == 3 and col.write_errors == 2 and col.lost_rows == 0
    assert col.written[("v", "mark")] == 3


def test_signal_rows_combine_the_venues_and_throttle_whole_books():
    from perpbot.plugins.analysis import BUILTIN
    from perpbot.plugins.collector.signals import SignalMaker

    m = SignalMaker(BUILTIN, book_every_s=0.5)
    snap = lambda t, ts, bid: BookSnapshot(t, ts, bids=((D(bid), D("1")), (D(bid) - 1, D("2"))),  # noqa: E731
                                           asks=((D(bid) + 1, D("1")), (D(bid) + 2, D("2"))))
    for i in range(60):  # a whole book every 0.1 s: analysed at most every 0.5 s
        ts = T + i * 10**8
        m.on_events("binance", "binance:", [snap("binance:BTC-USD", ts, 100 + i),
                                            Trade("binance:BTC-USD", ts, price=D(101 + i), size=D("1"), side=Side.BUY,
                                                  trade_id=str(i))])
        m.on_events("dydx", "", [Trade("BTC-USD", ts, price=D(101 + i), size=D("2"), side=Side.BUY, trade_id=f"d{i}")])
    assert m.books_deferred > 0 and m.states["binance:BTC-USD"].book.best_bid_price() < D(159)
    m.on_events("dydx", "", [snap("BTC-USD", T, 100), snap("BTC-USD", T + 1, 200),  # the second one waits ...
                             BookDelta("BTC-USD", T + 2, asks=((D(205), D("5")),))])
    book = m.states["dydx:BTC-USD"].book  # ... until the delta, which builds on it
    assert (book.best_bid_price(), book.best_ask_price()) == (D(200), D(201))
    assert D(205) in [p for p, _ in book.levels("ask", 5)]
    (row,) = m.rows(T + 10**9)
    assert m.states["binance:BTC-USD"].book.best_bid_price() == D(159)  # the newest whole book, applied
    venue, market, ts, score, direction, agreeing, total, reasons = row
    assert (venue, market, ts) == ("all", "BTC-USD", T + 10**9) and 0 <= score <= 100 and direction in (-1, 0, 1)
    text = " ".join(json.loads(reasons))
    assert total >= 2 and "@binance" in text and "@dydx" in text  # one score from both venues' readings
