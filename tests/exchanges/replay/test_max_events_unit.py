"""``--max-events`` and the run summary count one unit: the event of architecture.md
(each depth level entry, trade and quote).

Issue 9.7: ``--max-events`` counted feed messages while the summary counted level entries,
trades and quotes, so ``--max-events 200000`` replayed the whole 1,027,653-event sample.
"""

from __future__ import annotations

import asyncio
import typing

from perpbot.core.bot import TradingBot
from perpbot.core.plugins import PluginManager
from perpbot.core.testing import bot_config
from tests.core.simple import TestPlugin

SAMPLE_EVENTS = 1_027_653  # architecture.md, Benchmarks: the embedded Binance BTC+ETH sample


def test_max_events_200000_stops_after_200000_events_of_the_sample(tmp_path):
    pm = PluginManager(load_entry_points=False, extra_plugins=(TestPlugin(),), default_plugins=("perpbot.exchanges.replay",))
    config = bot_config(
        exchange=("instant",),
        strategy="scripted",
        tickers=("BTC-USD", "ETH-USD"),
        feed="replay",
        state_dir=tmp_path,
        sizer="test_notional",
        max_events=200_000,
    )
    bot = TradingBot(config, pm)
    summary = asyncio.run(bot.run())
    assert summary.stop_reason == "max events 200000 reached"
    # the depth message that reaches the limit is applied whole (a book takes a message at once)
    largest_message = 1000
    assert 200_000 <= summary.events < 200_000 + largest_message
    assert summary.events_read == summary.events < SAMPLE_EVENTS
    assert f"events processed  {summary.events:,} (depth level entries, trades, quotes)" in summary.render()


def test_the_help_of_max_events_names_its_unit():
    from perpbot import cli

    option = typing.get_type_hints(cli.main_callback, include_extras=True)["max_events"].__metadata__[0]
    assert "depth level entry, trade or quote" in option.help
