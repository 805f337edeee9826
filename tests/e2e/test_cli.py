"""End-to-end runs of the CLI as a user runs it, on the embedded real data sample."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BARS = REPO / "examples/data/bars/merged_ohlcv_df_BTC-ETH_2024-02-01_to_2024-03-08.csv.gz"


def runbot(*args, timeout=300, cwd=None):
    env = dict(os.environ, PERPBOT_OFFLINE="1", COLUMNS="200")
    return subprocess.run(
        [sys.executable, str(REPO / "runbot.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or REPO,
        env=env,
    )


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    """The README's main command, once per test session."""
    state = tmp_path_factory.mktemp("state")
    return runbot("--exchange", "paper", "--strategy", "sniper", "--ticker", "BTC,ETH", "--state-dir", str(state), "--no-report")


def test_main_job_trades_both_markets_and_summarises(main_job):
    out = main_job.stdout
    assert main_job.returncode == 0, main_job.stderr[-2000:]
    rows = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(BTC-USD|ETH-USD)\s+(\d+)\s", out, re.M)}
    assert rows.keys() == {"BTC-USD", "ETH-USD"}, out
    assert all(n > 0 for n in rows.values()), f"a market had no fills: {rows}"
    for label in ("fees paid", "funding received", "realized PnL", "unrealized PnL", "final equity", "max drawdown", "liquidations"):
        assert label in out
    m = re.search(r"events processed\s+([\d,]+) \(depth level entries, trades, quotes\) in [\d.]+ s \(([\d,]+) events/s\)", out)
    assert m, out
    # every level entry, trade and quote of the two recordings (architecture.md: 1,027,653)
    assert int(m.group(1).replace(",", "")) == 1_027_653


def test_main_job_explains_its_decisions(main_job):
    # the sniper logs its ranked score table when it acts
    assert "composite" in main_job.stderr and "BTC-USD" in main_job.stderr


def test_bar_sample_runs_to_completion_with_real_funding(tmp_path):
    res = runbot("--config", str(REPO / "examples/configs/sniper-bars.toml"), "--state-dir", str(tmp_path), "--no-report", timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout
    assert "end of data" in out and "880.00 h of market time" in out
    rows = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(BTC-USD|ETH-USD)\s+(\d+)\s", out, re.M)}
    assert rows.keys() == {"BTC-USD", "ETH-USD"} and all(rows.values())
    # the embedded Binance 8-hour funding was booked hourly, not assumed zero
    assert "funding was NOT simulated" not in out
    received = re.search(r"funding received\s+([\d,.]+)", out).group(1)
    paid = re.search(r"funding paid\s+([\d,.]+)", out).group(1)
    assert (received, paid) != ("0.00", "0.00")


def test_bars_without_funding_say_so(tmp_path):
    res = runbot("--exchange", "paper", "--strategy", "sniper", "--ticker", "BTC,ETH", "--data", str(BARS),
                 "--state-dir", str(tmp_path), "--no-report", "--no-journal", "--max-events", "4000",
                 "-p", "take_profit=0.03", "-p", "stop_loss=0.015")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "no funding rates for BTC-USD, ETH-USD; funding was NOT simulated there (not assumed zero)" in res.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["--exchange", "nope"], "unknown exchange 'nope'"),
        (["--strategy", "nope"], "unknown strategy 'nope'"),
        (["--ticker", "XYZ"], "unknown ticker 'XYZ-USD'"),
        (["--data", "/no/such/file.gz"], "/no/such/file.gz"),
        (["-p", "bogus=1"], "unknown parameter 'bogus'"),
        (["-p", "entry_threshold=high"], "entry_threshold"),
        (["--speed", "-1"], "--speed"),
        (["--risk-param", "nodot=1"], "--risk-param"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    base = ["--exchange", "paper", "--strategy", "sniper", "--ticker", "BTC,ETH", "--state-dir", str(tmp_path)]
    # later flags win over the defaults above
    res = runbot(*base, *args, "--max-events", "10")
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    err_lines = [l for l in res.stderr.splitlines() if l.startswith("error:")]
    assert len(err_lines) == 1 and message in err_lines[0], res.stderr


def test_bad_config_file_is_one_clear_line(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[bot]\ndecision_interval_s = "soon"\n')
    res = runbot("--config", str(cfg))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "bot.decision_interval_s: expected a decimal number, got 'soon'" in res.stderr


def test_verbose_shows_the_traceback(tmp_path):
    res = runbot("--exchange", "nope", "--verbose", "--state-dir", str(tmp_path))
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_plugins_lists_builtins_and_the_example():
    res = runbot("plugins")
    assert res.returncode == 0, res.stderr
    flat = res.stdout.replace(" ", "")
    for item in ("exchange:paper", "strategy:sniper", "strategy:grid", "positionsizer:fixed_notional"):
        assert item in flat, item
    try:
        import perpbot_breakout  # noqa: F401
    except ImportError:
        pytest.skip("the example plugin package is not installed (pip install -e examples/perpbot-breakout)")
    assert "strategy:breakout" in flat and "riskpolicy:max_positions" in flat


def test_init_writes_a_config_the_bot_runs_with(tmp_path):
    path = tmp_path / "perpbot.toml"
    res = runbot("init", str(path))
    assert res.returncode == 0 and path.exists()
    again = runbot("init", str(path))
    assert again.returncode != 0 and "exists" in again.stderr
    res = runbot("--config", str(path), "--feed", "replay", "--max-events", "20000", "--state-dir", str(tmp_path), "--no-report")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "max events 20000 reached" in res.stdout


MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"


def test_dydx_credentials_and_live_opt_in_are_checked_before_any_network(tmp_path, monkeypatch):
    monkeypatch.delenv("DYDX_MNEMONIC", raising=False)
    base = ["--exchange", "dydx", "--strategy", "sniper", "--ticker", "BTC", "--state-dir", str(tmp_path)]
    res = runbot(*base, "--network", "testnet")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "error: no dYdX mnemonic" in res.stderr

    secret = tmp_path / "mnemonic"
    secret.write_text(MNEMONIC + "\n")
    secret.chmod(0o644)
    res = runbot(*base, "--network", "testnet", "--mnemonic-file", str(secret))
    assert res.returncode != 0 and f"chmod 600 {secret}" in res.stderr
    assert MNEMONIC not in res.stderr + res.stdout

    secret.chmod(0o600)
    res = runbot(*base, "--network", "mainnet", "--mnemonic-file", str(secret))
    assert res.returncode != 0 and "pass --live" in res.stderr
    assert MNEMONIC not in res.stderr + res.stdout


def test_running_a_finished_replay_again_starts_a_new_run(tmp_path):
    import gzip

    rows = gzip.open(BARS, "rt").read().splitlines()[:400]  # 33 h of real 5-minute bars
    data = tmp_path / "bars.csv"
    data.write_text("\n".join(rows) + "\n")
    args = ["--exchange", "paper", "--strategy", "sniper", "--ticker", "BTC,ETH", "--data", str(data),
            "--journal", str(tmp_path / "j.sqlite"), "--state-dir", str(tmp_path), "--no-report", "-p", "warmup_s=3600"]
    first = runbot(*args)
    second = runbot(*args)
    assert first.returncode == 0 and second.returncode == 0, second.stderr[-2000:]
    assert "ran to the end of its data: new run" in second.stderr
    decisions = [re.search(r"decisions (\d+)", r.stdout).group(1) for r in (first, second)]
    assert decisions[0] == decisions[1] != "0"
