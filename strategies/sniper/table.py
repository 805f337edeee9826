"""The sniper's ranked score table: one :class:`Row` per market per decision cycle, and its text.

The table is what a trader reads to see why the sniper acted (seed 000, "Rich Signal
Interface" and "Threshold Management": the scores per market and the thresholds applied
to them). Rows of tradable markets are ranked by composite (highest first; a market
without scores last), paused markets follow with their reason. Pure formatting: no
state, no I/O.

Imports only :mod:`perpbot`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

import attrs

from perpbot import Side

NS = 1_000_000_000


@attrs.define
class Row:
    """One market's line in a decision cycle, filled in as the cycle decides.

    :ivar ticker: the market, e.g. ``"BTC-USD"``.
    :ivar side: the candidate (or held) side, None without scores.
    :ivar composite: the composite (0-100) for ``side``, None without scores.
    :ivar scores: the market's score object (:mod:`perpbot.core.signals`), or None.
    :ivar position: the market's :class:`perpbot.Position` (size signed, base units), or None.
    :ivar action: what the cycle did or why not (free text), "" when nothing to say.
    :ivar paused: why the market is paused ("" when tradable); paused markets are never traded.
    """

    ticker: str
    side: Side | None = None
    composite: float | None = None
    scores: Any = None
    position: Any = None
    action: str = ""
    paused: str = ""
    reasons: tuple = ()  # the analysis hub's confluence reasons (with confluence_weight > 0), shown under the line


def render_table(
    ts_ns: int,
    positions: Mapping[str, Any],
    rows: Mapping[str, Row],
    max_positions: int,
    entry_threshold: float,
    exit_threshold: float,
) -> str:
    """The ranked score table as one multi-line string.

    :param ts_ns: the decision's market time, ns since the epoch (shown in UTC).
    :param positions: ``MarketData.positions`` (ticker -> position or None; open = size != 0).
    :param rows: this cycle's rows by ticker.
    :param max_positions: the top-N limit shown in the header.
    :param entry_threshold: entry threshold (0-100) shown in the header.
    :param exit_threshold: exit threshold (0-100) shown in the header.
    """
    when = datetime.fromtimestamp(ts_ns / NS, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    held = sum(1 for p in positions.values() if p is not None and p.size != 0)
    ranked = sorted(
        (r for r in rows.values() if not r.paused),
        key=lambda r: -(r.composite if r.composite is not None else -1.0),
    )
    paused = sorted((r for r in rows.values() if r.paused), key=lambda r: r.ticker)
    head = (
        f"sniper ranking {when} UTC: {len(ranked)} tradable, {len(paused)} paused, "
        f"positions {held}/{max_positions}, entry >= {entry_threshold:g}, exit < {exit_threshold:g}"
    )
    lines = [
        head,
        f"{'rank':>4}  {'ticker':<18} {'side':<5} {'comp':>5}  {'mom':>3} {'f/s':>7}  {'vol':>3} {'volat':>5} {'book':>4} {'fund':>4}  {'position':<22} action",
    ]
    for i, r in enumerate(ranked, 1):
        lines.append(row_line(str(i), r))
    for r in paused:
        lines.append(row_line("-", r))
    return "\n".join(lines)


def row_line(rank: str, r: Row) -> str:
    """One table line: rank ("-" for a paused market), ticker, side, composite, the scores
    (momentum with its fast/slow parts), the position (``size @ entry price``) and the action."""
    sc = r.scores
    if sc is not None:
        scores = (
            f"{sc.momentum:>3.0f} {sc.momentum_fast:>3.0f}/{sc.momentum_slow:<3.0f}  "
            f"{sc.volume:>3.0f} {sc.volatility:>5.0f} {sc.orderbook:>4.0f} {sc.funding:>4.0f}"
        )
    else:
        scores = f"{'-':>3} {'-':>7}  {'-':>3} {'-':>5} {'-':>4} {'-':>4}"
    side = "" if r.side is None else ("long" if r.side is Side.BUY else "short")
    comp = "-" if r.composite is None else f"{r.composite:.1f}"
    pos = r.position
    if pos is not None and pos.size != 0:
        position = f"{pos.size:+} @ {pos.entry_price}"
    else:
        position = "flat"
    action = f"paused: {r.paused}" if r.paused else (r.action or ("no scores yet" if sc is None else ""))
    return f"{rank:>4}  {r.ticker:<18} {side:<5} {comp:>5}  {scores}  {position:<22} {action}" + "".join(
        f"\n        {reason}" for reason in r.reasons[:3])
