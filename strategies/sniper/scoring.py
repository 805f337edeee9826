"""The sniper's direction-aware composite score (the ranking of markets).

Composite (floats, 0-100). With the five scores of :mod:`perpbot.core.signals`
(momentum m, volume v, volatility x, orderbook o, funding f — funding being the
attractiveness for a LONG) and weights ``w`` normalised to sum to 1::

    long  = w_m*m         + w_v*v + w_x*x + w_o*o         + w_f*f
    short = w_m*(100 - m) + w_v*v + w_x*x + w_o*(100 - o) + w_f*(100 - f)

Momentum, order book and funding are signed around 50, so a short wants them low;
volume and volatility say "something is happening" and count for either side. Source:
seed 000 (``/work/shared/seeds/000_*.txt``, "Signal Weighting": combine the 0-100 signal
types into one score per market; "Cross-Market Decision Making"); the direction-aware
mirror ``100 - s`` is this project's (issue 2 item 7). Floats: a score is a statistic,
never money.

Imports only :mod:`perpbot` and :mod:`perpbot.strategies.sniper.params`.
"""

from __future__ import annotations

from typing import Any

from perpbot import Side

from perpbot.strategies.sniper.params import SniperParams


class Scorer:
    """The composite of one parameter set (weights normalised once, at construction).

    ``scores`` arguments are :class:`perpbot.core.signals` score objects: attributes
    ``momentum``, ``momentum_fast``, ``momentum_slow``, ``volume``, ``volatility``,
    ``orderbook``, ``funding`` (floats, 0-100).
    """

    def __init__(self, params: SniperParams):
        p = params
        total = float(p.weight_momentum + p.weight_volume + p.weight_volatility + p.weight_orderbook + p.weight_funding)
        #: normalised weights ``(momentum, volume, volatility, orderbook, funding)``, summing to 1
        self.weights = (
            float(p.weight_momentum) / total,
            float(p.weight_volume) / total,
            float(p.weight_volatility) / total,
            float(p.weight_orderbook) / total,
            float(p.weight_funding) / total,
        )
        self.allow_short = p.allow_short

    def composite(self, scores: Any, side: Side) -> float:
        """Direction-aware weighted composite (0-100) of ``scores`` for ``side`` (formula: module docstring)."""
        wm, wv, wx, wo, wf = self.weights
        neutral = wv * scores.volume + wx * scores.volatility
        if side is Side.BUY:
            return wm * scores.momentum + neutral + wo * scores.orderbook + wf * scores.funding
        return wm * (100.0 - scores.momentum) + neutral + wo * (100.0 - scores.orderbook) + wf * (100.0 - scores.funding)

    def best_side(self, scores: Any) -> tuple[Side, float]:
        """The better side for a new position and its composite ``(side, 0-100)``.

        Long only without ``allow_short``; a tie goes to the long side.
        """
        long = self.composite(scores, Side.BUY)
        if self.allow_short:
            short = self.composite(scores, Side.SELL)
            if short > long:
                return Side.SELL, short
        return Side.BUY, long

    def held_composite(self, scores: Any, pos_size: Any) -> float:
        """The composite (0-100) for the direction of a held position (``pos_size`` signed, base units; > 0 long)."""
        return self.composite(scores, Side.BUY if pos_size > 0 else Side.SELL)


def explain(scores: Any) -> str:
    """The five scores as one short text for reasons and logs, e.g.
    ``"mom 76 (fast 90, slow 62), vol 57, volat 52, book 68, fund 50"``."""
    return (
        f"mom {scores.momentum:.0f} (fast {scores.momentum_fast:.0f}, slow {scores.momentum_slow:.0f}), "
        f"vol {scores.volume:.0f}, volat {scores.volatility:.0f}, book {scores.orderbook:.0f}, fund {scores.funding:.0f}"
    )
