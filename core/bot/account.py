"""Account events: fills, order updates, funding and liquidations from the exchanges.

Exchanges push account events into a queue (:meth:`AccountEvents.sink`); the bot drains it
between batches. Each event is booked into the venue's portfolio and the open-order table,
shown to the strategy, then broadcast to observer hooks, in that order. Imports only
:mod:`perpbot.core` modules.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs
from loguru import logger

from perpbot.core.balance import BalanceManager
from perpbot.core.model import CollateralTransfer, Fill, FundingPayment, Liquidation, OrderStatus, OrderUpdate
from perpbot.core.portfolio import Portfolio


class AccountEvents:
    """Books the exchanges' account events into the bot and announces them.

    :param bot: the :class:`~perpbot.core.bot.TradingBot`: its ``portfolios``,
        ``open_orders``, ``ledger``, ``last_fill_ns``/``last_activity_ns`` are updated here.
    :param strategy_calls: the :class:`~perpbot.core.bot.calls.StrategyCalls` showing
        events to the strategy.
    """

    def __init__(self, bot: Any, strategy_calls: Any):
        self.bot = bot
        self.strategy_calls = strategy_calls
        #: (venue, event) pairs received and not yet processed
        self.pending: list = []
        #: venues whose portfolio is the exchange's own ledger (``account_ledger()``): their
        #: fills, funding and liquidation fees are already booked there and never booked again
        self.ledger_venues: set[str] = set()

    async def load(self) -> None:
        """Load each venue's balance and positions into a new portfolio, and make its balance cache.

        Sets ``bot.portfolios`` (venue -> :class:`~perpbot.core.portfolio.Portfolio` with the
        exchange's collateral, USD, and positions; or, for an exchange that books its own
        account, the read-only ledger of its ``account_ledger()``, used as is), ``bot.portfolio`` (the primary venue's) and
        ``bot.balance_managers`` (venue -> :class:`~perpbot.core.balance.BalanceManager`).
        """
        bot = self.bot
        self.ledger_venues.clear()
        for venue, ex in bot.exchanges.items():
            # optional (BaseExchangeClient's default is None); duck-typed clients may lack it
            ledger = getattr(ex, "account_ledger", lambda: None)()
            if ledger is not None:
                # the exchange books its own account (a simulator): one ledger, read here
                bot.portfolios[venue] = ledger
                self.ledger_venues.add(venue)
                continue
            bal = await ex.get_balance()
            pf = Portfolio(bal.collateral, ex.markets())
            for t, pos in (await ex.get_positions()).items():
                pf.positions[t] = pos
            bot.portfolios[venue] = pf
        bot.portfolio = bot.portfolios[bot.config.primary_venue]
        bot.balance_managers = {
            venue: BalanceManager(
                ex.get_balance,
                bot.clock,
                ttl_s=float(bot.config.balance_ttl_s),
                large_order_usd=bot.config.large_order_usd,
            )
            for venue, ex in bot.exchanges.items()
        }

    def sink(self, venue: str) -> Callable[[Any], None]:
        """The callback given to ``exchange.set_event_sink`` for ``venue`` (queues, never blocks)."""
        pending = self.pending
        return lambda ev: pending.append((venue, ev))

    async def drain(self) -> None:
        """Process every queued event (and those queued meanwhile), in arrival order."""
        while self.pending:
            batch = list(self.pending)
            self.pending.clear()
            for venue, ev in batch:
                await self.on_event(venue, ev)

    def book_fill(self, venue: str, fill: Fill) -> None:
        """Book a fill into the venue's portfolio, the trade ledger and the open-order table (no hooks).

        A venue whose portfolio is the exchange's own ledger (:attr:`ledger_venues`) already
        holds the fill there: only the trade ledger, open orders and last-fill times are updated.

        :param venue: the venue name (``fill.ticker`` is that venue's unqualified ticker).
        :param fill: the :class:`~perpbot.core.model.Fill` (price USD, size base units, fee USD).
        :raises KeyError: ``venue`` is not a venue of this run.
        """
        bot = self.bot
        pf = bot.portfolios[venue]
        if venue not in self.ledger_venues:
            pf.apply_fill(fill)
        bot.last_fill_ns = fill.ts_ns
        bot.last_activity_ns = fill.ts_ns
        info = bot.open_orders.get(fill.client_id)
        bot.ledger.add_fill(
            venue, fill.ticker, fill.side.value, fill.price, fill.size, fill.fee, fill.ts_ns,
            tag=(info.tag if info is not None and info.tag else fill.tag), strategy=bot.config.strategy,
        )
        if info is not None:
            filled = info.filled_size + fill.size
            if filled >= info.size:
                bot.open_orders.pop(fill.client_id, None)
            else:
                bot.open_orders[fill.client_id] = attrs.evolve(
                    info, filled_size=filled, status=OrderStatus.PARTIALLY_FILLED
                )

    def qualified(self, venue: str, ev: Any) -> Any:
        """``ev`` with its ticker qualified by ``venue`` (``binance:BTC-USD``) and ``venue`` set;
        unchanged for the primary venue."""
        if venue == self.bot.config.primary_venue:
            return ev
        return attrs.evolve(ev, ticker=self.bot.qualify(venue, ev.ticker), venue=venue)

    async def on_event(self, venue: str, ev: Any) -> None:
        """Book one account event of ``venue``, show it to the strategy, then to observers.

        Fills -> ``on_fill``; order updates -> ``on_order_update`` (a terminal status removes
        the order from ``open_orders``); funding -> ``on_funding_payment``; liquidations ->
        ``on_liquidation`` (the liquidation fee is charged to the portfolio). Other types are
        logged at debug level and ignored. For a venue in :attr:`ledger_venues` nothing is
        booked into its portfolio (the exchange's ledger already holds the event).
        """
        bot = self.bot
        t = type(ev)
        if t is Fill:
            self.book_fill(venue, ev)
            ev = self.qualified(venue, ev)
            self.strategy_calls.call("on_fill", ev)
            await bot.notify("on_fill", fill=ev)
        elif t is OrderUpdate:
            info = bot.open_orders.get(ev.client_id)
            if ev.status.is_terminal:
                bot.open_orders.pop(ev.client_id, None)
            elif info is not None:
                bot.open_orders[ev.client_id] = attrs.evolve(
                    info, status=ev.status, filled_size=max(info.filled_size, ev.filled_size)
                )
            ev = self.qualified(venue, ev)
            self.strategy_calls.call("on_order_update", ev)
            await bot.notify("on_order_update", update=ev)
        elif t is FundingPayment:
            if venue not in self.ledger_venues:
                bot.portfolios[venue].apply_funding(ev)
            bot.ledger.add_funding(ev.amount, bot.config.strategy)
            ev = self.qualified(venue, ev)
            self.strategy_calls.call("on_funding_payment", ev)
            await bot.notify("on_funding_payment", payment=ev)
        elif t is Liquidation:
            if venue not in self.ledger_venues:
                bot.portfolios[venue].charge(ev.fee, ev.ticker, liquidation_fee=True)
            logger.warning(
                f"LIQUIDATED {ev.ticker} on {venue}: {ev.size} at {ev.price}, fee {ev.fee} USD ({ev.reason})"
            )
            await bot.notify("on_liquidation", liquidation=ev)
        elif t is CollateralTransfer:  # the venue's own ledger moves; nothing to book here
            await bot.notify("on_collateral_transfer", transfer=ev)
        else:
            logger.debug(f"ignored account event {t.__name__} from {venue}")
