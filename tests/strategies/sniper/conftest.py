"""Fixtures for the sniper's tests; the plain helpers live in ``sniper_testkit``.

Plugin authors: copy ``sniper_testkit.py`` and this file to test a score-driven
strategy the way the built-in sniper is tested (no bot needed).

- ``scene``: a :class:`sniper_testkit.Scene` (markets with scores, marks, bars,
  positions, open orders; ``scene.market_data(ts_ns)`` builds one cycle's view);
- ``make_sniper``: ``make_sniper(**params)`` -> a Sniper with validated params;
- ``log_lines``: loguru records ``(level, message)`` emitted during the test.
"""

from __future__ import annotations

import pytest
from loguru import logger

from sniper_testkit import Scene, make_sniper as _make_sniper


@pytest.fixture
def scene() -> Scene:
    return Scene()


@pytest.fixture
def make_sniper():
    return _make_sniper


@pytest.fixture
def log_lines():
    """Captured loguru records as ``(level name, message)`` pairs, DEBUG and up."""
    lines: list[tuple[str, str]] = []
    sink_id = logger.add(lambda m: lines.append((m.record["level"].name, m.record["message"])), level="DEBUG")
    yield lines
    logger.remove(sink_id)
