"""L2 order book: exact, crossed-book aware, with taker walks for simulation.

Prices and sizes are exact :class:`~decimal.Decimal` values (the feed's own
precision: a Binance book keeps Binance's 0.1 tick, a dYdX book dYdX's).
Each side is a :class:`sortedcontainers.SortedDict` keyed by price, so a level
update is O(log n) and the best level O(1).

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
from typing import Iterable

from sortedcontainers import SortedDict

from perpbot.core.model import ZERO, Side

_BID = "bid"
_ASK = "ask"


def _side_key(side) -> str:
    if side in (_BID, Side.BUY, "bids", "BUY", "buy"):
        return _BID
    if side in (_ASK, Side.SELL, "asks", "SELL", "sell"):
        return _ASK
    raise ValueError(f"side: expected bid or ask, got {side!r}")


class OrderBook:
    """One market's L2 book.

    :param ticker: the market.
    :param max_depth: when set, levels beyond this many per side are trimmed after
        a snapshot (memory bound); deltas may add deeper levels which are trimmed lazily.
    """

    __slots__ = (
        "ticker",
        "bids",
        "asks",
        "_seq",
        "_bid_seq",
        "_ask_seq",
        "last_update_ns",
        "updates",
        "max_depth",
    )

    def __init__(self, ticker: str, max_depth: int | None = None):
        self.ticker = ticker
        self.bids: SortedDict = SortedDict()
        self.asks: SortedDict = SortedDict()
        self._seq = 0
        self._bid_seq: dict = {}
        self._ask_seq: dict = {}
        self.last_update_ns = 0
        self.updates = 0  # level entries applied (updates + deletes)
        self.max_depth = max_depth

    # -- mutation ---------------------------------------------------------

    def clear(self) -> None:
        """Remove every level of both sides (the book is then empty, not ready for decisions)."""
        self.bids.clear()
        self.asks.clear()
        self._bid_seq.clear()
        self._ask_seq.clear()

    def apply_snapshot(self, bids: Iterable, asks: Iterable, ts_ns: int = 0) -> None:
        """Replace the book with ``(price, size)`` levels; zero sizes are skipped."""
        self.clear()
        self._seq += 1
        seq = self._seq
        for price, size in bids:
            if size > 0:
                self.bids[price] = size
                self._bid_seq[price] = seq
        for price, size in asks:
            if size > 0:
                self.asks[price] = size
                self._ask_seq[price] = seq
        if self.max_depth:
            self.trim(self.max_depth)
        self.last_update_ns = ts_ns

    def apply_delta(self, bids: Iterable = (), asks: Iterable = (), ts_ns: int = 0) -> None:
        """Apply absolute level sizes (0 deletes; unknown deletes are ignored)."""
        self._seq += 1
        seq = self._seq
        n = 0
        setitem = dict.__setitem__  # existing level: skip SortedDict's Python-level __setitem__
        book = self.bids
        seqs = self._bid_seq
        for price, size in bids:
            n += 1
            if size:
                if price in book:
                    setitem(book, price, size)
                else:
                    book[price] = size
                seqs[price] = seq
            elif price in book:
                del book[price]
                del seqs[price]
        book = self.asks
        seqs = self._ask_seq
        for price, size in asks:
            n += 1
            if size:
                if price in book:
                    setitem(book, price, size)
                else:
                    book[price] = size
                seqs[price] = seq
            elif price in book:
                del book[price]
                del seqs[price]
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
        key = _side_key(side)
        book = self.bids if key == _BID else self.asks
        cur = book.get(price)
        if cur is None:
            return
        left = cur - size
        if left > 0:
            book[price] = left
        else:
            del book[price]
            (self._bid_seq if key == _BID else self._ask_seq).pop(price, None)

    def trim(self, depth: int) -> None:
        """Keep only the best ``depth`` levels per side."""
        while len(self.bids) > depth:
            p, _ = self.bids.popitem(0)
            self._bid_seq.pop(p, None)
        while len(self.asks) > depth:
            p, _ = self.asks.popitem(-1)
            self._ask_seq.pop(p, None)

    # -- queries ------------------------------------------------------------

    def best_bid(self) -> tuple[Decimal, Decimal] | None:
        """``(price, size)`` of the best bid, or None."""
        return self.bids.peekitem(-1) if self.bids else None

    def best_ask(self) -> tuple[Decimal, Decimal] | None:
        """``(price, size)`` of the best ask, or None."""
        return self.asks.peekitem(0) if self.asks else None

    def best_bid_price(self) -> Decimal | None:
        """Best bid price, USD, or None when there are no bids."""
        return self.bids.peekitem(-1)[0] if self.bids else None

    def best_ask_price(self) -> Decimal | None:
        """Best ask price, USD, or None when there are no asks."""
        return self.asks.peekitem(0)[0] if self.asks else None

    def mid(self) -> Decimal | None:
        """Mid price, USD; None unless both sides exist."""
        if not self.bids or not self.asks:
            return None
        return (self.bids.peekitem(-1)[0] + self.asks.peekitem(0)[0]) / 2

    def spread(self) -> Decimal | None:
        """Best ask minus best bid, USD (negative when crossed); None unless both sides exist."""
        if not self.bids or not self.asks:
            return None
        return self.asks.peekitem(0)[0] - self.bids.peekitem(-1)[0]

    def is_crossed(self) -> bool:
        """True when best bid >= best ask (a locked book counts as crossed)."""
        return bool(self.bids and self.asks and self.bids.peekitem(-1)[0] >= self.asks.peekitem(0)[0])

    def is_empty(self) -> bool:
        """True when neither side has a level."""
        return not self.bids and not self.asks

    def levels(self, side, n: int | None = None) -> list[tuple[Decimal, Decimal]]:
        """Best-first levels of one side (``n`` of them, or all)."""
        if _side_key(side) == _BID:
            keys = self.bids.keys()
            count = len(keys) if n is None else min(n, len(keys))
            return [(keys[-1 - i], self.bids[keys[-1 - i]]) for i in range(count)]
        keys = self.asks.keys()
        count = len(keys) if n is None else min(n, len(keys))
        return [(keys[i], self.asks[keys[i]]) for i in range(count)]

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
        if taker_side is Side.BUY:
            keys = self.asks.keys()
            book = self.asks
            idx = range(len(keys))
            for i in idx:
                price = keys[i]
                if limit_price is not None and price > limit_price:
                    break
                take = min(left, book[price])
                out.append((price, take))
                left -= take
                if left <= 0:
                    break
        else:
            keys = self.bids.keys()
            book = self.bids
            for i in range(len(keys) - 1, -1, -1):
                price = keys[i]
                if limit_price is not None and price < limit_price:
                    break
                take = min(left, book[price])
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
            bp, bs = self.bids.peekitem(-1)
            ap, as_ = self.asks.peekitem(0)
            bseq = self._bid_seq.get(bp, 0)
            aseq = self._ask_seq.get(ap, 0)
            if bseq != aseq:
                drop_bid = bseq < aseq
            else:
                drop_bid = bs < as_
            if drop_bid:
                del self.bids[bp]
                self._bid_seq.pop(bp, None)
            else:
                del self.asks[ap]
                self._ask_seq.pop(ap, None)
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
