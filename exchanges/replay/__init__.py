"""Built-in plugin: the ``replay`` feed (real recorded market data, merged by time).

It registers :class:`~perpbot.exchanges.replay.feed.ReplayFeed` through ``register_feeds``,
the same hook a third-party feed plugin uses. Formats, config keys and the
embedded samples: see :mod:`perpbot.exchanges.replay.feed` and :mod:`perpbot.exchanges.replay.samples`.
"""

from perpbot import hookimpl

from perpbot.exchanges.replay.feed import ReplayFeed, ReplayParams

__all__ = ["ReplayFeed", "ReplayParams", "register_feeds"]


@hookimpl
def register_feeds(register):
    register(ReplayFeed)
