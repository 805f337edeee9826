"""Built-in plugin: one storage interface for collected market data, several backends.

:func:`open_storage` takes a URL and returns a :class:`Storage`:

- ``duckdb:PATH`` (the default, embedded: no server) -> :class:`~.duckdb_store.DuckDBStorage`;
- ``postgresql://user@host:port/db`` (psycopg 3; daily time-partitioned tables, batched ``COPY``)
  -> :class:`~.postgres.PostgresStorage`, for data shared between machines;
- ``redis://host:port/db`` (optional) -> :class:`~.redis_cache.RedisCache`: a live cache of the
  latest book / funding / open interest / mark per venue and market plus pub/sub, so bot
  processes can read what a collector process sees (:class:`~.redis_cache.LiveCacheReader`).

Row kinds and columns: :mod:`.schema`. The Parquet catalog (``plugins/catalog``) is not a
backend here: it holds day partitions of history downloads, not a stream of collected rows.

Imports: the standard library, :mod:`perpbot.core`; each backend imports its client library
(duckdb, psycopg, redis) only when opened.
"""

from __future__ import annotations

import abc
from typing import Iterable, Sequence

from perpbot.core.errors import ConfigError
from perpbot.plugins.storage.schema import COLUMNS, KINDS, check_kind

__all__ = ["Storage", "open_storage", "COLUMNS", "KINDS", "SCHEMES", "redact"]

#: URL schemes :func:`open_storage` knows
SCHEMES = ("duckdb", "postgresql", "postgres", "redis")


class Storage(abc.ABC):
    """A sink for collected rows (tuples in :data:`~.schema.COLUMNS` order of their kind).

    Methods are blocking: call them through :func:`asyncio.to_thread` from a running loop, and
    from one thread at a time (the collector has one writer task).
    """

    url: str = ""

    @abc.abstractmethod
    def write(self, kind: str, rows: Sequence[tuple]) -> int:
        """Store ``rows`` of ``kind`` (one batch, all or none); returns the number written.

        :raises ValueError: an unknown kind. Backend errors (a lost server) propagate.
        """

    @abc.abstractmethod
    def counts(self) -> dict[tuple[str, str], int]:
        """``{(venue, kind): rows}`` held by the backend."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush and release the connection; safe twice."""

    def write_many(self, batches: Iterable[tuple[str, Sequence[tuple]]]) -> int:
        """:meth:`write` each ``(kind, rows)``; returns the rows written."""
        n = 0
        for kind, rows in batches:
            check_kind(kind)
            n += self.write(kind, rows)
        return n

    def __enter__(self) -> "Storage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact(self.url)!r})"


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and reprs)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


def open_storage(url: str) -> Storage:
    """Open the backend ``url`` names (see the module docstring).

    :param url: ``duckdb:PATH``, ``postgresql://...`` / ``postgres://...`` or ``redis://...``;
        a bare path ending in ``.duckdb`` / ``.db`` means ``duckdb:PATH``.
    :raises ConfigError: an unknown scheme (closest named), a missing client library, a
        server that cannot be reached (one line, password redacted).
    """
    text = (url or "").strip()
    scheme = text.split(":", 1)[0].lower() if ":" in text else ""
    if not scheme and text.endswith((".duckdb", ".db")):
        text, scheme = "duckdb:" + text, "duckdb"
    if scheme == "duckdb":
        from perpbot.plugins.storage.duckdb_store import DuckDBStorage

        path = text.split(":", 1)[1]
        if not path:
            raise ConfigError("--store: duckdb needs a file, e.g. duckdb:collect.duckdb")
        return DuckDBStorage(path)
    if scheme in ("postgresql", "postgres"):
        from perpbot.plugins.storage.postgres import PostgresStorage

        return PostgresStorage(text)
    if scheme == "redis":
        from perpbot.plugins.storage.redis_cache import RedisCache

        return RedisCache(text)
    import difflib

    near = difflib.get_close_matches(scheme or text, SCHEMES, n=1)
    raise ConfigError(f"--store: unknown storage {redact(text)!r}" + (f"; did you mean {near[0]}:...?" if near else "")
                      + " (duckdb:PATH, postgresql://user@host:port/db, redis://host:port/0)")
