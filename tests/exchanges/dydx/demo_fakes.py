"""The loopback dYdX fakes with a funded account and a moving market, for the acceptance run.

    python -m tests.exchanges.dydx.demo_fakes [--usdc 10000] [--tick 0.5] [--seed 7] [--port P] [--node-port R]

Starts ``tests.fakes.FakeDydx`` (indexer REST + WebSocket, gRPC node, matching bridge) and
adds what ``python -m tests.fakes`` lacks for a bot run:

- the subaccount of the address derived from ``$DYDX_MNEMONIC`` (or ``--address``) holds
  ``--usdc`` USDC (a never-funded subaccount has equity 0 and nothing to size with);
- a block every second (short-term orders need a moving height);
- market activity every ``--tick`` seconds on BTC-USD and ETH-USD: a trending random walk
  of the mid moves the order book (absolute-size level diffs), prints trades at the
  touch and updates the oracle price.

It prints ``READY rest=... ws=... node=...`` and the ``runbot.py`` command line; Ctrl-C
stops. Everything binds 127.0.0.1. (A request for these controls in tests/fakes itself is
in /work/notes/requests-dydx.md.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fakes import FakeDydx  # noqa: E402
from tests.fakes.indexer import synth_book  # noqa: E402

D = Decimal


def address_from_env(env: str) -> str | None:
    words = os.environ.get(env, "").strip()
    if not words:
        return None
    from dydx_v4_client.key_pair import KeyPair
    from dydx_v4_client.wallet import Wallet

    return Wallet(KeyPair.from_mnemonic(" ".join(words.split())), 0, 0).address


class MarketMover:
    """A trending random walk per market, pushed as book diffs, trades and oracle updates."""

    def __init__(self, dx: FakeDydx, tickers, seed: int, levels: int = 25):
        self.ix = dx.indexer
        self.rng = random.Random(seed)
        self.tickers = [t for t in tickers if t in self.ix.markets]
        self.levels = levels
        self.mid = {t: D(self.ix.markets[t].get("oraclePrice") or "1") for t in self.tickers}
        self.drift = {t: 0.0 for t in self.tickers}
        for t in self.tickers:  # start from a clean synthetic book around the oracle price
            self._set_book(t, self.mid[t])

    def _set_book(self, t: str, mid: Decimal) -> None:
        m = self.ix.markets[t]
        step = D(m["stepSize"])
        new = synth_book(m, mid, levels=self.levels, base_size=step * 20)
        book = self.ix.book(t)
        want_b = {D(l["price"]): D(l["size"]) for l in new["bids"]}
        want_a = {D(l["price"]): D(l["size"]) for l in new["asks"]}
        bids = [(p, "0") for p in list(book.bids) if p not in want_b] + [(p, s) for p, s in want_b.items()
                                                                      if book.bids.get(p) != s]
        asks = [(p, "0") for p in list(book.asks) if p not in want_a] + [(p, s) for p, s in want_a.items()
                                                                      if book.asks.get(p) != s]
        self.ix.apply_orderbook(t, bids=bids, asks=asks)

    def step(self) -> None:
        for t in self.tickers:
            if self.rng.random() < 0.05:  # regime change: a new trend
                self.drift[t] = self.rng.choice((-1, 0, 1)) * 0.0015
            ret = self.drift[t] + self.rng.gauss(0, 0.0008)
            self.mid[t] = self.mid[t] * D(str(round(1 + ret, 8)))
            self._set_book(t, self.mid[t])
            book = self.ix.book(t)
            m = self.ix.markets[t]
            trades = []
            for _ in range(self.rng.randint(1, 4)):
                buy = self.rng.random() < 0.5 + (0.3 if self.drift[t] > 0 else -0.3 if self.drift[t] < 0 else 0)
                px = book.best_ask() if buy else book.best_bid()
                size = D(m["stepSize"]) * self.rng.randint(1, 30)
                trades.append({"side": "BUY" if buy else "SELL", "size": str(size), "price": str(px)})
            self.ix.apply_trades(t, trades)
            self.ix.apply_market(t, oracle_price=str(self.mid[t].quantize(D(m["tickSize"]))))


async def run(ns: argparse.Namespace) -> int:
    dx = FakeDydx(indexer_kwargs={"port": ns.port, "batch_interval": 0.25},
                  node_kwargs={"port": ns.node_port, "block_time": 1.0})
    await dx.start()
    address = ns.address or address_from_env(ns.mnemonic_env)
    if address:
        dx.indexer.ensure_subaccount(address, 0, usdc=ns.usdc)
    mover = MarketMover(dx, ("BTC-USD", "ETH-USD"), ns.seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover
            pass
    print(f"funded     : {address or '(no $' + ns.mnemonic_env + ': nothing funded)'} with {ns.usdc} USDC")
    print(f"READY rest={dx.rest_url} ws={dx.ws_url} node={dx.node_url}")
    print(f"run        : runbot.py --exchange dydx --network custom --indexer-rest {dx.rest_url} "
          f"--indexer-ws {dx.ws_url} --node {dx.node_url} --strategy sniper --ticker BTC,ETH", flush=True)
    try:
        while not stop.is_set():
            mover.step()
            try:
                await asyncio.wait_for(stop.wait(), ns.tick)
            except asyncio.TimeoutError:
                pass
    finally:
        await dx.stop()
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.exchanges.dydx.demo_fakes", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0, help="indexer port (REST + WS; 0 = ephemeral)")
    p.add_argument("--node-port", type=int, default=0)
    p.add_argument("--usdc", default="10000", help="USDC to fund the account with")
    p.add_argument("--address", default=None, help="address to fund (default: derived from the mnemonic env var)")
    p.add_argument("--mnemonic-env", default="DYDX_MNEMONIC")
    p.add_argument("--tick", type=float, default=0.5, help="seconds between market moves")
    p.add_argument("--seed", type=int, default=7)
    ns = p.parse_args(argv)
    try:
        return asyncio.run(run(ns))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
