"""The order life cycle of the paper exchange: the stages an order moves through.

``submit`` checks an order statically (:func:`~perpbot.exchanges.paper.rules.static_check`; a
rejection never raises: the result is ``OrderResult(success=False, status=REJECTED,
error=reason)`` and ``OrderUpdate(REJECTED)`` is emitted), and sends it on its way to the book
(``latency_ms``: it waits in ``OrderTable.pending``). At the book (:meth:`OrderFlow.activate`)
a conditional order waits for its trigger price (oracle, else last trade or close, else mid;
chain ``CanTrigger``); a live order (:meth:`OrderFlow.execute`) is routed to its subaccount,
checked against the reduce-only, post-only and initial-margin rules (the whole order at its
expected prices; an isolated child is funded from the parent), then takes liquidity and rests
(GTT / post-only), is canceled (IOC), or waits for the next bar on bar-only data. Good-til
times expire resting and untriggered orders. Every status change emits one ``OrderUpdate``.

:class:`OrderFlow` also keeps ``active``: the markets whose events need work (orders at the
book or positions), so the coordinator skips every other market's events cheaply.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable

from perpbot.core.exchange import MarketView
from perpbot.core.model import ZERO, OrderRequest, OrderResult, OrderStatus, OrderUpdate, Side
from perpbot.exchanges.paper.config import PaperConfig
from perpbot.exchanges.paper.fees import FeeSchedule
from perpbot.exchanges.paper.matching import Matcher, data_mode
from perpbot.exchanges.paper.orders import BAR_TAKER, DONE, PENDING, RESTING, UNTRIGGERED, OrderTable, SimOrder
from perpbot.exchanges.paper.rules import market_worst_price, post_only_check, reduce_only_check, static_check
from perpbot.exchanges.paper.subaccounts import Accounts

NS = 1_000_000_000


class OrderFlow:
    """Moves the simulator's orders through their stages and emits their updates.

    :param view: the bot's read-only market view.
    :param orders: the live orders.
    :param accounts: the subaccounts (routing, margin, sweeping).
    :param fees: the fee schedule.
    :param cfg: the paper settings (``latency_ms``, ``margin_mode``, ``max_slippage``,
        ``queue_position``).
    :param emit: hands each event to the bot.
    :param venue: the venue name put on events.
    :param now: the clock, ``now() -> ns``.
    :param reschedule: called when the next timed work (arrivals, expiries) may have moved.

    Attributes: ``matcher`` (the :class:`~perpbot.exchanges.paper.matching.Matcher` it drives),
    ``active`` (markets needing per-event work), ``trigger_px`` (the last trigger price seen per
    market, USD), ``latency_ns`` and ``rejections`` (orders rejected in this run).
    """

    def __init__(
        self,
        view: MarketView,
        orders: OrderTable,
        accounts: Accounts,
        fees: FeeSchedule,
        cfg: PaperConfig,
        emit: Callable[[Any], None],
        venue: str,
        now: Callable[[], int],
        reschedule: Callable[[], None],
    ):
        self.view = view
        self.orders = orders
        self.accounts = accounts
        self.fees = fees
        self.cfg = cfg
        self.emit = emit
        self.venue = venue
        self.now = now
        self.reschedule = reschedule
        self.matcher = Matcher(view, accounts, orders, fees, self.finish, self.update, emit, venue, cfg.queue_position)
        self.active: set[str] = set()
        self.trigger_px: dict[str, Decimal] = {}
        self.latency_ns = cfg.latency_ms * 1_000_000
        self.rejections = 0

    # -- status and results ---------------------------------------------------------------

    def update(self, o: SimOrder, status: OrderStatus, ts: int, reason: str = "") -> None:
        """Set ``o``'s status (and reason) and emit its ``OrderUpdate`` stamped ``ts`` (ns)."""
        o.status = status
        if reason:
            o.reason = reason
        self.emit(
            OrderUpdate(
                client_id=o.client_id, ticker=o.ticker, status=status, ts_ns=ts, filled_size=o.filled,
                reason=reason, venue=self.venue, tag=o.tag,
            )
        )

    def result(self, o: SimOrder, error: str = "") -> OrderResult:
        """``o`` as an :class:`~perpbot.core.model.OrderResult` (``success`` unless rejected)."""
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

    def refresh_active(self, ticker: str) -> None:
        """Re-derive whether ``ticker``'s events need work (orders at the book or a position)."""
        if self.orders.has_work(ticker) or ticker in self.accounts.pos_tickers:
            self.active.add(ticker)
        else:
            self.active.discard(ticker)

    def recompute_expiry(self) -> None:
        """Recompute the next good-til time and reschedule."""
        self.orders.recompute_expiry()
        self.reschedule()

    # -- requests ------------------------------------------------------------------------------

    def submit(self, order: OrderRequest) -> OrderResult:
        """Check ``order`` statically and send it to the book (now, or after ``latency_ms``)."""
        now = self.now()
        o = SimOrder(order, now, now + self.latency_ns, self.cfg.margin_mode)
        err = static_check(order, o, self.view.market(order.ticker), self.orders.by_id)
        if err:
            return self.reject(o, now, err)
        self.orders.by_id[o.client_id] = o
        if self.latency_ns:
            self.orders.pending.append((o.arrive_ns, "place", o))
            self.reschedule()
            return self.result(o)
        return self.activate(o, now)

    def reject(self, o: SimOrder, ts: int, reason: str) -> OrderResult:
        """Reject ``o`` with ``reason``: count it, drop it, emit ``OrderUpdate(REJECTED)``, return
        collateral a child received for it."""
        self.rejections += 1
        o.stage = DONE
        o.reason = reason
        if self.orders.by_id.get(o.client_id) is o:
            del self.orders.by_id[o.client_id]
        self.update(o, OrderStatus.REJECTED, ts, reason)
        if o.transferred:
            self.accounts.sweep(self.accounts.subs.get(o.sub))
        return self.result(o, reason)

    def cancel(self, client_id: int, ticker: str) -> OrderResult:
        """Cancel a live order (best effort after ``latency_ms``: ``BEST_EFFORT_CANCELED`` now,
        ``OrderUpdate(CANCELED)`` when it reaches the book if still open). An unknown id gives
        ``success=False``."""
        o = self.orders.by_id.get(client_id)
        if o is None:
            return OrderResult(False, client_id, ticker, OrderStatus.REJECTED, error=f"order {client_id} is not open")
        if self.latency_ns:
            self.orders.pending.append((self.now() + self.latency_ns, "cancel", client_id))
            self.reschedule()
            return OrderResult(True, client_id, o.ticker, OrderStatus.BEST_EFFORT_CANCELED, filled_size=o.filled)
        self.finish(o, OrderStatus.CANCELED, self.now(), "canceled by request")
        return self.result(o)

    # -- stages --------------------------------------------------------------------------------

    def finish(self, o: SimOrder, status: OrderStatus, ts: int, reason: str = "") -> None:
        """Terminal state: remove the order everywhere, emit its update, sweep a flat child."""
        if o.stage == DONE:
            return
        self.orders.unindex(o)
        o.stage = DONE
        self.orders.by_id.pop(o.client_id, None)
        self.update(o, status, ts, reason)
        self.refresh_active(o.ticker)
        if o.expire_ns:
            self.recompute_expiry()
        sub = self.accounts.subs.get(o.sub)
        if sub is not None and sub.isolated:
            self.accounts.sweep(sub)

    def activate(self, o: SimOrder, ts: int) -> OrderResult:
        """The order reaches the book (after latency): wait for the trigger, or execute."""
        if o.stage != PENDING:
            return self.result(o)
        if o.good_til_s and not o.is_ioc:
            o.expire_ns = o.arrive_ns + o.good_til_s * NS
        if o.is_conditional and not o.triggered:
            px = self.trigger_price(o.ticker)
            if px is not None and o.trigger_hit(px):
                o.triggered = True
            else:
                o.stage = UNTRIGGERED
                self.orders.add(self.orders.conditionals, o)
                self.active.add(o.ticker)
                if o.expire_ns:
                    self.recompute_expiry()
                self.update(o, OrderStatus.UNTRIGGERED, ts)
                return self.result(o)
        return self.execute(o, ts)

    def execute(self, o: SimOrder, ts: int) -> OrderResult:
        """Route, check and execute a live (or just triggered) order."""
        t = o.ticker
        st = self.view.state(t)
        book = self.view.book(t)
        sub, err = self.accounts.route(o)
        if sub is None:
            return self.reject(o, ts, err)
        o.sub = sub.number
        err = reduce_only_check(o, sub.size(t))
        if err:
            return self.reject(o, ts, err)
        mode = data_mode(st, book)
        if mode is None:
            return self.reject(o, ts, f"no market data for {t} yet (no book snapshot and no bars)")
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
                self.orders.by_id.pop(o.client_id, None)
                side_name = "asks" if o.side is Side.BUY else "bids"
                self.update(o, OrderStatus.CANCELED, ts, f"market order: no {side_name} in the {t} book")
                self.refresh_active(t)
                return self.result(o)
            else:
                limit = market_worst_price(o, best_opp, self.view.market(t), self.cfg.max_slippage)
            o.worst = limit
        else:
            limit = o.price
            err = post_only_check(o, limit, best_opp, bars=(mode == "bars"))
            if err:
                return self.reject(o, ts, err)
        # initial-margin check of the whole order at its expected prices (funds an isolated child)
        qty, notional, fee = self.matcher.expected_cost(o, mode, book, limit, best_opp, ts)
        if qty > 0:
            err = self.accounts.order_margin_reason(o, sub, qty, notional / qty, fee, self.fees, self.now())
            if err:
                return self.reject(o, ts, err)
        if mode == "book":
            stop = None
            if not o.post_only:
                stop = self.matcher.take(o, sub, book, limit, ts)
            if o.remaining <= 0:
                self.finish(o, OrderStatus.FILLED, ts)
            elif stop:
                self.finish(o, OrderStatus.CANCELED, ts, stop)
            elif o.is_ioc:
                self.finish(o, OrderStatus.CANCELED, ts, f"IOC: remaining {o.remaining} not fillable at or better than {limit}")
            else:
                own = book.bids if o.side is Side.BUY else book.asks
                o.queue_ahead = own.get(limit, ZERO)
                self.rest(o, ts, ts)
            return self.result(o)
        # bars
        marketable = o.is_market or (
            best_opp is not None
            and ((o.side is Side.BUY and limit >= best_opp) or (o.side is Side.SELL and limit <= best_opp))
        )
        if marketable:
            o.stage = BAR_TAKER
            self.orders.add(self.orders.bar_takers, o)
            self.active.add(t)
            self.update(o, OrderStatus.OPEN, ts, o.reason)
        else:
            self.rest(o, ts, o.arrive_ns)
        return self.result(o)

    def rest(self, o: SimOrder, ts: int, rest_ns: int) -> None:
        """Put ``o`` on the book as a maker from ``rest_ns`` (ns; bar fills never look back)."""
        o.stage = RESTING
        o.rest_ns = rest_ns
        self.orders.add(self.orders.resting, o)
        self.active.add(o.ticker)
        if o.expire_ns:
            self.recompute_expiry()
        self.update(o, OrderStatus.PARTIALLY_FILLED if o.filled else OrderStatus.OPEN, ts, o.reason)

    # -- conditional orders ------------------------------------------------------------------------

    def trigger_price(self, ticker: str) -> Decimal | None:
        """Oracle price, else the last trade (or bar close), else the mid, USD."""
        st = self.view.state(ticker)
        if st is None:
            m = self.view.market(ticker)
            return m.oracle_price if m is not None else None
        if st.oracle_price is not None:
            return st.oracle_price
        if st.last_price is not None:
            return st.last_price
        return st.mid()

    def check_triggers(self, ticker: str, ts: int) -> None:
        """Execute the untriggered orders of ``ticker`` whose trigger price is reached."""
        px = self.trigger_price(ticker)
        if px is None or px == self.trigger_px.get(ticker):
            return
        self.trigger_px[ticker] = px
        for o in list(self.orders.conditionals.get(ticker, ())):
            if o.stage == UNTRIGGERED and o.trigger_hit(px):
                self.orders.unindex(o)
                o.triggered = True
                o.stage = PENDING
                o.arrive_ns = max(o.arrive_ns, ts)  # acts from now on (bar fills never look back)
                o.reason = f"triggered at {px}"
                self.execute(o, ts)
        self.refresh_active(ticker)

    # -- timed work ----------------------------------------------------------------------------------

    def arrivals(self, ts: int) -> None:
        """Requests that reached the book by ``ts`` (ns): activate placed orders, apply cancels."""
        pending = self.orders.pending
        while pending and pending[0][0] <= ts:
            _, kind, obj = pending.popleft()
            if kind == "place":
                if obj.stage == PENDING:
                    self.activate(obj, ts)
            else:
                o = self.orders.by_id.get(obj)
                if o is not None:
                    self.finish(o, OrderStatus.CANCELED, ts, "canceled by request")

    def expire(self, ts: int) -> None:
        """Expire resting and untriggered orders whose good-til time is at or before ``ts`` (ns)."""
        if self.orders.next_expiry_ns and ts >= self.orders.next_expiry_ns:
            for o in list(self.orders.by_id.values()):
                if o.expire_ns and o.expire_ns <= ts and o.stage in (RESTING, UNTRIGGERED):
                    self.finish(o, OrderStatus.EXPIRED, ts, f"good-til time reached ({o.good_til_s} s)")
            self.recompute_expiry()
