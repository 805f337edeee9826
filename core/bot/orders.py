"""The order path: size, risk-check, announce, send; cancel, close, cancel-all; risk escalations.

An intent (:class:`~perpbot.core.model.OrderParams`) is sized by the position sizer (when
it has no size), rounded to the market's step and tick, checked by every risk policy,
announced to ``on_order_submit`` (the journal records the intent first: a failure there
blocks the order) and sent. Risk decisions that are not approvals are logged, announced
(``on_risk_action``) and carried out here (REDUCE, REJECT, CLOSE_WORST, CLOSE_ALL, HALT).
Imports only :mod:`perpbot.core` modules.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
from loguru import logger

from perpbot.core.bot.decisions import cycle_snapshot
from perpbot.core.records import plain_maker
from perpbot.core.config import split_ticker
from perpbot.core.errors import ExchangeError, PerpbotError
from perpbot.core.model import (
    OrderInfo,
    OrderParams,
    OrderRequest,
    OrderResult,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from perpbot.core.model.enums import BUY, PENDING, SELL
from perpbot.core.policies import APPROVE, RiskAction, RiskDecision, SizingView
from perpbot.core.signals.scores import Scores
from perpbot.core.state import MarketData
from perpbot.core.strategy import StrategyResult


#: ``OrderInfo(**fields)`` without ``__init__`` (a frozen class storing its fields as given)
_make_order_info = plain_maker(OrderInfo)


def sizing_score(scores: Any) -> Decimal | None:
    """The strategy's conviction a sizer sees (``SizingView.score``, 0-100): the market's
    ``scores.composite`` rounded to 4 decimals, or None when there are no scores or no
    strategy has scored the market (``composite`` raises AttributeError then,
    ``core/signals/scores.py``).

    For :class:`~perpbot.core.signals.scores.Scores` itself (not a subclass) its
    ``strategy_composite`` field is read directly: the value ``composite`` returns, without
    the AttributeError it raises while the field is None.
    """
    if scores is None:
        return None
    if type(scores) is Scores:
        composite = scores.strategy_composite
    else:
        composite = getattr(scores, "composite", None)
    return Decimal(str(round(composite, 4))) if composite is not None else None


class OrderRouter:
    """Sends, cancels and closes orders for the bot, and carries out risk escalations.

    :param bot: the :class:`~perpbot.core.bot.TradingBot`: reads its markets, states,
        portfolios, sizer, risk chain and balance managers; updates ``open_orders``,
        ``orders``, the order counters and ``risk_log``.
    :param account: the :class:`~perpbot.core.bot.account.AccountEvents` drained after
        each placement and cancel-all (a simulator answers with events at once).
    """

    def __init__(self, bot: Any, account: Any):
        self.bot = bot
        self.account = account

    async def execute_result(self, result: StrategyResult, md: MarketData, *, tail: str | None = None) -> None:
        """Carry out a strategy's decision: cancels, closes, then new orders (in that order).

        :param tail: text appended to each new order's reason (the wake-up that decided it,
            ``[woken by ...]``); None: the reasons as the strategy wrote them.
        """
        bot = self.bot
        for item in result.cancels:
            cid, ticker = item if isinstance(item, tuple) else (item, None)
            await self.cancel_order(int(cid), ticker)
        origin = f"strategy {bot.config.strategy}"
        for ticker in result.close:
            await self.close_position(ticker, result.reason or "strategy close", origin=origin)
        for intent in result.orders:
            await self.submit(intent, md, origin=origin, tail=tail)

    async def cancel_order(self, client_id: int, ticker: str | None = None) -> OrderResult | None:
        """Cancel one order by client id (``ticker``: qualified; default: the open-order table's).

        :returns: the exchange's answer, or None when the order is unknown or the exchange
            raised :class:`~perpbot.core.errors.ExchangeError` (logged).
        """
        bot = self.bot
        info = bot.open_orders.get(client_id)
        qualified = ticker or (info.ticker if info else None)
        if qualified is None:
            logger.warning(f"cancel of unknown order {client_id} skipped")
            return None
        venue, t = bot.venue_and_ticker(qualified)
        try:
            res = await bot.exchanges[venue].cancel_order(client_id, t)
        except ExchangeError as exc:
            logger.error(f"cancel {client_id} on {venue} failed: {exc}")
            return None
        if res.success:
            bot.open_orders.pop(client_id, None)
        await bot.notify("on_order_cancel", client_id=client_id, ticker=qualified, result=res)
        return res

    def reference_price(self, qualified: str, side: Side) -> Decimal | None:
        """The price an order of ``side`` would pay now (USD): best ask to buy, best bid to sell,
        else the mark; None when the market has no price yet."""
        st = self.bot.states.get(qualified)
        if st is None:
            return None
        bid, ask = st.best_bid_offer()
        px = ask if side is BUY else bid
        return px if px is not None else st.mark_price()

    async def _size(self, intent: OrderParams, origin: str, qualified: str, venue: str, ticker: str, ref: Decimal):
        """Size an intent without a size through the sizer; returns the rounded size or None (logged)."""
        bot = self.bot
        market = bot.markets[qualified]
        snap = cycle_snapshot(bot)  # the account as the cycle read it, while no order changed it
        raw = snap.venue_positions.get(venue) if snap is not None else None
        if raw is not None:  # the portfolio's positions and marks, read once for the cycle
            pos = raw.get(ticker)
            vm = snap.venue_marks[venue]
        else:
            pos = bot.portfolios[venue].positions.get(ticker)
        score = sizing_score(bot.states[qualified].scores)
        manager = bot.balance_managers[venue]
        try:
            def view(balance):
                if raw is not None:  # Portfolio.open_positions() and bot.venue_marks(venue), from the snapshot
                    positions, marks = {t: p for t, p in raw.items() if p.size != 0}, dict(vm)
                else:
                    positions, marks = bot.portfolios[venue].open_positions(), bot.venue_marks(venue)
                return SizingView(
                    market=market,
                    price=ref,
                    balance=balance,
                    position=pos,
                    positions=positions,
                    marks=marks,
                    now_ns=bot.clock.now_ns(),
                    score=score,
                )

            # manager.get() without its coroutine while the cached balance is fresh (the usual case)
            balance = manager.cached if manager.is_fresh() else await manager.get()
            sizing = bot.sizer.size(intent, view(balance))
            if sizing.notional >= manager.large_order_usd and manager.age_s() != 0:
                # a large order: size again on a balance fetched just now (seed 004)
                sizing = bot.sizer.size(intent, view(await manager.refresh()))
        except ExchangeError as exc:  # before PerpbotError, its base
            bot.orders_rejected += 1
            logger.error(f"{origin}: {intent.side.value} {qualified} not sized: balance fetch from {venue} failed: {exc}")
            return None
        except PerpbotError as exc:
            bot.orders_rejected += 1
            logger.warning(f"{origin}: sizer {bot.config.sizer} refused {intent.side.value} {qualified}: {exc}")
            return None
        size = market.round_size(sizing.quantity)
        if size < market.min_order_size:
            logger.info(
                f"{origin}: {intent.side.value} {qualified} skipped: {sizing.reason} (size {size} < min {market.min_order_size})"
            )
            return None
        return size

    async def submit(
        self, intent: OrderParams, md: MarketData | None = None, *, risk_exempt: bool = False, origin: str | None = None,
        tail: str | None = None,
    ) -> OrderResult | None:
        """Size, risk-check, announce and send one order intent.

        :param intent: the order; ``size`` None means "let the sizer decide" (base units otherwise).
        :param md: the market view the intent was decided on (unused by the default path).
        :param risk_exempt: skip the risk chain and the halt (closes and flattening orders).
        :param origin: who asked for the order, named in every log line that drops it
            (default: ``"strategy <name>"``, or ``"bot"`` for a risk-exempt order).
        :param tail: text appended to the request's reason after a space (the reason is the
            tail alone when the intent has none); None: the intent's reason.
        :returns: the exchange's :class:`~perpbot.core.model.OrderResult`, or None when the
            sizer or the risk chain dropped the order (with a logged reason).
        """
        bot = self.bot
        if origin is None:
            origin = "bot" if risk_exempt else f"strategy {bot.config.strategy}"
        if bot.halted and not risk_exempt:
            bot.orders_rejected += 1
            logger.warning(f"{origin}: order on {intent.ticker} dropped: the bot is halted ({bot.halted})")
            return None
        qualified = intent.ticker if intent.venue is None else bot.qualify(intent.venue, split_ticker(intent.ticker)[1])
        if qualified not in bot.markets:
            bot.orders_rejected += 1
            logger.error(
                f"{origin}: order on unknown market {qualified!r} dropped (markets of this run: {', '.join(bot.markets)})"
            )
            return None
        venue, ticker = bot.venue_and_ticker(qualified)
        market = bot.markets[qualified]
        ref = intent.price or self.reference_price(qualified, intent.side)
        if ref is None:
            logger.warning(f"{origin}: order on {qualified} dropped: no price yet")
            return None
        if intent.size is None:
            size = await self._size(intent, origin, qualified, venue, ticker, ref)
            if size is None:
                return None
        else:
            size = market.round_size(intent.size)
            if size < market.min_order_size:
                bot.orders_rejected += 1
                logger.warning(
                    f"{origin}: {intent.side.value} {qualified} rejected: size {intent.size} below minimum "
                    f"{market.min_order_size} (step {market.step_size}); not raised silently"
                )
                return None
        if bot.entries_paused and not risk_exempt and not self.is_exit(venue, ticker, intent, size):
            bot.orders_rejected += 1
            logger.info(f"{origin}: {intent.side.value} {size} {qualified} dropped: new entries are paused "
                        f"({bot.entries_paused})")
            return None
        price = intent.price
        if price is not None:
            price = market.round_price(price, intent.side)
        # OrderRequest.from_params(intent, client_id, size) with the venue's ticker, the rounded
        # prices and the venue, built in one go
        req = OrderRequest(
            client_id=bot.client_ids.next(),
            ticker=ticker,
            side=intent.side,
            size=size,
            order_type=intent.order_type,
            price=price,
            trigger_price=(market.round_price(intent.trigger_price, intent.side) if intent.trigger_price else None),
            time_in_force=intent.time_in_force,
            reduce_only=intent.reduce_only,
            post_only=intent.post_only,
            good_til_s=intent.good_til_s,
            margin_mode=intent.margin_mode,
            tag=intent.tag,
            reason=intent.reason if tail is None else (f"{intent.reason} {tail}" if intent.reason else tail),
            venue=venue,
            slippage=intent.slippage,
        )
        if not risk_exempt:
            view = bot.risk_view()
            for policy in bot.risk_chain:
                decision = policy.check_order(req, view)
                if decision is APPROVE or decision.approved:  # APPROVE: the usual answer, no property call
                    continue
                decision = attrs.evolve(decision, policy=decision.policy or policy.name, ticker=qualified, ts_ns=bot.clock.now_ns())
                if decision.action is RiskAction.REDUCE and decision.size is not None:
                    new_size = market.round_size(decision.size)
                    await self.handle_risk(decision, policy)
                    if new_size < market.min_order_size:
                        bot.orders_rejected += 1
                        return None
                    req = attrs.evolve(req, size=new_size)
                    continue
                await self.handle_risk(decision, policy)
                bot.orders_rejected += 1
                return None
        return await self.send(venue, req)

    def is_exit(self, venue: str, ticker: str, intent: OrderParams, size: Decimal) -> bool:
        """True when an order only reduces exposure: reduce-only, or on the opposite side of the
        venue's position in ``ticker`` and no larger than it (base units). While entries are paused
        (:mod:`perpbot.core.bot.control`) only such orders go out."""
        if intent.reduce_only:
            return True
        pf = self.bot.portfolios.get(venue)
        pos = pf.positions.get(ticker) if pf is not None else None
        if pos is None or not pos.size:
            return False
        opposite = (pos.size > 0) == (intent.side is SELL)
        return opposite and size <= abs(pos.size)

    async def send(self, venue: str, req: OrderRequest) -> OrderResult:
        """Announce (``on_order_submit``, awaited), record and place a sized request on ``venue``.

        :returns: the exchange's result; a REJECTED result when ``on_order_submit`` failed
            (the order is then not sent) or the exchange raised
            :class:`~perpbot.core.errors.ExchangeError`.
        """
        bot = self.bot
        try:
            await bot.notify("on_order_submit", order=req)
        except Exception as exc:
            bot.orders_rejected += 1
            logger.error(f"order {req.client_id} not sent: on_order_submit failed: {exc}")
            return OrderResult(False, req.client_id, req.ticker, OrderStatus.REJECTED, error=f"not journaled: {exc}")
        bot.orders[req.client_id] = req
        bot.orders_sent += 1
        bot.last_activity_ns = bot.clock.now_ns()
        qualified = bot.qualify(venue, req.ticker)
        bot.open_orders[req.client_id] = _make_order_info(  # OrderInfo(...): fields stored as given
            client_id=req.client_id,
            ticker=qualified,
            side=req.side,
            size=req.size,
            price=req.price,
            status=PENDING,
            order_type=req.order_type,
            reduce_only=req.reduce_only,
            post_only=req.post_only,
            time_in_force=req.time_in_force,
            tag=req.tag,
            created_ns=bot.clock.now_ns(),
            venue=venue,
        )
        try:
            result = await bot.exchanges[venue].place_order(req)
        except ExchangeError as exc:
            result = OrderResult(False, req.client_id, req.ticker, OrderStatus.REJECTED, error=str(exc))
        if self.account.pending:
            await self.account.drain()
        if not result.success:
            bot.orders_rejected += 1
            bot.consecutive_failures += 1
            bot.open_orders.pop(req.client_id, None)
            logger.bind(market=qualified, client_id=req.client_id).warning(
                f"order {req.client_id} {req.side.value} {req.size} {qualified} rejected: {result.error}"
            )
        else:
            bot.consecutive_failures = 0
            info = bot.open_orders.get(req.client_id)
            if info is not None:
                if result.status.is_terminal:
                    bot.open_orders.pop(req.client_id, None)
                elif info.status is PENDING:
                    bot.open_orders[req.client_id] = attrs.evolve(info, status=result.status)
            logger.bind(market=qualified, client_id=req.client_id).info(
                f"order {req.client_id} {req.side.value} {req.size} {qualified} {req.order_type.value}"
                + (f" @ {req.price}" if req.price is not None else "")
                + f": {result.status.value}"
                + (f", filled {result.filled_size}" + (f" @ {result.avg_price}" if result.avg_price is not None else "") if result.filled_size else "")
                + (f" — {req.reason}" if req.reason else "")
            )
        view = None
        for policy in bot.risk_chain:
            if view is None:
                view = bot.risk_view()
            policy.on_order_result(result.success, result.error, view)
        await bot.notify("on_order_result", order=req, result=result)
        return result

    # -- risk escalations ------------------------------------------------------

    def halt(self, reason: str, *, source: str = "") -> None:
        """Halt the bot (see :meth:`perpbot.core.bot.TradingBot.halt`); the first reason wins."""
        bot = self.bot
        if bot.halted:
            return
        bot.halted = reason
        bot.risk_log.append(RiskDecision(RiskAction.HALT, reason, policy=source, ts_ns=bot.clock.now_ns()))
        logger.error(f"HALT{f' by {source}' if source else ''}: {reason}")
        bot.request_stop(f"HALT: {reason}")

    async def handle_risk(self, decision: RiskDecision, policy: Any = None) -> None:
        """Record, log, announce (``on_risk_action``) and carry out a risk decision that is not an approval.

        CLOSE_WORST closes ``decision.ticker`` (or the position with the lowest unrealized
        PnL); CLOSE_ALL cancels every open order and closes every position; HALT cancels every
        open order, sets ``bot.halted`` and stops the loop. REDUCE/REJECT are only recorded
        here (the caller resizes or drops the order).
        """
        bot = self.bot
        if not decision.policy and policy is not None:
            decision = attrs.evolve(decision, policy=policy.name)
        if not decision.ts_ns:
            decision = attrs.evolve(decision, ts_ns=bot.clock.now_ns())
        bot.risk_log.append(decision)
        level = "WARNING" if decision.action in (RiskAction.REDUCE, RiskAction.REJECT) else "ERROR"
        logger.log(level, f"risk {decision.policy}: {decision.action.value}"
                   + (f" {decision.ticker}" if decision.ticker else "") + f" — {decision.reason}")
        await bot.notify("on_risk_action", decision=decision)
        origin = f"risk policy {decision.policy}"
        if decision.action is RiskAction.CLOSE_WORST:
            worst = decision.ticker if decision.ticker in bot.positions() else self.worst_position()
            if worst is not None:
                await self.close_position(worst, f"risk {decision.policy}: {decision.reason}", origin=origin)
        elif decision.action is RiskAction.CLOSE_ALL:
            await self.cancel_all()
            for t in list(bot.positions()):
                await self.close_position(t, f"risk {decision.policy}: {decision.reason}", origin=origin)
        elif decision.action is RiskAction.HALT:
            await self.cancel_all()
            bot.halted = f"{decision.policy}: {decision.reason}"
            bot.request_stop(f"HALT by risk policy {bot.halted}")

    def worst_position(self) -> str | None:
        """The qualified ticker of the open position with the lowest unrealized PnL at the mark
        (positions without a mark are skipped), or None."""
        bot = self.bot
        marks = bot.marks()
        worst, worst_pnl = None, None
        for t, p in bot.positions().items():
            mark = marks.get(t)
            if mark is None:
                continue
            pnl = p.unrealized_pnl(mark)
            if worst_pnl is None or pnl < worst_pnl:
                worst, worst_pnl = t, pnl
        return worst

    async def close_position(self, qualified: str, reason: str, *, origin: str = "bot") -> OrderResult | None:
        """Close a position with a reduce-only IOC market order (exempt from risk checks and the halt).

        :returns: the order's result, or None when there is no position (or it was dropped).
        """
        pos = self.bot.positions().get(qualified)
        if pos is None or pos.size == 0:
            return None
        side = Side.SELL if pos.size > 0 else Side.BUY
        intent = OrderParams(
            ticker=qualified,
            side=side,
            order_type=OrderType.MARKET,
            size=abs(pos.size),
            time_in_force=TimeInForce.IOC,
            reduce_only=True,
            tag="close",
            reason=reason,
        )
        return await self.submit(intent, risk_exempt=True, origin=origin)

    async def cancel_all(self) -> None:
        """Cancel every open order of this bot (its own and the ones reconciliation adopted).

        Orders on the account that the bot did not place are left alone, as reconciliation
        leaves them. A cancel the exchange refuses or does not confirm is logged and the
        order stays in ``open_orders``.
        """
        bot = self.bot
        for cid, info in list(bot.open_orders.items()):
            venue, t = bot.venue_and_ticker(info.ticker)
            ex = bot.exchanges.get(info.venue or venue) or bot.exchanges[venue]
            try:
                res = await ex.cancel_order(cid, t)
            except ExchangeError as exc:
                logger.error(f"cancel {cid} on {venue} failed: {exc}")
                continue
            if res.success or res.status.is_terminal:
                bot.open_orders.pop(cid, None)
            else:
                logger.warning(f"cancel {cid} on {venue} not confirmed: {res.error or res.status.value}")
            await bot.notify("on_order_cancel", client_id=cid, ticker=info.ticker, result=res)
        if self.account.pending:
            await self.account.drain()
