"""The dashboard's live loop: snapshot task (event loop) -> latest-value handoff -> renderer.

An asyncio task takes a :class:`~perpbot.plugins.dashboard.snapshot.Snapshot` at most ``hz``
times per second into a one-slot mailbox (the latest wins); a child process (real
terminal) or a thread (given console) draws it, so a slow terminal never blocks the bot.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from loguru import logger
from rich.console import Console

from perpbot.core.tasks import cancel_and_wait
from perpbot.plugins.dashboard.render import build_layout
from perpbot.plugins.dashboard.snapshot import Snapshot, take_snapshot


# ---------------------------------------------------------------------------
# the live loop: snapshot task (event loop) -> latest-value handoff -> renderer
# ---------------------------------------------------------------------------


def _render_process(conn: Any, hz: float, screen: bool) -> None:  # pragma: no cover - runs in a child process
    """The renderer process: draws each snapshot it receives, then asks for the next one.

    Ctrl-C is the parent's business (it stops the bot, which closes this pipe).
    """
    import signal as _signal

    from rich.live import Live

    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    period = 1.0 / hz
    console = Console()
    with Live(console=console, auto_refresh=False, screen=screen, transient=False,
              redirect_stdout=False, redirect_stderr=False) as live:
        conn.send("ready")
        while True:
            try:
                snap = conn.recv()
            except (EOFError, OSError):
                break
            if snap is None:
                break
            started = time.monotonic()
            live.update(build_layout(snap), refresh=True)
            rest = period - (time.monotonic() - started)
            if rest > 0:
                time.sleep(rest)
            try:
                conn.send("ready")
            except (BrokenPipeError, OSError):
                break


class Dashboard:
    """Runs the dashboard of one bot.

    :param console: where to draw (default: the terminal, rendered by a child process).
    :param hz: at most this many snapshots and frames per second.
    :param screen: use the terminal's alternate screen (default: when the console is a terminal).
    :param renderer: ``"process"`` (draw in a child process: a slow terminal or the cost of
        drawing never touch the bot's process, not even through the GIL) or ``"thread"``
        (draw in a thread of this process; used with a given ``console``, e.g. in tests).
        Default: ``"process"`` for the real terminal, ``"thread"`` for a given console.
    """

    def __init__(
        self,
        console: Console | None = None,
        *,
        hz: float = 4.0,
        screen: bool | None = None,
        renderer: str | None = None,
    ):
        self.renderer = renderer or ("thread" if console is not None else "process")
        if self.renderer not in ("thread", "process"):
            raise ValueError(f"renderer: expected 'thread' or 'process', got {renderer!r}")
        self.console = console or Console()
        self.hz = max(0.5, float(hz))
        self.screen = self.console.is_terminal if screen is None else screen
        self._slot: Snapshot | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task | None = None
        self._proc = None
        self._conn = None
        self._child_ready = False
        self.published = 0  # snapshots handed over
        self.rendered = 0  # frames drawn (thread) or sent to the renderer process
        self.dropped = 0  # snapshots overwritten before they were drawn
        self.errors = 0
        self._wall_start = time.perf_counter()

    # -- handoff ------------------------------------------------------------

    def publish(self, snap: Snapshot) -> None:
        """Make ``snap`` the next frame (never blocks; an undrawn older one is dropped)."""
        with self._lock:
            if self._slot is not None:
                self.dropped += 1
            self._slot = snap
        self.published += 1
        if self.renderer == "thread":
            self._wake.set()
        else:
            self._pump()

    def _take(self) -> Snapshot | None:
        with self._lock:
            snap, self._slot = self._slot, None
        return snap

    def _pump(self) -> None:
        """Process renderer: hand the newest snapshot over when the child asked for one."""
        conn = self._conn
        if conn is None:
            return
        try:
            while conn.poll():
                if conn.recv() == "ready":
                    self._child_ready = True
            if self._child_ready:
                snap = self._take()
                if snap is not None:
                    conn.send(snap)  # the child is waiting in recv(): the pipe has room
                    self._child_ready = False
                    self.rendered += 1
        except (EOFError, OSError) as exc:
            self._conn = None
            self.errors += 1
            logger.warning(f"dashboard renderer stopped: {type(exc).__name__}: {exc}")

    # -- lifecycle ------------------------------------------------------------

    def start(self, bot: Any) -> None:
        """Start the renderer (thread or child process) and the snapshot task on the running loop.

        :param bot: the run's :class:`~perpbot.core.bot.view.RunView`.
        """
        self._wall_start = time.perf_counter()
        if self.renderer == "thread":
            self._thread = threading.Thread(target=self._render_loop, name="dashboard-render", daemon=True)
            self._thread.start()
        else:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")  # never fork a process with threads
            parent, child = ctx.Pipe()
            self._proc = ctx.Process(
                target=_render_process, args=(child, self.hz, bool(self.screen)), name="perpbot-dashboard", daemon=True
            )
            self._proc.start()
            child.close()
            self._conn = parent
        self._task = asyncio.get_running_loop().create_task(self._snapshot_loop(bot), name="dashboard-snapshots")

    async def _snapshot_loop(self, bot: Any) -> None:
        period = 1.0 / self.hz
        while not self._stop.is_set():
            try:
                self.publish(take_snapshot(bot, wall_start=self._wall_start))
            except Exception as exc:  # a dashboard bug must never stop the bot
                self.errors += 1
                if self.errors <= 3:
                    logger.error(f"dashboard snapshot failed: {type(exc).__name__}: {exc}")
            await asyncio.sleep(period)

    def _render_loop(self) -> None:
        from rich.live import Live

        period = 1.0 / self.hz
        try:
            with Live(console=self.console, auto_refresh=False, screen=self.screen, transient=False,
                      redirect_stdout=False, redirect_stderr=False) as live:
                while not self._stop.is_set():
                    self._wake.wait(timeout=0.5)
                    self._wake.clear()
                    snap = self._take()
                    if snap is None:
                        continue
                    started = time.monotonic()
                    try:
                        live.update(build_layout(snap), refresh=True)
                        self.rendered += 1
                    except Exception as exc:
                        self.errors += 1
                        if self.errors <= 3:
                            logger.error(f"dashboard render failed: {type(exc).__name__}: {exc}")
                    # at most hz frames per second, and drawing may take at most ~1/8 of the
                    # time (this thread shares the GIL with the bot's event loop)
                    spent = time.monotonic() - started
                    rest = max(period, 8 * spent) - spent
                    if rest > 0:
                        self._stop.wait(rest)
                last = self._take()
                if last is not None:
                    live.update(build_layout(last), refresh=True)
                    self.rendered += 1
        except Exception as exc:
            self.errors += 1
            logger.error(f"dashboard stopped: {type(exc).__name__}: {exc}")

    async def stop(self, bot: Any | None = None, timeout: float = 2.0) -> None:
        """Draw a last frame and stop; waits at most ``timeout`` s for a blocked terminal."""
        if self._task is not None:
            await cancel_and_wait([self._task], grace_s=timeout)
        if bot is not None:
            try:
                self.publish(take_snapshot(bot, wall_start=self._wall_start))
            except Exception:
                pass
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, timeout)
            if self._thread.is_alive():
                logger.warning("dashboard: the terminal is not accepting output; left its thread behind")
        if self._proc is not None:
            await asyncio.to_thread(self._finish_process, timeout)

    def _finish_process(self, timeout: float) -> None:
        conn, proc = self._conn, self._proc
        deadline = time.monotonic() + timeout
        if conn is not None:
            try:
                # let the child draw the final frame, then tell it to exit
                while self._slot is not None and time.monotonic() < deadline and proc.is_alive():
                    self._pump()
                    time.sleep(0.02)
                while not self._child_ready and time.monotonic() < deadline and proc.is_alive():
                    self._pump()
                    time.sleep(0.02)
                if self._child_ready:
                    conn.send(None)
            except (EOFError, OSError):
                pass
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            logger.warning("dashboard: the renderer did not finish (terminal not accepting output); stopping it")
            proc.terminate()
            proc.join(1.0)
        if conn is not None:
            conn.close()
        self._conn = None


