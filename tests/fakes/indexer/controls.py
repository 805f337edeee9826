"""The test-facing knobs of the fake indexer.

* ``MarketControls``: move the market and the accounts (order book levels, a crossed
  book, trades, oracle price / next funding rate and other market fields, candles,
  block height, subaccount updates), updating the REST state and streaming the matching
  WebSocket messages.
* ``ConnectionControls``: watch and disturb the connections (subscriptions, waits, raw
  or malformed frames, drops, closes with a code) and inject REST / handshake faults
  (delays, error statuses), plus request counters.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any, Callable, Iterable, Optional

from .book import Book
from .protocol import (MAX_PARENT_SUBACCOUNTS, V4_BLOCK_HEIGHT, V4_CANDLES, V4_MARKETS,
                       V4_ORDERBOOK, V4_PARENT_SUBACCOUNTS, V4_SUBACCOUNTS, V4_TRADES, D,
                       _dumps, fmt, iso_now)
from .rest import _Fault


class MarketControls:
    """Market and account moves for tests, mixed into ``FakeIndexer``.

    ``push_*`` are coroutines (reachable through ``ix.threadsafe``); ``apply_*`` are their
    synchronous cores for code already on the fake's loop.  Each updates the REST state
    and publishes the WebSocket message a real indexer would send.
    """

    def market_by_clob_pair(self, clob_pair_id: int | str) -> dict:
        for m in self.markets.values():
            if str(m.get("clobPairId")) == str(clob_pair_id):
                return m
        raise KeyError(f"no market with clobPairId {clob_pair_id}")

    def set_height(self, height: int) -> None:
        self._height = int(height)

    def book(self, ticker: str) -> Book:
        return self.books.setdefault(ticker, Book())

    async def push_orderbook(self, ticker: str, bids: Iterable = (), asks: Iterable = (),
                             *, separate: bool = False) -> dict:
        """Apply absolute level sizes (``"0"`` deletes) and stream them.  Levels are
        ``(price, size)`` pairs.  One message with both sides unless ``separate``."""
        return self.apply_orderbook(ticker, bids, asks, separate=separate)

    def apply_orderbook(self, ticker: str, bids: Iterable = (), asks: Iterable = (),
                        *, separate: bool = False) -> dict:
        """Synchronous core of ``push_orderbook`` (loop thread only)."""
        book = self.book(ticker)
        out: dict[str, list] = {}
        for side, levels in (("bids", bids), ("asks", asks)):
            for price, size in levels or ():
                out.setdefault(side, []).append(list(book.set_level(side, price, size)))
        if separate:
            for side, rows in out.items():
                self.publish(V4_ORDERBOOK, ticker, {side: rows})
        elif out:
            self.publish(V4_ORDERBOOK, ticker, out)
        return out

    async def push_crossed_book(self, ticker: str, size: Any = None, ticks: int = 1) -> dict:
        """Stream a bid ``ticks`` ticks ABOVE the best ask (a crossed book, as the real
        stream can produce).  The REST snapshot stays uncrossed (newer level wins)."""
        book = self.book(ticker)
        tick = D(self.markets[ticker]["tickSize"])
        ba = book.best_ask()
        if ba is None:
            raise ValueError("no asks to cross")
        sz = D(size) if size is not None else D(self.markets[ticker]["stepSize"]) * 10
        price = ba + tick * max(int(ticks), 1)
        return self.apply_orderbook(ticker, bids=[(price, sz)])

    async def push_trades(self, ticker: str, trades: Iterable[dict]) -> list[dict]:
        """Stream trades (dicts with at least side/size/price) and prepend them to the
        REST history.  Missing fields are filled in."""
        return self.apply_trades(ticker, trades)

    def apply_trades(self, ticker: str, trades: Iterable[dict]) -> list[dict]:
        rows = []
        h = self.height
        for i, t in enumerate(trades):
            row = {
                "id": t.get("id") or f"{h & 0xffffffff:08x}00000002{i:08x}",
                "side": t.get("side", "BUY"), "size": fmt(t["size"]), "price": fmt(t["price"]),
                "type": t.get("type", "LIMIT"), "createdAt": t.get("createdAt") or iso_now(),
                "createdAtHeight": str(t.get("createdAtHeight", h)),
            }
            rows.append(row)
        if rows:
            self.trades[ticker] = list(reversed(rows)) + self.trades.get(ticker, [])
            self.publish(V4_TRADES, ticker, {"trades": rows})
        return rows

    async def push_market(self, ticker: str, *, oracle_price: Any = None,
                          next_funding_rate: Any = None, **trading: Any) -> list[dict]:
        """Oracle price -> ``{oraclePrices:{T:{...}}}``; nextFundingRate and any other
        market fields -> ``{trading:{T:{...}}}``.  Updates REST state too."""
        return self.apply_market(ticker, oracle_price=oracle_price,
                                 next_funding_rate=next_funding_rate, **trading)

    def apply_market(self, ticker: str, *, oracle_price: Any = None,
                     next_funding_rate: Any = None, **trading: Any) -> list[dict]:
        m = self.markets[ticker]
        sent = []
        if oracle_price is not None:
            m["oraclePrice"] = fmt(oracle_price)
            c = {"oraclePrices": {ticker: {
                "oraclePrice": m["oraclePrice"], "effectiveAt": iso_now(),
                "effectiveAtHeight": str(self.height),
                "marketId": int(m.get("marketId", m.get("clobPairId", 0)))}}}
            self.publish(V4_MARKETS, None, c)
            sent.append(c)
        fields = dict(trading)
        if next_funding_rate is not None:
            fields["nextFundingRate"] = fmt(next_funding_rate)
        if fields:
            fields = {k: (fmt(v) if isinstance(v, (Decimal, float)) else v)
                      for k, v in fields.items()}
            m.update(fields)
            c = {"trading": {ticker: {"id": str(m.get("clobPairId")), **fields}}}
            self.publish(V4_MARKETS, None, c)
            sent.append(c)
        for key in list(self.subaccounts):
            if ticker in self.positions.get(key, {}):
                self._recompute(key)
        return sent

    async def push_candle(self, ticker: str, resolution: str, candle: dict) -> dict:
        row = {"startedAt": iso_now(), "ticker": ticker, "resolution": resolution, **candle}
        rows = self.candles.setdefault(ticker, [])
        if rows and rows[0].get("startedAt") == row["startedAt"] \
                and rows[0].get("resolution") == resolution:
            rows[0] = row
        else:
            rows.insert(0, row)
        self.publish(V4_CANDLES, f"{ticker}/{resolution}", row)
        return row

    async def push_block_height(self, height: Optional[int] = None) -> dict:
        if height is not None:
            self._height = int(height)
        c = {"blockHeight": str(self.height), "time": iso_now()}
        self.publish(V4_BLOCK_HEIGHT, None, c)
        return c

    async def push_subaccount(self, address: str, subaccount_number: int = 0, *,
                              orders: Optional[list] = None, fills: Optional[list] = None,
                              perpetual_positions: Optional[list] = None,
                              asset_positions: Optional[list] = None,
                              transfers: Optional[Any] = None,
                              trading_reward: Optional[Any] = None,
                              block_height: Optional[int] = None) -> dict:
        """Stream a ``v4_subaccounts`` update (WS shapes, see
        nautilus_py/websocket/v4_accounts_*.json) and fold it into the REST state."""
        return self.apply_subaccount(address, subaccount_number, orders=orders, fills=fills,
                                     perpetual_positions=perpetual_positions,
                                     asset_positions=asset_positions, transfers=transfers,
                                     trading_reward=trading_reward, block_height=block_height)

    def apply_subaccount(self, address: str, subaccount_number: int = 0, *,
                         orders=None, fills=None, perpetual_positions=None,
                         asset_positions=None, transfers=None, trading_reward=None,
                         block_height=None) -> dict:
        num = int(subaccount_number)
        key = (address, num)
        sub = self.ensure_subaccount(address, num)
        contents: dict[str, Any] = {}
        if perpetual_positions:
            contents["perpetualPositions"] = perpetual_positions
            for p in perpetual_positions:
                rest = {k: v for k, v in p.items() if k not in ("address", "positionId")}
                rest["subaccountNumber"] = num
                prev = self.positions.setdefault(key, {}).get(p["market"], {})
                self.positions[key][p["market"]] = {**prev, **rest}
        if asset_positions:
            contents["assetPositions"] = asset_positions
            for a in asset_positions:
                sub["assetPositions"][a.get("symbol", "USDC")] = {
                    "size": a["size"], "symbol": a.get("symbol", "USDC"), "side": a["side"],
                    "assetId": a.get("assetId", "0"), "subaccountNumber": num}
        if orders:
            contents["orders"] = orders
            for o in orders:
                prev = self.orders.get(o["id"], {})
                self.orders[o["id"]] = {**prev, **o, "subaccountNumber": num}
        if fills:
            contents["fills"] = fills
            for f in reversed(fills):
                rest = {
                    "id": f["id"], "side": f["side"], "liquidity": f["liquidity"],
                    "type": f.get("type", "LIMIT"), "market": f.get("ticker") or f.get("market"),
                    "marketType": "PERPETUAL", "price": f["price"], "size": f["size"],
                    "fee": f.get("fee", "0"), "affiliateRevShare": f.get("affiliateRevShare", "0"),
                    "createdAt": f.get("createdAt"), "createdAtHeight": f.get("createdAtHeight"),
                    "orderId": f.get("orderId"), "clientMetadata": f.get("clientMetadata", "0"),
                    "subaccountNumber": num, "address": address,
                }
                self.fills.insert(0, rest)
        if transfers is not None:
            contents["transfers"] = transfers
            items = transfers if isinstance(transfers, list) else [transfers]
            for t in items:
                self.transfers.insert(0, {**t, "address": address, "subaccountNumber": num})
        if trading_reward is not None:
            contents["tradingReward"] = trading_reward
        contents["blockHeight"] = str(block_height if block_height is not None else self.height)
        self._recompute(key)
        self.publish(V4_SUBACCOUNTS, f"{address}/{num}", contents)
        self.publish(V4_PARENT_SUBACCOUNTS, f"{address}/{num % MAX_PARENT_SUBACCOUNTS}",
                     contents, extra={"subaccountNumber": num})
        return contents


class ConnectionControls:
    """Connection watching, disturbances and fault injection for tests, mixed into
    ``FakeIndexer``.  The ``a_*`` coroutines alias the synchronous controls so that every
    control is reachable through ``ix.threadsafe``."""

    def subscriptions(self) -> dict[str, list[tuple[str, str, bool]]]:
        """{connection_id: [(channel, id, batched), ...]} for every open connection."""
        return {cid: [(s.channel, s.id, s.batched) for s in c.subs.values()]
                for cid, c in self._conns.items()}

    @property
    def connection_ids(self) -> list[str]:
        return list(self._conns)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true (checked on connection/subscription changes
        and every 50 ms); TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("FakeIndexer.wait_for timed out")
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), min(left, 0.05))
                except asyncio.TimeoutError:
                    pass

    async def wait_for_subscription(self, channel: str, id_: Optional[str] = None,
                                    timeout: float = 5.0) -> None:
        sid = self._normalize_id(channel, id_)
        await self.wait_for(lambda: any((channel, sid) in c.subs for c in self._conns.values()),
                            timeout)

    async def wait_for_connections(self, n: int = 1, timeout: float = 5.0) -> None:
        await self.wait_for(lambda: len(self._conns) >= n, timeout)
    async def push_raw(self, channel: str, id_: Optional[str], contents: Any,
                       version: Optional[str] = None) -> int:
        """Publish arbitrary contents on a channel (no state change)."""
        return self.publish(channel, id_, contents, version=version)

    async def send_text(self, text: str, connection_id: Optional[str] = None) -> int:
        """Send a raw text frame (e.g. malformed JSON) to one or all connections."""
        n = 0
        for conn in list(self._conns.values()):
            if connection_id is None or conn.id == connection_id:
                self._enqueue(conn, text)
                n += 1
        await self.drain()
        return n

    async def send_malformed(self, connection_id: Optional[str] = None) -> int:
        return await self.send_text('{"type":"channel_data","connection_id":', connection_id)

    async def send_unknown_channel(self, connection_id: Optional[str] = None) -> int:
        n = 0
        for conn in list(self._conns.values()):
            if connection_id is None or conn.id == connection_id:
                self._enqueue(conn, {"type": "channel_data", "connection_id": conn.id,
                                     "message_id": conn.next_id(), "id": "X",
                                     "channel": "v4_unknown", "version": "9.9.9",
                                     "contents": {}})
                n += 1
        await self.drain()
        return n

    async def drop_all_connections(self) -> int:
        """Abort every TCP connection without a close frame (network drop)."""
        conns = list(self._conns.values())
        for c in conns:
            self._abort(c)
        return len(conns)

    async def close_all(self, code: int = 1012, reason: str = "") -> int:
        """Close every connection with ``code`` (1011 heartbeat, 1012 restart, 1008
        policy/rate limit).  Queued messages are flushed first."""
        if not reason and code == 1012:
            reason = _dumps({"message": "Service restarting"})
        conns = list(self._conns.values())
        await asyncio.gather(*(self._close_conn(c, code, reason) for c in conns),
                             return_exceptions=True)
        return len(conns)

    def set_rest_delay(self, seconds: float, path_prefix: Optional[str] = None,
                       count: Optional[int] = None) -> None:
        """Delay REST responses (optionally only paths starting with ``path_prefix``,
        optionally for the next ``count`` requests only)."""
        self._faults.append(_Fault(path_prefix, delay=float(seconds), remaining=count))

    def fail_rest(self, status: int = 429, count: Optional[int] = 1,
                  path_prefix: Optional[str] = None, body: Optional[dict] = None) -> None:
        """Answer the next ``count`` (None = all) REST requests with ``status``."""
        self._faults.append(_Fault(path_prefix, status=int(status), remaining=count, body=body))

    def fail_ws_connect(self, status: int = 503, count: Optional[int] = 1) -> None:
        """Reject the next ``count`` WebSocket handshakes with HTTP ``status``."""
        self._ws_connect_faults.append(_Fault(None, status=int(status), remaining=count))

    def clear_faults(self) -> None:
        self._faults.clear()
        self._ws_connect_faults.clear()

    def reset_counts(self) -> None:
        self.request_counts.clear()
        self.requests.clear()

    # async aliases so that every control is reachable through ``threadsafe``
    async def a_set_rest_delay(self, *a, **k) -> None:
        self.set_rest_delay(*a, **k)

    async def a_fail_rest(self, *a, **k) -> None:
        self.fail_rest(*a, **k)

    async def a_clear_faults(self) -> None:
        self.clear_faults()

    async def a_subscriptions(self) -> dict:
        return self.subscriptions()
