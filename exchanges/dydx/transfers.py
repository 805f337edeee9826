"""USDC moves between the bot's subaccounts and its wallet: ``MsgCreateTransfer`` (subaccount
-> subaccount), ``MsgDepositToSubaccount`` (wallet -> subaccount) and
``MsgWithdrawFromSubaccount`` (subaccount -> wallet), signed and sent with dydx-v4-client
1.1.5's own ``NodeClient.transfer`` / ``deposit`` / ``withdraw`` (v4-clients
``v4-client-py-v2/dydx_v4_client/node/client.py``; messages in v4-chain
``proto/dydxprotocol/sending/tx.proto`` and ``transfer.proto``). Asset 0 is USDC, in quote
quantums of 1e-6 (v4-chain ``protocol/x/assets``: USDC atomic resolution -6).

**Accepted is not done.** These are not clob messages: CheckTx runs only the ante handler,
the transfer itself executes when the block is delivered (cosmos-sdk ``baseapp`` skips
message execution in CheckTx mode), so a CheckTx ``code 0`` can still fail in the block
(e.g. the sender would end up under-collateralized, v4-chain
``protocol/x/subaccounts/keeper/subaccount.go`` ``UpdateSubaccounts``). :meth:`Transfers.send`
therefore waits for the indexer to show the transfer -- a ``transfers`` row with the same
``transactionHash`` on a subaccount stream (:meth:`Transfers.on_stream_transfer`) or in
``GET /v4/transfers`` (comlink ``transfers-controller.ts``) -- for ``confirm_timeout_s``;
no row in that time is a failure (:class:`TransferFailed`), said with its reason.

Every move is kept in :attr:`Transfers.records` (:class:`TransferRecord`: when, from,
to, USD amount, why, tx hash, outcome), logged, and counted (``transfers``,
``transfer_failures``); the exchange also reports it to the bot's observers (the journal).

Imports :mod:`perpbot.core` (errors) and the dYdX node / rest types only; the v4-proto
``SubaccountId`` is imported on use.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from decimal import Decimal
from typing import Any, Callable, Mapping

from loguru import logger

from perpbot.core.errors import ExchangeError, TemporaryExchangeError
from perpbot.core.model import CollateralTransfer
from perpbot.exchanges.dydx.node import NodeGateway, OutcomeUnknown, TxResult
from perpbot.exchanges.dydx.rest import IndexerRest
from perpbot.exchanges.dydx.subaccounts import QUOTE_QUANTUM, to_quantums

#: USDC's asset id on dYdX (v4-chain ``protocol/x/assets/types/genesis.go``)
USDC_ASSET_ID = 0
#: how long a transfer may take to show on the indexer before it counts as failed, seconds
CONFIRM_TIMEOUT_S = 15.0


class TransferFailed(ExchangeError):
    """A transfer did not happen (refused by CheckTx, not sent, or never shown by the
    indexer); the message says which and why."""


#: one USDC move as the bot did it (:class:`perpbot.core.model.CollateralTransfer`: when, kind,
#: from, to, USD amount, why, tx hash, ``confirmed`` / ``failed`` and why); emitted to the bot,
#: which tells its observers (``on_collateral_transfer``: the journal's ``transfers`` table)
TransferRecord = CollateralTransfer


class Transfers:
    """Sends transfers, deposits and withdrawals and waits for the indexer to show them.

    :param node: signs and sends (stateful txs: they consume the account sequence).
    :param rest: reads ``GET /v4/transfers`` when the stream is slow.
    :param address: the wallet (owner of every subaccount moved between).
    :param now_ns: clock (ns).
    :param on_record: called with each :class:`TransferRecord` (e.g. the exchange's emit).
    :param confirm_timeout_s: see the module docstring.
    """

    def __init__(self, node: NodeGateway, rest: IndexerRest | None, address: str, *, now_ns: Callable[[], int],
                 on_record: Callable[[TransferRecord], None] | None = None,
                 confirm_timeout_s: float = CONFIRM_TIMEOUT_S, poll_s: float = 0.5):
        self.node = node
        self.rest = rest
        self.address = address
        self.now_ns = now_ns
        self.on_record = on_record
        self.confirm_timeout_s = confirm_timeout_s
        self.poll_s = poll_s
        self.records: deque[TransferRecord] = deque(maxlen=1000)
        self.counters = {"transfers": 0, "transfer_failures": 0}
        self._seen: dict[str, Mapping[str, Any]] = {}
        self._waiters: dict[str, asyncio.Event] = {}

    # -- confirmation -------------------------------------------------------------

    def on_stream_transfer(self, number: int, row: Mapping[str, Any]) -> None:
        """A ``transfers`` row from subaccount ``number``'s stream: wakes the sender waiting for
        its ``transactionHash``."""
        h = str(row.get("transactionHash") or "").upper()
        if not h:
            return
        self._seen[h] = row
        ev = self._waiters.get(h)
        if ev is not None:
            ev.set()

    async def _rest_shows(self, txhash: str, number: int) -> bool:
        if self.rest is None:
            return False
        rest = self.rest
        data = await rest.call(f"transfers {self.address}/{number}", rest.client.account.get_subaccount_transfers,
                               self.address, number, 20)
        for row in (data or {}).get("transfers") or ():
            if str(row.get("transactionHash") or "").upper() == txhash:
                self._seen[txhash] = row
                return True
        return False

    async def _confirm(self, txhash: str, number: int) -> str:
        """'' once the indexer shows ``txhash`` on subaccount ``number``, else the reason."""
        h = txhash.upper()
        if h in self._seen:
            return ""
        ev = self._waiters.setdefault(h, asyncio.Event())
        deadline = time.monotonic() + self.confirm_timeout_s
        last_error = ""
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    async with asyncio.timeout(min(self.poll_s, left)):
                        await ev.wait()
                    return ""
                except TimeoutError:
                    pass
                try:
                    if await self._rest_shows(h, number):
                        return ""
                except ExchangeError as exc:
                    last_error = f"; the indexer could not be read: {exc}"
            return (f"accepted by CheckTx (tx {h[:12]}) but not shown by the indexer within "
                    f"{self.confirm_timeout_s:g}s: it failed in the block or is late{last_error}")
        finally:
            self._waiters.pop(h, None)

    # -- sending ------------------------------------------------------------------

    async def _send(self, kind: str, sender: str, recipient: str, amount: Decimal, reason: str,
                    make_msg: Callable[[Any, Any], Any], confirm_on: int | None) -> TransferRecord:
        ts = self.now_ns()
        what = f"{kind.lower()} of {amount} USDC {sender} -> {recipient}"
        try:
            tx: TxResult = await self.node.broadcast(make_msg, stateful=True, what=what)
        except OutcomeUnknown as exc:
            # the node may have taken it, but without a tx hash the indexer cannot be asked
            return self._done(ts, kind, sender, recipient, amount, reason, "",
                              f"outcome unknown ({exc}); check the subaccounts before trying again")
        except TemporaryExchangeError as exc:
            return self._done(ts, kind, sender, recipient, amount, reason, "", f"not sent: {exc}")
        if not tx.ok:
            return self._done(ts, kind, sender, recipient, amount, reason, tx.txhash,
                              f"refused by the node: CheckTx code {tx.code}: {tx.raw_log}")
        if confirm_on is None:
            return self._done(ts, kind, sender, recipient, amount, reason, tx.txhash, "")
        error = await self._confirm(tx.txhash, confirm_on)
        return self._done(ts, kind, sender, recipient, amount, reason, tx.txhash, error)

    def _done(self, ts, kind, sender, recipient, amount, reason, txhash, error) -> TransferRecord:
        rec = TransferRecord(ts_ns=ts, kind=kind, sender=sender, recipient=recipient, amount=amount, reason=reason,
                             txhash=txhash, status="failed" if error else "confirmed", error=error, venue="dydx")
        self.records.append(rec)
        if error:
            self.counters["transfer_failures"] += 1
            logger.warning(f"dYdX {kind.lower()} of {amount} USDC {sender} -> {recipient} ({reason}) failed: {error}")
        else:
            self.counters["transfers"] += 1
            logger.info(f"dYdX {kind.lower()} of {amount} USDC {sender} -> {recipient} ({reason}): done (tx {txhash[:12]})")
        if self.on_record is not None:
            self.on_record(rec)
        return rec

    async def transfer(self, sender: int, recipient: int, amount: Decimal, reason: str) -> TransferRecord:
        """Move ``amount`` USD of USDC from subaccount ``sender`` to ``recipient`` (same owner)
        with ``MsgCreateTransfer`` and wait until the indexer shows it on ``recipient``.

        :returns: the record (``status`` confirmed or failed, with the reason).
        :raises ValueError: a non-positive amount or one below 1e-6.
        """
        from v4_proto.dydxprotocol.subaccounts.subaccount_pb2 import SubaccountId

        q = self._quantums(amount)
        owner = self.address
        s, r = SubaccountId(owner=owner, number=int(sender)), SubaccountId(owner=owner, number=int(recipient))
        return await self._send("TRANSFER", f"{owner}/{sender}", f"{owner}/{recipient}", q * QUOTE_QUANTUM, reason,
                                lambda node, wallet: node.transfer(wallet, s, r, USDC_ASSET_ID, q), int(recipient))

    async def deposit(self, recipient: int, amount: Decimal, reason: str = "deposit") -> TransferRecord:
        """Move ``amount`` USD of USDC from the wallet into subaccount ``recipient``
        (``MsgDepositToSubaccount``) and wait until the indexer shows it.

        :raises ValueError: a non-positive amount.
        """
        from v4_proto.dydxprotocol.subaccounts.subaccount_pb2 import SubaccountId

        q = self._quantums(amount)
        owner = self.address
        r = SubaccountId(owner=owner, number=int(recipient))
        return await self._send("DEPOSIT", owner, f"{owner}/{recipient}", q * QUOTE_QUANTUM, reason,
                                lambda node, wallet: node.deposit(wallet, owner, r, USDC_ASSET_ID, q), int(recipient))

    async def withdraw(self, sender: int, amount: Decimal, reason: str = "withdraw") -> TransferRecord:
        """Move ``amount`` USD of USDC from subaccount ``sender`` to the wallet
        (``MsgWithdrawFromSubaccount``) and wait until the indexer shows it.

        :raises ValueError: a non-positive amount.
        """
        from v4_proto.dydxprotocol.subaccounts.subaccount_pb2 import SubaccountId

        q = self._quantums(amount)
        owner = self.address
        s = SubaccountId(owner=owner, number=int(sender))
        return await self._send("WITHDRAWAL", f"{owner}/{sender}", owner, q * QUOTE_QUANTUM, reason,
                                lambda node, wallet: node.withdraw(wallet, s, owner, USDC_ASSET_ID, q), int(sender))

    @staticmethod
    def _quantums(amount: Decimal) -> int:
        if not isinstance(amount, Decimal) or not amount.is_finite() or amount < QUOTE_QUANTUM:
            raise ValueError(f"amount {amount!r}: must be a Decimal of at least {QUOTE_QUANTUM} USDC")
        return to_quantums(amount)
