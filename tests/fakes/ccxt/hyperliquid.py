"""A loopback fake of Hyperliquid's API: ``POST /info``, ``POST /exchange`` and the WebSocket at ``/ws``.

Shapes follow the Hyperliquid API documentation (hyperliquid.gitbook.io/hyperliquid-docs,
"For developers / API": Info endpoint "Perpetuals" (``meta``, ``metaAndAssetCtxs``,
``fundingHistory``, ``clearinghouseState``, ``userFunding``), "Spot" (``spotMetaAndAssetCtxs``),
``l2Book``, ``openOrders``/``frontendOpenOrders``, ``userFills``/``userFillsByTime``,
``orderStatus``; Exchange endpoint "Place an order" / "Cancel order(s) by cloid" with their
``{"status": "ok", "response": {"type": "order", "data": {"statuses": [...]}}}`` replies;
WebSocket "Subscriptions" ``l2Book``, ``trades``, ``orderUpdates``, ``userFills`` and
``{"method": "ping"}`` -> ``{"channel": "pong"}``) and the example payloads ccxt 4.5.18
quotes in ``ccxt/hyperliquid.py`` and ``ccxt/pro/hyperliquid.py``.

Requests to ``/exchange`` must carry an ``action``, a millisecond ``nonce`` within a day of
now and never reused, and a ``signature`` ``{r, s, v}`` (32-byte hex r and s, v 27 or 28);
the EIP-712 signature itself is not verified (it would need Hyperliquid's msgpack action
hash and secp256k1 recovery; the test wallet is the fake's only user).

Funding is hourly (Hyperliquid pays every hour); fees are the base tier (taker 0.045 %,
maker 0.015 %). One port serves HTTP and WebSocket on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

D = Decimal
TAKER, MAKER = D("0.00045"), D("0.00015")
#: a well-known test key (the private key 0x...01); never a real wallet
TEST_PRIVATE_KEY = "0x" + "00" * 31 + "01"
TEST_ADDRESS = "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
COINS = {"BTC": ("5", "50", "65000"), "ETH": ("4", "25", "3400")}  # szDecimals, maxLeverage, mid
_HEX32 = re.compile(r"^0x[0-9a-fA-F]{1,64}$")


def fmt(x: Decimal) -> str:
    return format(x.normalize(), "f")


def now_ms() -> int:
    return int(time.time() * 1000)


class FakeHyperliquid:
    """The venue: books, one user's orders, positions, USDC margin and hourly funding, over HTTP/WS."""

    def __init__(self, usdc: str = "10000"):
        self.books: dict[str, dict] = {}
        for coin, (_, _, mid) in COINS.items():
            self._seed(coin, D(mid))
        self.usdc = D(usdc)
        self.positions: dict[str, dict] = {}
        self.orders: dict[int, dict] = {}
        self.fills: list[dict] = []
        self.funding_rows: list[dict] = []
        self.funding_history = {c: [{"coin": c, "fundingRate": "0.0000125", "premium": "0.0", "time": now_ms() - 3600_000}]
                                for c in COINS}
        self.exchange_requests: list[dict] = []
        self.nonces: set = set()
        self._oids = itertools.count(90000001)
        self._tids = itertools.count(500001)
        self._subs: list[tuple[web.WebSocketResponse, dict]] = []
        self.url = ""
        self._runner = None
        self._loop = None
        self._thread = None

    # -- lifecycle (same shape as FakeBinanceUsdm) ---------------------------------

    async def start(self) -> "FakeHyperliquid":
        self._loop = asyncio.get_running_loop()
        app = web.Application()
        app.router.add_get("/ws", self._ws)
        app.router.add_post("/info", self._info)
        app.router.add_post("/exchange", self._exchange)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def stop(self) -> None:
        for ws, _ in list(self._subs):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.stop()

    def __enter__(self):
        ready = threading.Event()

        def run():
            loop = asyncio.new_event_loop()
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-hyperliquid", daemon=True)
        self._thread.start()
        assert ready.wait(10), "fake Hyperliquid did not start"
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def call(self, fn, *args, **kw):
        """Run ``fn`` on the fake's loop (threaded mode) and return its result."""
        async def go():
            return fn(*args, **kw)

        return asyncio.run_coroutine_threadsafe(go(), self._loop).result(10)

    # -- market ---------------------------------------------------------------------

    def _seed(self, coin: str, mid: Decimal, levels: int = 20) -> None:
        gap = (mid * D("0.00002")).quantize(D("1") if mid > 10000 else D("0.1"))
        self.books[coin] = {"bids": {mid - gap * (i + 1): D("0.5") + D(i) / 10 for i in range(levels)},
                            "asks": {mid + gap * (i + 1): D("0.5") + D(i) / 10 for i in range(levels)}}

    def mid(self, coin: str) -> Decimal:
        b = self.books[coin]
        return (max(b["bids"]) + min(b["asks"])) / 2

    def _l2(self, coin: str) -> dict:
        b = self.books[coin]
        lv = lambda side, rev: [{"px": fmt(p), "sz": fmt(b[side][p]), "n": 1} for p in sorted(b[side], reverse=rev)]
        return {"coin": coin, "time": now_ms(), "levels": [lv("bids", True), lv("asks", False)]}

    def move(self, coin: str, mid: str) -> None:
        """Re-centre ``coin``'s book at ``mid`` and push the ``l2Book`` snapshot (Hyperliquid sends whole books)."""
        self._seed(coin, D(mid))
        self._push({"type": "l2Book", "coin": coin}, {"channel": "l2Book", "data": self._l2(coin)})

    def settle_funding(self, coin: str, rate: str = "0.0000125") -> Decimal:
        """One hourly settlement: ``fundingHistory`` row, and for a position a ``userFunding`` delta
        ``usdc = -szi * oraclePx * rate`` (Hyperliquid docs "Funding"). Returns the amount paid to us."""
        r, m, ts = D(rate), self.mid(coin), now_ms()
        self.funding_history[coin].append({"coin": coin, "fundingRate": rate, "premium": "0.0", "time": ts})
        szi = self.positions.get(coin, {}).get("szi", D(0))
        usdc = (-szi * m * r).quantize(D("0.000001"))
        if szi:
            self.usdc += usdc
            self.funding_rows.append({"time": ts, "hash": "0x" + "0" * 64, "delta": {
                "type": "funding", "coin": coin, "usdc": fmt(usdc), "szi": fmt(szi), "fundingRate": rate,
                "nSamples": None}})
        return usdc

    # -- websocket ---------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                req = json.loads(msg.data)
                if req.get("method") == "ping":
                    await ws.send_str(json.dumps({"channel": "pong"}))
                elif req.get("method") == "subscribe":
                    sub = req.get("subscription") or {}
                    self._subs.append((ws, sub))
                    await ws.send_str(json.dumps({"channel": "subscriptionResponse", "data": req}))
                    if sub.get("type") == "l2Book" and sub.get("coin") in self.books:
                        await ws.send_str(json.dumps({"channel": "l2Book", "data": self._l2(sub["coin"])}))
        finally:
            self._subs = [(w, s) for w, s in self._subs if w is not ws]
        return ws

    def _push(self, match: dict, payload: dict) -> None:
        data = json.dumps(payload)
        for ws, sub in list(self._subs):
            if all(str(sub.get(k, "")).lower() == str(v).lower() for k, v in match.items()) and not ws.closed:
                asyncio.ensure_future(ws.send_str(data))

    # -- /info -------------------------------------------------------------------------

    async def _info(self, request: web.Request) -> web.Response:
        body = await request.json()
        t = body.get("type")
        coin = body.get("coin")
        if t in ("meta", "metaAndAssetCtxs"):
            meta = {"universe": [{"name": c, "szDecimals": int(sd), "maxLeverage": int(ml), "marginTableId": int(ml)}
                                 for c, (sd, ml, _) in COINS.items()], "marginTables": []}
            if t == "meta":
                return web.json_response(meta)
            ctxs = [{"funding": self.funding_history[c][-1]["fundingRate"], "openInterest": "100.0", "prevDayPx": fmt(self.mid(c)),
                     "dayNtlVlm": "1000000.0", "premium": "0.0", "oraclePx": fmt(self.mid(c)), "markPx": fmt(self.mid(c)),
                     "midPx": fmt(self.mid(c)), "impactPxs": [fmt(self.mid(c)), fmt(self.mid(c))], "dayBaseVlm": "10.0"}
                    for c in COINS]
            return web.json_response([meta, ctxs])
        if t == "spotMetaAndAssetCtxs":
            return web.json_response([{"universe": [], "tokens": []}, []])
        if t == "perpDexs":
            return web.json_response([None])
        if t == "l2Book":
            return web.json_response(self._l2(coin))
        if t == "fundingHistory":
            start = int(body.get("startTime") or 0)
            return web.json_response([r for r in self.funding_history.get(coin, []) if r["time"] >= start])
        if t == "clearinghouseState":
            return web.json_response(self._clearinghouse())
        if t in ("openOrders", "frontendOpenOrders"):
            return web.json_response([self._order_row(o) for o in self.orders.values() if o["status"] == "open"])
        if t in ("userFills", "userFillsByTime"):
            start = int(body.get("startTime") or 0)
            return web.json_response([f for f in self.fills if f["time"] >= start])
        if t == "userFunding":
            start = int(body.get("startTime") or 0)
            return web.json_response([r for r in self.funding_rows if r["time"] >= start])
        if t == "orderStatus":
            oid = body.get("oid")
            for o in self.orders.values():
                if str(o["oid"]) == str(oid) or (o.get("cloid") and o["cloid"] == oid):
                    return web.json_response({"status": "order", "order": {
                        "order": self._order_row(o), "status": o["status"], "statusTimestamp": o["ts"]}})
            return web.json_response({"status": "unknownOid"})
        return web.json_response({"error": f"unknown info type {t!r}"}, status=422)

    def _order_row(self, o: dict) -> dict:
        row = {"coin": o["coin"], "side": o["side"], "limitPx": fmt(o["px"]), "sz": fmt(o["sz"] - o["filled"]),
               "oid": o["oid"], "timestamp": o["ts"], "origSz": fmt(o["sz"]), "orderType": "Limit", "tif": o["tif"],
               "reduceOnly": o["r"], "isTrigger": False, "triggerPx": "0.0", "triggerCondition": "N/A",
               "isPositionTpsl": False, "children": []}
        if o.get("cloid"):
            row["cloid"] = o["cloid"]
        return row

    def _clearinghouse(self) -> dict:
        ntl = sum((abs(p["szi"]) * self.mid(c) for c, p in self.positions.items()), D(0))
        upnl = sum((p["szi"] * (self.mid(c) - p["entry"]) for c, p in self.positions.items()), D(0))
        value = self.usdc + upnl
        aps = [{"type": "oneWay", "position": {
            "coin": c, "szi": fmt(p["szi"]), "entryPx": fmt(p["entry"]), "positionValue": fmt(abs(p["szi"]) * self.mid(c)),
            "unrealizedPnl": fmt(p["szi"] * (self.mid(c) - p["entry"])), "returnOnEquity": "0.0",
            "liquidationPx": None, "marginUsed": fmt(abs(p["szi"]) * self.mid(c) / D(COINS[c][1])),
            "maxLeverage": int(COINS[c][1]), "leverage": {"type": "cross", "value": 20},
            "cumFunding": {"allTime": "0.0", "sinceOpen": "0.0", "sinceChange": "0.0"}}}
               for c, p in self.positions.items() if p["szi"] != 0]
        summary = {"accountValue": fmt(value), "totalNtlPos": fmt(ntl), "totalRawUsd": fmt(self.usdc), "totalMarginUsed": "0.0"}
        return {"assetPositions": aps, "crossMaintenanceMarginUsed": "0.0", "crossMarginSummary": summary,
                "marginSummary": summary, "time": now_ms(), "withdrawable": fmt(value)}

    # -- /exchange -----------------------------------------------------------------------

    def _check(self, body: dict) -> str | None:
        sig, nonce = body.get("signature") or {}, body.get("nonce")
        if not isinstance(nonce, int) or abs(now_ms() - nonce) > 86_400_000 or nonce in self.nonces:
            return "Invalid nonce: duplicate or too far from the current time"
        if not (_HEX32.match(str(sig.get("r", ""))) and _HEX32.match(str(sig.get("s", ""))) and sig.get("v") in (27, 28)):
            return "Invalid signature"
        self.nonces.add(nonce)
        return None

    async def _exchange(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.exchange_requests.append(body)
        problem = self._check(body)
        if problem:
            return web.json_response({"status": "err", "response": problem})
        action = body["action"]
        if action.get("type") == "order":
            statuses = [self._place(o) for o in action.get("orders", [])]
            return web.json_response({"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}})
        if action.get("type") in ("cancel", "cancelByCloid"):
            statuses = [self._cancel(c) for c in action.get("cancels", [])]
            return web.json_response({"status": "ok", "response": {"type": "cancel", "data": {"statuses": statuses}}})
        return web.json_response({"status": "err", "response": f"unsupported action {action.get('type')!r}"})

    def _place(self, w: dict) -> dict:
        coin = list(COINS)[int(w["a"])]
        buy, px, sz = bool(w["b"]), D(str(w["p"])), D(str(w["s"]))
        tif = (w.get("t") or {}).get("limit", {}).get("tif", "Gtc")
        b = self.books[coin]
        best_ask, best_bid = min(b["asks"]), max(b["bids"])
        if sz <= 0 or sz != sz.quantize(D(1).scaleb(-int(COINS[coin][0]))):
            return {"error": "Order has invalid size."}
        crosses = (buy and px >= best_ask) or (not buy and px <= best_bid)
        if tif == "Alo" and crosses:
            return {"error": "Post only order would have immediately matched, bbo was "
                             f"{fmt(best_bid)}@{fmt(best_ask)}. asset={w['a']}"}
        if abs(sz * px) / D(COINS[coin][1]) > self.usdc:
            return {"error": "Insufficient margin to place order. asset=" + str(w["a"])}
        o = {"coin": coin, "side": "B" if buy else "A", "px": px, "sz": sz, "filled": D(0), "oid": next(self._oids),
             "ts": now_ms(), "tif": tif, "r": bool(w.get("r")), "cloid": w.get("c"), "status": "open"}
        self.orders[o["oid"]] = o
        levels = b["asks"] if buy else b["bids"]
        for p in sorted(levels, reverse=not buy):
            left = o["sz"] - o["filled"]
            if left <= 0 or (buy and p > px) or (not buy and p < px):
                break
            take = min(left, levels[p])
            self._fill(o, p, take)
        if o["filled"] >= o["sz"]:
            o["status"] = "filled"
        elif tif == "Ioc":
            o["status"] = "canceled"
        self._push_order(o)
        if o["status"] == "filled":
            return {"filled": {"totalSz": fmt(o["filled"]), "avgPx": fmt(o["avg"]), "oid": o["oid"], **({"cloid": o["cloid"]} if o["cloid"] else {})}}
        if o["status"] == "canceled":
            return {"error": "Order could not immediately match against any resting orders. asset=" + str(w["a"])}
        return {"resting": {"oid": o["oid"], **({"cloid": o["cloid"]} if o["cloid"] else {})}}

    def _fill(self, o: dict, px: Decimal, sz: Decimal) -> None:
        coin = o["coin"]
        prev = o["filled"]
        o["filled"] += sz
        o["avg"] = ((o.get("avg") or D(0)) * prev + px * sz) / o["filled"]
        signed = sz if o["side"] == "B" else -sz
        p = self.positions.setdefault(coin, {"szi": D(0), "entry": D(0)})
        start = p["szi"]
        closed = D(0)
        if p["szi"] == 0 or (p["szi"] > 0) == (signed > 0):
            p["entry"] = (p["entry"] * abs(p["szi"]) + px * sz) / abs(p["szi"] + signed)
        else:
            closed = min(sz, abs(p["szi"])) * (px - p["entry"]) * (1 if p["szi"] > 0 else -1)
        p["szi"] += signed
        fee = (px * sz * TAKER).quantize(D("0.000001"))
        self.usdc += closed - fee
        fill = {"coin": coin, "px": fmt(px), "sz": fmt(sz), "side": o["side"], "time": now_ms(), "startPosition": fmt(start),
                "dir": ("Open Long" if signed > 0 else "Open Short"), "closedPnl": fmt(closed), "hash": "0x" + "ab" * 32,
                "oid": o["oid"], "crossed": True, "fee": fmt(fee), "tid": next(self._tids), "feeToken": "USDC"}
        if o.get("cloid"):
            fill["cloid"] = o["cloid"]
        self.fills.append(fill)
        self._push({"type": "userFills"}, {"channel": "userFills", "data": {"user": TEST_ADDRESS, "fills": [fill]}})
        self._push({"type": "trades", "coin": coin}, {"channel": "trades", "data": [
            {"coin": coin, "side": o["side"], "px": fmt(px), "sz": fmt(sz), "time": now_ms(), "hash": fill["hash"],
             "tid": fill["tid"], "users": [TEST_ADDRESS, "0x" + "11" * 20]}]})

    def _push_order(self, o: dict) -> None:
        self._push({"type": "orderUpdates"}, {"channel": "orderUpdates", "data": [
            {"order": self._order_row(o), "status": o["status"], "statusTimestamp": now_ms()}]})

    def _cancel(self, c: dict) -> Any:
        for o in self.orders.values():
            if (str(o["oid"]) == str(c.get("o") or c.get("oid"))) or (c.get("cloid") and o.get("cloid") == c["cloid"]):
                if o["status"] != "open":
                    break
                o["status"] = "canceled"
                self._push_order(o)
                return "success"
        return {"error": "Order was never placed, already canceled, or filled."}
