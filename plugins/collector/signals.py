"""Analysis signals from the collected events (``runbot.py collect --signals ...``), as ``signal`` rows.

Every event a venue's feed yields is applied to a :class:`~perpbot.core.state.MarketState` of its
venue and market and fed to an :class:`~perpbot.core.analysis.hub.AnalysisHub` of the chosen
analyzers (registered through the ``register_analyzers`` hook: the built-ins of
:mod:`perpbot.plugins.analysis` and any third party's). Every ``every_s`` seconds each market's
:class:`~perpbot.core.analysis.Confluence` across venues
(:func:`~perpbot.core.analysis.hub.market_confluence`) becomes one ``signal`` row: venue
``all``, the market, the time, ``score`` (0-100), ``direction`` (+1/-1/0), ``agreeing`` / ``total``
interpretations and the ``reasons`` (JSON list of text, strongest first). The rows go to every
store like the others; in Redis a bot process reads the latest one with
``LiveCacheReader.latest("signal", "all", "BTC-USD")`` or listens on ``perpbot:signal``.

A venue that sends whole books on every update (the ccxt feed) would make the analysis rebuild
the book each time: per market, at most one ``BookSnapshot`` per ``book_every_s`` is applied (the
newest one waits; it is applied before any later delta and before signal rows are computed).
Every other event is applied as it comes.

Markets use a placeholder :class:`~perpbot.core.model.Market` (the analyzers read prices, sizes
and times, not the venue's tick or margin rules).
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from perpbot.core.analysis.hub import AnalysisHub, build_hubs, market_confluence

VENUE_ALL = "all"


class SignalMaker:
    """Market states and analysis hubs of every venue and market (module docstring).

    :param analyzers: analyzer classes (``Analyzer`` subclasses).
    :param weights: analyzer name -> weight in the confluence score (default 1 each).
    :param book_every_s: the least market time between two whole books applied per market, seconds.
    """

    def __init__(self, analyzers: Sequence[type], weights: Mapping[str, float] | None = None,
                 book_every_s: float = 0.5):
        self.classes = list(analyzers)
        self.weights = dict(weights or {})
        self.book_every_ns = int(book_every_s * 1e9)
        self.states: dict[str, Any] = {}
        self.hubs: dict[str, AnalysisHub] = {}
        self._book_at: dict[str, int] = {}
        self._pending: dict[str, Any] = {}
        self.events = 0
        self.books_deferred = 0

    def _make(self, q: str) -> tuple[Any, AnalysisHub]:
        from decimal import Decimal

        from perpbot.core.model import Market
        from perpbot.core.state import MarketState

        market = Market(q, clob_pair_id=0, tick_size=Decimal("0.00000001"), step_size=Decimal("0.00000001"))
        st = self.states[q] = MarketState(market)
        hub = self.hubs[q] = build_hubs([q], self.classes, weights=self.weights)[q]
        return st, hub

    def on_events(self, venue: str, prefix: str, events: list) -> None:
        """Apply one feed batch of ``venue`` (tickers carry ``prefix``, e.g. ``"binance:"``)."""
        from perpbot.core.model import BookDelta, BookSnapshot

        for ev in events:
            t = getattr(ev, "ticker", None)
            if t is None:
                continue
            m = t[len(prefix):] if prefix and t.startswith(prefix) else t
            q = f"{venue}:{m}"
            self.events += 1
            if type(ev) is BookSnapshot:
                if ev.ts_ns - self._book_at.get(q, -self.book_every_ns) < self.book_every_ns:
                    if q in self._pending:
                        self.books_deferred += 1
                    self._pending[q] = ev  # the newest whole book waits
                    continue
                self._book_at[q] = ev.ts_ns
                self._pending.pop(q, None)
            elif type(ev) is BookDelta and q in self._pending:
                self._apply(q, self._pending.pop(q))  # a delta builds on the newest whole book
            self._apply(q, ev)

    def _apply(self, q: str, ev: Any) -> None:
        pair = (self.states.get(q), self.hubs.get(q))
        st, hub = pair if pair[0] is not None else self._make(q)
        st.apply(ev)
        hub.on_event(st, ev)

    def rows(self, ts_ns: int) -> list[tuple]:
        """One ``signal`` row per market at ``ts_ns`` (columns of :data:`~perpbot.plugins.storage.schema.COLUMNS`)."""
        for q, ev in list(self._pending.items()):
            self._book_at[q] = ev.ts_ns
            self._apply(q, ev)
        self._pending.clear()
        markets = sorted({q.split(":", 1)[1] for q in self.hubs})
        out = []
        for m in markets:
            c = market_confluence(self.hubs, m, ts_ns, self.weights)
            out.append((VENUE_ALL, m, ts_ns, float(c.score), int(c.direction), int(c.agreeing), int(c.total),
                        json.dumps(list(c.reasons), ensure_ascii=False)))
        return out


def load_analyzers(names: str) -> list[type]:
    """``all`` or ``technical,orderflow,...`` -> analyzer classes from the plugin registry.

    :raises ConfigError: an unknown analyzer (closest registered name), none registered.
    """
    from perpbot.core.analysis.hub import resolve_analyzers
    from perpbot.core.errors import ConfigError
    from perpbot.core.plugins import PluginManager

    registered = PluginManager(strict=False).registry.analyzers
    if not registered:
        raise ConfigError("--signals: no analyzer is registered (the analysis plugin is disabled?)")
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if wanted == ["all"]:
        wanted = sorted(registered)
    try:
        return resolve_analyzers(registered, wanted)
    except ValueError as exc:
        raise ConfigError(f"--signals: {exc}") from None
