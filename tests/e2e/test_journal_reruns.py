"""Issue 9.2: the README's main command run twice on one journal records and reports both runs whole.

Paper fill ids used to restart at ``paper-1`` in every run while the journal keeps
one row per (venue, fill id) over all runs and dropped repeats without a word: the
second run's report showed 0 fills. Now a simulator's fill ids carry the run
(``paper-<run>-<n>``) and a fill id journaled for a different fill is an error.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from perpbot.plugins.journal import Journal

REPO = Path(__file__).resolve().parents[2]


def main_command(journal: Path, state: Path) -> subprocess.CompletedProcess:
    """``python runbot.py --exchange paper --strategy sniper --ticker BTC,ETH`` (README) on ``journal``."""
    return subprocess.run(
        [sys.executable, str(REPO / "runbot.py"), "--exchange", "paper", "--strategy", "sniper", "--ticker", "BTC,ETH",
         "--journal", str(journal), "--state-dir", str(state), "--no-report"],
        capture_output=True, text=True, timeout=600, cwd=REPO, env=dict(os.environ, PERPBOT_OFFLINE="1", COLUMNS="200"),
    )


def summary_fills(stdout: str) -> tuple[str, int]:
    """(run id, fills of the summary's market table) from a run's printed summary."""
    run_id = re.search(r"^Run (\w+):", stdout, re.M).group(1)
    fills = sum(int(m.group(1)) for m in re.finditer(r"^[A-Z]+-USD\s+(\d+)\s", stdout, re.M))
    return run_id, fills


def test_the_main_command_twice_on_one_journal_reports_the_same_figures(tmp_path):
    journal = tmp_path / "J.sqlite"
    runs = []
    for _ in range(2):
        res = main_command(journal, tmp_path / "state")
        assert res.returncode == 0, res.stderr[-3000:]
        runs.append(summary_fills(res.stdout))
    (first, first_fills), (second, second_fills) = runs
    assert first != second and first_fills > 0 and first_fills == second_fills

    j = Journal.open(journal, readonly=True)
    try:
        by_run = dict(j.conn.execute("SELECT run_id, COUNT(*) FROM fills WHERE voided = 0 GROUP BY run_id").fetchall())
        ids = [r[0] for r in j.conn.execute("SELECT fill_id FROM fills")]
        assert j.verify() == []
    finally:
        j.close()
    # every fill of each run is in the journal, the reused journal included
    assert by_run == {first: first_fills, second: second_fills}
    assert len(set(ids)) == len(ids) and all(i.startswith("paper-") for i in ids)

    from perpbot.plugins.report.analytics import build_report

    figures = []
    for run in (first, second):
        f = build_report(journal, run_id=run).figures()
        f.pop("journal", None)
        f.pop("run_ids", None)
        figures.append(json.loads(json.dumps(f, default=str).replace(run, "<run>")))  # texts may name the run
    assert figures[1]["fills"] == first_fills
    assert figures[0] == figures[1]
