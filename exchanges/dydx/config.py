"""Settings of the dYdX v4 plugin: networks, endpoints, limits, order defaults.

One :class:`DydxSettings` is built from the ``[exchange.dydx]`` table (the exchange
client) or the ``[feed.dydx]`` table (the market-data feed); the CLI writes
``--network``, ``--indexer-rest``, ``--indexer-ws``, ``--node`` (and ``--live``) into
both. Every key, its unit and its default:

======================  ===========================================================
key                     meaning (default)
======================  ===========================================================
network                 ``mainnet``, ``testnet`` or ``custom`` (``mainnet``; market
                        data needs no keys, trading mainnet needs ``live``)
indexer_rest            indexer REST base URL, e.g. ``http://127.0.0.1:8080``
                        (network default; required for ``custom``)
indexer_ws              indexer WebSocket URL, e.g. ``ws://127.0.0.1:8080/v4/ws``
node                    node gRPC address ``host:port`` (required to trade on custom)
node_secure             TLS to the node (true for mainnet/testnet; for custom: false
                        on a loopback host, true otherwise)
chain_id                chain id used when signing (``dydx-mainnet-1`` /
                        ``dydx-testnet-4``; custom: ``dydx-testnet-4``)
subaccount              subaccount number (0)
address                 ``dydx1...`` address (derived from the mnemonic when absent)
mnemonic_env            environment variable holding the mnemonic (``DYDX_MNEMONIC``)
mnemonic_file           file holding the mnemonic, mode 600 (none)
trading_key_file        trading-key file (``runbot.py dydx add-trading-key``), mode
                        600: orders are signed with it, no mnemonic needed (none)
live                    explicit opt-in for mainnet trading (false; CLI ``--live``)
rest_timeout_s          REST timeout per request, seconds (10)
rest_retries            retries of a temporary REST failure (3)
rest_max_requests       client-side REST budget: requests ... (100)
rest_window_s           ... per this many seconds (10; indexer limit 100 / 10 s)
retry_base_s            first retry / reconnect delay, seconds (0.5)
retry_max_s             longest retry / reconnect delay, seconds (30)
ws_ping_interval_s      protocol ping interval, seconds (20)
ws_ping_timeout_s       close when no pong within, seconds (10)
ws_open_timeout_s       handshake timeout, seconds (10)
ws_stable_after_s       a connection up this long resets the backoff, seconds (30)
subscribe_per_s         subscribe attempts per second per channel+id (2, socks limit)
batched                 ask for ``channel_batch_data`` (true)
candles                 candle resolutions to stream, e.g. ``["1MIN"]`` (none)
resync_interval_s       periodic REST order-book resync, seconds (60)
snapshot_timeout_s      resubscribe a book whose snapshot has not come after, seconds (15)
reconcile_interval_s    periodic REST account reconciliation, seconds (30)
max_queue               event batches buffered before a full resync (100000)
grpc_rate_per_s         node call budget per second (4)
grpc_max_wait_s         longest wait for the budget before rejecting, seconds (5)
grpc_timeout_s          deadline of one gRPC call, seconds (10)
breaker_failures        consecutive node failures that open the breaker (5)
breaker_cooldown_s      open -> half-open after, seconds (30)
short_term_blocks       good-til-block = height + this, 1..20 (20)
short_term_max_s        resting orders with ``good_til_s`` <= this are short-term (15)
default_good_til_s      lifetime of long-term/conditional orders, seconds (7 days)
market_slippage         market-order bound: worst price = best * (1 +/- this) (0.01)
height_max_age_s        refresh the block height from the node when older (5)
record                  path of a recording to write while the feed runs (none)
record_max_bytes        rotate the recording after this many compressed bytes (none)
stream                  full-node gRPC address ``host:port`` streaming the order book
                        (``StreamOrderbookUpdates``; CLI ``--dydx-stream``): books and
                        trades from the node, the indexer as fallback and cross-check
                        (none: books from the indexer only)
stream_secure           TLS to the stream (default: off on a loopback host, on otherwise)
stream_timeout_s        the stream's first message must come within, seconds (15)
stream_idle_s           reconnect the stream after this long without a message, seconds (30)
======================  ===========================================================
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import attrs

from perpbot.core.errors import ConfigError

MAINNET_CHAIN_ID = "dydx-mainnet-1"
TESTNET_CHAIN_ID = "dydx-testnet-4"
#: USDC denomination (IBC) on mainnet and testnet (dydx_v4_client.network)
USDC_DENOM = "ibc/8E27BA2D5493AF5636760E354E46004562C46AB7EC0CC4C1CA14E9E20E2545B5"


@attrs.frozen
class Endpoints:
    """Where a network lives: indexer REST and WebSocket URLs, node gRPC address."""

    rest: str
    ws: str
    node: str | None
    node_secure: bool
    chain_id: str
    chaintoken_denom: str = "adv4tnt"


#: Public endpoints (docs ``interaction/endpoints.mdx``; dydx_v4_client.network).
NETWORKS: dict[str, Endpoints] = {
    "mainnet": Endpoints(
        rest="https://indexer.dydx.trade",
        ws="wss://indexer.dydx.trade/v4/ws",
        node="oegs.dydx.trade:443",
        node_secure=True,
        chain_id=MAINNET_CHAIN_ID,
        chaintoken_denom="adydx",
    ),
    "testnet": Endpoints(
        rest="https://indexer.v4testnet.dydx.exchange",
        ws="wss://indexer.v4testnet.dydx.exchange/v4/ws",
        node="test-dydx-grpc.kingnodes.com:443",
        node_secure=True,
        chain_id=TESTNET_CHAIN_ID,
    ),
}

CANDLE_RESOLUTIONS = {
    "1MIN": 60,
    "5MINS": 300,
    "15MINS": 900,
    "30MINS": 1800,
    "1HOUR": 3600,
    "4HOURS": 14400,
    "1DAY": 86400,
}

_KNOWN = {
    "network", "indexer_rest", "indexer_ws", "node", "node_secure", "chain_id", "subaccount",
    "address", "mnemonic_env", "mnemonic_file", "trading_key_file", "live", "rest_timeout_s", "rest_retries",
    "rest_max_requests", "rest_window_s", "retry_base_s", "retry_max_s", "ws_ping_interval_s",
    "ws_ping_timeout_s", "ws_open_timeout_s", "ws_stable_after_s", "subscribe_per_s", "batched",
    "candles", "resync_interval_s", "snapshot_timeout_s", "reconcile_interval_s", "max_queue", "grpc_rate_per_s",
    "grpc_max_wait_s", "grpc_timeout_s", "breaker_failures", "breaker_cooldown_s",
    "short_term_blocks", "short_term_max_s", "default_good_til_s", "market_slippage",
    "height_max_age_s", "record", "record_max_bytes",
    "stream", "stream_secure", "stream_timeout_s", "stream_idle_s",
}
#: keys other plugins' CLI wiring may put in the table that this plugin ignores
_IGNORED = {"collateral", "fees", "files", "speed", "funding_files"}


def _bool(v: Any, key: str) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"dydx.{key}: expected true or false, got {v!r}")


def _num(v: Any, key: str, minimum: float | None = None, integer: bool = False) -> Any:
    if isinstance(v, bool):
        raise ConfigError(f"dydx.{key}: expected a number, got {v!r}")
    try:
        d = Decimal(str(v).strip())
    except Exception:
        raise ConfigError(f"dydx.{key}: expected a number, got {v!r}") from None
    if not d.is_finite():
        raise ConfigError(f"dydx.{key}: must be finite, got {v!r}")
    if minimum is not None and d < Decimal(str(minimum)):
        raise ConfigError(f"dydx.{key}: must be >= {minimum}, got {v!r}")
    if integer:
        if d != d.to_integral_value():
            raise ConfigError(f"dydx.{key}: expected an integer, got {v!r}")
        return int(d)
    return float(d)  # durations and rates only; money never passes here


def _is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


def _check_url(url: str, key: str, schemes: tuple) -> str:
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.netloc:
        raise ConfigError(f"dydx.{key}: expected a {'/'.join(schemes)} URL, got {url!r}")
    return url.rstrip("/") if key == "indexer_rest" else url


def _stream_settings(cfg: Mapping[str, Any], kw: dict) -> None:
    """Validate the ``stream*`` keys into ``kw`` (see the module docstring).

    :raises ConfigError: ``stream`` not ``host:port`` (a port 1..65535), or a bad number.
    """
    for key in ("stream_timeout_s", "stream_idle_s"):
        if key in cfg:
            kw[key] = _num(cfg[key], key, 0.01)
    raw = cfg.get("stream")
    if raw is None or str(raw).strip() == "":
        return
    target = str(raw).strip()
    for prefix in ("http://", "https://", "grpc://", "grpcs://"):
        if target.startswith(prefix):
            target = target[len(prefix):]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"dydx.stream: expected host:port of a full node's gRPC port, got {raw!r}")
    kw["stream"] = target
    if "stream_secure" in cfg:
        kw["stream_secure"] = _bool(cfg["stream_secure"], "stream_secure")
    else:
        kw["stream_secure"] = not _is_loopback(host.strip("[]"))


@attrs.frozen
class DydxSettings:
    """Validated plugin settings (see the module docstring for every key).

    Durations are seconds (float: timers only, never money); ``market_slippage`` is a
    Decimal fraction.
    """

    network: str = "mainnet"
    endpoints: Endpoints = NETWORKS["mainnet"]
    subaccount: int = 0
    address: str | None = None
    mnemonic_env: str = "DYDX_MNEMONIC"
    mnemonic_file: Path | None = None
    trading_key_file: Path | None = None
    live: bool = False
    rest_timeout_s: float = 10.0
    rest_retries: int = 3
    rest_max_requests: int = 100
    rest_window_s: float = 10.0
    retry_base_s: float = 0.5
    retry_max_s: float = 30.0
    ws_ping_interval_s: float = 20.0
    ws_ping_timeout_s: float = 10.0
    ws_open_timeout_s: float = 10.0
    ws_stable_after_s: float = 30.0
    subscribe_per_s: int = 2
    batched: bool = True
    candles: tuple = ()
    resync_interval_s: float = 60.0
    snapshot_timeout_s: float = 15.0
    reconcile_interval_s: float = 30.0
    max_queue: int = 100_000
    grpc_rate_per_s: float = 4.0
    grpc_max_wait_s: float = 5.0
    grpc_timeout_s: float = 10.0
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0
    short_term_blocks: int = 20
    short_term_max_s: float = 15.0
    default_good_til_s: int = 7 * 24 * 3600
    market_slippage: Decimal = Decimal("0.01")
    height_max_age_s: float = 5.0
    record: Path | None = None
    record_max_bytes: int | None = None
    stream: str | None = None
    stream_secure: bool = False
    stream_timeout_s: float = 15.0
    stream_idle_s: float = 30.0

    @property
    def is_mainnet(self) -> bool:
        """True when orders would be signed for dYdX mainnet (real money)."""
        return self.endpoints.chain_id == MAINNET_CHAIN_ID

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, *, live: bool | None = None) -> "DydxSettings":
        """Validate a ``[exchange.dydx]`` / ``[feed.dydx]`` table.

        :param live: the bot-level ``--live`` opt-in (ORed with the table's ``live``).
        :raises ConfigError: one line naming the key and the bad value.
        """
        cfg = {k: v for k, v in dict(config or {}).items() if v is not None}
        unknown = sorted(set(cfg) - _KNOWN - _IGNORED)
        if unknown:
            raise ConfigError(
                f"dydx.{unknown[0]}: unknown setting (known: {', '.join(sorted(_KNOWN))})"
            )
        network = str(cfg.get("network", "mainnet")).strip().lower()
        if network not in ("mainnet", "testnet", "custom"):
            raise ConfigError(f"dydx.network: expected mainnet, testnet or custom, got {cfg['network']!r}")
        if network == "custom":
            for key in ("indexer_rest", "indexer_ws"):
                if not cfg.get(key):
                    raise ConfigError(f"dydx.{key}: required for network custom (e.g. --{key.replace('_', '-')})")
            base = Endpoints(rest="", ws="", node=None, node_secure=False, chain_id=TESTNET_CHAIN_ID)
        else:
            base = NETWORKS[network]
        rest = _check_url(str(cfg.get("indexer_rest") or base.rest), "indexer_rest", ("http", "https"))
        ws = _check_url(str(cfg.get("indexer_ws") or base.ws), "indexer_ws", ("ws", "wss"))
        node = cfg.get("node") or base.node
        if node is not None:
            node = str(node).strip()
            for prefix in ("http://", "https://", "grpc://", "grpcs://"):
                if node.startswith(prefix):
                    node = node[len(prefix):]
            if not node or ":" not in node:
                raise ConfigError(f"dydx.node: expected host:port, got {cfg.get('node')!r}")
        if "node_secure" in cfg:
            secure = _bool(cfg["node_secure"], "node_secure")
        elif network == "custom":
            secure = not (node and _is_loopback(node.rsplit(":", 1)[0].strip("[]")))
        else:
            secure = base.node_secure
        chain_id = str(cfg.get("chain_id") or base.chain_id).strip()
        denom = "adydx" if chain_id == MAINNET_CHAIN_ID else base.chaintoken_denom
        endpoints = Endpoints(rest=rest, ws=ws, node=node, node_secure=secure, chain_id=chain_id,
                              chaintoken_denom=denom)
        kw: dict[str, Any] = {"network": network, "endpoints": endpoints}
        if "subaccount" in cfg:
            kw["subaccount"] = _num(cfg["subaccount"], "subaccount", 0, integer=True)
            if kw["subaccount"] > 128_000:
                raise ConfigError(f"dydx.subaccount: must be <= 128000, got {cfg['subaccount']!r}")
        if cfg.get("address"):
            addr = str(cfg["address"]).strip()
            if not addr.startswith("dydx1") or len(addr) < 20:
                raise ConfigError(f"dydx.address: expected a dydx1... address, got {addr!r}")
            kw["address"] = addr
        if "mnemonic_env" in cfg:
            kw["mnemonic_env"] = str(cfg["mnemonic_env"]).strip()
        if cfg.get("mnemonic_file"):
            kw["mnemonic_file"] = Path(str(cfg["mnemonic_file"])).expanduser()
        if cfg.get("trading_key_file"):
            kw["trading_key_file"] = Path(str(cfg["trading_key_file"])).expanduser()
        kw["live"] = bool(live) or _bool(cfg.get("live", False), "live")
        floats = {
            "rest_timeout_s": 0.01, "rest_window_s": 0.01, "retry_base_s": 0.0, "retry_max_s": 0.0,
            "ws_ping_interval_s": 0.01, "ws_ping_timeout_s": 0.01, "ws_open_timeout_s": 0.01,
            "ws_stable_after_s": 0.0, "resync_interval_s": 0.01, "snapshot_timeout_s": 0.01, "reconcile_interval_s": 0.01,
            "grpc_rate_per_s": 0.01, "grpc_max_wait_s": 0.0, "grpc_timeout_s": 0.01,
            "breaker_cooldown_s": 0.0, "short_term_max_s": 0.0, "height_max_age_s": 0.0,
        }
        for key, lo in floats.items():
            if key in cfg:
                kw[key] = _num(cfg[key], key, lo)
        ints = {"rest_retries": 0, "rest_max_requests": 1, "subscribe_per_s": 1, "max_queue": 10,
                "breaker_failures": 1, "short_term_blocks": 1, "default_good_til_s": 1}
        for key, lo in ints.items():
            if key in cfg:
                kw[key] = _num(cfg[key], key, lo, integer=True)
        if kw.get("short_term_blocks", 20) > 20:
            raise ConfigError(
                f"dydx.short_term_blocks: must be <= 20 (dydx-v4-client 1.1.5 SHORT_BLOCK_WINDOW), "
                f"got {cfg['short_term_blocks']!r}"
            )
        if kw.get("default_good_til_s", 0) > 95 * 86400:
            raise ConfigError(f"dydx.default_good_til_s: must be <= 95 days, got {cfg['default_good_til_s']!r}")
        if "batched" in cfg:
            kw["batched"] = _bool(cfg["batched"], "batched")
        if "candles" in cfg:
            raw = cfg["candles"]
            items = [s.strip() for s in raw.split(",")] if isinstance(raw, str) else list(raw)
            res = []
            for r in items:
                r = str(r).strip().upper()
                if not r:
                    continue
                if r not in CANDLE_RESOLUTIONS:
                    raise ConfigError(
                        f"dydx.candles: unknown resolution {r!r} (known: {', '.join(CANDLE_RESOLUTIONS)})"
                    )
                res.append(r)
            kw["candles"] = tuple(res)
        if "market_slippage" in cfg:
            v = cfg["market_slippage"]
            if isinstance(v, float):
                v = str(v)
            try:
                d = Decimal(str(v))
            except Exception:
                raise ConfigError(f"dydx.market_slippage: expected a fraction, got {v!r}") from None
            if not d.is_finite() or d <= 0 or d >= 1:
                raise ConfigError(f"dydx.market_slippage: must be in (0, 1), got {v!r}")
            kw["market_slippage"] = d
        if cfg.get("record"):
            kw["record"] = Path(str(cfg["record"])).expanduser()
        if cfg.get("record_max_bytes"):
            kw["record_max_bytes"] = _num(cfg["record_max_bytes"], "record_max_bytes", 1024, integer=True)
        _stream_settings(cfg, kw)
        return cls(**kw)

    def describe(self) -> str:
        """One line for logs: network and endpoints (no secrets)."""
        e = self.endpoints
        return (
            f"dYdX {self.network} (chain {e.chain_id}): indexer {e.rest}, ws {e.ws}, "
            + (f"node {e.node}{' (TLS)' if e.node_secure else ' (plaintext)'}" if e.node else "no node")
        )
