"""Bad input to ``runbot.py sweep`` is one ``error:`` line and a non-zero exit, before any cell runs;
the grid, range and walk-forward parsers give what they promise."""

from __future__ import annotations

import socket
from decimal import Decimal

import pytest

from perpbot.core.errors import ConfigError
from perpbot.plugins.research.spec import WalkForward, parse_grid, parse_walk_forward


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize(
    "args, expected",
    [
        ([], "empty grid"),
        (["-p", "entry_threshold="], "-p entry_threshold: empty grid"),
        (["-p", "entry_treshold=55,60"], "has no parameter 'entry_treshold' (did you mean 'entry_threshold'?)"),
        (["-p", "entry_threshold=55", "--objective", "sharp"], "unknown objective 'sharp' (did you mean 'sharpe'?)"),
        (["-p", "exit_threshold=45:55"], "malformed range '45:55' (expected start:stop:step"),
        (["-p", "exit_threshold=55:45:5"], "start 55 is above stop 45"),
        (["-p", "exit_threshold=45:55:0"], "step must be > 0"),
        (["-p", "exit_threshold=45:x:5"], "stop 'x' is not a number"),
        (["-p", "entry_threshold=55", "--search", "grdi"], "unknown search 'grdi' (did you mean 'grid'?)"),
        (["-p", "entry_threshold=55", "--walk-forward", "train=14x,test=7d"], "train='14x' is not a duration"),
        (["-p", "entry_threshold=55", "--walk-forward", "trian=14d,test=7d"], "unknown key 'trian' (did you mean 'train'?)"),
        (["-p", "entry_threshold=55", "--heatmap", "entry_threshold,exit_treshold"], "is not a swept parameter"),
        (["-p", "entry_threshold=55", "--data-via", "stor"], "--data-via: expected auto, path or store, got 'stor' (did you mean 'store'?)"),
    ],
)
def test_bad_input_is_one_line(cli, small_config, tmp_path, args, expected):
    code, out, err = cli("sweep", "--config", small_config, "--out", tmp_path, *args)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0]
    assert "Traceback" not in out + err


def test_unreachable_ray_address_is_one_line(cli, small_config, tmp_path):
    port = _closed_port()
    code, out, err = cli("sweep", "--config", small_config, "--out", tmp_path, "-p", "entry_threshold=55",
                         "--ray-address", f"ray://127.0.0.1:{port}")
    assert code == 5
    lines = [line for line in err.strip().splitlines() if "authentication" not in line]
    assert len(lines) == 1 and lines[0].startswith(f"error: --ray-address ray://127.0.0.1:{port}: unreachable"), err


def test_missing_extra_is_one_line(cli, small_config, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real(name, *a))
    code, out, err = cli("sweep", "--config", small_config, "--out", tmp_path, "-p", "entry_threshold=55", "--search", "optuna")
    assert code == 2 and err.strip() == "error: sweep: needs optuna, which is not installed: pip install 'perpbot[research]'"


def test_ranges_are_inclusive_and_exact():
    grid = parse_grid(["entry_threshold=55,60,65", "exit_threshold=45:55:5", "take_profit=0.1:0.3:0.1"])
    assert grid.axes == (("entry_threshold", ("55", "60", "65")), ("exit_threshold", ("45", "50", "55")),
                         ("take_profit", ("0.1", "0.2", "0.3")))
    assert grid.size() == 27 and len(grid.cells()) == 27
    assert grid.cells()[1] == {"entry_threshold": "55", "exit_threshold": "45", "take_profit": "0.2"}
    assert [Decimal(v) for v in parse_grid(["x=1:2:0.5,7"]).axes[0][1]] == [1, Decimal("1.5"), 2, 7]
    assert len(grid.sample(5, seed=1)) == 5 and grid.sample(5, seed=1) == grid.sample(5, seed=1)
    with pytest.raises(ConfigError, match="given twice"):
        parse_grid(["x=1", "x=2"])


def test_walk_forward_windows_are_half_open_and_roll():
    wf = parse_walk_forward("train=2d,test=1d")
    assert wf == WalkForward(2 * 86400, 86400, 86400)
    day = 86400 * 10**9
    wins = wf.windows(0, 5 * day)
    assert wins == [(0, 2 * day, 3 * day), (day, 3 * day, 4 * day), (2 * day, 4 * day, 5 * day)]
    assert parse_walk_forward("train=2d,test=1d,step=2d").windows(0, 5 * day) == [(0, 2 * day, 3 * day), (2 * day, 4 * day, 5 * day)]
    with pytest.raises(ConfigError, match="missing test"):
        parse_walk_forward("train=2d")
