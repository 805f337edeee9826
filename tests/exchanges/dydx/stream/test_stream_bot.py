"""The full-node stream drives the paper exchange: ``--exchange paper --feed dydx --dydx-stream``
against the loopback fakes (indexer REST/WS: tests/fakes/indexer; node stream:
tests/fakes/dydx_stream.py, real v4-proto messages)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.exchanges.dydx.conftest import FAST

D = Decimal
REPO = Path(__file__).resolve().parents[4]


def _levels(dx, ticker: str) -> tuple[list, list]:
    book = dx.indexer.books[ticker]
    return book.sorted_levels("bids"), book.sorted_levels("asks")


def _seeded_stream(dx, tickers=("BTC-USD", "ETH-USD")):
    """A node stream whose book starts equal to the fake indexer's and whose later changes
    reach the indexer through its own WebSocket batching (as the real indexer follows its node)."""
    from tests.fakes.dydx_stream import FakeNodeStream

    fk = FakeNodeStream(dx.indexer.markets)
    for t in tickers:
        bids, asks = _levels(dx, t)
        fk.seed(t, bids, asks)
    fk.mirror = lambda t, b, a: dx.indexer.call_soon_threadsafe(dx.indexer.apply_orderbook, t, b, a)
    return fk


def _tick(dx, t: str) -> Decimal:
    return D(dx.indexer.markets[t]["tickSize"])


def test_stream_book_drives_the_paper_exchange(tmp_path):
    from perpbot.core.bot import TradingBot
    from perpbot.core.config import BotConfig
    from perpbot.core.model import OrderParams, OrderType, Side
    from perpbot.core.plugins import PluginManager
    from tests.fakes import FakeDydx

    with FakeDydx(indexer_kwargs={"batch_interval": 0.05}, matching=False) as dx:
        with _seeded_stream(dx) as fk:
            net = {"network": "custom", "indexer_rest": dx.rest_url, "indexer_ws": dx.ws_url, **FAST}
            cfg = BotConfig(exchange=("paper",), strategy="sniper", tickers=("BTC-USD", "ETH-USD"), feed="dydx",
                            state_dir=tmp_path, journal_enabled=False, report=False, progress=False,
                            feeds={"dydx": dict(net, stream=fk.url)})
            bot = TradingBot(cfg, PluginManager(load_entry_points=False))
            feed = bot.feed

            async def session():
                run = asyncio.create_task(bot.run())
                deadline = time.monotonic() + 15

                async def until(cond, what):
                    while not cond():
                        assert not run.done(), run.exception() if run.done() else ""
                        assert time.monotonic() < deadline, what
                        await asyncio.sleep(0.02)

                await until(lambda: feed.stream is not None and feed.stream.active == {"BTC-USD", "ETH-USD"}
                            and bot.states and all(not bot.states[t].stale_reason(bot.clock.now_ns())
                                                   for t in bot.states), "the stream never drove the books")
                bids, asks = _levels(dx, "BTC-USD")
                assert bot.states["BTC-USD"].book.best_ask_price() == asks[0][0]
                # an ask only the node knows (the indexer never hears of it): inside the spread
                tick = _tick(dx, "BTC-USD")
                inside = asks[0][0] - tick
                assert inside > bids[0][0]
                fk.mirror, mirror = None, fk.mirror
                key = fk.call(fk.place, "BTC-USD", "SELL", inside, "0.01")
                fk.mirror = mirror
                await until(lambda: bot.states["BTC-USD"].book.best_ask_price() == inside,
                            "the stream's new level never reached the bot's book")
                assert dx.indexer.books["BTC-USD"].best_ask() == asks[0][0]  # the indexer does not have it
                res = await bot.submit(OrderParams("BTC-USD", Side.BUY, OrderType.MARKET, size=D("0.002")),
                                       risk_exempt=True)
                assert res is not None and res.success, res
                await until(lambda: bot.portfolio.positions.get("BTC-USD") is not None
                            and bot.portfolio.positions["BTC-USD"].size == D("0.002"), "no paper fill")
                assert bot.portfolio.positions["BTC-USD"].entry_price == inside  # filled on the stream's level
                # a node fill: the level thins, a confirmed trade reaches the bot
                fk.call(fk.fill, key, "0.004")
                await until(lambda: feed.stream.books.stats["trades"] >= 1, "no stream trade")
                # changes the indexer also gets (mirrored): the two tops agree, the stream first
                eth_bids, eth_asks = _levels(dx, "ETH-USD")
                better = eth_bids[0][0] + _tick(dx, "ETH-USD")
                assert better < eth_asks[0][0]
                for i in range(3):  # a better bid appears, then goes: the top moves twice each time
                    k = fk.call(fk.place, "ETH-USD", "BUY", better, "0.1")
                    await asyncio.sleep(0.15)
                    fk.call(fk.remove, k)
                    await asyncio.sleep(0.15)
                await until(lambda: feed.stream.crosscheck.counts["agreements"] >= 4, "the indexer never caught up")
                stats = feed.stats()
                assert stats["crosscheck_lead_samples"] >= 4 and stats["crosscheck_lead_ms_median"] > 0, stats
                assert stats["stream_crossings"] == 0 and stats["stream_losses"] == 0
                # the indexer's own ETH book updates were held back, not applied twice
                assert stats["stream_indexer_events_held"] > 0
                bot.request_stop("test done")
                async with asyncio.timeout(10):
                    await run

            asyncio.run(session())


def test_stream_lost_falls_back_to_the_indexer_and_comes_back(tmp_path):
    """A dropped call hands the books to the indexer (its book, healthy) until the stream's
    fresh snapshot; a disagreement between the two is counted."""
    from perpbot.core.bot import TradingBot
    from perpbot.core.config import BotConfig
    from perpbot.core.plugins import PluginManager
    from tests.fakes import FakeDydx

    with FakeDydx(indexer_kwargs={"batch_interval": 0.05}, matching=False) as dx:
        with _seeded_stream(dx, ("BTC-USD",)) as fk:
            net = {"network": "custom", "indexer_rest": dx.rest_url, "indexer_ws": dx.ws_url, **FAST}
            cfg = BotConfig(exchange=("paper",), strategy="sniper", tickers=("BTC-USD",), feed="dydx",
                            state_dir=tmp_path, journal_enabled=False, report=False, progress=False,
                            feeds={"dydx": dict(net, stream=fk.url, retry_base_s=0.3, retry_max_s=0.3)})
            bot = TradingBot(cfg, PluginManager(load_entry_points=False))
            feed = bot.feed

            async def session():
                run = asyncio.create_task(bot.run())
                deadline = time.monotonic() + 15

                async def until(cond, what):
                    while not cond():
                        assert not run.done(), run.exception() if run.done() else ""
                        assert time.monotonic() < deadline, what
                        await asyncio.sleep(0.01)

                await until(lambda: feed.stream is not None and "BTC-USD" in feed.stream.active,
                            "the stream never drove the book")
                bids, asks = _levels(dx, "BTC-USD")
                inside = asks[0][0] - _tick(dx, "BTC-USD")
                fk.mirror = None
                fk.call(fk.place, "BTC-USD", "SELL", inside, "0.01")
                await until(lambda: bot.states["BTC-USD"].book.best_ask_price() == inside, "no stream level")
                fk.call(fk.drop)
                # the indexer's book (without the node-only level) takes over at once
                await until(lambda: not feed.stream.active, "the loss went unnoticed")
                await until(lambda: bot.states["BTC-USD"].book.best_ask_price() == asks[0][0], "no fallback book")
                assert not bot.states["BTC-USD"].stale_reason(bot.clock.now_ns())
                await until(lambda: "BTC-USD" in feed.stream.active, "the stream never came back")
                assert bot.states["BTC-USD"].book.best_ask_price() == inside
                # the indexer alone loses its best bid: its new top bid was never the stream's
                dx.indexer.call_soon_threadsafe(dx.indexer.apply_orderbook, "BTC-USD", [(bids[0][0], "0")], [])
                await until(lambda: feed.stream.crosscheck.counts["disagreements"] >= 1, "disagreement not counted")
                assert bot.states["BTC-USD"].book.best_bid_price() == bids[0][0]  # the indexer's level held back
                s = feed.stats()
                assert s["stream_losses"] == 1 and s["stream_connects"] == 2, s
                bot.request_stop("test done")
                async with asyncio.timeout(10):
                    await run

            asyncio.run(session())


@pytest.mark.timeout(120)
def test_runbot_with_dydx_stream_and_a_stream_endpoint_that_does_not_stream(tmp_path):
    """``runbot.py --exchange paper --feed dydx --dydx-stream`` runs on the node stream; an endpoint
    that does not stream is one error line."""
    from tests.fakes import FakeDydx
    from tests.fakes.dydx_stream import FakeNodeStream

    env = dict(os.environ, PERPBOT_OFFLINE="1", COLUMNS="200")
    with FakeDydx(indexer_kwargs={"batch_interval": 0.05}, matching=False) as dx:
        cfg = tmp_path / "fast.toml"
        cfg.write_text("[feed.dydx]\n" + "\n".join(f"{k} = {v}" for k, v in FAST.items())
                       + "\nstream_timeout_s = 1\n")
        base = [sys.executable, str(REPO / "runbot.py"), "--config", str(cfg), "--exchange", "paper",
                "--feed", "dydx", "--network", "custom", "--indexer-rest", dx.rest_url,
                "--indexer-ws", dx.ws_url, "--strategy", "sniper", "--ticker", "BTC",
                "--state-dir", str(tmp_path / "state"), "--no-report", "--no-journal"]
        with FakeNodeStream(dx.indexer.markets, mode="unimplemented") as bad:
            p = subprocess.run(base + ["--dydx-stream", bad.url], cwd=REPO, env=env, capture_output=True,
                               text=True, timeout=60)
        assert p.returncode == 2, p.stderr[-2000:]  # ConfigError's exit code
        lines = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
        assert lines[0].startswith(f"error: dydx.stream: {bad.url} does not stream order-book updates"), lines
        assert "UNIMPLEMENTED" in lines[0], lines

        with _seeded_stream(dx, ("BTC-USD",)) as fk:
            proc = subprocess.Popen(base + ["--dydx-stream", fk.url], cwd=REPO, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                deadline = time.monotonic() + 30
                while fk.call(lambda: fk.subscribers) < 1:
                    assert proc.poll() is None, proc.communicate()[1][-3000:]
                    assert time.monotonic() < deadline, "runbot never subscribed to the stream"
                    time.sleep(0.05)
                bids, asks = _levels(dx, "BTC-USD")
                for i in range(3):
                    k = fk.call(fk.place, "BTC-USD", "SELL", asks[0][0] - _tick(dx, "BTC-USD"), "0.01")
                    time.sleep(0.1)
                    fk.call(fk.fill, k, "0.01")
                    time.sleep(0.1)
                proc.send_signal(__import__("signal").SIGINT)
                out, err = proc.communicate(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        assert proc.returncode == 0, err[-3000:]
        assert "Traceback" not in err
        assert "BTC-USD: order book and trades from the full-node stream" in err, err[-3000:]
        assert re.search(r"full-node stream 127\.0\.0\.1:\d+: \d+ responses, 3 trades, 0 loss\(es\), 0 crossing", err), \
            err[-3000:]
