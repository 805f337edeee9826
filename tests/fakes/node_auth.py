"""What the fake node adds for permissioned keys, chain rate limits and fee tiers.

Written from the chain's code (dydxprotocol/v4-chain main @ 84d4664), independently of
``perpbot.exchanges.dydx.authenticators`` so that a bug there is caught here:

* ``x/accountplus``: ``MsgAddAuthenticator`` / ``MsgRemoveAuthenticator`` (ids from one
  global counter, ``keeper/authenticators.go``; data <= 1024 bytes,
  ``types/message_add_authenticator.go``), the ``GetAuthenticators`` / ``GetAuthenticator``
  / ``Params`` queries, and the ante flow a tx takes when its body carries a
  ``TxExtension`` with selected authenticators (``ante/circuit_breaker.go``,
  ``ante/ante.go``): one id per message, each message's signer's authenticator must
  authenticate it, errors worded and coded as the chain's
  (``types/errors.go``: codespace ``accountplus``, 1 not found, 100 signature, 101
  message type, 102 clob pair, 103 subaccount; AnyOf failures are sdk 4 unauthorized;
  a count mismatch is sdk 18 invalid request).
* ``x/clob`` ``BlockRateLimitConfiguration``: CheckTx counts per owner and block height;
  short-term places/cancels weigh 1, a batch cancel 2, stateful places 1, stateful
  cancels 0 (``rate_limit/order_rate_limiter.go``); the count is added before the check,
  so a refused tx still counts (``rate_limit/multi_block_rate_limiter.go``); code 5001.
* ``x/stats`` ``UserStats`` / ``GlobalStats`` / ``Params`` (30-day window).
"""

from __future__ import annotations

import base64
import collections
import json
from typing import Any, Optional

from google.protobuf.duration_pb2 import Duration

from v4_proto.dydxprotocol.accountplus import models_pb2, params_pb2 as ap_params
from v4_proto.dydxprotocol.accountplus import query_pb2 as ap_query
from v4_proto.dydxprotocol.accountplus import query_pb2_grpc as ap_grpc
from v4_proto.dydxprotocol.accountplus import tx_pb2 as ap_tx
from v4_proto.dydxprotocol.clob import block_rate_limit_config_pb2 as brl
from v4_proto.dydxprotocol.clob import query_pb2 as clob_query
from v4_proto.dydxprotocol.clob import query_pb2_grpc as clob_grpc
from v4_proto.dydxprotocol.clob import tx_pb2 as clob_tx
from v4_proto.dydxprotocol.stats import params_pb2 as stats_params
from v4_proto.dydxprotocol.stats import query_pb2 as stats_query
from v4_proto.dydxprotocol.stats import query_pb2_grpc as stats_grpc
from v4_proto.dydxprotocol.stats import stats_pb2

TX_EXTENSION_URL = "/dydxprotocol.accountplus.TxExtension"
MAX_DATA = 1024
CLOB_URLS = {"/dydxprotocol.clob.MsgPlaceOrder", "/dydxprotocol.clob.MsgCancelOrder",
             "/dydxprotocol.clob.MsgBatchCancel"}


class Reject(Exception):
    """A CheckTx failure: (code, raw_log, codespace)."""

    def __init__(self, code: int, raw_log: str, codespace: str):
        super().__init__(raw_log)
        self.code, self.raw_log, self.codespace = code, raw_log, codespace


def go_set(values) -> str:
    """Go's ``%v`` of a ``map[T]struct{}`` (keys sorted, as fmt prints maps)."""
    return "map[" + " ".join(f"{v}:{{}}" for v in sorted(values)) + "]"


def selected_authenticators(body) -> Optional[list[int]]:
    """The TxExtension's ids, or None when the tx takes the classic flow (no extension, or
    an empty list: ``lib.HasSelectedAuthenticatorTxExtensionSpecified``)."""
    for ext in body.non_critical_extension_options:
        if ext.type_url == TX_EXTENSION_URL:
            te = ap_tx.TxExtension()
            te.ParseFromString(ext.value)
            ids = list(te.selected_authenticators)
            return ids if ids else None
    return None


class _Auth:
    """An initialized authenticator (``Initialize`` of each type)."""

    def __init__(self, typ: str, config: bytes):
        self.type, self.config = typ, config
        self.subs: list[_Auth] = []
        if typ in ("AllOf", "AnyOf"):
            datas = json.loads(config.decode())
            if len(datas) <= 1:
                raise ValueError(f"{typ[0].lower()}{typ[1:]} must have at least 2 sub-authenticators")
            for d in datas:
                cfg = d["config"]
                raw = base64.b64decode(cfg) if isinstance(cfg, str) else bytes(cfg)
                self.subs.append(_Auth(d["type"], raw))
        elif typ in ("ClobPairIdFilter", "SubaccountFilter"):
            self.whitelist = {int(x) for x in config.decode().split(",")}
        elif typ == "MessageFilter":
            self.whitelist = set(config.decode().split(","))
        elif typ == "SignatureVerification":
            self.pubkey = config
        else:
            raise ValueError(f"authenticator type {typ} is not registered")

    def authenticate(self, msg_url: str, msg: Any, verify) -> None:
        """Raise Reject like the chain's ``Authenticate``; ``verify(pubkey) -> bool``."""
        t = self.type
        if t == "SignatureVerification":
            if not verify(self.pubkey):
                raise Reject(100, "signature verification failed; please verify account number ({acc}), "
                                  "sequence ({seq}) and chain-id ({chain}): Signature verification failed",
                             "accountplus")
        elif t == "MessageFilter":
            if msg_url not in self.whitelist:
                raise Reject(101, f"message types do not match. Got {msg_url}, Expected {go_set(self.whitelist)}: "
                                  f"Message type verification failed", "accountplus")
        elif t == "ClobPairIdFilter":
            ids = clob_pair_ids(msg)
            for i in ids:
                if i not in self.whitelist:
                    raise Reject(102, f"order id {i} not in whitelist {go_set(self.whitelist)}: "
                                      f"Clob pair id verification failed", "accountplus")
        elif t == "SubaccountFilter":
            for n in subaccount_numbers(msg):
                if n not in self.whitelist:
                    raise Reject(103, f"subaccount number {n} not in whitelist {go_set(self.whitelist)}: "
                                      f"Subaccount verification failed", "accountplus")
        elif t == "AllOf":
            for s in self.subs:
                s.authenticate(msg_url, msg, verify)
        elif t == "AnyOf":
            errors = []
            for i, s in enumerate(self.subs):
                try:
                    s.authenticate(msg_url, msg, verify)
                    return
                except Reject as r:
                    errors.append(f"[{s.type} (id = .{i})] {r.raw_log}; ")
            raise Reject(4, "all sub-authenticators failed to authenticate: " + "; ".join(errors) + ": unauthorized",
                         "sdk")


def clob_pair_ids(msg: Any) -> list[int]:
    """The clob pair ids a clob message names (others: none, skipped by the filter)."""
    if isinstance(msg, clob_tx.MsgPlaceOrder):
        return [msg.order.order_id.clob_pair_id]
    if isinstance(msg, clob_tx.MsgCancelOrder):
        return [msg.order_id.clob_pair_id]
    if isinstance(msg, clob_tx.MsgBatchCancel):
        return [b.clob_pair_id for b in msg.short_term_cancels]
    return []


def subaccount_numbers(msg: Any) -> list[int]:
    """The subaccount number a clob message acts on (others: none, skipped by the filter)."""
    if isinstance(msg, clob_tx.MsgPlaceOrder):
        return [msg.order.order_id.subaccount_id.number]
    if isinstance(msg, clob_tx.MsgCancelOrder):
        return [msg.order_id.subaccount_id.number]
    if isinstance(msg, clob_tx.MsgBatchCancel):
        return [msg.subaccount_id.number]
    return []


class AccountPlus:
    """Authenticator store and checks of one fake node."""

    def __init__(self):
        self.active = True
        self.next_id = 0
        self.store: dict[str, dict[int, models_pb2.AccountAuthenticator]] = {}
        self.delivery_failures: list[str] = []

    def add(self, sender: str, typ: str, data: bytes) -> Optional[int]:
        """Deliver a MsgAddAuthenticator (``OnAuthenticatorAdded`` checks); None when it fails."""
        try:
            a = _Auth(typ, data)
            if typ == "SignatureVerification" and len(data) != 33:
                raise ValueError(f"invalid secp256k1 public key size, expected 33, got {len(data)}")
            for s in getattr(a, "subs", []):
                if s.type == "SignatureVerification" and len(s.config) != 33:
                    raise ValueError("invalid secp256k1 public key size")
        except Exception as exc:  # noqa: BLE001 - a failed delivery, like the chain's
            self.delivery_failures.append(f"add authenticator for {sender}: {exc}")
            return None
        aid = self.next_id
        self.next_id += 1
        self.store.setdefault(sender, {})[aid] = models_pb2.AccountAuthenticator(id=aid, type=typ, config=data)
        return aid

    def remove(self, sender: str, aid: int) -> bool:
        """Deliver a MsgRemoveAuthenticator; False when the id is not the sender's."""
        if aid not in self.store.get(sender, {}):
            self.delivery_failures.append(f"remove authenticator {aid} for {sender}: Authenticator is not found")
            return False
        del self.store[sender][aid]
        return True

    def validate_basic(self, msg: Any) -> None:
        """Stateless checks run in CheckTx."""
        if isinstance(msg, ap_tx.MsgAddAuthenticator) and len(msg.data) > MAX_DATA:
            raise Reject(3, "Authenticator data exceeds maximum length", "accountplus")

    def authenticate_tx(self, ids: list[int], urls: list[str], msgs: list[Any], signers: list[str],
                        verify, txinfo: tuple[int, int, str]) -> None:
        """The authenticator ante flow for a tx with selected authenticators; ``txinfo`` =
        (account number, sequence, chain id) for the signature error's text."""
        if not self.active:
            raise Reject(4, "Smart account is not active", "accountplus")
        if len(ids) != len(msgs):
            raise Reject(18, f"Mismatch between the number of selected authenticators and messages, msg count "
                             f"{len(msgs)}, got {len(ids)} selected authenticators: invalid request", "sdk")
        for i, (aid, url, msg, signer) in enumerate(zip(ids, urls, msgs, signers)):
            stored = self.store.get(signer, {}).get(aid)
            if stored is None:
                raise Reject(1, f"failed to get initialized authenticator (account = {signer}, authenticator id = "
                                f"{aid}, msg index = {i}, msg type url = {url}): authenticator {aid} not found for "
                                f"account {signer}: Authenticator is not found", "accountplus")
            auth = _Auth(stored.type, bytes(stored.config))
            try:
                auth.authenticate(url, msg, verify)
            except Reject as r:
                text = (r.raw_log.replace("{acc}", str(txinfo[0])).replace("{seq}", str(txinfo[1]))
                        .replace("{chain}", txinfo[2]))
                raise Reject(r.code, f"authentication failed for message {i}, authenticator id {aid}, type "
                                     f"{stored.type}: {text}", r.codespace) from None


class RateLimits:
    """The chain's CheckTx block rate limits (empty config: no limits)."""

    def __init__(self, config: Optional[brl.BlockRateLimitConfiguration] = None):
        self.config = config or brl.BlockRateLimitConfiguration()
        self.counts: dict[tuple[str, str], collections.Counter] = {}

    def check(self, msgs: list[Any], height: int, stateful_flags: set[int]) -> None:
        """Count the tx's clob messages at ``height`` and reject when a limit is exceeded."""
        for m in msgs:
            kind, weight, owner = None, 0, ""
            if isinstance(m, clob_tx.MsgPlaceOrder):
                owner = m.order.order_id.subaccount_id.owner
                kind, weight = ("stateful" if m.order.order_id.order_flags in stateful_flags else "short"), 1
            elif isinstance(m, clob_tx.MsgCancelOrder):
                owner = m.order_id.subaccount_id.owner
                if m.order_id.order_flags not in stateful_flags:
                    kind, weight = "short", 1
            elif isinstance(m, clob_tx.MsgBatchCancel):
                owner, kind, weight = m.subaccount_id.owner, "short", 2
            if kind is None:
                continue
            rules = (self.config.max_stateful_orders_per_n_blocks if kind == "stateful"
                     else self.config.max_short_term_orders_and_cancels_per_n_blocks)
            if not rules:
                continue
            counts = self.counts.setdefault((owner, kind), collections.Counter())
            counts[height] += weight
            name = "MaxStatefulOrdersPerNBlocks" if kind == "stateful" else "MaxShortTermOrdersAndCancelsPerNBlocks"
            for r in rules:
                total = sum(c for h, c in counts.items() if height - r.num_blocks < h <= height)
                if total > r.limit:
                    raise Reject(5001, f"Rate of {total} exceeds configured block rate limit of "
                                       f"{{NumBlocks:{r.num_blocks} Limit:{r.limit}}} for {name} and {owner}: "
                                       f"Block rate limit exceeded", "clob")


def fee_tier_index(params, taker: int, maker: int, global_notional: int) -> int:
    """v4-chain ``x/feetiers/keeper/keeper.go`` ``getUserFeeTier`` (no vault, no affiliate):
    the last tier whose volume requirements all hold, stopping at the first that fails."""
    idx = 0
    for i, t in enumerate(params.tiers):
        total = taker + maker
        if (total < t.absolute_volume_requirement
                or total < global_notional * t.total_volume_share_requirement_ppm // 1_000_000
                or maker < global_notional * t.maker_volume_share_requirement_ppm // 1_000_000):
            break
        idx = i
    return idx


def genesis_rate_limits() -> brl.BlockRateLimitConfiguration:
    """The values of v4-chain ``protocol/testing/genesis.sh``: 400 short-term places and
    cancels per block, 2 stateful orders per block and 20 per 100 blocks."""
    R = brl.MaxPerNBlocksRateLimit
    return brl.BlockRateLimitConfiguration(
        max_short_term_orders_and_cancels_per_n_blocks=[R(num_blocks=1, limit=400)],
        max_stateful_orders_per_n_blocks=[R(num_blocks=1, limit=2), R(num_blocks=100, limit=20)])


# ------------------------------------------------------------------------------ servicers


class AccountPlusServicer(ap_grpc.QueryServicer):
    """``dydxprotocol.accountplus.Query``."""

    def __init__(self, node):
        self.n = node

    def GetAuthenticators(self, request, context):
        self.n._enter("GetAuthenticators")
        with self.n._lock:
            auths = sorted(self.n.accountplus.store.get(request.account, {}).values(), key=lambda a: a.id)
        return ap_query.GetAuthenticatorsResponse(account_authenticators=auths)

    def GetAuthenticator(self, request, context):
        self.n._enter("GetAuthenticator")
        import grpc

        with self.n._lock:
            a = self.n.accountplus.store.get(request.account, {}).get(request.authenticator_id)
        if a is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"authenticator {request.authenticator_id} not found")
        return ap_query.GetAuthenticatorResponse(account_authenticator=a)

    def Params(self, request, context):
        self.n._enter("AccountPlusParams")
        return ap_query.QueryParamsResponse(params=ap_params.Params(is_smart_account_active=self.n.accountplus.active))


class ClobQueryServicer(clob_grpc.QueryServicer):
    """``dydxprotocol.clob.Query/BlockRateLimitConfiguration``."""

    def __init__(self, node):
        self.n = node

    def BlockRateLimitConfiguration(self, request, context):
        self.n._enter("BlockRateLimitConfiguration")
        return clob_query.QueryBlockRateLimitConfigurationResponse(block_rate_limit_config=self.n.rate_limits.config)


class StatsServicer(stats_grpc.QueryServicer):
    """``dydxprotocol.stats.Query``: UserStats from ``node.user_stats[address] = (taker,
    maker)`` quote quantums, GlobalStats from ``node.global_notional``."""

    def __init__(self, node):
        self.n = node

    def Params(self, request, context):
        self.n._enter("StatsParams")
        return stats_query.QueryParamsResponse(
            params=stats_params.Params(window_duration=Duration(seconds=30 * 86400)))

    def UserStats(self, request, context):
        self.n._enter("UserStats")
        taker, maker = self.n.user_stats.get(request.user, (0, 0))
        return stats_query.QueryUserStatsResponse(stats=stats_pb2.UserStats(taker_notional=taker, maker_notional=maker))

    def GlobalStats(self, request, context):
        self.n._enter("GlobalStats")
        return stats_query.QueryGlobalStatsResponse(stats=stats_pb2.GlobalStats(notional_traded=self.n.global_notional))
