"""A resumed replay re-reads its data up to the checkpoint unpaced; ``speed`` paces from there.

Issue 9.6: a restart 4 minutes into a 10x replay made no decision for 24 s, because the
warm-up re-read of the skipped data was paced like the run. No wall time is measured here:
the feed's pacing clock is replaced by a fake one that only the requested sleeps advance.
"""

from __future__ import annotations

import asyncio
import types

import pytest

from perpbot.core.bot import TradingBot
from perpbot.core.plugins import PluginManager
from perpbot.core.testing import bot_config
from perpbot.exchanges.replay import feed as feed_mod
from tests.core.simple import TestPlugin

SPEED = 10


class FakePacing:
    """Stands in for the feed's wall clock and ``asyncio.sleep``; records each pacing sleep
    with the bot's (data) clock at the moment it was requested."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[tuple[int, float]] = []
        self.bot = None

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        if delay > 0:
            self.sleeps.append((self.bot.clock.now_ns(), delay))
            self.now += delay
        await asyncio.sleep(0)


def make_bot(tmp_path, **cfg) -> TradingBot:
    pm = PluginManager(load_entry_points=False, extra_plugins=(TestPlugin(),), default_plugins=("perpbot.exchanges.replay",))
    base = dict(
        exchange=("instant",),
        strategy="scripted",
        tickers=("BTC-USD", "ETH-USD"),
        feed="replay",
        state_dir=tmp_path,
        sizer="test_notional",
    )
    base.update(cfg)
    return TradingBot(bot_config(**base), pm)


@pytest.fixture
def pacing(monkeypatch):
    fake = FakePacing()
    monkeypatch.setattr(feed_mod, "_monotonic", fake.monotonic)
    monkeypatch.setattr(feed_mod, "asyncio", types.SimpleNamespace(sleep=fake.sleep))
    return fake


def test_a_resumed_replay_warms_up_unpaced_and_paces_from_the_checkpoint(tmp_path, pacing):
    first = make_bot(tmp_path, max_events=20_000)
    asyncio.run(first.run())
    state, cursor = first.export_state(), first.events_read
    checkpoint_ns = first.clock.now_ns()

    resumed = make_bot(tmp_path, max_events=40_000, feeds={"replay": {"speed": str(SPEED)}})
    resumed.import_state(state)
    resumed.resume_from_event = cursor
    pacing.bot = resumed
    asyncio.run(resumed.run())
    end_ns = resumed.clock.now_ns()
    assert resumed.events_read > cursor and end_ns > checkpoint_ns

    before = [s for s in pacing.sleeps if s[0] < checkpoint_ns]
    assert before == []  # nothing up to the checkpoint waited
    # from the checkpoint on, the data's time passes at SPEED x (the fake clock only moves by sleeps)
    paced_s = sum(d for _, d in pacing.sleeps)
    span_s = (end_ns - checkpoint_ns) / 1e9
    assert span_s / SPEED * 0.9 <= paced_s <= span_s / SPEED + 0.001


def test_a_fresh_replay_is_paced_from_its_first_batch(tmp_path, pacing):
    bot = make_bot(tmp_path, max_events=20_000, feeds={"replay": {"speed": str(SPEED)}})
    pacing.bot = bot
    asyncio.run(bot.run())
    span_s = (bot.clock.now_ns() - bot.start_ns) / 1e9
    paced_s = sum(d for _, d in pacing.sleeps)
    assert span_s > 1 and span_s / SPEED * 0.9 <= paced_s <= span_s / SPEED + 0.001


def test_hold_pacing_on_the_feed_re_anchors_at_release(tmp_path, pacing):
    """The feed on its own: held batches do not wait; released, the next batch is the new start."""

    pacing.bot = types.SimpleNamespace(clock=types.SimpleNamespace(now_ns=lambda: 0))
    feed = feed_mod.ReplayFeed({"speed": str(SPEED)}, types.SimpleNamespace(tickers=("BTC-USD",), markets={}))

    async def go():
        stamps = []
        feed.hold_pacing(True)
        async for batch in feed.batches():
            stamps.append(batch[0].ts_ns)
            if len(stamps) == 2000:
                feed.hold_pacing(False)
            if len(stamps) == 4000:
                break
        await feed.stop()
        return stamps

    stamps = asyncio.run(go())
    paced_s = sum(d for _, d in pacing.sleeps)
    # the first 2000 batches (MarketInfo included) came at once; from the 2001st on, data time at SPEED x
    expected = (stamps[-1] - stamps[2000]) / 1e9 / SPEED
    assert expected > 0 and expected - 0.001 <= paced_s <= expected + 0.001
