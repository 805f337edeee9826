"""The bot: :class:`TradingBot` and the pieces it is made of, one concern per module.

- :mod:`~perpbot.core.bot.supervisor`: :class:`TradingBot`, the public facade (build, start,
  run, shutdown; the read-only view; delegations to the collaborators below);
- :mod:`~perpbot.core.bot.wiring`: feed, exchanges, markets, strategy, sizer and risk chain
  built from the plugin registry;
- :mod:`~perpbot.core.bot.loop`: the event loop (batches, resume warm-up and pacing,
  ``max_events``, progress observers, checkpoint timing);
- :mod:`~perpbot.core.bot.decisions`: the decision cycle (risk account checks, strategy);
- :mod:`~perpbot.core.bot.orders`: the order path (size, risk, send, cancel, close,
  cancel-all, risk escalations and halts);
- :mod:`~perpbot.core.bot.account`: account events (fills, order updates, funding,
  liquidations) booked and announced;
- :mod:`~perpbot.core.bot.resume`: checkpoints (``export_state``/``import_state``) and the
  :class:`ResumeAPI` reconcilers change the bot through;
- :mod:`~perpbot.core.bot.view`: :class:`RunView`, what observer plugins may read;
- :mod:`~perpbot.core.bot.control`: :class:`~perpbot.core.bot.control.BotControl`, the narrow
  control surface a steering plugin (the REST API) gets with ``control_of(view)``: pause new
  entries, resume, close all, halt, carried out between batches and journaled with their source;
- :mod:`~perpbot.core.bot.calls`: observer hooks and strategy calls with contained errors;
- :mod:`~perpbot.core.bot.summary`: the run summary; :mod:`~perpbot.core.bot.support`: client
  ids, the feed context, small helpers.

May import :mod:`perpbot.core` modules only (never plugins, exchanges or strategies).
"""

from perpbot.core.bot.resume import ResumeAPI
from perpbot.core.bot.support import (
    MAX_CLIENT_ID,
    NS,
    ClientIdAllocator,
    FeedContext,
    await_me_maybe,
    halts_trading,
)
from perpbot.core.bot.supervisor import TradingBot
from perpbot.core.bot.view import RunView

__all__ = [
    "MAX_CLIENT_ID",
    "NS",
    "ClientIdAllocator",
    "FeedContext",
    "ResumeAPI",
    "RunView",
    "TradingBot",
    "await_me_maybe",
    "halts_trading",
]
