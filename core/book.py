"""L2 order book: exact, crossed-book aware, with taker walks for simulation.

Prices and sizes are exact :class:`~decimal.Decimal` values (the feed's own
precision: a Binance book keeps Binance's 0.1 tick, a dYdX book dYdX's).
Each side is a :class:`~perpbot.core.book_side.BookSide`: a dict keyed by price
(the parser's own Decimal objects) ordered by an integer bucket ladder, so a level
update is O(1), a new or deleted level O(1) plus a rare bucket insert, and the best
level a ``max`` over one small bucket. Sides read like a ``SortedDict`` (ascending
prices: ``peekitem``, ``keys()[i]``, iteration, ``reversed``, ``get``).

Semantics follow the dYdX indexer and Binance depth streams: a delta carries
the ABSOLUTE size of a level, a size of 0 deletes it, and a delete of a level
the book does not hold is ignored (a deep level that was never sent is not a
data error).

A dYdX streamed book can cross (ordering is guaranteed per order, not per
level; docs ``interaction/data/watch-orderbook.mdx``). :meth:`OrderBook.uncross`
resolves it the way the indexer's REST snapshot does: the more recently
updated level wins, then the larger size; the loser is removed. The caller
should then resync from a fresh snapshot.
"""

from __future__ import annotations

from decimal import Decimal
from itertools import islice
from typing import Iterable

from perpbot.core.book_side import BookSide
from perpbot.core.model import ZERO, Side

_BID = "bid"
_ASK = "ask"


def _side_key(side) -> str:
    if side in (_BID, Side.BUY, "bids", "BUY", "buy"):
        return _BID
    if side in (_ASK, Side.SELL, "asks", "SELL", "sell"):
        return _ASK
    raise ValueError(f"side: expected bid or ask, got {side!r}")


def _newer(bids, bp, asks, ap) -> int:
    """1 when the bid level at ``bp`` was updated more recently than the ask at ``ap``, -1 when
    the ask was, 0 when they tie or the order is not known (see :meth:`BookSide.recency`)."""
    b = bids.recency(bp)
    a = asks.recency(ap)
    if b is not None and a is not None:
        return (b > a) - (b < a)
    if b is not None:  # the ask was set before the asks' oldest kept delta
        return 1 if b >= asks.oldest_kept() else 0
    if a is not None:
        return -1 if a >= bids.oldest_kept() else 0
    return 0


class OrderBook:
    """One market's L2 book.

    ``bids`` and ``asks`` are :class:`~perpbot.core.book_side.BookSide` mappings
    ``price -> size`` in ascending price order (read them like a ``SortedDict``: the
    best bid is ``bids.peekitem(-1)``, the best ask ``asks.peekitem(0)``); mutate the
    book only through the methods here.

    :param ticker: the market.
    :param max_depth: when set, levels beyond this many per side are trimmed after
        a snapshot (memory bound); deltas may add deeper levels which are trimmed lazily.
    """

    __slots__ = (
        "ticker",
        "bids",
        "asks",
        "_seq",
        "last_update_ns",
        "updates",
        "max_depth",
        "_mid",
        "_mid_of",
    )

    def __init__(self, ticker: str, max_depth: int | None = None):
        self.ticker = ticker
        self.bids = BookSide()
        self.asks = BookSide()
        self._seq = 0
        self.last_update_ns = 0
        self.updates = 0  # level entries applied (updates + deletes)
        self.max_depth = max_depth
        self._mid = None  # the last mid computed, of the best prices in _mid_of
        self._mid_of = (None, None)

    # -- mutation ---------------------------------------------------------

    def clear(self) -> None:
        """Remove every level of both sides (the book is then empty, not ready for decisions)."""
        self.bids.clear()
        self.asks.clear()

    def apply_snapshot(self, bids: Iterable, asks: Iterable, ts_ns: int = 0) -> None:
        """Replace the book with ``(price, size)`` levels; zero sizes are skipped."""
        self._seq += 1
        seq = self._seq
        self.bids.load(bids)
        self.asks.load(asks)
        self.bids.reset_recency(seq)
        self.asks.reset_recency(seq)
        if self.max_depth:
            self.trim(self.max_depth)
        self.last_update_ns = ts_ns

    def apply_delta(self, bids: Iterable = (), asks: Iterable = (), ts_ns: int = 0) -> None:
        """Apply absolute level sizes (0 deletes; unknown deletes are ignored)."""
        self._seq += 1
        n = 0
        if bids:
            n = self.bids.apply(bids, self._seq)
        if asks:
            n += self.asks.apply(asks, self._seq)
        self.updates += n
        self.last_update_ns = ts_ns

    def set_level(self, side, price: Decimal, size: Decimal, ts_ns: int = 0) -> None:
        """Set one level's absolute size (0 deletes)."""
        if _side_key(side) == _BID:
            self.apply_delta(bids=((price, size),), ts_ns=ts_ns)
        else:
            self.apply_delta(asks=((price, size),), ts_ns=ts_ns)

    def consume(self, side, price: Decimal, size: Decimal) -> None:
        """Reduce a level by ``size`` (a simulated fill took liquidity); removes it at 0."""
        book = self.bids if _side_key(side) == _BID else self.asks
        cur = book.get(price)
        if cur is None:
            return
        left = cur - size
        if left > 0:
            book[price] = left
        else:
            del book[price]

    def trim(self, depth: int) -> None:
        """Keep only the best ``depth`` levels per side."""
        for side, worst_first in ((self.bids, self.bids.ascending), (self.asks, self.asks.descending)):
            extra = len(side) - depth
            if extra > 0:
                for p in list(islice(worst_first(), extra)):
                    del side[p]

    # -- queries ------------------------------------------------------------

    def best_bid(self) -> tuple[Decimal, Decimal] | None:
        """``(price, size)`` of the best bid, or None."""
        p = self.bids.best_high()
        return None if p is None else (p, self.bids._d[p])

    def best_ask(self) -> tuple[Decimal, Decimal] | None:
        """``(price, size)`` of the best ask, or None."""
        p = self.asks.best_low()
        return None if p is None else (p, self.asks._d[p])

    def best_bid_price(self) -> Decimal | None:
        """Best bid price, USD, or None when there are no bids."""
        return self.bids.best_high()

    def best_ask_price(self) -> Decimal | None:
        """Best ask price, USD, or None when there are no asks."""
        return self.asks.best_low()

    def mid(self) -> Decimal | None:
        """Mid price, USD; None unless both sides exist.

        Computed once per pair of best prices (the same two price objects give the same
        mid: Decimals are immutable), so repeated reads between changes of the top cost two
        identity checks.
        """
        bb = self.bids.best_high()
        ba = self.asks.best_low()
        if bb is None or ba is None:
            return None
        of = self._mid_of
        if of[0] is bb and of[1] is ba:
            return self._mid
        m = self._mid = (bb + ba) / 2
        self._mid_of = (bb, ba)
        return m

    def spread(self) -> Decimal | None:
        """Best ask minus best bid, USD (negative when crossed); None unless both sides exist."""
        bb = self.bids.best_high()
        ba = self.asks.best_low()
        if bb is None or ba is None:
            return None
        return ba - bb

    def is_crossed(self) -> bool:
        """True when best bid >= best ask (a locked book counts as crossed)."""
        bb = self.bids.best_high()
        if bb is None:
            return False
        ba = self.asks.best_low()
        return ba is not None and bb >= ba

    def is_empty(self) -> bool:
        """True when neither side has a level."""
        return not self.bids and not self.asks

    def levels(self, side, n: int | None = None) -> list[tuple[Decimal, Decimal]]:
        """Best-first levels of one side (``n`` of them, or all)."""
        book = self.bids if _side_key(side) == _BID else self.asks
        prices = book.descending() if book is self.bids else book.ascending()
        if n is not None:
            prices = islice(prices, max(n, 0))
        d = book._d
        return [(p, d[p]) for p in prices]

    def depth(self, side, n: int) -> Decimal:
        """Total size (base units) in the best ``n`` levels of one side."""
        return sum((s for _, s in self.levels(side, n)), ZERO)

    def size_at(self, side, price: Decimal) -> Decimal:
        """Size (base units) resting at exactly ``price`` (USD) on ``side``; 0 for no level.

        ``side`` is a :class:`~perpbot.core.model.Side` (BUY = bids) or ``"bid"``/``"bids"``/
        ``"ask"``/``"asks"``.

        :raises ValueError: for any other side, naming it.
        """
        book = self.bids if _side_key(side) == _BID else self.asks
        return book.get(price, ZERO)

    def walk(self, taker_side: Side, size: Decimal, limit_price: Decimal | None = None) -> list[tuple[Decimal, Decimal]]:
        """The fills a taker order of ``size`` would get, best price first.

        A BUY walks the asks, a SELL the bids, stopping at ``limit_price``
        (inclusive) or when the book runs out. Does not modify the book.
        :returns: ``[(price, size), ...]``; the sum of sizes may be < ``size``.
        """
        out = []
        left = size
        buy = taker_side is Side.BUY
        book = self.asks if buy else self.bids
        d = book._d
        for price in book.ascending() if buy else book.descending():
            if limit_price is not None and (price > limit_price if buy else price < limit_price):
                break
            take = min(left, d[price])
            out.append((price, take))
            left -= take
            if left <= 0:
                break
        return out

    def uncross(self) -> int:
        """Remove crossing levels: the more recently updated level wins, then the larger size.

        :returns: the number of levels removed (0 when the book was not crossed).
        """
        removed = 0
        while self.is_crossed():
            bp, bs = self.best_bid()
            ap, as_ = self.best_ask()
            newer = _newer(self.bids, bp, self.asks, ap)
            drop_bid = bs < as_ if newer == 0 else newer < 0
            if drop_bid:
                del self.bids[bp]
            else:
                del self.asks[ap]
            removed += 1
        return removed

    def imbalance(self, n: int = 10) -> Decimal | None:
        """(bid depth - ask depth) / (bid depth + ask depth) over the best ``n`` levels, in [-1, 1]."""
        b = self.depth(_BID, n)
        a = self.depth(_ASK, n)
        total = b + a
        if total == 0:
            return None
        return (b - a) / total

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)

    def __repr__(self) -> str:
        return f"OrderBook({self.ticker}, bid={self.best_bid()}, ask={self.best_ask()}, levels={len(self)})"
