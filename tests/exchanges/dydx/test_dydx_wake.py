"""Event-driven decisions on the dYdX live feed and on its replay (issue 11 item 4): the bot runs
live on the loopback fake indexer (real socks message shapes, tests/fakes/indexer) while the
feed records what it receives; the same recording replayed (``feed = "replay"``) wakes the
strategy at exactly the same events, held wake-ups included."""

from __future__ import annotations

import asyncio
import time

from tests.core.test_wake import ProbePlugin, WakeProbe
from tests.exchanges.dydx.conftest import FAST

WAKE = "bbo,trade,every:3600"
THROTTLE = "0.04"


def _config(tmp_path, feed, feeds):
    from perpbot.core.testing import bot_config

    return bot_config(exchange=("paper",), strategy="wakeprobe", tickers=("BTC-USD", "ETH-USD"), feed=feed,
                      state_dir=tmp_path, feeds=feeds, decision_interval_s=THROTTLE,
                      strategies={"wakeprobe": {"wake_on": WAKE}})


def woken():
    """(kind, ticker, waking event time, decision's event time) of every event-driven decision."""
    return [(k, t, ts, decided) for k, t, ts, _, decided in WakeProbe.log if k != "schedule"]


def test_live_dydx_feed_and_its_replay_wake_the_strategy_at_the_same_events(tmp_path):
    from perpbot.core.bot import TradingBot
    from perpbot.core.plugins import PluginManager
    from tests.fakes import FakeDydx

    WakeProbe.log = []
    WakeProbe.seen = []
    rec = tmp_path / "live.jsonl.gz"
    with FakeDydx(indexer_kwargs={"batch_interval": 0.01}, matching=False) as dx:
        net = {"network": "custom", "indexer_rest": dx.rest_url, "indexer_ws": dx.ws_url, "node": dx.node_url, **FAST}
        cfg = _config(tmp_path / "live", "dydx", {"dydx": {**net, "record": str(rec)}})
        bot = TradingBot(cfg, PluginManager(load_entry_points=False, extra_plugins=(ProbePlugin(),)))
        ix = dx.indexer

        def push(fn, *args):
            ix.call_soon_threadsafe(fn, *args)

        async def session():
            run = asyncio.create_task(bot.run())
            deadline = time.monotonic() + 10
            while not bot.states or any(bot.states[t].stale_reason(bot.clock.now_ns()) for t in bot.states):
                assert time.monotonic() < deadline and not run.done(), "no fresh market data"
                await asyncio.sleep(0.02)
            for i in range(12):  # trades and top-of-book moves, some inside the throttle gap
                push(ix.apply_trades, "BTC-USD", [{"side": "BUY", "size": "0.01", "price": str(60000 + i)}])
                if i % 3 == 0:
                    push(ix.apply_orderbook, "ETH-USD", [(str(3000 + i), "1")], ())
                if i % 4 == 1:
                    push(ix.apply_orderbook, "BTC-USD", [("1000", "1")], ())  # deep level: no wake-up
                await asyncio.sleep(0.025 if i % 2 else 0.06)
            await asyncio.sleep(0.2)
            bot.request_stop("test done")
            async with asyncio.timeout(10):
                await run

        asyncio.run(session())
    live = woken()
    live_seen = [x for x in WakeProbe.seen if x[0] != "schedule"]  # what each decision saw
    held = bot._events.waker.stats()["held"]
    assert len(live) >= 6 and {k for k, *_ in live} == {"bbo", "trade"}
    assert held >= 1  # some wake-ups were held by the throttle (decided at a later event)
    assert any(ts < decided for _, _, ts, decided in live)

    WakeProbe.log = []
    WakeProbe.seen = []
    cfg = _config(tmp_path / "replay", "replay", {"replay": {"files": [str(rec)]}})
    bot = TradingBot(cfg, PluginManager(load_entry_points=False, extra_plugins=(ProbePlugin(),)))
    asyncio.run(bot.run())
    assert woken() == live
    assert [x for x in WakeProbe.seen if x[0] != "schedule"] == live_seen
    assert bot._events.waker.stats()["held"] == held
