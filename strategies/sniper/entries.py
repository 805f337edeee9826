"""The sniper's entry logic: the best markets above the entry threshold, top-N, with guards.

Candidates are the tradable markets without a position, ranked by composite (0-100,
highest first, :mod:`perpbot.strategies.sniper.scoring`). A candidate is entered on its
better side when, in this order:

1. its composite is at least ``entry_threshold``;
2. the warm-up is over (``warmup_s`` seconds since the first decision) and its scores
   are warm;
3. no order of ours is in flight on it (pending, or a resting ``sniper*`` order);
4. it is not cooling down (``cooldown_s`` after an exit);
5. fewer than ``max_positions`` positions are held or being entered (top-N);
6. its bar returns do not correlate above ``correlation_threshold`` with a held position
   (not exiting) or an entry of this cycle in the same direction
   (:func:`perpbot.strategies.sniper.correlation.bar_return_correlation`, Pearson on bar
   log returns over ``correlation_lookback`` bars; unknown below
   ``correlation_min_returns`` returns: not blocking).

An entry carries no size (the position sizer decides): a MARKET order, or with
``order_type = LIMIT`` a GTT limit at the touch (the bid for a buy, the ask for a sell)
living ``limit_good_til_s`` seconds. Tag ``sniper-entry``.

Sources: seed 000 ("Multi-Market Sniper Logic", "Cross-Market Decision Making",
"Threshold Management"), seed 001 week 6 ("Correlation analysis for leveraged
positions"), issue 2 item 7 and issue 5 item 3 (top-N, cool-down, warm-up, LIMIT entries).

Imports only :mod:`perpbot` and the sniper's own modules.
"""

from __future__ import annotations

from typing import Any

from perpbot import OrderParams, OrderType, Side, TimeInForce

from perpbot.strategies.sniper.correlation import bar_return_correlation
from perpbot.strategies.sniper.params import ENTRY_TAG, NS, SniperParams
from perpbot.strategies.sniper.scoring import explain
from perpbot.strategies.sniper.state import SniperBook, has_open_order
from perpbot.strategies.sniper.table import Row


class EntryPolicy:
    """Decides the entries of one decision cycle (rules: module docstring).

    :param params: the sniper's parameters.
    :param book: the sniper's state; :meth:`decide` records each entry in flight there.
    """

    def __init__(self, params: SniperParams, book: SniperBook):
        self.params = params
        self.book = book
        self.entry_threshold = float(params.entry_threshold)
        self.warmup_ns = int(params.warmup_s * NS)
        self.corr_threshold = float(params.correlation_threshold)

    def decide(self, md: Any, rows: dict[str, Row], now: int) -> list[OrderParams]:
        """Entry orders for this cycle, best composite first; sets each candidate's ``row.action``.

        Call after the exits of the same cycle (a market exiting now is no same-direction
        exposure). :param md: the cycle's :class:`perpbot.MarketData`; :param rows: this
        cycle's rows by ticker (side and composite filled in); :param now: market time, ns.
        :returns: entry orders without a size.
        """
        p = self.params
        book = self.book
        held = {t: pos for t, pos in md.positions.items() if pos is not None and pos.size != 0}
        pending_entries = [t for t, v in book.pending.items() if v[0] == "entry" and t not in held]
        occupied = len(held) + len(pending_entries)
        warming = now - (book.first_ns or now) < self.warmup_ns
        # same-direction exposure: held positions (not exiting now) and this cycle's entries
        exposure: list[tuple[str, Side]] = [
            (t, Side.BUY if pos.size > 0 else Side.SELL)
            for t, pos in held.items()
            if book.pending_kind(t) != "exit"
        ]
        exposure += [(t, book.pending_side(t)) for t in pending_entries]
        out = []
        ranked = sorted(
            (r for r in rows.values() if not r.paused and r.composite is not None and r.ticker not in held),
            key=lambda r: -r.composite,
        )
        for row in ranked:
            t = row.ticker
            sc = row.scores
            direction = "long" if row.side is Side.BUY else "short"
            if row.composite < self.entry_threshold:
                row.action = f"below entry {self.entry_threshold:g} ({direction} {row.composite:.1f})"
                continue
            if warming:
                left = (self.warmup_ns - (now - book.first_ns)) / NS
                row.action = f"warming up ({left:.0f}s left)"
                continue
            if not getattr(sc, "warm", True):
                row.action = "scores not warm yet"
                continue
            if t in book.pending or has_open_order(md, t):
                row.action = "order in flight"
                continue
            until = book.cooldown_until.get(t, 0)
            if now < until:
                row.action = f"cooldown {(until - now) / NS:.0f}s left"
                continue
            if occupied >= p.max_positions:
                row.action = f"max positions ({occupied}/{p.max_positions})"
                continue
            blocker = self.correlated(md, t, row.side, exposure)
            if blocker is not None:
                row.action = blocker
                continue
            intent = self.intent(md, t, row, direction)
            if intent is None:
                row.action = "no price for a LIMIT entry"
                continue
            out.append(intent)
            book.pending[t] = ("entry", now, row.side.value)
            exposure.append((t, row.side))
            occupied += 1
            row.action = f"ENTER {intent.reason}"
        return out

    def intent(self, md: Any, t: str, row: Row, direction: str) -> OrderParams | None:
        """The entry order for ``row`` (no size), or None for a LIMIT entry without a touch price.

        :param direction: ``"long"`` or ``"short"`` (for the reason text).
        """
        p = self.params
        reason = f"{direction} composite {row.composite:.1f} >= {self.entry_threshold:g} ({explain(row.scores)})"
        if p.order_type is OrderType.LIMIT:
            st = md.markets.get(t)
            bid, ask = st.best_bid_offer() if st is not None else (None, None)
            price = bid if row.side is Side.BUY else ask
            if price is None:
                return None
            return OrderParams(
                ticker=t,
                side=row.side,
                order_type=OrderType.LIMIT,
                price=price,
                time_in_force=TimeInForce.GTT,
                good_til_s=p.limit_good_til_s,
                tag=ENTRY_TAG,
                reason=reason,
            )
        return OrderParams(ticker=t, side=row.side, order_type=OrderType.MARKET, tag=ENTRY_TAG, reason=reason)

    def correlated(self, md: Any, t: str, side: Side, exposure: list[tuple[str, Side]]) -> str | None:
        """Why ``t`` must not be entered on ``side`` (a correlated same-direction position), or None.

        :param exposure: ``(ticker, side)`` of the held positions and this cycle's entries.
        """
        p = self.params
        st = md.markets.get(t)
        for other, other_side in exposure:
            if other == t or other_side is not side:
                continue
            rho, n = bar_return_correlation(st, md.markets.get(other), p.correlation_lookback, p.correlation_min_returns)
            if rho is not None and rho > self.corr_threshold:
                direction = "long" if side is Side.BUY else "short"
                return (
                    f"correlated with {other} {direction} (rho {rho:.2f} > {self.corr_threshold:g} over {n} bars)"
                )
        return None
