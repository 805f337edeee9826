"""What a backtest records beyond its summary: the equity curve and every closed trade.

The sweep's objectives need the run's equity series (Sharpe, Sortino) and the PnL of each
closed trade (profit factor). The bot keeps neither in full (its
:class:`~perpbot.core.metrics.TradeLedger` keeps counts, its drawdown tracker running
figures), so the research plugin's observer hooks (``on_decision``, ``on_fill``,
``on_bot_stop``, :mod:`perpbot.plugins.research`) feed a :class:`Recorder` while one is
active (:func:`recording`). Outside :func:`recording` the hooks do nothing, so ordinary
runs pay one attribute test per hook call.

The equity samples are the drawdown tracker's (``core/bot/decisions.py``
``track_equity``): one per decision cycle at the run's clock time, plus the final equity at
the run's end. Trades are the ledger's round trips (``perpbot.core.metrics.TradeLedger``),
fed with the same fills the bot books, so ``len(closed)`` equals the summary's
``closed_trades`` on a single-venue run.

One run per process at a time (a Ray worker runs one cell at a time): the active recorder
is a module global, set and cleared by :func:`recording`.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any, Iterator

from perpbot.core.metrics import TradeLedger

__all__ = ["Recorder", "active", "recording", "summary_json", "jsonable"]

_ACTIVE: list["Recorder"] = []


class Recorder:
    """Equity samples ``[(ts_ns, equity USD)]`` and a trade ledger of one run."""

    def __init__(self) -> None:
        self.equity: list[tuple[int, Decimal]] = []
        self.ledger = TradeLedger(keep_trades=True)

    def sample(self, ts_ns: int, equity: Decimal) -> None:
        """Add one equity sample (USD at ``ts_ns``); a sample at the same time replaces the last."""
        if self.equity and self.equity[-1][0] == ts_ns:
            self.equity[-1] = (ts_ns, equity)
        else:
            self.equity.append((ts_ns, equity))

    def fill(self, fill: Any) -> None:
        """Book one :class:`~perpbot.core.model.Fill` (qualified ticker, side, price, size, fee USD)."""
        self.ledger.add_fill(fill.venue or "", fill.ticker, fill.side.value, fill.price, fill.size, fill.fee,
                             fill.ts_ns, tag=fill.tag or "")

    @property
    def closed_pnls(self) -> list[Decimal]:
        """PnL net of fees (USD) of every closed trade, in closing order of opening."""
        return [t.pnl for t in self.ledger.trades if t.closed]


def active() -> Recorder | None:
    """The recorder of the run in progress, or None outside :func:`recording`."""
    return _ACTIVE[-1] if _ACTIVE else None


@contextlib.contextmanager
def recording() -> Iterator[Recorder]:
    """Record the run made inside the ``with`` block; yields its :class:`Recorder`."""
    rec = Recorder()
    _ACTIVE.append(rec)
    try:
        yield rec
    finally:
        _ACTIVE.remove(rec)


def jsonable(value: Any) -> Any:
    """``value`` with Decimals as strings (exact), tuples as lists, dict keys as strings."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def summary_json(summary: Any) -> dict:
    """The figures of a :class:`~perpbot.core.report.RunSummary` as JSON-ready values: exactly
    :meth:`RunSummary.as_dict` (every field plus ``win_rate``, ``events_per_second``,
    ``events_read``), Decimals as strings. What ``runbot.py backtest --json`` prints."""
    return jsonable(summary.as_dict())
