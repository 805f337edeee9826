"""The event stream's fan-out: bounded per-client queues, a slow client is dropped, publishing never waits."""

from __future__ import annotations

import asyncio
import json

from perpbot.plugins.api.events import EventHub, sse


def parse(msg: str) -> tuple[str, dict]:
    """(event, data) of one SSE message."""
    lines = dict(line.split(": ", 1) for line in msg.strip().split("\n"))
    return lines["event"], json.loads(lines["data"])


def test_sse_wire_format_is_one_event_and_one_json_line():
    assert sse("fill", {"price": "60000.5", "note": "a\nb"}) == 'event: fill\ndata: {"price":"60000.5","note":"a\\nb"}\n\n'


def test_a_slow_client_is_dropped_and_a_fast_one_gets_everything():
    async def main():
        hub = EventHub(queue_size=4)
        slow, fast = hub.stream({"run_id": "r"}), hub.stream({"run_id": "r"})
        assert parse(await anext(slow)) == ("hello", {"run_id": "r"})
        assert parse(await anext(fast))[0] == "hello"
        got = []
        for i in range(10):
            hub.publish("fill", {"i": i})  # never awaits: the bot is not slowed
            got.append(parse(await anext(fast)))  # the fast client keeps up
        assert got == [("fill", {"i": i}) for i in range(10)]
        # the slow one never read: dropped when its 5th event found its queue full
        assert hub.dropped == 1 and hub.clients_count == 1
        assert parse(await anext(slow)) == ("dropped", {"reason": "this client fell 4 events behind"})
        assert await anext(slow, None) is None
        # closing ends the fast stream with a goodbye
        hub.close()
        assert parse(await anext(fast)) == ("bye", {"reason": "the bot stopped"})
        assert await anext(fast, None) is None
        # a client arriving after the end gets the goodbye at once
        late = hub.stream({})
        assert parse(await anext(late))[0] == "bye" and await anext(late, None) is None

    asyncio.run(main())


def test_publishing_without_clients_costs_nothing_and_keepalives_flow():
    async def main():
        hub = EventHub(keepalive_s=0.05)
        hub.publish("fill", {"i": 1})
        assert hub.published == 0
        s = hub.stream({})
        await anext(s)
        assert await anext(s) == ": keep-alive\n\n"
        await s.aclose()
        assert hub.clients_count == 0

    asyncio.run(main())
