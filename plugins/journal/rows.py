"""Journal rows back to model objects (exact round trips), and the order statuses the reads use.

Imports only :mod:`perpbot.core.model`, :mod:`perpbot.plugins.journal.codec` and the
standard library.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal

from perpbot.core.model import (
    ZERO,
    Fill,
    Liquidity,
    MarginMode,
    OrderInfo,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from perpbot.plugins.journal.codec import enum_value, parse_dec

TERMINAL_STATUSES = tuple(s.value for s in OrderStatus if s.is_terminal)
CANCEL_STATUSES = (OrderStatus.CANCELED, OrderStatus.BEST_EFFORT_CANCELED, OrderStatus.EXPIRED)


def same_fill(row: sqlite3.Row, fill: Fill) -> bool:
    """True when a journaled fill row and ``fill`` are the same fill (order, market, side, price, size).

    Time and fee are not compared: a venue may report one fill with a different timestamp
    (block time vs indexer time) or fee precision on its REST and streaming paths."""
    return (
        int(row["client_id"]) == int(fill.client_id)
        and row["ticker"] == fill.ticker
        and row["side"] == enum_value(fill.side)
        and Decimal(row["price"]) == Decimal(fill.price)
        and Decimal(row["size"]) == Decimal(fill.size)
    )


def intent_to_order_info(row: sqlite3.Row, *, status: str = "PENDING", filled: Decimal = ZERO) -> OrderInfo:
    """The :class:`OrderInfo` a journaled intent describes."""
    st = OrderStatus(status) if status in OrderStatus.__members__ else OrderStatus.PENDING
    return OrderInfo(
        client_id=int(row["client_id"]),
        ticker=row["ticker"],
        side=Side(row["side"]),
        size=Decimal(row["size"]),
        price=parse_dec(row["price"]),
        status=st,
        order_type=OrderType(row["order_type"]),
        filled_size=filled,
        reduce_only=bool(row["reduce_only"]),
        post_only=bool(row["post_only"]),
        time_in_force=TimeInForce(row["time_in_force"]),
        tag=row["tag"],
        created_ns=int(row["ts_ns"]),
        venue=row["venue"],
    )


def intent_to_request(row: sqlite3.Row) -> OrderRequest:
    """The :class:`OrderRequest` a journaled intent describes (exact round trip)."""
    return OrderRequest(
        client_id=int(row["client_id"]),
        ticker=row["ticker"],
        side=Side(row["side"]),
        size=Decimal(row["size"]),
        order_type=OrderType(row["order_type"]),
        price=parse_dec(row["price"]),
        trigger_price=parse_dec(row["trigger_price"]),
        time_in_force=TimeInForce(row["time_in_force"]),
        reduce_only=bool(row["reduce_only"]),
        post_only=bool(row["post_only"]),
        good_til_s=row["good_til_s"],
        margin_mode=MarginMode(row["margin_mode"]),
        tag=row["tag"],
        reason=row["reason"],
        venue=None if not row["venue"] else row["venue"],
    )


def row_to_fill(row: sqlite3.Row) -> Fill:
    """The :class:`Fill` a journaled fill row describes (exact round trip)."""
    return Fill(
        client_id=int(row["client_id"]),
        ticker=row["ticker"],
        side=Side(row["side"]),
        price=Decimal(row["price"]),
        size=Decimal(row["size"]),
        fee=Decimal(row["fee"]),
        liquidity=Liquidity(row["liquidity"]),
        ts_ns=int(row["ts_ns"]),
        fill_id=row["fill_id"],
        venue=row["venue"],
        tag=row["tag"],
        liquidation=bool(row["liquidation"]),
    )
