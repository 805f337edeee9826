"""Running cells on Ray: an embedded local cluster by default, or an existing one.

- Embedded (no ``--ray-address``): ``ray.init()`` on this machine with all its cores, no
  dashboard, Ray's own logging at WARNING and workers' output not forwarded (cells are
  quiet; their errors come back in their rows). Nothing to set up.
- ``--ray-address auto`` joins the cluster of this machine (``ray start --head``);
  ``ray://HOST:PORT`` a Ray Client server; ``HOST:PORT`` a cluster's GCS. The address is
  tried with a TCP connect first, so an unreachable one is one line at once, not Ray's
  retries (``ray.init`` ``address`` semantics: ray ``python/ray/_private/worker.py``).

Data goes by path: the cells read the replay files (or the walk-forward copies in the sweep
directory), which must be on storage the workers share (same machine, or a shared
filesystem for a cluster). Or, for small sets (``--data-via store``; the default with a
``--ray-address`` when the files total at most :data:`SHIP_MAX_BYTES`), through Ray's object
store: each file is put once (``ray.put``) and a cell writes it to its own folder first.

Each cell is one Ray task (``num_cpus=1``, no retries: a failure is reported, not hidden)
running :func:`perpbot.plugins.research.cells.run_cell`. At most ``workers`` run at once
(default: the cluster's CPUs). Results come back as they finish and are handed to
``on_row`` (the sweep writes each to disk at once). Ctrl-C cancels the cells still running
and re-raises KeyboardInterrupt; the rows already handed over are kept.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlparse

from perpbot.core.errors import ConfigError, ExchangeError

__all__ = ["RayEngine", "SHIP_MAX_BYTES", "check_address"]

#: the most data (bytes, all files together) sent through the object store by default
SHIP_MAX_BYTES = 64 * 1024 * 1024


def check_address(address: str, timeout: float = 3.0) -> None:
    """Refuse an unreachable ``--ray-address`` in one line (``auto`` is left to Ray).

    :raises ConfigError: a malformed address; :raises ExchangeError: nothing answers there.
    """
    if address == "auto":
        return
    parsed = urlparse(address if "://" in address else f"gcs://{address}")
    if parsed.scheme not in ("ray", "gcs") or not parsed.hostname:
        raise ConfigError(f"--ray-address: expected auto, ray://HOST:PORT or HOST:PORT, got {address!r}")
    try:
        port = parsed.port
    except ValueError:
        port = None
    if not port:
        raise ConfigError(f"--ray-address {address}: no port (e.g. ray://{parsed.hostname}:10001)")
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ExchangeError(f"--ray-address {address}: unreachable ({reason}); start the cluster "
                            "or drop --ray-address to run on this machine") from None


class RayEngine:
    """Ray, initialised once per process: embedded, or joined at ``address``."""

    def __init__(self, address: str | None = None, workers: int | None = None):
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers: must be at least 1, got {workers}")
        self.address = address
        self.workers = workers
        self._remote = None
        self.ship: dict | None = None  # set by ship_data: the run's default files in the object store
        self._refs: dict[str, object] = {}

    def ship_data(self, config: str | None, files: list[str], funding: list[str]) -> None:
        """Send the data through the object store from now on (after :meth:`start`): the config
        file and the run's files; a task's own ``files`` (walk-forward copies) are put as met."""
        self.ship = {"config": self._put(config) if config else None, "files": [self._put(f) for f in files],
                     "funding": [self._put(f) for f in funding]}

    def _put(self, path: str):
        import ray

        if path not in self._refs:
            self._refs[path] = ray.put(Path(path).read_bytes())
        return (Path(path).name, self._refs[path])

    def _shipped(self, task: dict) -> dict:
        if self.ship is None:
            return task
        shipped = dict(self.ship)
        if task.get("files") is not None:
            shipped["files"] = [self._put(f) for f in task["files"]]
            shipped["funding"] = [self._put(f) for f in task.get("funding_files") or []]
        return dict(task, shipped=shipped)

    def start(self) -> int:
        """Initialise Ray (reusing a running session in this process); :returns: the parallelism used.

        :raises ExchangeError: the cluster cannot be reached (one line).
        """
        import ray

        if self.address:
            check_address(self.address)
        if not ray.is_initialized():
            kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
                          configure_logging=True)
            try:
                if self.address:
                    ray.init(address=self.address, **kwargs)
                else:
                    ray.init(**kwargs)
            except (ConnectionError, RuntimeError) as exc:
                raise ExchangeError(f"--ray-address {self.address or '(embedded)'}: {str(exc).splitlines()[0]}") from None
        cpus = int(ray.cluster_resources().get("CPU", 1))
        from perpbot.plugins.research.cells import run_cell

        self._remote = ray.remote(num_cpus=1, max_retries=0)(run_cell)
        return max(1, min(cpus, self.workers or cpus))

    def run(self, tasks: Iterable[dict], on_row: Callable[[dict], None], parallel: int) -> None:
        """Run ``tasks`` (cell specs) with at most ``parallel`` in flight; each row goes to ``on_row``.

        :raises KeyboardInterrupt: on Ctrl-C, after cancelling the cells in flight.
        """
        import ray

        pending = list(tasks)[::-1]
        running: dict = {}
        try:
            while pending or running:
                while pending and len(running) < parallel:
                    task = pending.pop()
                    running[self._remote.remote(self._shipped(task))] = task
                done, _ = ray.wait(list(running), num_returns=1)
                for ref in done:
                    task = running.pop(ref)
                    try:
                        row = ray.get(ref)
                    except Exception as exc:  # the worker died (out of memory, killed): the cell failed
                        row = {"key": task["key"], "phase": task["phase"], "window": task["window"],
                               "params": task["params"], "status": "error", "summary": None, "objectives": None,
                               "equity": [], "error": f"ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"}
                    on_row(row)
        except KeyboardInterrupt:
            for ref in running:
                ray.cancel(ref, force=True)
            raise
