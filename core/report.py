"""The end-of-run summary a trader can check by hand.

:class:`RunSummary` is built by the bot from its portfolio(s), its trade ledger, the
feed's counters and its own equity curve. :meth:`RunSummary.render` gives the text
printed at the end of ``runbot.py`` (trades per market, fees, funding paid and
received, liquidations, realized/unrealized PnL, realized PnL per order tag, closed
trades and wins, final equity, max drawdown, events processed and events per second).

Every figure it shares with the HTML report is defined once, in :mod:`perpbot.core.metrics`
(drawdown, wins net of fees, realized PnL per tag, funding per strategy, labels, number
and duration formatting); a test checks the two agree on a sample run.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from perpbot.core.metrics import DrawdownTracker, TagFigures, format_duration, plain

__all__ = ["DrawdownTracker", "MarketLine", "RunSummary", "TagFigures"]

ZERO = Decimal(0)


def _usd(v: Decimal) -> str:
    return plain(v, 2, grouping=True)


@attrs.define
class MarketLine:
    """One market's line of the summary (USD; ``ticker`` labelled by :func:`perpbot.core.metrics.market_label`).

    ``fills`` counts fills; ``trades`` closed round trips and ``wins`` those won net of fees.
    """

    ticker: str
    fills: int
    volume: Decimal
    fees: Decimal
    funding: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    position: Decimal
    liquidations: int
    trades: int = 0
    wins: int = 0


@attrs.define
class RunSummary:
    """Figures of one run. Money in USD."""

    run_id: str
    strategy: str
    venues: tuple
    start_ns: int
    end_ns: int
    markets: list = attrs.Factory(list)  # MarketLine
    starting_equity: Decimal = ZERO
    final_equity: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    unrealized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    funding_received: Decimal = ZERO
    funding_paid: Decimal = ZERO
    liquidations: int = 0
    liquidation_fees: Decimal = ZERO
    max_drawdown: Decimal = ZERO
    max_drawdown_frac: Decimal = ZERO
    max_drawdown_duration_s: float = 0.0
    #: the max drawdown's peak, trough and recovery times (ns; recovery None: not recovered)
    max_drawdown_peak_ns: int | None = None
    max_drawdown_trough_ns: int | None = None
    max_drawdown_recovery_ns: int | None = None
    longest_underwater_s: float = 0.0
    equity_samples: int = 0
    closed_trades: int = 0
    wins: int = 0
    #: realized PnL (before fees) and fees per order tag, :class:`~perpbot.core.metrics.TagFigures`
    per_tag: list = attrs.Factory(list)
    #: funding (USD, + received) per strategy name
    funding_by_strategy: dict = attrs.Factory(dict)
    events: int = 0
    wall_seconds: float = 0.0
    decisions: int = 0
    orders_sent: int = 0
    orders_rejected: int = 0
    risk_actions: int = 0
    strategy_errors: int = 0
    stop_reason: str = ""
    notes: list = attrs.Factory(list)
    strategy_lines: list = attrs.Factory(list)
    feed_stats: dict = attrs.Factory(dict)
    #: ticker -> why its order book never synced (the feed's ``unsynced_books()``; e.g. no depth snapshot)
    unsynced_books: dict = attrs.Factory(dict)

    @property
    def events_read(self) -> int:
        """Market events the feed read: its own count (which includes e.g. level entries of depth
        messages dropped before the book snapshot) when the data ran to its end; else the events
        applied (a feed reads ahead, so its counters are not at the stopping point)."""
        if self.stop_reason == "end of data" and self.feed_stats.get("events"):
            return int(self.feed_stats["events"])
        return self.events

    @property
    def events_per_second(self) -> float:
        """:attr:`events_read` per second of wall time (0.0 when no wall time was measured)."""
        return self.events_read / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def win_rate(self) -> float | None:
        """Closed trades won net of fees / closed trades (None without closed trades)."""
        return self.wins / self.closed_trades if self.closed_trades else None

    @property
    def funding_net(self) -> Decimal:
        """Funding received minus funding paid, USD."""
        return self.funding_received - self.funding_paid

    @property
    def total_return(self) -> Decimal:
        """``(final_equity - starting_equity) / starting_equity`` (a fraction); 0 without
        positive starting equity."""
        if self.starting_equity <= 0:
            return ZERO
        return (self.final_equity - self.starting_equity) / self.starting_equity

    def render(self) -> str:
        """Plain-text summary (also what the CLI prints)."""
        span_s = max(0, self.end_ns - self.start_ns) / 1e9
        lines = [
            f"Run {self.run_id}: strategy {self.strategy} on {', '.join(self.venues)}"
            f" — {span_s / 3600:.2f} h of market time" + (f", stopped: {self.stop_reason}" if self.stop_reason else ""),
            "",
            f"{'market':<18}{'fills':>7}{'volume USD':>16}{'fees':>12}{'funding':>12}{'realized':>12}{'unrealized':>12}"
            f"{'position':>12}{'trades':>8}{'won':>6}",
        ]
        for m in self.markets:
            lines.append(
                f"{m.ticker:<18}{m.fills:>7}{_usd(m.volume):>16}{_usd(m.fees):>12}{_usd(m.funding):>12}"
                f"{_usd(m.realized_pnl):>12}{_usd(m.unrealized_pnl):>12}{plain(m.position):>12}{m.trades:>8}{m.wins:>6}"
                + (f"  ({m.liquidations} liquidations)" if m.liquidations else "")
            )
        lines += [
            "",
            f"starting equity   {_usd(self.starting_equity):>14} USD",
            f"realized PnL      {_usd(self.realized_pnl):>14} USD",
            f"unrealized PnL    {_usd(self.unrealized_pnl):>14} USD",
            f"fees paid         {_usd(self.fees):>14} USD",
            f"funding received  {_usd(self.funding_received):>14} USD",
            f"funding paid      {_usd(self.funding_paid):>14} USD",
            f"liquidations      {self.liquidations:>14}   (fees to insurance fund {_usd(self.liquidation_fees)} USD)",
            f"final equity      {_usd(self.final_equity):>14} USD  ({self.total_return * 100:+.3f}%)",
            f"max drawdown      {_usd(self.max_drawdown):>14} USD  ({self.max_drawdown_frac * 100:.3f}%, lasted "
            f"{format_duration(self.max_drawdown_duration_s)}"
            + ("" if self.max_drawdown_recovery_ns is not None or self.max_drawdown_peak_ns is None else ", not recovered")
            + f"; longest under water {format_duration(self.longest_underwater_s)})",
            f"closed trades     {self.closed_trades:>14}   (won net of fees: {self.wins}"
            + ("" if self.win_rate is None else f", {self.win_rate * 100:.1f}%") + ")",
            f"decisions {self.decisions}, orders sent {self.orders_sent}, rejected {self.orders_rejected},"
            f" risk actions {self.risk_actions}, strategy errors {self.strategy_errors}",
            f"events processed  {self.events_read:,} (depth level entries, trades, quotes)"
            f" in {self.wall_seconds:.2f} s ({self.events_per_second:,.0f} events/s)"
            + (f"; {self.events:,} applied" if self.events != self.events_read else ""),
        ]
        if self.per_tag:
            lines += ["", f"{'order tag':<34}{'fills':>7}{'realized':>12}{'fees':>12}"]
            for t in self.per_tag:
                lines.append(f"{(t.tag or '(no tag)'):<34}{t.fills:>7}{_usd(t.realized):>12}{_usd(t.fees):>12}")
        if self.strategy_lines:
            lines += ["", *self.strategy_lines]
        if self.unsynced_books:
            lines += ["", *[f"order book never synced: {t}: {r}" for t, r in sorted(self.unsynced_books.items())]]
        if self.notes:
            lines += ["", *[f"note: {n}" for n in self.notes]]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """Every field as plain values (the journal stores it as ``runs.summary_json``; the
        report reads the drawdown figures back from it), plus the derived rates."""
        d = attrs.asdict(self)
        d["win_rate"] = self.win_rate
        d["events_per_second"] = self.events_per_second
        d["events_read"] = self.events_read
        return d
