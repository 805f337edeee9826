"""Built-in plugin: collateral transfers into the journal (table ``transfers``, schema v3).

Every :class:`~perpbot.core.model.CollateralTransfer` a venue client reports (the ``dydx``
exchange moves USDC from the parent subaccount into an isolated position's child before the
order and back after the position closed, :mod:`perpbot.exchanges.dydx.isolated`) is one
row: when, the venue, kind (``TRANSFER`` / ``DEPOSIT`` / ``WITHDRAWAL``), sender and recipient
(``address/number`` or an address), ``amount`` (USD, exact ``str(Decimal)``), reason, tx hash,
``confirmed`` or ``failed`` and why. Written on the journal's writer thread, like every other
row (:mod:`perpbot.plugins.journal`); nothing is written when the journal is off.

Imports :mod:`perpbot.core.hookspecs` and :mod:`perpbot.plugins.journal` only.
"""

from __future__ import annotations

from typing import Any

from perpbot.core.hookspecs import hookimpl
from perpbot.plugins.journal import session_of
from perpbot.plugins.journal.codec import dec


def record_transfer(journal: Any, run_id: str, t: Any, *, venue: str) -> None:
    """Write one transfer row (``journal``: the :class:`~perpbot.plugins.journal.store.Journal`;
    ``t``: a :class:`~perpbot.core.model.CollateralTransfer`)."""
    journal._exec(
        "INSERT INTO transfers(run_id, ts_ns, venue, kind, sender, recipient, amount, reason, txhash, status, error) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (run_id, int(t.ts_ns), venue, t.kind, t.sender, t.recipient, dec(t.amount), t.reason or "", t.txhash or "",
         t.status, t.error or ""),
    )


@hookimpl
def on_collateral_transfer(bot, transfer):
    """Journal a collateral transfer (see the module docstring)."""
    s = session_of(bot)
    if s is None or s.stopped:
        return
    s.post(record_transfer, transfer, venue=transfer.venue or s.primary)


def read_transfers(journal: Any, run_id: str | None = None) -> list[dict]:
    """The journal's transfer rows (oldest first; of ``run_id`` when given), as dicts."""
    sql = "SELECT * FROM transfers WHERE voided = 0" + (" AND run_id = ?" if run_id else "") + " ORDER BY seq"
    cur = journal.conn.execute(sql, (run_id,) if run_id else ())
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]
