"""The L2 book on its integer bucket ladder (core/book_side.py) behaves like a sorted mapping.

Every operation is checked against a reference model: a plain dict per side whose order is
``sorted()``. Hypothesis drives random snapshots, deltas (sets, deletes, deletes of absent
levels), simulated fills (``consume``), trims and uncrosses over prices on several decimal
grids, including bursts that overflow one bucket (recalibration) and prices far outside
the calibrated range.
"""

from decimal import Decimal as D
from itertools import islice

from hypothesis import given, settings
from hypothesis import strategies as st

from perpbot.core.book import OrderBook
from perpbot.core.book_side import BUCKET_MAX, RECENT_DELTAS, STALE_SLACK
from perpbot.core.model import Levels, Side

PRICES = st.one_of(
    st.integers(1, 4000).map(lambda i: D(i).scaleb(-1) + D(60000)),  # BTC-like 0.1 grid
    st.integers(1, 400).map(lambda i: D(i).scaleb(-2)),  # small prices, 0.01 grid
    st.integers(1, 50).map(lambda i: D(i * 1000)),  # far levels on a coarse grid
    st.sampled_from([D("61800.20"), D("61800.2"), D("0.00001234"), D("123456789")]),
)
SIZES = st.one_of(st.just(D(0)), st.integers(1, 5000).map(lambda i: D(i).scaleb(-3)))
LEVELS = st.lists(st.tuples(PRICES, SIZES), max_size=40)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("snap"), LEVELS, LEVELS),
        st.tuples(st.just("delta"), LEVELS, LEVELS),
        st.tuples(st.just("consume"), st.booleans(), PRICES, SIZES),
        st.tuples(st.just("trim"), st.integers(0, 30)),
        st.tuples(st.just("uncross")),
    ),
    max_size=30,
)


class Ref:
    """The reference: dicts, sorted on every read; the book's documented semantics."""

    def __init__(self):
        self.b, self.a, self.bs, self.as_, self.seq = {}, {}, {}, {}, 0

    def snap(self, bids, asks):
        self.seq += 1
        self.b = {p: s for p, s in bids if s > 0}
        self.a = {p: s for p, s in asks if s > 0}
        self.bs = dict.fromkeys(self.b, self.seq)
        self.as_ = dict.fromkeys(self.a, self.seq)

    def delta(self, bids, asks):
        self.seq += 1
        for side, seqs, levels in ((self.b, self.bs, bids), (self.a, self.as_, asks)):
            for p, s in levels:
                if s:
                    side[p] = s
                    seqs[p] = self.seq
                elif p in side:
                    del side[p]
                    seqs.pop(p, None)

    def best(self):
        return (max(self.b) if self.b else None), (min(self.a) if self.a else None)


def check(book: OrderBook, ref: Ref):
    bids_desc = sorted(ref.b, reverse=True)
    asks_asc = sorted(ref.a)
    assert book.levels("bid") == [(p, ref.b[p]) for p in bids_desc]
    assert book.levels("ask", 3) == [(p, ref.a[p]) for p in asks_asc[:3]]
    assert book.best_bid_price() == (bids_desc[0] if bids_desc else None)
    assert book.best_ask_price() == (asks_asc[0] if asks_asc else None)
    assert len(book) == len(ref.b) + len(ref.a)
    # the SortedDict-compatible reads the signal engine and the paper exchange use
    bids = book.bids
    assert list(bids) == sorted(ref.b) and list(reversed(bids)) == bids_desc
    assert list(islice(reversed(bids), 5)) == bids_desc[:5]
    keys = book.asks.keys()
    assert len(keys) == len(asks_asc) and [keys[i] for i in range(len(keys))] == asks_asc
    if asks_asc:
        assert keys[-1] == asks_asc[-1] and book.asks.peekitem(0) == (asks_asc[0], ref.a[asks_asc[0]])
    if bids_desc:
        assert bids.peekitem(-1) == (bids_desc[0], ref.b[bids_desc[0]])
        mid = bids_desc[len(bids_desc) // 2]
        assert mid in bids and bids[mid] == ref.b[mid] and bids.get(mid) == ref.b[mid]
    assert book.bids.items() == [(p, ref.b[p]) for p in sorted(ref.b)]
    assert book.is_crossed() == bool(bids_desc and asks_asc and bids_desc[0] >= asks_asc[0])
    # the exact price objects given are the ones returned (same Decimal representation)
    for p in book.bids:
        assert str(p) == str(next(q for q in ref.b if q == p))


def _columns(levels: list) -> Levels:
    """``[(price, size), ...]`` as the Binance reader hands them over: two columns."""
    return Levels(tuple(p for p, _ in levels), tuple(s for _, s in levels))


@settings(max_examples=150, deadline=None)
@given(OPS, st.booleans())
def test_book_matches_a_sorted_reference(ops, columns):
    """Deltas as pairs (one Python step per level) or as :class:`Levels` columns (C loops): the same book."""
    book, ref = OrderBook("BTC-USD"), Ref()
    for op in ops:
        if op[0] == "snap":
            book.apply_snapshot(op[1], op[2])
            ref.snap(op[1], op[2])
        elif op[0] == "delta":
            if columns:
                book.apply_delta(_columns(op[1]), _columns(op[2]))
            else:
                book.apply_delta(op[1], op[2])
            ref.delta(op[1], op[2])
        elif op[0] == "consume":
            _, is_bid, price, size = op
            book.consume("bid" if is_bid else "ask", price, size)
            side = ref.b if is_bid else ref.a
            if price in side:
                left = side[price] - size
                if left > 0:
                    side[price] = left
                else:
                    del side[price]
                    (ref.bs if is_bid else ref.as_).pop(price, None)
        elif op[0] == "trim":
            depth = op[1]
            book.trim(depth)
            for p in sorted(ref.b, reverse=True)[depth:]:
                del ref.b[p]
            for p in sorted(ref.a)[depth:]:
                del ref.a[p]
        else:
            removed = 0
            while True:
                bb, ba = ref.best()
                if bb is None or ba is None or bb < ba:
                    break
                bseq, aseq = ref.bs.get(bb, 0), ref.as_.get(ba, 0)
                drop_bid = bseq < aseq if bseq != aseq else ref.b[bb] < ref.a[ba]
                if drop_bid:
                    del ref.b[bb]
                else:
                    del ref.a[ba]
                removed += 1
            assert book.uncross() == removed
        check(book, ref)


def _tops(book: OrderBook) -> tuple:
    """The best prices as their text (the exponent sent included) and the mid; the ends of
    ``keys()`` (what the paper exchange's matcher reads) must be the same objects."""
    bb, ba = book.best_bid_price(), book.best_ask_price()
    bids, asks = book.bids.keys(), book.asks.keys()
    assert (bids[len(bids) - 1] if bids else None) is bb and (bids[-1] if bids else None) is bb
    assert (asks[0] if asks else None) is ba and (asks[-len(asks)] if asks else None) is ba
    return (None if bb is None else str(bb)), (None if ba is None else str(ba)), book.mid()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["snap", "delta", "delta", "delta", "consume"]), LEVELS, LEVELS,
                          st.booleans()), max_size=40))
def test_best_prices_kept_between_reads_equal_a_fresh_search(ops):
    """The best prices (and the mid) a side keeps between reads, updated by deltas (a new level
    beyond the best, a delete of the best, size changes, equal prices in another exponent), are
    what a book built from scratch with the same levels finds, object for object (same text).
    Reads happen only at some steps, so several deltas pass between two of them."""
    book = OrderBook("BTC-USD")
    held = {"bid": {}, "ask": {}}  # price -> the object the book holds for it (the first one set)
    for kind, bids, asks, read in ops:
        if kind == "snap":
            book.apply_snapshot(bids, asks)
            held = {"bid": {}, "ask": {}}
            for side, levels in (("bid", bids), ("ask", asks)):
                for p, s in levels:
                    if s > 0:
                        held[side].setdefault(p, p)  # a snapshot keeps the first object of a price
        elif kind == "delta":
            book.apply_delta(bids, asks)
            for side, levels in (("bid", bids), ("ask", asks)):
                for p, s in levels:
                    if s:
                        held[side].setdefault(p, p)
                    else:
                        held[side].pop(p, None)
        else:
            for p, s in bids[:1]:
                book.consume("bid", p, s)
                if p not in book.bids:
                    held["bid"].pop(p, None)
        if read:
            fresh = OrderBook("BTC-USD")
            fresh.apply_snapshot(book.levels("bid"), book.levels("ask"))
            assert _tops(book) == _tops(fresh)
            bb, ba, _ = _tops(book)
            assert bb == (str(max(held["bid"].values())) if held["bid"] else None)
            assert ba == (str(min(held["ask"].values())) if held["ask"] else None)
    assert book.is_crossed() == bool(book.bids and book.asks and max(held["bid"]) >= min(held["ask"]))


def test_the_best_prices_follow_new_levels_deletes_and_size_changes():
    """The cases one by one: each read after a delta gives the new best (and mid) at once."""
    book = OrderBook("BTC-USD")
    book.apply_snapshot([(D(100), D(1)), (D(99), D(1))], [(D(102), D(1)), (D(103), D(1))])
    assert book.best_bid_price() == D(100) and book.best_ask_price() == D(102) and book.mid() == D(101)
    book.apply_delta(bids=[(D(100), D(5))])  # a size change at the best
    assert book.best_bid() == (D(100), D(5)) and book.mid() == D(101)
    book.apply_delta(bids=[(D("100.5"), D(1)), (D("99.5"), D(1))])  # a new best bid, a new level below it
    assert book.best_bid_price() == D("100.5") and book.mid() == D("101.25")
    book.apply_delta(asks=[(D(102), D(0))])  # the best ask goes
    assert book.best_ask_price() == D(103) and book.mid() == D("101.75")
    book.apply_delta(asks=[(D("101.0"), D(2)), (D(102), D(1))])  # a new best ask, the old one back behind it
    assert str(book.best_ask_price()) == "101.0" and book.mid() == D("100.75")
    book.apply_delta(bids=[(D("100.50"), D(0)), (D("99.9"), D(1))])  # the best deleted in another exponent
    assert book.best_bid_price() == D(100) and book.mid() == D("100.5")
    book.apply_delta(bids=[(D(100), D(0)), (D("99.9"), D(0)), (D(99), D(0)), (D("99.5"), D(0))])
    assert book.best_bid_price() is None and book.mid() is None  # the side emptied
    book.apply_delta(bids=[(D("98"), D(1))])  # a level on an empty side is its best
    assert book.best_bid_price() == D(98) and book.mid() == D("99.5")
    del book.asks[D("101.0")]  # a simulator taking the best ask
    assert book.best_ask_price() == D(102) and book.mid() == D(100)
    book.asks[D("100.5")] = D(1)
    assert book.best_ask_price() == D("100.5") and book.mid() == D("99.25")


def test_a_bucket_that_overflows_recalibrates_and_stays_ordered():
    book = OrderBook("ETH-USD")
    book.apply_snapshot([(D("1000"), D(1)), (D("3000"), D(1))], [(D("5000"), D(1))])  # one wide bucket per level
    dense = [(D(2000) + D(i).scaleb(-2), D(1)) for i in range(BUCKET_MAX * 3)]  # 768 levels 0.01 apart
    book.apply_delta(bids=dense)
    assert max(len(s) for s in book.bids._buckets.values()) <= BUCKET_MAX
    want = sorted([D(1000), D(3000), *(p for p, _ in dense)], reverse=True)
    assert [p for p, _ in book.levels("bid")] == want
    assert book.best_bid_price() == D(3000)
    book.apply_delta(bids=[(D(3000), D(0))])
    assert book.best_bid_price() == dense[-1][0]


def test_walk_and_depth_read_best_first():
    book = OrderBook("BTC-USD")
    book.apply_snapshot([(D("99.5"), D(2)), (D("100"), D(1))], [(D("101"), D("0.5")), (D("101.5"), D(3))])
    assert book.walk(Side.BUY, D(2)) == [(D(101), D("0.5")), (D("101.5"), D("1.5"))]
    assert book.walk(Side.SELL, D(5), limit_price=D(100)) == [(D(100), D(1))]
    assert book.depth("bid", 2) == D(3) and book.imbalance(1) == D("0.5") / D("1.5")
    assert book.mid() == D("100.5") and book.spread() == D(1)


def test_a_dense_cluster_in_a_sparse_snapshot_is_split_into_small_buckets():
    # the median gap is the sparse one (400 levels 1000 apart); the 300 levels 0.01 apart
    # must still not share one bucket
    sparse = [(D(1000 * i), D(1)) for i in range(1, 401)]
    dense = [(D(500_000) + D(i).scaleb(-2) + D("0.005"), D(2)) for i in range(300)]
    book = OrderBook("BTC-USD")
    book.apply_snapshot(sparse + dense, [(D(10_000_000), D(1))])
    assert max(len(s) for s in book.bids._buckets.values()) <= BUCKET_MAX
    assert book.best_bid_price() == dense[-1][0] and len(book.bids) == 700
    assert [p for p, _ in book.levels("bid", 3)] == [dense[-1][0], dense[-2][0], dense[-3][0]]
    assert [p for p, _ in book.levels("bid")][300:303] == [D(400_000), D(399_000), D(398_000)]


def _trending(book: OrderBook, steps: int) -> dict:
    """A market falling one tick per delta for ``steps`` deltas: each delta adds a new best ask
    below and deletes the old best bid and the level two ticks above. Returns the reference bids."""
    ref = {}
    snap = [(D(60000) - D(i).scaleb(-1), D(1)) for i in range(50)]
    book.apply_snapshot(snap, [(D(60000) + D(i + 1).scaleb(-1), D(1)) for i in range(50)])
    ref.update(snap)
    for k in range(steps):
        top = D(60000) - D(k).scaleb(-1)
        new = D(60000) - D(k + 50).scaleb(-1)
        book.apply_delta(bids=[(top, D(0)), (new, D(2))], asks=[(top, D(3)), (top + D("0.2"), D(0))])
        del ref[top]
        ref[new] = D(2)
        assert book.best_bid_price() == max(ref)
    return ref


def test_deleted_levels_kept_as_stale_are_dropped_by_reads_and_compaction():
    """Deletes leave stale prices on the ladder; reads passing over them drop them, and the
    ladder never files more than twice the levels held plus STALE_SLACK (compaction)."""
    book = OrderBook("BTC-USD")
    ref = _trending(book, 3 * STALE_SLACK)
    bids = book.bids
    assert list(bids) == sorted(ref) and len(bids) == len(ref)
    for side in (book.bids, book.asks):
        assert len(side._filed) <= 2 * len(side) + STALE_SLACK + 2
        filed = set().union(*side._buckets.values()) if side._buckets else set()
        assert filed == set(side._filed)  # every filed price is in its bucket and nowhere else
        assert side._ids == sorted(side._buckets)
    # the best bid's bucket holds no stale price once read
    top_bucket = bids._buckets[bids._ids[-1]]
    assert all(p in bids for p in top_bucket)
    # a level deleted and set again is found again (it was kept filed as stale)
    p = max(ref)
    book.apply_delta(bids=[(p, D(0))])
    assert p not in book.bids and book.best_bid_price() < p
    book.apply_delta(bids=[(p, D(5))])
    assert book.best_bid() == (p, D(5))


def test_uncross_the_latest_update_of_a_level_counts():
    """A bid set, then an ask, then the bid again: the bid is the more recent (its latest update counts)."""
    book = OrderBook("BTC-USD")
    book.apply_snapshot([(D(100), D(1))], [(D(102), D(1))])
    book.apply_delta(bids=[(D(101), D(1))])
    book.apply_delta(asks=[(D("100.5"), D(9))])  # crosses the bid at 101; larger, and newer for now
    book.apply_delta(bids=[(D(101), D(2))])  # the bid updated again: now the newer level
    assert book.uncross() == 1
    assert book.best_bid() == (D(101), D(2)) and book.best_ask() == (D(102), D(1))


def test_uncross_beyond_the_recency_window():
    """Levels untouched for more than RECENT_DELTAS deltas are older than any kept delta and tie among themselves."""
    book = OrderBook("BTC-USD")
    book.apply_snapshot([(D(100), D(5))], [(D(103), D(1))])
    for i in range(RECENT_DELTAS + 10):  # traffic far from the top
        book.apply_delta(bids=[(D(50), D(i + 1))])
    book.apply_delta(asks=[(D("99.5"), D(1))])  # a smaller ask crossing the old, larger bid: the newer wins
    assert book.uncross() == 1
    assert book.best_bid_price() == D(50) and book.best_ask() == (D("99.5"), D(1))
    # a crossed snapshot: both levels set at once -> the larger size wins
    book.apply_snapshot([(D(100), D(2))], [(D(99), D(3)), (D(104), D(1))])
    for i in range(RECENT_DELTAS + 10):
        book.apply_delta(bids=[(D(50), D(i + 1))])
    assert book.uncross() == 1
    assert book.best_bid_price() == D(50) and book.best_ask() == (D(99), D(3))
    # a crossing left in place while one side's older deltas were dropped: the order is not known -> size
    book.apply_snapshot([(D(100), D(1))], [(D(104), D(1))])
    book.apply_delta(bids=[(D(101), D(9))])
    book.apply_delta(asks=[(D("100.5"), D(1))])  # crosses; kept in the asks' deltas
    for i in range(RECENT_DELTAS + 10):  # the bid at 101 leaves the bids' kept deltas
        book.apply_delta(bids=[(D(50), D(i + 1))])
    assert book.bids.recency(D(101)) is None and book.asks.recency(D("100.5")) is not None
    assert book.uncross() == 1
    assert book.best_bid() == (D(101), D(9)) and book.best_ask_price() == D(104)


def test_a_level_set_again_in_another_exponent_reads_as_sent():
    """61800.2 deleted, then set again as 61800.20 (equal, another exponent): reads give the object sent last."""
    book = OrderBook("BTC-USD")
    book.apply_snapshot([(D("61800.1"), D(1)), (D("61800.2"), D(1))], [(D("61801.0"), D(1))])
    book.apply_delta(bids=[(D("61800.2"), D(0))])
    book.apply_delta(bids=[(D("61800.20"), D(2))])
    assert [str(p) for p, _ in book.levels("bid")] == ["61800.20", "61800.1"]
    assert str(book.best_bid_price()) == "61800.20" and str(book.bids.peekitem(-1)[0]) == "61800.20"
    assert [str(p) for p in book.bids] == ["61800.1", "61800.20"] and len(book.bids._buckets[book.bids._ids[-1]]) <= 2
