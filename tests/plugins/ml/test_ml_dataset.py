"""Labels: a signal's forward return over h bars against round-trip costs (plugins/ml/dataset.py)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from perpbot.core.errors import ConfigError, DataError
from perpbot.plugins.ml.dataset import Costs, build_dataset

H = 3600 * 10**9


def _rows(closes, dirs, ticker="AAA-USD", t0=0):
    return [{"ts_ns": t0 + i * H, "ticker": ticker, "close": c, "f.a": float(i), "confluence.direction": d}
            for i, (c, d) in enumerate(zip(closes, dirs))]


def test_default_costs_are_dydx_tier1_taker_both_ways():
    c = Costs()
    assert c.fee == Decimal("0.0005") and c.slippage == 0
    assert c.round_trip == Decimal("0.0010")
    assert Costs(fee=Decimal("0.0002"), slippage=Decimal("0.0003")).round_trip == Decimal("0.0010")


@pytest.mark.parametrize("field,value", [("fee", Decimal("-0.0001")), ("slippage", Decimal("NaN")), ("fee", Decimal("1.5"))])
def test_bad_costs_are_one_line_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        Costs(**{field: value})


def test_label_is_forward_return_over_horizon_beating_costs_long_and_short():
    # closes: 100 -> 100.05 (+5 bp) -> 100.2 (+20 bp from start) -> 99.8 -> 99.0
    closes = [100.0, 100.05, 100.2, 99.8, 99.0]
    ds = build_dataset(_rows(closes, [1, 1, -1, -1, 1]), horizon=2, costs=Costs())
    # rows 0..2 have a label (row i needs row i+2); rows 3, 4 run past the end
    assert ds.ts_ns.tolist() == [0, H, 2 * H]
    r0 = 100.2 / 100.0 - 1            # long, +20 bp > 10 bp cost -> 1
    r1 = 99.8 / 100.05 - 1            # long, -25 bp -> 0
    r2 = -(99.0 / 100.2 - 1)          # short, +120 bp -> 1
    assert ds.fwd_return.tolist() == pytest.approx([r0, r1, r2])
    assert ds.y.tolist() == [1, 0, 1]
    assert ds.direction.tolist() == [1, 1, -1]
    assert ds.label_end_ns.tolist() == [2 * H, 3 * H, 4 * H]
    assert ds.cost == pytest.approx(0.001)
    # a cost above the gain flips the first label
    ds2 = build_dataset(_rows(closes, [1, 1, -1, -1, 1]), horizon=2, costs=Costs(slippage=Decimal("0.0006")))
    assert ds2.y.tolist() == [0, 0, 1]


def test_rows_without_a_signal_are_dropped_and_features_kept_in_order():
    rows = _rows([100, 101, 102, 103, 104, 105], [0, 1, None, -1, 1, 1])
    ds = build_dataset(rows, horizon=1, costs=Costs())
    assert ds.ts_ns.tolist() == [H, 3 * H, 4 * H]
    assert ds.features == ("confluence.direction", "f.a")
    assert ds.X[:, 1].tolist() == [1.0, 3.0, 4.0]


def test_a_gap_inside_the_horizon_gives_no_label():
    rows = _rows([100, 101, 102, 103], [1, 1, 1, 1])
    rows[2]["ts_ns"] += 10 * H  # a hole between rows 1 and 2
    rows[3]["ts_ns"] += 10 * H
    ds = build_dataset(rows, horizon=1, costs=Costs())
    assert ds.ts_ns.tolist() == [0, 12 * H]


def test_tickers_are_labelled_separately_and_merged_in_time_order():
    rows = _rows([100, 110, 121], [1, 1, 1], "AAA-USD") + _rows([50, 45, 40], [-1, -1, -1], "BBB-USD")
    ds = build_dataset(rows, horizon=1, costs=Costs())
    assert list(zip(ds.ts_ns.tolist(), ds.ticker.tolist())) == [(0, "AAA-USD"), (0, "BBB-USD"), (H, "AAA-USD"), (H, "BBB-USD")]
    assert ds.fwd_return.tolist() == pytest.approx([0.1, 0.1, 0.1, 1 - 40 / 45])


@pytest.mark.parametrize("rows,kw,match", [
    ([], {}, "no feature rows"),
    ([{"ts_ns": 0, "ticker": "A", "close": 1.0, "f.a": 1.0}], {}, "confluence.direction"),
    ([{"ts_ns": 0, "ticker": "A", "close": 1.0, "f.a": "x", "confluence.direction": 1}], {}, "f.a"),
    (_rows([100, -1], [1, 1]), {}, "positive price"),
])
def test_bad_rows_are_one_line(rows, kw, match):
    with pytest.raises(DataError, match=match):
        build_dataset(rows, horizon=1, costs=Costs(), **kw)


def test_horizon_below_one_is_refused():
    with pytest.raises(ConfigError, match="horizon"):
        build_dataset(_rows([1, 2], [1, 1]), horizon=0, costs=Costs())


def test_subset_keeps_arrays_aligned():
    ds = build_dataset(_rows([100, 101, 102, 103, 104], [1, -1, 1, -1, 1]), horizon=1, costs=Costs())
    sub = ds.subset(np.array([1, 3]))
    assert sub.ts_ns.tolist() == [H, 3 * H] and sub.direction.tolist() == [-1, -1] and sub.X.shape == (2, 2)
