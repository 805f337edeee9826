"""Fixtures for the dYdX plugin tests: loopback fakes (tests/fakes), fast settings, real market data.

Everything binds 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import attrs
import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from perpbot.core.clock import LiveClock  # noqa: E402
from perpbot.core.model import Market  # noqa: E402

from tests import shared_data as _shared  # noqa: E402

SHARED = _shared.shared_root() / "dydx_v4"
MARKETS_JSON = ROOT / "exchanges" / "replay" / "dydx_markets.json"

#: fast timers so reconnect storms and retries take milliseconds, not seconds
FAST = {
    "retry_base_s": 0.02,
    "retry_max_s": 0.1,
    "ws_stable_after_s": 0,
    "ws_open_timeout_s": 3,
    "rest_timeout_s": 2,
    "rest_retries": 2,
}


@attrs.define
class Ctx:
    """A feed context like the bot's FeedContext."""

    clock: Any
    tickers: tuple
    state_dir: Path = Path(".")
    markets: dict = attrs.Factory(dict)
    options: dict = attrs.Factory(dict)


@pytest.fixture
def real_markets() -> dict[str, dict]:
    """Real mainnet perpetualMarkets rows (BTC, ETH, SOL, DOGE, ...; see exchanges/replay SOURCES)."""
    return json.loads(MARKETS_JSON.read_text())["markets"]


@pytest.fixture
def market_of(real_markets) -> Callable[[str], Market]:
    return lambda t: Market.from_indexer(real_markets[t])


def shared(*parts: str) -> Path:
    """A file under ../shared/data/dydx_v4 (LGPL/AGPL data is read there, never copied); skips if absent."""
    if _shared.hidden():
        pytest.skip(_shared.absent_reason())
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available: {p} (read-only LGPL/AGPL test data lives outside the repo)")
    return p


def load_shared(*parts: str) -> Any:
    return json.loads(shared(*parts).read_text())


async def wait_until(pred: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``pred`` every 10 ms until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


class Collector:
    """Consumes a feed's batches in the background (like the bot)."""

    def __init__(self, feed):
        self.feed = feed
        self.events: list = []
        self.task = asyncio.create_task(self._run())

    async def _run(self):
        async for batch in self.feed.batches():
            self.events.extend(batch)

    def of(self, cls) -> list:
        return [e for e in self.events if isinstance(e, cls)]

    async def close(self):
        await self.feed.stop()
        try:
            await asyncio.wait_for(self.task, 2)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            self.task.cancel()


@pytest.fixture
async def indexer():
    from tests.fakes import FakeIndexer

    ix = FakeIndexer(batch_interval=0.02)
    await ix.start()
    try:
        yield ix
    finally:
        await ix.stop()


@pytest.fixture
async def fakes(tmp_path):
    from tests.fakes import FakeDydx

    dx = FakeDydx(indexer_kwargs={"batch_interval": 0.02})
    await dx.start()
    try:
        yield dx
    finally:
        await dx.stop()


def feed_config(ix, **over) -> dict:
    cfg = {"network": "custom", "indexer_rest": ix.rest_url, "indexer_ws": ix.ws_url, **FAST}
    cfg.update(over)
    return cfg


@pytest.fixture
def make_feed(tmp_path):
    """``make_feed(indexer, tickers=("BTC-USD", "ETH-USD"), **config)`` -> started DydxFeed + Collector."""
    made = []

    async def make(ix, tickers=("BTC-USD", "ETH-USD"), **over):
        from perpbot.exchanges.dydx.feed import DydxFeed

        feed = DydxFeed(feed_config(ix, **over), Ctx(LiveClock(), tuple(tickers), tmp_path))
        await feed.start()
        col = Collector(feed)
        made.append(col)
        return feed, col

    yield make
    # closed by the tests' own teardown below (pytest-asyncio runs async finalizers poorly)


@pytest.fixture(autouse=True)
def _fresh_ws_registry():
    """Every test starts without a shared connection left over from another test."""
    from perpbot.exchanges.dydx import ws

    ws._SHARED.clear()
    yield
    ws._SHARED.clear()
