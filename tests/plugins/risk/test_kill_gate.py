"""The kill switch's file gate: the kill file is looked for at most once per ``file_check_ms``
of wall time, and a file created at wall time ``t`` halts every check from ``t + file_check_ms``
on (plugins/risk/kill_switch.py, ``KillSwitch``)."""

from __future__ import annotations

import asyncio
import errno
from decimal import Decimal as D
from pathlib import Path

import pytest

from perpbot.core.errors import ConfigError
from perpbot.core.model import Balance, OrderRequest, Side
from perpbot.core.params import parse_params
from perpbot.core.policies import RiskAction, RiskView
from perpbot.plugins import risk
from perpbot.plugins.risk import KillSwitch


@pytest.fixture(autouse=True)
def clean_kill():
    risk.clear_kill()
    yield
    risk.clear_kill()


class Wall:
    """A hand-driven monotonic clock (seconds)."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def view() -> RiskView:
    b = Balance(collateral=D(1000), equity=D(1000), free_collateral=D(1000))
    return RiskView(now_ns=0, balance=b, positions={}, marks={}, markets={})


def buy() -> OrderRequest:
    return OrderRequest(client_id=1, ticker="BTC-USD", side=Side.BUY, size=D("0.1"), venue="paper")


def make(tmp_path: Path, **params) -> tuple[KillSwitch, Wall, Path]:
    kill = tmp_path / "KILL"
    p = KillSwitch(parse_params(KillSwitch.Params, {"path": str(kill), **params}, "kill_switch"), None)
    wall = p.monotonic = Wall()
    return p, wall, kill


def test_a_touched_kill_file_halts_within_the_bound_and_not_later(tmp_path):
    p, wall, kill = make(tmp_path, file_check_ms=100)
    assert p.check_account(view()).approved  # looked: no file; the next look is 100 ms later
    kill.touch()
    wall.t += 0.099
    assert p.check_order(buy(), view()).approved  # inside the gate: the earlier answer is reused
    wall.t += 0.001  # exactly file_check_ms after the look
    d = p.check_order(buy(), view())
    assert d.action is RiskAction.HALT and str(kill) in d.reason
    assert p.check_account(view()).action is RiskAction.HALT  # once found, every check halts


def test_the_bound_holds_whenever_the_file_appears(tmp_path):
    """For files created at many points of the gate's cycle: the first check at or after
    ``creation + file_check_ms`` halts."""
    for offset_ms in (0, 1, 37, 99, 100, 150):
        p, wall, kill = make(tmp_path, file_check_ms=100)
        kill.unlink(missing_ok=True)
        start = wall.t
        assert p.check_account(view()).approved
        wall.t = start + offset_ms / 1000
        p.check_account(view())  # a check at creation time (may or may not look)
        kill.touch()
        created = wall.t
        halted_at = None
        for step in range(0, 400):  # a check every 1 ms of wall time
            wall.t = created + step / 1000
            if p.check_account(view()).action is RiskAction.HALT:
                halted_at = step
                break
        assert halted_at is not None and halted_at <= 100, (offset_ms, halted_at)
        kill.unlink()


def test_a_file_present_at_start_halts_the_first_check(tmp_path):
    p, wall, kill = make(tmp_path, file_check_ms=60_000)
    kill.touch()
    assert p.check_account(view()).action is RiskAction.HALT


def test_install_makes_the_next_check_look(tmp_path):
    p, wall, kill = make(tmp_path, file_check_ms=60_000)
    assert p.check_account(view()).approved
    kill.touch()
    assert p.check_account(view()).approved  # gated for a minute

    async def start():
        p.install(asyncio.get_running_loop())

    asyncio.run(start())
    assert p.check_account(view()).action is RiskAction.HALT


def test_the_signal_flag_is_read_at_every_check_inside_the_gate(tmp_path):
    p, wall, kill = make(tmp_path, file_check_ms=60_000)
    assert p.check_account(view()).approved
    risk.request_kill("SIGUSR1")
    assert p.check_account(view()).action is RiskAction.HALT


def test_zero_looks_at_every_check_and_reduce_only_still_passes(tmp_path):
    p, wall, kill = make(tmp_path, file_check_ms=0)
    assert p.check_account(view()).approved
    kill.touch()
    assert p.check_account(view()).action is RiskAction.HALT
    flat = OrderRequest(client_id=2, ticker="BTC-USD", side=Side.SELL, size=D("0.1"), venue="paper", reduce_only=True)
    assert p.check_order(flat, view()).approved


def test_an_error_other_than_no_such_file_propagates(tmp_path, monkeypatch):
    """As ``Path.exists()`` did: only "no such file" errors read as absent; a permission error propagates."""
    from perpbot.plugins.risk import kill_switch

    p, wall, kill = make(tmp_path, file_check_ms=100)

    def denied(path, *a, **kw):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(kill_switch.os, "stat", denied)
    with pytest.raises(PermissionError):
        p.check_account(view())


def test_a_bad_interval_is_one_line():
    with pytest.raises(ConfigError, match="kill_switch: parameter file_check_ms: must be >= 0, got -1"):
        parse_params(KillSwitch.Params, {"file_check_ms": -1}, "kill_switch")
