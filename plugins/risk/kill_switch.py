"""``kill_switch``: HALT on a kill file or on SIGUSR1.

:func:`request_kill` sets a process-wide flag (the bot's SIGUSR1 handler calls it;
:func:`install_kill_signal` installs that handler on a running asyncio loop); the
``kill_switch`` policy then HALTs. It also HALTs while a file exists (``path``, default
``<state_dir>/KILL``), looked for at most once per ``file_check_ms`` of wall time (default
100 ms; see :class:`KillSwitch`).

Imports :mod:`perpbot.core` and :mod:`perpbot.plugins.risk.helpers`.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path
from typing import Any

import attrs

from perpbot.core.model import OrderRequest
from perpbot.core.params import in_range, param
from perpbot.core.policies import APPROVE, RiskAction, RiskDecision, RiskView
from perpbot.plugins.risk.helpers import PolicyBase


_KILL_REASON: str | None = None
#: ``os.stat`` errors meaning "no such file", as ``pathlib.Path.exists`` reads them (CPython ``Lib/pathlib.py``, ``_IGNORED_ERRNOS``)
_ABSENT = frozenset((errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP))


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
    file_check_ms: int = param(
        100, "look for the kill file at most once per this many ms of wall time (0: at every check)", in_range(0, 60_000)
    )


class KillSwitch(PolicyBase):
    """HALT when the kill file exists or :func:`request_kill` was called (SIGUSR1).

    ``check_account`` and ``check_order`` both HALT (reduce-only orders still pass, so a
    human can flatten). Remove the file and restart to trade again.

    The signal flag is read at every check. The file costs a ``stat`` system call, so it is
    looked for at most once per ``file_check_ms`` of wall time (``time.monotonic``; default
    100 ms): a check less than that after a check that found no file reuses its answer.
    Bound: a kill file created at wall time ``t`` halts every check made from
    ``t + file_check_ms`` on (and may halt earlier ones). The first check of a policy always
    looks, so a file present at start halts the first decision; once found, the file is
    looked for at every check.
    """

    name = "kill_switch"
    description = "HALT when a kill file exists or on SIGUSR1"
    Params = KillSwitchParams

    #: the wall clock of the file gate (seconds, monotonic); tests replace it
    monotonic = staticmethod(time.monotonic)

    def kill_path(self) -> Path | None:
        """The kill file: ``path`` (``~`` expanded), else ``<context.state_dir>/KILL``; None
        when neither is known (then only the signal flag can trip the switch)."""
        if self.params.path:
            return Path(self.params.path).expanduser()
        state_dir = getattr(self.context, "state_dir", None)
        return Path(state_dir) / "KILL" if state_dir is not None else None

    def _file_exists(self) -> str | None:
        """The kill file's path text when it exists (looked for at most once per ``file_check_ms``), else None."""
        gate = getattr(self, "_gate", None)  # [wall time (s) of the next look, the path text or None]
        now = self.monotonic()
        if gate is not None and now < gate[0]:
            return None  # no file at the last look, less than file_check_ms ago
        if gate is None or gate[1] is None:
            path = self.kill_path()  # until a path is known (context.state_dir), asked again at each look
            gate = self._gate = [0.0, None if path is None else str(path)]
        if gate[1] is None:
            gate[0] = now + self.params.file_check_ms / 1000
            return None
        try:
            os.stat(gate[1])
        except (OSError, ValueError) as exc:
            if isinstance(exc, OSError) and exc.errno not in _ABSENT:
                raise  # as Path.exists() does (e.g. a permission error is not "no file")
            gate[0] = now + self.params.file_check_ms / 1000
            return None
        gate[0] = 0.0  # found: look again at every check
        return gate[1]

    def install(self, loop: Any) -> None:
        """Called by the bot at start: a new run starts with the signal flag clear (the kill
        FILE still halts it: the first check looks for it) and SIGUSR1 trips it."""
        self._gate = None
        clear_kill()
        install_kill_signal(loop)

    def _tripped(self) -> str | None:
        if _KILL_REASON is not None:
            return f"kill switch: {_KILL_REASON}"
        p = self._file_exists()
        if p is not None:
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
