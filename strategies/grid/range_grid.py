"""Mode ``range`` of the grid (a classic range grid), as a mixin of
:class:`~perpbot.strategies.grid.strategy.GridStrategy`.

``levels`` prices between ``lower_price`` and ``upper_price``
(:func:`perpbot.strategies.grid.levels.grid_levels`); a filled level order is replaced by
the opposite order one step away, so one level is always empty. The details are in
:mod:`perpbot.strategies.grid.strategy`.

The mixin keeps no state of its own: it reads and writes the strategy's ``levels``,
``stats``, ``cycle`` and ``paused``, and uses its helpers (``_market``, ``_size_for``,
``_warn_once``, ``_grid_orders``). Imports only ``perpbot``, :mod:`perpbot.strategies.grid.levels`
and :mod:`perpbot.strategies.grid.records`.
"""

from __future__ import annotations

from decimal import Decimal

from perpbot import OrderParams, OrderType, Side, StrategyAction, StrategyResult, TimeInForce

from perpbot.strategies.grid.levels import grid_levels, nearest_level
from perpbot.strategies.grid.records import LEVEL_TAG, Level

__all__ = ["RangeGrid"]


class RangeGrid:
    """The range grid's layout, decisions, reconciliation and fill handling (a mixin).

    A classic range grid (not in the seeds; added beside seed 002's grid): buys below mid,
    sells above, a filled level replaced by the opposite order one level away. Prices USD,
    sizes base units, times ns.
    """

    # -- decisions ----------------------------------------------------------------------

    def _setup_levels(self, md, mid: Decimal) -> None:
        market = self._market(md)
        prices = grid_levels(self.params.lower_price, self.params.upper_price, self.params.levels, self.params.spacing, market.tick_size)
        empty = nearest_level(prices, mid)
        self.levels = []
        for i, p in enumerate(prices):
            lv = Level(i, p)
            lv.size = self._size_for(market, p)
            if i != empty:
                if p < mid:
                    lv.want = Side.BUY
                elif p > mid:
                    lv.want = Side.SELL
            self.levels.append(lv)
        self.log.info(
            f"grid {self.ticker}: range {prices[0]}..{prices[-1]} in {len(prices)} {self.params.spacing.value} levels, "
            f"mid {mid}, empty level {empty} ({prices[empty]})"
        )

    def _range_cycle(self, md, bid: Decimal, ask: Decimal, mid: Decimal) -> StrategyResult:
        if not self.levels:
            self._setup_levels(md, mid)
            self._sync_levels(self._grid_orders(md))  # live level orders (state lost) win over the layout
        market = self._market(md)
        orders = []
        if not self.paused:
            for lv in self.levels:
                if lv.want is None or lv.cid is not None or lv.pending_cycle is not None:
                    continue
                if (lv.want is Side.BUY and lv.price >= ask) or (lv.want is Side.SELL and lv.price <= bid):
                    continue  # would cross: wait until the market is back on the right side
                if lv.size < market.min_order_size:
                    self._warn_once("size", f"grid {self.ticker}: level size {lv.size} below the minimum {market.min_order_size}")
                    continue
                lv.pending_cycle = self.cycle
                orders.append(
                    OrderParams(
                        ticker=self.ticker,
                        side=lv.want,
                        order_type=OrderType.LIMIT,
                        size=lv.size,
                        price=lv.price,
                        post_only=self.params.post_only,
                        time_in_force=TimeInForce.POST_ONLY if self.params.post_only else TimeInForce.GTT,
                        tag=f"{LEVEL_TAG}{lv.i}",
                        reason=f"grid level {lv.i} {lv.want.value} {lv.size} @ {lv.price}"
                        + (f" (counter to a fill at {lv.entry_price})" if lv.entry_price is not None else ""),
                    )
                )
        if not orders:
            return StrategyResult.nothing()
        return StrategyResult(StrategyAction.PLACE_ORDERS, orders=tuple(orders), reason=f"grid: {len(orders)} level orders")

    # -- reconciliation with the bot's open orders ----------------------------------------

    def _sync_levels(self, live: dict) -> None:
        by_level = {}
        for cid, info in live.items():
            if info.tag.startswith(LEVEL_TAG):
                try:
                    by_level[int(info.tag[len(LEVEL_TAG):])] = info
                except ValueError:
                    continue
        for lv in self.levels:
            info = by_level.get(lv.i)
            if info is not None:
                if lv.cid != info.client_id:
                    if lv.cid is None and lv.pending_cycle is None:
                        self.log.info(f"grid {self.ticker}: adopted live order {info.client_id} at level {lv.i}")
                    lv.cid = info.client_id
                    lv.want = info.side
                    lv.size = info.size
                lv.pending_cycle = None
                lv.filled = max(lv.filled, info.filled_size)
                continue
            if lv.cid is not None:
                self._level_gone(lv)
            elif lv.pending_cycle is not None and lv.pending_cycle < self.cycle:
                lv.pending_cycle = None  # not accepted (e.g. post-only would cross): retried when possible

    def _level_gone(self, lv: Level) -> None:
        """A level order left the book without a complete fill (canceled/expired)."""
        if lv.filled > 0:
            self._level_complete(lv, partial=True)
        else:
            lv.cid = None
            lv.pending_cycle = None

    # -- fills ----------------------------------------------------------------------------

    def _on_level_fill(self, fill) -> None:
        """A fill of a level order; a completely filled one is replaced one step away."""
        try:
            i = int(fill.tag[len(LEVEL_TAG):])
        except ValueError:
            return
        if not 0 <= i < len(self.levels):
            return
        lv = self.levels[i]
        lv.cid = fill.client_id
        lv.pending_cycle = None
        lv.filled += fill.size
        lv.filled_value += fill.size * fill.price
        lv.fees += fill.fee
        if lv.want is None:
            lv.want = fill.side
        if lv.filled >= lv.size:
            self._level_complete(lv, ts_ns=fill.ts_ns)

    def _level_complete(self, lv: Level, partial: bool = False, ts_ns: int = 0) -> None:
        side = lv.want
        qty = lv.filled
        avg = lv.filled_value / qty
        if lv.entry_price is not None and side is not None:
            gross = (avg - lv.entry_price) * qty if side is Side.SELL else (lv.entry_price - avg) * qty
            self.stats.add(ts_ns, gross, lv.fees + lv.entry_fee * (qty / lv.size if lv.size else 1))
        j = lv.i + 1 if side is Side.BUY else lv.i - 1
        lv_size = lv.size
        remaining = lv.size - qty
        fees = lv.fees
        lv.reset()
        if partial and remaining > 0:
            # what did not fill stays wanted at this level
            lv.want = side
            lv.size = remaining
        else:
            lv.size = lv_size
        if side is None or not 0 <= j < len(self.levels):
            if side is not None:
                self.log.info(f"grid {self.ticker}: level {lv.i} filled at the edge of the range; no counter level")
            return
        other = self.levels[j]
        if other.want is not None or other.cid is not None:
            self.log.warning(f"grid {self.ticker}: counter level {j} is busy ({other.want}); counter order skipped")
            return
        other.want = side.opposite
        other.size = qty
        other.entry_price = avg
        other.entry_fee = fees
