"""Loopback fakes of the dYdX v4 indexer (REST + WebSocket) and full-node gRPC API that
speak the real protocol, for tests that drive real client code paths offline.

* ``FakeIndexer`` (tests/fakes/indexer/): comlink REST under ``/v4`` and socks WebSocket
  at ``/v4/ws`` on one ephemeral 127.0.0.1 port, seeded from real recorded payloads read
  from the shared data folder (or a small built-in dataset).
* ``FakeNode`` (tests/fakes/node.py): insecure gRPC server from v4-proto servicers
  (auth Account, tendermint GetLatestBlock/GetNodeInfo, tx BroadcastTx/Simulate/GetTx,
  feetiers, bank) that decodes and records clob messages and mirrors the ante-handler's
  sequence / signature / GoodTilBlock checks.
* ``MatchingBridge`` (tests/fakes/matching.py): accepted orders trade against the fake
  indexer's book and come back as ``v4_subaccounts`` / ``v4_orderbook`` / ``v4_trades``.
* ``FakeDydx``: all three wired together.

    async with FakeDydx() as dx:
        network = dx.network()                      # make_insecure(...) at the fakes
        client = IndexerClient(dx.rest_url, api_timeout=5)
        node = await NodeClient.connect(network.node)

Command line: ``python -m tests.fakes`` (see tests/fakes/__main__.py).
"""

from __future__ import annotations

from typing import Any, Optional

from .indexer import (Book, Dataset, FakeIndexer, builtin_dataset, default_data_dir,
                      load_dataset, order_uuid, subaccount_uuid)
from .matching import (MatchingBridge, fill_quote_quantums, price_to_subticks,
                       quantums_to_size, size_to_quantums, subticks_to_price)
from .node import BroadcastRecord, FakeNode, address_from_pubkey
from .transfers import TransferBridge

__all__ = [
    "Book", "BroadcastRecord", "Dataset", "FakeDydx", "FakeIndexer", "FakeNode",
    "MatchingBridge", "TEST_MNEMONIC", "address_from_pubkey", "builtin_dataset",
    "default_data_dir", "fill_quote_quantums", "load_dataset", "order_uuid",
    "price_to_subticks", "quantums_to_size", "size_to_quantums", "subaccount_uuid",
    "subticks_to_price", "TransferBridge",
]

# The public BIP39 test vector (all-zero entropy).  NOT a real key: anyone can derive it.
TEST_MNEMONIC = " ".join(["abandon"] * 11 + ["about"])


class FakeDydx:
    """FakeIndexer + FakeNode (+ MatchingBridge) sharing one block height (the node's).

    ``indexer_kwargs`` / ``node_kwargs`` go to the constructors; ``matching=False`` leaves
    the bridge out.  Use ``async with`` inside a test's event loop, or ``with`` to run the
    indexer on a background thread (then drive it via ``dx.indexer.threadsafe``).
    """

    def __init__(self, *, indexer_kwargs: Optional[dict] = None,
                 node_kwargs: Optional[dict] = None, matching: bool = True,
                 bridge_kwargs: Optional[dict] = None):
        self.indexer = FakeIndexer(**(indexer_kwargs or {}))
        nk = dict(node_kwargs or {})
        nk.setdefault("height", self.indexer.height)
        self.node = FakeNode(**nk)
        self.indexer.height_source = lambda: self.node.height
        self.bridge: Optional[MatchingBridge] = (
            MatchingBridge(self.indexer, self.node, **(bridge_kwargs or {})) if matching
            else None)
        # accepted transfers / deposits / withdrawals move USDC on the indexer (tests/fakes/transfers.py)
        self.transfers: Optional[TransferBridge] = TransferBridge(self.indexer, self.node) if matching else None
        self._threaded = False

    @property
    def rest_url(self) -> str:
        return self.indexer.rest_url

    @property
    def ws_url(self) -> str:
        return self.indexer.ws_url

    @property
    def node_url(self) -> str:
        return self.node.url

    def network(self) -> Any:
        """``dydx_v4_client.network.Network`` for the three loopback endpoints."""
        return self.node.network(self.rest_url, self.ws_url)

    async def start(self) -> "FakeDydx":
        self.node.start()
        try:
            await self.indexer.start()
        except BaseException:
            self.node.stop()
            raise
        return self

    async def stop(self) -> None:
        try:
            await self.indexer.stop()
        finally:
            self.node.stop()

    async def __aenter__(self) -> "FakeDydx":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def __enter__(self) -> "FakeDydx":
        self.node.start()
        try:
            self.indexer.start_in_thread()
        except BaseException:
            self.node.stop()
            raise
        self._threaded = True
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.indexer.stop_thread()
        finally:
            self.node.stop()
