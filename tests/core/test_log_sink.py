"""Log lines during the replay progress bar go through rich, above the bar (issue 9.8, open item).

``configure_logging`` used to hand loguru the ``sys.stderr`` object of start-up. rich's live
display (the progress bar, ``perpbot/progress.py``) swaps ``sys.stderr`` for a proxy that
prints above the bar; loguru kept writing to the old stream, so on a terminal each log
line landed in the middle of the bar. The console sink now looks up ``sys.stderr`` at
each write (``perpbot.core.logs.CurrentStderr``).
"""

from __future__ import annotations

import io
import re
import sys

import pytest
from loguru import logger
from rich.console import Console

from perpbot.core.feed import ProgressUpdate
from perpbot.core.logs import CurrentStderr, configure_logging
from perpbot.progress import ReplayProgressBar

LINE = "a line logged while the bar is drawn"
T0 = 1_700_000_000_000_000_000


@pytest.fixture
def terminal(monkeypatch):
    """``sys.stderr`` as the terminal seen at start-up; loguru reset afterwards."""
    raw = io.StringIO()
    monkeypatch.setattr(sys, "stderr", raw)
    yield raw
    logger.remove()
    logger.add(sys.__stderr__)


def test_a_log_line_during_the_progress_bar_is_printed_above_it(terminal):
    configure_logging()  # as the CLI does, before the bar is attached
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=140, color_system=None)
    bar = ReplayProgressBar(console, clock=iter(range(1000)).__next__)
    bar(ProgressUpdate(10, 100, 1000, T0, False))
    logger.info(LINE)
    bar(ProgressUpdate(50, 100, 5000, T0 + 100 * 10**9, False))
    bar.close()

    assert terminal.getvalue() == ""  # nothing written behind rich's back
    out = screen.getvalue()
    # rich clears the bar's line, prints the log line whole on its own line, then redraws the bar
    before, sep, after = out.partition(LINE)
    assert sep, out
    cleared = before.rsplit("\x1b[2K", 1)
    assert len(cleared) == 2 and "━" not in cleared[1]  # only the log line's own prefix (time, level) follows the clear
    assert re.match(r"\n+replay ━", after), after[:80]


def test_the_console_sink_writes_to_the_stream_current_at_write_time(terminal):
    configure_logging()
    later = io.StringIO()
    sys.stderr = later  # restored by monkeypatch
    logger.warning("after the swap")
    assert "after the swap" in later.getvalue() and terminal.getvalue() == ""
    assert CurrentStderr().isatty() is False
