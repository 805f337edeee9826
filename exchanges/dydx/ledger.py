"""The subaccount's money: fills, positions, USDC, balance and funding payments.

:class:`AccountLedger` folds indexer rows (stream ``fills`` / ``perpetualPositions`` /
``assetPositions`` and REST ``/addresses/{a}/subaccountNumber/{n}``, ``/fills``,
``/fundingPayments``; shapes in v4-chain
``indexer/packages/postgres/src/types/websocket-message-types.ts``) and emits, through
``emit``, :class:`~perpbot.core.model.Fill` and :class:`~perpbot.core.model.FundingPayment`.

- Fills are deduplicated by the indexer's fill id (stream and REST); ``fee`` is USD
  paid (negative: rebate); ``liquidity`` MAKER/TAKER; a fill of type LIQUIDATED,
  LIQUIDATION, DELEVERAGED or OFFSETTING (``indexer/packages/postgres/src/types/fill-types.ts``
  ``FillType``) is a liquidation; a fill of an order that is not ours has
  ``client_id=-1``, ``tag="external"``.
- Positions: ``size`` signed base units (SHORT negative), ``entry_price`` USD,
  ``realized_pnl`` / ``funding`` USD; a position that is not OPEN, or of size 0, is gone.
- Funding payments come from REST (``payment`` > 0 received, USD; ``rate`` per hour),
  deduplicated by market and height.
- Balance follows the indexer's formula (comlink ``calculateEquityAndFreeCollateral``,
  v4-chain ``indexer/services/comlink/src/lib/helpers.ts``): equity = USDC + sum(size *
  oracle); free collateral = equity - sum(|size| * oracle * IMF); maintenance =
  sum(|size| * oracle * MMF), with the latest oracle prices. When a market's oracle
  price or parameters are missing, the indexer's own equity / free collateral are used.

Imports :mod:`perpbot.core.model`, :mod:`perpbot.exchanges.dydx.client_ids`,
:mod:`perpbot.exchanges.dydx.order_registry` (``VENUE``) and
:mod:`perpbot.exchanges.dydx.values` only.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any, Callable, Hashable, Iterable, Mapping

from loguru import logger

from perpbot.core.model import ZERO, Balance, Fill, FundingPayment, Liquidity, Market, Position, Side
from perpbot.exchanges.dydx.client_ids import ClientIdStore
from perpbot.exchanges.dydx.order_registry import VENUE
from perpbot.exchanges.dydx.values import D, parse_iso_ns

#: fill ``type`` values that mean the subaccount was liquidated or deleveraged
LIQUIDATION_TYPES = frozenset({"LIQUIDATED", "LIQUIDATION", "DELEVERAGED", "OFFSETTING"})


class Bounded:
    """A set that forgets its oldest members beyond ``maxlen`` (for deduplication keys)."""

    def __init__(self, maxlen: int):
        self._q: deque = deque()
        self._s: set = set()
        self.maxlen = maxlen

    def add(self, item: Hashable) -> bool:
        """Add ``item``; False when it was already there (nothing changes then)."""
        if item in self._s:
            return False
        self._s.add(item)
        self._q.append(item)
        if len(self._q) > self.maxlen:
            self._s.discard(self._q.popleft())
        return True

    def __contains__(self, item) -> bool:
        return item in self._s


class AccountLedger:
    """Fills, positions, USDC and funding payments of one subaccount (see the module docstring).

    :param ids: the client-id store (order tags for fills).
    :param order_of: indexer order id -> our client id (None: not ours).
    :param market_of: ``ticker -> Market | None`` (current parameters: IMF, MMF).
    :param oracle_of: ``ticker -> Decimal | None`` (current oracle price, USD).
    :param emit: called with each Fill / FundingPayment (on the event loop).
    :param now_ns: clock (ns).
    :param stats: the account's counters (``fills``, ``funding_payments``, ``bad_rows``
        are counted here).
    """

    def __init__(self, ids: ClientIdStore, *, order_of: Callable[[str], int | None],
                 market_of: Callable[[str], Market | None], oracle_of: Callable[[str], Decimal | None],
                 emit: Callable[[Any], None], now_ns: Callable[[], int], stats: dict[str, int]):
        self.ids = ids
        self.order_of = order_of
        self.market_of = market_of
        self.oracle_of = oracle_of
        self.emit = emit
        self.now_ns = now_ns
        self.stats = stats
        #: open positions by ticker
        self.positions: dict[str, Position] = {}
        #: the USDC asset position (USD; negative when borrowed)
        self.usdc: Decimal = ZERO
        #: the indexer's own equity / free collateral (USD), from the last REST subaccount
        self.indexer_equity: Decimal | None = None
        self.indexer_free_collateral: Decimal | None = None
        #: the latest fills, oldest first
        self.fills: deque[Fill] = deque(maxlen=10_000)
        self._fill_ids = Bounded(50_000)
        self._funding_keys = Bounded(10_000)

    # -- fills --------------------------------------------------------------------

    def fill_from_row(self, row: Mapping[str, Any]) -> Fill:
        """A :class:`Fill` from an indexer fill row (stream or REST); no state change.

        :raises KeyError, TypeError, ValueError, ArithmeticError: for a row with an unexpected shape.
        """
        our = self.order_of(str(row.get("orderId", "")))
        if our is None:
            our, tag = -1, "external"
        else:
            tag = (self.ids.get(our) or {}).get("tag", "")
        return Fill(
            client_id=our,
            ticker=str(row.get("ticker") or row.get("market")),
            side=Side.parse(row["side"]),
            price=D(row["price"]),
            size=D(row["size"]),
            fee=D(row.get("fee") or "0"),
            liquidity=Liquidity.MAKER if row.get("liquidity") == "MAKER" else Liquidity.TAKER,
            ts_ns=parse_iso_ns(row["createdAt"]) if row.get("createdAt") else self.now_ns(),
            fill_id=str(row["id"]),
            venue=VENUE,
            tag=tag,
            liquidation=str(row.get("type", "")) in LIQUIDATION_TYPES,
        )

    def apply_fill_row(self, row: Mapping[str, Any], *, emit: bool = True) -> Fill | None:
        """One fill row: stored and (with ``emit``) reported unless its id was seen.

        Returns the new Fill, or None (seen before, or a bad row: counted in
        ``stats["bad_rows"]`` and logged).
        """
        try:
            fid = str(row["id"])
            if fid in self._fill_ids:
                return None
            fill = self.fill_from_row(row)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            self.stats["bad_rows"] += 1
            logger.warning(f"dYdX fill row with an unexpected shape ignored ({type(exc).__name__}: {exc})")
            return None
        self._fill_ids.add(fill.fill_id)
        self.fills.append(fill)
        if emit:
            self.stats["fills"] += 1
            self.emit(fill)
        return fill

    def apply_rest_fills(self, rows: Iterable[Mapping[str, Any]], *, emit: bool) -> int:
        """REST fills (any order; applied oldest first): unseen ones are stored and, with
        ``emit``, reported. Returns how many were new."""
        n = 0
        for row in sorted(rows, key=lambda r: str(r.get("createdAt", ""))):
            if self.apply_fill_row(row, emit=emit) is not None:
                n += 1
        return n

    # -- positions and balance -------------------------------------------------------

    def apply_position_row(self, row: Mapping[str, Any]) -> None:
        """One perpetual position row (``market``/``ticker``, ``side``, ``size``, ``status``, ...).
        A bad row is counted in ``stats["bad_rows"]`` and logged."""
        try:
            ticker = str(row.get("market") or row.get("ticker"))
            if str(row.get("status", "OPEN")) != "OPEN":
                self.positions.pop(ticker, None)
                return
            size = abs(D(row["size"]))
            if str(row.get("side", "LONG")) == "SHORT":
                size = -size
            if size == 0:
                self.positions.pop(ticker, None)
                return
            self.positions[ticker] = Position(
                ticker=ticker,
                size=size,
                entry_price=D(row.get("entryPrice") or "0"),
                realized_pnl=D(row.get("realizedPnl") or "0"),
                funding=D(row.get("netFunding") or "0"),
                venue=VENUE,
            )
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            self.stats["bad_rows"] += 1
            logger.warning(f"dYdX position row with an unexpected shape ignored ({type(exc).__name__}: {exc})")

    def apply_asset_row(self, row: Mapping[str, Any]) -> None:
        """One asset position row: only USDC is kept (``side`` SHORT: borrowed, negative).
        A bad size is counted in ``stats["bad_rows"]``."""
        if str(row.get("symbol", "USDC")) != "USDC":
            return
        try:
            size = abs(D(row["size"]))
        except (KeyError, ArithmeticError, ValueError):
            self.stats["bad_rows"] += 1
            return
        self.usdc = -size if str(row.get("side", "LONG")) == "SHORT" else size

    def apply_subaccount(self, sub: Mapping[str, Any]) -> None:
        """A REST/snapshot subaccount (``assetPositions``, ``openPerpetualPositions``, ``equity``,
        ``freeCollateral``): USDC, the open positions (others are dropped), indexer equity and
        free collateral (USD)."""
        assets = sub.get("assetPositions") or {}
        if "USDC" in assets:
            self.apply_asset_row(assets["USDC"])
        elif not assets:
            self.usdc = ZERO
        opened = sub.get("openPerpetualPositions") or {}
        for t in list(self.positions):
            if t not in opened:
                del self.positions[t]
        for t, row in opened.items():
            self.apply_position_row({"market": t, **row})
        try:
            self.indexer_equity = D(sub["equity"]) if sub.get("equity") is not None else None
            self.indexer_free_collateral = D(sub["freeCollateral"]) if sub.get("freeCollateral") is not None else None
        except ArithmeticError:
            pass

    def balance(self) -> Balance:
        """USD amounts (collateral = USDC, equity, free collateral, initial and maintenance
        margin); the formula is in the module docstring."""
        equity = self.usdc
        imr = ZERO
        mmr = ZERO
        complete = True
        for t, p in self.positions.items():
            px = self.oracle_of(t)
            m = self.market_of(t)
            if px is None or m is None:
                complete = False
                continue
            equity += p.size * px
            notional = abs(p.size) * px
            imr += notional * m.initial_margin_fraction
            mmr += notional * m.maintenance_margin_fraction
        if not complete and self.indexer_equity is not None:
            equity = self.indexer_equity
            free = self.indexer_free_collateral if self.indexer_free_collateral is not None else equity - imr
        else:
            free = equity - imr
        return Balance(collateral=self.usdc, equity=equity, free_collateral=free, initial_margin=imr,
                       maintenance_margin=mmr, ts_ns=self.now_ns())

    # -- funding --------------------------------------------------------------------

    def apply_funding_payments(self, rows: Iterable[Mapping[str, Any]], *, emit: bool) -> int:
        """REST ``/fundingPayments`` rows (applied oldest first): each unseen (market, height)
        becomes a FundingPayment (``amount`` = ``payment``, USD, > 0 received; ``rate_1h``
        per hour; ``size`` signed base units), reported with ``emit``. A bad row is counted
        in ``stats["bad_rows"]`` and logged. Returns how many were reported."""
        n = 0
        for row in sorted(rows, key=lambda r: str(r.get("createdAt", ""))):
            try:
                ticker = str(row.get("ticker") or row.get("market"))
                key = (ticker, str(row.get("createdAtHeight") or row.get("createdAt")))
                if key in self._funding_keys:
                    continue
                size = abs(D(row.get("size") or "0"))
                if str(row.get("side", "LONG")) == "SHORT":
                    size = -size
                pay = FundingPayment(
                    ticker=ticker,
                    ts_ns=parse_iso_ns(row["createdAt"]) if row.get("createdAt") else self.now_ns(),
                    size=size,
                    oracle_price=D(row.get("oraclePrice") or row.get("price") or "0"),
                    rate_1h=D(row.get("rate") or "0"),
                    amount=D(row["payment"]),
                    venue=VENUE,
                )
            except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                self.stats["bad_rows"] += 1
                logger.warning(f"dYdX funding payment row ignored ({type(exc).__name__}: {exc})")
                continue
            self._funding_keys.add(key)
            if emit:
                n += 1
                self.stats["funding_payments"] += 1
                self.emit(pay)
        return n
