"""Protocol constants and identifiers of the fake indexer: channel names and versions,
candle resolutions, subaccount limits, the indexer's uuid scheme, and the Decimal / time
formatting comlink and socks print.

Sources: dydxprotocol/v4-chain ``indexer/services/socks`` (channels, versions),
``indexer/services/comlink`` (REST shapes), ``indexer/packages/postgres/src/helpers/uuid.ts``
(uuids); see the package docstring (tests/fakes/indexer/__init__.py).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Optional

import orjson

LOOPBACK = "127.0.0.1"

V4_ORDERBOOK = "v4_orderbook"
V4_TRADES = "v4_trades"
V4_MARKETS = "v4_markets"
V4_CANDLES = "v4_candles"
V4_SUBACCOUNTS = "v4_subaccounts"
V4_PARENT_SUBACCOUNTS = "v4_parent_subaccounts"
V4_BLOCK_HEIGHT = "v4_block_height"

ALL_CHANNELS = (
    V4_ORDERBOOK, V4_TRADES, V4_MARKETS, V4_CANDLES,
    V4_SUBACCOUNTS, V4_PARENT_SUBACCOUNTS, V4_BLOCK_HEIGHT,
)
CHANNEL_VERSIONS = {
    V4_ORDERBOOK: "1.0.0",
    V4_SUBACCOUNTS: "3.0.0",
    V4_PARENT_SUBACCOUNTS: "3.0.0",
    V4_TRADES: "2.1.0",
    V4_MARKETS: "1.0.0",
    V4_CANDLES: "1.0.0",
    V4_BLOCK_HEIGHT: "1.0.0",
}
CANDLE_RESOLUTIONS = ("1MIN", "5MINS", "15MINS", "30MINS", "1HOUR", "4HOURS", "1DAY")
# statuses socks asks comlink for in the initial v4_subaccounts response
INITIAL_ORDER_STATUSES = ("OPEN", "UNTRIGGERED", "BEST_EFFORT_OPENED", "BEST_EFFORT_CANCELED")
CHILD_SUBACCOUNT_MULTIPLIER = 1000
MAX_PARENT_SUBACCOUNTS = 128

# comlink/postgres uuid namespace (indexer/packages/postgres/src/helpers/uuid.ts).  With it
# subaccount and order uuids below equal the real indexer's (checked against recorded
# payloads).
INDEXER_UUID_NAMESPACE = uuid.UUID("0f9da948-a6fb-4c45-9edc-4685c3f3317d")

def subaccount_uuid(address: str, subaccount_number: int) -> str:
    """The indexer's ``subaccountId`` uuid for ``address/number``."""
    return str(uuid.uuid5(INDEXER_UUID_NAMESPACE, f"{address}-{int(subaccount_number)}"))


def order_uuid(address: str, subaccount_number: int, client_id: int, clob_pair_id: int,
               order_flags: int) -> str:
    """The indexer's order ``id`` uuid for a chain OrderId."""
    sub = subaccount_uuid(address, subaccount_number)
    return str(uuid.uuid5(INDEXER_UUID_NAMESPACE,
                          f"{sub}-{int(client_id)}-{int(clob_pair_id)}-{int(order_flags)}"))


def bytes_uuid(data: bytes) -> str:
    """uuid v5 over raw bytes in the indexer namespace (used for fill / position ids)."""
    digest = hashlib.sha1(INDEXER_UUID_NAMESPACE.bytes + data).digest()[:16]
    return str(uuid.UUID(bytes=digest, version=5))


# --------------------------------------------------------------------------- helpers

def D(value: Any) -> Decimal:
    """``value`` as a Decimal; a float goes through its ``repr`` (shortest round-trip)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


def fmt(value: Any) -> str:
    """Decimal string the way the indexer prints it: no exponent, no trailing zeros."""
    d = D(value)
    if d == 0:
        return "0"
    s = format(d.normalize(), "f")
    return s


def iso_now(ts: Optional[float] = None) -> str:
    """``ts`` (epoch seconds, default now) as the indexer prints times: UTC, milliseconds,
    ``Z`` suffix."""
    ts = time.time() if ts is None else ts
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _dumps(obj: Any) -> str:
    """``obj`` as a JSON text frame."""
    return orjson.dumps(obj).decode()
