"""Isolated markets on dYdX v4: child subaccounts, their ledgers, and the collateral an
isolated order needs.

**Numbering.** A position in an isolated market lives in its own *child* subaccount of
the bot's parent subaccount ``p`` (0..127): number ``p + 128*k`` for ``k`` in 1..999, so
``parent = n % 128`` (the dYdX front end's convention: v4-abacus
``src/commonMain/kotlin/exchange.dydx.abacus/utils/Constants.kt`` ``NUM_PARENT_SUBACCOUNTS
= 128``, ``MAX_SUBACCOUNT_NUMBER = 128_000``; the indexer groups children the same way,
v4-chain ``indexer/packages/postgres`` ``getParentSubaccountNum`` = ``n %
MAX_PARENT_SUBACCOUNTS``, ``CHILD_SUBACCOUNT_MULTIPLIER = 1000``; docs
``isolated-positions.md``). An isolated market may hold no other position in the same
subaccount (v4-chain ``protocol/x/subaccounts/keeper/isolated_subaccount.go``), so each
child carries one market at a time; a child that is flat with no live order of ours is
free again.

**Routing.** An order goes to a child when its ``margin_mode`` is ISOLATED or its market's
``marketType`` is ISOLATED (47 of 101 mainnet markets in the recorded
``perpetualMarkets`` payload); else to the parent (cross). A reduce-only order goes to
where the position is.

**Collateral.** :func:`collateral_needed` sizes the parent -> child transfer with the
chain's initial-margin rule (:func:`perpbot.core.margin.check_order_initial_margin`, the
same math the paper exchange uses, ``exchanges/paper/subaccounts.py`` ``fund_child``):
what the child lacks to stay initially collateralized after the order fills at its
limit (or worst) price, fee included, plus ``buffer`` (a fraction of that margin, for the
oracle moving before the fill). The transfer itself and the sweep back are in
:mod:`perpbot.exchanges.dydx.transfers`.

:class:`ChildLedgers` holds one :class:`~perpbot.exchanges.dydx.ledger.AccountLedger` per
child (USDC, positions, fills, funding), fed by the child's ``v4_subaccounts`` stream and by
reconciliation; the orders of every subaccount live in the account's one
:class:`~perpbot.exchanges.dydx.order_registry.OrderRegistry` (keyed by our client id; the
subaccount of each order is in its client-id metadata, ``sub``).

Imports :mod:`perpbot.core` (margin, model) and :mod:`perpbot.exchanges.dydx.ledger` /
``account`` only.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from typing import Any, Callable, Iterable, Mapping

from perpbot.core.margin import PositionRisk, check_order_initial_margin
from perpbot.core.model import ZERO, Balance, MarginMode, Market, OrderRequest, Position
from perpbot.exchanges.dydx.account import AccountState
from perpbot.exchanges.dydx.ledger import AccountLedger

#: parent subaccounts per address (a child's parent is ``n % 128``)
MAX_PARENT_SUBACCOUNTS = 128
#: subaccount numbers per parent (k = 0 is the parent itself; k = 1..999 are children)
CHILD_SUBACCOUNT_MULTIPLIER = 1000
#: the largest subaccount number the chain allows
MAX_SUBACCOUNT_NUMBER = MAX_PARENT_SUBACCOUNTS * CHILD_SUBACCOUNT_MULTIPLIER
#: one quote quantum (USDC has 6 decimals on dYdX: asset 0, atomic resolution -6)
QUOTE_QUANTUM = Decimal("0.000001")


def child_number(parent: int, k: int) -> int:
    """The ``k``-th child of ``parent``: ``parent + 128*k``.

    :raises ValueError: ``parent`` outside 0..127 or ``k`` outside 1..999.
    """
    if not 0 <= int(parent) < MAX_PARENT_SUBACCOUNTS:
        raise ValueError(f"parent subaccount {parent}: must be 0..{MAX_PARENT_SUBACCOUNTS - 1}")
    if not 1 <= int(k) < CHILD_SUBACCOUNT_MULTIPLIER:
        raise ValueError(f"child index {k}: must be 1..{CHILD_SUBACCOUNT_MULTIPLIER - 1}")
    return int(parent) + MAX_PARENT_SUBACCOUNTS * int(k)


def parent_of(number: int) -> int:
    """The parent of subaccount ``number`` (``number % 128``; a parent is its own parent).

    :raises ValueError: ``number`` outside 0..128000.
    """
    if not 0 <= int(number) <= MAX_SUBACCOUNT_NUMBER:
        raise ValueError(f"subaccount {number}: must be 0..{MAX_SUBACCOUNT_NUMBER}")
    return int(number) % MAX_PARENT_SUBACCOUNTS


def is_child(number: int) -> bool:
    """True for a child subaccount (number >= 128)."""
    return int(number) >= MAX_PARENT_SUBACCOUNTS


def wants_isolated(order: OrderRequest, market: Market) -> bool:
    """True when ``order`` belongs in a child: ISOLATED margin asked for, or an ISOLATED market."""
    return order.margin_mode is MarginMode.ISOLATED or str(getattr(market, "market_type", "CROSS")) == "ISOLATED"


def to_quantums(usd: Decimal) -> int:
    """USD -> USDC quote quantums (1e-6), rounded up (a transfer never falls short).

    :raises ValueError: a negative amount.
    """
    if usd < 0:
        raise ValueError(f"amount {usd} USD: must be >= 0")
    return int((usd / QUOTE_QUANTUM).to_integral_value(rounding=ROUND_CEILING))


def collateral_needed(market: Market, *, usdc: Decimal, position: Decimal, side_sign: int, size: Decimal,
                      price: Decimal, oracle: Decimal | None, fee_rate: Decimal, buffer: Decimal) -> Decimal:
    """USD the child must receive before the order so that it stays initially collateralized
    after the order fills (0 when its collateral already suffices), rounded up to 1e-6 USD.

    The fill of ``side_sign * size`` base units at ``price`` USD with a fee of ``size *
    price * fee_rate`` is checked with the chain's rule (``NC' >= TIMR'``,
    :func:`perpbot.core.margin.check_order_initial_margin`, chain
    ``protocol/x/subaccounts/lib/updates.go``); the position is valued at the higher
    (buy) / lower (sell) of ``price`` and the oracle, so a fill away from the oracle is
    covered too. ``buffer`` (a fraction, e.g. 0.1) adds that share of the initial margin
    after the fill. A reducing order needs nothing.

    :param usdc: the child's USDC now (USD; 0 for a new child).
    :param position: the child's signed position in this market now (base units).
    :param side_sign: +1 buy, -1 sell.
    :raises ValueError: a non-positive price or size.
    """
    if price <= 0 or size <= 0:
        raise ValueError(f"price {price} and size {size} must be > 0")
    signed = size * side_sign
    if position and (position > 0) != (signed > 0) and size <= abs(position):
        return ZERO
    mark = price if oracle is None else (max(price, oracle) if side_sign > 0 else min(price, oracle))
    risk = PositionRisk.from_market(market, position, mark)
    fee = size * price * fee_rate
    chk = check_order_initial_margin(usdc, [risk], risk, signed, price, fee,
                                     allow_undercollateralized_risk_reduction=False)
    need = chk.initial_margin_after * (1 + buffer) - chk.equity_after
    return (to_quantums(need) * QUOTE_QUANTUM) if need > 0 else ZERO


class ChildLedgers:
    """The bot's child subaccounts under one parent (see the module docstring).

    :param account: the parent's :class:`~perpbot.exchanges.dydx.account.AccountState`
        (its registry holds the orders of every subaccount; its ledger is the parent's).
    :param market_of: / ``oracle_of`` / ``emit`` / ``now_ns``: as for
        :class:`~perpbot.exchanges.dydx.ledger.AccountLedger`.
    :param sub_of: our client id -> the subaccount number its order was sent to (None: unknown).

    Attributes: ``parent`` (number), ``ledgers`` (child number -> ledger), ``market_of_child``
    (child number -> the market it carries).
    """

    def __init__(self, account: AccountState, *, market_of: Callable[[str], Market | None],
                 oracle_of: Callable[[str], Decimal | None], emit: Callable[[Any], None], now_ns: Callable[[], int],
                 sub_of: Callable[[int], int | None]):
        self.account = account
        self.parent = int(account.subaccount)
        self.market_of = market_of
        self.oracle_of = oracle_of
        self.emit = emit
        self.now_ns = now_ns
        self.sub_of = sub_of
        self.ledgers: dict[int, AccountLedger] = {}
        self.market_of_child: dict[int, str] = {}
        #: child number -> its stream's ``subscribed`` snapshot arrived
        self.snapshots: set[int] = set()

    # -- numbers -------------------------------------------------------------------

    def numbers(self) -> list[int]:
        """The parent and every known child, parent first."""
        return [self.parent, *sorted(self.ledgers)]

    def ledger(self, number: int) -> AccountLedger:
        """The ledger of ``number`` (the parent's, or a child's, created on first use).

        :raises ValueError: ``number`` is not the parent or one of its children.
        """
        if number == self.parent:
            return self.account.ledger
        if not is_child(number) or parent_of(number) != self.parent:
            raise ValueError(f"subaccount {number} is not a child of {self.parent}")
        led = self.ledgers.get(number)
        if led is None:
            acct = self.account
            led = self.ledgers[number] = AccountLedger(
                acct.ids, order_of=acct.registry.our_id_of, market_of=self.market_of, oracle_of=self.oracle_of,
                emit=self.emit, now_ns=self.now_ns, stats=acct.stats)
        return led

    def live_orders_in(self, number: int, ticker: str | None = None) -> list:
        """Our open orders (PENDING included) sent to subaccount ``number``."""
        return [o for o in self.account.open_orders(ticker) if self.sub_of(o.client_id) == number]

    def is_free(self, number: int) -> bool:
        """True when child ``number`` holds no position and no live order of ours."""
        led = self.ledgers.get(number)
        return (led is None or not led.positions) and not self.live_orders_in(number)

    def child_for(self, ticker: str) -> int | None:
        """The child that carries ``ticker`` (position or live orders), else None."""
        for n, t in self.market_of_child.items():
            if t == ticker and not self.is_free(n):
                return n
        for n, led in self.ledgers.items():
            if ticker in led.positions:
                return n
        return None

    def pick_child(self, ticker: str) -> int:
        """The child for a new isolated order on ``ticker``: the one carrying it, else the
        lowest free known child, else the next new number (``parent + 128*k``).

        :raises ValueError: every one of the 999 children is in use.
        """
        n = self.child_for(ticker)
        if n is None:
            used = set(self.ledgers) | set(self.market_of_child)
            for k in range(1, CHILD_SUBACCOUNT_MULTIPLIER):
                c = child_number(self.parent, k)
                if c not in used or self.is_free(c):
                    n = c
                    break
            else:
                raise ValueError(f"every child subaccount of {self.parent} is in use")
        self.market_of_child[n] = ticker
        self.ledger(n)
        return n

    # -- stream and REST ------------------------------------------------------------------

    def on_message(self, number: int, msg: Mapping[str, Any], on_transfer: Callable[[int, Mapping], None]) -> None:
        """One ``v4_subaccounts`` message of child ``number`` (``subscribed``, ``channel_data``
        or batch; shapes as for the parent, :meth:`AccountState.apply_update`); order rows go to
        the shared registry, money rows to the child's ledger, ``transfers`` rows (one object
        or a list, v4-chain ``indexer/packages/postgres/src/types/websocket-message-types.ts``
        ``TransferSubaccountMessageContents``) to ``on_transfer(number, row)``."""
        typ = msg.get("type")
        contents = msg.get("contents")
        if typ == "subscribed":
            c = contents or {}
            if c.get("subaccount"):
                self.apply_subaccount(number, c["subaccount"])
            for row in c.get("orders") or ():
                self.account.apply_order_row(row)
            self.account.note_height(c.get("blockHeight"))
            self.snapshots.add(number)
            return
        items = contents if typ == "channel_batch_data" else [contents]
        led = self.ledger(number)
        for c in items:
            if not c:
                continue
            self.account.note_height(c.get("blockHeight"))
            for row in c.get("orders") or ():
                self.account.apply_order_row(row)
            for row in c.get("fills") or ():
                led.apply_fill_row(row)
            for row in c.get("perpetualPositions") or ():
                self.account.apply_stream_position(led, row)
            for row in c.get("assetPositions") or ():
                led.apply_asset_row(row)
            t = c.get("transfers")
            for row in (t if isinstance(t, list) else [t] if t else []):
                on_transfer(number, row)

    def apply_subaccount(self, number: int, sub: Mapping[str, Any]) -> None:
        """A REST/snapshot subaccount of ``number`` (parent or child) into its ledger."""
        if number == self.parent:
            self.account.apply_subaccount(sub)
        else:
            self.ledger(number).apply_subaccount(sub)
            self.account.note_height(sub.get("latestProcessedBlockHeight"))

    # -- views ------------------------------------------------------------------------------

    def positions_by_subaccount(self) -> dict[int, dict[str, Position]]:
        """``{number: {ticker: Position}}`` for the parent and every child with a position (copies)."""
        out = {self.parent: dict(self.account.positions)}
        for n in sorted(self.ledgers):
            if self.ledgers[n].positions:
                out[n] = dict(self.ledgers[n].positions)
        return out

    def positions(self) -> dict[str, Position]:
        """Every open position by ticker, parent and children together (a market lives in one
        subaccount at a time)."""
        out = dict(self.account.positions)
        for n in sorted(self.ledgers):
            out.update(self.ledgers[n].positions)
        return out

    def balances(self) -> dict[int, Balance]:
        """``{number: Balance}`` of the parent and every known child (USD)."""
        out = {self.parent: self.account.balance()}
        for n in sorted(self.ledgers):
            out[n] = self.ledgers[n].balance()
        return out

    def balance(self) -> Balance:
        """The sum over the parent and its children (USD; what the indexer's
        ``/addresses/{a}/parentSubaccountNumber/{n}`` adds up: equity and free collateral)."""
        parts: Iterable[Balance] = self.balances().values()
        parts = list(parts)
        first = parts[0]
        return Balance(
            collateral=sum((b.collateral for b in parts), ZERO),
            equity=sum((b.equity for b in parts), ZERO),
            free_collateral=sum((b.free_collateral for b in parts), ZERO),
            initial_margin=sum((b.initial_margin for b in parts), ZERO),
            maintenance_margin=sum((b.maintenance_margin for b in parts), ZERO),
            ts_ns=first.ts_ns,
        )
