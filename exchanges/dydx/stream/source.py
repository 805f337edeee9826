"""The full-node stream as the ``dydx`` feed's book and trade source, the indexer as fallback.

:class:`StreamSource` runs inside :class:`~perpbot.exchanges.dydx.feed.DydxFeed` when
``stream = "HOST:PORT"`` is set (CLI ``--dydx-stream``). Per market, exactly one source
drives the bot's book, trades and book health:

- the STREAM once its snapshot has arrived: its ``BookSnapshot`` and
  ``FeedStatus(healthy=True)`` go out, then its deltas and confirmed trades; the indexer's
  ``v4_orderbook`` / ``v4_trades`` events and book health for that market are held back
  (the indexer's book is still maintained and compared: :class:`CrossCheck`);
- the INDEXER before that and whenever the stream is lost (call failed or ended, no
  message for ``stream_idle_s``, its book crossed): the indexer's current book (a
  ``BookSnapshot``) and health are sent at once, and the stream reconnects with backoff
  (a fresh snapshot each time).

Everything else the indexer sends (oracle prices, funding, market parameters, candles)
passes through unchanged. The stream is read with ``grpc.aio``, so nothing blocks the
event loop.

At start an endpoint that does not stream (refused, ``UNIMPLEMENTED``, ended, silent for
``stream_timeout_s``) is a :class:`~perpbot.core.errors.ConfigError`: one line naming
``dydx.stream`` and the address.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Mapping

from loguru import logger

from perpbot.core.errors import ConfigError
from perpbot.core.model import BookDelta, BookSnapshot, FeedStatus, Market, Trade
from perpbot.core.tasks import cancel_and_wait
from perpbot.exchanges.dydx.limits import backoff_delay
from perpbot.exchanges.dydx.stream.books import StreamBooks
from perpbot.exchanges.dydx.stream.client import StreamUnavailable, describe_error, open_stream
from perpbot.exchanges.dydx.stream.crosscheck import CrossCheck

_HELD = (BookSnapshot, BookDelta, Trade, FeedStatus)


class _Lost(Exception):
    """The stream must be dropped and reopened (the message says why)."""


class StreamSource:
    """Books and trades of ``tickers`` from a full node's order-book stream.

    :param settings: the feed's :class:`~perpbot.exchanges.dydx.config.DydxSettings`
        (``stream``, ``stream_secure``, ``stream_timeout_s``, ``stream_idle_s``,
        ``retry_base_s``, ``retry_max_s``).
    :param markets: ``{ticker: Market}`` of at least ``tickers``.
    :param put: hands a list of events to the feed's queue (bypassing :meth:`filter`).
    :param now_ns: the feed's clock (ns).
    :param indexer_tracker: ``ticker -> BookTracker | None``: the indexer's book and health.

    ``active`` holds the markets the stream drives now; ``counters``: ``connects``,
    ``losses``, ``indexer_events_held``, ``events_out``.
    """

    def __init__(self, settings: Any, markets: Mapping[str, Market], tickers: tuple, *,
                 put: Callable[[list], None], now_ns: Callable[[], int],
                 indexer_tracker: Callable[[str], Any]):
        missing = [t for t in tickers if t not in markets]
        if missing:
            raise ConfigError(f"dydx.stream: no market parameters for {missing[0]!r}")
        self.settings = settings
        self.target = settings.stream
        self.books = StreamBooks({t: markets[t] for t in tickers})
        self.crosscheck = CrossCheck()
        self.active: set[str] = set()
        self._put = put
        self._now_ns = now_ns
        self._tracker = indexer_tracker
        self._task: asyncio.Task | None = None
        self.counters = {"connects": 0, "losses": 0, "indexer_events_held": 0, "events_out": 0}
        self.last_loss = ""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the stream and wait for its first message, then read it in a task.

        :raises ConfigError: the endpoint does not stream (one line: address and why).
        """
        s = self.settings
        try:
            call = await open_stream(self.target, self.books.clob_pair_ids, secure=s.stream_secure,
                                     timeout_s=s.stream_timeout_s)
        except StreamUnavailable as exc:
            raise ConfigError(
                f"dydx.stream: {self.target} does not stream order-book updates "
                f"(dydxprotocol.clob.Query/StreamOrderbookUpdates: {exc}); "
                "is it a full node started with --grpc-streaming-enabled?") from None
        self.counters["connects"] += 1
        logger.info(f"dYdX full-node stream {self.target}: connected (CLOB pairs {self.books.clob_pair_ids})")
        self._task = asyncio.create_task(self._run(call), name="dydx-node-stream")

    async def stop(self) -> None:
        """Stop reading and close the call (idempotent); logs one summary line."""
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None
            b, c = self.books.stats, self.crosscheck.stats()
            lead = (f"stream lead over the indexer median {c['lead_ms_median']} ms, p90 {c['lead_ms_p90']} ms "
                    f"({c['lead_samples']} top-of-book changes)" if c["lead_samples"] else "no stream lead measured")
            logger.info(
                f"dYdX full-node stream {self.target}: {b['responses']} responses, {b['trades']} trades, "
                f"{self.counters['losses']} loss(es), {b['crossings']} crossing(s); cross-check: "
                f"{c['agreements']} agreement(s), {c['disagreements']} disagreement(s); {lead}")

    def stats(self) -> dict:
        """Counters of the source, the books (``stream_*``) and the cross-check (``crosscheck_*``)."""
        out = {f"stream_{k}": v for k, v in self.counters.items()}
        out.update({f"stream_{k}": v for k, v in self.books.stats.items()})
        out.update({f"crosscheck_{k}": v for k, v in self.crosscheck.stats().items()})
        out["stream_active_markets"] = len(self.active)
        return out

    # ------------------------------------------------------------------ indexer side

    def filter(self, events: list) -> list:
        """The indexer's events minus the book, trade and health events of the markets the
        stream drives; the indexer's top of book of those markets is cross-checked."""
        if not self.active:
            return events
        out = []
        touched = set()
        for e in events:
            t = getattr(e, "ticker", None)
            if t in self.active and isinstance(e, _HELD):
                self.counters["indexer_events_held"] += 1
                if isinstance(e, (BookSnapshot, BookDelta)):
                    touched.add(t)
                continue
            out.append(e)
        for t in touched:
            tr = self._tracker(t)
            if tr is not None and tr.healthy:
                self.crosscheck.on_indexer_top(t, self._now_ns(), tr.book.best_bid_price(), tr.book.best_ask_price())
        return out

    def snapshots(self, ts: int) -> list:
        """A ``BookSnapshot`` of every market the stream drives (after the feed dropped queued events)."""
        return [self.books.snapshot_event(t, ts) for t in sorted(self.active)]

    def _fallback(self, ticker: str, ts: int, reason: str) -> list:
        """Events that hand ``ticker`` back to the indexer: its book (when healthy) and health."""
        tr = self._tracker(ticker)
        if tr is not None and tr.healthy:
            book = tr.book
            return [BookSnapshot(ticker, ts, bids=tuple(book.levels("bid")), asks=tuple(book.levels("ask"))),
                    FeedStatus(ticker, ts, healthy=True)]
        why = tr.reason if tr is not None else "no indexer book"
        return [FeedStatus(ticker, ts, healthy=False, reason=f"node stream lost ({reason}); indexer: {why}")]

    # ------------------------------------------------------------------ stream side

    def _route(self, events: list, ts: int) -> list:
        out: list = []
        tops = set()
        for e in events:
            t = e.ticker
            if isinstance(e, BookSnapshot) and t not in self.active and t not in self.books.crossed:
                self.active.add(t)
                logger.info(f"dYdX {t}: order book and trades from the full-node stream {self.target}")
                out.append(e)
                out.append(FeedStatus(t, ts, healthy=True))
                tops.add(t)
            elif t in self.active:
                out.append(e)
                if not isinstance(e, Trade):
                    tops.add(t)
        for t in tops:
            bid, ask = self.books.top(t)
            self.crosscheck.on_stream_top(t, ts, bid, ask)
        for t in sorted(self.books.crossed & self.active):
            self.active.discard(t)
            out.extend(self._fallback(t, ts, "stream book crossed"))
        self.counters["events_out"] += len(out)
        return out

    async def _consume(self, call: Any) -> str:
        idle = self.settings.stream_idle_s
        it = call.responses().__aiter__()
        while True:
            try:
                async with asyncio.timeout(idle):
                    resp = await it.__anext__()
            except StopAsyncIteration:
                return "the node ended the stream"
            except TimeoutError:
                return f"no message for {idle:g}s"
            ts = self._now_ns()
            out = self._route(self.books.on_response(resp, ts), ts)
            if out:
                self._put(out)
            if self.books.crossed:
                t = sorted(self.books.crossed)[0]
                bid, ask = self.books.top(t)
                return f"stream book of {t} crossed (bid {bid} >= ask {ask})"

    def _lose(self, reason: str) -> None:
        self.counters["losses"] += 1
        self.last_loss = reason
        ts = self._now_ns()
        out: list = []
        for t in sorted(self.active):
            out.extend(self._fallback(t, ts, reason))
        self.active.clear()
        self.books.reset()
        logger.warning(f"dYdX full-node stream {self.target} lost: {reason}; books from the indexer until it is back")
        if out:
            self._put(out)

    async def _run(self, call: Any) -> None:
        s = self.settings
        attempt = 0
        while True:
            try:
                reason = await self._consume(call)
            except asyncio.CancelledError:
                await call.close()
                raise
            except Exception as exc:  # noqa: BLE001 - a failed call is reported and reconnected
                reason = describe_error(exc)
            if self.books.synced and not self.books.crossed:
                attempt = 0  # a crossed book again after a fresh snapshot backs off further
            await call.close()
            self._lose(reason)
            while True:
                await asyncio.sleep(backoff_delay(attempt, s.retry_base_s, s.retry_max_s))
                attempt += 1
                try:
                    call = await open_stream(self.target, self.books.clob_pair_ids, secure=s.stream_secure,
                                             timeout_s=s.stream_timeout_s)
                except StreamUnavailable as exc:
                    logger.warning(f"dYdX full-node stream {self.target}: reconnect failed ({exc}); retrying")
                    continue
                self.counters["connects"] += 1
                logger.info(f"dYdX full-node stream {self.target}: reconnected")
                break
