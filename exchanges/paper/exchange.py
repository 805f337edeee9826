"""The paper exchange: a dYdX v4 simulator on real market data.

The same engine runs backtests (replayed data, simulated clock) and paper trading
(live data, wall clock). It executes against the bot's live L2 book, follows the
chain's order rules, margin math (:mod:`perpbot.core.margin`), fees, hourly funding and
liquidations, and reports everything as account events (``OrderUpdate``,
``Fill``, ``FundingPayment``, ``Liquidation``) through :meth:`emit`, synchronously
inside :meth:`on_market_event` or :meth:`place_order`.

Order rules (chain ``x/clob/types/message_place_order.go`` ``ValidateBasic`` and the
memclob), checked when the order is placed:

- size a multiple of the market's step size and >= the minimum order size; limit and
  trigger prices multiples of the tick size (no silent rounding here: the sender
  rounds, the venue checks);
- reduce-only only with IOC (market orders and stop/take-profit *market* orders are
  IOC); post-only cannot be IOC; FOK does not exist (deprecated on dYdX);
- when the order reaches the book: a reduce-only order that would increase or flip the
  position is rejected, and one larger than the position is cut to the position size;
  a post-only order that would cross is rejected; a risk-increasing order is rejected
  when the account would not be initially collateralized after it fills (numbers in the
  reason; :func:`perpbot.core.margin.check_order_initial_margin`, the chain's rule including the
  exception for risk-reducing fills of an under-collateralized account).

A venue-style rejection never raises: :meth:`place_order` returns
``OrderResult(success=False, status=REJECTED, error=reason)`` and emits
``OrderUpdate(REJECTED)``.

Fills (book data):

- A taker (market order, or the marketable part of a limit order) walks the L2 book
  level by level at the levels' prices, up to its limit / worst price; the liquidity
  it takes is remembered per level (and forgotten when the level's size changes), so
  the same liquidity is never taken twice from one book state. A market order's worst
  price is ``best opposite price * (1 +/- max_slippage)`` rounded to the tick in the
  permissive direction (buys up, sells down), or the order's own ``price`` when given.
  What cannot fill at once is canceled (IOC).
- A resting (maker) order fills at its own price when a public trade prints strictly
  THROUGH it (up to that trade's size), when a trade prints AT its price after the
  volume ahead of it in the queue has traded (``queue_position``; the queue starts as
  the visible size at that price and only shrinks: trades at the price and level-size
  decreases clamp it, never grow it), or when the opposite side of the book moves
  through its price (the crossing liquidity, taken once). Crossed input books do not
  fill makers.
- Every fill re-checks the collateral rule at its own price; a failing fill stops the
  order (chain: the match fails and the order is removed as undercollateralized).

Bar-only data (``bar_fill_model = "conservative"``; used when a market has no book but
its feed delivers bars; ``Bar.ts_ns`` is the close time):

- Market orders (and limit orders marketable against the last close) wait for the next
  bar that starts at or after the order's arrival, and fill there at
  ``open + (high - low) / 2`` for buys (``open - (high - low) / 2`` for sells),
  clamped to the bar's range and rounded to the tick against the trader: half the
  bar's range is paid as slippage. If that price is beyond the worst price (or the
  limit) the IOC order is canceled; a limit order then rests.
- A resting limit buy fills at its limit price only when a later bar's low is strictly
  below it (the market traded through the price), for at most the bar's volume; sells
  when the high is strictly above. Touching the price is not a fill. Bars that started
  before the order arrived never fill it.

Fees: tiers by 30-day rolling notional volume (:mod:`perpbot.exchanges.paper.fees`), maker
rebates possible, ``fee = notional * rate`` rounded up to 1e-6 USD (chain rounding).

Margin: cross positions live in subaccount 0; an order with ``margin_mode=ISOLATED``
(or any order on a market whose ``market_type`` is ISOLATED) opens its position in its
own child subaccount (numbers 128, 256, ...; parent ``n % 128 == 0``; docs
``isolated-positions.md``). On entry the parent transfers to the child what the child
needs to be initially collateralized after the order (the order's initial margin plus
its fee and any fill price above the mark); when the child is flat with no live
orders its collateral goes back to the parent (what dYdX's front end does). A market
is held in one subaccount only, so a child never holds a second market (chain
``x/subaccounts/keeper/isolated_subaccount.go``). Marks are the oracle price when the
feed has one, else the mid (:meth:`perpbot.core.state.MarketState.mark_price`).

Funding (hourly, at the top of each hour of clock time): the open positions and their
marks are snapshotted as of the hour (at the first event strictly after it, so that
everything stamped exactly on the hour, such as a bar closing at the hour, is included),
and settled at the first event ``funding_grace_s`` after the hour with, per market, the
settled rate for that hour if the feed
has delivered one (``FundingRate(settled=True)``; a venue with ``interval_h > 1``
applies its latest settled rate to every hour of its interval), else the running
prediction (``MarketState.funding_rate_1h``); payment per position
``perpbot.core.margin.funding_payment`` = ``-size * oracle * rate_1h``, floored per subaccount
to 1e-6 USD like the chain's settlement. A market with an open position and no funding
data at all is NOT assumed to pay zero: it is logged once and listed in
:attr:`PaperExchange.funding_missing`.

Liquidation: after every mark change of a market with a position, each subaccount
holding it is checked with the strict chain rule (``TMMR > 0 and NC < TMMR``); a cheap
exact bound skips the full check while the mark stays far from liquidation. A
liquidatable subaccount's positions are closed one by one (largest maintenance margin
first) until it is no longer liquidatable, each at the chain's fillable price
(:func:`perpbot.core.margin.liquidation_fill_price`, rounded to the tick like the chain's
liquidation order: up for a long, down for a short) with the insurance-fund fee
(:func:`perpbot.core.margin.liquidation_fee`; negative when the fund covers a bankruptcy).
Each emits ``Fill(liquidation=True, fee=0)`` and ``Liquidation(fee=...)``: the bot
books the fee from the ``Liquidation`` (``Portfolio.charge(..., liquidation_fee=True)``).
The whole position is closed at once (the chain may liquidate in parts per block).
"""

from __future__ import annotations

import uuid
from collections import deque
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Mapping

import attrs
from loguru import logger

from perpbot.core.exchange import BaseExchangeClient, ExchangeCapabilities, ExchangeContext
from perpbot.core.margin import (
    PositionRisk,
    account_risk,
    bankruptcy_quote,
    check_order_initial_margin,
    funding_payment,
    isolated_liquidation_price,
    liquidation_fee,
    liquidation_fill_price,
    liquidation_prices,
)
from perpbot.core.model import (
    ZERO,
    Balance,
    Bar,
    BookDelta,
    BookSnapshot,
    Fill,
    FundingPayment,
    FundingRate,
    Liquidation,
    Liquidity,
    MarginMode,
    MarketInfo,
    OraclePrice,
    OrderInfo,
    OrderRequest,
    OrderResult,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Position,
    Side,
    TimeInForce,
    Trade,
    ceil_to,
    floor_to,
    is_multiple,
)
from perpbot.core.portfolio import MarketStats, Portfolio
from perpbot.exchanges.paper.config import PaperConfig
from perpbot.exchanges.paper.fees import QUOTE_QUANTUM, FeeSchedule
from perpbot.exchanges.paper.orders import BAR_TAKER, DONE, PENDING, RESTING, UNTRIGGERED, SimOrder

NS = 1_000_000_000
HOUR_NS = 3600 * NS
#: client id of liquidation fills (dYdX client ids are uint32, so -1 never collides)
LIQUIDATION_CLIENT_ID = -1
#: child subaccount numbers step (parent 0 -> children 128, 256, ...; docs isolated-positions.md)
CHILD_STEP = 128
STATE_VERSION = 1
EXPORTED_FILLS = 100  # recent history only: the journal keeps every fill, payment and liquidation
_SLACK_PER_POSITION = Decimal("0.000003")  # chain rounding of NC/MMR per position, USD


class Subaccount:
    """One dYdX subaccount: its USDC balance and positions (a :class:`perpbot.core.portfolio.Portfolio`).

    :param number: 0 for the cross-margin parent; 128, 256, ... for isolated children.
    :param ticker: the one market an isolated child holds.
    """

    __slots__ = ("number", "portfolio", "ticker", "cushion", "eval_marks")

    def __init__(self, number: int, portfolio: Portfolio, ticker: str | None = None):
        self.number = number
        self.portfolio = portfolio
        self.ticker = ticker
        self.cushion: Decimal | None = None  # equity - maintenance at the last full check, USD
        self.eval_marks: dict[str, Decimal] = {}

    @property
    def isolated(self) -> bool:
        return self.number != 0

    def size(self, ticker: str) -> Decimal:
        p = self.portfolio.positions.get(ticker)
        return p.size if p is not None else ZERO

    def has_positions(self) -> bool:
        return any(p.size for p in self.portfolio.positions.values())


class PaperExchange(BaseExchangeClient):
    """dYdX v4 simulator: chain order rules, exact margin, fees, funding, liquidation.

    Constructed by the bot as ``PaperExchange(config, context)`` with the
    ``[exchange.paper]`` table (see :mod:`perpbot.exchanges.paper.config`). Exposes, for the
    run summary and tests: :attr:`liquidations` (list of :class:`~perpbot.core.model.Liquidation`),
    :attr:`funding_payments`, :attr:`funding_missing` (markets whose data had no funding
    rate while a position was open) and :meth:`liquidation_price`.
    """

    name = "paper"
    description = "simulator: dYdX v4 rules, L2 book fills with queue position, fee tiers, hourly funding, liquidation"

    def __init__(self, config: Mapping[str, Any], context: ExchangeContext):
        super().__init__(config, context)
        self.cfg = PaperConfig.from_mapping(config)
        if self.cfg.unknown_keys:
            logger.warning(f"exchange.paper: ignoring unknown settings: {', '.join(self.cfg.unknown_keys)}")
        self.venue = str((context.options or {}).get("venue") or self.name)
        self.fees = FeeSchedule(self.cfg.fee_tiers, self.cfg.volume_30d)
        self.subs: dict[int, Subaccount] = {0: Subaccount(0, Portfolio(self.cfg.collateral, context.markets))}
        self._child_of: dict[str, int] = {}
        self._orders: dict[int, SimOrder] = {}
        self._resting: dict[str, list[SimOrder]] = {}
        self._conditionals: dict[str, list[SimOrder]] = {}
        self._bar_takers: dict[str, list[SimOrder]] = {}
        self._pending: deque = deque()  # (arrive_ns, "place"|"cancel", SimOrder|client_id)
        self._consumed: dict[str, dict] = {}
        self._active: set[str] = set()
        self._pos_tickers: set[str] = set()
        self._marks: dict[str, Decimal] = {}
        self._trigger_px: dict[str, Decimal] = {}
        self._next_work_ns = 0
        self._next_hour_ns = 0
        self._next_expiry_ns = 0
        self._funding_due: list = []  # [hour_ns, settle_at_ns, [(sub, ticker, size, mark)]]
        self._funding_warned: set[str] = set()
        self._fill_seq = 0
        #: fill ids are ``paper-<run>-<n>``: unique across runs like a real venue's (a journal
        #: keeps one row per venue fill id; ids restarting at ``paper-1`` collided, issue 9.2).
        #: ``<run>`` is the bot's run id (``context.options["run_id"]``), kept by a resumed run
        self._fill_prefix = f"paper-{(context.options or {}).get('run_id') or uuid.uuid4().hex[:12]}-"
        self._fills: deque[Fill] = deque(maxlen=self.cfg.fills_kept)
        self._latency_ns = self.cfg.latency_ms * 1_000_000
        self.funding_missing: set[str] = set()
        self._settled_rates: dict = {}  # ticker -> deque of (hour_ns, rate_1h, oracle, interval_h)
        self.funding_payments: list[FundingPayment] = []
        self.liquidations: list[Liquidation] = []
        self.rejections = 0

    # ------------------------------------------------------------------
    # contract: capabilities and lifecycle
    # ------------------------------------------------------------------

    def capabilities(self) -> ExchangeCapabilities:
        return ExchangeCapabilities(
            order_types=frozenset(OrderType),
            time_in_force=frozenset(TimeInForce),
            reduce_only_requires_ioc=True,
            conditional_orders=True,
            isolated_margin=True,
            funding_interval_h=1,
            simulated=True,
            consumes_market_data=True,
        )

    async def connect(self) -> None:
        tiers = ", ".join(f">={t.min_volume_30d}: {t.maker}/{t.taker}" for t in self.cfg.fee_tiers)
        logger.info(
            f"paper exchange '{self.venue}': collateral {self.cfg.collateral} USD, fee tiers (maker/taker) {tiers}, "
            f"latency {self.cfg.latency_ms} ms, queue position {'on' if self.cfg.queue_position else 'off'}"
        )

    async def disconnect(self) -> None:
        return None

    # ------------------------------------------------------------------
    # small helpers
    # ------------------------------------------------------------------

    @property
    def portfolio(self) -> Portfolio:
        """The cross-margin parent subaccount's portfolio (subaccount 0)."""
        return self.subs[0].portfolio

    def _now(self) -> int:
        return int(self.context.clock.now_ns())

    def _market(self, ticker: str):
        st = self.context.state_of(ticker)
        if st is not None:
            return st.market
        return self.context.markets.get(ticker)

    def _mark(self, ticker: str) -> Decimal | None:
        """Oracle price when known, else mid (else last trade / close), USD."""
        st = self.context.state_of(ticker)
        if st is not None:
            m = st.mark_price()
            if m is not None and m > 0:
                return m
        m = self._market(ticker)
        return m.oracle_price if m is not None else None

    def _book(self, ticker: str, st=None):
        if st is not None:
            return st.book
        return self.context.book_of(ticker)

    def _data_mode(self, st, book) -> str | None:
        """"book" when a usable L2 book exists, "bars" for bar-only data, else None."""
        if book is not None and (book.bids or book.asks) and (st is None or st.book_ready):
            return "book"
        if st is not None and st.bar_feed and st.last_price is not None:
            return "bars"
        return None

    def _update(self, o: SimOrder, status: OrderStatus, ts: int, reason: str = "") -> None:
        o.status = status
        if reason:
            o.reason = reason
        self.emit(
            _order_update(o, status, ts, reason, self.venue)
        )

    def _result(self, o: SimOrder, error: str = "") -> OrderResult:
        return OrderResult(
            success=o.status is not OrderStatus.REJECTED,
            client_id=o.client_id,
            ticker=o.ticker,
            status=o.status,
            filled_size=o.filled,
            avg_price=o.avg_price,
            error=error or (o.reason if o.status in (OrderStatus.REJECTED, OrderStatus.CANCELED) else ""),
            exchange_order_id=f"paper-{o.client_id}",
        )

    def _refresh_active(self, ticker: str) -> None:
        if (
            self._resting.get(ticker)
            or self._conditionals.get(ticker)
            or self._bar_takers.get(ticker)
            or ticker in self._pos_tickers
        ):
            self._active.add(ticker)
        else:
            self._active.discard(ticker)

    def _schedule(self) -> None:
        nxt = self._next_hour_ns + 1  # the hour is processed at the first event strictly after it
        if self._funding_due:
            nxt = min(nxt, self._funding_due[0][1])
        if self._pending:
            nxt = min(nxt, self._pending[0][0])
        if self._next_expiry_ns:
            nxt = min(nxt, self._next_expiry_ns)
        self._next_work_ns = nxt

    def _recompute_expiry(self) -> None:
        e = 0
        for o in self._orders.values():
            if o.expire_ns and o.stage in (RESTING, UNTRIGGERED) and (not e or o.expire_ns < e):
                e = o.expire_ns
        self._next_expiry_ns = e
        self._schedule()

    # ------------------------------------------------------------------
    # contract: orders
    # ------------------------------------------------------------------

    async def place_order(self, order: OrderRequest) -> OrderResult:
        """Validate and place ``order`` (see the module docs for the rules).

        :returns: ``OrderResult``; ``success=False`` with the reason for a rejection.
        """
        return self.submit(order)

    def submit(self, order: OrderRequest) -> OrderResult:
        """Synchronous :meth:`place_order` (the simulator never blocks)."""
        now = self._now()
        o = SimOrder(order, now, now + self._latency_ns, self.cfg.margin_mode)
        err = self._static_check(order, o)
        if err:
            return self._reject(o, now, err)
        self._orders[o.client_id] = o
        if self._latency_ns:
            self._pending.append((o.arrive_ns, "place", o))
            self._schedule()
            return self._result(o)
        return self._activate(o, now)

    def _static_check(self, req: OrderRequest, o: SimOrder) -> str:
        """Stateless checks (what the node's CheckTx would refuse). Returns '' when fine."""
        t = req.ticker
        m = self._market(t)
        if m is None:
            return f"unknown market {t!r}"
        if req.client_id in self._orders:
            return f"duplicate client id {req.client_id}: an order with this id is still live"
        if not is_multiple(req.size, m.step_size):
            return f"size {req.size} is not a multiple of the step size {m.step_size} of {t}"
        if req.size < m.min_order_size:
            return f"size {req.size} is below the minimum order size {m.min_order_size} of {t}"
        if req.price is not None:
            if req.price <= 0:
                return f"price {req.price} must be > 0"
            if not is_multiple(req.price, m.tick_size):
                return f"price {req.price} is not a multiple of the tick size {m.tick_size} of {t}"
        elif not o.is_market:
            return f"price required for a {req.order_type.value} order on {t}"
        if req.order_type.is_conditional:
            if req.trigger_price is None or req.trigger_price <= 0:
                return f"trigger price required for a {req.order_type.value} order on {t}"
            if not is_multiple(req.trigger_price, m.tick_size):
                return f"trigger price {req.trigger_price} is not a multiple of the tick size {m.tick_size} of {t}"
        if o.post_only and (o.is_market or req.time_in_force is TimeInForce.IOC):
            return f"post-only cannot be combined with IOC or a market order ({req.order_type.value}, {req.time_in_force.value})"
        if req.reduce_only and not o.is_ioc:
            return (
                "reduce-only is only allowed on IOC orders (chain x/clob/types/message_place_order.go ValidateBasic); "
                f"got {req.order_type.value} {o.time_in_force.value}"
            )
        if req.slippage is not None and not (0 < req.slippage < 1):
            return f"slippage {req.slippage} must be a fraction in (0, 1)"
        if req.good_til_s is not None and req.good_til_s <= 0:
            return f"good_til_s {req.good_til_s} must be > 0 seconds"
        return ""

    def _reject(self, o: SimOrder, ts: int, reason: str) -> OrderResult:
        self.rejections += 1
        o.stage = DONE
        o.reason = reason
        if self._orders.get(o.client_id) is o:
            del self._orders[o.client_id]
        self._update(o, OrderStatus.REJECTED, ts, reason)
        if o.transferred:
            self._maybe_sweep(self.subs.get(o.sub))
        return self._result(o, reason)

    async def cancel_order(self, client_id: int, ticker: str) -> OrderResult:
        """Cancel a live order. With ``latency_ms`` the cancel reaches the book later (best
        effort, like dYdX): the result is ``BEST_EFFORT_CANCELED`` and ``OrderUpdate(CANCELED)``
        follows if the order is still open then."""
        o = self._orders.get(client_id)
        if o is None:
            return OrderResult(False, client_id, ticker, OrderStatus.REJECTED, error=f"order {client_id} is not open")
        if self._latency_ns:
            self._pending.append((self._now() + self._latency_ns, "cancel", client_id))
            self._schedule()
            return OrderResult(True, client_id, o.ticker, OrderStatus.BEST_EFFORT_CANCELED, filled_size=o.filled)
        self._finish(o, OrderStatus.CANCELED, self._now(), "canceled by request")
        return self._result(o)

    async def cancel_all(self, ticker: str | None = None) -> list[OrderResult]:
        out = []
        for o in list(self._orders.values()):
            if ticker is None or o.ticker == ticker:
                out.append(await self.cancel_order(o.client_id, o.ticker))
        return out

    # ------------------------------------------------------------------
    # order life cycle
    # ------------------------------------------------------------------

    def _index_remove(self, o: SimOrder) -> None:
        for index in (self._resting, self._conditionals, self._bar_takers):
            lst = index.get(o.ticker)
            if lst and o in lst:
                lst.remove(o)
                if not lst:
                    del index[o.ticker]

    def _finish(self, o: SimOrder, status: OrderStatus, ts: int, reason: str = "") -> None:
        """Terminal state: remove the order everywhere, emit its update."""
        if o.stage == DONE:
            return
        self._index_remove(o)
        o.stage = DONE
        self._orders.pop(o.client_id, None)
        self._update(o, status, ts, reason)
        self._refresh_active(o.ticker)
        if o.expire_ns:
            self._recompute_expiry()
        sub = self.subs.get(o.sub)
        if sub is not None and sub.isolated:
            self._maybe_sweep(sub)

    def _activate(self, o: SimOrder, ts: int) -> OrderResult:
        """The order reaches the book (after latency)."""
        if o.stage != PENDING:
            return self._result(o)
        if o.good_til_s and not o.is_ioc:
            o.expire_ns = o.arrive_ns + o.good_til_s * NS
        if o.is_conditional and not o.triggered:
            px = self._trigger_price(o.ticker)
            if px is not None and o.trigger_hit(px):
                o.triggered = True
            else:
                o.stage = UNTRIGGERED
                self._conditionals.setdefault(o.ticker, []).append(o)
                self._active.add(o.ticker)
                if o.expire_ns:
                    self._recompute_expiry()
                self._update(o, OrderStatus.UNTRIGGERED, ts)
                return self._result(o)
        return self._execute(o, ts)

    def _has_live_orders(self, number: int, ticker: str, exclude: SimOrder) -> bool:
        for x in self._orders.values():
            if x is not exclude and x.sub == number and x.ticker == ticker and x.stage in (RESTING, BAR_TAKER):
                return True
        return False

    def _route(self, o: SimOrder) -> tuple[Subaccount | None, str]:
        """Which subaccount an order trades in. One market lives in one subaccount at a time:
        the child that holds it (position or live orders), else the parent if it does, else
        a child for isolated orders (created on first use) or the parent for cross ones."""
        t = o.ticker
        child_no = self._child_of.get(t)
        child = self.subs.get(child_no) if child_no is not None else None
        if child is not None and (child.size(t) or self._has_live_orders(child.number, t, o)):
            return child, ""
        parent = self.subs[0]
        market = self._market(t)
        isolated_market = getattr(market, "market_type", "CROSS") == "ISOLATED"
        wants_isolated = o.margin_mode is MarginMode.ISOLATED or isolated_market
        ps = parent.size(t)
        if ps or self._has_live_orders(0, t, o):
            if wants_isolated and not o.reduce_only and not (ps and o.side.sign * ps < 0):
                return None, (
                    f"{t} is held in cross margin in subaccount 0 (position {ps} or live orders); "
                    "close it before trading it in isolated margin"
                )
            return parent, ""
        if not wants_isolated or o.reduce_only:
            return parent, ""
        if child is None:
            child_no = CHILD_STEP * (len(self._child_of) + 1)
            if child_no > 128_000:
                return None, "no isolated child subaccount left (dYdX allows 128..128000)"
            self._child_of[t] = child_no
            child = self.subs[child_no] = Subaccount(child_no, Portfolio(ZERO, self.context.markets), ticker=t)
        return child, ""

    def _execute(self, o: SimOrder, ts: int) -> OrderResult:
        """Route, check and execute a live (or just triggered) order."""
        t = o.ticker
        st = self.context.state_of(t)
        book = self._book(t, st)
        market = self._market(t)
        sub, err = self._route(o)
        if sub is None:
            return self._reject(o, ts, err)
        o.sub = sub.number
        pos = sub.size(t)
        if o.reduce_only:
            if not pos or (pos > 0) == (o.side is Side.BUY):
                return self._reject(
                    o, ts, f"reduce-only {o.side.value} {o.size} {t} would increase or open the position (position {pos})"
                )
            if o.size > abs(pos):
                o.reason = f"reduce-only size cut from {o.size} to the position size {abs(pos)}"
                o.size = abs(pos)
        mode = self._data_mode(st, book)
        if mode is None:
            return self._reject(o, ts, f"no market data for {t} yet (no book snapshot and no bars)")
        # reference and limit prices
        if mode == "book":
            best_opp = book.best_ask_price() if o.side is Side.BUY else book.best_bid_price()
        else:
            best_opp = st.last_price
        if o.is_market:
            if o.price is not None:
                limit = o.price
            elif best_opp is None:
                o.stage = DONE
                self._orders.pop(o.client_id, None)
                side_name = "asks" if o.side is Side.BUY else "bids"
                self._update(o, OrderStatus.CANCELED, ts, f"market order: no {side_name} in the {t} book")
                self._refresh_active(t)
                return self._result(o)
            else:
                slip = o.slippage if o.slippage is not None else self.cfg.max_slippage
                raw = best_opp * (1 + slip) if o.side is Side.BUY else best_opp * (1 - slip)
                limit = market.round_price_aggressive(raw, o.side)
                if limit <= 0:
                    limit = market.tick_size
            o.worst = limit
        else:
            limit = o.price
            if o.post_only and best_opp is not None:
                if (o.side is Side.BUY and limit >= best_opp) or (o.side is Side.SELL and limit <= best_opp):
                    what = "best ask" if o.side is Side.BUY else "best bid"
                    if mode == "bars":
                        what = "last close"
                    return self._reject(o, ts, f"post-only {o.side.value} at {limit} would cross the {what} {best_opp} of {t}")
        # initial-margin check of the whole order at its expected prices
        err = self._precheck(o, sub, mode, book, st, limit, best_opp, ts)
        if err:
            return self._reject(o, ts, err)
        if mode == "book":
            stop = None
            if not o.post_only:
                stop = self._take(o, sub, book, limit, ts)
            if o.remaining <= 0:
                self._finish(o, OrderStatus.FILLED, ts)
            elif stop:
                self._finish(o, OrderStatus.CANCELED, ts, stop)
            elif o.is_ioc:
                self._finish(o, OrderStatus.CANCELED, ts, f"IOC: remaining {o.remaining} not fillable at or better than {limit}")
            else:
                own = book.bids if o.side is Side.BUY else book.asks
                o.queue_ahead = own.get(limit, ZERO)
                self._rest(o, ts, ts)
            return self._result(o)
        # bars
        marketable = o.is_market or (
            best_opp is not None
            and ((o.side is Side.BUY and limit >= best_opp) or (o.side is Side.SELL and limit <= best_opp))
        )
        if marketable:
            o.stage = BAR_TAKER
            self._bar_takers.setdefault(t, []).append(o)
            self._active.add(t)
            self._update(o, OrderStatus.OPEN, ts, o.reason)
        else:
            self._rest(o, ts, o.arrive_ns)
        return self._result(o)

    def _rest(self, o: SimOrder, ts: int, rest_ns: int) -> None:
        o.stage = RESTING
        o.rest_ns = rest_ns
        self._resting.setdefault(o.ticker, []).append(o)
        self._active.add(o.ticker)
        if o.expire_ns:
            self._recompute_expiry()
        self._update(o, OrderStatus.PARTIALLY_FILLED if o.filled else OrderStatus.OPEN, ts, o.reason)

    def _precheck(self, o: SimOrder, sub: Subaccount, mode: str, book, st, limit: Decimal, ref, ts: int) -> str:
        """Initial-margin check of the whole order; funds an isolated child. Returns '' or a reason."""
        qty, notional, fee = ZERO, ZERO, ZERO
        remaining = o.remaining
        if mode == "book":
            if not o.post_only:
                for price, avail in self._levels(o, book, limit):
                    take = min(remaining, avail)
                    qty += take
                    n = price * take
                    notional += n
                    fee += self.fees.fee(n, False, ts)
                    remaining -= take
                    if remaining <= 0:
                        break
            if remaining > 0 and not o.is_ioc:
                n = limit * remaining
                qty += remaining
                notional += n
                fee += self.fees.fee(n, True, ts)
        else:
            px = (ref if ref is not None else limit) if o.is_market else limit
            n = px * remaining
            qty, notional = remaining, n
            fee = self.fees.fee(n, not o.is_market, ts)
        if qty <= 0:
            return ""
        avg = notional / qty
        t = o.ticker
        risks = self._position_risks(sub)
        cur = self._risk_of(risks, t, sub, fallback_price=avg)
        signed = qty if o.side is Side.BUY else -qty
        chk = check_order_initial_margin(sub.portfolio.collateral, risks, cur, signed, avg, fee)
        if chk.accepted and not sub.isolated:
            return ""
        if not sub.isolated:
            return (
                f"insufficient margin for {o.side.value} {qty} {t} at ~{_fmt(avg)}: initial margin required "
                f"{_fmt(chk.required)} USD, available {_fmt(chk.available)} USD equity after the order "
                f"(short by {_fmt(chk.shortfall)} USD)"
            )
        return self._fund_child(o, sub, qty, avg, chk.shortfall)

    def _fund_child(self, o: SimOrder, sub: Subaccount, qty: Decimal, avg: Decimal, shortfall: Decimal) -> str:
        """Transfer from the parent what the child needs to be initially collateralized
        after the order, also when the position is valued at the order's own price (so a
        resting order far from the mark is funded with its initial margin). Returns '' or a reason."""
        t = o.ticker
        risks = self._position_risks(sub)
        cur = self._risk_of(risks, t, sub, fallback_price=avg)
        at_price = PositionRisk.from_market(self._market(t), cur.size, avg)
        others = [r for r in risks if r is not cur]
        signed = qty if o.side is Side.BUY else -qty
        reduces = cur.size and (signed > 0) != (cur.size > 0) and qty <= abs(cur.size)
        if not reduces:
            fee = self.fees.fee(avg * qty, False, self._now())
            chk = check_order_initial_margin(
                sub.portfolio.collateral, others, at_price, signed, avg, fee, allow_undercollateralized_risk_reduction=False
            )
            shortfall = max(shortfall, chk.shortfall)
        if not shortfall:
            return ""
        # the parent funds what the child needs (+ rounding dust)
        need = ceil_to(shortfall, QUOTE_QUANTUM) + Decimal("0.00001")
        parent = self.subs[0]
        prisk = account_risk(parent.portfolio.collateral, self._position_risks(parent))
        if prisk.free_collateral < need:
            return (
                f"insufficient margin for isolated {o.side.value} {qty} {t} at ~{_fmt(avg)}: the child subaccount "
                f"{sub.number} needs a transfer of {_fmt(need)} USD (its initial margin, fee and entry cost) but the parent's "
                f"free collateral is {_fmt(prisk.free_collateral)} USD"
            )
        parent.portfolio.collateral -= need
        sub.portfolio.collateral += need
        o.transferred += need
        parent.cushion = sub.cushion = None
        return ""

    # ------------------------------------------------------------------
    # matching
    # ------------------------------------------------------------------

    def _levels(self, o: SimOrder, book, limit: Decimal):
        """Opposite-side levels ``(price, available)`` up to ``limit`` (inclusive), best first,
        net of liquidity this simulator already took from them."""
        consumed = self._consumed.get(o.ticker)
        if o.side is Side.BUY:
            levels = book.asks
            keys = levels.keys()
            rng = range(len(keys))
            is_ask = True
        else:
            levels = book.bids
            keys = levels.keys()
            rng = range(len(keys) - 1, -1, -1)
            is_ask = False
        for i in rng:
            p = keys[i]
            if (is_ask and p > limit) or (not is_ask and p < limit):
                break
            s = levels[p]
            if consumed:
                rec = consumed.get((is_ask, p))
                if rec is not None and rec[0] == s:
                    s = s - rec[1]
                    if s <= 0:
                        continue
            yield p, s

    def _consume(self, ticker: str, is_ask: bool, price: Decimal, level_size: Decimal, qty: Decimal) -> None:
        c = self._consumed.get(ticker)
        if c is None:
            c = self._consumed[ticker] = {}
        key = (is_ask, price)
        rec = c.get(key)
        if rec is not None and rec[0] == level_size:
            c[key] = (level_size, rec[1] + qty)
        else:
            c[key] = (level_size, qty)
        if len(c) > 512:
            self._prune_consumed(ticker)

    def _prune_consumed(self, ticker: str) -> None:
        st = self.context.state_of(ticker)
        book = self._book(ticker, st)
        c = self._consumed.get(ticker) or {}
        if book is None:
            c.clear()
            return
        for (is_ask, p), (size, _) in list(c.items()):
            if (book.asks if is_ask else book.bids).get(p) != size:
                del c[(is_ask, p)]

    def _take(self, o: SimOrder, sub: Subaccount, book, limit: Decimal, ts: int) -> str | None:
        """Fill ``o`` as taker against the book up to ``limit``. Returns a stop reason or None."""
        is_ask = o.side is Side.BUY
        levels = book.asks if is_ask else book.bids
        for price, avail in self._levels(o, book, limit):
            qty = min(o.remaining, avail)
            done, stop = self._fill(o, sub, price, qty, False, ts)
            if done:
                self._consume(o.ticker, is_ask, price, levels[price], done)
            if stop:
                return stop
            if o.remaining <= 0:
                break
        return None

    def _fill(self, o: SimOrder, sub: Subaccount, price: Decimal, qty: Decimal, maker: bool, ts: int) -> tuple[Decimal, str | None]:
        """Execute one fill of ``o`` if the collateral rule allows it.

        :returns: ``(filled size, stop reason or None)``.
        """
        t = o.ticker
        if o.reduce_only:
            pos = sub.size(t)
            if not pos or (pos > 0) == (o.side is Side.BUY):
                return ZERO, "reduce-only: no position left to reduce"
            qty = min(qty, abs(pos))
        if qty <= 0:
            return ZERO, None
        notional = price * qty
        fee = self.fees.fee(notional, maker, ts)
        signed = qty if o.side is Side.BUY else -qty
        risks = self._position_risks(sub)
        cur = self._risk_of(risks, t, sub, fallback_price=price)
        chk = check_order_initial_margin(sub.portfolio.collateral, risks, cur, signed, price, fee)
        if not chk.accepted:
            return ZERO, (
                f"undercollateralized at fill ({o.side.value} {qty} {t} at {price}): initial margin required "
                f"{_fmt(chk.required)} USD, available {_fmt(chk.available)} USD"
            )
        fill = Fill(
            client_id=o.client_id,
            ticker=t,
            side=o.side,
            price=price,
            size=qty,
            fee=fee,
            liquidity=Liquidity.MAKER if maker else Liquidity.TAKER,
            ts_ns=ts,
            fill_id=self._next_fill_id(),
            venue=self.venue,
            tag=o.tag,
        )
        self._book_fill(sub, fill)
        self.fees.record(ts, notional)
        o.filled += qty
        o.notional += notional
        self.emit(fill)
        return qty, None

    def _book_fill(self, sub: Subaccount, fill: Fill) -> None:
        pf = sub.portfolio
        t = fill.ticker
        if sub.isolated and t not in pf.positions:
            pf.positions[t] = Position(t, margin_mode=MarginMode.ISOLATED, venue=fill.venue)
        pos = pf.apply_fill(fill)
        self._fills.append(fill)
        sub.cushion = None
        if pos.size:
            if t not in self._pos_tickers:
                self._pos_tickers.add(t)
                self._active.add(t)
                m = self._mark(t)
                if m is not None:
                    self._marks[t] = m
        else:
            self._recompute_pos_ticker(t)

    def _recompute_pos_ticker(self, t: str) -> None:
        if any(s.size(t) for s in self.subs.values()):
            self._pos_tickers.add(t)
        else:
            self._pos_tickers.discard(t)
            self._marks.pop(t, None)
        self._refresh_active(t)

    def _after_fills(self, o: SimOrder, ts: int, stop: str | None) -> None:
        """Status after maker fills."""
        if o.remaining <= 0:
            self._finish(o, OrderStatus.FILLED, ts)
        elif stop:
            self._finish(o, OrderStatus.CANCELED, ts, stop)
        else:
            self._update(o, OrderStatus.PARTIALLY_FILLED, ts)

    # -- makers: book moves, trades, bars ------------------------------------

    def _on_book(self, ticker: str, book, ts: int) -> None:
        crossed = book.is_crossed()
        queue = self.cfg.queue_position
        for o in list(self._resting.get(ticker, ())):
            if o.stage != RESTING:
                continue
            buy = o.side is Side.BUY
            own = book.bids if buy else book.asks
            lvl = own.get(o.price, ZERO)
            if o.queue_ahead > lvl:
                o.queue_ahead = lvl
            if crossed:
                continue
            best = book.best_ask_price() if buy else book.best_bid_price()
            if best is None or (buy and best > o.price) or (not buy and best < o.price):
                continue
            sub = self.subs[o.sub]
            opp = book.asks if buy else book.bids
            stop = None
            filled_any = False
            for price, avail in self._levels(o, book, o.price):
                if price == o.price and queue and o.queue_ahead > 0:
                    break
                done, stop = self._fill(o, sub, o.price, min(o.remaining, avail), True, ts)
                if done:
                    filled_any = True
                    self._consume(ticker, buy, price, opp[price], done)
                if stop or o.remaining <= 0:
                    break
            if filled_any or stop:
                self._after_fills(o, ts, stop)

    def _on_trade(self, ev: Trade, ts: int) -> None:
        lst = self._resting.get(ev.ticker)
        if not lst:
            return
        price = ev.price
        buys = sorted((o for o in lst if o.side is Side.BUY and o.stage == RESTING and price <= o.price), key=lambda o: -o.price)
        sells = sorted((o for o in lst if o.side is Side.SELL and o.stage == RESTING and price >= o.price), key=lambda o: o.price)
        queue = self.cfg.queue_position
        for group in (buys, sells):
            avail = ev.size
            for o in group:
                if avail <= 0:
                    break
                through = price < o.price if o.side is Side.BUY else price > o.price
                if not through:
                    if ev.side is o.side:
                        continue  # an aggressor on our own side does not trade with us
                    if queue:
                        used = min(o.queue_ahead, avail)
                        o.queue_ahead -= used
                        avail -= used
                else:
                    o.queue_ahead = ZERO
                qty = min(o.remaining, avail)
                if qty <= 0:
                    continue
                done, stop = self._fill(o, self.subs[o.sub], o.price, qty, True, ts)
                avail -= done
                if done or stop:
                    self._after_fills(o, ts, stop)

    def _on_bar(self, bar: Bar, ts: int) -> None:
        t = bar.ticker
        start = bar.ts_ns - bar.interval_s * NS
        takers = self._bar_takers.get(t)
        if takers:
            market = self._market(t)
            half = (bar.high - bar.low) / 2
            for o in list(takers):
                if o.arrive_ns > start or o.stage != BAR_TAKER:
                    continue
                if o.side is Side.BUY:
                    px = ceil_to(min(bar.open + half, bar.high), market.tick_size)
                else:
                    px = floor_to(max(bar.open - half, bar.low), market.tick_size)
                    if px <= 0:
                        px = market.tick_size
                bound = o.worst if o.is_market else o.price
                if (o.side is Side.BUY and px <= bound) or (o.side is Side.SELL and px >= bound):
                    done, stop = self._fill(o, self.subs[o.sub], px, o.remaining, False, ts)
                    if o.remaining <= 0:
                        self._finish(o, OrderStatus.FILLED, ts)
                    else:
                        self._finish(o, OrderStatus.CANCELED, ts, stop or f"filled {o.filled} of {o.size}")
                elif o.is_ioc:
                    self._finish(
                        o, OrderStatus.CANCELED, ts,
                        f"IOC: next bar open with half-range slippage {px} is beyond the {'worst' if o.is_market else 'limit'} price {bound}",
                    )
                else:
                    self._index_remove(o)
                    o.stage = RESTING
                    o.rest_ns = start
                    self._resting.setdefault(t, []).append(o)
        resting = self._resting.get(t)
        if not resting:
            return
        st = self.context.state_of(t)
        if self._data_mode(st, self._book(t, st)) != "bars":
            return
        avail = {Side.BUY: bar.volume, Side.SELL: bar.volume}
        for o in sorted(resting, key=lambda o: (-o.price if o.side is Side.BUY else o.price)):
            if o.stage != RESTING or o.rest_ns > start:
                continue
            hit = bar.low < o.price if o.side is Side.BUY else bar.high > o.price
            if not hit:
                continue
            qty = min(o.remaining, avail[o.side])
            if qty <= 0:
                continue
            done, stop = self._fill(o, self.subs[o.sub], o.price, qty, True, ts)
            avail[o.side] -= done
            if done or stop:
                self._after_fills(o, ts, stop)

    # -- conditional orders ----------------------------------------------------

    def _trigger_price(self, ticker: str) -> Decimal | None:
        """Oracle price, else the last trade (or bar close), else the mid, USD."""
        st = self.context.state_of(ticker)
        if st is None:
            m = self._market(ticker)
            return m.oracle_price if m is not None else None
        if st.oracle_price is not None:
            return st.oracle_price
        if st.last_price is not None:
            return st.last_price
        return st.mid()

    def _check_triggers(self, ticker: str, ts: int) -> None:
        px = self._trigger_price(ticker)
        if px is None or px == self._trigger_px.get(ticker):
            return
        self._trigger_px[ticker] = px
        for o in list(self._conditionals.get(ticker, ())):
            if o.stage == UNTRIGGERED and o.trigger_hit(px):
                self._index_remove(o)
                o.triggered = True
                o.stage = PENDING
                o.arrive_ns = max(o.arrive_ns, ts)  # acts from now on (bar fills never look back)
                o.reason = f"triggered at {px}"
                self._execute(o, ts)
        self._refresh_active(ticker)

    # ------------------------------------------------------------------
    # market data
    # ------------------------------------------------------------------

    def on_market_event(self, event) -> None:
        """Advance the simulation by one market event (already applied to the bot's state)."""
        ts = event.ts_ns
        if type(event) is FundingRate and event.settled:
            # keep settled rates by hour: the state's last_funding may already be the NEXT
            # hour's rate when the previous hour is settled (same batch)
            hist = self._settled_rates.get(event.ticker)
            if hist is None:
                hist = self._settled_rates[event.ticker] = deque(maxlen=64)
            hist.append((ts - ts % HOUR_NS, event.rate_1h, event.oracle_price, max(1, event.interval_h)))
        if ts >= self._next_work_ns:
            self._timed_work(ts)
        ticker = event.ticker
        if ticker in self._active:
            self._on_active(event, ticker, ts)

    def _on_active(self, ev, ticker: str, ts: int) -> None:
        t = type(ev)
        st = self.context.state_of(ticker)
        if t is BookDelta or t is BookSnapshot:
            if ticker in self._resting:
                book = self._book(ticker, st)
                if book is not None:
                    self._on_book(ticker, book, ts)
        elif t is Trade:
            if ticker in self._resting:
                self._on_trade(ev, ts)
        elif t is Bar:
            if ticker in self._bar_takers or ticker in self._resting:
                self._on_bar(ev, ts)
        if ticker in self._conditionals:
            self._check_triggers(ticker, ts)
        if ticker in self._pos_tickers and (
            st is None
            or (t is OraclePrice or t is MarketInfo)
            or (
                st.oracle_price is None
                # without an oracle the mark is the book's mid: only book events move it
                and (t is BookDelta or t is BookSnapshot or not (st.book.bids and st.book.asks))
            )
        ):
            mark = self._mark(ticker)
            if mark is not None and mark != self._marks.get(ticker):
                self._marks[ticker] = mark
                self._check_liquidations(ticker, ts)

    def _timed_work(self, ts: int) -> None:
        if not self._next_hour_ns:
            self._next_hour_ns = ts - ts % HOUR_NS + HOUR_NS
        # The boundary H is taken at the first event strictly after H, so every event stamped
        # exactly H (a bar closing at H, a rate settled at H) is part of the state at H.
        while ts > self._next_hour_ns:
            self._funding_boundary(self._next_hour_ns)
            self._next_hour_ns += HOUR_NS
        while self._funding_due and ts >= self._funding_due[0][1]:
            hour, _, snap = self._funding_due.pop(0)
            self._settle_funding(hour, snap, ts)
        while self._pending and self._pending[0][0] <= ts:
            _, kind, obj = self._pending.popleft()
            if kind == "place":
                if obj.stage == PENDING:
                    self._activate(obj, ts)
            else:
                o = self._orders.get(obj)
                if o is not None:
                    self._finish(o, OrderStatus.CANCELED, ts, "canceled by request")
        if self._next_expiry_ns and ts >= self._next_expiry_ns:
            for o in list(self._orders.values()):
                if o.expire_ns and o.expire_ns <= ts and o.stage in (RESTING, UNTRIGGERED):
                    self._finish(o, OrderStatus.EXPIRED, ts, f"good-til time reached ({o.good_til_s} s)")
            self._recompute_expiry()
        self._schedule()

    # ------------------------------------------------------------------
    # margin, liquidation
    # ------------------------------------------------------------------

    def _position_risks(self, sub: Subaccount) -> list[PositionRisk]:
        out = []
        for t, p in sub.portfolio.positions.items():
            if p.size:
                mark = self._mark(t) or p.entry_price
                out.append(PositionRisk.from_market(self._market(t), p.size, mark))
        return out

    def _risk_of(self, risks: list[PositionRisk], ticker: str, sub: Subaccount, fallback_price: Decimal) -> PositionRisk:
        for r in risks:
            if r.ticker == ticker:
                return r
        return PositionRisk.from_market(self._market(ticker), ZERO, self._mark(ticker) or fallback_price)

    def _check_liquidations(self, ticker: str, ts: int) -> None:
        for sub in list(self.subs.values()):
            if sub.size(ticker):
                self._check_sub(sub, ts)

    def _check_sub(self, sub: Subaccount, ts: int, force: bool = False) -> None:
        """Liquidate ``sub`` if it is liquidatable (strict chain rule), cheaply when far from it."""
        positions = [(t, p.size) for t, p in sub.portfolio.positions.items() if p.size]
        if not positions:
            sub.cushion = None
            return
        if not force and sub.cushion is not None:
            bound = ZERO
            for t, size in positions:
                m = self._marks.get(t) or self._mark(t)
                m0 = sub.eval_marks.get(t)
                if m is None or m0 is None:
                    bound = None
                    break
                bound += abs(size) * (1 + self._market(t).maintenance_margin_fraction) * abs(m - m0)
            if bound is not None and bound < sub.cushion:
                return
        risks = self._position_risks(sub)
        ar = account_risk(sub.portfolio.collateral, risks)
        if ar.is_liquidatable:
            self._liquidate(sub, ts)
            return
        sub.cushion = ar.equity - ar.maintenance_margin - _SLACK_PER_POSITION * len(risks)
        sub.eval_marks = {r.ticker: r.oracle_price for r in risks}

    def _liquidate(self, sub: Subaccount, ts: int) -> None:
        while True:
            risks = self._position_risks(sub)
            if not risks:
                break
            ar = account_risk(sub.portfolio.collateral, risks)
            if not ar.is_liquidatable:
                break
            pr = max(risks, key=lambda r: r.maintenance_margin_quote_quantums)
            t = pr.ticker
            market = self._market(t)
            size = pr.size
            try:
                exact = liquidation_fill_price(pr, ar.equity, ar.maintenance_margin)
            except ValueError:
                exact = pr.oracle_price
            if size > 0:
                price = ceil_to(exact, market.tick_size)
            else:
                price = floor_to(exact, market.tick_size)
            if price <= 0:
                price = market.tick_size
            bq = bankruptcy_quote(pr, -size, ar.equity, ar.maintenance_margin)
            quote_received = size * price
            fee = liquidation_fee(quote_received, bq, self.cfg.max_liquidation_fee_ppm)
            side = Side.SELL if size > 0 else Side.BUY
            fill = Fill(
                client_id=LIQUIDATION_CLIENT_ID,
                ticker=t,
                side=side,
                price=price,
                size=abs(size),
                fee=ZERO,
                liquidity=Liquidity.TAKER,
                ts_ns=ts,
                fill_id=self._next_fill_id(),
                venue=self.venue,
                tag="liquidation",
                liquidation=True,
            )
            self._book_fill(sub, fill)
            sub.portfolio.charge(fee, t, liquidation_fee=True)
            where = f"isolated subaccount {sub.number}" if sub.isolated else "cross subaccount 0"
            liq = Liquidation(
                ticker=t,
                ts_ns=ts,
                size=size,
                price=price,
                fee=fee,
                reason=(
                    f"{'long' if size > 0 else 'short'} {abs(size)} {t} in {where}: equity {_fmt(ar.equity)} USD < "
                    f"maintenance margin {_fmt(ar.maintenance_margin)} USD at mark {_fmt(pr.oracle_price)}; "
                    f"closed at the fillable price {price}, insurance fund fee {fee} USD"
                ),
                venue=self.venue,
            )
            self.liquidations.append(liq)
            self.emit(fill)
            self.emit(liq)
        sub.cushion = None
        if sub.isolated:
            self._maybe_sweep(sub)

    def _maybe_sweep(self, sub: Subaccount | None) -> None:
        """An isolated child that is flat and has no live orders returns its collateral."""
        if sub is None or not sub.isolated or sub.has_positions():
            return
        for o in self._orders.values():
            if o.sub == sub.number and o.stage != DONE and o.stage != PENDING:
                return
        amount = sub.portfolio.collateral
        if amount:
            sub.portfolio.collateral -= amount
            self.subs[0].portfolio.collateral += amount
            self.subs[0].cushion = None

    def liquidation_price(self, ticker: str) -> Decimal | None:
        """Oracle price at which the position in ``ticker`` would be liquidated, USD (None if flat
        or not liquidatable by its own price). Isolated: the child's own; cross: with the other
        positions' maintenance margin held fixed (docs ``liquidations.mdx``)."""
        for sub in self.subs.values():
            size = sub.size(ticker)
            if not size:
                continue
            risks = self._position_risks(sub)
            if sub.isolated:
                r = risks[0]
                eq = account_risk(sub.portfolio.collateral, risks).equity
                return isolated_liquidation_price(eq, r.size, r.oracle_price, r.mmf)
            prices = liquidation_prices(sub.portfolio.collateral, risks)
            for r, p in zip(risks, prices):
                if r.ticker == ticker:
                    return p
        return None

    # ------------------------------------------------------------------
    # funding
    # ------------------------------------------------------------------

    def _funding_boundary(self, hour_ns: int) -> None:
        """Snapshot the open positions and their marks as of the hour (the marks seen before
        the current event, which is the first one after the hour)."""
        snap = []
        for sub in self.subs.values():
            for t, p in sub.portfolio.positions.items():
                if p.size:
                    mark = self._marks.get(t) or self._mark(t) or p.entry_price
                    snap.append((sub.number, t, p.size, mark))
        if snap:
            self._funding_due.append([hour_ns, hour_ns + self.cfg.funding_grace_s * NS, snap])

    def funding_rate_for(self, ticker: str, hour_ns: int) -> tuple[Decimal, Decimal | None, str] | None:
        """The 1-hour rate that applies at the top of ``hour_ns``: ``(rate, oracle price or None, source)``.

        The settled rate for that hour (or, for a venue with ``interval_h > 1``, its latest
        settled rate within its interval), else the running prediction, else None.
        """
        hist = self._settled_rates.get(ticker)
        if hist:
            for lh, rate, oracle, interval_h in reversed(hist):
                if lh <= hour_ns:
                    if hour_ns - lh < interval_h * HOUR_NS:
                        return rate, (oracle if lh == hour_ns else None), "settled"
                    break
        st = self.context.state_of(ticker)
        if st is None:
            return None
        lf = st.last_funding
        if lf is not None:
            lh = lf.ts_ns - lf.ts_ns % HOUR_NS
            if 0 <= hour_ns - lh < max(1, lf.interval_h) * HOUR_NS:
                return lf.rate_1h, (lf.oracle_price if lh == hour_ns else None), "settled"
        if st.funding_rate_1h is not None:
            return st.funding_rate_1h, None, "predicted"
        return None

    def _settle_funding(self, hour_ns: int, snap: list, ts: int) -> None:
        by_sub: dict[int, list] = {}
        for number, t, size, mark in snap:
            r = self.funding_rate_for(t, hour_ns)
            if r is None:
                self.funding_missing.add(t)
                if t not in self._funding_warned:
                    self._funding_warned.add(t)
                    logger.warning(
                        f"paper: no funding rate for {t} at the top of the hour (the data has no funding for it); "
                        f"funding is NOT simulated for {t} and NOT assumed zero - see the run summary"
                    )
                continue
            rate, oracle, _ = r
            price = oracle if oracle is not None else mark
            by_sub.setdefault(number, []).append((t, size, price, rate, funding_payment(size, price, rate)))
        for number, items in by_sub.items():
            sub = self.subs.get(number)
            if sub is None:
                continue
            # chain: the subaccount's sum is floored once to a quote quantum (lib.go
            # GetSettlementPpmWithPerpetual); per position we floor, then hand the
            # remaining quanta to the first positions so the sum matches.
            total = sum((x[4] for x in items), ZERO).quantize(QUOTE_QUANTUM, rounding=ROUND_FLOOR)
            amounts = [x[4].quantize(QUOTE_QUANTUM, rounding=ROUND_FLOOR) for x in items]
            extra = int((total - sum(amounts, ZERO)) / QUOTE_QUANTUM)
            for i in range(min(extra, len(amounts))):
                amounts[i] += QUOTE_QUANTUM
            for (t, size, price, rate, _), amount in zip(items, amounts):
                pay = FundingPayment(
                    ticker=t, ts_ns=hour_ns, size=size, oracle_price=price, rate_1h=rate, amount=amount, venue=self.venue
                )
                sub.portfolio.apply_funding(pay)
                self.funding_payments.append(pay)
                self.emit(pay)
            sub.cushion = None
            if sub.has_positions():
                self._check_sub(sub, ts, force=True)
            else:
                self._maybe_sweep(sub)

    # ------------------------------------------------------------------
    # contract: state
    # ------------------------------------------------------------------

    async def get_open_orders(self, ticker: str | None = None) -> list[OrderInfo]:
        return [o.info(self.venue) for o in self._orders.values() if ticker is None or o.ticker == ticker]

    async def get_positions(self) -> dict[str, Position]:
        out: dict[str, Position] = {}
        for sub in self.subs.values():
            for t, p in sub.portfolio.positions.items():
                if p.size:
                    out[t] = p
        return out

    def balance(self) -> Balance:
        """Account totals over the parent and its isolated children, USD (exact chain margin)."""
        q = eq = imr = mmr = ZERO
        for sub in self.subs.values():
            ar = account_risk(sub.portfolio.collateral, self._position_risks(sub))
            q += sub.portfolio.collateral
            eq += ar.equity
            imr += ar.initial_margin
            mmr += ar.maintenance_margin
        return Balance(
            collateral=q, equity=eq, free_collateral=eq - imr, initial_margin=imr, maintenance_margin=mmr, ts_ns=self._now()
        )

    async def get_balance(self) -> Balance:
        return self.balance()

    def subaccount_balances(self) -> dict[int, Balance]:
        """Per-subaccount figures (0 = cross parent, 128.. = isolated children), USD."""
        out = {}
        for n, sub in self.subs.items():
            ar = account_risk(sub.portfolio.collateral, self._position_risks(sub))
            out[n] = Balance(
                collateral=sub.portfolio.collateral,
                equity=ar.equity,
                free_collateral=ar.free_collateral,
                initial_margin=ar.initial_margin,
                maintenance_margin=ar.maintenance_margin,
                ts_ns=self._now(),
            )
        return out

    async def get_fills_since(self, ts_ns: int) -> list:
        return [f for f in self._fills if f.ts_ns >= ts_ns]

    def best_bid_offer(self, ticker: str) -> tuple[Decimal | None, Decimal | None]:
        st = self.context.state_of(ticker)
        if st is not None:
            return st.best_bid_offer()
        book = self.context.book_of(ticker)
        if book is None:
            return None, None
        return book.best_bid_price(), book.best_ask_price()

    def _next_fill_id(self) -> str:
        """The next venue fill id, ``paper-<run>-<n>`` (unique across runs; see ``_fill_prefix``)."""
        self._fill_seq += 1
        return f"{self._fill_prefix}{self._fill_seq}"

    # ------------------------------------------------------------------
    # persistence (resume a paper run)
    # ------------------------------------------------------------------

    def export_state(self) -> dict:
        """Everything needed to resume this simulator, JSON-serialisable (Decimals as str)."""
        return {
            "version": STATE_VERSION,
            "venue": self.venue,
            "subaccounts": [
                {"number": n, "ticker": s.ticker, "portfolio": _portfolio_to_dict(s.portfolio)} for n, s in self.subs.items()
            ],
            "child_of": dict(self._child_of),
            "orders": [o.to_dict() for o in self._orders.values()],
            "pending": [[a, k, (obj.client_id if k == "place" else obj)] for a, k, obj in self._pending],
            "fees": self.fees.export_state(),
            "next_hour_ns": self._next_hour_ns,
            "funding_due": [[h, s, [[n, t, str(z), str(m)] for n, t, z, m in snap]] for h, s, snap in self._funding_due],
            "funding_missing": sorted(self.funding_missing),
            "funding_warned": sorted(self._funding_warned),
            # the latest only, like fills: the journal holds every payment and liquidation; exporting
            # the whole history made each checkpoint O(run length)
            "funding_payments": [_funding_to_dict(p) for p in self.funding_payments[-EXPORTED_FILLS:]],
            "liquidations": [_liquidation_to_dict(x) for x in self.liquidations[-EXPORTED_FILLS:]],
            # the latest fills only: a resumed run continues from this state, and the journal
            # already holds every fill before it
            "fills": [_fill_to_dict(f) for f in list(self._fills)[-EXPORTED_FILLS:]],
            "fill_seq": self._fill_seq,
            "fill_prefix": self._fill_prefix,
            "rejections": self.rejections,
        }

    def import_state(self, data: Mapping[str, Any]) -> None:
        """Restore :meth:`export_state` output (replaces the current state)."""
        if int(data.get("version", 0)) != STATE_VERSION:
            raise ValueError(f"paper exchange state version {data.get('version')!r} is not {STATE_VERSION}")
        self.subs = {}
        for row in data["subaccounts"]:
            pf = _portfolio_from_dict(row["portfolio"], self.context.markets)
            self.subs[int(row["number"])] = Subaccount(int(row["number"]), pf, row.get("ticker"))
        self._child_of = {t: int(n) for t, n in data.get("child_of", {}).items()}
        self._orders = {}
        self._resting, self._conditionals, self._bar_takers = {}, {}, {}
        for d in data.get("orders", []):
            o = SimOrder.from_dict(d)
            self._orders[o.client_id] = o
            if o.stage == RESTING:
                self._resting.setdefault(o.ticker, []).append(o)
            elif o.stage == UNTRIGGERED:
                self._conditionals.setdefault(o.ticker, []).append(o)
            elif o.stage == BAR_TAKER:
                self._bar_takers.setdefault(o.ticker, []).append(o)
        self._pending = deque()
        for a, k, obj in data.get("pending", []):
            if k == "place":
                o = self._orders.get(int(obj))
                if o is not None:
                    self._pending.append((int(a), k, o))
            else:
                self._pending.append((int(a), k, int(obj)))
        self.fees.import_state(data.get("fees", {}))
        self._next_hour_ns = int(data.get("next_hour_ns", 0))
        self._funding_due = [
            [int(h), int(s), [(int(n), t, Decimal(z), Decimal(m)) for n, t, z, m in snap]]
            for h, s, snap in data.get("funding_due", [])
        ]
        self.funding_missing = set(data.get("funding_missing", []))
        self._funding_warned = set(data.get("funding_warned", []))
        self.funding_payments = [_funding_from_dict(p) for p in data.get("funding_payments", [])]
        self.liquidations = [_liquidation_from_dict(x) for x in data.get("liquidations", [])]
        self._fills = deque((_fill_from_dict(f) for f in data.get("fills", [])), maxlen=self.cfg.fills_kept)
        self._fill_seq = int(data.get("fill_seq", 0))
        # a resumed run continues its timeline's fill ids (a state without a prefix keeps this run's)
        self._fill_prefix = str(data.get("fill_prefix") or self._fill_prefix)
        self.rejections = int(data.get("rejections", 0))
        self._consumed = {}
        self._marks = {}
        self._trigger_px = {}
        self._pos_tickers = {t for s in self.subs.values() for t, p in s.portfolio.positions.items() if p.size}
        self._active = set()
        for t in set(self._resting) | set(self._conditionals) | set(self._bar_takers) | self._pos_tickers:
            self._refresh_active(t)
        self._recompute_expiry()


# ----------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------


def _fmt(x: Decimal) -> str:
    """A USD amount for messages: 6 decimals at most, no exponent."""
    return f"{x.quantize(QUOTE_QUANTUM):f}" if x == x else str(x)


def _order_update(o: SimOrder, status: OrderStatus, ts: int, reason: str, venue: str) -> OrderUpdate:
    return OrderUpdate(
        client_id=o.client_id,
        ticker=o.ticker,
        status=status,
        ts_ns=ts,
        filled_size=o.filled,
        reason=reason,
        venue=venue,
        tag=o.tag,
    )


def _portfolio_to_dict(pf: Portfolio) -> dict:
    return {
        "starting_collateral": str(pf.starting_collateral),
        "collateral": str(pf.collateral),
        "positions": {
            t: {
                "size": str(p.size),
                "entry_price": str(p.entry_price),
                "realized_pnl": str(p.realized_pnl),
                "fees": str(p.fees),
                "funding": str(p.funding),
                "margin_mode": p.margin_mode.value,
                "venue": p.venue,
            }
            for t, p in pf.positions.items()
        },
        "stats": {t: {k: (str(v) if isinstance(v, Decimal) else v) for k, v in attrs.asdict(s).items()} for t, s in pf.stats.items()},
        "fees_paid": str(pf.fees_paid),
        "funding_net": str(pf.funding_net),
        "realized_pnl": str(pf.realized_pnl),
        "liquidation_fees": str(pf.liquidation_fees),
        "fills": pf.fills,
    }


def _portfolio_from_dict(d: Mapping[str, Any], markets) -> Portfolio:
    pf = Portfolio(Decimal(d["starting_collateral"]), markets)
    pf.collateral = Decimal(d["collateral"])
    for t, p in d.get("positions", {}).items():
        pf.positions[t] = Position(
            ticker=t,
            size=Decimal(p["size"]),
            entry_price=Decimal(p["entry_price"]),
            realized_pnl=Decimal(p["realized_pnl"]),
            fees=Decimal(p["fees"]),
            funding=Decimal(p["funding"]),
            margin_mode=MarginMode(p.get("margin_mode", "CROSS")),
            venue=p.get("venue", ""),
        )
    decimal_fields = {f.name for f in attrs.fields(MarketStats) if f.type in (Decimal, "Decimal")}
    for t, s in d.get("stats", {}).items():
        kw = {k: (Decimal(v) if k in decimal_fields else v) for k, v in s.items()}
        pf.stats[t] = MarketStats(**kw)
    pf.fees_paid = Decimal(d.get("fees_paid", "0"))
    pf.funding_net = Decimal(d.get("funding_net", "0"))
    pf.realized_pnl = Decimal(d.get("realized_pnl", "0"))
    pf.liquidation_fees = Decimal(d.get("liquidation_fees", "0"))
    pf.fills = int(d.get("fills", 0))
    return pf


def _fill_to_dict(f: Fill) -> dict:
    return {
        "client_id": f.client_id,
        "ticker": f.ticker,
        "side": f.side.value,
        "price": str(f.price),
        "size": str(f.size),
        "fee": str(f.fee),
        "liquidity": f.liquidity.value,
        "ts_ns": f.ts_ns,
        "fill_id": f.fill_id,
        "venue": f.venue,
        "tag": f.tag,
        "liquidation": f.liquidation,
    }


def _fill_from_dict(d: Mapping[str, Any]) -> Fill:
    return Fill(
        client_id=int(d["client_id"]),
        ticker=d["ticker"],
        side=Side(d["side"]),
        price=d["price"],
        size=d["size"],
        fee=d["fee"],
        liquidity=Liquidity(d["liquidity"]),
        ts_ns=int(d["ts_ns"]),
        fill_id=d.get("fill_id", ""),
        venue=d.get("venue", ""),
        tag=d.get("tag", ""),
        liquidation=bool(d.get("liquidation", False)),
    )


def _funding_to_dict(p: FundingPayment) -> dict:
    return {
        "ticker": p.ticker,
        "ts_ns": p.ts_ns,
        "size": str(p.size),
        "oracle_price": str(p.oracle_price),
        "rate_1h": str(p.rate_1h),
        "amount": str(p.amount),
        "venue": p.venue,
    }


def _funding_from_dict(d: Mapping[str, Any]) -> FundingPayment:
    return FundingPayment(
        ticker=d["ticker"],
        ts_ns=int(d["ts_ns"]),
        size=Decimal(d["size"]),
        oracle_price=Decimal(d["oracle_price"]),
        rate_1h=Decimal(d["rate_1h"]),
        amount=Decimal(d["amount"]),
        venue=d.get("venue", ""),
    )


def _liquidation_to_dict(x: Liquidation) -> dict:
    return {
        "ticker": x.ticker,
        "ts_ns": x.ts_ns,
        "size": str(x.size),
        "price": str(x.price),
        "fee": str(x.fee),
        "reason": x.reason,
        "venue": x.venue,
    }


def _liquidation_from_dict(d: Mapping[str, Any]) -> Liquidation:
    return Liquidation(
        ticker=d["ticker"],
        ts_ns=int(d["ts_ns"]),
        size=Decimal(d["size"]),
        price=Decimal(d["price"]),
        fee=Decimal(d["fee"]),
        reason=d.get("reason", ""),
        venue=d.get("venue", ""),
    )
