"""Built-in plugin: the ``replay`` feed (real recorded market data, merged by time).

It registers :class:`~perpbot.exchanges.replay.feed.ReplayFeed` through ``register_feeds``,
the same hook a third-party feed plugin uses. Formats, config keys and the
embedded samples: see :mod:`perpbot.exchanges.replay.feed` and :mod:`perpbot.exchanges.replay.samples`.

What lives where:

- the feed: ``feed`` (:class:`~.feed.ReplayFeed`: opening sources, the merge loop with
  real-time pacing, counters), ``params`` (:class:`~.params.ReplayParams`), ``inputs``
  (file discovery, format sniffing, grouping Binance files into streams), ``routing``
  (which tickers, which ticker a venue symbol's events carry, mirroring to other venues),
  ``merge`` (merging sources by time), ``progress`` (progress in market time, the
  book-sync watch);
- one reader per file format, each a *source* with ``events()`` (or ``batches()``),
  ``last_ts()``, ``stats``, ``bytes_read``/``size``: ``binance`` (Binance raw WebSocket
  recordings; :class:`~.binance.BinanceRecording`, the hot loop) with ``binance_parse``
  (line and value format) and ``binance_sync`` (the depth-sync state machine); ``bars``
  (OHLCV CSV/Parquet), ``funding`` (funding-rate CSVs), ``funding_multi`` (the
  ``funding_multi`` feed: many coins' funding on two venues with prices), ``dydx`` (dYdX indexer
  recordings, handed to the dYdX plugin's reader);
- shared helpers: ``lineio`` (fast plain/gzip line reading, file tails), ``symbols``
  (venue symbol -> dYdX ticker), ``markets`` (dYdX market metadata,
  ``dydx_markets.json``), ``samples`` (paths of the embedded data), ``timeparse``.

What it may import: :mod:`perpbot` (``hookimpl``) and :mod:`perpbot.core` (model, errors,
feed contract, params), its own modules, and third-party libraries (orjson, loguru,
attrs; pyarrow optionally). Never another plugin package, except that ``dydx`` imports
``perpbot.exchanges.dydx.recording`` lazily, by name, when a dYdX recording is replayed
(a clear error when that plugin is absent). Nothing in :mod:`perpbot.core` imports this package.
"""

from perpbot import hookimpl

from perpbot.exchanges.replay.feed import ReplayFeed, ReplayParams

__all__ = ["ReplayFeed", "ReplayParams", "register_feeds"]


@hookimpl
def register_feeds(register):
    """Hook: register :class:`~.feed.ReplayFeed` as the feed named ``replay``, and
    :class:`~.funding_multi.FundingMultiFeed` as ``funding_multi`` (many coins' funding on two venues)."""
    from perpbot.exchanges.replay.funding_multi import FundingMultiFeed

    register(ReplayFeed)
    register(FundingMultiFeed)
