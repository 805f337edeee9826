"""dYdX v4 plugin: live market data on ONE WebSocket, orders through the node, recorder.

Registers (through the same hooks a third-party plugin uses):

- feed ``dydx`` (:class:`~perpbot.exchanges.dydx.feed.DydxFeed`): live public market data, no
  keys. ``runbot.py --exchange paper --feed dydx`` paper-trades on it;
- exchange ``dydx`` (:class:`~perpbot.exchanges.dydx.exchange.DydxExchange`): real orders;
  its default feed is ``dydx`` (the same socket carries its subaccount stream);
- command ``record`` (:mod:`perpbot.exchanges.dydx.cli`): ``runbot.py record --ticker BTC,ETH
  --out FILE`` writes the raw stream; :class:`~perpbot.exchanges.dydx.recording.RecordingReader`
  replays it through the live parser.

Configuration: the ``[exchange.dydx]`` / ``[feed.dydx]`` tables, every key documented in
:mod:`perpbot.exchanges.dydx.config`. The CLI's ``--network``, ``--indexer-rest``,
``--indexer-ws``, ``--node`` and ``--live`` fill them. Trading mainnet needs
``--live``; the mnemonic comes from ``$DYDX_MNEMONIC`` or a mode-600 file.

Against the loopback fakes (``python -m tests.fakes`` prints the ports)::

    runbot.py --exchange dydx --network custom --indexer-rest http://127.0.0.1:P \\
        --indexer-ws ws://127.0.0.1:P/v4/ws --node 127.0.0.1:R --strategy sniper --ticker BTC,ETH

Module map: config (settings), secrets (mnemonic), limits (rate limits, breaker),
rest (IndexerClient wrapper), ws (the one WebSocket), parser (messages -> events,
book health), feed, orders (Decimal -> quantums/subticks, Order proto), client_ids
(persistent fixed32 ids), node (NodeClient on a worker thread), account (subaccount
state), exchange, recording, cli.
"""

from __future__ import annotations

from perpbot.core.hookspecs import hookimpl


@hookimpl
def register_feeds(register):
    from perpbot.exchanges.dydx.feed import DydxFeed

    register(DydxFeed)


@hookimpl
def register_exchanges(register):
    from perpbot.exchanges.dydx.exchange import DydxExchange

    register(DydxExchange)


@hookimpl
def register_commands(cli):
    from perpbot.exchanges.dydx.cli import register

    register(cli)
