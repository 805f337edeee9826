"""The CLI as a user runs it: the seed's commands, bad input, broken plugins, resume checks (issue 9.4, 9.10, 9.14)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# seed 002 (/work/shared/seeds/002_*.txt), with the paper venue for "lighter"
SEED_002 = ["--ticker", "BTC", "--quantity", "0.00273", "--exchange", "paper", "--strategy", "grid", "--take-profit",
            "0.008", "--direction", "buy", "--max-orders", "25", "--wait-time", "35"]


def run(args, *, prelude: str = "", timeout=300):
    """``python runbot.py ARGS``; ``prelude`` is Python run first in the same process (e.g. a plugin to load)."""
    code = textwrap.dedent(prelude) + "\nimport sys\nfrom perpbot.cli import main\nsys.argv = ['runbot.py', *sys.argv[1:]]\nmain()\n"
    env = dict(os.environ, PERPBOT_OFFLINE="1", COLUMNS="200")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)


def error_lines(res) -> list[str]:
    return [line for line in res.stderr.splitlines() if line.startswith("error:")]


def test_seed_002_grid_command_runs_as_written(tmp_path):
    res = run([*SEED_002, "--grid-step", "0.06", "--stop-price", "20000", "--pause-price", "200000",
               "--state-dir", str(tmp_path), "--no-report"])
    assert res.returncode == 0, res.stderr[-3000:]
    assert "No such option" not in res.stderr
    assert "grid BTC-USD (take_profit, long)" in res.stdout
    assert "(max 25," in res.stdout


def test_resuming_with_other_strategy_parameters_is_refused_naming_fresh(tmp_path):
    journal = tmp_path / "j.sqlite"
    base = ["--exchange", "paper", "--strategy", "grid", "--ticker", "BTC", "--journal", str(journal),
            "--state-dir", str(tmp_path), "--no-report"]
    first = run([*base, "--take-profit", "0.01", "--max-events", "300000"])
    assert first.returncode == 0, first.stderr[-3000:]
    changed = run([*base, "--take-profit", "0.02", "--max-events", "400000"])
    assert changed.returncode == 2, changed.stderr[-3000:]
    lines = error_lines(changed)
    assert len(lines) == 1 and "Traceback" not in changed.stderr
    assert "take_profit_pct=0.01" in lines[0] and "take_profit_pct=0.02" in lines[0] and "--fresh" in lines[0]
    # the same value written differently is the same parameter: it resumes
    same = run([*base, "-p", "take_profit_pct=0.010", "--max-events", "400000"])
    assert same.returncode == 0, same.stderr[-3000:]
    assert "resumed paper run" in same.stderr
    fresh = run([*base, "--take-profit", "0.02", "--max-events", "400000", "--fresh"])
    assert fresh.returncode == 0, fresh.stderr[-3000:]


TYPO_PLUGIN = """
from perpbot import cli, hookimpl
from perpbot.core.plugins import PluginManager

class Typo:
    __name__ = "typo-plugin"

    @hookimpl
    def on_fil(self, fill):  # misspelt on_fill
        pass

cli._PM.append(PluginManager(strict=False, extra_plugins=(Typo(),)))
"""


def test_a_misspelt_hook_keeps_help_and_plugins_working_and_marks_the_plugin():
    help_ = run(["--help"], prelude=TYPO_PLUGIN)
    assert help_.returncode == 0, help_.stderr
    assert "--take-profit" in help_.stdout
    listing = run(["plugins"], prelude=TYPO_PLUGIN)
    assert listing.returncode == 0, listing.stderr
    assert "BROKEN" in listing.stdout and "strategy:grid" in listing.stdout.replace(" ", "")
    assert "unknown hook 'on_fil' (did you mean 'on_fill'?)" in listing.stderr


def test_running_with_a_broken_plugin_fails_in_one_line(tmp_path):
    res = run(["--max-events", "10", "--state-dir", str(tmp_path)], prelude=TYPO_PLUGIN)
    assert res.returncode == 4, res.stderr
    lines = error_lines(res)
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert "typo-plugin" in lines[0] and "did you mean 'on_fill'?" in lines[0]
    assert "PERPBOT_DISABLE_PLUGINS=typo-plugin" in lines[0]


SYNC_STRATEGY = """
from perpbot import BaseStrategy, StrategyResult, cli, hookimpl
from perpbot.core.plugins import PluginManager

class Sync(BaseStrategy):
    name = "sync"

    async def should_execute(self, market_data):
        return True

    def execute_strategy(self, market_data):  # not async
        return StrategyResult.nothing()

class Plugin:
    __name__ = "sync-plugin"

    @hookimpl
    def register_strategies(self, register):
        register(Sync)

cli._PM.append(PluginManager(strict=False, extra_plugins=(Plugin(),)))
"""


def test_a_plain_def_execute_strategy_is_refused_before_the_run(tmp_path):
    res = run(["--strategy", "sync", "--max-events", "10", "--state-dir", str(tmp_path)], prelude=SYNC_STRATEGY)
    assert res.returncode == 4, res.stderr
    lines = error_lines(res)
    assert len(lines) == 1 and "Sync.execute_strategy must be 'async def'" in lines[0] and "sync-plugin" in lines[0]
    assert "can't be used in 'await' expression" not in res.stderr
