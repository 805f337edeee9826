"""Wiring: build a run's feed, exchanges, markets, strategy, sizer and risk chain from the registry.

Everything is looked up by name in the plugin registry (no ``if strategy == "grid"``
anywhere). Exchanges are built and preflighted before the feed touches the network, so
configuration and credential errors come first. Imports only :mod:`perpbot.core` modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
from loguru import logger

from perpbot.core.bot.support import FeedContext
from perpbot.core.clock import LiveClock, SimulatedClock
from perpbot.core.config import BotConfig, check_risk_params, split_ticker
from perpbot.core.errors import ConfigError
from perpbot.core.exchange import ExchangeContext, MarketView
from perpbot.core.feed import BaseFeed
from perpbot.core.params import parse_params
from perpbot.core.state import MarketState
from perpbot.core.strategy import StrategyContext


@attrs.define
class Wiring:
    """What :func:`wire` built for one run (the bot copies these onto itself).

    :param clock: the run's clock (simulated for a replay feed, live otherwise).
    :param feed: the market-data feed.
    :param exchanges: venue -> exchange client, in configuration order.
    :param markets: qualified ticker -> :class:`~perpbot.core.model.MarketInfo` of the run.
    :param states: qualified ticker -> :class:`~perpbot.core.state.MarketState`.
    :param engines: qualified ticker -> :class:`~perpbot.core.signals.SignalEngine`.
    :param venue_tickers: venue -> its unqualified tickers.
    :param consumers: qualified ticker -> the simulating exchange that consumes its market events.
    :param strategy: the strategy instance.
    """

    clock: Any
    feed: Any
    exchanges: dict
    markets: dict
    states: dict
    engines: dict
    venue_tickers: dict
    consumers: dict
    strategy: Any


def wire(config: BotConfig, pm: Any, *, run_id: str, clock: Any = None) -> Wiring:
    """Build the feed, the exchange clients (preflighted), the market states and the strategy.

    :param config: the validated configuration.
    :param pm: a loaded :class:`~perpbot.core.plugins.PluginManager` (its ``registry``).
    :param run_id: the run's id (given to exchanges as ``options["run_id"]``).
    :param clock: a clock to use instead of the default one.
    :raises ConfigError: unknown feed, exchange, strategy or ticker, or invalid parameters
        (one line naming the thing and the value, with the known names).

    A run that names no tickers gets its strategy's (:func:`discover_tickers`, after the
    exchanges are built and before any feed subscribes); they are written to ``config.tickers``.
    """
    reg = pm.registry
    state_dir = Path(config.state_dir)
    feed_cls = reg.get("feeds", config.feed)
    strat_cls = reg.get("strategies", config.strategy)
    params = parse_params(strat_cls.Params, config.strategy_params(), f"strategy {config.strategy}")
    # venues whose exchange plugin brings its own live market data (``venue_feed``, e.g. ccxt):
    # their tickers are fed by it, merged with the run's feed (which gets the other tickers)
    own_data = {v for v in config.exchange if hasattr(reg.get("exchanges", config.venue_plugin(v)), "venue_feed")}

    def on_own(t: str) -> bool:
        return (split_ticker(t)[0] or config.primary_venue) in own_data

    # the run's feed serves the venues without their own data: a replay of it drives a simulated clock
    fed = [not on_own(t) for t in config.tickers] if config.tickers else [v not in own_data for v in config.exchange]
    clock = clock or (SimulatedClock() if feed_cls.replay and any(fed) else LiveClock())
    # filled below, after the markets are known; each venue's MarketView reads it when called
    states: dict[str, MarketState] = {}

    exchanges: dict[str, Any] = {}
    venue_markets: dict[str, dict] = {}
    for venue in config.exchange:
        cls = reg.get("exchanges", config.venue_plugin(venue))
        prefix = "" if venue == config.primary_venue else f"{venue}:"
        venue_markets[venue] = {}
        ctx = ExchangeContext(
            clock=clock,
            markets=venue_markets[venue],
            view=MarketView(states, venue_markets[venue], prefix),
            state_dir=state_dir,
            options={"live": config.live, "venue": venue, "replay": feed_cls.replay, "run_id": run_id,
                     "plugin_arg": config.venue_plugin_arg(venue)},
        )
        exchanges[venue] = cls(config.exchange_options(venue), ctx)
        exchanges[venue].preflight()
    if not config.tickers:  # none named: the strategy's markets (discovered from the venues' listings)
        config.tickers = discover_tickers(config, strat_cls, params, feed_cls, exchanges, own_data, clock)
    own = tuple(t for t in config.tickers if on_own(t))
    rest = tuple(t for t in config.tickers if t not in own)
    if own and rest and feed_cls.replay:
        raise ConfigError(f"--feed {config.feed}: replays recorded data, but {', '.join(own)} trade(s) on live market "
                          f"data of venue {', '.join(sorted(own_data))}: use a live feed (e.g. --feed dydx)")
    feed = feed_cls(
        config.feed_options(),
        FeedContext(clock, rest, state_dir, options={"live": config.live}),
    ) if rest else None
    venue_feeds = [
        exchanges[v].venue_feed(mine, clock, "" if v == config.primary_venue else f"{v}:")
        for v in config.exchange
        if (mine := tuple(t for t in own if (split_ticker(t)[0] or config.primary_venue) == v))
    ]
    feeds = ([feed] if feed is not None else []) + venue_feeds
    feed = feeds[0] if len(feeds) == 1 else MergedFeed(feeds)

    try:
        known = dict(feed.markets())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    missing = [t for t in config.tickers if t not in known]
    if missing:
        names = ", ".join(sorted(known)) or "none"
        raise ConfigError(f"unknown ticker {missing[0]!r} for feed {config.feed!r} (known: {names})")
    markets = {t: known[t] for t in config.tickers}
    states.update({t: MarketState(m) for t, m in markets.items()})
    engines = signal_engines(config, states)
    venue_tickers: dict[str, tuple] = {}
    for venue, vmarkets in venue_markets.items():
        vmarkets.update(
            {
                split_ticker(t)[1]: m
                for t, m in markets.items()
                if (split_ticker(t)[0] or config.primary_venue) == venue
            }
        )
        venue_tickers[venue] = tuple(vmarkets)
    consumers: dict[str, Any] = {}
    for venue, ex in exchanges.items():
        if ex.capabilities().consumes_market_data:
            for t in venue_tickers[venue]:
                consumers[t if venue == config.primary_venue else f"{venue}:{t}"] = ex

    from perpbot.core.analysis.run import analysis_for_run, signal_gate_for

    options: dict[str, Any] = {}
    hubs = analysis_for_run(strat_cls, params, reg.analyzers, states, engines)  # wraps engines to feed the hubs
    if hubs is not None:
        options["analysis"] = hubs
    gate = signal_gate_for(params, pm.hook, config.strategy)
    if gate is not None:
        options["signal_gate"] = gate
    strategy = strat_cls(
        params,
        StrategyContext(
            tickers=tuple(config.tickers),
            clock=clock,
            markets=markets,
            venues={v: ex.capabilities() for v, ex in exchanges.items()},
            logger=logger.bind(strategy=config.strategy),
            decision_interval_s=float(config.decision_interval_s),
            options=options,
        ),
    )
    return Wiring(clock, feed, exchanges, markets, states, engines, venue_tickers, consumers, strategy)


def discover_tickers(config: BotConfig, strat_cls: type, params: Any, feed_cls: type, exchanges: dict,
                     own_data: set, clock: Any) -> tuple:
    """The tickers of a run that names none (``config.tickers`` empty).

    A strategy that does not discover its markets (``discovers_markets`` False) gets
    :data:`~perpbot.core.config.DEFAULT_TICKERS`. One that does is handed every venue's listing
    and returns its tickers (:meth:`~perpbot.core.strategy.BaseStrategy.select_markets`). The
    listings come from the feeds, each built WITHOUT tickers, which lists every market it can
    serve (the feed contract's ``markets()``): the run's feed for the venues it serves
    (unqualified tickers: the primary venue; ``venue:TICKER``: that venue; e.g. the dYdX
    indexer's ``/v4/perpetualMarkets``, a replay's files), and each venue with its own market
    data through its ``venue_feed`` (ccxt: ``load_markets``). These probe feeds are never
    started. The count per venue and the choice are logged.

    :returns: the qualified tickers to trade (primary venue unqualified).
    :raises ConfigError: ``all`` for a strategy that does not discover its markets; a feed's
        listing failed (its one line); the strategy found nothing to trade (its one line).
    """
    from perpbot.core.config import ALL_MARKETS, DEFAULT_TICKERS

    if not getattr(strat_cls, "discovers_markets", False):
        if config.all_markets:
            raise ConfigError(f"--ticker {ALL_MARKETS}: strategy {config.strategy!r} does not discover its markets; "
                              f"name them, e.g. --ticker BTC,ETH")
        return DEFAULT_TICKERS
    listings: dict[str, list] = {v: [] for v in config.exchange}

    def add(qualified, venues) -> None:
        for q in qualified:
            venue, t = split_ticker(q)
            venue = venue or config.primary_venue
            if venue in venues and t not in listings[venue]:
                listings[venue].append(t)

    fed = [v for v in config.exchange if v not in own_data]
    try:
        if fed:
            probe = feed_cls(config.feed_options(), FeedContext(clock, (), Path(config.state_dir),
                                                                 options={"live": config.live}))
            add(probe.markets(), fed)
        for v in config.exchange:
            if v in own_data:
                add(exchanges[v].venue_feed((), clock, "" if v == config.primary_venue else f"{v}:").markets(), (v,))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    listed = {v: tuple(ts) for v, ts in listings.items()}
    tickers = tuple(strat_cls.select_markets(params, listed, config.primary_venue))
    counts = ", ".join(f"{v} lists {len(ts)}" for v, ts in listed.items())
    logger.info(f"markets discovered ({counts}); strategy {config.strategy} trades {len(tickers)}: {', '.join(tickers)}")
    if not tickers:
        raise ConfigError(f"strategy {config.strategy}: found no market to trade ({counts})")
    return tickers


def signal_engines(config: BotConfig, states: dict) -> dict:
    """One :class:`~perpbot.core.signals.SignalEngine` per market, from ``config.signals``.

    :raises ConfigError: an invalid ``[signals]`` parameter.
    """
    from perpbot.core import signals

    cfg = parse_params(signals.SignalConfig, config.signals, "signals")
    return {t: signals.SignalEngine(cfg) for t in states}


def policies(config: BotConfig, pm: Any, context: Any) -> tuple[Any, list]:
    """The position sizer and the risk chain, each constructed with ``context`` (the bot).

    :returns: ``(sizer, [risk policy, ...])`` in ``config.risk_policies`` order.
    :raises ConfigError: unknown sizer or policy, a ``[risk.<policy>]`` table or key no policy
        reads (closest name given), or invalid parameters.
    """
    reg = pm.registry
    sizer_cls = reg.get("position_sizers", config.sizer)
    sizer = sizer_cls(parse_params(sizer_cls.Params, config.sizer_params(), f"sizer {config.sizer}"), context)
    chain = []
    check_risk_params(config.risk, reg)  # a misspelt [risk.<policy>] or key is an error, never ignored
    for name in config.risk_policies:
        pcls = reg.get("risk_policies", name)
        chain.append(pcls(parse_params(pcls.Params, config.risk_params(name), f"risk policy {name}"), context))
    return sizer, chain


class MergedFeed(BaseFeed):
    """Live feeds of several venues as one: batches in arrival order, markets united.

    Used when a venue's exchange plugin brings its own market data (``venue_feed``); every
    feed must be live (events are stamped by the one live clock). A feed that ends or fails
    ends the merged feed (its error propagates to the bot, which stops the run and says why).

    :param feeds: the feeds, the run's main feed first.
    """

    name = "merged"
    replay = False

    def __init__(self, feeds: list):
        super().__init__({}, None)
        self.feeds = list(feeds)

    def markets(self) -> dict:
        """Every feed's markets, by (qualified) ticker."""
        out: dict = {}
        for f in self.feeds:
            out.update(f.markets())
        return out

    async def start(self) -> None:
        """Start every feed."""
        for f in self.feeds:
            await f.start()

    async def stop(self) -> None:
        """Stop every feed (each safe twice), each even when one before it fails.

        :raises Exception: the first feed's failure, after every feed was asked to stop.
        """
        first: Exception | None = None
        for f in self.feeds:
            try:
                await f.stop()
            except Exception as exc:
                from loguru import logger

                logger.error(f"stopping feed {f.name} failed: {type(exc).__name__}: {exc}")
                first = first or exc
        if first is not None:
            raise first

    async def batches(self):
        """Batches of all feeds as they arrive (one pump task per feed)."""
        import asyncio

        from perpbot.core.tasks import cancel_and_wait

        queue: asyncio.Queue = asyncio.Queue()

        async def pump(f):
            try:
                async for b in f.batches():
                    await queue.put(("batch", b))
                await queue.put(("end", f.name))
            except Exception as exc:  # handed to the consumer, never swallowed
                await queue.put(("error", exc))

        tasks = [asyncio.create_task(pump(f), name=f"merged-feed-{i}") for i, f in enumerate(self.feeds)]
        try:
            while True:
                kind, item = await queue.get()
                if kind == "error":
                    raise item
                if kind == "end":
                    return
                yield item
        finally:
            await cancel_and_wait(tasks)

    def unsynced_books(self) -> dict:
        """Every feed's unsynced books."""
        out: dict = {}
        for f in self.feeds:
            out.update(f.unsynced_books())
        return out

    def stats(self) -> dict:
        """Every feed's counters, prefixed with the feed's name when more than one has them."""
        out: dict = {}
        for f in self.feeds:
            for k, v in f.stats().items():
                out[k if k not in out else f"{f.name}.{k}"] = v
        return out
