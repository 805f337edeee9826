"""Balance manager (TTL cache) and leverage calculator that feed the position sizers.

The bot keeps one :class:`BalanceManager` per venue over ``exchange.get_balance`` and
sizes every order from it: the cached balance while it is fresh, and a forced fetch
(then a second sizing) when the sized order's notional reaches ``large_order_usd``.

Seed 004 ("signal execution with leverage and balance") describes three services:
a ``BalanceManager`` that fetches and caches the account balance for 5-10 s and
refreshes it before large trades, a ``LeverageCalculator`` (max, current and
available leverage), and the ``PositionSizer`` (see :mod:`perpbot.plugins.sizers`).

Units: USD for balances and notionals, ``x`` (times equity) for leverage.

Formulas (seed 004, with dYdX's definitions from v4-abacus
``calculator/SubaccountCalculator.kt``):

- ``current_leverage = sum(|S_i| * P_i) / equity``
- ``max_leverage = min(configured max, 1 / IMF)`` where IMF is the strictest
  (largest) initial margin fraction among the markets considered (dYdX's per-market
  maximum leverage is ``1 / IMF``)
- ``available_leverage = max(0, max_leverage - current_leverage)``
- ``margin_ratio = equity / (total_notional / max_leverage)`` (seed 004; ``None`` when flat)
- ``maintenance_margin_ratio = TMMR / (total_notional / max_leverage)``: the value
  ``margin_ratio`` must stay above (below it the account is liquidatable, since
  ``equity < TMMR`` <=> ``margin_ratio < maintenance_margin_ratio``).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any, Awaitable, Callable, Mapping

import attrs
from loguru import logger

from perpbot.core.errors import DataError
from perpbot.core.margin._exact import _DIV
from perpbot.core.model import ZERO, Balance, Market, Position

_ONE = Decimal(1)

NS = 1_000_000_000


@attrs.frozen
class BalanceInfo:
    """Seed 004's ``BalanceInfo``, USD.

    :param total: account equity (net collateral).
    :param available: free collateral floored at 0 (what a new order can use).
    :param locked: initial margin held by open positions.
    :param ts_ns: when the balance was fetched (clock ns).
    """

    total: Decimal
    available: Decimal
    locked: Decimal
    ts_ns: int

    @classmethod
    def from_balance(cls, balance: Balance, ts_ns: int) -> "BalanceInfo":
        """Summarise a :class:`~perpbot.core.model.Balance` (USD): ``total`` = equity,
        ``available`` = free collateral floored at 0, ``locked`` = initial margin."""
        return cls(
            total=balance.equity,
            available=balance.available,
            locked=balance.initial_margin,
            ts_ns=ts_ns,
        )


class BalanceManager:
    """Fetch the account balance and cache it for ``ttl_s`` seconds of clock time.

    :param fetch: ``async () -> Balance`` (e.g. ``exchange.get_balance``).
    :param clock: the injected :class:`~perpbot.core.clock.Clock` (``now_ns()``).
    :param ttl_s: cache lifetime in seconds (seed 004: 5-10 s; default 5).
    :param large_order_usd: orders with at least this notional (USD) force a fresh
        fetch (:meth:`for_order`): "always fresh check before large trades" (seed 004).

    Concurrent callers share one in-flight fetch. A failed fetch raises (the caller
    decides; a stale balance is never silently returned past its TTL).
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[Balance]],
        clock: Any,
        ttl_s: float = 5.0,
        large_order_usd: Decimal = Decimal("10000"),
    ):
        if ttl_s < 0:
            raise ValueError(f"ttl_s: must not be negative, got {ttl_s}")
        if isinstance(large_order_usd, float):
            raise TypeError("large_order_usd: pass a Decimal, not a float")
        self._fetch = fetch
        self._clock = clock
        self.ttl_ns = int(Decimal(str(ttl_s)) * NS)
        self.large_order_usd = Decimal(large_order_usd)
        self._cached: Balance | None = None
        self._fetched_ns: int | None = None
        self._inflight: asyncio.Future | None = None
        self.fetches = 0  # how many times the venue was asked (tests, stats)

    @property
    def cached(self) -> Balance | None:
        """The cached balance, fresh or not (None before the first fetch)."""
        return self._cached

    def age_s(self) -> float | None:
        """Age of the cached balance in seconds of clock time, None before the first fetch."""
        if self._fetched_ns is None:
            return None
        return (self._clock.now_ns() - self._fetched_ns) / NS

    def is_fresh(self) -> bool:
        """True when a balance was fetched less than ``ttl_s`` seconds of clock time ago."""
        return self._fetched_ns is not None and self._clock.now_ns() - self._fetched_ns < self.ttl_ns

    async def get(self) -> Balance:
        """The balance, from the cache while it is younger than the TTL."""
        if self.is_fresh():
            return self._cached  # type: ignore[return-value]
        return await self.refresh()

    async def refresh(self) -> Balance:
        """Fetch now (forced), sharing one request among concurrent callers."""
        if self._inflight is not None:
            return await asyncio.shield(self._inflight)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        self._inflight = fut
        try:
            bal = await self._fetch()
            if not isinstance(bal, Balance):
                raise TypeError(f"balance fetch returned {type(bal).__name__}, not a Balance")
            self.fetches += 1
            self._cached = bal
            self._fetched_ns = self._clock.now_ns()
            fut.set_result(bal)
            return bal
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: the caller gets the exception directly
            raise
        finally:
            self._inflight = None

    async def for_order(self, notional_usd: Decimal) -> Balance:
        """The balance to size an order of ``notional_usd``: forced fresh for large orders."""
        if abs(notional_usd) >= self.large_order_usd:
            logger.debug(f"balance refresh forced before a large order ({notional_usd} USD)")
            return await self.refresh()
        return await self.get()

    async def info(self) -> BalanceInfo:
        """Seed 004's ``BalanceInfo`` (total, available, locked) from :meth:`get`."""
        bal = await self.get()
        return BalanceInfo.from_balance(bal, self._fetched_ns or 0)


@attrs.frozen
class LeverageInfo:
    """Seed 004's ``LeverageInfo``.

    :param max_leverage: allowed leverage, x (configured cap and the markets' 1/IMF).
    :param current_leverage: ``gross notional / equity``, x.
    :param available_leverage: ``max(0, max - current)``, x.
    :param margin_ratio: ``equity / (gross notional / max_leverage)``; None when flat.
    :param maintenance_margin_ratio: ``TMMR / (gross notional / max_leverage)``: the
        ratio below which the account is liquidatable; None when flat.
    :param equity: USD. :param gross_notional: USD. :param maintenance_margin: USD.
    """

    max_leverage: Decimal
    current_leverage: Decimal
    available_leverage: Decimal
    margin_ratio: Decimal | None
    maintenance_margin_ratio: Decimal | None
    equity: Decimal
    gross_notional: Decimal
    maintenance_margin: Decimal


#: id(market) -> (the Market, its maximum leverage, IMF as ``1 / that``): the answers of
#: :func:`market_max_leverage` and :func:`market_imf` per frozen :class:`Market` object (a new
#: object, e.g. with a new oracle price, is computed afresh; bounded, cleared when full)
_LEVERAGE: dict[int, tuple[Market, Decimal, Decimal]] = {}
_LEVERAGE_KEPT = 1024


def market_max_leverage(market: Market) -> Decimal:
    """A market's maximum leverage ``1 / IMF`` (x), with the OI-scaled IMF when the market
    has open-interest caps (``perpbot.core.margin.adjusted_initial_margin_fraction``; chain
    ``protocol/x/perpetuals/types/liquidity_tier.go`` ``GetAdjustedInitialMarginPpm``).

    The base IMF is used, unscaled, when the market has no upper cap (scaling disabled on
    chain, exact) or carries no oracle price (market metadata without prices, e.g. the
    replay's snapshot: the OI notional is unknown there, so the scaling cannot be applied).

    The division is done at 28 digits, half-even (Python's default context), whatever
    context the caller has set; the answer is kept per :class:`Market` object (frozen: its
    fields cannot change) and given again.

    :raises DataError: naming the market when its IMF or caps are not valid chain values
        (an IMF that is not whole ppm, caps with sub-quantum digits or lower > upper); never
        the unscaled IMF in place of the scaled one.
    """
    kept = _LEVERAGE.get(id(market))
    if kept is not None and kept[0] is market:
        return kept[1]
    return _kept_leverage(market)[1]


def market_imf(market: Market) -> Decimal:
    """``1 / market_max_leverage(market)`` (the IMF the leverage stands for, at 28 digits
    half-even), kept per :class:`Market` object as :func:`market_max_leverage` is.

    :raises DataError: as :func:`market_max_leverage`.
    """
    kept = _LEVERAGE.get(id(market))
    if kept is not None and kept[0] is market:
        return kept[2]
    return _kept_leverage(market)[2]


def _kept_leverage(market: Market) -> tuple[Market, Decimal, Decimal]:
    lev = _max_leverage(market)
    kept = (market, lev, _DIV.divide(_ONE, lev))
    if type(market) is Market:  # exactly the frozen class: a subclass might compute otherwise
        if len(_LEVERAGE) >= _LEVERAGE_KEPT:
            _LEVERAGE.clear()
        _LEVERAGE[id(market)] = kept
    return kept


def _max_leverage(market: Market) -> Decimal:
    imf = market.initial_margin_fraction
    if market.open_interest_upper_cap > 0 and market.oracle_price:
        from perpbot.core import margin

        try:
            imf = margin.adjusted_initial_margin_fraction(
                imf,
                market.open_interest * market.oracle_price,
                market.open_interest_lower_cap,
                market.open_interest_upper_cap,
            )
        except (ValueError, TypeError) as exc:
            raise DataError(f"maximum leverage of {market.ticker} unknown: {exc}") from exc
    return _DIV.divide(_ONE, imf)  # perpbot.core.margin's quotients: 28 digits, half-even, whatever the caller's context


class LeverageCalculator:
    """Max, current and available leverage of an account (seed 004).

    :param max_leverage: the configured account cap, x (e.g. 5). The venue's own
        limit ``1 / IMF`` of each market also applies (the smaller wins).
    """

    def __init__(self, max_leverage: Decimal = Decimal("5")):
        if isinstance(max_leverage, float):
            raise TypeError("max_leverage: pass a Decimal, not a float")
        if max_leverage <= 0:
            raise ValueError(f"max_leverage: must be positive, got {max_leverage}")
        self.max_leverage = Decimal(max_leverage)

    def max_leverage_for(self, market: Market | None) -> Decimal:
        """``min(configured, 1/IMF of market)``, x."""
        if market is None:
            return self.max_leverage
        return min(self.max_leverage, market_max_leverage(market))

    @staticmethod
    def available(max_leverage: Decimal, current_leverage: Decimal) -> Decimal:
        """Seed 004 ``calculate_available_leverage``: ``max(0, max - current)``."""
        return max(ZERO, max_leverage - current_leverage)

    def info(
        self,
        balance: Balance,
        positions: Mapping[str, Position],
        marks: Mapping[str, Decimal],
        markets: Mapping[str, Market] | None = None,
        market: Market | None = None,
    ) -> LeverageInfo:
        """Leverage figures of the account.

        :param balance: the venue's :class:`~perpbot.core.model.Balance` (USD).
        :param positions: open positions by ticker; each is valued at ``marks[ticker]``
            (falling back to its entry price).
        :param markets: market parameters by ticker, for each position's MMF.
        :param market: the market about to be traded: its ``1/IMF`` caps ``max_leverage``.
        """
        markets = markets or {}
        gross = ZERO
        mmr = ZERO
        max_lev = self.max_leverage_for(market)
        for t, p in positions.items():
            if not p.size:
                continue
            px = marks.get(t) or p.entry_price
            n = abs(p.size) * px
            gross += n
            m = markets.get(t)
            if m is not None:
                mmr += n * m.maintenance_margin_fraction
                max_lev = min(max_lev, market_max_leverage(m))
        equity = balance.equity
        if equity > 0:
            current = gross / equity
        else:
            current = Decimal("Infinity") if gross > 0 else ZERO
        if gross > 0:
            base = gross / max_lev
            margin_ratio = equity / base
            mm_ratio = (mmr / base) if mmr else None
        else:
            margin_ratio = None
            mm_ratio = None
        avail = self.available(max_lev, current) if current.is_finite() else ZERO
        return LeverageInfo(
            max_leverage=max_lev,
            current_leverage=current,
            available_leverage=avail,
            margin_ratio=margin_ratio,
            maintenance_margin_ratio=mm_ratio,
            equity=equity,
            gross_notional=gross,
            maintenance_margin=mmr,
        )
