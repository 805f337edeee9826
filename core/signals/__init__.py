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

Layout: :mod:`~perpbot.core.signals.scores` holds :class:`Scores`,
:class:`SignalConfig`, :func:`squash` and :func:`ratio_score`;
:mod:`~perpbot.core.signals.engine` holds :class:`SignalEngine` (the per-event
hot path). Import every name from ``perpbot.core.signals``; each one's
``__module__`` is ``"perpbot.core.signals"`` so stored journal state keeps naming
them ``perpbot.core.signals:Scores`` etc. This package imports only
:mod:`perpbot.core.model` and :mod:`perpbot.core.params` of perpbot.
"""

from __future__ import annotations

from perpbot.core.signals.engine import SignalEngine
from perpbot.core.signals.scores import Scores, SignalConfig, ratio_score, squash

__all__ = ["Scores", "SignalConfig", "SignalEngine", "squash", "ratio_score"]

# one stable public home per name (journal codec "module:Qualname", pickling, repr)
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
