"""Fills of the paper exchange: takers against the L2 book, makers on trades, book moves and bars.

Book data:

- A taker (market order, or the marketable part of a limit order) walks the L2 book level by
  level at the levels' prices, up to its limit / worst price; the liquidity it takes is
  remembered per level (and forgotten when the level's size changes), so the same liquidity
  is never taken twice from one book state. What cannot fill at once is canceled (IOC).
- A resting (maker) order fills at its own price when a public trade prints strictly THROUGH
  it (up to that trade's size), when a trade prints AT its price after the volume ahead of it
  in the queue has traded (``queue_position``; the queue starts as the visible size at that
  price and only shrinks: trades at the price and level-size decreases clamp it, never grow
  it), or when the opposite side of the book moves through its price (the crossing liquidity,
  taken once). Crossed input books do not fill makers.
- Every fill re-checks the collateral rule at its own price; a failing fill stops the order
  (chain: the match fails and the order is removed as undercollateralized).

Bar-only data (``bar_fill_model = "conservative"``; ``Bar.ts_ns`` is the close time):

- Market orders (and limit orders marketable against the last close) wait for the next bar
  that starts at or after the order's arrival, and fill there at ``open + (high - low) / 2``
  for buys (``open - (high - low) / 2`` for sells), clamped to the bar's range and rounded to
  the tick against the trader. Beyond the worst price (or the limit) an IOC order is canceled;
  a limit order then rests.
- A resting limit buy fills at its limit price only when a later bar's low is strictly below
  it, for at most the bar's volume; sells when the high is strictly above. Touching the price
  is not a fill. Bars that started before the order arrived never fill it.

Fees come from the :class:`~perpbot.exchanges.paper.fees.FeeSchedule` (maker or taker rate of
the account's tier). Order status changes go through the coordinator's ``finish`` and
``update`` callables, so that fills and order updates are emitted in the order they happen.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, Iterator

from perpbot.core.exchange import MarketView
from perpbot.core.model import ZERO, Bar, Fill, Liquidity, OrderStatus, Side, Trade, ceil_to, floor_to
from perpbot.exchanges.paper.fees import FeeSchedule
from perpbot.exchanges.paper.orders import BAR_TAKER, RESTING, OrderTable, SimOrder
from perpbot.exchanges.paper.rules import fmt_usd
from perpbot.exchanges.paper.subaccounts import Accounts, Subaccount

NS = 1_000_000_000
#: remembered consumed levels per market before the stale ones are pruned
CONSUMED_PRUNE_AT = 512


def data_mode(st: Any, book: Any) -> str | None:
    """``"book"`` when a usable L2 book exists (a snapshot arrived), ``"bars"`` for bar-only data
    with a last close, else None.

    :param st: the market's :class:`~perpbot.core.state.MarketState` or None.
    :param book: its :class:`~perpbot.core.book.OrderBook` or None.
    """
    if book is not None and (book.bids or book.asks) and (st is None or st.book_ready):
        return "book"
    if st is not None and st.bar_feed and st.last_price is not None:
        return "bars"
    return None


#: ``finish(order, status, ts_ns, reason="")``: terminal state, remove the order everywhere and
#: emit its ``OrderUpdate``; ``update(order, status, ts_ns, reason="")``: set and emit its status
StatusChange = Callable[..., None]


class Matcher:
    """Fills orders against the view's books, trades and bars (see the module docs).

    :param view: the bot's read-only market view.
    :param accounts: the subaccounts fills are booked into.
    :param orders: the live orders (resting and bar-taker indexes).
    :param fees: the fee schedule (rates by tier; volume is recorded per fill).
    :param finish: the coordinator's terminal status change (:data:`StatusChange`).
    :param update: the coordinator's non-terminal status change (:data:`StatusChange`).
    :param emit: hands each :class:`~perpbot.core.model.Fill` to the bot.
    :param venue: the venue name put on fills.
    :param queue_position: model the queue ahead of a resting order (``queue_position``).

    ``consumed``: ticker -> ``{(is_ask, price): (level size seen, size taken)}``, the
    liquidity already taken from the current book state.
    """

    def __init__(
        self,
        view: MarketView,
        accounts: Accounts,
        orders: OrderTable,
        fees: FeeSchedule,
        finish: StatusChange,
        update: StatusChange,
        emit: Callable[[Any], None],
        venue: str,
        queue_position: bool,
    ):
        self.view = view
        self.accounts = accounts
        self.orders = orders
        self.fees = fees
        self.finish = finish
        self.update = update
        self.emit = emit
        self.venue = venue
        self.queue_position = queue_position
        self.consumed: dict[str, dict] = {}

    # -- the book's liquidity -------------------------------------------------------

    def levels(self, o: SimOrder, book: Any, limit: Decimal) -> Iterator[tuple[Decimal, Decimal]]:
        """Opposite-side levels ``(price USD, available base units)`` up to ``limit`` (inclusive),
        best first, net of liquidity this simulator already took from them."""
        consumed = self.consumed.get(o.ticker)
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

    def consume(self, ticker: str, is_ask: bool, price: Decimal, level_size: Decimal, qty: Decimal) -> None:
        """Remember that ``qty`` was taken from the level ``price`` of size ``level_size``."""
        c = self.consumed.get(ticker)
        if c is None:
            c = self.consumed[ticker] = {}
        key = (is_ask, price)
        rec = c.get(key)
        if rec is not None and rec[0] == level_size:
            c[key] = (level_size, rec[1] + qty)
        else:
            c[key] = (level_size, qty)
        if len(c) > CONSUMED_PRUNE_AT:
            self.prune(ticker)

    def prune(self, ticker: str) -> None:
        """Forget consumed levels whose size has changed since (or all, without a book)."""
        book = self.view.book(ticker)
        c = self.consumed.get(ticker) or {}
        if book is None:
            c.clear()
            return
        for (is_ask, p), (size, _) in list(c.items()):
            if (book.asks if is_ask else book.bids).get(p) != size:
                del c[(is_ask, p)]

    def expected_cost(
        self, o: SimOrder, mode: str, book: Any, limit: Decimal, ref: Decimal | None, ts: int
    ) -> tuple[Decimal, Decimal, Decimal]:
        """What ``o`` is expected to trade if it fills: ``(base units, notional USD, fee USD)``.

        Book: the takeable levels up to ``limit`` (taker fee), plus the rest at ``limit`` (maker
        fee) unless IOC. Bars: everything at ``ref`` (the last close) for a market order, else at
        ``limit``.
        """
        qty, notional, fee = ZERO, ZERO, ZERO
        remaining = o.remaining
        if mode == "book":
            if not o.post_only:
                for price, avail in self.levels(o, book, limit):
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
        return qty, notional, fee

    # -- fills --------------------------------------------------------------------------

    def take(self, o: SimOrder, sub: Subaccount, book: Any, limit: Decimal, ts: int) -> str | None:
        """Fill ``o`` as taker against the book up to ``limit``. Returns a stop reason or None."""
        is_ask = o.side is Side.BUY
        levels = book.asks if is_ask else book.bids
        for price, avail in self.levels(o, book, limit):
            qty = min(o.remaining, avail)
            done, stop = self.fill(o, sub, price, qty, False, ts)
            if done:
                self.consume(o.ticker, is_ask, price, levels[price], done)
            if stop:
                return stop
            if o.remaining <= 0:
                break
        return None

    def fill(self, o: SimOrder, sub: Subaccount, price: Decimal, qty: Decimal, maker: bool, ts: int) -> tuple[Decimal, str | None]:
        """Execute one fill of ``qty`` base units of ``o`` at ``price`` USD if the collateral rule
        allows it: book it, record the fee volume, emit the ``Fill``.

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
        chk = self.accounts.margin_check(sub, t, signed, price, fee)
        if not chk.accepted:
            return ZERO, (
                f"undercollateralized at fill ({o.side.value} {qty} {t} at {price}): initial margin required "
                f"{fmt_usd(chk.required)} USD, available {fmt_usd(chk.available)} USD"
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
            fill_id=self.accounts.next_fill_id(),
            venue=self.venue,
            tag=o.tag,
        )
        self.accounts.book_fill(sub, fill)
        self.fees.record(ts, notional)
        o.filled += qty
        o.notional += notional
        self.emit(fill)
        return qty, None

    def after_fills(self, o: SimOrder, ts: int, stop: str | None) -> None:
        """Status after maker fills: filled, canceled with ``stop``, or partially filled."""
        if o.remaining <= 0:
            self.finish(o, OrderStatus.FILLED, ts)
        elif stop:
            self.finish(o, OrderStatus.CANCELED, ts, stop)
        else:
            self.update(o, OrderStatus.PARTIALLY_FILLED, ts)

    # -- makers: book moves, trades, bars ----------------------------------------------------

    def on_book(self, ticker: str, book: Any, ts: int) -> None:
        """The book of ``ticker`` changed: clamp queue positions, fill makers it moved through."""
        crossed = book.is_crossed()
        queue = self.queue_position
        for o in list(self.orders.resting.get(ticker, ())):
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
            sub = self.accounts.subs[o.sub]
            opp = book.asks if buy else book.bids
            stop = None
            filled_any = False
            for price, avail in self.levels(o, book, o.price):
                if price == o.price and queue and o.queue_ahead > 0:
                    break
                done, stop = self.fill(o, sub, o.price, min(o.remaining, avail), True, ts)
                if done:
                    filled_any = True
                    self.consume(ticker, buy, price, opp[price], done)
                if stop or o.remaining <= 0:
                    break
            if filled_any or stop:
                self.after_fills(o, ts, stop)

    def on_trade(self, ev: Trade, ts: int) -> None:
        """A public trade printed: fill the resting orders it traded through or reached in the queue."""
        lst = self.orders.resting.get(ev.ticker)
        if not lst:
            return
        price = ev.price
        buys = sorted((o for o in lst if o.side is Side.BUY and o.stage == RESTING and price <= o.price), key=lambda o: -o.price)
        sells = sorted((o for o in lst if o.side is Side.SELL and o.stage == RESTING and price >= o.price), key=lambda o: o.price)
        queue = self.queue_position
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
                done, stop = self.fill(o, self.accounts.subs[o.sub], o.price, qty, True, ts)
                avail -= done
                if done or stop:
                    self.after_fills(o, ts, stop)

    def on_bar(self, bar: Bar, ts: int) -> None:
        """A bar closed: fill the bar takers waiting for it, then the resting orders it traded through."""
        t = bar.ticker
        start = bar.ts_ns - bar.interval_s * NS
        takers = self.orders.bar_takers.get(t)
        if takers:
            market = self.view.market(t)
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
                    done, stop = self.fill(o, self.accounts.subs[o.sub], px, o.remaining, False, ts)
                    if o.remaining <= 0:
                        self.finish(o, OrderStatus.FILLED, ts)
                    else:
                        self.finish(o, OrderStatus.CANCELED, ts, stop or f"filled {o.filled} of {o.size}")
                elif o.is_ioc:
                    self.finish(
                        o, OrderStatus.CANCELED, ts,
                        f"IOC: next bar open with half-range slippage {px} is beyond the {'worst' if o.is_market else 'limit'} price {bound}",
                    )
                else:
                    self.orders.unindex(o)
                    o.stage = RESTING
                    o.rest_ns = start
                    self.orders.add(self.orders.resting, o)
        resting = self.orders.resting.get(t)
        if not resting:
            return
        if data_mode(self.view.state(t), self.view.book(t)) != "bars":
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
            done, stop = self.fill(o, self.accounts.subs[o.sub], o.price, qty, True, ts)
            avail[o.side] -= done
            if done or stop:
                self.after_fills(o, ts, stop)
