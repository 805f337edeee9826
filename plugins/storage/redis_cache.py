"""``redis://...``: a live cache and pub/sub of the latest market data, shared between processes.

Writing (the collector): for each row, the latest value per venue, market and kind is kept
under key ``perpbot:latest:<kind>:<venue>:<market>`` (a JSON object of the row's columns,
decimals as text) and the same JSON is published on channel ``perpbot:<kind>`` (Redis
``SET`` and ``PUBLISH``, sent in one pipeline per batch). Trades are published only (a
latest trade is of little use). Kinds are the collector's (:mod:`.schema`): books (top levels
and best bid/offer), funding, open interest, mark prices, and with ``collect --signals`` each
market's analysis confluence (kind ``signal``, venue ``all``: :mod:`perpbot.plugins.collector.signals`).

Reading (a bot process): :class:`LiveCacheReader` ``latest(kind, venue, market)`` and
``listen(kinds)`` (an async iterator over published rows).

:meth:`RedisCache.counts` counts rows published by this process (a cache keeps no history).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, AsyncIterator, Sequence

from perpbot.core.errors import ConfigError
from perpbot.plugins.storage import Storage, redact
from perpbot.plugins.storage.schema import COLUMNS, TYPES, check_kind, text_of

PREFIX = "perpbot"


def latest_key(kind: str, venue: str, market: str, prefix: str = PREFIX) -> str:
    """The cache key of the latest ``kind`` row of ``venue``/``market``."""
    return f"{prefix}:latest:{kind}:{venue}:{market}"


def channel(kind: str, prefix: str = PREFIX) -> str:
    """The pub/sub channel of ``kind`` rows."""
    return f"{prefix}:{kind}"


def split_prefix(url: str) -> tuple[str, str]:
    """``redis://host:6379/0?prefix=lab`` -> ``("redis://host:6379/0", "lab")``; the default prefix
    is ``perpbot`` (keys ``perpbot:latest:...``, channels ``perpbot:<kind>``).

    :raises ConfigError: an empty or non-alphanumeric prefix (``-`` and ``_`` allowed).
    """
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = PREFIX
    rest = []
    for k, v in query:
        if k == "prefix":
            prefix = v
        else:
            rest.append((k, v))
    if not prefix or not prefix.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"--store: redis prefix must be letters, digits, - or _, got {prefix!r}")
    return urlunsplit(parts._replace(query=urlencode(rest))), prefix


def row_json(kind: str, row: tuple) -> str:
    """A row as JSON: ``{"kind": ..., column: value}`` (decimals as text, exact)."""
    types = TYPES[kind]
    obj: dict[str, Any] = {"kind": kind}
    for c, v in zip(COLUMNS[kind], row):
        obj[c] = text_of(v) if types[c] == "dec" else v
    return json.dumps(obj, separators=(",", ":"))


class RedisCache(Storage):
    """The live cache (module docstring).

    :param url: ``redis://[:password@]host:port/db[?prefix=NAME]`` (see :func:`split_prefix`).
    :param ttl_s: expiry of the latest-value keys, seconds (a dead collector's values vanish).
    :raises ConfigError: the server cannot be reached (one line, password redacted).
    """

    def __init__(self, url: str, ttl_s: int = 300):
        import redis

        self.url = url
        url, self.prefix = split_prefix(url)
        self.ttl_s = int(ttl_s)
        self.published: Counter = Counter()
        self._closed = False
        try:
            self.client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
            self.client.ping()
        except (redis.RedisError, ValueError) as exc:
            raise ConfigError(f"--store: cannot connect to Redis {redact(url)}: {' '.join(str(exc).split())[:200]}") from None

    def write(self, kind: str, rows: Sequence[tuple]) -> int:
        """Publish every row and keep the newest per venue and market (one pipeline); returns ``len(rows)``.

        :raises ValueError: an unknown kind. redis errors propagate.
        """
        check_kind(kind)
        if not rows:
            return 0
        pipe = self.client.pipeline(transaction=False)
        newest: dict[tuple[str, str], str] = {}
        ch = channel(kind, self.prefix)
        for r in rows:
            text = row_json(kind, r)
            pipe.publish(ch, text)
            newest[(r[0], r[1])] = text
            self.published[(r[0], kind)] += 1
        if kind != "trade":
            for (venue, market), text in newest.items():
                pipe.set(latest_key(kind, venue, market, self.prefix), text, ex=self.ttl_s)
        pipe.execute()
        return len(rows)

    def counts(self) -> dict[tuple[str, str], int]:
        """``{(venue, kind): rows published}`` by this object."""
        return dict(self.published)

    def close(self) -> None:
        """Close the connection pool (safe twice)."""
        if not self._closed:
            self._closed = True
            self.client.close()


class LiveCacheReader:
    """What a bot process reads from the collector's cache (asyncio, ``redis.asyncio``).

    :param url: the same ``redis://`` URL the collector writes to (``?prefix=`` included).
    """

    def __init__(self, url: str):
        import redis.asyncio as aredis

        self.url = url
        url, self.prefix = split_prefix(url)
        self.client = aredis.Redis.from_url(url, socket_connect_timeout=5)

    async def latest(self, kind: str, venue: str, market: str) -> dict | None:
        """The newest ``kind`` row of ``venue``/``market`` as a dict (decimals as text), or None.

        :raises ValueError: an unknown kind.
        """
        check_kind(kind)
        raw = await self.client.get(latest_key(kind, venue, market, self.prefix))
        return None if raw is None else json.loads(raw)

    async def listen(self, kinds: Sequence[str]) -> AsyncIterator[dict]:
        """Rows as the collector publishes them (dicts with ``kind``), until the caller stops iterating.

        :raises ValueError: an unknown kind.
        """
        for k in kinds:
            check_kind(k)
        pubsub = self.client.pubsub()
        await pubsub.subscribe(*[channel(k, self.prefix) for k in kinds])
        try:
            while True:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is not None and msg.get("type") == "message":
                    yield json.loads(msg["data"])
        finally:
            await pubsub.unsubscribe()
            await pubsub.aclose()

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()

    def __repr__(self) -> str:
        return f"LiveCacheReader({redact(self.url)!r})"
