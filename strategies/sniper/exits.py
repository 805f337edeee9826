"""The sniper's exit policy: take-profit, stop-loss, score decay after a minimum hold.

For each open position of a tradable market, in priority order:

1. take-profit: the return of the mark against the entry price, in the position's
   direction, ``ret = (mark - entry) / entry`` (negated for a short), is at least
   ``take_profit`` (fraction);
2. stop-loss: ``ret <= -stop_loss`` (fraction);
3. score decay: the composite for the HELD direction (0-100) is below
   ``exit_threshold``, once ``min_hold_s`` seconds have passed since the opening fill
   (take-profit and stop-loss act at once).

An exit is a reduce-only IOC market order for the whole position, tagged
``sniper-exit:<reason>``; the market cools down for ``cooldown_s`` seconds from the
decision. Paused markets are never exited (their data is not trustworthy); a market with
an exit already in flight (pending, or a resting reduce-only ``sniper*`` order) waits.
The entry price is the position's own (``Position.entry_price``), else the sniper's
average from fills.

Sources: seed 000 ("Threshold Management": thresholds turn continuous scores into
discrete decisions; "Position Management"), issue 2 item 7 (take-profit / stop-loss /
score decay) and issue 5 item 3 (minimum hold, cool-down).

Imports only :mod:`perpbot` and the sniper's own modules.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from perpbot import OrderParams, OrderType, Side, TimeInForce

from perpbot.strategies.sniper.params import EXIT_TAG, NS, SniperParams
from perpbot.strategies.sniper.scoring import Scorer, explain
from perpbot.strategies.sniper.state import SniperBook, has_open_order
from perpbot.strategies.sniper.table import Row


def _fmt_px(v: Decimal) -> str:
    """A price for a reason text: an average entry can be a 28-digit quotient; show 8 significant digits."""
    return f"{v:.8g}" if v.as_tuple().exponent < -6 else str(v)


def _fmt_pct(x: Decimal) -> str:
    """A fraction as a signed percentage with 3 decimals (0.003 -> ``+0.300%``)."""
    return f"{x * 100:+.3f}%"


class ExitPolicy:
    """Decides the exits of one decision cycle (rules: module docstring).

    :param params: the sniper's parameters (``take_profit``, ``stop_loss``, ``exit_threshold``,
        ``min_hold_s``, ``cooldown_s``).
    :param scorer: the composite of those parameters.
    :param book: the sniper's state; :meth:`decide` records each exit in flight and its cool-down there.
    """

    def __init__(self, params: SniperParams, scorer: Scorer, book: SniperBook):
        self.params = params
        self.scorer = scorer
        self.book = book
        self.exit_threshold = float(params.exit_threshold)
        self.cooldown_ns = int(params.cooldown_s * NS)
        self.min_hold_ns = int(params.min_hold_s * NS)

    def decide(self, md: Any, rows: dict[str, Row], now: int) -> list[OrderParams]:
        """Exit orders for this cycle; sets each held market's ``row.action`` (and, for a
        score check, its held ``side``/``composite``).

        :param md: the cycle's :class:`perpbot.MarketData` (positions, marks USD, open orders).
        :param rows: this cycle's rows by ticker (markets without a row are not looked at).
        :param now: market time of the decision, ns since the epoch.
        :returns: reduce-only IOC market orders, size = the whole position (base units).
        """
        p = self.params
        book = self.book
        out = []
        for t, pos in md.positions.items():
            if pos is None or pos.size == 0:
                continue
            row = rows.get(t)
            if row is None:  # not one of the markets this view covers
                continue
            if row.paused:
                row.action = "paused: not traded"
                continue
            long = pos.size > 0
            direction = "long" if long else "short"
            if book.pending_kind(t) == "exit" or has_open_order(md, t, reduce_only=True):
                row.action = f"exit in flight ({book.exit_reason.get(t, 'pending')})"
                continue
            mark = md.marks.get(t)
            entry = book.entries.get(t)
            entry_px = pos.entry_price if pos.entry_price else (entry.price if entry else None)
            reason = kind = None
            if mark is not None and entry_px:
                ret = (mark - entry_px) / entry_px
                if not long:
                    ret = -ret
                if ret >= p.take_profit:
                    kind = "take-profit"
                    reason = (
                        f"take-profit: {direction} mark {mark} vs entry {_fmt_px(entry_px)} = {_fmt_pct(ret)} >= {_fmt_pct(p.take_profit)}"
                    )
                elif ret <= -p.stop_loss:
                    kind = "stop-loss"
                    reason = (
                        f"stop-loss: {direction} mark {mark} vs entry {_fmt_px(entry_px)} = {_fmt_pct(ret)} <= {_fmt_pct(-p.stop_loss)}"
                    )
            sc = row.scores
            if kind is None and sc is not None:
                held = self.scorer.held_composite(sc, pos.size)
                row.composite, row.side = held, (Side.BUY if long else Side.SELL)
                held_ns = now - entry.ts_ns if entry is not None else None
                if held < self.exit_threshold:
                    if held_ns is not None and held_ns < self.min_hold_ns:
                        row.action = (
                            f"hold {direction}: composite {held:.1f} < exit {self.exit_threshold:g} but held "
                            f"{held_ns / NS:.0f}s < min hold {p.min_hold_s}s"
                        )
                        continue
                    kind = "score decay"
                    reason = f"score decay: {direction} composite {held:.1f} < exit {self.exit_threshold:g} ({explain(sc)})"
            if kind is None:
                comp = row.composite if row.composite is not None else float("nan")
                row.action = f"hold {direction}: composite {comp:.1f} >= exit {self.exit_threshold:g}"
                continue
            side = Side.SELL if long else Side.BUY
            out.append(
                OrderParams(
                    ticker=t,
                    side=side,
                    order_type=OrderType.MARKET,
                    size=abs(pos.size),
                    time_in_force=TimeInForce.IOC,
                    reduce_only=True,
                    tag=f"{EXIT_TAG}:{kind}",
                    reason=reason,
                )
            )
            book.pending[t] = ("exit", now, kind)
            book.exit_reason[t] = kind
            book.cooldown_until[t] = now + self.cooldown_ns
            row.action = f"EXIT {reason}"
        return out
