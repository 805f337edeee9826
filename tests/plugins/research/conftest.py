"""Fixtures of the research plugin's tests: one embedded Ray session (2 CPUs) and small real data.

The data is the repository's bar sample (``examples/data/bars``: Binance BTC/USDT and
ETH/USDT 5-minute bars, see ``examples/data/SOURCES.md``) and its funding file, cut to a
few days by the plugin's own cutter, so each cell replays a few hundred bars.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BARS = REPO / "examples/data/bars/merged_ohlcv_df_BTC-ETH_2024-02-01_to_2024-03-08.csv.gz"
FUNDING = REPO / "examples/data/funding/funding_binance8h_hyperliquid1h_BTC-ETH_2024-02-01_to_2024-03-08_utc.csv.gz"
DAY_NS = 86400 * 10**9
START_NS = 1706745600 * 10**9  # 2024-02-01 00:00 UTC, the sample's first bar

CONFIG = """
[bot]
exchange = ["paper"]
strategy = "sniper"
tickers = ["BTC-USD", "ETH-USD"]
feed = "replay"
decision_interval_s = 300
snapshot_interval_s = 3600

[feed.replay]
files = ["{bars}"]
funding_files = ["{funding}"]
funding_venue = "binance"

[exchange.paper]
collateral = 10000

[strategy.sniper]
entry_threshold = 60
take_profit = 0.01
stop_loss = 0.005
cooldown_s = 3600
min_hold_s = 900

[sizer.fixed_notional]
notional = 1000
"""


#: one Ray start at a time on this machine: pytest-xdist workers (one test file each) that need
#: Ray start their own embedded cluster, and two starting at once on 2 cores can miss Ray's
#: node start-up deadline ("The current node timed out during startup", seen in CI)
RAY_START_LOCK = Path(tempfile.gettempdir()) / "perpbot-tests-ray-start.lock"


@pytest.fixture(scope="session")
def ray_session():
    """Ray, embedded, 2 CPUs, shared by every test of this worker (the sweep reuses it).

    Started under an inter-process lock (:data:`RAY_START_LOCK`), and started up to twice more
    when a start missed one of Ray's start-up deadlines.
    """
    ray = pytest.importorskip("ray")
    # Ray waits 30 s for its GCS server's port file (ray/_private/node.py start_gcs_server), too
    # short on a loaded 2-core machine; its own setting raises it
    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", "120")
    if not ray.is_initialized():
        with open(RAY_START_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                for attempt in (1, 2, 3):
                    try:
                        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
                                 log_to_driver=False)
                        break
                    except Exception as exc:  # noqa: BLE001 - more starts, then the error itself
                        # a start-up deadline missed on a loaded machine: "The current node timed out
                        # during startup", or "Timed out waiting for file .../gcs_server_port_..."
                        if attempt == 3 or "timed out" not in str(exc).lower():
                            raise
                        ray.shutdown()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    yield ray
    ray.shutdown()


def make_config(folder: Path, days: int, *, poison_from_ns: int | None = None) -> Path:
    """A config replaying the first ``days`` days of the sample; with ``poison_from_ns``, every
    bar from that time on is made invalid (high below low), so any run reading it fails."""
    from perpbot.plugins.research.windows import cut

    folder.mkdir(parents=True, exist_ok=True)
    bars, funding = folder / "bars.csv", folder / "funding.csv"
    cut(BARS, bars, START_NS, START_NS + days * DAY_NS)
    cut(FUNDING, funding, START_NS - DAY_NS, START_NS + days * DAY_NS)
    if poison_from_ns is not None:
        lines = bars.read_text().splitlines()
        out = [lines[0]]
        for line in lines[1:]:
            cells = line.split(",")
            if int(cells[0]) * 10**6 >= poison_from_ns:
                cells[2], cells[3] = cells[3], str(float(cells[2]) * 2)  # high < low
            out.append(",".join(cells))
        bars.write_text("\n".join(out) + "\n")
    path = folder / "sniper.toml"
    path.write_text(CONFIG.format(bars=bars, funding=funding))
    return path


@pytest.fixture(scope="session")
def small_config(tmp_path_factory) -> Path:
    """Two days of the sample (576 bars per market)."""
    return make_config(tmp_path_factory.mktemp("research-data"), 2)


@pytest.fixture
def cli():
    """``cli(*args) -> (exit code, stdout, stderr)``: the runbot CLI in this process."""
    from typer.testing import CliRunner

    from perpbot.cli import build_app

    app = build_app()
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(app, [str(a) for a in args], env={"PERPBOT_OFFLINE": "1", **{
            k: v for k, v in os.environ.items() if k.startswith("PERPBOT_")}})
        return result.exit_code, result.stdout, result.stderr

    return run
