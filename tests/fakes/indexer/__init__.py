"""Loopback fake of the dYdX v4 indexer: comlink REST under ``/v4`` and the socks
WebSocket at ``/v4/ws``, both on ONE ephemeral port of 127.0.0.1.

Protocol facts mirrored here (dydxprotocol/v4-chain ``indexer/services/socks`` and
``comlink``; see also shared/docs/dydx-v4.md section 4):

* ``connected`` (message_id 0) first; one ``message_id`` counter per connection across
  all channels.  A subscribe reserves the next id when it arrives and the ``subscribed``
  reply carries that id (it can therefore arrive after later-numbered channel data when
  the snapshot is slow, see ``ws_snapshot_delay``).  ``error`` replies to malformed
  requests reuse the current id (socks does not increment for them).
* ``subscribed`` carries the REST payload as ``contents``; ``v4_markets`` messages have
  no ``id`` key; ``v4_subaccounts`` contents are ``{subaccount, orders, blockHeight}``
  or ``{}`` for an unknown subaccount (comlink 404).
* ``channel_data`` (``batched`` false/absent) or ``channel_batch_data`` (contents is a
  list, flushed every ``batch_interval`` seconds, 0.25 s like socks).
* ``version`` per channel: orderbook 1.0.0, subaccounts 3.0.0, trades 2.1.0,
  markets/candles/block height 1.0.0.
* protocol pings every ``ping_interval`` s, close 1011 when no pong within
  ``ping_timeout`` s; app-level ``{"type":"ping"}`` is ignored (no reply).
* more than ``subscribe_rate_limit`` (2) subscribe attempts per ``subscribe_rate_window``
  (1 s) on one channel+id: ``error`` then close 1008.
* orderbook updates carry ABSOLUTE level sizes, ``"0"`` deletes a level; the REST
  snapshot is uncrossed (newer level wins, then the larger size) and capped at 100
  levels per side, while the stream may cross.

Data: real recorded payloads are READ at run time from the shared data folder
(``$DYDX_FAKES_DATA_DIR`` or ``<repo>/../shared/data``); they are never copied into the
repo.  Without that folder, or with ``PERPBOT_NO_SHARED_DATA=1`` (tests/shared_data.py),
a small built-in dataset (BTC-USD / ETH-USD with the real chain parameters) is used.

Usage in a pytest-asyncio test (same event loop)::

    async with FakeIndexer() as ix:
        client = IndexerClient(ix.rest_url, api_timeout=5)
        await ix.push_orderbook("BTC-USD", bids=[("65000", "1.5")])

or in a background thread with its own loop::

    ix = FakeIndexer().start_in_thread()
    ix.threadsafe.push_orderbook("BTC-USD", asks=[("65010", "0")])
    ix.stop_thread()
"""

from __future__ import annotations

import asyncio
import collections
import copy
import hashlib
import http
import inspect
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Iterable, Optional
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ... import shared_data

log = logging.getLogger("tests.fakes.indexer")

LOOPBACK = "127.0.0.1"

# --------------------------------------------------------------------------- constants

V4_ORDERBOOK = "v4_orderbook"
V4_TRADES = "v4_trades"
V4_MARKETS = "v4_markets"
V4_CANDLES = "v4_candles"
V4_SUBACCOUNTS = "v4_subaccounts"
V4_PARENT_SUBACCOUNTS = "v4_parent_subaccounts"
V4_BLOCK_HEIGHT = "v4_block_height"

ALL_CHANNELS = (
    V4_ORDERBOOK, V4_TRADES, V4_MARKETS, V4_CANDLES,
    V4_SUBACCOUNTS, V4_PARENT_SUBACCOUNTS, V4_BLOCK_HEIGHT,
)
CHANNEL_VERSIONS = {
    V4_ORDERBOOK: "1.0.0",
    V4_SUBACCOUNTS: "3.0.0",
    V4_PARENT_SUBACCOUNTS: "3.0.0",
    V4_TRADES: "2.1.0",
    V4_MARKETS: "1.0.0",
    V4_CANDLES: "1.0.0",
    V4_BLOCK_HEIGHT: "1.0.0",
}
CANDLE_RESOLUTIONS = ("1MIN", "5MINS", "15MINS", "30MINS", "1HOUR", "4HOURS", "1DAY")
# statuses socks asks comlink for in the initial v4_subaccounts response
INITIAL_ORDER_STATUSES = ("OPEN", "UNTRIGGERED", "BEST_EFFORT_OPENED", "BEST_EFFORT_CANCELED")
CHILD_SUBACCOUNT_MULTIPLIER = 1000
MAX_PARENT_SUBACCOUNTS = 128

# comlink/postgres uuid namespace (indexer/packages/postgres/src/helpers/uuid.ts).  With it
# subaccount and order uuids below equal the real indexer's (checked against recorded
# payloads).
INDEXER_UUID_NAMESPACE = uuid.UUID("0f9da948-a6fb-4c45-9edc-4685c3f3317d")

DATA_DIR_ENV = "DYDX_FAKES_DATA_DIR"


def subaccount_uuid(address: str, subaccount_number: int) -> str:
    """The indexer's ``subaccountId`` uuid for ``address/number``."""
    return str(uuid.uuid5(INDEXER_UUID_NAMESPACE, f"{address}-{int(subaccount_number)}"))


def order_uuid(address: str, subaccount_number: int, client_id: int, clob_pair_id: int,
               order_flags: int) -> str:
    """The indexer's order ``id`` uuid for a chain OrderId."""
    sub = subaccount_uuid(address, subaccount_number)
    return str(uuid.uuid5(INDEXER_UUID_NAMESPACE,
                          f"{sub}-{int(client_id)}-{int(clob_pair_id)}-{int(order_flags)}"))


def bytes_uuid(data: bytes) -> str:
    """uuid v5 over raw bytes in the indexer namespace (used for fill / position ids)."""
    digest = hashlib.sha1(INDEXER_UUID_NAMESPACE.bytes + data).digest()[:16]
    return str(uuid.UUID(bytes=digest, version=5))


# --------------------------------------------------------------------------- helpers

def D(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


def fmt(value: Any) -> str:
    """Decimal string the way the indexer prints it: no exponent, no trailing zeros."""
    d = D(value)
    if d == 0:
        return "0"
    s = format(d.normalize(), "f")
    return s


def iso_now(ts: Optional[float] = None) -> str:
    ts = time.time() if ts is None else ts
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


# --------------------------------------------------------------------------- dataset

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


# --------------------------------------------------------------------------- order book

class Book:
    """Price levels (absolute sizes) with a per-level update stamp for uncrossing."""

    def __init__(self, snapshot: Optional[dict] = None):
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self._stamp: dict[tuple[str, Decimal], int] = {}
        self._clock = 0
        if snapshot:
            for lvl in snapshot.get("bids", []):
                self.set_level("bids", lvl["price"], lvl["size"])
            for lvl in snapshot.get("asks", []):
                self.set_level("asks", lvl["price"], lvl["size"])

    def _side(self, side: str) -> dict[Decimal, Decimal]:
        if side in ("bids", "bid", "BUY", "buy"):
            return self.bids
        if side in ("asks", "ask", "SELL", "sell"):
            return self.asks
        raise ValueError(side)

    def set_level(self, side: str, price: Any, size: Any) -> tuple[str, str]:
        levels = self._side(side)
        key = "bids" if levels is self.bids else "asks"
        p, s = D(price), D(size)
        self._clock += 1
        if s <= 0:
            levels.pop(p, None)
            self._stamp.pop((key, p), None)
        else:
            levels[p] = s
            self._stamp[(key, p)] = self._clock
        return fmt(p), fmt(s if s > 0 else 0)

    def size_at(self, side: str, price: Any) -> Decimal:
        return self._side(side).get(D(price), Decimal(0))

    def best_bid(self) -> Optional[Decimal]:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> Optional[Decimal]:
        return min(self.asks) if self.asks else None

    def is_crossed(self) -> bool:
        bb, ba = self.best_bid(), self.best_ask()
        return bb is not None and ba is not None and bb >= ba

    def sorted_levels(self, side: str) -> list[tuple[Decimal, Decimal]]:
        levels = self._side(side)
        rev = levels is self.bids
        return sorted(levels.items(), key=lambda kv: kv[0], reverse=rev)

    def snapshot(self, limit: int = 100, uncross: bool = True) -> dict:
        bids, asks = dict(self.bids), dict(self.asks)
        while uncross and bids and asks:
            bp, ap = max(bids), min(asks)
            if bp < ap:
                break
            sb, sa = self._stamp.get(("bids", bp), 0), self._stamp.get(("asks", ap), 0)
            if sb != sa:
                drop_bid = sb < sa
            else:
                drop_bid = bids[bp] < asks[ap]
            if drop_bid:
                del bids[bp]
            else:
                del asks[ap]
        b = sorted(bids.items(), key=lambda kv: kv[0], reverse=True)[:limit]
        a = sorted(asks.items(), key=lambda kv: kv[0])[:limit]
        return {"bids": [{"price": fmt(p), "size": fmt(s)} for p, s in b],
                "asks": [{"price": fmt(p), "size": fmt(s)} for p, s in a]}


# --------------------------------------------------------------------------- connections

@dataclass
class _Sub:
    channel: str
    id: str
    batched: bool
    buffer: list = field(default_factory=list)


class _Conn:
    def __init__(self, ws: ServerConnection):
        self.ws = ws
        self.id = str(uuid.uuid4())
        self.message_id = 0
        self.subs: dict[tuple[str, str], _Sub] = {}
        self.attempts: dict[tuple[str, str], collections.deque] = collections.defaultdict(
            collections.deque)
        self.queue: asyncio.Queue[Optional[str]] = asyncio.Queue()
        self.tasks: set[asyncio.Task] = set()
        self.closing = False
        self.received: list[Any] = []

    def next_id(self) -> int:
        self.message_id += 1
        return self.message_id


@dataclass
class _Fault:
    prefix: Optional[str]
    status: Optional[int] = None
    delay: float = 0.0
    remaining: Optional[int] = None      # None = forever
    body: Optional[dict] = None

    def matches(self, path: str) -> bool:
        return self.prefix is None or path.startswith(self.prefix)


class _ThreadSafeProxy:
    """``ix.threadsafe.<method>(...)`` runs ``await ix.<method>(...)`` on the fake's loop
    from another thread and returns its result (``_timeout`` seconds, default 10)."""

    def __init__(self, target: Any):
        self._target = target

    def __getattr__(self, name: str):
        attr = getattr(self._target, name)
        if not (inspect.iscoroutinefunction(attr)):
            return attr

        def call(*args, _timeout: float = 10.0, **kwargs):
            loop = self._target.loop
            if loop is None or not loop.is_running():
                raise RuntimeError("fake is not running")
            if getattr(self._target, "_loop_thread_id", None) == threading.get_ident():
                raise RuntimeError("threadsafe.* called from the fake's own loop: await it")
            fut = asyncio.run_coroutine_threadsafe(attr(*args, **kwargs), loop)
            return fut.result(_timeout)

        return call


# --------------------------------------------------------------------------- the fake

class FakeIndexer:
    """Loopback dYdX v4 indexer (REST + WebSocket on one port of 127.0.0.1).

    Args:
        dataset: initial state; default ``load_dataset()`` (shared data or built-in).
        use_shared_data: False forces the built-in dataset.
        port: 0 (default) for an ephemeral port.
        batch_interval: flush period of ``channel_batch_data`` (socks: 0.25 s).
        ping_interval / ping_timeout: protocol keepalive (socks: 30 s / 10 s, close 1011).
        subscribe_rate_limit / subscribe_rate_window: >limit subscribes per window on one
            channel+id -> error + close 1008 (socks: 2 per 1 s).
        ws_snapshot_delay: seconds between a subscribe and its ``subscribed`` reply.
        close_timeout: how long a server-initiated close waits for the client's TCP close.
        height: initial block height (or set ``height_source`` to a callable).
        api_limit: comlink ``API_LIMIT_V4``: default and maximum ``limit`` of list endpoints.
    """

    def __init__(self, *, dataset: Optional[Dataset] = None, use_shared_data: bool = True,
                 data_dir: Optional[str | Path] = None, host: str = LOOPBACK, port: int = 0,
                 batch_interval: float = 0.25, ping_interval: Optional[float] = 30.0,
                 ping_timeout: Optional[float] = 10.0, subscribe_rate_limit: int = 2,
                 subscribe_rate_window: float = 1.0, ws_snapshot_delay: float = 0.0,
                 height: Optional[int] = None, max_levels: int = 100,
                 close_timeout: float = 0.5, api_limit: int = 1000):
        if host != LOOPBACK:
            raise ValueError("FakeIndexer binds 127.0.0.1 only")
        self.host = host
        self._want_port = int(port)
        self.port: Optional[int] = None
        self.batch_interval = batch_interval
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.subscribe_rate_limit = subscribe_rate_limit
        self.subscribe_rate_window = subscribe_rate_window
        self.ws_snapshot_delay = ws_snapshot_delay
        self.max_levels = max_levels
        #: comlink ``API_LIMIT_V4`` (config.ts; 1000 now, 100 on older indexers): the default and
        #: the largest ``limit`` of the list endpoints
        self.api_limit = int(api_limit)
        self.close_timeout = close_timeout
        ds = dataset if dataset is not None else load_dataset(data_dir, use_shared=use_shared_data)
        self.dataset = ds
        self.markets: dict[str, dict] = copy.deepcopy(ds.markets)
        self.books: dict[str, Book] = {t: Book(b) for t, b in ds.books.items()}
        self.trades: dict[str, list] = {t: list(v) for t, v in ds.trades.items()}
        self.candles: dict[str, list] = {t: list(v) for t, v in ds.candles.items()}
        self.funding: dict[str, list] = {t: list(v) for t, v in ds.funding.items()}
        self._height = int(height if height is not None else ds.height)
        self.height_source: Optional[Callable[[], int]] = None
        # account state (REST shapes)
        self.subaccounts: dict[tuple[str, int], dict] = {}
        self.orders: dict[str, dict] = {}                 # order uuid -> REST order
        self.fills: list[dict] = []                       # newest first, with "address"
        self.positions: dict[tuple[str, int], dict[str, dict]] = {}
        self.transfers: list[dict] = []
        self.funding_payments: list[dict] = []
        self._load_accounts(ds)
        # observability / fault injection
        self.request_counts: collections.Counter[str] = collections.Counter()
        self.requests: list[tuple[float, str, str]] = []
        self.client_messages: list[tuple[str, Any]] = []
        self._faults: list[_Fault] = []
        self._ws_connect_faults: list[_Fault] = []
        self._conns: dict[str, _Conn] = {}
        self.connection_count_total = 0
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._loop_thread_id: Optional[int] = None
        self._server = None
        self._flusher: Optional[asyncio.Task] = None
        self._thread: Optional[threading.Thread] = None
        self._changed: Optional[asyncio.Condition] = None
        self.threadsafe = _ThreadSafeProxy(self)

    # ------------------------------------------------------------------ lifecycle
    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v4/ws"

    @property
    def height(self) -> int:
        if self.height_source is not None:
            return int(self.height_source())
        return self._height

    async def start(self) -> "FakeIndexer":
        if self._server is not None:
            return self
        self.loop = asyncio.get_running_loop()
        self._loop_thread_id = threading.get_ident()
        self._changed = asyncio.Condition()
        self._server = await serve(
            self._ws_handler, self.host, self._want_port,
            process_request=self._process_request,
            ping_interval=self.ping_interval, ping_timeout=self.ping_timeout,
            open_timeout=120, close_timeout=self.close_timeout, max_queue=None,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self._flusher = asyncio.create_task(self._flush_loop())
        log.info("FakeIndexer on %s", self.rest_url)
        return self

    async def stop(self) -> None:
        if self._server is None:
            return
        if self._flusher:
            self._flusher.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(self._flusher), 1)
            except (asyncio.CancelledError, asyncio.TimeoutError, Exception):
                pass
        for c in list(self._conns.values()):
            self._abort(c)
        self._server.close(close_connections=False)
        try:
            await asyncio.wait_for(self._server.wait_closed(), 5)
        except asyncio.TimeoutError:
            log.warning("FakeIndexer: wait_closed timed out")
        self._server = None

    async def __aenter__(self) -> "FakeIndexer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def start_in_thread(self, timeout: float = 10.0) -> "FakeIndexer":
        """Run the fake on its own event loop in a daemon thread (for sync tests)."""
        ready = threading.Event()
        err: list[BaseException] = []

        def run():
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as e:  # pragma: no cover - surfaced below
                err.append(e)
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="FakeIndexer", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("FakeIndexer did not start")
        if err:
            raise err[0]
        return self

    def stop_thread(self, timeout: float = 10.0) -> None:
        if self._thread is None or self.loop is None:
            return
        loop = self.loop
        fut = asyncio.run_coroutine_threadsafe(self.stop(), loop)
        try:
            fut.result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> "FakeIndexer":
        return self.start_in_thread()

    def __exit__(self, *exc) -> None:
        self.stop_thread()

    def call_soon_threadsafe(self, fn: Callable, *args) -> None:
        """Schedule ``fn(*args)`` on the fake's loop (from any thread)."""
        if self.loop is None or self.loop.is_closed():
            raise RuntimeError("FakeIndexer is not running")
        self.loop.call_soon_threadsafe(fn, *args)

    # ------------------------------------------------------------------ accounts
    def _load_accounts(self, ds: Dataset) -> None:
        for sub in ds.subaccounts:
            key = (sub["address"], int(sub["subaccountNumber"]))
            s = copy.deepcopy(sub)
            self.subaccounts[key] = s
            for m, p in (s.get("openPerpetualPositions") or {}).items():
                self.positions.setdefault(key, {})[m] = {**p, "subaccountNumber": key[1]}
        for pos in ds.positions:
            key = (pos["address"], int(pos.get("subaccountNumber", 0)))
            p = {k: v for k, v in pos.items() if k != "address"}
            self.positions.setdefault(key, {})[p["market"]] = p
        for o in ds.orders:
            self.orders[o["id"]] = dict(o)
        self.fills = [dict(f) for f in ds.fills]

    def ensure_subaccount(self, address: str, subaccount_number: int = 0,
                          usdc: Any = None) -> dict:
        """Create (or return) a subaccount so that REST and the WS snapshot know it."""
        key = (address, int(subaccount_number))
        sub = self.subaccounts.get(key)
        if sub is None:
            sub = {
                "address": address, "subaccountNumber": key[1], "equity": "0",
                "freeCollateral": "0", "openPerpetualPositions": {}, "assetPositions": {},
                "marginEnabled": True, "updatedAtHeight": str(self.height),
                "latestProcessedBlockHeight": str(self.height),
            }
            self.subaccounts[key] = sub
        if usdc is not None:
            self._set_usdc(sub, D(usdc))
            self._recompute(key)
        return sub

    def _set_usdc(self, sub: dict, amount: Decimal) -> None:
        sub["assetPositions"]["USDC"] = {
            "size": fmt(abs(amount)), "symbol": "USDC",
            "side": "LONG" if amount >= 0 else "SHORT", "assetId": "0",
            "subaccountNumber": sub["subaccountNumber"],
        }

    def usdc_balance(self, address: str, subaccount_number: int = 0) -> Decimal:
        sub = self.subaccounts.get((address, int(subaccount_number)))
        if not sub or "USDC" not in sub.get("assetPositions", {}):
            return Decimal(0)
        a = sub["assetPositions"]["USDC"]
        return D(a["size"]) * (1 if a["side"] == "LONG" else -1)

    def _recompute(self, key: tuple[str, int]) -> None:
        sub = self.subaccounts.get(key)
        if sub is None:
            return
        open_pos = {m: p for m, p in self.positions.get(key, {}).items()
                    if p.get("status") == "OPEN"}
        sub["openPerpetualPositions"] = {
            m: {k: v for k, v in p.items()} for m, p in open_pos.items()}
        equity = self.usdc_balance(*key)
        imr = Decimal(0)
        for m, p in open_pos.items():
            mk = self.markets.get(m)
            if not mk or not mk.get("oraclePrice"):
                continue
            px = D(mk["oraclePrice"])
            size = D(p["size"])
            signed = size if p.get("side") == "LONG" else -abs(size)
            equity += signed * px
            imr += abs(size) * px * D(mk["initialMarginFraction"])
        sub["equity"] = fmt(equity)
        sub["freeCollateral"] = fmt(equity - imr)
        sub["updatedAtHeight"] = str(self.height)
        sub["latestProcessedBlockHeight"] = str(self.height)

    # ------------------------------------------------------------------ REST
    def _route(self, path: str, q: dict[str, str]) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if not parts or parts[0] != "v4":
            return 404, {"errors": [{"msg": f"Cannot GET {path}"}]}
        p = parts[1:]
        n = len(p)
        limit = int(q["limit"]) if q.get("limit", "").isdigit() else None

        def lim(rows):
            return rows[:limit] if limit is not None else rows

        def unknown_ticker(t):
            return 404, {"errors": [{"msg": f"{t} is not a valid ticker"}]}

        if p == ["perpetualMarkets"]:
            t = q.get("ticker")
            if t:
                if t not in self.markets:
                    return unknown_ticker(t)
                return 200, {"markets": {t: self.markets[t]}}
            items = list(self.markets.items())
            return 200, {"markets": dict(lim(items))}
        if n == 3 and p[:2] == ["orderbooks", "perpetualMarket"]:
            t = p[2]
            if t not in self.markets:
                return unknown_ticker(t)
            book = self.books.get(t)
            return 200, book.snapshot(self.max_levels) if book else {"bids": [], "asks": []}
        if n == 3 and p[:2] == ["trades", "perpetualMarket"]:
            t = p[2]
            if t not in self.markets:
                return unknown_ticker(t)
            return 200, {"trades": self.trades.get(t, [])[:limit or 100]}
        if n == 3 and p[:2] == ["candles", "perpetualMarkets"]:
            t = p[2]
            if t not in self.markets:
                return unknown_ticker(t)
            res = q.get("resolution")
            if res not in CANDLE_RESOLUTIONS:
                return 400, {"errors": [{"msg": "resolution must be a valid Candle Resolution",
                                         "param": "resolution", "location": "query"}]}
            rows = [c for c in self.candles.get(t, []) if c.get("resolution") == res]
            return 200, {"candles": rows[:limit or 100]}
        if n == 2 and p[0] == "historicalFunding":
            t = p[1]
            if t not in self.markets:
                return unknown_ticker(t)
            return 200, {"historicalFunding": self.funding.get(t, [])[:limit or 100]}
        if p == ["sparklines"]:
            return 200, {t: [] for t in self.markets}
        if p == ["height"]:
            return 200, {"height": str(self.height), "time": iso_now()}
        if p == ["time"]:
            now = time.time()
            return 200, {"iso": iso_now(now), "epoch": round(now, 3)}
        if p == ["screen"] or (n == 3 and p[:2] == ["compliance", "screen"]):
            return 200, {"restricted": False, "reason": "", "status": "COMPLIANT"}
        if p and p[0] == "addresses":
            return self._route_addresses(p[1:])
        if p and p[0] == "orders":
            if n == 1:
                return self._query_orders(q)
            if n == 2 and p[1] == "parentSubaccountNumber":
                return self._query_orders(q, parent=True)
            if n == 2:
                o = self.orders.get(p[1])
                if o is None:  # comlink getOrder: NotFoundError
                    return 404, {"errors": [{"msg": f"Unable to find order id {p[1]}"}]}
                return 200, o
        if p in (["fills"], ["fills", "parentSubaccountNumber"]):
            return self._query_fills(q, n == 2)
        if p in (["perpetualPositions"], ["perpetualPositions", "parentSubaccountNumber"]):
            rows = []
            for key, pos in self.positions.items():
                if self._match_key(key, q, n == 2):
                    for pp in pos.values():
                        st = q.get("status")
                        if st and pp.get("status") not in st.split(","):
                            continue
                        rows.append(pp)
            return 200, {"positions": rows[:limit or 100]}
        if p in (["assetPositions"], ["assetPositions", "parentSubaccountNumber"]):
            rows = []
            for key, sub in self.subaccounts.items():
                if self._match_key(key, q, n == 2):
                    rows.extend(sub.get("assetPositions", {}).values())
            return 200, {"positions": rows}
        if p and p[0] == "transfers":
            rows = [t for t in self.transfers if self._match_sub(t, q, len(p) > 1)]
            return 200, {"transfers": rows[:limit or 100]}
        if p and p[0] == "fundingPayments":
            rows = [t for t in self.funding_payments if self._match_sub(t, q, len(p) > 1)]
            return 200, {"fundingPayments": rows[:limit or 100]}
        if p and p[0] == "historical-pnl":
            return 200, {"historicalPnl": []}
        return 404, {"errors": [{"msg": f"Cannot GET {path}"}]}

    def _match_key(self, key: tuple[str, int], q: dict, parent: bool) -> bool:
        addr, num = key
        if q.get("address") and q["address"] != addr:
            return False
        if parent:
            want = q.get("parentSubaccountNumber")
            return want is None or num % MAX_PARENT_SUBACCOUNTS == int(want)
        want = q.get("subaccountNumber")
        return want is None or int(want) == num

    def _match_sub(self, row: dict, q: dict, parent: bool) -> bool:
        addr = row.get("address")
        num = int(row.get("subaccountNumber", 0))
        return self._match_key((addr, num), q, parent)

    @staticmethod
    def _rest_fill(f: dict) -> dict:
        return {k: v for k, v in f.items() if k != "address"}

    def _limit_of(self, q: dict) -> tuple[Optional[int], Optional[tuple[int, Any]]]:
        """comlink ``CheckLimitSchema``: absent -> ``API_LIMIT_V4``; else a positive integer
        not above it (``lib/validation/schemas.ts``), or a 400."""
        raw = q.get("limit")
        if raw is None or raw == "":
            return self.api_limit, None
        if not raw.isdigit() or int(raw) <= 0 or int(raw) > self.api_limit:
            return None, (400, {"errors": [{
                "value": raw, "msg": "limit must be a positive integer that is not greater than max: "
                                     f"{self.api_limit}", "param": "limit", "location": "query"}]})
        return int(raw), None

    @staticmethod
    def _gtb(o: dict) -> Optional[int]:
        v = o.get("goodTilBlock")
        return int(v) if v not in (None, "") else None

    @staticmethod
    def _gtbt(o: dict) -> Optional[float]:
        v = o.get("goodTilBlockTime")
        if not v:
            return None
        return datetime.fromisoformat(str(v).replace("Z", "+00:00")).timestamp()

    def _query_orders(self, q: dict, parent: bool = False) -> tuple[int, Any]:
        """``GET /v4/orders`` as comlink ``orders-controller.ts listOrders`` answers it: the
        postgres rows (filters, then ORDER BY goodTilBlock, goodTilBlockTime in the ordering,
        LIMIT) merged with every open order of the subaccount from redis (LIMIT orders only),
        THEN the status filter, then sorted (``compareOrderResponses``: in ascending order
        short-term before stateful, by goodTilBlock / goodTilBlockTime) and cut to ``limit``.
        Ordering: ``returnLatestOrders`` true or absent -> descending, false -> ascending.
        ``goodTilBlockBeforeOrAt`` keeps only orders WITH a goodTilBlock <= it;
        ``goodTilBlockTimeBeforeOrAt`` only orders WITH a goodTilBlockTime <= it (inclusive)."""
        limit, err = self._limit_of(q)
        if err is not None:
            return err
        gtb_max = q.get("goodTilBlockBeforeOrAt")
        gtbt_max = q.get("goodTilBlockTimeBeforeOrAt")
        if gtb_max is not None and not (gtb_max.isdigit() and int(gtb_max) > 0):
            return 400, {"errors": [{"value": gtb_max, "msg": "Invalid value",
                                     "param": "goodTilBlockBeforeOrAt", "location": "query"}]}
        try:
            gtbt_cut = self._gtbt({"goodTilBlockTime": gtbt_max}) if gtbt_max else None
        except ValueError:
            return 400, {"errors": [{"value": gtbt_max, "msg": "Invalid value",
                                     "param": "goodTilBlockTimeBeforeOrAt", "location": "query"}]}
        descending = q.get("returnLatestOrders", "true").lower() != "false"
        addr = q.get("address")
        rows = []
        for o in self.orders.values():
            num = int(o.get("subaccountNumber", 0))
            if addr is not None:
                if parent:
                    pn = q.get("parentSubaccountNumber")
                    if pn is not None and num % MAX_PARENT_SUBACCOUNTS != int(pn):
                        continue
                    if o.get("subaccountId") not in {
                            subaccount_uuid(addr, num)}:
                        continue
                else:
                    sn = int(q.get("subaccountNumber", 0))
                    if o.get("subaccountId") != subaccount_uuid(addr, sn):
                        continue
            if q.get("ticker") and o.get("ticker") != q["ticker"]:
                continue
            if q.get("side") and o.get("side") != q["side"]:
                continue
            if q.get("type") and o.get("type") != q["type"]:
                continue
            if gtb_max is not None and (self._gtb(o) is None or self._gtb(o) > int(gtb_max)):
                continue
            if gtbt_cut is not None and (self._gtbt(o) is None or self._gtbt(o) > gtbt_cut):
                continue
            rows.append(o)

        def key(o: dict) -> tuple:
            # ascending: short-term (by goodTilBlock) < stateful (by goodTilBlockTime) < neither
            if self._gtb(o) is not None:
                return (0, self._gtb(o))
            if self._gtbt(o) is not None:
                return (1, self._gtbt(o))
            return (2, 0)

        rows.sort(key=key, reverse=descending)
        postgres = rows[:limit]
        redis = [o for o in rows if o.get("status") in ("OPEN", "BEST_EFFORT_OPENED")
                 and o.get("type", "LIMIT") == "LIMIT" and (not q.get("type") or q["type"] == "LIMIT")]
        merged = {o["id"]: o for o in postgres}
        merged.update({o["id"]: o for o in redis})
        out = list(merged.values())
        if q.get("status"):
            want = q["status"].split(",")
            out = [o for o in out if o.get("status") in want]
        out.sort(key=key, reverse=descending)
        return 200, out[:limit]

    def _query_fills(self, q: dict, parent: bool) -> tuple[int, Any]:
        """``GET /v4/fills`` as comlink ``fills-controller.ts`` / postgres ``fill-table.ts
        findAll`` answer it: filters (``market``, inclusive ``createdBeforeOrAtHeight`` /
        ``createdBeforeOrAt``), ORDER BY createdAtHeight DESC, LIMIT (default
        ``API_LIMIT_V4``). With ``page``: ORDER BY eventId ASC first, OFFSET (page-1)*limit,
        and ``pageSize``/``totalResults``/``offset`` in the reply (absent without ``page``)."""
        limit, err = self._limit_of(q)
        if err is not None:
            return err
        rows = [f for f in self.fills if self._match_sub(f, q, parent)
                and (not q.get("market") or f.get("market") == q["market"])]
        h = q.get("createdBeforeOrAtHeight")
        if h is not None:
            if not h.isdigit():
                return 400, {"errors": [{"value": h, "msg": "createdBeforeOrAtHeight must be a non-negative integer",
                                         "param": "createdBeforeOrAtHeight", "location": "query"}]}
            rows = [f for f in rows if int(f.get("createdAtHeight") or 0) <= int(h)]
        t = q.get("createdBeforeOrAt")
        if t:
            cut = self._gtbt({"goodTilBlockTime": t})
            rows = [f for f in rows if f.get("createdAt") and self._gtbt({"goodTilBlockTime": f["createdAt"]}) <= cut]
        # self.fills is newest first; its reverse is insertion (eventId) order
        page = q.get("page")
        if page is not None:
            if not page.isdigit():
                return 400, {"errors": [{"value": page, "msg": "page must be a non-negative integer",
                                         "param": "page", "location": "query"}]}
            ordered = list(reversed(rows))  # eventId ASC, then createdAtHeight DESC: same order here
            offset = (max(1, int(page)) - 1) * limit
            return 200, {"fills": [self._rest_fill(f) for f in ordered[offset:offset + limit]],
                         "pageSize": limit, "totalResults": len(ordered), "offset": offset}
        rows.sort(key=lambda f: int(f.get("createdAtHeight") or 0), reverse=True)  # stable: newest first
        return 200, {"fills": [self._rest_fill(f) for f in rows[:limit]]}

    def _route_addresses(self, p: list[str]) -> tuple[int, Any]:
        if len(p) == 1:
            subs = [s for (a, _), s in sorted(self.subaccounts.items()) if a == p[0]]
            if not subs:
                return 404, {"errors": [{"msg": f"No subaccounts found for address {p[0]}"}]}
            return 200, {"subaccounts": subs, "totalTradingRewards": "0"}
        if len(p) == 3 and p[1] == "subaccountNumber":
            try:
                key = (p[0], int(p[2]))
            except ValueError:
                return 400, {"errors": [{"msg": "subaccountNumber must be an integer"}]}
            sub = self.subaccounts.get(key)
            if sub is None:
                return 404, {"errors": [{"msg": f"No subaccount found with address {key[0]} "
                                                f"and subaccountNumber {key[1]}"}]}
            return 200, {"subaccount": sub}
        if len(p) == 3 and p[1] == "parentSubaccountNumber":
            pn = int(p[2])
            kids = [s for (a, n), s in sorted(self.subaccounts.items())
                    if a == p[0] and n % MAX_PARENT_SUBACCOUNTS == pn]
            if not kids:
                return 404, {"errors": [{"msg": f"No subaccount found with address {p[0]} "
                                                f"and parentSubaccountNumber {pn}"}]}
            eq = sum((D(s["equity"]) for s in kids), Decimal(0))
            fc = sum((D(s["freeCollateral"]) for s in kids), Decimal(0))
            return 200, {"subaccount": {"address": p[0], "parentSubaccountNumber": pn,
                                        "equity": fmt(eq), "freeCollateral": fmt(fc),
                                        "childSubaccounts": kids}}
        return 404, {"errors": [{"msg": "Not Found"}]}

    @staticmethod
    def _response(status: int, obj: Any, extra: Iterable[tuple[str, str]] = ()) -> Response:
        body = orjson.dumps(obj)
        headers = Headers([("Content-Type", "application/json; charset=utf-8"),
                           ("Content-Length", str(len(body))), ("Connection", "close"),
                           *extra])
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Error"
        return Response(status, reason, headers, body)

    def _take_fault(self, faults: list[_Fault], path: str) -> tuple[float, Optional[_Fault]]:
        delay, failing = 0.0, None
        for f in list(faults):
            if not f.matches(path):
                continue
            if f.delay:
                delay = max(delay, f.delay)
            if f.status is not None and failing is None:
                failing = f
            if f.remaining is not None and (f.status is not None or f.delay):
                f.remaining -= 1
                if f.remaining <= 0:
                    faults.remove(f)
        return delay, failing

    async def _process_request(self, connection: ServerConnection,
                               request: Request) -> Optional[Response]:
        split = urlsplit(request.path)
        path = split.path
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if upgrade:
            if path.rstrip("/") != "/v4/ws":
                return self._response(404, {"errors": [{"msg": "Not Found"}]})
            delay, fail = self._take_fault(self._ws_connect_faults, path)
            if delay:
                await asyncio.sleep(delay)
            if fail is not None:
                return self._response(fail.status, fail.body or {"errors": [
                    {"msg": http.HTTPStatus(fail.status).phrase}]})
            return None
        q = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        self.request_counts[path] += 1
        self.requests.append((time.time(), path, split.query))
        delay, fail = self._take_fault(self._faults, path)
        if delay:
            await asyncio.sleep(delay)
        if fail is not None:
            extra = [("Retry-After", "1")] if fail.status == 429 else []
            body = fail.body or {"errors": [{"msg": "Too many requests" if fail.status == 429
                                             else http.HTTPStatus(fail.status).phrase}]}
            return self._response(fail.status, body, extra)
        try:
            status, obj = self._route(path, q)
        except Exception as e:  # a fake bug must not hang the client
            log.exception("FakeIndexer route failed")
            status, obj = 500, {"errors": [{"msg": f"fake indexer error: {e!r}"}]}
        return self._response(status, obj)

    # ------------------------------------------------------------------ WebSocket
    async def _ws_handler(self, ws: ServerConnection) -> None:
        conn = _Conn(ws)
        self._conns[conn.id] = conn
        self.connection_count_total += 1
        writer = asyncio.create_task(self._writer(conn))
        self._enqueue(conn, {"type": "connected", "connection_id": conn.id, "message_id": 0})
        await self._notify()
        try:
            async for raw in ws:
                self._on_client_message(conn, raw)
        except ConnectionClosed:
            pass
        finally:
            self._conns.pop(conn.id, None)
            for t in list(conn.tasks):
                t.cancel()
            conn.queue.put_nowait(None)
            try:
                await asyncio.wait_for(writer, 2)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
                writer.cancel()
            await self._notify()

    async def _writer(self, conn: _Conn) -> None:
        while True:
            text = await conn.queue.get()
            if text is None:
                return
            try:
                await conn.ws.send(text)
            except ConnectionClosed:
                return

    def _enqueue(self, conn: _Conn, msg: Any) -> None:
        if conn.closing:
            return
        conn.queue.put_nowait(msg if isinstance(msg, str) else _dumps(msg))

    def _error(self, conn: _Conn, message: str, message_id: Optional[int] = None,
               channel: Optional[str] = None, id_: Optional[str] = None) -> None:
        msg = {"type": "error", "message": message, "connection_id": conn.id,
               "message_id": conn.message_id if message_id is None else message_id}
        if channel is not None:
            msg["channel"] = channel
        if id_ is not None:
            msg["id"] = id_
        self._enqueue(conn, msg)

    @staticmethod
    def _normalize_id(channel: str, id_: Optional[str]) -> str:
        if channel == V4_BLOCK_HEIGHT:
            return id_ if id_ is not None else V4_BLOCK_HEIGHT
        return id_ if id_ is not None else V4_MARKETS

    def _valid_sub_id(self, channel: str, id_: Optional[str]) -> bool:
        if channel in (V4_MARKETS, V4_BLOCK_HEIGHT):
            return True
        if id_ is None:
            return False
        if channel in (V4_ORDERBOOK, V4_TRADES):
            return id_ in self.markets
        if channel == V4_CANDLES:
            parts = id_.split("/")
            return len(parts) == 2 and parts[0] in self.markets and parts[1] in CANDLE_RESOLUTIONS
        if channel in (V4_SUBACCOUNTS, V4_PARENT_SUBACCOUNTS):
            parts = id_.split("/")
            if len(parts) != 2 or not parts[1].isdigit():
                return False
            cap = MAX_PARENT_SUBACCOUNTS * (CHILD_SUBACCOUNT_MULTIPLIER
                                           if channel == V4_SUBACCOUNTS else 1)
            return int(parts[1]) < cap
        return False

    def _on_client_message(self, conn: _Conn, raw: Any) -> None:
        try:
            msg = json.loads(raw)
        except (ValueError, TypeError):
            self.client_messages.append((conn.id, raw))
            self._error(conn, "Invalid message: could not parse")
            return
        self.client_messages.append((conn.id, msg))
        if not isinstance(msg, dict) or not msg.get("type"):
            self._error(conn, "Invalid message: type is required")
            return
        mtype = msg["type"]
        if mtype == "ping":
            return  # socks: accepted and ignored, no pong message
        if mtype not in ("subscribe", "unsubscribe"):
            self._error(conn, f"Invalid message type: {mtype}")
            return
        channel = msg.get("channel")
        id_ = msg.get("id")
        if not channel:
            self._error(conn, "Invalid subscribe message: channel is required")
            return
        if channel not in ALL_CHANNELS:
            self._error(conn, f"Invalid channel: {channel}")
            return
        if channel not in (V4_MARKETS, V4_BLOCK_HEIGHT) and not isinstance(id_, str):
            self._error(conn, f"Invalid id: {id_ if id_ is not None else 'undefined'}")
            return
        if mtype == "unsubscribe":
            sid = self._normalize_id(channel, id_)
            conn.subs.pop((channel, sid), None)
            out = {"type": "unsubscribed", "connection_id": conn.id,
                   "message_id": conn.next_id(), "channel": channel}
            if channel != V4_MARKETS:
                out["id"] = id_
            self._enqueue(conn, out)
            self._schedule_notify()
            return
        self._subscribe(conn, channel, id_, bool(msg.get("batched", False)))

    def _subscribe(self, conn: _Conn, channel: str, id_: Optional[str], batched: bool) -> None:
        mid = conn.next_id()
        if not self._valid_sub_id(channel, id_):
            self._error(conn, f"Invalid subscription id for channel: ({channel}-{id_})", mid)
            return
        sid = self._normalize_id(channel, id_)
        now = time.monotonic()
        dq = conn.attempts[(channel, sid)]
        while dq and now - dq[0] > self.subscribe_rate_window:
            dq.popleft()
        dq.append(now)
        if self.subscribe_rate_limit and len(dq) > self.subscribe_rate_limit:
            self._error(conn, f"Too many subscribe attempts for channel {channel}-{sid}. "
                              "Please  reconnect and try again.", mid)
            self._close_later(conn, 1008, _dumps({"message": "Rate limited"}))
            return
        if self.ws_snapshot_delay > 0:
            task = asyncio.get_running_loop().create_task(
                self._finish_subscribe_later(conn, channel, id_, sid, batched, mid))
            conn.tasks.add(task)
            task.add_done_callback(conn.tasks.discard)
        else:
            self._finish_subscribe(conn, channel, id_, sid, batched, mid)

    async def _finish_subscribe_later(self, conn, channel, id_, sid, batched, mid) -> None:
        await asyncio.sleep(self.ws_snapshot_delay)
        if conn.id in self._conns:
            self._finish_subscribe(conn, channel, id_, sid, batched, mid)

    def snapshot(self, channel: str, id_: Optional[str]) -> tuple[int, Any]:
        """(status, contents) of the initial response socks would fetch from comlink."""
        if channel == V4_ORDERBOOK:
            return self._route(f"/v4/orderbooks/perpetualMarket/{id_}", {})
        if channel == V4_TRADES:
            return self._route(f"/v4/trades/perpetualMarket/{id_}", {})
        if channel == V4_MARKETS:
            return self._route("/v4/perpetualMarkets", {})
        if channel == V4_CANDLES:
            t, res = id_.split("/")
            return self._route(f"/v4/candles/perpetualMarkets/{t}", {"resolution": res})
        if channel == V4_BLOCK_HEIGHT:
            return self._route("/v4/height", {})
        if channel in (V4_SUBACCOUNTS, V4_PARENT_SUBACCOUNTS):
            addr, num = id_.split("/")
            parent = channel == V4_PARENT_SUBACCOUNTS
            kind = "parentSubaccountNumber" if parent else "subaccountNumber"
            st, sub = self._route(f"/v4/addresses/{addr}/{kind}/{num}", {})
            if st == 404:
                return 200, {}
            if st != 200:
                return st, sub
            q = {"address": addr, kind: num, "status": ",".join(INITIAL_ORDER_STATUSES)}
            _, orders = self._query_orders(q, parent=parent)
            out = dict(sub)
            out["orders"] = orders
            out["blockHeight"] = str(self.height)
            return 200, out
        return 400, {}

    def _finish_subscribe(self, conn, channel, id_, sid, batched, mid) -> None:
        try:
            status, contents = self.snapshot(channel, id_)
        except Exception:
            log.exception("snapshot failed")
            status, contents = 500, None
        if status != 200:
            self._error(conn, f"Internal error, could not fetch data for subscription: "
                              f"{channel}.", mid)
            return
        if (channel, sid) in conn.subs:
            self._error(conn, f"Invalid subscribe message: already subscribed ({channel}-{sid})",
                        mid)
            return
        conn.subs[(channel, sid)] = _Sub(channel, sid, batched)
        out = {"type": "subscribed", "connection_id": conn.id, "message_id": mid,
               "channel": channel}
        if channel != V4_MARKETS:
            out["id"] = sid
        out["contents"] = contents
        self._enqueue(conn, out)
        self._schedule_notify()

    def _close_later(self, conn: _Conn, code: int, reason: str = "") -> None:
        async def go():
            await asyncio.sleep(0)
            await self._close_conn(conn, code, reason)
        task = asyncio.get_running_loop().create_task(go())
        conn.tasks.add(task)
        task.add_done_callback(conn.tasks.discard)

    async def _close_conn(self, conn: _Conn, code: int, reason: str = "") -> None:
        # flush what is queued, then close with ``code``
        deadline = time.monotonic() + 2
        while not conn.queue.empty() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        conn.closing = True
        try:
            await asyncio.wait_for(conn.ws.close(code, reason), 3)
        except (asyncio.TimeoutError, ConnectionClosed, Exception):
            self._abort(conn)

    @staticmethod
    def _abort(conn: _Conn) -> None:
        conn.closing = True
        tr = getattr(conn.ws, "transport", None)
        if tr is not None:
            tr.abort()

    # ------------------------------------------------------------------ publish
    def publish(self, channel: str, id_: Optional[str], contents: Any, *,
                version: Optional[str] = None, extra: Optional[dict] = None) -> int:
        """Send ``contents`` to every subscriber of channel/id as channel_data (or buffer it
        for channel_batch_data).  Returns the number of subscribers reached.  Must run on
        the fake's loop (use the async ``push_*`` methods or ``threadsafe``)."""
        sid = self._normalize_id(channel, id_)
        version = version or CHANNEL_VERSIONS.get(channel, "1.0.0")
        n = 0
        for conn in list(self._conns.values()):
            sub = conn.subs.get((channel, sid))
            if sub is None:
                continue
            n += 1
            if sub.batched:
                sub.buffer.append((version, contents))
                continue
            msg = {"type": "channel_data", "connection_id": conn.id,
                   "message_id": conn.next_id()}
            if channel != V4_MARKETS:
                msg["id"] = sid
            msg["channel"] = channel
            msg["version"] = version
            msg["contents"] = contents
            if extra:
                msg.update(extra)
            self._enqueue(conn, msg)
        return n

    def _flush_batches(self) -> None:
        for conn in list(self._conns.values()):
            for sub in list(conn.subs.values()):
                if not sub.buffer:
                    continue
                groups: dict[str, list] = {}
                for version, contents in sub.buffer:
                    groups.setdefault(version, []).append(contents)
                sub.buffer.clear()
                for version, items in groups.items():
                    msg = {"type": "channel_batch_data", "connection_id": conn.id,
                           "message_id": conn.next_id()}
                    if sub.channel != V4_MARKETS:
                        msg["id"] = sub.id
                    msg["channel"] = sub.channel
                    msg["version"] = version
                    msg["contents"] = items
                    self._enqueue(conn, msg)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.batch_interval)
            try:
                self._flush_batches()
            except Exception:  # pragma: no cover
                log.exception("batch flush failed")

    async def flush(self) -> None:
        """Flush batched subscriptions now and let the writers run."""
        self._flush_batches()
        await self.drain()

    async def drain(self, timeout: float = 2.0) -> None:
        """Wait (bounded) until every connection's outgoing queue is empty."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(c.queue.empty() for c in self._conns.values()):
                await asyncio.sleep(0)
                return
            await asyncio.sleep(0.005)

    async def _notify(self) -> None:
        if self._changed is None:
            return
        async with self._changed:
            self._changed.notify_all()

    def _schedule_notify(self) -> None:
        try:
            asyncio.get_running_loop().create_task(self._notify())
        except RuntimeError:
            pass

    # ------------------------------------------------------------------ test controls
    def market_by_clob_pair(self, clob_pair_id: int | str) -> dict:
        for m in self.markets.values():
            if str(m.get("clobPairId")) == str(clob_pair_id):
                return m
        raise KeyError(f"no market with clobPairId {clob_pair_id}")

    def set_height(self, height: int) -> None:
        self._height = int(height)

    def book(self, ticker: str) -> Book:
        return self.books.setdefault(ticker, Book())

    def subscriptions(self) -> dict[str, list[tuple[str, str, bool]]]:
        """{connection_id: [(channel, id, batched), ...]} for every open connection."""
        return {cid: [(s.channel, s.id, s.batched) for s in c.subs.values()]
                for cid, c in self._conns.items()}

    @property
    def connection_ids(self) -> list[str]:
        return list(self._conns)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true (checked on connection/subscription changes
        and every 50 ms); TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("FakeIndexer.wait_for timed out")
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), min(left, 0.05))
                except asyncio.TimeoutError:
                    pass

    async def wait_for_subscription(self, channel: str, id_: Optional[str] = None,
                                    timeout: float = 5.0) -> None:
        sid = self._normalize_id(channel, id_)
        await self.wait_for(lambda: any((channel, sid) in c.subs for c in self._conns.values()),
                            timeout)

    async def wait_for_connections(self, n: int = 1, timeout: float = 5.0) -> None:
        await self.wait_for(lambda: len(self._conns) >= n, timeout)

    async def push_orderbook(self, ticker: str, bids: Iterable = (), asks: Iterable = (),
                             *, separate: bool = False) -> dict:
        """Apply absolute level sizes (``"0"`` deletes) and stream them.  Levels are
        ``(price, size)`` pairs.  One message with both sides unless ``separate``."""
        return self.apply_orderbook(ticker, bids, asks, separate=separate)

    def apply_orderbook(self, ticker: str, bids: Iterable = (), asks: Iterable = (),
                        *, separate: bool = False) -> dict:
        """Synchronous core of ``push_orderbook`` (loop thread only)."""
        book = self.book(ticker)
        out: dict[str, list] = {}
        for side, levels in (("bids", bids), ("asks", asks)):
            for price, size in levels or ():
                out.setdefault(side, []).append(list(book.set_level(side, price, size)))
        if separate:
            for side, rows in out.items():
                self.publish(V4_ORDERBOOK, ticker, {side: rows})
        elif out:
            self.publish(V4_ORDERBOOK, ticker, out)
        return out

    async def push_crossed_book(self, ticker: str, size: Any = None, ticks: int = 1) -> dict:
        """Stream a bid ``ticks`` ticks ABOVE the best ask (a crossed book, as the real
        stream can produce).  The REST snapshot stays uncrossed (newer level wins)."""
        book = self.book(ticker)
        tick = D(self.markets[ticker]["tickSize"])
        ba = book.best_ask()
        if ba is None:
            raise ValueError("no asks to cross")
        sz = D(size) if size is not None else D(self.markets[ticker]["stepSize"]) * 10
        price = ba + tick * max(int(ticks), 1)
        return self.apply_orderbook(ticker, bids=[(price, sz)])

    async def push_trades(self, ticker: str, trades: Iterable[dict]) -> list[dict]:
        """Stream trades (dicts with at least side/size/price) and prepend them to the
        REST history.  Missing fields are filled in."""
        return self.apply_trades(ticker, trades)

    def apply_trades(self, ticker: str, trades: Iterable[dict]) -> list[dict]:
        rows = []
        h = self.height
        for i, t in enumerate(trades):
            row = {
                "id": t.get("id") or f"{h & 0xffffffff:08x}00000002{i:08x}",
                "side": t.get("side", "BUY"), "size": fmt(t["size"]), "price": fmt(t["price"]),
                "type": t.get("type", "LIMIT"), "createdAt": t.get("createdAt") or iso_now(),
                "createdAtHeight": str(t.get("createdAtHeight", h)),
            }
            rows.append(row)
        if rows:
            self.trades[ticker] = list(reversed(rows)) + self.trades.get(ticker, [])
            self.publish(V4_TRADES, ticker, {"trades": rows})
        return rows

    async def push_market(self, ticker: str, *, oracle_price: Any = None,
                          next_funding_rate: Any = None, **trading: Any) -> list[dict]:
        """Oracle price -> ``{oraclePrices:{T:{...}}}``; nextFundingRate and any other
        market fields -> ``{trading:{T:{...}}}``.  Updates REST state too."""
        return self.apply_market(ticker, oracle_price=oracle_price,
                                 next_funding_rate=next_funding_rate, **trading)

    def apply_market(self, ticker: str, *, oracle_price: Any = None,
                     next_funding_rate: Any = None, **trading: Any) -> list[dict]:
        m = self.markets[ticker]
        sent = []
        if oracle_price is not None:
            m["oraclePrice"] = fmt(oracle_price)
            c = {"oraclePrices": {ticker: {
                "oraclePrice": m["oraclePrice"], "effectiveAt": iso_now(),
                "effectiveAtHeight": str(self.height),
                "marketId": int(m.get("marketId", m.get("clobPairId", 0)))}}}
            self.publish(V4_MARKETS, None, c)
            sent.append(c)
        fields = dict(trading)
        if next_funding_rate is not None:
            fields["nextFundingRate"] = fmt(next_funding_rate)
        if fields:
            fields = {k: (fmt(v) if isinstance(v, (Decimal, float)) else v)
                      for k, v in fields.items()}
            m.update(fields)
            c = {"trading": {ticker: {"id": str(m.get("clobPairId")), **fields}}}
            self.publish(V4_MARKETS, None, c)
            sent.append(c)
        for key in list(self.subaccounts):
            if ticker in self.positions.get(key, {}):
                self._recompute(key)
        return sent

    async def push_candle(self, ticker: str, resolution: str, candle: dict) -> dict:
        row = {"startedAt": iso_now(), "ticker": ticker, "resolution": resolution, **candle}
        rows = self.candles.setdefault(ticker, [])
        if rows and rows[0].get("startedAt") == row["startedAt"] \
                and rows[0].get("resolution") == resolution:
            rows[0] = row
        else:
            rows.insert(0, row)
        self.publish(V4_CANDLES, f"{ticker}/{resolution}", row)
        return row

    async def push_block_height(self, height: Optional[int] = None) -> dict:
        if height is not None:
            self._height = int(height)
        c = {"blockHeight": str(self.height), "time": iso_now()}
        self.publish(V4_BLOCK_HEIGHT, None, c)
        return c

    async def push_subaccount(self, address: str, subaccount_number: int = 0, *,
                              orders: Optional[list] = None, fills: Optional[list] = None,
                              perpetual_positions: Optional[list] = None,
                              asset_positions: Optional[list] = None,
                              transfers: Optional[Any] = None,
                              trading_reward: Optional[Any] = None,
                              block_height: Optional[int] = None) -> dict:
        """Stream a ``v4_subaccounts`` update (WS shapes, see
        nautilus_py/websocket/v4_accounts_*.json) and fold it into the REST state."""
        return self.apply_subaccount(address, subaccount_number, orders=orders, fills=fills,
                                     perpetual_positions=perpetual_positions,
                                     asset_positions=asset_positions, transfers=transfers,
                                     trading_reward=trading_reward, block_height=block_height)

    def apply_subaccount(self, address: str, subaccount_number: int = 0, *,
                         orders=None, fills=None, perpetual_positions=None,
                         asset_positions=None, transfers=None, trading_reward=None,
                         block_height=None) -> dict:
        num = int(subaccount_number)
        key = (address, num)
        sub = self.ensure_subaccount(address, num)
        contents: dict[str, Any] = {}
        if perpetual_positions:
            contents["perpetualPositions"] = perpetual_positions
            for p in perpetual_positions:
                rest = {k: v for k, v in p.items() if k not in ("address", "positionId")}
                rest["subaccountNumber"] = num
                prev = self.positions.setdefault(key, {}).get(p["market"], {})
                self.positions[key][p["market"]] = {**prev, **rest}
        if asset_positions:
            contents["assetPositions"] = asset_positions
            for a in asset_positions:
                sub["assetPositions"][a.get("symbol", "USDC")] = {
                    "size": a["size"], "symbol": a.get("symbol", "USDC"), "side": a["side"],
                    "assetId": a.get("assetId", "0"), "subaccountNumber": num}
        if orders:
            contents["orders"] = orders
            for o in orders:
                prev = self.orders.get(o["id"], {})
                self.orders[o["id"]] = {**prev, **o, "subaccountNumber": num}
        if fills:
            contents["fills"] = fills
            for f in reversed(fills):
                rest = {
                    "id": f["id"], "side": f["side"], "liquidity": f["liquidity"],
                    "type": f.get("type", "LIMIT"), "market": f.get("ticker") or f.get("market"),
                    "marketType": "PERPETUAL", "price": f["price"], "size": f["size"],
                    "fee": f.get("fee", "0"), "affiliateRevShare": f.get("affiliateRevShare", "0"),
                    "createdAt": f.get("createdAt"), "createdAtHeight": f.get("createdAtHeight"),
                    "orderId": f.get("orderId"), "clientMetadata": f.get("clientMetadata", "0"),
                    "subaccountNumber": num, "address": address,
                }
                self.fills.insert(0, rest)
        if transfers is not None:
            contents["transfers"] = transfers
            items = transfers if isinstance(transfers, list) else [transfers]
            for t in items:
                self.transfers.insert(0, {**t, "address": address, "subaccountNumber": num})
        if trading_reward is not None:
            contents["tradingReward"] = trading_reward
        contents["blockHeight"] = str(block_height if block_height is not None else self.height)
        self._recompute(key)
        self.publish(V4_SUBACCOUNTS, f"{address}/{num}", contents)
        self.publish(V4_PARENT_SUBACCOUNTS, f"{address}/{num % MAX_PARENT_SUBACCOUNTS}",
                     contents, extra={"subaccountNumber": num})
        return contents

    async def push_raw(self, channel: str, id_: Optional[str], contents: Any,
                       version: Optional[str] = None) -> int:
        """Publish arbitrary contents on a channel (no state change)."""
        return self.publish(channel, id_, contents, version=version)

    async def send_text(self, text: str, connection_id: Optional[str] = None) -> int:
        """Send a raw text frame (e.g. malformed JSON) to one or all connections."""
        n = 0
        for conn in list(self._conns.values()):
            if connection_id is None or conn.id == connection_id:
                self._enqueue(conn, text)
                n += 1
        await self.drain()
        return n

    async def send_malformed(self, connection_id: Optional[str] = None) -> int:
        return await self.send_text('{"type":"channel_data","connection_id":', connection_id)

    async def send_unknown_channel(self, connection_id: Optional[str] = None) -> int:
        n = 0
        for conn in list(self._conns.values()):
            if connection_id is None or conn.id == connection_id:
                self._enqueue(conn, {"type": "channel_data", "connection_id": conn.id,
                                     "message_id": conn.next_id(), "id": "X",
                                     "channel": "v4_unknown", "version": "9.9.9",
                                     "contents": {}})
                n += 1
        await self.drain()
        return n

    async def drop_all_connections(self) -> int:
        """Abort every TCP connection without a close frame (network drop)."""
        conns = list(self._conns.values())
        for c in conns:
            self._abort(c)
        return len(conns)

    async def close_all(self, code: int = 1012, reason: str = "") -> int:
        """Close every connection with ``code`` (1011 heartbeat, 1012 restart, 1008
        policy/rate limit).  Queued messages are flushed first."""
        if not reason and code == 1012:
            reason = _dumps({"message": "Service restarting"})
        conns = list(self._conns.values())
        await asyncio.gather(*(self._close_conn(c, code, reason) for c in conns),
                             return_exceptions=True)
        return len(conns)

    def set_rest_delay(self, seconds: float, path_prefix: Optional[str] = None,
                       count: Optional[int] = None) -> None:
        """Delay REST responses (optionally only paths starting with ``path_prefix``,
        optionally for the next ``count`` requests only)."""
        self._faults.append(_Fault(path_prefix, delay=float(seconds), remaining=count))

    def fail_rest(self, status: int = 429, count: Optional[int] = 1,
                  path_prefix: Optional[str] = None, body: Optional[dict] = None) -> None:
        """Answer the next ``count`` (None = all) REST requests with ``status``."""
        self._faults.append(_Fault(path_prefix, status=int(status), remaining=count, body=body))

    def fail_ws_connect(self, status: int = 503, count: Optional[int] = 1) -> None:
        """Reject the next ``count`` WebSocket handshakes with HTTP ``status``."""
        self._ws_connect_faults.append(_Fault(None, status=int(status), remaining=count))

    def clear_faults(self) -> None:
        self._faults.clear()
        self._ws_connect_faults.clear()

    def reset_counts(self) -> None:
        self.request_counts.clear()
        self.requests.clear()

    # async aliases so that every control is reachable through ``threadsafe``
    async def a_set_rest_delay(self, *a, **k) -> None:
        self.set_rest_delay(*a, **k)

    async def a_fail_rest(self, *a, **k) -> None:
        self.fail_rest(*a, **k)

    async def a_clear_faults(self) -> None:
        self.clear_faults()

    async def a_subscriptions(self) -> dict:
        return self.subscriptions()
