"""The analysis hub (one per market), its wiring into the bot, and offline feature rows.

See :mod:`perpbot.core.analysis` for the analyzer contract.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from perpbot.core.analysis import NO_CONFLUENCE, Analyzer, Confluence, Interpretation, combine
from perpbot.core.params import did_you_mean


class AnalysisHub:
    """The analyzers of one market: dispatches its events, gathers readings, scores confluence.

    ``on_event`` costs one dict lookup by event type plus each interested analyzer's O(1)
    update, so the hub can sit on the bot's hot path (``bench/bench_analysis.py``).

    :param ticker: the market (qualified ``"venue:TICKER"`` off the primary venue).
    :param analyzers: the market's :class:`~perpbot.core.analysis.Analyzer` instances.
    :param weights: analyzer name -> weight in the confluence score (default 1.0 each).
    """

    def __init__(self, ticker: str, analyzers: Sequence[Analyzer], weights: Mapping[str, float] | None = None):
        self.ticker = ticker
        self.analyzers = tuple(analyzers)
        self.weights = dict(weights or {})
        self._dispatch: dict[type, tuple] = {}
        for a in self.analyzers:
            for t in a.handles:
                self._dispatch[t] = self._dispatch.get(t, ()) + (a.on_event,)
        self._cache_ts = -1
        self._cache: Confluence = NO_CONFLUENCE

    def on_event(self, state: Any, ev: Any) -> None:
        """Feed one event (after ``state.apply(ev)``) to the analyzers that read its type."""
        handlers = self._dispatch.get(type(ev))
        if handlers is not None:
            for h in handlers:
                h(state, ev)
            self._cache_ts = -1

    def interpretations(self, ts_ns: int) -> list[Interpretation]:
        """Every analyzer's current :class:`~perpbot.core.analysis.Interpretation` (warming-up ones left out)."""
        out = []
        for a in self.analyzers:
            it = a.interpret(ts_ns)
            if it is not None:
                out.append(it)
        return out

    def features(self) -> dict[str, float]:
        """All analyzers' features, merged (names are prefixed by analyzer, so they never clash)."""
        out: dict[str, float] = {}
        for a in self.analyzers:
            out.update(a.features())
        return out

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Every feature name this hub's :meth:`features` returns, in order."""
        return tuple(n for a in self.analyzers for n in a.feature_names)

    def confluence(self, ts_ns: int) -> Confluence:
        """This market's :class:`~perpbot.core.analysis.Confluence` at ``ts_ns``
        (:func:`~perpbot.core.analysis.combine` of :meth:`interpretations`); cached until the next event."""
        if ts_ns != self._cache_ts:
            self._cache = combine(self.interpretations(ts_ns), self.weights)
            self._cache_ts = ts_ns
        return self._cache


def market_confluence(hubs: Mapping[str, AnalysisHub], ticker: str, ts_ns: int,
                      weights: Mapping[str, float] | None = None) -> Confluence:
    """Confluence of one market across venues: every hub whose unqualified ticker is ``ticker``'s.

    ``"BTC-USD"`` and ``"binance:BTC-USD"`` are the same market on two venues; their
    interpretations are combined as one set (each keeps its venue in the reasons).

    :param hubs: qualified ticker -> hub.
    :param ticker: qualified or unqualified ticker.
    """
    base = ticker.split(":", 1)[-1]
    its: list[Interpretation] = []
    for t, hub in hubs.items():
        if t.split(":", 1)[-1] == base:
            its.extend(hub.interpretations(ts_ns))
            weights = weights if weights is not None else hub.weights
    return combine(its, weights)


class HubEngine:
    """A market's signal engine and analysis hub behind one ``on_event(state, ev)``.

    The bot's loop calls ``engines[ticker].on_event(state, ev)`` after every
    ``state.apply(ev)``; the wiring puts one of these in place of the plain signal engine
    when the run has analysis, so the loop needs no change.
    """

    __slots__ = ("engine", "hub")

    def __init__(self, engine: Any, hub: AnalysisHub):
        self.engine = engine
        self.hub = hub

    def on_event(self, state: Any, ev: Any) -> None:
        """Update the signal engine, then the hub."""
        if self.engine is not None:
            self.engine.on_event(state, ev)
        self.hub.on_event(state, ev)

    def __getattr__(self, name: str) -> Any:
        # anything else (config, counters) is the signal engine's
        engine = object.__getattribute__(self, "engine")
        if engine is None:
            raise AttributeError(name)
        return getattr(engine, name)


def resolve_analyzers(registered: Mapping[str, type], names: Iterable[str]) -> list[type]:
    """Analyzer classes for ``names``, in order.

    :raises ValueError: an unknown name (closest registered name and the list given) or a repeat.
    """
    out = []
    seen = set()
    for n in names:
        if n not in registered:
            known = ", ".join(sorted(registered)) or "none"
            raise ValueError(f"unknown analyzer {n!r}{did_you_mean(n, registered)} (available: {known})")
        if n in seen:
            raise ValueError(f"analyzer {n!r} is named twice")
        seen.add(n)
        out.append(registered[n])
    return out


def build_hubs(tickers: Iterable[str], classes: Sequence[type], params: Mapping[str, Mapping] | None = None,
               weights: Mapping[str, float] | None = None) -> dict[str, AnalysisHub]:
    """One :class:`AnalysisHub` per ticker with one instance of each analyzer class.

    :param params: analyzer name -> its parameter overrides.
    :raises ValueError: a bad analyzer parameter (from :class:`~perpbot.core.analysis.Analyzer`), a
        parameter table for an analyzer not in ``classes``, or a negative weight.
    """
    params = params or {}
    names = [c.name for c in classes]
    for n in params:
        if n not in names:
            raise ValueError(f"analysis parameters for {n!r}, which is not analysed{did_you_mean(n, names)} "
                             f"(analyzers: {', '.join(names)})")
    for n, w in (weights or {}).items():
        if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
            raise ValueError(f"analyzer weight {n}={w!r}: must be a number >= 0")
    return {t: AnalysisHub(t, [c(t, params.get(c.name)) for c in classes], weights) for t in tickers}


def _placeholder_market(ticker: str) -> Any:
    from perpbot.core.model import Market

    return Market(ticker, clob_pair_id=0, tick_size=Decimal("0.00000001"), step_size=Decimal("0.00000001"))


def feature_rows(events: Iterable[Any], tickers: Iterable[str], analyzers: Sequence[type], every_ns: int,
                 params: Mapping[str, Mapping] | None = None, markets: Mapping[str, Any] | None = None,
                 weights: Mapping[str, float] | None = None,
                 extra: Callable[["AnalysisHub", int], Mapping[str, float]] | None = None) -> Iterator[dict]:
    """Run analyzers offline over time-ordered events; yield one feature row per market per sample time.

    Each market gets a :class:`~perpbot.core.state.MarketState` (``markets[ticker]`` when given,
    else a placeholder market with 1e-8 tick and step) and an :class:`AnalysisHub`; events of other
    tickers are skipped. A row for sample time ``t`` (a multiple of ``every_ns``) reflects every
    event of that market with ``ts_ns <= t``; it is yielded when the first later event arrives
    (or at the end of the data), once per sample time that saw new events, so gaps in the data
    yield no repeated rows. Rows before the market has a price are skipped.

    :param events: :mod:`perpbot.core.model` events (bars, trades, books, funding, ...) and
        :class:`~perpbot.core.analysis.OpenInterest` samples, in time order per market.
    :param tickers: markets to analyse.
    :param analyzers: analyzer classes (e.g. ``perpbot.plugins.analysis.BUILTIN``).
    :param every_ns: sampling step, ns (e.g. ``3600 * 10**9`` for hourly bars).
    :param params: analyzer name -> parameter overrides.
    :param markets: ticker -> :class:`~perpbot.core.model.Market`, optional.
    :param weights: analyzer name -> confluence weight (see :func:`build_hubs`).
    :param extra: ``(hub, sample_ts_ns) -> columns`` appended to each row (e.g. the confluence
        signal of :mod:`perpbot.plugins.ml.features`).
    :returns: dicts with ``ts_ns`` (int), ``ticker`` (str), ``close`` (float, the last price),
        then every feature (float, ``nan`` when unknown), in :attr:`AnalysisHub.feature_names` order,
        then the ``extra`` columns.
    :raises ValueError: ``every_ns`` not positive, or a bad analyzer parameter.
    """
    from perpbot.core.state import MarketState

    if every_ns <= 0:
        raise ValueError(f"every_ns must be > 0, got {every_ns}")
    tickers = tuple(tickers)
    hubs = build_hubs(tickers, analyzers, params, weights)
    states = {t: MarketState((markets or {}).get(t) or _placeholder_market(t)) for t in tickers}
    next_t: dict[str, int | None] = {t: None for t in tickers}

    def row(t: str, ts: int) -> dict | None:
        st = states[t]
        if st.last_price is None:
            return None
        out = {"ts_ns": ts, "ticker": t, "close": float(st.last_price)}
        out.update(hubs[t].features())
        if extra is not None:
            out.update(extra(hubs[t], ts))
        return out

    for ev in events:
        t = ev.ticker
        st = states.get(t)
        if st is None:
            continue
        ts = ev.ts_ns
        due = next_t[t]
        if due is not None and ts > due:
            r = row(t, due)
            if r is not None:
                yield r
            due = None
        if due is None:
            next_t[t] = -(-ts // every_ns) * every_ns  # the first sample time at or after ts
        st.apply(ev)
        hubs[t].on_event(st, ev)
    for t in tickers:
        if next_t[t] is not None:
            r = row(t, next_t[t])
            if r is not None:
                yield r
