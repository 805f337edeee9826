"""Order books from ``v4_orderbook`` messages, with each book's health.

Book rules (docs ``interaction/data/watch-orderbook.mdx``; v4-chain indexer vulcan
``handlers/handler.ts``):

- a book is **stale** from the start and after every disconnect: its deltas are kept
  (bounded) but not applied; ``FeedStatus(healthy=False, "waiting for snapshot ...")``;
- the ``subscribed`` snapshot replaces the book, the kept deltas are re-applied on top
  (sizes are absolute, so replaying them in order leaves every touched level at its
  latest value), then ``FeedStatus(healthy=True)``;
- updates carry ABSOLUTE level sizes; ``"0"`` deletes; a delete of an unknown level is
  ignored; ``channel_batch_data`` contents are a list applied in order;
- a **crossed** book (best bid >= best ask) is uncrossed at once with
  :meth:`perpbot.core.book.OrderBook.uncross` (the more recently updated level wins, then the
  larger size), the full corrected book is emitted as a ``BookSnapshot``, the market is
  marked unhealthy (``"crossed book ..."``) and a REST resync is requested; it turns
  healthy again when the REST snapshot has been applied and the book is not crossed;
- an update or snapshot carrying a value the venue cannot have sent
  (:mod:`perpbot.exchanges.dydx.values`) is not applied: counted in ``stats["bad_payloads"]``,
  the book is marked unhealthy (``"bad book data ..."``) and resynced from REST like a
  crossed book (a dropped update leaves the book unknown).

The REST resync itself is the feed's (:mod:`perpbot.exchanges.dydx.feed`): it reads
:attr:`BookKeeper.resync_wanted` / :meth:`BookKeeper.take_resyncs` and writes the answer
back into the stream as ``perpbot_resync`` / ``perpbot_rest`` / ``perpbot_rest_failed``
pseudo-messages (see :mod:`perpbot.exchanges.dydx.parser`).

Imports :mod:`perpbot.core` (book, model) and :mod:`perpbot.exchanges.dydx.values` only.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping

from perpbot.core.book import OrderBook
from perpbot.core.records import plain_maker
from perpbot.core.model import BookDelta, BookSnapshot, FeedStatus
from perpbot.exchanges.dydx.values import CACHE_MAX, BadValue, levels, price_value, size_value

STALE = "stale"  # waiting for a WS snapshot
LIVE = "live"  # healthy
REFRESH = "refresh"  # healthy, periodic REST snapshot in flight (deltas kept)
RESYNC = "resync"  # crossed: unhealthy until the REST snapshot
#: ``BookDelta(**fields)`` without ``__init__`` (a frozen class storing its fields as given;
#: the same event, about a third cheaper per update)
_book_delta = plain_maker(BookDelta)


class LevelValues:
    """Indexer book levels -> ``[(price, size)]`` Decimals, each distinct string converted once.

    The same result and the same errors as :func:`perpbot.exchanges.dydx.values.levels`
    (which validates: a finite positive price, a finite non-negative size; ``BadValue``
    naming the side and value), but a string seen before is served from a bounded cache
    (``str -> Decimal``, cleared at :data:`CACHE_MAX` entries), so the common case costs
    two dict lookups per level and every book receives the SAME Decimal object for the
    same string: its hash is computed once, and the book's dict lookups then match by
    identity. Levels of another shape (dicts without both keys, non-strings, tuples) go
    through :func:`~perpbot.exchanges.dydx.values.levels` itself, for its exact errors.
    """

    __slots__ = ("prices", "sizes")

    def __init__(self) -> None:
        self.prices: dict[str, Decimal] = {}
        self.sizes: dict[str, Decimal] = {}

    def levels(self, raw: Any, side: str) -> list[tuple[Decimal, Decimal]]:
        """``[[price, size], ...]`` or ``[{price, size}, ...]`` (``None``: no levels) -> ``[(price, size)]``.

        :param side: ``"bid"`` or ``"ask"``, for error texts.
        :raises BadValue: as :func:`perpbot.exchanges.dydx.values.levels`.
        """
        if type(raw) is not list:
            return levels(raw, side)
        prices = self.prices
        sizes = self.sizes
        out = []
        append = out.append
        for lv in raw:
            t = type(lv)
            if t is list and len(lv) == 2:
                p, q = lv
            elif t is dict and len(lv) == 2:
                p = lv.get("price")
                q = lv.get("size")
            else:
                return levels(raw, side)
            pd = prices.get(p) if type(p) is str else None
            if pd is None:
                if type(p) is not str:
                    return levels(raw, side)
                pd = price_value(p, f"{side} price")
                if len(prices) >= CACHE_MAX:
                    prices.clear()
                prices[p] = pd
            qd = sizes.get(q) if type(q) is str else None
            if qd is None:
                if type(q) is not str:
                    return levels(raw, side)
                qd = size_value(q, f"{side} size")
                if len(sizes) >= CACHE_MAX:
                    sizes.clear()
                sizes[q] = qd
            append((pd, qd))
        return out


class BookTracker:
    """One market's book as the feed sees it, with its health state.

    Fields: ``book`` (:class:`~perpbot.core.book.OrderBook`, USD prices, base-unit sizes);
    ``state`` (:data:`STALE`, :data:`LIVE`, :data:`REFRESH` or :data:`RESYNC`); ``pending``
    (``[(bids, asks)]`` deltas kept while stale / resyncing); ``overflow`` (kept deltas
    were dropped: resync after the snapshot); ``reason`` (why unhealthy); counters
    ``snapshots``, ``resyncs``, ``crossings``; ``healthy_emitted`` (the last
    ``(healthy, reason)`` reported).
    """

    __slots__ = ("ticker", "book", "state", "pending", "overflow", "reason", "snapshots", "resyncs", "crossings",
                 "healthy_emitted")

    def __init__(self, ticker: str):
        self.ticker = ticker
        self.book = OrderBook(ticker)
        self.state = STALE
        self.pending: list = []  # (bids, asks) deltas kept while stale / resyncing
        self.overflow = False
        self.reason = "waiting for snapshot"
        self.snapshots = 0
        self.resyncs = 0
        self.crossings = 0
        self.healthy_emitted: tuple | None = None  # last (healthy, reason) emitted

    @property
    def healthy(self) -> bool:
        """True when the book follows the venue's (state LIVE or REFRESH)."""
        return self.state in (LIVE, REFRESH)


class BookKeeper:
    """Every market's :class:`BookTracker`, fed by ``v4_orderbook`` and the REST resyncs.

    Part of :class:`~perpbot.exchanges.dydx.parser.DydxParser`, which owns the shared
    ``stats`` and ``warn_once``. Every method returns the events to emit (a list of
    ``BookSnapshot`` / ``BookDelta`` / ``FeedStatus``, ``ts_ns`` = receive time, ns).

    :param tickers: the markets to keep books for (None: every market seen).
    :param max_pending: level entries kept per book while stale/resyncing; beyond it the
        kept deltas are dropped and a REST resync follows the snapshot.
    :param stats: the parser's counters (``snapshots``, ``level_entries``, ``crossed``,
        ``resyncs``, ``bad_payloads``, ``deltas_kept``, ``pending_overflow`` are counted here).
    :param warn_once: ``(key, text)``: log ``text`` once per ``key``.
    """

    def __init__(self, tickers: set[str] | None, *, max_pending: int, stats: dict[str, int],
                 warn_once: Callable[[str, str], None]):
        self.tickers = tickers
        self.books: dict[str, BookTracker] = {t: BookTracker(t) for t in tickers or ()}
        self.max_pending = max_pending
        self.stats = stats
        self.warn_once = warn_once
        #: tickers whose book must be resynced from REST (read by the feed)
        self.resync_wanted: set[str] = set()
        #: the price/size string caches shared by every market's levels
        self.values = LevelValues()

    def tracker(self, ticker: str) -> BookTracker | None:
        """The ticker's tracker, created for any ticker when no ticker list was given
        (None for a ticker outside the list)."""
        tr = self.books.get(ticker)
        if tr is None and self.tickers is None:
            tr = self.books[ticker] = BookTracker(ticker)
        return tr

    def status(self, tr: BookTracker, ts: int, out: list) -> None:
        """Append a FeedStatus to ``out`` when the tracker's health changed since the last one."""
        healthy = tr.healthy
        key = (healthy, "" if healthy else tr.reason)
        if tr.healthy_emitted == key:
            return
        tr.healthy_emitted = key
        out.append(FeedStatus(tr.ticker, ts, healthy=healthy, reason=key[1]))

    def start_events(self, ts: int) -> list:
        """One ``FeedStatus(healthy=False, "waiting for snapshot")`` per book (feed start)."""
        out: list = []
        for tr in self.books.values():
            tr.state = STALE
            tr.reason = "waiting for snapshot"
            tr.healthy_emitted = None
            self.status(tr, ts, out)
        return out

    def book_states(self) -> dict[str, tuple[str, str]]:
        """``{ticker: (state, reason)}`` for diagnostics and tests (reason "" when healthy)."""
        return {t: (tr.state, "" if tr.healthy else tr.reason) for t, tr in self.books.items()}

    def take_resyncs(self) -> set[str]:
        """Tickers that need a REST book resync (and forget them)."""
        wanted, self.resync_wanted = self.resync_wanted, set()
        return wanted

    # ------------------------------------------------------------------ snapshots and deltas

    def on_snapshot(self, ticker: str, contents: Mapping[str, Any], ts: int, *, source: str) -> list:
        """A full book (WS ``subscribed`` or REST ``{bids, asks}``) for ``ticker``.

        :param source: ``"ws"`` or ``"REST"``, for the reason texts.
        """
        tr = self.tracker(ticker)
        if tr is None:
            return []
        try:
            if not isinstance(contents, Mapping):
                raise BadValue(f"book {contents!r} is not an object")
            bids = sorted(self.values.levels(contents.get("bids"), "bid"), key=lambda lv: lv[0], reverse=True)
            asks = sorted(self.values.levels(contents.get("asks"), "ask"), key=lambda lv: lv[0])
        except BadValue as exc:
            return self._bad_snapshot(tr, ts, source, str(exc))
        tr.book.apply_snapshot(bids, asks, ts)
        replay = tr.pending
        tr.pending = []
        for b, a in replay:
            tr.book.apply_delta(b, a, ts)
        self.stats["snapshots"] += 1
        tr.snapshots += 1
        out: list = []
        overflow = tr.overflow
        tr.overflow = False
        if tr.book.is_crossed():
            self._crossed(tr, ts, out)
            return out
        out.append(self.snapshot_event(tr, ts))
        if overflow:
            tr.state = RESYNC
            tr.reason = f"book {ticker}: deltas lost while waiting for the {source} snapshot; resyncing from REST"
            self.resync_wanted.add(ticker)
        else:
            tr.state = LIVE
            tr.reason = ""
        self.status(tr, ts, out)
        return out

    def snapshot_event(self, tr: BookTracker, ts: int) -> BookSnapshot:
        """The tracker's whole book as a ``BookSnapshot`` event."""
        return BookSnapshot(
            tr.ticker,
            ts,
            bids=tuple(tr.book.levels("bid")),
            asks=tuple(tr.book.levels("ask")),
        )

    def on_delta(self, ticker: str, items: Iterable, ts: int) -> list:
        """One update message's contents (a list of ``{bids?, asks?}``, applied in order).

        The common item, one ``[price, size]`` level whose two strings are both cached, is
        converted inline (no call per level: the indexer's ``channel_batch_data`` is mostly
        such items, e.g. 41 of them in ../shared/data/dydx_v4/nautilus_py/websocket/
        v4_orderbook_batched_data.json); any other item goes through :meth:`_item`. Both
        give the same levels, the same cached Decimal objects and the same errors.
        Returns ``[BookDelta]``, the events of a crossed book (:meth:`_crossed`) or of a
        rejected message (:meth:`_bad_book`), or ``[]`` (nothing to apply, a stale book).
        """
        tr = self.books.get(ticker)
        if tr is None:
            tr = self.tracker(ticker)
            if tr is None:
                return []
        bids: list = []
        asks: list = []
        prices = self.values.prices
        sizes = self.values.sizes
        try:
            if type(items) is not list and not isinstance(items, (list, tuple)):
                raise BadValue(f"batch {items!r} is not a list of updates")
            for c in items:
                # the common item, inline (no call per level): {"bids"|"asks": [[price, size]]}
                # whose two strings are both in the caches; any other item (more levels, a
                # miss, another shape) goes through _item, which converts, caches and checks
                if type(c) is dict and len(c) == 1:
                    ((key, raw),) = c.items()
                    if type(raw) is list and len(raw) == 1:
                        lv = raw[0]
                        if type(lv) is list and len(lv) == 2:
                            try:
                                pd = prices.get(lv[0])
                                qd = sizes.get(lv[1])
                            except TypeError:  # unhashable: _item names it
                                pd = qd = None
                            if pd is not None and qd is not None:
                                if key == "bids":
                                    bids.append((pd, qd))
                                    continue
                                if key == "asks":
                                    asks.append((pd, qd))
                                    continue
                if c:
                    self._item(c, bids, asks)
        except BadValue as exc:
            # the whole message is rejected (none of it applied): the book no longer
            # follows the venue's, so it is resynced like a crossed book
            out: list = []
            self._bad_book(tr, ts, str(exc), out)
            return out
        n = len(bids) + len(asks)
        if not n:
            return []
        self.stats["level_entries"] += n
        if tr.state == STALE:
            self._keep(tr, bids, asks)
            return []
        if tr.state in (REFRESH, RESYNC):
            self._keep(tr, bids, asks)
        bids = tuple(bids)  # the book keeps the tuples it is given (its recency log): the event's own
        asks = tuple(asks)
        tr.book.apply_delta(bids, asks, ts)
        out = [_book_delta(ticker=ticker, ts_ns=ts, bids=bids, asks=asks)]
        if tr.book.is_crossed():
            out.pop()  # the corrected full book below supersedes this delta
            self._crossed(tr, ts, out)
        return out

    def _item(self, c: Any, bids: list, asks: list) -> None:
        """One update item ``{bids?, asks?}`` -> its levels appended to ``bids`` / ``asks``
        (the checked path of :meth:`on_delta`; keys other than those two are ignored).

        :raises BadValue: for an item that is not an object, or a level as
            :meth:`LevelValues.levels` rejects it.
        """
        if type(c) is not dict and not isinstance(c, Mapping):
            raise BadValue(f"update {c!r} is not an object")
        if "bids" in c:
            bids.extend(self.values.levels(c["bids"], "bid"))
        if "asks" in c:
            asks.extend(self.values.levels(c["asks"], "ask"))

    def _keep(self, tr: BookTracker, bids: list[tuple[Decimal, Decimal]], asks: list[tuple[Decimal, Decimal]]) -> None:
        if tr.overflow:
            return
        kept = sum(len(b) + len(a) for b, a in tr.pending)
        if kept + len(bids) + len(asks) > self.max_pending:
            tr.pending = []
            tr.overflow = True
            self.stats["pending_overflow"] += 1
            return
        tr.pending.append((bids, asks))
        self.stats["deltas_kept"] += 1

    def _bad_book(self, tr: BookTracker, ts: int, what: str, out: list) -> None:
        """An order-book update with a value the venue cannot have sent was dropped.

        Counted in ``stats["bad_payloads"]``; the book is unhealthy until a REST snapshot
        (the feed's resync path, ``resync_wanted``). A book still waiting for its WS
        snapshot stays so, and is resynced from REST once that snapshot arrives, because
        the deltas kept to be re-applied on top of it now miss this one.
        """
        self.stats["bad_payloads"] += 1
        self.warn_once(f"badbook:{tr.ticker}", f"dYdX order book {tr.ticker}: update rejected ({what}); "
                       f"resyncing the book from REST (counted in stats['bad_payloads'])")
        tr.pending = []
        if tr.state == STALE:
            tr.overflow = True  # on_snapshot then resyncs from REST
            return
        # a REST answer already in flight may predate this update: resync once more after it
        tr.overflow = tr.state in (REFRESH, RESYNC)
        tr.state = RESYNC
        tr.reason = f"bad book data {tr.ticker}: {what}; update dropped, resyncing from REST"
        self.resync_wanted.add(tr.ticker)
        tr.healthy_emitted = None  # always tell the bot why
        self.status(tr, ts, out)

    def _bad_snapshot(self, tr: BookTracker, ts: int, source: str, what: str) -> list:
        """A WS or REST snapshot with a value the venue cannot have sent: not applied.

        Counted in ``stats["bad_payloads"]``; the book is emptied (its old levels are no
        longer the venue's), stays unhealthy and is resynced from REST.
        """
        self.stats["bad_payloads"] += 1
        self.warn_once(f"badbook:{tr.ticker}", f"dYdX order book {tr.ticker}: {source} snapshot rejected "
                       f"({what}); resyncing the book from REST (counted in stats['bad_payloads'])")
        if tr.state != RESYNC:
            tr.pending = []  # keep deltas from now on for the REST answer
        tr.overflow = False
        tr.book.apply_snapshot((), (), ts)
        tr.state = RESYNC
        tr.reason = f"bad book data {tr.ticker}: {source} snapshot rejected ({what}); resyncing from REST"
        self.resync_wanted.add(tr.ticker)
        tr.healthy_emitted = None
        out: list = []
        self.status(tr, ts, out)
        return out

    def _crossed(self, tr: BookTracker, ts: int, out: list) -> None:
        bb, ba = tr.book.best_bid_price(), tr.book.best_ask_price()
        removed = tr.book.uncross()
        self.stats["crossed"] += 1
        tr.crossings += 1
        out.append(self.snapshot_event(tr, ts))
        was = tr.state
        tr.state = RESYNC
        tr.reason = (
            f"crossed book {tr.ticker}: bid {bb} >= ask {ba}; uncrossed (removed {removed} level(s)), "
            f"resyncing from REST"
        )
        if was not in (REFRESH, RESYNC):
            # deltas are kept from now on for the REST request that follows; a request
            # already in flight (REFRESH) keeps the deltas received since it went out
            tr.pending = []
            tr.overflow = False
        self.resync_wanted.add(tr.ticker)
        tr.healthy_emitted = None  # always tell the bot why
        self.status(tr, ts, out)

    # ------------------------------------------------------------------ REST resyncs, disconnects

    def begin_refresh(self, ticker: str, ts: int, reason: str) -> list:
        """A REST book request went out (``perpbot_resync``): keep deltas from now on. No events."""
        tr = self.books.get(ticker)
        if tr is None:
            return []
        if tr.state == LIVE:
            tr.state = REFRESH
            tr.pending = []
            tr.overflow = False
        return []

    def on_rest_book(self, ticker: str, contents: Mapping[str, Any], ts: int) -> list:
        """The REST snapshot answering a resync: apply it + the deltas kept since the request.

        Ignored for a book that asked for none (a stale book waits for its WS snapshot).
        """
        tr = self.books.get(ticker)
        if tr is None or tr.state not in (REFRESH, RESYNC):
            return []  # stale books wait for their WS snapshot
        self.stats["resyncs"] += 1
        tr.resyncs += 1
        return self.on_snapshot(ticker, contents, ts, source="REST")

    def rest_failed(self, ticker: str, error: str, ts: int) -> list:
        """The REST book request failed: a periodic refresh is dropped, a resync is asked again."""
        tr = self.books.get(ticker)
        if tr is None:
            return []
        out: list = []
        if tr.state == REFRESH:
            tr.state = LIVE
            tr.pending = []
        elif tr.state == RESYNC:
            tr.reason = f"{tr.reason.split(';')[0]}; REST resync failed ({error[:120]}), retrying"
            tr.healthy_emitted = None
            self.resync_wanted.add(ticker)
            self.status(tr, ts, out)
        return out

    def on_disconnect(self, ts: int, reason: str = "") -> list:
        """The socket dropped: every book is stale until its next WS snapshot; no resync is wanted."""
        out: list = []
        why = f"waiting for snapshot: connection lost{(' (' + reason + ')') if reason else ''}"
        for tr in self.books.values():
            tr.state = STALE
            tr.pending = []
            tr.overflow = False
            tr.reason = why
            tr.healthy_emitted = None
            self.status(tr, ts, out)
        self.resync_wanted.clear()
        return out
