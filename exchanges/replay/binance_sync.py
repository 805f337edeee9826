"""Binance recordings, book level: the depth-sync state machine of every market of one stream.

Part of the Binance reader (:mod:`perpbot.exchanges.replay.binance`, which re-exports the
public names here). The procedure is Binance's documented one for futures ("How to
manage a local order book correctly", USD-M and COIN-M; the spot page for spot):

1. ``WAIT_SNAPSHOT``: diffs are buffered (at most :data:`BUFFER_MAX` per market);
2. on a REST snapshot with ``lastUpdateId`` (``WAIT_FIRST``): diffs with
   ``u < lastUpdateId`` (spot: ``< lastUpdateId + 1``) are dropped, and the first applied
   one must satisfy ``U <= lastUpdateId <= u`` (spot: ``U <= lastUpdateId + 1 <= u``);
3. ``SYNCED``: each diff's ``pu`` must equal the previous diff's ``u`` (spot, no ``pu``:
   ``U == previous u + 1``).

A broken chain is a gap (:meth:`DepthSync.gap`): a :class:`~perpbot.core.errors.DataError`
naming the file, the line and the ids, or with ``on_gap="resync"`` a
``FeedStatus(healthy=False)`` and a wait for the next snapshot. The hot path of a synced
market (the ``pu`` check and ``last_u`` update) is inlined in the reader's loop; the
steps here are the rarer ones.

The state (:class:`MarketSync`) lives as long as the stream, so it carries from one file
of a market to the next. A market whose book never synced is reported
(:meth:`DepthSync.unsynced`, and a warning once it has waited :data:`STALL_S` seconds of
market time).
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from pathlib import Path
from typing import Callable

from loguru import logger

from perpbot.core.errors import DataError
from perpbot.core.model import BookDelta, BookSnapshot, FeedStatus

from perpbot.exchanges.replay.binance_parse import BadValue, coinm_contract_usd

#: the ``FeedStatus`` reason of a market whose book is not synced yet
WAITING = "waiting for book snapshot"
#: market time (seconds) a market may wait for its first book sync before the reader warns
STALL_S = 60
_STALL_NS = STALL_S * 1_000_000_000
#: pre-snapshot diffs kept per market (older ones are dropped)
BUFFER_MAX = 10_000
#: sync states of :attr:`MarketSync.state`
WAIT_SNAPSHOT, WAIT_FIRST, SYNCED = 0, 1, 2
#: the ``markets`` entry of a symbol that is not replayed (ticker filter)
FILTERED = object()


class MarketSync:
    """Sync state of one symbol's book, carried across the files of one stream.

    Attributes: ``symbol`` (venue), ``ticker`` (dYdX), ``state`` (:data:`WAIT_SNAPSHOT`,
    :data:`WAIT_FIRST` or :data:`SYNCED`), ``last_u`` (last applied update id),
    ``snap_id`` (the snapshot's ``lastUpdateId``), ``buffer`` (pending diffs
    ``(U, u, pu, bids, asks, lineno)``), ``contract_usd`` (COIN-M USD per contract, else
    None), ``status_sent`` (its first FeedStatus was emitted), ``ever_synced``,
    ``first_ts`` (receive ns of its first line), ``waiting_depth`` (diffs read while never
    synced), ``snapshots`` (count), ``problem`` (the last reason it could not sync),
    ``stall_warned``.
    """

    __slots__ = (
        "symbol", "ticker", "state", "last_u", "snap_id", "buffer", "contract_usd", "status_sent",
        "ever_synced", "first_ts", "waiting_depth", "snapshots", "problem", "stall_warned",
    )

    def __init__(self, symbol: str, ticker: str, first_ts: int = 0):
        self.symbol = symbol
        self.ticker = ticker
        self.state = WAIT_SNAPSHOT
        self.last_u = -1
        self.snap_id = -1
        self.buffer: deque = deque(maxlen=BUFFER_MAX)
        self.contract_usd: Decimal | None = coinm_contract_usd(symbol)
        self.status_sent = False
        self.ever_synced = False
        self.first_ts = first_ts  # receive time of the symbol's first line
        self.waiting_depth = 0  # depth updates read while the book was never synced
        self.snapshots = 0
        self.problem = ""  # the last reason the book could not sync (a gap after a snapshot)
        self.stall_warned = False


class DepthSync:
    """The book-sync state of every market of one Binance stream, and its transitions.

    :param select: venue symbol -> dYdX ticker, or None to skip the symbol (then its
        :attr:`markets` entry is :data:`FILTERED`).
    :param on_gap: ``"error"`` (a gap raises DataError) or ``"resync"`` (wait for the next snapshot).
    :param stats: the reader's counter dict; this object adds to ``snapshots``, ``gaps``,
        ``dropped_messages`` and ``dropped_level_entries``.
    :param names: the stream's file names, for messages (``"a.gz, b.gz"``).

    :attr:`markets` maps venue symbol -> :class:`MarketSync` or :data:`FILTERED`;
    :attr:`cur_path` is the file being read (set by the reader; error messages name it).
    """

    def __init__(self, select: Callable[[str], str | None], on_gap: str, stats: dict, names: str, cur_path: Path):
        self.select = select
        self.on_gap = on_gap
        self.stats = stats
        self.names = names
        self.cur_path = cur_path
        self.markets: dict[str, object] = {}

    def market(self, symbol, ts: int = 0):
        """The :class:`MarketSync` of ``symbol`` (created at receive time ``ts`` ns), or :data:`FILTERED`.

        :raises BadValue: ``symbol`` is not a non-empty string.
        """
        m = self.markets.get(symbol)
        if m is None:
            if type(symbol) is not str or not symbol:
                raise BadValue(f"symbol {symbol!r} is not a text symbol")
            ticker = self.select(symbol)
            m = FILTERED if ticker is None else MarketSync(symbol, ticker, ts)
            self.markets[symbol] = m
        return m

    # -- transitions ------------------------------------------------------------

    def snapshot(self, m: MarketSync, ts: int, snap_id: int, bids: tuple, asks: tuple) -> list:
        """Apply a REST snapshot (``lastUpdateId = snap_id``) to ``m`` and replay its buffered diffs.

        :returns: the events to emit at ``ts``: a first FeedStatus if none was sent, the
            :class:`BookSnapshot`, the buffered diffs that now apply, and ``FeedStatus(healthy=True)``
            unless a gap sent the market back to waiting.
        :raises DataError: a gap among the buffered diffs with ``on_gap="error"``.
        """
        self.stats["snapshots"] += 1
        m.snapshots += 1
        batch: list = []
        if not m.status_sent:
            m.status_sent = True
            batch.append(FeedStatus(m.ticker, ts, False, WAITING))
        batch.append(BookSnapshot(m.ticker, ts, bids, asks))
        m.state = WAIT_FIRST
        m.snap_id = snap_id
        buffered = list(m.buffer)
        m.buffer.clear()
        for i, (U, u, pu, b, a, ln) in enumerate(buffered):
            if m.state == SYNCED:
                if (pu if pu is not None else U - 1) == m.last_u:
                    m.last_u = u
                    batch.append(BookDelta(m.ticker, ts, b, a))
                    continue
                got = self.gap(m, ts, ln, U, u, pu, b, a)
            else:
                got = self.first(m, ts, ln, U, u, pu, b, a)
            if got:
                batch.extend(got)
            if m.state == WAIT_SNAPSHOT:  # a gap while syncing (resync mode): keep the rest buffered
                m.buffer.extend(buffered[i + 1 :])
                break
        if m.state != WAIT_SNAPSHOT:
            batch.append(FeedStatus(m.ticker, ts, True, ""))
        return batch

    def first(self, m: MarketSync, ts: int, lineno: int, U: int, u: int, pu: int | None, bids, asks) -> list | None:
        """A diff ``U..u`` (``pu``: previous ``u``, None on spot) while ``m`` waits for its first one after a snapshot.

        :returns: None (an older diff, dropped), ``[BookDelta]`` (synced), or the gap's events.
        :raises DataError: the diff starts after the snapshot, with ``on_gap="error"``.
        """
        target = m.snap_id if pu is not None else m.snap_id + 1  # futures rule / spot rule
        if u < target:
            self.stats["dropped_messages"] += 1
            self.stats["dropped_level_entries"] += len(bids) + len(asks)
            return None
        if U <= target:
            m.state = SYNCED
            m.ever_synced = True
            m.last_u = u
            return [BookDelta(m.ticker, ts, bids, asks)]
        reason = (
            f"{m.symbol} depth update U={U} u={u} starts after the snapshot's lastUpdateId={m.snap_id}: "
            "the updates in between are missing"
        )
        return self._on_gap(m, ts, lineno, reason, (U, u, pu, bids, asks, lineno))

    def gap(self, m: MarketSync, ts: int, lineno: int, U: int, u: int, pu: int | None, bids, asks) -> list:
        """A synced market's diff that does not continue the chain (see the module docstring).

        :returns: ``[FeedStatus(healthy=False)]`` with ``on_gap="resync"`` (the diff is kept for the next snapshot).
        :raises DataError: with ``on_gap="error"``, naming the file, the line and the ids.
        """
        if pu is not None:
            reason = f"{m.symbol} depth gap: update U={U} u={u} has pu={pu} but the previous update ended at u={m.last_u}"
        else:
            reason = f"{m.symbol} depth gap: update U={U} u={u} does not follow the previous u={m.last_u} (expected U={m.last_u + 1})"
        return self._on_gap(m, ts, lineno, reason, (U, u, pu, bids, asks, lineno))

    def _on_gap(self, m: MarketSync, ts: int, lineno: int, reason: str, pending: tuple) -> list:
        self.stats["gaps"] += 1
        m.problem = f"{self.cur_path.name}:{lineno}: {reason}"
        if self.on_gap != "resync":
            raise DataError(f"{self.cur_path}:{lineno}: {reason} (set on_gap = \"resync\" to wait for the next snapshot instead)")
        logger.warning("{}:{}: {}; waiting for the next snapshot", self.cur_path, lineno, reason)
        m.state = WAIT_SNAPSHOT
        m.buffer.clear()
        m.buffer.append(pending)
        return [FeedStatus(m.ticker, ts, False, f"book gap at line {lineno}; {WAITING}")]

    # -- reporting --------------------------------------------------------------

    def unsynced_reason(self, m: MarketSync) -> str:
        """Why ``m``'s book has not synced: snapshots never matched, no snapshot at all, or no depth data."""
        if m.snapshots:
            return (
                f"its {m.snapshots} depth snapshot(s) in {self.names} were never followed by a matching "
                f"depth update ({m.problem or 'no update after the snapshot'})"
            )
        if m.waiting_depth:
            return (
                f"no depth snapshot in {self.names}, so its {m.waiting_depth} depth updates could not be "
                "applied; a Binance file that continues an earlier recording has no snapshot: replay it "
                "together with the earlier file(s) of that market"
            )
        return f"no depth data in {self.names} (only trades or quotes)"

    def unsynced(self) -> dict[str, str]:
        """``{ticker: reason}`` of the markets read so far whose book never synced once."""
        return {
            m.ticker: self.unsynced_reason(m)
            for m in self.markets.values()
            if m is not FILTERED and not m.ever_synced and m.status_sent
        }

    def book_markets(self) -> dict[str, bool]:
        """``{ticker: synced at least once}`` of the markets read so far."""
        return {m.ticker: m.ever_synced for m in self.markets.values() if m is not FILTERED and m.status_sent}

    def check_stall(self, ts: int) -> None:
        """Warn once per market that has waited :data:`STALL_S` s of market time (up to ``ts`` ns) for its first sync."""
        for m in self.markets.values():
            if m is FILTERED or m.ever_synced or m.stall_warned or not m.status_sent:
                continue
            if ts - m.first_ts >= _STALL_NS:
                m.stall_warned = True
                logger.warning(
                    "{} ({}): its order book has not synced after {} s of market data: {}. "
                    "Until it does the book is empty and no strategy can trade {}",
                    m.symbol, m.ticker, STALL_S, self.unsynced_reason(m), m.ticker,
                )

    def book_update_id(self, symbol: str) -> int | None:
        """The last depth update id ``u`` applied to ``symbol``'s book (None until synced)."""
        m = self.markets.get(symbol)
        if m is None or m is FILTERED or m.state != SYNCED:
            return None
        return m.last_u
