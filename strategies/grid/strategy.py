"""The grid strategy: seed 002's take-profit grid, and a classic range grid.

Mode ``take_profit`` (seed 002, "the take-profit grid", exactly as the seed describes):

1. place an open order near mid (a post-only limit at ``min(mid, ask - tick)`` for a
   long grid, ``max(mid, bid + tick)`` for a short one), tag ``grid-open``;
2. when it fills, place a close order at ``fill * (1 + take_profit_pct/100)`` (long; short:
   ``1 - take_profit_pct/100``) for the filled size, tag ``grid-close``; an open order that
   has not filled after ``open_timeout_s`` is canceled (what filled is still closed);
3. at most ``max_orders`` close orders rest at once; the next open waits for a time that
   depends on the order density (seed 002 ``_calculate_wait_time``), with
   ``n`` = close orders and ``w = wait_time_s``::

       a close order just filled (n dropped)  -> no wait
       n >= max_orders                        -> wait (no open)
       n/max >= 2/3 -> 2w;  >= 1/3 -> w;  >= 1/6 -> w/2;  else w/4   since the last open

4. minimum grid step (seed 002 ``_meet_grid_step_condition``): with close orders resting,
   a long grid opens only when ``nearest_close / (ask * (1 + tp/100)) > 1 + grid_step_pct/100``
   (short: ``(bid * (1 - tp/100)) / nearest_close > 1 + grid_step_pct/100``), so close
   orders are at least one grid step apart;
5. ``stop_price``: a long grid stops when mid < stop (short: mid > stop): it cancels its
   orders, closes the position with a reduce-only market order and does nothing more.
   ``pause_price``: a long grid opens nothing while mid > pause (short: mid < pause);
   close orders keep working.

Mode ``range``: ``levels`` prices between ``lower_price`` and ``upper_price``
(arithmetic or geometric spacing, :mod:`perpbot.strategies.grid.levels`). At the first decision,
levels below mid get a buy, levels above a sell, and the level nearest mid stays empty.
When level ``i``'s order fills, it is replaced by the opposite order one step away (a buy
at ``i`` -> a sell at ``i+1``; a sell at ``i`` -> a buy at ``i-1``), so one level is always
empty. Tags ``grid-level-<i>``. ``stop_price``/``pause_price`` must lie outside the range:
below ``lower_price`` they trigger when mid <= it, above ``upper_price`` when mid >= it.

Both modes: every order has an explicit size (``quantity`` base units, or
``order_notional`` USD at the order's price, floored to the step) and a limit price on
the tick; close orders never exceed the position (they only ever reduce it, even after
a risk policy flattened the account). A cycle is one close order (take_profit) or one
counter-order (range) completely filled; its gross profit is ``(sell - buy) * size`` and
its net subtracts the fees of both fills.

Clean restart: :meth:`GridStrategy.get_state` / :meth:`GridStrategy.restore_state`
persist the grid (orders by client id, uncovered fills, levels, statistics);
:meth:`GridStrategy.on_start` compares ``MarketData.open_orders`` with that state by
client id and tag: live orders are adopted (never placed twice), orders that vanished
while the bot was down are dropped (their fills, when the bot's reconciliation replays
them to ``on_fill``, are booked like any other), and live ``grid-*`` orders unknown to
the state (state lost) are adopted by their tag.

Layout: parameters in :mod:`~perpbot.strategies.grid.params`, records in
:mod:`~perpbot.strategies.grid.records`, mode ``take_profit`` in
:mod:`~perpbot.strategies.grid.take_profit`, mode ``range`` in
:mod:`~perpbot.strategies.grid.range_grid` (level prices in
:mod:`~perpbot.strategies.grid.levels`); this module holds :class:`GridStrategy`, which
combines them, and re-exports the names that used to live here.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

from loguru import logger as _default_logger

from perpbot import BaseStrategy, ConfigError, OrderStatus, Side, StrategyAction, StrategyResult

from perpbot.strategies.grid.levels import Spacing  # noqa: F401  (re-exported)
from perpbot.strategies.grid.params import Direction, GridParams, Mode
from perpbot.strategies.grid.range_grid import RangeGrid
from perpbot.strategies.grid.records import (  # noqa: F401  (re-exported)
    CLOSE_TAG,
    LEVEL_TAG,
    NS,
    OPEN_TAG,
    ZERO,
    CloseOrder,
    GridStats,
    Level,
    OpenOrder,
)
from perpbot.strategies.grid.take_profit import TakeProfitGrid

D = Decimal

__all__ = [
    "GridStrategy", "GridParams", "Mode", "Direction", "Spacing", "OpenOrder", "CloseOrder", "Level", "GridStats",
    "OPEN_TAG", "CLOSE_TAG", "LEVEL_TAG",
]


class GridStrategy(TakeProfitGrid, RangeGrid, BaseStrategy):
    """Seed 002's take-profit grid and a classic range grid (see the module docstring).

    This class holds the state and what both modes share (parameters, stop/pause,
    reconciliation entry points, fills by tag, persistence, the report); each mode's
    decisions live in its mixin: :class:`~perpbot.strategies.grid.take_profit.TakeProfitGrid`
    and :class:`~perpbot.strategies.grid.range_grid.RangeGrid`.

    :param params: :class:`~perpbot.strategies.grid.params.GridParams`.
    :param context: the bot's :class:`perpbot.StrategyContext` (tickers, markets, logger).
    :raises ConfigError: no ticker, or a ``ticker`` parameter that is not among the run's tickers.
    """

    name = "grid"
    description = "seed 002 take-profit grid (open near mid, close at +TP, max_orders) or a range grid"
    Params = GridParams

    def __init__(self, params: GridParams, context):
        super().__init__(params, context)
        self.log = context.logger or _default_logger.bind(strategy=self.name)
        tickers = tuple(context.tickers or ())
        self.ticker = params.ticker or (tickers[0] if tickers else "")
        if not self.ticker:
            raise ConfigError("strategy grid: no ticker (set the ticker parameter or run with --ticker)")
        if tickers and self.ticker not in tickers:
            raise ConfigError(f"strategy grid: parameter ticker {self.ticker!r} is not among the run's tickers ({', '.join(tickers)})")
        self.dir = params.direction
        self.cycle = 0
        self.open: OpenOrder | None = None
        self.closes: dict[int, CloseOrder] = {}
        self.pending_closes: list[CloseOrder] = []
        self.uncovered: list[tuple[Decimal, Decimal, Decimal]] = []  # (size, price, fee) of open fills
        self.levels: list[Level] = []
        self.last_close_count = 0
        self.last_open_ns = 0
        self.stats = GridStats()
        self.stopped: str | None = None
        self.paused = False
        self.max_close_orders_seen = 0
        self._warned: set[str] = set()

    # -- helpers ------------------------------------------------------------------

    def _market(self, md):
        st = md.markets.get(self.ticker)
        return st.market if st is not None else self.context.markets.get(self.ticker)

    def _warn_once(self, key: str, msg: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.log.warning(msg)

    def _size_for(self, market, price: Decimal) -> Decimal:
        q = self.params.quantity if self.params.quantity is not None else self.params.order_notional / price
        return market.round_size(q)

    def _position(self, md) -> Decimal:
        return md.position_size(self.ticker)

    def _grid_orders(self, md) -> dict:
        return {
            cid: info
            for cid, info in md.open_orders.items()
            if info.ticker == self.ticker and (info.tag or "").startswith("grid")
        }

    @property
    def close_side(self) -> Side:
        """The side of the take-profit grid's close orders (SELL for a long grid)."""
        return self.dir.side.opposite

    def active_close_count(self) -> int:
        """Close orders resting or sent (the quantity ``max_orders`` bounds)."""
        return len(self.closes) + len(self.pending_closes)

    # -- decisions --------------------------------------------------------------------

    async def should_execute(self, market_data) -> bool:
        """True when the grid's market is tradable; once stopped, only while a position or
        grid orders remain to clean up."""
        if self.ticker not in market_data.tradable:
            return False
        if self.stopped:
            return bool(self._position(market_data)) or bool(self._grid_orders(market_data))
        return True

    async def execute_strategy(self, market_data) -> StrategyResult:
        """One decision cycle: reconcile with the open orders, apply stop/pause, then the
        mode's decision (:meth:`_tp_cycle` or :meth:`_range_cycle`).

        :returns: the orders to place/cancel, or nothing (e.g. before the first bid/ask).
        """
        md = market_data
        self.cycle += 1
        self._sync(md)
        st = md.markets[self.ticker]
        bid, ask = st.best_bid_offer()
        mid = st.mid() or md.marks.get(self.ticker)
        if bid is None or ask is None or mid is None:
            return StrategyResult.nothing("grid: no bid/ask yet")
        if self.stopped:
            return self._stop_result(md, f"grid stopped ({self.stopped}): cleaning up")
        stop = self._stop_triggered(mid)
        if stop:
            self.stopped = stop
            self.log.warning(f"grid {self.ticker}: {stop}: canceling grid orders and closing the position")
            return self._stop_result(md, stop)
        self.paused = self._pause_triggered(mid)
        if self.params.mode is Mode.RANGE:
            return self._range_cycle(md, bid, ask, mid)
        return self._tp_cycle(md, bid, ask, mid)

    def _stop_triggered(self, mid: Decimal) -> str | None:
        sp = self.params.stop_price
        if sp is None:
            return None
        if self.params.mode is Mode.RANGE:
            hit = (sp < self.params.lower_price and mid <= sp) or (sp > self.params.upper_price and mid >= sp)
        else:
            hit = mid < sp if self.dir is Direction.LONG else mid > sp
        return f"stop price {sp} reached (mid {mid})" if hit else None

    def _pause_triggered(self, mid: Decimal) -> bool:
        pp = self.params.pause_price
        if pp is None:
            return False
        if self.params.mode is Mode.RANGE:
            return (pp < self.params.lower_price and mid <= pp) or (pp > self.params.upper_price and mid >= pp)
        return mid > pp if self.dir is Direction.LONG else mid < pp

    def _stop_result(self, md, reason: str) -> StrategyResult:
        cancels = tuple((cid, self.ticker) for cid in self._grid_orders(md))
        close = (self.ticker,) if self._position(md) else ()
        self.open = None
        self.closes.clear()
        self.pending_closes.clear()
        self.uncovered.clear()
        for lv in self.levels:
            lv.reset()
        if not cancels and not close:
            return StrategyResult.nothing(reason)
        return StrategyResult(StrategyAction.CLOSE_POSITIONS, cancels=cancels, close=close, reason=reason)

    # -- reconciliation with the bot's open orders ------------------------------------------

    def _sync(self, md) -> None:
        """Reconcile the grid's records with the bot's open orders (``md.open_orders``)."""
        live = self._grid_orders(md)
        if self.params.mode is Mode.RANGE:
            self._sync_levels(live)
            return
        self._sync_take_profit(md, live)

    # -- feedback from the bot ----------------------------------------------------------------

    def on_fill(self, fill) -> None:
        """Book a fill of one of this grid's orders, by its tag (open, close or level)."""
        if fill.ticker != self.ticker or not (fill.tag or "").startswith("grid"):
            return
        tag = fill.tag
        if tag == OPEN_TAG:
            self._on_open_fill(fill)
        elif tag == CLOSE_TAG:
            self._on_close_fill(fill)
        elif tag.startswith(LEVEL_TAG):
            self._on_level_fill(fill)

    def on_order_update(self, update) -> None:
        """An order of this grid ended: forget it; an unfilled remainder is covered again
        (close order) or wanted again (level order)."""
        if update.ticker != self.ticker or not update.status.is_terminal:
            return
        cid = update.client_id
        if self.open is not None and self.open.cid == cid:
            self.open = None
        elif cid in self.closes and update.status is not OrderStatus.FILLED:
            self._close_gone(cid)
        elif self.levels and update.status is not OrderStatus.FILLED:
            for lv in self.levels:
                if lv.cid == cid:
                    self._level_gone(lv)
                    break

    def on_start(self, market_data) -> None:
        """Adopt live grid orders (by client id, then by tag) before the first decision."""
        before = (len(self.closes), self.open is not None, sum(1 for lv in self.levels if lv.cid is not None))
        if self.params.mode is Mode.RANGE and not self.levels:
            st = market_data.markets.get(self.ticker)
            mid = (st.mid() if st is not None else None) or market_data.marks.get(self.ticker)
            if mid is not None and self._grid_orders(market_data):
                self._setup_levels(market_data, mid)  # lay the grid out now so live orders are adopted
        self._sync(market_data)
        after = (len(self.closes), self.open is not None, sum(1 for lv in self.levels if lv.cid is not None))
        if any(after) or any(before):
            self.log.info(
                f"grid {self.ticker}: resumed with {after[0]} close orders, open order {'yes' if after[1] else 'no'}, "
                f"{after[2]} live level orders (state had {before[0]}/{'yes' if before[1] else 'no'}/{before[2]})"
            )

    # -- persistence -------------------------------------------------------------------------------

    def get_state(self) -> Mapping[str, Any]:
        """The grid as a JSON-able dict (version 1) for :meth:`restore_state`."""
        return {
            "version": 1,
            "ticker": self.ticker,
            "mode": self.params.mode.value,
            "open": self.open.to_json() if self.open is not None and self.open.cid is not None else None,
            "closes": [c.to_json() for c in self.closes.values()],
            "uncovered": [[str(a), str(b), str(c)] for a, b, c in self.uncovered]
            + [[str(c.size - c.filled), str(c.open_price), str(c.open_fee)] for c in self.pending_closes],
            "levels": [lv.to_json() for lv in self.levels],
            "last_open_ns": self.last_open_ns,
            "stopped": self.stopped,
            "stats": {"cycles": self.stats.cycles, "gross": str(self.stats.gross), "fees": str(self.stats.fees),
                      "opens_filled": self.stats.opens_filled},
        }

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`get_state`'s dict; a state for another ticker or mode is ignored
        (the latter with a warning). Live orders are matched later, in :meth:`on_start`."""
        if not state or state.get("ticker") not in (None, self.ticker):
            return
        if state.get("mode") not in (None, self.params.mode.value):
            self.log.warning(f"grid {self.ticker}: saved state is for mode {state.get('mode')}; starting fresh")
            return
        self.open = OpenOrder.from_json(state["open"]) if state.get("open") else None
        self.closes = {}
        for d in state.get("closes", []):
            rec = CloseOrder.from_json(d)
            if rec.cid is not None:
                self.closes[int(rec.cid)] = rec
        self.uncovered = [(D(a), D(b), D(c)) for a, b, c in state.get("uncovered", [])]
        self.pending_closes = []
        self.levels = [Level.from_json(d) for d in state.get("levels", [])]
        self.last_open_ns = int(state.get("last_open_ns", 0))
        self.stopped = state.get("stopped")
        s = state.get("stats") or {}
        self.stats = GridStats(int(s.get("cycles", 0)), D(s.get("gross", "0")), D(s.get("fees", "0")), int(s.get("opens_filled", 0)))
        self.cycle = 0
        if self.open is not None:
            self.open.cycle = -1

    # -- report ---------------------------------------------------------------------------------------

    def summary_lines(self) -> list[str]:
        """End-of-run lines: cycles, profit per cycle (gross, fees, net, USD), orders resting."""
        s = self.stats
        mode = self.params.mode.value + ("" if self.params.mode is Mode.RANGE else f", {self.dir.name.lower()}")
        lines = [f"grid {self.ticker} ({mode}): {s.cycles} cycles completed"
                 + (f", {s.opens_filled} open fills" if self.params.mode is Mode.TAKE_PROFIT else "")]
        if s.cycles:
            n = D(s.cycles)
            lines.append(
                f"  profit: gross {s.gross:+.4f} USD ({s.gross / n:+.4f}/cycle), fees {s.fees:.4f} USD "
                f"({s.fees / n:.4f}/cycle), net {s.net:+.4f} USD ({s.net / n:+.4f}/cycle)"
            )
        if self.params.mode is Mode.TAKE_PROFIT:
            lines.append(
                f"  close orders resting: {len(self.closes)} (max {self.params.max_orders}, most at once {self.max_close_orders_seen})"
            )
        else:
            live = sum(1 for lv in self.levels if lv.cid is not None)
            lines.append(f"  level orders resting: {live} of {len(self.levels)} levels")
        if self.stopped:
            lines.append(f"  stopped: {self.stopped}")
        return lines
