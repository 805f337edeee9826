"""Built-in plugin: the journal (SQLite) and restart reconciliation.

On by default (``bot.config.journal_enabled``; ``--no-journal`` turns it off).
One file per bot instance: ``bot.config.resolved_journal_path()`` (``--journal
PATH``; default ``<state_dir>/journal-<strategy>-<venue>.sqlite``).

What is written, and when (hooks of :mod:`perpbot.core.hookspecs`):

- ``on_order_submit``: the order intent, committed (and fsynced, for real
  venues; a committed WAL transaction already survives a killed process, which
  is all a simulator needs) BEFORE the bot sends the order (the hook is awaited; if the write fails, e.g. because the
  client id is already journaled, the order is not sent);
- ``on_order_result`` / ``on_order_update`` / ``on_fill`` / ``on_funding_payment``
  / ``on_liquidation`` / ``on_risk_action``: one row each (cancels, expiries and
  best-effort cancels also go to ``cancels``); after a fill, the position of
  that market;
- ``on_fill`` / ``on_decision``: the strategy's ``get_state()`` when it changed;
- ``on_equity_snapshot``, and at decisions 12 times per snapshot interval: account
  balance per venue (with PnL columns) and mark prices;
- ``on_checkpoint`` (every ``checkpoint_interval_s`` of clock time, at a batch
  boundary): a checkpoint (:mod:`perpbot.plugins.journal.state`);
- ``on_order_cancel``: the bot's cancel request and its answer;
- ``on_bot_stop``: final balance, positions, strategy state and checkpoint;
  the run row gets its end time, stop reason and summary.

``reconcile_startup`` reconciles the journal with the exchanges before any
strategy runs (:mod:`perpbot.plugins.journal.reconcile`) and returns its one-line summary.

Writes happen on a dedicated thread (:mod:`perpbot.plugins.journal.writer`): the event
loop never waits on the disk except for the intent commit, which must finish
before the order goes out.

A journal that fails after start (a write lost: damaged file, full disk...) halts
the bot (issue 9.3): the writer reports its first failure
(:meth:`JournalWriter.on_failure`), the session calls the bot's public
``bot.halt("journal unavailable: ...")`` on the event loop (the bot opens no new
risk, stops after the current batch, cancels its open orders at shutdown, and
the CLI exits with the halt code 6), and from that moment ``on_order_submit``
refuses every order, so no order goes out unrecorded. A journal that cannot be
opened (damaged, read-only, a folder, a table missing, unreadable checkpoint
state) stops the start with one line naming the file and what to do. Schema and migrations: :mod:`perpbot.plugins.journal.schema`.
Other plugins reach the journal with :func:`session_of` (e.g. the report
plugin flushes it at stop before reading it).
"""

from __future__ import annotations

import asyncio
import os
import weakref
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from loguru import logger

from perpbot.core.bot.view import RunViewProxy
from perpbot.core.config import split_ticker
from perpbot.core.errors import PerpbotError
from perpbot.core.hookspecs import hookimpl
from perpbot.plugins.journal.codec import dumps_state
from perpbot.plugins.journal.reconcile import UnknownPositionsError, flatten, reconcile
from perpbot.plugins.journal.schema import SCHEMA_VERSION
from perpbot.plugins.journal.state import take_checkpoint_state
from perpbot.plugins.journal.store import Checkpoint, DuplicateClientId, DuplicateFill, Journal, JournalUnavailable
from perpbot.plugins.journal.writer import JournalInUse, JournalWriter

__all__ = [
    "Checkpoint",
    "DuplicateClientId",
    "DuplicateFill",
    "Journal",
    "JournalInUse",
    "JournalSession",
    "JournalUnavailable",
    "JournalWriter",
    "SCHEMA_VERSION",
    "UnknownPositionsError",
    "session_of",
]

NS = 1_000_000_000

_SESSIONS: "weakref.WeakKeyDictionary[Any, JournalSession]" = weakref.WeakKeyDictionary()


class JournalSession:
    """The journal of one running bot: its writer thread and bookkeeping.

    :param bot: the :class:`perpbot.core.bot.TradingBot`.
    :param path: the journal file.
    """

    def __init__(self, bot: Any, path: Path):
        self.path = Path(path)
        self.run_id = bot.run_id
        self.primary = bot.config.primary_venue
        self.writer = JournalWriter(self.path).start()
        self._bot = weakref.ref(bot)
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        #: fills a venue reported again (same fill id, same fill): journaled once, counted here
        self.repeated_fills = 0
        self.writer.on_failure(self._writer_failed)
        self.started = False
        self.reconciled = False
        self.stopped = False
        self.last_strategy_state: str | None = None
        interval = getattr(bot.config, "checkpoint_interval_s", None) or bot.config.snapshot_interval_s
        self.checkpoint_ns = int(Decimal(str(interval)) * NS)
        #: equity and mark prices are also sampled at decisions, 12 times per snapshot interval
        #: (at most once per decision interval), so reports have a usable curve
        snap_ns = int(Decimal(str(bot.config.snapshot_interval_s)) * NS)
        self.sample_ns = max(int(Decimal(str(bot.config.decision_interval_s)) * NS), snap_ns // 12, 1)
        self.next_sample_ns = 0
        self.last_sample_ns: int | None = None
        self.checkpoints = 0
        self.cancel_requested: set[int] = set()
        #: every client id in the journal (filled at reconciliation, grown by each intent):
        #: updates of other orders are journaled with source 'foreign'
        self.known_ids: set[int] = set()
        self.resume: dict | None = None  # set by reconcile() on a paper resume
        #: the ResumeAPI reconcile_startup received: pending flattening orders are retried with it
        self.resume_api: Any = None
        self.flatten_pending: list = []
        self.reconcile_summary = ""
        #: every venue is a simulator: intents are committed (not fsynced) before sending,
        #: which survives a killed process; real venues get an fsync per intent
        self.simulated = all(ex.capabilities().simulated for ex in bot.exchanges.values())

    # -- failure -------------------------------------------------------------

    def _writer_failed(self, failure: str) -> None:
        """The writer's first failure (writer thread): halt the bot on its event loop."""
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._halt, failure)
                return
            except RuntimeError:  # the loop is closed: the run is over
                return
        self._halt(failure)

    def _halt(self, failure: str) -> None:
        bot = self._bot()
        if bot is None or self.stopped:
            return
        reason = f"journal unavailable: {failure}"
        halt = getattr(bot, "halt", None)
        if callable(halt):
            halt(reason, source="journal")
        else:  # a bot without the public halt(): orders are still refused by on_order_submit
            logger.error(f"{reason} (this bot has no halt(); new orders are refused)")

    def refuse_if_failed(self) -> None:
        """:raises JournalUnavailable: after a journal failure (no order may go out unrecorded)."""
        if self.writer.failure is not None:
            raise JournalUnavailable(f"journal unavailable: {self.writer.failure}; order not sent")

    # -- helpers ------------------------------------------------------------

    def venue_of(self, ticker: str, venue: str | None = None) -> tuple[str, str]:
        """``(venue, venue's ticker)`` of a (qualified) ticker; ``venue`` wins when given, else the primary venue."""
        v, t = split_ticker(ticker)
        return (venue or v or self.primary), t

    def on_venue(self, event):
        """``(venue, event)`` with the event's ticker unqualified (``binance:BTC-USD`` -> ``BTC-USD``)."""
        venue, t = self.venue_of(event.ticker, event.venue or None)
        return venue, (event if t == event.ticker else attrs.evolve(event, ticker=t))

    def post(self, fn, *args, **kwargs) -> None:
        """Queue ``fn(journal, run_id, *args, **kwargs)`` on the writer thread (never blocks)."""
        self.writer.post(fn, self.run_id, *args, **kwargs)

    def save_strategy_state(self, bot: Any, reason: str, *, force: bool = False) -> None:
        """Journal ``bot.strategy.get_state()`` when it changed since the last save (``force``: always).

        A ``get_state()`` that raises, or a state the codec cannot store, is logged and skipped.
        """
        try:
            state = bot.strategy.get_state()
        except Exception as exc:
            logger.error(f"strategy get_state() raised {type(exc).__name__}: {exc}")
            return
        if state is None:
            return
        try:
            text = dumps_state(state)
        except TypeError as exc:
            logger.error(f"strategy state not storable in the journal: {exc}")
            return
        if text == self.last_strategy_state and not force:
            return
        self.last_strategy_state = text
        self.writer.post(
            Journal.record_strategy_state,
            self.run_id,
            bot.strategy.name,
            ts_ns=bot.clock.now_ns(),
            reason=reason,
            state_json=text,
        )

    def checkpoint(self, bot: Any, reason: str) -> None:
        """Queue a checkpoint of ``bot`` as it is now.

        The state is encoded here, on the caller's (event loop) thread: the live
        objects it reads may change before the writer thread runs.
        """
        try:
            state_json = dumps_state(take_checkpoint_state(bot))
        except Exception as exc:
            logger.error(f"journal checkpoint skipped: {type(exc).__name__}: {exc}")
            return
        self.checkpoints += 1
        last_event_ns = bot.clock.now_ns()
        high = bot.client_id_high
        self.writer.post(
            Journal.record_checkpoint,
            self.run_id,
            ts_ns=last_event_ns,
            events_processed=bot.events_processed,
            events_read=getattr(bot, "events_read", bot.events_processed),
            last_event_ns=last_event_ns,
            client_id_high=int(high),
            state_json=state_json,
            reason=reason,
        )
        progress = None
        try:
            progress = bot.feed.progress()
        except Exception:
            pass
        self.writer.post(
            Journal.set_cursor,
            getattr(bot.feed, "name", "") or type(bot.feed).__name__,
            self.run_id,
            events=getattr(bot, "events_read", bot.events_processed),
            last_event_ns=last_event_ns,
            position={"progress": list(progress) if progress else None, "events_processed": bot.events_processed},
        )

    def snapshot_account(self, bot: Any, ts_ns: int) -> None:
        """Balance per venue (with PnL columns from the bot's portfolio) and mark prices."""
        if self.last_sample_ns == ts_ns:
            return
        self.last_sample_ns = ts_ns
        self.next_sample_ns = ts_ns + self.sample_ns
        for venue, pf in getattr(bot, "portfolios", {}).items():
            try:
                bal = bot.balance(venue)
            except Exception as exc:
                logger.error(f"journal: balance of {venue} unavailable: {exc}")
                continue
            marks = bot.venue_marks(venue)
            self.writer.post(
                Journal.record_equity,
                self.run_id,
                bal,
                ts_ns=ts_ns,
                venue=venue,
                realized_pnl=pf.realized_pnl,
                unrealized_pnl=pf.unrealized_pnl(marks),
                fees=pf.fees_paid,
                funding=pf.funding_net,
                gross_notional=pf.gross_notional(marks),
            )
            self.writer.post(Journal.record_marks, self.run_id, dict(marks), ts_ns=ts_ns, venue=venue)

    def close(self) -> None:
        """Stop the writer thread (after the queued writes) and close the file."""
        self.writer.close()


def session_of(bot: Any) -> JournalSession | None:
    """The journal session of ``bot`` (None when the journal is disabled or not started).

    :param bot: the :class:`~perpbot.core.bot.view.RunView` observers receive (the key, looked up without
        asking it for ``view``), or the :class:`~perpbot.core.bot.TradingBot` itself (its ``view`` is the key).
    """
    return _SESSIONS.get(bot if type(bot) is RunViewProxy else getattr(bot, "view", bot))


def _ensure(bot: Any) -> JournalSession | None:
    if not getattr(bot.config, "journal_enabled", True):
        return None
    s = _SESSIONS.get(bot)
    if s is None or s.stopped:
        path = bot.config.resolved_journal_path()
        s = JournalSession(bot, path)
        _SESSIONS[bot] = s
    if not s.started:
        s.started = True
        cfg = bot.config
        s.writer.post(
            lambda j: j.start_run(
                bot.run_id,
                ts_ns=bot.clock.now_ns(),
                strategy=cfg.strategy,
                venues=list(cfg.exchange),
                tickers=list(cfg.tickers),
                config={
                    "exchange": list(cfg.exchange),
                    "strategy": cfg.strategy,
                    "tickers": list(cfg.tickers),
                    "feed": cfg.feed,
                    "decision_interval_s": str(cfg.decision_interval_s),
                    "snapshot_interval_s": str(cfg.snapshot_interval_s),
                    "equity_sample_s": str(Decimal(s.sample_ns) / NS),
                    "max_events": cfg.max_events,
                    "strategy_params": {k: str(v) for k, v in cfg.strategy_params().items()},
                    "sizer": cfg.sizer,
                    "risk_policies": list(cfg.risk_policies),
                    "pid": os.getpid(),
                },
            )
        )
    return s


# ---------------------------------------------------------------------------
# lifecycle
# ---------------------------------------------------------------------------


@hookimpl
def on_bot_start(bot):
    """Open the journal (``_ensure``) and log its path; a refusal is raised again by ``reconcile_startup``."""
    try:
        s = _ensure(bot)
    except PerpbotError:
        return  # reconcile_startup (which can refuse the start) raises it again
    if s is not None:
        logger.info(f"journal: {s.path} (schema v{SCHEMA_VERSION}, run {bot.run_id})")


@hookimpl
async def reconcile_startup(bot, resume):
    """Reconcile the journal with the exchanges through ``resume`` (:func:`~perpbot.plugins.journal.reconcile.reconcile`).

    Marks runs that never recorded their end as crashed, flattens unknown positions when
    the policy says so, records the summary on the run row and returns it (one line).

    :raises PerpbotError: reconciliation refused the start (the run row says "refused").
    """
    s = _ensure(bot)
    if s is None:
        return None
    previous = await s.writer.call(lambda j: [r["run_id"] for r in j.runs() if r["run_id"] != bot.run_id])
    # runs that never recorded their end were killed
    await s.writer.call(
        lambda j: j.conn.execute(
            "UPDATE runs SET status='crashed' WHERE status='running' AND run_id != ?", (bot.run_id,)
        )
    )
    try:
        rep = await reconcile(resume, s)
    except BaseException as exc:
        reason = str(exc)  # bound now: the writer thread runs the lambda later
        await s.writer.call(
            lambda j: j.end_run(bot.run_id, ts_ns=bot.clock.now_ns(), status="refused", stop_reason=reason)
        )
        s.stopped = True
        s.close()
        raise
    s.reconciled = True
    s.resume_api = resume
    s.flatten_pending = list(rep.flatten_pending)
    if s.flatten_pending:
        s.flatten_pending = await flatten(resume, s.flatten_pending)
    summary = rep.line()
    s.reconcile_summary = summary
    resumed_from = rep.resumed_from or (previous[-1] if previous and not rep.fresh and not _simulated(bot) else None)
    await s.writer.call(
        lambda j: j.update_run(
            bot.run_id,
            reconcile_summary=summary,
            resumed_from=resumed_from,
            resume_event=rep.resume_event,
        )
    )
    s.save_strategy_state(bot, "reconciled")
    return summary


def _simulated(bot: Any) -> bool:
    return all(ex.capabilities().simulated for ex in bot.exchanges.values())


@hookimpl(tryfirst=True)
async def on_bot_stop(bot, summary):
    """Final balance, positions, strategy state and checkpoint; end the run row; flush and close."""
    s = session_of(bot)
    if s is None or s.stopped:
        return
    now = bot.clock.now_ns()
    try:
        s.snapshot_account(bot, now)
        for venue, pf in getattr(bot, "portfolios", {}).items():
            marks = bot.venue_marks(venue)
            for t, p in pf.positions.items():
                if p.size:
                    s.post(Journal.record_position, p, ts_ns=now, venue=venue, mark=marks.get(t), reason="stop")
        s.save_strategy_state(bot, "stop", force=True)
        if s.reconciled:
            s.checkpoint(bot, "stop")
        as_dict = summary.as_dict() if hasattr(summary, "as_dict") else None
        s.writer.post(
            lambda j: j.end_run(
                bot.run_id,
                ts_ns=now,
                status="halted" if getattr(bot, "halted", None) else "stopped",
                stop_reason=getattr(bot, "stop_reason", "") or "",
                summary=as_dict,
            )
        )
        await s.writer.flush()
    finally:
        s.stopped = True
        s.close()
    if s.writer.errors:
        logger.error(f"journal {s.path}: {s.writer.errors} write(s) failed; first: {s.writer.failure}; last: {s.writer.last_error}")


# ---------------------------------------------------------------------------
# orders
# ---------------------------------------------------------------------------


@hookimpl
def on_order_submit(bot, order):
    """Commit the order intent before the order is sent (fsynced for real venues): returns it to await, or None (journal off).

    :raises JournalUnavailable: after a journal failure (the order is then not sent).
    :raises DuplicateClientId: the client id is already journaled (raised when awaited).
    """
    s = session_of(bot)
    if s is None:
        s = _ensure(bot)
        if s is None:
            return None
    s.refuse_if_failed()
    venue, _ = s.venue_of(order.ticker, order.venue)
    s.known_ids.add(int(order.client_id))
    return s.writer.call(
        Journal.record_intent,
        bot.run_id,
        order,
        ts_ns=bot.clock.now_ns(),
        venue=venue,
        strategy=getattr(bot.strategy, "name", ""),
        durable=not s.simulated,
    )


@hookimpl
def on_order_result(bot, order, result):
    """Journal the exchange's answer to a placement."""
    s = session_of(bot)
    if s is None or s.stopped:
        return
    venue, _ = s.venue_of(order.ticker, order.venue)
    s.post(Journal.record_result, order, result, ts_ns=bot.clock.now_ns(), venue=venue)


@hookimpl
def on_order_update(bot, update):
    """Journal an order update (``source`` "foreign" for ids this journal never wrote)."""
    s = session_of(bot)
    if s is None or s.stopped:
        return
    venue, update = s.on_venue(update)
    requested = update.client_id in s.cancel_requested
    if update.status.is_terminal:
        s.cancel_requested.discard(update.client_id)
    source = "exchange" if update.client_id in s.known_ids else "foreign"
    s.post(Journal.record_update, update, venue=venue, cancel_row=not requested, source=source)


@hookimpl
def on_order_cancel(bot, client_id, ticker, result):
    """Journal the bot's cancel request and the answer (REFUSED when it failed)."""
    s = session_of(bot)
    if s is None or s.stopped:
        return
    venue, t = s.venue_of(ticker)
    if result.success:
        s.cancel_requested.add(int(client_id))
    s.post(
        Journal.record_cancel,
        client_id,
        t,
        ts_ns=bot.clock.now_ns(),
        venue=venue,
        status=result.status.value if result.success else "REFUSED",
        reason="canceled by the bot",
        source="bot",
        error="" if result.success else (result.error or "refused"),
    )


# ---------------------------------------------------------------------------
# account events
# ---------------------------------------------------------------------------


@hookimpl
def on_fill(bot, fill):
    """Journal a fill, the position of its market after it, and the strategy's state if it changed."""
    s = session_of(bot)
    if s is None or s.stopped:
        return
    venue, fill = s.on_venue(fill)
    s.post(_record_fill, s, fill, venue=venue)
    pf = getattr(bot, "portfolios", {}).get(venue)
    t = fill.ticker
    if pf is not None and t in pf.positions:
        mark = None
        st = bot.states.get(t if venue == s.primary else f"{venue}:{t}")
        if st is not None:
            mark = st.mark_price()
        s.post(Journal.record_position, pf.positions[t], ts_ns=fill.ts_ns, venue=venue, mark=mark, reason="fill")
    s.save_strategy_state(bot, "fill")


def _record_fill(j: Journal, run_id: str, session: JournalSession, fill, *, venue: str) -> None:
    """Journal a fill (writer thread); a fill the venue reported again is said, not dropped in silence.

    :raises DuplicateFill: its fill id is journaled for another fill (a journal failure: the bot halts).
    """
    if not j.record_fill(run_id, fill, venue=venue):
        session.repeated_fills += 1
        logger.warning(
            f"journal: fill {fill.fill_id} of {venue} (order {fill.client_id}) was reported again; journaled once"
        )


@hookimpl
def on_funding_payment(bot, payment):
    """Journal a funding payment (amount USD, + received)."""
    s = session_of(bot)
    if s is None or s.stopped:
        return
    venue, payment = s.on_venue(payment)
    s.post(Journal.record_funding, payment, venue=venue)


@hookimpl
def on_liquidation(bot, liquidation):
    """Journal a liquidation."""
    s = session_of(bot)
    if s is None or s.stopped:
        return
    venue, liquidation = s.on_venue(liquidation)
    s.post(Journal.record_liquidation, liquidation, venue=venue)


@hookimpl
def on_risk_action(bot, decision):
    """Journal a risk decision that was not an approval."""
    s = session_of(bot)
    if s is None or s.stopped:
        return
    s.post(Journal.record_risk, decision, ts_ns=bot.clock.now_ns())


@hookimpl
def on_decision(bot, strategy, result):
    """Journal the strategy's state if it changed; sample equity and marks when due."""
    s = session_of(bot)
    if s is None or s.stopped:
        return
    s.save_strategy_state(bot, "decision")
    now = bot.clock.now_ns()
    if now >= s.next_sample_ns:
        s.snapshot_account(bot, now)


@hookimpl
async def on_equity_snapshot(bot, ts_ns, balance):
    """Retry pending flattening orders (through the ResumeAPI), then journal balances and marks."""
    s = session_of(bot)
    if s is None or s.stopped:
        return
    if s.flatten_pending and s.resume_api is not None:
        s.flatten_pending = await flatten(s.resume_api, s.flatten_pending)
    s.snapshot_account(bot, ts_ns)


@hookimpl
def on_checkpoint(bot):
    """Queue a checkpoint (only after reconciliation, so a resume never loses what it restored)."""
    s = session_of(bot)
    if s is None or s.stopped or not s.reconciled:
        return
    s.checkpoint(bot, "periodic")
