"""Funding settlement on the fake indexer: what the indexer shows after a funding tick.

``settle_funding(ix, ticker, rate_1h)`` pays every open position of ``ticker``
``payment = -size * oracle * rate_1h`` USD (longs pay when the rate is positive; chain
``protocol/x/perpetuals``, see shared/docs/dydx-v4.md section 2), truncated to 1e-6, and:

* adds a ``GET /v4/fundingPayments`` row per position (comlink ``FundingPaymentResponseObject``:
  ``createdAt``, ``createdAtHeight``, ``perpetualId``, ``ticker``, ``oraclePrice``, ``size``,
  ``side``, ``rate``, ``payment``, ``subaccountNumber``, ``fundingIndex``; plus ``address``,
  which the fake's filters use);
* moves the subaccount's USDC and the position's ``netFunding`` by the payment and streams
  them on ``v4_subaccounts`` as ``perpetualPositions`` / ``assetPositions`` rows -- the
  indexer streams no funding payment rows (``SubaccountMessageContents`` in v4-chain
  ``indexer/packages/postgres/src/types/websocket-message-types.ts`` has none);
* ``stream=False`` leaves the stream out (the REST tables change only): a missed update.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Any

from .protocol import D, fmt, iso_now


def settle_funding(ix: Any, ticker: str, rate_1h: Any, *, stream: bool = True) -> list[dict]:
    """Settle one funding tick of ``ticker`` on ``ix`` (a FakeIndexer; its loop thread).

    :returns: the funding payment rows written.
    """
    m = ix.markets[ticker]
    oracle = D(m["oraclePrice"])
    rate = D(rate_1h)
    rows = []
    for key, positions in list(ix.positions.items()):
        p = positions.get(ticker)
        if not p or p.get("status") != "OPEN" or D(p.get("size") or 0) == 0:
            continue
        addr, num = key
        size = abs(D(p["size"]))
        signed = size if p.get("side") == "LONG" else -size
        payment = (-signed * oracle * rate).quantize(Decimal("0.000001"), rounding=ROUND_DOWN)
        row = {"createdAt": iso_now(), "createdAtHeight": str(ix.height), "perpetualId": str(m.get("clobPairId")),
               "ticker": ticker, "oraclePrice": fmt(oracle), "size": fmt(size), "side": p.get("side", "LONG"),
               "rate": fmt(rate), "payment": fmt(payment), "subaccountNumber": str(num), "fundingIndex": "0",
               "address": addr}
        ix.funding_payments.insert(0, row)
        rows.append(row)
        net = D(p.get("netFunding") or 0) + payment
        usdc = ix.usdc_balance(addr, num) + payment
        pos_row = {**p, "address": addr, "subaccountNumber": num, "market": ticker, "netFunding": fmt(net)}
        asset_row = {"address": addr, "subaccountNumber": num, "positionId": "", "assetId": "0", "symbol": "USDC",
                     "side": "LONG" if usdc >= 0 else "SHORT", "size": fmt(abs(usdc))}
        if stream:
            ix.apply_subaccount(addr, num, perpetual_positions=[pos_row], asset_positions=[asset_row])
        else:
            p["netFunding"] = fmt(net)
            sub = ix.subaccounts[key]
            sub["assetPositions"]["USDC"] = {k: v for k, v in asset_row.items() if k not in ("address", "positionId")}
            ix._recompute(key)
    return rows
