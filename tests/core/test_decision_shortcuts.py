"""Round three of issue 11.4's shortcuts give what the long way gave: the sizer's score
(``core/bot/orders.py``, ``sizing_score``) and the cycle's snapshot of marks and paused markets
(``core/bot/decisions.py``, ``AccountSnapshot.of``, with ``MarketState.stale_reason``'s ``top``)."""

from __future__ import annotations

from decimal import Decimal as D

import attrs
import pytest

from perpbot.core.bot.orders import sizing_score
from perpbot.core.signals.scores import Scores


def long_way(scores):
    """The rule as first written (``OrderRouter._size``)."""
    composite = getattr(scores, "composite", None) if scores is not None else None
    return D(str(round(composite, 4))) if composite is not None else None


@attrs.define
class FixedComposite(Scores):
    """A subclass whose composite is its own (the shortcut must ask it)."""

    @property
    def composite(self) -> float:
        return 12.345678


@pytest.mark.parametrize("scores", [
    None,
    Scores(),
    Scores(strategy_composite=71.234567),
    Scores(strategy_composite=0.0),
    Scores(strategy_composite=100.0),
    FixedComposite(),
    FixedComposite(strategy_composite=55.0),
])
def test_sizing_score_is_the_composite_rounded(scores):
    assert sizing_score(scores) == long_way(scores)
    assert type(sizing_score(scores)) is type(long_way(scores))


def test_sizing_score_values():
    assert sizing_score(Scores()) is None
    assert sizing_score(Scores(strategy_composite=71.234567)) == D("71.2346")
    assert sizing_score(Scores(strategy_composite=0.0)) == D("0.0")
    assert sizing_score(FixedComposite(strategy_composite=55.0)) == D("12.3457")
