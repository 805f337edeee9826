"""Issue 12 acceptance (items 1 and 4): the whole bot with the sniper on dYdX through the loopback
fakes trades one cross market (BTC-USD) and one isolated market (ETH-USD) at once; the
collateral flows parent -> child -> parent and the journal's ``transfers`` table shows it; the
report's notes show the positions per subaccount."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from decimal import Decimal

from tests.exchanges.dydx.conftest import FAST

D = Decimal


def test_sniper_trades_cross_and_isolated_at_once_and_the_journal_shows_the_collateral_flow(tmp_path, monkeypatch):
    from dydx_v4_client.wallet import Wallet

    from perpbot.core.bot import TradingBot
    from perpbot.core.config import BotConfig
    from perpbot.core.model import OrderParams, OrderType, Side, TimeInForce
    from perpbot.core.plugins import PluginManager
    from perpbot.exchanges.dydx.secrets import Secret, key_pair_from
    from tests.fakes import TEST_MNEMONIC, FakeDydx

    monkeypatch.setenv("DYDX_MNEMONIC", TEST_MNEMONIC)
    address = Wallet(key_pair_from(Secret(TEST_MNEMONIC)), 0, 0).address
    with FakeDydx(indexer_kwargs={"batch_interval": 0.05}) as dx:
        done = threading.Event()

        def setup():
            dx.indexer.ensure_subaccount(address, 0, "10000")
            dx.indexer.markets["ETH-USD"].update(marketType="ISOLATED", initialMarginFraction="0.05",
                                                 maintenanceMarginFraction="0.03")
            done.set()

        dx.indexer.call_soon_threadsafe(setup)
        assert done.wait(5)
        net = {"network": "custom", "indexer_rest": dx.rest_url, "indexer_ws": dx.ws_url, "node": dx.node_url, **FAST}
        cfg = BotConfig(exchange=("dydx",), strategy="sniper", tickers=("BTC-USD", "ETH-USD"), feed="dydx",
                        state_dir=tmp_path, journal_enabled=True, report=False, progress=False,
                        exchanges={"dydx": dict(net)}, feeds={"dydx": dict(net)})
        bot = TradingBot(cfg, PluginManager(load_entry_points=False))
        notes: list[str] = []

        async def session():
            run = asyncio.create_task(bot.run())
            deadline = time.monotonic() + 60  # generous: CI machines are loaded; the waits end at once when done
            while not bot.states or not bot.portfolios or any(
                    bot.states[t].stale_reason(bot.clock.now_ns()) for t in bot.states):
                assert time.monotonic() < deadline and not run.done(), "no fresh market data"
                await asyncio.sleep(0.05)
            ex = bot.exchange
            ex.sweep_interval_s = 0.05
            # one cross and one isolated entry, sent together
            r_btc, r_eth = await asyncio.gather(
                bot.submit(OrderParams("BTC-USD", Side.BUY, OrderType.MARKET, size=D("0.002")), risk_exempt=True),
                bot.submit(OrderParams("ETH-USD", Side.BUY, OrderType.MARKET, size=D("0.5")), risk_exempt=True))
            assert r_btc is not None and r_btc.success, r_btc
            assert r_eth is not None and r_eth.success, r_eth
            while not (ex.subaccount_positions().get(128) and "BTC-USD" in ex.subaccount_positions()[0]
                       and "ETH-USD" in bot.portfolio.positions):
                assert time.monotonic() < deadline, "the positions never showed per subaccount"
                await asyncio.sleep(0.05)
            assert bot.portfolio.positions["ETH-USD"].size == D("0.5")
            notes.extend(ex.summary_notes())
            # close the isolated position: the child is swept back to the parent
            r = await bot.submit(OrderParams("ETH-USD", Side.SELL, OrderType.MARKET, size=D("0.5"), reduce_only=True,
                                             time_in_force=TimeInForce.IOC), risk_exempt=True)
            assert r is not None and r.success, r
            while sum(t.ok for t in ex.transfers.records) < 2:
                assert time.monotonic() < deadline, "no sweep back to the parent"
                await asyncio.sleep(0.05)
            bot.request_stop("test done")
            await asyncio.wait_for(run, 15)

        asyncio.run(session())
        placed = {o.order_id.clob_pair_id: o.order_id.subaccount_id.number for o in dx.node.placed_orders()}
        assert placed == {0: 0, 1: 128}

    assert "subaccount 0: BTC-USD 0.002" in notes and "subaccount 128 (isolated): ETH-USD 0.5" in notes
    path = cfg.resolved_journal_path()
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT venue, kind, sender, recipient, amount, reason, status FROM transfers "
                            "WHERE status = 'confirmed' ORDER BY seq").fetchall()
    assert len(rows) >= 2, rows
    (v1, k1, s1, r1, a1, why1, _), (v2, k2, s2, r2, a2, why2, _) = rows[:2]
    assert (v1, k1, v2, k2) == ("dydx", "TRANSFER", "dydx", "TRANSFER")
    assert s1 == f"{address}/0" and r1 == f"{address}/128" and why1.startswith("fund isolated ETH-USD order")
    assert s2 == f"{address}/128" and r2 == f"{address}/0" and why2.startswith("sweep")
    assert D(a1) > 0 and D(a2) > 0
