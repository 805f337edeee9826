"""The acceptance run as a user types it: ``python runbot.py --exchange dydx,binance=ccxt:binanceusdm
--strategy funding_arb ...`` against the dYdX loopback fakes and the Binance USD-M fake.

Both legs open, a funding payment is made on each venue while they are held, the strategy
closes them (``max_hold_h``), and Ctrl-C ends the run with its summary.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.exchanges.ccxt.conftest import FAST
from tests.exchanges.dydx.conftest import FAST as DYDX_FAST
from tests.fakes.ccxt import API_KEY, API_SECRET

D = Decimal
REPO = Path(__file__).resolve().parents[3]
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


def _toml(d: dict) -> str:
    return "\n".join(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {str(v).lower() if isinstance(v, bool) else v}"
                     for k, v in d.items())


@pytest.mark.timeout(240)
def test_runbot_funding_arb_dydx_binance(tmp_path):
    from tests.fakes import FakeDydx
    from tests.fakes.ccxt import FakeBinanceUsdm

    address = _dydx_address()
    with FakeDydx(indexer_kwargs={"batch_interval": 0.05}) as dx, FakeBinanceUsdm(mark_interval_s=0.2) as bn:
        _seed_dydx(dx, address)
        _seed_binance(bn, str(D(dx.indexer.markets["BTC-USD"]["oraclePrice"]).quantize(D("0.1"))))
        cfg = tmp_path / "fast.toml"
        cfg.write_text("[exchange.dydx]\n" + _toml({**DYDX_FAST, "reconcile_interval_s": 0.3}) +
                       "\n[feed.dydx]\n" + _toml(DYDX_FAST) + "\n[exchange.binance]\n" + _toml(FAST) + "\n")
        env = dict(os.environ, PERPBOT_OFFLINE="1", COLUMNS="200", DYDX_MNEMONIC=MNEMONIC,
                   PERPBOT_BINANCE_API_KEY=API_KEY, PERPBOT_BINANCE_SECRET=API_SECRET)
        cmd = [sys.executable, str(REPO / "runbot.py"), "--config", str(cfg),
               "--exchange", "dydx,binance=ccxt:binanceusdm", "--strategy", "funding_arb",
               "--ticker", "BTC,binance:BTC", "--feed", "dydx", "--network", "custom",
               "--indexer-rest", dx.rest_url, "--indexer-ws", dx.ws_url, "--node", dx.node_url,
               "--ccxt-url", bn.url, "--decision-interval", "0.2", "--state-dir", str(tmp_path / "state"),
               "--param", "execution=market", "--param", "warmup_h=0", "--notional-usd", "1000",
               "--max-hold", "0.003", "--max-pairs", "1", "--no-report"]
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            def binance_position() -> Decimal:
                return bn.call(lambda: bn.positions.get("BTCUSDT", {}).get("amt", D(0)))

            deadline = time.monotonic() + 150  # start-up alone takes 20 s on a loaded 2-core machine
            while binance_position() >= 0 or len(dx.node.placed_orders()) < 1:
                assert proc.poll() is None, proc.communicate()[1][-3000:]
                if time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail("the legs never opened; the bot's log ends:\n" + proc.communicate()[1][-4000:])
                time.sleep(0.1)
            size = "0.0111"  # the dYdX leg: 1000 USD / ~90k, floored to the 0.0001 step
            dx.indexer.call_soon_threadsafe(lambda: dx.indexer.funding_payments.append(_funding_row(address, size)))
            paid = bn.call(bn.settle_funding, "BTCUSDT")
            while binance_position() != 0 or len(dx.node.placed_orders()) < 2:
                assert proc.poll() is None, proc.communicate()[1][-3000:]
                if time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail("the legs never closed; the bot's log ends:\n" + proc.communicate()[1][-4000:])
                time.sleep(0.1)
            time.sleep(1.0)  # the closing fills reach the bot
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err[-3000:]
        assert "Traceback" not in err
        assert "funding_arb: enter" in err and "funding_arb: exit" in err
        assert paid > 0
        assert API_SECRET not in out + err and MNEMONIC not in out + err
        # a funding payment on each venue, booked into that venue's leg; both legs flat at the end
        assert re.search(r"leg BTC-USD: funding -0\.0100 USD.*position 0\.0000", out), out[-3000:]
        assert re.search(rf"leg binance:BTC-USD: funding \+{paid:.4f} USD.*position 0\.0000", out), out[-3000:]
        assert re.search(r"^farb-open\s+2\s", out, re.M) and re.search(r"^farb-close\s+\d+\s", out, re.M), out[-3000:]
        assert "(no tag)" not in out, out[-3000:]  # every fill keeps its order's tag, also after the order's last update
