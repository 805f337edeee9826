"""Paper trading a ccxt venue on its live public data (``paper = true``): the paper simulator with the
venue's base-tier fees, funding interval and margin fractions, no credentials and no ``--live``."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from tests.exchanges.ccxt.conftest import FAST

D = Decimal


def test_paper_on_live_binance_data(tmp_path, fake_thread, monkeypatch):
    from perpbot.core.bot import TradingBot
    from perpbot.core.config import BotConfig
    from perpbot.core.model import OrderParams, OrderType, Side
    from perpbot.core.plugins import PluginManager

    monkeypatch.delenv("PERPBOT_BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("PERPBOT_BINANCE_SECRET", raising=False)
    cfg = BotConfig(exchange=("binance",), venues={"binance": "ccxt:binanceusdm"}, strategy="sniper",
                    tickers=("BTC-USD",), feed="dydx", state_dir=tmp_path, journal_enabled=False, report=False,
                    progress=False, exchanges={"binance": {"url": fake_thread.url, "paper": True, "collateral": "5000", **FAST}})
    bot = TradingBot(cfg, PluginManager(load_entry_points=False))
    assert bot.exchange.capabilities().simulated and bot.markets["BTC-USD"].initial_margin_fraction == D("0.05")
    # one flat tier: Binance USD-M's base rates, not dYdX's tiers (maker 0.01 %)
    assert [(t.maker, t.taker) for t in bot.exchange._paper.cfg.fee_tiers] == [(D("0.0002"), D("0.0005"))]

    async def session():
        run = asyncio.create_task(bot.run())
        deadline = time.monotonic() + 15
        while not bot.states or not bot.portfolios or bot.states["BTC-USD"].stale_reason(bot.clock.now_ns()):
            assert time.monotonic() < deadline and not run.done(), "no fresh market data"
            await asyncio.sleep(0.05)
        assert bot.balance().equity == D("5000")
        res = await bot.submit(OrderParams("BTC-USD", Side.BUY, OrderType.MARKET, size=D("0.002")), risk_exempt=True)
        assert res is not None and res.success, res
        while not bot.portfolio.positions.get("BTC-USD") or bot.portfolio.positions["BTC-USD"].size == 0:
            assert time.monotonic() < deadline, "no paper fill"
            await asyncio.sleep(0.05)
        pos = bot.portfolio.positions["BTC-USD"]
        # Binance USD-M base-tier taker fee, 0.05 % of notional (venues.py); the simulator books fees in
        # whole micro-units (dYdX's USDC quantum), so to 1e-6
        assert abs(pos.fees - pos.entry_price * D("0.002") * D("0.0005")) <= D("0.000001"), pos.fees
        bot.request_stop("test done")
        async with asyncio.timeout(10):
            await run

    asyncio.run(session())
    assert fake_thread.order_requests == [] and fake_thread.signed_requests == 0  # nothing sent to the venue
