"""One side of an L2 book: exact prices, an integer ladder for order, O(1) level updates.

:class:`BookSide` maps price -> size (both the feed's own :class:`~decimal.Decimal`
values, the very objects the parser handed over) and keeps the prices in order with an
**integer ladder** instead of a sorted container:

- every price belongs to a bucket ``int(price.scaleb(exp)) >> shift``: a monotonic
  integer (``exp`` and ``shift`` are calibrated per snapshot so that a bucket holds
  about :data:`BUCKET_TARGET` levels); a price's bucket is computed when it is filed;
- ``buckets`` maps bucket -> set of prices and ``ids`` is the sorted list of buckets (it
  changes only when a bucket appears or goes, a few percent of updates);
- a delete only removes the level from the mapping: the price stays filed in its bucket
  as **stale** (levels come and go at the same prices all day, so a level set again costs
  one dict store); a read that passes over a bucket drops its stale prices (and the
  bucket when nothing live is left), and :meth:`BookSide.compact` drops them all once the
  ladder files more than twice the levels held plus :data:`STALE_SLACK`;
- the best price is ``max``/``min`` of the live prices of the best bucket (a dozen
  entries), found on a read and then kept while deltas only change sizes at held levels;
  sorted iteration walks the buckets in order and sorts each one's live prices.

So a level update, a delete, and a level set again at a price seen before are each one
or two dict operations; only a price new to the ladder costs a set insert. Which level
was updated more recently (what :meth:`~perpbot.core.book.OrderBook.uncross` asks) is
read from the last :data:`RECENT_DELTAS` deltas kept as sent (one deque append per delta,
nothing per level entry). Nothing is allocated per level entry. Measured on the embedded BTC+ETH
sample: 66 % of level entries update a held level, 16 % set a level that was not held
(most at a price seen before), 18 % delete one.

Why not integer keys for the mapping itself: measured on the embedded BTC+ETH sample (``bench/bench_book.py``), a dict keyed by the parser's cached
Decimal objects is as fast as one keyed by integer ticks (Decimal caches its hash and
the parser hands over the same object for the same string), and it returns the
venue's exact price objects, so a strategy sees the same Decimal API as before.

The read API is the subset of :class:`sortedcontainers.SortedDict` that strategies,
the signal engine and the paper exchange use (ascending order, like ``SortedDict``):
``len``, ``bool``, ``in``, ``[price]``, ``get``, iteration and ``reversed`` (sorted),
``keys()`` (an indexable sequence), ``values()``, ``items()``, ``peekitem(i)``,
plus ``[price] = size``/``del`` for simulators that take liquidity.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from decimal import Decimal
from itertools import islice
from typing import Iterator

from perpbot.core.model.levels import Levels

#: average levels per bucket the ladder is calibrated for
BUCKET_TARGET = 16
#: a bucket that grows past this many levels triggers a recalibration of the ladder
BUCKET_MAX = 256
_ONE = Decimal(1)
#: a best price not read since the side last changed
_UNREAD = object()

#: deltas kept per side to tell which of two levels was updated more recently (:meth:`BookSide.recency`)
RECENT_DELTAS = 64
#: stale prices (deleted levels the ladder still files) allowed beyond the levels held before
#: :meth:`BookSide.compact` runs (it runs when the ladder holds more than twice the levels plus this)
STALE_SLACK = 4096
#: how far from either end :meth:`BookSide.key_at` walks the buckets before it sorts the whole side
WALK_MAX = 64


class BookSide:
    """One side of an order book: ``price -> size`` in ascending price order.

    Prices are USD (quote) per base unit and sizes base units, both as the feed sent
    them (normally :class:`~decimal.Decimal`). Mutations are done by
    :class:`~perpbot.core.book.OrderBook`; readers use the mapping API described in the
    module docstring. :meth:`recency` gives the update sequence that last set a price
    (for :meth:`~perpbot.core.book.OrderBook.uncross`).
    """

    __slots__ = ("_d", "_log", "_logged", "_base_seq", "_filed", "_buckets", "_ids", "_exp", "_scale", "_shift", "_sorted",
                 "_dirty", "_hi", "_lo")

    def __init__(self) -> None:
        self._d: dict = {}
        self._log: deque = deque(maxlen=RECENT_DELTAS)  # (seq, levels) of the latest deltas, oldest first
        self._logged = 0  # deltas applied since the last load (or clear)
        self._base_seq = 0  # the update sequence of the last load
        self._filed: dict = {}  # price -> the very object filed in its bucket (live and stale prices)
        self._buckets: dict = {}  # bucket id -> set of prices
        self._ids: list = []  # sorted non-empty bucket ids
        self._exp = 0  # prices are scaled by 10**exp before the shift
        self._scale = _ONE  # 1E+exp: a product with it only moves the exponent (exact)
        self._shift = 0
        self._sorted: list | None = None  # every live price, ascending; None after any change
        self._hi = self._lo = _UNREAD  # the highest and lowest price as last read; _UNREAD after any change
        self._dirty = False  # the ladder needs a recalibration (a bucket overflowed)

    # -- ladder -------------------------------------------------------------------

    def calibrate(self) -> None:
        """Choose ``exp``/``shift`` from the levels held and rebuild the ladder.

        ``exp`` is the most decimals of any price (so scaled prices are exact integers);
        a bucket spans :data:`BUCKET_TARGET` times the median gap between adjacent
        levels (books are dense near the top and sparse far away: the median follows
        the dense part), narrowed until no bucket holds more than :data:`BUCKET_MAX`.
        O(n log n), on a snapshot or when a bucket overflowed.
        """
        prices = sorted(self._d)
        exp = 0
        for p in prices:
            e = -Decimal(p).as_tuple().exponent
            if type(e) is int and e > exp:
                exp = e
        exp = min(exp, 40)
        scaled = [int(Decimal(p).scaleb(exp)) for p in prices]
        gaps = sorted(b - a for a, b in zip(scaled, scaled[1:]) if b > a)
        gap = gaps[len(gaps) // 2] if gaps else 1
        shift = max((gap * BUCKET_TARGET).bit_length() - 1, 0)
        while shift > 0 and _largest_run([x >> shift for x in scaled]) > BUCKET_MAX:
            shift -= 1
        self._exp = exp
        self._scale = Decimal((0, (1,), exp))
        self._shift = shift
        buckets: dict = {}
        for p, x in zip(prices, scaled):
            b = x >> shift
            s = buckets.get(b)
            if s is None:
                buckets[b] = {p}
            else:
                s.add(p)
        self._filed = {p: p for p in prices}
        self._buckets = buckets
        self._ids = sorted(buckets)
        self._sorted = prices
        self._hi = self._lo = _UNREAD
        self._dirty = False

    def load(self, levels) -> None:
        """Replace the side with ``(price, size)`` levels (sizes <= 0 skipped) and calibrate the ladder."""
        self._d = {p: s for p, s in levels if s > 0}
        self.reset_recency(0)
        self.calibrate()

    def clear(self) -> None:
        """Remove every level (the ladder's calibration is kept)."""
        self._d.clear()
        self.reset_recency(0)
        self._filed.clear()
        self._buckets.clear()
        self._ids.clear()
        self._sorted = None
        self._hi = self._lo = _UNREAD

    def apply(self, levels, seq: int) -> int:
        """Set absolute sizes (0 deletes; deleting an absent price is ignored); returns the entries read.

        A held level costs one dict store; a level set again at a price kept as stale is
        re-filed in its bucket (the object as sent: an equal price may differ in exponent);
        a price new to the ladder (or filed as another object of the same value) is filed in its bucket;
        a delete only removes the level from the mapping (the ladder keeps the price as
        stale until a read passes over it or :meth:`compact` runs).

        A delta that only changes sizes at held levels (most of them: 66 % of level
        entries on the embedded sample) keeps the best prices and the sorted prices read
        before; one that adds or removes a level leaves them to the next read (keeping them
        through such a delta costs two Decimal comparisons per level added or removed:
        measured, more than the search on a feed whose book is read less often than it
        changes, as the Binance replay's).

        :param levels: ``(price, size)`` pairs, or a :class:`~perpbot.core.model.Levels`
            (applied from its columns).
        :param seq: the book's update sequence (see :meth:`recency`).
        """
        d = self._d
        filed = self._filed
        if type(levels) is Levels:  # two columns (a feed's parser): no pair per level
            pairs = zip(levels.prices, levels.sizes)
        else:
            if type(levels) is not tuple:
                levels = tuple(levels)  # kept in the recency log: never a list the caller may change
            pairs = levels
        moved = False  # a level appeared or went
        for price, size in pairs:
            if size:
                if price not in d:
                    if filed.get(price) is not price:
                        self._file(price)
                    moved = True
                d[price] = size
            elif price in d:
                del d[price]
                moved = True
        self._log.append((seq, levels))
        self._logged += 1
        if moved:  # a size changed at a held level moves neither the order nor the best prices
            self._sorted = None
            self._hi = self._lo = _UNREAD
            if self._dirty:
                self.calibrate()
            elif len(filed) > (len(d) << 1) + STALE_SLACK:
                self.compact()
        return len(levels)

    def reset_recency(self, seq: int) -> None:
        """Every level held now was set at update sequence ``seq`` (a snapshot); forget older deltas."""
        self._log.clear()
        self._logged = 0
        self._base_seq = seq

    def recency(self, price) -> int | None:
        """The update sequence that last set ``price``, or None when it is not known exactly.

        Exact when the level was last set within the last :data:`RECENT_DELTAS` deltas of
        this side, or at the last snapshot with no delta dropped since; None for a level
        untouched for longer (it was set before :meth:`oldest_kept`). The book is checked for
        a crossing after every delta, so one level of a crossing pair was set by the latest
        delta and is known exactly.
        """
        for seq, levels in reversed(self._log):
            for p, _ in levels:
                if p == price:
                    return seq
        if self._logged <= len(self._log):
            return self._base_seq
        return None

    def oldest_kept(self) -> int:
        """The update sequence of the oldest delta kept for :meth:`recency` (the last snapshot's when none)."""
        return self._log[0][0] if self._log else self._base_seq

    def _file(self, price) -> None:
        """File ``price`` in its bucket (a new bucket joins the sorted ids).

        An equal price filed as another object (the same value in another exponent, e.g.
        ``61800.2`` and ``61800.20``) is replaced by this one: reads return the mapping's
        own objects.
        """
        old = self._filed.get(price)
        b = int(price * self._scale) >> self._shift  # the bucket under the current calibration
        s = self._buckets.get(b)
        if s is None:
            self._buckets[b] = {price}
            insort(self._ids, b)
        else:
            if old is not None:
                s.discard(old)
            s.add(price)
            if len(s) > BUCKET_MAX:
                self._dirty = True
        self._filed[price] = price

    def compact(self) -> None:
        """Drop every stale price from the ladder (O(levels held); the calibration is kept)."""
        d = self._d
        buckets: dict = {}
        for b, s in self._buckets.items():
            live = {p for p in s if p in d}
            if live:
                buckets[b] = live
        self._filed = {p: p for s in buckets.values() for p in s}
        self._buckets = buckets
        self._ids = sorted(buckets)

    def _live(self, b: int):
        """The live prices of bucket ``b`` (a set, unsorted; empty when none); its stale prices are
        dropped, and so is the bucket when nothing live is left."""
        s = self._buckets[b]
        stale = s.difference(self._d)  # one C loop over the bucket (membership in the mapping)
        if not stale:
            return s
        filed = self._filed
        for p in stale:
            del filed[p]
        s -= stale
        if not s:
            del self._buckets[b]
            del self._ids[bisect_left(self._ids, b)]
        return s

    def __setitem__(self, price, size) -> None:
        """Set one level's size (a size of 0 is stored as is; use ``del`` to remove a level)."""
        if price in self._d:
            self._d[price] = size
            return
        if not self._d and not self._ids:
            self._d[price] = size
            self.calibrate()
            return
        if self._filed.get(price) is not price:
            self._file(price)
        self._d[price] = size
        self._sorted = None
        self._hi = self._lo = _UNREAD
        if self._dirty:
            self.calibrate()

    def __delitem__(self, price) -> None:
        """Remove the level at ``price`` (the ladder keeps the price as stale).

        :raises KeyError: no level at ``price``.
        """
        del self._d[price]
        self._sorted = None
        self._hi = self._lo = _UNREAD

    # -- order ------------------------------------------------------------------------

    def best_high(self):
        """The highest price, or None when empty (stale buckets passed over are dropped); kept
        until the side changes."""
        hi = self._hi
        if hi is not _UNREAD:
            return hi
        ids = self._ids
        hi = None
        while ids:
            live = self._live(ids[-1])
            if live:
                hi = max(live)
                break
        self._hi = hi
        return hi

    def best_low(self):
        """The lowest price, or None when empty (stale buckets passed over are dropped); kept
        until the side changes."""
        lo = self._lo
        if lo is not _UNREAD:
            return lo
        ids = self._ids
        lo = None
        while ids:
            live = self._live(ids[0])
            if live:
                lo = min(live)
                break
        self._lo = lo
        return lo

    def ascending(self) -> Iterator:
        """Prices, lowest first (lazy: one bucket sorted at a time)."""
        buckets = self._buckets
        d = self._d
        for b in list(self._ids):
            s = buckets.get(b)
            if s:
                yield from sorted(s - s.difference(d))

    def descending(self) -> Iterator:
        """Prices, highest first (lazy: one bucket sorted at a time)."""
        buckets = self._buckets
        d = self._d
        for b in list(reversed(self._ids)):
            s = buckets.get(b)
            if s:
                yield from sorted(s - s.difference(d), reverse=True)

    def sorted_prices(self) -> list:
        """Every price, ascending (cached until the side changes)."""
        if self._sorted is None:
            out: list = []
            buckets = self._buckets
            d = self._d
            for b in self._ids:
                s = buckets[b]
                out.extend(sorted(s - s.difference(d)))
            self._sorted = out
        return self._sorted

    def key_at(self, i: int):
        """The ``i``-th price in ascending order (negative ``i`` counts from the highest).

        :raises IndexError: ``i`` out of range.
        """
        n = len(self._d)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("BookSide index out of range")
        if self._sorted is not None:
            return self._sorted[i]
        if i == 0:  # the ends are the best prices, kept between changes
            return self.best_low()
        if i == n - 1:
            return self.best_high()
        if i < WALK_MAX:
            return next(islice(self.ascending(), i, None))
        if n - 1 - i < WALK_MAX:
            return next(islice(self.descending(), n - 1 - i, None))
        return self.sorted_prices()[i]

    # -- SortedDict-compatible reads ---------------------------------------------------

    def peekitem(self, index: int = -1) -> tuple:
        """``(price, size)`` at ``index`` in ascending order (default: the highest).

        :raises IndexError: an empty side or ``index`` out of range.
        """
        if index == -1 and self._ids:
            p = self.best_high()
        elif index == 0 and self._ids:
            p = self.best_low()
        else:
            p = self.key_at(index)
        return p, self._d[p]

    def keys(self) -> "SideKeys":
        """The prices as an indexable ascending sequence (``len``, ``[i]``, iteration)."""
        return SideKeys(self)

    def values(self) -> list:
        """Sizes in ascending price order."""
        d = self._d
        return [d[p] for p in self.ascending()]

    def items(self) -> list:
        """``(price, size)`` pairs in ascending price order."""
        d = self._d
        return [(p, d[p]) for p in self.ascending()]

    def get(self, price, default=None):
        """Size at ``price``, or ``default``."""
        return self._d.get(price, default)

    def __getitem__(self, price):
        return self._d[price]

    def __contains__(self, price) -> bool:
        return price in self._d

    def __len__(self) -> int:
        return len(self._d)

    def __bool__(self) -> bool:
        return bool(self._d)

    def __iter__(self) -> Iterator:
        return self.ascending()

    def __reversed__(self) -> Iterator:
        return self.descending()

    def __eq__(self, other) -> bool:
        if isinstance(other, BookSide):
            return self._d == other._d
        if isinstance(other, dict):
            return self._d == other
        return NotImplemented

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"BookSide({len(self._d)} levels, low={self.best_low()}, high={self.best_high()})"


def _largest_run(ids: list) -> int:
    """Length of the longest run of equal values in the sorted list ``ids``."""
    best = run = 0
    prev = None
    for x in ids:
        run = run + 1 if x == prev else 1
        prev = x
        if run > best:
            best = run
    return best


class SideKeys:
    """The prices of a :class:`BookSide` as an ascending sequence (what ``SortedDict.keys()`` gives).

    ``len`` is O(1); ``[i]`` near either end walks a few buckets, elsewhere it sorts the
    side once (cached until a level appears or goes).
    """

    __slots__ = ("_side",)

    def __init__(self, side: BookSide):
        self._side = side

    def __len__(self) -> int:
        return len(self._side)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self._side.sorted_prices()[i]
        return self._side.key_at(i)

    def __iter__(self) -> Iterator:
        return self._side.ascending()

    def __reversed__(self) -> Iterator:
        return self._side.descending()

    def __contains__(self, price) -> bool:
        return price in self._side
