"""The collector's batcher: rows are grouped per kind and handed on by size and by time.

A kind's batch is ready when it holds ``max_rows`` rows (by size), or when its oldest row has
waited ``max_age_s`` seconds (by time: a quiet market's rows still reach storage promptly).
:meth:`Batcher.drain` hands over everything (the flush at stop). Time is the caller's
monotonic clock (seconds), so tests drive it.
"""

from __future__ import annotations

from typing import Callable


class Batcher:
    """Per-kind row buffers (module docstring).

    :param max_rows: rows that make a batch ready (>= 1).
    :param max_age_s: seconds the oldest row of a batch may wait (> 0).
    :param clock: ``() -> seconds``, monotonic (default :func:`time.monotonic`).
    :raises ValueError: ``max_rows`` < 1 or ``max_age_s`` <= 0.
    """

    def __init__(self, max_rows: int = 1000, max_age_s: float = 1.0, clock: Callable[[], float] | None = None):
        import time

        if max_rows < 1:
            raise ValueError(f"batch size must be at least 1 row, got {max_rows}")
        if not max_age_s > 0:
            raise ValueError(f"batch age must be positive seconds, got {max_age_s}")
        self.max_rows = int(max_rows)
        self.max_age_s = float(max_age_s)
        self.clock = clock or time.monotonic
        self._rows: dict[str, list] = {}
        self._since: dict[str, float] = {}
        #: batches handed over because full / because old / at the final drain
        self.by_size = self.by_time = self.at_drain = 0

    def add(self, kind: str, row: tuple) -> list[tuple[str, list]]:
        """Buffer ``row``; returns the batches now ready by size (``[(kind, rows)]``, often empty)."""
        buf = self._rows.get(kind)
        if buf is None:
            buf = self._rows[kind] = []
        if not buf:
            self._since[kind] = self.clock()
        buf.append(row)
        if len(buf) >= self.max_rows:
            self._rows[kind] = []
            self.by_size += 1
            return [(kind, buf)]
        return []

    def due(self) -> list[tuple[str, list]]:
        """Batches whose oldest row has waited ``max_age_s`` or more (``[(kind, rows)]``)."""
        now = self.clock()
        out = []
        for kind, buf in self._rows.items():
            if buf and now - self._since[kind] >= self.max_age_s:
                out.append((kind, buf))
                self._rows[kind] = []
                self.by_time += 1
        return out

    def drain(self) -> list[tuple[str, list]]:
        """Every non-empty batch, whatever its size or age (the final flush)."""
        out = [(k, b) for k, b in self._rows.items() if b]
        self._rows = {}
        self.at_drain += len(out)
        return out

    def pending(self) -> int:
        """Rows buffered and not yet handed over."""
        return sum(len(b) for b in self._rows.values())
