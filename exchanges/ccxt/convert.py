"""Translations between ccxt's unified structures and the project's model, and ccxt's errors.

Orders: our integer client id travels as the venue's client order id, ``pb<id>`` (Binance
``newClientOrderId`` allows ``^[.A-Z:/a-z0-9_-]{1,36}$``, USD-M "New Order"), or a 128-bit
hex ``0x...`` cloid on Hyperliquid (docs "Exchange endpoint / Place an order": ``c``, a 16-byte
hex string). Sizes and prices are sent as strings formatted from Decimals already rounded to
the market's step and tick (:func:`amount_text`): never a binary float on the order path.

Errors (ccxt's tree, ``ccxt/base/errors.py``), mapped by :func:`classify`:

- ``InsufficientFunds`` -> :class:`~perpbot.core.errors.InsufficientMargin` (a rejection);
- ``InvalidOrder`` (``OrderNotFillable``, ``OrderImmediatelyFillable`` post-only crossing, ...),
  ``BadSymbol``, ``BadRequest``, ``OperationRejected``, ``PermissionDenied``,
  ``AuthenticationError`` -> :class:`~perpbot.core.errors.OrderRejected` with the venue's message;
- ``RateLimitExceeded`` / ``DDoSProtection`` -> ``"rate"``: back off, then retry;
- ``RequestTimeout`` and other ``NetworkError`` (``ExchangeNotAvailable``, ...) -> ``"unknown"``
  for an order (the venue may have acted: the order stays pending until reconciliation),
  ``"network"`` elsewhere (retry/reconnect).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

from perpbot.core.model import Fill, Liquidity, OrderInfo, OrderStatus, OrderType, Side, TimeInForce
from perpbot.exchanges.ccxt.markets import dec

D = Decimal

#: ccxt unified order status -> ours (docs.ccxt.com "Order structure": open, closed, canceled, expired, rejected)
STATUS = {"open": OrderStatus.OPEN, "closed": OrderStatus.FILLED, "canceled": OrderStatus.CANCELED,
          "cancelled": OrderStatus.CANCELED, "expired": OrderStatus.EXPIRED, "rejected": OrderStatus.REJECTED}


def amount_text(x: Decimal) -> str:
    """A Decimal in plain notation for ccxt (``Decimal("0.0020")`` -> ``"0.002"``), never a float."""
    s = format(x, "f")
    return s.rstrip("0").rstrip(".") if "." in s else s


def client_order_id(client_id: int, ccxt_id: str) -> str:
    """The venue's client order id for our ``client_id`` (formats: module docstring)."""
    if ccxt_id == "hyperliquid":
        return f"0x{client_id:032x}"
    return f"pb{client_id}"


def client_id_of(text: Any) -> int | None:
    """Our client id from a venue client order id made by :func:`client_order_id`, else None."""
    if not text:
        return None
    s = str(text)
    try:
        if s.startswith("pb") and s[2:].isdigit():
            return int(s[2:])
        if s.startswith("0x") and len(s) == 34:
            return int(s, 16)
    except ValueError:
        return None
    return None


def order_params(order: Any, ccxt_id: str) -> tuple[str, str | None, dict]:
    """``(ccxt type, price text or None, params)`` for an :class:`~perpbot.core.model.OrderRequest`.

    Market orders are ccxt ``market``; limit orders ``limit`` with ``postOnly`` (Binance GTX) or
    ``timeInForce`` ``IOC``; ``reduceOnly`` and ``clientOrderId`` always set. Hyperliquid has no
    true market order: ccxt sends an IOC limit at the given price (its ``price`` argument is
    required there), so a market order carries its worst acceptable price.
    """
    params: dict[str, Any] = {"clientOrderId": client_order_id(order.client_id, ccxt_id)}
    if order.reduce_only:
        params["reduceOnly"] = True
    price = amount_text(order.price) if order.price is not None else None
    if order.order_type is OrderType.MARKET:
        if ccxt_id == "hyperliquid":
            params["slippage"] = "0"  # the price given is already the worst acceptable one (ccxt would add 5 %)
            return "market", price, params
        return "market", None, params
    if order.post_only or order.time_in_force is TimeInForce.POST_ONLY:
        params["postOnly"] = True
    elif order.time_in_force is TimeInForce.IOC:
        params["timeInForce"] = "IOC"
    return "limit", price, params


def order_info(o: Mapping, ticker: str) -> OrderInfo | None:
    """A ccxt order -> :class:`~perpbot.core.model.OrderInfo`; None for an order we did not place or a
    structure without side and amount."""
    cid = client_id_of(o.get("clientOrderId"))
    if cid is None or o.get("side") not in ("buy", "sell") or o.get("amount") is None:
        return None  # not ours, or a partial order structure (e.g. a cancel reply)
    filled = dec(o.get("filled") or 0, "filled")
    status = STATUS.get(str(o.get("status")), OrderStatus.OPEN)
    if status is OrderStatus.OPEN and filled > 0:
        status = OrderStatus.PARTIALLY_FILLED
    tif = TimeInForce.POST_ONLY if o.get("postOnly") else (TimeInForce.IOC if o.get("timeInForce") == "IOC" else TimeInForce.GTT)
    return OrderInfo(
        client_id=cid, ticker=ticker, side=Side.parse(o["side"]), size=dec(o.get("amount"), "amount"),
        price=dec(o["price"], "price") if o.get("price") else None, status=status,
        order_type=OrderType.MARKET if o.get("type") == "market" else OrderType.LIMIT, filled_size=filled,
        reduce_only=bool(o.get("reduceOnly")), post_only=bool(o.get("postOnly")), time_in_force=tif,
        created_ns=int(o.get("timestamp") or 0) * 1_000_000, exchange_order_id=str(o.get("id") or ""),
    )


def fill_of(t: Mapping, ticker: str, client_id: int, contract_size: Decimal = D(1)) -> Fill:
    """A ccxt trade (``fetch_my_trades`` / ``watch_my_trades``) -> :class:`~perpbot.core.model.Fill`.

    ``fee`` is the venue's fee in the quote currency (positive paid, negative a rebate);
    a fee in another currency is converted at the trade price when it is the base asset.

    :raises ValueError: a missing price or amount (naming the field).
    """
    price = dec(t.get("price"), "price")
    size = dec(t.get("amount"), "amount") * contract_size
    fee = D(0)
    f = t.get("fee") or {}
    if f.get("cost") is not None:
        fee = dec(f["cost"], "fee")
        base = ticker.split("-")[0]
        if str(f.get("currency") or "").upper() == base:
            fee *= price
    liq = Liquidity.MAKER if t.get("takerOrMaker") == "maker" else Liquidity.TAKER
    return Fill(client_id=client_id, ticker=ticker, side=Side.parse(t["side"]), price=price, size=size, fee=fee,
                liquidity=liq, ts_ns=int(t.get("timestamp") or 0) * 1_000_000, fill_id=str(t.get("id") or ""))


def classify(exc: BaseException) -> str:
    """The plugin's handling of a ccxt exception: ``"funds"``, ``"reject"``, ``"rate"``,
    ``"unknown"`` (timeout: the request may have been acted on) or ``"network"`` (module docstring)."""
    import ccxt

    if isinstance(exc, ccxt.InsufficientFunds):
        return "funds"
    if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
        return "rate"
    if isinstance(exc, ccxt.RequestTimeout):
        return "unknown"
    if isinstance(exc, ccxt.NetworkError):
        return "unknown"
    if isinstance(exc, (ccxt.InvalidOrder, ccxt.BadRequest, ccxt.BadSymbol, ccxt.OperationRejected,
                        ccxt.PermissionDenied, ccxt.AuthenticationError, ccxt.AccountSuspended,
                        ccxt.NotSupported, ccxt.ExchangeError)):
        return "reject"
    return "network"


def venue_message(exc: BaseException) -> str:
    """The venue's own text from a ccxt exception (``binanceusdm {"code":-2019,"msg":"..."}`` ->
    ``-2019 Margin is insufficient.``), one line, without the request URL or credentials."""
    import json

    text = str(exc)
    brace = text.find("{")
    if brace >= 0:
        try:
            body = json.loads(text[brace:])
            if isinstance(body, dict) and ("msg" in body or "code" in body):
                return f"{body.get('code', '')} {body.get('msg', '')}".strip()
        except ValueError:
            pass
    return " ".join(text.split())[:300]
