"""The narrow control surface of a running bot: pause new entries, resume, close all, halt.

Observer plugins receive the read-only :class:`~perpbot.core.bot.view.RunView`; a plugin
that must steer the bot (the REST API, ``perpbot.plugins.api``) asks for the run's
:class:`BotControl` with :func:`control_of` and nothing more: it cannot place orders, change
parameters or read private state through it.

Every request is queued and carried out by the bot's own event loop *between two batches*
(:meth:`BotControl.apply_pending`, called by :class:`~perpbot.core.bot.loop.EventLoop`), so a
control action never runs in the middle of a decision cycle or an order placement. Each
action is recorded as a :class:`~perpbot.core.policies.RiskDecision` whose ``policy`` is the
requester (e.g. ``"api 127.0.0.1"``) and goes through the bot's risk-escalation path
(:meth:`perpbot.core.bot.orders.OrderRouter.handle_risk`): logged, kept in ``bot.risk_log``,
announced to ``on_risk_action`` (so the journal writes it to ``risk_actions`` with its source)
and carried out:

- ``PAUSE_ENTRIES``: ``bot.entries_paused`` holds the reason; from then on the order path
  drops every order that would open or add to a position. Exits still go out: reduce-only
  orders, closes, and orders on the opposite side of a position no larger than it
  (:meth:`perpbot.core.bot.orders.OrderRouter.submit`). The action carries a
  :class:`ControlAction` (not a :class:`~perpbot.core.policies.RiskAction`: pausing is not a
  risk escalation); journaled as ``action = 'PAUSE_ENTRIES'``.
- ``RESUME_ENTRIES``: clears the pause (``action = 'RESUME_ENTRIES'``).
- ``CLOSE_ALL``: :attr:`RiskAction.CLOSE_ALL <perpbot.core.policies.RiskAction.CLOSE_ALL>`:
  every open order canceled, every position closed with reduce-only IOC market orders
  through the normal order path (journaled before they are sent).
- ``HALT``: :attr:`RiskAction.HALT <perpbot.core.policies.RiskAction.HALT>`: orders canceled,
  ``bot.halted`` set, the run stops after the current batch (exit code 6).

The pause lives in the running bot only: a restarted (resumed) run starts with entries allowed.
A request made while the bot is not processing batches (before start, after the loop
ended) is refused with :class:`ControlUnavailable`; requests still queued when the loop ends
fail with it. Call every method on the event loop's thread. Imports only :mod:`perpbot.core`.
"""

from __future__ import annotations

import asyncio
import enum
import weakref
from collections import deque
from typing import Any

import attrs

from perpbot.core.errors import PerpbotError
from perpbot.core.policies import RiskAction, RiskDecision


class ControlAction(enum.Enum):
    """The actions a controller may ask for (values are what the journal's ``risk_actions.action`` holds)."""

    PAUSE_ENTRIES = "PAUSE_ENTRIES"
    RESUME_ENTRIES = "RESUME_ENTRIES"
    CLOSE_ALL = "CLOSE_ALL"
    HALT = "HALT"

    @property
    def severity(self) -> int:
        """0: a control action is not a risk escalation (compare :attr:`RiskAction.severity
        <perpbot.core.policies.RiskAction.severity>`); CLOSE_ALL and HALT are recorded as the
        risk actions of the same name instead."""
        return 0


class ControlUnavailable(PerpbotError):
    """The bot is not processing batches (not started yet, or its loop ended): nothing to control."""


@attrs.frozen
class ControlOutcome:
    """What a carried-out request did.

    :param action: the :class:`ControlAction`; :param source: who asked (``"api 127.0.0.1"``);
    :param reason: the recorded reason; :param ts_ns: the bot clock's time when it took effect
        (ns since the epoch; market time in a replay); :param entries_paused: the pause reason
        afterwards (None: entries allowed); :param halted: the halt reason afterwards, or None.
    """

    action: ControlAction
    source: str
    reason: str
    ts_ns: int
    entries_paused: str | None
    halted: str | None


class BotControl:
    """Queue of control requests for one :class:`~perpbot.core.bot.TradingBot`, carried out between batches.

    :param bot: the bot (reads ``clock``, ``halted``; sets ``entries_paused``).
    :param orders: its :class:`~perpbot.core.bot.orders.OrderRouter` (``handle_risk``).
    """

    def __init__(self, bot: Any, orders: Any):
        self._bot = bot
        self._orders = orders
        self._queue: deque[tuple[ControlAction, str, str, asyncio.Future]] = deque()
        self._open = False

    @property
    def accepting(self) -> bool:
        """True while the bot's event loop runs (requests will be carried out)."""
        return self._open

    @property
    def pending(self) -> bool:
        """True when requests wait for the next batch boundary."""
        return bool(self._queue)

    @property
    def entries_paused(self) -> str | None:
        """The reason new entries are paused, or None."""
        return self._bot.entries_paused

    @property
    def halted(self) -> str | None:
        """The halt reason, or None."""
        return self._bot.halted

    def open(self) -> None:
        """Accept requests (the event loop calls it when it starts processing batches)."""
        self._open = True

    def close(self, why: str) -> None:
        """Refuse new requests and fail the queued ones with :class:`ControlUnavailable` (``why``)."""
        self._open = False
        while self._queue:
            _action, _source, _reason, fut = self._queue.popleft()
            if not fut.done():
                fut.set_exception(ControlUnavailable(why))

    def request(self, action: ControlAction | str, source: str, reason: str = "") -> asyncio.Future:
        """Queue ``action`` asked for by ``source``; returns a future of its :class:`ControlOutcome`.

        :param action: a :class:`ControlAction` or its value (``"PAUSE_ENTRIES"``...).
        :param source: who asks, recorded as the decision's policy (``"api 127.0.0.1"``); required.
        :param reason: one line (default: the action in words).
        :raises ValueError: an unknown action (naming the known ones) or an empty source.
        :raises ControlUnavailable: the bot is not processing batches.
        """
        if not isinstance(action, ControlAction):
            try:
                action = ControlAction(str(action).upper())
            except ValueError:
                known = ", ".join(a.value for a in ControlAction)
                raise ValueError(f"unknown control action {action!r} (known: {known})") from None
        source = " ".join(str(source).split())
        if not source:
            raise ValueError("a control request must name its source")
        if not self._open:
            raise ControlUnavailable("the bot is not running: its event loop has not started or has ended")
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((action, source, " ".join(reason.split()) or _DEFAULT_REASON[action], fut))
        return fut

    async def apply_pending(self) -> None:
        """Carry out the queued requests, in order (the event loop calls this between batches).

        A request whose carrying-out raises fails its future with that error; the others go on.
        """
        while self._queue:
            action, source, reason, fut = self._queue.popleft()
            try:
                outcome = await self._apply(action, source, reason)
            except Exception as exc:  # surfaced to the requester, never swallowed
                if not fut.done():
                    fut.set_exception(exc)
                continue
            if not fut.done():
                fut.set_result(outcome)

    async def _apply(self, action: ControlAction, source: str, reason: str) -> ControlOutcome:
        bot = self._bot
        now = bot.clock.now_ns()
        if action is ControlAction.PAUSE_ENTRIES:
            bot.entries_paused = f"{reason} ({source})"
            decision = RiskDecision(action, reason, policy=source, ts_ns=now)  # type: ignore[arg-type]
        elif action is ControlAction.RESUME_ENTRIES:
            bot.entries_paused = None
            decision = RiskDecision(action, reason, policy=source, ts_ns=now)  # type: ignore[arg-type]
        elif action is ControlAction.CLOSE_ALL:
            decision = RiskDecision(RiskAction.CLOSE_ALL, reason, policy=source, ts_ns=now)
        else:
            decision = RiskDecision(RiskAction.HALT, reason, policy=source, ts_ns=now)
            bot.request_stop(f"HALT by {source}: {reason}")  # the first stop reason wins: not "risk policy"
        await self._orders.handle_risk(decision)
        return ControlOutcome(action, source, reason, now, bot.entries_paused, bot.halted)


_DEFAULT_REASON = {
    ControlAction.PAUSE_ENTRIES: "pause new entries",
    ControlAction.RESUME_ENTRIES: "resume new entries",
    ControlAction.CLOSE_ALL: "close all positions",
    ControlAction.HALT: "halt requested",
}

_CONTROLS: "weakref.WeakKeyDictionary[Any, BotControl]" = weakref.WeakKeyDictionary()


def register_control(view: Any, control: BotControl) -> None:
    """Make ``control`` the answer of :func:`control_of` for ``view`` (the bot does this when built)."""
    _CONTROLS[view] = control


def control_of(view: Any) -> BotControl:
    """The :class:`BotControl` of the run whose :class:`~perpbot.core.bot.view.RunView` is ``view``.

    :param view: the ``bot`` an observer hook received (or ``TradingBot.view``).
    :raises KeyError: ``view`` is not the view of a bot built in this process.
    """
    return _CONTROLS[view]


__all__ = ["BotControl", "ControlAction", "ControlOutcome", "ControlUnavailable", "control_of", "register_control"]
