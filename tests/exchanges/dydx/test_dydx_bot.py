"""The whole bot on dYdX through the fakes: ``--exchange dydx --feed dydx`` wiring (plugin
registration, config keys, event sink, portfolio booking from the subaccount stream)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from tests.exchanges.dydx.conftest import FAST

D = Decimal
MNEMONIC = " ".join(["abandon"] * 11 + ["about"])


def test_bot_trades_dydx_on_the_fakes(tmp_path, monkeypatch):
    from perpbot.core.bot import TradingBot
    from perpbot.core.config import BotConfig
    from perpbot.core.model import OrderParams, OrderType, Side
    from perpbot.core.plugins import PluginManager
    from perpbot.exchanges.dydx.secrets import Secret, key_pair_from
    from tests.fakes import FakeDydx

    monkeypatch.setenv("DYDX_MNEMONIC", MNEMONIC)
    from dydx_v4_client.wallet import Wallet

    address = Wallet(key_pair_from(Secret(MNEMONIC)), 0, 0).address
    with FakeDydx(indexer_kwargs={"batch_interval": 0.05}) as dx:  # fakes on a background thread
        done = __import__("threading").Event()
        dx.indexer.call_soon_threadsafe(lambda: (dx.indexer.ensure_subaccount(address, 0, "10000"), done.set()))
        assert done.wait(5)
        net = {"network": "custom", "indexer_rest": dx.rest_url, "indexer_ws": dx.ws_url, "node": dx.node_url, **FAST}
        cfg = BotConfig(exchange=("dydx",), strategy="sniper", tickers=("BTC-USD", "ETH-USD"), feed="dydx",
                        state_dir=tmp_path, journal_enabled=False, report=False, progress=False,
                        exchanges={"dydx": dict(net)}, feeds={"dydx": dict(net)})
        bot = TradingBot(cfg, PluginManager(load_entry_points=False))  # markets() fetched synchronously here
        assert type(bot.exchange).__name__ == "DydxExchange" and type(bot.feed).__name__ == "DydxFeed"

        async def session():
            run = asyncio.create_task(bot.run())  # start, reconcile, then the event loop of the bot
            deadline = time.monotonic() + 10
            while not bot.states or not bot.portfolios or any(
                    bot.states[t].stale_reason(bot.clock.now_ns()) for t in bot.states):
                assert time.monotonic() < deadline and not run.done(), "no fresh market data"
                await asyncio.sleep(0.05)
            assert bot.balance().equity == D("10000")
            res = await bot.submit(OrderParams("BTC-USD", Side.BUY, OrderType.MARKET, size=D("0.002")),
                                   risk_exempt=True)
            assert res is not None and res.success, res
            while bot.portfolio.positions.get("BTC-USD") is None or bot.portfolio.positions["BTC-USD"].size == 0:
                assert time.monotonic() < deadline, "the fill never reached the portfolio"
                await asyncio.sleep(0.05)
            pos = bot.portfolio.positions["BTC-USD"]
            assert pos.size == D("0.002") and pos.fees > 0
            assert len(dx.indexer.subscriptions()) == 1  # one socket for the feed and the account
            bot.request_stop("test done")
            await asyncio.wait_for(run, 10)

        asyncio.run(session())
        assert len(dx.node.placed_orders()) == 1
