"""Domain model: exact, immutable values for markets, market events, orders and accounts.

Money, prices and sizes are :class:`decimal.Decimal` everywhere on this API; a
``float`` where a price, size or amount is expected raises :class:`TypeError`.
Values are ``attrs.frozen``; change them with :func:`attrs.evolve`. Timestamps
are integer nanoseconds since the Unix epoch (UTC), from the injected clock or
the data.

Units, unless a field says otherwise:

- prices in USD (quote, USDC) per 1 base unit;
- sizes in base units (BTC for BTC-USD), signed only where the name says so;
- fees, PnL, funding and balances in USD (USDC);
- funding rates per hour (dYdX's native interval; other venues' rates are
  converted with their ``interval_h``).
"""

from __future__ import annotations

import enum
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any, Mapping

import attrs

ZERO = Decimal(0)
ONE = Decimal(1)


# --------------------------------------------------------------------------
# Decimal helpers
# --------------------------------------------------------------------------


def to_decimal(value: Any, field: str = "value") -> Decimal:
    """Convert ``value`` (Decimal, int or str) to a finite Decimal.

    :raises TypeError: for a float (binary floats never carry money here).
    :raises ValueError: for a non-numeric or non-finite value, naming ``field``.
    """
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, bool):
        raise TypeError(f"{field}: expected a decimal number, got bool {value!r}")
    elif isinstance(value, int):
        return Decimal(value)
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{field}: not a number: {value!r}") from None
    elif isinstance(value, float):
        raise TypeError(
            f"{field}: got float {value!r}; pass a Decimal or a string (floats are inexact for money)"
        )
    else:
        raise TypeError(f"{field}: expected Decimal, int or str, got {type(value).__name__}")
    if not d.is_finite():
        raise ValueError(f"{field}: must be finite, got {value!r}")
    return d


def _dec(field_name: str):
    def convert(value: Any) -> Decimal:
        return to_decimal(value, field_name)

    return convert


def _opt_dec(field_name: str):
    def convert(value: Any) -> Decimal | None:
        return None if value is None else to_decimal(value, field_name)

    return convert


def _non_negative(instance, attribute, value):
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name}: must not be negative, got {value}")


def _positive(instance, attribute, value):
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name}: must be positive, got {value}")


def floor_to(value: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of ``step`` that is <= ``value`` (exact)."""
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def ceil_to(value: Decimal, step: Decimal) -> Decimal:
    """Smallest multiple of ``step`` that is >= ``value`` (exact)."""
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def is_multiple(value: Decimal, step: Decimal) -> bool:
    """True when ``value`` is an exact multiple of ``step``."""
    return (value % step) == 0


# --------------------------------------------------------------------------
# Enums
# --------------------------------------------------------------------------


class Side(enum.Enum):
    """Order or trade side. For trades, the taker's side."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for BUY, -1 for SELL."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> "Side":
        return Side.SELL if self is Side.BUY else Side.BUY

    @classmethod
    def parse(cls, value: "Side | str") -> "Side":
        """Accept ``Side``, "buy"/"sell", "long"/"short" (any case)."""
        if isinstance(value, Side):
            return value
        v = str(value).strip().upper()
        if v in ("BUY", "LONG", "B"):
            return cls.BUY
        if v in ("SELL", "SHORT", "S"):
            return cls.SELL
        raise ValueError(f"side: expected buy or sell, got {value!r}")


class OrderType(enum.Enum):
    """Order types. On dYdX a MARKET order is a short-term IOC limit order at a worst price."""

    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_MARKET = "STOP_MARKET"
    STOP_LIMIT = "STOP_LIMIT"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"
    TAKE_PROFIT_LIMIT = "TAKE_PROFIT_LIMIT"

    @property
    def is_conditional(self) -> bool:
        return self not in (OrderType.MARKET, OrderType.LIMIT)


class TimeInForce(enum.Enum):
    """dYdX time in force. GTT rests until its good-til; FOK is deprecated on dYdX and absent."""

    GTT = "GTT"
    IOC = "IOC"
    POST_ONLY = "POST_ONLY"


class OrderStatus(enum.Enum):
    """Order lifecycle states (dYdX indexer names where they exist)."""

    PENDING = "PENDING"  # sent, not yet acknowledged
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    BEST_EFFORT_CANCELED = "BEST_EFFORT_CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"
    UNTRIGGERED = "UNTRIGGERED"

    @property
    def is_terminal(self) -> bool:
        return self in (
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.EXPIRED,
            OrderStatus.REJECTED,
        )


class Liquidity(enum.Enum):
    MAKER = "MAKER"
    TAKER = "TAKER"


class MarginMode(enum.Enum):
    """CROSS positions share the main subaccount; ISOLATED ones live in a child subaccount."""

    CROSS = "CROSS"
    ISOLATED = "ISOLATED"


# --------------------------------------------------------------------------
# Market
# --------------------------------------------------------------------------


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
        return self.ticker.split("-")[0]

    @classmethod
    def from_indexer(cls, payload: Mapping[str, Any]) -> "Market":
        """Build from one entry of the indexer's ``/v4/perpetualMarkets`` ``markets`` map.

        :raises DataError-like ValueError: when a required field is missing, naming it.
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
        """Round a size DOWN to the step (never trade more than asked)."""
        return floor_to(to_decimal(size, "size"), self.step_size)

    def round_price(self, price: Decimal, side: Side) -> Decimal:
        """Round a limit price to the tick in the trader's favour.

        Buys round down and sells round up, so the order is never more aggressive
        than the price the strategy asked for.
        """
        price = to_decimal(price, "price")
        if side is Side.BUY:
            return floor_to(price, self.tick_size)
        return ceil_to(price, self.tick_size)

    def round_price_aggressive(self, price: Decimal, side: Side) -> Decimal:
        """Round a worst-acceptable (marketable) price so it stays at least as permissive.

        Buys round up, sells round down (used for IOC market orders' price bounds).
        """
        price = to_decimal(price, "price")
        if side is Side.BUY:
            return ceil_to(price, self.tick_size)
        return floor_to(price, self.tick_size)

    def size_to_quantums(self, size: Decimal) -> int:
        """Exact base quantums for an aligned size; raises ValueError if not a step multiple."""
        q = to_decimal(size, "size").scaleb(-self.atomic_resolution)
        if q != q.to_integral_value():
            raise ValueError(f"size {size} of {self.ticker} is not a multiple of 10^{self.atomic_resolution}")
        return int(q)

    def price_to_subticks(self, price: Decimal) -> int:
        """Exact subticks for a tick-aligned price; raises ValueError otherwise."""
        s = to_decimal(price, "price").scaleb(self.atomic_resolution - self.quantum_conversion_exponent + 6)
        if s != s.to_integral_value():
            raise ValueError(f"price {price} of {self.ticker} is not representable in subticks")
        return int(s)


# --------------------------------------------------------------------------
# Market events (normalized; every feed produces these)
# --------------------------------------------------------------------------

Level = tuple  # (price: Decimal, size: Decimal)


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
    """The venue's own top of book (BBO): best bid/ask price and size."""

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
    """

    rate_1h: Decimal
    settled: bool = False
    interval_h: int = 1
    oracle_price: Decimal | None = None


@attrs.frozen(slots=True)
class MarketInfo(MarketEvent):
    """Market parameters (or an update of them: IMF/MMF, open interest, status)."""

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


# --------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------


@attrs.frozen
class OrderParams:
    """What a strategy wants to trade (an order intent), before sizing and risk.

    :param size: base units; ``None`` lets the position sizer choose.
    :param price: limit price USD (required for LIMIT and *_LIMIT types).
    :param trigger_price: for conditional (stop / take-profit) orders, USD.
    :param reduce_only: dYdX accepts reduce-only only with IOC (validated by the exchange).
    :param good_til_s: lifetime in seconds for resting orders (long-term / stateful on dYdX);
        ``None`` uses the exchange default.
    :param tag: free text the strategy uses to recognise its orders (e.g. ``"grid-open"``).
    :param reason: why the strategy wants this order (shown and journaled).
    :param venue: exchange name for multi-venue strategies; ``None`` means the primary exchange.
    """

    ticker: str
    side: Side = attrs.field(converter=Side.parse)
    order_type: OrderType = OrderType.MARKET
    size: Decimal | None = attrs.field(default=None, converter=_opt_dec("size"), validator=_positive)
    price: Decimal | None = attrs.field(default=None, converter=_opt_dec("price"), validator=_positive)
    trigger_price: Decimal | None = attrs.field(
        default=None, converter=_opt_dec("trigger_price"), validator=_positive
    )
    time_in_force: TimeInForce = TimeInForce.GTT
    reduce_only: bool = False
    post_only: bool = False
    good_til_s: int | None = None
    margin_mode: MarginMode = MarginMode.CROSS
    tag: str = ""
    reason: str = ""
    venue: str | None = None
    slippage: Decimal | None = attrs.field(default=None, converter=_opt_dec("slippage"))

    def __attrs_post_init__(self):
        if self.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT) and (
            self.price is None
        ):
            raise ValueError(f"price: required for a {self.order_type.value} order on {self.ticker}")
        if self.order_type.is_conditional and self.trigger_price is None:
            raise ValueError(f"trigger_price: required for a {self.order_type.value} order on {self.ticker}")


@attrs.frozen
class OrderRequest:
    """A sized, risk-approved order ready for an exchange client.

    ``client_id`` is unique per bot instance (dYdX: fixed32, recoverable after a
    restart so an order is never sent twice).
    """

    client_id: int
    ticker: str
    side: Side
    size: Decimal = attrs.field(converter=_dec("size"), validator=_positive)
    order_type: OrderType = OrderType.MARKET
    price: Decimal | None = attrs.field(default=None, converter=_opt_dec("price"))
    trigger_price: Decimal | None = attrs.field(default=None, converter=_opt_dec("trigger_price"))
    time_in_force: TimeInForce = TimeInForce.GTT
    reduce_only: bool = False
    post_only: bool = False
    good_til_s: int | None = None
    margin_mode: MarginMode = MarginMode.CROSS
    tag: str = ""
    reason: str = ""
    venue: str | None = None
    slippage: Decimal | None = attrs.field(default=None, converter=_opt_dec("slippage"))

    @classmethod
    def from_params(cls, params: OrderParams, client_id: int, size: Decimal) -> "OrderRequest":
        return cls(
            client_id=client_id,
            ticker=params.ticker,
            side=params.side,
            size=size,
            order_type=params.order_type,
            price=params.price,
            trigger_price=params.trigger_price,
            time_in_force=params.time_in_force,
            reduce_only=params.reduce_only,
            post_only=params.post_only,
            good_til_s=params.good_til_s,
            margin_mode=params.margin_mode,
            tag=params.tag,
            reason=params.reason,
            venue=params.venue,
            slippage=params.slippage,
        )


@attrs.frozen
class OrderResult:
    """What an exchange says about a place/cancel request.

    ``success`` False carries ``error`` (the venue's reason, e.g. the chain's raw log).
    ``filled_size``/``avg_price`` are known at once for IOC orders on the simulator;
    live venues report fills later as :class:`Fill` events.
    """

    success: bool
    client_id: int | None = None
    ticker: str = ""
    status: OrderStatus = OrderStatus.PENDING
    filled_size: Decimal = ZERO
    avg_price: Decimal | None = None
    error: str = ""
    exchange_order_id: str = ""


@attrs.frozen
class OrderInfo:
    """An order's current state as the exchange knows it."""

    client_id: int
    ticker: str
    side: Side
    size: Decimal
    price: Decimal | None
    status: OrderStatus
    order_type: OrderType = OrderType.LIMIT
    filled_size: Decimal = ZERO
    reduce_only: bool = False
    post_only: bool = False
    time_in_force: TimeInForce = TimeInForce.GTT
    tag: str = ""
    created_ns: int = 0
    exchange_order_id: str = ""
    venue: str = ""

    @property
    def remaining(self) -> Decimal:
        return self.size - self.filled_size


@attrs.frozen
class OrderUpdate:
    """An order's state changed (acknowledged, partially filled, canceled, expired...)."""

    client_id: int
    ticker: str
    status: OrderStatus
    ts_ns: int
    filled_size: Decimal = ZERO
    reason: str = ""
    venue: str = ""
    tag: str = ""


@attrs.frozen
class Fill:
    """One execution of one of our orders.

    :param fee: USD paid (negative is a rebate).
    :param liquidity: MAKER or TAKER.
    :param liquidation: True when the fill came from a liquidation.
    """

    client_id: int
    ticker: str
    side: Side
    price: Decimal = attrs.field(converter=_dec("price"), validator=_positive)
    size: Decimal = attrs.field(converter=_dec("size"), validator=_positive)
    fee: Decimal = attrs.field(converter=_dec("fee"))
    liquidity: Liquidity
    ts_ns: int
    fill_id: str = ""
    venue: str = ""
    tag: str = ""
    liquidation: bool = False


@attrs.frozen
class FundingPayment:
    """Funding booked on a position: ``amount`` USD, positive = received.

    ``amount = -size * oracle_price * rate_1h`` (docs ``funding.mdx``), per hour.
    """

    ticker: str
    ts_ns: int
    size: Decimal
    oracle_price: Decimal
    rate_1h: Decimal
    amount: Decimal
    venue: str = ""


@attrs.frozen
class Liquidation:
    """The venue (or simulator) liquidated a position; ``fee`` to the insurance fund, USD."""

    ticker: str
    ts_ns: int
    size: Decimal
    price: Decimal
    fee: Decimal
    reason: str = ""
    venue: str = ""


@attrs.frozen
class Position:
    """A perpetual position.

    :param size: signed base units (positive long, negative short).
    :param entry_price: average entry price, USD.
    :param realized_pnl: closed PnL, USD, before fees and funding.
    :param fees: fees paid on this market, USD.
    :param funding: funding received (+) or paid (-) on this market, USD.
    """

    ticker: str
    size: Decimal = ZERO
    entry_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    margin_mode: MarginMode = MarginMode.CROSS
    venue: str = ""

    @property
    def side(self) -> Side | None:
        if self.size > 0:
            return Side.BUY
        if self.size < 0:
            return Side.SELL
        return None

    def notional(self, price: Decimal) -> Decimal:
        return abs(self.size) * price

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        return self.size * (mark - self.entry_price)


@attrs.frozen
class Balance:
    """Account summary, USD.

    :param collateral: USDC asset position (signed; dYdX's ``Q``).
    :param equity: net collateral = collateral + sum(size * mark).
    :param free_collateral: equity - total initial margin.
    :param initial_margin: / ``maintenance_margin``: totals over positions.
    """

    collateral: Decimal
    equity: Decimal
    free_collateral: Decimal
    initial_margin: Decimal = ZERO
    maintenance_margin: Decimal = ZERO
    ts_ns: int = 0

    @property
    def margin_usage(self) -> Decimal:
        return self.initial_margin / self.equity if self.equity > 0 else Decimal("Infinity")

    @property
    def available(self) -> Decimal:
        """Free collateral floored at zero (what a new order can use)."""
        return max(self.free_collateral, ZERO)


def finite_positive(value: Decimal) -> bool:
    """True when ``value`` is a finite positive Decimal (used by feeds to reject bad prices)."""
    return value.is_finite() and value > 0


def is_float(value: Any) -> bool:
    return isinstance(value, float) or (isinstance(value, Decimal) and not value.is_finite())


__all__ = [n for n in dir() if not n.startswith("_") and n not in ("annotations", "enum", "attrs")]
