"""The grid's bookkeeping records: mutable, private to the strategy, JSON round-trippable.

:class:`OpenOrder` (the take-profit grid's one open order), :class:`CloseOrder` (a
take-profit close order and the open fills it closes), :class:`Level` (one level of the
range grid) and :class:`GridStats` (cycles and their profit). Prices USD, sizes base
units, fees USD, times ns since the epoch. Also the order tags and constants both modes
share. Imports only ``perpbot``.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Mapping

import attrs

from perpbot import Side

D = Decimal
ZERO = D(0)
NS = 1_000_000_000
#: tag of the take-profit grid's open order
OPEN_TAG = "grid-open"
#: tag of a take-profit close order
CLOSE_TAG = "grid-close"
#: tag prefix of a range-grid level order (``grid-level-<i>``)
LEVEL_TAG = "grid-level-"

__all__ = ["OpenOrder", "CloseOrder", "Level", "GridStats", "OPEN_TAG", "CLOSE_TAG", "LEVEL_TAG"]


def _d(x) -> Decimal | None:
    return None if x is None else D(str(x))


def _s(x) -> str | None:
    return None if x is None else str(x)


@attrs.define
class OpenOrder:
    """The one open order of the take-profit grid (``cid`` None until the bot shows it).

    Seed 002's "State 1: place open order". Fields: ``price`` USD, ``size`` and ``filled``
    base units, ``created_ns`` ns since the epoch, ``cycle`` the grid cycle that placed it
    (not persisted: -1 after a restore), ``cancel_sent`` a cancel is on its way.
    """

    side: Side
    price: Decimal
    size: Decimal
    created_ns: int
    cycle: int
    cid: int | None = None
    filled: Decimal = ZERO
    cancel_sent: bool = False

    def to_json(self) -> dict:
        """A JSON-able dict (Decimals as strings) for :meth:`from_json`."""
        return {"side": self.side.value, "price": str(self.price), "size": str(self.size), "created_ns": self.created_ns,
                "cid": self.cid, "filled": str(self.filled)}

    @classmethod
    def from_json(cls, d: Mapping) -> "OpenOrder":
        """Rebuild from :meth:`to_json`'s dict.

        :raises KeyError: / decimal.InvalidOperation: for a malformed dict.
        """
        return cls(Side.parse(d["side"]), D(d["price"]), D(d["size"]), int(d["created_ns"]), -1,
                   d.get("cid"), D(d.get("filled", "0")))


@attrs.define
class CloseOrder:
    """A take-profit close order and the open fills it closes.

    Seed 002's "State 2: ... place close order" at ``open_price * (1 +/- take_profit_pct/100)``.
    Fields: ``price`` and ``open_price`` USD; ``size`` and ``filled`` base units;
    ``open_fee``, ``gross`` and ``fees`` USD (the cycle's profit so far); ``created_ns`` ns
    since the epoch; ``estimated`` the open price is unknown (an adopted orphan order).
    """

    price: Decimal
    size: Decimal
    open_price: Decimal
    open_fee: Decimal
    created_ns: int
    cycle: int
    cid: int | None = None
    filled: Decimal = ZERO
    gross: Decimal = ZERO
    fees: Decimal = ZERO
    estimated: bool = False  # open price unknown (adopted orphan)

    def to_json(self) -> dict:
        """A JSON-able dict (Decimals as strings) for :meth:`from_json`."""
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in attrs.asdict(self).items() if k != "cycle"}

    @classmethod
    def from_json(cls, d: Mapping) -> "CloseOrder":
        """Rebuild from :meth:`to_json`'s dict.

        :raises KeyError: / decimal.InvalidOperation: for a malformed dict.
        """
        return cls(D(d["price"]), D(d["size"]), D(d["open_price"]), D(d["open_fee"]), int(d["created_ns"]), -1,
                   d.get("cid"), D(d.get("filled", "0")), D(d.get("gross", "0")), D(d.get("fees", "0")),
                   bool(d.get("estimated", False)))


@attrs.define
class Level:
    """One level of the range grid (a classic range grid; levels from
    :func:`perpbot.strategies.grid.levels.grid_levels`).

    Fields: ``i`` index from the lowest level; ``price`` USD; ``want`` the side wanted
    there (None: the empty level); ``size``, ``filled`` base units; ``entry_price`` USD and
    ``entry_fee`` USD of the fill that created this order (for the cycle's profit);
    ``filled_value`` USD (sum of price x size filled); ``fees`` USD; ``cid`` the live
    order's client id; ``pending_cycle`` the cycle that sent it.
    """

    i: int
    price: Decimal
    want: Side | None = None
    size: Decimal = ZERO
    entry_price: Decimal | None = None  # the fill that created this order (for the cycle's profit)
    entry_fee: Decimal = ZERO
    cid: int | None = None
    pending_cycle: int | None = None
    filled: Decimal = ZERO
    filled_value: Decimal = ZERO
    fees: Decimal = ZERO

    def reset(self) -> None:
        """Empty the level (no order wanted or live); its price and size stay."""
        self.want = None
        self.entry_price = None
        self.entry_fee = ZERO
        self.cid = None
        self.pending_cycle = None
        self.filled = ZERO
        self.filled_value = ZERO
        self.fees = ZERO

    def to_json(self) -> dict:
        """A JSON-able dict (Decimals as strings) for :meth:`from_json`."""
        return {"i": self.i, "price": str(self.price), "want": self.want.value if self.want else None,
                "size": str(self.size), "entry_price": _s(self.entry_price), "entry_fee": str(self.entry_fee),
                "cid": self.cid, "filled": str(self.filled), "filled_value": str(self.filled_value), "fees": str(self.fees)}

    @classmethod
    def from_json(cls, d: Mapping) -> "Level":
        """Rebuild from :meth:`to_json`'s dict.

        :raises KeyError: / decimal.InvalidOperation: for a malformed dict.
        """
        return cls(int(d["i"]), D(d["price"]), Side.parse(d["want"]) if d.get("want") else None, D(d.get("size", "0")),
                   _d(d.get("entry_price")), D(d.get("entry_fee", "0")), d.get("cid"), None,
                   D(d.get("filled", "0")), D(d.get("filled_value", "0")), D(d.get("fees", "0")))


@attrs.define
class GridStats:
    """Completed cycles and their profit, USD: ``gross`` (``(sell - buy) * size``), ``fees``
    (both fills), ``net``; ``opens_filled`` counts open-order fills; ``last_cycles`` keeps
    the last 200 as ``(ts_ns, gross, fees)``."""

    cycles: int = 0
    gross: Decimal = ZERO
    fees: Decimal = ZERO
    opens_filled: int = 0
    last_cycles: deque = attrs.Factory(lambda: deque(maxlen=200))  # (ts_ns, gross, fees)

    @property
    def net(self) -> Decimal:
        """``gross - fees``, USD."""
        return self.gross - self.fees

    def add(self, ts_ns: int, gross: Decimal, fees: Decimal) -> None:
        """Book one completed cycle (time ns since the epoch; gross and fees USD)."""
        self.cycles += 1
        self.gross += gross
        self.fees += fees
        self.last_cycles.append((ts_ns, gross, fees))
