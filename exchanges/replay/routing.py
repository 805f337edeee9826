"""The replay feed's tickers: which markets are replayed, and which ticker each venue symbol's events carry.

:class:`TickerRouting` decides the feed's tickers (the requested ones, else every market
found in the files), checks them against the dYdX market metadata, and routes:

- a venue symbol of a file -> the ticker its events carry (:meth:`~TickerRouting.selector`);
  events of another venue's files carry ``venue:TICKER``;
- a funding row -> the tickers it is replayed to (:meth:`~TickerRouting.route_funding`);
- a qualified ticker of a venue WITHOUT files of its own mirrors the primary files'
  market data (:meth:`~TickerRouting.mirrored` copies each event to it).
"""

from __future__ import annotations

from typing import Iterator

import attrs
from loguru import logger

from perpbot.core.errors import ConfigError

from perpbot.exchanges.replay.inputs import ReplayInputs
from perpbot.exchanges.replay.params import ReplayParams
from perpbot.exchanges.replay.symbols import SymbolMapper, normalize_ticker, split_venue


class TickerRouting:
    """The tickers of one replay feed and the routing of venue symbols to them.

    :param params: the feed's parameters (``tickers``, ``funding_venue``).
    :param mapper: venue symbol -> dYdX ticker.
    :param inputs: the feed's sniffed files.
    :param context_tickers: the bot's tickers (used when ``params.tickers`` is empty).
    :param known: the dYdX tickers of the market metadata.
    :raises ConfigError: a ticker unknown to the metadata (listing the known ones), or a
        requested ticker with no data in the files (listing what was found; not checked when
        a dYdX recording is among the files, whose markets are read by the dYdX plugin).

    Attributes: :attr:`requested` (normalized requested tickers, possibly empty),
    :attr:`tickers` (the replayed tickers, ``TICKER`` or ``venue:TICKER``).
    """

    def __init__(
        self,
        params: ReplayParams,
        mapper: SymbolMapper,
        inputs: ReplayInputs,
        context_tickers,
        known: list[str],
    ):
        self.params = params
        self.mapper = mapper
        self.venues_with_files = inputs.venues_with_files
        requested = list(params.tickers) or list(context_tickers or ())
        self.requested = list(dict.fromkeys(normalize_ticker(t) for t in requested))
        for t in self.requested:
            base = split_venue(t)[1]
            if base not in known:
                raise ConfigError(f"unknown ticker {base!r} (known: {', '.join(known)})")
        present = inputs.present_tickers(mapper)
        if self.requested:
            has_dydx = any(k == "dydx" for _, k in inputs.kinds)
            missing = [t for t in self.requested if self.source_key(t) not in present]
            if missing and not has_dydx:
                found = sorted(t if v is None else f"{v}:{t}" for v, t in present)
                raise ConfigError(
                    f"ticker {missing[0]!r} has no data in the replay files (found: {', '.join(found) or 'none'})"
                )
            self.tickers = list(self.requested)
        else:
            self.tickers = sorted(t if v is None else f"{v}:{t}" for v, t in present)
            for t in self.tickers:
                base = split_venue(t)[1]
                if base not in known:
                    raise ConfigError(
                        f"unknown ticker {base!r} (known: {', '.join(known)}); choose tickers or add it to the market metadata"
                    )
        self.wanted = set(self.tickers)
        #: base ticker -> the qualified tickers (of venues without files) that mirror its events
        self.mirror: dict[str, list[str]] = {}
        for t in self.tickers:
            v, base = split_venue(t)
            if v is not None and v not in self.venues_with_files:
                self.mirror.setdefault(base, []).append(t)
        self._wanted_plain = {t for t in self.tickers if ":" not in t} | set(self.mirror)
        self._warned: set[str] = set()

    def source_key(self, ticker: str) -> tuple[str | None, str]:
        """Where a ticker's market data comes from: (its venue if that venue has files, else None; base ticker)."""
        v, base = split_venue(ticker)
        return (v if v in self.venues_with_files else None), base

    def selector(self, venue: str | None):
        """A function venue symbol -> the ticker its events carry when it is replayed, else None.

        For files of ``venue`` (None: the primary venue). A symbol that is not replayed while no
        tickers were requested (it appeared after the start of its file) is warned about once.
        """
        wanted = self._wanted_plain if venue is None else self.wanted
        prefix = "" if venue is None else f"{venue}:"

        def select(symbol: str) -> str | None:
            ticker = prefix + self.mapper(symbol)
            if ticker in wanted:
                return ticker
            if not self.requested and symbol not in self._warned:
                self._warned.add(symbol)
                logger.warning(
                    "replay: {} ({}) first appears after the start of its file and is not replayed; "
                    "name it in tickers to include it",
                    symbol,
                    ticker,
                )
            return None

        return select

    def route_funding(self, venue: str, coin: str) -> list[str]:
        """Tickers a funding row of ``venue`` for ``coin`` is replayed to.

        The plain ticker when ``venue`` is the ``funding_venue`` parameter; ``venue:TICKER``
        when that qualified ticker is replayed.
        """
        base = self.mapper(coin)
        out = []
        if venue == self.params.funding_venue.strip().lower() and base in self.wanted:
            out.append(base)
        if f"{venue}:{base}" in self.wanted:
            out.append(f"{venue}:{base}")
        return out

    def mirrored(self, it) -> Iterator[tuple[int, list]]:
        """Copy primary-file events to the qualified tickers that mirror them (see ``venue_files``).

        :param it: ``(ts_ns, batch)`` pairs of a primary-venue source; yields the same pairs
            with each mirrored event followed by its copies (``attrs.evolve`` with the new ticker).
        """
        mirror = self.mirror
        keep = self.wanted
        evolve = attrs.evolve
        for ts, batch in it:
            out = []
            for ev in batch:
                targets = mirror.get(ev.ticker)
                if targets is None:
                    out.append(ev)
                    continue
                if ev.ticker in keep:
                    out.append(ev)
                out.extend(evolve(ev, ticker=q) for q in targets)
            yield ts, out
