"""Indexer REST through the official ``IndexerClient``, with a timeout, retries and a budget.

Every call goes through :meth:`IndexerRest.call`:

- ``IndexerClient(host, api_timeout=rest_timeout_s)``: the client's default timeout of
  ``3_000`` is passed to httpx as SECONDS, so an explicit value is always given;
- a client-side :class:`~perpbot.exchanges.dydx.limits.SlidingWindowLimiter` of
  ``rest_max_requests`` per ``rest_window_s`` (indexer: 100 requests / 10 s per IP);
- temporary failures (timeouts, connection errors, HTTP 429 and 5xx) are retried
  ``rest_retries`` times with exponential backoff and jitter (a ``Retry-After``
  header is honoured), then raised as :class:`~perpbot.core.errors.TemporaryExchangeError`;
- other HTTP errors (400, 404) raise :class:`~perpbot.core.errors.ExchangeError` at once with
  the indexer's message. Nothing is swallowed.

The client's methods are ``async`` (httpx.AsyncClient), so they run on the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import httpx
from loguru import logger

from perpbot.core.errors import ExchangeError, TemporaryExchangeError
from perpbot.exchanges.dydx.config import DydxSettings
from perpbot.exchanges.dydx.limits import SlidingWindowLimiter, backoff_delay


class NotFound(ExchangeError):
    """The indexer answered 404 (unknown subaccount, order or market)."""


def _is_temporary(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
        return code == 429 or code >= 500
    return isinstance(exc, (httpx.TimeoutException, httpx.TransportError, asyncio.TimeoutError, OSError))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        body = ""
        try:
            body = exc.response.text[:200]
        except Exception:  # pragma: no cover
            pass
        return f"HTTP {exc.response.status_code}" + (f": {body}" if body else "")
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class IndexerRest:
    """The indexer REST API with timeout, retries and the request budget.

    :param settings: plugin settings (endpoints, timeouts, limits).
    :param client: an ``IndexerClient`` to use instead of building one (tests).
    """

    def __init__(self, settings: DydxSettings, client: Any = None, limiter: SlidingWindowLimiter | None = None):
        from dydx_v4_client.indexer.rest.indexer_client import IndexerClient

        self.settings = settings
        self.client = client or IndexerClient(settings.endpoints.rest, api_timeout=settings.rest_timeout_s)
        self.limiter = limiter or SlidingWindowLimiter(settings.rest_max_requests, settings.rest_window_s)
        self.requests = 0
        self.retries = 0
        self.failures = 0

    async def call(self, what: str, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` (an IndexerClient coroutine function) with the policy above.

        :param what: a short description for errors, e.g. ``"orderbook BTC-USD"``.
        :raises TemporaryExchangeError: after the retries are spent.
        :raises ExchangeError: for a non-retryable HTTP error.
        """
        s = self.settings
        attempt = 0
        while True:
            await self.limiter.acquire()
            self.requests += 1
            try:
                # the client's own timeout bounds each phase; this bounds the whole call
                async with asyncio.timeout(s.rest_timeout_s * 2 + 1):
                    return await fn(*args, **kwargs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified below, never swallowed
                if not _is_temporary(exc):
                    self.failures += 1
                    if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 404:
                        raise NotFound(f"dYdX indexer {what}: {_describe(exc)}") from None
                    raise ExchangeError(f"dYdX indexer {what}: {_describe(exc)}") from None
                if attempt >= s.rest_retries:
                    self.failures += 1
                    raise TemporaryExchangeError(
                        f"dYdX indexer {what}: {_describe(exc)} (gave up after {attempt + 1} attempt(s))"
                    ) from None
                delay = backoff_delay(attempt, s.retry_base_s, s.retry_max_s)
                if isinstance(exc, httpx.HTTPStatusError):
                    ra = exc.response.headers.get("Retry-After")
                    if ra:
                        try:
                            delay = max(delay, min(float(ra), s.retry_max_s))
                        except ValueError:
                            pass
                self.retries += 1
                logger.debug(f"dYdX indexer {what}: {_describe(exc)}; retry {attempt + 1} in {delay:.2f}s")
                attempt += 1
                await asyncio.sleep(delay)

    # -- public data -----------------------------------------------------------

    async def perpetual_markets(self, ticker: str | None = None) -> dict:
        """``{ticker: market payload}`` from ``/v4/perpetualMarkets``."""
        data = await self.call("perpetualMarkets", self.client.markets.get_perpetual_markets, ticker)
        return dict(data.get("markets") or {})

    async def orderbook(self, ticker: str) -> dict:
        """``{bids:[{price,size}], asks:[...]}`` (uncrossed by the indexer)."""
        return await self.call(f"orderbook {ticker}", self.client.markets.get_perpetual_market_orderbook, ticker)

    async def trades(self, ticker: str, limit: int | None = None) -> list:
        """Recent public trades of ``ticker`` (``GET /v4/trades/perpetualMarket/T``), newest first.

        :raises TemporaryExchangeError: after the retries are spent.
        :raises ExchangeError: for a non-retryable HTTP error.
        """
        data = await self.call(f"trades {ticker}", self.client.markets.get_perpetual_market_trades, ticker, None, limit)
        return list(data.get("trades") or [])

    async def candles(self, ticker: str, resolution: str, limit: int | None = None) -> list:
        """Candles of ``ticker`` at ``resolution`` (``GET /v4/candles/perpetualMarkets/T``), newest first.

        :raises TemporaryExchangeError: after the retries are spent.
        :raises ExchangeError: for a non-retryable HTTP error.
        """
        data = await self.call(
            f"candles {ticker}/{resolution}", self.client.markets.get_perpetual_market_candles,
            ticker, resolution, None, None, limit,
        )
        return list(data.get("candles") or [])

    async def historical_funding(self, ticker: str, limit: int | None = None) -> list:
        """Newest first; ``rate`` is the 1-hour rate (indexer divides the 8 h value by 8)."""
        data = await self.call(
            f"historicalFunding {ticker}", self.client.markets.get_perpetual_market_historical_funding,
            ticker, None, None, limit,
        )
        return list(data.get("historicalFunding") or [])

    async def height(self) -> int:
        """The indexer's latest block height (``GET /v4/height``).

        :raises TemporaryExchangeError: after the retries are spent.
        :raises ExchangeError: for a non-retryable HTTP error.
        """
        data = await self.call("height", self.client.utility.get_height)
        return int(data["height"])

    # -- account -------------------------------------------------------------

    async def subaccount(self, address: str, number: int) -> dict:
        """The subaccount, or ``{}`` when the indexer does not know it yet (never funded: 404)."""
        try:
            data = await self.call(f"subaccount {address}/{number}", self.client.account.get_subaccount,
                                   address, number)
        except NotFound:
            return {}
        return dict(data.get("subaccount") or {})

    async def orders(self, address: str, number: int, *, status: str | None = None, limit: int | None = None,
                     return_latest: bool | None = None, good_til_block_before_or_at: int | None = None,
                     good_til_block_time_before_or_at: str | None = None) -> list:
        """One page of ``GET /v4/orders`` (a bare list).

        comlink ``controllers/api/v4/orders-controller.ts listOrders``: sorted by
        ``goodTilBlock`` then ``goodTilBlockTime`` (descending unless ``returnLatestOrders``
        is false; descending puts stateful orders, which have no goodTilBlock, first), cut
        to ``limit``. There is no created-before cursor: a page is continued with
        ``goodTilBlockBeforeOrAt`` (keeps only short-term orders) or
        ``goodTilBlockTimeBeforeOrAt`` (ISO time; keeps only stateful orders), both inclusive.
        ``status`` filters AFTER the database limit, so a page can hold fewer rows than exist.
        """
        data = await self.call(
            "orders", self.client.account.get_subaccount_orders, address, number,
            status=status, limit=limit, return_latest_orders=return_latest,
            good_til_block_before_or_at=good_til_block_before_or_at,
            good_til_block_time_before_or_at=good_til_block_time_before_or_at,
        )
        return list(data or [])

    async def order(self, order_id: str) -> dict | None:
        """``GET /v4/orders/{id}`` (the indexer's order uuid), or None when the indexer does not
        know it (404: comlink ``getOrder`` found it neither in postgres nor in redis)."""
        try:
            data = await self.call(f"order {order_id}", self.client.account.get_order, order_id)
        except NotFound:
            return None
        return dict(data or {}) or None

    async def fills_page(self, address: str, number: int, *, limit: int | None = None,
                         created_before_or_at_height: int | None = None,
                         created_before_or_at: str | None = None, page: int | None = None) -> dict:
        """One page of ``GET /v4/fills``: ``{fills, pageSize?, totalResults?, offset?}``.

        comlink ``controllers/api/v4/fills-controller.ts`` and postgres
        ``stores/fill-table.ts findAll``: newest first (``createdAtHeight`` DESC);
        ``createdBeforeOrAtHeight`` / ``createdBeforeOrAt`` are inclusive bounds; with
        ``page`` (newer indexers) the rows are ordered by ``eventId`` ascending within the
        filter, ``offset = (page-1)*limit``, and ``pageSize``/``totalResults``/``offset``
        come back (absent on indexers without paging). dydx-v4-client 1.1.5 has no
        ``page`` argument, so that query goes through the client's generic ``get``.
        """
        if page is None:
            data = await self.call(
                "fills", self.client.account.get_subaccount_fills, address, number, limit=limit,
                created_before_or_at_height=created_before_or_at_height, created_before_or_at=created_before_or_at,
            )
        else:
            params = {"address": address, "subaccountNumber": number, "limit": limit,
                      "createdBeforeOrAtHeight": created_before_or_at_height,
                      "createdBeforeOrAt": created_before_or_at, "page": page}
            data = await self.call("fills", self.client.account.get, "/v4/fills",
                                   params={k: v for k, v in params.items() if v is not None})
        return dict(data or {})

    async def fills(self, address: str, number: int, *, limit: int | None = None,
                    created_before_or_at: str | None = None, created_before_or_at_height: int | None = None) -> list:
        """One page of fills, newest first (see :meth:`fills_page`)."""
        data = await self.fills_page(address, number, limit=limit, created_before_or_at=created_before_or_at,
                                     created_before_or_at_height=created_before_or_at_height)
        return list(data.get("fills") or [])

    async def positions(self, address: str, number: int, status: str | None = "OPEN") -> list:
        """Perpetual positions of the subaccount (``GET /v4/perpetualPositions``), by default the OPEN ones.

        :raises TemporaryExchangeError: after the retries are spent.
        :raises ExchangeError: for a non-retryable HTTP error.
        """
        data = await self.call(
            "perpetualPositions", self.client.account.get_subaccount_perpetual_positions, address, number, status,
        )
        return list(data.get("positions") or [])

    async def funding_payments(self, address: str, number: int, *, limit: int | None = None) -> list:
        """Funding payments of the subaccount (``GET /v4/fundingPayments``), newest first; ``payment`` USD, > 0 received.

        :raises TemporaryExchangeError: after the retries are spent.
        :raises ExchangeError: for a non-retryable HTTP error.
        """
        data = await self.call(
            "fundingPayments", self.client.account.get_funding_payments, address, number, limit,
        )
        return list(data.get("fundingPayments") or [])
