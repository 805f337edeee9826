"""Levels (core/model/levels.py) reads like the tuple of (price, size) pairs it stands for."""

from __future__ import annotations

import pickle
from decimal import Decimal as D

import pytest

from perpbot.core.model import BookDelta, Levels

PS = (D("61800.20"), D("61800.1"), D("61799"))
QS = (D("1.5"), D("0"), D("0.003"))
PAIRS = tuple(zip(PS, QS))


def test_levels_read_like_their_pairs():
    lv = Levels(PS, QS)
    assert len(lv) == 3 and bool(lv) and not Levels((), ())
    assert list(lv) == list(PAIRS) and list(reversed(lv)) == list(reversed(PAIRS))
    assert lv[0] == PAIRS[0] and lv[-1] == PAIRS[-1] and lv[1:] == PAIRS[1:] and type(lv[1:]) is Levels
    assert lv == PAIRS and PAIRS == lv and hash(lv) == hash(PAIRS)
    assert lv != list(PAIRS) and lv != PAIRS[:2] and lv != PAIRS[:2] + ((D("1"), D("1")),) and lv != Levels(PS, (D("1.5"), D("0"), D("0.004")))
    assert repr(lv) == f"Levels({PAIRS!r})"
    back = pickle.loads(pickle.dumps(lv))
    assert type(back) is Levels and back == lv and [str(p) for p, _ in back] == ["61800.20", "61800.1", "61799"]
    assert BookDelta("BTC-USD", 1, lv, ()) == BookDelta("BTC-USD", 1, PAIRS, ())


def test_columns_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="3 prices but 2 sizes"):
        Levels(PS, QS[:2])
