"""The collector's validator: a row that breaks a rule is rejected and counted, never stored.

Rules, checked in this order (the first broken one is the reason counted, per venue):

- ``non_finite``: a number that is NaN or infinite (Decimal or float), or not a number at all;
- ``non_positive``: a price, size, mark price, oracle price or open interest <= 0, a funding
  interval < 1 hour, a timestamp <= 0 (a funding *rate* may be zero or negative: only its
  finiteness is checked);
- ``crossed_book``: a book whose best bid >= best ask, or whose levels are out of order
  (bids not strictly descending, asks not strictly ascending: the best level would be wrong);
- ``non_monotonic_time``: ``ts_ns`` before the previous accepted row's of the same venue,
  market and kind (settled and predicted funding are separate streams: a settled row is
  stamped with its funding time);
- ``duplicate``: a settled funding row at the time of the previous one (a feed that reconnects
  reads the newest settlement again), or a trade whose sequence number is at or below the
  last accepted one;
- ``sequence_gap``: a trade whose sequence number is not the previous one + 1 (the venue's
  stream lost rows: Binance trade ids are consecutive per symbol, Binance USD-M "Trade
  Streams" field ``t``). The row revealing the gap is held out and the stream resumes from it
  (the next consecutive row is accepted): the store never bridges a gap silently.

Rows are tuples in :data:`perpbot.plugins.storage.schema.COLUMNS` order. State is per
``(venue, market, kind)``; memory grows with the number of markets, not with time.
"""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal
from typing import Any

REASONS = ("non_finite", "non_positive", "crossed_book", "non_monotonic_time", "duplicate", "sequence_gap")


def _bad_number(x: Any, positive: bool) -> str | None:
    """None when ``x`` is a finite number (and > 0 when ``positive``), else the reason."""
    if isinstance(x, Decimal):
        if not x.is_finite():
            return "non_finite"
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        if isinstance(x, float) and not math.isfinite(x):
            return "non_finite"
    else:
        return "non_finite"
    if positive and not x > 0:
        return "non_positive"
    return None


class Validator:
    """Checks rows (module docstring) and counts accepted rows per venue and kind and rejected
    rows per venue and reason.

    :attr accepted: ``Counter`` of ``(venue, kind)``; :attr rejected: ``Counter`` of ``(venue, reason)``.
    """

    def __init__(self) -> None:
        self.accepted: Counter = Counter()
        self.rejected: Counter = Counter()
        self._last_ts: dict[tuple, int] = {}
        self._last_seq: dict[tuple, int] = {}

    def check(self, kind: str, row: tuple) -> str | None:
        """Validate one row of ``kind``: None when accepted (and counted), else the reason (counted).

        Book rows carry their levels as JSON text; the validator is given them parsed through
        :meth:`check_book` instead, so this method handles the other kinds and book rows whose
        levels the caller checked.
        """
        reason = self._reason(kind, row)
        venue = row[0]
        if reason is None:
            self.accepted[(venue, kind)] += 1
        else:
            self.rejected[(venue, reason)] += 1
        return reason

    def check_book(self, row: tuple, bids: tuple, asks: tuple) -> str | None:
        """Validate a book row and its levels (``((price, size), ...)``, best first); like :meth:`check`."""
        reason = self._levels_reason(bids, asks) or self._reason("book", row)
        venue = row[0]
        if reason is None:
            self.accepted[(venue, "book")] += 1
        else:
            self.rejected[(venue, reason)] += 1
        return reason

    # -- rules -------------------------------------------------------------------

    @staticmethod
    def _levels_reason(bids: tuple, asks: tuple) -> str | None:
        for levels in (bids, asks):
            for p, s in levels:
                if type(p) is Decimal and type(s) is Decimal and p.is_finite() and s.is_finite():
                    if p > 0 and s > 0:  # the usual case, checked without the general helper
                        continue
                    return "non_positive"
                r = _bad_number(p, True) or _bad_number(s, True)
                if r:
                    return r
        for i in range(1, len(bids)):
            if not bids[i][0] < bids[i - 1][0]:
                return "crossed_book"
        for i in range(1, len(asks)):
            if not asks[i][0] > asks[i - 1][0]:
                return "crossed_book"
        if bids and asks and bids[0][0] >= asks[0][0]:
            return "crossed_book"
        return None

    def _reason(self, kind: str, row: tuple) -> str | None:
        venue, market, ts = row[0], row[1], row[2]
        if not isinstance(ts, int) or isinstance(ts, bool):
            return "non_finite"
        if ts <= 0:
            return "non_positive"
        stream: tuple = (venue, market, kind)
        if kind == "trade":
            r = _bad_number(row[3], True) or _bad_number(row[4], True)
            if r:
                return r
        elif kind in ("mark", "oi"):
            r = _bad_number(row[3], True)
            if r:
                return r
        elif kind == "funding":
            r = _bad_number(row[3], False)
            if r:
                return r
            if not isinstance(row[5], int) or row[5] < 1:
                return "non_positive"
            if row[6] is not None and (not isinstance(row[6], int) or row[6] <= 0):
                return "non_positive"
            if row[7] is not None:
                r = _bad_number(row[7], True)
                if r:
                    return r
            stream = (venue, market, "funding", bool(row[4]))
        elif kind == "book":
            for i in (3, 4, 5, 6):
                if row[i] is not None:
                    r = _bad_number(row[i], True)
                    if r:
                        return r
            if row[3] is not None and row[5] is not None and row[3] >= row[5]:
                return "crossed_book"
        last = self._last_ts.get(stream)
        if last is not None:
            if ts < last:
                return "non_monotonic_time"
            if ts == last and kind == "funding" and row[4]:
                return "duplicate"
        if kind == "trade" and row[7] is not None:
            seq = row[7]
            prev = self._last_seq.get(stream)
            if prev is not None and seq != prev + 1:
                if seq <= prev:
                    return "duplicate"
                self._last_seq[stream] = seq  # resume from here: the next consecutive row is accepted
                return "sequence_gap"
            self._last_seq[stream] = seq
        self._last_ts[stream] = ts
        return None

    def summary(self) -> dict[str, dict[str, dict[str, int]]]:
        """``{venue: {"accepted": {kind: n}, "rejected": {reason: n}}}``."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        for (venue, kind), n in sorted(self.accepted.items()):
            out.setdefault(venue, {"accepted": {}, "rejected": {}})["accepted"][kind] = n
        for (venue, reason), n in sorted(self.rejected.items()):
            out.setdefault(venue, {"accepted": {}, "rejected": {}})["rejected"][reason] = n
        return out
