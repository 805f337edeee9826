"""Building ccxt clients: the pro (WebSocket + async REST) client and a synchronous one for metadata.

Every client has ``enableRateLimit`` on (ccxt's own limiter spaces requests by the venue's
``rateLimit``). ``sandbox=True`` calls ccxt's ``set_sandbox_mode(True)`` (testnet URLs, e.g.
Binance's ``testnet.binancefuture.com``, ccxt ``binance.describe()["urls"]["test"]``).

``url`` points every REST and WebSocket URL of the venue at one base (the loopback fakes of
tests/fakes/ccxt): each ``http(s)://host[:port]`` prefix in ``urls["api"]`` becomes ``url``
and each ``ws(s)://host[:port]`` prefix its ``ws://`` twin, keeping the paths
(``https://fapi.binance.com/fapi/v1`` -> ``http://127.0.0.1:PORT/fapi/v1``).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

_HOST = re.compile(r"^(https?|wss?)://[^/]+")


def rewrite_urls(urls: Any, base: str) -> Any:
    """A copy of ccxt's ``urls["api"]`` tree with every host replaced by ``base`` (see module doc).

    :param base: ``http://127.0.0.1:PORT`` (a ``ws://`` twin is derived for WebSocket URLs).
    """
    base = base.rstrip("/")
    ws_base = "ws" + base[4:] if base.startswith("http") else base
    if isinstance(urls, dict):
        return {k: rewrite_urls(v, base) for k, v in urls.items()}
    if isinstance(urls, str):
        m = _HOST.match(urls)
        if m is None:
            return urls
        return (ws_base if m.group(1).startswith("ws") else base) + urls[m.end():]
    return urls


def client_options(ccxt_id: str) -> dict:
    """ccxt ``options`` the plugin sets for ``ccxt_id``: no currency list from private endpoints,
    no warning on account-wide open-order queries, perpetual swaps as the default type; on
    Hyperliquid no ccxt builder fee and no ccxt referral code."""
    opts: dict[str, Any] = {"defaultType": "swap", "warnOnFetchOpenOrdersWithoutSymbol": False}
    if ccxt_id.startswith("binance"):
        opts.update(fetchCurrencies=False, defaultType="future")
    if ccxt_id == "hyperliquid":
        # ccxt would otherwise approve and charge its own builder fee on every order and set its
        # referral code (ccxt/hyperliquid.py handle_builder_fee_approval, set_ref): not ours to add
        opts.update(builderFee=False, approvedBuilderFee=False, refSet=True)
    return opts


def make_client(ccxt_id: str, *, credentials: Mapping[str, Any] | None = None, url: str | None = None,
                sandbox: bool = False, pro: bool = True, timeout_ms: int = 10000, rate_limit_ms: float | None = None) -> Any:
    """A configured ccxt client for ``ccxt_id``.

    :param credentials: ccxt field (``apiKey``, ``secret``, ``walletAddress``, ``privateKey``) ->
        :class:`~perpbot.exchanges.ccxt.credentials.Credential` (revealed here, only into ccxt).
    :param url: base URL of a loopback fake (see :func:`rewrite_urls`), or None for the venue.
    :param sandbox: ccxt sandbox (testnet) mode.
    :param pro: the ``ccxt.pro`` class (WebSocket + async REST) when True, else the synchronous one.
    :param timeout_ms: ccxt's per-request timeout, milliseconds.
    :param rate_limit_ms: ccxt's ``rateLimit`` (milliseconds per unit of request weight) instead of
        the venue's own; the limiter stays on (a loopback fake may be queried faster).
    :raises AttributeError: ``ccxt_id`` is not a ccxt class (callers resolve it first).
    """
    if pro:
        import ccxt.pro as mod
    else:
        import ccxt as mod
    config: dict[str, Any] = {"enableRateLimit": True, "timeout": int(timeout_ms), "options": client_options(ccxt_id)}
    if rate_limit_ms is not None:
        config["rateLimit"] = float(rate_limit_ms)
    for field, cred in (credentials or {}).items():
        config[field] = cred.reveal()
    client = getattr(mod, ccxt_id)(config)
    if sandbox:
        client.set_sandbox_mode(True)
    if url:
        client.urls["api"] = rewrite_urls(client.urls["api"], url)
    return client


async def close_client(client: Any, venue: str, timeout_s: float = 5.0) -> None:
    """Close a ccxt pro client for sure: its WebSockets, then its HTTP session.

    ``client.close()`` closes each WebSocket first and waits for the venue's close frame
    (aiohttp's ``ws_close`` wait); only then its HTTP session (``ccxt/async_support/base/
    exchange.py`` ``close``). When that takes longer than ``timeout_s`` or raises, the
    session (and with it every socket it opened, WebSockets included: aiohttp's connector
    closes each connection it lent out) is closed directly. A client left open would be
    found by asyncio at exit, its receive tasks cancelled and their callbacks logging
    tracebacks ("Unclosed client session").

    :param venue: the venue's name, for the log line.
    :param timeout_s: the most the orderly close may take, seconds.
    :raises asyncio.CancelledError: the caller was cancelled (after the forced close).
    """
    import asyncio

    from loguru import logger

    # ccxt's close() forgets its WebSocket clients; one still connecting (its open() runs as a
    # future of its own, not cancelled with the watch that started it) may finish after it
    ws_clients = list((getattr(client, "clients", None) or {}).values())
    cancelled = False
    try:
        async with asyncio.timeout(timeout_s):
            await client.close()
        await finish_ws_clients(ws_clients, venue)
        return
    except asyncio.CancelledError:
        cancelled = True
    except Exception as exc:
        logger.debug(f"{venue}: closing the ccxt client: {type(exc).__name__}: {exc}; closing its session directly")
    session = getattr(client, "session", None)
    if session is not None and not session.closed:
        try:
            await session.close()
        except Exception as exc:  # the session's own failure: nothing more can be closed
            logger.warning(f"{venue}: closing the ccxt HTTP session failed: {type(exc).__name__}: {exc}")
    client.session = None
    if cancelled:
        raise asyncio.CancelledError
    await finish_ws_clients(ws_clients, venue)


def client_open(client: Any) -> bool:
    """True when a ccxt client holds anything open: its HTTP session, or a WebSocket connection
    (made or still being made). A client closed earlier is open again when a call still in flight
    on it when it was closed (a REST fetch, a watch) made a new session or socket: ccxt opens them
    on demand (``ccxt/async_support/base/exchange.py`` ``open``, ``ws/client.py`` ``connect``)."""
    session = getattr(client, "session", None)
    if session is not None and not getattr(session, "closed", True):
        return True
    for wc in (getattr(client, "clients", None) or {}).values():
        conn = getattr(wc, "connection", None)
        if (conn is not None and not conn.closed) or getattr(wc, "connecting", False):
            return True
    return False


async def close_all(clients: Any, venue: str) -> int:
    """:func:`close_client` each of ``clients`` (ccxt clients an owner made) that is still or again
    open (:func:`client_open`); for an owner's stop, once none of its tasks can use them any more.

    :returns: how many were closed here.
    """
    n = 0
    for client in list(clients):
        if client_open(client):
            await close_client(client, venue)
            n += 1
    return n


async def finish_ws_clients(ws_clients: list, venue: str, timeout_s: float = 2.0) -> None:
    """After a ccxt client's close: wait for connection attempts still in flight and close
    whatever they opened, then let the receive tasks see their sockets closed.

    A watch starts ``Client.open()`` with ``ensure_future`` (``ccxt/async_support/base/ws/
    client.py`` ``connect``); cancelling the watch does not cancel it, and ``close()`` skips a
    client whose connection is not made yet. A handshake finishing after the close leaves an
    open socket whose receive task asyncio.run cancels at exit, and ccxt's ``after_interrupt``
    callback then prints a CancelledError traceback. Here each such attempt is awaited (at
    most ``timeout_s`` in all), every connection still open is closed (bounded), its ping
    task cancelled, and the loop runs a few rounds so the receive tasks end by themselves.

    :param ws_clients: the ccxt ``Client`` objects of ``exchange.clients``, taken before the close.
    :param venue: the venue's name, for the log line.
    """
    import asyncio

    from loguru import logger

    if not ws_clients:
        return
    waiting = [wc.connected for wc in ws_clients
               if getattr(wc, "connecting", False) and isinstance(getattr(wc, "connected", None), asyncio.Future)]
    if waiting:
        await asyncio.wait(waiting, timeout=timeout_s)
        for fut in waiting:
            if fut.done() and not fut.cancelled():
                fut.exception()  # a failed attempt is expected here: retrieved, not logged by asyncio
    closed = 0
    for wc in ws_clients:
        conn = getattr(wc, "connection", None)
        if conn is not None and not conn.closed:
            try:
                async with asyncio.timeout(timeout_s):
                    await conn.close()
            except (Exception, TimeoutError) as exc:
                logger.debug(f"{venue}: closing a WebSocket left open: {type(exc).__name__}: {exc}")
            closed += 1
        looper = getattr(wc, "ping_looper", None)
        if looper is not None:
            looper.cancel()
    if closed or waiting:
        for _ in range(3):
            await asyncio.sleep(0)
