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
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any, Mapping

import attrs
from loguru import logger as _default_logger

from perpbot import (
    BaseStrategy,
    ConfigError,
    OrderParams,
    OrderStatus,
    OrderType,
    Side,
    StrategyAction,
    StrategyResult,
    TimeInForce,
)

from perpbot.strategies.grid.levels import Spacing, grid_levels, nearest_level  # noqa: F401  (Spacing re-exported)
from perpbot.strategies.grid.params import Direction, GridParams, Mode  # noqa: F401  (re-exported)

D = Decimal
ZERO = D(0)
NS = 1_000_000_000
OPEN_TAG = "grid-open"
CLOSE_TAG = "grid-close"
LEVEL_TAG = "grid-level-"


# ---------------------------------------------------------------------------
# bookkeeping records (mutable, private to the strategy)
# ---------------------------------------------------------------------------


def _d(x) -> Decimal | None:
    return None if x is None else D(str(x))


def _s(x) -> str | None:
    return None if x is None else str(x)


@attrs.define
class OpenOrder:
    """The one open order of the take-profit grid (``cid`` None until the bot shows it)."""

    side: Side
    price: Decimal
    size: Decimal
    created_ns: int
    cycle: int
    cid: int | None = None
    filled: Decimal = ZERO
    cancel_sent: bool = False

    def to_json(self) -> dict:
        return {"side": self.side.value, "price": str(self.price), "size": str(self.size), "created_ns": self.created_ns,
                "cid": self.cid, "filled": str(self.filled)}

    @classmethod
    def from_json(cls, d: Mapping) -> "OpenOrder":
        return cls(Side.parse(d["side"]), D(d["price"]), D(d["size"]), int(d["created_ns"]), -1,
                   d.get("cid"), D(d.get("filled", "0")))


@attrs.define
class CloseOrder:
    """A take-profit close order and the open fills it closes."""

    price: Decimal
    size: Decimal
    open_price: Decimal
    open_fee: Decimal
    created_ns: int
    cycle: int
    cid: int | None = None
    filled: Decimal = ZERO
    gross: Decimal = ZERO
    fees: Decimal = ZERO
    estimated: bool = False  # open price unknown (adopted orphan)

    def to_json(self) -> dict:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in attrs.asdict(self).items() if k != "cycle"}

    @classmethod
    def from_json(cls, d: Mapping) -> "CloseOrder":
        return cls(D(d["price"]), D(d["size"]), D(d["open_price"]), D(d["open_fee"]), int(d["created_ns"]), -1,
                   d.get("cid"), D(d.get("filled", "0")), D(d.get("gross", "0")), D(d.get("fees", "0")),
                   bool(d.get("estimated", False)))


@attrs.define
class Level:
    """One level of the range grid."""

    i: int
    price: Decimal
    want: Side | None = None
    size: Decimal = ZERO
    entry_price: Decimal | None = None  # the fill that created this order (for the cycle's profit)
    entry_fee: Decimal = ZERO
    cid: int | None = None
    pending_cycle: int | None = None
    filled: Decimal = ZERO
    filled_value: Decimal = ZERO
    fees: Decimal = ZERO

    def reset(self) -> None:
        self.want = None
        self.entry_price = None
        self.entry_fee = ZERO
        self.cid = None
        self.pending_cycle = None
        self.filled = ZERO
        self.filled_value = ZERO
        self.fees = ZERO

    def to_json(self) -> dict:
        return {"i": self.i, "price": str(self.price), "want": self.want.value if self.want else None,
                "size": str(self.size), "entry_price": _s(self.entry_price), "entry_fee": str(self.entry_fee),
                "cid": self.cid, "filled": str(self.filled), "filled_value": str(self.filled_value), "fees": str(self.fees)}

    @classmethod
    def from_json(cls, d: Mapping) -> "Level":
        return cls(int(d["i"]), D(d["price"]), Side.parse(d["want"]) if d.get("want") else None, D(d.get("size", "0")),
                   _d(d.get("entry_price")), D(d.get("entry_fee", "0")), d.get("cid"), None,
                   D(d.get("filled", "0")), D(d.get("filled_value", "0")), D(d.get("fees", "0")))


@attrs.define
class GridStats:
    cycles: int = 0
    gross: Decimal = ZERO
    fees: Decimal = ZERO
    opens_filled: int = 0
    last_cycles: deque = attrs.Factory(lambda: deque(maxlen=200))  # (ts_ns, gross, fees)

    @property
    def net(self) -> Decimal:
        return self.gross - self.fees

    def add(self, ts_ns: int, gross: Decimal, fees: Decimal) -> None:
        self.cycles += 1
        self.gross += gross
        self.fees += fees
        self.last_cycles.append((ts_ns, gross, fees))


# ---------------------------------------------------------------------------
# the strategy
# ---------------------------------------------------------------------------


class GridStrategy(BaseStrategy):
    """Seed 002's take-profit grid and a classic range grid (see the module docstring)."""

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
        return self.dir.side.opposite

    def active_close_count(self) -> int:
        """Close orders resting or sent (the quantity ``max_orders`` bounds)."""
        return len(self.closes) + len(self.pending_closes)

    # -- decisions --------------------------------------------------------------------

    async def should_execute(self, market_data) -> bool:
        if self.ticker not in market_data.tradable:
            return False
        if self.stopped:
            return bool(self._position(market_data)) or bool(self._grid_orders(market_data))
        return True

    async def execute_strategy(self, market_data) -> StrategyResult:
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

    # -- take-profit grid -------------------------------------------------------------

    def wait_time_over(self, now_ns: int) -> bool:
        """Seed 002 ``_calculate_wait_time`` (True = no wait); mutates the close-count memory."""
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
        """Seed 002 ``_meet_grid_step_condition``."""
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

    # -- range grid -----------------------------------------------------------------------

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

    # -- reconciliation with the bot's open orders ------------------------------------------

    def _sync(self, md) -> None:
        live = self._grid_orders(md)
        if self.params.mode is Mode.RANGE:
            self._sync_levels(live)
            return
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

    def _level_gone(self, lv: Level) -> None:
        """A level order left the book without a complete fill (canceled/expired)."""
        if lv.filled > 0:
            self._level_complete(lv, partial=True)
        else:
            lv.cid = None
            lv.pending_cycle = None

    # -- feedback from the bot ----------------------------------------------------------------

    def on_fill(self, fill) -> None:
        if fill.ticker != self.ticker or not (fill.tag or "").startswith("grid"):
            return
        tag = fill.tag
        if tag == OPEN_TAG:
            if self.open is not None and self.open.cid in (None, fill.client_id):
                self.open.cid = fill.client_id
                self.open.filled += fill.size
            self.uncovered.append((fill.size, fill.price, fill.fee))
            self.stats.opens_filled += 1
        elif tag == CLOSE_TAG:
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
        elif tag.startswith(LEVEL_TAG):
            try:
                i = int(tag[len(LEVEL_TAG):])
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

    def on_order_update(self, update) -> None:
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
