"""The fake indexer's HTTP side: comlink's REST routes under ``/v4`` (filters, limits and
paging as comlink answers them, with the controller / postgres source named on each
query), the JSON responses, and the gate in front of the WebSocket handshake where
injected REST and handshake faults apply."""

from __future__ import annotations

import asyncio
import http
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterable, Optional
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from .protocol import (CANDLE_RESOLUTIONS, MAX_PARENT_SUBACCOUNTS, D, fmt, iso_now,
                       subaccount_uuid)

log = logging.getLogger("tests.fakes.indexer")


@dataclass
class _Fault:
    """One injected fault (``set_rest_delay`` / ``fail_rest`` / ``fail_ws_connect``):
    requests whose path starts with ``prefix`` (None = all) wait ``delay`` s and/or get
    HTTP ``status`` with ``body``, for the next ``remaining`` requests."""

    prefix: Optional[str]
    status: Optional[int] = None
    delay: float = 0.0
    remaining: Optional[int] = None      # None = forever
    body: Optional[dict] = None

    def matches(self, path: str) -> bool:
        return self.prefix is None or path.startswith(self.prefix)


def _iso_ns(text: str) -> int:
    """The indexer's ISO time -> ns since the epoch (UTC)."""
    dt = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return (int(dt.timestamp()) * 1_000_000 + dt.microsecond) * 1000


def _bounded(rows: list, time_key: str, height_key: str, before_iso: Optional[str],
             before_height: Optional[str]) -> list:
    """Rows at or before an ISO time and/or a height (inclusive bounds, as comlink's
    ``createdBeforeOrAt*`` / ``effectiveBeforeOrAt*``), newest (highest height) first.
    Without a bound the stored order (newest first) is kept."""
    if not before_iso and not before_height:
        return rows
    if before_iso:
        hi = _iso_ns(before_iso)
        rows = [r for r in rows if _iso_ns(r[time_key]) <= hi]
    if before_height and str(before_height).isdigit():
        rows = [r for r in rows if int(r[height_key]) <= int(before_height)]
    return sorted(rows, key=lambda r: int(r[height_key]), reverse=True)


class RestApi:
    """comlink REST for ``FakeIndexer``: ``_process_request`` (the websockets server's HTTP hook)
    answers every non-upgrade request from ``_route``.

    Uses the server's market and account state, ``api_limit``, ``max_levels``, the fault
    lists ``_faults`` / ``_ws_connect_faults`` and the request counters.
    """

    def _route(self, path: str, q: dict[str, str]) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if not parts or parts[0] != "v4":
            return 404, {"errors": [{"msg": f"Cannot GET {path}"}]}
        p = parts[1:]
        n = len(p)
        limit = int(q["limit"]) if q.get("limit", "").isdigit() else None

        def lim(rows):
            return rows[:limit] if limit is not None else rows

        def unknown_ticker(t):
            return 404, {"errors": [{"msg": f"{t} is not a valid ticker"}]}

        if p == ["perpetualMarkets"]:
            t = q.get("ticker")
            if t:
                if t not in self.markets:
                    return unknown_ticker(t)
                return 200, {"markets": {t: self.markets[t]}}
            items = list(self.markets.items())
            return 200, {"markets": dict(lim(items))}
        if n == 3 and p[:2] == ["orderbooks", "perpetualMarket"]:
            t = p[2]
            if t not in self.markets:
                return unknown_ticker(t)
            book = self.books.get(t)
            return 200, book.snapshot(self.max_levels) if book else {"bids": [], "asks": []}
        if n == 3 and p[:2] == ["trades", "perpetualMarket"]:
            t = p[2]
            if t not in self.markets:
                return unknown_ticker(t)
            # trades-controller.ts: taker fills newest first (createdAtHeight DESC), both bounds inclusive
            rows = _bounded(self.trades.get(t, []), "createdAt", "createdAtHeight",
                            q.get("createdBeforeOrAt"), q.get("createdBeforeOrAtHeight"))
            return 200, {"trades": rows[:min(limit or 100, self.api_limit)]}
        if n == 3 and p[:2] == ["candles", "perpetualMarkets"]:
            t = p[2]
            if t not in self.markets:
                return unknown_ticker(t)
            res = q.get("resolution")
            if res not in CANDLE_RESOLUTIONS:
                return 400, {"errors": [{"msg": "resolution must be a valid Candle Resolution",
                                         "param": "resolution", "location": "query"}]}
            rows = [c for c in self.candles.get(t, []) if c.get("resolution") == res]
            # candle-table.ts findAll: startedAt >= fromISO, startedAt < toISO, newest first
            if q.get("fromISO"):
                lo = _iso_ns(q["fromISO"])
                rows = [c for c in rows if _iso_ns(c["startedAt"]) >= lo]
            if q.get("toISO"):
                hi = _iso_ns(q["toISO"])
                rows = [c for c in rows if _iso_ns(c["startedAt"]) < hi]
            if q.get("fromISO") or q.get("toISO"):
                rows = sorted(rows, key=lambda c: _iso_ns(c["startedAt"]), reverse=True)
            return 200, {"candles": rows[:min(limit or 100, self.api_limit)]}
        if n == 2 and p[0] == "historicalFunding":
            t = p[1]
            if t not in self.markets:
                return unknown_ticker(t)
            # historical-funding-controller.ts: effectiveAtHeight DESC, both bounds inclusive
            rows = _bounded(self.funding.get(t, []), "effectiveAt", "effectiveAtHeight",
                            q.get("effectiveBeforeOrAt"), q.get("effectiveBeforeOrAtHeight"))
            return 200, {"historicalFunding": rows[:min(limit or 100, self.api_limit)]}
        if p == ["sparklines"]:
            return 200, {t: [] for t in self.markets}
        if p == ["height"]:
            return 200, {"height": str(self.height), "time": iso_now()}
        if p == ["time"]:
            now = time.time()
            return 200, {"iso": iso_now(now), "epoch": round(now, 3)}
        if p == ["screen"] or (n == 3 and p[:2] == ["compliance", "screen"]):
            return 200, {"restricted": False, "reason": "", "status": "COMPLIANT"}
        if p and p[0] == "addresses":
            return self._route_addresses(p[1:])
        if p and p[0] == "orders":
            if n == 1:
                return self._query_orders(q)
            if n == 2 and p[1] == "parentSubaccountNumber":
                return self._query_orders(q, parent=True)
            if n == 2:
                o = self.orders.get(p[1])
                if o is None:  # comlink getOrder: NotFoundError
                    return 404, {"errors": [{"msg": f"Unable to find order id {p[1]}"}]}
                return 200, o
        if p in (["fills"], ["fills", "parentSubaccountNumber"]):
            return self._query_fills(q, n == 2)
        if p in (["perpetualPositions"], ["perpetualPositions", "parentSubaccountNumber"]):
            rows = []
            for key, pos in self.positions.items():
                if self._match_key(key, q, n == 2):
                    for pp in pos.values():
                        st = q.get("status")
                        if st and pp.get("status") not in st.split(","):
                            continue
                        rows.append(pp)
            return 200, {"positions": rows[:limit or 100]}
        if p in (["assetPositions"], ["assetPositions", "parentSubaccountNumber"]):
            rows = []
            for key, sub in self.subaccounts.items():
                if self._match_key(key, q, n == 2):
                    rows.extend(sub.get("assetPositions", {}).values())
            return 200, {"positions": rows}
        if p and p[0] == "transfers":
            rows = [t for t in self.transfers if self._match_sub(t, q, len(p) > 1)]
            return 200, {"transfers": rows[:limit or 100]}
        if p and p[0] == "fundingPayments":
            rows = [t for t in self.funding_payments if self._match_sub(t, q, len(p) > 1)]
            return 200, {"fundingPayments": rows[:limit or 100]}
        if p and p[0] == "historical-pnl":
            return 200, {"historicalPnl": []}
        return 404, {"errors": [{"msg": f"Cannot GET {path}"}]}

    def _match_key(self, key: tuple[str, int], q: dict, parent: bool) -> bool:
        addr, num = key
        if q.get("address") and q["address"] != addr:
            return False
        if parent:
            want = q.get("parentSubaccountNumber")
            return want is None or num % MAX_PARENT_SUBACCOUNTS == int(want)
        want = q.get("subaccountNumber")
        return want is None or int(want) == num

    def _match_sub(self, row: dict, q: dict, parent: bool) -> bool:
        addr = row.get("address")
        num = int(row.get("subaccountNumber", 0))
        return self._match_key((addr, num), q, parent)

    @staticmethod
    def _rest_fill(f: dict) -> dict:
        return {k: v for k, v in f.items() if k != "address"}

    def _limit_of(self, q: dict) -> tuple[Optional[int], Optional[tuple[int, Any]]]:
        """comlink ``CheckLimitSchema``: absent -> ``API_LIMIT_V4``; else a positive integer
        not above it (``lib/validation/schemas.ts``), or a 400."""
        raw = q.get("limit")
        if raw is None or raw == "":
            return self.api_limit, None
        if not raw.isdigit() or int(raw) <= 0 or int(raw) > self.api_limit:
            return None, (400, {"errors": [{
                "value": raw, "msg": "limit must be a positive integer that is not greater than max: "
                                     f"{self.api_limit}", "param": "limit", "location": "query"}]})
        return int(raw), None

    @staticmethod
    def _gtb(o: dict) -> Optional[int]:
        v = o.get("goodTilBlock")
        return int(v) if v not in (None, "") else None

    @staticmethod
    def _gtbt(o: dict) -> Optional[float]:
        v = o.get("goodTilBlockTime")
        if not v:
            return None
        return datetime.fromisoformat(str(v).replace("Z", "+00:00")).timestamp()

    def _query_orders(self, q: dict, parent: bool = False) -> tuple[int, Any]:
        """``GET /v4/orders`` as comlink ``orders-controller.ts listOrders`` answers it: the
        postgres rows (filters, then ORDER BY goodTilBlock, goodTilBlockTime in the ordering,
        LIMIT) merged with every open order of the subaccount from redis (LIMIT orders only),
        THEN the status filter, then sorted (``compareOrderResponses``: in ascending order
        short-term before stateful, by goodTilBlock / goodTilBlockTime) and cut to ``limit``.
        Ordering: ``returnLatestOrders`` true or absent -> descending, false -> ascending.
        ``goodTilBlockBeforeOrAt`` keeps only orders WITH a goodTilBlock <= it;
        ``goodTilBlockTimeBeforeOrAt`` only orders WITH a goodTilBlockTime <= it (inclusive)."""
        limit, err = self._limit_of(q)
        if err is not None:
            return err
        gtb_max = q.get("goodTilBlockBeforeOrAt")
        gtbt_max = q.get("goodTilBlockTimeBeforeOrAt")
        if gtb_max is not None and not (gtb_max.isdigit() and int(gtb_max) > 0):
            return 400, {"errors": [{"value": gtb_max, "msg": "Invalid value",
                                     "param": "goodTilBlockBeforeOrAt", "location": "query"}]}
        try:
            gtbt_cut = self._gtbt({"goodTilBlockTime": gtbt_max}) if gtbt_max else None
        except ValueError:
            return 400, {"errors": [{"value": gtbt_max, "msg": "Invalid value",
                                     "param": "goodTilBlockTimeBeforeOrAt", "location": "query"}]}
        descending = q.get("returnLatestOrders", "true").lower() != "false"
        addr = q.get("address")
        rows = []
        for o in self.orders.values():
            num = int(o.get("subaccountNumber", 0))
            if addr is not None:
                if parent:
                    pn = q.get("parentSubaccountNumber")
                    if pn is not None and num % MAX_PARENT_SUBACCOUNTS != int(pn):
                        continue
                    if o.get("subaccountId") not in {
                            subaccount_uuid(addr, num)}:
                        continue
                else:
                    sn = int(q.get("subaccountNumber", 0))
                    if o.get("subaccountId") != subaccount_uuid(addr, sn):
                        continue
            if q.get("ticker") and o.get("ticker") != q["ticker"]:
                continue
            if q.get("side") and o.get("side") != q["side"]:
                continue
            if q.get("type") and o.get("type") != q["type"]:
                continue
            if gtb_max is not None and (self._gtb(o) is None or self._gtb(o) > int(gtb_max)):
                continue
            if gtbt_cut is not None and (self._gtbt(o) is None or self._gtbt(o) > gtbt_cut):
                continue
            rows.append(o)

        def key(o: dict) -> tuple:
            # ascending: short-term (by goodTilBlock) < stateful (by goodTilBlockTime) < neither
            if self._gtb(o) is not None:
                return (0, self._gtb(o))
            if self._gtbt(o) is not None:
                return (1, self._gtbt(o))
            return (2, 0)

        rows.sort(key=key, reverse=descending)
        postgres = rows[:limit]
        redis = [o for o in rows if o.get("status") in ("OPEN", "BEST_EFFORT_OPENED")
                 and o.get("type", "LIMIT") == "LIMIT" and (not q.get("type") or q["type"] == "LIMIT")]
        merged = {o["id"]: o for o in postgres}
        merged.update({o["id"]: o for o in redis})
        out = list(merged.values())
        if q.get("status"):
            want = q["status"].split(",")
            out = [o for o in out if o.get("status") in want]
        out.sort(key=key, reverse=descending)
        return 200, out[:limit]

    def _query_fills(self, q: dict, parent: bool) -> tuple[int, Any]:
        """``GET /v4/fills`` as comlink ``fills-controller.ts`` / postgres ``fill-table.ts
        findAll`` answer it: filters (``market``, inclusive ``createdBeforeOrAtHeight`` /
        ``createdBeforeOrAt``), ORDER BY createdAtHeight DESC, LIMIT (default
        ``API_LIMIT_V4``). With ``page``: ORDER BY eventId ASC first, OFFSET (page-1)*limit,
        and ``pageSize``/``totalResults``/``offset`` in the reply (absent without ``page``)."""
        limit, err = self._limit_of(q)
        if err is not None:
            return err
        rows = [f for f in self.fills if self._match_sub(f, q, parent)
                and (not q.get("market") or f.get("market") == q["market"])]
        h = q.get("createdBeforeOrAtHeight")
        if h is not None:
            if not h.isdigit():
                return 400, {"errors": [{"value": h, "msg": "createdBeforeOrAtHeight must be a non-negative integer",
                                         "param": "createdBeforeOrAtHeight", "location": "query"}]}
            rows = [f for f in rows if int(f.get("createdAtHeight") or 0) <= int(h)]
        t = q.get("createdBeforeOrAt")
        if t:
            cut = self._gtbt({"goodTilBlockTime": t})
            rows = [f for f in rows if f.get("createdAt") and self._gtbt({"goodTilBlockTime": f["createdAt"]}) <= cut]
        # self.fills is newest first; its reverse is insertion (eventId) order
        page = q.get("page")
        if page is not None:
            if not page.isdigit():
                return 400, {"errors": [{"value": page, "msg": "page must be a non-negative integer",
                                         "param": "page", "location": "query"}]}
            ordered = list(reversed(rows))  # eventId ASC, then createdAtHeight DESC: same order here
            offset = (max(1, int(page)) - 1) * limit
            return 200, {"fills": [self._rest_fill(f) for f in ordered[offset:offset + limit]],
                         "pageSize": limit, "totalResults": len(ordered), "offset": offset}
        rows.sort(key=lambda f: int(f.get("createdAtHeight") or 0), reverse=True)  # stable: newest first
        return 200, {"fills": [self._rest_fill(f) for f in rows[:limit]]}

    def _route_addresses(self, p: list[str]) -> tuple[int, Any]:
        if len(p) == 1:
            subs = [s for (a, _), s in sorted(self.subaccounts.items()) if a == p[0]]
            if not subs:
                return 404, {"errors": [{"msg": f"No subaccounts found for address {p[0]}"}]}
            return 200, {"subaccounts": subs, "totalTradingRewards": "0"}
        if len(p) == 3 and p[1] == "subaccountNumber":
            try:
                key = (p[0], int(p[2]))
            except ValueError:
                return 400, {"errors": [{"msg": "subaccountNumber must be an integer"}]}
            sub = self.subaccounts.get(key)
            if sub is None:
                return 404, {"errors": [{"msg": f"No subaccount found with address {key[0]} "
                                                f"and subaccountNumber {key[1]}"}]}
            return 200, {"subaccount": sub}
        if len(p) == 3 and p[1] == "parentSubaccountNumber":
            pn = int(p[2])
            kids = [s for (a, n), s in sorted(self.subaccounts.items())
                    if a == p[0] and n % MAX_PARENT_SUBACCOUNTS == pn]
            if not kids:
                return 404, {"errors": [{"msg": f"No subaccount found with address {p[0]} "
                                                f"and parentSubaccountNumber {pn}"}]}
            eq = sum((D(s["equity"]) for s in kids), Decimal(0))
            fc = sum((D(s["freeCollateral"]) for s in kids), Decimal(0))
            return 200, {"subaccount": {"address": p[0], "parentSubaccountNumber": pn,
                                        "equity": fmt(eq), "freeCollateral": fmt(fc),
                                        "childSubaccounts": kids}}
        return 404, {"errors": [{"msg": "Not Found"}]}

    @staticmethod
    def _response(status: int, obj: Any, extra: Iterable[tuple[str, str]] = ()) -> Response:
        body = orjson.dumps(obj)
        headers = Headers([("Content-Type", "application/json; charset=utf-8"),
                           ("Content-Length", str(len(body))), ("Connection", "close"),
                           *extra])
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Error"
        return Response(status, reason, headers, body)

    def _take_fault(self, faults: list[_Fault], path: str) -> tuple[float, Optional[_Fault]]:
        delay, failing = 0.0, None
        for f in list(faults):
            if not f.matches(path):
                continue
            if f.delay:
                delay = max(delay, f.delay)
            if f.status is not None and failing is None:
                failing = f
            if f.remaining is not None and (f.status is not None or f.delay):
                f.remaining -= 1
                if f.remaining <= 0:
                    faults.remove(f)
        return delay, failing

    async def _process_request(self, connection: ServerConnection,
                               request: Request) -> Optional[Response]:
        split = urlsplit(request.path)
        path = split.path
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if upgrade:
            if path.rstrip("/") != "/v4/ws":
                return self._response(404, {"errors": [{"msg": "Not Found"}]})
            delay, fail = self._take_fault(self._ws_connect_faults, path)
            if delay:
                await asyncio.sleep(delay)
            if fail is not None:
                return self._response(fail.status, fail.body or {"errors": [
                    {"msg": http.HTTPStatus(fail.status).phrase}]})
            return None
        q = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        self.request_counts[path] += 1
        self.requests.append((time.time(), path, split.query))
        delay, fail = self._take_fault(self._faults, path)
        if delay:
            await asyncio.sleep(delay)
        if fail is not None:
            extra = [("Retry-After", "1")] if fail.status == 429 else []
            body = fail.body or {"errors": [{"msg": "Too many requests" if fail.status == 429
                                             else http.HTTPStatus(fail.status).phrase}]}
            return self._response(fail.status, body, extra)
        try:
            status, obj = self._route(path, q)
        except Exception as e:  # a fake bug must not hang the client
            log.exception("FakeIndexer route failed")
            status, obj = 500, {"errors": [{"msg": f"fake indexer error: {e!r}"}]}
        return self._response(status, obj)
