"""Historical funding-rate CSV (long format) -> settled :class:`~perpbot.core.model.FundingRate` events.

The format is the project's derived funding files
(``../shared/data/funding/derived/*.csv.gz``), one settlement per row::

    ts_utc,settlement_hour_utc,venue,coin,market,interval_h,rate     (2020-2023 file)
    ts_utc,venue,coin,interval_h,rate                                (2023-2026 file)

All times are UTC (the derived files were normalised to UTC; their raw sources
were partly UTC+3). ``rate`` is the venue's rate per ``interval_h`` hours
(Binance 8, dYdX and Hyperliquid 1); each event carries
``rate_1h = rate / interval_h`` and ``interval_h``. The event time is
``settlement_hour_utc`` when the file has it, else ``ts_utc`` as written
(Binance's settlement times carry a few ms, e.g. ``16:00:00.002Z``).

Rows of one venue (the feed's ``funding_venue``, default ``binance``) are replayed
to the unqualified tickers (``coin`` ``BTC`` -> ``BTC-USD``), rows of another venue
V to ``"V:BTC-USD"`` when that qualified ticker is replayed. Rows are sorted by
time after filtering (the files are small), so the file needs no particular order.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable, Iterator

from perpbot.core.errors import DataError
from perpbot.core.model import FundingRate

from perpbot.exchanges.replay.lineio import LineFile
from perpbot.exchanges.replay.timeparse import epoch_ns

REQUIRED = ("ts_utc", "venue", "coin", "interval_h", "rate")


def looks_like(head: bytes) -> bool:
    """True when the first line of ``head`` (a file's first bytes) names every column of :data:`REQUIRED`."""
    first = head.split(b"\n", 1)[0].strip().lower().decode(errors="replace")
    cols = [c.strip() for c in first.split(",")]
    return all(c in cols for c in REQUIRED)


class FundingFile:
    """One funding CSV as event batches (all settlements of one instant in one batch).

    :param route: ``(venue, coin) -> [tickers]``: the tickers a row is replayed to
        (empty: skip the row). The replay feed routes rows of ``funding_venue`` to
        unqualified tickers and rows of venue V to ``"V:TICKER"`` when that is replayed.
    """

    kind = "funding"

    def __init__(self, path: str | Path, route: Callable[[str, str], list[str]]):
        self.file = LineFile(path)
        self.path = self.file.path
        self.route = route
        self.stats = {"funding_rates": 0}
        self.venues: set[str] = set()

    @property
    def bytes_read(self) -> int:
        """Bytes of the file consumed so far (compressed for gzip), for progress bars."""
        return self.file.bytes_read

    @property
    def size(self) -> int:
        """The file's size in bytes on disk."""
        return self.file.size

    def last_ts(self, stop=None) -> int | None:
        """Settlement time (ns) of the latest row this file replays (its own pass over the file), or None.

        :raises DataError: as :meth:`events` does for a bad time.
        """
        last = None
        for lineno, venue, coin, row, ix in self._rows(LineFile(self.path), record=False):
            if stop is not None and not lineno % 4096 and stop():
                return None
            if self.route(venue, coin):
                ts = self._ts(row, ix, f"{self.path}:{lineno}")
                if last is None or ts > last:
                    last = ts
        return last

    @staticmethod
    def _ts(row, ix, where: str) -> int:
        tcol = "settlement_hour_utc" if "settlement_hour_utc" in ix and row[ix["settlement_hour_utc"]] else "ts_utc"
        try:
            return epoch_ns(row[ix[tcol]])
        except ValueError as exc:
            raise DataError(f"{where}: {tcol}: {exc}") from None

    def _rows(self, lf: LineFile | None = None, record: bool = True):
        path = self.path
        header = None
        lineno = 0
        for chunk in (lf or self.file).chunks():
            text = b"\n".join(chunk).decode(errors="replace")
            for row in csv.reader(io.StringIO(text)):
                lineno += 1
                if header is None:
                    header = [c.strip().lower() for c in row]
                    missing = [c for c in REQUIRED if c not in header]
                    if missing:
                        raise DataError(f"{path}: funding file lacks column {missing[0]!r} (header {header})")
                    ix = {c: header.index(c) for c in header}
                    continue
                if not row:
                    continue
                if len(row) != len(header):
                    raise DataError(f"{path}:{lineno}: expected {len(header)} columns, got {len(row)}")
                venue = row[ix["venue"]].strip().lower()
                if record:
                    self.venues.add(venue)
                yield lineno, venue, row[ix["coin"]].strip(), row, ix
        if header is None:
            raise DataError(f"{path}: empty funding file")

    def events(self) -> Iterator[tuple[int, list]]:
        """Yield ``(ts_ns, [FundingRate, ...])`` in time order."""
        out = []
        for lineno, venue, coin, row, ix in self._rows():
            tickers = self.route(venue, coin)
            if not tickers:
                continue
            where = f"{self.path}:{lineno}"
            ts = self._ts(row, ix, where)
            raw_rate = row[ix["rate"]].strip()
            try:
                rate = Decimal(raw_rate)
            except InvalidOperation:
                raise DataError(f"{where}: rate {raw_rate!r} is not a number") from None
            if not rate.is_finite():
                raise DataError(f"{where}: rate {raw_rate!r} must be finite")
            raw_ih = row[ix["interval_h"]].strip()
            try:
                ih = Decimal(raw_ih)
            except InvalidOperation:
                raise DataError(f"{where}: interval_h {raw_ih!r} is not a number of hours") from None
            if not ih.is_finite() or ih <= 0 or ih != ih.to_integral_value():
                raise DataError(f"{where}: interval_h {raw_ih!r} must be a positive whole number of hours")
            interval_h = int(ih)
            rate_1h = rate / interval_h
            for t in tickers:
                out.append((ts, lineno, FundingRate(t, ts, rate_1h, True, interval_h)))
        if not out:
            raise DataError(
                f"{self.path}: no funding rows for the replayed tickers and venue (venues in the file: "
                f"{', '.join(sorted(self.venues)) or 'none'}; choose one with funding_venue)"
            )
        out.sort(key=lambda x: (x[0], x[1]))
        self.stats["funding_rates"] = len(out)
        batch: list = []
        cur = None
        for ts, _, ev in out:
            if ts != cur and batch:
                yield cur, batch
                batch = []
            cur = ts
            batch.append(ev)
        if batch:
            yield cur, batch
