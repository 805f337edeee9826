"""A loopback fake of Binance USD-M futures: REST ``/fapi`` and the WebSocket market and user streams.

It speaks the protocol ccxt 4.5.18's ``binanceusdm`` (``ccxt/binance.py``, ``ccxt/pro/binance.py``)
drives, with the payload shapes of the Binance USD-M API documentation
(developers.binance.com/docs/derivatives/usds-margined-futures: "Exchange Information",
"Order Book", "Mark Price", "Get Funding Rate History", "Get Funding Rate Info",
"Kline/Candlestick Data", "Mark Price Kline/Candlestick Data", "Symbol Order Book Ticker", "New Order", "Cancel Order", "Query Order",
"Current All Open Orders", "All Orders", "Account Trade List", "Position Information V3",
"Account Information V3", "Futures Account Balance V2", "Notional and Leverage Brackets",
"Get Income History", "Start/Keepalive User Data Stream"; WebSocket "Diff. Book Depth
Streams", "Trade Streams", "Mark Price Stream", "Event: Order Update", "Event: Balance and
Position Update"; "How to manage a local order book correctly" for ``U``/``u``/``pu``).

Everything binds 127.0.0.1 on an OS-chosen port; one port serves REST and WebSocket. Point
ccxt at it by rewriting every ``https://*.binance.com`` URL to :attr:`FakeBinanceUsdm.url`
and every ``wss://`` one to :attr:`FakeBinanceUsdm.ws_url` (the ccxt plugin's ``url``
option does this). Signed requests are checked as Binance checks them: the
``X-MBX-APIKEY`` header, an HMAC-SHA256 hex ``signature`` of the query (GET/DELETE) or
form body (POST/PUT) before ``&signature=``, and ``timestamp`` within ``recvWindow``.

The matching engine and the account live in :mod:`tests.fakes.ccxt.binance_engine`.

    async with FakeBinanceUsdm() as fake:          # in the test's event loop
        ...
    with FakeBinanceUsdm() as fake:                # on a background thread (for subprocesses)
        fake.call(fake.settle_funding, "BTCUSDT", "0.0001")
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from decimal import Decimal
from typing import Any, Callable
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from tests.fakes.ccxt.binance_engine import API_KEY, API_SECRET, BinanceError, Engine

D = Decimal
__all__ = ["FakeBinanceUsdm", "API_KEY", "API_SECRET"]


class FakeBinanceUsdm(Engine):
    """The fake venue: :class:`~tests.fakes.ccxt.binance_engine.Engine` (books, orders, account)
    behind an aiohttp server speaking Binance USD-M REST and WebSocket.

    :param symbols: exchange symbols to list (default ``BTCUSDT``, ``ETHUSDT``).
    :param wallet: USDT wallet balance of the test account.
    :param funding_interval_h: ``fundingIntervalHours`` per symbol (``/fapi/v1/fundingInfo``).
    :param mark_interval_s: seconds between ``markPriceUpdate`` pushes (Binance: 1 s with ``@1s``).
    """

    def __init__(self, mark_interval_s: float = 1.0, **kw: Any):
        super().__init__(**kw)
        self.mark_interval_s = mark_interval_s
        self.url = ""
        self.ws_url = ""
        self.requests: list[tuple[str, str]] = []  # (method, path) of every REST request
        self._faults: dict[str, list] = {}
        self._runner: web.AppRunner | None = None
        self._market_ws: list[tuple[web.WebSocketResponse, set]] = []
        self._user_ws: list[web.WebSocketResponse] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> "FakeBinanceUsdm":
        """Bind 127.0.0.1 on a free port and serve."""
        self._loop = asyncio.get_running_loop()
        app = web.Application()
        app.router.add_route("*", "/ws/{tail:.*}", self._ws)
        app.router.add_route("*", "/ws", self._ws)
        app.router.add_route("*", "/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        self._ticker = asyncio.ensure_future(self._mark_ticker())
        return self

    async def _mark_ticker(self) -> None:
        """Binance's ``<symbol>@markPrice@1s`` stream: a ``markPriceUpdate`` per symbol every second."""
        while True:
            await asyncio.sleep(self.mark_interval_s)
            for s in self.symbols:
                self.push_mark_price(s)

    async def stop(self) -> None:
        """Close every socket and the server (safe twice)."""
        if getattr(self, "_ticker", None) is not None:
            self._ticker.cancel()
            self._ticker = None
        for ws, _ in list(self._market_ws):
            await ws.close()
        for ws in list(self._user_ws):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakeBinanceUsdm":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def __enter__(self) -> "FakeBinanceUsdm":
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-binance-usdm", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Binance USD-M did not start within 10 s")
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def call(self, fn: Callable, *args: Any, **kw: Any) -> Any:
        """Run ``fn(*args, **kw)`` on the fake's loop (threaded mode) and return its result."""
        async def go():
            out = fn(*args, **kw)
            return await out if asyncio.iscoroutine(out) else out

        return asyncio.run_coroutine_threadsafe(go(), self._loop).result(10)

    # -- faults ---------------------------------------------------------------

    def fail_next(self, method: str, path: str, status: int, code: int, msg: str, times: int = 1) -> None:
        """Answer the next ``times`` requests to ``method path`` with ``{"code", "msg"}`` and ``status``
        (429 is Binance's rate limit, 418 its IP ban; 5xx an unknown outcome) without acting on them."""
        self._faults.setdefault(f"{method} {path}", []).extend([("fail", status, code, msg)] * times)

    def lose_next_reply(self, method: str, path: str, delay_s: float = 5.0) -> None:
        """Act on the next ``method path`` request, then answer only after ``delay_s`` (the client
        times out: the outcome is unknown to it though the venue acted)."""
        self._faults.setdefault(f"{method} {path}", []).append(("slow", delay_s))

    # -- pushes (Engine hooks) ------------------------------------------------

    def push_market(self, stream: str, payload: dict) -> None:
        """Send ``payload`` to every market socket subscribed to ``stream`` (``btcusdt@depth@100ms``...)."""
        data = json.dumps(payload)
        base = stream.split("@")[0] + "@" + stream.split("@")[1]
        for ws, subs in list(self._market_ws):
            if stream in subs or any(s.startswith(base) for s in subs):
                self._send(ws, data)

    def push_user(self, payload: dict) -> None:
        """Send ``payload`` to every user-data socket (opened with a valid listenKey)."""
        data = json.dumps(payload)
        for ws in list(self._user_ws):
            self._send(ws, data)

    def _send(self, ws: web.WebSocketResponse, data: str) -> None:
        if not ws.closed:
            asyncio.ensure_future(ws.send_str(data))

    async def drop_sockets(self) -> None:
        """Close every WebSocket (a network blip: clients must reconnect and resync)."""
        for ws, _ in list(self._market_ws):
            await ws.close()
        for ws in list(self._user_ws):
            await ws.close()

    # -- WebSocket ------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        tail = request.match_info.get("tail", "")
        if tail in self.listen_keys:
            self._user_ws.append(ws)
            try:
                async for _ in ws:
                    pass
            finally:
                self._user_ws.remove(ws)
            return ws
        subs: set = set()
        if request.query.get("streams"):
            subs.update(request.query["streams"].split("/"))
        entry = (ws, subs)
        self._market_ws.append(entry)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    req = json.loads(msg.data)
                except ValueError:
                    await ws.send_str(json.dumps({"code": 3, "msg": "Invalid JSON"}))
                    continue
                method, params, rid = req.get("method"), req.get("params") or [], req.get("id")
                if method == "SUBSCRIBE":
                    subs.update(params)
                elif method == "UNSUBSCRIBE":
                    subs.difference_update(params)
                elif method == "LIST_SUBSCRIPTIONS":
                    await ws.send_str(json.dumps({"result": sorted(subs), "id": rid}))
                    continue
                else:
                    await ws.send_str(json.dumps({"code": 2, "msg": f"Invalid request: unknown method {method}", "id": rid}))
                    continue
                await ws.send_str(json.dumps({"result": None, "id": rid}))
        finally:
            self._market_ws.remove(entry)
        return ws

    # -- REST -----------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        method, path = request.method, "/" + request.match_info["path"]
        self.requests.append((method, path))
        raw_body = (await request.text()) if request.can_read_body else ""
        raw_query = request.query_string
        fault = (self._faults.get(f"{method} {path}") or [None]).pop(0) if self._faults.get(f"{method} {path}") else None
        if fault is not None and fault[0] == "fail":
            _, status, code, msg = fault
            return web.json_response({"code": code, "msg": msg}, status=status)
        try:
            params = dict(parse_qsl(raw_query, keep_blank_values=True))
            params.update(dict(parse_qsl(raw_body, keep_blank_values=True)))
            route = self.ROUTES.get((method, path))
            if route is None:
                return web.json_response({"code": -5000, "msg": f"Path {path}, Method {method} is invalid"}, status=404)
            name, signed = route
            if signed:
                self._check_signature(request, raw_query if method in ("GET", "DELETE") else raw_body or raw_query, params)
            elif path.endswith("listenKey") and request.headers.get("X-MBX-APIKEY") != API_KEY:
                raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
            out = getattr(self, name)(params)
            if fault is not None and fault[0] == "slow":
                await asyncio.sleep(fault[1])
            return web.json_response(out)
        except BinanceError as exc:
            return web.json_response({"code": exc.code, "msg": exc.msg}, status=exc.status)

    def _check_signature(self, request: web.Request, signed_text: str, params: dict) -> None:
        if request.headers.get("X-MBX-APIKEY") != API_KEY:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        payload, sep, sig = signed_text.rpartition("&signature=")
        want = hmac.new(API_SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not sep or not hmac.compare_digest(sig, want):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        ts = int(params.get("timestamp", "0"))
        window = int(params.get("recvWindow", "5000"))
        now = int(time.time() * 1000)
        if ts > now + 1000 or now - ts > window:
            raise BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        self.signed_requests += 1

    #: (method, path) -> (Engine method, signed?)
    ROUTES = {
        ("GET", "/fapi/v1/ping"): ("r_ping", False),
        ("GET", "/fapi/v1/time"): ("r_time", False),
        ("GET", "/fapi/v1/exchangeInfo"): ("r_exchange_info", False),
        ("GET", "/fapi/v1/depth"): ("r_depth", False),
        ("GET", "/fapi/v1/ticker/bookTicker"): ("r_book_ticker", False),
        ("GET", "/fapi/v1/premiumIndex"): ("r_premium_index", False),
        ("GET", "/fapi/v1/fundingRate"): ("r_funding_rate", False),
        ("GET", "/fapi/v1/fundingInfo"): ("r_funding_info", False),
        ("GET", "/fapi/v1/openInterest"): ("r_open_interest", False),
        ("GET", "/fapi/v1/klines"): ("r_klines", False),
        ("GET", "/fapi/v1/markPriceKlines"): ("r_mark_klines", False),
        ("POST", "/fapi/v1/listenKey"): ("r_listen_key", False),
        ("PUT", "/fapi/v1/listenKey"): ("r_listen_key_keepalive", False),
        ("POST", "/fapi/v1/order"): ("r_new_order", True),
        ("DELETE", "/fapi/v1/order"): ("r_cancel_order", True),
        ("GET", "/fapi/v1/order"): ("r_query_order", True),
        ("GET", "/fapi/v1/openOrders"): ("r_open_orders", True),
        ("DELETE", "/fapi/v1/allOpenOrders"): ("r_cancel_all", True),
        ("GET", "/fapi/v1/allOrders"): ("r_all_orders", True),
        ("GET", "/fapi/v1/userTrades"): ("r_user_trades", True),
        ("GET", "/fapi/v2/positionRisk"): ("r_position_risk", True),
        ("GET", "/fapi/v3/positionRisk"): ("r_position_risk", True),
        ("GET", "/fapi/v2/account"): ("r_account", True),
        ("GET", "/fapi/v3/account"): ("r_account", True),
        ("GET", "/fapi/v2/balance"): ("r_balance", True),
        ("GET", "/fapi/v3/balance"): ("r_balance", True),
        ("GET", "/fapi/v1/leverageBracket"): ("r_leverage_bracket", True),
        ("GET", "/fapi/v1/income"): ("r_income", True),
        ("POST", "/fapi/v1/leverage"): ("r_set_leverage", True),
    }

    # -- small public routes ----------------------------------------------------

    def r_ping(self, q: dict) -> dict:
        return {}

    def r_time(self, q: dict) -> dict:
        return {"serverTime": int(time.time() * 1000)}

    def r_listen_key(self, q: dict) -> dict:
        key = f"fakeListenKey{len(self.listen_keys) + 1:04d}" + "x" * 44
        self.listen_keys.add(key)
        return {"listenKey": key}

    def r_listen_key_keepalive(self, q: dict) -> dict:
        return {"listenKey": next(iter(self.listen_keys), "")}

