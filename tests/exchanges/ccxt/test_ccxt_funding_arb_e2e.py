"""End to end: funding arbitrage between dYdX (loopback fakes) and Binance USD-M (loopback fake) through
the ccxt plugin: ``--exchange dydx,binance=ccxt:binanceusdm --strategy funding_arb``.

Both legs are placed and filled, held through a funding payment on each venue (dYdX
``/v4/fundingPayments``, Binance ``/fapi/v1/income`` FUNDING_FEE), and closed by the strategy.
"""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal

import pytest

from tests.exchanges.ccxt.conftest import FAST
from tests.exchanges.dydx.conftest import FAST as DYDX_FAST

D = Decimal
MNEMONIC = " ".join(["abandon"] * 11 + ["about"])


def _dydx_address() -> str:
    from dydx_v4_client.wallet import Wallet

    from perpbot.exchanges.dydx.secrets import Secret, key_pair_from

    return Wallet(key_pair_from(Secret(MNEMONIC)), 0, 0).address


def _seed_dydx(dx, address: str) -> None:
    done = threading.Event()

    def seed():
        dx.indexer.ensure_subaccount(address, 0, "10000")
        now = time.strftime("%Y-%m-%dT%H:00:00.000Z", time.gmtime())
        dx.indexer.funding["BTC-USD"] = [{"ticker": "BTC-USD", "rate": "0.0000125", "price": "65000",
                                          "effectiveAt": now, "effectiveAtHeight": str(dx.indexer.height)}]
        done.set()

    dx.indexer.call_soon_threadsafe(seed)
    assert done.wait(5)


def _seed_binance(fake, mid: str) -> None:
    def seed():  # Binance pays 0.3 % per 8 h: shorting it against a dYdX long is worth entering
        fake.funding_history["BTCUSDT"][-1]["fundingRate"] = "0.00300000"
        fake.funding_rate["BTCUSDT"] = D("0.003")
        fake.move("BTCUSDT", mid)  # no basis between the venues

    fake.call(seed)


def _funding_row(address: str, size: str) -> dict:
    """A ``/v4/fundingPayments`` row (indexer comlink shape, as tests/exchanges/dydx use it)."""
    return {"address": address, "subaccountNumber": 0, "ticker": "BTC-USD", "perpetualId": "0", "oraclePrice": "65000",
            "size": size, "side": "LONG", "rate": "0.0000125", "payment": "-0.01",
            "createdAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), "createdAtHeight": "999"}


@pytest.mark.timeout(120)
def test_funding_arb_dydx_and_binance_end_to_end(tmp_path, monkeypatch, keys):
    from perpbot.core.bot import TradingBot
    from perpbot.core.config import BotConfig
    from perpbot.core.plugins import PluginManager
    from tests.fakes import FakeDydx
    from tests.fakes.ccxt import FakeBinanceUsdm

    monkeypatch.setenv("DYDX_MNEMONIC", MNEMONIC)
    address = _dydx_address()
    with FakeDydx(indexer_kwargs={"batch_interval": 0.05}) as dx, FakeBinanceUsdm(mark_interval_s=0.2) as bn:
        _seed_dydx(dx, address)
        _seed_binance(bn, str(D(dx.indexer.markets["BTC-USD"]["oraclePrice"]).quantize(D("0.1"))))
        net = {"network": "custom", "indexer_rest": dx.rest_url, "indexer_ws": dx.ws_url, "node": dx.node_url,
               **DYDX_FAST}
        dydx_ex = {**net, "reconcile_interval_s": 0.3}
        cfg = BotConfig(
            exchange=("dydx", "binance"), venues={"binance": "ccxt:binanceusdm"}, strategy="funding_arb",
            tickers=("BTC-USD", "binance:BTC-USD"), feed="dydx", state_dir=tmp_path, journal_enabled=False,
            report=False, progress=False, decision_interval_s=D("0.2"),
            exchanges={"dydx": dydx_ex, "binance": {"url": bn.url, **FAST}}, feeds={"dydx": dict(net)},
            strategies={"funding_arb": {"execution": "market", "warmup_h": "0", "notional_usd": "1000",
                                        "max_hold_h": "0.004", "max_pairs": "1"}},
        )
        bot = TradingBot(cfg, PluginManager(load_entry_points=False))

        def size(venue: str, t: str = "BTC-USD") -> Decimal:
            p = bot.portfolios.get(venue).positions.get(t) if bot.portfolios.get(venue) else None
            return p.size if p is not None else D(0)

        def funding(venue: str) -> Decimal:
            p = bot.portfolios[venue].positions.get("BTC-USD")
            return p.funding if p is not None else D(0)

        async def session():
            run = asyncio.create_task(bot.run())
            deadline = time.monotonic() + 25
            while not (size("dydx") > 0 and size("binance") < 0):
                assert time.monotonic() < deadline and not run.done(), (
                    f"legs not both filled: dydx {size('dydx')}, binance {size('binance')}", run.done() and run.exception())
                await asyncio.sleep(0.05)
            # held: one funding payment on each venue
            dx.indexer.call_soon_threadsafe(lambda: dx.indexer.funding_payments.append(_funding_row(address, str(size("dydx")))))
            paid = bn.call(bn.settle_funding, "BTCUSDT")
            while not (funding("dydx") != 0 and funding("binance") != 0):
                assert time.monotonic() < deadline and not run.done(), (
                    f"funding not booked: dydx {funding('dydx')}, binance {funding('binance')}")
                await asyncio.sleep(0.05)
            assert funding("binance") == paid > 0  # the short leg receives Binance's positive rate
            assert funding("dydx") == D("-0.01")
            # closed by the strategy (max_hold_h)
            while size("dydx") != 0 or size("binance") != 0:
                assert time.monotonic() < deadline and not run.done(), (
                    f"legs not closed: dydx {size('dydx')}, binance {size('binance')}")
                await asyncio.sleep(0.05)
            bot.request_stop("test done")
            async with asyncio.timeout(15):
                await run

        asyncio.run(session())
        assert len(dx.node.placed_orders()) >= 2  # open and close on dYdX
        sides = [o["side"] for o in bn.call(lambda: list(bn.orders.values()))]
        assert sides.count("SELL") >= 1 and sides.count("BUY") >= 1  # open (short) and close on Binance
        assert bn.signed_requests > 0
