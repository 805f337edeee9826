"""Continuous 0-100 signal scores per market, updated on every event in O(1).

One :class:`SignalEngine` per market. The bot calls
:meth:`SignalEngine.on_event` with the market's :class:`~perpbot.core.state.MarketState`
right after ``state.apply(ev)``, for EVERY event; the engine keeps
``state.scores`` (a :class:`Scores`, created on first use) current. Scores are
plain ``float`` values (they are not money); prices and sizes are converted
from Decimal once per sample, never per book level update.

Time basis
----------
Everything is driven by the events' own timestamps (``ev.ts_ns``), so replay
and live give identical scores. Averages are exponentially weighted with
half-lives in seconds (:class:`SignalConfig`). With decay rate
``lam = ln 2 / half_life`` and ``d = exp(-lam * dt)`` for the ``dt`` seconds
since the last update, every average is one of:

- a decayed sum ``S <- S * d + x`` (sum of the recent ``x``, weight halving
  every half-life);
- the matching decayed elapsed time ``W <- W * d + (1 - d) / lam``, which turns
  a decayed sum into an unbiased per-second rate ``S / W`` from the very first
  update (no start-up bias).

Sampling (why this is cheap). Tick data arrives far faster than it carries
information: the Binance sample has 120k quotes and 13k depth messages in six
minutes. The engine therefore does only O(1) bookkeeping per event (a type
check, a timestamp compare, and for a :class:`~perpbot.core.model.Trade` one
Decimal addition of its size; Decimal-to-float conversions cost ~250 ns each, so
they happen only per sample) and does the real work on a grid of
event time:

- prices and traded volume are sampled at most every ``sample_interval_ms``
  (default 1000 ms): one log return of the mid price and the volume traded
  since the previous sample;
- the order book score is recomputed at most every ``book_interval_ms``
  (default 500 ms), reading the top ``book_levels`` levels per side (O(N) with
  N = 10, independent of the number of events).

A sample is taken on the first event at or after the grid point, with the true
``dt`` since the previous sample, so irregular arrival does not bias the
averages. Price source, first available of: the L2 book mid (once a snapshot
arrived and the book is not crossed), the venue's quote mid, the last trade
price, the oracle price.

Bar-only data (a feed of :class:`~perpbot.core.model.Bar` events and no ticks): every
bar is one sample (its close, its volume, ``dt`` from the bar close times).
Because one sample per bar is far coarser than one per second, each half-life
is floored at a number of bar intervals (``*_bars`` fields of
:class:`SignalConfig`). The order book score stays 50 (``book_known`` False).
Once any tick event (trade, quote, book) has been seen, Bar events are ignored
by the engine (the ticks are the finer source).

The scores (each clipped to [0, 100])
-------------------------------------
Squashing: ``squash(x, k) = 50 + 50 * tanh(x / k)``: 50 means "nothing
unusual", monotone, bounded. For a ratio ``R`` (short average over long
average of the market's own history) the argument is ``ln R``; with ``k = 2``
this equals ``100 * R / (1 + R)`` exactly (R = 1 -> 50, R = 3 -> 75,
R = 1/3 -> 25).

momentum (signed, 50-centred; > 50 up-trend, < 50 down-trend)
    ``r`` = log return of the sampled price. Decayed sums of returns
    ``M_f`` (half-life ``momentum_fast_half_life_s``, 30 s) and ``M_s``
    (``momentum_slow_half_life_s``, 300 s) are the recent moves. For a driftless
    random walk with per-second variance ``sigma^2``, ``Var(M) = sigma^2 / (2 lam)``,
    so ``z = M * sqrt(2 lam) / sigma`` is a move measured in standard deviations
    (``sigma^2`` from the long volatility average below).
    ``momentum_fast = squash(z_f, momentum_k)``, ``momentum_slow = squash(z_s, momentum_k)``,
    ``momentum = w * momentum_fast + (1 - w) * momentum_slow`` with
    ``w = momentum_fast_weight`` (0.5).

volume (direction-free; > 50 busier than usual)
    ``R = rate_short / rate_long``: traded base units per second over the short
    (30 s) and long (600 s) half-lives, each a decayed sum over its decayed elapsed
    time. ``volume = squash(ln R, volume_k)`` (k = 2: ``100 R / (1 + R)``).

volatility (direction-free; > 50 more volatile than usual)
    Realized variance per second ``sigma^2 = sum_decayed(r^2) / W`` over the
    short (60 s) and long (900 s) half-lives; ``R = sigma_short^2 / sigma_long^2``;
    ``volatility = squash(ln R, volatility_k)`` (k = 2: ``100 R / (1 + R)``).

orderbook (signed, 50-centred; > 50 bid-heavy = buying pressure)
    Over the best ``book_levels`` (10) levels per side, ``B`` and ``A`` = total
    bid and ask size (base units): imbalance ``I = (B - A) / (B + A)`` in [-1, 1].
    It is shrunk toward 0 when the book is poor:
    ``q_spread = 1 / (1 + spread_bps / spread_ref_bps)`` (spread of best ask over
    best bid, in bps of mid; ``spread_ref_bps`` 5) and
    ``q_depth = min(1, D / D_avg)`` (``D = B + A`` against its own decayed average,
    half-life ``depth_half_life_s``). The product ``I * q_spread * q_depth`` is
    averaged with half-life ``orderbook_half_life_s`` (5 s) to ``I_avg``;
    ``orderbook = 50 + 50 * I_avg``. Without a book the venue's quote is used (one
    level). Bar-only data: 50.

funding (signed, 50-centred; defined as ATTRACTIVENESS FOR A LONG)
    ``rate`` = the running 1-hour funding rate (``state.funding_rate_1h``, else
    the last settled one); positive means longs pay shorts.
    ``funding = 50 - 50 * tanh(rate / funding_scale_1h)`` (scale 0.0001 = 1 bp per
    hour). Below 50: holding a long costs funding (a short collects it); above 50:
    a long collects. A short's attractiveness is ``100 - funding``. No rate known:
    50 (``funding_known`` False).

``warm`` is True once the engine has seen ``warmup_s`` (60 s) of sampled event
time (bar data: ``warmup_bars`` bars) and a non-zero variance: before that the
scores exist but are not trustworthy.
"""

from __future__ import annotations

import math
from decimal import Decimal
from itertools import islice
from typing import Any

import attrs

from perpbot.core.model import Bar, BookDelta, BookSnapshot, FundingRate, MarketInfo, Quote, Trade
from perpbot.core.params import param

__all__ = ["Scores", "SignalConfig", "SignalEngine", "squash", "ratio_score"]

NS = 1_000_000_000
LN2 = math.log(2.0)
_DZERO = Decimal(0)


def squash(x: float, k: float) -> float:
    """``50 + 50 * tanh(x / k)``: maps any real ``x`` into (0, 100), 0 -> 50."""
    return 50.0 + 50.0 * math.tanh(x / k)


def ratio_score(ratio: float, k: float) -> float:
    """Score of a short/long ratio ``R > 0``: ``squash(ln R, k)``; k = 2 gives ``100 R / (1 + R)``.

    ``R <= 0`` (nothing in the short window) scores 0; a non-finite ``R`` scores 50.
    """
    if ratio <= 0.0:
        return 0.0
    if not math.isfinite(ratio):
        return 50.0
    return 50.0 + 50.0 * math.tanh(math.log(ratio) / k)


def _positive(instance, attribute, value):
    if not (value > 0) or not math.isfinite(value):
        raise ValueError(f"signals: {attribute.name} must be a positive number, got {value!r}")


def _fraction(instance, attribute, value):
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"signals: {attribute.name} must be within [0, 1], got {value!r}")


def _pos_int(instance, attribute, value):
    if value < 1:
        raise ValueError(f"signals: {attribute.name} must be >= 1, got {value!r}")


def _f(default: float, help: str, validator=_positive):
    return param(float(default), help, validator, converter=float)


def _i(default: int, help: str):
    return param(int(default), help, _pos_int, converter=int)


@attrs.frozen
class SignalConfig:
    """Half-lives (seconds), sampling cadence and squashing constants of the scores.

    All fields accept ints, floats, Decimals or numeric strings (stored as float:
    these are signal parameters, not money). See the module docstring for the formulas.
    """

    sample_interval_ms: int = _i(1000, "price/volume sampling grid, ms of event time")
    book_interval_ms: int = _i(500, "order book score recomputed at most this often, ms of event time")
    book_levels: int = _i(10, "levels per side in the order book imbalance")
    momentum_fast_half_life_s: float = _f(30, "fast momentum half-life, seconds")
    momentum_slow_half_life_s: float = _f(300, "slow momentum half-life, seconds")
    momentum_fast_weight: float = _f(0.5, "weight of fast momentum in the momentum composite", _fraction)
    momentum_k: float = _f(2.0, "momentum squash scale: z of k standard deviations -> 50 +/- 38")
    volume_short_half_life_s: float = _f(30, "short volume average half-life, seconds")
    volume_long_half_life_s: float = _f(600, "long (baseline) volume average half-life, seconds")
    volume_k: float = _f(2.0, "volume squash scale on ln(short/long); 2 gives 100R/(1+R)")
    volatility_short_half_life_s: float = _f(60, "short realized-variance half-life, seconds")
    volatility_long_half_life_s: float = _f(900, "long (baseline) realized-variance half-life, seconds")
    volatility_k: float = _f(2.0, "volatility squash scale on ln(var short/var long); 2 gives 100R/(1+R)")
    orderbook_half_life_s: float = _f(5, "smoothing half-life of the book imbalance, seconds")
    depth_half_life_s: float = _f(300, "half-life of the top-N depth baseline, seconds")
    spread_ref_bps: float = _f(5, "spread (bps of mid) at which the book signal is halved")
    funding_scale_1h: float = _f(0.0001, "funding squash scale, per-hour rate (0.0001 = 1 bp/h)")
    warmup_s: float = _f(60, "event time (seconds) of samples before scores are 'warm'")
    warmup_bars: int = _i(20, "bars before scores are 'warm' on bar-only data")
    momentum_fast_bars: float = _f(3, "bar data: floor of the fast momentum half-life, in bars")
    momentum_slow_bars: float = _f(12, "bar data: floor of the slow momentum half-life, in bars")
    volume_short_bars: float = _f(3, "bar data: floor of the short volume half-life, in bars")
    volume_long_bars: float = _f(48, "bar data: floor of the long volume half-life, in bars")
    volatility_short_bars: float = _f(6, "bar data: floor of the short variance half-life, in bars")
    volatility_long_bars: float = _f(96, "bar data: floor of the long variance half-life, in bars")

    def __attrs_post_init__(self):
        pairs = (
            ("momentum_fast_half_life_s", "momentum_slow_half_life_s"),
            ("volume_short_half_life_s", "volume_long_half_life_s"),
            ("volatility_short_half_life_s", "volatility_long_half_life_s"),
        )
        for short, long in pairs:
            if getattr(self, short) >= getattr(self, long):
                raise ValueError(
                    f"signals: {short} ({getattr(self, short)}) must be shorter than {long} ({getattr(self, long)})"
                )


@attrs.define(slots=True, eq=False)
class Scores:
    """One market's scores, each a float in [0, 100] (see :mod:`perpbot.core.signals` for formulas).

    Signed scores are centred on 50: ``momentum*`` (> 50 up-trend), ``orderbook``
    (> 50 bid-heavy) and ``funding`` (attractiveness for a LONG: > 50 longs are
    paid). ``volume`` and ``volatility`` are direction-free (> 50: more than the
    market's own recent baseline).

    Diagnostics (for tables and dashboards): ``imbalance`` (raw top-N imbalance,
    -1..1), ``spread_bps``, ``depth`` (top-N bid+ask size, base units),
    ``volume_ratio`` and ``volatility_ratio`` (short/long), ``sigma_1s`` (per-second
    standard deviation of log returns, long average), ``funding_rate_1h`` (float
    per-hour rate or None), ``samples`` (price samples taken), ``mode``
    (``"ticks"`` or ``"bars"``).

    ``strategy_composite`` / :attr:`composite`: set by a composite-scoring strategy
    (the sniper), not by the engine; see :attr:`composite`.
    """

    momentum: float = 50.0
    momentum_fast: float = 50.0
    momentum_slow: float = 50.0
    volume: float = 50.0
    volatility: float = 50.0
    orderbook: float = 50.0
    funding: float = 50.0
    updated_ns: int = 0
    warm: bool = False
    book_known: bool = False
    funding_known: bool = False
    imbalance: float = 0.0
    spread_bps: float | None = None
    depth: float = 0.0
    volume_ratio: float = 1.0
    volatility_ratio: float = 1.0
    sigma_1s: float = 0.0
    funding_rate_1h: float | None = None
    samples: int = 0
    mode: str = ""
    strategy_composite: float | None = None

    @property
    def composite(self) -> float:
        """The deciding strategy's 0-100 conviction for this market (e.g. the sniper's
        direction-aware weighted composite), read by score-aware position sizers.

        The engine does not compute it (weights and direction are a strategy's business):
        a strategy sets ``strategy_composite``. Until one does, reading ``composite``
        raises AttributeError, so ``hasattr(scores, "composite")`` and
        ``getattr(scores, "composite", None)`` both mean "no conviction known".
        """
        value = self.strategy_composite
        if value is None:
            raise AttributeError("composite: no strategy has scored this market yet")
        return value

    def as_dict(self) -> dict:
        """All fields as a plain dict (JSON-ready)."""
        return attrs.asdict(self)


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
