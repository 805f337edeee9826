"""The Binance USD-M loopback fake on its own, for a demo run of the ccxt plugin.

    python -m tests.fakes.ccxt [--wallet 10000] [--tick 1.0] [--rate 0.0003] [--seed 7]

Starts :class:`~tests.fakes.ccxt.FakeBinanceUsdm` on an OS-chosen 127.0.0.1 port, moves its
BTCUSDT and ETHUSDT books on a random walk every ``--tick`` seconds (depth diffs, trades,
mark prices) with ``--rate`` as the funding rate per 8 h, settles funding every
``--funding-every`` seconds, and prints ``READY url=...`` plus the keys to export (the fake's
own, public test values) and the ``runbot.py`` flags. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fakes.ccxt import API_KEY, API_SECRET, FakeBinanceUsdm  # noqa: E402

D = Decimal


async def run(ns: argparse.Namespace) -> int:
    rng = random.Random(ns.seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with FakeBinanceUsdm(wallet=ns.wallet) as fake:
        for s in fake.symbols:
            fake.funding_rate[s] = D(ns.rate)
            fake.funding_history[s][-1]["fundingRate"] = ns.rate
        if ns.btc:
            fake.move("BTCUSDT", ns.btc)
        print(f"READY url={fake.url}", flush=True)
        print(f"export PERPBOT_BINANCE_API_KEY={API_KEY} PERPBOT_BINANCE_SECRET={API_SECRET}   # the fake's test keys")
        print(f"run with   : --exchange binance=ccxt:binanceusdm --ccxt-url {fake.url}", flush=True)
        elapsed = 0.0
        while not stop.is_set():
            try:
                async with asyncio.timeout(ns.tick):
                    await stop.wait()
            except TimeoutError:
                pass
            elapsed += ns.tick
            for s, info in fake.symbols.items():
                mid = D(info["mid"]) * (1 + D(str(rng.gauss(0, 0.0004))))
                fake.move(s, str(mid.quantize(D(info["tick"]))))
                bid, ask = fake.best(s)
                fake.push_trade(s, ask if rng.random() < 0.5 else bid, D("0.01"), rng.random() < 0.5)
            if ns.funding_every and elapsed >= ns.funding_every:
                elapsed = 0.0
                for s in fake.symbols:
                    fake.settle_funding(s)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fakes.ccxt", description=__doc__.splitlines()[0])
    p.add_argument("--wallet", default="10000", help="USDT wallet of the test account")
    p.add_argument("--tick", type=float, default=1.0, help="seconds between market moves")
    p.add_argument("--rate", default="0.0003", help="funding rate per 8 h (fraction)")
    p.add_argument("--btc", default="", help="BTCUSDT mid price to start at (e.g. the dYdX fake's)")
    p.add_argument("--funding-every", type=float, default=60.0, help="seconds between funding settlements (0: never)")
    p.add_argument("--seed", type=int, default=7)
    return asyncio.run(run(p.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
