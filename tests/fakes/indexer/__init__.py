"""Loopback fake of the dYdX v4 indexer: comlink REST under ``/v4`` and the socks
WebSocket at ``/v4/ws``, both on ONE ephemeral port of 127.0.0.1.

Protocol facts mirrored here (dydxprotocol/v4-chain ``indexer/services/socks`` and
``comlink``; see also shared/docs/dydx-v4.md section 4):

* ``connected`` (message_id 0) first; one ``message_id`` counter per connection across
  all channels.  A subscribe reserves the next id when it arrives and the ``subscribed``
  reply carries that id (it can therefore arrive after later-numbered channel data when
  the snapshot is slow, see ``ws_snapshot_delay``).  ``error`` replies to malformed
  requests reuse the current id (socks does not increment for them).
* ``subscribed`` carries the REST payload as ``contents``; ``v4_markets`` messages have
  no ``id`` key; ``v4_subaccounts`` contents are ``{subaccount, orders, blockHeight}``
  or ``{}`` for an unknown subaccount (comlink 404).
* ``channel_data`` (``batched`` false/absent) or ``channel_batch_data`` (contents is a
  list, flushed every ``batch_interval`` seconds, 0.25 s like socks).
* ``version`` per channel: orderbook 1.0.0, subaccounts 3.0.0, trades 2.1.0,
  markets/candles/block height 1.0.0.
* protocol pings every ``ping_interval`` s, close 1011 when no pong within
  ``ping_timeout`` s; app-level ``{"type":"ping"}`` is ignored (no reply).
* more than ``subscribe_rate_limit`` (2) subscribe attempts per ``subscribe_rate_window``
  (1 s) on one channel+id: ``error`` then close 1008.
* orderbook updates carry ABSOLUTE level sizes, ``"0"`` deletes a level; the REST
  snapshot is uncrossed (newer level wins, then the larger size) and capped at 100
  levels per side, while the stream may cross.

Data: real recorded payloads are READ at run time from the shared data folder
(``$DYDX_FAKES_DATA_DIR`` or ``<repo>/../shared/data``); they are never copied into the
repo.  Without that folder, or with ``PERPBOT_NO_SHARED_DATA=1`` (tests/shared_data.py),
a small built-in dataset (BTC-USD / ETH-USD with the real chain parameters) is used.

Usage in a pytest-asyncio test (same event loop)::

    async with FakeIndexer() as ix:
        client = IndexerClient(ix.rest_url, api_timeout=5)
        await ix.push_orderbook("BTC-USD", bids=[("65000", "1.5")])

or in a background thread with its own loop::

    ix = FakeIndexer().start_in_thread()
    ix.threadsafe.push_orderbook("BTC-USD", asks=[("65010", "0")])
    ix.stop_thread()

Layout (a package; ``from tests.fakes.indexer import X`` works for every name below):

* ``protocol.py``: channel names and versions, candle resolutions, subaccount limits,
  the indexer's uuids (``subaccount_uuid``, ``order_uuid``, ``bytes_uuid``) and its
  Decimal / time formatting (``D``, ``fmt``, ``iso_now``).
* ``dataset.py``: ``Dataset`` (initial state in REST shapes), ``load_dataset`` (real
  recorded payloads, see its docstring for the files), ``builtin_dataset``,
  ``synth_book``, ``default_data_dir`` and ``DATA_DIR_ENV``.
* ``book.py``: ``Book``, one market's levels and its uncrossed REST snapshot.
* ``accounts.py``: ``AccountState``, subaccounts / positions / USDC and the equity and
  free collateral recomputed from oracle prices.
* ``rest.py``: ``RestApi``, comlink's routes under ``/v4`` (filters, ``limit``, paging)
  and the HTTP gate where injected REST / handshake faults apply.
* ``websocket.py``: ``WebSocketApi``, socks' connections, subscriptions, snapshots,
  ``channel_data`` / ``channel_batch_data`` publishing and closes.
* ``controls.py``: the test-facing knobs -- ``MarketControls`` (book levels, trades,
  oracle price and funding rate, candles, block height, subaccount updates) and
  ``ConnectionControls`` (waits, raw frames, drops, closes, REST / handshake faults).
* ``server.py``: ``FakeIndexer``, which holds the state, runs one websockets server for
  REST and WebSocket, and mixes in the classes above.
* ``history.py``: ``install_history`` fills candles, historical funding and trades over days
  (real row shapes) for the paged history queries of ``runbot.py download``.

Imports run one way: ``protocol`` <- ``dataset`` (also ``tests/shared_data.py``), ``book``
<- ``accounts``, ``rest``, ``websocket`` <- ``controls`` (``_Fault`` from ``rest``) <-
``server`` <- this ``__init__``; nothing here imports the node or matching fakes
(tests/fakes/node.py, matching.py).
"""

from __future__ import annotations

from .accounts import AccountState
from .book import Book
from .controls import ConnectionControls, MarketControls
from .dataset import (DATA_DIR_ENV, Dataset, builtin_dataset, default_data_dir, load_dataset,
                      synth_book)
from .protocol import (ALL_CHANNELS, CANDLE_RESOLUTIONS, CHANNEL_VERSIONS,
                       CHILD_SUBACCOUNT_MULTIPLIER, INDEXER_UUID_NAMESPACE,
                       INITIAL_ORDER_STATUSES, LOOPBACK, MAX_PARENT_SUBACCOUNTS,
                       V4_BLOCK_HEIGHT, V4_CANDLES, V4_MARKETS, V4_ORDERBOOK,
                       V4_PARENT_SUBACCOUNTS, V4_SUBACCOUNTS, V4_TRADES, D, bytes_uuid, fmt,
                       iso_now, order_uuid, subaccount_uuid)
from .rest import RestApi
from .server import FakeIndexer
from .websocket import WebSocketApi

__all__ = [
    "ALL_CHANNELS", "AccountState", "Book", "CANDLE_RESOLUTIONS", "CHANNEL_VERSIONS",
    "CHILD_SUBACCOUNT_MULTIPLIER", "ConnectionControls", "D", "DATA_DIR_ENV", "Dataset",
    "FakeIndexer", "INDEXER_UUID_NAMESPACE", "INITIAL_ORDER_STATUSES", "LOOPBACK",
    "MAX_PARENT_SUBACCOUNTS", "MarketControls", "RestApi", "V4_BLOCK_HEIGHT", "V4_CANDLES",
    "V4_MARKETS", "V4_ORDERBOOK", "V4_PARENT_SUBACCOUNTS", "V4_SUBACCOUNTS", "V4_TRADES",
    "WebSocketApi", "builtin_dataset", "bytes_uuid", "default_data_dir", "fmt", "iso_now",
    "load_dataset", "order_uuid", "subaccount_uuid", "synth_book",
]
