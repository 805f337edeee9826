"""The journal file: one SQLite database per bot instance (WAL, exact Decimal TEXT).

:class:`Journal` is the synchronous store: one connection, used from one
thread. The bot never calls it on the event loop directly; it goes through
:class:`perpbot.plugins.journal.writer.JournalWriter`, which owns a Journal on its own
thread. Reports, tests and reconciliation's reads may open a Journal directly
(``Journal.open(path, readonly=True)``).

Durability: WAL mode with ``synchronous=NORMAL`` (a committed transaction
survives a process crash; an OS crash may lose the last few) and
``synchronous=FULL`` for order intents, which are fsynced before the order is
sent. Every write is a transaction; a process killed at any point leaves a
journal that opens, at its last committed transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Mapping

import attrs

from perpbot.core.errors import DataError, PerpbotError
from perpbot.core.model import (
    ZERO,
    Balance,
    Fill,
    FundingPayment,
    Liquidation,
    Liquidity,
    MarginMode,
    OrderInfo,
    OrderRequest,
    OrderResult,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Position,
    Side,
    TimeInForce,
)
from perpbot.plugins.journal.codec import dec, dumps_state, enum_value, loads_state, opt_dec, parse_dec
from perpbot.plugins.journal.schema import LEDGER_TABLES, SCHEMA_VERSION, migrate, schema_version

TERMINAL_STATUSES = tuple(s.value for s in OrderStatus if s.is_terminal)
CANCEL_STATUSES = (OrderStatus.CANCELED, OrderStatus.BEST_EFFORT_CANCELED, OrderStatus.EXPIRED)


class DuplicateClientId(PerpbotError):
    """An order intent reused a client id already in the journal: the order is not sent."""


class DuplicateFill(DataError):
    """A fill's venue fill id is already journaled for a DIFFERENT fill (issue 9.2).

    A venue's fill id names one fill for good: the same id with other figures
    (order, market, side, price or size) is a collision, never a repeat, and the
    journal refuses it loudly rather than keep one of the two. A venue reporting
    the SAME fill again (a reconnect, reconciliation) is not an error:
    :meth:`Journal.record_fill` returns False for it.
    """


class JournalUnavailable(DataError):
    """The journal file cannot be opened, read or written: damaged, read-only, a folder,
    a table missing, the disk full... The message is one line naming the file and
    what to do (see :func:`describe_journal_error`)."""


#: every table of the current schema (a journal missing one is refused at open)
REQUIRED_TABLES = ("meta", "runs", *LEDGER_TABLES, "checkpoints", "market_cursor")

_MOVE_ASIDE = "move it aside (keep it for inspection) and run again: a new journal starts"


def describe_journal_error(path: str | Path, exc: BaseException, doing: str = "cannot use journal") -> str:
    """One line for a journal file that failed: ``"<doing> <path>: <what> (<sqlite error>): <what to do>"``.

    :param path: the journal file.
    :param exc: the :class:`sqlite3.Error` or :class:`OSError` raised.
    :param doing: the start of the line (``"cannot open journal"``, ``"cannot write journal"``...).
    The kind of failure comes from SQLite's primary result code (``exc.sqlite_errorcode & 0xff``,
    https://www.sqlite.org/rescode.html), not from the message text.
    """
    path = Path(path)
    err = " ".join(str(exc).split()) or type(exc).__name__  # one line
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    head = f"{doing} {path}"
    if path.is_dir():
        return f"{head}: the journal path is a folder: give --journal a file path (e.g. {path / 'journal.sqlite'})"
    if isinstance(exc, OSError):
        return f"{head}: {err}: check that its folder exists and is writable, or give another --journal"
    if primary == sqlite3.SQLITE_READONLY:
        return (
            f"{head}: the file (or its folder) is read-only ({err}): make it writable "
            f"(chmod u+w {path} {path.parent}) or give another --journal"
        )
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return f"{head}: the file is damaged or not a journal ({err}): {_MOVE_ASIDE}"
    if primary == sqlite3.SQLITE_FULL:
        return f"{head}: the disk is full ({err}): free space and run again (committed rows are kept)"
    if primary == sqlite3.SQLITE_IOERR:
        return f"{head}: the disk failed ({err}): check the disk and the file, or {_MOVE_ASIDE}"
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return f"{head}: another process holds the file ({err}): stop it, or give this bot another --journal"
    if primary == sqlite3.SQLITE_CANTOPEN:
        return f"{head}: the file cannot be opened ({err}): check that it and its folder exist and are writable"
    if "no such table" in err or "no such column" in err:
        return f"{head}: it is not a complete perpbot journal ({err}): {_MOVE_ASIDE}"
    return f"{head}: {err}: {_MOVE_ASIDE}"


def is_storage_error(exc: BaseException) -> bool:
    """True for a failure of the journal FILE (damaged, read-only, full, missing table...),
    False for a refused row (a constraint: duplicate client id or fill id) or a caller's bug."""
    if isinstance(exc, (sqlite3.IntegrityError, DuplicateClientId, DuplicateFill)):
        return False
    return isinstance(exc, (sqlite3.DatabaseError, OSError, JournalUnavailable))


@attrs.frozen
class Checkpoint:
    """A resumable point of a run.

    :param events_processed: market events the bot had fully processed (benchmark count:
        each book level entry, trade, quote...).
    :param events_read: feed events (batch items) read: the unit of ``bot.resume_from_event``.
    :param last_event_ns: time of the last processed event, ns.
    :param high_water: table -> largest ``seq`` written at the checkpoint.
    :param state: the decoded state blob (exchange states, portfolio, open orders, strategy state...).
    """

    seq: int
    run_id: str
    ts_ns: int
    events_processed: int
    events_read: int
    last_event_ns: int
    client_id_high: int
    high_water: dict
    state: dict
    reason: str


def _now_wall() -> int:
    return time.time_ns()


class Journal:
    """Synchronous journal store (one connection; use from one thread).

    :param path: the SQLite file (created with its parent directory when missing).
    :param readonly: open without writing (no migration; refuses an old schema).
    """

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if self.path.is_dir():
            raise JournalUnavailable(describe_journal_error(self.path, IsADirectoryError(str(self.path)), "cannot open journal"))
        try:
            if readonly:
                if not self.path.is_file():
                    raise DataError(f"journal not found: {self.path}")
                uri = f"file:{self.path}?mode=ro"
                self.conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        except (sqlite3.Error, OSError) as exc:
            raise JournalUnavailable(describe_journal_error(self.path, exc, "cannot open journal")) from None
        self.conn.row_factory = sqlite3.Row
        try:
            self.conn.execute("PRAGMA busy_timeout=5000")
            if not readonly:
                mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise DataError(f"{self.path}: SQLite refused WAL mode (got {mode})")
                self.conn.execute("PRAGMA synchronous=NORMAL")
                self.from_version, _ = migrate(self.conn, path=str(self.path))
                # a write now: a read-only file (or folder) is refused at open, not at the first fill
                self.conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('opened_wall_ns', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (str(_now_wall()),),
                )
            else:
                self.from_version = schema_version(self.conn)
                if self.from_version == 0:
                    raise DataError(f"{self.path}: not a perpbot journal (no meta table)")
                if self.from_version > SCHEMA_VERSION:
                    raise DataError(
                        f"{self.path}: journal schema version {self.from_version} is newer than "
                        f"this perpbot supports ({SCHEMA_VERSION})"
                    )
            self._check_file()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise JournalUnavailable(describe_journal_error(self.path, exc, "cannot open journal")) from None
        except BaseException:
            self.conn.close()
            raise
        self.version = schema_version(self.conn)
        self._in_tx = False

    def _check_file(self) -> None:
        """Refuse, at open, a journal whose pages are damaged or that lacks a table.

        ``PRAGMA quick_check`` reads every page (linear in the file size; about a
        millisecond per 500 KB), so damage is found before the bot trades, not at its
        first failing write.

        :raises JournalUnavailable: one line naming the file and what to do.
        """
        problem = str(self.conn.execute("PRAGMA quick_check(1)").fetchone()[0])
        if problem != "ok":
            lines = [ln.strip() for ln in problem.splitlines() if ln.strip() and not ln.startswith("***")]
            problem = "; ".join(lines) or problem.strip()
            raise JournalUnavailable(
                f"cannot open journal {self.path}: the file is damaged (sqlite quick_check: {problem}): {_MOVE_ASIDE}"
            )
        have = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = [t for t in REQUIRED_TABLES if t not in have]
        if missing and schema_version(self.conn) == SCHEMA_VERSION:
            raise JournalUnavailable(
                f"cannot open journal {self.path}: it is not a complete perpbot journal "
                f"(table{'s' if len(missing) > 1 else ''} {', '.join(missing)} missing): {_MOVE_ASIDE}"
            )

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False) -> "Journal":
        return cls(path, readonly=readonly)

    def close(self) -> None:
        try:
            if self._in_tx:
                self.commit()
            self.conn.close()
        except sqlite3.ProgrammingError:
            pass

    # -- transactions ---------------------------------------------------------

    def begin(self) -> None:
        if not self._in_tx:
            self.conn.execute("BEGIN IMMEDIATE")
            self._in_tx = True

    def commit(self) -> None:
        if self._in_tx:
            self.conn.execute("COMMIT")
            self._in_tx = False

    def rollback(self) -> None:
        if self._in_tx:
            self.conn.execute("ROLLBACK")
            self._in_tx = False

    def _exec(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        """Run one write inside the open transaction (or its own one when none is open)."""
        if self._in_tx:
            return self.conn.execute(sql, tuple(args))
        self.begin()
        try:
            cur = self.conn.execute(sql, tuple(args))
            self.commit()
            return cur
        except BaseException:
            self.rollback()
            raise

    def set_synchronous(self, mode: str) -> None:
        """``NORMAL`` or ``FULL`` (outside a transaction)."""
        self.conn.execute(f"PRAGMA synchronous={'FULL' if mode.upper() == 'FULL' else 'NORMAL'}")

    # -- meta and runs --------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self.conn.execute("SELECT key, value FROM meta")}

    def set_meta(self, key: str, value: str) -> None:
        self._exec(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, str(value)),
        )

    def start_run(
        self,
        run_id: str,
        *,
        ts_ns: int,
        strategy: str,
        venues: Iterable[str],
        tickers: Iterable[str],
        config: Mapping[str, Any] | None = None,
    ) -> None:
        """Add a row to ``runs`` (status ``running``); a run id already present is kept."""
        self._exec(
            "INSERT INTO runs(run_id, started_ns, started_wall_ns, strategy, venues, tickers, config_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(run_id) DO NOTHING",
            (
                run_id,
                int(ts_ns),
                _now_wall(),
                strategy,
                ",".join(venues),
                ",".join(tickers),
                json.dumps(config or {}, default=str, sort_keys=True),
            ),
        )
        meta = self.meta()
        if "first_run_id" not in meta:
            self.set_meta("first_run_id", run_id)
        self.set_meta("last_run_id", run_id)

    def update_run(self, run_id: str, **fields: Any) -> None:
        allowed = {
            "ended_ns",
            "ended_wall_ns",
            "status",
            "stop_reason",
            "summary_json",
            "reconcile_summary",
            "resumed_from",
            "resume_event",
        }
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"update_run: unknown column(s) {sorted(bad)}")
        if not fields:
            return
        cols = ", ".join(f"{k}=?" for k in fields)
        self._exec(f"UPDATE runs SET {cols} WHERE run_id=?", (*fields.values(), run_id))

    def end_run(self, run_id: str, *, ts_ns: int, status: str = "stopped", stop_reason: str = "", summary: Any = None) -> None:
        self.update_run(
            run_id,
            ended_ns=int(ts_ns),
            ended_wall_ns=_now_wall(),
            status=status,
            stop_reason=stop_reason,
            summary_json=None if summary is None else json.dumps(summary, default=str, sort_keys=True),
        )

    def runs(self) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM runs ORDER BY started_wall_ns, rowid").fetchall()

    # -- orders ---------------------------------------------------------------

    def record_intent(self, run_id: str, order: OrderRequest, *, ts_ns: int, venue: str, strategy: str = "") -> int:
        """Write an order intent (call BEFORE sending). Returns its ``seq``.

        :raises DuplicateClientId: when ``order.client_id`` was journaled before
            (voided rows included): the order must not be sent.
        """
        try:
            cur = self._exec(
                "INSERT INTO order_intents(run_id, ts_ns, wall_ns, client_id, venue, ticker, side, order_type, size, "
                "price, trigger_price, time_in_force, reduce_only, post_only, good_til_s, margin_mode, tag, reason, "
                "strategy) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    int(ts_ns),
                    _now_wall(),
                    int(order.client_id),
                    venue,
                    order.ticker,
                    enum_value(order.side),
                    enum_value(order.order_type),
                    dec(order.size),
                    opt_dec(order.price),
                    opt_dec(order.trigger_price),
                    enum_value(order.time_in_force),
                    int(order.reduce_only),
                    int(order.post_only),
                    order.good_til_s,
                    enum_value(order.margin_mode),
                    order.tag,
                    order.reason,
                    strategy,
                ),
            )
        except sqlite3.IntegrityError as exc:
            if "client_id" in str(exc):
                raise DuplicateClientId(
                    f"client id {order.client_id} is already in the journal {self.path.name}: "
                    "refusing to send an order that could duplicate an earlier one"
                ) from None
            raise
        return int(cur.lastrowid)

    def record_result(self, run_id: str, order: OrderRequest, result: OrderResult, *, ts_ns: int, venue: str) -> None:
        self._exec(
            "INSERT INTO order_results(run_id, ts_ns, wall_ns, client_id, venue, ticker, success, status, "
            "filled_size, avg_price, error, exchange_order_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                run_id,
                int(ts_ns),
                _now_wall(),
                int(result.client_id if result.client_id is not None else order.client_id),
                venue,
                order.ticker,
                int(bool(result.success)),
                enum_value(result.status),
                dec(result.filled_size),
                opt_dec(result.avg_price),
                result.error or "",
                result.exchange_order_id or "",
            ),
        )

    def record_update(
        self, run_id: str, update: OrderUpdate, *, venue: str, source: str = "exchange", cancel_row: bool = True
    ) -> None:
        """Write an order update; a cancel/expiry also gets a ``cancels`` row unless
        ``cancel_row`` is False (the bot's own cancel request was journaled already)."""
        self._exec(
            "INSERT INTO order_updates(run_id, ts_ns, wall_ns, client_id, venue, ticker, status, filled_size, "
            "reason, tag, source) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                run_id,
                int(update.ts_ns),
                _now_wall(),
                int(update.client_id),
                venue,
                update.ticker,
                enum_value(update.status),
                dec(update.filled_size),
                update.reason or "",
                update.tag or "",
                source,
            ),
        )
        if cancel_row and update.status in CANCEL_STATUSES:
            self.record_cancel(
                run_id,
                update.client_id,
                update.ticker,
                ts_ns=update.ts_ns,
                venue=venue,
                status=enum_value(update.status),
                reason=update.reason,
                source=source,
            )

    def record_cancel(
        self,
        run_id: str,
        client_id: int,
        ticker: str,
        *,
        ts_ns: int,
        venue: str,
        status: str = "CANCELED",
        reason: str = "",
        source: str = "exchange",
        error: str = "",
    ) -> None:
        """One cancel: requested by the bot (``source='bot'``, ``error`` when refused),
        reported by the venue (expiry, venue cancel) or concluded by reconciliation."""
        self._exec(
            "INSERT INTO cancels(run_id, ts_ns, wall_ns, client_id, venue, ticker, status, reason, source, error) "
            "VALUES (?,?,?,?,?,?,?,?,?,?)",
            (run_id, int(ts_ns), _now_wall(), int(client_id), venue, ticker, status, reason or "", source, error or ""),
        )

    # -- account events -----------------------------------------------------

    def record_fill(self, run_id: str, fill: Fill, *, venue: str, source: str = "exchange") -> bool:
        """Write a fill. Returns True when written.

        Fills are unique per (venue, venue fill id) over the whole journal (live rows): a
        venue's fill id names one fill for good, so a restarted live run dedupes the fills
        reconciliation re-reads. Simulators make ids unique per run the same way
        (``paper-<run>-<n>``, :mod:`perpbot.exchanges.paper.exchange`).

        :returns: False, writing nothing, when the SAME fill (same fill id, order, market,
            side, price and size) is already journaled: the venue reported it again. The
            caller says so (:func:`perpbot.plugins.journal.on_fill` logs a warning).
        :raises DuplicateFill: the fill id is journaled for a different fill (a collision: one
            of the two would be lost).
        """
        try:
            self._exec(
                "INSERT INTO fills(run_id, ts_ns, wall_ns, client_id, venue, ticker, side, price, size, fee, "
                "liquidity, fill_id, tag, liquidation, source) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    int(fill.ts_ns),
                    _now_wall(),
                    int(fill.client_id),
                    venue,
                    fill.ticker,
                    enum_value(fill.side),
                    dec(fill.price),
                    dec(fill.size),
                    dec(fill.fee),
                    enum_value(fill.liquidity),
                    fill.fill_id or "",
                    fill.tag or "",
                    int(bool(fill.liquidation)),
                    source,
                ),
            )
        except sqlite3.IntegrityError as exc:
            if "fill_id" not in str(exc):
                raise
            row = self.conn.execute(
                "SELECT run_id, client_id, ticker, side, price, size FROM fills WHERE venue=? AND fill_id=? AND voided=0",
                (venue, fill.fill_id),
            ).fetchone()
            if row is not None and _same_fill(row, fill):
                return False
            where = f"run {row['run_id']}, order {row['client_id']}" if row is not None else "another row"
            raise DuplicateFill(
                f"journal {self.path}: fill id {fill.fill_id!r} of venue {venue!r} is already journaled for a "
                f"different fill ({where}); not recording order {fill.client_id}'s fill under it "
                "(fill ids must be unique per venue: a venue or simulator reused one)"
            ) from None
        return True

    def has_fill(self, fill: Fill, *, venue: str) -> bool:
        """True when this fill is already journaled (by venue fill id, else by its exact figures)."""
        if fill.fill_id:
            row = self.conn.execute(
                "SELECT 1 FROM fills WHERE venue=? AND fill_id=? AND voided=0", (venue, fill.fill_id)
            ).fetchone()
            return row is not None
        row = self.conn.execute(
            "SELECT 1 FROM fills WHERE voided=0 AND client_id=? AND ts_ns=? AND price=? AND size=? AND side=?",
            (int(fill.client_id), int(fill.ts_ns), dec(fill.price), dec(fill.size), enum_value(fill.side)),
        ).fetchone()
        return row is not None

    def record_position(
        self, run_id: str, pos: Position, *, ts_ns: int, venue: str, mark: Decimal | None = None, reason: str = ""
    ) -> None:
        self._exec(
            "INSERT INTO positions(run_id, ts_ns, venue, ticker, size, entry_price, realized_pnl, fees, funding, "
            "mark, reason) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                run_id,
                int(ts_ns),
                venue,
                pos.ticker,
                dec(pos.size),
                dec(pos.entry_price),
                dec(pos.realized_pnl),
                dec(pos.fees),
                dec(pos.funding),
                opt_dec(mark),
                reason,
            ),
        )

    def record_funding(self, run_id: str, p: FundingPayment, *, venue: str) -> None:
        self._exec(
            "INSERT INTO funding_payments(run_id, ts_ns, venue, ticker, size, oracle_price, rate_1h, amount) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (run_id, int(p.ts_ns), venue, p.ticker, dec(p.size), dec(p.oracle_price), dec(p.rate_1h), dec(p.amount)),
        )

    def record_liquidation(self, run_id: str, liq: Liquidation, *, venue: str) -> None:
        self._exec(
            "INSERT INTO liquidations(run_id, ts_ns, venue, ticker, size, price, fee, reason) VALUES (?,?,?,?,?,?,?,?)",
            (run_id, int(liq.ts_ns), venue, liq.ticker, dec(liq.size), dec(liq.price), dec(liq.fee), liq.reason or ""),
        )

    def record_equity(
        self,
        run_id: str,
        balance: Balance,
        *,
        ts_ns: int,
        venue: str,
        realized_pnl: Decimal | None = None,
        unrealized_pnl: Decimal | None = None,
        fees: Decimal | None = None,
        funding: Decimal | None = None,
        gross_notional: Decimal | None = None,
    ) -> None:
        self._exec(
            "INSERT INTO equity_snapshots(run_id, ts_ns, venue, collateral, equity, free_collateral, initial_margin, "
            "maintenance_margin, realized_pnl, unrealized_pnl, fees, funding, gross_notional) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                run_id,
                int(ts_ns),
                venue,
                dec(balance.collateral),
                dec(balance.equity),
                dec(balance.free_collateral),
                dec(balance.initial_margin),
                dec(balance.maintenance_margin),
                opt_dec(realized_pnl),
                opt_dec(unrealized_pnl),
                opt_dec(fees),
                opt_dec(funding),
                opt_dec(gross_notional),
            ),
        )

    def record_marks(self, run_id: str, marks: Mapping[str, Decimal], *, ts_ns: int, venue: str) -> None:
        for ticker, price in marks.items():
            if price is None:
                continue
            self._exec(
                "INSERT INTO marks(run_id, ts_ns, venue, ticker, price) VALUES (?,?,?,?,?)",
                (run_id, int(ts_ns), venue, ticker, dec(price)),
            )

    def record_risk(self, run_id: str, decision: Any, *, ts_ns: int) -> None:
        size = getattr(decision, "size", None)
        self._exec(
            "INSERT INTO risk_actions(run_id, ts_ns, policy, action, reason, ticker, size) VALUES (?,?,?,?,?,?,?)",
            (
                run_id,
                int(getattr(decision, "ts_ns", 0) or ts_ns),
                getattr(decision, "policy", "") or "",
                enum_value(decision.action),
                getattr(decision, "reason", "") or "",
                getattr(decision, "ticker", "") or "",
                opt_dec(size),
            ),
        )

    def record_strategy_state(
        self, run_id: str, strategy: str, state: Any = None, *, ts_ns: int, reason: str, state_json: str | None = None
    ) -> None:
        """Write a strategy's ``get_state()`` (pass ``state_json`` already encoded when
        the state object may change before this runs on the writer thread)."""
        self._exec(
            "INSERT INTO strategy_state(run_id, ts_ns, strategy, reason, state_json) VALUES (?,?,?,?,?)",
            (run_id, int(ts_ns), strategy, reason, state_json if state_json is not None else dumps_state(state)),
        )

    # -- checkpoints ------------------------------------------------------------

    def high_water(self) -> dict[str, int]:
        """table -> largest ``seq`` written so far (0 for an empty table)."""
        out = {}
        for t in LEDGER_TABLES:
            row = self.conn.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {t}").fetchone()
            out[t] = int(row[0])
        return out

    def record_checkpoint(
        self,
        run_id: str,
        *,
        ts_ns: int,
        events_processed: int,
        last_event_ns: int,
        client_id_high: int,
        events_read: int = 0,
        state: Mapping[str, Any] | None = None,
        reason: str = "",
        state_json: str | None = None,
    ) -> int:
        """Write a checkpoint (the high-water marks are read inside the same transaction).

        Pass ``state_json`` (from :func:`~perpbot.plugins.journal.codec.dumps_state`) when the
        state was captured on another thread: live objects may change before this runs.
        """
        if state_json is None:
            state_json = dumps_state(dict(state or {}))
        own = not self._in_tx
        if own:
            self.begin()
        try:
            hw = self.high_water()
            cur = self.conn.execute(
                "INSERT INTO checkpoints(run_id, ts_ns, wall_ns, events_processed, events_read, last_event_ns, "
                "client_id_high, high_water_json, state_json, reason) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    int(ts_ns),
                    _now_wall(),
                    int(events_processed),
                    int(events_read),
                    int(last_event_ns),
                    int(client_id_high),
                    json.dumps(hw, sort_keys=True),
                    state_json,
                    reason,
                ),
            )
            if own:
                self.commit()
        except BaseException:
            if own:
                self.rollback()
            raise
        return int(cur.lastrowid)

    def last_checkpoint(self, *, with_state: bool = True) -> Checkpoint | None:
        """The latest checkpoint, or None.

        :param with_state: decode its state blob (False: ``state`` is ``{}``, for callers that
            only need its counters and run id).
        :raises DataError: the state or high-water marks are not readable (bad JSON); the
            message names the file and says to run with ``--fresh``.
        """
        row = self.conn.execute("SELECT * FROM checkpoints ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            return None
        what = f"checkpoint {row['seq']}"
        return Checkpoint(
            seq=row["seq"],
            run_id=row["run_id"],
            ts_ns=row["ts_ns"],
            events_processed=row["events_processed"],
            events_read=row["events_read"],
            last_event_ns=row["last_event_ns"],
            client_id_high=row["client_id_high"],
            high_water=self._decode(row["high_water_json"], what, json.loads),
            state=self._decode(row["state_json"], what) if with_state else {},
            reason=row["reason"],
        )

    def _decode(self, text: str, what: str, loads=loads_state) -> Any:
        """Decode a stored JSON blob; a damaged one is a :class:`DataError` naming the file and what to do."""
        try:
            return loads(text)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(
                f"journal {self.path}: the state of {what} is unreadable ({type(exc).__name__}: {exc}); "
                "run with --fresh to start over without it (the journal keeps its rows), or move the journal aside"
            ) from None

    def void_after(self, checkpoint: Checkpoint, *, run_ids: Iterable[str] | None = None) -> dict[str, int]:
        """Mark rows written after ``checkpoint`` as voided (a paper run rewound to it).

        Only rows of ``run_ids`` (default: every run) are touched. Returns table -> rows voided.
        Client ids of voided intents stay reserved (the UNIQUE constraint still holds them).
        """
        counts = {}
        own = not self._in_tx
        if own:
            self.begin()
        try:
            for t in LEDGER_TABLES:
                hw = int(checkpoint.high_water.get(t, 0))
                if run_ids is None:
                    cur = self.conn.execute(f"UPDATE {t} SET voided=1 WHERE seq>? AND voided=0", (hw,))
                else:
                    ids = list(run_ids)
                    marks = ",".join("?" * len(ids))
                    cur = self.conn.execute(
                        f"UPDATE {t} SET voided=1 WHERE seq>? AND voided=0 AND run_id IN ({marks})", (hw, *ids)
                    )
                counts[t] = cur.rowcount
            if own:
                self.commit()
        except BaseException:
            if own:
                self.rollback()
            raise
        return counts

    def set_cursor(self, feed: str, run_id: str, *, events: int, last_event_ns: int, position: Any = None) -> None:
        self._exec(
            "INSERT INTO market_cursor(feed, run_id, events, last_event_ns, position_json, wall_ns) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT(feed) DO UPDATE SET run_id=excluded.run_id, events=excluded.events, "
            "last_event_ns=excluded.last_event_ns, position_json=excluded.position_json, wall_ns=excluded.wall_ns",
            (feed, run_id, int(events), int(last_event_ns), dumps_state(position or {}), _now_wall()),
        )

    def cursor(self, feed: str) -> dict | None:
        row = self.conn.execute("SELECT * FROM market_cursor WHERE feed=?", (feed,)).fetchone()
        if row is None:
            return None
        return {
            "feed": row["feed"],
            "run_id": row["run_id"],
            "events": row["events"],
            "last_event_ns": row["last_event_ns"],
            "position": self._decode(row["position_json"], f"market cursor {feed!r}"),
        }

    # -- reads ------------------------------------------------------------------

    def all_client_ids(self) -> set[int]:
        """Every client id ever journaled (voided included): never to be reused."""
        return {int(r[0]) for r in self.conn.execute("SELECT client_id FROM order_intents")}

    def max_client_id(self) -> int:
        row = self.conn.execute("SELECT COALESCE(MAX(client_id), 0) FROM order_intents").fetchone()
        return int(row[0])

    def intent(self, client_id: int) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM order_intents WHERE client_id=?", (int(client_id),)).fetchone()

    def intents(self, *, include_voided: bool = False) -> list[sqlite3.Row]:
        where = "" if include_voided else "WHERE voided=0"
        return self.conn.execute(f"SELECT * FROM order_intents {where} ORDER BY seq").fetchall()

    def fills(self, *, include_voided: bool = False) -> list[sqlite3.Row]:
        where = "" if include_voided else "WHERE voided=0"
        return self.conn.execute(f"SELECT * FROM fills {where} ORDER BY seq").fetchall()

    def last_status(self) -> dict[int, str]:
        """client id -> the latest known status (from results and updates, not voided)."""
        status: dict[int, tuple[int, str]] = {}
        # results first, then updates: an update is always later information than the result
        for r in self.conn.execute("SELECT client_id, status, success, seq FROM order_results WHERE voided=0 ORDER BY seq"):
            st = r["status"] if r["success"] else "REJECTED"
            status[int(r["client_id"])] = (0, st)
        for r in self.conn.execute("SELECT client_id, status, seq FROM order_updates WHERE voided=0 ORDER BY seq"):
            status[int(r["client_id"])] = (1, r["status"])
        return {cid: st for cid, (_, st) in status.items()}

    def filled_by_client(self) -> dict[int, Decimal]:
        out: dict[int, Decimal] = {}
        for r in self.conn.execute("SELECT client_id, size FROM fills WHERE voided=0"):
            out[int(r["client_id"])] = out.get(int(r["client_id"]), ZERO) + Decimal(r["size"])
        return out

    def open_orders(self) -> dict[int, OrderInfo]:
        """Orders the journal believes may still be live (intent sent, no terminal status, not fully filled).

        Market (IOC) orders whose result says nothing else are treated as done:
        an IOC order cannot rest.
        """
        status = self.last_status()
        filled = self.filled_by_client()
        out: dict[int, OrderInfo] = {}
        for r in self.intents():
            cid = int(r["client_id"])
            st = status.get(cid, "PENDING")
            if st in TERMINAL_STATUSES:
                continue
            size = Decimal(r["size"])
            got = filled.get(cid, ZERO)
            if got >= size:
                continue
            if r["time_in_force"] == "IOC" and st != "PENDING":
                continue
            out[cid] = intent_to_order_info(r, status=st, filled=got)
        return out

    def latest_strategy_state(self, strategy: str) -> tuple[Any, sqlite3.Row] | None:
        row = self.conn.execute(
            "SELECT * FROM strategy_state WHERE strategy=? AND voided=0 ORDER BY seq DESC LIMIT 1", (strategy,)
        ).fetchone()
        if row is None:
            return None
        return self._decode(row["state_json"], f"strategy state {row['seq']}"), row

    def count(self, table: str, *, include_voided: bool = False) -> int:
        if table not in LEDGER_TABLES and table not in ("runs", "checkpoints", "meta", "market_cursor"):
            raise ValueError(f"unknown journal table {table!r}")
        where = "" if include_voided or table not in LEDGER_TABLES else " WHERE voided=0"
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {table}{where}").fetchone()[0])

    def integrity_check(self) -> str:
        return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])

    # -- consistency ------------------------------------------------------------

    def verify(self) -> list[str]:
        """Problems found in the journal (empty list: consistent).

        Checks: SQLite integrity; every result, update, cancel and fill refers to
        a journaled intent (rows with ``source='foreign'`` — orders someone else
        placed on the account — and fills of liquidations or client id 0 excepted); fills agree with their intent's
        ticker and side and never exceed its size; no client id appears twice.
        """
        problems: list[str] = []
        ic = self.integrity_check()
        if ic != "ok":
            problems.append(f"sqlite integrity_check: {ic}")
        intents = {int(r["client_id"]): r for r in self.intents()}
        all_ids = self.all_client_ids()
        dup = self.conn.execute(
            "SELECT client_id, COUNT(*) c FROM order_intents GROUP BY client_id HAVING c > 1"
        ).fetchall()
        for r in dup:
            problems.append(f"client id {r['client_id']} journaled {r['c']} times")
        for table in ("order_results", "order_updates", "cancels"):
            where = "" if table == "order_results" else " AND source != 'foreign'"
            for r in self.conn.execute(f"SELECT seq, client_id FROM {table} WHERE voided=0{where}"):
                cid = int(r["client_id"])
                if cid not in all_ids:
                    problems.append(f"{table} seq {r['seq']}: client id {cid} has no intent")
                elif cid not in intents:
                    problems.append(f"{table} seq {r['seq']}: client id {cid} refers to a voided intent")
        filled: dict[int, Decimal] = {}
        for f in self.fills():
            cid = int(f["client_id"])
            if cid not in intents:
                if cid == 0 or f["liquidation"]:
                    continue
                problems.append(f"fills seq {f['seq']}: client id {cid} has no live intent")
                continue
            it = intents[cid]
            if f["ticker"] != it["ticker"]:
                problems.append(f"fills seq {f['seq']}: ticker {f['ticker']} != intent's {it['ticker']}")
            if f["side"] != it["side"]:
                problems.append(f"fills seq {f['seq']}: side {f['side']} != intent's {it['side']}")
            filled[cid] = filled.get(cid, ZERO) + Decimal(f["size"])
        for cid, total in filled.items():
            size = Decimal(intents[cid]["size"])
            if total > size:
                problems.append(f"client id {cid}: filled {total} > ordered {size}")
        return problems


def _same_fill(row: sqlite3.Row, fill: Fill) -> bool:
    """True when a journaled fill row and ``fill`` are the same fill (order, market, side, price, size).

    Time and fee are not compared: a venue may report one fill with a different timestamp
    (block time vs indexer time) or fee precision on its REST and streaming paths."""
    return (
        int(row["client_id"]) == int(fill.client_id)
        and row["ticker"] == fill.ticker
        and row["side"] == enum_value(fill.side)
        and Decimal(row["price"]) == Decimal(fill.price)
        and Decimal(row["size"]) == Decimal(fill.size)
    )


def intent_to_order_info(row: sqlite3.Row, *, status: str = "PENDING", filled: Decimal = ZERO) -> OrderInfo:
    """The :class:`OrderInfo` a journaled intent describes."""
    st = OrderStatus(status) if status in OrderStatus.__members__ else OrderStatus.PENDING
    return OrderInfo(
        client_id=int(row["client_id"]),
        ticker=row["ticker"],
        side=Side(row["side"]),
        size=Decimal(row["size"]),
        price=parse_dec(row["price"]),
        status=st,
        order_type=OrderType(row["order_type"]),
        filled_size=filled,
        reduce_only=bool(row["reduce_only"]),
        post_only=bool(row["post_only"]),
        time_in_force=TimeInForce(row["time_in_force"]),
        tag=row["tag"],
        created_ns=int(row["ts_ns"]),
        venue=row["venue"],
    )


def intent_to_request(row: sqlite3.Row) -> OrderRequest:
    """The :class:`OrderRequest` a journaled intent describes (exact round trip)."""
    return OrderRequest(
        client_id=int(row["client_id"]),
        ticker=row["ticker"],
        side=Side(row["side"]),
        size=Decimal(row["size"]),
        order_type=OrderType(row["order_type"]),
        price=parse_dec(row["price"]),
        trigger_price=parse_dec(row["trigger_price"]),
        time_in_force=TimeInForce(row["time_in_force"]),
        reduce_only=bool(row["reduce_only"]),
        post_only=bool(row["post_only"]),
        good_til_s=row["good_til_s"],
        margin_mode=MarginMode(row["margin_mode"]),
        tag=row["tag"],
        reason=row["reason"],
        venue=None if not row["venue"] else row["venue"],
    )


def row_to_fill(row: sqlite3.Row) -> Fill:
    """The :class:`Fill` a journaled fill row describes (exact round trip)."""
    return Fill(
        client_id=int(row["client_id"]),
        ticker=row["ticker"],
        side=Side(row["side"]),
        price=Decimal(row["price"]),
        size=Decimal(row["size"]),
        fee=Decimal(row["fee"]),
        liquidity=Liquidity(row["liquidity"]),
        ts_ns=int(row["ts_ns"]),
        fill_id=row["fill_id"],
        venue=row["venue"],
        tag=row["tag"],
        liquidation=bool(row["liquidation"]),
    )
