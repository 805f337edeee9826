"""Enumerations of the domain model: sides, order types, time in force, statuses, liquidity, margin mode.

Values are the dYdX v4 indexer API strings where dYdX has one (order ``status``,
``type``, ``timeInForce`` and ``side`` fields of the indexer's order and fill
payloads). Imports nothing of perpbot.

On Python 3.11 reading a member as a class attribute (``Side.BUY``) is slow: ``EnumType``
defines ``__getattr__``, which takes the lookup off the interpreter's fast path (about
1,000 machine instructions a read, against a few dozen for a module global), and an enum's
``__hash__`` is Python code. The properties here and the order path read members through
the module constants below (``BUY``, ``SELL``, ...: the members themselves) and test
membership by identity in tuples, not by hashing.
"""

from __future__ import annotations

import enum


class Side(enum.Enum):
    """Order or trade side. For trades, the taker's side."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for BUY, -1 for SELL."""
        return 1 if self is BUY else -1

    @property
    def opposite(self) -> "Side":
        """The other side: SELL for BUY, BUY for SELL (the side that closes a position)."""
        return SELL if self is BUY else BUY

    @classmethod
    def parse(cls, value: "Side | str") -> "Side":
        """Accept ``Side``, "buy"/"sell", "long"/"short", "b"/"s" (any case, blanks ignored).

        :raises ValueError: for anything else, naming the field ``side`` and the value.
        """
        if isinstance(value, Side):
            return value
        v = str(value).strip().upper()
        if v in ("BUY", "LONG", "B"):
            return BUY
        if v in ("SELL", "SHORT", "S"):
            return SELL
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
        """True for stop and take-profit types (they need a ``trigger_price``, USD)."""
        return self not in _UNCONDITIONAL


class TimeInForce(enum.Enum):
    """dYdX time in force. GTT rests until its good-til; FOK is deprecated on dYdX and absent."""

    GTT = "GTT"
    IOC = "IOC"
    POST_ONLY = "POST_ONLY"


class OrderStatus(enum.Enum):
    """Order lifecycle states (dYdX indexer names where they exist).

    PENDING is perpbot's own: sent, not yet acknowledged by the venue.
    """

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
        """True for FILLED, CANCELED, EXPIRED and REJECTED: the order will not change again.

        BEST_EFFORT_CANCELED is not terminal (dYdX may still fill a short-term order
        until its good-til block).
        """
        return self in _TERMINAL


class Liquidity(enum.Enum):
    """Which side of a match a fill was: MAKER (resting order) or TAKER (crossing order).

    Selects the fee rate (dYdX fee tiers have separate maker and taker rates).
    """

    MAKER = "MAKER"
    TAKER = "TAKER"


class MarginMode(enum.Enum):
    """CROSS positions share the main subaccount; ISOLATED ones live in a child subaccount."""

    CROSS = "CROSS"
    ISOLATED = "ISOLATED"


# -- the members as module constants (see the module docstring) ------------------------------

#: ``Side.BUY`` and ``Side.SELL``
BUY, SELL = Side.BUY, Side.SELL
#: the order types that are not conditional (no trigger price)
_UNCONDITIONAL = (OrderType.MARKET, OrderType.LIMIT)
#: the order types that need a limit price
PRICED_TYPES = (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT)
#: the statuses after which an order does not change again
_TERMINAL = (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED)
#: ``OrderStatus.PENDING``
PENDING = OrderStatus.PENDING
