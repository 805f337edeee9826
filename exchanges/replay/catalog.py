"""A local Parquet catalog of market history: its layout, its manifest, and the replay source reading it.

The catalog is written by ``runbot.py download`` (the built-in plugin :mod:`perpbot.plugins.catalog`)
and read here, so the replay feed needs no plugin. Layout under the catalog root::

    manifest.json
    venue=<venue>/market=<TICKER>/kind=<kind>/date=YYYY-MM-DD/part.parquet

``<venue>`` is ``dydx`` or a ccxt venue ``ccxt-<id>`` (``:`` is not used in paths);
``<kind>`` is ``candles-<RESOLUTION>`` (dYdX resolution names, e.g. ``candles-5MINS``),
``mark-<RESOLUTION>`` (mark-price candles, ccxt venues), ``funding`` or ``trades``. One
partition holds one UTC day. Columns (prices and sizes are exact decimal strings, never
binary floats; times are int64 ns since the epoch, UTC):

- candles: ``ts_ns`` (bar OPEN time), ``open``, ``high``, ``low``, ``close``, ``volume``
  (base units), ``usd_volume``, ``trades`` (int64);
- mark: the candle columns, of the venue's mark price (``volume`` as the venue gives it: 0 on
  Binance, whose ``markPriceKlines`` carry no volume);
- funding: ``ts_ns`` (settlement time), ``rate_1h`` (rate per hour, a fraction), ``interval_h``
  (the venue's native interval, int64), ``price`` (oracle price at settlement, may be empty);
- trades: ``ts_ns``, ``id``, ``side``, ``price``, ``size``, ``height`` (int64, 0 when unknown).

``manifest.json`` maps each partition's relative folder to ``{venue, market, kind, date,
rows, first_ts, last_ts, complete, sha256, source, downloaded_at, gaps}``: ``complete`` is
true when the whole UTC day was fetched after it ended (a partial last day is re-fetched),
``sha256`` the hex digest of ``part.parquet``, ``source`` the endpoint it came from, ``gaps``
the missing intervals found (``[[from_ns, to_ns, count], ...]``).

The replay reads a catalog with ``--data catalog:PATH`` or ``[feed.replay] catalog = "PATH"``:
:class:`CatalogSource` yields the candles of one venue and resolution as
:class:`~perpbot.core.model.Bar` events (stamped at their CLOSE time, as bar files are, see
:mod:`.bars`) merged with that venue's settled funding (:class:`~perpbot.core.model.FundingRate`).
Every partition it reads is checked against the manifest first: a partition listed but
missing, unreadable or whose digest differs is a :class:`~perpbot.core.errors.DataError`
naming it.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable, Iterator

from perpbot.core.errors import ConfigError, DataError
from perpbot.core.model import Bar, FundingRate

MANIFEST = "manifest.json"
PART = "part.parquet"
PREFIX = "catalog:"

#: dYdX candle resolutions and their length in seconds (v4-chain
#: ``indexer/packages/postgres/src/types/candle-types.ts`` ``CandleResolution``)
RESOLUTIONS: dict[str, int] = {
    "1MIN": 60, "5MINS": 300, "15MINS": 900, "30MINS": 1800,
    "1HOUR": 3600, "4HOURS": 14400, "1DAY": 86400,
}

#: column names per kind family (the catalog's schema; see the module docstring)
COLUMNS: dict[str, tuple[str, ...]] = {
    "candles": ("ts_ns", "open", "high", "low", "close", "volume", "usd_volume", "trades"),
    "mark": ("ts_ns", "open", "high", "low", "close", "volume", "usd_volume", "trades"),
    "funding": ("ts_ns", "rate_1h", "interval_h", "price"),
    "trades": ("ts_ns", "id", "side", "price", "size", "height"),
}

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def path_venue(venue: str) -> str:
    """A venue name as written in a path: ``ccxt:binanceusdm`` -> ``ccxt-binanceusdm``."""
    return venue.replace(":", "-")


def kind_family(kind: str) -> str:
    """``candles-5MINS`` -> ``candles``, ``mark-1HOUR`` -> ``mark``; ``funding`` and ``trades`` are their own family.

    :raises ConfigError: an unknown kind.
    """
    fam = kind.split("-", 1)[0]
    if fam not in COLUMNS:
        raise ConfigError(f"catalog: unknown kind {kind!r} (known: candles-<RESOLUTION>, mark-<RESOLUTION>, funding, trades)")
    return fam


def partition_key(venue: str, market: str, kind: str, date: str) -> str:
    """The partition's folder relative to the catalog root (the manifest's key)."""
    return f"venue={path_venue(venue)}/market={market}/kind={kind}/date={date}"


def is_catalog_name(name) -> bool:
    """True for a replay file name ``catalog:PATH``."""
    return str(name).strip().lower().startswith(PREFIX)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 digest of a file (read in 1 MiB blocks).

    :raises OSError: the file cannot be read.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_manifest(root: Path) -> dict:
    """The manifest of the catalog at ``root`` (``{"version": 1, "partitions": {key: entry}}``).

    A catalog folder without a manifest yet gives an empty one.

    :raises DataError: a manifest that is not valid JSON or lacks its ``partitions`` map (named).
    """
    path = Path(root) / MANIFEST
    if not path.exists():
        return {"version": 1, "partitions": {}}
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"catalog {root}: {MANIFEST} is corrupt ({exc}); delete it to re-download") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("partitions"), dict):
        raise DataError(f"catalog {root}: {MANIFEST} has no 'partitions' map; delete it to re-download")
    return doc


def check_partition(root: Path, key: str, entry: dict) -> Path:
    """The partition's file, checked against its manifest entry.

    :raises DataError: ``catalog ROOT: partition KEY is missing`` or ``... is corrupt (sha256 ...)``.
    """
    path = Path(root) / key / PART
    if not path.is_file():
        raise DataError(f"catalog {root}: partition {key} is missing ({PART} not found); run download again to fetch it")
    digest = sha256_file(path)
    if digest != entry.get("sha256"):
        raise DataError(
            f"catalog {root}: partition {key} is corrupt (sha256 {digest[:12]}... differs from the manifest's "
            f"{str(entry.get('sha256'))[:12]}...); delete it and run download again"
        )
    return path


def read_partition(root: Path, key: str, entry: dict) -> dict[str, list]:
    """The checked partition's columns as ``{name: [python values]}`` (see :func:`check_partition`).

    :raises DataError: missing, corrupt or unreadable partition (named), or pyarrow missing.
    """
    path = check_partition(root, key, entry)
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("reading a catalog needs pyarrow (pip install 'perpbot[research]')") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - any pyarrow failure is a corrupt partition, named
        raise DataError(f"catalog {root}: partition {key} is unreadable ({type(exc).__name__}: {exc})") from None
    return {name: table.column(name).to_pylist() for name in table.column_names}


class Catalog:
    """A catalog folder opened for reading: its manifest and the partitions of one venue.

    :param root: the catalog folder (``catalog:PATH``'s PATH; ``~`` expanded).
    :raises DataError: no such folder, no manifest, or a corrupt manifest (named).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"catalog {self.root}: no such folder (build one with runbot.py download)")
        if not (self.root / MANIFEST).is_file():
            raise DataError(f"catalog {self.root}: no {MANIFEST} (build one with runbot.py download)")
        self.manifest = load_manifest(self.root)
        self.partitions: dict[str, dict] = self.manifest["partitions"]

    def venues(self) -> list[str]:
        """Venues held (as written in the manifest entries, e.g. ``dydx``)."""
        return sorted({e["venue"] for e in self.partitions.values()})

    def entries(self, venue: str, kind: str | None = None, market: str | None = None) -> list[tuple[str, dict]]:
        """``[(key, entry)]`` of ``venue`` (optionally one kind / market), by market then date."""
        out = [(k, e) for k, e in self.partitions.items() if e["venue"] == venue
               and (kind is None or e["kind"] == kind) and (market is None or e["market"] == market)]
        return sorted(out, key=lambda ke: (ke[1]["market"], ke[1]["kind"], ke[1]["date"]))

    def candle_kinds(self, venue: str) -> list[str]:
        """Candle kinds (``candles-5MINS``...) held for ``venue``."""
        return sorted({e["kind"] for _, e in self.entries(venue) if e["kind"].startswith("candles-")})

    def markets(self, venue: str, kind: str) -> list[str]:
        """Markets with partitions of ``kind`` for ``venue``."""
        return sorted({e["market"] for _, e in self.entries(venue, kind)})


def _dec(v, what: str, where: str) -> Decimal:
    try:
        d = Decimal(str(v))
    except (InvalidOperation, TypeError):
        raise DataError(f"{where}: {what} {v!r} is not a number") from None
    if not d.is_finite():
        raise DataError(f"{where}: {what} {v!r} must be finite")
    return d


class CatalogSource:
    """Replay source over a catalog: candles of one venue and resolution as bars, with its funding.

    :param root: the catalog folder.
    :param select: market (dYdX ticker) -> the ticker its events carry, or None to skip it.
    :param venue: the venue to replay (None: the only one held; several is an error naming them).
    :param interval_s: the bar length wanted (None: the only resolution held for the venue).
    :raises DataError: see :class:`Catalog`; a venue or resolution without candles.
    :raises ConfigError: an ambiguous or unknown venue / resolution (naming what is held).

    Attributes: ``kind`` (``"bars"``, the feed's source kind), ``path`` (the root),
    ``venue_name``, ``candle_kind``, ``interval_s``, ``stats``.
    """

    kind = "bars"

    def __init__(self, root: str | Path, select: Callable[[str], str | None], venue: str | None = None,
                 interval_s: int | None = None):
        self.catalog = Catalog(root)
        self.path = self.catalog.root
        self.select = select
        venues = self.catalog.venues()
        if venue is None:
            if len(venues) != 1:
                raise ConfigError(f"catalog {self.path}: holds venues {', '.join(venues) or 'none'}; "
                                  "choose one with catalog_venue")
            venue = venues[0]
        elif venue not in venues:
            raise ConfigError(f"catalog {self.path}: no venue {venue!r} (held: {', '.join(venues) or 'none'})")
        self.venue_name = venue
        kinds = self.catalog.candle_kinds(venue)
        if not kinds:
            raise DataError(f"catalog {self.path}: no candles for venue {venue} (download --kind candles:5MINS)")
        if interval_s is not None:
            wanted = [k for k in kinds if RESOLUTIONS.get(k.split("-", 1)[1]) == int(interval_s)]
            if not wanted:
                raise ConfigError(f"catalog {self.path}: no {interval_s}-second candles for {venue} (held: {', '.join(kinds)})")
            kinds = wanted
        if len(kinds) != 1:
            raise ConfigError(f"catalog {self.path}: holds {', '.join(kinds)} for {venue}; choose one with bar_interval_s")
        self.candle_kind = kinds[0]
        self.interval_s = RESOLUTIONS[self.candle_kind.split("-", 1)[1]]
        self.stats = {"messages": 0, "bars": 0, "funding_rates": 0, "missing_bars": 0}
        self.venue = None  # set by the feed (the files' venue slot: None = primary)

    def symbols(self) -> list[str]:
        """Markets with candles in the catalog for the chosen venue and resolution."""
        return self.catalog.markets(self.venue_name, self.candle_kind)

    @property
    def bytes_read(self) -> int:
        """Not measured for a catalog (progress is market time); always 0."""
        return 0

    def last_ts(self, stop=None) -> int | None:
        """Close time (ns) of the last candle held, from the manifest (no file read), or None."""
        lasts = [e["last_ts"] for _, e in self.catalog.entries(self.venue_name, self.candle_kind)
                 if e.get("rows") and self.select(e["market"]) is not None]
        return max(lasts) + self.interval_s * 1_000_000_000 if lasts else None

    def _bars(self, market: str, ticker: str) -> Iterator[tuple[int, Bar]]:
        step = self.interval_s * 1_000_000_000
        last = None
        for key, entry in self.catalog.entries(self.venue_name, self.candle_kind, market):
            cols = read_partition(self.path, key, entry)
            where = f"catalog {self.path}: partition {key}"
            for i, ts in enumerate(cols.get("ts_ns", [])):
                o, h, l, c, v = (_dec(cols[f][i], f, where) for f in ("open", "high", "low", "close", "volume"))
                if min(o, h, l, c) <= 0 or not (l <= o <= h and l <= c <= h) or v < 0:
                    raise DataError(f"{where}: row {i}: inconsistent candle open={o} high={h} low={l} close={c} volume={v}")
                if last is not None and ts <= last:
                    raise DataError(f"{where}: row {i}: time {ts} is not after the previous candle's")
                last = ts
                yield ts + step, Bar(ticker, ts + step, o, h, l, c, v, self.interval_s)

    def _funding(self, market: str, ticker: str) -> Iterator[tuple[int, FundingRate]]:
        for key, entry in self.catalog.entries(self.venue_name, "funding", market):
            cols = read_partition(self.path, key, entry)
            where = f"catalog {self.path}: partition {key}"
            for i, ts in enumerate(cols.get("ts_ns", [])):
                price = cols["price"][i]
                yield ts, FundingRate(ticker, ts, _dec(cols["rate_1h"][i], "rate_1h", where), True,
                                      int(cols["interval_h"][i]), _dec(price, "price", where) if price else None)

    def events(self) -> Iterator[tuple[int, list]]:
        """Yield ``(ts_ns, [events])`` in time order: one batch per instant (bars and funding of all markets).

        :raises DataError: a missing, corrupt or inconsistent partition (named).
        """
        streams = []
        for n, market in enumerate(self.symbols()):
            ticker = self.select(market)
            if ticker is None:
                continue
            streams.append(((ts, 2 * n, ev) for ts, ev in self._bars(market, ticker)))
            streams.append(((ts, 2 * n + 1, ev) for ts, ev in self._funding(market, ticker)))
        batch: list = []
        cur = None
        for ts, _, ev in heapq.merge(*streams, key=lambda t: (t[0], t[1])):
            if cur is not None and ts != cur:
                self.stats["messages"] += 1
                yield cur, batch
                batch = []
            cur = ts
            batch.append(ev)
            self.stats["funding_rates" if isinstance(ev, FundingRate) else "bars"] += 1
        if batch:
            self.stats["messages"] += 1
            yield cur, batch


def parse_date(text: str, what: str) -> str:
    """Check a ``YYYY-MM-DD`` date; returns it.

    :raises ConfigError: ``what: expected YYYY-MM-DD, got '...'``.
    """
    from datetime import date

    s = str(text).strip()
    try:
        if not _DATE_RE.match(s):
            raise ValueError
        date.fromisoformat(s)
    except ValueError:
        raise ConfigError(f"{what}: expected a date YYYY-MM-DD, got {text!r}") from None
    return s
