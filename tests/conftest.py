"""Shared fixtures. Plugin-author fixtures come from perpbot.core.testing (pytest11 entry point)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import shared_data as _shared

REPO = Path(__file__).resolve().parents[1]

# PERPBOT_NO_SHARED_DATA=1: the suite a user runs in a fresh clone. Any read under the
# shared data folder now raises (tests/shared_data.py install_guard), not only the lookups.
_shared.install_guard()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real recorded payloads, some LGPL/GPL: read, never copied).

    Skips when the folder is absent or hidden by ``PERPBOT_NO_SHARED_DATA=1``.
    """
    d = _shared.shared_data_dir()
    if d is None:
        pytest.skip(_shared.absent_reason())
    return d


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Tests never reach the network: the CLI's auto feed stays on the replay sample."""
    monkeypatch.setenv("PERPBOT_OFFLINE", "1")
