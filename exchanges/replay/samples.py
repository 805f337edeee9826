"""Paths of the real data samples embedded in the repository (``examples/data``, see its SOURCES.md).

- :func:`binance_l2_files`: Binance USD-M BTCUSDT + ETHUSDT raw WebSocket recordings,
  2024-08-08 23:54-24:00 UTC (depth diffs, trades, bookTicker; MIT, nkaz001/hftbacktest);
  the replay feed's default.
- :func:`bars_file`: Binance spot BTC/USDT + ETH/USDT 5-minute bars, 2024-02-01 to 03-08
  (Apache-2.0, oceanprotocol/pdr-backend).
- :func:`funding_file`: Binance 8-hour and Hyperliquid 1-hour funding for BTC and ETH
  over the bars' period (MIT, derived from PietroC21/Crypto-PerpetualFutures).

The samples live in a source checkout in ``examples/data``; an installed wheel carries
the same files as ``perpbot/data``.
"""

from __future__ import annotations

from pathlib import Path

from perpbot.core.errors import DataError

_CHECKOUT_DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
_WHEEL_DATA = Path(__file__).resolve().parents[2] / "data"  # perpbot/exchanges/replay -> perpbot/data
DATA_DIR = _CHECKOUT_DATA if _CHECKOUT_DATA.is_dir() else _WHEEL_DATA

BINANCE_L2 = ("binance_usdm/btcusdt_20240808.gz", "binance_usdm/ethusdt_20240808.gz")
BARS = "bars/merged_ohlcv_df_BTC-ETH_2024-02-01_to_2024-03-08.csv.gz"
FUNDING = "funding/funding_binance8h_hyperliquid1h_BTC-ETH_2024-02-01_to_2024-03-08_utc.csv.gz"


def data_dir() -> Path:
    """The embedded samples: ``examples/data`` of a checkout, or ``perpbot/data`` of a wheel.

    :raises DataError: when neither exists (a damaged installation).
    """
    if not DATA_DIR.is_dir():
        raise DataError(
            f"embedded sample data not found at {DATA_DIR}: reinstall perpbot, or pass data files explicitly (--data)"
        )
    return DATA_DIR


def _path(rel: str) -> Path:
    p = data_dir() / rel
    if not p.is_file():
        raise DataError(f"embedded sample {p} is missing: restore it from the repository (see {DATA_DIR / 'SOURCES.md'})")
    return p


def binance_l2_files() -> list[Path]:
    """The default replay: Binance USD-M BTCUSDT and ETHUSDT raw recordings (same 6 minutes)."""
    return [_path(r) for r in BINANCE_L2]


def bars_file() -> Path:
    """Binance spot 5-minute bars of BTC/USDT and ETH/USDT side by side (multi-week)."""
    return _path(BARS)


def funding_file() -> Path:
    """Settled funding (Binance 8 h, Hyperliquid 1 h) of BTC and ETH over the bars' period."""
    return _path(FUNDING)
