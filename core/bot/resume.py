"""Checkpoint and resume: the bot's runtime state, and the one door for reconciliation to change it.

:class:`Checkpoints` exports and imports the supervisor's runtime counters (the ``bot``
part of a journal checkpoint). :class:`ResumeAPI` is what the ``reconcile_startup`` hook
receives as ``resume``: every state-changing step a reconciler (the journal plugin,
:mod:`perpbot.plugins.journal.reconcile`) may take before the first decision — reserving
client ids, restoring a checkpoint, adopting or forgetting orders, booking fills made while
the bot was down, restoring the strategy, flattening unknown positions. Imports only
:mod:`perpbot.core` modules.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterable

from perpbot.core.errors import PerpbotError
from perpbot.core.metrics import DrawdownTracker, TradeLedger
from perpbot.core.model import Fill, OrderInfo, OrderParams, OrderResult

#: exported name -> (owner, attribute): "bot" is the TradingBot, "cycle" its decision cycle,
#: "loop" its event loop. The names are those checkpoints have always stored.
STATE_FIELDS = {
    "_next_decision_ns": ("cycle", "next_decision_ns"),
    "_next_snapshot_ns": ("cycle", "next_snapshot_ns"),
    "_next_checkpoint_ns": ("loop", "next_checkpoint_ns"),
    "decisions": ("bot", "decisions"),
    "orders_sent": ("bot", "orders_sent"),
    "orders_rejected": ("bot", "orders_rejected"),
    "consecutive_failures": ("bot", "consecutive_failures"),
    "last_fill_ns": ("bot", "last_fill_ns"),
    "last_activity_ns": ("bot", "last_activity_ns"),
    "start_equity": ("bot", "start_equity"),
    "peak_equity": ("bot", "peak_equity"),
    "day_start_equity": ("bot", "day_start_equity"),
    "_day": ("cycle", "day"),
    "start_ns": ("bot", "start_ns"),
    "events_processed": ("bot", "events_processed"),
    "events_read": ("bot", "events_read"),
    "strategy_errors": ("bot", "strategy_errors"),
}
#: re-counted by the resume warm-up, so never imported
RECOUNTED = ("events_processed", "events_read")


class Checkpoints:
    """Exports and imports the runtime state of one bot.

    :param bot: the :class:`~perpbot.core.bot.TradingBot`.
    :param owners: ``{"bot": bot, "cycle": DecisionCycle, "loop": EventLoop}``.
    """

    def __init__(self, bot: Any, owners: dict):
        self.bot = bot
        self.owners = owners

    def export_state(self) -> dict:
        """The bot's runtime counters as JSON-ready values (Decimals as strings).

        :returns: ``{name: value}`` for every :data:`STATE_FIELDS` name, plus ``drawdown``
            (:meth:`DrawdownTracker.state`), ``ledger`` (:meth:`TradeLedger.state`),
            ``client_id_next`` (int) and ``risk`` (policy name -> its ``get_state()``).
        """
        bot = self.bot
        out = {}
        for name, (owner, attr) in STATE_FIELDS.items():
            v = getattr(self.owners[owner], attr)
            out[name] = str(v) if isinstance(v, Decimal) else v
        out["drawdown"] = bot.drawdown.state()
        out["ledger"] = bot.ledger.state()
        out["client_id_next"] = bot.client_ids.high
        out["risk"] = {
            p.name: p.get_state() for p in bot.risk_chain if callable(getattr(p, "get_state", None))
        }
        return out

    def import_state(self, state: dict) -> None:
        """Restore what :meth:`export_state` returned and mark the bot as resumed.

        Missing names keep their current values; ``events_processed``/``events_read`` are
        re-counted by the warm-up, never imported. Decimal fields are parsed from strings.
        """
        bot = self.bot
        for name, (owner, attr) in STATE_FIELDS.items():
            if name not in state or name in RECOUNTED:
                continue
            target = self.owners[owner]
            cur = getattr(target, attr)
            v = state[name]
            setattr(target, attr, Decimal(v) if isinstance(cur, Decimal) else v)
        if state.get("drawdown"):
            bot.drawdown = DrawdownTracker()
            bot.drawdown.restore(state["drawdown"])
        if state.get("ledger"):
            bot.ledger = TradeLedger()
            bot.ledger.restore(state["ledger"])
        if state.get("client_id_next"):
            bot.client_ids.raise_to(int(state["client_id_next"]))
        for p in bot.risk_chain:
            saved = (state.get("risk") or {}).get(p.name)
            if saved is not None and callable(getattr(p, "restore_state", None)):
                p.restore_state(saved)
        bot.resumed = True


class ResumeAPI:
    """What a reconciler may change in the bot before the first decision (``reconcile_startup``'s ``resume``).

    Read the run through :attr:`view` (the :class:`~perpbot.core.bot.view.RunView`); change it
    only through these methods. Tickers are *qualified* (``binance:BTC-USD``) where a method
    says so, else the venue's own (``BTC-USD``) with the venue given apart.

    :param bot: the :class:`~perpbot.core.bot.TradingBot`.
    :param account: its :class:`~perpbot.core.bot.account.AccountEvents`.
    :param orders: its :class:`~perpbot.core.bot.orders.OrderRouter`.
    :param strategy_calls: its :class:`~perpbot.core.bot.calls.StrategyCalls`.
    :param view: the :class:`~perpbot.core.bot.view.RunViewProxy` observers get (made when not given).
    """

    def __init__(self, bot: Any, account: Any, orders: Any, strategy_calls: Any, view: Any = None):
        self._bot = bot
        self._account = account
        self._orders = orders
        self._strategy_calls = strategy_calls
        from perpbot.core.bot.view import RunViewProxy

        self._view = view if view is not None else RunViewProxy(bot)

    @property
    def view(self) -> Any:
        """The read-only :class:`~perpbot.core.bot.view.RunView` of the run being reconciled
        (the same :class:`~perpbot.core.bot.view.RunViewProxy` observers receive as ``bot``)."""
        return self._view

    # -- client ids and runtime state --------------------------------------------

    def reserve_client_ids(self, ids: Iterable[int]) -> None:
        """Never use these client ids (every id a journal or exchange knows) in this run.

        :raises ValueError: an id that is not an integer.
        """
        self._bot.client_ids.reserve(ids)

    def restore_exchange(self, venue: str, state: dict) -> None:
        """Put a simulator back as a checkpoint saved it (``exchange.import_state(state)``).

        :raises KeyError: ``venue`` is not a venue of this run.
        :raises PerpbotError: that exchange cannot import state (not a simulator).
        """
        ex = self._bot.exchanges[venue]
        importer = getattr(ex, "import_state", None)
        if not callable(importer):
            raise PerpbotError(f"exchange {venue} cannot restore a checkpoint (it has no import_state)")
        importer(state)

    def restore_portfolio(self, venue: str, restore: Any) -> None:
        """Restore the bot's booked account of ``venue``: ``restore(portfolio)`` fills it in place.

        :param restore: a function of the venue's :class:`~perpbot.core.portfolio.Portfolio`
            (e.g. :func:`perpbot.plugins.journal.state.restore_portfolio` with the saved state).
            A venue this run does not have is skipped, and so is a venue whose portfolio is the
            exchange's own ledger (``exchange.account_ledger()``: :meth:`restore_exchange` restored it).
        """
        pf = self._bot.portfolios.get(venue)
        if pf is not None and not self.books_itself(venue):
            restore(pf)

    def books_itself(self, venue: str) -> bool:
        """True when ``venue``'s portfolio is the exchange's own ledger
        (:meth:`perpbot.core.exchange.BaseExchangeClient.account_ledger`): the bot never books
        into it, and a restored exchange state is its truth."""
        return venue in self._account.ledger_venues

    def restore_open_orders(self, orders: dict[int, OrderInfo]) -> None:
        """Replace the open-order table with a checkpoint's (client id -> :class:`~perpbot.core.model.OrderInfo`)."""
        self._bot.open_orders.clear()
        self._bot.open_orders.update(orders)

    def import_state(self, state: dict) -> None:
        """Restore the bot's runtime counters from a checkpoint (see :meth:`Checkpoints.import_state`);
        the bot is then *resumed* (its starting equity is not reset)."""
        self._bot.import_state(state)

    def resume_from_event(self, events_read: int) -> None:
        """Re-apply the first ``events_read`` feed items to market state only before the run
        continues (the checkpoint's ``events_read``; feed items, not events)."""
        self._bot.resume_from_event = int(events_read)

    # -- orders and fills ----------------------------------------------------------

    def adopt_order(self, info: OrderInfo) -> None:
        """Put an order this bot placed before a restart into the open-order table (``info.ticker`` qualified)."""
        self._bot.open_orders[int(info.client_id)] = info

    def forget_order(self, client_id: int) -> None:
        """Remove an order from the open-order table (foreign, vanished or filled while down)."""
        self._bot.open_orders.pop(int(client_id), None)

    def book_fills_while_down(self, venue: str, positions: dict, fills: list[Fill]) -> None:
        """Book fills made while the bot was down on top of the positions the journal explains.

        The bot loaded the exchange's positions, which already include these fills. The venue's
        portfolio positions are replaced by ``positions`` (ticker -> :class:`~perpbot.core.model.Position`,
        zero sizes dropped), each fill is booked through the bot's own path (portfolio, ledger,
        open orders), then the exchange's collateral (its truth) is put back. For a venue whose
        portfolio is the exchange's own ledger (:meth:`books_itself`) the ledger already holds
        the fills: ``positions`` is ignored and only the trade ledger and open orders are booked.

        :raises KeyError: ``venue`` is not a venue of this run.
        """
        pf = self._bot.portfolios[venue]
        if self.books_itself(venue):
            for f in fills:
                self._account.book_fill(venue, f)
            return
        collateral = pf.collateral
        pf.positions = {t: p for t, p in positions.items() if p.size}
        for f in fills:
            self._account.book_fill(venue, f)
        pf.collateral = collateral

    def drop_position(self, venue: str, ticker: str) -> None:
        """Remove a position the exchange no longer has from the venue's portfolio (venue's ticker);
        nothing for a venue whose portfolio is the exchange's own ledger (:meth:`books_itself`)."""
        pf = self._bot.portfolios.get(venue)
        if pf is not None and not self.books_itself(venue) and ticker in pf.positions and pf.positions[ticker].size:
            pf.positions.pop(ticker, None)

    async def flatten(self, intent: OrderParams) -> OrderResult | None:
        """Send a risk-exempt order (a reduce-only close of an unknown position); see
        :meth:`perpbot.core.bot.TradingBot.submit` for the result."""
        return await self._orders.submit(intent, risk_exempt=True)

    # -- strategy ----------------------------------------------------------------

    def restore_strategy(self, state: Any) -> None:
        """``strategy.restore_state(state)``.

        :raises PerpbotError: the strategy raised (naming it and ``--fresh``).
        """
        strategy = self._bot.strategy
        try:
            strategy.restore_state(state)
        except Exception as exc:
            raise PerpbotError(
                f"strategy {strategy.name} could not restore its journaled state: {type(exc).__name__}: {exc}; "
                "run with --fresh to start over"
            ) from exc

    def show_strategy(self, method: str, event: Any, venue: str | None = None) -> None:
        """Show an event that happened while the bot was down to the strategy (``on_fill`` or
        ``on_order_update``), with its ticker qualified by ``venue``; an error is contained and
        counted like any strategy error."""
        venue = venue or getattr(event, "venue", "") or self._bot.config.primary_venue
        self._strategy_calls.call(method, self._account.qualified(venue, event))
