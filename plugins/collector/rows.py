"""Feed events -> storage rows (:mod:`perpbot.plugins.storage.schema`), per venue.

The feeds are the bot's own (:class:`~perpbot.exchanges.ccxt.feed.CcxtFeed`,
:class:`~perpbot.exchanges.dydx.feed.DydxFeed`); their events are
:mod:`perpbot.core.model` values. Mapping:

- ``BookSnapshot`` (ccxt: the whole top of book on each update; dYdX: a full book) and
  ``BookDelta`` (dYdX: absolute sizes, ``0`` deletes, v4-chain indexer ``v4_orderbook``) update
  a local book per market; each update becomes one ``book`` row of the top ``depth`` levels.
  A delta for a market without a snapshot yet is dropped and counted (``orphan_deltas``).
- ``Trade`` -> ``trade`` (``seq`` = the integer trade id on venues whose ids are consecutive).
- ``FundingRate`` -> ``funding``; ``OraclePrice`` -> ``mark``.
- ``FeedStatus``, ``MarketInfo``, ``Bar``: counted (``statuses``, ``other``), not stored. Open
  interest comes from the collector's own poll (:mod:`.runner`), since not every feed emits it.

A market name is the event's ticker without the venue prefix (``binance:BTC-USD`` -> ``BTC-USD``).
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from typing import Any

from perpbot.core.model import BookDelta, BookSnapshot, FeedStatus, FundingRate, OraclePrice, Side, Trade
from perpbot.plugins.storage.schema import text_of

#: ccxt ids whose public trade ids are consecutive integers per market (Binance USD-M
#: "Trade Streams" ``t``, the ``fromId`` of "Old Trades Lookup" walks them one by one)
CONSECUTIVE_TRADE_IDS = frozenset({"binanceusdm"})


def levels_json(levels: tuple) -> str:
    """``((price, size), ...)`` -> ``[["price","size"], ...]`` (exact decimal text)."""
    return json.dumps([[text_of(p), text_of(s)] for p, s in levels], separators=(",", ":"))


class LocalBook:
    """One market's levels (``price -> size``) fed by snapshots and absolute-size deltas, with
    each side's prices kept sorted (:mod:`bisect`), so the top levels cost O(depth)."""

    __slots__ = ("bids", "asks", "_bp", "_ap")

    def __init__(self) -> None:
        self.bids: dict = {}
        self.asks: dict = {}
        self._bp: list = []  # bid prices, ascending
        self._ap: list = []  # ask prices, ascending

    def snapshot(self, bids: tuple, asks: tuple) -> None:
        """Replace both sides (``(price, size)`` pairs; a zero size is skipped)."""
        self.bids = {p: s for p, s in bids if s != 0}
        self.asks = {p: s for p, s in asks if s != 0}
        self._bp = sorted(self.bids)
        self._ap = sorted(self.asks)

    def delta(self, bids: tuple, asks: tuple) -> None:
        """Set absolute sizes; a zero size deletes the level."""
        from bisect import bisect_left, insort

        for side, prices, levels in ((self.bids, self._bp, bids), (self.asks, self._ap, asks)):
            for p, s in levels:
                if s == 0:
                    if side.pop(p, None) is not None:
                        del prices[bisect_left(prices, p)]
                else:
                    if p not in side:
                        insort(prices, p)
                    side[p] = s

    def top(self, depth: int) -> tuple[tuple, tuple]:
        """The best ``depth`` levels per side, best first."""
        b, a = self.bids, self.asks
        bids = tuple((p, b[p]) for p in self._bp[:-depth - 1:-1])
        asks = tuple((p, a[p]) for p in self._ap[:depth])
        return bids, asks


class RowMaker:
    """Turns one venue's events into ``(kind, row, levels)`` items (``levels`` = ``(bids, asks)``
    for a book row, else None), see the module docstring.

    :param venue: the run's venue name (``binance``). :param prefix: the feed's ticker prefix
        (``"binance:"``, or ``""`` for dYdX). :param depth: levels kept per side in a book row.
    :param consecutive_ids: the venue's trade ids are consecutive integers (a ``seq``).
    """

    def __init__(self, venue: str, prefix: str = "", depth: int = 10, consecutive_ids: bool = False):
        self.venue = venue
        self.prefix = prefix
        self.depth = int(depth)
        self.consecutive_ids = consecutive_ids
        self.books: dict[str, LocalBook] = {}
        self.counters: Counter = Counter()

    def market_of(self, ticker: str) -> str:
        """``binance:BTC-USD`` -> ``BTC-USD``."""
        p = self.prefix
        return ticker[len(p):] if p and ticker.startswith(p) else ticker

    def rows(self, events: list) -> list[tuple[str, tuple, Any]]:
        """The rows of one batch of events, in order."""
        out = []
        v = self.venue
        for ev in events:
            t = type(ev)
            if t is Trade:
                seq = None
                if self.consecutive_ids:
                    try:
                        seq = int(ev.trade_id)
                    except ValueError:
                        seq = None
                side = "buy" if ev.side is Side.BUY else "sell"
                out.append(("trade", (v, self.market_of(ev.ticker), ev.ts_ns, ev.price, ev.size, side,
                                      ev.trade_id or None, seq), None))
            elif t is BookSnapshot or t is BookDelta:
                item = self._book(ev, t is BookSnapshot)
                if item is not None:
                    out.append(item)
            elif t is FundingRate:
                out.append(("funding", (v, self.market_of(ev.ticker), ev.ts_ns, ev.rate_1h, bool(ev.settled),
                                        ev.interval_h, ev.next_funding_ns, ev.oracle_price), None))
            elif t is OraclePrice:
                out.append(("mark", (v, self.market_of(ev.ticker), ev.ts_ns, ev.price), None))
            elif t is FeedStatus:
                self.counters["statuses"] += 1
            else:
                self.counters["other"] += 1
        return out

    def _book(self, ev: Any, full: bool) -> tuple | None:
        m = self.market_of(ev.ticker)
        book = self.books.get(m)
        if full:
            if book is None:
                book = self.books[m] = LocalBook()
            book.snapshot(ev.bids, ev.asks)
        elif book is None:
            self.counters["orphan_deltas"] += 1
            return None
        else:
            book.delta(ev.bids, ev.asks)
        bids, asks = book.top(self.depth)
        b0 = bids[0] if bids else (None, None)
        a0 = asks[0] if asks else (None, None)
        row = (self.venue, m, ev.ts_ns, b0[0], b0[1], a0[0], a0[1], levels_json(bids), levels_json(asks))
        return ("book", row, (bids, asks))


def oi_row(venue: str, market: str, ts_ns: int, amount: Any) -> tuple:
    """An ``oi`` row; ``amount`` from the venue (text or number) becomes a Decimal as its text
    says (a float through ``str``, so ``0.1`` stays ``0.1``); an unreadable value becomes NaN
    (the validator rejects it as ``non_finite``)."""
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    except (ArithmeticError, ValueError):
        value = Decimal("NaN")
    return (venue, market, ts_ns, value)
