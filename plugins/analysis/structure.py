"""The ``structure`` analyzer: swing highs and lows, support and resistance, breakouts."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from perpbot.core.analysis import Analyzer, Interpretation
from perpbot.core.model import Bar, Trade
from perpbot.plugins.analysis.stats import ClosedBars, Wilder, bar_floats, clip

NAN = math.nan


class StructureAnalyzer(Analyzer):
    """Price structure of closed bars.

    - Swings: a bar whose high is above the ``pivot`` bars on each side (and not below any of
      them) is a swing high, confirmed ``pivot`` bars later; likewise swing lows. The last swing
      high is resistance, the last swing low support. A window of ``2 * pivot + 1`` bars is
      kept, so each bar costs O(pivot), a constant.
    - Breakout: a close above resistance by ``breakout_atr`` ATRs (Wilder ATR, ``atr_period``)
      is a breakout long; below support, a breakdown short. It holds until a close back inside
      the range (or a new swing redraws it). Strength ``50 + 20 * ATRs beyond the level``.
    - Otherwise trend structure: higher swing highs and higher lows read long, lower highs and
      lower lows short (strength 40); a mixed structure is neutral.

    Features: ``structure.dist_high_atr`` ((close - resistance) / ATR), ``structure.dist_low_atr``
    ((close - support) / ATR), ``structure.trend`` (+1, -1, 0), ``structure.breakout`` (+1, -1, 0).
    """

    name = "structure"
    description = "swing highs/lows, support and resistance, breakouts"
    handles = (Bar, Trade)
    defaults = {"pivot": 3, "atr_period": 14, "breakout_atr": 0.25}
    feature_names = ("structure.dist_high_atr", "structure.dist_low_atr", "structure.trend", "structure.breakout")

    def __init__(self, ticker: str, params=None):
        super().__init__(ticker, params)
        p = self.params
        if p["pivot"] < 1:
            raise ValueError(f"analyzer structure: pivot must be >= 1, got {p['pivot']:g}")
        self._k = int(p["pivot"])
        self._win_h: deque = deque(maxlen=2 * self._k + 1)
        self._win_l: deque = deque(maxlen=2 * self._k + 1)
        self._atr = Wilder(int(p["atr_period"]))
        self._bars = ClosedBars()
        self.high = self.prev_high = self.low = self.prev_low = NAN
        self.close = NAN
        self.breakout = 0
        self.n = 0

    def on_event(self, state: Any, ev: Any) -> None:
        """Update on a newly closed bar."""
        bar = self._bars.new(state)
        if bar is None:
            return
        _, h, lo, c, _ = bar_floats(bar)
        pc = self.close
        self._atr.update(h - lo if pc != pc else max(h - lo, abs(h - pc), abs(lo - pc)))
        wh, wl = self._win_h, self._win_l
        wh.append(h)
        wl.append(lo)
        if len(wh) == wh.maxlen:
            k = self._k
            hs = list(wh)
            ch = hs[k]
            if max(hs[:k]) < ch and max(hs[k + 1:]) <= ch:
                self.prev_high, self.high = self.high, ch
                self.breakout = 0 if self.breakout > 0 else self.breakout
            ls = list(wl)
            cl = ls[k]
            if min(ls[:k]) > cl and min(ls[k + 1:]) >= cl:
                self.prev_low, self.low = self.low, cl
                self.breakout = 0 if self.breakout < 0 else self.breakout
        self.close = c
        self.n += 1
        atr = self._atr.value
        margin = self.params["breakout_atr"] * atr
        if self.high == self.high and c > self.high + margin:
            self.breakout = 1
        elif self.low == self.low and c < self.low - margin:
            self.breakout = -1
        elif (self.breakout > 0 and self.high == self.high and c <= self.high) or \
                (self.breakout < 0 and self.low == self.low and c >= self.low):
            self.breakout = 0

    def _trend(self) -> int:
        if any(x != x for x in (self.high, self.prev_high, self.low, self.prev_low)):
            return 0
        if self.high > self.prev_high and self.low > self.prev_low:
            return 1
        if self.high < self.prev_high and self.low < self.prev_low:
            return -1
        return 0

    def interpret(self, ts_ns: int) -> Interpretation | None:
        """Breakout, else swing structure; None until a swing high or low exists."""
        if self.high != self.high and self.low != self.low:
            return None
        atr = self._atr.value or 1e-12
        c = self.close
        if self.breakout > 0:
            beyond = (c - self.high) / atr
            return self.make(1, clip(50 + 20 * beyond, 0, 100), 0.7,
                             f"close {c:,.6g} broke above resistance {self.high:,.6g} (last swing high) by {beyond:.2f} ATR")
        if self.breakout < 0:
            beyond = (self.low - c) / atr
            return self.make(-1, clip(50 + 20 * beyond, 0, 100), 0.7,
                             f"close {c:,.6g} broke below support {self.low:,.6g} (last swing low) by {beyond:.2f} ATR")
        t = self._trend()
        if t > 0:
            return self.make(1, 40, 0.5, f"higher swing highs ({self.prev_high:,.6g} -> {self.high:,.6g}) "
                                         f"and higher lows ({self.prev_low:,.6g} -> {self.low:,.6g})")
        if t < 0:
            return self.make(-1, 40, 0.5, f"lower swing highs ({self.prev_high:,.6g} -> {self.high:,.6g}) "
                                          f"and lower lows ({self.prev_low:,.6g} -> {self.low:,.6g})")
        return self.make(0, 0, 0.5, f"inside the range: support {self.low:,.6g}, resistance {self.high:,.6g}")

    def features(self) -> dict[str, float]:
        """See the class docstring; nan before the levels exist."""
        atr = self._atr.value
        c = self.close
        return {
            "structure.dist_high_atr": (c - self.high) / atr if atr > 0 else NAN,
            "structure.dist_low_atr": (c - self.low) / atr if atr > 0 else NAN,
            "structure.trend": float(self._trend()),
            "structure.breakout": float(self.breakout),
        }
