"""Raw dYdX indexer messages -> normalized :mod:`perpbot.core.model` events, with book health.

ONE parser serves the live feed (:class:`perpbot.exchanges.dydx.feed.DydxFeed`) and the
recording reader (:class:`perpbot.exchanges.dydx.recording.RecordingReader`), so a replay of a
recording produces exactly the events (and book states) the live feed produced.

Input: the indexer's WebSocket messages (chain ``indexer/services/socks``; shapes in
``indexer/packages/postgres/src/types/websocket-message-types.ts``) plus a few
pseudo-messages the live feed writes into the same stream (and so into recordings),
all with ``"type"`` starting with ``perpbot_``:

- ``{"type":"perpbot_disconnected","reason":str}``: the socket dropped; every book is
  stale until its fresh ``subscribed`` snapshot.
- ``{"type":"perpbot_resync","id":TICKER,"reason":str}``: a REST order-book request
  went out; deltas from now on are also kept to be re-applied on top of its answer.
- ``{"type":"perpbot_rest","channel":"v4_orderbook","id":TICKER,"contents":{bids,asks}}``:
  the REST snapshot (``/v4/orderbooks/perpetualMarket/T``, uncrossed by the indexer).
- ``{"type":"perpbot_rest_failed","id":TICKER,"error":str}``: that request failed.
- ``{"type":"perpbot_rest","channel":"historical_funding","id":TICKER,"contents":[rows]}``:
  ``/v4/historicalFunding/T`` (newest first, ``rate`` per hour).
- ``{"type":"perpbot_rest","channel":"v4_markets","contents":{"markets":{...}}}``:
  ``/v4/perpetualMarkets`` at start.

Book rules (docs ``interaction/data/watch-orderbook.mdx``; vulcan ``handlers/handler.ts``):

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
  healthy again when the REST snapshot has been applied and the book is not crossed.

Values are checked at the parser, as the Binance replay parser does
(``perpbot.exchanges.replay.binance``): a price must be a finite, positive decimal string and
a size a finite, non-negative one (``"0"`` deletes a level; a trade's size must be positive);
an oracle price must be finite and positive, a funding rate finite. Nothing else can be
what the venue did (the chain's prices are subticks and its sizes quantums, both
``uint64`` in v4-chain ``proto/dydxprotocol/clob/order.proto``, message ``Order``).
A message carrying such a value emits no event from it and is counted in
``stats["bad_payloads"]``; when it is order-book data, the book is
marked unhealthy (``"bad book data ..."``) and resynced from REST like a crossed book (a
dropped update leaves the book unknown), via ``resync_wanted`` / ``take_resyncs``.

Every event's ``ts_ns`` is the message's receive time (ns), so events come out in
receive order whether live or replayed.
"""

from __future__ import annotations

import calendar
from collections import deque
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping

import orjson
from loguru import logger

from perpbot.core.book import OrderBook
from perpbot.core.model import (
    Bar,
    BookDelta,
    BookSnapshot,
    FeedStatus,
    FundingRate,
    Market,
    MarketInfo,
    OraclePrice,
    Side,
    Trade,
)
from perpbot.exchanges.dydx.config import CANDLE_RESOLUTIONS

V4_ORDERBOOK = "v4_orderbook"
V4_TRADES = "v4_trades"
V4_MARKETS = "v4_markets"
V4_CANDLES = "v4_candles"
V4_SUBACCOUNTS = "v4_subaccounts"
V4_PARENT_SUBACCOUNTS = "v4_parent_subaccounts"
V4_BLOCK_HEIGHT = "v4_block_height"
KNOWN_CHANNELS = frozenset(
    {V4_ORDERBOOK, V4_TRADES, V4_MARKETS, V4_CANDLES, V4_SUBACCOUNTS, V4_PARENT_SUBACCOUNTS, V4_BLOCK_HEIGHT}
)

#: market fields whose change means new trading parameters (-> MarketInfo)
_PARAM_FIELDS = frozenset(
    {
        "initialMarginFraction", "maintenanceMarginFraction", "openInterest", "openInterestLowerCap",
        "openInterestUpperCap", "status", "tickSize", "stepSize", "atomicResolution",
        "quantumConversionExponent", "stepBaseQuantums", "subticksPerTick", "marketType",
        "defaultFundingRate1H", "clobPairId",
    }
)

STALE = "stale"  # waiting for a WS snapshot
LIVE = "live"  # healthy
REFRESH = "refresh"  # healthy, periodic REST snapshot in flight (deltas kept)
RESYNC = "resync"  # crossed: unhealthy until the REST snapshot


def D(value: Any) -> Decimal:
    """Exact Decimal from the indexer's decimal strings (ints accepted)."""
    if isinstance(value, str):
        return Decimal(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    raise InvalidOperation(f"not a decimal string: {value!r}")


class BadValue(ValueError):
    """A value the venue cannot have sent (a non-finite or non-positive price, a negative or
    non-finite size, ...): the message carrying it is rejected and counted."""


#: |decimal exponent| of a sane price, size or rate (rejects "1e999999999"), as the Binance parser
_EXP_MAX = 30


def _decimal(value: Any, what: str) -> Decimal:
    try:
        d = D(value)
    except (InvalidOperation, ValueError):
        raise BadValue(f"{what} {value!r} is not a decimal string") from None
    if not d.is_finite():
        raise BadValue(f"{what} {value!r} must be finite")
    if d and not -_EXP_MAX <= d.adjusted() <= _EXP_MAX:
        raise BadValue(f"{what} {value!r} is out of range")
    return d


def price_value(value: Any, what: str = "price") -> Decimal:
    """A finite, positive decimal string -> Decimal.

    :raises BadValue: naming ``what`` and the value otherwise (NaN, Infinity, 0, -5, 1e99, 1.5 as a float).
    """
    d = _decimal(value, what)
    if d <= 0:
        raise BadValue(f"{what} {value!r} must be positive")
    return d


def size_value(value: Any, what: str = "size", *, zero_ok: bool = True) -> Decimal:
    """A finite decimal string >= 0 (> 0 unless ``zero_ok``) -> Decimal.

    :raises BadValue: naming ``what`` and the value otherwise.
    """
    d = _decimal(value, what)
    if d < 0 or (not zero_ok and d == 0):
        raise BadValue(f"{what} {value!r} must be {'non-negative' if zero_ok else 'positive'}")
    return d


def parse_iso_ns(text: str) -> int:
    """``"2024-08-12T14:06:01.172Z"`` -> ns since the epoch (UTC)."""
    t = text.rstrip("Z")
    if "." in t:
        main, frac = t.split(".", 1)
    else:
        main, frac = t, "0"
    dt = datetime.strptime(main, "%Y-%m-%dT%H:%M:%S")
    secs = calendar.timegm(dt.timetuple())
    frac = (frac + "000000000")[:9]
    return secs * 1_000_000_000 + int(frac)


def _levels(raw: Iterable, side: str = "level") -> list:
    """Indexer levels (``{price,size}`` dicts or ``[price, size]`` pairs) -> Decimal pairs.

    :raises BadValue: for a level that is not a pair, a price that is not finite and
        positive, or a size that is not finite and >= 0 (``"0"`` deletes).
    """
    if raw is None:
        return []
    if not isinstance(raw, (list, tuple)):
        raise BadValue(f"{side}s {raw!r} is not a list of levels")
    out = []
    for lv in raw:
        try:
            p, q = (lv["price"], lv["size"]) if isinstance(lv, dict) else (lv[0], lv[1])
        except (KeyError, IndexError, TypeError):
            raise BadValue(f"{side} {lv!r} is not a (price, size) pair") from None
        out.append((price_value(p, f"{side} price"), size_value(q, f"{side} size")))
    return out


class BookTracker:
    """One market's book as the feed sees it, with its health state."""

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
        return self.state in (LIVE, REFRESH)


class DydxParser:
    """Stateful translator of indexer messages into event batches.

    :param tickers: markets to emit events for (None: every market seen).
    :param markets: known :class:`~perpbot.core.model.Market` parameters (refreshed by ``v4_markets``).
    :param max_pending: level entries kept per book while stale/resyncing; beyond it the
        kept deltas are dropped and a REST resync follows the snapshot.
    """

    def __init__(self, tickers: Iterable[str] | None = None, markets: Mapping[str, Market] | None = None,
                 *, max_pending: int = 50_000):
        self.tickers = set(tickers) if tickers is not None else None
        self.markets: dict[str, Market] = dict(markets or {})
        self.raw_markets: dict[str, dict] = {}
        self.books: dict[str, BookTracker] = {}
        for t in self.tickers or ():
            self.books[t] = BookTracker(t)
        self.max_pending = max_pending
        self.resync_wanted: set[str] = set()
        self.height: int | None = None
        self._candles: dict[tuple[str, str], dict] = {}
        self._last_funding: dict[str, str] = {}
        self.stats: dict[str, int] = {
            "messages": 0, "malformed": 0, "unknown_channel": 0, "errors": 0, "level_entries": 0,
            "snapshots": 0, "crossed": 0, "resyncs": 0, "trades": 0, "disconnects": 0, "bad_payloads": 0,
            "deltas_kept": 0, "pending_overflow": 0,
        }
        self.errors: deque = deque(maxlen=20)  # recent indexer error messages
        self._warned: set[str] = set()

    # ------------------------------------------------------------------ helpers

    def _want(self, ticker: str) -> bool:
        return self.tickers is None or ticker in self.tickers

    def _tracker(self, ticker: str) -> BookTracker | None:
        tr = self.books.get(ticker)
        if tr is None and self.tickers is None:
            tr = self.books[ticker] = BookTracker(ticker)
        return tr

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(text)

    def _status(self, tr: BookTracker, ts: int, out: list) -> None:
        """Append a FeedStatus when the tracker's health changed since the last one."""
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
            self._status(tr, ts, out)
        return out

    def book_states(self) -> dict[str, tuple]:
        """``{ticker: (state, reason)}`` for diagnostics and tests."""
        return {t: (tr.state, "" if tr.healthy else tr.reason) for t, tr in self.books.items()}

    # ------------------------------------------------------------------ entry points

    def on_raw(self, raw: Any, recv_ns: int) -> list:
        """A raw WebSocket frame (text/bytes) or an already decoded dict."""
        if isinstance(raw, (str, bytes, bytearray, memoryview)):
            try:
                msg = orjson.loads(raw)
            except orjson.JSONDecodeError:
                self.stats["malformed"] += 1
                self._warn_once("malformed", f"dYdX indexer sent malformed JSON (ignored, counted): {bytes(raw[:80]) if not isinstance(raw, str) else raw[:80]!r}")
                return []
            if not isinstance(msg, dict):
                self.stats["malformed"] += 1
                return []
            return self.on_message(msg, recv_ns)
        return self.on_message(raw, recv_ns)

    def on_message(self, msg: Mapping[str, Any], recv_ns: int) -> list:
        """One decoded message (indexer or ``perpbot_*`` pseudo-message) -> events."""
        self.stats["messages"] += 1
        typ = msg.get("type")
        try:
            if typ in ("channel_data", "channel_batch_data", "subscribed"):
                return self._on_channel(msg, recv_ns)
            if typ == "connected" or typ == "unsubscribed":
                return []
            if typ == "error":
                self.stats["errors"] += 1
                self.errors.append(dict(msg))
                logger.warning(
                    f"dYdX indexer error: {msg.get('message')}"
                    + (f" (channel {msg.get('channel')}, id {msg.get('id')})" if msg.get("channel") else "")
                )
                return []
            if typ == "perpbot_disconnected":
                return self.on_disconnect(recv_ns, str(msg.get("reason", "")))
            if typ == "perpbot_resync":
                return self._begin_refresh(str(msg.get("id")), recv_ns, str(msg.get("reason", "")))
            if typ == "perpbot_rest":
                ch = msg.get("channel")
                if ch == V4_ORDERBOOK:
                    return self.on_rest_book(str(msg.get("id")), msg.get("contents") or {}, recv_ns)
                if ch == "historical_funding":
                    return self.on_rest_funding(str(msg.get("id")), msg.get("contents") or [], recv_ns)
                if ch == V4_MARKETS:
                    return self._markets_snapshot((msg.get("contents") or {}).get("markets") or {}, recv_ns)
                return []
            if typ == "perpbot_rest_failed":
                return self._rest_failed(str(msg.get("id")), str(msg.get("error", "")), recv_ns)
        except (KeyError, TypeError, ValueError, InvalidOperation, AttributeError, IndexError) as exc:
            self.stats["bad_payloads"] += 1
            self._warn_once(
                f"bad:{msg.get('channel')}",
                f"dYdX indexer {msg.get('channel')} message with an unexpected shape ignored "
                f"({type(exc).__name__}: {exc}); counted in stats['bad_payloads']",
            )
            return []
        self._warn_once(f"type:{typ}", f"dYdX indexer message of unknown type {typ!r} ignored")
        return []

    # ------------------------------------------------------------------ channels

    def _on_channel(self, msg: Mapping[str, Any], ts: int) -> list:
        ch = msg.get("channel")
        typ = msg["type"]
        contents = msg.get("contents")
        if ch == V4_ORDERBOOK:
            ticker = msg.get("id")
            if typ == "subscribed":
                return self.on_snapshot(ticker, contents or {}, ts, source="ws")
            items = contents if typ == "channel_batch_data" else [contents]
            return self._on_delta(ticker, items, ts)
        if ch == V4_TRADES:
            return self._on_trades(msg.get("id"), contents, typ, ts)
        if ch == V4_MARKETS:
            if typ == "subscribed":
                return self._markets_snapshot((contents or {}).get("markets") or {}, ts)
            items = contents if typ == "channel_batch_data" else [contents]
            out: list = []
            for c in items:
                self._markets_update(c or {}, ts, out)
            return out
        if ch == V4_CANDLES:
            return self._on_candles(str(msg.get("id", "")), contents, typ, ts)
        if ch == V4_BLOCK_HEIGHT:
            items = contents if typ == "channel_batch_data" else [contents]
            for c in items:
                h = (c or {}).get("height") or (c or {}).get("blockHeight")
                if h is not None:
                    self.height = int(h)
            return []
        if ch in (V4_SUBACCOUNTS, V4_PARENT_SUBACCOUNTS):
            return []  # account state: perpbot.exchanges.dydx.account
        self.stats["unknown_channel"] += 1
        self._warn_once(f"ch:{ch}", f"dYdX indexer message on unknown channel {ch!r} ignored (counted)")
        return []

    # -- order book -------------------------------------------------------------

    def on_snapshot(self, ticker: str, contents: Mapping[str, Any], ts: int, *, source: str) -> list:
        """A full book (WS ``subscribed`` or REST) for ``ticker``."""
        tr = self._tracker(ticker)
        if tr is None:
            return []
        try:
            if not isinstance(contents, Mapping):
                raise BadValue(f"book {contents!r} is not an object")
            bids = sorted(_levels(contents.get("bids"), "bid"), key=lambda lv: lv[0], reverse=True)
            asks = sorted(_levels(contents.get("asks"), "ask"), key=lambda lv: lv[0])
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
        out.append(self._book_snapshot(tr, ts))
        if overflow:
            tr.state = RESYNC
            tr.reason = f"book {ticker}: deltas lost while waiting for the {source} snapshot; resyncing from REST"
            self.resync_wanted.add(ticker)
        else:
            tr.state = LIVE
            tr.reason = ""
        self._status(tr, ts, out)
        return out

    def _book_snapshot(self, tr: BookTracker, ts: int) -> BookSnapshot:
        return BookSnapshot(
            tr.ticker,
            ts,
            bids=tuple(tr.book.levels("bid")),
            asks=tuple(tr.book.levels("ask")),
        )

    def _on_delta(self, ticker: str, items: Iterable, ts: int) -> list:
        tr = self._tracker(ticker)
        if tr is None:
            return []
        bids: list = []
        asks: list = []
        try:
            if not isinstance(items, (list, tuple)):
                raise BadValue(f"batch {items!r} is not a list of updates")
            for c in items:
                if not c:
                    continue
                if not isinstance(c, Mapping):
                    raise BadValue(f"update {c!r} is not an object")
                if "bids" in c:
                    bids.extend(_levels(c["bids"], "bid"))
                if "asks" in c:
                    asks.extend(_levels(c["asks"], "ask"))
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
        tr.book.apply_delta(bids, asks, ts)
        out: list = [BookDelta(ticker, ts, bids=tuple(bids), asks=tuple(asks))]
        if tr.book.is_crossed():
            out.pop()  # the corrected full book below supersedes this delta
            self._crossed(tr, ts, out)
        return out

    def _keep(self, tr: BookTracker, bids: list, asks: list) -> None:
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
        self._warn_once(f"badbook:{tr.ticker}", f"dYdX order book {tr.ticker}: update rejected ({what}); "
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
        self._status(tr, ts, out)

    def _bad_snapshot(self, tr: BookTracker, ts: int, source: str, what: str) -> list:
        """A WS or REST snapshot with a value the venue cannot have sent: not applied.

        Counted in ``stats["bad_payloads"]``; the book is emptied (its old levels are no
        longer the venue's), stays unhealthy and is resynced from REST.
        """
        self.stats["bad_payloads"] += 1
        self._warn_once(f"badbook:{tr.ticker}", f"dYdX order book {tr.ticker}: {source} snapshot rejected "
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
        self._status(tr, ts, out)
        return out

    def _crossed(self, tr: BookTracker, ts: int, out: list) -> None:
        bb, ba = tr.book.best_bid_price(), tr.book.best_ask_price()
        removed = tr.book.uncross()
        self.stats["crossed"] += 1
        tr.crossings += 1
        out.append(self._book_snapshot(tr, ts))
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
        self._status(tr, ts, out)

    def _begin_refresh(self, ticker: str, ts: int, reason: str) -> list:
        """A REST book request went out: keep deltas from now on."""
        tr = self.books.get(ticker)
        if tr is None:
            return []
        if tr.state == LIVE:
            tr.state = REFRESH
            tr.pending = []
            tr.overflow = False
        return []

    def on_rest_book(self, ticker: str, contents: Mapping[str, Any], ts: int) -> list:
        """The REST snapshot answering a resync: apply it + the deltas kept since the request."""
        tr = self.books.get(ticker)
        if tr is None or tr.state not in (REFRESH, RESYNC):
            return []  # stale books wait for their WS snapshot
        self.stats["resyncs"] += 1
        tr.resyncs += 1
        return self.on_snapshot(ticker, contents, ts, source="REST")

    def _rest_failed(self, ticker: str, error: str, ts: int) -> list:
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
            self._status(tr, ts, out)
        return out

    def on_disconnect(self, ts: int, reason: str = "") -> list:
        """The socket dropped: every book is stale until its next WS snapshot."""
        self.stats["disconnects"] += 1
        out: list = []
        why = f"waiting for snapshot: connection lost{(' (' + reason + ')') if reason else ''}"
        for tr in self.books.values():
            tr.state = STALE
            tr.pending = []
            tr.overflow = False
            tr.reason = why
            tr.healthy_emitted = None
            self._status(tr, ts, out)
        self.resync_wanted.clear()
        self._candles.clear()
        return out

    def take_resyncs(self) -> set[str]:
        """Tickers that need a REST book resync (and forget them)."""
        wanted, self.resync_wanted = self.resync_wanted, set()
        return wanted

    # -- trades -------------------------------------------------------------------

    def _on_trades(self, ticker: str, contents: Any, typ: str, ts: int) -> list:
        if typ == "subscribed" or not self._want(ticker):
            return []  # the history is not replayed as fresh trades
        items = contents if typ == "channel_batch_data" else [contents]
        out = []
        bad = ""
        for c in items:
            for t in (c or {}).get("trades") or ():
                try:
                    price = price_value(t["price"], "trade price")
                    size = size_value(t["size"], "trade size", zero_ok=False)
                except BadValue as exc:
                    bad = bad or str(exc)
                    continue  # that trade only: the others in the message are real
                out.append(Trade(ticker, ts, price=price, size=size,
                                 side=Side.parse(t["side"]), trade_id=str(t.get("id", ""))))
        if bad:
            self._bad_value(f"trades:{ticker}", f"dYdX trades {ticker}: {bad}; that trade dropped")
        self.stats["trades"] += len(out)
        return out

    def _bad_value(self, key: str, text: str) -> None:
        """Count one message with a rejected value (``stats["bad_payloads"]``); warn once per ``key``."""
        self.stats["bad_payloads"] += 1
        self._warn_once(f"bad:{key}", f"{text} (counted in stats['bad_payloads'])")

    def _oracle(self, ticker: str, value: Any, ts: int, out: list) -> bool:
        """Append an OraclePrice for a finite, positive ``value``; count and drop anything else."""
        try:
            price = price_value(value, "oracle price")
        except BadValue as exc:
            self._bad_value(f"oracle:{ticker}", f"dYdX market {ticker}: {exc}; oracle price dropped")
            return False
        out.append(OraclePrice(ticker, ts, price=price))
        return True

    def _funding(self, ticker: str, value: Any, ts: int, out: list) -> None:
        """Append a predicted FundingRate for a finite ``value``; count and drop anything else."""
        try:
            rate = _decimal(value, "nextFundingRate")
        except BadValue as exc:
            self._bad_value(f"funding:{ticker}", f"dYdX market {ticker}: {exc}; funding rate dropped")
            return
        out.append(FundingRate(ticker, ts, rate_1h=rate, settled=False))

    # -- markets ------------------------------------------------------------------

    def _market_events(self, ticker: str, payload: dict, ts: int, out: list) -> None:
        try:
            market = Market.from_indexer(payload)
        except (ValueError, TypeError) as exc:
            self.stats["bad_payloads"] += 1
            self._warn_once(f"mkt:{ticker}", f"dYdX market {ticker}: unusable parameters ({exc})")
            return
        self.markets[ticker] = market
        out.append(MarketInfo(ticker, ts, market=market))

    def _markets_snapshot(self, markets: Mapping[str, Any], ts: int) -> list:
        out: list = []
        for ticker, payload in markets.items():
            if not self._want(ticker) or not isinstance(payload, dict):
                continue
            oracle = self._market_row(ticker, payload, ts, out)
            out.extend(oracle)
            if payload.get("nextFundingRate") is not None:
                self._funding(ticker, payload["nextFundingRate"], ts, out)
        return out

    def _market_row(self, ticker: str, payload: Mapping[str, Any], ts: int, out: list) -> list:
        """Keep a full market row and append its MarketInfo; returns its OraclePrice event (or none).

        A bad oracle price is counted and left out of the row, so it reaches neither an
        OraclePrice nor ``Market.oracle_price``.
        """
        raw = dict(payload)
        oracle: list = []
        if raw.get("oraclePrice") not in (None, ""):  # none yet for a new listing
            if not self._oracle(ticker, raw["oraclePrice"], ts, oracle):
                del raw["oraclePrice"]
        self.raw_markets[ticker] = raw
        self._market_events(ticker, raw, ts, out)
        return oracle

    def _markets_update(self, contents: Mapping[str, Any], ts: int, out: list) -> None:
        for ticker, fields in (contents.get("trading") or {}).items():
            if not self._want(ticker) or not isinstance(fields, dict):
                continue
            raw = self.raw_markets.get(ticker)
            if raw is None:
                continue  # no base parameters yet (the snapshot comes first)
            changed = {k for k, v in fields.items() if raw.get(k) != v}
            raw.update(fields)
            if changed & _PARAM_FIELDS:
                self._market_events(ticker, raw, ts, out)
            if "nextFundingRate" in changed and fields.get("nextFundingRate") is not None:
                self._funding(ticker, fields["nextFundingRate"], ts, out)
        for ticker, p in (contents.get("oraclePrices") or {}).items():
            if not self._want(ticker) or not isinstance(p, dict) or p.get("oraclePrice") in (None, ""):
                continue
            if self._oracle(ticker, p["oraclePrice"], ts, out):
                raw = self.raw_markets.get(ticker)
                if raw is not None:
                    raw["oraclePrice"] = p["oraclePrice"]
        for ticker, payload in (contents.get("markets") or {}).items():  # new listings / full rows
            if self._want(ticker) and isinstance(payload, dict) and "atomicResolution" in payload:
                self._market_row(ticker, payload, ts, out)

    # -- funding ------------------------------------------------------------------

    def on_rest_funding(self, ticker: str, rows: list, ts: int) -> list:
        """The newest settled hourly rate from ``/v4/historicalFunding`` (deduplicated)."""
        if not rows or not self._want(ticker):
            return []
        newest = max(rows, key=lambda r: int(r.get("effectiveAtHeight") or 0))
        key = str(newest.get("effectiveAt") or newest.get("effectiveAtHeight"))
        if self._last_funding.get(ticker) == key:
            return []
        self._last_funding[ticker] = key
        price = newest.get("price")
        try:
            rate = _decimal(newest["rate"], "funding rate")
            oracle = price_value(price, "funding oracle price") if price else None
        except BadValue as exc:
            self._bad_value(f"hfunding:{ticker}", f"dYdX historical funding {ticker}: {exc}; dropped")
            return []
        return [FundingRate(ticker, ts, rate_1h=rate, settled=True, interval_h=1, oracle_price=oracle)]

    # -- candles ------------------------------------------------------------------

    def _on_candles(self, cid: str, contents: Any, typ: str, ts: int) -> list:
        ticker, _, res = cid.partition("/")
        if not self._want(ticker) or res not in CANDLE_RESOLUTIONS:
            return []
        key = (ticker, res)
        if typ == "subscribed":
            rows = (contents or {}).get("candles") or []
            if rows:
                self._candles[key] = max(rows, key=lambda c: c.get("startedAt", ""))
            return []
        items = contents if typ == "channel_batch_data" else [contents]
        out = []
        interval = CANDLE_RESOLUTIONS[res]
        for c in items:
            if not c:
                continue
            prev = self._candles.get(key)
            if prev is not None and prev.get("startedAt") != c.get("startedAt") and \
                    c.get("startedAt", "") > prev.get("startedAt", ""):
                start = parse_iso_ns(prev["startedAt"])
                try:
                    o, h, lo, cl = (price_value(prev[k], f"candle {k}") for k in ("open", "high", "low", "close"))
                    vol = size_value(prev["baseTokenVolume"], "candle baseTokenVolume")
                except BadValue as exc:
                    self._bad_value(f"candle:{cid}", f"dYdX candle {cid}: {exc}; bar dropped")
                else:
                    out.append(Bar(ticker, start + interval * 1_000_000_000, open=o, high=h, low=lo, close=cl,
                                   volume=vol, interval_s=interval))
            if prev is None or c.get("startedAt", "") >= prev.get("startedAt", ""):
                self._candles[key] = c
        return out
