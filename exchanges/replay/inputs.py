"""The replay feed's file discovery: which files, what each one is, and which of them form one stream.

- :func:`resolve_files`: configured names (paths or ``sample:*``) -> paths;
- :func:`sniff`: a file's format from its content (``binance``, ``bars``, ``funding``, ``dydx``);
- :class:`ReplayInputs`: every input of a feed, sniffed once, with the venue symbols in each
  file and the grouping of Binance files into streams (files of one venue that share a
  symbol are read as ONE :class:`~.binance.BinanceRecording`, in time order).

``sniff`` and ``resolve_files`` are re-exported by :mod:`perpbot.exchanges.replay.feed`,
where they were defined before the feed was split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from perpbot.core.errors import ConfigError, DataError

from perpbot.exchanges.replay import bars as bars_fmt
from perpbot.exchanges.replay import binance as binance_fmt
from perpbot.exchanges.replay import catalog as catalog_fmt
from perpbot.exchanges.replay import dydx as dydx_fmt
from perpbot.exchanges.replay import funding as funding_fmt
from perpbot.exchanges.replay import samples
from perpbot.exchanges.replay.lineio import LineFile
from perpbot.exchanges.replay.params import ReplayParams, venue_files_table

#: ``sample:*`` names (lower case) -> a function giving the embedded sample's paths
SAMPLES: dict[str, Callable[[], list[Path]]] = {
    "sample": samples.binance_l2_files,
    "sample:binance": samples.binance_l2_files,
    "sample:l2": samples.binance_l2_files,
    "sample:bars": lambda: [samples.bars_file()],
    "sample:funding": lambda: [samples.funding_file()],
}


def resolve_files(names) -> list[Path]:
    """Configured file names -> paths: a ``sample:*`` name (see :data:`SAMPLES`) gives the embedded
    sample's files, anything else is a path (``~`` expanded). Existence is not checked here.

    :raises DataError: an embedded sample that is missing from the installation.
    """
    out: list[Path] = []
    for n in names:
        key = str(n).strip()
        if key.lower() in SAMPLES:
            out.extend(SAMPLES[key.lower()]())
        else:
            out.append(Path(key).expanduser())
    return out


def sniff(path: Path) -> str:
    """``"binance" | "bars" | "funding" | "dydx"`` for a data file, by its content.

    :raises DataError: missing, empty or unrecognised file.
    """
    lf = LineFile(path)
    if lf.size == 0:
        raise DataError(f"{path}: empty file")
    with open(path, "rb") as f:
        if f.read(4) == bars_fmt.PARQUET_MAGIC:
            return "bars"
    head = lf.head()
    if not head.strip():
        raise DataError(f"{path}: empty file")
    if binance_fmt.looks_like(head):
        return "binance"
    if funding_fmt.looks_like(head):
        return "funding"
    if bars_fmt.looks_like(head):
        return "bars"
    if dydx_fmt.looks_like(head):
        return "dydx"
    first = head.split(b"\n", 1)[0][:80].decode(errors="replace")
    raise DataError(
        f"{path}: unrecognised data format (first line {first!r}); expected a Binance '<recv_ns> <json>' recording, "
        "an OHLCV bar CSV, a funding CSV or a dYdX indexer recording"
    )


class ReplayInputs:
    """Every input file of one replay feed, sniffed once.

    :param params: the feed's parameters (``files``, ``venue_files``, ``funding_files``,
        bar settings for reading bar files' symbols).
    :raises ConfigError: no files to replay, or a bad ``venue_files`` table.
    :raises DataError: a missing, empty or unrecognised file, or a ``funding_files`` entry
        that is not a funding CSV.

    Attributes: :attr:`files` (the primary venue's files), :attr:`funding_paths`,
    :attr:`inputs` (``[(path, kind, venue)]`` in configuration order; venue None for the
    primary venue), :attr:`kinds` (``[(path, kind)]``), :attr:`venues_with_files` (venues
    other than the primary one with market-data files of their own).
    """

    def __init__(self, params: ReplayParams):
        self.params = params
        self._symbols_of: dict[Path, list[str]] = {}  # Binance file -> venue symbols (sniffed once)
        names = [n for n in params.files if not catalog_fmt.is_catalog_name(n)]
        #: catalog folders (``catalog:PATH`` names and the ``catalog`` parameter), read by :class:`~.catalog.CatalogSource`
        self.catalogs = [Path(str(n).strip()[len(catalog_fmt.PREFIX):]).expanduser()
                         for n in params.files if catalog_fmt.is_catalog_name(n)]
        if params.catalog:
            self.catalogs.append(Path(params.catalog).expanduser())
        if names:
            files = resolve_files(names)
        else:
            files = [] if self.catalogs else samples.binance_l2_files()
        if not files and not self.catalogs:
            raise ConfigError("feed replay: no files to replay")
        self.files = files
        self.funding_paths = resolve_files(params.funding_files)
        #: (path, kind, venue): venue None for the primary venue's files
        self.inputs: list[tuple[Path, str, str | None]] = [(f, sniff(f), None) for f in files]
        self.inputs.extend((c, "catalog", None) for c in self.catalogs)
        for venue, names in venue_files_table(params.venue_files).items():
            self.inputs.extend((f, sniff(f), venue) for f in resolve_files(names))
        for f in self.funding_paths:
            if sniff(f) != "funding":
                raise DataError(f"{f}: is not a funding CSV (expected columns {', '.join(funding_fmt.REQUIRED)})")
            self.inputs.append((f, "funding", None))
        self.kinds = [(f, k) for f, k, _ in self.inputs]
        self.venues_with_files = {v for _, k, v in self.inputs if v is not None and k != "funding"}

    def catalog_source(self, path: Path, select: Callable[[str], str | None]) -> catalog_fmt.CatalogSource:
        """A :class:`~.catalog.CatalogSource` over the catalog at ``path`` with this feed's venue and bar length.

        :raises DataError: a missing folder or manifest, a corrupt manifest.
        :raises ConfigError: an ambiguous or unknown venue / resolution.
        """
        p = self.params
        return catalog_fmt.CatalogSource(path, select, p.catalog_venue.strip() or None, p.bar_interval_s)

    def binance_symbols(self, path: Path) -> list[str]:
        """Venue symbols of a Binance recording, from its first MiB (else its file name's first token)."""
        syms = self._symbols_of.get(path)
        if syms is None:
            syms = binance_fmt.sniff_symbols(LineFile(path).head(1 << 20)) or [path.name.split("_")[0]]
            self._symbols_of[path] = syms
        return syms

    def present_tickers(self, mapper: Callable[[str], str]) -> set[tuple[str | None, str]]:
        """``{(venue or None, dYdX ticker)}`` of the markets found at the start of the market-data files.

        :param mapper: venue symbol -> dYdX ticker (:class:`~.symbols.SymbolMapper`).
        :raises DataError: a bar file whose header cannot be read.
        """
        found: set[tuple[str | None, str]] = set()
        for path, kind, venue in self.inputs:
            if kind == "binance":
                found.update((venue, mapper(s)) for s in self.binance_symbols(path))
            elif kind == "bars":
                src = bars_fmt.BarFile(path, lambda s: None, self.params.bar_interval_s, self.params.bar_timestamp)
                found.update((venue, mapper(s)) for s in src.symbols())
            elif kind == "dydx":
                found.update((venue, t) for t in dydx_fmt.sniff_tickers(LineFile(path).head(1 << 20)))
            elif kind == "catalog":
                found.update((venue, mapper(s)) for s in self.catalog_source(path, lambda s: None).symbols())
        return found

    def binance_streams(self) -> dict[tuple[Path, str | None], list[Path]]:
        """Binance files grouped into streams: files of one venue that share a symbol, in time order.

        Keyed by (the group's first file in input order, venue). Files are ordered by the receive
        time of their first line; that they do not overlap is checked while reading.
        """
        groups: list[tuple[str | None, set[str], list[Path]]] = []
        for path, kind, venue in self.inputs:
            if kind != "binance":
                continue
            syms = set(self.binance_symbols(path))
            hits = [g for g in groups if g[0] == venue and g[1] & syms]
            if not hits:
                groups.append((venue, syms, [path]))
                continue
            keep = hits[0]
            for g in hits[1:]:  # this file joins streams that were apart so far
                keep[1].update(g[1])
                keep[2].extend(g[2])
                groups.remove(g)
            keep[1].update(syms)
            keep[2].append(path)
        out = {}
        for venue, _, paths in groups:
            first = next(p for p, _, v in self.inputs if p in paths and v == venue)
            out[(first, venue)] = sorted(paths, key=binance_fmt.first_ts)
        return out
