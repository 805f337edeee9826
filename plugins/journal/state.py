"""What a checkpoint holds, and how it is taken from / put back into a running bot.

A checkpoint is a moment at which the bot has fully processed ``events_processed``
market events. Its state blob (tagged JSON, :mod:`perpbot.plugins.journal.codec`) holds:

- ``bot``: ``bot.export_state()``: the supervisor's runtime counters (next
  decision/snapshot/checkpoint times, equity reference points, drawdown
  tracker, order counters, client id high-water mark, risk policies' state);
- ``portfolios``: venue -> the bot's booked account (collateral, positions,
  per-market stats, fees, funding, realized PnL);
- ``open_orders``: the bot's open-order table (client id -> OrderInfo);
- ``exchanges``: venue -> ``export_state()`` of every exchange client that has
  one (the paper simulator: its own account, resting orders, queues);
- ``strategy``: ``{"name", "state"}`` with ``strategy.get_state()``;
- ``risk``: always empty (kept for the blob's shape; the risk policies' state is in
  ``bot["exported"]["risk"]``).

Resuming a paper run puts all of that back, so the run continues as if it had
never stopped (see :mod:`perpbot.plugins.journal.reconcile`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from loguru import logger

from perpbot.core.errors import DataError


def portfolio_state(pf: Any) -> dict:
    """Everything a :class:`perpbot.core.portfolio.Portfolio` booked (market parameters excluded)."""
    return {k: v for k, v in vars(pf).items() if k != "markets"}


def restore_portfolio(pf: Any, state: dict) -> None:
    """Put :func:`portfolio_state` back into ``pf`` (keeps its market parameters)."""
    for key, value in state.items():
        current = getattr(pf, key, None)
        if isinstance(current, defaultdict):
            restored = defaultdict(current.default_factory)
            restored.update(value)
            value = restored
        setattr(pf, key, value)


def bot_runtime_state(bot: Any) -> dict:
    """The ``bot`` part of a checkpoint: ``{"exported": bot.export_state()}``.

    :param bot: the run's :class:`~perpbot.core.bot.view.RunView`.
    """
    return {"exported": bot.export_state()}


def restore_bot_runtime(resume: Any, state: dict) -> None:
    """Put the ``bot`` part of a checkpoint back through ``resume.import_state``.

    :param resume: the :class:`~perpbot.core.bot.resume.ResumeAPI`.
    :param state: what :func:`bot_runtime_state` returned.
    :raises DataError: the checkpoint has no exported bot state (naming ``--fresh``).
    """
    if "exported" not in state:
        raise DataError(
            "journal checkpoint holds no bot runtime state (\"exported\"); it cannot be resumed: "
            "run with --fresh to start over"
        )
    resume.import_state(state["exported"])


def take_checkpoint_state(bot: Any) -> dict:
    """The state blob of a checkpoint of ``bot`` now (see the module docstring).

    :param bot: the run's :class:`~perpbot.core.bot.view.RunView`.
    :returns: a dict of plain values, Decimals and attrs objects (encoded by
        :func:`perpbot.plugins.journal.codec.dumps_state`). A strategy whose ``get_state()``
        raises is logged and checkpointed without its state.
    """
    exchanges = {}
    for venue, ex in bot.exchanges.items():
        export = getattr(ex, "export_state", None)
        if callable(export):
            exchanges[venue] = export()
    strategy = getattr(bot, "strategy", None)
    strat_state = None
    if strategy is not None:
        try:
            strat_state = strategy.get_state()
        except Exception as exc:  # a strategy's bug must not lose the checkpoint
            logger.error(f"strategy get_state() raised {type(exc).__name__}: {exc}; checkpoint without it")
    return {
        "bot": bot_runtime_state(bot),
        # a venue whose portfolio is the exchange's own ledger is saved in "exchanges" only
        "portfolios": {
            v: portfolio_state(pf) for v, pf in bot.portfolios.items()
            if getattr(bot.exchanges.get(v), "account_ledger", lambda: None)() is None
        },
        "open_orders": dict(bot.open_orders),
        "exchanges": exchanges,
        "strategy": {"name": getattr(strategy, "name", ""), "state": strat_state},
        "risk": {},  # kept for the blob's shape: risk policies' state is in bot.export_state()["risk"]
    }
