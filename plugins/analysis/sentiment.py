"""The ``sentiment`` analyzer: positioning from derivatives data (funding, open interest, basis,
long/short ratio)."""

from __future__ import annotations

import math
from typing import Any

from perpbot.core.analysis import Analyzer, Interpretation, OpenInterest
from perpbot.core.model import FundingRate, MarketInfo, OraclePrice
from perpbot.plugins.analysis.stats import EW, clip, sign

NAN = math.nan


class SentimentAnalyzer(Analyzer):
    """How traders are positioned, read from derivatives data; each part casts a vote -100..+100.

    - Funding (contrarian): with ``r`` the per-hour rate (predicted or settled, per
      :class:`~perpbot.core.model.FundingRate`) and ``z`` its z-score against its EW history
      (``funding_half_life`` samples), ``vote = -clip(50 * r / funding_extreme + 15 * z)``:
      longs paying a lot are crowded, which reads short. ``funding_extreme`` defaults to
      1 bp per hour (87.6% a year).
    - Open interest (trend confirmation): per sample, the OI change and the price change since
      the previous sample; ``oi_z`` is the EW OI change (``oi_half_life`` samples) over its
      standard error. New positions (``oi_z > 0``) confirm the price's EW direction,
      ``vote = sign(price) * clip(25 * oi_z, -50, 100)``; closing positions weaken it.
      Sources: :class:`~perpbot.core.analysis.OpenInterest` samples, or a feed's
      :class:`~perpbot.core.model.MarketInfo` carrying ``market.open_interest``.
    - Basis (contrarian): last price over the oracle price, in bps, on every oracle update;
      ``vote = -clip(50 * basis / basis_extreme_bps)``.
    - Long/short account ratio (contrarian), where a venue publishes it (``OpenInterest.long_short_ratio``):
      ``vote = -clip(100 * (ratio - 1))``.

    The reading is the mean of the parts that have data (dead zone 5); confidence
    ``0.3 + 0.2`` per part with data, at most 0.9. Funding across venues: one analyzer per
    market and venue, combined by the cross-venue confluence. Features: ``sentiment.funding_1h``,
    ``sentiment.funding_z``, ``sentiment.oi_change``, ``sentiment.oi_z``, ``sentiment.basis_bps``,
    ``sentiment.long_short``.
    """

    name = "sentiment"
    description = "derivatives positioning: funding, open-interest change, basis, long/short ratio"
    handles = (FundingRate, OpenInterest, MarketInfo, OraclePrice)
    defaults = {"funding_half_life": 48, "funding_extreme": 0.0001, "oi_half_life": 24, "basis_extreme_bps": 20}
    feature_names = ("sentiment.funding_1h", "sentiment.funding_z", "sentiment.oi_change", "sentiment.oi_z",
                     "sentiment.basis_bps", "sentiment.long_short")

    def __init__(self, ticker: str, params=None):
        super().__init__(ticker, params)
        p = self.params
        if not p["funding_extreme"] > 0 or not p["basis_extreme_bps"] > 0:
            raise ValueError("analyzer sentiment: funding_extreme and basis_extreme_bps must be > 0")
        self._funding = EW(p["funding_half_life"])
        self._doi = EW(p["oi_half_life"])
        self._dpx = EW(p["oi_half_life"])
        self.funding = NAN
        self.funding_z = NAN
        self.oi = NAN
        self.oi_px = NAN
        self.basis_bps = NAN
        self.long_short = NAN

    def on_event(self, state: Any, ev: Any) -> None:
        """Update from a funding rate, an open-interest sample, market info or an oracle price."""
        t = type(ev)
        if t is FundingRate:
            r = float(ev.rate_1h)
            self.funding_z = self._funding.z(r) if self._funding.n >= 2 else 0.0
            self._funding.update(r)
            self.funding = r
        elif t is OraclePrice:
            last = state.last_price
            o = float(ev.price)
            if last is not None and o > 0:
                self.basis_bps = (float(last) - o) / o * 1e4
        elif t is OpenInterest:
            self._oi(state, float(ev.open_interest), True)
            if ev.long_short_ratio is not None:
                self.long_short = float(ev.long_short_ratio)
        elif ev.market is not None and ev.market.open_interest > 0:  # MarketInfo
            self._oi(state, float(ev.market.open_interest), False)

    def _oi(self, state: Any, oi: float, periodic: bool) -> None:
        """One OI sample; a non-periodic source (market info) counts only when the OI changed."""
        if not oi > 0 or (not periodic and oi == self.oi):
            return
        px = state.last_price if state.last_price is not None else state.oracle_price
        px = float(px) if px is not None else NAN
        if self.oi == self.oi:
            self._doi.update(oi / self.oi - 1.0)
            if px == px and self.oi_px == self.oi_px and self.oi_px > 0:
                self._dpx.update(px / self.oi_px - 1.0)
        self.oi = oi
        self.oi_px = px

    def _oi_z(self) -> float:
        se = self._doi.std * self._doi.mean_se_factor
        return self._doi.mean / se if se > 0 else 0.0

    def interpret(self, ts_ns: int) -> Interpretation | None:
        """Mean vote of the parts with data; None while no part has data."""
        p = self.params
        votes = []
        bits = []
        if self.funding == self.funding:
            v = -clip(50.0 * self.funding / p["funding_extreme"] + 15.0 * self.funding_z, -100, 100)
            votes.append(v)
            who = "longs pay shorts" if self.funding > 0 else "shorts pay longs" if self.funding < 0 else "no one pays"
            bits.append(f"funding {self.funding * 1e4:+.2f} bp/h ({self.funding * 24 * 365 * 100:+.1f}%/yr, "
                        f"z {self.funding_z:+.1f}): {who}")
        if self._doi.n >= 3:
            z = self._oi_z()
            pdir = sign(self._dpx.mean)
            v = pdir * clip(25.0 * z, -50, 100)
            votes.append(v)
            bits.append(f"open interest {'rising' if z > 0 else 'falling'} (t-stat {z:+.1f}) while price "
                        f"{'rises' if pdir > 0 else 'falls' if pdir < 0 else 'is flat'}")
        if self.basis_bps == self.basis_bps:
            votes.append(-clip(50.0 * self.basis_bps / p["basis_extreme_bps"], -100, 100))
            bits.append(f"basis {self.basis_bps:+.1f} bp over the oracle")
        if self.long_short == self.long_short:
            votes.append(-clip(100.0 * (self.long_short - 1.0), -100, 100))
            bits.append(f"long/short ratio {self.long_short:.2f}")
        if not votes:
            return None
        net = sum(votes) / len(votes)
        conf = min(0.9, 0.3 + 0.2 * len(votes))
        return self.make(sign(net, 5.0), abs(net), conf, "; ".join(bits))

    def features(self) -> dict[str, float]:
        """See the class docstring; nan for parts without data."""
        return {
            "sentiment.funding_1h": self.funding,
            "sentiment.funding_z": self.funding_z,
            "sentiment.oi_change": self._doi.mean if self._doi.n else NAN,
            "sentiment.oi_z": self._oi_z() if self._doi.n >= 2 else NAN,
            "sentiment.basis_bps": self.basis_bps,
            "sentiment.long_short": self.long_short,
        }
