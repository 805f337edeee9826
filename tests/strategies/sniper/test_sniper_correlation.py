"""perpbot.strategies.sniper.correlation: Pearson on bar log returns, matched by bar close time."""

from __future__ import annotations

import math

import pytest

from sniper_testkit import Scene
from perpbot.strategies.sniper.correlation import bar_return_correlation, pearson

R = [0.001, -0.002, 0.0015, 0.003, -0.001, -0.0025, 0.002, 0.0005, -0.0015, 0.001]


def test_pearson_basics():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([1, 2, 3], [5, 5, 5]) is None  # flat series: undefined
    assert pearson([1.0], [2.0]) is None
    xs = [math.sin(i) for i in range(50)]
    ys = [math.cos(3 * i) for i in range(50)]
    assert abs(pearson(xs, ys)) < 0.3


def _scene(ra, rb, **kw):
    sc = Scene()
    sc.add("BTC-USD", "60000")
    sc.add("ETH-USD", "3000")
    sc.set_bars("BTC-USD", ra, **kw)
    sc.set_bars("ETH-USD", rb, **kw)
    return sc


def test_identical_and_opposite_paths():
    sc = _scene(R, R)
    rho, n = bar_return_correlation(sc.states["BTC-USD"], sc.states["ETH-USD"], 30, 5)
    assert rho == pytest.approx(1.0, abs=1e-4) and n == 10
    sc = _scene(R, [-r for r in R])
    rho, _ = bar_return_correlation(sc.states["BTC-USD"], sc.states["ETH-USD"], 30, 5)
    assert rho == pytest.approx(-1.0, abs=1e-3)


def test_lookback_limits_the_window():
    early_same = R + [0.001, 0.002, -0.001, 0.0005, -0.002]
    late_opposite = R + [-0.001, -0.002, 0.001, -0.0005, 0.002]
    sc = _scene(early_same, late_opposite)
    rho_all, n_all = bar_return_correlation(sc.states["BTC-USD"], sc.states["ETH-USD"], 30, 5)
    rho_last, n_last = bar_return_correlation(sc.states["BTC-USD"], sc.states["ETH-USD"], 5, 5)
    assert n_all == 15 and n_last == 5
    assert rho_last == pytest.approx(-1.0, abs=1e-3) and rho_all > rho_last


def test_too_few_common_bars_is_unknown():
    sc = _scene(R[:3], R[:3])
    assert bar_return_correlation(sc.states["BTC-USD"], sc.states["ETH-USD"], 30, 5) == (None, 3)
    empty = Scene()
    empty.add("BTC-USD", "60000")
    empty.add("ETH-USD", "3000")
    assert bar_return_correlation(empty.states["BTC-USD"], empty.states["ETH-USD"], 30, 5) == (None, 0)


def test_bars_are_matched_by_close_time():
    sc = Scene()
    sc.add("BTC-USD", "60000")
    sc.add("ETH-USD", "3000")
    sc.set_bars("BTC-USD", R, interval_s=60)
    sc.set_bars("ETH-USD", R, interval_s=120)  # every other close time coincides
    rho, n = bar_return_correlation(sc.states["BTC-USD"], sc.states["ETH-USD"], 30, 2)
    assert n == 5  # common close times at 0, 120, 240, ... within BTC's 10 bars
