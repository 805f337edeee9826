"""Fixtures of the paper exchange tests (the harness itself is in paper_harness.py)."""

from __future__ import annotations

import pytest

from paper_harness import Harness


@pytest.fixture
def h() -> Harness:
    """BTC-USD with a two-sided book: bids 99/98/97, asks 101/102/103 (1, 2, 3 BTC)."""
    hh = Harness()
    hh.book(bids=[("99", "1"), ("98", "2"), ("97", "3")], asks=[("101", "1"), ("102", "2"), ("103", "3")])
    return hh


@pytest.fixture
def make_harness():
    return Harness
