"""Feature rows -> a labelled data set: one row per signal, labelled by whether it beat its costs.

Input rows are dicts as :func:`perpbot.core.analysis.feature_rows` yields them: ``ts_ns`` (int,
ns since the epoch, UTC), ``ticker`` (str), ``close`` (the market's last price at ``ts_ns``)
and features named ``"<analyzer>.<name>"`` (numbers; ``None``/NaN for "not known yet").

The signal of a row is the SIGN of its direction column (``direction_key``, by default the
confluence direction ``confluence.direction`` that :func:`perpbot.plugins.ml.features.signal_rows`
adds: > 0 long, < 0 short, 0 or missing: no signal, row dropped). Its label (1/0) says whether the signal's forward return over ``horizon`` rows of
the same ticker beats the round-trip cost::

    r = direction * (close[i + horizon] / close[i] - 1)        (a fraction)
    label = 1 if r > cost else 0,   cost = 2 * fee + 2 * slippage (entry and exit)

The default fee is dYdX v4's tier-1 taker rate, 5 bp
(:data:`perpbot.exchanges.paper.config.DYDX_STANDARD_TIERS`, from v4-chain
``protocol/x/feetiers/types/genesis.go`` standard params), paid on entry and on exit; slippage
defaults to 0 (set it for the market's spread and impact). ``label_end_ns`` of a row is the
time of the row ``horizon`` rows later: the label depends on prices up to that instant, which
is what the walk-forward splits purge on (:mod:`.splits`). A row whose horizon runs past the
data's end has no label and is dropped. Rows must be evenly spaced per ticker (``feature_rows``
samples every ``every_ns``); a gap in a ticker's rows longer than 1.5 spacings makes the rows
whose horizon spans it unlabelled (a return across missing data is not the horizon's return).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Iterable

import attrs
import numpy as np

from perpbot.core.errors import ConfigError, DataError

__all__ = ["Dataset", "Costs", "build_dataset", "RESERVED", "DEFAULT_DIRECTION_KEY"]

#: keys of a feature row that are not features
RESERVED = ("ts_ns", "ticker", "close")
#: the column whose sign is the signal's direction, unless told otherwise
DEFAULT_DIRECTION_KEY = "confluence.direction"


def _default_fee() -> Decimal:
    from perpbot.exchanges.paper.config import DYDX_STANDARD_TIERS

    return DYDX_STANDARD_TIERS[0].taker


@attrs.frozen
class Costs:
    """Round-trip costs of a signal, as fractions of notional.

    :param fee: fee rate per side (default dYdX tier-1 taker, 0.0005).
    :param slippage: slippage per side (default 0).
    :raises ConfigError: a negative or non-finite value (named).
    """

    fee: Decimal = attrs.field(factory=_default_fee)
    slippage: Decimal = Decimal(0)

    def __attrs_post_init__(self):
        for name in ("fee", "slippage"):
            v = getattr(self, name)
            if not isinstance(v, Decimal) or not v.is_finite() or v < 0 or v >= 1:
                raise ConfigError(f"ml: {name} = {v!r} must be a fraction in [0, 1) (e.g. 0.0005 for 5 bp)")

    @property
    def round_trip(self) -> Decimal:
        """``2 * fee + 2 * slippage``: entry and exit."""
        return 2 * self.fee + 2 * self.slippage


@attrs.frozen(eq=False)
class Dataset:
    """A labelled data set, rows in time order (ties by ticker).

    Arrays have one entry per row: ``X`` float64 ``(n, len(features))`` (NaN: unknown), ``ts_ns``
    and ``label_end_ns`` int64, ``ticker`` object, ``direction`` int8 (+1/-1), ``fwd_return``
    float64 (the signed return, a fraction), ``y`` int8 (1: beat the costs).
    """

    features: tuple[str, ...]
    X: np.ndarray
    y: np.ndarray
    ts_ns: np.ndarray
    label_end_ns: np.ndarray
    ticker: np.ndarray
    direction: np.ndarray
    fwd_return: np.ndarray
    horizon: int
    every_ns: int
    cost: float

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> "Dataset":
        """The rows at ``idx`` (an index or boolean array), same features."""
        return attrs.evolve(self, X=self.X[idx], y=self.y[idx], ts_ns=self.ts_ns[idx],
                            label_end_ns=self.label_end_ns[idx], ticker=self.ticker[idx],
                            direction=self.direction[idx], fwd_return=self.fwd_return[idx])


def _number(row: dict, key: str) -> float:
    v = row.get(key)
    if v is None:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float, Decimal, np.integer, np.floating)):
        raise DataError(f"ml: feature {key} = {v!r} at ts_ns {row.get('ts_ns')} ({row.get('ticker')}) is not a number")
    return float(v)


def build_dataset(rows: Iterable[dict], *, horizon: int, costs: Costs, direction_key: str = DEFAULT_DIRECTION_KEY,
                  features: tuple[str, ...] | None = None) -> Dataset:
    """Label feature rows (see the module docstring for the formula).

    :param rows: feature-row dicts (any order; sorted here by time).
    :param horizon: forward bars, >= 1.
    :param direction_key: the column whose sign is the signal.
    :param features: the feature names to use, in order (default: every key of the rows but
        :data:`RESERVED`, sorted); a name a row lacks is NaN in that row.
    :returns: a :class:`Dataset` (possibly empty: no signal rows).
    :raises ConfigError: horizon < 1; :raises DataError: no rows, a non-numeric feature, a
        missing direction column, a non-positive close, uneven spacing that gives no spacing.
    """
    if horizon < 1:
        raise ConfigError(f"ml: --horizon {horizon} must be at least 1 bar")
    by_ticker: dict[str, list[dict]] = {}
    names: set[str] = set()
    n_rows = 0
    for row in rows:
        n_rows += 1
        by_ticker.setdefault(str(row["ticker"]), []).append(row)
        names.update(k for k in row if k not in RESERVED)
    if not n_rows:
        raise DataError("ml: the data gave no feature rows (check --data and the time range)")
    if direction_key not in names:
        raise DataError(f"ml: no column {direction_key!r} in the feature rows (the signal's direction; columns: "
                        f"{', '.join(sorted(names)[:12])})")
    feats = tuple(sorted(names)) if features is None else tuple(features)
    cost = float(costs.round_trip)
    spacings = []
    for trs in by_ticker.values():
        trs.sort(key=lambda r: r["ts_ns"])
        spacings.extend(b["ts_ns"] - a["ts_ns"] for a, b in zip(trs, trs[1:]))
    if not spacings:
        raise DataError("ml: every ticker has a single feature row; a label needs later rows")
    every_ns = int(np.median(spacings))
    out: list[tuple] = []
    for ticker, trs in by_ticker.items():
        ts = [int(r["ts_ns"]) for r in trs]
        closes = [_number(r, "close") for r in trs]
        for i, row in enumerate(trs):
            d = _number(row, direction_key)
            if math.isnan(d) or d == 0 or i + horizon >= len(trs):
                continue
            if ts[i + horizon] - ts[i] > horizon * every_ns * 1.5:
                continue  # a gap inside the horizon: no honest label
            c0, c1 = closes[i], closes[i + horizon]
            if not (c0 > 0 and c1 > 0):
                raise DataError(f"ml: close {row.get('close')!r} at ts_ns {ts[i]} ({ticker}) is not a positive price")
            sign = 1 if d > 0 else -1
            r = sign * (c1 / c0 - 1.0)
            out.append((ts[i], ticker, ts[i + horizon], sign, r, [_number(row, k) for k in feats]))
    out.sort(key=lambda t: (t[0], t[1]))
    n = len(out)
    X = np.array([t[5] for t in out], dtype=np.float64).reshape(n, len(feats))
    fwd = np.array([t[4] for t in out], dtype=np.float64)
    return Dataset(
        features=feats, X=X, y=(fwd > cost).astype(np.int8), ts_ns=np.array([t[0] for t in out], dtype=np.int64),
        label_end_ns=np.array([t[2] for t in out], dtype=np.int64), ticker=np.array([t[1] for t in out], dtype=object),
        direction=np.array([t[3] for t in out], dtype=np.int8), fwd_return=fwd, horizon=horizon, every_ns=every_ns,
        cost=cost,
    )
