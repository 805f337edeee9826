"""Time-ordered walk-forward splits with purging and an embargo: no training row sees the test period.

The windows are the research plugin's (:class:`perpbot.plugins.research.spec.WalkForward`,
``--walk-forward train=90d,test=30d[,step=30d]``): rolling ``[train_start, test_start)`` then
``[test_start, test_end)``, half-open. On top of the time cut, two rules keep a label from
leaking (the purging and embargo of M. Lopez de Prado, *Advances in Financial Machine Learning*,
2018, ch. 7):

- **purge**: a training row whose label window ends at or after the test start
  (``label_end_ns >= test_start``) is dropped -- its label was computed from test-period prices;
- **embargo**: training rows with ``ts_ns >= test_start - embargo_ns`` are dropped as well
  (``embargo_ns`` must be at least the horizon, ``horizon * every_ns``, else the split is refused).

:func:`check_split` is the guard every fit goes through: it raises :class:`LeakError` when a
training row's label window reaches the test period or a training row is not strictly before
every test row. The same rules split a training window into its fit part and its calibration
tail (:func:`fit_calibration_split`).
"""

from __future__ import annotations

import attrs
import numpy as np

from perpbot.core.errors import ConfigError, PerpbotError
from perpbot.plugins.research.spec import WalkForward, parse_walk_forward

__all__ = ["Split", "LeakError", "walk_forward_splits", "check_split", "fit_calibration_split", "parse_walk_forward",
           "WalkForward"]


class LeakError(PerpbotError):
    """A split would let training rows see test-period prices (a bug, never a user input)."""

    exit_code = 7


@attrs.frozen(eq=False)
class Split:
    """One walk-forward window: row indices and its times (ns, half-open windows)."""

    window: int
    train: np.ndarray
    test: np.ndarray
    train_start: int
    test_start: int
    test_end: int


def check_split(ts_ns: np.ndarray, label_end_ns: np.ndarray, train: np.ndarray, test: np.ndarray,
                embargo_ns: int) -> None:
    """Refuse a leaking split.

    :param ts_ns: row times (int64 ns); :param label_end_ns: the instant each row's label is known.
    :param train: / :param test: index arrays into them.
    :raises LeakError: a train row at or after the first test row, a train row's label known at
        or after the first test row, or a train row inside the embargo before the test.
    """
    if not len(train) or not len(test):
        return
    first_test = int(ts_ns[test].min())
    last_train = int(ts_ns[train].max())
    last_label = int(label_end_ns[train].max())
    if last_train >= first_test:
        raise LeakError(f"ml: split leaks: a training row at {last_train} is not before the first test row at {first_test}")
    if last_label >= first_test:
        raise LeakError(f"ml: split leaks: a training row's label is known at {last_label}, inside the test period "
                        f"(starts {first_test}); purge rows whose horizon reaches the test")
    if last_train >= first_test - embargo_ns:
        raise LeakError(f"ml: split leaks: a training row at {last_train} is inside the {embargo_ns} ns embargo before "
                        f"the test at {first_test}")


def _train_mask(ts_ns, label_end_ns, start: int, test_start: int, embargo_ns: int) -> np.ndarray:
    return (ts_ns >= start) & (ts_ns < test_start - embargo_ns) & (label_end_ns < test_start)


def walk_forward_splits(ts_ns: np.ndarray, label_end_ns: np.ndarray, wf: WalkForward, *, embargo_ns: int,
                        horizon_ns: int, min_rows: int = 1) -> list[Split]:
    """The walk-forward windows over rows sorted by time, purged and embargoed.

    :param ts_ns: row times, int64 ns, non-decreasing. :param label_end_ns: per row, when its label is known.
    :param embargo_ns: gap before each test start, ns; must be >= ``horizon_ns``.
    :param min_rows: windows whose train or test has fewer rows are left out.
    :returns: the splits, oldest first (each passed through :func:`check_split`).
    :raises ConfigError: an embargo shorter than the horizon, rows not in time order, or no window
        fitting the data's span (the message gives the span and the windows' length).
    """
    if embargo_ns < horizon_ns:
        raise ConfigError(f"ml: --embargo {embargo_ns // 10**9}s is shorter than the horizon ({horizon_ns // 10**9}s): "
                          "labels would overlap the test period")
    if len(ts_ns) and np.any(np.diff(ts_ns) < 0):
        raise ConfigError("ml: rows are not in time order (walk-forward needs them sorted by ts_ns)")
    if not len(ts_ns):
        raise ConfigError("ml: no labelled rows to split")
    out = []
    for w, (start, test_start, test_end) in enumerate(wf.windows(int(ts_ns[0]), int(ts_ns[-1]) + 1)):
        train = np.flatnonzero(_train_mask(ts_ns, label_end_ns, start, test_start, embargo_ns))
        test = np.flatnonzero((ts_ns >= test_start) & (ts_ns < test_end))
        if len(train) < min_rows or len(test) < min_rows:
            continue
        check_split(ts_ns, label_end_ns, train, test, embargo_ns)
        out.append(Split(w, train, test, start, test_start, test_end))
    if not out:
        days = (int(ts_ns[-1]) - int(ts_ns[0])) / 86400e9
        raise ConfigError(f"ml: --walk-forward train={wf.train_s // 86400}d,test={wf.test_s // 86400}d does not fit the "
                          f"data's {days:.1f} days with {min_rows}+ rows per side (shorten the windows or add data)")
    return out


def fit_calibration_split(ts_ns: np.ndarray, label_end_ns: np.ndarray, rows: np.ndarray, *, fraction: float,
                          embargo_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Split training rows (sorted by time) into a fit part and a later calibration part.

    The calibration part is the last ``fraction`` of the rows' time span; fit rows are purged and
    embargoed against it like train against test. :returns: ``(fit, calibrate)`` index arrays.
    """
    t0, t1 = int(ts_ns[rows].min()), int(ts_ns[rows].max())
    cut = t1 - int((t1 - t0) * fraction)
    sub_ts, sub_end = ts_ns[rows], label_end_ns[rows]
    fit = rows[(sub_ts < cut - embargo_ns) & (sub_end < cut)]
    cal = rows[sub_ts >= cut]
    check_split(ts_ns, label_end_ns, fit, cal, embargo_ns)
    return fit, cal
