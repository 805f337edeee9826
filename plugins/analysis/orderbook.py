"""The ``orderbook`` analyzer: depth imbalance, spread, microprice and book pressure."""

from __future__ import annotations

import math
from typing import Any

from perpbot.core.analysis import Analyzer, Interpretation
from perpbot.core.model import BookDelta, BookSnapshot, Quote, Side
from perpbot.plugins.analysis.stats import EW, clip, sign

NAN = math.nan
_MS = 1_000_000


class OrderbookAnalyzer(Analyzer):
    """Resting liquidity: which side of the book is heavier, and how tight it is.

    Sampled on event time, at most once per ``sample_ms`` (a busy book changes many times a
    millisecond; each sample reads ``levels`` levels a side, a constant, so the cost per event
    is O(1)). Per sample, over the best ``levels`` levels (the top of book from a
    :class:`~perpbot.core.model.Quote` when the market has no L2 book):

    - ``imbalance = (bid size - ask size) / (bid size + ask size)``, -1..+1;
    - ``pressure``: the EW imbalance over ``half_life`` samples;
    - ``spread_bps``: (ask - bid) / mid in basis points;
    - ``micro_bps``: the microprice ``(bid * ask_size + ask * bid_size) / (bid_size + ask_size)``
      (S. Stoikov, "The micro-price", 2018, as the size-weighted mid) minus the mid, in bps;
    - ``depth_usd``: notional of both sides' ``levels`` levels, USD.

    Direction ``sign(pressure)`` once ``|pressure| >= min_imbalance``; strength ``120 * |pressure|``;
    confidence falls with the spread (``1 / (1 + spread_bps / 10)``). Markets fed only bars have
    no book: no interpretation. Venues: one analyzer per market and venue; the hub's
    cross-venue confluence (:func:`perpbot.core.analysis.market_confluence`) combines them.
    Features: ``orderbook.imbalance``, ``orderbook.pressure``, ``orderbook.spread_bps``,
    ``orderbook.micro_bps``, ``orderbook.depth_usd``.
    """

    name = "orderbook"
    description = "depth imbalance, book pressure, spread and microprice (L2 or top of book)"
    handles = (BookSnapshot, BookDelta, Quote)
    defaults = {"levels": 10, "sample_ms": 250, "half_life": 20, "min_imbalance": 0.15}
    feature_names = ("orderbook.imbalance", "orderbook.pressure", "orderbook.spread_bps", "orderbook.micro_bps",
                     "orderbook.depth_usd")

    def __init__(self, ticker: str, params=None):
        super().__init__(ticker, params)
        p = self.params
        if p["levels"] < 1:
            raise ValueError(f"analyzer orderbook: levels must be >= 1, got {p['levels']:g}")
        self._n = int(p["levels"])
        self._step = int(p["sample_ms"] * _MS)
        self._next = 0
        self._pressure = EW(p["half_life"])
        self.imbalance = self.spread_bps = self.micro_bps = self.depth_usd = NAN

    def on_event(self, state: Any, ev: Any) -> None:
        """Sample the book when ``sample_ms`` of event time has passed since the last sample."""
        ts = ev.ts_ns
        if ts < self._next:
            return
        book = state.book
        bids = book.levels(Side.BUY, self._n)
        asks = book.levels(Side.SELL, self._n) if bids else ()
        if bids and asks:
            bq = sum(float(s) for _, s in bids)
            aq = sum(float(s) for _, s in asks)
            bn = sum(float(p) * float(s) for p, s in bids)
            an = sum(float(p) * float(s) for p, s in asks)
            bb, b1 = float(bids[0][0]), float(bids[0][1])
            ba, a1 = float(asks[0][0]), float(asks[0][1])
        elif type(ev) is Quote:
            bb, b1, ba, a1 = float(ev.bid), float(ev.bid_size), float(ev.ask), float(ev.ask_size)
            bq, aq, bn, an = b1, a1, bb * b1, ba * a1
        else:
            return
        self._next = ts + self._step
        total = bq + aq
        mid = (bb + ba) / 2.0
        if not (total > 0 and mid > 0):
            return
        imb = (bq - aq) / total
        self.imbalance = imb
        self._pressure.update(imb)
        self.spread_bps = (ba - bb) / mid * 1e4
        top = b1 + a1
        micro = (bb * a1 + ba * b1) / top if top > 0 else mid
        self.micro_bps = (micro - mid) / mid * 1e4
        self.depth_usd = bn + an

    def interpret(self, ts_ns: int) -> Interpretation | None:
        """Book-pressure direction; None before 3 samples (and always on bar-only markets)."""
        p = self.params
        n = self._pressure.n
        if n < 3:
            return None
        pr = self._pressure.mean
        d = sign(pr, p["min_imbalance"] - 1e-12) if abs(pr) >= p["min_imbalance"] else 0
        spread = max(0.0, self.spread_bps)
        conf = min(1.0, n / p["half_life"]) / (1.0 + spread / 10.0)
        heavy = "bids outweigh asks" if pr >= 0 else "asks outweigh bids"
        ratio = (1 + abs(pr)) / (1 - abs(pr)) if abs(pr) < 1 else math.inf
        reason = (f"{heavy} {ratio:.1f}:1 in the top {self._n} levels (pressure {pr:+.2f}), "
                  f"spread {spread:.1f} bp, microprice {self.micro_bps:+.1f} bp from mid")
        return self.make(d, clip(120.0 * abs(pr), 0.0, 100.0) if d else 0.0, conf, reason)

    def features(self) -> dict[str, float]:
        """See the class docstring; nan before the first sample."""
        return {
            "orderbook.imbalance": self.imbalance,
            "orderbook.pressure": self._pressure.mean if self._pressure.n else NAN,
            "orderbook.spread_bps": self.spread_bps,
            "orderbook.micro_bps": self.micro_bps,
            "orderbook.depth_usd": self.depth_usd,
        }
