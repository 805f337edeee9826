"""The fake Binance USD-M venue's state: symbols, L2 books, a one-way-mode account, matching, funding.

Shapes follow the Binance USD-M API documentation (developers.binance.com/docs/derivatives/
usds-margined-futures; the endpoint and event names are given on each method) and the
example payloads ccxt 4.5.18 quotes in ``ccxt/binance.py`` / ``ccxt/pro/binance.py``.
Error codes and messages are Binance's ("Error Codes" page): -1102 mandatory parameter,
-1111 precision, -1121 invalid symbol, -2011 unknown order (cancel), -2013 order does not
exist, -2019 margin is insufficient, -2022 ReduceOnly order is rejected, -4014 price not
increased by tick size, -4164 notional too small, -4116 duplicated clientOrderId, -5022
post-only order would trade.

Fees: the base (VIP 0) USD-M rates, maker 0.0200 % and taker 0.0500 %
(binance.com/en/fee/futureFee). Leverage brackets of BTCUSDT/ETHUSDT: the first three tiers
of the "Notional and Leverage Brackets" example values (125x to 50k USDT, 0.4 % maintenance).
Prices and sizes are Decimal; JSON carries them as strings, as Binance does.
"""

from __future__ import annotations

import itertools
import time
from decimal import Decimal
from typing import Any

D = Decimal
API_KEY = "fake-binance-api-key-0123456789"
API_SECRET = "fake-binance-secret-abcdefghijklmnopqrstuvwxyz"
MAKER_FEE = D("0.0002")
TAKER_FEE = D("0.0005")

#: symbol -> (base, tick, step, min notional USDT, mid price, required/maint margin percent)
DEFAULT_SYMBOLS = {
    "BTCUSDT": ("BTC", "0.10", "0.001", "100", "65000", "5.0000", "2.5000"),
    "ETHUSDT": ("ETH", "0.01", "0.001", "20", "3400", "5.0000", "2.5000"),
}


class BinanceError(Exception):
    """An API error: HTTP ``status`` with Binance's ``{"code", "msg"}`` body."""

    def __init__(self, status: int, code: int, msg: str):
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def fmt(x: Decimal) -> str:
    """A Decimal as Binance prints it (plain notation, no exponent)."""
    return format(x.normalize(), "f")


def now_ms() -> int:
    return int(time.time() * 1000)


class Engine:
    """Books, orders, positions, wallet and funding of one account (one-way position mode, cross).

    Hooks to the transport: :meth:`push_market` and :meth:`push_user` (the server defines them).
    """

    def __init__(self, symbols: dict | None = None, wallet: str = "10000", funding_interval_h: int = 8,
                 levels: int = 20):
        self.symbols = {s: dict(zip(("base", "tick", "step", "min_notional", "mid", "imp", "mmp"), v))
                        for s, v in (symbols or DEFAULT_SYMBOLS).items()}
        self.books: dict[str, dict[str, dict]] = {}
        self.update_id = 1000
        self.last_u: dict[str, int] = {}
        for s, info in self.symbols.items():
            self._seed_book(s, D(info["mid"]), levels)
        self.wallet = D(wallet)
        self.positions: dict[str, dict] = {}  # symbol -> {"amt", "entry"}
        self.orders: dict[int, dict] = {}
        self.trades: list[dict] = []
        self.income: list[dict] = []
        self.funding_history: dict[str, list] = {s: [] for s in self.symbols}
        self.funding_rate = {s: D("0.0001") for s in self.symbols}
        self.funding_interval_h = funding_interval_h
        #: open times (ms) /fapi/v1/markPriceKlines leaves out (a planted gap in the venue's data)
        self.mark_missing: set = set()
        self.listen_keys: set = set()
        #: the parameters of every New Order request, as received (strings)
        self.order_requests: list[dict] = []
        self.signed_requests = 0
        self._ids = itertools.count(4000000001)
        self._trade_ids = itertools.count(7000001)
        self._tran_ids = itertools.count(9000001)
        now = now_ms()
        h = funding_interval_h * 3600_000
        self.next_funding_ms = (now // h + 1) * h
        for s in self.symbols:  # three settled rates (oldest first)
            for k in (3, 2, 1):
                self.funding_history[s].append({"symbol": s, "fundingTime": self.next_funding_ms - k * h,
                                                "fundingRate": "0.00010000", "markPrice": self.symbols[s]["mid"]})

    # -- hooks the server overrides ---------------------------------------------

    def push_market(self, stream: str, payload: dict) -> None:  # pragma: no cover - overridden
        pass

    def push_user(self, payload: dict) -> None:  # pragma: no cover - overridden
        pass

    # -- books --------------------------------------------------------------------

    def _seed_book(self, s: str, mid: Decimal, levels: int) -> None:
        tick = D(self.symbols[s]["tick"])
        gap = max(tick, (mid * D("0.00002")).quantize(tick))
        bids = {mid - gap * (i + 1): D("0.5") + D(i) / 10 for i in range(levels)}
        asks = {mid + gap * (i + 1): D("0.5") + D(i) / 10 for i in range(levels)}
        self.books[s] = {"bids": bids, "asks": asks}
        self.last_u.setdefault(s, self.update_id)  # the diff chain (pu = previous u) is per symbol

    def best(self, s: str) -> tuple[Decimal, Decimal]:
        b = self.books[s]
        return max(b["bids"]), min(b["asks"])

    def mark(self, s: str) -> Decimal:
        bid, ask = self.best(s)
        return ((bid + ask) / 2).quantize(D(self.symbols[s]["tick"]))

    def set_levels(self, s: str, bids: dict | None = None, asks: dict | None = None) -> None:
        """Set absolute sizes of levels (0 deletes) and push one ``depthUpdate`` (U, u, pu chained)."""
        book = self.books[s]
        for side, changes in (("bids", bids or {}), ("asks", asks or {})):
            for p, q in changes.items():
                p, q = D(str(p)), D(str(q))
                if q == 0:
                    book[side].pop(p, None)
                else:
                    book[side][p] = q
        first = self.update_id + 1
        self.update_id += 3
        pu, self.last_u[s] = self.last_u[s], self.update_id
        self.push_market(f"{s.lower()}@depth", {
            "e": "depthUpdate", "E": now_ms(), "T": now_ms(), "s": s, "U": first, "u": self.update_id, "pu": pu,
            "b": [[fmt(D(str(p))), fmt(D(str(q)))] for p, q in (bids or {}).items()],
            "a": [[fmt(D(str(p))), fmt(D(str(q)))] for p, q in (asks or {}).items()],
        })
        self._fill_resting(s)

    def break_sequence(self, s: str) -> None:
        """Push a ``depthUpdate`` whose ``pu`` is not the previous ``u`` (a lost message): a client
        following Binance's rules must drop its book and resync from a REST snapshot."""
        first = self.update_id + 5
        self.update_id += 10
        self.last_u[s] = self.update_id
        bid, _ = self.best(s)
        self.push_market(f"{s.lower()}@depth", {
            "e": "depthUpdate", "E": now_ms(), "T": now_ms(), "s": s, "U": first, "u": self.update_id,
            "pu": first - 3, "b": [[fmt(bid), fmt(self.books[s]["bids"][bid])]], "a": []})

    def move(self, s: str, mid: str, levels: int = 20) -> None:
        """Re-centre the book at ``mid`` (one depth diff deleting the old levels and adding new ones)."""
        old = self.books[s]
        deletes_b = {p: 0 for p in old["bids"]}
        deletes_a = {p: 0 for p in old["asks"]}
        self._seed_book(s, D(mid), levels)
        new = self.books[s]
        self.books[s] = old
        self.set_levels(s, {**deletes_b, **new["bids"]}, {**deletes_a, **new["asks"]})
        self.symbols[s]["mid"] = mid

    def push_mark_price(self, s: str) -> None:
        """One ``markPriceUpdate`` event (Mark Price Stream) for ``s``."""
        m = self.mark(s)
        self.push_market(f"{s.lower()}@markPrice", {
            "e": "markPriceUpdate", "E": now_ms(), "s": s, "p": fmt(m), "i": fmt(m), "P": fmt(m),
            "r": fmt(self.funding_rate[s]), "T": self.next_funding_ms,
        })

    def push_trade(self, s: str, price: Decimal, qty: Decimal, buyer_maker: bool) -> None:
        """One ``trade`` event (Trade Streams) for ``s``."""
        self.push_market(f"{s.lower()}@trade", {
            "e": "trade", "E": now_ms(), "T": now_ms(), "s": s, "t": next(self._trade_ids),
            "p": fmt(price), "q": fmt(qty), "X": "MARKET", "m": buyer_maker,
        })

    # -- funding -----------------------------------------------------------------------

    def settle_funding(self, s: str, rate: str | None = None) -> Decimal:
        """Settle one funding period of ``s`` at ``rate`` (default the current rate): record it in
        ``/fapi/v1/fundingRate``, pay ``-position * mark * rate`` USDT into the wallet as a
        ``FUNDING_FEE`` income row, push ``ACCOUNT_UPDATE`` (reason ``FUNDING_FEE``). Returns the amount."""
        r = D(rate) if rate is not None else self.funding_rate[s]
        m = self.mark(s)
        ts = now_ms()
        self.funding_history[s].append({"symbol": s, "fundingTime": ts, "fundingRate": fmt(r), "markPrice": fmt(m)})
        self.next_funding_ms = ts + self.funding_interval_h * 3600_000
        amt = self.positions.get(s, {}).get("amt", D(0))
        paid = (-amt * m * r).quantize(D("0.00000001"))
        if amt != 0:
            self.wallet += paid
            self.income.append({"symbol": s, "incomeType": "FUNDING_FEE", "income": fmt(paid), "asset": "USDT",
                                "info": "FUNDING_FEE", "time": ts, "tranId": next(self._tran_ids), "tradeId": ""})
            self._push_account(s, "FUNDING_FEE")
        return paid

    def publish_funding_row(self, s: str, funding_time_ms: int, rate: str = "0.00010000") -> None:
        """Publish a settled row in ``/fapi/v1/fundingRate`` without moving the announced next
        funding time (a mark stream that has not caught up yet)."""
        self.funding_history[s].append({"symbol": s, "fundingTime": funding_time_ms, "fundingRate": rate,
                                        "markPrice": fmt(self.mark(s))})

    def diverge(self, s: str, bids: dict | None = None, asks: dict | None = None) -> None:
        """Change levels of the venue's book without a diff on the stream (the REST ``/fapi/v1/depth``
        shows them, the socket never does; the ``U``/``u``/``pu`` chain stays intact): a divergence
        only a REST cross-check can see."""
        for side, changes in (("bids", bids or {}), ("asks", asks or {})):
            for p, q in changes.items():
                self.books[s][side][D(str(p))] = D(str(q))

    # -- orders --------------------------------------------------------------------------

    def _symbol(self, q: dict) -> str:
        s = q.get("symbol")
        if not s:
            raise BinanceError(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if s not in self.symbols:
            raise BinanceError(400, -1121, "Invalid symbol.")
        return s

    def r_new_order(self, q: dict) -> dict:
        """POST /fapi/v1/order (New Order): LIMIT (GTC, IOC, FOK, GTX = post-only) and MARKET, reduceOnly,
        newClientOrderId. The reply is the ACK shape (status NEW); fills follow on the user stream."""
        self.order_requests.append(dict(q))
        s = self._symbol(q)
        info = self.symbols[s]
        side, typ = q.get("side"), q.get("type")
        if side not in ("BUY", "SELL") or typ not in ("LIMIT", "MARKET"):
            raise BinanceError(400, -1116, "Invalid orderType.")
        try:
            qty = D(q["quantity"])
        except Exception:
            raise BinanceError(400, -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.") from None
        step, tick = D(info["step"]), D(info["tick"])
        if qty <= 0 or qty % step != 0:
            raise BinanceError(400, -1111, "Precision is over the maximum defined for this asset.")
        price = None
        if typ == "LIMIT":
            price = D(q.get("price", "0"))
            if price <= 0 or price % tick != 0:
                raise BinanceError(400, -4014, "Price not increased by tick size.")
        cid = q.get("newClientOrderId") or f"fake{next(self._ids)}"
        if any(o["clientOrderId"] == cid and o["status"] in ("NEW", "PARTIALLY_FILLED") for o in self.orders.values()):
            raise BinanceError(400, -4116, "ClientOrderId is duplicated.")
        reduce_only = str(q.get("reduceOnly", "false")).lower() == "true"
        pos = self.positions.get(s, {}).get("amt", D(0))
        signed = qty if side == "BUY" else -qty
        if reduce_only and (pos == 0 or (pos > 0) == (signed > 0) or abs(signed) > abs(pos)):
            raise BinanceError(400, -2022, "ReduceOnly Order is rejected.")
        ref = price if price is not None else self.mark(s)
        if not reduce_only and qty * ref < D(info["min_notional"]):
            raise BinanceError(400, -4164, f"Order's notional must be no smaller than {info['min_notional']} (unless you choose reduce only).")
        if not reduce_only and self._margin_needed(s, signed, ref) > self.available():
            raise BinanceError(400, -2019, "Margin is insufficient.")
        tif = q.get("timeInForce", "GTC") if typ == "LIMIT" else "GTC"
        bid, ask = self.best(s)
        crosses = price is not None and ((side == "BUY" and price >= ask) or (side == "SELL" and price <= bid))
        if tif == "GTX" and crosses:
            raise BinanceError(400, -5022, "Due to the order could not be executed as maker, the Post Only order will be rejected. The order will not be recorded in the order history")
        oid = next(self._ids)
        ts = now_ms()
        order = {"orderId": oid, "symbol": s, "status": "NEW", "clientOrderId": cid, "price": fmt(price or D(0)),
                 "avgPrice": "0", "origQty": fmt(qty), "executedQty": "0", "cumQty": "0", "cumQuote": "0",
                 "timeInForce": tif, "type": typ, "reduceOnly": reduce_only, "closePosition": False, "side": side,
                 "positionSide": "BOTH", "stopPrice": "0", "workingType": "CONTRACT_PRICE", "priceProtect": False,
                 "origType": typ, "priceMatch": "NONE", "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0,
                 "time": ts, "updateTime": ts}
        self.orders[oid] = order
        ack = dict(order)
        self._push_order(order, "NEW")
        self._match(order, taker=True)
        if order["status"] in ("NEW", "PARTIALLY_FILLED") and (typ == "MARKET" or tif in ("IOC", "FOK")):
            order["status"] = "EXPIRED"
            self._push_order(order, "EXPIRED")
        ack.pop("time", None)
        return ack

    def _margin_needed(self, s: str, signed: Decimal, price: Decimal) -> Decimal:
        pos = self.positions.get(s, {}).get("amt", D(0))
        grow = max(abs(pos + signed) - abs(pos), D(0))
        return grow * price * D(self.symbols[s]["imp"]) / 100

    def available(self) -> Decimal:
        """Wallet + unrealized PnL - initial margin of positions, USDT."""
        upnl = sum((p["amt"] * (self.mark(s) - p["entry"]) for s, p in self.positions.items()), D(0))
        im = sum((abs(p["amt"]) * self.mark(s) * D(self.symbols[s]["imp"]) / 100 for s, p in self.positions.items()), D(0))
        return self.wallet + upnl - im

    def _match(self, order: dict, taker: bool) -> None:
        s = order["symbol"]
        book = self.books[s]
        buy = order["side"] == "BUY"
        levels = book["asks"] if buy else book["bids"]
        limit = D(order["price"]) if order["type"] == "LIMIT" else None
        left = D(order["origQty"]) - D(order["executedQty"])
        changed: dict = {}
        for p in sorted(levels, reverse=not buy):
            if left <= 0 or (limit is not None and ((buy and p > limit) or (not buy and p < limit))):
                break
            take = min(left, levels[p])
            levels[p] -= take
            changed[p] = levels[p]
            if levels[p] == 0:
                del levels[p]
            left -= take
            self._fill(order, p, take, maker=not taker)
            self.push_trade(s, p, take, buyer_maker=not buy)
        if changed:
            key = "a" if buy else "b"
            first = self.update_id + 1
            self.update_id += 1
            pu, self.last_u[s] = self.last_u[s], self.update_id
            self.push_market(f"{s.lower()}@depth", {
                "e": "depthUpdate", "E": now_ms(), "T": now_ms(), "s": s, "U": first, "u": self.update_id, "pu": pu,
                "b": [], "a": [], key: [[fmt(p), fmt(v)] for p, v in changed.items()]})

    def _fill_resting(self, s: str) -> None:
        """Resting limit orders the book now crosses fill as makers at their price."""
        bid, ask = self.best(s)
        for o in list(self.orders.values()):
            if o["symbol"] != s or o["status"] not in ("NEW", "PARTIALLY_FILLED"):
                continue
            p = D(o["price"])
            if (o["side"] == "BUY" and ask <= p) or (o["side"] == "SELL" and bid >= p):
                self._fill(o, p, D(o["origQty"]) - D(o["executedQty"]), maker=True)

    def _fill(self, order: dict, price: Decimal, qty: Decimal, maker: bool) -> None:
        s = order["symbol"]
        exe = D(order["executedQty"]) + qty
        quote = D(order["cumQuote"]) + price * qty
        order.update(executedQty=fmt(exe), cumQty=fmt(exe), cumQuote=fmt(quote), avgPrice=fmt(quote / exe),
                     updateTime=now_ms(), status="FILLED" if exe >= D(order["origQty"]) else "PARTIALLY_FILLED")
        fee = (price * qty * (MAKER_FEE if maker else TAKER_FEE)).quantize(D("0.00000001"))
        signed = qty if order["side"] == "BUY" else -qty
        pos = self.positions.setdefault(s, {"amt": D(0), "entry": D(0)})
        realized = D(0)
        if pos["amt"] == 0 or (pos["amt"] > 0) == (signed > 0):
            total = pos["amt"] + signed
            pos["entry"] = (pos["entry"] * abs(pos["amt"]) + price * qty) / abs(total)
            pos["amt"] = total
        else:
            closed = min(abs(signed), abs(pos["amt"]))
            realized = closed * (price - pos["entry"]) * (1 if pos["amt"] > 0 else -1)
            pos["amt"] += signed
            if pos["amt"] == 0:
                pos["entry"] = D(0)
            elif (pos["amt"] > 0) == (signed > 0):
                pos["entry"] = price
        self.wallet += realized - fee
        tid = next(self._trade_ids)
        trade = {"buyer": order["side"] == "BUY", "commission": fmt(fee), "commissionAsset": "USDT", "id": tid,
                 "maker": maker, "orderId": order["orderId"], "price": fmt(price), "qty": fmt(qty),
                 "quoteQty": fmt(price * qty), "realizedPnl": fmt(realized), "side": order["side"],
                 "positionSide": "BOTH", "symbol": s, "time": now_ms()}
        self.trades.append(trade)
        self._push_order(order, "TRADE", last=(price, qty, fee, tid, maker, realized))
        self._push_account(s, "ORDER")

    # -- user stream events --------------------------------------------------------------

    def _push_order(self, o: dict, execution: str, last: tuple | None = None) -> None:
        """``ORDER_TRADE_UPDATE`` (Event: Order Update) for order ``o``."""
        price, qty, fee, tid, maker, realized = last or (D(0), D(0), D(0), 0, False, D(0))
        self.push_user({"e": "ORDER_TRADE_UPDATE", "E": now_ms(), "T": now_ms(), "o": {
            "s": o["symbol"], "c": o["clientOrderId"], "S": o["side"], "o": o["type"], "f": o["timeInForce"],
            "q": o["origQty"], "p": o["price"], "ap": o["avgPrice"], "sp": "0", "x": execution, "X": o["status"],
            "i": o["orderId"], "l": fmt(qty), "z": o["executedQty"], "L": fmt(price), "N": "USDT", "n": fmt(fee),
            "T": o["updateTime"], "t": tid, "b": "0", "a": "0", "m": maker, "R": o["reduceOnly"], "wt": "CONTRACT_PRICE",
            "ot": o["type"], "ps": "BOTH", "cp": False, "rp": fmt(realized), "pP": False, "si": 0, "ss": 0,
            "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0}})

    def _push_account(self, s: str, reason: str) -> None:
        """``ACCOUNT_UPDATE`` (Event: Balance and Position Update) after a fill or a funding fee."""
        p = self.positions.get(s, {"amt": D(0), "entry": D(0)})
        self.push_user({"e": "ACCOUNT_UPDATE", "E": now_ms(), "T": now_ms(), "a": {
            "m": reason, "B": [{"a": "USDT", "wb": fmt(self.wallet), "cw": fmt(self.wallet), "bc": "0"}],
            "P": [{"s": s, "pa": fmt(p["amt"]), "ep": fmt(p["entry"]), "bep": fmt(p["entry"]), "cr": "0",
                   "up": fmt(p["amt"] * (self.mark(s) - p["entry"])), "mt": "cross", "iw": "0", "ps": "BOTH"}]}})

    # -- order queries -------------------------------------------------------------------------

    def _find(self, q: dict) -> dict:
        s = self._symbol(q)
        oid, cid = q.get("orderId"), q.get("origClientOrderId")
        for o in self.orders.values():
            if o["symbol"] == s and ((oid and str(o["orderId"]) == str(oid)) or (cid and o["clientOrderId"] == cid)):
                return o
        raise BinanceError(400, -2013, "Order does not exist.")

    def r_cancel_order(self, q: dict) -> dict:
        """DELETE /fapi/v1/order (Cancel Order) by orderId or origClientOrderId."""
        try:
            o = self._find(q)
        except BinanceError:
            raise BinanceError(400, -2011, "Unknown order sent.") from None
        if o["status"] not in ("NEW", "PARTIALLY_FILLED"):
            raise BinanceError(400, -2011, "Unknown order sent.")
        o["status"] = "CANCELED"
        o["updateTime"] = now_ms()
        self._push_order(o, "CANCELED")
        return {k: v for k, v in o.items() if k != "time"}

    def r_cancel_all(self, q: dict) -> dict:
        s = self._symbol(q)
        for o in self.orders.values():
            if o["symbol"] == s and o["status"] in ("NEW", "PARTIALLY_FILLED"):
                o["status"] = "CANCELED"
                self._push_order(o, "CANCELED")
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def r_query_order(self, q: dict) -> dict:
        return dict(self._find(q))

    def r_open_orders(self, q: dict) -> list:
        s = q.get("symbol")
        return [dict(o) for o in self.orders.values()
                if o["status"] in ("NEW", "PARTIALLY_FILLED") and (not s or o["symbol"] == s)]

    def r_all_orders(self, q: dict) -> list:
        s = self._symbol(q)
        return [dict(o) for o in self.orders.values() if o["symbol"] == s]

    def r_user_trades(self, q: dict) -> list:
        s = self._symbol(q)
        since = int(q.get("startTime", 0) or 0)
        return [t for t in self.trades if t["symbol"] == s and t["time"] >= since][-int(q.get("limit", 500)):]

    def r_income(self, q: dict) -> list:
        typ, s = q.get("incomeType"), q.get("symbol")
        since = int(q.get("startTime", 0) or 0)
        return [r for r in self.income if (not typ or r["incomeType"] == typ) and (not s or r["symbol"] == s)
                and r["time"] >= since][: int(q.get("limit", 100))]

    def r_set_leverage(self, q: dict) -> dict:
        s = self._symbol(q)
        return {"leverage": int(q.get("leverage", 20)), "maxNotionalValue": "1000000", "symbol": s}

    # -- account queries ---------------------------------------------------------------------------

    def _position_row(self, s: str, p: dict) -> dict:
        m = self.mark(s)
        notional = p["amt"] * m
        im = abs(notional) * D(self.symbols[s]["imp"]) / 100
        mm = abs(notional) * D(self.symbols[s]["mmp"]) / 100
        return {"symbol": s, "positionSide": "BOTH", "positionAmt": fmt(p["amt"]), "entryPrice": fmt(p["entry"]),
                "breakEvenPrice": fmt(p["entry"]), "markPrice": fmt(m), "unRealizedProfit": fmt(p["amt"] * (m - p["entry"])),
                "liquidationPrice": "0", "isolatedMargin": "0", "notional": fmt(notional), "marginAsset": "USDT",
                "isolatedWallet": "0", "initialMargin": fmt(im), "maintMargin": fmt(mm), "positionInitialMargin": fmt(im),
                "openOrderInitialMargin": "0", "adl": 1, "bidNotional": "0", "askNotional": "0", "marginType": "cross",
                "leverage": "20", "maxNotionalValue": "1000000", "isAutoAddMargin": "false", "updateTime": now_ms()}

    def r_position_risk(self, q: dict) -> list:
        """GET /fapi/v3/positionRisk (Position Information V3): open positions only."""
        s = q.get("symbol")
        return [self._position_row(k, p) for k, p in self.positions.items() if p["amt"] != 0 and (not s or k == s)]

    def _totals(self) -> dict:
        upnl = sum((p["amt"] * (self.mark(s) - p["entry"]) for s, p in self.positions.items()), D(0))
        im = sum((abs(p["amt"]) * self.mark(s) * D(self.symbols[s]["imp"]) / 100 for s, p in self.positions.items()), D(0))
        mm = sum((abs(p["amt"]) * self.mark(s) * D(self.symbols[s]["mmp"]) / 100 for s, p in self.positions.items()), D(0))
        return {"upnl": upnl, "im": im, "mm": mm, "margin": self.wallet + upnl, "avail": self.wallet + upnl - im}

    def r_account(self, q: dict) -> dict:
        """GET /fapi/v3/account (Account Information V3)."""
        t = self._totals()
        asset = {"asset": "USDT", "walletBalance": fmt(self.wallet), "unrealizedProfit": fmt(t["upnl"]),
                 "marginBalance": fmt(t["margin"]), "maintMargin": fmt(t["mm"]), "initialMargin": fmt(t["im"]),
                 "positionInitialMargin": fmt(t["im"]), "openOrderInitialMargin": "0", "crossWalletBalance": fmt(self.wallet),
                 "crossUnPnl": fmt(t["upnl"]), "availableBalance": fmt(t["avail"]), "maxWithdrawAmount": fmt(t["avail"]),
                 "updateTime": now_ms()}
        return {"totalInitialMargin": fmt(t["im"]), "totalMaintMargin": fmt(t["mm"]), "totalWalletBalance": fmt(self.wallet),
                "totalUnrealizedProfit": fmt(t["upnl"]), "totalMarginBalance": fmt(t["margin"]),
                "totalPositionInitialMargin": fmt(t["im"]), "totalOpenOrderInitialMargin": "0",
                "totalCrossWalletBalance": fmt(self.wallet), "totalCrossUnPnl": fmt(t["upnl"]),
                "availableBalance": fmt(t["avail"]), "maxWithdrawAmount": fmt(t["avail"]), "assets": [asset],
                "positions": [{"symbol": s, "positionSide": "BOTH", "positionAmt": fmt(p["amt"]),
                               "unrealizedProfit": fmt(p["amt"] * (self.mark(s) - p["entry"])), "isolatedMargin": "0",
                               "notional": fmt(p["amt"] * self.mark(s)), "isolatedWallet": "0", "initialMargin": "0",
                               "maintMargin": "0", "updateTime": now_ms()}
                              for s, p in self.positions.items() if p["amt"] != 0]}

    def r_balance(self, q: dict) -> list:
        """GET /fapi/v2/balance (Futures Account Balance V2)."""
        t = self._totals()
        return [{"accountAlias": "SgsR", "asset": "USDT", "balance": fmt(self.wallet), "crossWalletBalance": fmt(self.wallet),
                 "crossUnPnl": fmt(t["upnl"]), "availableBalance": fmt(t["avail"]), "maxWithdrawAmount": fmt(t["avail"]),
                 "marginAvailable": True, "updateTime": now_ms()}]

    def r_leverage_bracket(self, q: dict) -> list:
        """GET /fapi/v1/leverageBracket (Notional and Leverage Brackets)."""
        rows = []
        for s in self.symbols:
            rows.append({"symbol": s, "notionalCoef": 1.0, "brackets": [
                {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0, "maintMarginRatio": 0.004, "cum": 0.0},
                {"bracket": 2, "initialLeverage": 100, "notionalCap": 500000, "notionalFloor": 50000, "maintMarginRatio": 0.005, "cum": 50.0},
                {"bracket": 3, "initialLeverage": 50, "notionalCap": 10000000, "notionalFloor": 500000, "maintMarginRatio": 0.01, "cum": 2550.0}]})
        return rows

    # -- public market data ------------------------------------------------------------------------

    def r_exchange_info(self, q: dict) -> dict:
        """GET /fapi/v1/exchangeInfo (Exchange Information)."""
        syms = []
        for s, i in self.symbols.items():
            pp = max(0, -D(i["tick"]).normalize().as_tuple().exponent)
            qp = max(0, -D(i["step"]).normalize().as_tuple().exponent)
            syms.append({
                "symbol": s, "pair": s, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
                "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": i["mmp"],
                "requiredMarginPercent": i["imp"], "baseAsset": i["base"], "quoteAsset": "USDT", "marginAsset": "USDT",
                "pricePrecision": pp, "quantityPrecision": qp, "baseAssetPrecision": 8, "quotePrecision": 8,
                "underlyingType": "COIN", "underlyingSubType": ["PoW"], "settlePlan": 0, "triggerProtect": "0.0500",
                "liquidationFee": "0.012500", "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": i["tick"], "maxPrice": "4529764", "tickSize": i["tick"]},
                    {"filterType": "LOT_SIZE", "minQty": i["step"], "maxQty": "1000", "stepSize": i["step"]},
                    {"filterType": "MARKET_LOT_SIZE", "minQty": i["step"], "maxQty": "120", "stepSize": i["step"]},
                    {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                    {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                    {"filterType": "MIN_NOTIONAL", "notional": i["min_notional"]},
                    {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500", "multiplierDecimal": "4"},
                ],
                "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"], "permissionSets": ["GRID", "COPY"],
            })
        return {"timezone": "UTC", "serverTime": now_ms(), "futuresType": "U_MARGINED",
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
                               {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200}],
                "exchangeFilters": [],
                "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
                "symbols": syms}

    def r_depth(self, q: dict) -> dict:
        """GET /fapi/v1/depth (Order Book): ``lastUpdateId`` is the last ``u`` sent on the diff stream."""
        s = self._symbol(q)
        n = int(q.get("limit", 500))
        b = self.books[s]
        return {"lastUpdateId": self.last_u[s], "E": now_ms(), "T": now_ms(),
                "bids": [[fmt(p), fmt(b["bids"][p])] for p in sorted(b["bids"], reverse=True)[:n]],
                "asks": [[fmt(p), fmt(b["asks"][p])] for p in sorted(b["asks"])[:n]]}

    def r_book_ticker(self, q: dict) -> Any:
        rows = []
        for s in ([self._symbol(q)] if q.get("symbol") else self.symbols):
            bid, ask = self.best(s)
            rows.append({"symbol": s, "bidPrice": fmt(bid), "bidQty": fmt(self.books[s]["bids"][bid]), "askPrice": fmt(ask),
                         "askQty": fmt(self.books[s]["asks"][ask]), "time": now_ms(), "lastUpdateId": self.last_u[s]})
        return rows[0] if q.get("symbol") else rows

    def _premium(self, s: str) -> dict:
        m = self.mark(s)
        return {"symbol": s, "markPrice": fmt(m), "indexPrice": fmt(m), "estimatedSettlePrice": fmt(m),
                "lastFundingRate": fmt(self.funding_rate[s]), "interestRate": "0.00010000",
                "nextFundingTime": self.next_funding_ms, "time": now_ms()}

    def r_premium_index(self, q: dict) -> Any:
        """GET /fapi/v1/premiumIndex (Mark Price): one object with ``symbol``, else a list."""
        if q.get("symbol"):
            return self._premium(self._symbol(q))
        return [self._premium(s) for s in self.symbols]

    def r_funding_rate(self, q: dict) -> list:
        """GET /fapi/v1/fundingRate (Get Funding Rate History), oldest first."""
        s = self._symbol(q)
        since = int(q.get("startTime", 0) or 0)
        rows = [r for r in self.funding_history[s] if r["fundingTime"] >= since]
        return rows[-int(q.get("limit", 100)):]

    def r_funding_info(self, q: dict) -> list:
        """GET /fapi/v1/fundingInfo (Get Funding Rate Info)."""
        return [{"symbol": s, "adjustedFundingRateCap": "0.02000000", "adjustedFundingRateFloor": "-0.02000000",
                 "fundingIntervalHours": self.funding_interval_h, "disclaimer": False} for s in self.symbols]

    def r_open_interest(self, q: dict) -> dict:
        """GET /fapi/v1/openInterest (Open Interest): ``{"openInterest": "10659.509", "symbol":
        "BTCUSDT", "time": 1589437530011}`` (Binance USD-M API docs; ccxt ``binance.py``
        ``fetch_open_interest`` comment). Base units; ``open_interest[s]`` when set, else 10659.509."""
        s = self._symbol(q)
        oi = getattr(self, "open_interest", {}).get(s, D("10659.509"))
        return {"openInterest": fmt(D(oi)), "symbol": s, "time": now_ms()}

    #: Binance kline intervals (API "Kline/Candlestick Data", enum ``interval``) -> ms
    INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000,
                   "4h": 14_400_000, "1d": 86_400_000}

    def mark_at(self, s: str, open_ms: int, step_ms: int) -> Decimal:
        """The fake's mark-price path: the symbol's ``mid`` plus -5..+5 ticks by bar index (deterministic)."""
        return D(self.symbols[s]["mid"]) + D(self.symbols[s]["tick"]) * ((open_ms // step_ms) % 11 - 5)

    def r_mark_klines(self, q: dict) -> list:
        """GET /fapi/v1/markPriceKlines (Mark Price Kline/Candlestick Data): ``[open time, open, high,
        low, close, "0" (ignore: no volume), close time, "0", basic data count, "0", "0", "0"]``, oldest
        first from ``startTime`` (else the last ``limit`` bars) up to ``endTime`` (else now), at most
        ``limit`` (default 500, max 1500); bars not yet open are not served, nor open times listed in
        ``mark_missing`` (a planted gap)."""
        s = self._symbol(q)
        step = self.INTERVAL_MS.get(q.get("interval", ""))
        if step is None:
            raise BinanceError(400, -1120, "Invalid interval.")
        limit = min(int(q.get("limit", 500)), 1500)
        end = min(int(q.get("endTime", now_ms())), now_ms())
        start = int(q["startTime"]) if q.get("startTime") else (end // step - limit + 1) * step
        t = -(-start // step) * step
        tick = D(self.symbols[s]["tick"])
        rows = []
        while t <= end and len(rows) < limit:
            if t not in self.mark_missing:
                m = self.mark_at(s, t, step)
                rows.append([t, fmt(m), fmt(m + tick), fmt(m - tick), fmt(m), "0", t + step - 1, "0", step // 1000, "0", "0", "0"])
            t += step
        return rows

    def r_klines(self, q: dict) -> list:
        """GET /fapi/v1/klines (Kline/Candlestick Data): flat one-minute bars at the mark."""
        s = self._symbol(q)
        m = fmt(self.mark(s))
        start = now_ms() // 60000 * 60000
        n = min(int(q.get("limit", 10)), 100)
        return [[start - 60000 * k, m, m, m, m, "0", start - 60000 * k + 59999, "0", 0, "0", "0", "0"] for k in range(n, 0, -1)]
