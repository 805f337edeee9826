"""dYdX order state is what the venue did (issue 9, items 12b, 15 and 16), against the loopback fakes.

- 15: a broadcast whose reply is lost (the node accepted the tx, then the connection dropped)
  is pending, never rejected, and resolves from the venue;
- 16a: a stateful post-only order that would cross is final at once;
- 16b: an order that never left (connection refused) is unregistered;
- 16c: another client's order with the same dYdX client id as one of our client ids does
  not touch our order;
- 16d: a cancel the node accepts reports the venue's status (FILLED when it filled first);
- 12b: reconciliation pages through more than 100 orders and more than 100 fills.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from perpbot.core.model import Fill, OrderStatus, OrderUpdate, Side
from tests.exchanges.dydx.conftest import wait_until
from tests.exchanges.dydx.test_dydx_exchange_live import Harness, h, limit, market, mnemonic  # noqa: F401

D = Decimal


def iso(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch_s))


async def test_lost_reply_is_pending_then_filled_never_rejected(h, fakes):
    node = fakes.node
    bid = h.states["ETH-USD"].book.best_bid_price()
    node.drop_after_accept(1)
    r = await h.ex.place_order(limit(900, bid - D("5"), tag="grid-open"))  # stateful, rests
    assert node.drops == 1 and node.broadcasts[-1].ok  # the node accepted it; the reply was lost
    assert r.success and r.status is OrderStatus.PENDING and "outcome unknown" in r.error
    assert [o.client_id for o in await h.ex.get_open_orders()] == [900]
    await wait_until(lambda: any(u.status is OrderStatus.OPEN for u in h.of(OrderUpdate, 900)), what="OPEN")
    assert 900 not in h.ex.account.unknown
    (o,) = node.placed_orders()
    fakes.bridge.fill_resting(h.address, o.order_id.client_id, clob_pair_id=o.order_id.clob_pair_id)
    await wait_until(lambda: any(u.status is OrderStatus.FILLED for u in h.of(OrderUpdate, 900)), what="FILLED")
    assert [f.size for f in h.of(Fill, 900)] == [D("0.01")]
    assert OrderStatus.REJECTED not in [u.status for u in h.of(OrderUpdate, 900)]
    assert len(node.placed_orders(accepted_only=False)) == 1  # never placed again


async def test_lost_reply_of_an_order_that_never_shows_expires_after_its_good_til_block(fakes, tmp_path, mnemonic):
    hh = await Harness(fakes, tmp_path, reconcile_interval_s=0.2).start()
    try:
        bid = hh.states["ETH-USD"].book.best_bid_price()
        fakes.node.fail_next_broadcasts(1, code=2001, raw_log="not matched")  # CheckTx refuses it...
        fakes.node.drop_after_accept(1)  # ...and the reply is lost: the bot cannot know
        r = await hh.ex.place_order(limit(910, bid - D("5"), good_til_s=5, post_only=True))
        assert r.success and r.status is OrderStatus.PENDING
        gtb = fakes.node.broadcasts[-1].messages[0].order.good_til_block
        await asyncio.sleep(0.5)  # look-ups by id find nothing, but the good-til-block has not passed
        assert hh.ex.account.orders[910].status is OrderStatus.PENDING and not hh.of(OrderUpdate, 910)
        fakes.node.set_height(gtb + 1)
        await fakes.indexer.push_block_height(gtb + 1)
        await wait_until(lambda: hh.of(OrderUpdate, 910), what="resolution")
        (u,) = hh.of(OrderUpdate, 910)
        assert u.status is OrderStatus.EXPIRED and "never reached the venue" in u.reason
        assert await hh.ex.get_open_orders() == []
    finally:
        await hh.stop()


async def test_stateful_post_only_that_would_cross_is_final_at_once(h, fakes):
    ask = h.states["ETH-USD"].book.best_ask_price()
    r = await h.ex.place_order(limit(920, ask + D("5"), post_only=True))  # long-term, crosses the ask
    assert r.success
    await wait_until(lambda: h.of(OrderUpdate, 920), what="the removal")
    assert h.of(OrderUpdate, 920)[-1].status is OrderStatus.CANCELED
    assert "POST_ONLY_WOULD_CROSS" in h.of(OrderUpdate, 920)[-1].reason
    assert await h.ex.get_open_orders() == []


async def test_order_that_never_left_is_unregistered(h, fakes):
    fakes.node.refuse_connections()
    try:
        bid = h.states["ETH-USD"].book.best_bid_price()
        r1 = await h.ex.place_order(limit(930, bid - D("5")))  # stateful
        r2 = await h.ex.place_order(limit(931, bid - D("6"), good_til_s=5))  # short-term
    finally:
        fakes.node.accept_connections()
    for r in (r1, r2):
        assert not r.success and r.status is OrderStatus.REJECTED and "not sent" in r.error, r
    assert fakes.node.broadcasts == []
    assert await h.ex.get_open_orders() == []
    assert (await h.ex.cancel_all()) == []
    h.ex._set_height(h.ex._height + 100)
    h.ex.account.expire_short_term(h.ex._height)
    await asyncio.sleep(0.3)
    assert not h.of(OrderUpdate, 930) and not h.of(OrderUpdate, 931)  # never EXPIRED after REJECTED


async def test_foreign_order_with_our_client_id_leaves_our_order_alone(h, fakes):
    from tests.fakes import order_uuid, subaccount_uuid

    bid = h.states["ETH-USD"].book.best_bid_price()
    assert (await h.ex.place_order(limit(7, bid - D("5")))).success
    await wait_until(lambda: h.ex.account.orders[7].status is OrderStatus.OPEN, what="OPEN")
    ours = fakes.node.placed_orders()[-1].order_id
    base = {"subaccountId": subaccount_uuid(h.address, 0), "ticker": "ETH-USD", "side": "SELL",
            "size": "1", "price": "99999", "type": "LIMIT", "timeInForce": "GTT", "totalFilled": "0",
            "status": "CANCELED", "removalReason": "ORDER_REMOVAL_REASON_USER_CANCELED"}
    foreign = [
        # dYdX client id 7 = our client id 7
        {**base, "id": order_uuid(h.address, 0, 7, 1, 64), "clientId": "7", "clobPairId": "1", "orderFlags": "64"},
        # our dYdX client id and clob pair, other flags: another order
        {**base, "id": order_uuid(h.address, 0, ours.client_id, 1, 0), "clientId": str(ours.client_id),
         "clobPairId": "1", "orderFlags": "0", "goodTilBlock": str(fakes.node.height + 5)},
    ]
    n = len(h.of(OrderUpdate))
    await fakes.indexer.push_subaccount(h.address, 0, orders=foreign)
    await wait_until(lambda: len(h.ex.account.foreign) == 2, what="the foreign rows")
    await asyncio.sleep(0.1)
    assert h.ex.account.orders[7].status is OrderStatus.OPEN
    assert len(h.of(OrderUpdate)) == n  # nothing reported for orders that are not the bot's
    assert [o.client_id for o in await h.ex.get_open_orders()] == [7]


async def test_cancel_of_an_order_that_already_filled_reports_filled(fakes, tmp_path, mnemonic):
    hh = await Harness(fakes, tmp_path).start()
    try:
        bid = hh.states["ETH-USD"].book.best_bid_price()
        assert (await hh.ex.place_order(limit(940, bid - D("5"), good_til_s=10, post_only=True))).success
        await wait_until(lambda: hh.ex.account.orders[940].status is OrderStatus.OPEN, what="OPEN")
        o = fakes.node.placed_orders()[-1].order_id
        # the fill happens while the stream is down: the bot still believes the order is open
        fakes.indexer.fail_ws_connect(503, count=50)
        await fakes.indexer.drop_all_connections()
        await wait_until(lambda: not hh.ex.conn.connected.is_set(), what="disconnected")
        fakes.bridge.fill_resting(hh.address, o.client_id, clob_pair_id=o.clob_pair_id)
        assert hh.ex.account.orders[940].status is OrderStatus.OPEN
        c = await hh.ex.cancel_order(940, "ETH-USD")  # short-term cancel: the node accepts it (gossip)
        assert fakes.node.broadcasts[-1].ok
        assert not c.success and c.status is OrderStatus.FILLED and "FILLED" in c.error
        fakes.indexer.clear_faults()
    finally:
        await hh.stop()


async def test_cancel_accepted_reports_the_venue_status(h, fakes):
    bid = h.states["ETH-USD"].book.best_bid_price()
    assert (await h.ex.place_order(limit(950, bid - D("5")))).success
    await wait_until(lambda: h.ex.account.orders[950].status is OrderStatus.OPEN, what="OPEN")
    c = await h.ex.cancel_order(950, "ETH-USD")
    assert c.success and c.status is OrderStatus.CANCELED


async def test_reconciliation_pages_through_more_than_100_orders_and_fills(fakes, tmp_path, mnemonic):
    from tests.fakes import order_uuid, subaccount_uuid

    hh = await Harness(fakes, tmp_path, reconcile_interval_s=3600).start()
    try:
        ix = fakes.indexer
        sub = subaccount_uuid(hh.address, 0)
        # 150 resting stateful orders of another client on this subaccount (REST only)
        for i in range(150):
            oid = order_uuid(hh.address, 0, 5000 + i, 1, 64)
            ix.orders[oid] = {"id": oid, "subaccountId": sub, "clientId": str(5000 + i), "clobPairId": "1",
                              "orderFlags": "64", "ticker": "ETH-USD", "side": "BUY", "size": "0.01",
                              "price": "100", "type": "LIMIT", "status": "OPEN", "timeInForce": "GTT",
                              "totalFilled": "0", "subaccountNumber": 0,
                              "goodTilBlockTime": iso(time.time() + 86_400 + i)}
        # one of OUR orders, OPEN, then FILLED while nothing was streamed, behind 150 others
        bid = hh.states["ETH-USD"].book.best_bid_price()
        assert (await hh.ex.place_order(limit(960, bid - D("5"), good_til_s=3600))).success
        await wait_until(lambda: hh.ex.account.orders[960].status is OrderStatus.OPEN, what="OPEN")
        fakes.indexer.fail_ws_connect(503, count=50)
        await fakes.indexer.drop_all_connections()
        await wait_until(lambda: not hh.ex.conn.connected.is_set(), what="disconnected")
        uid = hh.ex.account.orders[960].exchange_order_id
        ix.orders[uid] = {**ix.orders[uid], "status": "FILLED", "totalFilled": "0.01"}
        # 250 fills missed by the stream: 50, 50 and 30 in three blocks, then 120 in ONE block (more
        # than a page: read with ``page``)
        h0 = ix.height + 1
        for k in range(250):
            ix.fills.insert(0, {"id": f"fill-{k:04d}", "side": "BUY", "liquidity": "MAKER", "type": "LIMIT",
                                "market": "ETH-USD", "marketType": "PERPETUAL", "price": "100", "size": "0.001",
                                "fee": "0", "createdAt": "2099-01-01T00:00:00.000Z",
                                "createdAtHeight": str(h0 + (k // 50 if k < 130 else 3)), "orderId": uid, "clientMetadata": "0",
                                "subaccountNumber": 0, "address": hh.address})
        ix.requests.clear()
        await hh.ex._reconcile()
        assert hh.ex.account.orders[960].status is OrderStatus.FILLED
        assert len(hh.ex.account.foreign_open_orders()) == 150
        assert len({f.fill_id for f in hh.of(Fill, 960)}) == 250 and len(hh.of(Fill, 960)) == 250
        assert any("page=" in q for _, p, q in ix.requests if p == "/v4/fills")
        pages = [q for _, p, q in ix.requests if p == "/v4/orders"]
        assert len(pages) >= 3 and all("limit=100" in q for q in pages)
        fakes.indexer.clear_faults()
    finally:
        await hh.stop()
