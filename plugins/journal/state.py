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
- ``risk``: policy name -> ``get_state()`` (only for a bot without ``export_state``,
  which already contains them).

Resuming a paper run puts all of that back, so the run continues as if it had
never stopped (see :mod:`perpbot.plugins.journal.reconcile`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from loguru import logger

#: supervisor attributes saved when the bot has no export_state() (names as in core/bot.py)
BOT_ATTRS = (
    "_next_decision_ns",
    "_next_snapshot_ns",
    "decisions",
    "orders_sent",
    "orders_rejected",
    "strategy_errors",
    "consecutive_failures",
    "last_fill_ns",
    "last_activity_ns",
    "start_equity",
    "peak_equity",
    "day_start_equity",
    "_day",
    "start_ns",
)
DRAWDOWN_ATTRS = ("peak", "max_dd", "max_dd_frac", "peak_ns", "dd_start_ns", "max_dd_duration_ns", "samples")


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
    export = getattr(bot, "export_state", None)
    if callable(export):
        return {"exported": export()}
    out = {k: getattr(bot, k) for k in BOT_ATTRS if hasattr(bot, k)}
    dd = getattr(bot, "drawdown", None)
    if dd is not None:
        out["drawdown"] = {k: getattr(dd, k) for k in DRAWDOWN_ATTRS if hasattr(dd, k)}
    return out


def restore_bot_runtime(bot: Any, state: dict) -> None:
    if "exported" in state:
        importer = getattr(bot, "import_state", None)
        if callable(importer):
            importer(state["exported"])
            return
        logger.warning("checkpoint was written by a bot with export_state(); this bot cannot import it")
        return
    for k in BOT_ATTRS:
        if k in state and hasattr(bot, k):
            setattr(bot, k, state[k])
    dd = getattr(bot, "drawdown", None)
    if dd is not None and "drawdown" in state:
        for k, v in state["drawdown"].items():
            if hasattr(dd, k):
                setattr(dd, k, v)


def take_checkpoint_state(bot: Any) -> dict:
    """The state blob of a checkpoint of ``bot`` now (see the module docstring)."""
    exchanges = {}
    for venue, ex in getattr(bot, "exchanges", {}).items():
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
    risk = {}
    for policy in () if callable(getattr(bot, "export_state", None)) else getattr(bot, "risk_chain", ()):
        getter = getattr(policy, "get_state", None)
        if callable(getter):
            try:
                risk[policy.name] = getter()
            except Exception as exc:
                logger.error(f"risk policy {policy.name} get_state() raised {exc}")
    return {
        "bot": bot_runtime_state(bot),
        "portfolios": {v: portfolio_state(pf) for v, pf in getattr(bot, "portfolios", {}).items()},
        "open_orders": dict(getattr(bot, "open_orders", {})),
        "exchanges": exchanges,
        "strategy": {"name": getattr(strategy, "name", ""), "state": strat_state},
        "risk": risk,
    }
