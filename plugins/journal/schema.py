"""The journal's SQLite schema and its forward migrations.

The schema is versioned: :data:`MIGRATIONS` maps each version to the SQL steps
that bring a journal from the previous version to it, and
:func:`migrate` applies the missing steps in one transaction per version
(``meta.schema_version`` is updated inside the same transaction, so a crash
mid-migration leaves the journal at the previous version, never half-way).
Migrations only go forward; a journal written by a newer perpbot (a version
above :data:`SCHEMA_VERSION`) is refused with a clear message.

Conventions of every table:

- ``seq`` (INTEGER PRIMARY KEY AUTOINCREMENT): order of writing within the table;
- ``run_id``: the bot run that wrote the row (table ``runs``);
- ``ts_ns``: the bot clock's time (ns since the epoch; the data's time in a
  replay), ``wall_ns``: the machine's wall clock when written;
- money, prices, sizes and rates are TEXT holding ``str(Decimal)`` exactly
  (never REAL: a journal round-trips every figure to the last digit);
- enums are stored by value (``"BUY"``, ``"MAKER"``, ``"CANCELED"``);
- ``voided`` (version 2): 1 for rows a resumed paper run superseded (written by
  a run that was killed after its last checkpoint; the simulator was rewound to
  that checkpoint, so these rows did not happen in the resumed timeline). They
  are kept for forensics, their client ids stay reserved, and reports and
  reconciliation ignore them.

Version history:

1. the ledger: meta, runs, order intents/results/updates, fills, cancels,
   position snapshots, funding payments, liquidations, equity snapshots, risk
   actions, strategy state.
2. resumable runs: checkpoints (event counts, last event time, per-table
   high-water marks and the state needed to resume a simulator), the market
   events cursor, mark prices, equity-snapshot PnL columns, ``voided`` flags,
   the resume columns of ``runs``, the cancel result's error, and fill
   de-duplication by venue fill id.
3. collateral transfers (``transfers``: USDC a venue client moved between subaccounts
   or the wallet, e.g. dYdX isolated positions' child subaccounts; written by
   :mod:`perpbot.plugins.journal.transfers`).
"""

from __future__ import annotations

import sqlite3
import time

from perpbot.core.errors import DataError

#: the version this code writes
SCHEMA_VERSION = 3

#: ledger tables that carry a ``voided`` flag (and a ``run_id``)
LEDGER_TABLES = (
    "order_intents",
    "order_results",
    "order_updates",
    "fills",
    "cancels",
    "positions",
    "funding_payments",
    "liquidations",
    "equity_snapshots",
    "marks",
    "risk_actions",
    "strategy_state",
)

_V1 = [
    """CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        started_ns INTEGER NOT NULL,
        started_wall_ns INTEGER NOT NULL,
        ended_ns INTEGER,
        ended_wall_ns INTEGER,
        strategy TEXT NOT NULL,
        venues TEXT NOT NULL,
        tickers TEXT NOT NULL,
        config_json TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'running',
        stop_reason TEXT,
        summary_json TEXT,
        reconcile_summary TEXT
    )""",
    """CREATE TABLE order_intents (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        ts_ns INTEGER NOT NULL,
        wall_ns INTEGER NOT NULL,
        client_id INTEGER NOT NULL UNIQUE,
        venue TEXT NOT NULL,
        ticker TEXT NOT NULL,
        side TEXT NOT NULL,
        order_type TEXT NOT NULL,
        size TEXT NOT NULL,
        price TEXT,
        trigger_price TEXT,
        time_in_force TEXT NOT NULL,
        reduce_only INTEGER NOT NULL,
        post_only INTEGER NOT NULL,
        good_til_s INTEGER,
        margin_mode TEXT NOT NULL,
        tag TEXT NOT NULL DEFAULT '',
        reason TEXT NOT NULL DEFAULT '',
        strategy TEXT NOT NULL DEFAULT ''
    )""",
    """CREATE TABLE order_results (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        ts_ns INTEGER NOT NULL,
        wall_ns INTEGER NOT NULL,
        client_id INTEGER NOT NULL,
        venue TEXT NOT NULL,
        ticker TEXT NOT NULL,
        success INTEGER NOT NULL,
        status TEXT NOT NULL,
        filled_size TEXT NOT NULL,
        avg_price TEXT,
        error TEXT NOT NULL DEFAULT '',
        exchange_order_id TEXT NOT NULL DEFAULT ''
    )""",
    """CREATE TABLE order_updates (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        ts_ns INTEGER NOT NULL,
        wall_ns INTEGER NOT NULL,
        client_id INTEGER NOT NULL,
        venue TEXT NOT NULL,
        ticker TEXT NOT NULL,
        status TEXT NOT NULL,
        filled_size TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        tag TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL DEFAULT 'exchange'
    )""",
    """CREATE TABLE fills (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        ts_ns INTEGER NOT NULL,
        wall_ns INTEGER NOT NULL,
        client_id INTEGER NOT NULL,
        venue TEXT NOT NULL,
        ticker TEXT NOT NULL,
        side TEXT NOT NULL,
        price TEXT NOT NULL,
        size TEXT NOT NULL,
        fee TEXT NOT NULL,
        liquidity TEXT NOT NULL,
        fill_id TEXT NOT NULL DEFAULT '',
        tag TEXT NOT NULL DEFAULT '',
        liquidation INTEGER NOT NULL DEFAULT 0,
        source TEXT NOT NULL DEFAULT 'exchange'
    )""",
    """CREATE TABLE cancels (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        ts_ns INTEGER NOT NULL,
        wall_ns INTEGER NOT NULL,
        client_id INTEGER NOT NULL,
        venue TEXT NOT NULL,
        ticker TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL DEFAULT 'exchange'
    )""",
    """CREATE TABLE positions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        ts_ns INTEGER NOT NULL,
        venue TEXT NOT NULL,
        ticker TEXT NOT NULL,
        size TEXT NOT NULL,
        entry_price TEXT NOT NULL,
        realized_pnl TEXT NOT NULL,
        fees TEXT NOT NULL,
        funding TEXT NOT NULL,
        mark TEXT,
        reason TEXT NOT NULL DEFAULT ''
    )""",
    """CREATE TABLE funding_payments (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        ts_ns INTEGER NOT NULL,
        venue TEXT NOT NULL,
        ticker TEXT NOT NULL,
        size TEXT NOT NULL,
        oracle_price TEXT NOT NULL,
        rate_1h TEXT NOT NULL,
        amount TEXT NOT NULL
    )""",
    """CREATE TABLE liquidations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        ts_ns INTEGER NOT NULL,
        venue TEXT NOT NULL,
        ticker TEXT NOT NULL,
        size TEXT NOT NULL,
        price TEXT NOT NULL,
        fee TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT ''
    )""",
    """CREATE TABLE equity_snapshots (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        ts_ns INTEGER NOT NULL,
        venue TEXT NOT NULL,
        collateral TEXT NOT NULL,
        equity TEXT NOT NULL,
        free_collateral TEXT NOT NULL,
        initial_margin TEXT NOT NULL,
        maintenance_margin TEXT NOT NULL
    )""",
    """CREATE TABLE risk_actions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        ts_ns INTEGER NOT NULL,
        policy TEXT NOT NULL,
        action TEXT NOT NULL,
        reason TEXT NOT NULL,
        ticker TEXT NOT NULL DEFAULT '',
        size TEXT
    )""",
    """CREATE TABLE strategy_state (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        ts_ns INTEGER NOT NULL,
        strategy TEXT NOT NULL,
        reason TEXT NOT NULL,
        state_json TEXT NOT NULL
    )""",
    "CREATE INDEX order_results_client ON order_results(client_id)",
    "CREATE INDEX order_updates_client ON order_updates(client_id)",
    "CREATE INDEX fills_client ON fills(client_id)",
    "CREATE INDEX fills_ticker_ts ON fills(ticker, ts_ns)",
    "CREATE INDEX equity_ts ON equity_snapshots(ts_ns)",
]

_V2 = [
    *[f"ALTER TABLE {t} ADD COLUMN voided INTEGER NOT NULL DEFAULT 0" for t in LEDGER_TABLES if t != "marks"],
    """CREATE TABLE marks (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        ts_ns INTEGER NOT NULL,
        venue TEXT NOT NULL,
        ticker TEXT NOT NULL,
        price TEXT NOT NULL,
        voided INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX marks_ticker_ts ON marks(ticker, ts_ns)",
    "ALTER TABLE equity_snapshots ADD COLUMN realized_pnl TEXT",
    "ALTER TABLE equity_snapshots ADD COLUMN unrealized_pnl TEXT",
    "ALTER TABLE equity_snapshots ADD COLUMN fees TEXT",
    "ALTER TABLE equity_snapshots ADD COLUMN funding TEXT",
    "ALTER TABLE equity_snapshots ADD COLUMN gross_notional TEXT",
    "ALTER TABLE runs ADD COLUMN resumed_from TEXT",
    "ALTER TABLE runs ADD COLUMN resume_event INTEGER",
    """CREATE TABLE checkpoints (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        ts_ns INTEGER NOT NULL,
        wall_ns INTEGER NOT NULL,
        events_processed INTEGER NOT NULL,
        events_read INTEGER NOT NULL DEFAULT 0,
        last_event_ns INTEGER NOT NULL,
        client_id_high INTEGER NOT NULL DEFAULT 0,
        high_water_json TEXT NOT NULL,
        state_json TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT ''
    )""",
    """CREATE TABLE market_cursor (
        feed TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        events INTEGER NOT NULL,
        last_event_ns INTEGER NOT NULL,
        position_json TEXT NOT NULL DEFAULT '{}',
        wall_ns INTEGER NOT NULL
    )""",
    "ALTER TABLE cancels ADD COLUMN error TEXT NOT NULL DEFAULT ''",
    "CREATE UNIQUE INDEX fills_venue_fill_id ON fills(venue, fill_id) WHERE fill_id != '' AND voided = 0",
]

_V3 = [
    """CREATE TABLE transfers (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        ts_ns INTEGER NOT NULL,
        venue TEXT NOT NULL,
        kind TEXT NOT NULL,
        sender TEXT NOT NULL,
        recipient TEXT NOT NULL,
        amount TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        txhash TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        error TEXT NOT NULL DEFAULT '',
        voided INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX transfers_ts ON transfers(ts_ns)",
]

#: version -> SQL steps from the previous version
MIGRATIONS: dict[int, list[str]] = {1: _V1, 2: _V2, 3: _V3}


def schema_version(conn: sqlite3.Connection) -> int:
    """The journal's schema version (0 for an empty database)."""
    row = conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
    if row is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION, *, path: str = "journal") -> tuple[int, int]:
    """Bring ``conn`` forward to version ``target``; returns ``(from_version, to_version)``.

    Each version's steps run in one transaction together with the version
    bump, so an interrupted migration rolls back to the previous version.

    :raises DataError: when the journal is newer than this code understands.
    """
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise DataError(
            f"{path}: journal schema version {current} is newer than this perpbot supports "
            f"({SCHEMA_VERSION}); upgrade perpbot to open it"
        )
    start = current
    for version in range(current + 1, target + 1):
        steps = MIGRATIONS[version]
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql in steps:
                conn.execute(sql)
            if version == 1:
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('created_wall_ns', ?)", (str(time.time_ns()),)
                )
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (str(version),),
            )
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (f"migrated_to_{version}_wall_ns", str(time.time_ns())),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return start, target
