"""Fixtures for the ccxt plugin tests: the Binance USD-M loopback fake, credentials, an exchange harness.

Everything binds 127.0.0.1 on OS-chosen ports; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fakes.ccxt import API_KEY, API_SECRET, FakeBinanceUsdm  # noqa: E402

#: fast timers so retries, reconciliation and funding reads take milliseconds
FAST = {"retry_base_s": 0.05, "retry_max_s": 0.2, "reconcile_s": 0.3, "funding_poll_s": 0.3, "unknown_grace_s": 0.5,
        "resync_s": 1, "poll_s": 0.3, "timeout_s": 2, "rate_limit_ms": 2}


@pytest.fixture
def keys(monkeypatch):
    """The fake's API key and secret in the environment of venue ``binance``."""
    monkeypatch.setenv("PERPBOT_BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("PERPBOT_BINANCE_SECRET", API_SECRET)
    return API_KEY, API_SECRET


@pytest.fixture
def fake_thread():
    """A :class:`FakeBinanceUsdm` serving on its own thread (for synchronous market loading)."""
    with FakeBinanceUsdm(mark_interval_s=0.2) as fake:
        yield fake


async def wait_until(pred: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``pred`` every 20 ms until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


class Harness:
    """A connected :class:`~perpbot.exchanges.ccxt.CcxtExchange` on the fake, collecting its events."""

    def __init__(self, fake: FakeBinanceUsdm, **options: Any):
        from perpbot.core.clock import LiveClock
        from perpbot.core.exchange import ExchangeContext
        from perpbot.exchanges.ccxt import CcxtExchange

        self.fake = fake
        self.events: list = []
        ctx = ExchangeContext(clock=LiveClock(), markets={}, options={"venue": "binance", "plugin_arg": "binanceusdm"})
        self.ex = CcxtExchange({"url": fake.url, **FAST, **options}, ctx)
        self.ex.set_event_sink(self.events.append)

    async def start(self) -> "Harness":
        self.ex.preflight()
        await asyncio.to_thread(self.ex.table.load)
        self.ex.context.markets.update({t: vm.market for t, vm in self.ex.table.by_ticker.items()})
        await self.ex.connect()
        await asyncio.sleep(0.3)  # the private streams subscribe
        return self

    async def stop(self) -> None:
        await self.ex.disconnect()

    def of(self, cls: type, client_id: int | None = None) -> list:
        return [e for e in self.events if type(e) is cls and (client_id is None or getattr(e, "client_id", None) == client_id)]
