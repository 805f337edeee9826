"""Full-node ``StreamOrderbookUpdates`` messages -> L3 books -> L2 events and trades.

:class:`StreamBooks` consumes ``StreamOrderbookUpdatesResponse`` messages (v4-chain
``proto/dydxprotocol/clob/query.proto``; v4-proto ``dydxprotocol.clob.query_pb2``) and keeps
one :class:`~perpbot.exchanges.dydx.stream.l3.L3Book` per subscribed CLOB pair. After each
response it returns :mod:`perpbot.core.model` events, the same types the indexer feed
produces, so the paper exchange and the strategies cannot tell the sources apart:

- :class:`~perpbot.core.model.BookSnapshot` once the stream's snapshot has arrived (the whole
  L2 view) and :class:`~perpbot.core.model.BookDelta` afterwards (the levels the response
  changed, ABSOLUTE sizes, 0 = the level is gone);
- :class:`~perpbot.core.model.Trade` per maker fill of a ``ClobMatch`` streamed in
  ``execModeFinalize`` (7, Cosmos SDK ``baseapp``): only those are confirmed by consensus
  (v4-documentation ``pages/api_integration-full-nodes/full_node_streaming.md``); price =
  the maker order's subticks, size = the fill's quantums, side = the taker's side
  (``MatchPerpetualLiquidation.is_buy`` for a liquidation).

Stream rules (the same document): every message before the first ``snapshot`` update is
discarded; a snapshot update resets the books of the pairs it names (the first one resets
every subscribed pair: a pair with no order in it is empty); ``ClobMatch`` fill amounts
in any exec mode update the book (the node's book is optimistic and is corrected by
later place/update/remove messages). ``taker_order``, ``subaccount_update`` and
``price_update`` carry nothing for the book and are counted only.

Integers stay integers until the edge: prices are subticks and sizes base quantums inside
the L3 books; events carry Decimal USD prices (``subticks * 10^(QCE - AR - 6)``) and Decimal
base sizes (``quantums * 10^AR``), v4-chain ``protocol/x/clob/types/quantums.go``, with the
market's ``atomicResolution`` (AR) and ``quantumConversionExponent`` (QCE).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterable, Mapping

from perpbot.core.margin import quantums_to_size, subticks_to_price
from perpbot.core.model import BookDelta, BookSnapshot, Market, Side, Trade
from perpbot.exchanges.dydx.stream.l3 import L3Book

#: Cosmos SDK ``baseapp`` execModeFinalize: the block's DeliverTx, fills confirmed by consensus
EXEC_MODE_FINALIZE = 7
#: ``IndexerOrder.Side`` / ``clob.Order.Side`` SIDE_BUY (v4-chain ``proto/dydxprotocol/clob/order.proto``)
SIDE_BUY = 1
SIDE_SELL = 2


def order_key(oid: Any) -> tuple:
    """The hashable identity of an ``IndexerOrderId`` or ``clob.OrderId`` proto:
    ``(owner, subaccount number, client_id, order_flags, clob_pair_id)``."""
    s = oid.subaccount_id
    return (s.owner, s.number, oid.client_id, oid.order_flags, oid.clob_pair_id)


class _Scale:
    """Cached subticks -> USD and quantums -> base-unit conversions of one market."""

    __slots__ = ("ar", "qce", "_prices")

    def __init__(self, market: Market):
        self.ar = int(market.atomic_resolution)
        self.qce = int(market.quantum_conversion_exponent)
        self._prices: dict[int, Decimal] = {}

    def price(self, subticks: int) -> Decimal:
        p = self._prices.get(subticks)
        if p is None:
            if len(self._prices) > 100_000:
                self._prices.clear()
            p = self._prices[subticks] = subticks_to_price(subticks, self.ar, self.qce)
        return p

    def size(self, quantums: int) -> Decimal:
        return quantums_to_size(quantums, self.ar)


class StreamBooks:
    """The L3 books of the subscribed markets, fed by ``StreamOrderbookUpdatesResponse`` messages.

    :param markets: ``{ticker: Market}`` of the markets to build (their ``clob_pair_id``,
        ``atomic_resolution`` and ``quantum_conversion_exponent`` are used).

    Fields: ``books`` ``{clob_pair_id: L3Book}``; ``tickers`` ``{clob_pair_id: ticker}``;
    ``synced`` (the first snapshot has arrived); ``crossed`` (tickers whose stream book
    crossed since :meth:`reset`: a bug or a lost message, the caller should resubscribe);
    ``stats`` counters: ``responses``, ``updates``, ``skipped_before_snapshot``,
    ``snapshots``, ``fills``, ``finalized_fills``, ``trades``, ``taker_orders``,
    ``subaccount_updates``, ``price_updates``, ``other_pairs`` (messages of pairs not
    subscribed), ``crossings``, ``bad_messages``; ``last_height`` (block height of the
    newest update).
    """

    def __init__(self, markets: Mapping[str, Market]):
        self.tickers: dict[int, str] = {int(m.clob_pair_id): t for t, m in markets.items()}
        self._scale: dict[int, _Scale] = {int(m.clob_pair_id): _Scale(m) for m in markets.values()}
        self.books: dict[int, L3Book] = {c: L3Book(c) for c in self.tickers}
        self.synced = False
        self.crossed: set[str] = set()
        self.last_height = 0
        self._snapshotted: set[int] = set()
        self.stats = dict.fromkeys(
            ("responses", "updates", "skipped_before_snapshot", "snapshots", "fills", "finalized_fills", "trades",
             "taker_orders", "subaccount_updates", "price_updates", "other_pairs", "crossings", "bad_messages"), 0)

    @property
    def clob_pair_ids(self) -> list[int]:
        """The subscribed CLOB pair ids, sorted."""
        return sorted(self.tickers)

    def reset(self) -> None:
        """Forget every book (a new connection: wait for its snapshot again)."""
        self.synced = False
        self.crossed.clear()
        self._snapshotted.clear()
        for b in self.books.values():
            b.clear()
            b.changed.clear()

    # ------------------------------------------------------------------ reading

    def top(self, ticker_or_pair: str | int) -> tuple[Decimal | None, Decimal | None]:
        """``(best bid, best ask)`` in USD (None for an empty side) of one market."""
        cpid = ticker_or_pair if isinstance(ticker_or_pair, int) else self._pair(ticker_or_pair)
        b, sc = self.books[cpid], self._scale[cpid]
        bb, ba = b.best_bid(), b.best_ask()
        return (sc.price(bb[0]) if bb else None, sc.price(ba[0]) if ba else None)

    def snapshot_event(self, ticker: str, ts_ns: int) -> BookSnapshot:
        """The market's whole L2 view (USD prices, base-unit sizes) as a ``BookSnapshot``."""
        cpid = self._pair(ticker)
        return self._snapshot(cpid, ts_ns)

    def _pair(self, ticker: str) -> int:
        for cpid, t in self.tickers.items():
            if t == ticker:
                return cpid
        raise KeyError(f"market {ticker!r} is not streamed")

    def _snapshot(self, cpid: int, ts: int) -> BookSnapshot:
        b, sc = self.books[cpid], self._scale[cpid]
        b.changed.clear()
        return BookSnapshot(
            self.tickers[cpid], ts,
            bids=tuple((sc.price(p), sc.size(q)) for p, q in b.levels(True)),
            asks=tuple((sc.price(p), sc.size(q)) for p, q in b.levels(False)),
        )

    # ------------------------------------------------------------------ messages

    def on_response(self, response: Any, ts_ns: int) -> list:
        """Apply one ``StreamOrderbookUpdatesResponse``; return the events it makes.

        :param response: the proto message (``updates``: repeated ``StreamUpdate``).
        :param ts_ns: receive time, ns since the epoch (every event's ``ts_ns``).
        :returns: ``BookSnapshot`` for each pair whose snapshot arrived, ``BookDelta`` for each
            other pair that changed, then the confirmed ``Trade`` events, in stream order.
        """
        self.stats["responses"] += 1
        trades: list = []
        touched: set[int] = set()
        for upd in response.updates:
            self.stats["updates"] += 1
            kind = upd.WhichOneof("update_message")
            if upd.block_height > self.last_height:
                self.last_height = upd.block_height
            if kind == "orderbook_update":
                self._orderbook_update(upd.orderbook_update, touched)
            elif kind == "order_fill":
                self._fill(upd.order_fill, upd.exec_mode, upd.block_height, ts_ns, trades, touched)
            elif kind == "taker_order":
                self.stats["taker_orders"] += 1
            elif kind == "subaccount_update":
                self.stats["subaccount_updates"] += 1
            elif kind == "price_update":
                self.stats["price_updates"] += 1
            else:
                self.stats["bad_messages"] += 1
        out: list = []
        for cpid in sorted(touched):
            if cpid in self._snapshotted:
                self._snapshotted.discard(cpid)
                out.append(self._snapshot(cpid, ts_ns))
                continue
            changes = self.books[cpid].take_changes()
            if not changes:
                continue
            sc = self._scale[cpid]
            bids = tuple((sc.price(p), sc.size(q)) for is_bid, p, q in sorted(changes) if is_bid)
            asks = tuple((sc.price(p), sc.size(q)) for is_bid, p, q in sorted(changes) if not is_bid)
            out.append(BookDelta(self.tickers[cpid], ts_ns, bids=bids, asks=asks))
        out.extend(trades)
        return out

    def _orderbook_update(self, ob: Any, touched: set[int]) -> None:
        if ob.snapshot:
            self.stats["snapshots"] += 1
            if not self.synced:
                self.synced = True
                for cpid, b in self.books.items():
                    b.clear()
                    self._snapshotted.add(cpid)
                    touched.add(cpid)
            else:
                named = {u.order_place.order.order_id.clob_pair_id for u in ob.updates
                         if u.WhichOneof("update_message") == "order_place"}
                for cpid in named & set(self.books):
                    self.books[cpid].clear()
                    self._snapshotted.add(cpid)
                    touched.add(cpid)
        elif not self.synced:
            self.stats["skipped_before_snapshot"] += 1
            return
        for u in ob.updates:
            kind = u.WhichOneof("update_message")
            if kind == "order_place":
                o = u.order_place.order
                cpid = self._own(o.order_id.clob_pair_id)
                if cpid is None:
                    continue
                if o.side not in (SIDE_BUY, SIDE_SELL) or o.subticks <= 0 or o.quantums <= 0:
                    self.stats["bad_messages"] += 1
                    continue
                self.books[cpid].place(order_key(o.order_id), o.side == SIDE_BUY, o.subticks, o.quantums)
            elif kind == "order_update":
                oid = u.order_update.order_id
                cpid = self._own(oid.clob_pair_id)
                if cpid is None:
                    continue
                self.books[cpid].set_filled(order_key(oid), u.order_update.total_filled_quantums)
            elif kind == "order_remove":
                oid = u.order_remove.removed_order_id
                cpid = self._own(oid.clob_pair_id)
                if cpid is None:
                    continue
                self.books[cpid].remove(order_key(oid))
            elif kind == "order_replace":
                r = u.order_replace
                cpid = self._own(r.old_order_id.clob_pair_id)
                if cpid is None:
                    continue
                o = r.order
                self.books[cpid].remove(order_key(r.old_order_id))
                if o.side in (SIDE_BUY, SIDE_SELL) and o.subticks > 0 and o.quantums > 0:
                    self.books[cpid].place(order_key(o.order_id), o.side == SIDE_BUY, o.subticks, o.quantums)
            else:
                self.stats["bad_messages"] += 1
                continue
            touched.add(cpid)
        self._check_crossed(touched)

    def _own(self, cpid: int) -> int | None:
        if cpid in self.books:
            return cpid
        self.stats["other_pairs"] += 1
        return None

    def _check_crossed(self, touched: Iterable[int]) -> None:
        for cpid in touched:
            if self.books[cpid].is_crossed() and self.tickers[cpid] not in self.crossed:
                self.stats["crossings"] += 1
                self.crossed.add(self.tickers[cpid])

    def _fill(self, fill: Any, exec_mode: int, height: int, ts: int, trades: list, touched: set[int]) -> None:
        if not self.synced:
            self.stats["skipped_before_snapshot"] += 1
            return
        self.stats["fills"] += 1
        orders = {order_key(o.order_id): o for o in fill.orders}
        if len(fill.fill_amounts) != len(fill.orders):
            self.stats["bad_messages"] += 1
            return
        pairs = set()
        for o, amount in zip(fill.orders, fill.fill_amounts):
            cpid = o.order_id.clob_pair_id
            if cpid in self.books:
                self.books[cpid].set_filled(order_key(o.order_id), amount, from_fill=True)
                touched.add(cpid)
                pairs.add(cpid)
        self._check_crossed(pairs)
        if exec_mode != EXEC_MODE_FINALIZE:
            return
        self.stats["finalized_fills"] += 1
        m = fill.clob_match
        kind = m.WhichOneof("match")
        if kind == "match_orders":
            mo = m.match_orders
            cpid = mo.taker_order_id.clob_pair_id
            taker = orders.get(order_key(mo.taker_order_id))
            taker_id = mo.taker_order_id.client_id
            makers = mo.fills
            taker_buy = None if taker is None else taker.side == SIDE_BUY
        elif kind == "match_perpetual_liquidation":
            ml = m.match_perpetual_liquidation
            cpid, taker_id, makers, taker_buy = ml.clob_pair_id, 0, ml.fills, bool(ml.is_buy)
        else:
            return  # deleveraging matches are not streamed (full_node_streaming.md)
        if cpid not in self.books:
            return
        sc = self._scale[cpid]
        for i, mf in enumerate(makers):
            maker = orders.get(order_key(mf.maker_order_id))
            if maker is None or mf.fill_amount <= 0:
                self.stats["bad_messages"] += 1
                continue
            buy = taker_buy if taker_buy is not None else maker.side != SIDE_BUY
            trades.append(Trade(
                self.tickers[cpid], ts, price=sc.price(maker.subticks), size=sc.size(mf.fill_amount),
                side=Side.BUY if buy else Side.SELL,
                trade_id=f"{height}:{taker_id}:{mf.maker_order_id.client_id}:{i}",
            ))
            self.stats["trades"] += 1
