"""The API served by a running bot (``--api``): real uvicorn on a loopback port chosen by the OS,
real HTTP from a client task on the bot's own loop, the journal as the witness.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import httpx
import pytest

from perpbot.core.hookspecs import hookimpl
from perpbot.plugins.api import api_of
from tests.plugins.api.conftest import journal_rows, make_bot

pytestmark = pytest.mark.timeout(60)


class SlowDown:
    """Makes each decision take a little wall time, so the client can talk to a running bot."""

    __name__ = "api-test-slowdown"

    @hookimpl
    async def on_decision(self, bot, strategy, result):
        await asyncio.sleep(0.01)


class Scenario:
    """Starts ``script(view, url)`` as a task when the bot starts; keeps its result or error."""

    __name__ = "api-test-scenario"

    def __init__(self, script):
        self.script = script
        self.task = None

    @hookimpl(trylast=True)  # awaited after the API plugin's own (async) on_bot_start
    async def on_bot_start(self, bot):
        run = api_of(bot)
        assert run is not None, "the API plugin did not start for --api"
        self.task = asyncio.get_running_loop().create_task(self.script(bot, run.url))


async def until(fn, timeout_s=10.0):
    """Poll ``await fn()`` until it returns something truthy."""
    async with asyncio.timeout(timeout_s):
        while True:
            got = await fn()
            if got:
                return got
            await asyncio.sleep(0.02)


def test_reads_stream_and_control_of_a_running_bot(tmp_path, token, monkeypatch):
    monkeypatch.setenv("PERPBOT_API_TOKEN", token)
    seen: dict = {}
    auth = {"Authorization": f"Bearer {token}"}

    async def script(view, url):
        async with httpx.AsyncClient(base_url=url, timeout=10) as c:
            seen["url"] = url
            # wait for a leveraged position
            await until(lambda: _has_position(c))
            seen["status"] = (await c.get("/api/status")).json()
            for path in ("markets", "positions", "orders", "fills?limit=5", "pnl", "risk", "runs", "equity"):
                r = await c.get(f"/api/{path}")
                assert r.status_code == 200, (path, r.text)
                seen[path.split("?")[0]] = r.json()
            # the stream: hello, then live events (the bot keeps trading)
            async with c.stream("GET", "/api/events") as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                kinds = []
                async with asyncio.timeout(10):
                    async for line in stream.aiter_lines():
                        if line.startswith("event: "):
                            kinds.append(line[7:])
                        if "fill" in kinds and len(kinds) >= 3:
                            break
                seen["stream"] = kinds
            # control: refused without the token, or with a wrong one
            r = await c.post("/api/control/pause")
            seen["no_token"] = (r.status_code, r.json(), r.headers.get("www-authenticate"))
            r = await c.post("/api/control/pause", headers={"Authorization": "Bearer wrong-token-000000000"})
            seen["wrong_token"] = (r.status_code, r.json())
            r = await c.post("/api/control/pause", headers=auth, json={"reason": "x" * 201})
            seen["long_reason"] = (r.status_code, r.json())
            r = await c.post("/api/control/pause", headers=auth, json={"reason": "operator break"})
            seen["pause"] = (r.status_code, r.json())
            seen["paused_status"] = (await c.get("/api/status")).json()
            await asyncio.sleep(0.3)  # the bot keeps deciding while paused
            r = await c.post("/api/control/halt", headers=auth)
            seen["halt"] = (r.status_code, r.json())

    async def _has_position(c):
        # a long worth more than the account's 100 USD (0.003 BTC at 60000), so it can be liquidated
        got = (await c.get("/api/positions")).json()["positions"]
        return got and Decimal(got[0]["size"]) >= Decimal("0.003")

    sc = Scenario(script)
    # a small account, so the long position has a positive liquidation price
    bot = make_bot(tmp_path, SlowDown(), sc, seconds=900, api=("127.0.0.1", 0), exchanges={"paper": {"collateral": "100"}})
    asyncio.run(bot.run())
    assert sc.task.done() and sc.task.exception() is None, sc.task.exception()

    st = seen["status"]
    assert st["mode"] == "bot" and st["running"] and st["control"] and st["run_id"] == bot.run_id
    assert st["feeds"][0]["venue"] == "paper" and st["feeds"][0]["markets"] == ["BTC-USD"]
    assert Decimal(st["equity"]) > 0 and isinstance(st["equity"], str)
    m = seen["markets"]["markets"][0]
    assert m["ticker"] == "BTC-USD" and Decimal(m["price"]) == Decimal("60000")
    assert set(m["scores"]) == {"momentum", "volume", "volatility", "orderbook", "funding"}
    pos = seen["positions"]["positions"][0]
    assert pos["ticker"] == "BTC-USD" and Decimal(pos["size"]) > 0
    # cross-margin liquidation price of a small long: far below the mark, distance as a fraction
    assert pos["liquidation_note"] == "" and Decimal(pos["liquidation_price"]) < Decimal(pos["mark"])
    assert pos["liquidation_distance"] == pytest.approx(float(1 - Decimal(pos["liquidation_price"]) / Decimal(pos["mark"])))
    acct = seen["positions"]["accounts"][0]
    assert acct["venue"] == "paper" and Decimal(acct["initial_margin"]) > 0
    fills = seen["fills"]["fills"]
    assert 1 <= len(fills) <= 5 and all(isinstance(f["price"], str) for f in fills)
    pnl = seen["pnl"]
    assert pnl["source"] == "bot" and Decimal(pnl["net"]) == (
        Decimal(pnl["realized"]) + Decimal(pnl["unrealized"]) - Decimal(pnl["fees"])
        - Decimal(pnl["liquidation_fees"]) + Decimal(pnl["funding"]))
    assert [r["run_id"] for r in seen["runs"]["runs"]] == [bot.run_id]
    assert seen["equity"]["points"] and seen["stream"][0] == "hello" and "fill" in seen["stream"]

    code, body, www = seen["no_token"]
    assert code == 401 and www == "Bearer" and body == {"error": "missing bearer token (header Authorization: Bearer TOKEN)"}
    assert seen["wrong_token"] == (401, {"error": "wrong bearer token"})
    code, body = seen["long_reason"]
    assert code == 422 and body["error"].startswith("body field reason: String should have at most 200 characters")
    code, body = seen["pause"]
    assert code == 200 and body["applied"] and body["action"] == "PAUSE_ENTRIES" and body["source"] == "api 127.0.0.1"
    assert seen["paused_status"]["entries_paused"] == "operator break (api 127.0.0.1)"
    code, body = seen["halt"]
    assert code == 200 and body["halted"] == "api 127.0.0.1: halt requested"
    assert bot.halted == "api 127.0.0.1: halt requested"

    # the journal confirms: both actions with their source, and no entry after the pause
    j = tmp_path / "journal.sqlite"
    risk = journal_rows(j, "SELECT ts_ns, policy, action, reason FROM risk_actions ORDER BY seq")
    assert [(r["policy"], r["action"], r["reason"]) for r in risk] == [
        ("api 127.0.0.1", "PAUSE_ENTRIES", "operator break"), ("api 127.0.0.1", "HALT", "halt requested")]
    paused_at = risk[0]["ts_ns"]
    assert journal_rows(j, "SELECT COUNT(*) n FROM order_intents WHERE ts_ns < ? AND tag = 'entry'", (paused_at,))[0]["n"] > 0
    assert journal_rows(j, "SELECT COUNT(*) n FROM order_intents WHERE ts_ns >= ? AND tag = 'entry'", (paused_at,))[0]["n"] == 0

    # the server stopped with the bot
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{seen['url']}/api/status", timeout=2)
