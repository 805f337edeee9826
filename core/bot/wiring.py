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
    """
    reg = pm.registry
    state_dir = Path(config.state_dir)
    feed_cls = reg.get("feeds", config.feed)
    clock = clock or (SimulatedClock() if feed_cls.replay else LiveClock())
    feed = feed_cls(
        config.feed_options(),
        FeedContext(clock, tuple(config.tickers), state_dir, options={"live": config.live}),
    )
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
            options={"live": config.live, "venue": venue, "replay": feed_cls.replay, "run_id": run_id},
        )
        exchanges[venue] = cls(config.exchange_options(venue), ctx)
        exchanges[venue].preflight()

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

    strat_cls = reg.get("strategies", config.strategy)
    params = parse_params(strat_cls.Params, config.strategy_params(), f"strategy {config.strategy}")
    strategy = strat_cls(
        params,
        StrategyContext(
            tickers=tuple(config.tickers),
            clock=clock,
            markets=markets,
            venues={v: ex.capabilities() for v, ex in exchanges.items()},
            logger=logger.bind(strategy=config.strategy),
            decision_interval_s=float(config.decision_interval_s),
        ),
    )
    return Wiring(clock, feed, exchanges, markets, states, engines, venue_tickers, consumers, strategy)


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
