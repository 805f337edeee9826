"""Synthetic feature rows for the ML plugin's tests (no shared data, fast); imported as ``ml_synth``.

:func:`synth_rows` makes hourly rows of one or more markets whose price is a random walk;
with ``signal > 0`` the next bar's return leans on the feature ``t.x`` (so a model can learn
it), ``t.noise`` never matters, ``confluence.direction`` is a random long/short signal.
"""

from __future__ import annotations

import numpy as np

HOUR = 3600 * 10**9
T0 = 1_700_000_000 * 10**9 // HOUR * HOUR


def synth_rows(n: int = 3000, *, tickers=("AAA-USD",), signal: float = 0.0, seed: int = 0, vol: float = 0.01,
               every: int = HOUR) -> list[dict]:
    """Feature-row dicts as ``signal_rows`` yields them (see the module docstring)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, t in enumerate(tickers):
        x = rng.normal(size=n)
        d = rng.choice([-1.0, 1.0], size=n)
        ret = signal * vol * x * d + rng.normal(scale=vol, size=n)  # the signal's side gains when x > 0
        close = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(ret[:-1])]))
        for i in range(n):
            rows.append({"ts_ns": T0 + i * every, "ticker": t, "close": float(close[i]), "t.x": float(x[i]),
                         "t.noise": float(rng.normal()), "confluence.direction": float(d[i]),
                         "confluence.score": float(d[i] * 50)})
    return rows
