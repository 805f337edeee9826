"""Matching bridge: closes the loop between ``FakeNode`` and ``FakeIndexer``.

Every ACCEPTED broadcast (code 0) is handed, on the indexer's event loop, to a tiny
matching engine that trades against the fake indexer's book for that market:

* ``MsgPlaceOrder``: short-term orders first get a ``BEST_EFFORT_OPENED`` order update
  (what vulcan streams on placement); stateful ones ``OPEN``.  The order then takes
  liquidity from the opposite side while it crosses (level by level, at the level price),
  producing ``v4_orderbook`` level updates (absolute sizes, ``"0"`` when consumed),
  ``v4_trades`` trades, and one ``v4_subaccounts`` message with the fills, the order
  (``FILLED``, ``OPEN`` with ``totalFilled``, or ``BEST_EFFORT_CANCELED`` with the
  removal reason for an IOC remainder / post-only cross), the perpetual position and the
  USDC asset position.  A resting remainder is added to its book level.
* ``MsgCancelOrder`` / ``MsgBatchCancel``: a resting order whose GTB <= the cancel's GTB
  (short-term) is removed from the book; ``BEST_EFFORT_CANCELED`` (optional) then
  ``CANCELED`` with ``ORDER_REMOVAL_REASON_USER_CANCELED``.
* Height changes on the node expire resting short-term orders with GTB < height
  (``CANCELED`` / ``ORDER_REMOVAL_REASON_EXPIRED``, the real minimal shape).

All quantities use exact integer math:
``quantums = size * 10^-AR``, ``subticks = price * 10^(AR - QCE + 6)``,
``quote_quantums = floor(subticks * quantums * 10^QCE)``; fees are
``ceil(quote_quantums * ppm / 1e6)`` quote quantums (1e-6 USDC), toward +infinity for
taker fees and maker rebates alike (``fee_quantums``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Optional

from v4_proto.dydxprotocol.clob import order_pb2
from v4_proto.dydxprotocol.clob import tx_pb2 as clob_tx

from .indexer import (FakeIndexer, bytes_uuid, fmt, iso_now, order_uuid, subaccount_uuid, D)
from .node import ORDER_FLAG_SHORT_TERM, BroadcastRecord, FakeNode

log = logging.getLogger("tests.fakes.matching")

Order = order_pb2.Order
QUOTE_RESOLUTION = -6


# --------------------------------------------------------------------------- conversions

def size_to_quantums(size: Any, atomic_resolution: int) -> int:
    """Exact: raises ValueError if ``size`` is not a whole number of base quantums."""
    q = D(size).scaleb(-int(atomic_resolution))
    if q != q.to_integral_value():
        raise ValueError(f"size {size} is not a multiple of 10^{atomic_resolution}")
    return int(q)


def quantums_to_size(quantums: int, atomic_resolution: int) -> Decimal:
    return Decimal(int(quantums)).scaleb(int(atomic_resolution))


def price_to_subticks(price: Any, atomic_resolution: int, qce: int) -> int:
    s = D(price).scaleb(int(atomic_resolution) - int(qce) - QUOTE_RESOLUTION)
    if s != s.to_integral_value():
        raise ValueError(f"price {price} is not a whole number of subticks")
    return int(s)


def subticks_to_price(subticks: int, atomic_resolution: int, qce: int) -> Decimal:
    return Decimal(int(subticks)).scaleb(int(qce) - int(atomic_resolution) + QUOTE_RESOLUTION)


def fill_quote_quantums(subticks: int, quantums: int, qce: int) -> int:
    """floor(subticks * quantums * 10^QCE) for non-negative inputs (integer only)."""
    prod = int(subticks) * int(quantums)
    if qce >= 0:
        return prod * 10 ** qce
    return prod // 10 ** (-qce)


def fee_quantums(quote_quantums: int, ppm: int) -> int:
    """Fee in quote quantums (1e-6 USDC) of a fill of ``quote_quantums``: ``ceil(q * ppm / 1e6)``.

    Rounded toward +infinity for every sign, as the chain does: ``persistMatchedOrders`` in
    dydxprotocol/v4-chain ``protocol/x/clob/keeper/process_single_match.go`` computes both
    fees with ``lib.BigMulPpm(bigFillQuoteQuantums, feePpm, true)`` ("Taker fees and maker
    fees/rebates are rounded towards positive infinity"), and ``BigMulPpm`` with
    ``roundUp`` uses ``BigDivCeil`` (``protocol/lib/big_math.go``). So a taker fee rounds
    up, and a maker rebate (negative ppm) rounds toward zero: never larger than exact.
    """
    num = int(quote_quantums) * int(ppm)
    return -((-num) // 1_000_000)


TIF_NAMES = {
    Order.TIME_IN_FORCE_UNSPECIFIED: "GTT",
    Order.TIME_IN_FORCE_IOC: "IOC",
    Order.TIME_IN_FORCE_POST_ONLY: "GTT",
    Order.TIME_IN_FORCE_FILL_OR_KILL: "FOK",
}


@dataclass
class Resting:
    key: tuple
    uuid: str
    ticker: str
    side: int
    subticks: int
    price: Decimal
    quantums: int
    filled: int
    order: dict               # last WS order dict
    address: str
    number: int
    flags: int
    gtb: int

    @property
    def remaining(self) -> int:
        return self.quantums - self.filled


@dataclass
class _Pos:
    size: Decimal = Decimal(0)      # signed
    entry: Decimal = Decimal(0)
    max_size: Decimal = Decimal(0)
    sum_open: Decimal = Decimal(0)
    sum_close: Decimal = Decimal(0)
    exit_notional: Decimal = Decimal(0)
    realized: Decimal = Decimal(0)
    created_at: str = ""
    created_height: str = ""
    position_id: str = ""


@dataclass
class MatchingBridge:
    """Connects a FakeNode and a FakeIndexer (see module doc).

    Args:
        indexer: running FakeIndexer (its loop executes the matching).
        node: FakeNode whose accepted broadcasts are matched (optional: call
            ``submit(record)`` yourself).
        taker_fee_ppm / maker_fee_ppm: fees charged on fills (default tier 1: 500 / 100).
        best_effort_statuses: emit BEST_EFFORT_OPENED / BEST_EFFORT_CANCELED before the
            final status, as the real indexer does for short-term orders.
        initial_usdc: USDC balance given to a subaccount the first time it trades.
    """

    indexer: FakeIndexer
    node: Optional[FakeNode] = None
    taker_fee_ppm: int = 500
    maker_fee_ppm: int = 100
    best_effort_statuses: bool = True
    initial_usdc: Any = "10000"
    resting: dict[tuple, Resting] = field(default_factory=dict)
    positions: dict[tuple, _Pos] = field(default_factory=dict)
    events: list[tuple[str, Any]] = field(default_factory=list)
    _event_index: int = 0
    _tx_index: int = 0

    def __post_init__(self) -> None:
        if self.node is not None:
            self.node.add_listener(self._on_broadcast)
            self.node.add_height_listener(self._on_height)

    # ------------------------------------------------------------------ entry points
    def _on_broadcast(self, rec: BroadcastRecord) -> None:
        if rec.code != 0:
            return
        try:
            self.indexer.call_soon_threadsafe(self.submit, rec)
        except RuntimeError:
            log.warning("indexer not running: broadcast %s not matched", rec.txhash)

    def _on_height(self, height: int) -> None:
        try:
            self.indexer.call_soon_threadsafe(self.expire_orders, height)
        except RuntimeError:
            pass

    def submit(self, rec: BroadcastRecord) -> None:
        """Process one accepted broadcast (indexer loop thread)."""
        self._tx_index += 1
        self.expire_orders(self.indexer.height)
        for m in rec.messages:
            try:
                if isinstance(m, clob_tx.MsgPlaceOrder):
                    self.place(m.order, rec.txhash)
                elif isinstance(m, clob_tx.MsgCancelOrder):
                    self.cancel(m.order_id, m.good_til_block)
                elif isinstance(m, clob_tx.MsgBatchCancel):
                    sa = m.subaccount_id
                    for batch in m.short_term_cancels:
                        for cid in batch.client_ids:
                            oid = order_pb2.OrderId(subaccount_id=sa, client_id=cid,
                                                    order_flags=ORDER_FLAG_SHORT_TERM,
                                                    clob_pair_id=batch.clob_pair_id)
                            self.cancel(oid, m.good_til_block)
            except Exception:
                log.exception("matching failed for %s", type(m).__name__)

    # ------------------------------------------------------------------ helpers
    def _market(self, clob_pair_id: int) -> dict:
        return self.indexer.market_by_clob_pair(clob_pair_id)

    @staticmethod
    def _key(oid: order_pb2.OrderId) -> tuple:
        return (oid.subaccount_id.owner, oid.subaccount_id.number, oid.client_id,
                oid.order_flags, oid.clob_pair_id)

    def _event_id(self) -> bytes:
        self._event_index += 1
        h = self.indexer.height & 0xFFFFFFFF
        return h.to_bytes(4, "big") + (self._tx_index & 0xFFFFFFFF).to_bytes(4, "big") + \
            (self._event_index & 0xFFFFFFFF).to_bytes(4, "big")

    def _ensure_account(self, address: str, number: int) -> None:
        if (address, number) not in self.indexer.subaccounts:
            self.indexer.ensure_subaccount(address, number, usdc=self.initial_usdc)

    def _order_dict(self, o: Order, m: dict, status: str, filled: int, *, minimal=False,
                    removal_reason: Optional[str] = None) -> dict:
        oid = o.order_id
        ar, qce = int(m["atomicResolution"]), int(m["quantumConversionExponent"])
        addr, num = oid.subaccount_id.owner, oid.subaccount_id.number
        h = str(self.indexer.height)
        d: dict[str, Any] = {
            "id": order_uuid(addr, num, oid.client_id, oid.clob_pair_id, oid.order_flags),
            "subaccountId": subaccount_uuid(addr, num),
            "clientId": str(oid.client_id),
            "clobPairId": str(oid.clob_pair_id),
            "side": "BUY" if o.side == Order.SIDE_BUY else "SELL",
            "size": fmt(quantums_to_size(o.quantums, ar)),
            "price": fmt(subticks_to_price(o.subticks, ar, qce)),
            "status": status,
            "type": {Order.CONDITION_TYPE_STOP_LOSS: "STOP_LIMIT",
                     Order.CONDITION_TYPE_TAKE_PROFIT: "TAKE_PROFIT"}.get(o.condition_type,
                                                                         "LIMIT"),
            "timeInForce": TIF_NAMES.get(o.time_in_force, "GTT"),
            "postOnly": o.time_in_force == Order.TIME_IN_FORCE_POST_ONLY,
            "reduceOnly": bool(o.reduce_only),
            "orderFlags": str(oid.order_flags),
            "clientMetadata": str(o.client_metadata),
            "ticker": m["ticker"],
        }
        if oid.order_flags == ORDER_FLAG_SHORT_TERM:
            d["goodTilBlock"] = str(o.good_til_block)
        else:
            d["goodTilBlockTime"] = iso_now(o.good_til_block_time)
        if o.condition_type != Order.CONDITION_TYPE_UNSPECIFIED:
            d["triggerPrice"] = fmt(subticks_to_price(o.conditional_order_trigger_subticks,
                                                      ar, qce))
        if removal_reason:
            d["removalReason"] = removal_reason
        if not minimal:
            d["totalFilled"] = fmt(quantums_to_size(filled, ar))
            d["createdAtHeight"] = h
            d["updatedAt"] = iso_now()
            d["updatedAtHeight"] = h
        return d

    def _publish_levels(self, ticker: str, side_key: str, levels: list) -> None:
        if levels:
            self.indexer.apply_orderbook(ticker, **{side_key: levels})

    # ------------------------------------------------------------------ place
    def place(self, o: Order, txhash: str = "") -> dict:
        """Match ``o`` against the indexer book and stream the results.  Returns a summary
        ``{"status", "filled_quantums", "fills"}``."""
        m = self._market(o.order_id.clob_pair_id)
        ticker = m["ticker"]
        ar, qce = int(m["atomicResolution"]), int(m["quantumConversionExponent"])
        oid = o.order_id
        addr, num = oid.subaccount_id.owner, oid.subaccount_id.number
        key = self._key(oid)
        self._ensure_account(addr, num)
        short = oid.order_flags == ORDER_FLAG_SHORT_TERM
        # replacement: drop the old resting order first
        old = self.resting.pop(key, None)
        if old is not None:
            self._remove_from_book(old)
        if self.best_effort_statuses and short:
            self.indexer.apply_subaccount(addr, num, orders=[
                {k: v for k, v in self._order_dict(o, m, "BEST_EFFORT_OPENED", 0).items()
                 if k not in ("totalFilled", "createdAtHeight", "updatedAt",
                              "updatedAtHeight")}])
        book = self.indexer.book(ticker)
        is_buy = o.side == Order.SIDE_BUY
        opp_key, own_key = ("asks", "bids") if is_buy else ("bids", "asks")
        limit_price = subticks_to_price(o.subticks, ar, qce)

        def crosses(level_price: Decimal) -> bool:
            return level_price <= limit_price if is_buy else level_price >= limit_price

        opp_levels = [(p, s) for p, s in book.sorted_levels(opp_key) if crosses(p)]
        if o.time_in_force == Order.TIME_IN_FORCE_POST_ONLY and opp_levels:
            od = self._order_dict(o, m, "BEST_EFFORT_CANCELED", 0, removal_reason=(
                "ORDER_REMOVAL_REASON_POST_ONLY_WOULD_CROSS_MAKER_ORDER"))
            self.indexer.apply_subaccount(addr, num, orders=[od])
            self.events.append(("post_only_rejected", od))
            return {"status": "BEST_EFFORT_CANCELED", "filled_quantums": 0, "fills": []}
        remaining = int(o.quantums)
        fills, trades, level_updates = [], [], []
        oid_uuid = order_uuid(addr, num, oid.client_id, oid.clob_pair_id, oid.order_flags)
        for lvl_price, lvl_size in opp_levels:
            if remaining <= 0:
                break
            lvl_q = size_to_quantums(lvl_size, ar)
            take = min(remaining, lvl_q)
            if take <= 0:
                continue
            remaining -= take
            level_updates.append((lvl_price, quantums_to_size(lvl_q - take, ar)))
            lvl_subticks = price_to_subticks(lvl_price, ar, qce)
            # our own resting orders at that level are filled as makers
            self._fill_own_makers(ticker, opp_key, lvl_price, take, addr, num)
            f, t = self._make_fill(m, o, oid_uuid, addr, num, "TAKER", is_buy, lvl_subticks,
                                   take, txhash)
            fills.append(f)
            trades.append(t)
        self._publish_levels(ticker, opp_key, level_updates)
        if trades:
            self.indexer.apply_trades(ticker, trades)
        filled = int(o.quantums) - remaining
        removal = None
        if remaining == 0:
            status = "FILLED"
        elif o.time_in_force == Order.TIME_IN_FORCE_IOC:
            status = "BEST_EFFORT_CANCELED" if short else "CANCELED"
            removal = "ORDER_REMOVAL_REASON_IMMEDIATE_OR_CANCEL_WOULD_REST_ON_BOOK"
        else:
            status = "OPEN"
            r = Resting(key=key, uuid=oid_uuid, ticker=ticker, side=o.side,
                        subticks=int(o.subticks), price=limit_price, quantums=int(o.quantums),
                        filled=filled, order={}, address=addr, number=num,
                        flags=oid.order_flags, gtb=int(o.good_til_block))
            self.resting[key] = r
            cur = book.size_at(own_key, limit_price)
            self.indexer.apply_orderbook(ticker, **{own_key: [
                (limit_price, cur + quantums_to_size(remaining, ar))]})
        od = self._order_dict(o, m, status, filled, removal_reason=removal)
        if key in self.resting:
            self.resting[key].order = od
        positions, assets = self._apply_fills(m, addr, num, fills)
        self.indexer.apply_subaccount(addr, num, orders=[od], fills=fills or None,
                                      perpetual_positions=positions or None,
                                      asset_positions=assets or None)
        self.events.append(("place", od))
        return {"status": status, "filled_quantums": filled, "fills": fills}

    def _make_fill(self, m: dict, o: Order, oid_uuid: str, addr: str, num: int,
                   liquidity: str, is_buy: bool, subticks: int, quantums: int,
                   txhash: str) -> tuple[dict, dict]:
        ar, qce = int(m["atomicResolution"]), int(m["quantumConversionExponent"])
        quote = fill_quote_quantums(subticks, quantums, qce)
        ppm = self.taker_fee_ppm if liquidity == "TAKER" else self.maker_fee_ppm
        fee = fee_quantums(quote, ppm)
        ev = self._event_id()
        now = iso_now()
        h = str(self.indexer.height)
        price = subticks_to_price(subticks, ar, qce)
        size = quantums_to_size(quantums, ar)
        fill = {
            "id": bytes_uuid(ev + liquidity.encode()),
            "fee": fmt(quantums_to_size(fee, QUOTE_RESOLUTION)),
            "side": "BUY" if is_buy else "SELL",
            "size": fmt(size), "type": "LIMIT", "price": fmt(price),
            "eventId": ev.hex(), "orderId": oid_uuid, "createdAt": now,
            "liquidity": liquidity, "clobPairId": str(m["clobPairId"]),
            "quoteAmount": fmt(quantums_to_size(quote, QUOTE_RESOLUTION)),
            "subaccountId": subaccount_uuid(addr, num),
            "clientMetadata": str(o.client_metadata), "createdAtHeight": h,
            "transactionHash": txhash or ev.hex().upper(), "affiliateRevShare": "0",
            "ticker": m["ticker"],
            # exact integers for assertions (not in the real payload)
        }
        taker_buy = is_buy if liquidity == "TAKER" else (not is_buy)
        trade = {"id": ev.hex(), "side": "BUY" if taker_buy else "SELL", "size": fmt(size),
                 "price": fmt(price), "type": "LIMIT", "createdAt": now, "createdAtHeight": h}
        self.events.append(("fill", {**fill, "_quote_quantums": quote, "_fee_quantums": fee,
                                     "_quantums": quantums, "_subticks": subticks}))
        return fill, trade

    def _fill_own_makers(self, ticker, side_key, price, quantums, taker_addr, taker_num):
        """A taker crossing a level that also holds our resting orders fills them first
        (price-time: earliest resting first)."""
        left = quantums
        for r in list(self.resting.values()):
            if left <= 0:
                break
            if r.ticker != ticker or r.price != price:
                continue
            if (side_key == "asks") != (r.side == Order.SIDE_SELL):
                continue
            take = min(left, r.remaining)
            left -= take
            self._maker_fill(r, take, update_book=False)

    # ------------------------------------------------------------------ maker fills
    def fill_resting(self, address: str, client_id: int, *, subaccount_number: int = 0,
                     clob_pair_id: Optional[int] = None, size: Any = None) -> dict:
        """Simulate another trader taking our resting order (MAKER fill at its price).
        ``size`` defaults to the whole remainder.  Loop thread only; from other threads
        use ``indexer.call_soon_threadsafe(bridge.fill_resting, ...)``."""
        for r in self.resting.values():
            if r.address == address and r.number == subaccount_number and \
                    r.key[2] == client_id and (clob_pair_id is None or r.key[4] == clob_pair_id):
                m = self._market(r.key[4])
                q = r.remaining if size is None else size_to_quantums(size, int(
                    m["atomicResolution"]))
                return self._maker_fill(r, min(q, r.remaining), update_book=True)
        raise KeyError(f"no resting order {address}/{subaccount_number} client_id {client_id}")

    async def a_fill_resting(self, *a, **k) -> dict:
        return self.fill_resting(*a, **k)

    def _maker_fill(self, r: Resting, quantums: int, update_book: bool) -> dict:
        m = self._market(r.key[4])
        ar = int(m["atomicResolution"])
        o = Order()
        o.client_metadata = int(r.order.get("clientMetadata", 0) or 0)
        is_buy = r.side == Order.SIDE_BUY
        fill, trade = self._make_fill(m, o, r.uuid, r.address, r.number, "MAKER", is_buy,
                                      r.subticks, quantums, "")
        r.filled += quantums
        own_key = "bids" if is_buy else "asks"
        if update_book:
            book = self.indexer.book(r.ticker)
            cur = book.size_at(own_key, r.price)
            new = max(cur - quantums_to_size(quantums, ar), Decimal(0))
            self.indexer.apply_orderbook(r.ticker, **{own_key: [(r.price, new)]})
            self.indexer.apply_trades(r.ticker, [trade])
        status = "FILLED" if r.remaining == 0 else "OPEN"
        od = dict(r.order)
        od.update(status=status, totalFilled=fmt(quantums_to_size(r.filled, ar)),
                  updatedAt=iso_now(), updatedAtHeight=str(self.indexer.height))
        r.order = od
        if r.remaining == 0:
            self.resting.pop(r.key, None)
        positions, assets = self._apply_fills(m, r.address, r.number, [fill])
        self.indexer.apply_subaccount(r.address, r.number, orders=[od], fills=[fill],
                                      perpetual_positions=positions, asset_positions=assets)
        return {"status": status, "fill": fill}

    # ------------------------------------------------------------------ cancel / expire
    def cancel(self, oid: order_pb2.OrderId, good_til_block: int = 0) -> Optional[dict]:
        key = self._key(oid)
        r = self.resting.get(key)
        if r is None:
            return None
        if r.flags == ORDER_FLAG_SHORT_TERM and good_til_block < r.gtb:
            return None  # memclob: cancel only removes orders with GTB <= cancel GTB
        self.resting.pop(key, None)
        self._remove_from_book(r)
        base = dict(r.order)
        base.update(updatedAt=iso_now(), updatedAtHeight=str(self.indexer.height),
                    removalReason="ORDER_REMOVAL_REASON_USER_CANCELED")
        if self.best_effort_statuses and r.flags == ORDER_FLAG_SHORT_TERM:
            self.indexer.apply_subaccount(r.address, r.number,
                                          orders=[{**base, "status": "BEST_EFFORT_CANCELED"}])
        od = {**base, "status": "CANCELED"}
        self.indexer.apply_subaccount(r.address, r.number, orders=[od])
        self.events.append(("cancel", od))
        return od

    def expire_orders(self, height: Optional[int] = None) -> list[dict]:
        h = self.indexer.height if height is None else int(height)
        out = []
        for r in list(self.resting.values()):
            if r.flags == ORDER_FLAG_SHORT_TERM and r.gtb < h:
                self.resting.pop(r.key, None)
                self._remove_from_book(r)
                od = {"clientId": str(r.key[2]), "clobPairId": str(r.key[4]), "id": r.uuid,
                      "orderFlags": str(r.flags),
                      "removalReason": "ORDER_REMOVAL_REASON_EXPIRED", "status": "CANCELED",
                      "subaccountId": subaccount_uuid(r.address, r.number),
                      "ticker": r.ticker}
                self.indexer.apply_subaccount(r.address, r.number, orders=[od])
                self.events.append(("expire", od))
                out.append(od)
        return out

    def _remove_from_book(self, r: Resting) -> None:
        m = self._market(r.key[4])
        ar = int(m["atomicResolution"])
        side_key = "bids" if r.side == Order.SIDE_BUY else "asks"
        book = self.indexer.book(r.ticker)
        cur = book.size_at(side_key, r.price)
        new = max(cur - quantums_to_size(r.remaining, ar), Decimal(0))
        self.indexer.apply_orderbook(r.ticker, **{side_key: [(r.price, new)]})

    # ------------------------------------------------------------------ positions
    def _apply_fills(self, m: dict, addr: str, num: int, fills: list[dict]):
        if not fills:
            return [], []
        ticker = m["ticker"]
        pos = self.positions.setdefault((addr, num, ticker), _Pos())
        usdc = self.indexer.usdc_balance(addr, num)
        for f in fills:
            q = D(f["size"])
            px = D(f["price"])
            quote = D(f["quoteAmount"])
            fee = D(f["fee"])
            signed = q if f["side"] == "BUY" else -q
            usdc += -quote if f["side"] == "BUY" else quote
            usdc -= fee
            if pos.size == 0:
                pos.created_at, pos.created_height = f["createdAt"], f["createdAtHeight"]
                pos.position_id = bytes_uuid((subaccount_uuid(addr, num) + f["eventId"]).encode())
                pos.sum_open = pos.sum_close = pos.exit_notional = pos.realized = Decimal(0)
                pos.max_size = Decimal(0)
            if pos.size == 0 or (pos.size > 0) == (signed > 0):
                new = pos.size + signed
                pos.entry = (abs(pos.size) * pos.entry + q * px) / abs(new)
                pos.size = new
                pos.sum_open += q
            else:
                close = min(q, abs(pos.size))
                direction = 1 if pos.size > 0 else -1
                pos.realized += (px - pos.entry) * close * direction
                pos.sum_close += close
                pos.exit_notional += close * px
                pos.size += signed
                rest = q - close
                if rest > 0:  # flipped
                    pos.entry = px
                    pos.sum_open += rest
            pos.max_size = max(pos.max_size, abs(pos.size))
        oracle = D(m.get("oraclePrice") or 0)
        side = "LONG" if pos.size > 0 else ("SHORT" if pos.size < 0 else "LONG")
        p = {
            "address": addr, "subaccountNumber": num, "positionId": pos.position_id,
            "market": ticker, "side": side, "status": "OPEN" if pos.size != 0 else "CLOSED",
            "size": fmt(pos.size), "maxSize": fmt(pos.max_size), "netFunding": "0",
            "entryPrice": fmt(pos.entry),
            "exitPrice": fmt(pos.exit_notional / pos.sum_close) if pos.sum_close else None,
            "sumOpen": fmt(pos.sum_open), "sumClose": fmt(pos.sum_close),
            "realizedPnl": fmt(pos.realized),
            "unrealizedPnl": fmt((oracle - pos.entry) * pos.size) if oracle else "0",
            "createdAt": pos.created_at, "createdAtHeight": pos.created_height,
            "closedAt": None if pos.size != 0 else iso_now(),
        }
        a = {"address": addr, "subaccountNumber": num, "positionId": "", "assetId": "0",
             "symbol": "USDC", "side": "LONG" if usdc >= 0 else "SHORT", "size": fmt(abs(usdc))}
        return [p], [a]

    def position(self, address: str, ticker: str, subaccount_number: int = 0) -> Decimal:
        p = self.positions.get((address, subaccount_number, ticker))
        return p.size if p else Decimal(0)
