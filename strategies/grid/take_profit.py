"""Mode ``take_profit`` of the grid (seed 002's take-profit grid), as a mixin of
:class:`~perpbot.strategies.grid.strategy.GridStrategy`.

How the mode works (open near mid, close at ``fill x (1 +/- take_profit_pct/100)``, at most
``max_orders`` close orders, seed 002's density-dependent wait and minimum grid step) is
described in :mod:`perpbot.strategies.grid.strategy`.

The mixin keeps no state of its own: it reads and writes the strategy's ``open``,
``closes``, ``pending_closes``, ``uncovered``, ``last_close_count``, ``last_open_ns``,
``stats`` and ``max_close_orders_seen``, and uses its helpers (``_market``, ``_size_for``,
``_position``, ``_warn_once``, ``close_side``, ``active_close_count``). Imports only
``perpbot`` and :mod:`perpbot.strategies.grid.records` / ``params``.
"""

from __future__ import annotations

from decimal import Decimal

from perpbot import OrderParams, OrderType, Side, StrategyAction, StrategyResult, TimeInForce

from perpbot.strategies.grid.params import Direction
from perpbot.strategies.grid.records import CLOSE_TAG, NS, OPEN_TAG, ZERO, CloseOrder, OpenOrder

D = Decimal

__all__ = ["TakeProfitGrid"]


class TakeProfitGrid:
    """The take-profit grid's decisions, reconciliation and fill handling (a mixin).

    Source: seed 002 (``/work/shared/seeds/002_*.txt``, "Example: Grid Strategy
    Implementation": open, then close at ``fill x (1 + take_profit)``, wait time by order
    density, minimum grid step). Prices USD, sizes base units, times ns.
    """

    # -- decisions ----------------------------------------------------------------------

    def wait_time_over(self, now_ns: int) -> bool:
        """Seed 002 ``_calculate_wait_time`` (True = no wait); mutates the close-count memory.

        ``now_ns``: decision time, ns since the epoch. With ``n`` close orders and
        ``w = wait_time_s`` seconds: a close order just filled -> no wait; ``n >= max_orders``
        -> wait; else wait ``2w``, ``w``, ``w/2`` or ``w/4`` since the last open as ``n/max``
        is at least 2/3, 1/3, 1/6 or below.
        """
        n = self.active_close_count()
        mx = self.params.max_orders
        if n < self.last_close_count:
            self.last_close_count = n
            return True
        self.last_close_count = n
        if n >= mx:
            return False
        w = self.params.wait_time_s
        ratio = D(n) / D(mx)
        if ratio >= D(2) / D(3):
            cool = 2 * w
        elif ratio >= D(1) / D(3):
            cool = w
        elif ratio >= D(1) / D(6):
            cool = w / 2
        else:
            cool = w / 4
        if self.last_open_ns == 0 and n > 0:
            self.last_open_ns = now_ns
        return D(now_ns - self.last_open_ns) / NS > cool

    def grid_step_ok(self, bid: Decimal, ask: Decimal) -> bool:
        """Seed 002 ``_meet_grid_step_condition``: a new close order would be at least one grid
        step from the nearest resting one.

        Long: ``nearest_close / (ask * (1 + tp/100)) > 1 + grid_step_pct/100``; short:
        ``(bid * (1 - tp/100)) / nearest_close > 1 + grid_step_pct/100`` (``bid``/``ask`` USD;
        percent parameters in percent). True without close orders.
        """
        prices = [c.price for c in self.closes.values()] + [c.price for c in self.pending_closes]
        if not prices:
            return True
        tp = self.params.take_profit_pct / 100
        step = 1 + self.params.grid_step_pct / 100
        if self.dir is Direction.LONG:
            nxt = min(prices)
            new_close = ask * (1 + tp)
            return nxt / new_close > step
        nxt = max(prices)
        new_close = bid * (1 - tp)
        return new_close / nxt > step

    def _tp_cycle(self, md, bid: Decimal, ask: Decimal, mid: Decimal) -> StrategyResult:
        market = self._market(md)
        now = md.ts_ns
        orders: list[OrderParams] = []
        cancels: list[tuple] = []
        reasons: list[str] = []
        close = self._cover(md, market, now)
        if close is not None:
            orders.append(close)
            reasons.append(close.reason)
        if self.open is not None:
            age = D(now - self.open.created_ns) / NS
            if age >= self.params.open_timeout_s and not self.open.cancel_sent:
                if self.open.cid is not None:
                    cancels.append((self.open.cid, self.ticker))
                    self.open.cancel_sent = True
                    reasons.append(f"open order {self.open.cid} unfilled after {age:.0f}s: cancel")
                else:
                    self.open = None  # never acknowledged
        elif self.paused:
            pass
        elif self.active_close_count() + (1 if self.uncovered else 0) >= self.params.max_orders:
            self.last_close_count = self.active_close_count()
        elif self.wait_time_over(now) and self.grid_step_ok(bid, ask):
            o = self._open_order(market, bid, ask, mid, now)
            if o is not None:
                orders.append(o)
                reasons.append(o.reason)
        self.max_close_orders_seen = max(self.max_close_orders_seen, self.active_close_count())
        if not orders and not cancels:
            return StrategyResult.nothing()
        action = StrategyAction.REPLACE_ORDERS if cancels else StrategyAction.PLACE_ORDERS
        return StrategyResult(action, orders=tuple(orders), cancels=tuple(cancels), reason="; ".join(reasons))

    def _open_order(self, market, bid: Decimal, ask: Decimal, mid: Decimal, now: int) -> OrderParams | None:
        tick = market.tick_size
        side = self.dir.side
        if side is Side.BUY:
            price = market.round_price(min(mid, ask - tick), Side.BUY)
        else:
            price = market.round_price(max(mid, bid + tick), Side.SELL)
        if price <= 0:
            return None
        size = self._size_for(market, price)
        if size < market.min_order_size:
            self._warn_once("size", f"grid {self.ticker}: order size {size} below the minimum {market.min_order_size}; not trading")
            return None
        self.open = OpenOrder(side, price, size, now, self.cycle)
        self.last_open_ns = now
        return OrderParams(
            ticker=self.ticker,
            side=side,
            order_type=OrderType.LIMIT,
            size=size,
            price=price,
            post_only=self.params.post_only,
            time_in_force=TimeInForce.POST_ONLY if self.params.post_only else TimeInForce.GTT,
            tag=OPEN_TAG,
            reason=f"grid open {side.value} {size} @ {price} near mid {mid} ({self.active_close_count()}/{self.params.max_orders} close orders)",
        )

    def _cover(self, md, market, now: int) -> OrderParams | None:
        """One close order for the open fills not yet covered, capped by the position."""
        if not self.uncovered:
            return None
        qty = sum((u[0] for u in self.uncovered), ZERO)
        value = sum((u[0] * u[1] for u in self.uncovered), ZERO)
        fee = sum((u[2] for u in self.uncovered), ZERO)
        vwap = value / qty
        pos = self._position(md) * self.dir.sign  # position in the grid's direction
        committed = sum((c.size - c.filled for c in self.closes.values()), ZERO) + sum(
            (c.size - c.filled for c in self.pending_closes), ZERO
        )
        allowed = max(pos - committed, ZERO)
        size = market.round_size(min(qty, allowed))
        self.uncovered.clear()
        if size < qty:
            self.log.info(
                f"grid {self.ticker}: {qty - size} of the filled open size is no longer in the position "
                f"(position {pos}, already covered {committed}); not closing it twice"
            )
        if size < market.min_order_size:
            return None
        tp = self.params.take_profit_pct / 100
        side = self.close_side
        price = market.round_price(vwap * (1 + self.dir.sign * tp), side)
        rec = CloseOrder(price, size, vwap, fee * size / qty, now, self.cycle)
        self.pending_closes.append(rec)
        return OrderParams(
            ticker=self.ticker,
            side=side,
            order_type=OrderType.LIMIT,
            size=size,
            price=price,
            tag=CLOSE_TAG,
            reason=f"grid close {side.value} {size} @ {price} = fill {vwap:.8g} x (1 {'+' if self.dir.sign > 0 else '-'} {self.params.take_profit_pct}%)",
        )

    # -- reconciliation with the bot's open orders ----------------------------------------

    def _sync_take_profit(self, md, live: dict) -> None:
        """Take-profit half of :meth:`GridStrategy._sync`: adopt or drop the open order and
        close orders by client id and tag; re-cover close orders that were not accepted."""
        # the open order
        opens = [c for c, i in live.items() if i.tag == OPEN_TAG]
        if self.open is not None:
            if self.open.cid is None:
                if opens:
                    self.open.cid = opens[0]
                elif self.open.cycle < self.cycle and self.open.filled == 0:
                    self.log.info(f"grid {self.ticker}: open order @ {self.open.price} was not accepted; will retry")
                    self.open = None
            elif self.open.cid not in live:
                self.open = None  # filled or canceled: fills were already booked
        if self.open is None and opens:
            info = live[opens[0]]
            self.open = OpenOrder(info.side, info.price or ZERO, info.size, info.created_ns or md.ts_ns, self.cycle,
                                  cid=info.client_id, filled=info.filled_size)
            self.log.info(f"grid {self.ticker}: adopted live open order {info.client_id}")
        # close orders
        for cid in [c for c in self.closes if c not in live]:
            self._close_gone(cid)
        for cid, info in live.items():
            if info.tag != CLOSE_TAG or cid in self.closes:
                continue
            rec = self._match_pending(info.side, info.price, info.size)
            if rec is None:
                rec = self._orphan_close(info.price or ZERO, info.size, md.ts_ns)
                self.log.info(f"grid {self.ticker}: adopted live close order {cid} @ {info.price}")
            rec.cid = cid
            rec.filled = max(rec.filled, info.filled_size)
            self.closes[cid] = rec
        for rec in list(self.pending_closes):
            if rec.cycle < self.cycle:
                self.pending_closes.remove(rec)
                remaining = rec.size - rec.filled
                if remaining > 0:
                    self.log.warning(f"grid {self.ticker}: close order {rec.size} @ {rec.price} was not accepted; re-covering")
                    self.uncovered.append((remaining, rec.open_price, rec.open_fee * remaining / rec.size))

    def _match_pending(self, side: Side, price: Decimal | None, size: Decimal) -> CloseOrder | None:
        if side is not self.close_side:
            return None
        for rec in self.pending_closes:
            if rec.size == size and (price is None or rec.price == price):
                self.pending_closes.remove(rec)
                return rec
        for rec in self.pending_closes:
            if rec.size - rec.filled >= size:
                self.pending_closes.remove(rec)
                return rec
        return None

    def _orphan_close(self, price: Decimal, size: Decimal, now: int) -> CloseOrder:
        tp = self.params.take_profit_pct / 100
        open_price = price / (1 + self.dir.sign * tp) if price else ZERO
        return CloseOrder(price, size, open_price, ZERO, now, self.cycle, estimated=True)

    def _close_gone(self, cid: int) -> None:
        rec = self.closes.pop(cid, None)
        if rec is None:
            return
        remaining = rec.size - rec.filled
        if remaining > 0 and not self.stopped:
            # canceled or expired before filling completely: close what is left again
            self.uncovered.append((remaining, rec.open_price, rec.open_fee * remaining / rec.size))
            if rec.filled > 0:
                self._book_partial_cycle(rec)

    def _book_partial_cycle(self, rec: CloseOrder) -> None:
        share = rec.filled / rec.size
        self.stats.gross += rec.gross
        self.stats.fees += rec.fees + rec.open_fee * share

    # -- fills ----------------------------------------------------------------------------

    def _on_open_fill(self, fill) -> None:
        """A fill of the open order: its size waits in ``uncovered`` for a close order."""
        if self.open is not None and self.open.cid in (None, fill.client_id):
            self.open.cid = fill.client_id
            self.open.filled += fill.size
        self.uncovered.append((fill.size, fill.price, fill.fee))
        self.stats.opens_filled += 1

    def _on_close_fill(self, fill) -> None:
        """A fill of a close order; a completely filled close order is one cycle."""
        rec = self.closes.get(fill.client_id)
        if rec is None:
            rec = self._match_pending(fill.side, None, fill.size) or self._orphan_close(fill.price, fill.size, fill.ts_ns)
            rec.cid = fill.client_id
            self.closes[fill.client_id] = rec
        rec.filled += fill.size
        rec.gross += self.dir.sign * (fill.price - rec.open_price) * fill.size
        rec.fees += fill.fee
        if rec.filled >= rec.size:
            del self.closes[fill.client_id]
            self.stats.add(fill.ts_ns, rec.gross, rec.fees + rec.open_fee)
