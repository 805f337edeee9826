"""FakeNode connection faults: a reply lost after the tx was processed, and a node that refuses
connections (so a request never leaves the client). Issue 9.15 / 9.16."""

from __future__ import annotations

import grpc
import pytest
from v4_proto.cosmos.base.tendermint.v1beta1 import query_pb2 as tm_query
from v4_proto.cosmos.base.tendermint.v1beta1 import query_pb2_grpc as tm_grpc
from v4_proto.cosmos.tx.v1beta1 import service_pb2 as tx_service
from v4_proto.cosmos.tx.v1beta1 import service_pb2_grpc as tx_grpc

from tests.fakes import FakeNode


def _stubs(node):
    ch = grpc.insecure_channel(node.url)
    return ch, tx_grpc.ServiceStub(ch), tm_grpc.ServiceStub(ch)


def test_drop_after_accept_processes_the_tx_then_loses_the_reply():
    with FakeNode(height=100) as node:
        ch, tx, tm = _stubs(node)
        try:
            assert tm.GetLatestBlock(tm_query.GetLatestBlockRequest(), timeout=5).block.header.height == 100
            port = node.port
            node.drop_after_accept(1)
            with pytest.raises(grpc.RpcError) as err:
                tx.BroadcastTx(tx_service.BroadcastTxRequest(tx_bytes=b"\x0a\x00"), timeout=5)
            assert err.value.code() is grpc.StatusCode.UNAVAILABLE
            assert len(node.broadcasts) == 1 and node.drops == 1  # processed, then the reply was lost
            # the node listens again on the same port: the next call works and gets its reply
            r = tx.BroadcastTx(tx_service.BroadcastTxRequest(tx_bytes=b"\x0a\x00"), timeout=5, wait_for_ready=True)
            assert node.port == port and len(node.broadcasts) == 2 and r.tx_response.txhash
        finally:
            ch.close()


def test_refused_connections_never_reach_the_node():
    with FakeNode(height=100) as node:
        node.refuse_connections()
        ch, tx, _ = _stubs(node)
        try:
            with pytest.raises(grpc.RpcError) as err:
                tx.BroadcastTx(tx_service.BroadcastTxRequest(tx_bytes=b"\x0a\x00"), timeout=5)
            assert err.value.code() is grpc.StatusCode.UNAVAILABLE
            assert "failed to connect" in err.value.details().lower()
            assert node.broadcasts == []
            node.accept_connections()
            ch2 = grpc.insecure_channel(node.url, options=[("grpc.use_local_subchannel_pool", 1)])
            tx_grpc.ServiceStub(ch2).BroadcastTx(tx_service.BroadcastTxRequest(tx_bytes=b"\x0a\x00"), timeout=5,
                                                 wait_for_ready=True)
            ch2.close()
            assert len(node.broadcasts) == 1
        finally:
            ch.close()
