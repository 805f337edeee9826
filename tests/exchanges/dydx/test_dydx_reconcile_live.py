"""Issue 12.4: continuous reconciliation against the loopback fakes -- every divergence between
the subaccount stream and the indexer is healed, logged with its cause and counted; funding
settled on the stream (a position's ``netFunding`` moved) is read from the indexer at once."""

from __future__ import annotations

from decimal import Decimal

import pytest

from perpbot.core.model import FundingPayment, OrderRequest, OrderStatus, OrderType, OrderUpdate, Side, TimeInForce
from tests.exchanges.dydx.conftest import wait_until
from tests.exchanges.dydx.test_dydx_exchange_live import Harness, mnemonic  # noqa: F401 (fixture)
from tests.fakes.indexer.funding import settle_funding

D = Decimal


@pytest.fixture
async def hr(fakes, tmp_path, mnemonic):  # noqa: F811
    from dydx_v4_client.wallet import Wallet

    from perpbot.exchanges.dydx.secrets import Secret, key_pair_from
    from tests.fakes import TEST_MNEMONIC

    address = Wallet(key_pair_from(Secret(TEST_MNEMONIC)), 0, 0).address
    fakes.indexer.ensure_subaccount(address, 0, "10000")
    h = await Harness(fakes, tmp_path).start()
    try:
        yield h
    finally:
        await h.stop()


async def _long_btc(h, cid=1, size="0.01"):
    r = await h.ex.place_order(OrderRequest(cid, "BTC-USD", Side.BUY, D(size), OrderType.MARKET))
    assert r.success, r
    await wait_until(lambda: "BTC-USD" in h.ex.account.positions, what="BTC position")


async def test_funding_settled_on_the_stream_is_read_at_once(hr, fakes):
    await _long_btc(hr)
    assert hr.ex.settings.reconcile_interval_s >= 30  # the periodic pass is far away
    rows = settle_funding(fakes.indexer, "BTC-USD", "0.0001")
    assert D(rows[0]["payment"]) < 0  # a long pays a positive rate
    await wait_until(lambda: hr.of(FundingPayment), timeout=5, what="the funding payment")
    pay = hr.of(FundingPayment)[0]
    assert pay.ticker == "BTC-USD" and pay.amount == D(rows[0]["payment"]) and pay.rate_1h == D("0.0001")
    assert hr.ex.account.stats["funding_stream_signals"] == 1
    assert hr.ex.reconciler.divergences == {}  # the stream told it: nothing to heal


async def test_missed_updates_are_divergences_with_their_cause(hr, fakes):
    ix, ex = fakes.indexer, hr.ex
    await _long_btc(hr)
    # a resting order the venue removed without a stream message
    r = await ex.place_order(OrderRequest(2, "ETH-USD", Side.BUY, D("0.01"), OrderType.LIMIT, price=D("2000"),
                                          time_in_force=TimeInForce.POST_ONLY))
    assert r.success
    await wait_until(lambda: ex.account.orders[2].status is OrderStatus.OPEN, what="order open")
    oid = ex.account.orders[2].exchange_order_id
    ix.orders[oid].update(status="CANCELED", removalReason="ORDER_REMOVAL_REASON_EXPIRED")
    fakes.bridge.resting.clear()
    # funding settled on the indexer's tables only (the stream update was lost)
    settle_funding(ix, "BTC-USD", "0.0002", stream=False)
    await ex.reconciler.reconcile()
    div = ex.reconciler.divergences
    assert div.get("order") == 1 and div.get("funding") == 1 and div.get("collateral") == 1, div
    assert [u.status for u in hr.of(OrderUpdate, 2)][-1] is OrderStatus.EXPIRED
    assert len(hr.of(FundingPayment)) == 1
    assert ex.counters["divergences"] == 3


async def test_a_reconnect_reconciles_and_books_the_fill_missed_meanwhile(hr, fakes):
    from perpbot.core.model import Fill

    ix, ex = fakes.indexer, hr.ex
    await _long_btc(hr)
    n_fills = len(hr.of(Fill))
    before = ex.counters["reconciles"]
    # a fill written while the stream is down: the indexer's tables have it, the socket never sends it
    f = dict(ix.fills[0])
    f.update(id="00000000-0000-5000-8000-00000000f222", createdAtHeight=str(ix.height + 1))
    ix.fills.insert(0, f)
    await ix.drop_all_connections()
    await wait_until(lambda: ex.counters["reconciles"] > before and ex.reconciler.divergences.get("fill"),
                     timeout=10, what="a reconciliation after the reconnect")
    assert len(hr.of(Fill)) == n_fills + 1 and hr.of(Fill)[-1].fill_id == f["id"]
