"""Node (gRPC) access through the official ``NodeClient``, kept off the event loop.

dydx-v4-client 1.1.5's ``NodeClient`` methods are ``async def`` but call
*synchronous* gRPC stubs (a slow node blocks whatever loop awaits them). Every node
call therefore runs on ONE dedicated worker thread with its own event loop
(:class:`NodeGateway`); the bot's loop awaits the result through a future. One
worker also serializes every broadcast, which stateful orders need anyway.

- **Sequence.** The client's sequence manager (an extra account query before every
  broadcast, and "account sequence mismatch" on back-to-back stateful orders because
  committed state lags checkState) is switched off; the wallet's sequence is tracked
  locally: read once at connect, +1 after every accepted stateful tx (long-term and
  conditional places and cancels; short-term txs neither check nor consume it,
  chain ``app/ante``). On "account sequence mismatch" the sequence is resynced (from
  the expected value in the log, else an account query) and the tx is retried ONCE.
- **CheckTx.** ``broadcast_message`` returns the response and does not raise when
  ``tx_response.code != 0``; :class:`TxResult` carries code and raw log and the caller
  turns a nonzero code into a rejection.
- **Budget and breaker.** A token bucket (``grpc_rate_per_s``; a caller waits at most
  ``grpc_max_wait_s``, else :class:`RateBudgetExceeded`) and a circuit breaker
  (``breaker_failures`` consecutive transport failures open it for
  ``breaker_cooldown_s``; :class:`NodeUnavailable` while open). Every gRPC call has a
  deadline of ``grpc_timeout_s`` (a channel interceptor), so a hung node cannot wedge
  the worker.
- **Sent or not.** A transport failure is either :class:`NotSent` (no connection existed:
  the request never left, so a broadcast certainly did nothing) or
  :class:`OutcomeUnknown` (timeout, or the connection dropped after the request was
  written: the node may have accepted the tx). Only a CheckTx code is a rejection.
- **Trading key.** With a :class:`~perpbot.exchanges.dydx.authenticators.TradingKey` instead
  of the mnemonic, txs are signed by the trading key for the MAIN account, naming its
  authenticator in ``TxOptions(authenticators=[id], sequence, account_number)``
  (dydx-v4-client 1.1.5 ``node/builder.py``). The authenticator is read from the chain at
  connect (``accountplus.Query/GetAuthenticators``), and a message it would refuse is
  refused here, before sending (:class:`KeyNotAllowed`, naming the filter).
- **Chain limits and fees.** At connect the node's ``BlockRateLimitConfiguration`` and the
  account's fee tier are read (:mod:`perpbot.exchanges.dydx.fees`); places and cancels wait
  for the block-rate limiter (at most ``grpc_max_wait_s``, else :class:`ChainRateLimited`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from typing import Any, Callable, Coroutine

import attrs
from loguru import logger

from perpbot.core.errors import ExchangeError, SecretError, TemporaryExchangeError
from perpbot.exchanges.dydx.authenticators import (
    MSG_BATCH_CANCEL, MSG_CANCEL_ORDER, MSG_PLACE_ORDER, AuthenticatorFormatError, AuthNode, TradingKey,
    guard_send_message, parse_authenticator,
)
from perpbot.exchanges.dydx.config import USDC_DENOM, DydxSettings
from perpbot.exchanges.dydx.fees import BATCH_CANCEL_WEIGHT, chain_limiters, query_fee_tier, query_rate_limits
from perpbot.exchanges.dydx.limits import CircuitBreaker, TokenBucket
from perpbot.exchanges.dydx.secrets import Secret, key_pair_from

_SEQ_RX = re.compile(r"expected (\d+)")


class _DropLocalNetworkWarning(logging.Filter):
    """dydx_v4_client.network builds its LOCAL network at import and warns about its own
    ``http://localhost`` node URL; that line is noise for every user of the package."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Node URL should not contain http" not in record.getMessage()


logging.getLogger("dydx_v4_client.network").addFilter(_DropLocalNetworkWarning())


class NodeUnavailable(TemporaryExchangeError):
    """The node circuit breaker is open: nothing is sent until its cool-down ends."""


class RateBudgetExceeded(TemporaryExchangeError):
    """The gRPC call budget is used up for longer than ``grpc_max_wait_s``."""


class ChainRateLimited(RateBudgetExceeded):
    """The chain's block rate limit (``BlockRateLimitConfiguration``) stays full for longer
    than ``grpc_max_wait_s``: the message was not sent."""


class NotSent(TemporaryExchangeError):
    """The call never reached the node (no connection could be made): nothing was sent.

    Raised for gRPC ``UNAVAILABLE`` whose details say the channel could not connect
    ("failed to connect to all addresses", "Connection refused", DNS failure) and when the
    gateway is not connected. :class:`NodeUnavailable` and :class:`RateBudgetExceeded`
    are refusals before sending too.
    """


class KeyNotAllowed(NotSent):
    """The trading key's authenticator would refuse this message: it was not sent.

    The message names the authenticator id, the message type, market and subaccount, and
    the filter that refuses (a NotSent, so the order path reports a rejection).
    """


class OutcomeUnknown(TemporaryExchangeError):
    """The request may have reached the node, but no reply came back (deadline passed,
    connection dropped after sending: ``UNAVAILABLE: Socket closed`` / ``Cancelling all
    calls``, ...). A broadcast may have been accepted: its outcome must come from the venue.
    """


#: gRPC UNAVAILABLE details meaning that no connection existed, so the request was never sent
_NOT_CONNECTED = ("failed to connect", "connection refused", "dns resolution failed", "name resolution",
                  "no route to host", "network is unreachable", "connect failed")


def never_sent(exc: BaseException) -> bool:
    """True when ``exc`` (a gRPC error) proves the request never left this process."""
    code = getattr(exc, "code", None)
    details = getattr(exc, "details", None)
    if not (callable(code) and callable(details)):
        return False
    try:
        name, text = code().name, str(details() or "").lower()
    except Exception:  # noqa: BLE001 - an unreadable status proves nothing
        return False
    return name == "UNAVAILABLE" and any(k in text for k in _NOT_CONNECTED)


@attrs.frozen
class TxResult:
    """What CheckTx said about one broadcast: ``code`` 0 is accepted."""

    code: int
    raw_log: str = ""
    txhash: str = ""
    codespace: str = ""
    sequence_resynced: bool = False

    @property
    def ok(self) -> bool:
        """True when CheckTx accepted the tx (``code`` 0: ABCI's OK; anything else is a refusal)."""
        return self.code == 0


def _deadline_interceptor(timeout_s: float):
    import grpc

    class _Deadline(grpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, continuation, client_call_details, request):
            if client_call_details.timeout is None:
                client_call_details = _Details(client_call_details, timeout_s)
            return continuation(client_call_details, request)

    class _Details(grpc.ClientCallDetails):
        def __init__(self, base, timeout):
            self.method = base.method
            self.timeout = timeout
            self.metadata = base.metadata
            self.credentials = base.credentials
            self.wait_for_ready = getattr(base, "wait_for_ready", None)
            self.compression = getattr(base, "compression", None)

    return _Deadline()


class _Worker:
    """A thread running its own event loop; coroutines submitted to it run there."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def run(self, coro: Coroutine, timeout: float) -> Any:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.wrap_future(fut)
        except TimeoutError:
            fut.cancel()
            raise

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()


class NodeGateway:
    """Signed transactions and chain queries for one wallet, on a worker thread.

    :param settings: endpoints, budget, breaker and timeout settings.
    :param secret: the mnemonic (:class:`~perpbot.exchanges.dydx.secrets.Secret`) or a
        :class:`~perpbot.exchanges.dydx.authenticators.TradingKey`.
    :param monotonic: time source of the budget and the breaker (tests).

    After :meth:`connect`: ``authenticator`` (the trading key's
    :class:`~perpbot.exchanges.dydx.authenticators.AuthNode`, None for the mnemonic),
    ``limiters`` (the chain's block-rate limiters, empty when the node has no such query),
    ``fee_tier`` (:class:`~perpbot.exchanges.dydx.fees.FeeTier`, None when unreadable).
    """

    def __init__(self, settings: DydxSettings, secret: "Secret | TradingKey", *,
                 monotonic: Callable[[], float] = time.monotonic):
        self.settings = settings
        self._secret = secret
        self.trading_key: TradingKey | None = secret if isinstance(secret, TradingKey) else None
        self.authenticator: AuthNode | None = None
        self.limiters: dict = {}
        self.fee_tier = None
        self._pubkey: bytes | None = None
        self.bucket = TokenBucket(settings.grpc_rate_per_s, max(1.0, settings.grpc_rate_per_s), monotonic)
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s, name="dYdX node",
                                      monotonic=monotonic)
        self._worker: _Worker | None = None
        self._node: Any = None
        self._wallet: Any = None
        self.address: str | None = None
        self.account_number: int | None = None
        self._stateful_lock = asyncio.Lock()
        self.stats = {"calls": 0, "failures": 0, "rejected": 0, "sequence_resyncs": 0, "budget_refused": 0,
                      "breaker_refused": 0, "outcome_unknown": 0}

    def __repr__(self) -> str:
        return f"NodeGateway({self.settings.endpoints.node}, address={self.address})"

    @property
    def sequence(self) -> int | None:
        """The wallet's local account sequence (stateful txs consume one), None before :meth:`connect`."""
        return None if self._wallet is None else self._wallet.sequence

    # ------------------------------------------------------------------ lifecycle

    async def connect(self, address: str | None = None) -> str:
        """Open the channel, derive the key, read account number and sequence.

        :returns: the wallet's ``dydx1...`` address.
        :raises SecretError: when ``address`` is given and the mnemonic derives another one.
        :raises TemporaryExchangeError: when the node cannot be reached.
        """
        e = self.settings.endpoints
        if not e.node:
            raise ExchangeError(f"dYdX {self.settings.network}: no node address configured (dydx.node)")
        self._worker = _Worker("dydx-node")
        secret = self._secret

        async def setup():
            import grpc
            from dydx_v4_client.network import NodeConfig
            from dydx_v4_client.node.client import NodeClient
            from dydx_v4_client.wallet import Wallet

            if e.node_secure:
                channel = grpc.secure_channel(e.node, grpc.ssl_channel_credentials())
            else:
                channel = grpc.insecure_channel(e.node)
            channel = grpc.intercept_channel(channel, _deadline_interceptor(self.settings.grpc_timeout_s))
            cfg = NodeConfig(e.chain_id, e.chaintoken_denom, USDC_DENOM, channel)
            node = await NodeClient.connect(cfg)
            node.sequence_manager = None  # sequence tracked here (see module docstring)
            if isinstance(secret, TradingKey):  # signs for the main account named in the key file
                wallet, derived = Wallet(secret.key_pair(), 0, 0), secret.address
                guard_send_message(node, self)  # transfers etc. through the authenticator too
            else:
                wallet = Wallet(key_pair_from(secret), 0, 0)  # SecretError without the words on failure
                derived = wallet.address
            if address and address != derived:
                return node, wallet, derived, None
            account = await node.get_account(derived)
            wallet.account_number = account.account_number
            wallet.sequence = account.sequence
            return node, wallet, derived, account

        try:
            node, wallet, derived, account = await self._worker.run(setup(), self.settings.grpc_timeout_s + 5)
        except SecretError:
            self._worker.stop()
            self._worker = None
            raise
        except Exception as exc:  # noqa: BLE001 - reported as one line
            self._worker.stop()
            self._worker = None
            raise TemporaryExchangeError(f"dYdX node {e.node} unreachable: {_grpc_text(exc)}") from None
        if account is None:
            self._worker.stop()
            self._worker = None
            source = "the trading-key file is for" if self.trading_key else "the mnemonic derives"
            raise SecretError(f"{source} address {derived}, but dydx.address is {address}")
        self._node, self._wallet = node, wallet
        self.address = derived
        self.account_number = wallet.account_number
        self._pubkey = wallet.key.public_key_bytes
        logger.info(f"dYdX node {e.node}: account {derived} #{wallet.account_number}, sequence {wallet.sequence}")
        try:
            if self.trading_key is not None:
                await self._load_authenticator()
        except BaseException:
            await self.close()
            raise
        await self._read_venue_state()
        return derived

    async def _load_authenticator(self) -> None:
        key = self.trading_key
        resp = await self.query(lambda node: node.get_authenticators(self.address), "authenticator query",
                                budget=False)
        found = [a for a in resp.account_authenticators if int(a.id) == key.authenticator_id]
        if not found:
            ids = ", ".join(str(a.id) for a in resp.account_authenticators) or "none"
            raise SecretError(f"trading key: authenticator {key.authenticator_id} is not on account {self.address} "
                              f"(its authenticators: {ids}); add one with: runbot.py dydx add-trading-key")
        try:
            auth = parse_authenticator(found[0].type, found[0].config)
        except AuthenticatorFormatError as exc:
            raise SecretError(f"trading key: authenticator {key.authenticator_id} cannot be read: {exc}") from None
        if self._pubkey not in auth.signature_keys():
            raise SecretError(f"trading key: authenticator {key.authenticator_id} on {self.address} is for another "
                              f"key ({auth.describe()}); the key file does not match it")
        self.authenticator = auth
        logger.info(f"dYdX trading key: authenticator {key.authenticator_id} on {self.address}: {auth.describe()}")

    async def _read_venue_state(self) -> None:
        """The chain's block-rate limits and the account's fee tier; a node without these
        queries leaves them unset, with a warning (orders still go out)."""
        try:
            cfg = await self.query(query_rate_limits, "rate-limit query", budget=False)
            self.limiters = chain_limiters(cfg)
            logger.info("dYdX chain order limits: " + "; ".join(lim.describe() for lim in self.limiters.values()))
        except TemporaryExchangeError as exc:
            logger.warning(f"dYdX chain order limits unknown ({exc}); only the gRPC budget applies")
        try:
            self.fee_tier = await self.query(lambda node: query_fee_tier(node, self.address), "fee-tier query",
                                             budget=False)
            logger.info(f"dYdX {self.address}: {self.fee_tier.describe()}")
        except (TemporaryExchangeError, ValueError) as exc:
            logger.warning(f"dYdX fee tier unknown ({exc})")

    async def close(self) -> None:
        """Stop the worker thread and drop the node and wallet (idempotent)."""
        if self._worker is not None:
            w, self._worker = self._worker, None
            await asyncio.get_running_loop().run_in_executor(None, w.stop)
        self._node = self._wallet = None

    # ------------------------------------------------------------------ calls

    async def _call(self, job: Callable[[], Coroutine], what: str, budget: bool = True) -> Any:
        if self._worker is None or self._node is None:
            raise NotSent(f"dYdX node not connected ({what} not sent)")
        if not self.breaker.allow():
            self.stats["breaker_refused"] += 1
            raise NodeUnavailable(self.breaker.reason or "circuit_open: dYdX node")
        if budget and not await self.bucket.acquire(self.settings.grpc_max_wait_s):
            self.breaker.cancel_trial()
            self.stats["budget_refused"] += 1
            raise RateBudgetExceeded(
                f"gRPC budget of {self.settings.grpc_rate_per_s:g} calls/s exhausted for more than "
                f"{self.settings.grpc_max_wait_s:g}s; {what} not sent"
            )
        self.stats["calls"] += 1
        try:
            result = await self._worker.run(job(), self.settings.grpc_timeout_s * 2 + 5)
        except (asyncio.CancelledError, KeyNotAllowed):  # KeyNotAllowed: refused before sending
            raise
        except Exception as exc:  # noqa: BLE001 - transport failure: breaker + temporary error
            self.stats["failures"] += 1
            text = _grpc_text(exc)
            self.breaker.record_failure(text)
            if never_sent(exc):
                raise NotSent(f"dYdX node {what} not sent: {text}") from None
            self.stats["outcome_unknown"] += 1
            raise OutcomeUnknown(f"dYdX node {what} failed: {text} (outcome unknown)") from None
        self.breaker.record_success()
        return result

    async def latest_height(self) -> int:
        """The chain's latest block height (the node's ``GetLatestBlock``; v4-clients
        ``dydx_v4_client/node/client.py`` ``latest_block_height``).

        :raises NotSent, NodeUnavailable, RateBudgetExceeded, OutcomeUnknown: see the classes
            (all :class:`~perpbot.core.errors.TemporaryExchangeError`).
        """
        node = self._node

        async def job():
            return int(await node.latest_block_height())

        height = await self._call(job, "height query")
        for lim in self.limiters.values():
            lim.observe_height(height)
        return height

    async def query(self, fn: Callable[[Any], Coroutine], what: str, *, budget: bool = True) -> Any:
        """Run ``fn(node_client)`` (a coroutine over dydx-v4-client's ``NodeClient``) on the
        worker, under the breaker and the deadline, and the gRPC budget unless ``budget`` is
        False (the few queries made at connect).

        :raises NotSent, NodeUnavailable, RateBudgetExceeded, OutcomeUnknown: as :meth:`_call`.
        """
        node = self._node
        return await self._call(lambda: fn(node), what, budget)

    # ------------------------------------------------------------------ trading key, chain limits

    def tx_options(self, wallet: Any) -> Any:
        """``TxOptions`` naming the trading key's authenticator, for ``wallet``'s sequence and
        account number (None when the mnemonic signs). Pass it to the client's
        ``broadcast_message(wallet, msg, tx_options=...)`` inside :meth:`broadcast`; the
        client's ``transfer``/``deposit``/``withdraw`` cannot carry it."""
        if self.trading_key is None:
            return None
        from dydx_v4_client.node.builder import TxOptions

        return TxOptions(authenticators=[self.trading_key.authenticator_id], sequence=wallet.sequence,
                         account_number=wallet.account_number)

    def key_refusal(self, msg_type_url: str, clob_pair_ids: tuple = (), subaccount: int | None = None) -> str | None:
        """Why the trading key's authenticator would refuse this message (None: allowed, or no
        trading key). Same rules as the chain (:mod:`perpbot.exchanges.dydx.authenticators`)."""
        if self.trading_key is None or self.authenticator is None:
            return None
        return self.authenticator.refusal(msg_type_url, tuple(clob_pair_ids), subaccount, self._pubkey)

    def key_allows(self, msg_type_url: str, clob_pair_id: int | None = None, subaccount: int | None = None) -> bool:
        """Can this gateway's key sign the message? E.g. ``key_allows(MSG_CREATE_TRANSFER)``
        before moving collateral to an isolated market's subaccount. Always True with the mnemonic."""
        ids = () if clob_pair_id is None else (int(clob_pair_id),)
        return self.key_refusal(msg_type_url, ids, subaccount) is None

    def check_message(self, msg_type_url: str, what: str, hint: str = "") -> None:
        """Raise :class:`KeyNotAllowed` (one line, ending with ``hint``) when the trading key may
        not sign a message of this type (no market, no subaccount: e.g. a transfer)."""
        self._check_key(msg_type_url, (), None, what, hint)

    def _check_key(self, msg_type_url: str, clob_pair_ids: tuple, subaccount: int | None, what: str,
                   hint: str = "") -> None:
        reason = self.key_refusal(msg_type_url, clob_pair_ids, subaccount)
        if reason:
            self.stats["key_refused"] = self.stats.get("key_refused", 0) + 1
            text = (f"trading key authenticator {self.trading_key.authenticator_id} does not allow "
                    f"{msg_type_url} (clob pair {','.join(map(str, clob_pair_ids)) or '-'}, subaccount "
                    f"{'-' if subaccount is None else subaccount}): {reason}; {what} not sent{hint}")
            logger.error(text)
            raise KeyNotAllowed(text)

    async def _chain_gate(self, kind: str, weight: int, what: str) -> None:
        """Wait (reading new heights) until the chain's block-rate limit ``kind`` has room for ``weight``."""
        lim = self.limiters.get(kind)
        if lim is not None and not await lim.wait_for_room(weight, self.settings.grpc_max_wait_s, self.latest_height):
            self.stats["chain_limited"] = self.stats.get("chain_limited", 0) + 1
            n, limit = lim.blocking_rule(weight) or (0, 0)
            raise ChainRateLimited(
                f"chain rate limit: at most {limit} {lim.name} per {n} block(s) (clob BlockRateLimitConfiguration), "
                f"still full after {self.settings.grpc_max_wait_s:g}s; {what} not sent")

    async def broadcast(self, make_msg: Callable[[Any, Any], Coroutine], *, stateful: bool, what: str) -> TxResult:
        """Sign and broadcast one message; ``make_msg(node, wallet)`` is the client call.

        Stateful txs are serialized and consume the local sequence; a sequence mismatch
        resyncs it and retries once.
        """
        if stateful:
            async with self._stateful_lock:
                return await self._broadcast(make_msg, stateful, what)
        return await self._broadcast(make_msg, stateful, what)

    async def _broadcast(self, make_msg, stateful: bool, what: str) -> TxResult:
        node, wallet, address = self._node, self._wallet, self.address
        stats = self.stats

        async def job():
            resynced = False
            for attempt in (0, 1):
                resp = await make_msg(node, wallet)
                tx = resp.tx_response
                if tx.code == 0:
                    if stateful:
                        wallet.sequence += 1
                    return TxResult(0, tx.raw_log, tx.txhash, tx.codespace, resynced)
                if "sequence mismatch" in tx.raw_log and attempt == 0:
                    m = _SEQ_RX.search(tx.raw_log)
                    if m:
                        wallet.sequence = int(m.group(1))
                    else:
                        wallet.sequence = (await node.get_account(address)).sequence
                    stats["sequence_resyncs"] += 1
                    resynced = True
                    continue
                return TxResult(int(tx.code), tx.raw_log, tx.txhash, tx.codespace, resynced)
            raise AssertionError("unreachable")  # pragma: no cover

        result = await self._call(job, what)
        if not result.ok:
            stats["rejected"] += 1
        return result

    # ------------------------------------------------------------------ messages

    async def place_order(self, order: Any, *, stateful: bool) -> TxResult:
        """Broadcast ``MsgPlaceOrder`` for the ``Order`` proto ``order`` (v4-chain
        ``proto/dydxprotocol/clob/tx.proto``); ``stateful`` for long-term/conditional orders
        (they consume the sequence).

        :returns: CheckTx's verdict.
        :raises NotSent, NodeUnavailable, RateBudgetExceeded: nothing was sent.
        :raises OutcomeUnknown: the reply was lost; the order may be on the venue.
        """
        what = f"place order {order.order_id.client_id}"
        oid = order.order_id
        self._check_key(MSG_PLACE_ORDER, (oid.clob_pair_id,), oid.subaccount_id.number, what)
        await self._chain_gate("stateful" if stateful else "short_term", 1, what)
        return await self.broadcast(lambda node, wallet: node.place_order(wallet, order, self.tx_options(wallet)),
                                    stateful=stateful, what=what)

    async def cancel_order(self, order_id: Any, *, good_til_block: int | None = None,
                           good_til_block_time: int | None = None) -> TxResult:
        """Broadcast ``MsgCancelOrder`` for ``order_id`` (an ``OrderId`` proto): short-term
        with ``good_til_block`` (a height), stateful with ``good_til_block_time`` (unix s).

        :raises NotSent, NodeUnavailable, RateBudgetExceeded: nothing was sent.
        :raises OutcomeUnknown: the reply was lost.
        """
        stateful = good_til_block_time is not None
        what = f"cancel order {order_id.client_id}"
        self._check_key(MSG_CANCEL_ORDER, (order_id.clob_pair_id,), order_id.subaccount_id.number, what)
        if not stateful:  # stateful cancels are not rate limited (v4-chain order_rate_limiter.go)
            await self._chain_gate("short_term", 1, what)
        return await self.broadcast(
            lambda node, wallet: node.cancel_order(wallet, order_id, good_til_block=good_til_block,
                                                   good_til_block_time=good_til_block_time,
                                                   tx_options=self.tx_options(wallet)),
            stateful=stateful, what=what,
        )

    async def batch_cancel(self, subaccount_id: Any, batches: list, good_til_block: int) -> TxResult:
        """Broadcast ``MsgBatchCancel`` (short-term orders only; v4-chain
        ``proto/dydxprotocol/clob/tx.proto``): ``batches`` of ``OrderBatch(clob_pair_id,
        client_ids)``, valid until ``good_til_block``.

        :raises NotSent, NodeUnavailable, RateBudgetExceeded: nothing was sent.
        :raises OutcomeUnknown: the reply was lost.
        """
        what = f"batch cancel of {sum(len(b.client_ids) for b in batches)} order(s)"
        self._check_key(MSG_BATCH_CANCEL, tuple(b.clob_pair_id for b in batches), subaccount_id.number, what)
        await self._chain_gate("short_term", BATCH_CANCEL_WEIGHT, what)
        return await self.broadcast(
            lambda node, wallet: node.batch_cancel_orders(wallet, subaccount_id, batches, good_til_block,
                                                          tx_options=self.tx_options(wallet)),
            stateful=False, what=what,
        )

    async def add_authenticator(self, authenticator: Any) -> TxResult:
        """Broadcast ``MsgAddAuthenticator`` with the MAIN key (dydx-v4-client 1.1.5
        ``NodeClient.add_authenticator``; ``authenticator``: its ``Authenticator``).

        :raises SecretError: this gateway signs with a trading key.
        :raises NotSent, NodeUnavailable, RateBudgetExceeded, OutcomeUnknown: as :meth:`broadcast`.
        """
        if self.trading_key is not None:
            raise SecretError("adding an authenticator needs the main wallet's mnemonic, not a trading key")
        return await self.broadcast(lambda node, wallet: node.add_authenticator(wallet, authenticator),
                                    stateful=True, what="add authenticator")

    async def remove_authenticator(self, authenticator_id: int) -> TxResult:
        """Broadcast ``MsgRemoveAuthenticator`` for ``authenticator_id`` with the MAIN key.

        :raises SecretError: this gateway signs with a trading key.
        :raises NotSent, NodeUnavailable, RateBudgetExceeded, OutcomeUnknown: as :meth:`broadcast`.
        """
        if self.trading_key is not None:
            raise SecretError("removing an authenticator needs the main wallet's mnemonic, not a trading key")
        return await self.broadcast(lambda node, wallet: node.remove_authenticator(wallet, int(authenticator_id)),
                                    stateful=True, what=f"remove authenticator {authenticator_id}")


def _grpc_text(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    details = getattr(exc, "details", None)
    if callable(code) and callable(details):
        try:
            return f"{code().name}: {details()}"
        except Exception:  # noqa: BLE001
            pass
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
