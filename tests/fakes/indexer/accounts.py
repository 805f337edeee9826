"""Account state of the fake indexer in comlink's REST shapes: subaccounts, their USDC
asset position, open perpetual positions, and equity / free collateral recomputed from
the oracle prices."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from .dataset import Dataset
from .protocol import D, fmt


class AccountState:
    """Subaccount bookkeeping mixed into ``FakeIndexer`` (tests/fakes/indexer/server.py).

    Uses the server's ``subaccounts`` ({(address, number): REST subaccount}),
    ``positions`` ({(address, number): {market: REST position}}), ``orders``, ``fills``,
    ``markets`` and ``height``.
    """

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
