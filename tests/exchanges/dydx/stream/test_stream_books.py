"""L3 books from ``StreamOrderbookUpdates`` messages built with the real v4-proto types
(v4-chain ``proto/dydxprotocol/clob/query.proto``, ``indexer/off_chain_updates``), and the
indexer cross-check."""

from __future__ import annotations

from decimal import Decimal

import pytest
from v4_proto.dydxprotocol.clob import matches_pb2, order_pb2, query_pb2
from v4_proto.dydxprotocol.indexer.off_chain_updates import off_chain_updates_pb2 as ocu
from v4_proto.dydxprotocol.indexer.protocol.v1 import clob_pb2

from perpbot.core.model import BookDelta, BookSnapshot, Market, Side, Trade
from perpbot.exchanges.dydx.stream import CrossCheck, L3Book, StreamBooks

D = Decimal
# BTC-USD and ETH-USD parameters as /v4/perpetualMarkets lists them (AR, QCE)
BTC = Market("BTC-USD", 0, tick_size="1", step_size="0.0001", atomic_resolution=-10, quantum_conversion_exponent=-9)
ETH = Market("ETH-USD", 1, tick_size="0.1", step_size="0.001", atomic_resolution=-9, quantum_conversion_exponent=-9)
BUY, SELL = clob_pb2.IndexerOrder.SIDE_BUY, clob_pb2.IndexerOrder.SIDE_SELL


def oid(cid: int, pair: int = 0, owner: str = "dydx1maker") -> clob_pb2.IndexerOrderId:
    o = clob_pb2.IndexerOrderId(client_id=cid, clob_pair_id=pair)
    o.subaccount_id.owner = owner
    return o


def place(cid, side, subticks, quantums, pair=0):
    order = clob_pb2.IndexerOrder(order_id=oid(cid, pair), side=side, subticks=subticks, quantums=quantums)
    return [ocu.OffChainUpdateV1(order_place=ocu.OrderPlaceV1(order=order)),
            ocu.OffChainUpdateV1(order_update=ocu.OrderUpdateV1(order_id=oid(cid, pair), total_filled_quantums=0))]


def update(cid, filled, pair=0):
    return [ocu.OffChainUpdateV1(order_update=ocu.OrderUpdateV1(order_id=oid(cid, pair), total_filled_quantums=filled))]


def remove(cid, pair=0):
    return [ocu.OffChainUpdateV1(order_remove=ocu.OrderRemoveV1(removed_order_id=oid(cid, pair)))]


def ob(updates, snapshot=False, height=10, mode=0):
    return query_pb2.StreamOrderbookUpdatesResponse(updates=[query_pb2.StreamUpdate(
        block_height=height, exec_mode=mode,
        orderbook_update=query_pb2.StreamOrderbookUpdate(snapshot=snapshot, updates=updates))])


def clob_oid(cid, pair=0, owner="dydx1maker"):
    o = order_pb2.OrderId(client_id=cid, clob_pair_id=pair)
    o.subaccount_id.owner = owner
    return o


def fill(maker_cid, maker_side, subticks, amount, maker_total, *, mode, pair=0, taker_side=None):
    taker = clob_oid(999, pair, "dydx1taker")
    t_side = taker_side or (order_pb2.Order.SIDE_SELL if maker_side == order_pb2.Order.SIDE_BUY else order_pb2.Order.SIDE_BUY)
    orders = [order_pb2.Order(order_id=clob_oid(maker_cid, pair), side=maker_side, subticks=subticks, quantums=10**9),
              order_pb2.Order(order_id=taker, side=t_side, subticks=subticks, quantums=amount)]
    m = matches_pb2.ClobMatch(match_orders=matches_pb2.MatchOrders(
        taker_order_id=taker, fills=[matches_pb2.MakerFill(maker_order_id=clob_oid(maker_cid, pair), fill_amount=amount)]))
    return query_pb2.StreamOrderbookUpdatesResponse(updates=[query_pb2.StreamUpdate(
        block_height=11, exec_mode=mode,
        order_fill=query_pb2.StreamOrderbookFill(clob_match=m, orders=orders, fill_amounts=[maker_total, amount]))])


def synced():
    sb = StreamBooks({"BTC-USD": BTC, "ETH-USD": ETH})
    ev = sb.on_response(ob(place(1, BUY, 6_499_900_000, 5 * 10**8) + place(2, SELL, 6_500_100_000, 3 * 10**8)
                           + place(3, SELL, 6_500_200_000, 10**8), snapshot=True), 1)
    return sb, ev


def test_messages_before_the_snapshot_are_discarded_and_the_snapshot_is_the_book():
    sb = StreamBooks({"BTC-USD": BTC, "ETH-USD": ETH})
    assert sb.on_response(ob(place(7, BUY, 6_600_000_000, 10**8)), 0) == []
    assert sb.stats["skipped_before_snapshot"] == 1 and not sb.synced
    sb2, ev = synced()
    snaps = {e.ticker: e for e in ev}
    assert set(snaps) == {"BTC-USD", "ETH-USD"} and all(isinstance(e, BookSnapshot) for e in ev)
    assert snaps["BTC-USD"].bids == ((D("64999"), D("0.05")),)  # 6,499,900,000 subticks, 5e8 quantums (AR -10)
    assert snaps["BTC-USD"].asks == ((D("65001"), D("0.03")), (D("65002"), D("0.01")))
    assert snaps["ETH-USD"].bids == () and snaps["ETH-USD"].asks == ()  # a pair absent from the snapshot is empty
    assert sb2.top("BTC-USD") == (D("64999"), D("65001"))


def test_place_update_remove_give_absolute_level_deltas():
    sb, _ = synced()
    ev = sb.on_response(ob(place(4, SELL, 6_500_100_000, 2 * 10**8)), 2)
    assert ev == [BookDelta("BTC-USD", 2, asks=((D("65001"), D("0.05")),))]  # 0.03 + 0.02 at one level
    ev = sb.on_response(ob(update(2, 10**8)), 3)  # total filled 1e8 of 3e8: 0.02 left + 0.02
    assert ev == [BookDelta("BTC-USD", 3, asks=((D("65001"), D("0.04")),))]
    ev = sb.on_response(ob(update(2, 10**8)), 4)  # the same total again: nothing changes
    assert ev == []
    ev = sb.on_response(ob(remove(2) + remove(4)), 5)
    assert ev == [BookDelta("BTC-USD", 5, asks=((D("65001"), D("0")),))]  # the level is gone
    assert sb.top("BTC-USD") == (D("64999"), D("65002"))
    # an update before its placement, or for an order never seen, is ignored (counted)
    sb.on_response(ob(update(77, 5)), 6)
    assert sb.books[0].counters["unknown_updates"] == 1


def test_a_match_sets_total_fill_amounts_and_only_a_finalized_match_is_a_trade():
    sb, _ = synced()
    # optimistic (exec mode 0, CheckTx): the book thins, no trade yet
    ev = sb.on_response(fill(2, order_pb2.Order.SIDE_SELL, 6_500_100_000, 10**8, 10**8, mode=0), 7)
    assert ev == [BookDelta("BTC-USD", 7, asks=((D("65001"), D("0.02")),))]
    # confirmed in the block (execModeFinalize = 7): the same total, one trade at the maker's price
    ev = sb.on_response(fill(2, order_pb2.Order.SIDE_SELL, 6_500_100_000, 10**8, 10**8, mode=7), 8)
    assert ev == [Trade("BTC-USD", 8, price=D("65001"), size=D("0.01"), side=Side.BUY, trade_id="11:999:2:0")]
    assert sb.stats["fills"] == 2 and sb.stats["finalized_fills"] == 1 and sb.stats["trades"] == 1


def test_a_liquidation_trade_takes_its_side_from_is_buy():
    sb, _ = synced()
    m = matches_pb2.ClobMatch(match_perpetual_liquidation=matches_pb2.MatchPerpetualLiquidation(
        clob_pair_id=0, is_buy=False, total_size=10**8,
        fills=[matches_pb2.MakerFill(maker_order_id=clob_oid(1), fill_amount=10**8)]))
    resp = query_pb2.StreamOrderbookUpdatesResponse(updates=[query_pb2.StreamUpdate(
        block_height=12, exec_mode=7, order_fill=query_pb2.StreamOrderbookFill(
            clob_match=m, orders=[order_pb2.Order(order_id=clob_oid(1), side=order_pb2.Order.SIDE_BUY,
                                                  subticks=6_499_900_000, quantums=5 * 10**8)],
            fill_amounts=[10**8]))])
    ev = sb.on_response(resp, 9)
    assert ev[0] == BookDelta("BTC-USD", 9, bids=((D("64999"), D("0.04")),))
    assert ev[1].side == Side.SELL and ev[1].price == D("64999") and ev[1].size == D("0.01")


def test_a_crossed_stream_book_is_reported_and_other_pairs_are_ignored():
    sb, _ = synced()
    sb.on_response(ob(place(5, BUY, 6_500_100_000, 10**8)), 10)  # bid at the best ask: crossed
    assert sb.crossed == {"BTC-USD"} and sb.stats["crossings"] == 1
    sb.on_response(ob(place(6, BUY, 100, 10**6, pair=33)), 11)
    assert sb.stats["other_pairs"] == 2  # its place and its update
    sb.reset()
    assert not sb.synced and not sb.crossed and len(sb.books[0]) == 0


def test_a_later_snapshot_replaces_only_the_pairs_it_names():
    sb, _ = synced()
    sb.on_response(ob(place(1, BUY, 3_000_000_000, 10**9, pair=1)), 12)  # ETH 3000 (AR -9, QCE -9)
    ev = sb.on_response(ob(place(8, BUY, 6_400_000_000, 10**8), snapshot=True), 13)
    assert ev == [BookSnapshot("BTC-USD", 13, bids=((D("64000"), D("0.01")),), asks=())]
    assert sb.top("ETH-USD") == (D("3000"), None)


def test_l3_book_replacement_and_unknown_removals():
    b = L3Book(0)
    b.place(("a",), True, 100, 5)
    b.place(("a",), True, 101, 7)  # a second placement of the same id replaces the first
    assert b.best_bid() == (101, 7) and b.counters["replaced_places"] == 1 and 100 not in b.bids
    assert not b.remove(("zz",)) and b.counters["unknown_removes"] == 1
    b.set_filled(("a",), 9)  # overfilled: nothing left, the level leaves the L2 view
    assert b.best_bid() is None and len(b) == 1
    with pytest.raises(ValueError, match="must be > 0"):
        b.place(("b",), False, 0, 5)


def test_crosscheck_counts_agreements_with_the_lead_and_disagreements():
    cc = CrossCheck(window_s=10)
    cc.on_stream_top("BTC-USD", 1_000_000_000, D("100"), D("101"))
    cc.on_stream_top("BTC-USD", 1_200_000_000, D("100.5"), D("101"))
    # the indexer shows the stream's earlier bid, then its newer one: two agreements, leads 300 ms and 100 ms
    assert cc.on_indexer_top("BTC-USD", 1_300_000_000, D("100"), D("101")) == 0
    assert cc.on_indexer_top("BTC-USD", 1_300_000_000, D("100.5"), D("101")) == 0
    assert cc.counts == {"checks": 3, "agreements": 3, "disagreements": 0}
    assert sorted(cc.leads_ns) == [100_000_000, 300_000_000, 300_000_000]
    # a bid the stream never had: one disagreement
    assert cc.on_indexer_top("BTC-USD", 1_400_000_000, D("99"), D("101")) == 1
    assert cc.stats()["disagreements"] == 1 and cc.stats()["lead_ms_median"] == 300.0
    # outside the window the old top no longer counts
    cc.on_stream_top("BTC-USD", 30_000_000_000, D("102"), D("103"))
    assert cc.on_indexer_top("BTC-USD", 31_000_000_000, D("100"), D("101")) == 1
