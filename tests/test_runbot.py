"""runbot.build_config: CLI flags map onto the config (flags win over the file)."""

from decimal import Decimal as D
from pathlib import Path

import pytest

from perpbot import cli as runbot
from perpbot.core.errors import ConfigError


def opts(**kw):
    base = {k: None for k in ("config", "exchange", "strategy", "ticker", "feed", "data", "speed", "param", "collateral")}
    base.update(kw)
    return base


def test_venue_equals_plugin_and_qualified_tickers():
    cfg = runbot.build_config(opts(exchange="paper,binance=paper", ticker="BTC,binance:btc", feed="funding_replay"))
    assert cfg.exchange == ("paper", "binance") and cfg.venues == {"binance": "paper"}
    assert cfg.tickers == ("BTC-USD", "binance:BTC-USD")


@pytest.mark.parametrize("bad", ["=paper", "binance="])
def test_bad_venue_spec(bad):
    with pytest.raises(ConfigError, match="--exchange"):
        runbot.build_config(opts(exchange=bad, feed="replay"))


def test_dydx_flags_reach_exchange_and_feed():
    cfg = runbot.build_config(
        opts(exchange="dydx", network="custom", indexer_rest="http://127.0.0.1:1", indexer_ws="ws://127.0.0.1:1/v4/ws",
             node="127.0.0.1:2", node_secure=False, subaccount=3, mnemonic_file=Path("/tmp/m"), live=True)
    )
    ex = cfg.exchanges["dydx"]
    assert cfg.feed == "dydx"  # trading dYdX uses its live feed
    assert ex["network"] == "custom" and ex["node"] == "127.0.0.1:2" and ex["node_secure"] is False
    assert ex["subaccount"] == 3 and ex["mnemonic_file"] == "/tmp/m" and ex["live"] is True
    assert cfg.feeds["dydx"]["indexer_ws"] == "ws://127.0.0.1:1/v4/ws" and "mnemonic_file" not in cfg.feeds["dydx"]


def test_flags_override_the_file_and_params_are_strings_until_validated(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[bot]\nstrategy = "grid"\ntickers = ["ETH"]\nfeed = "replay"\n[strategy.sniper]\nentry_threshold = 70\n')
    cfg = runbot.build_config(opts(config=f, strategy="sniper", param=["exit_threshold=45"], speed=2.0, collateral="5000"))
    assert cfg.strategy == "sniper" and cfg.tickers == ("ETH-USD",)
    assert cfg.strategies["sniper"] == {"entry_threshold": D("70"), "exit_threshold": "45"}
    assert cfg.feeds["replay"]["speed"] == D("2.0") and cfg.exchanges["paper"]["collateral"] == "5000"


def test_offline_default_feed_is_the_embedded_replay():
    cfg = runbot.build_config(opts(exchange="paper"))
    assert cfg.feed == "replay"
