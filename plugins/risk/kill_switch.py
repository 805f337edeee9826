"""``kill_switch``: HALT on a kill file or on SIGUSR1.

:func:`request_kill` sets a process-wide flag (the bot's SIGUSR1 handler calls it;
:func:`install_kill_signal` installs that handler on a running asyncio loop); the
``kill_switch`` policy then HALTs. It also HALTs while a file exists (``path``, default
``<state_dir>/KILL``).

Imports :mod:`perpbot.core` and :mod:`perpbot.plugins.risk.helpers`.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import attrs

from perpbot.core.model import OrderRequest
from perpbot.core.params import param
from perpbot.core.policies import APPROVE, RiskAction, RiskDecision, RiskView
from perpbot.plugins.risk.helpers import PolicyBase


_KILL_REASON: str | None = None


def request_kill(reason: str = "SIGUSR1") -> None:
    """Trip the process-wide kill switch: every ``kill_switch`` policy HALTs at its next check.

    Safe to call from a signal handler (it only sets a module variable). The bot's SIGUSR1
    handler calls it: ``loop.add_signal_handler(signal.SIGUSR1, request_kill, "SIGUSR1")``.
    """
    global _KILL_REASON
    _KILL_REASON = reason or "kill switch"


def clear_kill() -> None:
    """Reset the process-wide kill switch (tests; a restarted bot starts clear)."""
    global _KILL_REASON
    _KILL_REASON = None


def kill_requested() -> str | None:
    """The reason the kill switch was tripped, or None."""
    return _KILL_REASON


def install_kill_signal(loop: Any = None) -> bool:
    """Install ``SIGUSR1 -> request_kill("SIGUSR1")`` on ``loop`` (default: the running asyncio loop).

    :returns: True when installed (False where signals are unsupported, e.g. Windows).
    """
    import asyncio

    loop = loop or asyncio.get_running_loop()
    sig = getattr(signal, "SIGUSR1", None)
    if sig is None:
        return False
    try:
        loop.add_signal_handler(sig, request_kill, "SIGUSR1")
        return True
    except (NotImplementedError, RuntimeError, ValueError):
        return False


@attrs.frozen
class KillSwitchParams:
    """Parameters of :class:`KillSwitch` (``[risk.kill_switch]``)."""

    path: str = param("", "HALT while this file exists (default: KILL in the bot's state directory)")


class KillSwitch(PolicyBase):
    """HALT when the kill file exists or :func:`request_kill` was called (SIGUSR1).

    ``check_account`` and ``check_order`` both HALT (reduce-only orders still pass, so a
    human can flatten). Remove the file and restart to trade again.
    """

    name = "kill_switch"
    description = "HALT when a kill file exists or on SIGUSR1"
    Params = KillSwitchParams

    def kill_path(self) -> Path | None:
        """The kill file: ``path`` (``~`` expanded), else ``<context.state_dir>/KILL``; None
        when neither is known (then only the signal flag can trip the switch)."""
        if self.params.path:
            return Path(self.params.path).expanduser()
        state_dir = getattr(self.context, "state_dir", None)
        return Path(state_dir) / "KILL" if state_dir is not None else None

    def install(self, loop: Any) -> None:
        """Called by the bot at start: a new run starts with the signal flag clear (the kill
        FILE still halts it) and SIGUSR1 trips it."""
        clear_kill()
        install_kill_signal(loop)

    def _tripped(self) -> str | None:
        if _KILL_REASON is not None:
            return f"kill switch: {_KILL_REASON}"
        p = self.kill_path()
        if p is not None and p.exists():
            return f"kill switch: file {p} exists"
        return None

    def check_account(self, view: RiskView) -> RiskDecision:
        """HALT (reason: the signal or the file) when tripped; else APPROVE."""
        why = self._tripped()
        return self.decision(RiskAction.HALT, why) if why else APPROVE

    def check_order(self, order: OrderRequest, view: RiskView) -> RiskDecision:
        """HALT when tripped, except reduce-only orders (a human can still flatten); else APPROVE."""
        if order.reduce_only:
            return APPROVE
        why = self._tripped()
        return self.decision(RiskAction.HALT, why) if why else APPROVE
