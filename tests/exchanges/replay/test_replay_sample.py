"""The embedded real Binance USD-M BTCUSDT+ETHUSDT sample, replayed once (see conftest.sample_run)."""

from decimal import Decimal

from perpbot.core.model import FeedStatus, Side


def test_counts_match_the_benchmark_definition(sample_run):
    # architecture.md "Benchmarks": 1,027,653 events = 872,183 level entries (154,021 deletes)
    # in 13,137 depth messages + 35,389 trades + 120,081 quotes. The parser counts every depth
    # message of the files, including the 9 received before the REST snapshot that are older than
    # it and dropped by Binance's sync rule (510 level entries), so its counters equal the
    # benchmark's; the BookDelta events it emits carry the rest.
    st = sample_run.stats
    assert st["depth_messages"] == 13_137
    assert st["level_entries"] == 872_183
    assert st["deletes"] == 154_021
    assert st["trades"] == 35_389
    assert st["quotes"] == 120_081
    assert st["events"] == 1_027_653
    assert st["snapshots"] == 2
    assert st["gaps"] == 0
    assert st["dropped_messages"] == 9
    assert sample_run.levels_emitted == 872_183 - st["dropped_level_entries"]
    assert st["messages"] == 93_954 + 74_655  # every line of both files is one message


def test_event_counts_per_market(sample_run):
    c = sample_run.counts
    assert c[("Trade", "BTC-USD")] == 21_313 and c[("Trade", "ETH-USD")] == 14_076
    assert c[("Quote", "BTC-USD")] == 66_089 and c[("Quote", "ETH-USD")] == 53_992
    assert c[("BookSnapshot", "BTC-USD")] == 1 and c[("BookSnapshot", "ETH-USD")] == 1


def test_rebuilt_book_equals_the_venues_own_best_bid_offer(sample_run):
    # After every applied depth message (book at update id u), the rebuilt book's best bid and ask,
    # prices AND sizes, must equal the venue's latest bookTicker whose update id is <= u: bookTicker
    # pushes every change of the top of book, so that quote is the top at u. Quotes with a later
    # id than the book are not comparable (depth messages aggregate many updates) and are not used.
    checks = sample_run.book_checks
    assert checks["equal"] >= 13_000, checks
    assert checks["different"] == 0, sample_run.mismatches


def test_books_end_sane(sample_run):
    for ticker in ("BTC-USD", "ETH-USD"):
        book = sample_run.books[ticker]
        assert not book.is_crossed()
        assert len(book.bids) > 500 and len(book.asks) > 500
    assert Decimal("50000") < sample_run.books["BTC-USD"].mid() < Decimal("70000")
    assert Decimal("2000") < sample_run.books["ETH-USD"].mid() < Decimal("3500")


def test_merged_stream_is_time_ordered_and_interleaved(sample_run):
    assert sample_run.order_violations == 0
    # the two markets alternate many times: a real merge, not one file after the other
    assert sample_run.switches > 10_000


def test_status_until_the_snapshot_then_healthy(sample_run):
    for ticker in ("BTC-USD", "ETH-USD"):
        first = sample_run.first_events[ticker][0]
        assert type(first) is FeedStatus and not first.healthy
        assert first.reason == "waiting for book snapshot"
        batch = sample_run.snapshot_batches[ticker]
        assert batch[0] == "BookSnapshot" and batch[-1] == "FeedStatus"
        # buffered diffs that straddle the snapshot's lastUpdateId are applied in the same batch
        assert "BookDelta" in batch


def test_taker_sides_of_real_trades(sample_run):
    sides = sample_run.trade_sides
    assert sides[Side.BUY] > 1000 and sides[Side.SELL] > 1000
    assert sides[Side.BUY] + sides[Side.SELL] == 35_389


def test_progress_reports_market_time(sample_run):
    # first to last receive time of the two recordings (MANIFEST-market.csv: 23:54:15.030 .. 23:59:59.881)
    done, total = sample_run.feed.progress()
    assert done == total == 1_723_161_599_881_488_984 - 1_723_161_255_030_314_667
