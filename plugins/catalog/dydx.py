"""dYdX v4 indexer history, paged backwards in time, as catalog rows.

Endpoints and paging, from dydxprotocol/v4-chain ``indexer/services/comlink/src/controllers/api/v4``
and the postgres stores they query (``indexer/packages/postgres/src/stores``):

- candles: ``GET /v4/candles/perpetualMarkets/{ticker}?resolution=&fromISO=&toISO=&limit=``
  (``candles-controller.ts``; ``candle-table.ts findAll``: ``startedAt >= fromISO`` and
  ``startedAt < toISO``, newest first). The next page's ``toISO`` is the oldest ``startedAt``
  of the page; rows are de-duplicated by time in case an indexer treats ``toISO`` as inclusive;
- historical funding: ``GET /v4/historicalFunding/{ticker}?effectiveBeforeOrAt=&effectiveBeforeOrAtHeight=&limit=``
  (``historical-funding-controller.ts``: ordered by ``effectiveAtHeight`` DESC, both bounds
  inclusive). The next page asks ``effectiveBeforeOrAtHeight`` = the oldest height - 1. ``rate`` is
  the 1-hour rate (dYdX settles funding every hour);
- trades: ``GET /v4/trades/perpetualMarket/{ticker}?createdBeforeOrAt=&createdBeforeOrAtHeight=&limit=``
  (``trades-controller.ts``: taker fills, ``fill-table.ts findAll`` newest first, bounds
  inclusive). The next page asks ``createdBeforeOrAtHeight`` = the oldest height (a block's
  trades may straddle two pages); rows are de-duplicated by ``id``, and a page with nothing
  new moves one block down.

Page size: ``limit`` up to comlink's ``API_LIMIT_V4`` (``config.ts``, default 1000; older
indexers 100). Every request goes through :class:`perpbot.exchanges.dydx.rest.IndexerRest`
(its sliding-window budget, 100 requests / 10 s by default, retries with backoff and
``Retry-After``; a 4xx is raised at once).
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import AsyncIterator

from perpbot.core.errors import DataError
from perpbot.exchanges.replay.catalog import RESOLUTIONS

#: comlink ``API_LIMIT_V4`` (default 1000): the largest page
MAX_PAGE = 1000


def iso_ms(ns: int) -> str:
    """ns since the epoch -> the indexer's ISO form ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (ms, UTC)."""
    dt = datetime.fromtimestamp(ns // 1_000_000 / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns // 1_000_000 % 1000:03d}Z"


def parse_iso_ns(text: str) -> int:
    """The indexer's ISO time (``2025-12-08T16:00:00.219Z``) -> ns since the epoch.

    :raises DataError: not an ISO time.
    """
    try:
        dt = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise DataError(f"dYdX indexer: time {text!r} is not ISO-8601") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return (int(dt.timestamp()) * 1_000_000 + dt.microsecond) * 1000


def _dec(v, what: str) -> Decimal:
    try:
        d = Decimal(str(v))
    except Exception:  # noqa: BLE001 - any bad number is named
        raise DataError(f"dYdX indexer: {what} {v!r} is not a number") from None
    if not d.is_finite():
        raise DataError(f"dYdX indexer: {what} {v!r} is not finite")
    return d


def candle_row(c: dict) -> dict:
    """An indexer candle (``candleToResponseObject`` shape) -> a catalog candles row.

    :raises DataError: a missing field or a bad number (named).
    """
    try:
        return {"ts_ns": parse_iso_ns(c["startedAt"]), "open": _dec(c["open"], "open"), "high": _dec(c["high"], "high"),
                "low": _dec(c["low"], "low"), "close": _dec(c["close"], "close"),
                "volume": _dec(c["baseTokenVolume"], "baseTokenVolume"), "usd_volume": _dec(c["usdVolume"], "usdVolume"),
                "trades": int(c.get("trades") or 0)}
    except KeyError as exc:
        raise DataError(f"dYdX indexer: candle without {exc.args[0]!r}: {c!r}") from None


def funding_row(f: dict) -> dict:
    """An indexer historical funding row -> a catalog funding row (``rate_1h`` = ``rate``, ``interval_h`` 1).

    :raises DataError: a missing field or a bad number (named).
    """
    try:
        return {"ts_ns": parse_iso_ns(f["effectiveAt"]), "rate_1h": _dec(f["rate"], "rate"), "interval_h": 1,
                "price": _dec(f["price"], "price") if f.get("price") else None,
                "height": int(f["effectiveAtHeight"])}
    except KeyError as exc:
        raise DataError(f"dYdX indexer: funding row without {exc.args[0]!r}: {f!r}") from None


def trade_row(t: dict) -> dict:
    """An indexer trade (``fillToTradeResponseObject`` shape) -> a catalog trades row.

    :raises DataError: a missing field or a bad number (named).
    """
    try:
        return {"ts_ns": parse_iso_ns(t["createdAt"]), "id": str(t["id"]), "side": str(t["side"]),
                "price": _dec(t["price"], "price"), "size": _dec(t["size"], "size"),
                "height": int(t.get("createdAtHeight") or 0)}
    except KeyError as exc:
        raise DataError(f"dYdX indexer: trade without {exc.args[0]!r}: {t!r}") from None


class DydxHistory:
    """The dYdX indexer as a download source (see the module docstring).

    :param rest: an :class:`~perpbot.exchanges.dydx.rest.IndexerRest` (its budget and retries apply).
    :param page_size: rows per request, 1..:data:`MAX_PAGE`.

    Attributes: ``venue`` (``"dydx"``), ``funding_interval_h`` (1), ``requests`` (made by this source).
    """

    venue = "dydx"
    funding_interval_h = 1

    def __init__(self, rest, page_size: int = MAX_PAGE):
        self.rest = rest
        self.page_size = max(1, min(int(page_size), MAX_PAGE))
        self.requests = 0

    async def markets(self) -> list[str]:
        """The indexer's perpetual market tickers (``GET /v4/perpetualMarkets``)."""
        return sorted(await self.rest.perpetual_markets())

    def endpoint(self, market: str, kind: str) -> str:
        """The endpoint a kind comes from (the manifest's ``source``)."""
        if kind.startswith("candles-"):
            return f"{self.rest.settings.endpoints.rest}/v4/candles/perpetualMarkets/{market}?resolution={kind[8:]}"
        if kind == "funding":
            return f"{self.rest.settings.endpoints.rest}/v4/historicalFunding/{market}"
        return f"{self.rest.settings.endpoints.rest}/v4/trades/perpetualMarket/{market}"

    async def _get(self, what: str, uri: str, params: dict) -> dict:
        self.requests += 1
        client = self.rest.client.markets
        return await self.rest.call(what, client.get, uri, params={k: v for k, v in params.items() if v is not None})

    async def pages(self, market: str, kind: str, lo_ns: int, hi_ns: int) -> AsyncIterator[list[dict]]:
        """Rows of ``kind`` with ``lo_ns <= ts_ns < hi_ns``, one list per request, newest page first.

        :raises ExchangeError: a non-retryable indexer error (e.g. 404 unknown market).
        :raises TemporaryExchangeError: retries spent.
        :raises DataError: a malformed row.
        """
        if kind.startswith("candles-"):
            gen = self._candles(market, kind[8:], lo_ns, hi_ns)
        elif kind == "funding":
            gen = self._funding(market, lo_ns, hi_ns)
        elif kind == "trades":
            gen = self._trades(market, lo_ns, hi_ns)
        else:
            raise DataError(f"dYdX indexer: no history of kind {kind!r}")
        async for page in gen:
            yield page

    async def _candles(self, market, res, lo_ns, hi_ns):
        if res not in RESOLUTIONS:
            raise DataError(f"dYdX indexer: unknown candle resolution {res!r}")
        to_ns = hi_ns
        seen: set[int] = set()
        while True:
            data = await self._get(f"candles {market}/{res}", f"/v4/candles/perpetualMarkets/{market}",
                                   {"resolution": res, "fromISO": iso_ms(lo_ns), "toISO": iso_ms(to_ns),
                                    "limit": self.page_size})
            raw = list(data.get("candles") or [])
            rows = [r for r in map(candle_row, raw) if lo_ns <= r["ts_ns"] < hi_ns and r["ts_ns"] not in seen]
            seen.update(r["ts_ns"] for r in rows)
            if rows:
                yield rows
            if len(raw) < self.page_size or not rows:
                return
            to_ns = min(r["ts_ns"] for r in rows)
            if to_ns <= lo_ns:
                return

    async def _funding(self, market, lo_ns, hi_ns):
        height = None
        while True:
            data = await self._get(f"historicalFunding {market}", f"/v4/historicalFunding/{market}",
                                   {"effectiveBeforeOrAt": iso_ms(hi_ns - 1_000_000),
                                    "effectiveBeforeOrAtHeight": height, "limit": self.page_size})
            raw = [funding_row(f) for f in data.get("historicalFunding") or []]
            rows = [r for r in raw if lo_ns <= r["ts_ns"] < hi_ns]
            if rows:
                yield rows
            if len(raw) < self.page_size or not raw or min(r["ts_ns"] for r in raw) < lo_ns:
                return
            height = min(r["height"] for r in raw) - 1

    async def _trades(self, market, lo_ns, hi_ns):
        height = None
        seen: set[str] = set()
        while True:
            data = await self._get(f"trades {market}", f"/v4/trades/perpetualMarket/{market}",
                                   {"createdBeforeOrAt": iso_ms(hi_ns - 1_000_000),
                                    "createdBeforeOrAtHeight": height, "limit": self.page_size})
            raw = [trade_row(t) for t in data.get("trades") or []]
            new = [r for r in raw if r["id"] not in seen]
            seen.update(r["id"] for r in new)
            rows = [r for r in new if lo_ns <= r["ts_ns"] < hi_ns]
            if rows:
                yield rows
            if len(raw) < self.page_size or not raw or min(r["ts_ns"] for r in raw) < lo_ns:
                return
            low = min(r["height"] for r in raw)
            height = low if new else low - 1
