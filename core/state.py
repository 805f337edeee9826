"""Per-market state and the read-only view strategies decide on.

:class:`MarketState` applies normalized events in O(1)/O(log n): the L2 book,
a bounded trade tape, OHLCV bars built from trades (or taken from bar feeds),
the oracle price, the funding rate (next and last settled), open interest, and
the market's health (stale or crossed data pauses decisions, with a reason).
Memory is bounded by ring buffers: it does not grow with run time.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any, Mapping

import attrs

from perpbot.core.book import OrderBook
from perpbot.core.model import (
    ZERO,
    Bar,
    BookDelta,
    BookSnapshot,
    FeedStatus,
    FundingRate,
    Market,
    MarketInfo,
    OraclePrice,
    Quote,
    Trade,
)

NS = 1_000_000_000


class BarBuilder:
    """Builds fixed-interval OHLCV bars from trades; keeps the last ``maxlen`` closed bars.

    Bars are aligned to multiples of ``interval_s`` since the epoch; ``Bar.ts_ns``
    is the bar's close time. Bars from a bar feed are appended as they are.
    """

    __slots__ = ("interval_ns", "interval_s", "bars", "_open_start", "_o", "_h", "_l", "_c", "_v", "ticker")

    def __init__(self, ticker: str, interval_s: int = 60, maxlen: int = 1000):
        self.ticker = ticker
        self.interval_s = interval_s
        self.interval_ns = interval_s * NS
        self.bars: deque[Bar] = deque(maxlen=maxlen)
        self._open_start: int | None = None
        self._o = self._h = self._l = self._c = None
        self._v = ZERO

    def on_trade(self, ts_ns: int, price: Decimal, size: Decimal) -> Bar | None:
        """Add a trade; returns the bar that closed because of it, if any."""
        start = ts_ns - ts_ns % self.interval_ns
        closed = None
        if self._open_start is None:
            self._open_start = start
            self._o = self._h = self._l = self._c = price
            self._v = size
            return None
        if start != self._open_start:
            closed = self._close()
            self._open_start = start
            self._o = self._h = self._l = self._c = price
            self._v = size
            return closed
        if price > self._h:
            self._h = price
        elif price < self._l:
            self._l = price
        self._c = price
        self._v += size
        return None

    def _close(self) -> Bar:
        bar = Bar(
            ticker=self.ticker,
            ts_ns=self._open_start + self.interval_ns,
            open=self._o,
            high=self._h,
            low=self._l,
            close=self._c,
            volume=self._v,
            interval_s=self.interval_s,
        )
        self.bars.append(bar)
        return bar

    def add_bar(self, bar: Bar) -> None:
        """Append a bar from a bar feed as it is (closed)."""
        self.bars.append(bar)

    @property
    def current(self) -> Bar | None:
        """The bar still open (not in ``bars``), or None."""
        if self._open_start is None:
            return None
        return Bar(self.ticker, self._open_start + self.interval_ns, self._o, self._h, self._l, self._c, self._v, self.interval_s)


class MarketState:
    """Everything the bot knows about one market, updated on every event.

    Strategies read it through ``market_data.markets[ticker]`` and must not mutate it.

    Public fields (all prices USD, sizes base units, times ns since the epoch):

    - ``market``: the :class:`~perpbot.core.model.Market` (tick, step, margin fractions);
      ``ticker``: its name, e.g. ``"BTC-USD"``.
    - ``book``: the L2 :class:`~perpbot.core.book.OrderBook` (``best_bid_price()``,
      ``best_ask_price()``, ``mid()``, ``is_crossed()``); empty on a bar-fed market.
    - ``trades``: the last ``tape_len`` public :class:`~perpbot.core.model.Trade` events,
      oldest first (a ``deque``); see :meth:`last_trade` and :meth:`high_low`.
    - ``bars``: a :class:`BarBuilder`; ``bars.bars`` holds the closed
      :class:`~perpbot.core.model.Bar` values (oldest first), ``bars.current`` the open
      one; see :meth:`last_bars`.
    - ``last_price``: the last trade price (tick-fed) or bar close (bar-fed), or None.
    - ``quote``: the last best bid/offer :class:`~perpbot.core.model.Quote`, or None.
    - ``oracle_price``: the venue's oracle price, or None.
    - ``funding_rate_1h``: the predicted funding rate for the current hour (a per-hour
      rate; 0.0001 = 1 bp per hour), or None; ``last_funding``: the last settled
      :class:`~perpbot.core.model.FundingRate`; ``next_funding_ns``: the venue's next
      funding time (Unix ns) from the latest prediction that carried one, or None.
    - ``bar_feed``: True when the market is fed bars rather than ticks (see
      :attr:`is_bar_fed`); ``book_ready``: a book snapshot has arrived.
    - ``scores``: the signal engine's :class:`~perpbot.core.signals.Scores` (0-100), or None.
    - ``last_event_ns``, ``events``: time of and count of events applied.

    :param market: dYdX market parameters.
    :param tape_len: trades kept (ring buffer).
    :param bar_interval_s: interval of bars built from trades, seconds.
    :param bars_kept: closed bars kept (ring buffer).
    :param book_depth: price levels kept per side (None: all).
    :param stale_after_s: data older than this (clock time) marks the market stale.
    """

    def __init__(
        self,
        market: Market,
        *,
        tape_len: int = 2000,
        bar_interval_s: int = 60,
        bars_kept: int = 1000,
        book_depth: int | None = 500,
        stale_after_s: float = 30.0,
    ):
        self.market = market
        self.ticker = market.ticker
        self.book = OrderBook(market.ticker, max_depth=book_depth)
        self.trades: deque[Trade] = deque(maxlen=tape_len)
        self.bars = BarBuilder(market.ticker, bar_interval_s, bars_kept)
        self.oracle_price: Decimal | None = market.oracle_price
        self.funding_rate_1h: Decimal | None = None  # running prediction (next)
        self.last_funding: FundingRate | None = None  # last settled
        self.next_funding_ns: int | None = None  # venue's next funding time (Unix ns)
        self.funding_seen = False
        self.quote: Quote | None = None
        self.last_price: Decimal | None = None
        self.last_event_ns = 0
        self.events = 0
        self.stale_after_ns = int(stale_after_s * NS)
        self.feed_unhealthy: str | None = None
        self.book_ready = False  # a snapshot (or a bar feed) has arrived
        self.bar_feed = False
        self.crossed_count = 0
        self.scores = None  # set by the signal engine (perpbot.core.signals.Scores)

    # -- event application ------------------------------------------------

    def apply(self, ev: Any) -> None:
        """Apply one normalized event (unknown kinds are ignored)."""
        self.events += 1
        self.last_event_ns = ev.ts_ns
        t = type(ev)
        if t is BookDelta:
            self.book.apply_delta(ev.bids, ev.asks, ev.ts_ns)
        elif t is Trade:
            self.trades.append(ev)
            self.last_price = ev.price
            self.bars.on_trade(ev.ts_ns, ev.price, ev.size)
        elif t is Quote:
            self.quote = ev
        elif t is BookSnapshot:
            self.book.apply_snapshot(ev.bids, ev.asks, ev.ts_ns)
            self.book_ready = True
        elif t is Bar:
            self.bar_feed = True
            self.bars.add_bar(ev)
            self.last_price = ev.close
        elif t is OraclePrice:
            self.oracle_price = ev.price
        elif t is FundingRate:
            self.funding_seen = True
            if ev.settled:
                self.last_funding = ev
            else:
                self.funding_rate_1h = ev.rate_1h
                if ev.next_funding_ns is not None:
                    self.next_funding_ns = ev.next_funding_ns
        elif t is MarketInfo:
            if ev.market is not None:
                self.market = ev.market
                if ev.market.oracle_price is not None:
                    self.oracle_price = ev.market.oracle_price
        elif t is FeedStatus:
            if ev.healthy:
                self.feed_unhealthy = None
            else:
                # the book cannot be trusted again until the feed sends a fresh snapshot
                self.feed_unhealthy = ev.reason or "feed reported unhealthy"
                self.book_ready = False

    # -- derived ------------------------------------------------------------

    @property
    def is_bar_fed(self) -> bool:
        """True when this market is fed bars (OHLCV), False when it is fed ticks (book and trades)."""
        return self.bar_feed

    def last_trade(self) -> Trade | None:
        """The most recent public trade, or None (always None on a bar-fed market)."""
        return self.trades[-1] if self.trades else None

    def last_bars(self, n: int) -> list[Bar]:
        """The last ``n`` closed bars, oldest first (fewer when fewer exist).

        :raises ValueError: when ``n`` is negative.
        """
        if n < 0:
            raise ValueError(f"last_bars: n must be >= 0, got {n}")
        bars = self.bars.bars
        if n >= len(bars):
            return list(bars)
        return [bars[i] for i in range(len(bars) - n, len(bars))]

    def high_low(self, seconds: float, now_ns: int | None = None) -> tuple[Decimal, Decimal] | None:
        """Highest and lowest traded price (USD) over the last ``seconds`` before ``now_ns``.

        Tick-fed markets use the trade tape (bounded by ``tape_len``); bar-fed markets use
        the closed bars whose close time falls in the window. ``now_ns`` defaults to the
        last event's time. Returns None when nothing traded in the window.

        :raises ValueError: when ``seconds`` is not positive.
        """
        if not seconds > 0:
            raise ValueError(f"high_low: seconds must be > 0, got {seconds}")
        end = self.last_event_ns if now_ns is None else now_ns
        start = end - int(seconds * NS)
        hi = lo = None
        if self.bar_feed:
            for b in reversed(self.bars.bars):
                if b.ts_ns <= start:
                    break
                if b.ts_ns > end:
                    continue
                hi = b.high if hi is None or b.high > hi else hi
                lo = b.low if lo is None or b.low < lo else lo
        else:
            for t in reversed(self.trades):
                if t.ts_ns <= start:
                    break
                if t.ts_ns > end:
                    continue
                hi = t.price if hi is None or t.price > hi else hi
                lo = t.price if lo is None or t.price < lo else lo
        return None if hi is None else (hi, lo)

    def mid(self) -> Decimal | None:
        """Book mid price (USD); else the quote's mid; else the last trade/close; else None."""
        m = self.book.mid()
        if m is not None:
            return m
        if self.quote is not None:
            return (self.quote.bid + self.quote.ask) / 2
        return self.last_price

    def mark_price(self) -> Decimal | None:
        """Oracle price when the feed has one, else mid, else the last trade/close (USD)."""
        if self.oracle_price is not None:
            return self.oracle_price
        return self.mid()

    def best_bid_offer(self) -> tuple[Decimal | None, Decimal | None]:
        """``(best bid, best ask)`` in USD from the book, else the last quote, else the last close
        twice on a bar-fed market; either may be None."""
        bb = self.book.best_bid_price()
        ba = self.book.best_ask_price()
        if bb is None and ba is None and self.quote is not None:
            return self.quote.bid, self.quote.ask
        if bb is None and ba is None and self.bar_feed and self.last_price is not None:
            return self.last_price, self.last_price
        return bb, ba

    def stale_reason(self, now_ns: int, mark: Any = ...) -> str | None:
        """Why decisions on this market must pause now, or None when its data is usable.

        :param mark: this market's :meth:`mark_price` (USD or None) when the caller has just read
            it (the decision cycle's snapshot reads both), else omitted.
        """
        if self.feed_unhealthy:
            return self.feed_unhealthy
        if not self.book_ready and not self.bar_feed:
            return "no book snapshot yet"
        if self.book.is_crossed():
            return f"crossed book (bid {self.book.best_bid_price()} >= ask {self.book.best_ask_price()})"
        if self.last_event_ns and now_ns - self.last_event_ns > self.stale_after_ns and not self.bar_feed:
            age = (now_ns - self.last_event_ns) / NS
            return f"stale data: last event {age:.1f}s ago"
        if (self.mark_price() if mark is ... else mark) is None:
            return "no price yet"
        return None


@attrs.define
class MarketData:
    """The read-only view a strategy decides on (one per decision cycle).

    :param ts_ns: decision time (clock).
    :param markets: :class:`MarketState` by ticker (do not mutate).
    :param tradable: tickers whose data is fresh; others are in ``paused`` with a reason.
    :param positions: open positions by ticker (:class:`~perpbot.core.model.Position`).
    :param open_orders: this bot's open orders (:class:`~perpbot.core.model.OrderInfo`) by client id.
    :param balance: account :class:`~perpbot.core.model.Balance` (USD).
    :param marks: mark price per ticker, USD.
    :param venues: per-venue views for multi-venue strategies: name -> MarketData-like dict.
    """

    ts_ns: int
    markets: Mapping[str, MarketState]
    tradable: tuple
    paused: Mapping[str, str]
    positions: Mapping[str, Any]
    open_orders: Mapping[int, Any]
    balance: Any
    marks: Mapping[str, Decimal]
    venues: Mapping[str, Any] = attrs.Factory(dict)

    def scores(self, ticker: str):
        """The ticker's :class:`~perpbot.core.signals.Scores` (0-100 each), or None before warm-up.

        :raises KeyError: for a ticker the bot does not trade.
        """
        return self.markets[ticker].scores

    def position_size(self, ticker: str) -> Decimal:
        """Signed position size in base units (+ long, - short, 0 flat)."""
        p = self.positions.get(ticker)
        return p.size if p is not None else ZERO
