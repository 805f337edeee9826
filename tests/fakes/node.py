"""Loopback fake of a dYdX v4 full node's gRPC API (insecure, 127.0.0.1, ephemeral port),
built from v4-proto's servicer base classes.

What ``dydx_v4_client`` 1.1.5 calls on the order path, and what is served here:

* ``cosmos.auth.v1beta1.Query/Account``: ``BaseAccount`` packed in ``Any`` with
  ``type_url_prefix="/"`` (the client ``Unpack``s it; the sequence manager calls it before
  EVERY broadcast, ``Wallet.from_mnemonic`` once).
* ``cosmos.base.tendermint.v1beta1.Service/GetLatestBlock`` (``block.header.height`` and
  ``sdk_block``), ``GetNodeInfo``, ``GetSyncing``.
* ``cosmos.tx.v1beta1.Service/BroadcastTx``: the client serialises a ``Tx``, which is
  wire-compatible with ``TxRaw``; decoded as TxRaw -> TxBody/AuthInfo -> ``Any`` messages
  (``/dydxprotocol.clob.MsgPlaceOrder`` | ``MsgCancelOrder`` | ``MsgBatchCancel`` ...),
  recorded, and answered with ``TxResponse{code, codespace, txhash, raw_log}`` (CheckTx
  semantics: a nonzero code is a rejection, not a gRPC error).
  ``Simulate`` (``gas_info.gas_used``), ``GetTx``.
* ``dydxprotocol.feetiers.Query/PerpetualFeeParams`` and ``UserFeeTier``;
  ``cosmos.bank.v1beta1.Query/AllBalances`` and ``Balance``.

Ante-handler semantics mirrored (chain ``protocol/app/ante/sigverify.go``, ``util.go``):
a tx made ONLY of short-term clob messages (short-term place/cancel, batch cancel) skips
the sequence check and does not increment the sequence (replay protection is the
GoodTilBlock); any other tx must carry the account's current sequence (else code 32
``account sequence mismatch, expected X, got Y: incorrect account sequence``) and
increments it.  Signatures (SIGN_MODE_DIRECT, secp256k1) are verified against the
configured chain id and account number (code 4 on failure).  Short-term GoodTilBlock
must satisfy ``height <= GTB <= height + short_block_window`` (clob codes 10 / 11).

Usage::

    node = FakeNode(height=1000).start()
    network = make_insecure(testnet_node, rest_indexer=..., websocket_indexer=...,
                            node_url=node.url)
    client = await NodeClient.connect(network.node)
    ...
    node.fail_next_broadcasts(1, code=32, raw_log="account sequence mismatch, ...")
    node.drop_after_accept(1)      # accepted, then the connection drops before the reply
    node.refuse_connections()      # down: nothing reaches it (accept_connections() undoes)
    node.stop()
"""

from __future__ import annotations

import collections
import hashlib
import logging
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

import bech32
import grpc
from Crypto.Hash import RIPEMD160
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from v4_proto.cosmos.auth.v1beta1 import auth_pb2
from v4_proto.cosmos.auth.v1beta1 import query_pb2 as auth_query
from v4_proto.cosmos.auth.v1beta1 import query_pb2_grpc as auth_grpc
from v4_proto.cosmos.bank.v1beta1 import query_pb2 as bank_query
from v4_proto.cosmos.bank.v1beta1 import query_pb2_grpc as bank_grpc
from v4_proto.cosmos.base.abci.v1beta1 import abci_pb2
from v4_proto.cosmos.base.tendermint.v1beta1 import query_pb2 as tm_query
from v4_proto.cosmos.base.tendermint.v1beta1 import query_pb2_grpc as tm_grpc
from v4_proto.cosmos.base.v1beta1 import coin_pb2
from v4_proto.cosmos.crypto.secp256k1 import keys_pb2 as secp_keys
from v4_proto.cosmos.tx.v1beta1 import service_pb2 as tx_service
from v4_proto.cosmos.tx.v1beta1 import service_pb2_grpc as tx_grpc
from v4_proto.cosmos.tx.v1beta1 import tx_pb2
from v4_proto.dydxprotocol.clob import order_pb2
from v4_proto.dydxprotocol.clob import tx_pb2 as clob_tx
from v4_proto.dydxprotocol.feetiers import params_pb2 as fee_params
from v4_proto.dydxprotocol.feetiers import query_pb2 as fee_query
from v4_proto.dydxprotocol.feetiers import query_pb2_grpc as fee_grpc
from v4_proto.tendermint.p2p import types_pb2 as p2p_types

from . import node_auth

log = logging.getLogger("tests.fakes.node")

LOOPBACK = "127.0.0.1"
ORDER_FLAG_SHORT_TERM = 0
ORDER_FLAG_CONDITIONAL = 32
ORDER_FLAG_LONG_TERM = 64
ORDER_FLAG_TWAP = 128
SHORT_BLOCK_WINDOW = 20          # what dydx-v4-client 1.1.5 assumes (chain main: 40)

# type url -> message class for everything we decode
MESSAGE_TYPES: dict[str, Any] = {
    "/dydxprotocol.clob.MsgPlaceOrder": clob_tx.MsgPlaceOrder,
    "/dydxprotocol.clob.MsgCancelOrder": clob_tx.MsgCancelOrder,
    "/dydxprotocol.clob.MsgBatchCancel": clob_tx.MsgBatchCancel,
}


def _register_optional() -> None:
    optional = [
        ("/dydxprotocol.sending.MsgCreateTransfer", "v4_proto.dydxprotocol.sending.tx_pb2",
         "MsgCreateTransfer"),
        ("/dydxprotocol.sending.MsgDepositToSubaccount",
         "v4_proto.dydxprotocol.sending.transfer_pb2", "MsgDepositToSubaccount"),
        ("/dydxprotocol.sending.MsgWithdrawFromSubaccount",
         "v4_proto.dydxprotocol.sending.transfer_pb2", "MsgWithdrawFromSubaccount"),
        ("/cosmos.bank.v1beta1.MsgSend", "v4_proto.cosmos.bank.v1beta1.tx_pb2", "MsgSend"),
        ("/dydxprotocol.accountplus.MsgAddAuthenticator", "v4_proto.dydxprotocol.accountplus.tx_pb2",
         "MsgAddAuthenticator"),
        ("/dydxprotocol.accountplus.MsgRemoveAuthenticator", "v4_proto.dydxprotocol.accountplus.tx_pb2",
         "MsgRemoveAuthenticator"),
    ]
    import importlib
    for url, mod, name in optional:
        try:
            MESSAGE_TYPES[url] = getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):  # pragma: no cover
            pass


_register_optional()


def address_from_pubkey(pubkey: bytes, prefix: str = "dydx") -> str:
    """bech32(ripemd160(sha256(compressed secp256k1 pubkey)))."""
    h = RIPEMD160.new(hashlib.sha256(pubkey).digest()).digest()
    return bech32.bech32_encode(prefix, bech32.convertbits(h, 8, 5))


def is_short_term_only(messages: Iterable[Any]) -> bool:
    """chain ``ShouldSkipSequenceValidation``: every message uses GoodTilBlock."""
    msgs = list(messages)
    if not msgs:
        return False
    for m in msgs:
        if isinstance(m, clob_tx.MsgPlaceOrder):
            if m.order.order_id.order_flags != ORDER_FLAG_SHORT_TERM:
                return False
        elif isinstance(m, clob_tx.MsgCancelOrder):
            if m.order_id.order_flags != ORDER_FLAG_SHORT_TERM:
                return False
        elif isinstance(m, clob_tx.MsgBatchCancel):
            continue
        else:
            return False
    return True


class TxRejected(Exception):
    def __init__(self, code: int, raw_log: str, codespace: str = "sdk"):
        super().__init__(raw_log)
        self.code, self.raw_log, self.codespace = code, raw_log, codespace


@dataclass
class BroadcastRecord:
    """One BroadcastTx as the fake saw it."""

    txhash: str
    tx_bytes: bytes
    type_urls: list[str]
    messages: list[Any]                 # decoded protos (None for unknown type urls)
    signer: Optional[str]
    sequence: Optional[int]
    account_number: Optional[int]
    memo: str
    code: int
    codespace: str
    raw_log: str
    height: int
    mode: int
    short_term_only: bool
    time: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.code == 0

    def of_type(self, cls: Any) -> list[Any]:
        return [m for m in self.messages if isinstance(m, cls)]


@dataclass
class Account:
    address: str
    account_number: int
    sequence: int = 0
    pub_key: Optional[bytes] = None


def default_fee_tiers() -> fee_params.PerpetualFeeParams:
    """Standard params (chain ``x/feetiers/types/genesis.go``): tier 1 maker 1.0 bp,
    taker 5.0 bp; higher tiers by 30-day volume."""
    rows = [
        ("1", 0, 0, 0, 100, 500),
        ("2", 1_000_000_000_000, 0, 0, 100, 450),
        ("3", 5_000_000_000_000, 0, 0, 50, 400),
        ("4", 25_000_000_000_000, 0, 0, 0, 350),
        ("5", 125_000_000_000_000, 0, 0, 0, 300),
        ("6", 125_000_000_000_000, 5_000, 0, -50, 250),
        ("7", 125_000_000_000_000, 5_000, 10_000, -90, 250),
        ("8", 125_000_000_000_000, 5_000, 20_000, -110, 250),
        ("9", 125_000_000_000_000, 5_000, 40_000, -110, 250),  # StandardParams, main @ 84d4664
    ]
    return fee_params.PerpetualFeeParams(tiers=[
        fee_params.PerpetualFeeTier(
            name=n, absolute_volume_requirement=v, total_volume_share_requirement_ppm=tv,
            maker_volume_share_requirement_ppm=mv, maker_fee_ppm=mk, taker_fee_ppm=tk)
        for n, v, tv, mv, mk, tk in rows])


class FakeNode:
    """In-process gRPC fake of a dYdX v4 node.

    Args:
        chain_id: must match the client's ``NodeConfig.chain_id`` for signatures to verify
            (``make_insecure(testnet_node, ...)`` -> ``dydx-testnet-4``).
        height: initial block height.
        block_time: if set, height advances by one every ``block_time`` seconds.
        auto_increment_height: if True, every GetLatestBlock returns the next height.
        verify_signatures: check SIGN_MODE_DIRECT signatures (default True).
        auto_create_accounts: unknown addresses get an account (number from
            ``first_account_number`` upward, sequence 0); else Account -> NOT_FOUND.
        short_block_window: GTB window for short-term orders (client 1.1.5: 20).
        gas_used: value returned by Simulate.
    """

    def __init__(self, *, chain_id: str = "dydx-testnet-4", height: int = 1_000_000,
                 block_time: Optional[float] = None, auto_increment_height: bool = False,
                 verify_signatures: bool = True, auto_create_accounts: bool = True,
                 first_account_number: int = 7, short_block_window: int = SHORT_BLOCK_WINDOW,
                 check_good_til_block: bool = True, gas_used: int = 100_000,
                 host: str = LOOPBACK, port: int = 0, max_workers: int = 16,
                 fee_tiers: Optional[fee_params.PerpetualFeeParams] = None,
                 balances: Optional[dict[str, dict[str, int]]] = None):
        if host != LOOPBACK:
            raise ValueError("FakeNode binds 127.0.0.1 only")
        self.chain_id = chain_id
        self.host = host
        self._want_port = int(port)
        self.port: Optional[int] = None
        self._lock = threading.RLock()
        self._height = int(height)
        self._height_t0 = time.monotonic()
        self.block_time = block_time
        self.auto_increment_height = auto_increment_height
        self.verify_signatures = verify_signatures
        self.auto_create_accounts = auto_create_accounts
        self._next_account_number = int(first_account_number)
        self.short_block_window = short_block_window
        self.check_good_til_block = check_good_til_block
        self.gas_used = int(gas_used)
        self.max_workers = max_workers
        self.fee_tiers = fee_tiers or default_fee_tiers()
        self.user_fee_tier_index: Optional[int] = None  # None: from user_stats (set: an override)
        self.balances: dict[str, dict[str, int]] = dict(balances or {})
        # permissioned keys, block rate limits, x/stats (tests/fakes/node_auth.py)
        self.accountplus = node_auth.AccountPlus()
        self.rate_limits = node_auth.RateLimits()
        self.user_stats: dict[str, tuple[int, int]] = {}  # address -> (taker, maker) notional, quote quantums
        self.global_notional = 0
        self.accounts: dict[str, Account] = {}
        self.broadcasts: list[BroadcastRecord] = []
        self.txs: dict[str, tuple[tx_pb2.Tx, abci_pb2.TxResponse]] = {}
        self.call_counts: collections.Counter[str] = collections.Counter()
        self._fail_queue: collections.deque[tuple[int, str, str]] = collections.deque()
        self._drop_after_accept = 0
        self.drops = 0  # connections dropped by drop_after_accept / drop_connections
        self._delays: dict[Optional[str], float] = {}
        self._listeners: list[Callable[[BroadcastRecord], None]] = []
        self._height_listeners: list[Callable[[int], None]] = []
        self._stop_event = threading.Event()
        self._server: Optional[grpc.Server] = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """``host:port`` as ``make_insecure(..., node_url=...)`` wants it."""
        return f"{self.host}:{self.port}"

    def start(self) -> "FakeNode":
        if self._server is not None:
            return self
        self._stop_event.clear()
        self._server = self._serve(self._want_port)
        log.info("FakeNode on %s", self.url)
        return self

    def _serve(self, port: int) -> grpc.Server:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.max_workers,
                                                        thread_name_prefix="FakeNode"))
        auth_grpc.add_QueryServicer_to_server(_Auth(self), server)
        tm_grpc.add_ServiceServicer_to_server(_Tendermint(self), server)
        tx_grpc.add_ServiceServicer_to_server(_Tx(self), server)
        fee_grpc.add_QueryServicer_to_server(_FeeTiers(self), server)
        bank_grpc.add_QueryServicer_to_server(_Bank(self), server)
        node_auth.ap_grpc.add_QueryServicer_to_server(node_auth.AccountPlusServicer(self), server)
        node_auth.clob_grpc.add_QueryServicer_to_server(node_auth.ClobQueryServicer(self), server)
        node_auth.stats_grpc.add_QueryServicer_to_server(node_auth.StatsServicer(self), server)
        bound = server.add_insecure_port(f"{self.host}:{port}")
        if not bound:
            raise RuntimeError("FakeNode could not bind")
        self.port = bound
        server.start()
        return server

    def drop_connections(self) -> None:
        """Cut every connection at once (in-flight calls get no reply: the client sees
        ``UNAVAILABLE``) and listen again on the same port, like a node whose gRPC server
        restarted. Callable from a servicer thread."""
        with self._lock:
            old, port = self._server, self.port
            if old is None:
                return
            self.drops += 1
            old.stop(0)  # cancels in-flight RPCs ("Cancelling all calls"), closes their connections
            self._server = self._serve(port)

    def stop(self, grace: float = 0.5) -> None:
        self._stop_event.set()
        if self._server is not None:
            self._server.stop(grace).wait(5)
            self._server = None

    def __enter__(self) -> "FakeNode":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def __aenter__(self) -> "FakeNode":
        return self.start()

    async def __aexit__(self, *exc) -> None:
        self.stop()

    def network(self, rest_indexer: str = "http://127.0.0.1:1",
                websocket_indexer: str = "ws://127.0.0.1:1/v4/ws"):
        """A ``dydx_v4_client.network.Network`` pointing at this node (insecure channel),
        with ``chain_id`` = this node's chain id and the testnet denominations."""
        from functools import partial

        from dydx_v4_client.network import NodeConfig, make_insecure
        node_cfg = partial(NodeConfig, self.chain_id, chaintoken_denom="adv4tnt",
                           usdc_denom="ibc/8E27BA2D5493AF5636760E354E46004562C46AB7EC0CC4C1CA14E9E20E2545B5")
        return make_insecure(node_cfg, rest_indexer=rest_indexer,
                             websocket_indexer=websocket_indexer, node_url=self.url)

    # ------------------------------------------------------------------ controls
    @property
    def height(self) -> int:
        with self._lock:
            if self.block_time:
                return self._height + int((time.monotonic() - self._height_t0) / self.block_time)
            return self._height

    def set_height(self, height: int) -> None:
        with self._lock:
            self._height = int(height)
            self._height_t0 = time.monotonic()
        self._fire_height(int(height))

    def advance(self, blocks: int = 1) -> int:
        with self._lock:
            self._height = self.height + int(blocks)
            self._height_t0 = time.monotonic()
            h = self._height
        self._fire_height(h)
        return h

    def _fire_height(self, h: int) -> None:
        for fn in list(self._height_listeners):
            try:
                fn(h)
            except Exception:  # pragma: no cover
                log.exception("height listener failed")

    def set_account(self, address: str, *, account_number: Optional[int] = None,
                    sequence: Optional[int] = None) -> Account:
        with self._lock:
            acc = self._account(address, create=True)
            if account_number is not None:
                acc.account_number = int(account_number)
            if sequence is not None:
                acc.sequence = int(sequence)
            return acc

    def account(self, address: str) -> Optional[Account]:
        with self._lock:
            return self.accounts.get(address)

    def sequence(self, address: str) -> int:
        acc = self.account(address)
        return acc.sequence if acc else 0

    def fail_next_broadcasts(self, n: int = 1, *, code: int = 32, raw_log: Optional[str] = None,
                             codespace: str = "sdk") -> None:
        """The next ``n`` BroadcastTx calls return a CheckTx failure ``code``/``raw_log``
        (default: the chain's sequence-mismatch error)."""
        with self._lock:
            for _ in range(int(n)):
                self._fail_queue.append((int(code), raw_log or "", codespace))

    def drop_after_accept(self, n: int = 1) -> None:
        """The next ``n`` BroadcastTx calls are processed normally (checked, recorded, matched
        when accepted) and then the connection drops BEFORE the reply is sent: the client
        cannot know that the node accepted the tx (a lost reply, not a rejection)."""
        with self._lock:
            self._drop_after_accept += int(n)

    def refuse_connections(self) -> None:
        """Stop listening (like a node that is down): new calls fail to connect, so a request
        never leaves the client. :meth:`accept_connections` listens again on the same port."""
        with self._lock:
            if self._server is not None:
                self._server.stop(0).wait(5)
                self._server = None

    def accept_connections(self) -> None:
        """Listen again on the same port after :meth:`refuse_connections`."""
        with self._lock:
            if self._server is None and self.port:
                self._server = self._serve(self.port)

    def set_delay(self, seconds: float, methods: Optional[Iterable[str]] = None) -> None:
        """Delay responses (slow node).  ``methods`` are gRPC method names such as
        ``"BroadcastTx"``, ``"Account"``, ``"GetLatestBlock"``; None = all."""
        with self._lock:
            if methods is None:
                self._delays[None] = float(seconds)
            else:
                for m in methods:
                    self._delays[m] = float(seconds)

    def clear_faults(self) -> None:
        with self._lock:
            self._fail_queue.clear()
            self._delays.clear()
            self._drop_after_accept = 0

    def add_listener(self, fn: Callable[[BroadcastRecord], None]) -> None:
        """``fn(record)`` is called (in a gRPC worker thread) after every broadcast."""
        self._listeners.append(fn)

    def add_height_listener(self, fn: Callable[[int], None]) -> None:
        self._height_listeners.append(fn)

    def placed_orders(self, accepted_only: bool = True) -> list[order_pb2.Order]:
        return [m.order for r in self.broadcasts if r.ok or not accepted_only
                for m in r.of_type(clob_tx.MsgPlaceOrder)]

    def cancels(self, accepted_only: bool = True) -> list[clob_tx.MsgCancelOrder]:
        return [m for r in self.broadcasts if r.ok or not accepted_only
                for m in r.of_type(clob_tx.MsgCancelOrder)]

    def wait_for_broadcasts(self, n: int, timeout: float = 5.0) -> list[BroadcastRecord]:
        deadline = time.monotonic() + timeout
        while len(self.broadcasts) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.broadcasts)} broadcasts < {n}")
            time.sleep(0.01)
        return list(self.broadcasts)

    # ------------------------------------------------------------------ internals
    def _account(self, address: str, create: bool) -> Optional[Account]:
        acc = self.accounts.get(address)
        if acc is None and create:
            acc = Account(address, self._next_account_number, 0)
            self._next_account_number += 1
            self.accounts[address] = acc
        return acc

    def _enter(self, method: str) -> None:
        self.call_counts[method] += 1
        with self._lock:
            delay = self._delays.get(method, self._delays.get(None, 0.0))
        if delay > 0:
            self._stop_event.wait(delay)

    def _block(self, height: int) -> tuple[Any, Any]:
        from v4_proto.tendermint.types import block_pb2, types_pb2
        ts = Timestamp()
        ts.GetCurrentTime()
        header = types_pb2.Header(chain_id=self.chain_id, height=height, time=ts)
        block = block_pb2.Block(header=header)
        try:
            from v4_proto.cosmos.base.tendermint.v1beta1 import types_pb2 as sdk_types
            sdk_block = sdk_types.Block(header=sdk_types.Header(chain_id=self.chain_id,
                                                                height=height, time=ts))
        except (ImportError, AttributeError, TypeError):  # pragma: no cover
            sdk_block = None
        return block, sdk_block

    def _latest_height(self) -> int:
        with self._lock:
            if self.auto_increment_height:
                self._height = self.height + 1
                self._height_t0 = time.monotonic()
            return self.height

    def _decode(self, tx_bytes: bytes):
        raw = tx_pb2.TxRaw()
        raw.ParseFromString(tx_bytes)
        body = tx_pb2.TxBody()
        body.ParseFromString(raw.body_bytes)
        auth = tx_pb2.AuthInfo()
        auth.ParseFromString(raw.auth_info_bytes)
        msgs, urls = [], []
        for any_msg in body.messages:
            urls.append(any_msg.type_url)
            cls = MESSAGE_TYPES.get(any_msg.type_url)
            if cls is None:
                msgs.append(None)
                continue
            m = cls()
            m.ParseFromString(any_msg.value)
            msgs.append(m)
        return raw, body, auth, urls, msgs

    def _check(self, raw, body, auth, msgs, height: int) -> tuple[Optional[str], Optional[int],
                                                                  Optional[int]]:
        """Ante-handler checks; raises TxRejected.  Returns (signer, sequence, acc num)."""
        if not msgs:
            raise TxRejected(2, "must contain at least one message: invalid request", "sdk")
        if len(auth.signer_infos) != 1 or len(raw.signatures) != 1:
            raise TxRejected(4, f"invalid number of signer;  expected: 1, got "
                                f"{len(raw.signatures)}: unauthorized", "sdk")
        si = auth.signer_infos[0]
        pk = secp_keys.PubKey()
        if not si.public_key.Unpack(pk):
            raise TxRejected(8, "unsupported public key type: invalid pubkey", "sdk")
        selected = node_auth.selected_authenticators(body)
        if selected is not None:
            # authenticator flow: the signer is the messages' owner, the key is the authenticator's
            return self._check_authenticated(raw, body, auth, msgs, height, si, pk, selected)
        signer = address_from_pubkey(pk.key)
        for m in msgs:
            owner = _msg_owner(m)
            if owner is not None and owner != signer:
                raise TxRejected(8, f"pubKey does not match signer address {owner} with "
                                    f"signer index: 0: invalid pubkey", "sdk")
        short_only = is_short_term_only(msgs)
        with self._lock:
            acc = self._account(signer, create=self.auto_create_accounts)
            if acc is None:
                raise TxRejected(9, f"account {signer} not found: unknown address", "sdk")
            if not short_only and si.sequence != acc.sequence:
                raise TxRejected(32, f"account sequence mismatch, expected {acc.sequence}, "
                                     f"got {si.sequence}: incorrect account sequence", "sdk")
            acc.pub_key = pk.key
            acc_number = acc.account_number
        if self.verify_signatures:
            doc = tx_pb2.SignDoc(body_bytes=raw.body_bytes, auth_info_bytes=raw.auth_info_bytes,
                                 chain_id=self.chain_id, account_number=acc_number)
            if not _verify(pk.key, raw.signatures[0], doc.SerializeToString()):
                raise TxRejected(4, f"signature verification failed; please verify account "
                                    f"number ({acc_number}) and chain-id ({self.chain_id}): "
                                    f"(unable to verify single signer signature): unauthorized",
                                 "sdk")
        for m in msgs:
            self._validate_msg(m, height)
        return signer, si.sequence, acc_number

    def _check_authenticated(self, raw, body, auth, msgs, height: int, si, pk, selected):
        """The chain's authenticator ante flow (tests/fakes/node_auth.py): replay protection
        on the owner's account, then each message's selected authenticator."""
        signers = [_msg_owner(m) for m in msgs]
        if any(s is None for s in signers):
            raise TxRejected(4, "failed to get signers: unauthorized", "sdk")
        signer = signers[0]
        short_only = is_short_term_only(msgs)
        urls = [a.type_url for a in body.messages]
        with self._lock:
            acc = self._account(signer, create=self.auto_create_accounts)
            if acc is None:
                raise TxRejected(9, f"account {signer} not found: unknown address", "sdk")
            if not short_only and si.sequence != acc.sequence:
                raise TxRejected(32, f"account sequence mismatch, expected {acc.sequence}, "
                                     f"got {si.sequence}: incorrect account sequence", "sdk")
            acc_number = acc.account_number
        doc = tx_pb2.SignDoc(body_bytes=raw.body_bytes, auth_info_bytes=raw.auth_info_bytes,
                             chain_id=self.chain_id, account_number=acc_number).SerializeToString()

        def verify(pubkey: bytes) -> bool:
            return not self.verify_signatures or _verify(pubkey, raw.signatures[0], doc)

        try:
            with self._lock:
                self.accountplus.authenticate_tx(list(selected), urls, msgs, signers, verify,
                                                 (acc_number, si.sequence, self.chain_id))
        except node_auth.Reject as r:
            raise TxRejected(r.code, r.raw_log, r.codespace) from None
        for m in msgs:
            self._validate_msg(m, height)
        return signer, si.sequence, acc_number

    def _validate_msg(self, m: Any, height: int) -> None:
        try:
            self.accountplus.validate_basic(m)
        except node_auth.Reject as r:
            raise TxRejected(r.code, r.raw_log, r.codespace) from None
        if isinstance(m, clob_tx.MsgPlaceOrder):
            o = m.order
            if o.side not in (order_pb2.Order.SIDE_BUY, order_pb2.Order.SIDE_SELL):
                raise TxRejected(3, f"Invalid order side: {o.side}", "clob")
            if o.quantums == 0:
                raise TxRejected(4, "order size quantums cannot be 0: Invalid order quantums",
                                 "clob")
            if o.subticks == 0 and o.order_id.order_flags != ORDER_FLAG_TWAP:
                raise TxRejected(6, "order subticks cannot be 0: Invalid order subticks", "clob")
            if o.time_in_force == order_pb2.Order.TIME_IN_FORCE_FILL_OR_KILL:
                raise TxRejected(48, "Fill-or-kill has been deprecated: This field has been "
                                     "deprecated", "clob")
            if o.reduce_only and o.time_in_force != order_pb2.Order.TIME_IN_FORCE_IOC:
                raise TxRejected(9003, "Reduce-only is currently disabled for non-IOC orders",
                                 "clob")
            flags = o.order_id.order_flags
            if flags == ORDER_FLAG_SHORT_TERM:
                self._check_gtb(o.good_til_block, height)
            elif flags in (ORDER_FLAG_LONG_TERM, ORDER_FLAG_CONDITIONAL):
                if o.good_til_block_time == 0:
                    raise TxRejected(3001, "stateful orders must have a goodTilBlockTime: "
                                           "Invalid order goodTilBlockTime", "clob")
                if flags == ORDER_FLAG_LONG_TERM and \
                        o.time_in_force == order_pb2.Order.TIME_IN_FORCE_IOC:
                    raise TxRejected(3002, "Stateful orders cannot require immediate "
                                           "execution", "clob")
                if flags == ORDER_FLAG_CONDITIONAL and (
                        o.condition_type == order_pb2.Order.CONDITION_TYPE_UNSPECIFIED
                        or o.conditional_order_trigger_subticks == 0):
                    raise TxRejected(6000, "Conditional type is invalid", "clob")
        elif isinstance(m, clob_tx.MsgCancelOrder):
            if m.order_id.order_flags == ORDER_FLAG_SHORT_TERM:
                self._check_gtb(m.good_til_block, height)
        elif isinstance(m, clob_tx.MsgBatchCancel):
            self._check_gtb(m.good_til_block, height)

    def _check_gtb(self, gtb: int, height: int) -> None:
        if not self.check_good_til_block:
            return
        if gtb < height:
            raise TxRejected(10, f"GoodTilBlock {gtb} is less than the current blockHeight "
                                 f"{height}: The next block height is greater than the "
                                 f"GoodTilBlock of the message", "clob")
        if gtb > height + self.short_block_window:
            raise TxRejected(11, f"GoodTilBlock {gtb} is greater than ShortBlockWindow "
                                 f"{self.short_block_window} blocks after current blockHeight "
                                 f"{height}: The GoodTilBlock of the message is further than "
                                 f"ShortBlockWindow blocks into the future", "clob")

    def _broadcast(self, tx_bytes: bytes, mode: int) -> abci_pb2.TxResponse:
        txhash = hashlib.sha256(tx_bytes).hexdigest().upper()
        height = self.height
        signer = seq = accnum = None
        urls: list[str] = []
        msgs: list[Any] = []
        memo = ""
        short_only = False
        parsed = None
        with self._lock:
            injected = self._fail_queue.popleft() if self._fail_queue else None
        try:
            try:
                raw, body, auth, urls, msgs = self._decode(tx_bytes)
                memo = body.memo
                parsed = (raw, body, auth)
                short_only = is_short_term_only(msgs)
                if auth.signer_infos:
                    si = auth.signer_infos[0]
                    seq = si.sequence
                    pk = secp_keys.PubKey()
                    if si.public_key.Unpack(pk):
                        signer = address_from_pubkey(pk.key)
            except DecodeError as e:
                raise TxRejected(2, f"tx parse error: {e}", "sdk")
            if injected is not None:
                raise TxRejected(injected[0],
                                 injected[1] or self._default_log(injected[0], signer),
                                 injected[2])
            signer, seq, accnum = self._check(raw, body, auth, msgs, height)
            try:
                with self._lock:
                    self.rate_limits.check(msgs, height, {ORDER_FLAG_LONG_TERM, ORDER_FLAG_CONDITIONAL,
                                                          ORDER_FLAG_TWAP})
            except node_auth.Reject as r:
                raise TxRejected(r.code, r.raw_log, r.codespace) from None
            self._deliver_accountplus(msgs)
            code, codespace, raw_log = 0, "", ""
            if not short_only:
                with self._lock:
                    self.accounts[signer].sequence += 1
        except TxRejected as r:
            code, codespace, raw_log = r.code, r.codespace, r.raw_log
        resp = abci_pb2.TxResponse(height=0, txhash=txhash, codespace=codespace, code=code,
                                   raw_log=raw_log, gas_wanted=0, gas_used=0)
        rec = BroadcastRecord(txhash=txhash, tx_bytes=bytes(tx_bytes), type_urls=urls,
                              messages=msgs, signer=signer, sequence=seq,
                              account_number=accnum, memo=memo, code=code, codespace=codespace,
                              raw_log=raw_log, height=height, mode=mode,
                              short_term_only=short_only)
        with self._lock:
            self.broadcasts.append(rec)
            if code == 0 and parsed is not None:
                tx = tx_pb2.Tx()
                try:
                    tx.ParseFromString(tx_bytes)
                except DecodeError:  # pragma: no cover
                    pass
                self.txs[txhash] = (tx, resp)
        for fn in list(self._listeners):
            try:
                fn(rec)
            except Exception:
                log.exception("broadcast listener failed")
        return resp

    def _deliver_accountplus(self, msgs: list[Any]) -> None:
        """Execute MsgAddAuthenticator / MsgRemoveAuthenticator (at once: the fake has no
        separate DeliverTx; a failed delivery is listed in ``accountplus.delivery_failures``)."""
        with self._lock:
            for m in msgs:
                if isinstance(m, node_auth.ap_tx.MsgAddAuthenticator):
                    self.accountplus.add(m.sender, m.authenticator_type, bytes(m.data))
                elif isinstance(m, node_auth.ap_tx.MsgRemoveAuthenticator):
                    self.accountplus.remove(m.sender, int(m.id))

    def _default_log(self, code: int, signer: Optional[str]) -> str:
        if code == 32:
            acc = self.accounts.get(signer) if signer else None
            exp = acc.sequence if acc else 0
            return (f"account sequence mismatch, expected {exp + 1}, got {exp}: "
                    "incorrect account sequence")
        return f"injected failure code {code}"


def _msg_owner(m: Any) -> Optional[str]:
    if isinstance(m, clob_tx.MsgPlaceOrder):
        return m.order.order_id.subaccount_id.owner
    if isinstance(m, clob_tx.MsgCancelOrder):
        return m.order_id.subaccount_id.owner
    if isinstance(m, clob_tx.MsgBatchCancel):
        return m.subaccount_id.owner
    if isinstance(m, (node_auth.ap_tx.MsgAddAuthenticator, node_auth.ap_tx.MsgRemoveAuthenticator)):
        return m.sender
    name = type(m).__name__
    if name == "MsgCreateTransfer":
        return m.transfer.sender.owner
    if name == "MsgWithdrawFromSubaccount":
        return m.sender.owner
    if name == "MsgDepositToSubaccount":
        return m.sender
    if name == "MsgSend":
        return m.from_address
    return None


def _verify(pubkey: bytes, sig: bytes, message: bytes) -> bool:
    try:
        from coincurve import PublicKey
        from coincurve.ecdsa import cdata_to_der, deserialize_compact
        if len(sig) != 64:
            return False
        der = cdata_to_der(deserialize_compact(sig))
        return PublicKey(pubkey).verify(der, message)
    except Exception:
        return False


# --------------------------------------------------------------------------- servicers

class _Auth(auth_grpc.QueryServicer):
    def __init__(self, node: FakeNode):
        self.n = node

    def Account(self, request, context):
        self.n._enter("Account")
        with self.n._lock:
            acc = self.n._account(request.address, create=self.n.auto_create_accounts)
            if acc is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"account {request.address} not found")
            base = auth_pb2.BaseAccount(address=acc.address, account_number=acc.account_number,
                                        sequence=acc.sequence)
            if acc.pub_key:
                pk = any_pb2.Any()
                pk.Pack(secp_keys.PubKey(key=acc.pub_key), type_url_prefix="/")
                base.pub_key.CopyFrom(pk)
        packed = any_pb2.Any()
        packed.Pack(base, type_url_prefix="/")
        return auth_query.QueryAccountResponse(account=packed)


class _Tendermint(tm_grpc.ServiceServicer):
    def __init__(self, node: FakeNode):
        self.n = node

    def GetLatestBlock(self, request, context):
        self.n._enter("GetLatestBlock")
        h = self.n._latest_height()
        block, sdk_block = self.n._block(h)
        resp = tm_query.GetLatestBlockResponse(block=block)
        if sdk_block is not None:
            resp.sdk_block.CopyFrom(sdk_block)
        return resp

    def GetNodeInfo(self, request, context):
        self.n._enter("GetNodeInfo")
        info = p2p_types.DefaultNodeInfo(network=self.n.chain_id, version="0.38.0",
                                         moniker="fake-node")
        app = tm_query.VersionInfo(name="dydxprotocol", app_name="dydxprotocold",
                                   version="fake")
        return tm_query.GetNodeInfoResponse(default_node_info=info, application_version=app)

    def GetSyncing(self, request, context):
        self.n._enter("GetSyncing")
        return tm_query.GetSyncingResponse(syncing=False)


class _Tx(tx_grpc.ServiceServicer):
    def __init__(self, node: FakeNode):
        self.n = node

    def BroadcastTx(self, request, context):
        self.n._enter("BroadcastTx")
        resp = self.n._broadcast(request.tx_bytes, request.mode)
        with self.n._lock:
            drop = self.n._drop_after_accept > 0
            if drop:
                self.n._drop_after_accept -= 1
        if drop:
            # the tx is processed (and matched when accepted); the reply never leaves
            self.n.drop_connections()
            context.abort(grpc.StatusCode.UNAVAILABLE, "connection dropped after the tx was processed")
        return tx_service.BroadcastTxResponse(tx_response=resp)

    def Simulate(self, request, context):
        self.n._enter("Simulate")
        from v4_proto.cosmos.base.abci.v1beta1 import abci_pb2 as abci
        gas = self.n.gas_used
        return tx_service.SimulateResponse(gas_info=abci.GasInfo(gas_wanted=gas, gas_used=gas),
                                           result=abci.Result())

    def GetTx(self, request, context):
        self.n._enter("GetTx")
        with self.n._lock:
            found = self.n.txs.get(request.hash.upper())
        if found is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"tx not found: {request.hash}")
        tx, resp = found
        return tx_service.GetTxResponse(tx=tx, tx_response=resp)


class _FeeTiers(fee_grpc.QueryServicer):
    def __init__(self, node: FakeNode):
        self.n = node

    def PerpetualFeeParams(self, request, context):
        self.n._enter("PerpetualFeeParams")
        return fee_query.QueryPerpetualFeeParamsResponse(params=self.n.fee_tiers)

    def UserFeeTier(self, request, context):
        self.n._enter("UserFeeTier")
        i = self.n.user_fee_tier_index
        if i is None:
            i = node_auth.fee_tier_index(self.n.fee_tiers, *self.n.user_stats.get(request.user, (0, 0)),
                                         self.n.global_notional)
        return fee_query.QueryUserFeeTierResponse(index=i, tier=self.n.fee_tiers.tiers[i])


class _Bank(bank_grpc.QueryServicer):
    def __init__(self, node: FakeNode):
        self.n = node

    def AllBalances(self, request, context):
        self.n._enter("AllBalances")
        bals = self.n.balances.get(request.address, {})
        return bank_query.QueryAllBalancesResponse(
            balances=[coin_pb2.Coin(denom=d, amount=str(a)) for d, a in sorted(bals.items())])

    def Balance(self, request, context):
        self.n._enter("Balance")
        amount = self.n.balances.get(request.address, {}).get(request.denom, 0)
        return bank_query.QueryBalanceResponse(
            balance=coin_pb2.Coin(denom=request.denom, amount=str(amount)))
