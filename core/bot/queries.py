"""The read side of a run: marks, balances, positions and the views strategies and risk policies see.

:class:`RunQueries` is a base class of :class:`~perpbot.core.bot.supervisor.TradingBot`: it holds
the bot's queries over its public state (``states``, ``portfolios``, ``open_orders``, ``clock``,
``config``: the attributes :class:`~perpbot.core.bot.view.RunView` documents) and changes nothing.
Prices are USD Decimals; tickers are qualified as the run names them (bare on the primary venue,
``venue:ticker`` elsewhere; :func:`perpbot.core.metrics.market_label`). Imports only :mod:`perpbot.core`.
"""

from __future__ import annotations

from decimal import Decimal

from perpbot.core.bot.decisions import risk_view
from perpbot.core.config import split_ticker
from perpbot.core.metrics import market_label
from perpbot.core.model import ZERO
from perpbot.core.policies import RiskView
from perpbot.core.state import MarketData


class RunQueries:
    """Read-only queries of a run, mixed into :class:`~perpbot.core.bot.supervisor.TradingBot`.

    Expects the bot's attributes ``config`` (:class:`~perpbot.core.config.BotConfig`), ``clock``,
    ``states`` (qualified ticker -> :class:`~perpbot.core.state.MarketState`), ``portfolios``
    (venue -> :class:`~perpbot.core.portfolio.Portfolio`) and ``open_orders``.
    """

    def venue_and_ticker(self, qualified: str) -> tuple[str, str]:
        """``(venue, venue's ticker)`` of a qualified ticker (``"BTC-USD"`` -> primary venue)."""
        venue, t = split_ticker(qualified)
        return (venue or self.config.primary_venue), t

    def qualify(self, venue: str, ticker: str) -> str:
        """``ticker`` of ``venue`` as the run names it: bare on the primary venue, ``venue:ticker`` elsewhere."""
        return market_label(venue, ticker, self.config.primary_venue)

    def marks(self) -> dict:
        """Mark price per (qualified) ticker: oracle where known, else mid (USD)."""
        out = {}
        for t, st in self.states.items():
            m = st.mark_price()
            if m is not None:
                out[t] = m
        return out

    def venue_marks(self, venue: str) -> dict:
        """:meth:`marks` of one venue, keyed by that venue's own (unqualified) tickers (USD)."""
        marks = self.marks()
        if venue == self.config.primary_venue:
            return {t: p for t, p in marks.items() if ":" not in t}
        prefix = f"{venue}:"
        return {t[len(prefix):]: p for t, p in marks.items() if t.startswith(prefix)}

    def balance(self, venue: str | None = None):
        """The bot's view of a venue's account (default: the primary), USD.

        :raises KeyError: an unknown venue, or before :meth:`start` (no portfolios yet).
        """
        venue = venue or self.config.primary_venue
        return self.portfolios[venue].balance(self.venue_marks(venue), self.clock.now_ns())

    def total_equity(self) -> Decimal:
        """The equity of every venue together, USD."""
        return sum((self.balance(v).equity for v in self.portfolios), ZERO)

    def positions(self) -> dict:
        """Open positions of every venue, keyed by qualified ticker."""
        out = {}
        for venue, pf in self.portfolios.items():
            for t, p in pf.open_positions().items():
                out[self.qualify(venue, t)] = p
        return out

    def paused(self) -> dict:
        """Markets whose data is stale now: qualified ticker -> the reason."""
        now = self.clock.now_ns()
        out = {}
        for t, st in self.states.items():
            reason = st.stale_reason(now)
            if reason:
                out[t] = reason
        return out

    def market_data(self) -> MarketData:
        """The read-only view a strategy decides on."""
        paused = self.paused()
        return MarketData(
            ts_ns=self.clock.now_ns(),
            markets=self.states,
            tradable=tuple(t for t in self.states if t not in paused),
            paused=paused,
            positions=self.positions(),
            open_orders=dict(self.open_orders),
            balance=self.balance(),
            marks=self.marks(),
            venues={v: self.balance(v) for v in self.portfolios},
        )

    def risk_view(self) -> RiskView:
        """The :class:`~perpbot.core.policies.RiskView` risk policies check (see
        :func:`perpbot.core.bot.decisions.risk_view`)."""
        return risk_view(self)
