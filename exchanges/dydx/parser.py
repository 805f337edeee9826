"""Raw dYdX indexer messages -> normalized :mod:`perpbot.core.model` events, with book health.

ONE parser serves the live feed (:class:`perpbot.exchanges.dydx.feed.DydxFeed`) and the
recording reader (:class:`perpbot.exchanges.dydx.recording.RecordingReader`), so a replay of a
recording produces exactly the events (and book states) the live feed produced.

Input: the indexer's WebSocket messages (v4-chain ``indexer/services/socks``; shapes in
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

Where the work is done:

- :mod:`perpbot.exchanges.dydx.books` (:class:`~perpbot.exchanges.dydx.books.BookKeeper`):
  ``v4_orderbook`` and the REST resyncs; the book rules (stale until a snapshot, absolute
  sizes, crossed books uncrossed and resynced, bad book data resynced);
- :mod:`perpbot.exchanges.dydx.market_channels`
  (:class:`~perpbot.exchanges.dydx.market_channels.MarketChannels`): trades, markets
  (parameters, oracle, predicted funding), settled funding, candles;
- :mod:`perpbot.exchanges.dydx.values`: the value checks (:class:`BadValue`), and
  :mod:`perpbot.exchanges.dydx.channels`: the channel names;
- here: decoding, dispatch by type and channel, the shared counters (``stats``) and
  the indexer's ``error`` messages.

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
A message of an unexpected shape (a missing key, a wrong type) is counted in
``bad_payloads`` too and ignored.

Every event's ``ts_ns`` is the message's receive time (ns), so events come out in
receive order whether live or replayed.

The names that used to live here (channel names, ``D``, ``BadValue``, ``price_value``,
``size_value``, ``parse_iso_ns``, ``BookTracker``, the book states) are re-exported.
"""

from __future__ import annotations

from collections import deque
from decimal import InvalidOperation
from typing import Any, Iterable, Mapping

import orjson
from loguru import logger

from perpbot.core.model import Market
from perpbot.exchanges.dydx.books import LIVE, REFRESH, RESYNC, STALE, BookKeeper, BookTracker
from perpbot.exchanges.dydx.channels import (
    KNOWN_CHANNELS,
    V4_BLOCK_HEIGHT,
    V4_CANDLES,
    V4_MARKETS,
    V4_ORDERBOOK,
    V4_PARENT_SUBACCOUNTS,
    V4_SUBACCOUNTS,
    V4_TRADES,
)
from perpbot.exchanges.dydx.market_channels import PARAM_FIELDS as _PARAM_FIELDS  # noqa: F401 (old name)
from perpbot.exchanges.dydx.market_channels import MarketChannels
from perpbot.exchanges.dydx.values import EXP_MAX as _EXP_MAX  # noqa: F401 (old name)
from perpbot.exchanges.dydx.values import (
    BadValue,
    D,
    parse_iso_ns,
    price_value,
    size_value,
)
from perpbot.exchanges.dydx.values import decimal_value as _decimal  # noqa: F401 (old name)
from perpbot.exchanges.dydx.values import levels as _levels  # noqa: F401 (old name)

__all__ = [
    "KNOWN_CHANNELS", "LIVE", "REFRESH", "RESYNC", "STALE", "V4_BLOCK_HEIGHT", "V4_CANDLES", "V4_MARKETS",
    "V4_ORDERBOOK", "V4_PARENT_SUBACCOUNTS", "V4_SUBACCOUNTS", "V4_TRADES", "BadValue", "BookTracker", "D",
    "DydxParser", "parse_iso_ns", "price_value", "size_value",
]


class DydxParser:
    """Stateful translator of indexer messages into event batches (see the module docstring).

    :param tickers: markets to emit events for (None: every market seen).
    :param markets: known :class:`~perpbot.core.model.Market` parameters (refreshed by ``v4_markets``).
    :param max_pending: level entries kept per book while stale/resyncing; beyond it the
        kept deltas are dropped and a REST resync follows the snapshot.

    Attributes: ``stats`` (counters: ``messages``, ``malformed``, ``unknown_channel``,
    ``errors``, ``level_entries``, ``snapshots``, ``crossed``, ``resyncs``, ``trades``,
    ``disconnects``, ``bad_payloads``, ``deltas_kept``, ``pending_overflow``); ``errors``
    (the last 20 indexer ``error`` messages); ``height`` (the latest ``v4_block_height``);
    ``books``, ``resync_wanted`` (from :attr:`book_keeper`); ``markets``, ``raw_markets``
    (from :attr:`market_channels`).
    """

    def __init__(self, tickers: Iterable[str] | None = None, markets: Mapping[str, Market] | None = None,
                 *, max_pending: int = 50_000):
        self.tickers = set(tickers) if tickers is not None else None
        self.height: int | None = None
        self.stats: dict[str, int] = {
            "messages": 0, "malformed": 0, "unknown_channel": 0, "errors": 0, "level_entries": 0,
            "snapshots": 0, "crossed": 0, "resyncs": 0, "trades": 0, "disconnects": 0, "bad_payloads": 0,
            "deltas_kept": 0, "pending_overflow": 0,
        }
        self.errors: deque = deque(maxlen=20)  # recent indexer error messages
        self._warned: set[str] = set()
        #: the order books and their health (``v4_orderbook``, REST resyncs)
        self.book_keeper = BookKeeper(self.tickers, max_pending=max_pending, stats=self.stats,
                                      warn_once=self._warn_once)
        #: trades, markets, funding, candles
        self.market_channels = MarketChannels(self.tickers, markets, stats=self.stats, warn_once=self._warn_once,
                                              prices=self.book_keeper.values.prices,
                                              sizes=self.book_keeper.values.sizes)

    # ------------------------------------------------------------------ state shared with the collaborators

    @property
    def books(self) -> dict[str, BookTracker]:
        """``{ticker: BookTracker}`` (the live dict)."""
        return self.book_keeper.books

    @property
    def max_pending(self) -> int:
        """Level entries kept per book while stale/resyncing."""
        return self.book_keeper.max_pending

    @property
    def resync_wanted(self) -> set[str]:
        """Tickers whose book must be resynced from REST (see :meth:`take_resyncs`)."""
        return self.book_keeper.resync_wanted

    @resync_wanted.setter
    def resync_wanted(self, value: set[str]) -> None:
        """Replace the set of tickers to resync."""
        self.book_keeper.resync_wanted = value

    @property
    def markets(self) -> dict[str, Market]:
        """``{ticker: Market}``: the current parameters (the live dict)."""
        return self.market_channels.markets

    @property
    def raw_markets(self) -> dict[str, dict]:
        """``{ticker: indexer row}``: the latest full market rows (the live dict)."""
        return self.market_channels.raw_markets

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(text)

    # ------------------------------------------------------------------ book health (delegated)

    def start_events(self, ts: int) -> list:
        """One ``FeedStatus(healthy=False, "waiting for snapshot")`` per book (feed start)."""
        return self.book_keeper.start_events(ts)

    def book_states(self) -> dict[str, tuple]:
        """``{ticker: (state, reason)}`` for diagnostics and tests."""
        return self.book_keeper.book_states()

    def take_resyncs(self) -> set[str]:
        """Tickers that need a REST book resync (and forget them)."""
        return self.book_keeper.take_resyncs()

    def on_snapshot(self, ticker: str, contents: Mapping[str, Any], ts: int, *, source: str) -> list:
        """A full book (WS ``subscribed`` or REST) for ``ticker``; ``source`` is ``"ws"`` or ``"REST"``."""
        return self.book_keeper.on_snapshot(ticker, contents, ts, source=source)

    def on_rest_book(self, ticker: str, contents: Mapping[str, Any], ts: int) -> list:
        """The REST snapshot answering a resync: apply it + the deltas kept since the request."""
        return self.book_keeper.on_rest_book(ticker, contents, ts)

    def on_rest_funding(self, ticker: str, rows: list, ts: int) -> list:
        """The newest settled hourly rate from ``/v4/historicalFunding`` (deduplicated)."""
        return self.market_channels.on_rest_funding(ticker, rows, ts)

    def on_disconnect(self, ts: int, reason: str = "") -> list:
        """The socket dropped: every book is stale until its next WS snapshot; open candles are forgotten."""
        self.stats["disconnects"] += 1
        out = self.book_keeper.on_disconnect(ts, reason)
        self.market_channels.on_disconnect()
        return out

    # ------------------------------------------------------------------ entry points

    def on_raw(self, raw: Any, recv_ns: int) -> list:
        """A raw WebSocket frame (text/bytes) or an already decoded dict -> events.

        Malformed JSON or a frame that is not an object is counted in
        ``stats["malformed"]`` (warned once) and yields no events.
        """
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
        """One decoded message (indexer or ``perpbot_*`` pseudo-message) -> events.

        Never raises for bad input: a message of an unexpected shape is counted in
        ``stats["bad_payloads"]`` and warned once per channel.
        """
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
                return self.book_keeper.begin_refresh(str(msg.get("id")), recv_ns, str(msg.get("reason", "")))
            if typ == "perpbot_rest":
                ch = msg.get("channel")
                if ch == V4_ORDERBOOK:
                    return self.on_rest_book(str(msg.get("id")), msg.get("contents") or {}, recv_ns)
                if ch == "historical_funding":
                    return self.on_rest_funding(str(msg.get("id")), msg.get("contents") or [], recv_ns)
                if ch == V4_MARKETS:
                    return self.market_channels.markets_snapshot((msg.get("contents") or {}).get("markets") or {},
                                                                 recv_ns)
                return []
            if typ == "perpbot_rest_failed":
                return self.book_keeper.rest_failed(str(msg.get("id")), str(msg.get("error", "")), recv_ns)
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

    def _on_channel(self, msg: Mapping[str, Any], ts: int) -> list:
        ch = msg.get("channel")
        typ = msg["type"]
        contents = msg.get("contents")
        if ch == V4_ORDERBOOK:
            ticker = msg.get("id")
            if typ == "subscribed":
                return self.on_snapshot(ticker, contents or {}, ts, source="ws")
            items = contents if typ == "channel_batch_data" else [contents]
            return self.book_keeper.on_delta(ticker, items, ts)
        if ch == V4_TRADES:
            return self.market_channels.on_trades(msg.get("id"), contents, typ, ts)
        if ch == V4_MARKETS:
            if typ == "subscribed":
                return self.market_channels.markets_snapshot((contents or {}).get("markets") or {}, ts)
            items = contents if typ == "channel_batch_data" else [contents]
            out: list = []
            for c in items:
                self.market_channels.markets_update(c or {}, ts, out)
            return out
        if ch == V4_CANDLES:
            return self.market_channels.on_candles(str(msg.get("id", "")), contents, typ, ts)
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
