"""Loopback fake of a dYdX full node's order-book stream (``grpc.aio``, 127.0.0.1, port 0).

Serves ``dydxprotocol.clob.Query/StreamOrderbookUpdates`` with the real v4-proto
servicer and message types (v4-chain ``proto/dydxprotocol/clob/query.proto``:
``StreamOrderbookUpdatesResponse`` of ``StreamUpdate`` with ``orderbook_update``
(``OffChainUpdateV1`` place / update / remove, v4-chain
``proto/dydxprotocol/indexer/off_chain_updates/off_chain_updates.proto``) or ``order_fill``
(``StreamOrderbookFill``: ``ClobMatch``, the orders, their TOTAL fill amounts)). Every
other ``Query`` method answers ``UNIMPLEMENTED`` (the servicer's default).

On subscribe a caller gets one snapshot update (``snapshot=True``: a place + update per
resting order of the pairs it asked for, exec mode 102 as on mainnet), then every
published response. Modes for the bad-input tests: ``"stream"`` (default),
``"unimplemented"`` (the node has streaming off), ``"silent"`` (accepts, never sends),
``"end"`` (ends the call at once).

Test knobs (loop thread; from another thread wrap them in :meth:`FakeNodeStream.call`):
:meth:`place`, :meth:`update`, :meth:`remove`, :meth:`fill`, :meth:`publish`,
:meth:`drop`, and ``mirror``: a callable ``(ticker, bids, asks)`` that receives every L2
level change (absolute sizes as decimal strings, ``"0"`` deletes) so a fake indexer can
show the same book later, as the real indexer does from its own node.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from decimal import Decimal
from typing import Any, Callable, Iterable, Optional

import grpc
from v4_proto.dydxprotocol.clob import matches_pb2, order_pb2, query_pb2, query_pb2_grpc
from v4_proto.dydxprotocol.indexer.off_chain_updates import off_chain_updates_pb2 as ocu
from v4_proto.dydxprotocol.indexer.protocol.v1 import clob_pb2, subaccount_pb2

EXEC_CHECK = 0          # Cosmos SDK baseapp execModeCheck
EXEC_FINALIZE = 7       # execModeFinalize
EXEC_PREPARE_CHECK_STATE = 102  # dYdX's ExecModePrepareCheckState (the snapshot's mode on mainnet)
OWNER = "dydx1fakestreammaker000000000000000000000"


def _fmt(d: Decimal) -> str:
    s = format(d.normalize(), "f")
    return s


class FakeNodeStream:
    """A full node's ``StreamOrderbookUpdates`` on 127.0.0.1.

    :param markets: indexer ``perpetualMarkets`` rows by ticker (``clobPairId``,
        ``atomicResolution``, ``quantumConversionExponent``) for the L2 mirror and seeding.
    :param mode: ``"stream"``, ``"unimplemented"``, ``"silent"`` or ``"end"``.
    :param mirror: receives every L2 change as ``(ticker, [(price, size)], [(price, size)])``.
    """

    def __init__(self, markets: Optional[dict] = None, *, mode: str = "stream",
                 mirror: Optional[Callable[[str, list, list], None]] = None, height: int = 1000):
        self.markets = dict(markets or {})
        self.mode = mode
        self.mirror = mirror
        self.height = height
        self.port: Optional[int] = None
        self.orders: dict[tuple, list] = {}   # key -> [IndexerOrder, filled]
        self.requests: list = []
        self._queues: list[asyncio.Queue] = []
        self._ids = itertools.count(1)
        self._server: Any = None
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        """``127.0.0.1:PORT`` (the ``--dydx-stream`` value)."""
        return f"127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ server

    async def start(self) -> "FakeNodeStream":
        self.loop = asyncio.get_running_loop()
        server = grpc.aio.server()
        query_pb2_grpc.add_QueryServicer_to_server(_Servicer(self), server)
        self.port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._server = server
        return self

    async def stop(self) -> None:
        for q in self._queues:
            q.put_nowait(None)
        if self._server is not None:
            await self._server.stop(0.2)
            self._server = None

    async def __aenter__(self) -> "FakeNodeStream":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def start_in_thread(self, timeout: float = 10.0) -> "FakeNodeStream":
        """Run the server on its own event loop in a daemon thread."""
        ready = threading.Event()
        box: dict = {}

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                box["error"] = exc
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-node-stream", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or "error" in box:
            raise RuntimeError(f"fake node stream did not start: {box.get('error')}")
        return self

    def stop_thread(self, timeout: float = 10.0) -> None:
        if self._thread is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> "FakeNodeStream":
        return self.start_in_thread()

    def __exit__(self, *exc) -> None:
        self.stop_thread()

    def call(self, fn: Callable, *args, timeout: float = 10.0, **kwargs) -> Any:
        """Run ``fn(*args, **kwargs)`` on the server's loop thread and return its result."""
        async def run():
            return fn(*args, **kwargs)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    @property
    def subscribers(self) -> int:
        """Open calls."""
        return len(self._queues)

    # ------------------------------------------------------------------ book state

    def _market(self, ticker: str) -> dict:
        return self.markets[ticker]

    def _cpid(self, ticker: str) -> int:
        return int(self._market(ticker)["clobPairId"])

    def _ticker(self, cpid: int) -> Optional[str]:
        for t, m in self.markets.items():
            if int(m["clobPairId"]) == cpid:
                return t
        return None

    def subticks(self, ticker: str, price: Any) -> int:
        """USD price -> subticks (v4-chain ``protocol/x/clob/types/quantums.go``)."""
        m = self._market(ticker)
        return int(Decimal(str(price)).scaleb(int(m["atomicResolution"]) - int(m["quantumConversionExponent"]) + 6))

    def quantums(self, ticker: str, size: Any) -> int:
        """Base units -> base quantums."""
        return int(Decimal(str(size)).scaleb(-int(self._market(ticker)["atomicResolution"])))

    def _l2(self, ticker: str, is_bid: bool, subticks: int) -> tuple[str, str]:
        m = self._market(ticker)
        total = sum(max(o.quantums - f, 0) for o, f in self.orders.values()
                    if o.order_id.clob_pair_id == int(m["clobPairId"]) and o.subticks == subticks
                    and (o.side == clob_pb2.IndexerOrder.SIDE_BUY) == is_bid)
        price = Decimal(subticks).scaleb(int(m["quantumConversionExponent"]) - int(m["atomicResolution"]) - 6)
        return _fmt(price), _fmt(Decimal(total).scaleb(int(m["atomicResolution"])))

    def _mirror(self, order: Any) -> None:
        if self.mirror is None:
            return
        t = self._ticker(order.order_id.clob_pair_id)
        is_bid = order.side == clob_pb2.IndexerOrder.SIDE_BUY
        lvl = self._l2(t, is_bid, order.subticks)
        self.mirror(t, [lvl] if is_bid else [], [] if is_bid else [lvl])

    def _oid(self, ticker: str, client_id: Optional[int], owner: str) -> Any:
        return clob_pb2.IndexerOrderId(
            subaccount_id=subaccount_pb2.IndexerSubaccountId(owner=owner, number=0),
            client_id=next(self._ids) if client_id is None else client_id,
            order_flags=0, clob_pair_id=self._cpid(ticker))

    @staticmethod
    def key(oid: Any) -> tuple:
        """The order's identity tuple (owner, number, client_id, flags, clob_pair_id)."""
        return (oid.subaccount_id.owner, oid.subaccount_id.number, oid.client_id, oid.order_flags, oid.clob_pair_id)

    def _place_updates(self, order: Any, filled: int) -> list:
        return [ocu.OffChainUpdateV1(order_place=ocu.OrderPlaceV1(
                    order=order, placement_status=ocu.OrderPlaceV1.ORDER_PLACEMENT_STATUS_BEST_EFFORT_OPENED)),
                ocu.OffChainUpdateV1(order_update=ocu.OrderUpdateV1(
                    order_id=order.order_id, total_filled_quantums=filled))]

    def snapshot(self, clob_pair_ids: Iterable[int]) -> Any:
        """The snapshot response for these pairs (one ``StreamUpdate``, ``snapshot=True``)."""
        want = set(clob_pair_ids)
        updates = []
        for order, filled in self.orders.values():
            if order.order_id.clob_pair_id in want:
                updates.extend(self._place_updates(order, filled))
        return query_pb2.StreamOrderbookUpdatesResponse(updates=[query_pb2.StreamUpdate(
            block_height=self.height, exec_mode=EXEC_PREPARE_CHECK_STATE,
            orderbook_update=query_pb2.StreamOrderbookUpdate(snapshot=True, updates=updates))])

    def publish(self, response: Any) -> None:
        """Send a ``StreamOrderbookUpdatesResponse`` to every open call."""
        for q in self._queues:
            q.put_nowait(response)

    def _ob(self, updates: list, exec_mode: int = EXEC_CHECK) -> None:
        self.publish(query_pb2.StreamOrderbookUpdatesResponse(updates=[query_pb2.StreamUpdate(
            block_height=self.height, exec_mode=exec_mode,
            orderbook_update=query_pb2.StreamOrderbookUpdate(snapshot=False, updates=updates))]))

    def place(self, ticker: str, side: str, price: Any, size: Any, *, client_id: Optional[int] = None,
              owner: str = OWNER, publish: bool = True) -> tuple:
        """Rest an order (``side`` ``"BUY"``/``"SELL"``, USD price, base size); returns its key."""
        order = clob_pb2.IndexerOrder(
            order_id=self._oid(ticker, client_id, owner),
            side=clob_pb2.IndexerOrder.SIDE_BUY if side.upper() == "BUY" else clob_pb2.IndexerOrder.SIDE_SELL,
            quantums=self.quantums(ticker, size), subticks=self.subticks(ticker, price),
            good_til_block=self.height + 20)
        k = self.key(order.order_id)
        self.orders[k] = [order, 0]
        if publish:
            self._ob(self._place_updates(order, 0))
        self._mirror(order)
        return k

    def seed(self, ticker: str, bids: Iterable, asks: Iterable) -> None:
        """Rest one order per level (``(price, size)`` pairs) without publishing (snapshot state)."""
        for p, s in bids:
            self.place(ticker, "BUY", p, s, publish=False)
        for p, s in asks:
            self.place(ticker, "SELL", p, s, publish=False)

    def update(self, k: tuple, filled_quantums: int) -> None:
        """Set an order's total filled quantums (``OrderUpdateV1``)."""
        entry = self.orders[k]
        entry[1] = int(filled_quantums)
        self._ob([ocu.OffChainUpdateV1(order_update=ocu.OrderUpdateV1(
            order_id=entry[0].order_id, total_filled_quantums=entry[1]))])
        self._mirror(entry[0])

    def remove(self, k: tuple) -> None:
        """Remove an order (``OrderRemoveV1``, best-effort canceled)."""
        order, _ = self.orders.pop(k)
        self._ob([ocu.OffChainUpdateV1(order_remove=ocu.OrderRemoveV1(
            removed_order_id=order.order_id,
            removal_status=ocu.OrderRemoveV1.ORDER_REMOVAL_STATUS_BEST_EFFORT_CANCELED))])
        self._mirror(order)

    def fill(self, k: tuple, size: Any, *, finalize: bool = True) -> None:
        """A taker fills ``size`` (base units) of the resting order ``k``: the match is sent
        optimistically (exec mode 0), then confirmed (exec mode 7) when ``finalize``; the
        maker's update follows, and its removal when it is filled."""
        order, filled = self.orders[k]
        t = self._ticker(order.order_id.clob_pair_id)
        q = self.quantums(t, size)
        new_filled = filled + q
        taker_oid = order_pb2.OrderId(client_id=next(self._ids), order_flags=0,
                                      clob_pair_id=order.order_id.clob_pair_id)
        taker_oid.subaccount_id.owner = "dydx1faketaker"
        maker_oid = order_pb2.OrderId(client_id=order.order_id.client_id, order_flags=order.order_id.order_flags,
                                      clob_pair_id=order.order_id.clob_pair_id)
        maker_oid.subaccount_id.owner = order.order_id.subaccount_id.owner
        maker_oid.subaccount_id.number = order.order_id.subaccount_id.number
        maker_side = order_pb2.Order.SIDE_BUY if order.side == clob_pb2.IndexerOrder.SIDE_BUY else order_pb2.Order.SIDE_SELL
        taker_side = order_pb2.Order.SIDE_SELL if maker_side == order_pb2.Order.SIDE_BUY else order_pb2.Order.SIDE_BUY
        maker = order_pb2.Order(order_id=maker_oid, side=maker_side, quantums=order.quantums, subticks=order.subticks)
        taker = order_pb2.Order(order_id=taker_oid, side=taker_side, quantums=q, subticks=order.subticks)
        match = matches_pb2.ClobMatch(match_orders=matches_pb2.MatchOrders(
            taker_order_id=taker_oid, fills=[matches_pb2.MakerFill(fill_amount=q, maker_order_id=maker_oid)]))
        fill_msg = query_pb2.StreamOrderbookFill(clob_match=match, orders=[maker, taker], fill_amounts=[new_filled, q])
        modes = [EXEC_CHECK] + ([EXEC_FINALIZE] if finalize else [])
        self.publish(query_pb2.StreamOrderbookUpdatesResponse(updates=[
            query_pb2.StreamUpdate(block_height=self.height, exec_mode=m, order_fill=fill_msg) for m in modes]))
        self.orders[k][1] = new_filled
        self._mirror(order)
        if new_filled >= order.quantums:
            self.remove(k)

    def drop(self, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        """Fail every open call with ``code`` (the client must reconnect)."""
        for q in self._queues:
            q.put_nowait(code)


class _Servicer(query_pb2_grpc.QueryServicer):
    def __init__(self, fake: FakeNodeStream):
        self.fake = fake

    async def StreamOrderbookUpdates(self, request, context):  # noqa: N802 - the proto's name
        fake = self.fake
        fake.requests.append(request)
        if fake.mode == "unimplemented":
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "method StreamOrderbookUpdates not implemented")
        if fake.mode == "end":
            return
        q: asyncio.Queue = asyncio.Queue()
        fake._queues.append(q)
        try:
            if fake.mode == "silent":
                await asyncio.Event().wait()
            yield fake.snapshot(request.clob_pair_id)
            while True:
                item = await q.get()
                if item is None:
                    return
                if isinstance(item, grpc.StatusCode):
                    await context.abort(item, "stream dropped by the test")
                yield item
        finally:
            fake._queues.remove(q)
