"""nautilus_trader on the same events: the performance anchor of issue 11's targets.

The harness lives outside the project (``../shared/tools/nautilus/nautilus_replay.py``,
with its README holding reference figures) and runs in a virtual environment of its own
(``python3 -m venv NT_VENV && NT_VENV/bin/pip install nautilus_trader==1.221.0 msgspec``):
never the project's. This module only starts it as a subprocess and reads the one line it
prints (``RESULT {json}``).

Figures used (harness README, "Figures measured on this kind of machine", medians of 3):

- parse + engine run with logging bypassed, events/s: ``parse_plus_run_events_per_s`` of
  ``--mode engine --bypass-logging`` (reference 263,902);
- L2 book alone, level entries/s: ``book_apply_deltas_levels_per_s_median`` of
  ``--mode book`` (``OrderBook`` L2_MBP ``apply_deltas``, Rust; reference 3,863,015);
- peak RSS, MB: ``vmhwm_mb`` of the engine run (reference 458).

Each figure also comes per CPU second (``*_cpu``: the harness's ``*_cpu_s`` process times),
which a machine shared with other work distorts far less than wall time.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT.parent / "shared" / "tools" / "nautilus" / "nautilus_replay.py"

#: the harness README's figures (nautilus_trader 1.221.0, 2-core machine), used without ``--nautilus``
README_FIGURES = {
    "pipeline_events_per_s": 263_902,
    "book_level_entries_per_s": 3_863_015,
    "peak_rss_mb": 458,
}


class AnchorError(Exception):
    """The nautilus harness could not run or printed no ``RESULT`` line (message says why)."""


def harness_path() -> Path:
    """The harness script (``ANCHOR_HARNESS`` overrides the default beside the project).

    :raises AnchorError: it does not exist.
    """
    path = Path(os.environ.get("ANCHOR_HARNESS", HARNESS))
    if not path.is_file():
        raise AnchorError(f"nautilus harness not found at {path} (set ANCHOR_HARNESS)")
    return path


def run_harness(python: str, *args: str, timeout_s: float = 900) -> dict:
    """Run the harness once with ``python`` (the nautilus venv's interpreter) from the project root.

    :returns: the decoded ``RESULT`` JSON object.
    :raises AnchorError: the interpreter is missing, the run failed or timed out, or no RESULT line.
    """
    if not Path(python).exists():
        raise AnchorError(f"--nautilus: interpreter {python} not found (a venv with nautilus_trader==1.221.0)")
    cmd = [python, str(harness_path()), *args]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise AnchorError(f"nautilus harness {' '.join(args)} did not finish in {timeout_s:.0f} s") from None
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        raise AnchorError(f"nautilus harness {' '.join(args)} failed (exit {out.returncode}): {tail[0]}")
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise AnchorError(f"nautilus harness {' '.join(args)} printed no RESULT line")


def engine_figures(python: str) -> dict:
    """One nautilus parse + engine run with logging bypassed: ``{pipeline_events_per_s[_cpu], peak_rss_mb}``."""
    r = run_harness(python, "--mode", "engine", "--bypass-logging")
    events = r["counts"]["total"]["events"]
    return {
        "pipeline_events_per_s": r["parse_plus_run_events_per_s"],
        "pipeline_events_per_s_cpu": events / (r["parse_cpu_s"] + r["run_cpu_s"]),
        "peak_rss_mb": r["vmhwm_mb"],
    }


def book_figures(python: str, passes: int = 3) -> dict:
    """One nautilus L2 book run (``passes`` timed passes, median): ``{book_level_entries_per_s[_cpu]}``."""
    r = run_harness(python, "--mode", "book", "--book-passes", str(passes))
    levels = r["counts"]["total"]["level_updates"]
    return {
        "book_level_entries_per_s": r["book_apply_deltas_levels_per_s_median"],
        "book_level_entries_per_s_cpu": levels / statistics.median(r["book_apply_deltas_cpu_s"]),
    }
