"""A ccxt venue's history (OHLCV, mark-price candles, funding-rate history) as catalog rows, through ccxt's async client.

The client is the ccxt plugin's (:func:`perpbot.exchanges.ccxt.client.make_client`: ccxt's
own rate limiter on, ``url`` rewriting every venue URL to a loopback fake); the venue is
checked by :func:`perpbot.exchanges.ccxt.venues.resolve_venue` (closest ccxt id for a typo)
and markets map to tickers as the plugin maps them (:func:`perpbot.exchanges.ccxt.markets.perpetuals`:
``BTC-USD`` is ``BTC/USDT:USDT`` on Binance USD-M).

- candles: ``fetch_ohlcv(symbol, timeframe, since, limit, {"until": ms})`` (ccxt
  ``python/ccxt/async_support/binance.py fetch_ohlcv``: Binance ``GET /fapi/v1/klines`` with
  ``startTime``/``endTime``, at most 1500 rows), paged backwards: each page asks the ``limit``
  bars ending at the previous page's start. Rows come back ``[open_ms, o, h, l, c, volume]``
  as floats; ``Decimal(str(x))`` restores the venue's text (shortest round-trip repr);
- mark-price candles (kind ``mark-<RES>``): ``fetch_mark_ohlcv`` with the same arguments and
  paging (ccxt ``python/ccxt/base/exchange.py fetch_mark_ohlcv`` is ``fetch_ohlcv`` with
  ``{"price": "mark"}``; Binance ``binance.py fetch_ohlcv`` then calls ``GET
  /fapi/v1/markPriceKlines``, Binance USD-M API "Mark Price Kline/Candlestick Data", whose
  rows carry no volume: it is ``"0"``); a venue without ``fetchMarkOHLCV`` is refused;
- funding: ``fetch_funding_rate_history(symbol, since, limit, {"until": ms})`` (Binance
  ``GET /fapi/v1/fundingRate``, oldest first from ``startTime``), paged forwards inside the
  window and handed over as one page (a window holds a few settlements a day). The rate is the
  venue's per-interval rate (the raw ``info.fundingRate`` text when present); ``rate_1h`` is it
  divided by the market's funding interval (Binance ``fundingIntervalHours``, default 8 h).

Network errors (``ccxt.NetworkError``: timeouts, 429/418, 5xx) are retried with backoff, then
raised as :class:`~perpbot.core.errors.TemporaryExchangeError`; other ccxt errors raise
:class:`~perpbot.core.errors.ExchangeError` at once.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from perpbot.core.errors import DataError, ExchangeError, TemporaryExchangeError
from perpbot.exchanges.replay.catalog import RESOLUTIONS

#: dYdX resolution -> ccxt timeframe
TIMEFRAMES = {"1MIN": "1m", "5MINS": "5m", "15MINS": "15m", "30MINS": "30m", "1HOUR": "1h", "4HOURS": "4h", "1DAY": "1d"}


def _dec(x, what: str) -> Decimal:
    try:
        d = Decimal(str(x))
    except Exception:  # noqa: BLE001 - any bad number is named
        raise DataError(f"ccxt: {what} {x!r} is not a number") from None
    if not d.is_finite():
        raise DataError(f"ccxt: {what} {x!r} is not finite")
    return d


class CcxtHistory:
    """A ccxt venue as a download source (see the module docstring).

    :param ccxt_id: the ccxt class (``binanceusdm``).
    :param url: base URL of a loopback fake (tests), or None for the venue.
    :param page_size: rows per request.
    :param retries: retries of a network error before giving up.
    :raises ConfigError: an unknown ccxt id (closest named) or a venue without swaps.

    Attributes: ``venue`` (``ccxt:<id>``), ``funding_interval_h`` (the venue profile's),
    ``requests``. Call :meth:`close` when done.
    """

    def __init__(self, ccxt_id: str, *, url: str | None = None, page_size: int = 1000, retries: int = 3,
                 retry_base_s: float = 0.5):
        from perpbot.exchanges.ccxt.client import make_client
        from perpbot.exchanges.ccxt.venues import resolve_venue

        self.profile = resolve_venue(ccxt_id, f"ccxt:{ccxt_id}")
        self.venue = f"ccxt:{self.profile.ccxt_id}"
        self.funding_interval_h = self.profile.funding_interval_h
        self.client = make_client(self.profile.ccxt_id, url=url, pro=True)
        self.page_size = max(1, min(int(page_size), 1500))
        self.retries = retries
        self.retry_base_s = retry_base_s
        self.requests = 0
        self._markets: dict = {}

    async def close(self) -> None:
        """Close the ccxt client's HTTP session."""
        await self.client.close()

    async def _call(self, what: str, fn, *args, **kwargs):
        import ccxt

        from perpbot.exchanges.dydx.limits import backoff_delay

        attempt = 0
        while True:
            self.requests += 1
            try:
                return await fn(*args, **kwargs)
            except ccxt.NetworkError as exc:
                if attempt >= self.retries:
                    raise TemporaryExchangeError(f"{self.venue} {what}: {type(exc).__name__}: {str(exc)[:200]} "
                                                 f"(gave up after {attempt + 1} attempt(s))") from None
                await asyncio.sleep(backoff_delay(attempt, self.retry_base_s, 30.0))
                attempt += 1
            except ccxt.BaseError as exc:
                raise ExchangeError(f"{self.venue} {what}: {type(exc).__name__}: {str(exc)[:200]}") from None

    async def markets(self) -> list[str]:
        """Tickers of the venue's active linear perpetuals (``load_markets``)."""
        from perpbot.exchanges.ccxt.markets import perpetuals

        raw = await self._call("load_markets", self.client.load_markets)
        self._markets = perpetuals(raw, self.profile, {})
        return sorted(self._markets)

    def endpoint(self, market: str, kind: str) -> str:
        """What a kind comes from (the manifest's ``source``): the ccxt call and symbol."""
        sym = self._markets[market].symbol if market in self._markets else market
        if kind.startswith("candles-"):
            return f"ccxt {self.profile.ccxt_id} fetch_ohlcv {sym} {TIMEFRAMES[kind[8:]]}"
        if kind.startswith("mark-"):
            return f"ccxt {self.profile.ccxt_id} fetch_mark_ohlcv {sym} {TIMEFRAMES[kind[5:]]}"
        return f"ccxt {self.profile.ccxt_id} fetch_funding_rate_history {sym}"

    async def pages(self, market: str, kind: str, lo_ns: int, hi_ns: int):
        """Rows of ``kind`` with ``lo_ns <= ts_ns < hi_ns``, newest page first (see the module docstring).

        :raises DataError: a kind this source has no history of, or a malformed row.
        :raises ExchangeError: / :class:`TemporaryExchangeError`: the venue's failures.
        """
        if not self._markets:
            await self.markets()
        vm = self._markets[market]
        if kind.startswith("candles-"):
            async for page in self._candles(vm.symbol, kind[8:], lo_ns, hi_ns):
                yield page
        elif kind.startswith("mark-"):
            if not self.client.has.get("fetchMarkOHLCV"):
                raise DataError(f"{self.venue}: no mark-price candles in ccxt (fetchMarkOHLCV)")
            async for page in self._candles(vm.symbol, kind[5:], lo_ns, hi_ns, self.client.fetch_mark_ohlcv):
                yield page
        elif kind == "funding":
            rows = await self._funding(vm.symbol, vm.funding_interval_h, lo_ns, hi_ns)
            if rows:
                yield rows
        else:
            raise DataError(f"{self.venue}: no history of kind {kind!r} (candles:<RES>, mark:<RES>, funding)")

    async def _candles(self, symbol, res, lo_ns, hi_ns, fetch=None):
        fetch = fetch or self.client.fetch_ohlcv
        what = f"{fetch.__name__} {symbol}"
        step = RESOLUTIONS[res] * 1000
        lo, until = lo_ns // 1_000_000, hi_ns // 1_000_000 - 1
        seen: set[int] = set()
        while until >= lo:
            since = max(lo, until - (self.page_size - 1) * step)
            raw = await self._call(what, fetch, symbol, TIMEFRAMES[res], since, self.page_size, {"until": until})
            rows = []
            for r in raw or []:
                ts = int(r[0]) * 1_000_000
                if lo_ns <= ts < hi_ns and ts not in seen:
                    seen.add(ts)
                    rows.append({"ts_ns": ts, "open": _dec(r[1], "open"), "high": _dec(r[2], "high"),
                                 "low": _dec(r[3], "low"), "close": _dec(r[4], "close"),
                                 "volume": _dec(r[5], "volume"), "usd_volume": "", "trades": 0})
            if rows:
                yield sorted(rows, key=lambda x: x["ts_ns"], reverse=True)
            until = since - 1

    async def _funding(self, symbol, interval_h, lo_ns, hi_ns):
        since, until = lo_ns // 1_000_000, hi_ns // 1_000_000 - 1
        out: dict[int, dict] = {}
        while since <= until:
            raw = await self._call(f"fetch_funding_rate_history {symbol}", self.client.fetch_funding_rate_history,
                                   symbol, since, self.page_size, {"until": until})
            new = 0
            for f in raw or []:
                ts = int(f["timestamp"]) * 1_000_000
                if not lo_ns <= ts < hi_ns or ts in out:
                    continue
                info = f.get("info") or {}
                rate = _dec(info.get("fundingRate", f.get("fundingRate")), "fundingRate")
                price = info.get("markPrice")
                out[ts] = {"ts_ns": ts, "rate_1h": rate / interval_h, "interval_h": interval_h,
                           "price": _dec(price, "markPrice") if price not in (None, "") else None}
                new += 1
            if not raw or len(raw) < self.page_size or not new:
                break
            since = max(out) // 1_000_000 + 1
        return sorted(out.values(), key=lambda x: x["ts_ns"], reverse=True)
