"""Stopping background tasks for sure.

``task.cancel(); await task`` can hang for ever on Python 3.11: ``asyncio.wait_for`` (used
inside libraries and, until now, our own clients) returns the inner result instead of
raising when the cancellation arrives in the same loop iteration as that result, so the
task swallows the one cancellation it was sent and goes on looping (CPython gh-86296,
fixed in 3.12 by reimplementing ``wait_for`` on ``asyncio.timeout``). A shutdown must
not depend on that race: :func:`cancel_and_wait` cancels again until the task is done,
within a bounded time. Our own code uses ``asyncio.timeout`` instead of ``wait_for``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterable

from loguru import logger

__all__ = ["cancel_and_wait", "install_stop_signals", "remove_signals"]

#: how often a task that is still running is cancelled again, seconds
RECANCEL_EVERY_S = 0.05


async def cancel_and_wait(tasks: Iterable[asyncio.Task | None], grace_s: float = 5.0) -> list[asyncio.Task]:
    """Cancel ``tasks`` and wait until each is done, cancelling again every 50 ms.

    ``None`` entries and finished tasks are skipped. A task's own exception is retrieved
    (so asyncio does not log it as never retrieved) and not raised: the caller is shutting
    down. A cancellation of the caller itself propagates.

    :param grace_s: the most this waits, in seconds; a task still running after it is
        logged as a warning by name and returned.
    :returns: the tasks that did not stop within ``grace_s`` (normally empty).
    """
    all_tasks = [t for t in tasks if t is not None]
    pending = {t for t in all_tasks if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    while pending:
        for t in pending:
            t.cancel()
        left = deadline - loop.time()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_EVERY_S, left))
    for t in all_tasks:
        if t.done() and not t.cancelled():
            t.exception()  # retrieved: a task that failed while stopping is not news here
    if pending:
        names = ", ".join(sorted(t.get_name() for t in pending))
        logger.warning(f"{len(pending)} task(s) still running {grace_s:.1f}s after cancellation: {names}")
    return sorted(pending, key=lambda t: t.get_name())


def install_stop_signals(callback: Callable[[str], object]) -> list[int]:
    """Call ``callback("Ctrl-C")`` on SIGINT and ``callback("SIGTERM")`` on SIGTERM, through the
    running loop's signal handlers.

    :returns: the signals installed (none off the main thread or where the platform has no
        loop signal handlers); give them to :func:`remove_signals` when done.
    """
    loop = asyncio.get_running_loop()
    installed = []
    for sig, name in ((signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")):
        try:
            loop.add_signal_handler(sig, callback, name)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / no signals here
            pass
    return installed


def remove_signals(installed: Iterable[int]) -> None:
    """Remove the running loop's handlers of ``installed`` (from :func:`install_stop_signals`)."""
    loop = asyncio.get_running_loop()
    for sig in installed:
        loop.remove_signal_handler(sig)
