"""The decision cycle: every ``decision_interval_s`` of clock time, risk checks then the strategy.

Order of one cycle: equity tracking (drawdown, peak, day start); an equity snapshot for
observers every ``snapshot_interval_s``; every risk policy's ``check_account`` (a decision
that is not an approval is carried out, and CLOSE_ALL or HALT end the cycle); the strategy's
``should_execute`` then ``execute_strategy`` on a :class:`~perpbot.core.state.MarketData`
view; ``on_decision``; the result's cancels, closes and orders. Imports only
:mod:`perpbot.core` modules.

Event-driven strategies (:mod:`perpbot.core.wake`) also get cycles on wake-ups: the same
cycle, run by the event loop right after the waking event, with the trigger in
``strategy.woken_by``; such a cycle does not move the scheduled timer, and the reasons of
the order requests it sends end with ``[woken by <trigger>]`` (journaled with each order
intent; ``on_decision`` observers get the strategy's result as it returned it). The scheduled cycle
runs every ``decision_interval_s`` (``every:`` of the spec, when given).

The account is read once per cycle (:class:`AccountSnapshot`: the equity tracking, the risk
views, the strategy's view and the first order's sizing and checks read it; an order that goes
out or is refused ends its use), and a venue's balance is computed again only when its inputs
changed (:class:`BalanceMemo`: a pure function's memo, nothing to invalidate).
"""

from __future__ import annotations

from decimal import Decimal
from operator import is_
from typing import Any

import attrs

from perpbot.core.bot.support import NS
from perpbot.core.model import ZERO
from perpbot.core.portfolio import Portfolio
from perpbot.core.policies import APPROVE, RiskAction, RiskView
from perpbot.core.records import copy_with, plain_maker
from perpbot.core.state import MarketData
from perpbot.core.strategy import StrategyResult
from perpbot.core.wake import SCHEDULE, WakeEvent


class DecisionCycle:
    """Runs the bot's decision cycles and keeps their timers.

    :param bot: the :class:`~perpbot.core.bot.TradingBot` (equity reference points and the
        ``decisions`` counter are updated here).
    :param orders: the :class:`~perpbot.core.bot.orders.OrderRouter` carrying out risk
        decisions and strategy results.
    :param strategy_calls: the :class:`~perpbot.core.bot.calls.StrategyCalls` counting the
        strategy's errors.
    """

    def __init__(self, bot: Any, orders: Any, strategy_calls: Any):
        self.bot = bot
        self.orders = orders
        self.strategy_calls = strategy_calls
        config = bot.config
        #: clock time (ns) of the next decision cycle
        self.next_decision_ns = 0
        #: clock time (ns) of the next ``on_equity_snapshot``
        self.next_snapshot_ns = 0
        #: the UTC day number (``now // 86400 s``) of ``bot.day_start_equity``
        self.day: int | None = None
        self.decision_ns = int(Decimal(config.decision_interval_s) * NS)
        self.snapshot_ns = int(Decimal(config.snapshot_interval_s) * NS)
        #: the :class:`~perpbot.core.bot.wake.Waker` of an event-driven strategy (set by the event loop), or None
        self.waker = None
        #: during a cycle: ``(orders_sent, orders_rejected, AccountSnapshot)``, reused by :func:`risk_view`
        #: until an order goes out or is refused (the account may change then); None otherwise
        self.live_snapshot: tuple | None = None
        #: during a cycle: ``(inputs, RiskView)``, the view :func:`risk_view` last made of the cycle's
        #: snapshot, given again while its inputs are the same; None otherwise
        self.live_view: tuple | None = None
        #: balances reused between snapshots while their inputs are unchanged (:class:`BalanceMemo`)
        self.balance_memo = BalanceMemo()

    def track_equity(self, now: int, equity: Decimal | None = None) -> None:
        """Feed the total equity (USD) at ``now`` (ns) to the drawdown tracker, the peak and the day start.

        :param equity: the total equity when the caller has it (default: ``bot.total_equity()``).
        """
        bot = self.bot
        eq = bot.total_equity() if equity is None else equity
        bot.drawdown.update(eq, now)
        if eq > bot.peak_equity:
            bot.peak_equity = eq
        day = now // (86400 * NS)
        if self.day != day:
            self.day = day
            bot.day_start_equity = eq

    async def run(self, now: int, wake: WakeEvent = SCHEDULE) -> None:
        """One decision cycle at clock time ``now`` (ns); see the module docstring.

        :param wake: the trigger (:data:`~perpbot.core.wake.SCHEDULE` for the scheduled cycle,
            which alone sets the next scheduled time); given to the strategy as ``woken_by``.

        A strategy method that raises (or returns something other than a
        :class:`~perpbot.core.strategy.StrategyResult` or None) skips the cycle; the error is
        counted and logged once.
        """
        bot = self.bot
        scheduled = wake.kind == "schedule"
        if scheduled:
            self.next_decision_ns = now + self.decision_ns
        snap = AccountSnapshot.of(bot)  # balances, marks, positions, paused: computed once for the cycle
        self.live_snapshot = (bot.orders_sent, bot.orders_rejected, snap)
        try:  # one frame for the whole cycle (no inner coroutine); the snapshot dies with it
            self.track_equity(now, snap.total_equity)
            if now >= self.next_snapshot_ns:
                self.next_snapshot_ns = now + self.snapshot_ns
                await bot.notify("on_equity_snapshot", ts_ns=now, balance=snap.primary)
            view = risk_view(bot, snap)
            for policy in bot.risk_chain:
                decision = policy.check_account(view)
                if decision is not APPROVE and not decision.approved:  # APPROVE: the usual answer, no property call
                    snap = self.live_snapshot = self.live_view = None  # carrying it out may change the account: fresh views
                    await self.orders.handle_risk(decision, policy)
                    if bot.halted or decision.action in (RiskAction.CLOSE_ALL,):
                        return
            if bot.halted:
                return
            md = snap.market_data(bot, now) if snap is not None else bot.market_data()
            try:
                bot.strategy.woken_by = wake
            except AttributeError:  # a strategy with __slots__ and no woken_by: it cannot be told
                pass
            try:
                go = await bot.strategy.should_execute(md)
            except Exception as exc:
                self.strategy_calls.failed("should_execute", exc, "cycle skipped, state kept")
                return
            if not go:
                return
            try:
                result = await bot.strategy.execute_strategy(md)
            except Exception as exc:
                self.strategy_calls.failed("execute_strategy", exc, "cycle skipped, state kept")
                return
            bot.decisions += 1
            if result is None:
                return
            if not isinstance(result, StrategyResult):
                self.strategy_calls.failed(
                    "execute_strategy", TypeError(f"returned {type(result).__name__}, not a StrategyResult"), "cycle skipped"
                )
                return
            # an event's trigger goes into the reason of each order request it sends (the
            # strategy's result itself is what observers get, as returned)
            tail = f"[woken by {wake.describe()}]" if not scheduled and result.orders else None
            await bot.notify("on_decision", strategy=bot.strategy, result=result)
            await self.orders.execute_result(result, md, tail=tail)
            if result.wait_s:
                wait_ns = int(Decimal(str(result.wait_s)) * NS)
                self.next_decision_ns = now + wait_ns
                if self.waker is not None:
                    self.waker.hold_until((wake.decided_ns or now) + wait_ns)
        finally:
            self.live_snapshot = self.live_view = None


#: account class -> whether :class:`BalanceMemo` handles it (classes are not changed at run time)
_HANDLED: dict[type, bool] = {}


class BalanceMemo:
    """Reuses a venue's :class:`~perpbot.core.model.Balance` while what it is computed from is unchanged.

    ``Portfolio.balance(marks, ts_ns)`` (``core/portfolio.py``) is a function of the collateral,
    of each open position's size and entry price, of those markets' IMF/MMF (the portfolio's
    ``markets``) and of their marks; ``ts_ns`` is only stored. The memo keeps, per venue, those
    inputs and the balance; a balance whose inputs are all the same (Decimals: the same text,
    so the result is written the same; market parameters: the same objects) is the kept one
    with ``ts_ns`` set to now. There is no invalidation to forget: a
    fill, funding payment, liquidation fee, transfer or mark change changes an input, and the
    balance is computed again.

    Only portfolios whose ``balance``, ``equity``, ``margin_requirements`` and
    ``open_positions`` are :class:`~perpbot.core.portfolio.Portfolio`'s own functions are
    handled (``Portfolio`` and the paper venue's ledger); any other account object is asked
    every time.
    """

    def __init__(self):
        #: venue -> (inputs key, market parameters of the open positions, Balance)
        self.kept: dict[str, tuple] = {}
        #: counters for tests and benchmarks: balances reused / computed
        self.hits = 0
        self.misses = 0

    @staticmethod
    def handles(pf: Any) -> bool:
        """True when ``pf``'s balance is ``Portfolio.balance`` over ``Portfolio``'s formulas."""
        cls = type(pf)
        known = _HANDLED.get(cls)
        if known is None:
            known = _HANDLED[cls] = (
                getattr(cls, "balance", None) is Portfolio.balance and getattr(cls, "equity", None) is Portfolio.equity
                and getattr(cls, "margin_requirements", None) is Portfolio.margin_requirements
                and getattr(cls, "open_positions", None) is Portfolio.open_positions
            )
        return known

    def balance(self, venue: str, pf: Any, positions: dict, marks: dict, now: int) -> Any:
        """``pf.balance(marks, now)``, reused when its inputs are unchanged.

        :param positions: ``pf.positions`` as just read (ticker -> Position).
        :param marks: the venue's marks (its own tickers, USD).
        """
        markets = pf.markets
        collateral = pf.collateral
        # Decimals by their text: equal values with other exponents (100.0, 100.00) make
        # differently written results; market parameters by identity
        key = [str(collateral)]
        params = []
        for t, p in positions.items():
            if p.size:
                key += (t, str(p.size), str(p.entry_price), str(marks.get(t)))
                params.append(markets.get(t))
        kept = self.kept.get(venue)
        if kept is not None and kept[0] == key and all(map(is_, kept[1], params)):  # same length: the keys are equal
            self.hits += 1
            bal = kept[2]
            return bal if bal.ts_ns == now else copy_with(bal, "ts_ns", now)
        self.misses += 1
        # Portfolio.balance over the inputs just read (a ledger's collateral and positions are
        # sums it would compute again at each read): the same formulas, the same figures
        bal = Portfolio.balance(_BalanceInputs(collateral, positions, markets), marks, now)
        self.kept[venue] = (key, params, bal)
        return bal


class _BalanceInputs:
    """What :meth:`Portfolio.balance <perpbot.core.portfolio.Portfolio.balance>` reads, read
    once: ``collateral`` (USD), ``positions`` (ticker -> Position) and ``markets`` (ticker ->
    Market); Portfolio's own ``equity`` and ``margin_requirements`` run over them."""

    __slots__ = ("collateral", "positions", "markets")

    equity = Portfolio.equity
    margin_requirements = Portfolio.margin_requirements

    def __init__(self, collateral: Decimal, positions: dict, markets: Any):
        self.collateral = collateral
        self.positions = positions
        self.markets = markets


@attrs.frozen
class AccountSnapshot:
    """The account and market figures one decision cycle reads several times, computed once.

    The cycle's equity tracking, its risk view and the strategy's
    :class:`~perpbot.core.state.MarketData` all read the same balances, marks, positions and
    paused markets: nothing changes them between those reads (account events are processed
    before and after the cycle, market events between cycles). Each field is what the bot's
    query of the same name returns (``bot.balance(venue)``, ``bot.marks()``,
    ``bot.positions()``, ``bot.paused()``).

    :param balances: venue -> :class:`~perpbot.core.model.Balance` (USD).
    :param primary: the primary venue's balance.
    :param marks: qualified ticker -> mark price, USD.
    :param positions: qualified ticker -> open :class:`~perpbot.core.model.Position`.
    :param paused: qualified ticker -> why its data is stale.
    :param total_equity: every venue's equity together, USD.
    :param venue_positions: venue -> that venue's ``portfolio.positions`` (its own tickers,
        closed positions included), as read for this snapshot.
    :param venue_marks: venue -> the marks its balance was computed at (its own tickers, USD).
    """

    balances: dict
    primary: Any
    marks: dict
    positions: dict
    paused: dict
    total_equity: Decimal
    venue_positions: dict = attrs.field(factory=dict, eq=False, repr=False)
    venue_marks: dict = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def of(cls, bot: Any, memo: BalanceMemo | None = None) -> "AccountSnapshot":
        """The figures of ``bot`` now (after :meth:`~perpbot.core.bot.TradingBot.start`: needs portfolios).

        Balances as ``bot.balance(venue)`` computes them (each venue's portfolio at that venue's
        marks, :meth:`~perpbot.core.bot.queries.RunQueries.venue_marks`), with the marks read
        once and each venue's positions read once.

        :param memo: a :class:`BalanceMemo` to reuse balances whose inputs did not change
            (default: the decision cycle's, when the bot has one).
        """
        if memo is None:
            memo = getattr(getattr(bot, "_cycle", None), "balance_memo", None)
        primary = bot.config.primary_venue
        now = bot.clock.now_ns()
        # bot.marks() and bot.paused() in one pass: each market's mark read once and handed to
        # stale_reason (the book keeps its best prices between changes: no read is repeated)
        marks = {}
        paused = {}
        for t, st in bot.states.items():
            m = st.mark_price()
            if m is not None:
                marks[t] = m
            reason = st.stale_reason(now, m)
            if reason:
                paused[t] = reason
        balances = {}
        positions = {}
        venue_positions = {}
        venue_marks = {}
        for venue, pf in bot.portfolios.items():
            if venue == primary:
                vm = {t: p for t, p in marks.items() if ":" not in t}
            else:
                prefix = f"{venue}:"
                vm = {t[len(prefix):]: p for t, p in marks.items() if t.startswith(prefix)}
            if memo is not None and memo.handles(pf):
                raw = pf.positions
                balances[venue] = memo.balance(venue, pf, raw, vm, now)
                for t, p in raw.items():  # Portfolio.open_positions, qualified as bot.positions() does
                    if p.size != 0:
                        positions[t if venue == primary else bot.qualify(venue, t)] = p
                venue_positions[venue] = raw
            else:
                balances[venue] = pf.balance(vm, now)
                for t, p in pf.open_positions().items():
                    positions[bot.qualify(venue, t)] = p
            venue_marks[venue] = vm
        if len(balances) == 1:  # the sum of one: ZERO + equity, as sum() writes it
            total = ZERO + balances[primary].equity
        else:
            total = sum((b.equity for b in balances.values()), ZERO)
        return (_make_snapshot if cls is AccountSnapshot else cls)(
            balances=balances,
            primary=balances[primary],
            marks=marks,
            positions=positions,
            paused=paused,
            total_equity=total,
            venue_positions=venue_positions,
            venue_marks=venue_marks,
        )

    def market_data(self, bot: Any, now: int) -> MarketData:
        """The :class:`~perpbot.core.state.MarketData` ``bot.market_data()`` would build at ``now`` (ns)."""
        paused = self.paused
        return MarketData(
            ts_ns=now,
            markets=bot.states,
            tradable=tuple([t for t in bot.states if t not in paused]),
            paused=paused,
            positions=self.positions,
            open_orders=dict(bot.open_orders),
            balance=self.primary,
            marks=self.marks,
            venues=dict(self.balances),
        )


#: ``AccountSnapshot(**fields)`` without ``__init__`` (its fields are stored as given): :func:`plain_maker`
_make_snapshot = plain_maker(AccountSnapshot)


def cycle_snapshot(bot: Any) -> AccountSnapshot | None:
    """The decision cycle in progress' :class:`AccountSnapshot` while it still holds: no order
    went out or was refused since it was taken (either may change the account); else None."""
    live = getattr(getattr(bot, "_cycle", None), "live_snapshot", None)
    if live is not None and live[0] == bot.orders_sent and live[1] == bot.orders_rejected:
        return live[2]
    return None


def risk_view(bot: Any, snapshot: AccountSnapshot | None = None) -> RiskView:
    """The :class:`~perpbot.core.policies.RiskView` risk policies check, as of now.

    Balances and equity USD, times ns; ``circuit_open``: venue -> why its circuit breaker is
    open (exchanges exposing ``circuit_open``); ``total_equity`` sums every venue.

    :param bot: the :class:`~perpbot.core.bot.TradingBot` (after :meth:`start`: needs portfolios).
    :param snapshot: the cycle's :class:`AccountSnapshot` when it has one. Default: the decision
        cycle in progress' one while no order went out or was refused since it was taken (the
        first order's checks read what the strategy decided on; balances as of the cycle's
        start), else taken now.

    Within a decision cycle the view made of the cycle's snapshot is kept and given again
    (the same object, read-only by contract) while everything it is made of is unchanged:
    the account checks' view serves the first order's sizing and checks.
    """
    circuit = {}
    for venue, ex in bot.exchanges.items():
        reason = getattr(ex, "circuit_open", None)
        if reason:
            circuit[venue] = reason if isinstance(reason, str) else "circuit breaker open"
    snap = snapshot
    if snap is None:
        snap = cycle_snapshot(bot) or AccountSnapshot.of(bot)
    now = bot.clock.now_ns()
    cycle = getattr(bot, "_cycle", None)
    kept = getattr(cycle, "live_view", None)
    # the view the cycle's account checks saw, while every figure it is made of is the same
    # (the same snapshot, clock time, open-order count and circuit breakers; the bot's
    # equity reference points, failure count and activity times the same objects)
    inputs = (now, len(bot.open_orders), circuit, snap, bot.start_equity, bot.peak_equity, bot.day_start_equity,
              bot.consecutive_failures, bot.last_fill_ns, bot.last_activity_ns)
    if kept is not None and kept[0][:3] == inputs[:3] and all(map(is_, kept[0][3:], inputs[3:])):
        return kept[1]
    balances = snap.balances
    bal = snap.primary
    view = RiskView(
        now_ns=now,
        balance=bal,
        positions=dict(snap.positions),
        marks=dict(snap.marks),
        markets=bot.markets,
        stale=dict(snap.paused),
        start_equity=bot.start_equity,
        peak_equity=bot.peak_equity,
        day_start_equity=bot.day_start_equity,
        consecutive_failures=bot.consecutive_failures,
        last_fill_ns=bot.last_fill_ns,
        last_activity_ns=bot.last_activity_ns,
        open_orders=len(bot.open_orders),
        circuit_open=circuit,
        state=bot.states,
        total_equity=snap.total_equity,
        balances=dict(balances),
    )
    if cycle is not None and snap is cycle_snapshot(bot):  # kept for the cycle's next checks (cleared with it)
        cycle.live_view = (inputs, view)
    return view
