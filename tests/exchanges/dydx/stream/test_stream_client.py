"""The gRPC side: an endpoint that does not stream is one line; settings validation; a lost
stream is reconnected (loopback fake: tests/fakes/dydx_stream.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from perpbot.core.errors import ConfigError
from perpbot.core.model import Market
from perpbot.exchanges.dydx.config import DydxSettings
from tests.fakes import builtin_dataset
from tests.fakes.dydx_stream import FakeNodeStream

NET = {"network": "custom", "indexer_rest": "http://127.0.0.1:9", "indexer_ws": "ws://127.0.0.1:9/v4/ws"}
DS = builtin_dataset()
MARKETS = {t: Market.from_indexer(DS.markets[t]) for t in ("BTC-USD", "ETH-USD")}


def _source(url: str, **cfg):
    from perpbot.exchanges.dydx.stream import StreamSource

    got: list = []
    s = DydxSettings.from_config(dict(NET, stream=url, retry_base_s=0.05, retry_max_s=0.1, **cfg))
    return StreamSource(s, MARKETS, ("BTC-USD", "ETH-USD"), put=got.extend, now_ns=time.time_ns,
                        indexer_tracker=lambda t: None), got


@pytest.mark.parametrize("mode, why", [
    ("unimplemented", "UNIMPLEMENTED: method StreamOrderbookUpdates not implemented"),
    ("silent", "no order-book message within 0.3s"),
    ("end", "the call ended without a message (OK)"),
])
def test_an_endpoint_that_does_not_stream_is_one_line(mode, why):
    async def run():
        async with FakeNodeStream(DS.markets, mode=mode) as fk:
            src, _ = _source(fk.url, stream_timeout_s=0.3)
            with pytest.raises(ConfigError) as err:
                await src.start()
            msg = str(err.value)
            assert msg.startswith(f"dydx.stream: {fk.url} does not stream order-book updates") and why in msg, msg
            assert "\n" not in msg
    asyncio.run(run())


def test_a_refused_endpoint_is_one_line():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def run():
        src, _ = _source(f"127.0.0.1:{port}", stream_timeout_s=5)
        with pytest.raises(ConfigError, match=rf"dydx.stream: 127.0.0.1:{port} does not stream .*UNAVAILABLE"):
            await src.start()
    asyncio.run(run())


@pytest.mark.parametrize("value, msg", [
    ("127.0.0.1", "dydx.stream: expected host:port"),
    ("node:0", "dydx.stream: expected host:port"),
    ("node:http", "dydx.stream: expected host:port"),
])
def test_bad_stream_addresses(value, msg):
    with pytest.raises(ConfigError, match=msg):
        DydxSettings.from_config(dict(NET, stream=value))


def test_stream_settings_defaults():
    s = DydxSettings.from_config(dict(NET, stream="grpc://127.0.0.1:9090"))
    assert s.stream == "127.0.0.1:9090" and s.stream_secure is False
    s = DydxSettings.from_config(dict(NET, stream="node.example.com:443", stream_idle_s="5"))
    assert s.stream_secure is True and s.stream_idle_s == 5.0
    assert DydxSettings.from_config(NET).stream is None
    with pytest.raises(ConfigError, match="dydx.stream_timeout_s: must be >= 0.01"):
        DydxSettings.from_config(dict(NET, stream_timeout_s=0))


def test_a_silent_stream_is_dropped_and_reopened_with_a_fresh_snapshot():
    async def run():
        async with FakeNodeStream(DS.markets) as fk:
            fk.seed("BTC-USD", [("64999", "0.05")], [("65001", "0.05")])
            src, got = _source(fk.url, stream_idle_s=0.3)
            await src.start()
            deadline = time.monotonic() + 10
            while src.counters["connects"] < 2 or src.active != {"BTC-USD", "ETH-USD"}:
                assert time.monotonic() < deadline, src.stats()
                await asyncio.sleep(0.02)
            assert src.counters["losses"] >= 1 and src.last_loss == "no message for 0.3s"
            lost = [e for e in got if type(e).__name__ == "FeedStatus" and not e.healthy]
            assert lost and "node stream lost (no message for 0.3s)" in lost[0].reason
            await src.stop()
            assert fk.subscribers == 0 or await _gone(fk)
    asyncio.run(run())


async def _gone(fk) -> bool:
    for _ in range(100):
        if fk.subscribers == 0:
            return True
        await asyncio.sleep(0.02)
    return False
