"""Settings (networks, endpoints, validation) and the wallet secret (never leaked, safe file modes)."""

from __future__ import annotations

import copy
import os
import pickle
from decimal import Decimal

import pytest
from loguru import logger

from perpbot.core.errors import ConfigError, LiveTradingNotConfirmed, SecretError
from perpbot.exchanges.dydx.config import MAINNET_CHAIN_ID, TESTNET_CHAIN_ID, DydxSettings
from perpbot.exchanges.dydx.secrets import Secret, key_pair_from, load_mnemonic

# The public BIP-39 test vector (all-zero entropy): NOT a real key.
MNEMONIC = " ".join(["abandon"] * 11 + ["about"])
# another valid public vector (0x7f entropy), to test "not in output" with distinctive words
MNEMONIC2 = "legal winner thank year wave sausage worth useful legal winner thank yellow"


# ---------------------------------------------------------------- settings


def test_default_network_is_mainnet_and_needs_no_keys():
    s = DydxSettings.from_config({})
    assert s.network == "mainnet"
    assert s.endpoints.rest == "https://indexer.dydx.trade"
    assert s.endpoints.ws == "wss://indexer.dydx.trade/v4/ws"
    assert s.endpoints.chain_id == MAINNET_CHAIN_ID and s.is_mainnet
    assert s.endpoints.node_secure is True
    assert s.live is False


def test_testnet_endpoints():
    s = DydxSettings.from_config({"network": "testnet"})
    assert s.endpoints.rest == "https://indexer.v4testnet.dydx.exchange"
    assert s.endpoints.chain_id == TESTNET_CHAIN_ID and not s.is_mainnet


def test_custom_network_maps_the_cli_flags():
    s = DydxSettings.from_config({
        "network": "custom", "indexer_rest": "http://127.0.0.1:8080/", "indexer_ws": "ws://127.0.0.1:8080/v4/ws",
        "node": "127.0.0.1:9090", "subaccount": "3", "candles": "1min,5MINS",
    })
    assert s.endpoints.rest == "http://127.0.0.1:8080"  # trailing slash dropped
    assert s.endpoints.node == "127.0.0.1:9090"
    assert s.endpoints.node_secure is False  # loopback defaults to plaintext
    assert s.endpoints.chain_id == TESTNET_CHAIN_ID
    assert s.subaccount == 3 and s.candles == ("1MIN", "5MINS")
    s2 = DydxSettings.from_config({"network": "custom", "indexer_rest": "https://x.example", "indexer_ws": "wss://x.example/v4/ws",
                                   "node": "grpc.example:443"})
    assert s2.endpoints.node_secure is True
    s3 = DydxSettings.from_config({"network": "custom", "indexer_rest": "http://127.0.0.1:1", "indexer_ws": "ws://127.0.0.1:1",
                                   "node": "http://127.0.0.1:5", "node_secure": "true"})
    assert s3.endpoints.node == "127.0.0.1:5" and s3.endpoints.node_secure is True


def test_live_comes_from_the_table_or_the_bot():
    assert DydxSettings.from_config({"live": True}).live
    assert DydxSettings.from_config({}, live=True).live
    assert not DydxSettings.from_config({"live": "false"}).live


@pytest.mark.parametrize(
    "cfg, fragment",
    [
        ({"network": "moon"}, "dydx.network"),
        ({"network": "custom"}, "dydx.indexer_rest"),
        ({"network": "custom", "indexer_rest": "http://a", "indexer_ws": "http://a"}, "dydx.indexer_ws"),
        ({"node": "nohost"}, "dydx.node"),
        ({"short_term_blocks": 40}, "dydx.short_term_blocks"),
        ({"rest_timeout_s": "soon"}, "dydx.rest_timeout_s"),
        ({"market_slippage": "2"}, "dydx.market_slippage"),
        ({"candles": "2MIN"}, "dydx.candles"),
        ({"subaccount": -1}, "dydx.subaccount"),
        ({"address": "cosmos1xyz"}, "dydx.address"),
        ({"nonsense": 1}, "dydx.nonsense"),
    ],
)
def test_bad_settings_are_one_line_errors_naming_the_key(cfg, fragment):
    with pytest.raises(ConfigError) as err:
        DydxSettings.from_config(cfg)
    text = str(err.value)
    assert fragment in text and "\n" not in text


def test_toml_decimals_are_accepted():
    s = DydxSettings.from_config({"market_slippage": Decimal("0.002"), "grpc_rate_per_s": Decimal("2.5")})
    assert s.market_slippage == Decimal("0.002") and s.grpc_rate_per_s == 2.5


# ---------------------------------------------------------------- secrets


def test_secret_never_prints():
    s = Secret(MNEMONIC2)
    for text in (str(s), repr(s), f"{s}", f"{s!r}", "%s" % s, str([s]), str({"k": s})):
        assert "legal" not in text and text.count("***") >= 1
    assert s.reveal() == MNEMONIC2
    assert copy.deepcopy(s) is s
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_mnemonic_from_env(monkeypatch):
    monkeypatch.setenv("MY_DYDX_WORDS", f"  {MNEMONIC2}\n")
    s = load_mnemonic("MY_DYDX_WORDS")
    assert s.reveal() == MNEMONIC2


def test_mnemonic_missing_says_how_to_fix(monkeypatch):
    monkeypatch.delenv("DYDX_MNEMONIC", raising=False)
    with pytest.raises(SecretError) as err:
        load_mnemonic("DYDX_MNEMONIC", None)
    assert "DYDX_MNEMONIC" in str(err.value) and "mnemonic_file" in str(err.value)


def test_mnemonic_file_must_be_private(tmp_path, monkeypatch):
    monkeypatch.delenv("DYDX_MNEMONIC", raising=False)
    f = tmp_path / "words.txt"
    f.write_text(MNEMONIC2 + "\n")
    os.chmod(f, 0o644)
    with pytest.raises(SecretError) as err:
        load_mnemonic("DYDX_MNEMONIC", f)
    text = str(err.value)
    assert f"chmod 600 {f}" in text and "mode 0644" in text
    assert "legal" not in text
    os.chmod(f, 0o600)
    assert load_mnemonic("DYDX_MNEMONIC", f).reveal() == MNEMONIC2
    os.chmod(f, 0o640)
    with pytest.raises(SecretError):
        load_mnemonic("DYDX_MNEMONIC", f)


def test_mnemonic_file_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("DYDX_MNEMONIC", raising=False)
    with pytest.raises(SecretError, match="does not exist"):
        load_mnemonic("DYDX_MNEMONIC", tmp_path / "nope")


def test_not_a_mnemonic_is_refused_without_echoing_it(monkeypatch):
    monkeypatch.setenv("DYDX_MNEMONIC", "hunter2 correcthorse batterystaple")
    with pytest.raises(SecretError) as err:
        load_mnemonic()
    assert "3 word(s)" in str(err.value)
    assert "hunter2" not in str(err.value) and "correcthorse" not in str(err.value)


def test_bad_checksum_error_hides_the_words():
    bad = Secret(" ".join(["legal"] * 12))  # 12 valid words, wrong checksum
    with pytest.raises(SecretError) as err:
        key_pair_from(bad)
    exc = err.value
    assert "legal" not in str(exc)
    assert exc.__context__ is None and exc.__cause__ is None  # nothing chained carries the words


def test_key_derivation_matches_the_client():
    from dydx_v4_client.key_pair import KeyPair
    from dydx_v4_client.wallet import Wallet

    pair = key_pair_from(Secret(MNEMONIC))
    assert pair.public_key_bytes == KeyPair.from_mnemonic(MNEMONIC).public_key_bytes
    assert Wallet(pair, 0, 0).address.startswith("dydx1")


# ---------------------------------------------------------------- live opt-in


async def test_mainnet_trading_requires_live(tmp_path, monkeypatch):
    from perpbot.core.exchange import ExchangeContext
    from perpbot.core.clock import LiveClock
    from perpbot.exchanges.dydx.exchange import DydxExchange

    monkeypatch.setenv("DYDX_MNEMONIC", MNEMONIC2)
    ex = DydxExchange({"network": "mainnet"}, ExchangeContext(LiveClock(), {}, state_dir=tmp_path))
    with pytest.raises(LiveTradingNotConfirmed) as err:
        await ex.connect()  # refused before any network access
    assert "--live" in str(err.value)
    # a custom network signing for the mainnet chain id is mainnet too
    ex2 = DydxExchange({"network": "custom", "indexer_rest": "http://127.0.0.1:1", "indexer_ws": "ws://127.0.0.1:1",
                        "chain_id": MAINNET_CHAIN_ID}, ExchangeContext(LiveClock(), {}, state_dir=tmp_path))
    with pytest.raises(LiveTradingNotConfirmed):
        await ex2.connect()


async def test_mnemonic_never_reaches_logs_reprs_or_errors(fakes, tmp_path, monkeypatch, caplog):
    """Connect for real (key derivation, signing), fail on purpose, and search every output."""
    import logging

    from perpbot.core.clock import LiveClock
    from perpbot.core.exchange import ExchangeContext
    from perpbot.core.model import OrderRequest, OrderType, Side
    from perpbot.exchanges.dydx.exchange import DydxExchange

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", backtrace=True, diagnose=True)
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DYDX_MNEMONIC", MNEMONIC2)
    cfg = {"network": "custom", "indexer_rest": fakes.rest_url, "indexer_ws": fakes.ws_url, "node": fakes.node_url}
    errors: list[str] = []
    try:
        ex = DydxExchange(cfg, ExchangeContext(LiveClock(), {}, state_dir=tmp_path))
        await ex.connect()
        fakes.node.fail_next_broadcasts(1, code=4, raw_log="signature verification failed")
        res = await ex.place_order(OrderRequest(1, "BTC-USD", Side.BUY, "0.001", OrderType.MARKET))
        errors.append(res.error)
        errors += [repr(ex), str(ex.health()), repr(ex.node), repr(ex.settings), repr(ex.__dict__)]
        await ex.disconnect()
        # a wrong address: refused with a message that names addresses only
        bad = DydxExchange({**cfg, "address": "dydx1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"},
                           ExchangeContext(LiveClock(), {}, state_dir=tmp_path))
        with pytest.raises(SecretError) as err:
            await bad.connect()
        errors.append(str(err.value))
        # a mnemonic that fails BIP-39
        monkeypatch.setenv("DYDX_MNEMONIC", " ".join(["legal"] * 12))
        worse = DydxExchange(cfg, ExchangeContext(LiveClock(), {}, state_dir=tmp_path))
        with pytest.raises(SecretError) as err2:
            await worse.connect()
        logger.opt(exception=err2.value).error("connect failed")  # a traceback with locals (diagnose)
        errors.append(str(err2.value))
    finally:
        logger.remove(sink)
    blob = "\n".join(lines + errors + [r.getMessage() for r in caplog.records] + [caplog.text])
    assert "signature verification failed" in blob  # the outputs were really captured
    for word in ("legal winner", "legal legal", "sausage", "useful", "yellow"):
        assert word not in blob, f"mnemonic word {word!r} leaked"
