"""close_client: a ccxt client whose orderly close hangs or fails still has its HTTP session closed.

Regression for a CI failure: a client left open at exit had its receive tasks cancelled by
asyncio.run and printed tracebacks ("Unclosed client session") into the bot's stderr.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from perpbot.exchanges.ccxt.client import close_client


class _Client:
    """The two things close_client touches on a ccxt pro client: close() and session."""

    def __init__(self, behaviour: str):
        self.behaviour = behaviour
        self.session = aiohttp.ClientSession()
        self.closed_orderly = False

    async def close(self):
        if self.behaviour == "hang":
            await asyncio.sleep(3600)
        if self.behaviour == "fail":
            raise RuntimeError("ws close failed")
        await self.session.close()
        self.closed_orderly = True


@pytest.mark.parametrize("behaviour", ["hang", "fail", "ok"])
async def test_the_session_is_closed_whatever_the_orderly_close_does(behaviour):
    client = _Client(behaviour)
    session = client.session
    async with asyncio.timeout(5):
        await close_client(client, "binance", timeout_s=0.2)
    assert session.closed
    assert client.closed_orderly is (behaviour == "ok")


async def test_a_cancelled_caller_still_closes_the_session_then_sees_the_cancel():
    client = _Client("hang")
    session = client.session
    task = asyncio.create_task(close_client(client, "binance", timeout_s=30))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert session.closed


class _Conn:
    """An aiohttp WebSocket's two members close_client reads."""

    def __init__(self):
        self.closed = False

    async def close(self):
        self.closed = True


class _WsClient:
    """A ccxt ws Client whose open() is still in flight: ``connecting`` and a pending ``connected``."""

    def __init__(self):
        self.connecting = True
        self.connected = asyncio.get_running_loop().create_future()
        self.connection = None
        self.ping_looper = None

    def finish_open(self):  # the handshake completes after the exchange's close()
        self.connection = _Conn()
        self.connecting = False
        self.connected.set_result("wss://fake")


class _ClientWithWs(_Client):
    def __init__(self):
        super().__init__("ok")
        self.ws = _WsClient()
        self.clients = {"wss://fake": self.ws}

    async def close(self):  # as ccxt's ws_close: the connecting client is skipped and forgotten
        self.clients = {}
        asyncio.get_running_loop().call_later(0.05, self.ws.finish_open)
        await super().close()


async def test_a_connection_finished_after_the_close_is_closed_too():
    """Regression (CI, funding-arb e2e): a watch's open() finishing after close() left a socket open."""
    client = _ClientWithWs()
    async with asyncio.timeout(5):
        await close_client(client, "binance", timeout_s=1)
    assert client.ws.connection is not None and client.ws.connection.closed
