"""The ``technical`` analyzer: trend (two EMAs), momentum (RSI) and volatility (ATR) over closed bars."""

from __future__ import annotations

import math
from typing import Any

from perpbot.core.analysis import Analyzer, Interpretation
from perpbot.core.model import Bar, Trade
from perpbot.plugins.analysis.stats import ClosedBars, Wilder, bar_floats, clip, sign

NAN = math.nan


class TechnicalAnalyzer(Analyzer):
    """Trend, momentum and volatility of closed bars (bar feeds, or bars built from trades).

    - Trend: EMA(``fast``) minus EMA(``slow``) of closes, in ATRs (``ema_gap_atr``); its sign
      is the direction, ``40 * |gap|`` (capped at 100) the strength.
    - Momentum: Wilder's RSI(``rsi_period``); RSI on the trend's side of 50 (above 55 / below
      45) raises the confidence, RSI past 75 / below 25 in the trend's direction (stretched)
      cuts the strength by a third.
    - Volatility: Wilder's ATR(``atr_period``) as a fraction of the close (``atr_pct``).

    EMA ``alpha = 2 / (n + 1)``; RSI and ATR as defined by J. W. Wilder (1978). O(1) per bar.
    Features: ``technical.ema_gap_atr``, ``technical.rsi``, ``technical.atr_pct``,
    ``technical.ret_1`` (last bar's return), ``technical.close_vs_fast`` (close / EMA fast - 1).
    """

    name = "technical"
    description = "trend (EMA cross in ATRs), momentum (RSI), volatility (ATR) over bars"
    handles = (Bar, Trade)
    defaults = {"fast": 12, "slow": 26, "rsi_period": 14, "atr_period": 14}
    feature_names = ("technical.ema_gap_atr", "technical.rsi", "technical.atr_pct", "technical.ret_1",
                     "technical.close_vs_fast")

    def __init__(self, ticker: str, params=None):
        super().__init__(ticker, params)
        p = self.params
        if not 1 <= p["fast"] < p["slow"]:
            raise ValueError(f"analyzer technical: fast ({p['fast']:g}) must be >= 1 and below slow ({p['slow']:g})")
        self._af = 2.0 / (p["fast"] + 1)
        self._as = 2.0 / (p["slow"] + 1)
        self._rsi_up = Wilder(int(p["rsi_period"]))
        self._rsi_dn = Wilder(int(p["rsi_period"]))
        self._atr = Wilder(int(p["atr_period"]))
        self._bars = ClosedBars()
        self.ema_fast = self.ema_slow = self.close = NAN
        self.prev_close = NAN
        self.n = 0

    def on_event(self, state: Any, ev: Any) -> None:
        """Update on a newly closed bar (checked in O(1) on every bar or trade)."""
        bar = self._bars.new(state)
        if bar is None:
            return
        _, h, lo, c, _ = bar_floats(bar)
        pc = self.close
        if self.n == 0:
            self.ema_fast = self.ema_slow = c
            self._atr.update(h - lo)
        else:
            self.ema_fast += self._af * (c - self.ema_fast)
            self.ema_slow += self._as * (c - self.ema_slow)
            self._atr.update(max(h - lo, abs(h - pc), abs(lo - pc)))
            d = c - pc
            self._rsi_up.update(d if d > 0 else 0.0)
            self._rsi_dn.update(-d if d < 0 else 0.0)
        self.prev_close = pc
        self.close = c
        self.n += 1

    @property
    def rsi(self) -> float:
        """Wilder's RSI, 0-100 (nan before the first change)."""
        if self._rsi_up.count == 0:
            return NAN
        up, dn = self._rsi_up.value, self._rsi_dn.value
        if dn <= 0:
            return 100.0 if up > 0 else 50.0
        return 100.0 - 100.0 / (1.0 + up / dn)

    def _gap(self) -> float:
        atr = self._atr.value
        return (self.ema_fast - self.ema_slow) / atr if atr > 0 else 0.0

    def interpret(self, ts_ns: int) -> Interpretation | None:
        """Trend direction with momentum confirmation; None before ``fast`` bars."""
        p = self.params
        if self.n < p["fast"]:
            return None
        gap = self._gap()
        rsi = self.rsi
        d = sign(gap, 0.05)
        strength = clip(40.0 * abs(gap), 0.0, 100.0)
        mom = sign(rsi - 50.0, 5.0) if not math.isnan(rsi) else 0
        warm = min(1.0, self.n / p["slow"])
        conf = warm * (0.8 if mom == d and d != 0 else 0.5)
        stretched = (d > 0 and rsi > 75) or (d < 0 and rsi < 25)
        if stretched:
            strength *= 2.0 / 3.0
        atr_pct = self._atr.value / self.close if self.close else NAN
        side = "above" if gap >= 0 else "below"
        reason = (f"EMA{p['fast']:g} {side} EMA{p['slow']:g} by {abs(gap):.2f} ATR, RSI {rsi:.0f}"
                  f"{' (stretched)' if stretched else ''}, ATR {atr_pct * 100:.2f}% of price")
        return self.make(d, strength, conf, reason)

    def features(self) -> dict[str, float]:
        """See the class docstring; nan before the first bar."""
        if self.n == 0:
            return dict.fromkeys(self.feature_names, NAN)
        pc = self.prev_close
        return {
            "technical.ema_gap_atr": self._gap(),
            "technical.rsi": self.rsi,
            "technical.atr_pct": self._atr.value / self.close if self.close else NAN,
            "technical.ret_1": self.close / pc - 1.0 if pc == pc and pc else NAN,
            "technical.close_vs_fast": self.close / self.ema_fast - 1.0 if self.ema_fast else NAN,
        }
