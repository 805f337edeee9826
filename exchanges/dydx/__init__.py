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

What lives where, in layers: a module imports :mod:`perpbot.core`, third-party
libraries and dYdX modules of its own group or an earlier one, never a later group;
nothing here imports another exchange plugin, a strategy or ``perpbot.plugins``:

- settings and plumbing: ``config`` (:class:`~perpbot.exchanges.dydx.config.DydxSettings`,
  every key), ``secrets`` (the mnemonic), ``limits`` (rate limits, circuit breaker),
  ``rest`` (``IndexerRest``, the v4-clients ``IndexerClient`` with retries), ``ws`` (the ONE
  shared WebSocket, ``acquire``/``release``), ``authenticators`` (permissioned trading keys:
  ``x/accountplus`` authenticators, the key file), ``fees`` (fee tier, the chain's block rate
  limits, TWAP support), ``node`` (``NodeGateway``: the v4-clients ``NodeClient`` on a worker
  thread, sequence, budget, breaker, trading-key signing);
- messages -> events: ``channels`` (channel names), ``values`` (``BadValue`` and the
  value checks), ``books`` (order books and their health), ``market_channels``
  (trades, markets/oracle/funding, candles), ``parser`` (``DydxParser``: decoding,
  dispatch, counters); ``feed`` (``DydxFeed``) and ``recording`` (record / replay) use it;
- orders and account: ``orders`` (Decimal -> quantums/subticks, the ``Order`` proto),
  ``client_ids`` (persistent fixed32 ids), ``order_registry`` (our and foreign orders,
  unknown outcomes), ``ledger`` (fills, positions, balance, funding), ``account``
  (``AccountState``: the stream façade over both), ``subaccounts`` (isolated child
  subaccounts ``parent + 128*k``, their ledgers, the collateral an isolated order needs);
- the exchange: ``outcomes`` (look-ups by id), ``reconcile`` (REST paging, the
  maintenance loop, divergences of the parent and every child), ``order_path`` (place /
  cancel), ``transfers`` (USDC transfers, deposits, withdrawals, confirmed on the indexer),
  ``isolated`` (routing to children, funding and sweeping them), ``exchange``
  (``DydxExchange``: lifecycle, markets, height, stream);
- ``cli`` (the ``record`` command), ``cli_keys`` (``runbot.py dydx ...``: trading keys, fees,
  TWAP; the ``DYDX_APP`` group other command modules add to), ``cli_funds`` (``runbot.py dydx
  deposit | withdraw | transfer``).

Imports of the v4-clients packages (``dydx_v4_client``, ``v4_proto``) stay inside
``rest``, ``node``, ``orders``, ``order_path``, ``secrets``, ``authenticators``, ``fees``,
``transfers`` and the command modules (most of them made on use).
"""

from __future__ import annotations

from perpbot.core.hookspecs import hookimpl


@hookimpl
def register_feeds(register):
    """Register the ``dydx`` feed (:class:`~perpbot.exchanges.dydx.feed.DydxFeed`; imported on use)."""
    from perpbot.exchanges.dydx.feed import DydxFeed

    register(DydxFeed)


@hookimpl
def register_exchanges(register):
    """Register the ``dydx`` exchange (:class:`~perpbot.exchanges.dydx.exchange.DydxExchange`; imported on use)."""
    from perpbot.exchanges.dydx.exchange import DydxExchange

    register(DydxExchange)


@hookimpl
def register_commands(cli):
    """Register the ``record`` command (:func:`perpbot.exchanges.dydx.cli.register`) and the
    ``dydx`` account commands (:func:`perpbot.exchanges.dydx.cli_keys.register`: trading keys,
    fees and limits, TWAP; :mod:`perpbot.exchanges.dydx.cli_funds`: deposit, withdraw, transfer)."""
    from perpbot.exchanges.dydx.cli import register

    register(cli)
    from perpbot.exchanges.dydx.cli_keys import register as register_dydx

    register_dydx(cli)
    # deposit / withdraw / transfer join the same ``dydx`` group (imported for its decorators)
    import perpbot.exchanges.dydx.cli_funds  # noqa: F401
