"""The sweep driver: which cells run (grid, random, Optuna TPE), walk-forward, choosing the best.

- ``grid``: every combination of the ``-p`` values.
- ``random``: ``--trials N`` distinct combinations drawn with ``--seed``.
- ``optuna``: ``--trials N`` trials of Optuna's TPE sampler (``optuna.samplers.TPESampler``,
  seeded) over the ``-p`` values as categorical choices, maximising ``--objective``; asked in
  batches of the parallelism (Optuna's ask-and-tell interface). ``--min-trades N`` is a
  constraint (``Trial.set_constraint("min_trades", N - trades)``, Optuna >= 5: a trial with
  fewer closed trades is infeasible and TPE learns to avoid it).
  A cell whose objective is undefined or that failed is told as a failed trial.

Choosing (:func:`best`): the finished cell with the highest objective among those with at
least ``--min-trades`` closed trades and a defined objective; ties go to the earlier cell.

Walk-forward (:meth:`Sweep.walk_forward`): for each window, the search runs on the train
copy of the data only; :func:`best` of those train rows picks the parameters; one test
cell runs them on the test copy. Only test rows are out-of-sample figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from perpbot.plugins.research.cells import cell_key
from perpbot.plugins.research.spec import Grid, WalkForward

__all__ = ["Sweep", "best"]


def _objective(row: dict, objective: str) -> float | None:
    o = row.get("objectives") or {}
    return o.get(objective)


def _trades(row: dict) -> int:
    return int((row.get("summary") or {}).get("closed_trades") or 0)


def best(rows: list[dict], objective: str, min_trades: int) -> dict | None:
    """The row with the highest ``objective`` among ok rows with ``>= min_trades`` closed trades
    and a defined objective (the first such row on a tie); None when no row qualifies."""
    top = None
    for r in rows:
        if r["status"] != "ok" or _trades(r) < min_trades:
            continue
        v = _objective(r, objective)
        if v is None:
            continue
        if top is None or v > _objective(top, objective):
            top = r
    return top


class Sweep:
    """One sweep: its grid and search, the finished rows, the engine that runs the missing ones.

    :param opts: the backtest options of every cell (:func:`perpbot.cli.build_config`'s dict).
    :param done: rows already finished (the store's), by cell key; new rows are added.
    :param record: called with each new row as it finishes (the store appends it to disk).
    :param run: ``run(tasks, on_row)``: executes cell specs (the Ray engine).
    """

    def __init__(self, *, opts: dict, grid: Grid, search: str, trials: int | None, seed: int, objective: str,
                 min_trades: int, done: dict, record: Callable[[dict], None], run: Callable, cell_dir: Path,
                 parallel: int = 1):
        self.opts, self.grid, self.search, self.trials, self.seed = opts, grid, search, trials, seed
        self.objective, self.min_trades = objective, min_trades
        self.done, self.record, self.run, self.cell_dir, self.parallel = done, record, run, cell_dir, parallel
        self.ran = 0  # cells run by this invocation (the rest came from the sweep directory)
        self.fresh: set[str] = set()  # keys of the cells run by this invocation

    # -- cells ----------------------------------------------------------------

    def task(self, phase: str, window: int | None, params: dict, files=None, funding=None) -> dict:
        """The spec of one cell (see :func:`perpbot.plugins.research.cells.run_cell`)."""
        return {"key": cell_key(phase, window, params), "phase": phase, "window": window, "params": dict(params),
                "opts": self.opts, "files": files, "funding_files": funding, "state_dir": str(self.cell_dir)}

    def execute(self, tasks: list[dict]) -> list[dict]:
        """The rows of ``tasks``: finished ones from ``done``, the others run now (in task order).

        A cell that failed in an earlier invocation runs again (once): its failure may have been
        the environment's (a broken plugin, a lost worker), and a cell that fails for its own
        parameters fails again at once."""
        missing, seen = [], set()
        for t in tasks:
            old = self.done.get(t["key"])
            stale = old is not None and old["status"] != "ok" and t["key"] not in self.fresh
            if (old is None or stale) and t["key"] not in seen:
                missing.append(t)
                seen.add(t["key"])

        def on_row(row: dict) -> None:
            """Keep a finished cell's row and hand it to ``record``."""
            self.done[row["key"]] = row
            self.fresh.add(row["key"])
            self.ran += 1
            self.record(row)

        if missing:
            self.run(missing, on_row)
        return [self.done[t["key"]] for t in tasks]

    def candidates(self) -> list[dict]:
        """The parameter sets of a grid or random search (Optuna asks as it goes)."""
        if self.search == "random":
            return self.grid.sample(self.trials or self.grid.size(), self.seed)
        return self.grid.cells()

    # -- searches ---------------------------------------------------------------

    def plain(self) -> list[dict]:
        """Run the search on the whole data; :returns: every row (phase ``grid``)."""
        if self.search == "optuna":
            return self.optuna("grid", None, None, None)
        return self.execute([self.task("grid", None, p) for p in self.candidates()])

    def optuna(self, phase: str, window: int | None, files, funding) -> list[dict]:
        """Optuna TPE (ask and tell, batches of the parallelism); :returns: the rows of its trials."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        dists = {n: optuna.distributions.CategoricalDistribution(list(v)) for n, v in self.grid.axes}
        sampler = optuna.samplers.TPESampler(seed=self.seed)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        total = self.trials or min(self.grid.size(), 20)
        rows: list[dict] = []
        while len(rows) < total:
            batch = [study.ask(dists) for _ in range(min(self.parallel, total - len(rows)))]
            out = self.execute([self.task(phase, window, dict(t.params), files, funding) for t in batch])
            for trial, row in zip(batch, out):
                trial.set_constraint("min_trades", float(self.min_trades - _trades(row)))
                value = _objective(row, self.objective)
                if row["status"] != "ok" or value is None:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(trial, value)
                rows.append(row)
        return rows

    def train(self, window: int, files, funding) -> list[dict]:
        """The search's rows on one window's train data."""
        if self.search == "optuna":
            return self.optuna("train", window, files, funding)
        return self.execute([self.task("train", window, p, files, funding) for p in self.candidates()])

    def walk_forward(self, wf: WalkForward, span: tuple[int, int], cut: Callable) -> tuple[list[dict], list[dict], list]:
        """Run walk-forward over ``span`` (ns).

        :param cut: ``cut(window, phase, start_ns, end_ns) -> (files, funding_files)``: the
            window's copies of the data (:func:`perpbot.plugins.research.windows.window_files`).
        :returns: ``(train rows, test rows, windows)``; a window where no train cell qualifies
            has no test row (its entry in ``windows`` says so).
        :raises ConfigError: the data is shorter than one train + test window.
        """
        from perpbot.core.errors import ConfigError
        from perpbot.core.metrics import format_duration

        windows = wf.windows(*span)
        if not windows:
            raise ConfigError(f"--walk-forward: the data spans {format_duration((span[1] - span[0]) / 1e9)}, shorter than "
                              f"one train + test window ({format_duration(wf.train_s + wf.test_s)})")
        data = {}
        for i, (a, b, c) in enumerate(windows):
            data[i] = (cut(i, "train", a, b), cut(i, "test", b, c))
        train_rows: list[dict] = []
        per_window: dict[int, list[dict]] = {}
        if self.search == "optuna":
            for i in data:
                per_window[i] = self.train(i, *data[i][0])
        else:  # every window's train cells at once: they are independent
            tasks = [self.task("train", i, p, *data[i][0]) for i in data for p in self.candidates()]
            for row in self.execute(tasks):
                per_window.setdefault(row["window"], []).append(row)
        tests, info = [], []
        for i, (a, b, c) in enumerate(windows):
            rows = per_window.get(i, [])
            train_rows += rows
            chosen = best(rows, self.objective, self.min_trades)
            info.append({"window": i, "train": (a, b), "test": (b, c), "chosen": chosen["params"] if chosen else None})
            if chosen is not None:
                tests.append(self.task("test", i, chosen["params"], *data[i][1]))
        return train_rows, self.execute(tests), info
