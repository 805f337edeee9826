"""Issue 9.15 through the whole bot and its journal: the node accepts a stateful order and the
connection drops before the reply. The strategy is told PENDING, then the venue's OPEN and
FILLED, never REJECTED; the journal holds no REJECTED result for it; nothing is placed twice."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from decimal import Decimal

from tests.exchanges.dydx.conftest import FAST

D = Decimal
MNEMONIC = " ".join(["abandon"] * 11 + ["about"])


def test_lost_reply_is_pending_then_filled_for_strategy_and_journal(tmp_path, monkeypatch):
    from dydx_v4_client.wallet import Wallet

    from perpbot.core.bot import TradingBot
    from perpbot.core.config import BotConfig
    from perpbot.core.model import OrderParams, OrderStatus, OrderType, Side
    from perpbot.core.plugins import PluginManager
    from perpbot.exchanges.dydx.secrets import Secret, key_pair_from
    from tests.fakes import FakeDydx

    monkeypatch.setenv("DYDX_MNEMONIC", MNEMONIC)
    address = Wallet(key_pair_from(Secret(MNEMONIC)), 0, 0).address
    journal = tmp_path / "journal.sqlite"
    with FakeDydx(indexer_kwargs={"batch_interval": 0.05}) as dx:
        done = threading.Event()
        dx.indexer.call_soon_threadsafe(lambda: (dx.indexer.ensure_subaccount(address, 0, "10000"), done.set()))
        assert done.wait(5)
        net = {"network": "custom", "indexer_rest": dx.rest_url, "indexer_ws": dx.ws_url, "node": dx.node_url,
               **FAST}
        cfg = BotConfig(exchange=("dydx",), strategy="sniper", tickers=("BTC-USD", "ETH-USD"), feed="dydx",
                        state_dir=tmp_path, journal_enabled=True, journal_path=journal, report=False,
                        progress=False, exchanges={"dydx": dict(net)}, feeds={"dydx": dict(net)})
        bot = TradingBot(cfg, PluginManager(load_entry_points=False))
        seen = []

        async def session():
            run = asyncio.create_task(bot.run())
            deadline = time.monotonic() + 15
            while not bot.states or not bot.portfolios or any(
                    bot.states[t].stale_reason(bot.clock.now_ns()) for t in bot.states):
                assert time.monotonic() < deadline and not run.done(), "no fresh market data"
                await asyncio.sleep(0.05)
            orig = bot.strategy.on_order_update
            bot.strategy.on_order_update = lambda u: (seen.append(u), orig(u))
            bid = bot.states["ETH-USD"].book.best_bid_price()
            dx.node.drop_after_accept(1)
            res = await bot.submit(OrderParams("ETH-USD", Side.BUY, OrderType.LIMIT, size=D("0.01"),
                                               price=bid - D("5")), risk_exempt=True)
            assert res is not None and res.success and res.status is OrderStatus.PENDING, res
            assert "outcome unknown" in res.error and dx.node.drops == 1
            cid = res.client_id
            assert cid in bot.open_orders  # pending, not dropped as rejected
            while not any(u.client_id == cid and u.status is OrderStatus.OPEN for u in seen):
                assert time.monotonic() < deadline, "the venue never showed the order"
                await asyncio.sleep(0.05)
            (o,) = dx.node.placed_orders()
            dx.indexer.call_soon_threadsafe(dx.bridge.fill_resting, address, o.order_id.client_id)
            while not any(u.client_id == cid and u.status is OrderStatus.FILLED for u in seen):
                assert time.monotonic() < deadline, "the fill never reached the strategy"
                await asyncio.sleep(0.05)
            bot.request_stop("test done")
            await asyncio.wait_for(run, 15)
            return cid

        cid = asyncio.run(session())
        placed = dx.node.placed_orders(accepted_only=False)
        dydx_id = placed[0].order_id.client_id
        # the same intent was not placed again (a reduce-only close on stop may follow)
        assert [p.order_id.client_id for p in placed if not p.reduce_only] == [dydx_id]
    statuses = [u.status for u in seen if u.client_id == cid]
    assert OrderStatus.REJECTED not in statuses and statuses[-1] is OrderStatus.FILLED
    db = sqlite3.connect(journal)
    try:
        results = db.execute("SELECT success, status FROM order_results WHERE client_id=?", (cid,)).fetchall()
        updates = [r[0] for r in db.execute("SELECT status FROM order_updates WHERE client_id=?", (cid,))]
    finally:
        db.close()
    assert results == [(1, "PENDING")]
    assert "REJECTED" not in updates and updates[-1] == "FILLED"
