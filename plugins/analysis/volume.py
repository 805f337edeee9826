"""The ``volume`` analyzer: relative volume and a decayed volume profile over closed bars."""

from __future__ import annotations

import math
from typing import Any

from perpbot.core.analysis import Analyzer, Interpretation
from perpbot.core.model import Bar, Trade
from perpbot.plugins.analysis.stats import EW, ClosedBars, bar_floats, clip, sign

NAN = math.nan
_RESCALE = 1e200


class VolumeAnalyzer(Analyzer):
    """Relative volume, the share of volume on up bars, and a volume profile's point of control.

    - Relative volume: the last bar's volume over the EW mean volume of the bars before it
      (half-life ``half_life`` bars); a bar at ``rel_min`` times or more casts its own
      direction (close vs open), stronger the larger the spike.
    - Up-volume share: EW share of volume traded on bars that closed up (0.5: balanced).
    - Volume profile: volume by price bin (bins of ``bin_pct`` percent, on a log scale) with
      weights halving every ``profile_half_life`` bars; the point of control (POC) is the bin
      with the most volume. Trading above the POC reads as acceptance higher (long).

    The profile decays lazily (new volume is scaled up instead of old volume scaled down, all
    bins rescaled once the scale passes 1e200), so the POC is kept in O(1) per bar: uniform
    decay never changes which bin is largest, so only the bin just added can overtake it.

    Vote: ``0.5 * (share - 0.5) * 200 + 0.3 * spike + 0.2 * clip(10 * poc_dist / bin, -100, 100)``.
    Features: ``volume.rel_volume``, ``volume.up_share``, ``volume.poc_dist`` (close / POC - 1).
    """

    name = "volume"
    description = "relative volume, up-volume share and the volume profile's point of control"
    handles = (Bar, Trade)
    defaults = {"half_life": 20, "rel_min": 1.5, "bin_pct": 0.5, "profile_half_life": 200}
    feature_names = ("volume.rel_volume", "volume.up_share", "volume.poc_dist")

    def __init__(self, ticker: str, params=None):
        super().__init__(ticker, params)
        p = self.params
        if not p["bin_pct"] > 0:
            raise ValueError(f"analyzer volume: bin_pct must be > 0, got {p['bin_pct']:g}")
        self._vol = EW(p["half_life"])
        self._up = EW(p["half_life"])  # EW of up-volume
        self._log_bin = math.log1p(p["bin_pct"] / 100.0)
        self._growth = 2.0 ** (1.0 / p["profile_half_life"])
        self._scale = 1.0
        self._bins: dict[int, float] = {}
        self._poc: int | None = None
        self._poc_val = 0.0
        self._bars = ClosedBars()
        self.rel = NAN
        self.bar_dir = 0
        self.close = NAN
        self.n = 0

    def on_event(self, state: Any, ev: Any) -> None:
        """Update on a newly closed bar."""
        bar = self._bars.new(state)
        if bar is None:
            return
        o, h, lo, c, v = bar_floats(bar)
        self.rel = v / self._vol.mean if self._vol.n and self._vol.mean > 0 else NAN
        self._vol.update(v)
        self.bar_dir = sign(c - o)
        self._up.update(v if c > o else (v / 2 if c == o else 0.0))
        typical = (h + lo + c) / 3.0
        if typical > 0 and v > 0:
            self._scale *= self._growth
            k = int(math.floor(math.log(typical) / self._log_bin))
            val = self._bins.get(k, 0.0) + v * self._scale
            self._bins[k] = val
            if val > self._poc_val:
                self._poc, self._poc_val = k, val
            if self._scale > _RESCALE:
                s = self._scale
                self._bins = {b: x / s for b, x in self._bins.items() if x / s > 1e-12}
                self._poc_val /= s
                self._scale = 1.0
        self.close = c
        self.n += 1

    @property
    def poc_price(self) -> float:
        """Middle of the point-of-control bin (price), or nan."""
        if self._poc is None:
            return NAN
        return math.exp((self._poc + 0.5) * self._log_bin)

    def _share(self) -> float:
        return self._up.mean / self._vol.mean if self._vol.mean > 0 else 0.5

    def interpret(self, ts_ns: int) -> Interpretation | None:
        """Volume-weighted direction; None before 5 bars."""
        p = self.params
        if self.n < 5:
            return None
        share = self._share()
        a = (share - 0.5) * 200.0
        rel = self.rel if self.rel == self.rel else 1.0
        spike = self.bar_dir * clip((rel - 1.0) * 50.0, 0.0, 100.0) if rel >= p["rel_min"] else 0.0
        poc = self.poc_price
        dist = self.close / poc - 1.0 if poc == poc and poc > 0 else 0.0
        c = clip(10.0 * dist / (p["bin_pct"] / 100.0), -100.0, 100.0)
        net = 0.5 * a + 0.3 * spike + 0.2 * c
        conf = min(1.0, self.n / p["half_life"]) * 0.7
        bits = []
        if spike:
            bits.append(f"volume {rel:.1f}x its average on an {'up' if self.bar_dir > 0 else 'down'} bar")
        bits.append(f"{share * 100:.0f}% of recent volume on up bars")
        if poc == poc:
            bits.append(f"price {abs(dist) * 100:.2f}% {'above' if dist >= 0 else 'below'} the volume POC {poc:,.6g}")
        return self.make(sign(net, 5.0), abs(net), conf, "; ".join(bits))

    def features(self) -> dict[str, float]:
        """See the class docstring; nan before the first bar."""
        if self.n == 0:
            return dict.fromkeys(self.feature_names, NAN)
        poc = self.poc_price
        return {
            "volume.rel_volume": self.rel,
            "volume.up_share": self._share(),
            "volume.poc_dist": self.close / poc - 1.0 if poc == poc and poc > 0 else NAN,
        }
