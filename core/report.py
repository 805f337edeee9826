"""The end-of-run summary a trader can check by hand.

:class:`RunSummary` is built by the bot from its portfolio(s), the feed's
counters and its own equity curve. :meth:`RunSummary.render` gives the text
printed at the end of ``runbot.py`` (trades per market, fees, funding paid and
received, liquidations, realized/unrealized PnL, final equity, max drawdown,
events processed and events per second).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

ZERO = Decimal(0)


def _usd(v: Decimal) -> str:
    return f"{v:,.2f}"


class DrawdownTracker:
    """Running maximum drawdown of an equity series (USD and fraction of the peak), O(1) per sample."""

    __slots__ = ("peak", "max_dd", "max_dd_frac", "peak_ns", "dd_start_ns", "max_dd_duration_ns", "samples")

    def __init__(self):
        self.peak: Decimal | None = None
        self.max_dd = ZERO
        self.max_dd_frac = ZERO
        self.peak_ns = 0
        self.dd_start_ns = 0
        self.max_dd_duration_ns = 0
        self.samples = 0

    def update(self, equity: Decimal, ts_ns: int) -> None:
        self.samples += 1
        if self.peak is None or equity >= self.peak:
            self.peak = equity
            self.peak_ns = ts_ns
            return
        dd = self.peak - equity
        if dd > self.max_dd:
            self.max_dd = dd
            self.max_dd_frac = dd / self.peak if self.peak > 0 else ZERO
        duration = ts_ns - self.peak_ns
        if duration > self.max_dd_duration_ns:
            self.max_dd_duration_ns = duration


@attrs.define
class MarketLine:
    ticker: str
    fills: int
    volume: Decimal
    fees: Decimal
    funding: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    position: Decimal
    liquidations: int


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
        return self.events_read / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def funding_net(self) -> Decimal:
        return self.funding_received - self.funding_paid

    @property
    def total_return(self) -> Decimal:
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
            f"{'market':<18}{'fills':>7}{'volume USD':>16}{'fees':>12}{'funding':>12}{'realized':>12}{'unrealized':>12}{'position':>12}",
        ]
        for m in self.markets:
            lines.append(
                f"{m.ticker:<18}{m.fills:>7}{_usd(m.volume):>16}{_usd(m.fees):>12}{_usd(m.funding):>12}"
                f"{_usd(m.realized_pnl):>12}{_usd(m.unrealized_pnl):>12}{m.position.normalize():>12}"
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
            f"max drawdown      {_usd(self.max_drawdown):>14} USD  ({self.max_drawdown_frac * 100:.3f}%, {self.max_drawdown_duration_s:.0f} s)",
            f"decisions {self.decisions}, orders sent {self.orders_sent}, rejected {self.orders_rejected},"
            f" risk actions {self.risk_actions}, strategy errors {self.strategy_errors}",
            f"events processed  {self.events_read:,} (depth level entries, trades, quotes)"
            f" in {self.wall_seconds:.2f} s ({self.events_per_second:,.0f} events/s)"
            + (f"; {self.events:,} applied" if self.events != self.events_read else ""),
        ]
        if self.strategy_lines:
            lines += ["", *self.strategy_lines]
        if self.notes:
            lines += ["", *[f"note: {n}" for n in self.notes]]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["events_per_second"] = self.events_per_second
        d["events_read"] = self.events_read
        return d
