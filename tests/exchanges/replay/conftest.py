"""One pass over the embedded real Binance sample, shared by the replay tests (parsed once per session)."""

from __future__ import annotations

import bisect
import collections
from decimal import Decimal
from types import SimpleNamespace

import orjson
import pytest

from perpbot.core.book import OrderBook
from perpbot.core.model import BookDelta, BookSnapshot, Trade
from perpbot.exchanges.replay.feed import ReplayFeed
from perpbot.exchanges.replay.lineio import LineFile
from perpbot.exchanges.replay.samples import binance_l2_files


def venue_bbo_by_update_id(path):
    """The venue's own bookTicker quotes of a raw recording, sorted by update id ``u``.

    Parsed here independently of the feed (orjson + Decimal), as the oracle for the rebuilt book.
    """
    quotes = []
    for chunk in LineFile(path).chunks():
        for line in chunk:
            if b'"bookTicker"' not in line:
                continue
            d = orjson.loads(line[line.find(b" ") + 1 :])["data"]
            quotes.append((d["u"], (Decimal(d["b"]), Decimal(d["B"])), (Decimal(d["a"]), Decimal(d["A"]))))
    quotes.sort(key=lambda q: q[0])
    return quotes


@pytest.fixture(scope="session")
def sample_run():
    """Replay the whole embedded sample once through ReplayFeed; collect what the tests check."""
    files = binance_l2_files()
    feed = ReplayFeed({}, SimpleNamespace(tickers=()))
    oracle = {}
    for path in files:
        q = venue_bbo_by_update_id(path)
        oracle[path.name] = ([x[0] for x in q], q)

    books: dict[str, OrderBook] = {}
    where: dict[str, tuple] = {}  # ticker -> (source, symbol, oracle)
    book_checks = collections.Counter()
    mismatches = []
    counts = collections.Counter()
    first_events: dict[str, list] = collections.defaultdict(list)
    order_violations = 0
    prev_ts = 0
    switches = 0
    prev_ticker = None
    trade_sides = collections.Counter()
    snapshot_batches = {}
    n_batches = 0
    levels_emitted = 0
    for ts, batch in feed.iter_batches():
        n_batches += 1
        if ts < prev_ts:
            order_violations += 1
        prev_ts = ts
        has_delta = None
        for ev in batch:
            t = type(ev)
            counts[(t.__name__, ev.ticker)] += 1
            if ev.ts_ns != ts:
                order_violations += 1
            if len(first_events[ev.ticker]) < 3:
                first_events[ev.ticker].append(ev)
            if ev.ticker != prev_ticker:
                switches += 1
                prev_ticker = ev.ticker
            if t is BookSnapshot:
                books[ev.ticker] = OrderBook(ev.ticker)
                books[ev.ticker].apply_snapshot(ev.bids, ev.asks, ev.ts_ns)
                snapshot_batches[ev.ticker] = [type(e).__name__ for e in batch]
            elif t is BookDelta:
                books[ev.ticker].apply_delta(ev.bids, ev.asks, ev.ts_ns)
                levels_emitted += len(ev.bids) + len(ev.asks)
                has_delta = ev.ticker
            elif t is Trade:
                trade_sides[ev.side] += 1
        if has_delta is None:
            continue
        ticker = has_delta
        if ticker not in where:
            for src in feed.sources:
                for sym, m in src.markets.items():
                    if getattr(m, "ticker", None) == ticker:
                        where[ticker] = (src, sym, oracle[src.path.name])
        src, sym, (ids, quotes) = where[ticker]
        u = src.book_update_id(sym)
        if u is None:
            continue
        j = bisect.bisect_right(ids, u) - 1
        if j < 0:
            book_checks["no quote yet"] += 1
            continue
        _, bid, ask = quotes[j]
        book = books[ticker]
        got = (book.best_bid(), book.best_ask())
        if got == (bid, ask):
            book_checks["equal"] += 1
        else:
            book_checks["different"] += 1
            if len(mismatches) < 5:
                mismatches.append((ticker, u, got, (bid, ask)))
    return SimpleNamespace(
        feed=feed,
        stats=feed.stats(),
        counts=counts,
        first_events=first_events,
        order_violations=order_violations,
        switches=switches,
        trade_sides=trade_sides,
        book_checks=book_checks,
        mismatches=mismatches,
        books=books,
        snapshot_batches=snapshot_batches,
        n_batches=n_batches,
        levels_emitted=levels_emitted,
    )

