"""One market's order book in the fake indexer: absolute level sizes (the stream's
semantics, ``"0"`` deletes) and the uncrossed, capped REST snapshot comlink serves."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Optional

from .protocol import D, fmt


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
