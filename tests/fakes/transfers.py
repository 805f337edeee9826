"""Transfer bridge: accepted ``MsgCreateTransfer`` / ``MsgDepositToSubaccount`` /
``MsgWithdrawFromSubaccount`` txs of the ``FakeNode`` move USDC in the ``FakeIndexer`` (and
in the node's bank balances), the way the chain executes them when the block is delivered.

* CheckTx accepts these messages without executing them (cosmos-sdk ``baseapp`` skips
  message execution in CheckTx mode); the move happens in the block. So a transfer that
  would leave the sender short (v4-chain ``protocol/x/subaccounts/keeper/subaccount.go``
  ``UpdateSubaccounts``: the sender must stay initially collateralized; here: its
  ``freeCollateral`` must cover the amount) or a deposit above the wallet's bank balance
  is ACCEPTED by the node and then fails in the block: nothing moves, nothing is streamed
  (recorded in ``failed``). ``fail_next_in_block(n)`` makes the next ``n`` fail that way.
* A move that happens streams, on each side's ``v4_subaccounts`` channel, one update with
  the new USDC ``assetPositions`` row and a ``transfers`` row, and adds the row to
  ``GET /v4/transfers``. Shapes: socks ``TransferSubaccountMessageContents`` (v4-chain
  ``indexer/packages/postgres/src/types/websocket-message-types.ts``: ``sender``,
  ``recipient`` as ``{address, subaccountNumber?}``, ``symbol``, ``size``, ``type`` one of
  TRANSFER_IN / TRANSFER_OUT / DEPOSIT / WITHDRAWAL seen from that subaccount,
  ``createdAt``, ``createdAtHeight``, ``transactionHash``), as in the recorded
  ``nautilus_py/websocket/v4_accounts_channel_data_transfers.json``; comlink's REST rows
  (``transfers-controller.ts`` ``TransferResponseObject``) add ``id``.
* USDC is asset 0 in quote quantums of 1e-6.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any, Optional

from .indexer import FakeIndexer, bytes_uuid, fmt, iso_now
from .node import BroadcastRecord, FakeNode

log = logging.getLogger("tests.fakes.transfers")

QUANTUM = Decimal("0.000001")


class TransferBridge:
    """Executes the node's accepted transfer messages on the indexer (see the module docstring).

    Args:
        indexer: the running FakeIndexer (its loop executes the moves).
        node: the FakeNode whose accepted broadcasts are executed.
        usdc_denom: the bank denom of USDC on the node (deposits / withdrawals).
    """

    def __init__(self, indexer: FakeIndexer, node: FakeNode, *,
                 usdc_denom: str = "ibc/8E27BA2D5493AF5636760E354E46004562C46AB7EC0CC4C1CA14E9E20E2545B5"):
        self.indexer = indexer
        self.node = node
        self.usdc_denom = usdc_denom
        self.done: list[dict] = []       # executed moves
        self.failed: list[dict] = []     # accepted by CheckTx, failed in the block
        self._fail_next = 0
        node.add_listener(self._on_broadcast)

    def fail_next_in_block(self, n: int = 1) -> None:
        """The next ``n`` accepted transfer messages fail in the block (nothing moves)."""
        self._fail_next += int(n)

    def _on_broadcast(self, rec: BroadcastRecord) -> None:
        if rec.code != 0:
            return
        kinds = {"MsgCreateTransfer", "MsgDepositToSubaccount", "MsgWithdrawFromSubaccount"}
        if not any(type(m).__name__ in kinds for m in rec.messages if m is not None):
            return
        try:
            self.indexer.call_soon_threadsafe(self.execute, rec)
        except RuntimeError:
            log.warning("indexer not running: transfer %s not executed", rec.txhash)

    def execute(self, rec: BroadcastRecord) -> None:
        """Execute every transfer message of ``rec`` (indexer loop thread)."""
        for m in rec.messages:
            name = type(m).__name__
            try:
                if name == "MsgCreateTransfer":
                    t = m.transfer
                    self._move(rec.txhash, (t.sender.owner, t.sender.number), (t.recipient.owner, t.recipient.number),
                               int(t.amount), "TRANSFER")
                elif name == "MsgDepositToSubaccount":
                    self._move(rec.txhash, (m.sender, None), (m.recipient.owner, m.recipient.number),
                               int(m.quantums), "DEPOSIT")
                elif name == "MsgWithdrawFromSubaccount":
                    self._move(rec.txhash, (m.sender.owner, m.sender.number), (m.recipient, None),
                               int(m.quantums), "WITHDRAWAL")
            except Exception:  # pragma: no cover - a broken fake must be loud
                log.exception("transfer execution failed for %s", name)

    def _fail(self, txhash: str, why: str, **row: Any) -> None:
        self.failed.append({"transactionHash": txhash, "reason": why, **row})
        log.info("transfer %s failed in the block: %s", txhash[:12], why)

    def _move(self, txhash: str, sender: tuple[str, Optional[int]], recipient: tuple[str, Optional[int]],
              quantums: int, kind: str) -> None:
        ix = self.indexer
        amount = Decimal(quantums) * QUANTUM
        if self._fail_next > 0:
            self._fail_next -= 1
            return self._fail(txhash, "injected failure", kind=kind, amount=str(amount))
        s_addr, s_num = sender
        r_addr, r_num = recipient
        if s_num is not None:
            sub = ix.subaccounts.get((s_addr, s_num))
            free = Decimal(sub["freeCollateral"]) if sub else Decimal(0)
            if free < amount:
                return self._fail(txhash, f"subaccount {s_addr}/{s_num} free collateral {free} < {amount}: "
                                          f"NewlyUndercollateralized", kind=kind, amount=str(amount))
        else:
            with self.node._lock:
                bank = self.node.balances.setdefault(s_addr, {}).get(self.usdc_denom, 0)
                if bank < quantums:
                    return self._fail(txhash, f"wallet {s_addr} holds {bank} < {quantums} quantums: "
                                              f"insufficient funds", kind=kind, amount=str(amount))
                self.node.balances[s_addr][self.usdc_denom] = bank - quantums
        if r_num is None:
            with self.node._lock:
                bal = self.node.balances.setdefault(r_addr, {})
                bal[self.usdc_denom] = bal.get(self.usdc_denom, 0) + quantums
        height = str(ix.height)
        now = iso_now()
        base = {
            "sender": {"address": s_addr, **({"subaccountNumber": s_num} if s_num is not None else {})},
            "recipient": {"address": r_addr, **({"subaccountNumber": r_num} if r_num is not None else {})},
            "symbol": "USDC", "size": fmt(amount), "createdAt": now, "createdAtHeight": height,
            "transactionHash": txhash,
        }
        sides = []
        if s_num is not None:
            sides.append((s_addr, s_num, -amount, "TRANSFER_OUT" if kind == "TRANSFER" else kind))
        if r_num is not None:
            sides.append((r_addr, r_num, amount, "TRANSFER_IN" if kind == "TRANSFER" else kind))
        for addr, num, delta, typ in sides:
            ix.ensure_subaccount(addr, num)
            usdc = ix.usdc_balance(addr, num) + delta
            row = {**base, "type": typ, "id": bytes_uuid(f"{txhash}-{addr}-{num}".encode())}
            ix.apply_subaccount(addr, num, asset_positions=[{
                "address": addr, "subaccountNumber": num, "positionId": "", "assetId": "0", "symbol": "USDC",
                "side": "LONG" if usdc >= 0 else "SHORT", "size": fmt(abs(usdc))}], transfers=row)
        self.done.append({**base, "type": kind})
