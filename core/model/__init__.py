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

Layout (import every name from ``perpbot.core.model``, never from the submodules):

- :mod:`~perpbot.core.model.values`: ``ZERO``, ``ONE``, :func:`to_decimal`,
  :func:`floor_to`, :func:`ceil_to`, :func:`is_multiple`, :func:`finite_positive`,
  :func:`is_float`;
- :mod:`~perpbot.core.model.enums`: :class:`Side`, :class:`OrderType`,
  :class:`TimeInForce`, :class:`OrderStatus`, :class:`Liquidity`, :class:`MarginMode`;
- :mod:`~perpbot.core.model.market`: :class:`Market` and the market events
  (:class:`MarketEvent` and its subclasses);
- :mod:`~perpbot.core.model.orders`: :class:`OrderParams`, :class:`OrderRequest`,
  :class:`OrderResult`, :class:`OrderInfo`, :class:`OrderUpdate`, :class:`Fill`;
- :mod:`~perpbot.core.model.account`: :class:`Position`, :class:`Balance`,
  :class:`FundingPayment`, :class:`Liquidation`, :class:`CollateralTransfer`.

Every public name's ``__module__`` is ``"perpbot.core.model"`` (set below), so the
journal codec (:mod:`perpbot.plugins.journal.codec`) keeps storing these types as
``"perpbot.core.model:Qualname"``: checkpoints written before this package was split
still load, and moving a class between the submodules never changes a stored name.
(The price: :func:`inspect.getsource` cannot find these classes; read the submodule.)

This package imports nothing of perpbot outside ``perpbot.core.model``.
"""

from __future__ import annotations

from perpbot.core.model.account import Balance, CollateralTransfer, FundingPayment, Liquidation, Position
from perpbot.core.model.enums import Liquidity, MarginMode, OrderStatus, OrderType, Side, TimeInForce
from perpbot.core.model.levels import Levels
from perpbot.core.model.market import (
    Bar,
    BookDelta,
    BookSnapshot,
    FeedStatus,
    FundingRate,
    Level,
    Market,
    MarketEvent,
    MarketInfo,
    OraclePrice,
    Quote,
    Trade,
)
from perpbot.core.model.orders import Fill, OrderInfo, OrderParams, OrderRequest, OrderResult, OrderUpdate
from perpbot.core.model.values import (
    ONE,
    ZERO,
    ceil_to,
    finite_positive,
    floor_to,
    is_float,
    is_multiple,
    to_decimal,
)

__all__ = [
    # values
    "ZERO",
    "ONE",
    "to_decimal",
    "floor_to",
    "ceil_to",
    "is_multiple",
    "finite_positive",
    "is_float",
    # enums
    "Side",
    "OrderType",
    "TimeInForce",
    "OrderStatus",
    "Liquidity",
    "MarginMode",
    # markets and market events
    "Market",
    "Level",
    "Levels",
    "MarketEvent",
    "BookSnapshot",
    "BookDelta",
    "Quote",
    "Trade",
    "Bar",
    "OraclePrice",
    "FundingRate",
    "MarketInfo",
    "FeedStatus",
    # orders
    "OrderParams",
    "OrderRequest",
    "OrderResult",
    "OrderInfo",
    "OrderUpdate",
    "Fill",
    # account
    "FundingPayment",
    "Liquidation",
    "CollateralTransfer",
    "Position",
    "Balance",
]

# One stable public home per name (see the module docstring): the journal stores
# "module:Qualname" of enums and attrs values, and pickling/repr use it too.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith(__name__ + "."):  # not Level (= tuple), not constants
        _obj.__module__ = __name__
del _name, _obj
