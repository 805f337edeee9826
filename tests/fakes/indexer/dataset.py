"""The fake indexer's initial state: ``Dataset`` (REST shapes), the real recorded payloads
read from the shared data folder (``load_dataset``), and the small built-in dataset used
without it (``builtin_dataset``; ``PERPBOT_NO_SHARED_DATA=1`` forces it, see
tests/shared_data.py).  Recorded payloads are read at run time, never copied into the repo.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from decimal import InvalidOperation
from pathlib import Path
from typing import Any, Optional

import orjson

from ... import shared_data
from .protocol import D, fmt, iso_now, subaccount_uuid

DATA_DIR_ENV = "DYDX_FAKES_DATA_DIR"


@dataclass
class Dataset:
    """Initial indexer state.  Every field is in the REST shape comlink serves."""

    markets: dict[str, dict] = field(default_factory=dict)
    books: dict[str, dict] = field(default_factory=dict)        # T -> {bids:[{price,size}],asks}
    trades: dict[str, list] = field(default_factory=dict)       # T -> newest first
    candles: dict[str, list] = field(default_factory=dict)      # T -> candles, any resolution
    funding: dict[str, list] = field(default_factory=dict)      # T -> historicalFunding rows
    subaccounts: list[dict] = field(default_factory=list)       # REST subaccount objects
    orders: list[dict] = field(default_factory=list)            # REST orders (need subaccountId)
    fills: list[dict] = field(default_factory=list)             # REST fills + "address"
    positions: list[dict] = field(default_factory=list)         # REST positions + "address"
    height: int = 1_000_000
    source: str = "builtin"
    files: list[str] = field(default_factory=list)


def default_data_dir() -> Optional[Path]:
    """``$DYDX_FAKES_DATA_DIR`` or the shared data folder (``tests/shared_data.py``:
    ``$PERPBOT_SHARED_DATA`` or ``<repo>/../shared/data``) when present; None, hence the
    built-in dataset, while ``PERPBOT_NO_SHARED_DATA=1`` hides it (a user's clone)."""
    if shared_data.hidden():
        return None
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        p = Path(env)
        return p if p.is_dir() else None
    return shared_data.shared_data_dir()


def _market(ticker, clob, ar, qce, sbq, spt, tick, step, oracle, imf, mmf, market_id) -> dict:
    return {
        "clobPairId": str(clob), "ticker": ticker, "status": "ACTIVE",
        "oraclePrice": oracle, "priceChange24H": "0", "volume24H": "0", "trades24H": 0,
        "nextFundingRate": "0", "initialMarginFraction": imf,
        "maintenanceMarginFraction": mmf, "openInterest": "0",
        "atomicResolution": ar, "quantumConversionExponent": qce,
        "tickSize": tick, "stepSize": step, "stepBaseQuantums": sbq, "subticksPerTick": spt,
        "marketType": "CROSS", "openInterestLowerCap": "0", "openInterestUpperCap": "0",
        "baseOpenInterest": "0", "defaultFundingRate1H": "0", "marketId": market_id,
    }


def synth_book(market: dict, mid: Any = None, levels: int = 10,
               base_size: Any = None) -> dict:
    """A symmetric, uncrossed book around ``mid`` on the market's tick/step grid."""
    tick = D(market["tickSize"])
    step = D(market["stepSize"])
    mid = D(mid if mid is not None else market["oraclePrice"])
    best_bid = (mid / tick).to_integral_value(rounding="ROUND_FLOOR") * tick
    if best_bid >= mid:
        best_bid -= tick
    best_ask = best_bid + 2 * tick
    base = D(base_size) if base_size is not None else step * 10
    bids, asks = [], []
    for i in range(levels):
        size = base * (i + 1)
        bids.append({"price": fmt(best_bid - i * tick), "size": fmt(size)})
        asks.append({"price": fmt(best_ask + i * tick), "size": fmt(size)})
    return {"bids": bids, "asks": asks}


def builtin_dataset() -> Dataset:
    """Small dataset authored for these fakes (values are the real chain parameters for
    BTC-USD / ETH-USD; prices, sizes and history are made up)."""
    btc = _market("BTC-USD", 0, -10, -9, 1_000_000, 100_000, "1", "0.0001",
                  "65000", "0.02", "0.012", 0)
    eth = _market("ETH-USD", 1, -9, -9, 1_000_000, 100_000, "0.1", "0.001",
                  "3000", "0.02", "0.012", 1)
    markets = {"BTC-USD": btc, "ETH-USD": eth}
    books = {
        "BTC-USD": synth_book(btc, "65000", base_size="0.05"),
        "ETH-USD": synth_book(eth, "3000", base_size="0.5"),
    }
    height = 1_000_000
    t0 = 1_735_689_600  # 2025-01-01T00:00:00Z
    trades, candles, funding = {}, {}, {}
    for t, px, sz in (("BTC-USD", D("65000"), "0.01"), ("ETH-USD", D("3000"), "0.1")):
        tick = D(markets[t]["tickSize"])
        trades[t] = [
            {"id": f"{height - i:08x}0000000200000002", "side": "BUY" if i % 2 else "SELL",
             "size": sz, "price": fmt(px + (i % 3) * tick), "type": "LIMIT",
             "createdAt": iso_now(t0 - i), "createdAtHeight": str(height - i)}
            for i in range(5)
        ]
        candles[t] = [
            {"startedAt": iso_now(t0 - 60 * (i + 1)), "ticker": t, "resolution": "1MIN",
             "low": fmt(px - 2 * tick), "high": fmt(px + 2 * tick), "open": fmt(px),
             "close": fmt(px + tick), "baseTokenVolume": sz, "usdVolume": fmt(px * D(sz)),
             "trades": 1, "startingOpenInterest": "0",
             "orderbookMidPriceOpen": fmt(px), "orderbookMidPriceClose": fmt(px)}
            for i in range(10)
        ]
        funding[t] = [
            {"ticker": t, "rate": "0.0000125", "price": fmt(px),
             "effectiveAtHeight": str(height - 3600 * i // 2),
             "effectiveAt": iso_now(t0 - 3600 * i)}
            for i in range(3)
        ]
    return Dataset(markets=markets, books=books, trades=trades, candles=candles,
                   funding=funding, height=height, source="builtin")


def _load_json(path: Path) -> Any:
    with open(path, "rb") as f:
        return orjson.loads(f.read())


def load_dataset(data_dir: Optional[Path | str] = None, *, use_shared: bool = True) -> Dataset:
    """Real recorded payloads when the shared data folder exists, else ``builtin_dataset``.

    * markets: ``nautilus_py/http/list_perpetual_markets.json`` (125 mainnet markets);
      BTC-USD replaced by the Dec-2025 capture in ``nautilus_rust`` so that its market,
      book, trades, candles and funding are from one moment.
    * books: ``nautilus_py/websocket/v4_orderbook_snapshot.json`` (ETH-USD, 100x100) and
      ``nautilus_rust/http_get_orderbook.json`` (BTC-USD); other tickers get a synthetic
      book around their oracle price.
    * trades / candles: ``v4_trades.json``, ``v4_candles.json`` (1000 ETH-USD 1MIN candles),
      ``nautilus_rust`` trades / candles / historical funding for BTC-USD.
    * one real subaccount with its orders, fills and positions (``nautilus_py/http``).
    """
    if not use_shared:
        return builtin_dataset()
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    if root is None:
        return builtin_dataset()
    root = root / "dydx_v4" if (root / "dydx_v4").is_dir() else root
    npy = root / "nautilus_py"
    nrs = root / "nautilus_rust"
    markets_file = npy / "http" / "list_perpetual_markets.json"
    if not markets_file.is_file():
        return builtin_dataset()
    ds = Dataset(source=str(root))
    files = ds.files

    def rd(p: Path):
        files.append(str(p))
        return _load_json(p)

    def rust(name: str):
        p = nrs / name
        if not p.is_file():
            return None
        d = rd(p)
        return d.get("result", d) if isinstance(d, dict) else d

    ds.markets = copy.deepcopy(rd(markets_file)["markets"])
    rust_markets = rust("http_get_perpetual_markets.json")
    rust_book = rust("http_get_orderbook.json")
    if rust_markets and rust_book and "BTC-USD" in rust_markets.get("markets", {}):
        ds.markets["BTC-USD"] = rust_markets["markets"]["BTC-USD"]
        ds.books["BTC-USD"] = rust_book
        for name, key, target in (("http_get_trades.json", "trades", ds.trades),
                                  ("http_get_candles.json", "candles", ds.candles),
                                  ("http_get_historical_funding.json", "historicalFunding",
                                   ds.funding)):
            d = rust(name)
            if d and d.get(key):
                target["BTC-USD"] = list(d[key])
        hb = rust("http_get_block_height.json")
        if hb and "height" in hb:
            ds.height = int(hb["height"])
    ws = npy / "websocket"
    p = ws / "v4_orderbook_snapshot.json"
    if p.is_file():
        msg = rd(p)
        ds.books[msg["id"]] = msg["contents"]
    p = ws / "v4_trades.json"
    if p.is_file():
        msg = rd(p)
        ds.trades.setdefault(msg["id"], list(msg["contents"]["trades"]))
    p = ws / "v4_candles.json"
    if p.is_file():
        msg = rd(p)
        ticker = msg["id"].split("/")[0]
        ds.candles.setdefault(ticker, list(msg["contents"]["candles"]))
    # one real subaccount and its history
    http_dir = npy / "http"
    p = http_dir / "subaccount.json"
    if p.is_file():
        sub = rd(p)["subaccount"]
        ds.subaccounts.append(sub)
        addr, num = sub["address"], int(sub["subaccountNumber"])
        sid = subaccount_uuid(addr, num)
        p = http_dir / "orders.json"
        if p.is_file():
            for o in rd(p):
                if o.get("subaccountId") == sid:
                    ds.orders.append(o)
        p = http_dir / "fills.json"
        if p.is_file():
            for f_ in rd(p)["fills"]:
                ds.fills.append({**f_, "address": addr})
        p = http_dir / "list_perpetual_positions.json"
        if p.is_file():
            for pos in rd(p)["positions"]:
                ds.positions.append({**pos, "address": addr})
    for t, m in ds.markets.items():
        if t not in ds.books and m.get("oraclePrice") and m.get("status") == "ACTIVE":
            try:
                ds.books[t] = synth_book(m)
            except (InvalidOperation, KeyError, ValueError):
                pass
    return ds
