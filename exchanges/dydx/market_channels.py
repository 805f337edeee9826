"""Per-channel parsers for the market data that is not the order book.

- ``v4_trades``: each trade -> :class:`~perpbot.core.model.Trade` (price USD, size base
  units > 0); the ``subscribed`` history is not replayed as fresh trades.
- ``v4_markets``: the ``subscribed`` snapshot / REST ``/v4/perpetualMarkets`` rows ->
  :class:`~perpbot.core.model.MarketInfo` (:meth:`perpbot.core.model.Market.from_indexer`),
  :class:`~perpbot.core.model.OraclePrice` (USD) and the predicted
  :class:`~perpbot.core.model.FundingRate` (``nextFundingRate``, per hour, ``settled=False``);
  updates (``{trading?, oraclePrices?}``, v4-chain
  ``indexer/packages/postgres/src/types/websocket-message-types.ts``
  ``MarketMessageContents``; a ``markets`` map of full rows, as new listings carry, is
  accepted too) emit a new MarketInfo only when a trading parameter changed.
- ``historical_funding`` (REST ``/v4/historicalFunding/T``, newest first): the newest
  settled hourly rate (``settled=True``, ``interval_h=1``), once per ``effectiveAt``.
- ``v4_candles`` (id ``TICKER/RESOLUTION``): a candle is emitted as a
  :class:`~perpbot.core.model.Bar` when the next one starts (the indexer updates the open
  candle in place), ``ts_ns`` = its end; ``volume`` = ``baseTokenVolume``.

Values are checked with :mod:`perpbot.exchanges.dydx.values`: a bad trade, oracle price,
funding rate or candle drops that event only, counted in ``stats["bad_payloads"]``.

Imports :mod:`perpbot.core.model`, :mod:`perpbot.exchanges.dydx.config` (candle
resolutions) and :mod:`perpbot.exchanges.dydx.values` only.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from perpbot.core.records import plain_maker
from perpbot.core.model import Bar, FundingRate, Market, MarketInfo, OraclePrice, Side, Trade
from perpbot.exchanges.dydx.config import CANDLE_RESOLUTIONS
from perpbot.exchanges.dydx.values import CACHE_MAX, BadValue, decimal_value, parse_iso_ns, price_value, size_value

#: the indexer's trade sides (``side`` of a ``v4_trades`` trade: ``BUY`` / ``SELL``, v4-chain
#: ``indexer/packages/postgres/src/types/websocket-message-types.ts`` ``TradeContent``); other
#: spellings go through :meth:`perpbot.core.model.Side.parse`
_SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}
#: ``Trade(**fields)`` without ``__init__`` (a frozen class storing its fields as given)
_trade = plain_maker(Trade)

#: market fields whose change means new trading parameters (-> MarketInfo)
PARAM_FIELDS = frozenset(
    {
        "initialMarginFraction", "maintenanceMarginFraction", "openInterest", "openInterestLowerCap",
        "openInterestUpperCap", "status", "tickSize", "stepSize", "atomicResolution",
        "quantumConversionExponent", "stepBaseQuantums", "subticksPerTick", "marketType",
        "defaultFundingRate1H", "clobPairId",
    }
)


class MarketChannels:
    """Trades, markets (parameters, oracle, predicted funding), settled funding and candles.

    Part of :class:`~perpbot.exchanges.dydx.parser.DydxParser`, which owns the shared
    ``stats`` and ``warn_once``. Every method returns (or appends to ``out``) the events
    to emit, ``ts_ns`` = the message's receive time (ns).

    :param tickers: the markets to emit events for (None: every market seen).
    :param markets: known :class:`~perpbot.core.model.Market` parameters (updated in place
        by ``v4_markets``: ``self.markets`` is that dict's copy, read by the feed).
    :param stats: the parser's counters (``trades`` and ``bad_payloads`` are counted here).
    :param warn_once: ``(key, text)``: log ``text`` once per ``key``.
    :param prices, sizes: the book levels' caches of checked values (``str -> Decimal``): a
        trade's price or size string found there skips the conversion (a cached zero size is
        still refused as a trade size); one not found is converted, checked and added (a
        trade's price is finite and positive and its size finite and positive, so either is a
        valid book value too; bounded as the book's: cleared at
        :data:`~perpbot.exchanges.dydx.values.CACHE_MAX` entries). None: a cache of its own.
    """

    def __init__(self, tickers: set[str] | None, markets: Mapping[str, Market] | None, *,
                 stats: dict[str, int], warn_once: Callable[[str, str], None],
                 prices: dict[str, Any] | None = None, sizes: dict[str, Any] | None = None):
        self.tickers = tickers
        #: ``str -> Decimal`` caches of checked prices (finite, > 0) and sizes (finite,
        #: >= 0): the book's (:class:`perpbot.exchanges.dydx.books.LevelValues`)
        self.prices: dict[str, Any] = prices if prices is not None else {}
        self.sizes: dict[str, Any] = sizes if sizes is not None else {}
        self.markets: dict[str, Market] = dict(markets or {})
        #: the latest full indexer row of each market (updates are merged into it)
        self.raw_markets: dict[str, dict] = {}
        self.stats = stats
        self.warn_once = warn_once
        self._candles: dict[tuple[str, str], dict] = {}
        self._last_funding: dict[str, str] = {}

    def want(self, ticker: str) -> bool:
        """True for a ticker events are emitted for."""
        return self.tickers is None or ticker in self.tickers

    def bad_value(self, key: str, text: str) -> None:
        """Count one message with a rejected value (``stats["bad_payloads"]``); warn once per ``key``."""
        self.stats["bad_payloads"] += 1
        self.warn_once(f"bad:{key}", f"{text} (counted in stats['bad_payloads'])")

    def on_disconnect(self) -> None:
        """The socket dropped: the open candles are forgotten (the next snapshot restarts them)."""
        self._candles.clear()

    # -- trades -------------------------------------------------------------------

    def on_trades(self, ticker: str, contents: Any, typ: str, ts: int) -> list:
        """A ``v4_trades`` message -> Trade events (a bad trade is dropped and counted).

        :raises KeyError, TypeError, AttributeError: for a message of an unexpected shape
            (the parser counts it in ``bad_payloads``).
        """
        if typ == "subscribed" or (self.tickers is not None and ticker not in self.tickers):
            return []  # the history is not replayed as fresh trades
        items = contents if typ == "channel_batch_data" else [contents]
        out = []
        bad = ""
        prices = self.prices
        sizes = self.sizes
        for c in items:
            for t in (c or {}).get("trades") or ():
                # a string the book levels already converted is served from their caches
                # (a cached price is finite and positive; a cached size is finite and >= 0,
                # so a zero one is re-checked below for its error)
                p = t["price"]
                try:
                    price = prices.get(p)
                except TypeError:  # unhashable: price_value names it
                    price = None
                try:
                    if price is None:
                        price = price_value(p, "trade price")
                        if type(p) is str:  # kept for the next trades (and the book's levels)
                            if len(prices) >= CACHE_MAX:
                                prices.clear()
                            prices[p] = price
                    q = t["size"]
                    try:
                        size = sizes.get(q)
                    except TypeError:
                        size = None
                    if not size:
                        size = size_value(q, "trade size", zero_ok=False)
                        if type(q) is str:
                            if len(sizes) >= CACHE_MAX:
                                sizes.clear()
                            sizes[q] = size
                except BadValue as exc:
                    bad = bad or str(exc)
                    continue  # that trade only: the others in the message are real
                s = t["side"]
                side = _SIDES.get(s) if type(s) is str else None
                out.append(_trade(ticker=ticker, ts_ns=ts, price=price, size=size,
                                  side=side or Side.parse(s), trade_id=str(t.get("id", ""))))
        if bad:
            self.bad_value(f"trades:{ticker}", f"dYdX trades {ticker}: {bad}; that trade dropped")
        self.stats["trades"] += len(out)
        return out

    def _oracle(self, ticker: str, value: Any, ts: int, out: list) -> bool:
        """Append an OraclePrice for a finite, positive ``value``; count and drop anything else."""
        try:
            price = price_value(value, "oracle price")
        except BadValue as exc:
            self.bad_value(f"oracle:{ticker}", f"dYdX market {ticker}: {exc}; oracle price dropped")
            return False
        out.append(OraclePrice(ticker, ts, price=price))
        return True

    def _funding(self, ticker: str, value: Any, ts: int, out: list) -> None:
        """Append a predicted FundingRate for a finite ``value``; count and drop anything else."""
        try:
            rate = decimal_value(value, "nextFundingRate")
        except BadValue as exc:
            self.bad_value(f"funding:{ticker}", f"dYdX market {ticker}: {exc}; funding rate dropped")
            return
        out.append(FundingRate(ticker, ts, rate_1h=rate, settled=False))

    # -- markets ------------------------------------------------------------------

    def _market_events(self, ticker: str, payload: dict, ts: int, out: list) -> None:
        try:
            market = Market.from_indexer(payload)
        except (ValueError, TypeError) as exc:
            self.stats["bad_payloads"] += 1
            self.warn_once(f"mkt:{ticker}", f"dYdX market {ticker}: unusable parameters ({exc})")
            return
        self.markets[ticker] = market
        out.append(MarketInfo(ticker, ts, market=market))

    def markets_snapshot(self, markets: Mapping[str, Any], ts: int) -> list:
        """``{ticker: row}`` (WS ``subscribed`` or REST) -> MarketInfo, OraclePrice and predicted FundingRate."""
        out: list = []
        for ticker, payload in markets.items():
            if not self.want(ticker) or not isinstance(payload, dict):
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

    def markets_update(self, contents: Mapping[str, Any], ts: int, out: list) -> None:
        """One ``v4_markets`` update (``{trading?, oraclePrices?, markets?}``): events appended to ``out``.

        ``trading`` rows are merged into the kept row (none before the snapshot: ignored);
        a MarketInfo follows only a change of a :data:`PARAM_FIELDS` field, a FundingRate a
        change of ``nextFundingRate``.
        """
        for ticker, fields in (contents.get("trading") or {}).items():
            if not self.want(ticker) or not isinstance(fields, dict):
                continue
            raw = self.raw_markets.get(ticker)
            if raw is None:
                continue  # no base parameters yet (the snapshot comes first)
            changed = {k for k, v in fields.items() if raw.get(k) != v}
            raw.update(fields)
            if changed & PARAM_FIELDS:
                self._market_events(ticker, raw, ts, out)
            if "nextFundingRate" in changed and fields.get("nextFundingRate") is not None:
                self._funding(ticker, fields["nextFundingRate"], ts, out)
        for ticker, p in (contents.get("oraclePrices") or {}).items():
            if not self.want(ticker) or not isinstance(p, dict) or p.get("oraclePrice") in (None, ""):
                continue
            if self._oracle(ticker, p["oraclePrice"], ts, out):
                raw = self.raw_markets.get(ticker)
                if raw is not None:
                    raw["oraclePrice"] = p["oraclePrice"]
        for ticker, payload in (contents.get("markets") or {}).items():  # new listings / full rows
            if self.want(ticker) and isinstance(payload, dict) and "atomicResolution" in payload:
                self._market_row(ticker, payload, ts, out)

    # -- funding ------------------------------------------------------------------

    def on_rest_funding(self, ticker: str, rows: list, ts: int) -> list:
        """The newest settled hourly rate from ``/v4/historicalFunding`` (deduplicated by ``effectiveAt``).

        ``rate`` is per hour (a fraction); ``price`` the oracle price (USD) it settled at.
        """
        if not rows or not self.want(ticker):
            return []
        newest = max(rows, key=lambda r: int(r.get("effectiveAtHeight") or 0))
        key = str(newest.get("effectiveAt") or newest.get("effectiveAtHeight"))
        if self._last_funding.get(ticker) == key:
            return []
        self._last_funding[ticker] = key
        price = newest.get("price")
        try:
            rate = decimal_value(newest["rate"], "funding rate")
            oracle = price_value(price, "funding oracle price") if price else None
        except BadValue as exc:
            self.bad_value(f"hfunding:{ticker}", f"dYdX historical funding {ticker}: {exc}; dropped")
            return []
        return [FundingRate(ticker, ts, rate_1h=rate, settled=True, interval_h=1, oracle_price=oracle)]

    # -- candles ------------------------------------------------------------------

    def on_candles(self, cid: str, contents: Any, typ: str, ts: int) -> list:
        """A ``v4_candles`` message for ``cid`` = ``TICKER/RESOLUTION`` -> finished Bars.

        A resolution outside :data:`~perpbot.exchanges.dydx.config.CANDLE_RESOLUTIONS` is ignored.
        """
        ticker, _, res = cid.partition("/")
        if not self.want(ticker) or res not in CANDLE_RESOLUTIONS:
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
                    self.bad_value(f"candle:{cid}", f"dYdX candle {cid}: {exc}; bar dropped")
                else:
                    out.append(Bar(ticker, start + interval * 1_000_000_000, open=o, high=h, low=lo, close=cl,
                                   volume=vol, interval_s=interval))
            if prev is None or c.get("startedAt", "") >= prev.get("startedAt", ""):
                self._candles[key] = c
        return out
