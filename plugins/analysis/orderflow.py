"""The ``orderflow`` analyzer: cumulative volume delta, trade imbalance and large trades."""

from __future__ import annotations

import math
from typing import Any

from perpbot.core.analysis import Analyzer, Interpretation
from perpbot.core.model import Bar, Trade
from perpbot.plugins.analysis.stats import EW, bar_floats, clip, sign

NAN = math.nan
#: floor of the delta fraction's standard deviation (fractions lie in -1..+1): one-sided flow with
#: no dispersion (every bar closing at its high) reads as a large t-statistic, not as 0/0
MIN_STD = 0.1


class OrderflowAnalyzer(Analyzer):
    """Who is aggressive: signed taker volume (delta), its imbalance and large trades.

    Per public trade, the delta is ``+size`` for a taker buy and ``-size`` for a taker sell.
    A bar feed carries no trade sides: each bar's delta is then estimated as
    ``volume * ((close - low) - (high - close)) / (high - low)`` (the close-location value of
    Chaikin's accumulation/distribution line), and the confidence is halved; the reason says so.

    - ``imbalance``: EW delta over EW volume (half-life ``half_life`` trades or bars), -1..+1.
    - ``cvd_z``: the EW mean of each update's delta fraction (delta / volume) over its standard
      error, using the fraction's slow EW standard deviation (half-life ``slow_half_life``, at least
      ``MIN_STD``) and
      ``Var(EWMA) = sigma^2 * a / (2 - a)`` for i.i.d. inputs: a t-statistic of recent buying.
    - ``large_net``: among trades (bars) of at least ``large_mult`` times the slow EW mean size,
      the EW balance of buys and sells, -1..+1.

    Direction: ``sign(cvd_z)`` once ``|cvd_z| >= z_min``; strength ``20 * |cvd_z| + 50 * |imbalance|``
    (capped at 100), plus 15 when large trades lean the same way. O(1) per trade or bar.
    Features: ``orderflow.imbalance``, ``orderflow.cvd_z``, ``orderflow.large_net``.
    """

    name = "orderflow"
    description = "cumulative volume delta, trade imbalance and large trades (bar-estimated without trades)"
    handles = (Trade, Bar)
    defaults = {"half_life": 50, "slow_half_life": 500, "large_mult": 4, "z_min": 1.0}
    feature_names = ("orderflow.imbalance", "orderflow.cvd_z", "orderflow.large_net")

    def __init__(self, ticker: str, params=None):
        super().__init__(ticker, params)
        p = self.params
        self._delta = EW(p["half_life"])
        self._vol = EW(p["half_life"])
        self._frac = EW(p["half_life"])
        self._frac_slow = EW(p["slow_half_life"])
        self._size = EW(p["slow_half_life"])
        self._keep = 0.5 ** (1.0 / p["half_life"])  # per-update weight decay of the large-trade sums
        self._large_signed = 0.0
        self._large_count = 0.0
        self._large_at = 0
        self.estimated = False
        self.cvd = 0.0
        self.large_seen = 0

    def on_event(self, state: Any, ev: Any) -> None:
        """Add a trade's (or a bar's estimated) signed volume."""
        if type(ev) is Trade:
            v = float(ev.size)
            d = v if ev.side.sign > 0 else -v
        else:
            _, h, lo, c, v = bar_floats(ev)
            rng = h - lo
            clv = ((c - lo) - (h - c)) / rng if rng > 0 else 0.0
            d = v * clv
            self.estimated = True
        if not v > 0:
            return
        self.cvd += d
        self._delta.update(d)
        self._vol.update(v)
        f = d / v
        self._frac.update(f)
        self._frac_slow.update(f)
        mean_size = self._size.mean if self._size.n else v
        large = self._size.n >= 20 and v >= self.params["large_mult"] * mean_size
        self._size.update(v)
        if large:
            # both sums decay alike between large trades, so their ratio needs updating only here
            f = self._keep ** (self._size.n - self._large_at)
            self._large_signed = self._large_signed * f + sign(d)
            self._large_count = self._large_count * f + 1.0
            self._large_at = self._size.n
            self.large_seen += 1

    def _imbalance(self) -> float:
        return self._delta.mean / self._vol.mean if self._vol.mean > 0 else 0.0

    def _z(self) -> float:
        se = max(self._frac_slow.std, MIN_STD) * self._frac.mean_se_factor
        return self._frac.mean / se

    def _large(self) -> float:
        return self._large_signed / self._large_count if self._large_count > 0 else 0.0

    def interpret(self, ts_ns: int) -> Interpretation | None:
        """Aggressor direction; None before 20 updates."""
        p = self.params
        n = self._vol.n
        if n < 20:
            return None
        z = self._z()
        imb = self._imbalance()
        large = self._large()
        d = sign(z, p["z_min"] - 1e-12) if abs(z) >= p["z_min"] else 0
        strength = 20.0 * abs(z) + 50.0 * abs(imb)
        if d and sign(large, 0.2) == d:
            strength += 15.0
        conf = min(1.0, n / (5.0 * p["half_life"])) * (0.5 if self.estimated else 1.0)
        who = "buyers" if imb >= 0 else "sellers"
        reason = (f"{who} took {abs(imb) * 50 + 50:.0f}% of recent volume (delta t-stat {z:+.1f})")
        if self.large_seen:
            reason += f"; large trades lean {'buy' if large > 0 else 'sell' if large < 0 else 'neither way'} ({large:+.2f})"
        if self.estimated:
            reason += "; delta estimated from bar closes (no trade sides)"
        return self.make(d, clip(strength, 0.0, 100.0) if d else 0.0, conf, reason)

    def features(self) -> dict[str, float]:
        """See the class docstring; nan before the first trade or bar."""
        if self._vol.n == 0:
            return dict.fromkeys(self.feature_names, NAN)
        return {"orderflow.imbalance": self._imbalance(), "orderflow.cvd_z": self._z(),
                "orderflow.large_net": self._large()}
