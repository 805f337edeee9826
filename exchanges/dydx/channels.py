"""The indexer's WebSocket channel names (the ``channel`` field of every message).

Names as the indexer's socks service defines them (v4-chain
``indexer/services/socks/src/types.ts``, enum ``Channel``); message shapes in
``indexer/packages/postgres/src/types/websocket-message-types.ts``. Imports nothing.
"""

from __future__ import annotations

#: order-book snapshot (``subscribed``) and absolute-size level updates, id = ticker
V4_ORDERBOOK = "v4_orderbook"
#: public trades, id = ticker
V4_TRADES = "v4_trades"
#: market parameters, oracle prices and predicted funding (no id)
V4_MARKETS = "v4_markets"
#: candles, id = ``TICKER/RESOLUTION``
V4_CANDLES = "v4_candles"
#: one subaccount's orders, fills, positions, id = ``address/number``
V4_SUBACCOUNTS = "v4_subaccounts"
#: a parent subaccount with its isolated children (not used for trading yet)
V4_PARENT_SUBACCOUNTS = "v4_parent_subaccounts"
#: the indexer's block height (``{height, time}``)
V4_BLOCK_HEIGHT = "v4_block_height"
#: every channel the parser knows (others are counted as ``unknown_channel``)
KNOWN_CHANNELS = frozenset(
    {V4_ORDERBOOK, V4_TRADES, V4_MARKETS, V4_CANDLES, V4_SUBACCOUNTS, V4_PARENT_SUBACCOUNTS, V4_BLOCK_HEIGHT}
)
