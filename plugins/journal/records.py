"""The ledger's writes: order intents, results, updates, cancels, fills, funding,
liquidations, positions, equity, marks, risk actions and strategy states.

:class:`LedgerRecords` is the part of :class:`~perpbot.plugins.journal.store.Journal` that
appends rows to the ledger tables (:data:`~perpbot.plugins.journal.schema.LEDGER_TABLES`):
one insert per call, inside the open transaction or its own (``_exec``). Money, prices and
sizes are stored as exact decimal text (:func:`~perpbot.plugins.journal.codec.dec`).

Imports :mod:`perpbot.core.model` and the journal's :mod:`.codec`, :mod:`.connection`,
:mod:`.errors`, :mod:`.rows`.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from typing import Any, Mapping

from perpbot.core.model import Balance, Fill, FundingPayment, Liquidation, OrderRequest, OrderResult, OrderUpdate, Position
from perpbot.plugins.journal.codec import dec, dumps_state, enum_value, opt_dec
from perpbot.plugins.journal.connection import JournalFile, now_wall
from perpbot.plugins.journal.errors import DuplicateClientId, DuplicateFill
from perpbot.plugins.journal.rows import CANCEL_STATUSES, same_fill


class LedgerRecords(JournalFile):
    """Writes of the ledger tables (a part of :class:`~perpbot.plugins.journal.store.Journal`).

    Every ``record_*`` takes the ``run_id`` the row belongs to and the ``venue`` it happened
    on; times are ns (``ts_ns``: the bot's clock, ``wall_ns``: written here).
    """

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
                    now_wall(),
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
        """Write the venue's answer to placing ``order`` (success, status, filled size, average
        price, error text, venue order id)."""
        self._exec(
            "INSERT INTO order_results(run_id, ts_ns, wall_ns, client_id, venue, ticker, success, status, "
            "filled_size, avg_price, error, exchange_order_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                run_id,
                int(ts_ns),
                now_wall(),
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
                now_wall(),
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
            (run_id, int(ts_ns), now_wall(), int(client_id), venue, ticker, status, reason or "", source, error or ""),
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
                    now_wall(),
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
            if row is not None and same_fill(row, fill):
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
        """Write a position snapshot (base units, USD; ``mark``: the price it was valued at;
        ``reason``: why, e.g. ``"fill"`` or ``"stop"``)."""
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
        """Write a funding payment (``amount`` USD, positive = received; ``rate_1h`` per hour)."""
        self._exec(
            "INSERT INTO funding_payments(run_id, ts_ns, venue, ticker, size, oracle_price, rate_1h, amount) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (run_id, int(p.ts_ns), venue, p.ticker, dec(p.size), dec(p.oracle_price), dec(p.rate_1h), dec(p.amount)),
        )

    def record_liquidation(self, run_id: str, liq: Liquidation, *, venue: str) -> None:
        """Write a liquidation (size base units, price and fee USD, the venue's reason)."""
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
        """Write an equity snapshot of one venue's account (USD; the optional PnL, fee,
        funding and gross-notional figures are NULL when None)."""
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
        """Write one ``marks`` row per ticker with a price (USD); None prices are skipped."""
        for ticker, price in marks.items():
            if price is None:
                continue
            self._exec(
                "INSERT INTO marks(run_id, ts_ns, venue, ticker, price) VALUES (?,?,?,?,?)",
                (run_id, int(ts_ns), venue, ticker, dec(price)),
            )

    def record_risk(self, run_id: str, decision: Any, *, ts_ns: int) -> None:
        """Write a risk action (a :class:`~perpbot.core.policies.RiskDecision`: policy, action,
        reason, ticker, size); its own ``ts_ns`` wins over ``ts_ns`` when set."""
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
