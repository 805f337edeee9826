"""A lost broadcast reply that arrives AFTER the indexer already showed the order (issue 9.15).

The stream can beat the node's error: the order is then known to the venue, so it must not be
marked "outcome unknown" (nor queued for look-ups) afterwards. Deterministic, on the registry
itself (the end-to-end race is in test_dydx_order_truth.py).
"""

from decimal import Decimal as D

from perpbot.core.model import OrderInfo, OrderStatus, OrderType, Side, TimeInForce
from perpbot.exchanges.dydx.client_ids import ClientIdStore
from perpbot.exchanges.dydx.order_registry import OrderRegistry

ADDRESS = "dydx1" + "q" * 38


def registry():
    ids = ClientIdStore(None)
    reg = OrderRegistry(ids, ADDRESS, 0, emit=lambda ev: None, now_ns=lambda: 1, stats={"order_updates": 0, "bad_rows": 0, "foreign_orders": 0})
    dydx_id = ids.allocate(900, {"ticker": "ETH-USD", "clob": 1, "flags": 64})
    reg.track_new_order(900, OrderInfo(900, "ETH-USD", Side.BUY, D("0.01"), D("2000"), OrderStatus.PENDING,
                                       order_type=OrderType.LIMIT, time_in_force=TimeInForce.GTT))
    return reg, dydx_id


def row(dydx_id, status="OPEN"):
    return {"clientId": str(dydx_id), "clobPairId": "1", "orderFlags": "64", "status": status, "ticker": "ETH-USD",
            "size": "0.01", "totalFilled": "0", "price": "2000", "side": "BUY", "type": "LIMIT"}


def test_an_order_the_venue_already_showed_is_not_marked_unknown():
    reg, dydx_id = registry()
    reg.apply_row(row(dydx_id))  # the stream shows it OPEN ...
    assert reg.orders[900].status is OrderStatus.OPEN
    reg.mark_unknown(900, "outcome unknown: UNAVAILABLE")  # ... then the lost reply's error arrives
    assert 900 not in reg.unknown and 900 not in reg.lookups


def test_an_order_the_venue_has_not_shown_is_marked_unknown():
    reg, _ = registry()
    reg.mark_unknown(900, "outcome unknown: UNAVAILABLE")
    assert reg.unknown == {900: "outcome unknown: UNAVAILABLE"} and 900 in reg.lookups
