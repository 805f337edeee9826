"""The run summary: the end-of-run figures, computed from the bot's portfolios and metrics.

Valid at any time (observers may ask mid-run). Per-market lines, totals across venues,
the drawdown tracker's figures (:mod:`perpbot.core.metrics`), the trade ledger's round
trips and tags, counters, and notes for every contained plugin error. Imports only
:mod:`perpbot.core` modules.
"""

from __future__ import annotations

import time
from typing import Any

import attrs

from perpbot.core.bot.support import NS
from perpbot.core.model import ZERO
from perpbot.core.report import MarketLine, RunSummary


def build_summary(bot: Any, *, notes: list[str], wall_start: float) -> RunSummary:
    """The :class:`~perpbot.core.report.RunSummary` of ``bot`` now.

    :param bot: the :class:`~perpbot.core.bot.TradingBot` (read only, except that equity
        tracking is brought up to date first, as at a decision).
    :param notes: extra lines (contained plugin errors), after ``bot.notes``.
    :param wall_start: ``time.perf_counter()`` at the start of the run (0: not started).
    """
    now = bot.clock.now_ns()
    lines = []
    fees = realized = unrealized = funding_in = funding_out = liq_fees = ZERO
    liquidations = 0
    final = ZERO
    for venue, pf in bot.portfolios.items():
        marks = bot.venue_marks(venue)
        final += pf.equity(marks)
        fees += pf.fees_paid
        realized += pf.realized_pnl
        unrealized += pf.unrealized_pnl(marks)
        liq_fees += pf.liquidation_fees
        for t in sorted(set(pf.stats) | set(pf.positions)):
            st = pf.stats[t]
            pos = pf.positions.get(t)
            size = pos.size if pos else ZERO
            mark = marks.get(t)
            upnl = pos.unrealized_pnl(mark) if (pos and pos.size and mark is not None) else ZERO
            closed = bot.ledger.per_market.get((venue, t))
            lines.append(
                MarketLine(
                    bot.qualify(venue, t), st.trades, st.volume, st.fees, st.funding, st.realized_pnl, upnl, size,
                    st.liquidations, closed.closed if closed else 0, closed.wins if closed else 0,
                )
            )
            liquidations += st.liquidations
            if st.funding > 0:
                funding_in += st.funding
            else:
                funding_out -= st.funding
    all_notes = list(bot.notes) + list(notes)
    for venue, ex in bot.exchanges.items():
        missing = getattr(ex, "funding_missing", None)
        if missing:
            all_notes.append(
                f"{venue}: the data has no funding rates for {', '.join(sorted(missing))}; funding was NOT simulated there (not assumed zero)"
            )
        venue_notes = getattr(ex, "summary_notes", None)  # a venue's own lines (e.g. dYdX subaccounts, reconciliation)
        if callable(venue_notes):
            try:
                all_notes.extend(f"{venue}: {line}" for line in venue_notes())
            except Exception as exc:  # a report line must not lose the summary
                all_notes.append(f"{venue}: summary notes failed: {type(exc).__name__}: {exc}")
    try:
        strategy_lines = list(bot.strategy.summary_lines())
    except Exception as exc:
        strategy_lines = [f"(strategy summary failed: {exc})"]
    dd = bot.drawdown
    return RunSummary(
        run_id=bot.run_id,
        strategy=bot.config.strategy,
        venues=tuple(bot.exchanges),
        start_ns=bot.start_ns,
        end_ns=now,
        markets=lines,
        starting_equity=bot.start_equity,
        final_equity=final,
        realized_pnl=realized,
        unrealized_pnl=unrealized,
        fees=fees,
        funding_received=funding_in,
        funding_paid=funding_out,
        liquidations=liquidations,
        liquidation_fees=liq_fees,
        max_drawdown=dd.max_dd,
        max_drawdown_frac=dd.max_dd_frac,
        max_drawdown_duration_s=dd.max_dd_duration_ns / NS,
        max_drawdown_peak_ns=dd.max_dd_peak_ns,
        max_drawdown_trough_ns=dd.max_dd_trough_ns,
        max_drawdown_recovery_ns=dd.max_dd_recovery_ns,
        longest_underwater_s=dd.longest_underwater_ns / NS,
        equity_samples=dd.samples,
        closed_trades=bot.ledger.closed_trades,
        wins=bot.ledger.wins,
        per_tag=[attrs.evolve(f) for _k, f in sorted(bot.ledger.per_tag.items())],
        funding_by_strategy=dict(bot.ledger.funding_by_strategy),
        events=bot.events_processed,
        wall_seconds=time.perf_counter() - wall_start if wall_start else 0.0,
        decisions=bot.decisions,
        orders_sent=bot.orders_sent,
        orders_rejected=bot.orders_rejected,
        risk_actions=len(bot.risk_log),
        strategy_errors=bot.strategy_errors,
        stop_reason=bot.stop_reason,
        notes=all_notes,
        strategy_lines=strategy_lines,
        feed_stats=dict(bot.feed.stats()),
        unsynced_books=dict(bot.feed.unsynced_books()),
    )
