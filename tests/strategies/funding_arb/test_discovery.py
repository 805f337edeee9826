"""Issue 13.3: funding arbitrage scans every coin listed on both venues, with no ticker list.

A run that names no tickers (or ``tickers = "all"`` / ``--ticker all``) asks every venue for
its markets before subscribing (:func:`perpbot.core.bot.wiring.discover_tickers`) and
``funding_arb`` trades both legs of every coin on both (:func:`~perpbot.strategies.funding_arb.pair.select_listed`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from loguru import logger

from perpbot.core.config import ALL_MARKETS, BotConfig, bot_settings, config_to_mapping
from perpbot.core.errors import ConfigError
from perpbot.strategies.funding_arb.pair import select_listed
from perpbot.strategies.funding_arb.params import FundingArbParams

D = Decimal
REPO = Path(__file__).resolve().parents[3]
MULTI = REPO / "examples" / "configs" / "funding-arb-multi.toml"
MNEMONIC = " ".join(["abandon"] * 11 + ["about"])


class Log:
    """Collects loguru messages while in the ``with`` block."""

    def __enter__(self):
        self.lines: list[str] = []
        self._id = logger.add(lambda m: self.lines.append(str(m).rstrip()), level="INFO", format="{message}")
        return self

    def __exit__(self, *exc):
        logger.remove(self._id)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, PERPBOT_OFFLINE="1", COLUMNS="200")
    return subprocess.run([sys.executable, str(REPO / "runbot.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


# -- end to end, through the command line --------------------------------------------------


def test_a_run_without_tickers_discovers_btc_and_eth_on_the_embedded_slice_and_trades_both(tmp_path):
    text = MULTI.read_text()
    assert re.search(r'^tickers = "all"', text, re.M), "the example config uses discovery"
    cfg = tmp_path / "no-tickers.toml"
    cfg.write_text(re.sub(r'^tickers = "all".*$', "", text, flags=re.M))  # no tickers at all
    assert "\ntickers" not in cfg.read_text()
    r = run_cli("--config", str(cfg), "--funding", "sample:hl_binance_btc_eth", "--state-dir", str(tmp_path / "s"),
                "--no-journal")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "hyperliquid lists 2 coins, binance 2; on both: 2 (BTC, ETH)" in r.stderr
    assert "strategy funding_arb trades 4: BTC-USD, ETH-USD, binance:BTC-USD, binance:ETH-USD" in r.stderr
    assert "funding_arb over 2 coins" in r.stdout
    for leg in ("BTC-USD", "ETH-USD", "binance:BTC-USD", "binance:ETH-USD"):  # every leg traded
        row = re.search(rf"^{re.escape(leg)}\s+(\d+)\s", r.stdout, re.M)
        assert row and int(row.group(1)) > 0, r.stdout[-3000:]


@pytest.mark.parametrize("args, needle", [
    (("--ticker", "all,BTC"), "--ticker: 'all' stands alone (every market the strategy discovers), got 'all,BTC'"),
    (("-p", "coins=BTX"), "strategy funding_arb: coin 'BTX' is not listed on both venues (not on hyperliquid; "
                          "on both: BTC, ETH) (did you mean 'BTC'?)"),
])
def test_bad_spellings_are_one_error_line(tmp_path, args, needle):
    r = run_cli("--config", str(MULTI), "--funding", "sample:hl_binance_btc_eth", "--state-dir", str(tmp_path / "s"),
                "--no-journal", *args)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr + r.stdout
    lines = [ln for ln in (r.stderr + r.stdout).splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], r.stderr[-2000:] + r.stdout[-2000:]


@pytest.mark.parametrize("change, needle", [
    (dict(strategy="grid"), "--ticker all: strategy 'grid' does not discover its markets; name them, e.g. --ticker BTC,ETH"),
    (dict(params={"hedge_venue": "binanse"}), "strategy funding_arb: hedge_venue 'binanse' is not another venue of the run "
                                              "(hyperliquid, binance) (did you mean 'binance'?)"),
    (dict(tickers=("BTC-USD", "binance:BTC-USD"), params={"coins": "BTC,ETH"}),  # explicit tickers work as before
     "strategy funding_arb: coin 'ETH' is not listed on both venues (no market 'ETH-USD'; both: BTC)"),
    (dict(tickers=("BTC-USD", "binance:SOL-USD")), "unknown ticker 'binance:SOL-USD' for feed 'funding_multi'"),
])
def test_bad_choices_are_one_config_error(tmp_path, change, needle):
    from perpbot.core.bot import TradingBot
    from perpbot.core.config import load_config
    from perpbot.core.plugins import PluginManager

    cfg = load_config(MULTI)
    assert cfg.all_markets and cfg.tickers == ()
    cfg.feeds["funding_multi"]["funding_file"] = "sample:hl_binance_btc_eth"
    cfg.state_dir, cfg.journal_enabled = tmp_path, False
    cfg.strategies["funding_arb"].update(change.pop("params", {}))
    for k, v in change.items():
        setattr(cfg, k, v)
    with pytest.raises(ConfigError) as e:
        TradingBot(cfg, PluginManager(load_entry_points=False))
    assert needle in str(e.value) and "\n" not in str(e.value)


# -- the venues' listings: dYdX indexer fake + Binance USD-M fake ------------------------------


def test_against_the_dydx_and_binance_fakes_the_run_trades_what_both_list_and_logs_the_rest(tmp_path, monkeypatch):
    """dYdX lists its 125 markets (``/v4/perpetualMarkets``, the fake serves a real indexer response);
    Binance USD-M lists BTC, ETH and ZZZ (ccxt ``load_markets`` on ``/fapi/v1/exchangeInfo``): the
    run trades BTC and ETH on both; ZZZ and dYdX's other markets are left out and logged."""
    from perpbot.core.bot import TradingBot
    from perpbot.core.plugins import PluginManager
    from tests.exchanges.ccxt.conftest import FAST
    from tests.exchanges.dydx.conftest import FAST as DYDX_FAST
    from tests.fakes import FakeDydx
    from tests.fakes.ccxt import API_KEY, API_SECRET, FakeBinanceUsdm
    from tests.fakes.ccxt.binance_engine import DEFAULT_SYMBOLS

    monkeypatch.setenv("DYDX_MNEMONIC", MNEMONIC)
    monkeypatch.setenv("PERPBOT_BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("PERPBOT_BINANCE_SECRET", API_SECRET)
    symbols = dict(DEFAULT_SYMBOLS, ZZZUSDT=("ZZZ", "0.01", "1", "5", "150", "5.0000", "2.5000"))
    with FakeDydx() as dx, FakeBinanceUsdm(symbols=symbols) as bn:
        added = threading.Event()

        def add_qqq():  # a market only dYdX lists (ETH's parameters under another ticker)
            dx.indexer.markets["QQQ-USD"] = dict(dx.indexer.markets["ETH-USD"], ticker="QQQ-USD", clobPairId="999")
            added.set()

        dx.indexer.call_soon_threadsafe(add_qqq)
        assert added.wait(5)
        # 125 markets from the shared data's real indexer response, else the fake's BTC and ETH (+ QQQ)
        dydx_listed = sorted(t.split("-")[0] for t in dx.indexer.markets)
        assert {"BTC", "ETH", "QQQ"} <= set(dydx_listed) and "ZZZ" not in dydx_listed
        net = {"network": "custom", "indexer_rest": dx.rest_url, "indexer_ws": dx.ws_url, "node": dx.node_url, **DYDX_FAST}
        cfg = BotConfig(exchange=("dydx", "binance"), venues={"binance": "ccxt:binanceusdm"}, strategy="funding_arb",
                        feed="dydx", state_dir=tmp_path, journal_enabled=False, report=False, progress=False,
                        exchanges={"dydx": dict(net), "binance": {"url": bn.url, **FAST}}, feeds={"dydx": dict(net)})
        with Log() as log:
            bot = TradingBot(cfg, PluginManager(load_entry_points=False))
    assert set(bot.markets) == {"BTC-USD", "ETH-USD", "binance:BTC-USD", "binance:ETH-USD"}
    assert cfg.tickers == ("BTC-USD", "ETH-USD", "binance:BTC-USD", "binance:ETH-USD")  # written back for the journal
    assert list(bot.strategy.pairs) == ["BTC", "ETH"]
    only_dydx = [c for c in dydx_listed if c not in ("BTC", "ETH")]
    more = f" +{len(only_dydx) - 12} more" if len(only_dydx) > 12 else ""
    assert (f"dydx lists {len(dydx_listed)} coins, binance 3; on both: 2 (BTC, ETH); left out, on dydx only: "
            f"{', '.join(only_dydx[:12])}{more}; on binance only: ZZZ") in log.text
    assert f"markets discovered (dydx lists {len(dydx_listed)}, binance lists 3)" in log.text
    # the probe feeds were never started: nothing subscribed, no order sent
    assert not dx.node.placed_orders()


# -- units ----------------------------------------------------------------------------------


def test_select_listed_intersects_by_coin_and_narrows_by_coins():
    listings = {"dydx": ("BTC-USD", "ETH-USD", "LINK-USD"), "binance": ("SOL-USD", "ETH-USD", "BTC-USD", "ETH-USDC")}
    with Log() as log:
        got = select_listed(FundingArbParams(), listings, "dydx", logger)
    assert got == ("BTC-USD", "ETH-USD", "binance:BTC-USD", "binance:ETH-USD")
    assert "on dydx only: LINK; on binance only: SOL" in log.text
    assert select_listed(FundingArbParams(coins=("eth",)), listings, "dydx", logger) == ("ETH-USD", "binance:ETH-USD")
    with pytest.raises(ConfigError, match=r"coin 'SOL' is not listed on both venues \(not on dydx; on both: BTC, ETH\)"):
        select_listed(FundingArbParams(coins=("SOL",)), listings, "dydx", logger)
    with pytest.raises(ConfigError, match="no coin is listed on both dydx \\(1 markets\\) and binance \\(1 markets\\)"):
        select_listed(FundingArbParams(), {"dydx": ("BTC-USD",), "binance": ("SOL-USD",)}, "dydx", logger)
    with pytest.raises(ConfigError, match="needs two venues .* got dydx$"):
        select_listed(FundingArbParams(), {"dydx": ("BTC-USD",)}, "dydx", logger)
    with pytest.raises(ConfigError, match="got dydx, binance, okx; set hedge_venue"):
        select_listed(FundingArbParams(), {"dydx": (), "binance": (), "okx": ()}, "dydx", logger)
    assert select_listed(FundingArbParams(hedge_venue="okx"), {"dydx": ("BTC-USD",), "binance": (), "okx": ("BTC-USD",)},
                         "dydx", logger) == ("BTC-USD", "okx:BTC-USD")


def test_all_is_one_spelling_that_round_trips_and_explicit_tickers_replace_it():
    assert bot_settings({"tickers": "all"}) == {"tickers": (), "all_markets": True}
    assert bot_settings({"tickers": ["ALL"]}) == {"tickers": (), "all_markets": True}
    assert bot_settings({"tickers": "BTC"}) == {"tickers": ("BTC-USD",), "all_markets": False}
    assert config_to_mapping(BotConfig(all_markets=True))["bot"]["tickers"] == ALL_MARKETS
    assert "tickers" not in config_to_mapping(BotConfig())["bot"]  # none named: the wiring resolves them
    assert BotConfig().tickers == ()


def test_a_strategy_that_does_not_discover_gets_the_default_markets(tmp_path):
    """No tickers with the sniper: BTC-USD and ETH-USD, as before."""
    from perpbot.core.bot import TradingBot
    from perpbot.core.plugins import PluginManager
    from perpbot.core.testing import bot_config

    cfg = bot_config(strategy="sniper", feed="replay", state_dir=tmp_path)
    bot = TradingBot(cfg, PluginManager(load_entry_points=False))
    assert tuple(bot.markets) == ("BTC-USD", "ETH-USD") == cfg.tickers


def test_the_funding_replay_feed_without_tickers_lists_the_markets_its_files_hold():
    from types import SimpleNamespace

    from perpbot.strategies.funding_arb.feed import SAMPLE_FUNDING, FundingReplayFeed

    if not SAMPLE_FUNDING.exists():
        pytest.skip("embedded funding sample missing (examples/data/funding)")
    feed = FundingReplayFeed({}, SimpleNamespace(tickers=()))
    assert list(feed.markets()) == ["BTC-USD", "ETH-USD", "binance:BTC-USD", "binance:ETH-USD"]
    # the hourly price file holds BTC only: ETH is not listed (it could not be priced)
    feed = FundingReplayFeed({"prices_file": "sample:btc_1h"}, SimpleNamespace(tickers=()))
    assert list(feed.markets()) == ["BTC-USD", "binance:BTC-USD"]
