"""Run the loopback dYdX fakes by hand.

    python -m tests.fakes [--port P | --rest-port P --ws-port Q] [--node-port R]
                          [--height H] [--block-time S] [--builtin-data] [--no-matching]

The indexer serves REST (``/v4/...``) and WebSocket (``/v4/ws``) on ONE port; ``--port``,
``--rest-port`` and ``--ws-port`` are accepted as aliases (if ``--rest-port`` and
``--ws-port`` differ the REST port wins and a note is printed).  Every port defaults to 0
(ephemeral).  Everything binds 127.0.0.1.  The URLs are printed, then a line
``READY rest=... ws=... node=...``; Ctrl-C stops.  Run from the repo root
(``PYTHONPATH=.`` if ``tests`` is not importable as a package yet).

Point a client at it with::

    make_insecure(testnet_node, rest_indexer=REST, websocket_indexer=WS, node_url=NODE)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from . import FakeDydx


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.fakes",
                                description="loopback dYdX v4 indexer + node fakes")
    p.add_argument("--port", type=int, default=None, help="indexer port (REST + WS)")
    p.add_argument("--rest-port", type=int, default=None)
    p.add_argument("--ws-port", type=int, default=None)
    p.add_argument("--node-port", type=int, default=0)
    p.add_argument("--height", type=int, default=None)
    p.add_argument("--block-time", type=float, default=None,
                   help="advance the node height every S seconds")
    p.add_argument("--builtin-data", action="store_true",
                   help="ignore the shared data folder, use the built-in dataset")
    p.add_argument("--no-matching", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


async def _run(ns: argparse.Namespace) -> int:
    port = ns.port if ns.port is not None else (
        ns.rest_port if ns.rest_port is not None else (ns.ws_port or 0))
    if ns.rest_port is not None and ns.ws_port is not None and ns.rest_port != ns.ws_port:
        print(f"note: REST and WebSocket share one port; using {port}", flush=True)
    node_kwargs = {"port": ns.node_port}
    if ns.height is not None:
        node_kwargs["height"] = ns.height
    if ns.block_time:
        node_kwargs["block_time"] = ns.block_time
    dx = FakeDydx(indexer_kwargs={"port": port, "use_shared_data": not ns.builtin_data},
                  node_kwargs=node_kwargs, matching=not ns.no_matching)
    await dx.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover
            pass
    try:
        print(f"dataset: {dx.indexer.dataset.source} ({len(dx.indexer.markets)} markets)")
        print(f"REST indexer : {dx.rest_url}/v4")
        print(f"WS indexer   : {dx.ws_url}")
        print(f"node (gRPC)  : {dx.node_url}  chain_id={dx.node.chain_id}  "
              f"height={dx.node.height}")
        print(f"READY rest={dx.rest_url} ws={dx.ws_url} node={dx.node_url}", flush=True)
        await stop.wait()
    finally:
        await dx.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    ns = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO if ns.verbose else logging.WARNING)
    try:
        return asyncio.run(_run(ns))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
