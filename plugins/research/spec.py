"""Parsing what a sweep is asked to do: the grid, the search, the objective, the walk-forward windows.

Every bad input is a :class:`~perpbot.core.errors.ConfigError` of one line naming the flag,
the field and the value (with the closest valid name when there is one):

- ``-p NAME=VALUES``: VALUES is a comma-separated list of items, each a value (``55``,
  ``long``) or an inclusive range ``start:stop:step`` of decimals (``45:55:5`` -> 45, 50, 55);
  ranges are computed in exact decimal arithmetic, so ``0.1:0.3:0.1`` gives 0.1, 0.2, 0.3.
- ``--walk-forward train=14d,test=7d[,step=7d]``: durations in ``s``, ``m``, ``h``, ``d`` or
  ``w``; ``step`` defaults to ``test`` (windows that tile the data without overlap of tests).
- ``--objective``: one of :data:`OBJECTIVES`.
"""

from __future__ import annotations

import itertools
import random
import re
from decimal import Decimal, InvalidOperation

import attrs

from perpbot.core.errors import ConfigError
from perpbot.core.params import did_you_mean

__all__ = [
    "OBJECTIVES", "SEARCHES", "Grid", "WalkForward", "check_objective", "check_search", "parse_grid",
    "parse_walk_forward", "check_param_names",
]

#: objective name -> what it is (all maximised); definitions in perpbot.plugins.research.cells
OBJECTIVES = {
    "net_pnl": "final equity - starting equity, USD (fees, funding and open PnL included)",
    "sharpe": "annualised Sharpe of hourly equity returns",
    "sortino": "annualised Sortino of hourly equity returns",
    "calmar": "annualised return / max drawdown",
    "profit_factor": "gross profit / gross loss of closed trades (net of fees)",
}
SEARCHES = ("grid", "random", "optuna")
#: the most cells one sweep may hold (a typo such as 0:100000:1 is refused, not run)
MAX_CELLS = 100_000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@attrs.frozen
class Grid:
    """Parameter name -> the values to try (strings, as a ``--param`` would give them), in flag order."""

    axes: tuple  # ((name, (value, ...)), ...)

    @property
    def names(self) -> list[str]:
        """The parameter names, in the order of the ``-p`` flags."""
        return [n for n, _ in self.axes]

    def cells(self) -> list[dict]:
        """Every combination (the Cartesian product), the last axis varying fastest."""
        names = self.names
        return [dict(zip(names, combo)) for combo in itertools.product(*(v for _, v in self.axes))]

    def size(self) -> int:
        """How many combinations the grid holds."""
        n = 1
        for _, values in self.axes:
            n *= len(values)
        return n

    def sample(self, n: int, seed: int) -> list[dict]:
        """``n`` distinct combinations drawn at random (``random.Random(seed)``), all when ``n`` >= the size."""
        every = self.cells()
        if n >= len(every):
            return every
        return random.Random(seed).sample(every, n)


def _decimal(flag: str, text: str, what: str) -> Decimal:
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise ConfigError(f"{flag}: {what} {text!r} is not a number") from None
    if not d.is_finite():
        raise ConfigError(f"{flag}: {what} {text!r} is not a finite number")
    return d


def _range(flag: str, item: str) -> list[str]:
    parts = item.split(":")
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise ConfigError(f"{flag}: malformed range {item!r} (expected start:stop:step, e.g. 45:55:5)")
    start, stop, step = (_decimal(flag, p.strip(), w) for p, w in zip(parts, ("start", "stop", "step")))
    if step <= 0:
        raise ConfigError(f"{flag}: range {item!r}: step must be > 0, got {parts[2].strip()}")
    if start > stop:
        raise ConfigError(f"{flag}: range {item!r}: start {parts[0].strip()} is above stop {parts[1].strip()}")
    count = int((stop - start) / step) + 1
    if count > MAX_CELLS:
        raise ConfigError(f"{flag}: range {item!r} has {count} values (at most {MAX_CELLS})")
    out, v = [], start
    while v <= stop:
        out.append(_plain(v))
        v += step
    return out


def _plain(d: Decimal) -> str:
    """A decimal without exponent or trailing zeros (``Decimal('50.0')`` -> ``'50'``)."""
    if d == d.to_integral_value():
        return str(d.quantize(Decimal(1)))
    return format(d.normalize(), "f")


def parse_grid(items: list[str] | None) -> Grid:
    """The grid of ``-p NAME=VALUES`` flags (see the module docstring).

    :raises ConfigError: no ``-p`` at all or a name with no values (an empty grid), a
        malformed item, a malformed or empty range, a name given twice, a grid over
        :data:`MAX_CELLS` cells.
    """
    if not items:
        raise ConfigError("sweep: empty grid: give at least one -p NAME=VALUES (e.g. -p entry_threshold=55,60,65)")
    axes: dict[str, list[str]] = {}
    for raw in items:
        flag = f"-p {raw}"
        if "=" not in raw:
            raise ConfigError(f"{flag}: expected NAME=VALUES (e.g. entry_threshold=55,60,65 or exit_threshold=45:55:5)")
        name, _, spec = raw.partition("=")
        name = name.strip()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(f"{flag}: {name!r} is not a parameter name")
        if name in axes:
            raise ConfigError(f"{flag}: parameter {name!r} is given twice; put all its values in one -p")
        values: list[str] = []
        for item in (i.strip() for i in spec.split(",")):
            if not item:
                continue
            for v in (_range(flag, item) if ":" in item else [item]):
                if v not in values:
                    values.append(v)
        if not values:
            raise ConfigError(f"-p {name}: empty grid: no values after '=' (e.g. -p {name}=1,2,3)")
        axes[name] = values
    grid = Grid(tuple((n, tuple(v)) for n, v in axes.items()))
    if grid.size() > MAX_CELLS:
        raise ConfigError(f"sweep: the grid has {grid.size()} cells (at most {MAX_CELLS}); narrow a -p range")
    return grid


def check_param_names(grid: Grid, params_cls: type | None, strategy: str) -> None:
    """Refuse a grid parameter that strategy ``strategy``'s ``Params`` (an attrs class) does not have.

    :raises ConfigError: naming the parameter, the closest real one and the strategy.
    """
    fields = [f.name for f in attrs.fields(params_cls)] if params_cls is not None else []
    for name in grid.names:
        if name not in fields:
            raise ConfigError(f"-p {name}: strategy {strategy} has no parameter {name!r}{did_you_mean(name, fields)}"
                              f" (its parameters: {', '.join(fields) or 'none'})")


def check_objective(name: str) -> str:
    """``name`` when it is one of :data:`OBJECTIVES`; :raises ConfigError: naming the closest."""
    if name not in OBJECTIVES:
        raise ConfigError(f"--objective: unknown objective {name!r}{did_you_mean(name, OBJECTIVES)}"
                          f" (one of: {', '.join(OBJECTIVES)})")
    return name


def check_search(name: str) -> str:
    """``name`` when it is one of :data:`SEARCHES`; :raises ConfigError: naming the closest."""
    if name not in SEARCHES:
        raise ConfigError(f"--search: unknown search {name!r}{did_you_mean(name, SEARCHES)} (one of: {', '.join(SEARCHES)})")
    return name


@attrs.frozen
class WalkForward:
    """Rolling windows, seconds: train ``train_s``, then test ``test_s``, moved by ``step_s``."""

    train_s: int
    test_s: int
    step_s: int

    def windows(self, start_ns: int, end_ns: int) -> list[tuple[int, int, int]]:
        """``[(train_start, train_end = test_start, test_end)]`` ns inside ``[start_ns, end_ns]``.

        A window is kept only when its test period ends at or before ``end_ns``. Train and test
        are half-open (``[start, end)``): no instant belongs to both.
        """
        ns = 1_000_000_000
        out = []
        t = start_ns
        while t + (self.train_s + self.test_s) * ns <= end_ns:
            out.append((t, t + self.train_s * ns, t + (self.train_s + self.test_s) * ns))
            t += self.step_s * ns
        return out


def _duration(flag: str, key: str, text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if not m:
        raise ConfigError(f"{flag}: {key}={text!r} is not a duration (e.g. 14d, 12h, 2w)")
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0:
        raise ConfigError(f"{flag}: {key}={text!r} must be longer than 0")
    return seconds


def parse_walk_forward(spec: str) -> WalkForward:
    """``train=14d,test=7d[,step=7d]`` -> :class:`WalkForward`.

    :raises ConfigError: a missing train or test, an unknown key (closest named), a malformed duration.
    """
    flag = f"--walk-forward {spec}"
    keys: dict[str, int] = {}
    for item in (i.strip() for i in spec.split(",") if i.strip()):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise ConfigError(f"{flag}: expected key=duration, got {item!r} (e.g. train=14d,test=7d)")
        if key not in ("train", "test", "step"):
            raise ConfigError(f"{flag}: unknown key {key!r}{did_you_mean(key, ('train', 'test', 'step'))} (train, test, step)")
        keys[key] = _duration(flag, key, value)
    for key in ("train", "test"):
        if key not in keys:
            raise ConfigError(f"{flag}: missing {key}=DURATION (e.g. train=14d,test=7d)")
    return WalkForward(keys["train"], keys["test"], keys.get("step", keys["test"]))
