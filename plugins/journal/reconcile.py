"""Restart reconciliation: the journal is what we intended, the exchange is what happened.

:func:`reconcile` runs inside the ``reconcile_startup`` hook, after the bot
connected its exchanges (and loaded their balances, positions and open orders)
and before any strategy decision. In order:

Every change to the bot goes through the :class:`~perpbot.core.bot.resume.ResumeAPI`
(``resume``) the hook receives; the bot itself is only read, through ``resume.view``
(:class:`~perpbot.core.bot.view.RunView`).

1. **Client ids**: every id the journal ever holds (voided rows included) is
   reserved (``resume.reserve_client_ids``); an id is never reused, so an order is never
   sent twice under one id.
2. **Paper resume** (every exchange is a simulator, the journal has a
   checkpoint with their ``export_state()``, and ``bot.config.fresh`` is not
   set): rows written after that checkpoint by the killed run are voided, the
   simulators, the bot's portfolios, open-order table and counters are put back
   as they were at the checkpoint (``resume.restore_exchange``, ``restore_portfolio``,
   ``restore_open_orders``, ``import_state``; a venue whose portfolio is the exchange's own
   ledger, ``resume.books_itself``, gets its account back with the exchange's state only),
   and ``resume.resume_from_event``
   makes the bot re-apply the events it had read to
   the market state only (books, signals; no simulator, no decisions) before
   the run continues.
3. **Orders**: each venue's open orders are compared with the orders the
   journal believes live. Ours (same client id) are adopted
   (``resume.adopt_order``) with their journaled tag; ours that vanished are
   journaled as CANCELED (reason "vanished while the bot was down") unless the
   fills show them filled; orders with ids the journal never wrote are foreign
   (placed by someone else): left alone and removed from the bot's table.
4. **Fills while down** (live venues): ``get_fills_since(last checkpoint)``;
   fills not yet journaled are booked with ``resume.book_fills_while_down`` (the
   bot's own booking path, on top of the positions the journal explains), journaled with ``source='reconcile'`` and shown to the strategy.
5. **Positions**: the journal's fills (replayed through a Portfolio) say what
   we opened; an exchange position they do not explain is *unknown* and the
   ``unknown_positions`` policy applies: ``adopt`` (keep it), ``flatten``
   (reduce-only market order for the unexplained size, before the first
   decision, sent with ``resume.flatten``) or ``refuse`` (raise :class:`~perpbot.core.errors.PerpbotError` listing them).
6. **Strategy state**: ``resume.restore_strategy()`` with the checkpoint's state
   (paper resume) or the latest journaled state (live); then the strategy is
   told about vanished orders and fills booked while down (``resume.show_strategy``).

The result is a one-line summary, e.g.
``"adopted 3 orders, 1 vanished, booked 2 fills, 0 foreign; positions: adopt (none unknown); strategy state restored"``.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

import attrs
from loguru import logger

from perpbot.core.config import split_ticker
from perpbot.core.errors import ConfigError, PerpbotError
from perpbot.core.model import ZERO, OrderParams, OrderStatus, OrderType, OrderUpdate, Side, TimeInForce
from perpbot.core.portfolio import Portfolio
from perpbot.plugins.journal.state import restore_bot_runtime, restore_portfolio
from perpbot.plugins.journal.store import Journal, row_to_fill

POLICIES = ("adopt", "flatten", "refuse")


class UnknownPositionsError(PerpbotError):
    """Positions on the exchange that this bot's journal does not explain, with ``unknown_positions = refuse``."""

    exit_code = 7

    def __init__(self, message: str, positions: dict):
        super().__init__(message)
        self.positions = positions


def unknown_positions_policy(bot: Any) -> str:
    """``bot.config.unknown_positions``, else env ``PERPBOT_UNKNOWN_POSITIONS``, else ``refuse``.

    :param bot: the run's :class:`~perpbot.core.bot.view.RunView`.
    :returns: one of :data:`POLICIES`.
    :raises ConfigError: any other value (naming the accepted ones).
    """
    value = getattr(bot.config, "unknown_positions", None) or os.environ.get("PERPBOT_UNKNOWN_POSITIONS") or "refuse"
    value = str(value).strip().lower()
    if value not in POLICIES:
        raise ConfigError(f"unknown_positions: expected one of {', '.join(POLICIES)}, got {value!r}")
    return value


@attrs.define
class ReconcileReport:
    """What reconciliation did (also the source of the one-line summary).

    Client ids are ints; tickers qualified; sizes signed base units. ``unknown``: positions
    the journal does not explain (ticker -> unexplained size); ``gone``: journal positions
    the exchange no longer has; ``flatten_pending``: ``(ticker, size)`` still to flatten.
    """

    resumed_from: str | None = None
    resume_event: int | None = None
    voided: int = 0
    adopted: list = attrs.Factory(list)
    vanished: list = attrs.Factory(list)
    filled_while_down: list = attrs.Factory(list)
    foreign: list = attrs.Factory(list)
    booked_fills: list = attrs.Factory(list)
    unknown: dict = attrs.Factory(dict)  # qualified ticker -> unexplained signed size
    gone: dict = attrs.Factory(dict)  # journal had a position the exchange does not
    policy: str = "refuse"
    flatten_pending: list = attrs.Factory(list)
    strategy_restored: bool = False
    reserved_ids: int = 0
    fresh: bool = False
    new_journal: bool = False
    finished_from: str = ""

    def line(self) -> str:
        """The one-line summary (``"reserved 3 client ids; adopted 1 orders, ...; positions: adopt (none unknown); ..."``)."""
        parts = []
        if self.new_journal:
            parts.append("new journal")
        if self.resumed_from:
            parts.append(
                f"resumed paper run {self.resumed_from} from its checkpoint at feed event {self.resume_event}"
                + (f" ({self.voided} later rows voided)" if self.voided else "")
            )
        elif self.finished_from:
            parts.append(f"previous replay {self.finished_from} ran to the end of its data: new run (--fresh implied)")
        elif self.fresh:
            parts.append("fresh start (journaled state ignored)")
        parts.append(f"reserved {self.reserved_ids} client ids")
        parts.append(
            f"adopted {len(self.adopted)} orders, {len(self.vanished)} vanished"
            + (f" ({len(self.filled_while_down)} of them filled)" if self.filled_while_down else "")
            + f", booked {len(self.booked_fills)} fills, {len(self.foreign)} foreign orders left alone"
        )
        if self.unknown:
            desc = ", ".join(f"{t} {_signed(s)}" for t, s in sorted(self.unknown.items()))
            parts.append(f"positions: {self.policy} ({desc})")
        else:
            parts.append(f"positions: {self.policy} (none unknown)")
        if self.gone:
            parts.append("journal positions absent on the exchange: " + ", ".join(sorted(self.gone)))
        parts.append("strategy state restored" if self.strategy_restored else "no strategy state to restore")
        return "; ".join(parts)


def _signed(d: Decimal) -> str:
    """``+0.5`` / ``-1.25``: a signed size without trailing zeros."""
    return f"{d.normalize():+f}"


def journal_positions(j: Journal) -> dict[tuple[str, str], Decimal]:
    """(venue, ticker) -> signed size the journal's own fills add up to (voided rows excluded)."""
    books: dict[str, Portfolio] = {}
    for row in j.fills():
        f = row_to_fill(row)
        books.setdefault(row["venue"], Portfolio(ZERO)).apply_fill(f)
    out = {}
    for venue, pf in books.items():
        for t, p in pf.positions.items():
            out[(venue, t)] = p.size
    return out


async def _refuse_changed_strategy(bot: Any, session: Any, cp: Any) -> None:
    """A checkpoint resumes only under the strategy and parameters it was taken with.

    The checkpoint's run row (``runs.config_json``, written by ``_ensure`` in
    :mod:`perpbot.plugins.journal`) holds the strategy name and its parameters as given
    (values as text). This run's are put in the same form, then both are parsed through
    the strategy's ``Params``, so ``0.10`` and ``0.1``, or a default given explicitly,
    compare equal; when either side does not parse, the texts are compared.

    :raises ConfigError: naming the journal, the first differing parameter with both
        values, and ``--fresh``.
    """
    import json

    from perpbot.core.params import params_to_dict, parse_params

    row = await session.writer.call(lambda j: next((r for r in j.runs() if r["run_id"] == cp.run_id), None))
    if row is None:
        return
    try:
        old_cfg = json.loads(row["config_json"] or "{}")
    except ValueError as exc:
        raise ConfigError(
            f"journal {getattr(session, 'path', '')}: the configuration of run {cp.run_id} is unreadable ({exc}), "
            "so resuming it cannot be checked; run with --fresh to start over"
        ) from None
    where = f"journal {getattr(session, 'path', '')}: its checkpoint (run {cp.run_id})"
    old_name = old_cfg.get("strategy") or row["strategy"]
    name = bot.config.strategy
    if old_name != name:
        raise ConfigError(
            f"{where} is of strategy {old_name!r}, this run's is {name!r}; "
            "run with --fresh to start over (or use another --journal)"
        )
    old_raw = {k: str(v) for k, v in (old_cfg.get("strategy_params") or {}).items()}
    new_raw = {k: str(v) for k, v in bot.config.strategy_params().items()}
    params_cls = getattr(type(bot.strategy), "Params", None)
    try:
        old = params_to_dict(parse_params(params_cls, old_raw, f"strategy {name}"))
        new = params_to_dict(parse_params(params_cls, new_raw, f"strategy {name}"))
    except (ConfigError, TypeError):
        old, new = old_raw, new_raw
    changed = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if changed:
        k = changed[0]
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        raise ConfigError(
            f"{where} was taken with strategy {name} parameter {k}={old.get(k, '(unset)')}, "
            f"this run has {k}={new.get(k, '(unset)')}{more}; resume with the same parameters, "
            "or run with --fresh to start over"
        )


async def reconcile(resume: Any, session: Any) -> ReconcileReport:
    """Reconcile the bot with its journal (``session.writer``) and its exchanges; see the module docstring.

    :param resume: the :class:`~perpbot.core.bot.resume.ResumeAPI` of ``reconcile_startup``
        (the bot is read through ``resume.view``, changed only through ``resume``).
    :param session: the :class:`~perpbot.plugins.journal.JournalSession`.
    :returns: the :class:`ReconcileReport`.
    :raises UnknownPositionsError: unexplained positions with ``unknown_positions = refuse``.
    :raises ConfigError: a checkpoint of another strategy or other parameters (naming ``--fresh``).
    :raises PerpbotError: an exchange cannot list open orders or fills, or the strategy
        cannot restore its state.
    """
    bot = resume.view
    w = session.writer
    rep = ReconcileReport(policy=unknown_positions_policy(bot), fresh=bool(getattr(bot.config, "fresh", False)))
    primary = bot.config.primary_venue

    # 1. client ids -----------------------------------------------------------
    ids = await w.call(lambda j: j.all_client_ids())
    resume.reserve_client_ids(ids)
    session.known_ids.update(ids)
    rep.reserved_ids = len(ids)
    previous_runs = await w.call(lambda j: [r["run_id"] for r in j.runs() if r["run_id"] != bot.run_id])
    rep.new_journal = not previous_runs
    # the state blob is decoded only to resume from it: a fresh run (--fresh, or after a replay
    # that ran to the end of its data) starts even when that blob is unreadable
    cp = await w.call(lambda j: j.last_checkpoint(with_state=False))

    # 2. paper resume -----------------------------------------------------------
    exchanges = dict(bot.exchanges)
    simulated = all(ex.capabilities().simulated for ex in exchanges.values())
    resumed_state = None
    if simulated and cp is not None and not rep.fresh:
        # a replay that ran to the end of its data has nothing left to resume: the same
        # command again is a new run (its rows stay in the journal; its client ids stay reserved)
        stop = await w.call(lambda j: {r["run_id"]: r["stop_reason"] for r in j.runs()}.get(cp.run_id))
        if stop == "end of data":
            rep.fresh = True
            rep.finished_from = cp.run_id
    if (
        simulated
        and cp is not None
        and not rep.fresh
        and cp.run_id != bot.run_id
        and all(callable(getattr(ex, "import_state", None)) for ex in exchanges.values())
    ):
        cp = await w.call(lambda j: j.last_checkpoint())  # DataError naming --fresh when unreadable
    if (
        simulated
        and cp is not None
        and not rep.fresh
        and cp.run_id != bot.run_id
        and all(callable(getattr(ex, "import_state", None)) for ex in exchanges.values())
        and set(exchanges) <= set(cp.state.get("exchanges", {}))
    ):
        await _refuse_changed_strategy(bot, session, cp)
        counts = await w.call(lambda j: j.void_after(cp, run_ids=previous_runs))
        rep.voided = sum(counts.values())
        st = cp.state
        for venue in exchanges:
            resume.restore_exchange(venue, st["exchanges"][venue])
        for venue, pstate in st.get("portfolios", {}).items():
            if resume.books_itself(venue):
                continue  # the exchange's own ledger: restore_exchange above put it back
            resume.restore_portfolio(venue, lambda pf, pstate=pstate: restore_portfolio(pf, pstate))
        resume.restore_open_orders(st.get("open_orders", {}))
        restore_bot_runtime(resume, st.get("bot", {}))
        # the bot re-applies the first events_read feed events to market state only
        # (books, signals; not the simulators, no decisions) before the run continues
        resume.resume_from_event(cp.events_read)
        session.resume = {"events_read": cp.events_read, "last_event_ns": cp.last_event_ns}
        rep.resumed_from = cp.run_id
        rep.resume_event = cp.events_read
        resumed_state = st

    # 3. orders -----------------------------------------------------------------
    journal_open = await w.call(lambda j: j.open_orders())
    known_ids = await w.call(lambda j: {int(r["client_id"]): r["tag"] for r in j.intents()})
    live_ids: set[int] = set()
    for venue, ex in exchanges.items():
        try:
            orders = await ex.get_open_orders()
        except Exception as exc:
            raise PerpbotError(f"reconciliation: cannot list open orders on {venue}: {exc}") from exc
        for info in orders:
            cid = int(info.client_id)
            live_ids.add(cid)
            qualified = bot.qualify(venue, split_ticker(info.ticker)[1])
            if cid in known_ids:
                adopted = attrs.evolve(info, ticker=qualified, tag=info.tag or known_ids[cid], venue=info.venue or venue)
                resume.adopt_order(adopted)
                rep.adopted.append(cid)
            else:
                resume.forget_order(cid)
                rep.foreign.append((venue, cid, qualified))
                logger.warning(f"order {cid} on {venue} {qualified} was not placed by this bot (not in its journal): left alone")

    # 4. fills while down ---------------------------------------------------------
    booked: list = []
    if resumed_state is None:
        since = cp.last_event_ns if cp is not None else await w.call(
            lambda j: int(j.conn.execute("SELECT COALESCE(MAX(ts_ns), 0) FROM fills WHERE voided=0").fetchone()[0])
        )
        for venue, ex in exchanges.items():
            if ex.capabilities().simulated:
                continue
            try:
                fills = await ex.get_fills_since(since)
            except Exception as exc:
                raise PerpbotError(f"reconciliation: cannot fetch fills since {since} on {venue}: {exc}") from exc
            for f in fills:
                if await w.call(lambda j, f=f, v=venue: j.has_fill(f, venue=v)):
                    continue
                if int(f.client_id) not in known_ids and not f.liquidation:
                    continue  # not ours
                booked.append((venue, f))

    # positions the journal explains, before fills while down are booked (live path)
    jpos = await w.call(journal_positions)
    if resumed_state is None and booked:
        # the bot loaded the exchange's positions, which already include the fills made
        # while it was down: rebase each venue on the journal's positions, book the fills
        # through the bot's own path, then keep the exchange's collateral (its truth).
        for venue in {v for v, _ in booked}:
            rebased = Portfolio(ZERO)
            for row in await w.call(lambda j: j.fills()):
                if row["venue"] == venue:
                    rebased.apply_fill(row_to_fill(row))
            resume.book_fills_while_down(venue, rebased.positions, [f for v, f in booked if v == venue])
    for venue, f in booked:
        await w.call(lambda j, f=f, v=venue: j.record_fill(bot.run_id, f, venue=v, source="reconcile"))
        jpos[(venue, f.ticker)] = jpos.get((venue, f.ticker), ZERO) + (f.size if f.side is Side.BUY else -f.size)
        rep.booked_fills.append(f.client_id)

    # vanished orders (after fills are known, to tell filled from canceled)
    filled = await w.call(lambda j: j.filled_by_client())
    for cid, info in journal_open.items():
        if cid in live_ids:
            continue
        venue = info.venue or primary
        got = filled.get(cid, ZERO)
        if got >= info.size:
            status, reason = OrderStatus.FILLED, "filled while the bot was down"
            rep.filled_while_down.append(cid)
        else:
            status, reason = OrderStatus.CANCELED, "vanished while the bot was down (canceled, expired or unknown)"
        upd = OrderUpdate(
            client_id=cid,
            ticker=split_ticker(info.ticker)[1],
            status=status,
            ts_ns=bot.clock.now_ns(),
            filled_size=got,
            reason=reason,
            venue=venue,
            tag=info.tag,
        )
        await w.call(lambda j, u=upd, v=venue: j.record_update(bot.run_id, u, venue=v, source="reconcile"))
        resume.forget_order(cid)
        rep.vanished.append((cid, upd))

    # 5. positions ----------------------------------------------------------------
    if resumed_state is None:
        for venue, ex in exchanges.items():
            ex_pos = await ex.get_positions()
            tickers = set(ex_pos) | {t for (v, t) in jpos if v == venue}
            for t in sorted(tickers):
                have = ex_pos[t].size if t in ex_pos else ZERO
                ours = jpos.get((venue, t), ZERO)
                q = bot.qualify(venue, t)
                if have == ours:
                    continue
                if have == 0:
                    rep.gone[q] = ours
                    resume.drop_position(venue, t)
                    continue
                rep.unknown[q] = have - ours
        if rep.unknown:
            if rep.policy == "refuse":
                desc = "; ".join(
                    f"{t}: exchange {_size(bot, t).normalize():f} vs journal {(_size(bot, t) - d).normalize():f}"
                    f" (unexplained {_signed(d)})"
                    for t, d in sorted(rep.unknown.items())
                )
                raise UnknownPositionsError(
                    f"refusing to start: positions this bot did not open: {desc}. "
                    "Set unknown_positions = \"adopt\" (keep them) or \"flatten\" (close them) to proceed",
                    dict(rep.unknown),
                )
            if rep.policy == "flatten":
                for q, diff in sorted(rep.unknown.items()):
                    rep.flatten_pending.append((q, diff))
        for venue, pf in bot.portfolios.items():
            for t, p in pf.positions.items():
                if p.size:
                    reason = "adopted" if bot.qualify(venue, t) in rep.unknown else "reconciled"
                    await w.call(
                        lambda j, p=p, v=venue, r=reason: j.record_position(
                            bot.run_id, p, ts_ns=bot.clock.now_ns(), venue=v, reason=r
                        )
                    )

    # 6. strategy state -------------------------------------------------------------
    if not rep.fresh:
        state = None
        if resumed_state is not None:
            state = (resumed_state.get("strategy") or {}).get("state")
        else:
            latest = await w.call(lambda j: j.latest_strategy_state(bot.strategy.name))
            if latest is not None:
                state = latest[0]
        if state is not None:
            resume.restore_strategy(state)  # PerpbotError naming --fresh when the strategy raises
            rep.strategy_restored = True
    for _cid, upd in rep.vanished:
        resume.show_strategy("on_order_update", upd)
    for venue, f in booked:
        resume.show_strategy("on_fill", f, venue)
    return rep


def _size(bot: Any, qualified: str) -> Decimal:
    """Signed size (base units) of the bot's position in ``qualified``, zero when flat."""
    p = bot.positions().get(qualified)
    return p.size if p is not None else ZERO


async def flatten(resume: Any, items: list) -> list:
    """Send reduce-only IOC market orders for the unexplained sizes (``resume.flatten``).

    :param resume: the :class:`~perpbot.core.bot.resume.ResumeAPI`.
    :param items: ``[(qualified ticker, signed unexplained size in base units), ...]``.
    :returns: the items still pending (the order was dropped, e.g. no price yet); a
        rejected order is logged and not retried.
    """
    left = []
    for qualified, diff in items:
        side = Side.SELL if diff > 0 else Side.BUY
        intent = OrderParams(
            ticker=qualified,
            side=side,
            order_type=OrderType.MARKET,
            size=abs(diff),
            time_in_force=TimeInForce.IOC,
            reduce_only=True,
            tag="flatten-unknown",
            reason="unknown position at startup (unknown_positions = flatten)",
        )
        result = await resume.flatten(intent)
        if result is None:
            left.append((qualified, diff))
        elif not result.success:
            logger.error(f"flattening unknown position {qualified} {diff:+} failed: {result.error}")
    return left
