"""How far a replay is, in market time, and whether its order books ever synced.

- :class:`MarketTimeProgress`: ``(done, total)`` in ns of market time, from the first
  replayed timestamp to the data's last one. The last one comes from the files' tails
  (:meth:`~.lineio.LineFile.tail`), read in a background thread started by the first
  :meth:`~MarketTimeProgress.progress` call, so a run that shows no progress bar never
  pays for it (a gzip file costs one decompression without parsing).
- :class:`BookSyncWatch`: says loudly, once, when NO market's order book has synced after
  :data:`~.binance_sync.STALL_S` seconds of market data (or by the end of it);
  :func:`unsynced_books` collects each source's ``{ticker: reason}`` for the run summary.

The feed (:class:`~.feed.ReplayFeed`) owns one of each and updates
:attr:`MarketTimeProgress.first_ns`/:attr:`~MarketTimeProgress.cur_ns` as it replays.
"""

from __future__ import annotations

import threading
from typing import Callable

from loguru import logger

from perpbot.exchanges.replay.binance_sync import STALL_S


class MarketTimeProgress:
    """Market-time progress of one replay (all times in ns since the epoch, spans in ns).

    :param last_timestamp: ``(stop) -> int | None``: the data's last timestamp (``stop`` is a
        ``() -> bool`` polled while scanning); run once, in a background thread.

    The feed sets :attr:`first_ns` (first replayed timestamp), :attr:`cur_ns` (latest one)
    and :attr:`finished` (the data ended); :attr:`end_ns` is the scan's result (None until known).
    """

    def __init__(self, last_timestamp: Callable[[Callable[[], bool]], int | None]):
        self._last_timestamp = last_timestamp
        self.first_ns: int | None = None
        self.cur_ns = 0
        self.end_ns: int | None = None
        self.finished = False
        self._scan: threading.Thread | None = None
        self._scan_stop = threading.Event()

    def progress(self) -> tuple[int, int]:
        """``(market time done, market time total)`` in ns, from the first replayed timestamp.

        ``done`` is the latest replayed timestamp minus the first; ``total`` the data's last
        timestamp minus the first, and 0 while it is not known yet: before the first batch,
        and while the background scan of the files' tails runs (the first call starts it).
        At the end of the data ``done == total`` (at least 1).
        """
        if self.finished:
            t = max(self.cur_ns - (self.first_ns or self.cur_ns), self.total(), 1)
            return (t, t)
        if self.end_ns is None and self._scan is None:
            self._scan = threading.Thread(target=self._scan_end, name="replay-last-timestamp", daemon=True)
            self._scan.start()
        if self.first_ns is None:
            return (0, 0)
        done = self.cur_ns - self.first_ns
        total = self.total()
        return (done, max(total, done) if total else 0)

    def wait_for_span(self, timeout: float | None = None) -> bool:
        """Start the background scan if needed and wait for it, at most ``timeout`` s (tools, tests).

        :returns: True when the data's last timestamp is known.
        """
        if self.end_ns is None and self._scan is None:
            self.progress()
        if self._scan is not None:
            self._scan.join(timeout)
        return self.end_ns is not None

    def total(self) -> int:
        """The data's span in ns (last timestamp minus first replayed one); 0 while either is unknown."""
        if self.end_ns is None or self.first_ns is None:
            return 0
        return max(0, self.end_ns - self.first_ns)

    def stop(self) -> None:
        """Ask a running scan to end (the feed is stopping); safe to call twice."""
        self._scan_stop.set()

    def _scan_end(self) -> None:
        try:
            self.end_ns = self._last_timestamp(self._scan_stop.is_set)
        except Exception as exc:  # noqa: BLE001 - a progress estimate must not stop a replay; say why it is missing
            logger.warning("replay: cannot tell where the data ends ({}); the progress bar shows no percentage", exc)


def unsynced_books(sources) -> dict[str, str]:
    """``{ticker: reason}`` over the sources that track books (``unsynced()``) of markets whose book never synced."""
    out: dict[str, str] = {}
    for s in sources:
        get = getattr(s, "unsynced", None)
        if get is not None:
            out.update(get())
    return out


class BookSyncWatch:
    """Logs one error when no market with depth data has a synced book after :data:`STALL_S` s of data."""

    def __init__(self) -> None:
        self.warned = False

    def check(self, sources, ts: int | None, first_ns: int | None, final: bool = False) -> None:
        """Check the sources' books at market time ``ts`` (ns); ``first_ns`` is the first replayed time.

        Logs (once) when some source has book markets, none has synced, and ``STALL_S`` s of
        market data have passed, or the data ended (``final``). Nothing when ``ts`` is None.
        """
        if self.warned or ts is None:
            return
        books: dict[str, bool] = {}
        for s in sources:
            get = getattr(s, "book_markets", None)
            if get is not None:
                books.update(get())
        if not books or any(books.values()):
            return
        waited = ts - (first_ns if first_ns is not None else ts)
        if not final and waited < STALL_S * 1_000_000_000:
            return
        self.warned = True
        reasons = unsynced_books(sources)
        logger.error(
            "replay: NO order book has synced {} ({} of market data): no strategy can trade on empty books. {}",
            "by the end of the data" if final else "yet",
            span_text(waited),
            "; ".join(f"{t}: {r}" for t, r in sorted(reasons.items())),
        )


def span_text(ns: int) -> str:
    """A span in ns as text: ``"45 s"`` (under 2 min), ``"12 min"`` (under 2 h), else ``"3.5 h"``."""
    s = ns / 1e9
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"
