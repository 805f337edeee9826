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


# -- issue 9.4: bad input is one line naming the field and value ------------------------------


@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(ticker=",,,"), "--ticker: must name at least one market (e.g. BTC-USD), got ',,,'"),
        (dict(decision_interval="0"), "--decision-interval: must be positive, got 0"),
        (dict(decision_interval="-1"), "--decision-interval: must be positive, got -1"),
        (dict(decision_interval="nan"), "--decision-interval: must be finite, got 'nan'"),
        (dict(decision_interval="soon"), "--decision-interval: expected a decimal number, got 'soon'"),
        (dict(journal=Path("j.sqlite"), no_journal=True), "--journal j.sqlite and --no-journal contradict each other"),
        (dict(risk_param=["nosuch.key=1"]), "--risk-param nosuch.key=1: unknown risk policy 'nosuch' (known: "),
        (dict(risk_param=["max_leveage.max_leverage=1"]),
         "--risk-param max_leveage.max_leverage=1: unknown risk policy 'max_leveage' (did you mean 'max_leverage'?)"),
        (dict(risk_param=["max_leverage.max_leveage=1"]),
         "--risk-param max_leverage.max_leveage=1: risk policy max_leverage: unknown parameter 'max_leveage' "
         "(did you mean 'max_leverage'?)"),
        (dict(risk_param=["max_leverage.max_leverage=abc"]),
         "--risk-param max_leverage.max_leverage=abc: risk policy max_leverage: parameter max_leverage: expected a decimal"),
    ],
)
def test_bad_flags_are_one_config_error_naming_flag_and_value(kw, message):
    with pytest.raises(ConfigError) as exc:
        runbot.build_config(opts(exchange="paper", feed="replay", **kw))
    assert message in str(exc.value)
    assert exc.value.exit_code == 2 and "\n" not in str(exc.value)


def test_decision_interval_flag_is_exact_decimal():
    cfg = runbot.build_config(opts(exchange="paper", feed="replay", decision_interval="0.1"))
    assert cfg.decision_interval_s == D("0.1")


@pytest.mark.parametrize(
    "text,message",
    [
        ("[risk.max_leveage]\nmax_leverage = 3\n",
         "[risk.max_leveage]: unknown risk policy 'max_leveage' (did you mean 'max_leverage'?)"),
        ("[risk.max_leverage]\nmax_leveage = 3\n",
         "[risk.max_leverage] max_leveage: risk policy max_leverage: unknown parameter 'max_leveage' (did you mean"),
        ("[bot]\ntickers = []\n", "bot.tickers: must name at least one market (e.g. BTC-USD), got []"),
        ('[bot]\ntickers = ",,,"\n', "bot.tickers: must name at least one market"),
        ("[bot]\nstate_dir = 5\n", "bot.state_dir: expected a directory or file path (text), got 5"),
        ("[bot]\njournal_path = 5\n", "bot.journal_path: expected a directory or file path (text), got 5"),
    ],
)
def test_bad_config_file_values_are_one_config_error(tmp_path, text, message):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as exc:
        runbot.build_config(opts(config=f))
    assert message in str(exc.value) and str(f) in str(exc.value)


def test_a_config_file_that_is_not_utf8_is_one_config_error(tmp_path):
    f = tmp_path / "c.toml"
    f.write_bytes(b'[bot]\nstrategy = "gr\xe9d"\n')  # Latin-1
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xe9 at line 2\); save the file as UTF-8"):
        runbot.build_config(opts(config=f))


def test_risk_params_of_a_policy_outside_the_chain_are_still_checked_but_kept(tmp_path):
    cfg = runbot.build_config(opts(exchange="paper", feed="replay", risk="kill_switch", risk_param=["max_positions.limit=3"]))
    assert cfg.risk["max_positions"] == {"limit": "3"}


# -- issue 9.10: plugins declare their flags; the seed's commands work as written --------------

SEED_002 = ["--ticker", "BTC", "--quantity", "0.00273", "--exchange", "paper", "--strategy", "grid", "--take-profit",
            "0.008", "--direction", "buy", "--max-orders", "25", "--wait-time", "35"]


def _invoke(monkeypatch, args):
    """Run the CLI in-process up to run_bot; returns (result, the BotConfig it would run)."""
    from typer.testing import CliRunner

    seen = {}

    def fake_run(cfg):
        seen["cfg"] = cfg
        return 0

    monkeypatch.setattr(runbot, "run_bot", fake_run)
    monkeypatch.setenv("PERPBOT_OFFLINE", "1")
    res = CliRunner().invoke(runbot.build_app(), args)
    return res, seen.get("cfg")


def test_seed_002_command_maps_onto_the_grid_params(monkeypatch):
    res, cfg = _invoke(monkeypatch, SEED_002 + ["--grid-step", "0.06", "--stop-price", "50000", "--pause-price", "70000"])
    assert res.exit_code == 0, res.output
    assert cfg.strategy == "grid" and cfg.tickers == ("BTC-USD",)
    assert cfg.strategies["grid"] == {
        "quantity": "0.00273", "take_profit_pct": "0.008", "direction": "buy", "max_orders": "25",
        "wait_time_s": "35", "grid_step_pct": "0.06", "stop_price": "50000", "pause_price": "70000",
    }
    from perpbot.core.params import parse_params
    from perpbot.strategies.grid.params import GridParams

    p = parse_params(GridParams, cfg.strategies["grid"], "strategy grid")
    assert p.quantity == D("0.00273") and p.take_profit_pct == D("0.008") and p.stop_price == D("50000")


def test_a_flag_of_another_strategy_names_its_owner(monkeypatch):
    res, cfg = _invoke(monkeypatch, ["--strategy", "sniper", "--take-profit", "0.008"])
    assert res.exit_code == 2 and cfg is None
    assert "--take-profit: a parameter of strategy 'grid', but this run's strategy is 'sniper'" in res.output


def test_a_bad_flag_value_is_the_params_error(monkeypatch):
    res, cfg = _invoke(monkeypatch, ["--strategy", "grid", "--direction", "up"])
    assert res.exit_code == 0  # parsed here; the value is validated with the params when the bot is built
    from perpbot.core.params import parse_params
    from perpbot.strategies.grid.params import GridParams

    with pytest.raises(ConfigError, match="strategy grid: parameter direction: expected one of buy, sell, got 'up'"):
        parse_params(GridParams, cfg.strategies["grid"], "strategy grid")


def test_help_groups_plugin_flags_per_plugin(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    res, _ = _invoke(monkeypatch, ["--help"])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "Strategy grid (plugin perpbot.strategies.grid)" in out
    assert "Strategy sniper (plugin perpbot.strategies.sniper)" in out
    grid_panel = out.split("Strategy grid (plugin perpbot.strategies.grid)")[1].split("╰")[0]
    for flag in ("--quantity", "--take-profit", "--direction", "--max-orders", "--wait-time", "--grid-step",
                 "--stop-price", "--pause-price"):
        assert flag in grid_panel, flag


def test_risk_adds_and_removes_policies_from_the_chain():
    from perpbot.core.config import DEFAULT_RISK_POLICIES

    cfg = runbot.build_config(opts(risk="+max_positions,-seed_thresholds", feed="replay"))
    assert cfg.risk_policies == tuple(p for p in DEFAULT_RISK_POLICIES if p != "seed_thresholds") + ("max_positions",)
    assert runbot.build_config(opts(risk="kill_switch", feed="replay")).risk_policies == ("kill_switch",)
    assert runbot.build_config(opts(risk="", feed="replay")).risk_policies == ()


@pytest.mark.parametrize("spec, match", [
    ("+kill_switch", "already in the chain"),
    ("-nosuch", "cannot remove 'nosuch'"),
    ("kill_switch,+max_positions", "either list the whole chain"),
    ("+", "names no policy"),
])
def test_bad_risk_changes_are_one_config_error(spec, match):
    with pytest.raises(ConfigError, match=match):
        runbot.build_config(opts(risk=spec, feed="replay"))


def test_risk_removal_parses_on_the_command_line(tmp_path):
    from typer.testing import CliRunner

    res = CliRunner().invoke(runbot.app, ["--risk", "-nosuch", "--feed", "replay", "--state-dir", str(tmp_path)])
    assert res.exit_code == 2 and "cannot remove 'nosuch'" in res.output


def test_unknown_plugin_names_give_the_closest_name():
    from perpbot.core.plugins import PluginManager

    reg = PluginManager(load_entry_points=False).registry
    with pytest.raises(ConfigError, match=r"unknown risk policy 'max_leveage' \(did you mean 'max_leverage'\?\)"):
        reg.get("risk_policies", "max_leveage")
    with pytest.raises(ConfigError, match=r"did you mean 'sniper'"):
        reg.get("strategies", "snipr")
