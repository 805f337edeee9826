"""The event stream: Server-Sent Events (``GET /api/events``) of what observers see.

:class:`EventHub` fans each event out to every connected client through that client's own
bounded queue. Publishing never waits: an event is encoded once and put with
``put_nowait``; a client whose queue is full (it reads slower than the bot produces) is
dropped (its stream ends with an ``event: dropped`` message and it is counted), so a slow
client never slows the bot. With no client connected, publishing costs one check.

Wire format (the W3C/WHATWG Server-Sent Events format, html.spec.whatwg.org "Server-sent
events", section "Parsing an event stream"): ``event: <type>`` then ``data: <JSON>`` then a
blank line; ``: keep-alive`` comment lines every ``keepalive_s`` seconds of silence. Event
types: ``hello`` (on connect), ``fill``, ``order``, ``order_result``, ``risk``, ``decisions``
(a summary: decisions since the last one, at most one per second of wall time), ``equity``,
``control``, ``bye`` (the bot stopped) and ``dropped``. Imports the standard library only.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator

#: events a client may have queued before it is dropped
DEFAULT_QUEUE = 256


def sse(event: str, data: Any) -> str:
    """One SSE message: ``event: <event>\\ndata: <compact JSON>\\n\\n`` (JSON has no raw newline)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


class Client:
    """One connected stream: its bounded queue and whether it was dropped."""

    __slots__ = ("queue", "dropped", "closed")

    def __init__(self, size: int):
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=size)
        self.dropped = False
        self.closed = False


class EventHub:
    """Fan-out of events to SSE clients, each with a bounded queue (see the module docstring).

    :param queue_size: events a client may lag behind before it is dropped.
    :param keepalive_s: seconds of silence before a keep-alive comment.
    """

    def __init__(self, queue_size: int = DEFAULT_QUEUE, keepalive_s: float = 15.0):
        self.queue_size = queue_size
        self.keepalive_s = keepalive_s
        self.clients: set[Client] = set()
        #: clients dropped for reading too slowly, since the hub was made
        self.dropped = 0
        #: events published (to at least one client)
        self.published = 0
        self.closed = False

    @property
    def clients_count(self) -> int:
        """Connected clients."""
        return len(self.clients)

    def publish(self, event: str, data: Any) -> None:
        """Queue ``event`` with JSON-ready ``data`` for every client; never waits (call on the loop)."""
        if not self.clients:
            return
        msg = sse(event, data)
        self.published += 1
        for c in list(self.clients):
            try:
                c.queue.put_nowait(msg)
            except asyncio.QueueFull:
                c.dropped = True
                self.dropped += 1
                self.clients.discard(c)

    def close(self) -> None:
        """End every stream (the bot stopped): each client gets a ``bye`` event when it has room."""
        self.closed = True
        for c in list(self.clients):
            c.closed = True
            try:
                c.queue.put_nowait(sse("bye", {"reason": "the bot stopped"}))
                c.queue.put_nowait(None)
            except asyncio.QueueFull:
                pass
        self.clients.clear()

    async def stream(self, hello: dict) -> AsyncIterator[str]:
        """The SSE text of one new client, from a ``hello`` event on, until it is dropped, the hub
        closes or the client goes away (the server then cancels this generator)."""
        c = Client(self.queue_size)
        if self.closed:
            yield sse("bye", {"reason": "the bot stopped"})
            return
        self.clients.add(c)
        try:
            yield sse("hello", hello)
            while True:
                if c.dropped:
                    yield sse("dropped", {"reason": f"this client fell {self.queue_size} events behind"})
                    return
                try:
                    async with asyncio.timeout(self.keepalive_s):
                        msg = await c.queue.get()
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if msg is None:
                    return
                yield msg
                if c.closed and c.queue.empty():
                    return
        finally:
            self.clients.discard(c)
