"""Garbage values from the indexer, through the live feed and the loopback fake (issue 9.5):
never an event, counted in ``bad_payloads``, the book resynced from REST by the feed itself."""

from __future__ import annotations

from decimal import Decimal

import pytest

from perpbot.core.model import BookDelta, BookSnapshot, FeedStatus, OraclePrice
from perpbot.exchanges.dydx.parser import V4_MARKETS, V4_ORDERBOOK
from tests.exchanges.dydx.conftest import wait_until
from tests.exchanges.dydx.test_dydx_feed_live import TICKERS, all_live, bot_books, close_feed, fake_levels, top

D = Decimal


@pytest.mark.parametrize("contents", [
    {"bids": [["3000", "-3"]]},
    {"asks": [["3001", "NaN"]]},
    {"asks": [["3002", "Infinity"]]},
    {"bids": [["-5", "1"]]},
    {"bids": [["Infinity", "1"]]},
])
async def test_garbage_book_update_is_dropped_and_the_book_resynced(indexer, make_feed, contents):
    feed, col = await make_feed(indexer)
    try:
        await wait_until(lambda: all_live(feed), what="books live")
        n0 = len(col.events)
        indexer.publish(V4_ORDERBOOK, "ETH-USD", contents)  # raw: the fake's own book is not touched
        await wait_until(lambda: feed.parser.stats["resyncs"] >= 1 and all_live(feed), what="resync")
        after = [e for e in col.events[n0:] if e.ticker == "ETH-USD"]
        assert not any(isinstance(e, BookDelta) for e in after)  # the garbage never came out
        st = [e for e in after if isinstance(e, FeedStatus)]
        assert not st[0].healthy and "bad book data ETH-USD" in st[0].reason and st[-1].healthy
        assert feed.parser.stats["bad_payloads"] == 1 and feed.parser.stats["crossed"] == 0
        assert indexer.request_counts["/v4/orderbooks/perpetualMarket/ETH-USD"] >= 1
        books = bot_books(col.events)
        assert top(books["ETH-USD"]) == fake_levels(indexer, "ETH-USD")  # the venue's book, not garbage
        assert all(e.bids[0][0].is_finite() for e in col.events if isinstance(e, BookSnapshot) and e.bids)
    finally:
        await close_feed(col)


async def test_oracle_price_zero_is_dropped_and_counted(indexer, make_feed):
    feed, col = await make_feed(indexer)
    try:
        await wait_until(lambda: all_live(feed), what="books live")
        indexer.publish(V4_MARKETS, None, {"oraclePrices": {"BTC-USD": {"oraclePrice": "0"}}})
        await indexer.push_market("BTC-USD", oracle_price="90001")
        await wait_until(lambda: any(isinstance(e, OraclePrice) and e.price == D("90001") for e in col.events),
                         what="the next oracle price")
        assert not any(isinstance(e, OraclePrice) and e.price <= 0 for e in col.events)
        assert feed.parser.stats["bad_payloads"] == 1 and all_live(feed, TICKERS)
    finally:
        await close_feed(col)
