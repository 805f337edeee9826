"""Replay of the recorded mainnet full-node stream (shared data ``dydx_v4/fullnode_grpc_stream``:
dydxprotocol/grpc-stream-client ``test/assets/feed_from_t0.log`` and ``feed_from_t1.log``, two
connections to one node, BTC-USD (CLOB pair 0) and ETH-USD (1), blocks 32793640-32793669,
decoded to JSON). AGPL: read here only, never copied into the repository.

The recording has no indexer capture of the same 32 s, so "top of book matches" is checked
between the two connections (each rebuilds its book from its own snapshot) and, on the
loopback fakes, against the indexer (test_stream_bot.py).
"""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

import pytest

from perpbot.core.model import Market, Trade
from perpbot.exchanges.dydx.stream import StreamBooks
from tests import shared_data

D = Decimal
NS_PER_MS = 1_000_000
# /v4/perpetualMarkets values of BTC-USD and ETH-USD (atomicResolution, quantumConversionExponent)
MARKETS = {
    "BTC-USD": Market("BTC-USD", 0, tick_size="1", step_size="0.0001", atomic_resolution=-10,
                      quantum_conversion_exponent=-9),
    "ETH-USD": Market("ETH-USD", 1, tick_size="0.1", step_size="0.001", atomic_resolution=-9,
                      quantum_conversion_exponent=-9),
}


def _load(name: str) -> list:
    root = shared_data.shared_data_dir()
    if root is None:
        pytest.skip(f"needs the recorded full-node stream in the shared data folder ({shared_data.absent_reason()})")
    from google.protobuf import json_format
    from v4_proto.dydxprotocol.clob.query_pb2 import StreamOrderbookUpdatesResponse

    path = root / "dydx_v4" / "fullnode_grpc_stream" / name
    if not path.exists():
        pytest.skip(f"{path} is not in the shared data folder")
    opener = gzip.open if name.endswith(".gz") else open
    out = []
    with opener(path, "rt") as f:
        for line in f:
            row = json.loads(line)
            out.append((row["recv_ts_ms"] * NS_PER_MS,
                        json_format.ParseDict(row["msg"], StreamOrderbookUpdatesResponse())))
    return out


@pytest.fixture(scope="module")
def t0():
    return _load("feed_from_t0.jsonl.gz")


@pytest.fixture(scope="module")
def t1():
    return _load("feed_from_t1.jsonl")


def test_the_recorded_stream_rebuilds_books_that_never_cross(t0):
    sb = StreamBooks(MARKETS)
    trades = []
    for ts, resp in t0:
        for e in sb.on_response(resp, ts):
            if isinstance(e, Trade):
                trades.append(e)
        for cpid, book in sb.books.items():
            assert not book.is_crossed(), (ts, cpid, book.best_bid(), book.best_ask())
    s = sb.stats
    assert sb.synced and s["snapshots"] == 1
    assert s["crossings"] == 0 and not sb.crossed  # checked after every order-book message, not only per response
    assert s["bad_messages"] == 0 and s["other_pairs"] == 0
    assert s["skipped_before_snapshot"] > 0  # the recording starts before the snapshot
    # every removal names an order the book holds: nothing was lost between snapshot and end
    assert all(b.counters["unknown_removes"] == 0 for b in sb.books.values())
    assert len(sb.books[0]) > 1000 and len(sb.books[1]) > 1000
    # trades only from matches confirmed in execModeFinalize, one per maker fill, at sane prices
    assert s["finalized_fills"] > 0 and len(trades) == s["trades"] >= s["finalized_fills"]
    for tr in trades:
        lo, hi = (D(90000), D(110000)) if tr.ticker == "BTC-USD" else (D(3000), D(4500))
        assert lo < tr.price < hi and tr.size > 0, tr
    bid, ask = sb.top("BTC-USD")
    assert bid < ask and ask - bid < D(10)


def test_two_connections_to_one_node_rebuild_the_same_book(t0, t1):
    """The second connection starts 29 s later from its own snapshot; aligned by receive time its
    book equals the first one's level by level at most points (a connection's batches are cut at
    different moments, so an aligned point can fall inside a batch of the other) and at the end."""
    a, b = StreamBooks(MARKETS), StreamBooks(MARKETS)
    i = same = points = top_same = 0
    for ts, resp in t1:
        b.on_response(resp, ts)
        while i < len(t0) and t0[i][0] <= ts:
            a.on_response(t0[i][1], t0[i][0])
            i += 1
        if not b.synced:
            continue
        points += 1
        same += all(a.books[c].levels(True) == b.books[c].levels(True)
                    and a.books[c].levels(False) == b.books[c].levels(False) for c in (0, 1))
        top_same += all(a.top(c) == b.top(c) for c in (0, 1))
    for ts, resp in t0[i:]:
        a.on_response(resp, ts)
    assert points > 30 and same >= points * 0.8 and top_same >= points - 2, (points, same, top_same)
    for c in (0, 1):
        assert a.books[c].levels(True) == b.books[c].levels(True)
        assert a.books[c].levels(False) == b.books[c].levels(False)
        assert a.top(c) == b.top(c)
