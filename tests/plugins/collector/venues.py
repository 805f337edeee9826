"""Three loopback venues that move on their own, for the collector: Binance USD-M and Hyperliquid
(tests/fakes/ccxt) and the dYdX indexer (tests/fakes/indexer), all on OS-chosen 127.0.0.1 ports.

Every ``tick_s`` each market's book moves, a trade prints and (dYdX) the oracle price and open
interest change, through each fake's own protocol: Binance depth diffs and ``@trade`` events
(its ``move`` / ``push_trade``), Hyperliquid ``l2Book`` snapshots and ``trades`` messages (shape
of Hyperliquid's docs "WebSocket / Subscriptions" ``WsTrade``: coin, side, px, sz, time, hash,
tid, users), dYdX ``v4_orderbook`` absolute sizes, ``v4_trades`` and ``v4_markets`` updates.
Binance pushes its mark price every ``mark_interval_s`` by itself.

By hand (the 60 s acceptance run of the README)::

    python -m tests.plugins.collector.venues          # prints the --url argument, Ctrl-C stops
"""

from __future__ import annotations

import asyncio
import random
import sys
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import AsyncIterator

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fakes.ccxt import FakeBinanceUsdm, FakeHyperliquid  # noqa: E402
from tests.fakes.indexer import FakeIndexer  # noqa: E402

D = Decimal
VENUES = "binance=ccxt:binanceusdm,hyperliquid=ccxt:hyperliquid,dydx"
#: fast feed timers for tests (seconds); request timeouts stay generous (a loaded CI machine)
FAST = {"retry_base_s": 0.05, "retry_max_s": 0.3, "resync_s": 5, "poll_s": 0.3, "crosscheck_s": 0, "timeout_s": 10,
        "rate_limit_ms": 2}


class Venues:
    """The running fakes and their mover task."""

    def __init__(self, binance: FakeBinanceUsdm, hyper: FakeHyperliquid, dydx: FakeIndexer, tick_s: float, seed: int):
        self.binance, self.hyper, self.dydx = binance, hyper, dydx
        self.tick_s = tick_s
        self.rng = random.Random(seed)
        self.ticks = 0
        self._tids = 900000
        self._binance_ids: dict[str, int] = {}

    @property
    def urls(self) -> dict[str, str]:
        """Venue name -> base URL (for ``--url`` / ``VenueSpec.url``)."""
        return {"binance": self.binance.url, "hyperliquid": self.hyper.url, "dydx": self.dydx.rest_url}

    @property
    def url_arg(self) -> str:
        """The ``--url`` value."""
        return ",".join(f"{k}={v}" for k, v in self.urls.items())

    def step(self) -> None:
        """One move of every market of every venue (on the fakes' loop)."""
        rng = self.rng
        self.ticks += 1
        for s, info in self.binance.symbols.items():
            mid = D(info["mid"]) * (1 + D(str(rng.gauss(0, 0.0003))))
            self.binance.move(s, str(mid.quantize(D(info["tick"]))))
            bid, ask = self.binance.best(s)
            # Binance trade ids are consecutive per symbol ("Trade Streams" field t); the fake's
            # push_trade numbers trades across symbols, so the event is built here, same shape
            self._binance_ids[s] = self._binance_ids.get(s, 7000000) + 1
            self.binance.push_market(f"{s.lower()}@trade", {
                "e": "trade", "E": _now_ms(), "T": _now_ms(), "s": s, "t": self._binance_ids[s],
                "p": str(ask if rng.random() < 0.5 else bid), "q": "0.01", "X": "MARKET", "m": rng.random() < 0.5})
        for coin in ("BTC", "ETH"):
            mid = self.hyper.mid(coin) * (1 + D(str(rng.gauss(0, 0.0003))))
            self.hyper.move(coin, str(mid.quantize(D("1") if mid > 10000 else D("0.1"))))
            self._tids += 1
            b = self.hyper.books[coin]
            px = max(b["bids"]) if rng.random() < 0.5 else min(b["asks"])
            self.hyper._push({"type": "trades", "coin": coin}, {"channel": "trades", "data": [
                {"coin": coin, "side": "B" if rng.random() < 0.5 else "A", "px": str(px), "sz": "0.01",
                 "time": _now_ms(), "hash": "0x" + "cd" * 32, "tid": self._tids,
                 "users": ["0x" + "11" * 20, "0x" + "22" * 20]}]})
        for t in ("BTC-USD", "ETH-USD"):
            book = self.dydx.book(t)
            bb, ba = book.best_bid(), book.best_ask()
            if bb is None or ba is None:
                continue
            step = D(self.dydx.markets[t]["stepSize"])
            self.dydx.apply_orderbook(t, bids=[(bb, step * rng.randint(1, 50))], asks=[(ba, step * rng.randint(1, 50))])
            self.dydx.apply_trades(t, [{"side": "BUY" if rng.random() < 0.5 else "SELL", "size": step * 3,
                                        "price": ba if rng.random() < 0.5 else bb}])
            oracle = ((bb + ba) / 2).quantize(D(self.dydx.markets[t]["tickSize"]))
            self.dydx.apply_market(t, oracle_price=oracle, openInterest=str(D(1000 + self.ticks)))

    async def _mover(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self.step()


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


@asynccontextmanager
async def three_venues(tick_s: float = 0.1, seed: int = 7, mark_interval_s: float = 0.5) -> AsyncIterator[Venues]:
    """Start the three fakes on this loop and move them every ``tick_s`` seconds."""
    async with FakeBinanceUsdm(mark_interval_s=mark_interval_s) as binance, FakeHyperliquid() as hyper, \
            FakeIndexer(use_shared_data=False) as dydx:
        for t in ("BTC-USD", "ETH-USD"):
            dydx.apply_market(t, openInterest="1000")
        v = Venues(binance, hyper, dydx, tick_s, seed)
        task = asyncio.create_task(v._mover())
        try:
            yield v
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _main() -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with three_venues() as v:
        print(f"READY --venues {VENUES} --url {v.url_arg}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(_main())
