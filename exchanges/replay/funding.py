"""Historical funding-rate CSV (long format) -> settled :class:`~core.model.FundingRate` events.

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

Only rows of one venue (``funding_venue``, default ``binance``) are replayed;
``coin`` maps to the dYdX ticker (``BTC`` -> ``BTC-USD``). Rows are sorted by
time after filtering (the files are small), so the file needs no particular order.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable, Iterator

from core.errors import DataError
from core.model import FundingRate

from exchanges.replay.lineio import LineFile
from exchanges.replay.timeparse import epoch_ns

REQUIRED = ("ts_utc", "venue", "coin", "interval_h", "rate")


def looks_like(head: bytes) -> bool:
    first = head.split(b"\n", 1)[0].strip().lower().decode(errors="replace")
    cols = [c.strip() for c in first.split(",")]
    return all(c in cols for c in REQUIRED)


class FundingFile:
    """One funding CSV as event batches (all settlements of one instant in one batch).

    :param select: coin -> dYdX ticker or None to skip.
    :param venue: the venue whose rows are replayed.
    """

    kind = "funding"

    def __init__(self, path: str | Path, select: Callable[[str], str | None], venue: str = "binance"):
        self.file = LineFile(path)
        self.path = self.file.path
        self.select = select
        self.venue = venue.strip().lower()
        self.stats = {"funding_rates": 0}

    @property
    def bytes_read(self) -> int:
        return self.file.bytes_read

    @property
    def size(self) -> int:
        return self.file.size

    def symbols(self) -> list[str]:
        """Coins of the chosen venue in the file (reads the whole file: funding files are small)."""
        return sorted({coin for _, coin, _, _ in self._rows(select_all=True)})

    def _rows(self, select_all: bool = False):
        path = self.path
        header = None
        venues = set()
        for chunk in self.file.chunks():
            text = b"\n".join(chunk).decode(errors="replace")
            for row in csv.reader(io.StringIO(text)):
                if header is None:
                    header = [c.strip().lower() for c in row]
                    missing = [c for c in REQUIRED if c not in header]
                    if missing:
                        raise DataError(f"{path}: funding file lacks column {missing[0]!r} (header {header})")
                    ix = {c: header.index(c) for c in header}
                    lineno = 1
                    continue
                lineno += 1
                if not row:
                    continue
                if len(row) != len(header):
                    raise DataError(f"{path}:{lineno}: expected {len(header)} columns, got {len(row)}")
                venue = row[ix["venue"]].strip().lower()
                venues.add(venue)
                if venue != self.venue:
                    continue
                coin = row[ix["coin"]].strip()
                yield lineno, coin, row, ix
        if header is None:
            raise DataError(f"{path}: empty funding file")
        if not select_all and self.venue not in venues:
            raise DataError(
                f"{path}: no funding rows for venue {self.venue!r} (venues in the file: {', '.join(sorted(venues))})"
            )

    def events(self) -> Iterator[tuple[int, list]]:
        """Yield ``(ts_ns, [FundingRate, ...])`` in time order."""
        out = []
        for lineno, coin, row, ix in self._rows():
            ticker = self.select(coin)
            if ticker is None:
                continue
            where = f"{self.path}:{lineno}"
            tcol = "settlement_hour_utc" if "settlement_hour_utc" in ix and row[ix["settlement_hour_utc"]] else "ts_utc"
            try:
                ts = epoch_ns(row[ix[tcol]])
            except ValueError as exc:
                raise DataError(f"{where}: {tcol}: {exc}") from None
            raw_rate = row[ix["rate"]].strip()
            try:
                rate = Decimal(raw_rate)
            except InvalidOperation:
                raise DataError(f"{where}: rate {raw_rate!r} is not a number") from None
            if not rate.is_finite():
                raise DataError(f"{where}: rate {raw_rate!r} must be finite")
            raw_ih = row[ix["interval_h"]].strip()
            try:
                interval_h = int(Decimal(raw_ih))
            except (InvalidOperation, ValueError):
                raise DataError(f"{where}: interval_h {raw_ih!r} is not a number of hours") from None
            if interval_h <= 0 or Decimal(raw_ih) != interval_h:
                raise DataError(f"{where}: interval_h {raw_ih!r} must be a positive whole number of hours")
            out.append((ts, lineno, FundingRate(ticker, ts, rate / interval_h, True, interval_h)))
        out.sort(key=lambda x: (x[0], x[1]))
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
        self.stats["funding_rates"] = len(out)
