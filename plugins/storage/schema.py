"""The collector's row kinds: one table per kind, the same columns in every backend.

A row is a plain tuple in :data:`COLUMNS` order (cheap to build, validate and ``COPY``). Every
row starts with ``venue`` (the run's venue name, ``binance``), ``market`` (``BTC-USD``) and
``ts_ns`` (Unix ns: the receive time, except a settled funding row, stamped with its funding
time). Prices, sizes, rates and open interest are :class:`~decimal.Decimal` (exact; stored as
``DECIMAL(38,18)`` in DuckDB and ``NUMERIC`` in PostgreSQL). Kinds:

- ``book``: the top ``depth`` levels after an update: best ``bid``/``bid_size``/``ask``/
  ``ask_size`` and the levels as JSON text ``[["price","size"], ...]`` (best first).
- ``trade``: ``price``, ``size`` (base units), ``side`` (``buy``/``sell``, the taker's side),
  ``trade_id`` (the venue's id, text) and ``seq`` (the venue's consecutive sequence number
  when it has one, else None).
- ``funding``: ``rate_1h`` (per hour, fraction), ``settled`` (True: paid at ``ts_ns``; False: the
  venue's current prediction), ``interval_h``, ``next_funding_ns`` and ``oracle_price`` (None
  when the venue gives none).
- ``oi``: ``open_interest`` (base units, as the venue reports it).
- ``mark``: ``price`` (the venue's mark / oracle price).
- ``signal`` (only with ``collect --signals``): one market's analysis confluence across venues,
  venue ``all``: ``score`` 0-100, ``direction`` +1/-1/0, ``agreeing`` / ``total`` interpretations,
  ``reasons`` (JSON list of text), see :mod:`perpbot.plugins.collector.signals`.
"""

from __future__ import annotations

from decimal import Decimal

#: kind -> column names, in row-tuple order
COLUMNS: dict[str, tuple[str, ...]] = {
    "book": ("venue", "market", "ts_ns", "bid", "bid_size", "ask", "ask_size", "bids", "asks"),
    "trade": ("venue", "market", "ts_ns", "price", "size", "side", "trade_id", "seq"),
    "funding": ("venue", "market", "ts_ns", "rate_1h", "settled", "interval_h", "next_funding_ns", "oracle_price"),
    "oi": ("venue", "market", "ts_ns", "open_interest"),
    "mark": ("venue", "market", "ts_ns", "price"),
    "signal": ("venue", "market", "ts_ns", "score", "direction", "agreeing", "total", "reasons"),
}

#: kind -> column -> logical type: text, int (64-bit), bool, dec (exact decimal), float (an analysis value)
TYPES: dict[str, dict[str, str]] = {
    "book": {"bid": "dec", "bid_size": "dec", "ask": "dec", "ask_size": "dec", "bids": "text", "asks": "text"},
    "trade": {"price": "dec", "size": "dec", "side": "text", "trade_id": "text", "seq": "int"},
    "funding": {"rate_1h": "dec", "settled": "bool", "interval_h": "int", "next_funding_ns": "int",
                "oracle_price": "dec"},
    "oi": {"open_interest": "dec"},
    "mark": {"price": "dec"},
    "signal": {"score": "float", "direction": "int", "agreeing": "int", "total": "int", "reasons": "text"},
}
for _t in TYPES.values():
    _t.update(venue="text", market="text", ts_ns="int")

KINDS: tuple[str, ...] = tuple(COLUMNS)


def column_type(kind: str, column: str) -> str:
    """The logical type (``text``, ``int``, ``bool``, ``dec``, ``float``) of ``kind``'s ``column``."""
    return TYPES[kind][column]


def check_kind(kind: str) -> None:
    """:raises ValueError: ``kind`` is not one of :data:`KINDS` (the closest one named)."""
    if kind not in COLUMNS:
        import difflib

        near = difflib.get_close_matches(kind, KINDS, n=1)
        raise ValueError(f"unknown row kind {kind!r}" + (f"; did you mean {near[0]!r}?" if near else "")
                         + f" (kinds: {', '.join(KINDS)})")


def text_of(value) -> str | None:
    """A value as the text a backend parses exactly (Decimal without exponent); None stays None."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)
