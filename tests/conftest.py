"""Shared fixtures. Plugin-author fixtures come from perpbot.core.testing (pytest11 entry point)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PERPBOT_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real recorded payloads, some LGPL/GPL: read, never copied)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (only in the project's CI and dev machines)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Tests never reach the network: the CLI's auto feed stays on the replay sample."""
    monkeypatch.setenv("PERPBOT_OFFLINE", "1")
