"""Markets and normalized market events: :class:`Market` and what every feed produces.

- :class:`Market`: a dYdX v4 perpetual's trading parameters (tick and step sizes,
  quantum conversions, margin fractions) with exact rounding helpers;
- market events, all subclasses of :class:`MarketEvent` (``ticker``, ``ts_ns``
  integer nanoseconds since the Unix epoch, UTC): :class:`BookSnapshot`,
  :class:`BookDelta`, :class:`Quote`, :class:`Trade`, :class:`Bar`,
  :class:`OraclePrice`, :class:`FundingRate`, :class:`MarketInfo`, :class:`FeedStatus`.

Prices USD per base unit, sizes base units, funding rates per hour. Import these
names from :mod:`perpbot.core.model`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

import attrs

from perpbot.core.model.enums import Side
from perpbot.core.model.values import ZERO, _dec, _opt_dec, _positive, ceil_to, floor_to, to_decimal


@attrs.frozen
class Market:
    """A dYdX v4 perpetual market's trading parameters.

    Conversions (chain ``protocol/x/clob/types/quantums.go``):
    ``quantums = size * 10^-atomic_resolution``;
    ``subticks = price * 10^(atomic_resolution - quantum_conversion_exponent + 6)``;
    ``step_size = step_base_quantums * 10^atomic_resolution``;
    ``tick_size = subticks_per_tick * 10^(quantum_conversion_exponent - atomic_resolution - 6)``.

    :param ticker: dYdX ticker, e.g. ``"BTC-USD"``.
    :param tick_size: price increment, USD.
    :param step_size: size increment, base units; also the minimum order size.
    :param initial_margin_fraction: base IMF (fraction, e.g. 0.02 = 50x).
    :param maintenance_margin_fraction: MMF as the indexer reports it (already IMF*fraction).
    :param open_interest_lower_cap: / ``open_interest_upper_cap``: OI caps for IMF scaling, USD
        (0/0 disables scaling).
    """

    ticker: str
    clob_pair_id: int
    tick_size: Decimal = attrs.field(converter=_dec("tick_size"), validator=_positive)
    step_size: Decimal = attrs.field(converter=_dec("step_size"), validator=_positive)
    atomic_resolution: int = -10
    quantum_conversion_exponent: int = -9
    step_base_quantums: int = 1_000_000
    subticks_per_tick: int = 100_000
    initial_margin_fraction: Decimal = attrs.field(
        default=Decimal("0.05"), converter=_dec("initial_margin_fraction"), validator=_positive
    )
    maintenance_margin_fraction: Decimal = attrs.field(
        default=Decimal("0.03"), converter=_dec("maintenance_margin_fraction"), validator=_positive
    )
    open_interest_lower_cap: Decimal = attrs.field(default=ZERO, converter=_dec("open_interest_lower_cap"))
    open_interest_upper_cap: Decimal = attrs.field(default=ZERO, converter=_dec("open_interest_upper_cap"))
    status: str = "ACTIVE"
    market_type: str = "CROSS"
    oracle_price: Decimal | None = attrs.field(default=None, converter=_opt_dec("oracle_price"))
    open_interest: Decimal = attrs.field(default=ZERO, converter=_dec("open_interest"))
    default_funding_rate_1h: Decimal = attrs.field(default=ZERO, converter=_dec("default_funding_rate_1h"))

    @property
    def min_order_size(self) -> Decimal:
        """Smallest order size, base units (one step: the chain requires quantums >= stepBaseQuantums)."""
        return self.step_size

    @property
    def base(self) -> str:
        """The base asset of the ticker: ``"BTC"`` for ``"BTC-USD"``."""
        return self.ticker.split("-")[0]

    @classmethod
    def from_indexer(cls, payload: Mapping[str, Any]) -> "Market":
        """Build from one entry of the indexer's ``/v4/perpetualMarkets`` ``markets`` map.

        :param payload: the market's JSON object (strings for every decimal field, as the
            indexer sends them; see ``indexer/services/comlink`` in dydxprotocol/v4-chain).
        :raises ValueError: when a required field is missing (naming it and the ticker) or
            a number field does not parse (naming the field).
        """
        try:
            return cls(
                ticker=payload["ticker"],
                clob_pair_id=int(payload["clobPairId"]),
                tick_size=str(payload["tickSize"]),
                step_size=str(payload["stepSize"]),
                atomic_resolution=int(payload["atomicResolution"]),
                quantum_conversion_exponent=int(payload["quantumConversionExponent"]),
                step_base_quantums=int(payload["stepBaseQuantums"]),
                subticks_per_tick=int(payload["subticksPerTick"]),
                initial_margin_fraction=str(payload["initialMarginFraction"]),
                maintenance_margin_fraction=str(payload["maintenanceMarginFraction"]),
                open_interest_lower_cap=str(payload.get("openInterestLowerCap") or "0"),
                open_interest_upper_cap=str(payload.get("openInterestUpperCap") or "0"),
                status=str(payload.get("status", "ACTIVE")),
                market_type=str(payload.get("marketType") or "CROSS"),
                oracle_price=(str(payload["oraclePrice"]) if payload.get("oraclePrice") else None),
                open_interest=str(payload.get("openInterest") or "0"),
                default_funding_rate_1h=str(payload.get("defaultFundingRate1H") or "0"),
            )
        except KeyError as exc:
            raise ValueError(f"market {payload.get('ticker', '?')}: missing field {exc.args[0]!r}") from None

    # -- rounding -----------------------------------------------------------

    def round_size(self, size: Decimal) -> Decimal:
        """Round a size (base units) DOWN to the step (never trade more than asked).

        :raises TypeError: / ValueError: for a float or non-numeric size (see :func:`to_decimal`).
        """
        return floor_to(to_decimal(size, "size"), self.step_size)

    def round_price(self, price: Decimal, side: Side) -> Decimal:
        """Round a limit price to the tick in the trader's favour.

        Buys round down and sells round up, so the order is never more aggressive
        than the price the strategy asked for. ``price`` and the result are USD.

        :raises TypeError: / ValueError: for a float or non-numeric price (see :func:`to_decimal`).
        """
        price = to_decimal(price, "price")
        if side is Side.BUY:
            return floor_to(price, self.tick_size)
        return ceil_to(price, self.tick_size)

    def round_price_aggressive(self, price: Decimal, side: Side) -> Decimal:
        """Round a worst-acceptable (marketable) price so it stays at least as permissive.

        Buys round up, sells round down (used for IOC market orders' price bounds). USD.

        :raises TypeError: / ValueError: for a float or non-numeric price (see :func:`to_decimal`).
        """
        price = to_decimal(price, "price")
        if side is Side.BUY:
            return ceil_to(price, self.tick_size)
        return floor_to(price, self.tick_size)

    def size_to_quantums(self, size: Decimal) -> int:
        """Exact base quantums for a size in base units: ``size * 10^-atomic_resolution``.

        Source: dydxprotocol/v4-chain ``protocol/x/clob/types/quantums.go``.

        :raises ValueError: when the size is not a whole number of quantums, naming the
            size and the ticker.
        """
        q = to_decimal(size, "size").scaleb(-self.atomic_resolution)
        if q != q.to_integral_value():
            raise ValueError(f"size {size} of {self.ticker} is not a multiple of 10^{self.atomic_resolution}")
        return int(q)

    def price_to_subticks(self, price: Decimal) -> int:
        """Exact subticks for a price in USD:
        ``price * 10^(atomic_resolution - quantum_conversion_exponent + 6)``.

        Source: dydxprotocol/v4-chain ``protocol/x/clob/types/quantums.go``.

        :raises ValueError: when the price is not a whole number of subticks, naming the
            price and the ticker.
        """
        s = to_decimal(price, "price").scaleb(self.atomic_resolution - self.quantum_conversion_exponent + 6)
        if s != s.to_integral_value():
            raise ValueError(f"price {price} of {self.ticker} is not representable in subticks")
        return int(s)



Level = tuple
"""A book level: ``(price, size)``, a pair of Decimals (USD, base units)."""


@attrs.frozen(slots=True)
class MarketEvent:
    """Base of normalized market events: ``ticker`` (dYdX ticker) and ``ts_ns``."""

    ticker: str
    ts_ns: int


@attrs.frozen(slots=True)
class BookSnapshot(MarketEvent):
    """A full L2 book: ``bids`` best first (descending), ``asks`` best first (ascending).

    Levels are ``(price, size)`` Decimal pairs; replaces the whole book.
    """

    bids: tuple = ()
    asks: tuple = ()


@attrs.frozen(slots=True)
class BookDelta(MarketEvent):
    """Level updates with ABSOLUTE sizes; a size of 0 deletes the level (dYdX and Binance semantics)."""

    bids: tuple = ()
    asks: tuple = ()


@attrs.frozen(slots=True)
class Quote(MarketEvent):
    """The venue's own top of book (BBO): best ``bid``/``ask`` prices (USD) and
    ``bid_size``/``ask_size`` (base units)."""

    bid: Decimal
    bid_size: Decimal
    ask: Decimal
    ask_size: Decimal


@attrs.frozen(slots=True)
class Trade(MarketEvent):
    """A public trade; ``side`` is the TAKER's side. ``price`` USD, ``size`` base units."""

    price: Decimal
    size: Decimal
    side: Side
    trade_id: str = ""


@attrs.frozen(slots=True)
class Bar(MarketEvent):
    """An OHLCV bar; ``ts_ns`` is the bar's CLOSE time, ``interval_s`` its length in seconds.

    ``volume`` is in base units.
    """

    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    interval_s: int = 60


@attrs.frozen(slots=True)
class OraclePrice(MarketEvent):
    """dYdX oracle price, USD: margin, funding and liquidation are marked to it."""

    price: Decimal


@attrs.frozen(slots=True)
class FundingRate(MarketEvent):
    """A funding rate, normalized to a 1-hour rate.

    :param rate_1h: per-hour rate (fraction). Positive: longs pay shorts.
    :param settled: True for a rate that was paid at ``ts_ns`` (historical funding);
        False for a running prediction (dYdX ``nextFundingRate``).
    :param interval_h: the venue's native funding interval in hours (1 for dYdX, 8 for Binance).
    :param oracle_price: the oracle/mark price at settlement when the source gives it.
    :param next_funding_ns: for a prediction, the venue's next funding time (Unix ns) when the
        source gives it (Binance ``premiumIndex``/``markPriceUpdate`` ``nextFundingTime``/``T``;
        Hyperliquid: the top of the next hour), else None. A journal blob stores it only when
        set (``metadata["omit_default"]``), so state saved before the field existed re-encodes
        byte for byte (``tests/core/test_model_names.py``).
    """

    rate_1h: Decimal
    settled: bool = False
    interval_h: int = 1
    oracle_price: Decimal | None = None
    next_funding_ns: int | None = attrs.field(default=None, metadata={"omit_default": True})


@attrs.frozen(slots=True)
class MarketInfo(MarketEvent):
    """Market parameters (or an update of them: IMF/MMF, open interest, status).

    :param market: the full, updated :class:`Market` (the default ``None`` is never
        emitted by a feed).
    """

    market: Market = attrs.field(default=None)


@attrs.frozen(slots=True)
class FeedStatus(MarketEvent):
    """Feed health for a market: ``healthy`` False pauses decisions for it, ``reason`` says why.

    An unhealthy status also marks the market's book as not ready: decisions stay paused
    ("no book snapshot yet") until the feed sends a fresh :class:`BookSnapshot`, even after a
    healthy status. Feeds therefore resync the book (snapshot) after every unhealthy spell.
    """

    healthy: bool = True
    reason: str = ""
