"""dYdX v4 order books from a full node's gRPC stream (``--dydx-stream HOST:PORT``).

A full node started with ``--grpc-streaming-enabled`` serves
``dydxprotocol.clob.Query/StreamOrderbookUpdates`` (v4-chain
``proto/dydxprotocol/clob/query.proto``, ``protocol/streaming/``): a snapshot of its book,
then every order placed, updated (total filled quantums) and removed, and every match
(v4-documentation ``pages/api_integration-full-nodes/full_node_streaming.md``). From it:

- ``l3``: :class:`~perpbot.exchanges.dydx.stream.l3.L3Book`, one CLOB pair's orders and
  levels in integer subticks and quantums;
- ``books``: :class:`~perpbot.exchanges.dydx.stream.books.StreamBooks`, the stream's messages
  applied to the L3 books, giving ``BookSnapshot`` / ``BookDelta`` (the derived L2 book,
  Decimal only at this edge) and ``Trade`` (matches confirmed in ``execModeFinalize``);
- ``client``: the ``grpc.aio`` call (:func:`~perpbot.exchanges.dydx.stream.client.open_stream`);
- ``crosscheck``: :class:`~perpbot.exchanges.dydx.stream.crosscheck.CrossCheck`, the indexer's
  top of book against the stream's, disagreements counted and logged, the stream's lead
  measured;
- ``source``: :class:`~perpbot.exchanges.dydx.stream.source.StreamSource`, which the ``dydx``
  feed runs: the stream drives a market's book and trades once its snapshot is in, the
  indexer before that and whenever the stream is lost.

**Where the stream's book and the indexer's differ, and why.**

- *Time.* The indexer's book lags: its own full node's order messages go through Kafka to
  ``vulcan``, then Redis, then ``socks`` which flushes WebSocket batches every 250 ms
  (v4-chain ``indexer/services/socks``). Trades reach the indexer only after the block is
  committed (``ender``); the stream sends a match as soon as the node matches it
  (optimistically, exec mode 0) and again when the block is finalized (exec mode 7).
- *Node view.* Every node keeps its own optimistic book: orders gossip in different
  orders to different nodes, so two nodes' books (the user's node and the indexer's) can
  differ for a moment at the top (v4-documentation ``full_node_streaming.md``).
- *Crossing.* A node's book never crosses: its matching engine fills crossing orders
  (v4-chain ``protocol/x/clob/memclob``). The indexer's WebSocket book can cross (per-order,
  not per-level ordering; nautilus_trader #2075), and its REST snapshot is uncrossed by
  dropping levels (newer, then larger wins), which the stream's book keeps.
- *Depth.* The REST snapshot holds at most 100 levels a side; the stream has every order.
- *Fill state.* The stream shows an order's remaining size after optimistic fills at once;
  when a fill is not confirmed the node restores it with update messages, so the stream's
  book can show a level briefly thinner than the indexer's.

Measured. The recorded mainnet stream (dydxprotocol/grpc-stream-client test assets: 32 s,
BTC-USD and ETH-USD, blocks 32793640-32793669, two connections to one node; read in tests
only, it is AGPL) rebuilds books of about 1,400 (BTC) and 1,300 (ETH) resting orders that
never cross, checked after every order message; every removal names an order the book
holds. The second connection, started 29 s later from its own snapshot, has the same book
level by level at 33 of 37 points aligned by receive time (the others fall inside a batch
the other connection cut elsewhere; their tops differed once, ETH by 0.3-0.6 USD) and at the
end. No indexer capture exists for those 32 s, so agreement with an indexer is checked on
the loopback fakes, where the indexer follows the node's order flow: no disagreement, and
the stream first by a median 144 ms (p90 225 ms) with socks' 250 ms batches, 6 ms on
transport alone (``bench/bench_stream.py``). On the recording a match is streamed a median
602 ms (555-2,073 ms, 6 matches) before its block confirms it, the earliest the indexer can
publish the trade; 4 of the 10 confirmed matches this node had not seen before the block.
"""

from __future__ import annotations

from perpbot.exchanges.dydx.stream.books import StreamBooks
from perpbot.exchanges.dydx.stream.crosscheck import CrossCheck
from perpbot.exchanges.dydx.stream.l3 import L3Book
from perpbot.exchanges.dydx.stream.source import StreamSource

__all__ = ["CrossCheck", "L3Book", "StreamBooks", "StreamSource"]
