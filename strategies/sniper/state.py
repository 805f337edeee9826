"""The sniper's state: its positions and round trips from fills, cool-downs, orders in flight,
and their JSON form (checkpoints).

:class:`SniperBook` is the one object that holds everything the sniper remembers between
decision cycles; the entry and exit policies read and write it, and
:meth:`SniperBook.to_json` / :meth:`SniperBook.restore` persist all of it (including the
in-flight bookkeeping, so a resumed run decides exactly as an uninterrupted one: issue 5
item 3, the restart test in ``tests/e2e/test_restart.py``).

Units: prices USD, sizes base units, PnL and fees USD (Decimal); times ns since the
epoch (market time). A round trip is won when its gross PnL net of its fees is positive,
a flipping fill's fee split by size between the closing and the opening part — the rule
of ``core/metrics.py`` (the trade ledger of :mod:`perpbot.core.metrics`), so the sniper's
summary agrees with the run summary and the report.

Imports only :mod:`perpbot` and :mod:`perpbot.strategies.sniper.params`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any, Mapping

import attrs

from perpbot import Side

from perpbot.strategies.sniper.params import EXIT_TAG, ZERO

D = Decimal


@attrs.define
class Entry:
    """What the sniper knows about one of its positions (from fills).

    :ivar side: ``"BUY"`` (long) or ``"SELL"`` (short).
    :ivar ts_ns: time of the opening fill, ns since the epoch (the minimum hold counts from it).
    :ivar price: average entry price, USD.
    :ivar size: absolute size, base units.
    """

    side: str  # "BUY" (long) or "SELL" (short)
    ts_ns: int
    price: Decimal
    size: Decimal  # absolute, base units

    def to_json(self) -> dict:
        """``{"side", "ts_ns", "price", "size"}`` with the Decimals as strings (exact round trip)."""
        return {"side": self.side, "ts_ns": self.ts_ns, "price": str(self.price), "size": str(self.size)}

    @classmethod
    def from_json(cls, d: Mapping) -> "Entry":
        """Inverse of :meth:`to_json`. :raises KeyError, ValueError, decimal.InvalidOperation: a malformed record."""
        return cls(side=str(d["side"]), ts_ns=int(d["ts_ns"]), price=D(str(d["price"])), size=D(str(d["size"])))


def has_open_order(md: Any, t: str, reduce_only: bool | None = None) -> bool:
    """Whether one of the sniper's orders (tag ``sniper*``) rests on market ``t``.

    :param md: the :class:`perpbot.MarketData` of the cycle (``open_orders``: id -> order info).
    :param reduce_only: None: any; True/False: only reduce-only / only opening orders.
    """
    for info in md.open_orders.values():
        if info.ticker != t:
            continue
        tag = getattr(info, "tag", "") or ""
        if not tag.startswith("sniper"):
            continue
        if reduce_only is None or bool(info.reduce_only) == reduce_only:
            return True
    return False


class SniperBook:
    """Everything the sniper remembers between cycles.

    Persisted (public; per ticker): ``cooldown_until`` (ns), ``entries`` (:class:`Entry`),
    ``entries_count`` / ``exits_count`` (reason -> n) / ``wins`` / ``losses`` (round trips
    won or lost net of fees), ``gross_pnl`` (USD, before fees), ``fees`` (USD), ``cycles``
    (decision cycles so far). In flight (also persisted): ``pending`` (ticker ->
    ``(kind, since_ns, side or exit reason)``, kind ``"entry"`` or ``"exit"``),
    ``exit_reason`` (ticker -> reason of the exit in flight), ``first_ns`` (first decision:
    the warm-up counts from it), ``pos`` (signed size from fills, base units),
    ``trip_pnl`` / ``trip_fees`` (the open round trip's gross PnL and fees, USD).

    :param cooldown_ns: the cool-down after a position closes, ns (``cooldown_s`` * 1e9).
    """

    def __init__(self, cooldown_ns: int):
        self.cooldown_ns = cooldown_ns
        self.cooldown_until: dict[str, int] = {}
        self.entries: dict[str, Entry] = {}
        self.entries_count: Counter = Counter()  # ticker -> positions opened
        self.exits_count: dict[str, Counter] = defaultdict(Counter)  # ticker -> reason -> n
        self.wins: Counter = Counter()
        self.losses: Counter = Counter()
        self.gross_pnl: dict[str, Decimal] = defaultdict(lambda: ZERO)  # USD, before fees
        self.fees: dict[str, Decimal] = defaultdict(lambda: ZERO)  # USD
        self.cycles = 0
        self.pending: dict[str, tuple[str, int, str]] = {}
        self.trip_pnl: dict[str, Decimal] = defaultdict(lambda: ZERO)
        self.trip_fees: dict[str, Decimal] = defaultdict(lambda: ZERO)
        self.exit_reason: dict[str, str] = {}
        self.pos: dict[str, Decimal] = {}
        self.first_ns: int | None = None

    # -- in flight ---------------------------------------------------------------------------

    def pending_kind(self, t: str) -> str:
        """``"entry"``, ``"exit"`` or ``""`` (nothing in flight on ``t``)."""
        return self.pending.get(t, ("",))[0]

    def pending_side(self, t: str) -> Side:
        """The side of the entry in flight on ``t``. :raises KeyError: nothing in flight."""
        return Side.parse(self.pending[t][2])

    def expire_pending(self, now: int, md: Any, timeout_ns: int, timeout_s: Decimal, log: Any) -> None:
        """Forget orders in flight that are done (the position now shows it) or older than
        ``timeout_ns`` (logged at INFO: they no longer block their market)."""
        for t, (kind, since, _reason) in list(self.pending.items()):
            pos = md.positions.get(t)
            size = pos.size if pos is not None else ZERO
            if kind == "exit" and size == 0:
                del self.pending[t]
            elif kind == "entry" and size != 0:
                del self.pending[t]
            elif now - since >= timeout_ns:
                log.info(f"sniper: {kind} order on {t} got no fill within {timeout_s}s; no longer blocking")
                del self.pending[t]

    def order_ended(self, ticker: str, tag: str) -> None:
        """A rejected, canceled or expired order (``tag`` "" or ``sniper*``) no longer blocks ``ticker``."""
        if ticker in self.pending and (not tag or tag.startswith("sniper")):
            self.pending.pop(ticker, None)
            self.exit_reason.pop(ticker, None)

    # -- fills ----------------------------------------------------------------------------------

    def apply_fill(self, fill: Any) -> None:
        """Book one fill (:class:`perpbot.Fill`: ticker, side, size and price, fee USD, ts_ns, tag).

        Opening or adding: a new :class:`Entry` (or the size-weighted average entry price);
        the entry in flight is done. Reducing: gross PnL ``(price - entry) * closed * direction``
        (USD). Closing or flipping: the exit is counted under its reason (the exit in
        flight's, else the exit tag's ``sniper-exit:<reason>``, else ``outside (<tag>)``),
        the round trip is won or lost net of its fees, the market cools down until
        ``fill.ts_ns + cooldown_ns``, and a flip's remainder opens a new entry.
        """
        t = fill.ticker
        signed = fill.size if fill.side is Side.BUY else -fill.size
        prev = self.pos.get(t, ZERO)
        new = prev + signed
        self.fees[t] += fill.fee
        tag = getattr(fill, "tag", "") or ""
        if prev == 0 or (prev > 0) == (signed > 0):
            # opening or adding
            e = self.entries.get(t)
            if prev == 0 or e is None:
                self.entries[t] = Entry(fill.side.value, fill.ts_ns, fill.price, fill.size)
                self.entries_count[t] += 1
            else:
                total = e.size + fill.size
                e.price = (e.price * e.size + fill.price * fill.size) / total
                e.size = total
            self.trip_fees[t] += fill.fee
            if self.pending_kind(t) == "entry":
                del self.pending[t]
        else:
            # reducing, closing or flipping
            e = self.entries.get(t)
            closed = min(abs(signed), abs(prev))
            close_fee = fill.fee * closed / fill.size  # a flipping fill's fee is split by size (core/metrics.py)
            self.trip_fees[t] += close_fee
            if e is not None:
                direction = 1 if prev > 0 else -1
                pnl = (fill.price - e.price) * closed * direction
                self.gross_pnl[t] += pnl
                self.trip_pnl[t] += pnl
                e.size = max(e.size - closed, ZERO)
            if new == 0 or (new > 0) != (prev > 0):
                reason = self.exit_reason.pop(t, None)
                if reason is None:
                    reason = tag.split(":", 1)[1] if tag.startswith(EXIT_TAG + ":") else (f"outside ({tag})" if tag else "outside the strategy")
                self.exits_count[t][reason] += 1
                if e is not None:  # won: PnL net of the trip's fees > 0 (core/metrics.py, as the summary and report)
                    (self.wins if self.trip_pnl[t] - self.trip_fees[t] > 0 else self.losses)[t] += 1
                self.trip_pnl.pop(t, None)
                self.trip_fees.pop(t, None)
                if new != 0:
                    self.trip_fees[t] = fill.fee - close_fee
                until = fill.ts_ns + self.cooldown_ns
                if until > self.cooldown_until.get(t, 0):
                    self.cooldown_until[t] = until
                self.entries.pop(t, None)
                self.pending.pop(t, None)
                if new != 0:  # flipped: the rest opens a new position
                    self.entries[t] = Entry(fill.side.value, fill.ts_ns, fill.price, abs(new))
                    self.entries_count[t] += 1
        if new == 0:
            self.pos.pop(t, None)
        else:
            self.pos[t] = new

    # -- persistence --------------------------------------------------------------------------

    def to_json(self) -> dict:
        """The whole book as JSON-ready data (version 1; Decimals as strings, times as ints)."""
        return {
            "version": 1,
            "cooldown_until": dict(self.cooldown_until),
            "entries": {t: e.to_json() for t, e in self.entries.items()},
            "positions": {t: str(s) for t, s in self.pos.items()},
            "entries_count": dict(self.entries_count),
            "exits_count": {t: dict(c) for t, c in self.exits_count.items()},
            "wins": dict(self.wins),
            "losses": dict(self.losses),
            "gross_pnl": {t: str(v) for t, v in self.gross_pnl.items()},
            "fees": {t: str(v) for t, v in self.fees.items()},
            "trip_pnl": {t: str(v) for t, v in self.trip_pnl.items()},
            "trip_fees": {t: str(v) for t, v in self.trip_fees.items()},
            "cycles": self.cycles,
            # in-flight bookkeeping, so a resumed run decides exactly as an uninterrupted one
            "first_ns": self.first_ns,
            "pending": {t: list(v) for t, v in self.pending.items()},
            "exit_reason": dict(self.exit_reason),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load :meth:`to_json`'s data (an empty mapping changes nothing; missing keys read as empty).

        :raises KeyError, ValueError, decimal.InvalidOperation: a malformed record.
        """
        if not state:
            return
        self.cooldown_until = {t: int(v) for t, v in state.get("cooldown_until", {}).items()}
        self.entries = {t: Entry.from_json(e) for t, e in state.get("entries", {}).items()}
        self.pos = {t: D(str(v)) for t, v in state.get("positions", {}).items()}
        self.entries_count = Counter({t: int(v) for t, v in state.get("entries_count", {}).items()})
        self.exits_count = defaultdict(Counter, {t: Counter(c) for t, c in state.get("exits_count", {}).items()})
        self.wins = Counter(state.get("wins", {}))
        self.losses = Counter(state.get("losses", {}))
        self.gross_pnl = defaultdict(lambda: ZERO, {t: D(str(v)) for t, v in state.get("gross_pnl", {}).items()})
        self.fees = defaultdict(lambda: ZERO, {t: D(str(v)) for t, v in state.get("fees", {}).items()})
        self.trip_pnl = defaultdict(lambda: ZERO, {t: D(str(v)) for t, v in state.get("trip_pnl", {}).items()})
        self.trip_fees = defaultdict(lambda: ZERO, {t: D(str(v)) for t, v in state.get("trip_fees", {}).items()})
        self.cycles = int(state.get("cycles", 0))
        first = state.get("first_ns")
        self.first_ns = int(first) if first is not None else None
        self.pending = {t: (str(v[0]), int(v[1]), str(v[2])) for t, v in state.get("pending", {}).items()}
        self.exit_reason = {t: str(v) for t, v in state.get("exit_reason", {}).items()}

    # -- summary ---------------------------------------------------------------------------------

    def summary_lines(self) -> list[str]:
        """End-of-run lines: entries, exits by reason, open positions, cycles; then per market
        entries, exits (won/lost after fees), gross PnL and fees (USD) and any open size."""
        tickers = sorted(set(self.entries_count) | set(self.exits_count) | set(self.pos))
        by_reason: Counter = Counter()
        for c in self.exits_count.values():
            by_reason.update(c)
        n_entries = sum(self.entries_count.values())
        n_exits = sum(by_reason.values())
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"
        lines = [f"sniper: {n_entries} entries, {n_exits} exits (by reason: {reasons}), {len(self.pos)} open, {self.cycles} decision cycles"]
        for t in tickers:
            exits = sum(self.exits_count.get(t, {}).values())
            open_txt = f", open {self.pos[t]:+}" if t in self.pos else ""
            lines.append(
                f"  {t}: {self.entries_count.get(t, 0)} entries, {exits} exits ({self.wins.get(t, 0)} won, "
                f"{self.losses.get(t, 0)} lost after fees), gross PnL {self.gross_pnl.get(t, ZERO):+.2f} USD, "
                f"fees {self.fees.get(t, ZERO):.2f} USD{open_txt}"
            )
        return lines
