"""The multi-market sniper: rank markets by a weighted, direction-aware composite of their
0-100 scores, hold the best few, exit on take-profit, stop-loss or score decay.

Composite (floats, 0-100). With the five scores of :mod:`perpbot.core.signals`
(momentum m, volume v, volatility x, orderbook o, funding f — funding being the
attractiveness for a LONG) and weights ``w`` normalised to sum to 1::

    long  = w_m*m         + w_v*v + w_x*x + w_o*o         + w_f*f
    short = w_m*(100 - m) + w_v*v + w_x*x + w_o*(100 - o) + w_f*(100 - f)

Momentum, order book and funding are signed around 50, so a short wants them
low; volume and volatility say "something is happening" and count for either
side. A market's candidate side is the one with the higher composite (long
only when ``allow_short`` is false).

Each decision cycle (see :meth:`Sniper.execute_strategy`):

1. score every tradable market; paused markets are listed with their reason and
   never traded (no entries, no exits: their data is not trustworthy);
2. exits first, for each open position, in priority order: take-profit, then
   stop-loss (return of the mark price against the entry price, in the
   position's direction), then score decay (the composite for the HELD
   direction below ``exit_threshold``, once ``min_hold_s`` has passed). An exit
   is a reduce-only IOC market order for the full position;
3. entries into the best markets whose composite is at least
   ``entry_threshold``, skipping markets in cool-down (``cooldown_s`` after an
   exit), with an order in flight, or whose bar returns correlate above
   ``correlation_threshold`` with a position (or an entry of this cycle) in the
   same direction, up to ``max_positions`` open positions. Entries carry no
   size: the position sizer decides;
4. log the ranked score table (INFO when the cycle acts, DEBUG otherwise).

Sources: seed 000 (``/work/shared/seeds/000_*.txt``: the multi-market sniper on
continuous 0-100 scores, thresholds, signal weighting), seed 001 week 6 (correlation of
leveraged positions), issue 2 item 7 and issue 5 item 3 (exits, guards, persistence).

Layout: parameters in :mod:`~perpbot.strategies.sniper.params`, the composite in
:mod:`~perpbot.strategies.sniper.scoring`, the ranked table in
:mod:`~perpbot.strategies.sniper.table`, the exit policy in
:mod:`~perpbot.strategies.sniper.exits`, the entry logic in
:mod:`~perpbot.strategies.sniper.entries` (correlation in
:mod:`~perpbot.strategies.sniper.correlation`), the state and its persistence in
:mod:`~perpbot.strategies.sniper.state`. This module holds :class:`Sniper`, which wires
them into one decision cycle, and re-exports the names that used to live here.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any, Mapping

from loguru import logger as _default_logger

from perpbot import (
    BaseStrategy,
    OrderParams,
    OrderStatus,
    OrderType,
    Side,
    StrategyAction,
    StrategyResult,
    TimeInForce,
    Wake,
    in_range,
    param,
)

from perpbot.strategies.sniper.correlation import bar_return_correlation
from perpbot.strategies.sniper.entries import EntryPolicy
from perpbot.strategies.sniper.exits import ExitPolicy, _fmt_pct, _fmt_px
from perpbot.strategies.sniper.params import (
    D,
    ENTRY_TAG,
    EXIT_REASONS,
    EXIT_TAG,
    NS,
    ZERO,
    SniperParams,
    _order_type_ok,
)
from perpbot.strategies.sniper.scoring import Scorer, explain
from perpbot.strategies.sniper.state import Entry, SniperBook
from perpbot.strategies.sniper.table import Row, render_table

# names that lived here before the split (issue 10), kept importable
_Entry = Entry
_Row = Row

__all__ = [
    "D", "ENTRY_TAG", "EXIT_REASONS", "EXIT_TAG", "NS", "ZERO",
    "Sniper", "SniperParams", "bar_return_correlation",
]


def _book_attr(name: str, doc: str) -> property:
    """A read-write attribute of the strategy that lives in its :class:`SniperBook`."""

    def get(self):
        return getattr(self.book, name)

    def set(self, value):
        setattr(self.book, name, value)

    return property(get, set, doc=doc)


class Sniper(BaseStrategy):
    """Multi-market sniper: weighted 0-100 scores, top-N entries, TP/SL/score-decay exits.

    A template: walk-forward found no parameter set that beats costs out of sample (figures in
    :mod:`perpbot.strategies.sniper` and the README's "Out-of-sample figures of the built-in
    strategies"); its defaults are a starting point, not an edge.

    Collaborators (each with its own module): ``scorer`` (:class:`Scorer`, the composite),
    ``book`` (:class:`SniperBook`, all state, persisted by :meth:`get_state`),
    ``exit_policy`` (:class:`ExitPolicy`) and ``entry_policy`` (:class:`EntryPolicy`).

    :param params: :class:`SniperParams`.
    :param context: the :class:`perpbot.StrategyContext` (its ``logger`` is used when set).
    """

    name = "sniper"
    description = "ranks markets by a weighted composite of their 0-100 scores; enters the best, exits on TP/SL/decay"
    Params = SniperParams

    cooldown_until = _book_attr("cooldown_until", "ticker -> end of its cool-down, ns since the epoch")
    entries = _book_attr("entries", "ticker -> :class:`Entry` of the sniper's open position")
    entries_count = _book_attr("entries_count", "ticker -> positions opened (Counter)")
    exits_count = _book_attr("exits_count", "ticker -> exit reason -> n")
    wins = _book_attr("wins", "ticker -> round trips won net of fees")
    losses = _book_attr("losses", "ticker -> round trips lost net of fees")
    gross_pnl = _book_attr("gross_pnl", "ticker -> gross PnL of closed sizes, USD before fees")
    fees = _book_attr("fees", "ticker -> fees paid, USD")
    cycles = _book_attr("cycles", "decision cycles run")

    def __init__(self, params: SniperParams, context: Any):
        super().__init__(params, context)
        p = params
        self._entry_threshold = float(p.entry_threshold)
        self._exit_threshold = float(p.exit_threshold)
        self._timeout_ns = int(p.order_timeout_s * NS)
        self.log = (context.logger if context is not None and context.logger is not None else _default_logger)
        self.scorer = Scorer(p)
        self.book = SniperBook(int(p.cooldown_s * NS))
        self.exit_policy = ExitPolicy(p, self.scorer, self.book)
        self.entry_policy = EntryPolicy(p, self.book)

    # ------------------------------------------------------------------
    # scoring (see perpbot.strategies.sniper.scoring)
    # ------------------------------------------------------------------

    def composite(self, scores: Any, side: Side) -> float:
        """Direction-aware weighted composite (0-100) of ``scores`` for ``side`` (:meth:`Scorer.composite`)."""
        return self.scorer.composite(scores, side)

    def best_side(self, scores: Any) -> tuple[Side, float]:
        """The better side for a new position and its composite (long only without ``allow_short``)."""
        return self.scorer.best_side(scores)

    def explain(self, scores: Any) -> str:
        """The five 0-100 scores as one short text (:func:`perpbot.strategies.sniper.scoring.explain`)."""
        return explain(scores)

    # ------------------------------------------------------------------
    # decisions
    # ------------------------------------------------------------------

    @classmethod
    def analysis_spec(cls, params: SniperParams):
        """The analysis hub's analyzers when ``confluence_weight`` > 0, else None (read by the wiring)."""
        from perpbot.core.analysis.run import confluence_input

        return confluence_input(params.confluence_weight)

    def wake(self) -> Wake | None:
        """The ``wake_on`` parameter as a :class:`perpbot.Wake` (None when empty: the schedule only)."""
        return Wake.parse(self.params.wake_on) if self.params.wake_on else None

    async def should_execute(self, market_data) -> bool:
        """Decide whenever at least one market is tradable (``MarketData.tradable`` non-empty)."""
        return bool(market_data.tradable)

    async def execute_strategy(self, market_data) -> StrategyResult:
        """One decision cycle: score every market, exits first, then entries, then log the table.

        Each market's composite is also written to its scores' ``strategy_composite`` (the
        conviction read by score-aware sizers). :returns: ``PLACE_ORDERS`` with the exits
        and entries (reason: ``"<ticker>: <reason>; ..."``), or nothing.
        """
        md = market_data
        now = md.ts_ns
        book = self.book
        book.cycles += 1
        if book.first_ns is None:
            book.first_ns = now
        book.expire_pending(now, md, self._timeout_ns, self.params.order_timeout_s, self.log)
        rows: dict[str, Row] = {}
        for t in md.tradable:
            st = md.markets.get(t)
            sc = getattr(st, "scores", None)
            row = Row(t, scores=sc, position=md.positions.get(t))
            if sc is not None:
                row.side, row.composite = self.best_side(sc)
                if self.params.confluence_weight:  # the confluence as an input (perpbot.core.analysis.run.blend_confluence)
                    from perpbot.core.analysis.run import blend_confluence

                    row.composite, row.reasons = blend_confluence(self.context.options["analysis"], t, now, row.side is Side.BUY,
                                                                  row.composite, self.params.confluence_weight)
                try:
                    sc.strategy_composite = row.composite  # conviction for score-aware sizers
                except AttributeError:
                    pass
            rows[t] = row
        for t, reason in md.paused.items():
            rows[t] = Row(t, position=md.positions.get(t), paused=reason, scores=getattr(md.markets.get(t), "scores", None))

        exits = self.exit_policy.decide(md, rows, now)
        entries = self.entry_policy.decide(md, rows, now)
        orders = exits + entries
        self._log_table(md, rows, acted=bool(orders))
        if not orders:
            return StrategyResult.nothing()
        reason = "; ".join(f"{o.ticker}: {o.reason}" for o in orders)
        return StrategyResult(StrategyAction.PLACE_ORDERS, orders=tuple(orders), reason=reason)

    # ------------------------------------------------------------------
    # the ranked table (see perpbot.strategies.sniper.table)
    # ------------------------------------------------------------------

    def _log_table(self, md, rows: dict[str, Row], acted: bool) -> None:
        if acted:
            self.log.info("{}", self.table(md, rows))
        else:
            self.log.opt(lazy=True).debug("{}", lambda: self.table(md, rows))

    def table(self, md, rows: dict[str, Row]) -> str:
        """The ranked score table as one multi-line string (:func:`perpbot.strategies.sniper.table.render_table`)."""
        return render_table(md.ts_ns, md.positions, rows, self.params.max_positions, self._entry_threshold, self._exit_threshold)

    # ------------------------------------------------------------------
    # feedback
    # ------------------------------------------------------------------

    def on_fill(self, fill) -> None:
        """Book a fill of ours (:meth:`SniperBook.apply_fill`: entries, round trips, exits by reason, cool-down)."""
        self.book.apply_fill(fill)

    def on_order_update(self, update) -> None:
        """A rejected, canceled or expired order of ours no longer blocks its market."""
        if update.status not in (OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.EXPIRED):
            return
        self.book.order_ended(update.ticker, update.tag or "")

    # ------------------------------------------------------------------
    # persistence and summary (see perpbot.strategies.sniper.state)
    # ------------------------------------------------------------------

    def get_state(self) -> dict:
        """Everything the sniper remembers, JSON-ready (:meth:`SniperBook.to_json`, version 1)."""
        return self.book.to_json()

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Load :meth:`get_state`'s data after a restart (empty: nothing to restore)."""
        self.book.restore(state)

    def summary_lines(self) -> list[str]:
        """End-of-run lines: entries, exits by reason, won/lost after fees, gross PnL and fees per market (USD)."""
        return self.book.summary_lines()
