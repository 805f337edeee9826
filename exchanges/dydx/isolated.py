"""Isolated markets live: which subaccount an order goes to, the collateral moved into a
child before it, and the sweep back once the child is flat.

:class:`IsolatedRouter` is the :attr:`OrderPath.route <perpbot.exchanges.dydx.order_path.OrderPath.route>`
of the ``dydx`` exchange:

- a cross order goes to the parent, unless its market's position lives in a child (then
  the order, e.g. the exit, goes there);
- an isolated order (ISOLATED margin asked for, or an ISOLATED market) goes to the child
  that carries its market, else to a free child (numbering and rules in
  :mod:`perpbot.exchanges.dydx.subaccounts`); a market held in cross margin by the parent
  is refused for isolated trading unless the order reduces;
- before an isolated order, the child gets by ``MsgCreateTransfer`` what it lacks to stay
  initially collateralized after the fill (:func:`~perpbot.exchanges.dydx.subaccounts.collateral_needed`:
  the market's IMF, the order's size and worst price, the taker fee of the account's tier read from
  the chain at connect (:data:`FEE_BOUND` when it could not be read), a
  ``buffer`` of 10 % of the margin). A trading key that may not sign ``MsgCreateTransfer``
  is refused before anything is sent by the node gateway's guard (the transfer's failure says
  so: pre-fund the child, or use a key added with ``--allow-transfers``), and the sweep back
  is not tried with such a key (:func:`perpbot.exchanges.dydx.authenticators.transfer_refusal`,
  said once per child); more than the parent's free collateral is refused with
  :class:`~perpbot.core.errors.InsufficientMargin` before anything is sent; a transfer that
  fails (:mod:`perpbot.exchanges.dydx.transfers`) means no order, and the result says why;
- :meth:`IsolatedRouter.sweep` returns a child's USDC to the parent once it is flat with no
  live order of ours (what the dYdX front end does when an isolated position closes).

:class:`IsolatedMarkets` is the part of :class:`~perpbot.exchanges.dydx.exchange.DydxExchange`
that wires this up (a mixin: the child streams, the transfer records it emits to the bot, the
sweeper task, positions and balances per subaccount).

Imports :mod:`perpbot.core` (errors, model) and the dYdX ``authenticators`` / ``channels`` / ``subaccounts`` /
``transfers`` modules.
"""

from __future__ import annotations

from decimal import Decimal
import asyncio
import time
from typing import Any, Callable

from loguru import logger

from perpbot.core.errors import ExchangeError, InsufficientMargin
from perpbot.core.model import Balance, Market, OrderRequest, Position, Side
from perpbot.exchanges.dydx.authenticators import transfer_refusal
from perpbot.exchanges.dydx.channels import V4_SUBACCOUNTS
from perpbot.exchanges.dydx.subaccounts import MAX_PARENT_SUBACCOUNTS, ChildLedgers, collateral_needed, wants_isolated
from perpbot.exchanges.dydx.transfers import TransferRecord, Transfers

#: taker fee assumed when sizing a transfer: the standard tier-1 taker rate, the highest of
#: the standard schedule (v4-chain ``protocol/x/feetiers/types/genesis.go``: 500 ppm)
FEE_BOUND = Decimal("0.0005")
#: extra collateral moved, as a share of the child's initial margin after the fill
BUFFER = Decimal("0.1")


def _usd(d: Decimal) -> str:
    """USD to 1e-6, without exponent or trailing zeros."""
    q = d.quantize(Decimal("0.000001"))
    return format(q.normalize(), "f") if q else "0"


class IsolatedRouter:
    """Routes orders to the parent or an isolated child and moves the collateral (see the
    module docstring).

    :param children: the child ledgers (and, through them, the account's order registry).
    :param transfers: sends and confirms the transfers.
    :param oracle: ``ticker -> oracle price (USD) | None``.
    :param watch: called with a child's number when it comes into use (the exchange subscribes
        its ``v4_subaccounts`` stream and registers it for order rows).
    :param fee_rate: / ``buffer``: see :data:`FEE_BOUND`, :data:`BUFFER`.
    """

    def __init__(self, children: ChildLedgers, transfers: Transfers, *, oracle: Callable[[str], Decimal | None],
                 watch: Callable[[int], None], fee_rate: Decimal = FEE_BOUND, buffer: Decimal = BUFFER):
        self.children = children
        self.transfers = transfers
        self.oracle = oracle
        self.watch = watch
        self.fee_rate = fee_rate
        self.buffer = buffer
        self._sweeping: set[int] = set()
        self._refused: set[int] = set()
        #: child -> when it was funded for an order not yet registered (monotonic s): not swept
        #: while the order is on its way (its height refresh and id allocation await)
        self._funded_at: dict[int, float] = {}
        #: longest such hold, seconds
        self.hold_s = 30.0

    async def route(self, order: OrderRequest, market: Market, plan: Any) -> tuple[int, str, bool]:
        """``(subaccount number, error, moved)`` for ``order`` (``plan``: its
        :func:`~perpbot.exchanges.dydx.orders.plan_order` result: ``size``, ``price``, ``side``).

        ``error`` non-empty: no order may be sent (a failed transfer, with its reason);
        ``moved``: collateral was transferred (the order's good-til-block must be renewed).

        :raises InsufficientMargin: the child needs more than the parent's free collateral.
        :raises InvalidOrder: never; a market held in cross margin is an ``error``.
        """
        ch = self.children
        parent = ch.parent
        t = order.ticker
        if not wants_isolated(order, market):
            n = ch.child_for(t)
            return (n if n is not None else parent), "", False
        held = ch.account.positions.get(t)
        if held is not None or ch.live_orders_in(parent, t):
            reduces = order.reduce_only or (held is not None and held.size * plan.side.sign < 0)
            if reduces:
                return parent, "", False
            return parent, (f"{t} is held in cross margin in subaccount {parent} (position or live orders): "
                            f"close it there before trading it in isolated margin"), False
        try:
            n = ch.pick_child(t)
        except ValueError as exc:
            return parent, f"isolated order on {t} not sent: {exc}", False
        self.watch(n)
        led = ch.ledger(n)
        pos = led.positions.get(t)
        need = collateral_needed(
            market, usdc=led.usdc, position=pos.size if pos is not None else Decimal(0),
            side_sign=1 if plan.side is Side.BUY else -1, size=plan.size, price=plan.price, oracle=self.oracle(t),
            fee_rate=self.fee_rate, buffer=self.buffer,
        )
        if not need:
            return n, "", False
        free = ch.account.balance().free_collateral
        if need > free:
            raise InsufficientMargin(
                f"isolated {plan.side.value} {plan.size} {t} at {plan.price}: child subaccount {n} needs "
                f"{_usd(need)} USDC moved from subaccount {parent}, whose free collateral is {_usd(free)} USDC",
                client_id=order.client_id,
            )
        rec = await self.transfers.transfer(parent, n, need, reason=f"fund isolated {t} order {order.client_id}")
        if not rec.ok:
            return n, (f"isolated order on {t} not sent: the transfer of {need} USDC from subaccount {parent} "
                       f"to {n} failed: {rec.error}"), False
        led.usdc += rec.amount  # the stream brings the exact figure; the order must not wait for it
        self._funded_at[n] = time.monotonic()
        return n, "", True

    def due_sweeps(self) -> list[tuple[int, Decimal, str]]:
        """``(child, USDC, market)`` of every child that is flat, has no live order of ours and
        still holds USDC -- except a child just funded whose order is not registered yet (held
        until the order shows as live, at most :attr:`hold_s`)."""
        ch = self.children
        out = []
        now = time.monotonic()
        for n, led in list(ch.ledgers.items()):
            held = self._funded_at.get(n)
            if held is not None:
                if now - held < self.hold_s:
                    continue
                del self._funded_at[n]  # the order never came: the hold ends
            if n in self._sweeping or led.usdc <= 0 or not ch.is_free(n):
                continue
            out.append((n, led.usdc, ch.market_of_child.get(n, "")))
        return out

    def release(self, number: int) -> None:
        """The order a child was funded for is registered: the child is no longer held (it is
        swept once flat with no live order)."""
        self._funded_at.pop(number, None)

    async def sweep(self) -> int:
        """Send every due sweep (child -> parent, all its USDC); returns how many were confirmed.
        A failed sweep is logged (by the transfer) and tried again on the next call."""
        done = 0
        for n, amount, t in self.due_sweeps():
            why = transfer_refusal(self.transfers.node, n, self.children.parent)
            if why:  # the key cannot move it: the USDC stays in the child (said once per child)
                if n not in self._refused:
                    self._refused.add(n)
                    logger.warning(f"dYdX child subaccount {n} keeps its {amount} USDC: {why}")
                continue
            self._sweeping.add(n)
            try:
                rec = await self.transfers.transfer(n, self.children.parent, amount,
                                                    reason=f"sweep: isolated {t or 'position'} closed")
            finally:
                self._sweeping.discard(n)
            if rec.ok:
                done += 1
                self.children.ledger(n).usdc -= rec.amount
            else:
                logger.warning(f"dYdX child subaccount {n}: {amount} USDC stays there until the next sweep")
        return done


class IsolatedMarkets:
    """Isolated-market wiring of :class:`~perpbot.exchanges.dydx.exchange.DydxExchange` (a mixin;
    it uses the exchange's ``account``, ``order_path``, ``reconciler``, ``node``, ``rest``,
    ``conn``, ``ids``, ``settings``, ``counters``, ``emit`` and sets ``children``,
    ``transfers``, ``router``). Each :class:`~perpbot.exchanges.dydx.transfers.TransferRecord`
    is emitted to the bot as an account event and counted (``transfers``,
    ``transfer_failures``)."""

    def _build_isolated(self) -> None:
        """Child ledgers, transfers and the router, once the order path exists (called by connect)."""
        self.children = ChildLedgers(self.account, market_of=self._market_or_none, oracle_of=self._oracle,
                                     emit=self.emit, now_ns=self._now_ns, sub_of=self.order_path.subaccount_of)
        self.transfers = Transfers(self.node, self.rest, self.address, now_ns=self._now_ns,
                                   on_record=self._on_transfer_record)
        self.reconciler.children = self.children
        self.reconciler.watch = self._watch_child
        # funding settled on the stream (a position's netFunding moved): read the payments now
        self.account.on_funding_change = lambda ticker: self._reconcile_now is not None and self._reconcile_now.set()
        if self.settings.subaccount < MAX_PARENT_SUBACCOUNTS:  # a child cannot have children
            tier = getattr(self.node, "fee_tier", None)  # the account's tier read from the chain at connect
            fee_rate = tier.taker_rate if tier is not None else FEE_BOUND
            self.router = IsolatedRouter(self.children, self.transfers, oracle=self._oracle, watch=self._watch_child,
                                         fee_rate=fee_rate)
            self.order_path.route = self.router.route
            self.order_path.route_done = self.router.release
            for meta in self.ids.orders.values():  # children of orders of earlier runs
                n = int(meta.get("sub", self.settings.subaccount))
                if n != self.settings.subaccount:
                    self.children.ledger(n)
                    self.account.registry.add_subaccount(n)

    def _watch_child(self, number: int) -> None:
        """Child subaccount ``number`` is in use: its order rows are ours to read, its stream is
        subscribed (kept across reconnects)."""
        self.account.registry.add_subaccount(number)
        self.children.ledger(number)
        if self.conn is not None and self.address:
            self.conn.subscribe(V4_SUBACCOUNTS, f"{self.address}/{number}", batched=False)

    def _on_transfer_record(self, rec: TransferRecord) -> None:
        self.counters["transfers" if rec.ok else "transfer_failures"] += 1
        self.emit(rec)

    def subaccount_positions(self) -> dict[int, dict[str, Position]]:
        """Open positions per subaccount: ``{number: {ticker: Position}}`` (the parent always,
        each child with a position; sizes signed, base units)."""
        return self.children.positions_by_subaccount() if self.children is not None else {}

    def summary_notes(self) -> list[str]:
        """Lines for the run's report: positions per subaccount, collateral transfers, and the
        divergences reconciliation healed (by kind), when there are any."""
        out = []
        by_sub = self.subaccount_positions()
        if any(by_sub.get(n) for n in by_sub if n != self.settings.subaccount) or len(by_sub) > 1:
            for n, pos in by_sub.items():
                what = ", ".join(f"{t} {p.size}" for t, p in sorted(pos.items())) or "flat"
                out.append(f"subaccount {n}{' (isolated)' if n >= MAX_PARENT_SUBACCOUNTS else ''}: {what}")
        if self.transfers is not None and self.transfers.records:
            recs = list(self.transfers.records)
            moved = sum((r.amount for r in recs if r.ok), Decimal(0))
            out.append(f"collateral transfers: {sum(r.ok for r in recs)} done ({moved} USDC moved), "
                       f"{sum(not r.ok for r in recs)} failed")
        div = self.reconciler.divergences if self.reconciler is not None else {}
        if div:
            out.append("reconciliation healed " + ", ".join(f"{n} {k}" for k, n in sorted(div.items()))
                       + " divergence(s) (causes in the log)")
        return out

    def subaccount_balances(self) -> dict[int, Balance]:
        """Per-subaccount figures (USD): the parent and every known child."""
        return self.children.balances() if self.children is not None else {}

    async def _sweeper(self) -> None:
        """Every ``sweep_interval_s`` (0.5 s): return the USDC of flat children to the parent
        (:meth:`IsolatedRouter.sweep`); a failure is logged and tried again."""
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            try:
                await self.router.sweep()
            except asyncio.CancelledError:
                raise
            except (ExchangeError, ValueError) as exc:
                logger.warning(f"dYdX sweep of isolated children failed ({exc}); trying again")

    def _child_id(self, sid: Any) -> int | None:
        """The child number of a ``"address/number"`` stream id of ours, else None."""
        addr, _, num = str(sid or "").partition("/")
        if addr != self.address or not num.isdigit():
            return None
        n = int(num)
        return n if n in self.children.ledgers else None

    def _stream_transfers(self, number: int, msg: Any) -> None:
        """``transfers`` rows of a parent stream message (one object or a list) -> :attr:`transfers`."""
        if self.transfers is None or msg.get("type") == "subscribed":
            return
        contents = msg.get("contents")
        for c in (contents if msg.get("type") == "channel_batch_data" else [contents]):
            t = (c or {}).get("transfers")
            for row in (t if isinstance(t, list) else [t] if t else []):
                if isinstance(row, dict):
                    self.transfers.on_stream_transfer(number, row)

