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
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any, Mapping

import attrs
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
    in_range,
    param,
)

from perpbot.strategies.sniper.correlation import bar_return_correlation

D = Decimal
NS = 1_000_000_000
ZERO = D(0)
ENTRY_TAG = "sniper-entry"
EXIT_TAG = "sniper-exit"
EXIT_REASONS = ("take-profit", "stop-loss", "score decay")


def _order_type_ok(instance, attribute, value):
    if value not in (OrderType.MARKET, OrderType.LIMIT):
        raise ValueError(f"parameter {attribute.name}: must be MARKET or LIMIT, got {value.value}")


@attrs.frozen
class SniperParams:
    """Parameters of the sniper. Scores and thresholds are on the 0-100 scale;
    ``take_profit``/``stop_loss`` are fractions of the entry price (0.003 = 0.3 %)."""

    weight_momentum: Decimal = param(D("0.40"), "weight of the momentum score (direction-aware)", in_range(D(0), D(100)))
    weight_volume: Decimal = param(D("0.15"), "weight of the volume score (either direction)", in_range(D(0), D(100)))
    weight_volatility: Decimal = param(D("0.10"), "weight of the volatility score (either direction)", in_range(D(0), D(100)))
    weight_orderbook: Decimal = param(D("0.25"), "weight of the order book score (direction-aware)", in_range(D(0), D(100)))
    weight_funding: Decimal = param(D("0.10"), "weight of the funding score (direction-aware)", in_range(D(0), D(100)))
    entry_threshold: Decimal = param(D("65"), "enter a market when its composite is at least this (0-100)", in_range(D(0), D(100)), flag="--entry-threshold")
    exit_threshold: Decimal = param(D("50"), "exit when the composite for the held direction falls below this", in_range(D(0), D(100)), flag="--exit-threshold")
    take_profit: Decimal = param(D("0.003"), "take profit at this return of the mark vs entry (fraction, 0.003 = 0.3%)", in_range(D("0.00001"), D(1)))
    stop_loss: Decimal = param(D("0.002"), "stop out at this adverse return of the mark vs entry (fraction)", in_range(D("0.00001"), D(1)), flag="--stop-loss")
    max_positions: int = param(2, "most markets held at once (top-N)", in_range(1, 1000), flag="--max-positions")
    cooldown_s: Decimal = param(D("60"), "seconds a market is not re-entered after an exit", in_range(D(0)), flag="--cooldown")
    allow_short: bool = param(True, "take shorts when the short composite is the better side", flag="--allow-short")
    correlation_threshold: Decimal = param(D("0.8"), "do not stack same-direction positions whose bar returns correlate above this", in_range(D(-1), D(1)))
    correlation_lookback: int = param(30, "bars (closed, from MarketState.bars) used for the correlation", in_range(2, 1000))
    correlation_min_returns: int = param(5, "fewer common bar returns than this: correlation unknown (not blocking)", in_range(2, 1000))
    min_hold_s: Decimal = param(D("15"), "seconds before a score-decay exit (TP/SL act at once)", in_range(D(0)), flag="--min-hold")
    order_type: OrderType = param(OrderType.MARKET, "entry order type: MARKET, or LIMIT at the touch (bid for a buy)", _order_type_ok, flag="--order-type")
    limit_good_til_s: int = param(30, "lifetime of a LIMIT entry, seconds", in_range(1, 86400))
    warmup_s: Decimal = param(D("60"), "seconds after the first decision before any entry (scores must also be warm)", in_range(D(0)), flag="--warmup")
    order_timeout_s: Decimal = param(D("10"), "an order without fill or update after this long no longer blocks its market", in_range(D("0.1")))

    def __attrs_post_init__(self):
        weights = (self.weight_momentum, self.weight_volume, self.weight_volatility, self.weight_orderbook, self.weight_funding)
        if sum(weights) <= 0:
            raise ValueError("parameter weight_*: at least one weight must be positive")
        if self.exit_threshold >= self.entry_threshold:
            raise ValueError(
                f"parameter exit_threshold: must be below entry_threshold ({self.entry_threshold}), got {self.exit_threshold}"
            )


@attrs.define
class _Entry:
    """What the sniper knows about one of its positions (from fills)."""

    side: str  # "BUY" (long) or "SELL" (short)
    ts_ns: int
    price: Decimal
    size: Decimal  # absolute, base units

    def to_json(self) -> dict:
        return {"side": self.side, "ts_ns": self.ts_ns, "price": str(self.price), "size": str(self.size)}

    @classmethod
    def from_json(cls, d: Mapping) -> "_Entry":
        return cls(side=str(d["side"]), ts_ns=int(d["ts_ns"]), price=D(str(d["price"])), size=D(str(d["size"])))


@attrs.define
class _Row:
    ticker: str
    side: Side | None = None
    composite: float | None = None
    scores: Any = None
    position: Any = None
    action: str = ""
    paused: str = ""


def _fmt_px(v: Decimal) -> str:
    """A price for a reason text: an average entry can be a 28-digit quotient; show 8 significant digits."""
    return f"{v:.8g}" if v.as_tuple().exponent < -6 else str(v)


def _fmt_pct(x: Decimal) -> str:
    return f"{x * 100:+.3f}%"


class Sniper(BaseStrategy):
    """Multi-market sniper: weighted 0-100 scores, top-N entries, TP/SL/score-decay exits."""

    name = "sniper"
    description = "ranks markets by a weighted composite of their 0-100 scores; enters the best, exits on TP/SL/decay"
    Params = SniperParams

    def __init__(self, params: SniperParams, context: Any):
        super().__init__(params, context)
        p = params
        total = float(p.weight_momentum + p.weight_volume + p.weight_volatility + p.weight_orderbook + p.weight_funding)
        self._w = (
            float(p.weight_momentum) / total,
            float(p.weight_volume) / total,
            float(p.weight_volatility) / total,
            float(p.weight_orderbook) / total,
            float(p.weight_funding) / total,
        )
        self._entry_threshold = float(p.entry_threshold)
        self._exit_threshold = float(p.exit_threshold)
        self._cooldown_ns = int(p.cooldown_s * NS)
        self._min_hold_ns = int(p.min_hold_s * NS)
        self._warmup_ns = int(p.warmup_s * NS)
        self._timeout_ns = int(p.order_timeout_s * NS)
        self._corr_threshold = float(p.correlation_threshold)
        self.log = (context.logger if context is not None and context.logger is not None else _default_logger)
        # persisted
        self.cooldown_until: dict[str, int] = {}
        self.entries: dict[str, _Entry] = {}
        self.entries_count: Counter = Counter()  # ticker -> positions opened
        self.exits_count: dict[str, Counter] = defaultdict(Counter)  # ticker -> reason -> n
        self.wins: Counter = Counter()
        self.losses: Counter = Counter()
        self.gross_pnl: dict[str, Decimal] = defaultdict(lambda: ZERO)  # USD, before fees
        self.fees: dict[str, Decimal] = defaultdict(lambda: ZERO)  # USD
        # runtime
        self._pending: dict[str, tuple[str, int, str]] = {}  # ticker -> (kind, since_ns, side or exit reason)
        self._trip_pnl: dict[str, Decimal] = defaultdict(lambda: ZERO)  # gross PnL of the open round trip, USD
        self._trip_fees: dict[str, Decimal] = defaultdict(lambda: ZERO)  # fees of the open round trip, USD
        self._exit_reason: dict[str, str] = {}  # ticker -> reason of the exit in flight
        self._pos: dict[str, Decimal] = {}  # signed size from fills
        self._first_ns: int | None = None
        self.cycles = 0

    # ------------------------------------------------------------------
    # scoring
    # ------------------------------------------------------------------

    def composite(self, scores: Any, side: Side) -> float:
        """Direction-aware weighted composite (0-100) of ``scores`` for ``side``."""
        wm, wv, wx, wo, wf = self._w
        neutral = wv * scores.volume + wx * scores.volatility
        if side is Side.BUY:
            return wm * scores.momentum + neutral + wo * scores.orderbook + wf * scores.funding
        return wm * (100.0 - scores.momentum) + neutral + wo * (100.0 - scores.orderbook) + wf * (100.0 - scores.funding)

    def best_side(self, scores: Any) -> tuple[Side, float]:
        """The better side for a new position and its composite (long only without ``allow_short``)."""
        long = self.composite(scores, Side.BUY)
        if self.params.allow_short:
            short = self.composite(scores, Side.SELL)
            if short > long:
                return Side.SELL, short
        return Side.BUY, long

    def explain(self, scores: Any) -> str:
        return (
            f"mom {scores.momentum:.0f} (fast {scores.momentum_fast:.0f}, slow {scores.momentum_slow:.0f}), "
            f"vol {scores.volume:.0f}, volat {scores.volatility:.0f}, book {scores.orderbook:.0f}, fund {scores.funding:.0f}"
        )

    # ------------------------------------------------------------------
    # decisions
    # ------------------------------------------------------------------

    async def should_execute(self, market_data) -> bool:
        return bool(market_data.tradable)

    async def execute_strategy(self, market_data) -> StrategyResult:
        md = market_data
        now = md.ts_ns
        self.cycles += 1
        if self._first_ns is None:
            self._first_ns = now
        self._expire_pending(now, md)
        rows: dict[str, _Row] = {}
        for t in md.tradable:
            st = md.markets.get(t)
            sc = getattr(st, "scores", None)
            row = _Row(t, scores=sc, position=md.positions.get(t))
            if sc is not None:
                row.side, row.composite = self.best_side(sc)
                try:
                    sc.strategy_composite = row.composite  # conviction for score-aware sizers
                except AttributeError:
                    pass
            rows[t] = row
        for t, reason in md.paused.items():
            rows[t] = _Row(t, position=md.positions.get(t), paused=reason, scores=getattr(md.markets.get(t), "scores", None))

        exits = self._exits(md, rows, now)
        entries = self._entries(md, rows, now)
        orders = exits + entries
        self._log_table(md, rows, acted=bool(orders))
        if not orders:
            return StrategyResult.nothing()
        reason = "; ".join(f"{o.ticker}: {o.reason}" for o in orders)
        return StrategyResult(StrategyAction.PLACE_ORDERS, orders=tuple(orders), reason=reason)

    def _held_composite(self, sc: Any, pos_size: Decimal) -> float:
        return self.composite(sc, Side.BUY if pos_size > 0 else Side.SELL)

    def _exits(self, md, rows: dict[str, _Row], now: int) -> list[OrderParams]:
        p = self.params
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
            if self._pending.get(t, ("",))[0] == "exit" or self._has_open_order(md, t, reduce_only=True):
                row.action = f"exit in flight ({self._exit_reason.get(t, 'pending')})"
                continue
            mark = md.marks.get(t)
            entry = self.entries.get(t)
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
                held = self._held_composite(sc, pos.size)
                row.composite, row.side = held, (Side.BUY if long else Side.SELL)
                held_ns = now - entry.ts_ns if entry is not None else None
                if held < self._exit_threshold:
                    if held_ns is not None and held_ns < self._min_hold_ns:
                        row.action = (
                            f"hold {direction}: composite {held:.1f} < exit {self._exit_threshold:g} but held "
                            f"{held_ns / NS:.0f}s < min hold {p.min_hold_s}s"
                        )
                        continue
                    kind = "score decay"
                    reason = f"score decay: {direction} composite {held:.1f} < exit {self._exit_threshold:g} ({self.explain(sc)})"
            if kind is None:
                comp = row.composite if row.composite is not None else float("nan")
                row.action = f"hold {direction}: composite {comp:.1f} >= exit {self._exit_threshold:g}"
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
            self._pending[t] = ("exit", now, kind)
            self._exit_reason[t] = kind
            self.cooldown_until[t] = now + self._cooldown_ns
            row.action = f"EXIT {reason}"
        return out

    def _entries(self, md, rows: dict[str, _Row], now: int) -> list[OrderParams]:
        p = self.params
        held = {t: pos for t, pos in md.positions.items() if pos is not None and pos.size != 0}
        pending_entries = [t for t, v in self._pending.items() if v[0] == "entry" and t not in held]
        occupied = len(held) + len(pending_entries)
        warming = now - (self._first_ns or now) < self._warmup_ns
        # same-direction exposure: held positions (not exiting now) and this cycle's entries
        exposure: list[tuple[str, Side]] = [
            (t, Side.BUY if pos.size > 0 else Side.SELL)
            for t, pos in held.items()
            if self._pending.get(t, ("",))[0] != "exit"
        ]
        exposure += [(t, self._pending_side(t)) for t in pending_entries]
        out = []
        ranked = sorted(
            (r for r in rows.values() if not r.paused and r.composite is not None and r.ticker not in held),
            key=lambda r: -r.composite,
        )
        for row in ranked:
            t = row.ticker
            sc = row.scores
            direction = "long" if row.side is Side.BUY else "short"
            if row.composite < self._entry_threshold:
                row.action = f"below entry {self._entry_threshold:g} ({direction} {row.composite:.1f})"
                continue
            if warming:
                left = (self._warmup_ns - (now - self._first_ns)) / NS
                row.action = f"warming up ({left:.0f}s left)"
                continue
            if not getattr(sc, "warm", True):
                row.action = "scores not warm yet"
                continue
            if t in self._pending or self._has_open_order(md, t):
                row.action = "order in flight"
                continue
            until = self.cooldown_until.get(t, 0)
            if now < until:
                row.action = f"cooldown {(until - now) / NS:.0f}s left"
                continue
            if occupied >= p.max_positions:
                row.action = f"max positions ({occupied}/{p.max_positions})"
                continue
            blocker = self._correlated(md, t, row.side, exposure)
            if blocker is not None:
                row.action = blocker
                continue
            intent = self._entry_intent(md, t, row, direction)
            if intent is None:
                row.action = "no price for a LIMIT entry"
                continue
            out.append(intent)
            self._pending[t] = ("entry", now, row.side.value)
            exposure.append((t, row.side))
            occupied += 1
            row.action = f"ENTER {intent.reason}"
        return out

    def _entry_intent(self, md, t: str, row: _Row, direction: str) -> OrderParams | None:
        p = self.params
        reason = f"{direction} composite {row.composite:.1f} >= {self._entry_threshold:g} ({self.explain(row.scores)})"
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

    def _pending_side(self, t: str) -> Side:
        return Side.parse(self._pending[t][2])

    def _correlated(self, md, t: str, side: Side, exposure) -> str | None:
        """Why ``t`` must not be entered on ``side`` (a correlated same-direction position), or None."""
        p = self.params
        st = md.markets.get(t)
        for other, other_side in exposure:
            if other == t or other_side is not side:
                continue
            rho, n = bar_return_correlation(st, md.markets.get(other), p.correlation_lookback, p.correlation_min_returns)
            if rho is not None and rho > self._corr_threshold:
                direction = "long" if side is Side.BUY else "short"
                return (
                    f"correlated with {other} {direction} (rho {rho:.2f} > {self._corr_threshold:g} over {n} bars)"
                )
        return None

    @staticmethod
    def _has_open_order(md, t: str, reduce_only: bool | None = None) -> bool:
        for info in md.open_orders.values():
            if info.ticker != t:
                continue
            tag = getattr(info, "tag", "") or ""
            if not tag.startswith("sniper"):
                continue
            if reduce_only is None or bool(info.reduce_only) == reduce_only:
                return True
        return False

    def _expire_pending(self, now: int, md) -> None:
        for t, (kind, since, _reason) in list(self._pending.items()):
            pos = md.positions.get(t)
            size = pos.size if pos is not None else ZERO
            if kind == "exit" and size == 0:
                del self._pending[t]
            elif kind == "entry" and size != 0:
                del self._pending[t]
            elif now - since >= self._timeout_ns:
                self.log.info(f"sniper: {kind} order on {t} got no fill within {self.params.order_timeout_s}s; no longer blocking")
                del self._pending[t]

    # ------------------------------------------------------------------
    # the ranked table
    # ------------------------------------------------------------------

    def _log_table(self, md, rows: dict[str, _Row], acted: bool) -> None:
        if acted:
            self.log.info("{}", self.table(md, rows))
        else:
            self.log.opt(lazy=True).debug("{}", lambda: self.table(md, rows))

    def table(self, md, rows: dict[str, _Row]) -> str:
        """The ranked score table as one multi-line string."""
        from datetime import datetime, timezone

        when = datetime.fromtimestamp(md.ts_ns / NS, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        held = sum(1 for p in md.positions.values() if p is not None and p.size != 0)
        ranked = sorted(
            (r for r in rows.values() if not r.paused),
            key=lambda r: -(r.composite if r.composite is not None else -1.0),
        )
        paused = sorted((r for r in rows.values() if r.paused), key=lambda r: r.ticker)
        head = (
            f"sniper ranking {when} UTC: {len(ranked)} tradable, {len(paused)} paused, "
            f"positions {held}/{self.params.max_positions}, entry >= {self._entry_threshold:g}, exit < {self._exit_threshold:g}"
        )
        lines = [
            head,
            f"{'rank':>4}  {'ticker':<18} {'side':<5} {'comp':>5}  {'mom':>3} {'f/s':>7}  {'vol':>3} {'volat':>5} {'book':>4} {'fund':>4}  {'position':<22} action",
        ]
        for i, r in enumerate(ranked, 1):
            lines.append(self._row_line(str(i), r))
        for r in paused:
            lines.append(self._row_line("-", r))
        return "\n".join(lines)

    def _row_line(self, rank: str, r: _Row) -> str:
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
        return f"{rank:>4}  {r.ticker:<18} {side:<5} {comp:>5}  {scores}  {position:<22} {action}"

    # ------------------------------------------------------------------
    # feedback
    # ------------------------------------------------------------------

    def on_fill(self, fill) -> None:
        t = fill.ticker
        signed = fill.size if fill.side is Side.BUY else -fill.size
        prev = self._pos.get(t, ZERO)
        new = prev + signed
        self.fees[t] += fill.fee
        tag = getattr(fill, "tag", "") or ""
        if prev == 0 or (prev > 0) == (signed > 0):
            # opening or adding
            e = self.entries.get(t)
            if prev == 0 or e is None:
                self.entries[t] = _Entry(fill.side.value, fill.ts_ns, fill.price, fill.size)
                self.entries_count[t] += 1
            else:
                total = e.size + fill.size
                e.price = (e.price * e.size + fill.price * fill.size) / total
                e.size = total
            self._trip_fees[t] += fill.fee
            if self._pending.get(t, ("",))[0] == "entry":
                del self._pending[t]
        else:
            # reducing, closing or flipping
            e = self.entries.get(t)
            closed = min(abs(signed), abs(prev))
            close_fee = fill.fee * closed / fill.size  # a flipping fill's fee is split by size (core/metrics.py)
            self._trip_fees[t] += close_fee
            if e is not None:
                direction = 1 if prev > 0 else -1
                pnl = (fill.price - e.price) * closed * direction
                self.gross_pnl[t] += pnl
                self._trip_pnl[t] += pnl
                e.size = max(e.size - closed, ZERO)
            if new == 0 or (new > 0) != (prev > 0):
                reason = self._exit_reason.pop(t, None)
                if reason is None:
                    reason = tag.split(":", 1)[1] if tag.startswith(EXIT_TAG + ":") else (f"outside ({tag})" if tag else "outside the strategy")
                self.exits_count[t][reason] += 1
                if e is not None:  # won: PnL net of the trip's fees > 0 (core/metrics.py, as the summary and report)
                    (self.wins if self._trip_pnl[t] - self._trip_fees[t] > 0 else self.losses)[t] += 1
                self._trip_pnl.pop(t, None)
                self._trip_fees.pop(t, None)
                if new != 0:
                    self._trip_fees[t] = fill.fee - close_fee
                until = fill.ts_ns + self._cooldown_ns
                if until > self.cooldown_until.get(t, 0):
                    self.cooldown_until[t] = until
                self.entries.pop(t, None)
                self._pending.pop(t, None)
                if new != 0:  # flipped: the rest opens a new position
                    self.entries[t] = _Entry(fill.side.value, fill.ts_ns, fill.price, abs(new))
                    self.entries_count[t] += 1
        if new == 0:
            self._pos.pop(t, None)
        else:
            self._pos[t] = new

    def on_order_update(self, update) -> None:
        """A rejected, canceled or expired order of ours no longer blocks its market."""
        if update.status not in (OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.EXPIRED):
            return
        tag = update.tag or ""
        if update.ticker in self._pending and (not tag or tag.startswith("sniper")):
            self._pending.pop(update.ticker, None)
            self._exit_reason.pop(update.ticker, None)

    # ------------------------------------------------------------------
    # persistence and summary
    # ------------------------------------------------------------------

    def get_state(self) -> dict:
        return {
            "version": 1,
            "cooldown_until": dict(self.cooldown_until),
            "entries": {t: e.to_json() for t, e in self.entries.items()},
            "positions": {t: str(s) for t, s in self._pos.items()},
            "entries_count": dict(self.entries_count),
            "exits_count": {t: dict(c) for t, c in self.exits_count.items()},
            "wins": dict(self.wins),
            "losses": dict(self.losses),
            "gross_pnl": {t: str(v) for t, v in self.gross_pnl.items()},
            "fees": {t: str(v) for t, v in self.fees.items()},
            "trip_pnl": {t: str(v) for t, v in self._trip_pnl.items()},
            "trip_fees": {t: str(v) for t, v in self._trip_fees.items()},
            "cycles": self.cycles,
            # in-flight bookkeeping, so a resumed run decides exactly as an uninterrupted one
            "first_ns": self._first_ns,
            "pending": {t: list(v) for t, v in self._pending.items()},
            "exit_reason": dict(self._exit_reason),
        }

    def restore_state(self, state: Mapping[str, Any]) -> None:
        if not state:
            return
        self.cooldown_until = {t: int(v) for t, v in state.get("cooldown_until", {}).items()}
        self.entries = {t: _Entry.from_json(e) for t, e in state.get("entries", {}).items()}
        self._pos = {t: D(str(v)) for t, v in state.get("positions", {}).items()}
        self.entries_count = Counter({t: int(v) for t, v in state.get("entries_count", {}).items()})
        self.exits_count = defaultdict(Counter, {t: Counter(c) for t, c in state.get("exits_count", {}).items()})
        self.wins = Counter(state.get("wins", {}))
        self.losses = Counter(state.get("losses", {}))
        self.gross_pnl = defaultdict(lambda: ZERO, {t: D(str(v)) for t, v in state.get("gross_pnl", {}).items()})
        self.fees = defaultdict(lambda: ZERO, {t: D(str(v)) for t, v in state.get("fees", {}).items()})
        self._trip_pnl = defaultdict(lambda: ZERO, {t: D(str(v)) for t, v in state.get("trip_pnl", {}).items()})
        self._trip_fees = defaultdict(lambda: ZERO, {t: D(str(v)) for t, v in state.get("trip_fees", {}).items()})
        self.cycles = int(state.get("cycles", 0))
        first = state.get("first_ns")
        self._first_ns = int(first) if first is not None else None
        self._pending = {t: (str(v[0]), int(v[1]), str(v[2])) for t, v in state.get("pending", {}).items()}
        self._exit_reason = {t: str(v) for t, v in state.get("exit_reason", {}).items()}

    def summary_lines(self) -> list[str]:
        tickers = sorted(set(self.entries_count) | set(self.exits_count) | set(self._pos))
        by_reason: Counter = Counter()
        for c in self.exits_count.values():
            by_reason.update(c)
        n_entries = sum(self.entries_count.values())
        n_exits = sum(by_reason.values())
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"
        lines = [f"sniper: {n_entries} entries, {n_exits} exits (by reason: {reasons}), {len(self._pos)} open, {self.cycles} decision cycles"]
        for t in tickers:
            exits = sum(self.exits_count.get(t, {}).values())
            open_txt = f", open {self._pos[t]:+}" if t in self._pos else ""
            lines.append(
                f"  {t}: {self.entries_count.get(t, 0)} entries, {exits} exits ({self.wins.get(t, 0)} won, "
                f"{self.losses.get(t, 0)} lost after fees), gross PnL {self.gross_pnl.get(t, ZERO):+.2f} USD, "
                f"fees {self.fees.get(t, ZERO):.2f} USD{open_txt}"
            )
        return lines
