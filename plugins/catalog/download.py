"""The download: which days are needed, paging a source backwards, writing each day as soon as it is whole.

:func:`plan` lists, per (market, kind), the UTC days of the range that the catalog does not
hold complete (:meth:`~perpbot.plugins.catalog.store.CatalogWriter.is_complete`: a complete
entry whose file is present with its digest). Consecutive needed days form one window,
fetched newest page first (:meth:`DydxHistory.pages <perpbot.plugins.catalog.dydx.DydxHistory.pages>`);
a day is written the moment the pages have gone below its start, so an interrupted run
keeps every finished day and the next run fetches only the rest. A day that had not ended
when it was fetched (today) is written with ``complete`` false and fetched again next time.

Gaps: for candles, every expected open time (the day's start, then every resolution step,
up to the day's end or the fetch time) without a candle; for funding of a venue with a fixed
interval (dYdX: 1 h), every interval with no settlement. Consecutive missing slots form one
gap ``(from_ns, to_ns, count)``, recorded in the manifest and reported by the command.

Progress: a :class:`perpbot.core.feed.ProgressUpdate` per page (``done``/``total`` in ns of the
range covered, ``events`` rows written), turned into figures and an ETA by
:class:`perpbot.progress.ProgressTracker`; :class:`DownloadProgressBar` draws them with rich.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date, datetime, timedelta, timezone
from typing import Callable

import attrs

from perpbot.core.errors import ConfigError, DataError
from perpbot.core.feed import ProgressUpdate
from perpbot.exchanges.replay.catalog import RESOLUTIONS
from perpbot.plugins.catalog.store import CatalogWriter
from perpbot.progress import ProgressTracker, format_eta, format_market_time

DAY_NS = 86_400 * 1_000_000_000


def day_start_ns(d: str) -> int:
    """``YYYY-MM-DD`` -> ns since the epoch at 00:00 UTC that day."""
    return int(datetime.fromisoformat(d).replace(tzinfo=timezone.utc).timestamp()) * 1_000_000_000


def days_between(start: str, end: str) -> list[str]:
    """Every UTC day from ``start`` to ``end``, both included (``YYYY-MM-DD`` strings).

    :raises ConfigError: ``end`` before ``start``.
    """
    a, b = date.fromisoformat(start), date.fromisoformat(end)
    if b < a:
        raise ConfigError(f"--end {end} is before --start {start}")
    return [(a + timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


def find_gaps(times: list[int], lo_ns: int, hi_ns: int, step_ns: int, *, slot: bool = False) -> list[tuple[int, int, int]]:
    """Missing slots in ``[lo_ns, hi_ns)`` at ``step_ns``, merged into ``(from_ns, to_ns, count)`` runs.

    :param times: the rows' times (ns).
    :param slot: False: a slot is present when a row is stamped exactly at it (candles' open
        times); True: when any row falls inside ``[slot, slot + step)`` (funding settles a few
        ms after the hour, e.g. ``16:00:00.219Z``).
    :returns: ``to_ns`` is the end of the last missing slot (exclusive).
    """
    have = {(t - lo_ns) // step_ns for t in times} if slot else {(t - lo_ns) // step_ns for t in times if (t - lo_ns) % step_ns == 0}
    gaps: list[list[int]] = []
    n = max(0, -(-(hi_ns - lo_ns) // step_ns))
    for i in range(n):
        if i in have:
            continue
        t = lo_ns + i * step_ns
        if gaps and gaps[-1][1] == t:
            gaps[-1][1] = t + step_ns
            gaps[-1][2] += 1
        else:
            gaps.append([t, t + step_ns, 1])
    return [tuple(g) for g in gaps]


def describe_gap(g) -> str:
    """``2024-02-03 10:05 to 10:20 UTC (3 missing)`` for a gap ``(from_ns, to_ns, count)``."""
    a = datetime.fromtimestamp(g[0] / 1e9, tz=timezone.utc)
    b = datetime.fromtimestamp(g[1] / 1e9, tz=timezone.utc)
    end = b.strftime("%H:%M") if a.date() == b.date() else b.strftime("%Y-%m-%d %H:%M")
    return f"{a:%Y-%m-%d %H:%M} to {end} UTC ({g[2]} missing)"


@attrs.define
class Job:
    """One (market, kind) of a download: its needed days (``YYYY-MM-DD``), the days already held,
    and the needed days whose held partition was missing or corrupt (fetched again)."""

    market: str
    kind: str
    days: list[str]
    held: list[str]
    damaged: list[str] = attrs.Factory(list)


@attrs.define
class DownloadResult:
    """What a download did: per-kind rows written, requests made, days fetched and skipped, gaps per partition."""

    rows: dict = attrs.Factory(dict)
    requests: int = 0
    fetched_days: int = 0
    skipped_days: int = 0
    gaps: dict = attrs.Factory(dict)  # (market, kind, date) -> [(from_ns, to_ns, count)]
    partial: list = attrs.Factory(list)  # (market, kind, date) written incomplete (not ended yet)
    total_rows_in_range: int = 0
    markets: list = attrs.Factory(list)


def plan(writer: CatalogWriter, venue: str, markets: list[str], kinds: list[str], days: list[str]) -> list[Job]:
    """The jobs of a download: per (market, kind), the days not held complete (see the module docstring)."""
    jobs = []
    for m in markets:
        for k in kinds:
            need = [d for d in days if not writer.is_complete(venue, m, k, d)]
            damaged = [d for d in need if (writer.entry(venue, m, k, d) or {}).get("complete")]
            jobs.append(Job(m, k, need, [d for d in days if d not in need], damaged))
    return jobs


def _windows(days: list[str]) -> list[list[str]]:
    """Consecutive days grouped: ``[[d1, d2], [d5]]``."""
    out: list[list[str]] = []
    for d in days:
        if out and date.fromisoformat(d) - date.fromisoformat(out[-1][-1]) == timedelta(days=1):
            out[-1].append(d)
        else:
            out.append([d])
    return out


class DownloadProgressBar:
    """A rich progress bar fed :class:`ProgressUpdate` s (ETA from :class:`perpbot.progress.ProgressTracker`).

    Transient; rich draws only on a terminal. :meth:`close` removes it (idempotent).
    """

    def __init__(self, console=None, clock: Callable[[], float] = time.monotonic):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        self.tracker = ProgressTracker(clock)
        self.figures = None
        self._progress = Progress(TextColumn("download"), BarColumn(), TextColumn("{task.fields[text]}"),
                                  console=console or Console(stderr=True), transient=True)
        self._task = self._progress.add_task("download", total=10_000, text="")
        self._progress.start()
        self._closed = False

    def __call__(self, u: ProgressUpdate) -> None:
        fig = self.tracker.update(u)
        self.figures = fig
        if self._closed:
            return
        pct = 0.0 if fig.fraction is None else fig.fraction
        text = f"{pct * 100:5.1f}%  {format_market_time(u.market_ns)}  {u.events:,} rows  {format_eta(fig.eta_s)}"
        self._progress.update(self._task, completed=int(pct * 10_000), text=text)
        if u.final:
            self.close()

    def close(self) -> None:
        """Remove the bar (idempotent)."""
        if not self._closed:
            self._closed = True
            self._progress.stop()


async def run_download(source, writer: CatalogWriter, jobs: list[Job], *, now_ns: int | None = None,
                       progress: Callable[[ProgressUpdate], None] | None = None) -> DownloadResult:
    """Fetch every job's needed days from ``source`` and write them (see the module docstring).

    :param source: a history source (``venue``, ``funding_interval_h``, ``endpoint()``, ``pages()``).
    :param now_ns: the fetch time (default: now); days ending after it are written incomplete.
    :param progress: called with a :class:`ProgressUpdate` after every page and once at the end.
    :raises ExchangeError: / :class:`TemporaryExchangeError`: the source's failures (days
        written so far stay written).
    :raises DataError: a malformed row from the source.
    """
    now = now_ns if now_ns is not None else time.time_ns()
    res = DownloadResult()
    res.skipped_days = sum(len(j.held) for j in jobs)
    for j in jobs:
        for d in j.held:
            e = writer.entry(source.venue, j.market, j.kind, d)
            res.total_rows_in_range += int(e.get("rows") or 0)
            if e.get("gaps"):
                res.gaps[(j.market, j.kind, d)] = [tuple(g) for g in e["gaps"]]
    windows = [(j, w) for j in jobs for w in _windows(j.days)]
    total = sum(min(day_start_ns(w[-1]) + DAY_NS, now) - day_start_ns(w[0]) for _, w in windows) or 1
    done = 0
    rows_written = 0
    start_requests = source.requests
    for job, w in windows:
        lo = day_start_ns(w[0])
        hi = min(day_start_ns(w[-1]) + DAY_NS, now)
        if hi <= lo:
            continue
        by_day: dict[str, list] = {d: [] for d in w}
        pending = list(reversed(w))  # newest day first: written as the pages go below its start

        async def flush(low: int | None) -> None:
            nonlocal rows_written
            while pending and (low is None or low < day_start_ns(pending[0])):
                d = pending.pop(0)  # the Parquet write and digest run off the event loop
                rows_written += await asyncio.to_thread(_write_day, source, writer, job, d, by_day.pop(d), now, res)

        low = hi
        async for page in source.pages(job.market, job.kind, lo, hi):
            for r in page:
                key = datetime.fromtimestamp(r["ts_ns"] // 1_000_000_000, tz=timezone.utc).date().isoformat()
                if key in by_day:
                    by_day[key].append(r)
            low = min(low, min(r["ts_ns"] for r in page))
            await flush(low)
            if progress is not None:
                progress(ProgressUpdate(done + (hi - max(low, lo)), total, rows_written, low, False))
        await flush(None)
        done += hi - lo
        if progress is not None:
            progress(ProgressUpdate(done, total, rows_written, lo, False))
    res.requests = source.requests - start_requests
    res.total_rows_in_range += rows_written
    if progress is not None:
        progress(ProgressUpdate(total, total, rows_written, now, True))
    return res


def _write_day(source, writer: CatalogWriter, job: Job, d: str, rows: list, now: int, res: DownloadResult) -> int:
    lo = day_start_ns(d)
    hi = lo + DAY_NS
    complete = hi <= now
    end = min(hi, now)
    times = [r["ts_ns"] for r in rows]
    gaps: list = []
    # only intervals that had ended by the fetch are expected (an unfinished bar may not be served yet)
    if job.kind.startswith(("candles-", "mark-")):
        step = RESOLUTIONS[job.kind.split("-", 1)[1]] * 1_000_000_000
        gaps = find_gaps(times, lo, lo + (end - lo) // step * step, step)
    elif job.kind == "funding" and getattr(source, "funding_interval_h", None):
        step = source.funding_interval_h * 3_600_000_000_000
        gaps = find_gaps(times, lo, lo + (end - lo) // step * step, step, slot=True)
    writer.write_partition(source.venue, job.market, job.kind, d, rows, complete=complete,
                           source=source.endpoint(job.market, job.kind), gaps=gaps)
    res.rows[job.kind] = res.rows.get(job.kind, 0) + len(rows)
    res.fetched_days += 1
    if gaps:
        res.gaps[(job.market, job.kind, d)] = gaps
    if not complete:
        res.partial.append((job.market, job.kind, d))
    return len(rows)


def check_range(start: str, end: str, now_ns: int | None = None) -> list[str]:
    """The days of ``--start``..``--end`` (inclusive), checked.

    :raises ConfigError: end before start, or a start in the future (no data can exist).
    """
    days = days_between(start, end)
    now = now_ns if now_ns is not None else time.time_ns()
    if day_start_ns(start) >= now:
        raise ConfigError(f"--start {start} is in the future: no data to download")
    return days


def no_data_error(venue: str, markets: list[str], start: str, end: str) -> DataError:
    """The one-line error for a range in which the venue has no data at all."""
    return DataError(f"no data: {venue} has nothing for {', '.join(markets)} between {start} and {end} "
                     "(before the market listed?)")
