"""One CLOB pair's L3 order book, built from the full node's order messages, in integers.

Every resting order is kept with its side, price in subticks, size in base quantums and
total filled quantums; the L2 view (remaining quantums per price level) is maintained
alongside, so the best levels are O(1) and a level change is O(log n). Nothing here
converts to USD or base units: :mod:`perpbot.exchanges.dydx.stream.books` does that at the
edge with the market's atomic resolution and quantum conversion exponent.

The rules follow the stream's documented semantics (v4-documentation
``pages/api_integration-full-nodes/full_node_streaming.md``, v4-chain
``proto/dydxprotocol/indexer/off_chain_updates/off_chain_updates.proto``):

- ``OrderPlaceV1`` adds an order with its full ``quantums`` and nothing filled (an
  ``OrderUpdateV1`` with the fill amount always follows);
- ``OrderUpdateV1`` and a ``ClobMatch``'s ``fill_amounts`` set the order's TOTAL filled
  quantums (absolute, not an increment); an update of an order not in the book is
  ignored (it may arrive before the placement);
- ``OrderRemoveV1`` removes the order (a best-effort cancel too: if the cancel is
  reverted the node sends a new placement).

The remaining size of an order is ``quantums - filled`` (never below 0); a level whose
remaining total reaches 0 leaves the L2 view even while its orders wait for removal.
"""

from __future__ import annotations

from typing import Hashable

from sortedcontainers import SortedDict

#: an order's identity: (owner, subaccount number, client_id, order_flags, clob_pair_id)
#: (v4-chain ``proto/dydxprotocol/clob/order.proto`` ``OrderId``; the indexer's
#: ``IndexerOrderId`` carries the same fields)
OrderKey = tuple


class L3Book:
    """The orders of one CLOB pair and the price levels they make, in subticks and quantums.

    :param clob_pair_id: the pair (``clobPairId`` of ``/v4/perpetualMarkets``).

    Fields: ``orders`` ``{OrderKey: [is_bid, subticks, quantums, filled]}``; ``bids`` /
    ``asks`` :class:`~sortedcontainers.SortedDict` ``{subticks: remaining quantums}``;
    ``changed`` the ``(is_bid, subticks)`` levels touched since :meth:`take_changes`;
    ``counters`` (``places``, ``updates``, ``removes``, ``fills``, ``replaced_places``,
    ``unknown_updates``, ``unknown_removes``, ``unknown_fills``).
    """

    __slots__ = ("clob_pair_id", "orders", "bids", "asks", "changed", "counters")

    def __init__(self, clob_pair_id: int):
        self.clob_pair_id = int(clob_pair_id)
        self.orders: dict[Hashable, list] = {}
        self.bids: SortedDict = SortedDict()
        self.asks: SortedDict = SortedDict()
        self.changed: set[tuple[bool, int]] = set()
        self.counters = dict.fromkeys(
            ("places", "updates", "removes", "fills", "replaced_places", "unknown_updates",
             "unknown_removes", "unknown_fills"), 0)

    # ------------------------------------------------------------------ levels

    def _add_level(self, is_bid: bool, subticks: int, delta: int) -> None:
        if delta == 0:
            return
        side = self.bids if is_bid else self.asks
        total = side.get(subticks, 0) + delta
        if total > 0:
            side[subticks] = total
        else:
            side.pop(subticks, None)
        self.changed.add((is_bid, subticks))

    # ------------------------------------------------------------------ order messages

    def place(self, key: OrderKey, is_bid: bool, subticks: int, quantums: int) -> None:
        """Add a resting order (``OrderPlaceV1``) with nothing filled.

        A placement of an order id already in the book replaces it (counted in
        ``replaced_places``; the stream sends a removal first, so this is a repair).

        :param subticks: int > 0, price in subticks. :param quantums: int > 0, size in base quantums.
        :raises ValueError: a non-positive price or size (the chain never sends one:
            ``uint64`` fields, ``subticks`` > 0 for non-TWAP orders, ``x/clob/types/message_place_order.go``).
        """
        if subticks <= 0 or quantums <= 0:
            raise ValueError(f"order {key!r}: subticks {subticks} and quantums {quantums} must be > 0")
        self.counters["places"] += 1
        if key in self.orders:
            self.counters["replaced_places"] += 1
            self.remove(key)
            self.counters["removes"] -= 1
        self.orders[key] = [is_bid, subticks, quantums, 0]
        self._add_level(is_bid, subticks, quantums)

    def set_filled(self, key: OrderKey, filled: int, *, from_fill: bool = False) -> bool:
        """Set an order's TOTAL filled quantums (``OrderUpdateV1`` or a match's ``fill_amounts``).

        :param filled: int >= 0, absolute filled quantums (the remaining size becomes
            ``max(quantums - filled, 0)``).
        :param from_fill: counted as a fill (``fills``/``unknown_fills``) instead of an update.
        :returns: False when the order is not in the book (ignored, counted).
        """
        order = self.orders.get(key)
        if order is None:
            self.counters["unknown_fills" if from_fill else "unknown_updates"] += 1
            return False
        self.counters["fills" if from_fill else "updates"] += 1
        is_bid, subticks, quantums, old = order
        filled = max(int(filled), 0)
        before = max(quantums - old, 0)
        after = max(quantums - filled, 0)
        order[3] = filled
        self._add_level(is_bid, subticks, after - before)
        return True

    def remove(self, key: OrderKey) -> bool:
        """Remove an order (``OrderRemoveV1``).

        :returns: False when the order is not in the book (ignored, counted in ``unknown_removes``).
        """
        order = self.orders.pop(key, None)
        if order is None:
            self.counters["unknown_removes"] += 1
            return False
        self.counters["removes"] += 1
        is_bid, subticks, quantums, filled = order
        self._add_level(is_bid, subticks, -max(quantums - filled, 0))
        return True

    def order(self, key: OrderKey) -> list | None:
        """``[is_bid, subticks, quantums, filled]`` of a resting order, or None."""
        return self.orders.get(key)

    def clear(self) -> None:
        """Forget every order and level (a new snapshot follows); every old level is marked changed."""
        for p in self.bids:
            self.changed.add((True, p))
        for p in self.asks:
            self.changed.add((False, p))
        self.orders.clear()
        self.bids.clear()
        self.asks.clear()

    # ------------------------------------------------------------------ L2 view

    def take_changes(self) -> list[tuple[bool, int, int]]:
        """The levels touched since the last call as ``(is_bid, subticks, remaining quantums)``
        (0 = the level is gone), and forget them."""
        out = []
        for is_bid, p in self.changed:
            side = self.bids if is_bid else self.asks
            out.append((is_bid, p, side.get(p, 0)))
        self.changed.clear()
        return out

    def best_bid(self) -> tuple[int, int] | None:
        """``(subticks, remaining quantums)`` of the best bid, or None."""
        return self.bids.peekitem(-1) if self.bids else None

    def best_ask(self) -> tuple[int, int] | None:
        """``(subticks, remaining quantums)`` of the best ask, or None."""
        return self.asks.peekitem(0) if self.asks else None

    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask (a node's own book never is:
        its matching engine, v4-chain ``protocol/x/clob/memclob``, fills crossing orders)."""
        return bool(self.bids) and bool(self.asks) and self.bids.peekitem(-1)[0] >= self.asks.peekitem(0)[0]

    def levels(self, is_bid: bool, n: int | None = None) -> list[tuple[int, int]]:
        """``[(subticks, remaining quantums)]`` best first, at most ``n`` levels."""
        side = self.bids if is_bid else self.asks
        keys = reversed(side.keys()) if is_bid else iter(side.keys())
        out = []
        for p in keys:
            if n is not None and len(out) >= n:
                break
            out.append((p, side[p]))
        return out

    def __len__(self) -> int:
        return len(self.orders)
