"""The per-market signal engine: :class:`SignalEngine`, O(1) per event.

The formulas and the sampling scheme are in the :mod:`perpbot.core.signals`
docstring; import the engine from there.
"""

from __future__ import annotations

import math
from decimal import Decimal
from itertools import islice
from typing import Any

from perpbot.core.model import Bar, BookDelta, BookSnapshot, FundingRate, MarketInfo, Quote, Trade
from perpbot.core.signals.scores import LN2, NS, Scores, SignalConfig, ratio_score, squash

_DZERO = Decimal(0)


def _lam(half_life_s: float) -> float:
    return LN2 / half_life_s


class SignalEngine:
    """Keeps one market's :class:`Scores` current; O(1) time and memory per event.

    :param config: constants of the scores (defaults: :class:`SignalConfig`).

    Call :meth:`on_event` after ``state.apply(ev)`` for every event of the market.
    """

    __slots__ = (
        "config",
        "_sample_ns",
        "_book_ns",
        "_next_sample_ns",
        "_next_book_ns",
        "_next_due_ns",
        "_bar_mode",
        "_tick_seen",
        "_last_sample_ns",
        "_last_book_ns",
        "_first_sample_ns",
        "_last_price",
        "_vol_acc",
        "_bars",
        # decay rates
        "_l_mf",
        "_l_ms",
        "_l_vs",
        "_l_vl",
        "_l_qs",
        "_l_ql",
        "_l_ob",
        "_l_dp",
        # decayed sums and elapsed-time weights
        "_m_f",
        "_m_s",
        "_rv_s",
        "_w_vs",
        "_rv_l",
        "_w_vl",
        "_q_s",
        "_w_qs",
        "_q_l",
        "_w_ql",
        "_ob",
        "_w_ob",
        "_dp",
        "_w_dp",
    )

    def __init__(self, config: SignalConfig | None = None):
        self.config = config = config or SignalConfig()
        self._sample_ns = config.sample_interval_ms * 1_000_000
        self._book_ns = config.book_interval_ms * 1_000_000
        self._reset()

    def _reset(self) -> None:
        """Forget all history (new engine state, same config)."""
        self._next_sample_ns = 0
        self._next_book_ns = 0
        self._next_due_ns = 0
        self._bar_mode = False
        self._tick_seen = False
        self._last_sample_ns = 0
        self._last_book_ns = 0
        self._first_sample_ns = 0
        self._last_price = 0.0
        self._vol_acc = _DZERO
        self._bars = 0
        self._set_rates(None)
        self._m_f = self._m_s = 0.0
        self._rv_s = self._w_vs = self._rv_l = self._w_vl = 0.0
        self._q_s = self._w_qs = self._q_l = self._w_ql = 0.0
        self._ob = self._w_ob = self._dp = self._w_dp = 0.0

    def _set_rates(self, bar_interval_s: float | None) -> None:
        c = self.config

        def hl(seconds: float, bars: float) -> float:
            if bar_interval_s is None:
                return seconds
            return max(seconds, bars * bar_interval_s)

        self._l_mf = _lam(hl(c.momentum_fast_half_life_s, c.momentum_fast_bars))
        self._l_ms = _lam(hl(c.momentum_slow_half_life_s, c.momentum_slow_bars))
        self._l_vs = _lam(hl(c.volatility_short_half_life_s, c.volatility_short_bars))
        self._l_vl = _lam(hl(c.volatility_long_half_life_s, c.volatility_long_bars))
        self._l_qs = _lam(hl(c.volume_short_half_life_s, c.volume_short_bars))
        self._l_ql = _lam(hl(c.volume_long_half_life_s, c.volume_long_bars))
        self._l_ob = _lam(c.orderbook_half_life_s)
        self._l_dp = _lam(c.depth_half_life_s)

    # -- hot path ---------------------------------------------------------------

    def on_event(self, state: Any, ev: Any) -> None:
        """Update ``state.scores`` after ``state.apply(ev)``.

        Per event: a type check and a timestamp compare (plus a Decimal add of a
        trade's size); the sampling work runs at most every
        ``sample_interval_ms`` / ``book_interval_ms`` of event time.
        """
        t = type(ev)
        if t is Quote or t is BookDelta:
            pass
        elif t is Trade:
            self._vol_acc += ev.size  # Decimal add (~50 ns); converted to float once per sample
        elif t is BookSnapshot:
            self._next_book_ns = 0  # a fresh book: rescore it now
            self._next_due_ns = 0
        else:
            self._on_other(state, ev, t)
            return
        ts = ev.ts_ns
        if ts >= self._next_due_ns:
            self._on_due(state, ts)

    # -- sampling -----------------------------------------------------------------

    def _scores(self, state: Any) -> Scores:
        sc = state.scores
        if sc is None:
            sc = state.scores = Scores()
        return sc

    def _on_due(self, state: Any, ts: int) -> None:
        if not self._tick_seen:
            if self._bar_mode:  # ticks supersede bars: restart the averages on the finer source
                self._reset()
            self._tick_seen = True
        sc = self._scores(state)
        sc.mode = "ticks"
        if ts >= self._next_sample_ns:
            price = self._price(state)
            if price is not None:
                vol = float(self._vol_acc)
                self._vol_acc = _DZERO
                self._sample(sc, ts, price, vol)
                self._next_sample_ns = ts + self._sample_ns
        if ts >= self._next_book_ns:
            self._book(state, sc, ts)
            self._next_book_ns = ts + self._book_ns
        self._next_due_ns = min(self._next_sample_ns, self._next_book_ns)

    @staticmethod
    def _price(state: Any) -> float | None:
        book = state.book
        bids = book.bids
        asks = book.asks
        if state.book_ready and bids and asks:
            bb = bids.peekitem(-1)[0]
            ba = asks.peekitem(0)[0]
            if bb < ba:
                return (float(bb) + float(ba)) * 0.5
        q = state.quote
        if q is not None and q.bid < q.ask:
            return (float(q.bid) + float(q.ask)) * 0.5
        if state.last_price is not None:
            return float(state.last_price)
        if state.oracle_price is not None:
            return float(state.oracle_price)
        return None

    def _sample(self, sc: Scores, ts: int, price: float, volume: float) -> None:
        """One price/volume observation: update the decayed sums, then the scores."""
        if price <= 0.0 or not math.isfinite(price):
            return
        if self._last_sample_ns == 0:
            self._first_sample_ns = ts
            self._last_sample_ns = ts
            self._last_price = price
            sc.samples = 1
            sc.updated_ns = ts
            return
        dt = (ts - self._last_sample_ns) / NS
        if dt <= 0.0:
            return
        r = math.log(price / self._last_price)
        r2 = r * r
        exp = math.exp
        # momentum: decayed sums of returns
        lf = self._l_mf
        ls = self._l_ms
        self._m_f = self._m_f * exp(-lf * dt) + r
        self._m_s = self._m_s * exp(-ls * dt) + r
        # realized variance per second, short and long
        lam = self._l_vs
        d = exp(-lam * dt)
        self._rv_s = self._rv_s * d + r2
        self._w_vs = self._w_vs * d + (1.0 - d) / lam
        lam = self._l_vl
        d = exp(-lam * dt)
        self._rv_l = self._rv_l * d + r2
        self._w_vl = self._w_vl * d + (1.0 - d) / lam
        # traded volume per second, short and long
        lam = self._l_qs
        d = exp(-lam * dt)
        self._q_s = self._q_s * d + volume
        self._w_qs = self._w_qs * d + (1.0 - d) / lam
        lam = self._l_ql
        d = exp(-lam * dt)
        self._q_l = self._q_l * d + volume
        self._w_ql = self._w_ql * d + (1.0 - d) / lam
        self._last_price = price
        self._last_sample_ns = ts

        # scores
        c = self.config
        var_l = self._rv_l / self._w_vl
        var_s = self._rv_s / self._w_vs
        if var_l > 0.0:
            sigma = math.sqrt(var_l)
            k = c.momentum_k
            fast = squash(self._m_f * math.sqrt(2.0 * lf) / sigma, k)
            slow = squash(self._m_s * math.sqrt(2.0 * ls) / sigma, k)
            ratio = var_s / var_l
            sc.volatility = ratio_score(ratio, c.volatility_k)
            sc.volatility_ratio = ratio
        else:
            sigma = 0.0
            fast = slow = 50.0
        w = c.momentum_fast_weight
        sc.momentum_fast = fast
        sc.momentum_slow = slow
        sc.momentum = w * fast + (1.0 - w) * slow
        sc.sigma_1s = sigma
        rate_l = self._q_l / self._w_ql
        if rate_l > 0.0:
            ratio = (self._q_s / self._w_qs) / rate_l
            sc.volume = ratio_score(ratio, c.volume_k)
            sc.volume_ratio = ratio
        sc.samples += 1
        sc.updated_ns = ts
        if self._bar_mode:
            sc.warm = self._bars >= c.warmup_bars and var_l > 0.0
        else:
            sc.warm = (ts - self._first_sample_ns) >= c.warmup_s * NS and var_l > 0.0

    def _book(self, state: Any, sc: Scores, ts: int) -> None:
        """Recompute the order book score from the top N levels (or the quote)."""
        book = state.book
        bids = book.bids
        asks = book.asks
        n = self.config.book_levels
        bk = ak = None
        if state.book_ready and bids and asks:
            # Decimal keys hash slowly: read n keys per side once, sum sizes as Decimal, convert once.
            bk = list(islice(reversed(bids), n))
            ak = list(islice(asks, n))
            if not bk[0] < ak[0]:
                bk = None
        if bk is not None:
            bid_px = float(bk[0])
            ask_px = float(ak[0])
            b = float(sum([bids[k] for k in bk], _DZERO))
            a = float(sum([asks[k] for k in ak], _DZERO))
        else:
            q = state.quote
            if q is None or not (q.bid < q.ask):
                sc.book_known = False
                return
            bid_px = float(q.bid)
            ask_px = float(q.ask)
            b = float(q.bid_size)
            a = float(q.ask_size)
        total = b + a
        if total <= 0.0:
            return
        mid = (bid_px + ask_px) * 0.5
        spread_bps = (ask_px - bid_px) / mid * 1e4
        imbalance = (b - a) / total
        # depth baseline (decayed average of top-N depth)
        if self._last_book_ns == 0:
            dt = 0.0
        else:
            dt = (ts - self._last_book_ns) / NS
        self._last_book_ns = ts
        lam = self._l_dp
        if dt > 0.0:
            d = math.exp(-lam * dt)
            self._dp = self._dp * d + total * (1.0 - d)
            self._w_dp = self._w_dp * d + (1.0 - d)
        elif self._w_dp == 0.0:
            self._dp = total
            self._w_dp = 1.0
        depth_avg = self._dp / self._w_dp
        q_depth = min(1.0, total / depth_avg) if depth_avg > 0.0 else 1.0
        q_spread = 1.0 / (1.0 + spread_bps / self.config.spread_ref_bps)
        x = imbalance * q_spread * q_depth
        lam = self._l_ob
        if dt > 0.0:
            d = math.exp(-lam * dt)
            self._ob = self._ob * d + x * (1.0 - d)
            self._w_ob = self._w_ob * d + (1.0 - d)
        elif self._w_ob == 0.0:
            self._ob = x
            self._w_ob = 1.0
        avg = self._ob / self._w_ob
        sc.orderbook = min(100.0, max(0.0, 50.0 + 50.0 * avg))
        sc.imbalance = imbalance
        sc.spread_bps = spread_bps
        sc.depth = total
        sc.book_known = True
        if sc.updated_ns < ts:
            sc.updated_ns = ts

    # -- rare events ------------------------------------------------------------------

    def _on_other(self, state: Any, ev: Any, t: type) -> None:
        if t is Bar:
            if self._tick_seen:
                return  # ticks are the finer source; bars from a second feed are ignored
            sc = self._scores(state)
            if not self._bar_mode:
                self._bar_mode = True
                self._set_rates(float(ev.interval_s))
                sc.mode = "bars"
                sc.book_known = False
                sc.orderbook = 50.0
            self._bars += 1
            self._sample(sc, ev.ts_ns, float(ev.close), float(ev.volume))
        elif t is FundingRate or t is MarketInfo:
            self.update_funding(state)

    def update_funding(self, state: Any) -> None:
        """Recompute the funding score from ``state.funding_rate_1h`` (else the last settled rate)."""
        sc = self._scores(state)
        rate = state.funding_rate_1h
        if rate is None and state.last_funding is not None:
            rate = state.last_funding.rate_1h
        if rate is None:
            sc.funding = 50.0
            sc.funding_known = False
            sc.funding_rate_1h = None
            return
        r = float(rate)
        sc.funding_rate_1h = r
        sc.funding_known = True
        sc.funding = 50.0 - 50.0 * math.tanh(r / self.config.funding_scale_1h)
