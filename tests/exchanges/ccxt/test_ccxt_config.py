"""Selecting a ccxt venue, credentials and their secrecy, bad input as one line, the plugin listing."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.exchanges.ccxt.conftest import Harness
from tests.fakes.ccxt import API_KEY, API_SECRET

REPO = Path(__file__).resolve().parents[3]


def _ctx(venue="binance", arg="binanceusdm", live=False):
    from perpbot.core.clock import LiveClock
    from perpbot.core.exchange import ExchangeContext

    return ExchangeContext(clock=LiveClock(), markets={}, options={"venue": venue, "plugin_arg": arg, "live": live})


def test_config_names_the_plugin_and_its_venue():
    from perpbot.core.config import BotConfig

    cfg = BotConfig(exchange=("dydx", "binance"), venues={"binance": "ccxt:binanceusdm"},
                    exchanges={"ccxt": {"key_file": "k"}, "binance": {"url": "u"}})
    assert (cfg.venue_plugin("binance"), cfg.venue_plugin_arg("binance")) == ("ccxt", "binanceusdm")
    assert (cfg.venue_plugin("dydx"), cfg.venue_plugin_arg("dydx")) == ("dydx", "")
    assert cfg.exchange_options("binance") == {"key_file": "k", "url": "u"}


@pytest.mark.parametrize("arg, needle", [
    ("binanceusd", "unknown ccxt venue 'binanceusd' for venue 'binance' (did you mean 'binanceusdm'?)"),
    ("bitstamp", "ccxt venue 'bitstamp' lists no perpetual swaps"),
    ("", "names no ccxt venue: write binance=ccxt:ID"),
])
def test_bad_venue_is_one_config_error(arg, needle):
    from perpbot.core.errors import ConfigError
    from perpbot.exchanges.ccxt import CcxtExchange

    with pytest.raises(ConfigError) as e:
        CcxtExchange({}, _ctx(arg=arg))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_mainnet_needs_live_and_keys(monkeypatch):
    from perpbot.core.errors import LiveTradingNotConfirmed, SecretError
    from perpbot.exchanges.ccxt import CcxtExchange

    monkeypatch.delenv("PERPBOT_BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("PERPBOT_BINANCE_SECRET", raising=False)
    with pytest.raises(LiveTradingNotConfirmed, match="pass --live"):
        CcxtExchange({}, _ctx()).preflight()
    with pytest.raises(SecretError, match="missing credentials PERPBOT_BINANCE_API_KEY, PERPBOT_BINANCE_SECRET"):
        CcxtExchange({}, _ctx(live=True)).preflight()
    monkeypatch.setenv("PERPBOT_BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("PERPBOT_BINANCE_SECRET", API_SECRET)
    CcxtExchange({}, _ctx(live=True)).preflight()  # keys from the environment
    CcxtExchange({"testnet": True}, _ctx()).preflight()  # ccxt sandbox: no --live needed
    CcxtExchange({"paper": True}, _ctx()).preflight()  # paper: neither


def test_key_file_must_be_owner_only(tmp_path, monkeypatch):
    from perpbot.core.errors import SecretError
    from perpbot.exchanges.ccxt import CcxtExchange

    monkeypatch.delenv("PERPBOT_BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("PERPBOT_BINANCE_SECRET", raising=False)
    kf = tmp_path / "binance.keys"
    kf.write_text(f"# Binance USD-M\nPERPBOT_BINANCE_API_KEY={API_KEY}\nSECRET={API_SECRET}\n")
    kf.chmod(0o644)
    with pytest.raises(SecretError) as e:
        CcxtExchange({"key_file": str(kf)}, _ctx(live=True)).preflight()
    assert f"Fix: chmod 600 {kf}" in str(e.value) and "0644" in str(e.value)
    assert API_SECRET not in str(e.value)
    kf.chmod(0o600)
    ex = CcxtExchange({"key_file": str(kf)}, _ctx(live=True))
    ex.preflight()
    assert ex._credentials["apiKey"].reveal() == API_KEY and ex._credentials["secret"].reveal() == API_SECRET


async def test_secrets_never_reach_logs_reprs_or_errors(fake_thread, monkeypatch, tmp_path):
    """A wrong secret: the venue refuses the signature; neither key appears anywhere we print."""
    from loguru import logger

    from perpbot.core.model import OrderRequest, Side

    wrong = "wrong-secret-value-0123456789abcdef"
    monkeypatch.setenv("PERPBOT_BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("PERPBOT_BINANCE_SECRET", wrong)
    sink = io.StringIO()
    from perpbot.core.logs import redact

    handler = logger.add(lambda m: sink.write(redact(str(m))), level="DEBUG")
    try:
        h = Harness(fake_thread)
        h.ex.preflight()
        from perpbot.core.errors import ExchangeError

        with pytest.raises(ExchangeError) as e:
            await h.start()
        text = " ".join([str(e.value), repr(h.ex), repr(h.ex._credentials), str(h.ex._credentials.get("secret")),
                         f"{h.ex._credentials.get('apiKey')}", sink.getvalue()])
        assert "-1022 Signature for this request is not valid." in str(e.value)
        assert wrong not in text and API_KEY not in text, text
        with pytest.raises(TypeError):
            __import__("pickle").dumps(h.ex._credentials["secret"])
        # and with the right secret, a rejected order's message carries no key either
        monkeypatch.setenv("PERPBOT_BINANCE_SECRET", API_SECRET)
        h = Harness(fake_thread)
        await h.start()
        r = await h.ex.place_order(OrderRequest(client_id=9, ticker="BTC-USD", side=Side.BUY, size=__import__("decimal").Decimal("99")))
        await h.stop()
        assert not r.success and API_KEY not in r.error and API_SECRET not in r.error
        assert API_SECRET not in sink.getvalue() and API_KEY not in sink.getvalue()
    finally:
        logger.remove(handler)


def _runbot(*args, env=None, timeout=60):
    e = dict(os.environ, PERPBOT_OFFLINE="1", COLUMNS="200", **(env or {}))
    for k in ("PERPBOT_BINANCE_API_KEY", "PERPBOT_BINANCE_SECRET"):
        e.pop(k, None) if not (env and k in env) else None
    return subprocess.run([sys.executable, str(REPO / "runbot.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=e)


def test_cli_bad_venue_is_one_line(tmp_path):
    needle = "error: --exchange: unknown ccxt venue 'binanceusd' for venue 'binance' (did you mean 'binanceusdm'?)"
    res = _runbot("--exchange", "binance=ccxt:binanceusd", "--ticker", "BTC", "--state-dir", str(tmp_path), "--no-report")
    assert res.returncode == 2 and needle in res.stderr, res.stderr[-1500:]
    assert "Traceback" not in res.stderr


def test_cli_missing_keys_and_unknown_ticker(tmp_path, fake_thread):
    res = _runbot("--exchange", "binance=ccxt:binanceusdm", "--ticker", "BTC", "--live", "--state-dir", str(tmp_path))
    assert res.returncode == 2 and "missing credentials PERPBOT_BINANCE_API_KEY, PERPBOT_BINANCE_SECRET" in res.stderr
    res = _runbot("--exchange", "binance=ccxt:binanceusdm", "--ticker", "BTX", "--ccxt-url", fake_thread.url,
                  "--state-dir", str(tmp_path), env={"PERPBOT_BINANCE_API_KEY": API_KEY, "PERPBOT_BINANCE_SECRET": API_SECRET})
    assert res.returncode == 2 and "error: --ticker: 'BTX-USD' is not a perpetual of binance (binanceusdm) (did you mean 'BTC-USD'?)" in res.stderr, res.stderr[-1500:]
    assert "Traceback" not in res.stderr


def test_plugins_lists_the_tested_ccxt_venues():
    from perpbot.core.plugins import PluginManager

    rows = {r["name"]: r for r in PluginManager(load_entry_points=False).listing()}
    regs = rows["perpbot.exchanges.ccxt"]["registers"]
    assert "exchange:ccxt:binanceusdm" in regs and "exchange:ccxt:hyperliquid" in regs
