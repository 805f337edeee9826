from decimal import Decimal as D

import pytest

from perpbot.core.config import (
    BotConfig,
    config_from_mapping,
    config_to_mapping,
    dumps,
    load_config,
    normalize_ticker,
    split_ticker,
)
from perpbot.core.errors import ConfigError


@pytest.mark.parametrize(
    "raw,expected",
    [("btc", "BTC-USD"), ("ETH-USD", "ETH-USD"), (" sol ", "SOL-USD"), ("binance:btc", "binance:BTC-USD")],
)
def test_normalize_ticker(raw, expected):
    assert normalize_ticker(raw) == expected


@pytest.mark.parametrize("raw", ["", "BTC/USD", ":BTC", "B TC"])
def test_bad_ticker_is_one_line_error(raw):
    with pytest.raises(ConfigError, match="ticker"):
        normalize_ticker(raw)


def test_split_ticker():
    assert split_ticker("binance:BTC-USD") == ("binance", "BTC-USD")
    assert split_ticker("BTC-USD") == (None, "BTC-USD")


def test_toml_round_trip_keeps_decimals_exact(tmp_path):
    cfg = config_from_mapping(
        {
            "bot": {"exchange": "paper", "strategy": "grid", "tickers": ["btc"], "decision_interval_s": D("0.25")},
            "exchange": {"paper": {"collateral": D("1234.5678"), "taker_fee": D("0.00045")}},
            "strategy": {"grid": {"take_profit": D("0.0008")}},
            "sizer": {"name": "fixed_notional", "fixed_notional": {"notional": D("250.10")}},
            "risk": {"policies": ["max_leverage"], "max_leverage": {"max_leverage": D("3")}},
        }
    )
    path = tmp_path / "c.toml"
    path.write_text(dumps(config_to_mapping(cfg)))
    again = load_config(path)
    assert again.exchanges["paper"]["collateral"] == D("1234.5678")
    assert again.exchanges["paper"]["taker_fee"] == D("0.00045")
    assert again.strategies["grid"]["take_profit"] == D("0.0008")
    assert again.sizers["fixed_notional"]["notional"] == D("250.10")
    assert again.decision_interval_s == D("0.25")
    assert again.tickers == ("BTC-USD",) and again.risk_policies == ("max_leverage",)


@pytest.mark.parametrize(
    "data,match",
    [
        ({"bot": {"speed": 1}}, "unknown key bot.speed"),
        ({"bots": {}}, r"unknown section \[bots\]"),
        ({"bot": {"decision_interval_s": "fast"}}, "bot.decision_interval_s: expected a decimal number, got 'fast'"),
        ({"bot": {"decision_interval_s": -1}}, "must be positive"),
        ({"bot": {"journal": "maybe"}}, "bot.journal: expected true or false, got 'maybe'"),
        ({"bot": {"max_events": "ten"}}, "bot.max_events: expected an integer, got 'ten'"),
        ({"bot": {"strategy": 3}}, "bot.strategy: expected a name, got 3"),
        ({"exchange": {"paper": 5}}, r"\[exchange.paper\]: expected a table"),
        ({"bot": {"unknown_positions": "ignore"}}, "unknown_positions: expected one of adopt, flatten, refuse"),
    ],
)
def test_wrong_types_are_one_line_errors(data, match):
    with pytest.raises(ConfigError, match=match):
        config_from_mapping(data)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[bot]\nstrategy = \n")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_config(bad)


def test_journal_path_default_names_strategy_and_venue():
    cfg = BotConfig(strategy="grid", exchange=("paper",))
    assert cfg.resolved_journal_path().name == "journal-grid-paper.sqlite"


def test_init_writes_a_config_that_loads(tmp_path):
    from perpbot.core.initconfig import default_config_text
    from perpbot.core.plugins import PluginManager

    text = default_config_text(PluginManager(load_entry_points=False))
    assert text.count("# ") > 20  # commented
    path = tmp_path / "perpbot.toml"
    path.write_text(text)
    cfg = load_config(path)
    assert cfg.exchange == ("paper",) and cfg.strategy == "sniper"
    assert cfg.exchanges["paper"]["taker_fee"] == D("0.0005")


def test_relative_feed_paths_resolve_against_the_config_file(tmp_path):
    d = tmp_path / "configs"
    d.mkdir()
    (d / "c.toml").write_text('[feed.replay]\nfiles = ["../data/a.gz", "/abs/b.gz", "sample:bars"]\nmarkets_file = ""\nspeed = 2\n')
    cfg = load_config(d / "c.toml")
    assert cfg.feeds["replay"]["files"] == [str(d / "../data/a.gz"), "/abs/b.gz", "sample:bars"]
    assert cfg.feeds["replay"]["markets_file"] == ""
    assert cfg.feeds["replay"]["speed"] == 2


# -- issue 9.4: a risk section the registry does not know is an error wherever the config comes from


@pytest.mark.parametrize(
    "risk,message",
    [
        ({"max_leveage": {"max_leverage": "3"}}, "[risk.max_leveage]: unknown risk policy 'max_leveage' (did you mean 'max_leverage'?)"),
        ({"max_leverage": {"max_leveage": "3"}}, "unknown parameter 'max_leveage' (did you mean 'max_leverage'?)"),
    ],
)
def test_the_bot_refuses_risk_params_no_policy_reads(tmp_path, risk, message):
    from perpbot.core.bot import TradingBot
    from perpbot.core.plugins import PluginManager
    from perpbot.core.testing import bot_config
    from tests.core.simple import TestPlugin

    pm = PluginManager(load_entry_points=False, extra_plugins=(TestPlugin(),), default_plugins=("perpbot.plugins.risk",))
    cfg = bot_config(exchange=("instant",), feed="list", strategy="scripted", tickers=("BTC-USD",),
                     state_dir=tmp_path, sizer="test_notional", feeds={"list": {"events": []}}, risk=risk)
    with pytest.raises(ConfigError) as exc:
        TradingBot(cfg, pm)
    assert message in str(exc.value)


def test_init_config_names_each_parameters_flag():
    from perpbot.core.initconfig import default_config_text
    from perpbot.core.plugins import PluginManager

    text = default_config_text(PluginManager(load_entry_points=False))
    grid = text.split("[strategy.grid]")[1].split("\n[")[0]
    assert "(command line: --take-profit)\ntake_profit_pct = " in grid
