"""Research: ``runbot.py backtest`` (one replay, ``--json`` figures) and ``runbot.py sweep`` on Ray.

::

    python runbot.py backtest --config examples/configs/sniper-bars.toml --json
    python runbot.py sweep --config examples/configs/sniper-bars.toml \\
        -p entry_threshold=55,60,65 -p exit_threshold=45:55:5 [--search grid|random|optuna --trials N]
        [--objective net_pnl|sharpe|sortino|calmar|profit_factor --min-trades N]
        [--walk-forward train=14d,test=7d[,step=7d]] [--workers N] [--ray-address auto|ray://HOST:PORT]

Modules: :mod:`.commands` (the two commands), :mod:`.driver` (the sweep: checks, store,
table, page), :mod:`.spec` (grid, ranges, walk-forward, objective parsing), :mod:`.search`
(grid, random, Optuna TPE, walk-forward, choosing), :mod:`.engine` (Ray), :mod:`.cells` (one
cell = one ordinary backtest, its objectives), :mod:`.windows` (data cut to a window),
:mod:`.store` (the resumable sweep directory), :mod:`.html` (the page), :mod:`.recorder`
(equity curve and trades of a run, fed by the hooks below).

Imports :mod:`perpbot.core`, :mod:`perpbot.cli` (the shared runner) and the replay's time
parser; Ray, Optuna and pyarrow (the ``research`` extra) only when a sweep runs.
"""

from __future__ import annotations

from perpbot.core.hookspecs import hookimpl
from perpbot.plugins.research.recorder import active

__version__ = "0.1.0"


@hookimpl
def register_commands(cli):
    """Hook implementation: add ``backtest`` and ``sweep`` to the CLI (``cli``: the typer app)."""
    from perpbot.plugins.research.commands import register

    register(cli)


@hookimpl
def on_decision(bot, strategy, result):
    """While a run is recorded (:func:`perpbot.plugins.research.recorder.recording`): one equity
    sample (USD, the bot's total equity) at the decision's clock time, as the drawdown tracker takes."""
    rec = active()
    if rec is not None:
        rec.sample(bot.clock.now_ns(), bot.total_equity())


@hookimpl
def on_fill(bot, fill):
    """While a run is recorded: book the fill in the recorder's trade ledger."""
    rec = active()
    if rec is not None:
        rec.fill(fill)


@hookimpl
def on_bot_stop(bot, summary):
    """While a run is recorded: the final equity sample (the summary's, at its end time)."""
    rec = active()
    if rec is not None:
        rec.sample(summary.end_ns, summary.final_equity)
