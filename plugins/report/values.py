"""The report's result values: :class:`Report` and its :class:`Breakdown` and :class:`Marker` rows.

Definitions of every figure: :mod:`perpbot.plugins.report.analytics` (module docstring)
and :mod:`perpbot.core.metrics`. Money is Decimal USD, times are ns since the epoch,
ratios are floats. Imports only :mod:`perpbot.core` and ``attrs``.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from perpbot.core.metrics import MIN_DAILY_RETURNS, market_label, plain

ZERO = Decimal(0)


@attrs.define
class Breakdown:
    """Figures of one market, one strategy or one order tag (USD).

    ``realized`` sums the realized PnL of the group's fills; ``trades``/``wins`` count the
    round trips closed by them (wins net of fees, :mod:`perpbot.core.metrics`).
    """

    key: str
    fills: int = 0
    volume: Decimal = ZERO
    realized: Decimal = ZERO
    unrealized: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    position: Decimal = ZERO
    trades: int = 0
    wins: int = 0
    maker_fills: int = 0
    liquidations: int = 0

    @property
    def net(self) -> Decimal:
        """Net PnL of the group, USD: ``realized + unrealized - fees + funding``."""
        return self.realized + self.unrealized - self.fees + self.funding

    @property
    def win_rate(self) -> float | None:
        """``wins / trades`` (0..1), None without closed trades."""
        return self.wins / self.trades if self.trades else None


@attrs.define
class Marker:
    """An entry or exit on a market's price chart (from :func:`~perpbot.plugins.report.analytics.replay_fills`).

    :param ts_ns: fill time, ns. :param price: fill price, USD. :param side: ``"BUY"``/``"SELL"``.
    :param kind: ``"entry"`` (opened size) or ``"exit"`` (closed size).
    :param size: base units opened or closed by the fill. :param client_id: the order's client id.
    """

    ts_ns: int
    price: Decimal
    side: str
    kind: str  # "entry" or "exit"
    size: Decimal
    client_id: int


@attrs.define
class Report:
    """Everything the HTML report shows; see the module docstring for definitions."""

    journal: str
    runs: list  # dicts of the runs rows in the chain
    run_ids: list
    strategies: list
    venues: list  # primary venue first
    start_ns: int
    end_ns: int
    primary_venue: str = ""
    # pnl
    realized: Decimal = ZERO
    unrealized: Decimal = ZERO
    fees: Decimal = ZERO
    liquidation_fees: Decimal = ZERO
    funding: Decimal = ZERO
    start_equity: Decimal | None = None
    end_equity: Decimal | None = None
    # performance
    total_return: float | None = None
    period_s: float | None = None  # the journal's equity sampling interval
    periods_per_year: float | None = None
    n_returns: int = 0  # daily returns
    sharpe: float | None = None
    sortino: float | None = None
    annualisation_note: str = ""
    max_drawdown: Decimal = ZERO
    max_drawdown_frac: float = 0.0
    max_drawdown_peak_ns: int | None = None
    max_drawdown_trough_ns: int | None = None
    max_drawdown_recovery_ns: int | None = None
    max_drawdown_duration_s: float = 0.0
    max_drawdown_recovered: bool = True
    longest_underwater_s: float = 0.0
    #: where the drawdown figures come from (the run summary or the sampled equity)
    drawdown_source: str = ""
    # trading
    trades: list = attrs.Factory(list)
    fills: int = 0
    volume: Decimal = ZERO
    turnover: float | None = None
    time_in_market: float | None = None
    avg_gross_leverage: float | None = None
    max_gross_leverage: float | None = None
    # breakdowns and series
    per_market: dict = attrs.Factory(dict)
    per_strategy: dict = attrs.Factory(dict)
    per_tag: dict = attrs.Factory(dict)
    equity_series: list = attrs.Factory(list)  # (ts_ns, equity)
    drawdown_series: list = attrs.Factory(list)  # (ts_ns, fraction <= 0)
    price_series: dict = attrs.Factory(dict)  # market label -> [(ts_ns, price)]
    markers: dict = attrs.Factory(dict)  # market label -> [Marker]
    risk_actions: list = attrs.Factory(list)
    liquidations: list = attrs.Factory(list)
    sources: list = attrs.Factory(list)
    notes: list = attrs.Factory(list)

    @property
    def net_pnl(self) -> Decimal:
        """Net PnL, USD: ``realized + unrealized - fees - liquidation_fees + funding``."""
        return self.realized + self.unrealized - self.fees - self.liquidation_fees + self.funding

    @property
    def equity_change(self) -> Decimal | None:
        """``end_equity - start_equity``, USD; None without equity snapshots."""
        if self.start_equity is None or self.end_equity is None:
            return None
        return self.end_equity - self.start_equity

    @property
    def closed_trades(self) -> list:
        """The round trips that closed (:class:`~perpbot.core.metrics.Trade` with ``closed``)."""
        return [t for t in self.trades if t.closed]

    @property
    def wins(self) -> int:
        """Closed trades won net of fees."""
        return sum(1 for t in self.trades if t.won)

    @property
    def win_rate(self) -> float | None:
        """Closed trades won net of fees / closed trades (0..1); None without closed trades."""
        closed = self.closed_trades
        return self.wins / len(closed) if closed else None

    @property
    def average_trade(self) -> Decimal | None:
        """Mean net PnL of the closed trades, USD; None without closed trades."""
        closed = self.closed_trades
        return sum((t.pnl for t in closed), ZERO) / len(closed) if closed else None

    @property
    def ratios_supported(self) -> bool:
        """Sharpe/Sortino are shown only on at least ``MIN_DAILY_RETURNS`` daily returns."""
        return self.sharpe is not None or self.sortino is not None

    def label(self, venue: str, ticker: str) -> str:
        """The market's name as the run summary prints it."""
        return market_label(venue, ticker, self.primary_venue)

    def figures(self) -> dict:
        """The headline figures as JSON-ready values (Decimals as plain decimal strings)."""

        def s(v):
            return None if v is None else plain(v)

        return {
            "journal": self.journal,
            "run_ids": self.run_ids,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "realized": s(self.realized),
            "unrealized": s(self.unrealized),
            "fees": s(self.fees),
            "liquidation_fees": s(self.liquidation_fees),
            "funding": s(self.funding),
            "net_pnl": s(self.net_pnl),
            "start_equity": s(self.start_equity),
            "end_equity": s(self.end_equity),
            "equity_change": s(self.equity_change),
            "total_return": self.total_return,
            "sharpe": self.sharpe,
            "sortino": self.sortino,
            "daily_returns": self.n_returns,
            "min_daily_returns": MIN_DAILY_RETURNS,
            "period_s": self.period_s,
            "max_drawdown": s(self.max_drawdown),
            "max_drawdown_frac": self.max_drawdown_frac,
            "max_drawdown_duration_s": self.max_drawdown_duration_s,
            "max_drawdown_recovered": self.max_drawdown_recovered,
            "max_drawdown_source": self.drawdown_source,
            "longest_underwater_s": self.longest_underwater_s,
            "fills": self.fills,
            "volume": s(self.volume),
            "turnover": self.turnover,
            "closed_trades": len(self.closed_trades),
            "wins": self.wins,
            "win_rate": self.win_rate,
            "average_trade": s(self.average_trade),
            "time_in_market": self.time_in_market,
            "avg_gross_leverage": self.avg_gross_leverage,
            "per_market": {k: breakdown_dict(b) for k, b in self.per_market.items()},
            "per_strategy": {k: breakdown_dict(b) for k, b in self.per_strategy.items()},
            "per_tag": {k: breakdown_dict(b) for k, b in self.per_tag.items()},
        }


def breakdown_dict(b: Breakdown) -> dict:
    """``b`` as JSON-ready values (Decimals as plain decimal strings, :func:`~perpbot.core.metrics.plain`)."""
    return {
        "fills": b.fills,
        "volume": plain(b.volume),
        "realized": plain(b.realized),
        "unrealized": plain(b.unrealized),
        "fees": plain(b.fees),
        "funding": plain(b.funding),
        "net": plain(b.net),
        "position": plain(b.position),
        "trades": b.trades,
        "wins": b.wins,
    }
