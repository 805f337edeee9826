"""Self-tests of tests.fakes: drive the UNMODIFIED dydx-v4-client 1.1.5 code paths (REST
client, thread-based IndexerSocket, gRPC NodeClient + Wallet + Market) against the
loopback fakes.  Offline, 127.0.0.1 only, every wait bounded."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # `tests` may not be a package yet
    sys.path.insert(0, str(_ROOT))

from dydx_v4_client import MAX_CLIENT_ID, OrderFlags  # noqa: E402
from dydx_v4_client.indexer.rest.constants import OrderType  # noqa: E402
from dydx_v4_client.indexer.rest.indexer_client import IndexerClient  # noqa: E402
from dydx_v4_client.indexer.socket.websocket import IndexerSocket  # noqa: E402
from dydx_v4_client.key_pair import KeyPair  # noqa: E402
from dydx_v4_client.network import make_insecure  # noqa: E402
from dydx_v4_client.network import testnet_node as _testnet_node  # noqa: E402
from dydx_v4_client.node.client import NodeClient  # noqa: E402
from dydx_v4_client.node.market import Market  # noqa: E402
from dydx_v4_client.wallet import Wallet  # noqa: E402
from v4_proto.dydxprotocol.clob.order_pb2 import Order  # noqa: E402
from v4_proto.dydxprotocol.clob.tx_pb2 import MsgCancelOrder, MsgPlaceOrder  # noqa: E402
from websockets.asyncio.client import connect as ws_connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from tests.fakes import (TEST_MNEMONIC, FakeDydx, FakeIndexer, FakeNode,  # noqa: E402
                         default_data_dir, fill_quote_quantums, order_uuid,
                         price_to_subticks, size_to_quantums, subaccount_uuid)
from tests.fakes.indexer import load_dataset  # noqa: E402

WAIT = 5.0
RUN_KW = {"ping_interval": 20, "ping_timeout": 10}
TEST_ADDRESS = Wallet(KeyPair.from_mnemonic(TEST_MNEMONIC), 0, 0).address


# ----------------------------------------------------------------------------- helpers

class SocketRunner:
    """The client's thread-based IndexerSocket, bridged into asyncio (docs section 5)."""

    def __init__(self, url: str, on_connected=None):
        self.loop = asyncio.get_running_loop()
        self.q: asyncio.Queue = asyncio.Queue()
        self.all: list[dict] = []

        def on_message(ws, msg):
            if msg.get("type") == "connected" and on_connected is not None:
                on_connected(ws)
            self.loop.call_soon_threadsafe(self.q.put_nowait, msg)

        self.sock = IndexerSocket(url, on_message=on_message)
        self.thread = threading.Thread(target=self.sock.run_forever,
                                       kwargs=RUN_KW,
                                       daemon=True)
        self.thread.start()

    async def next(self, pred=lambda m: True, timeout: float = WAIT) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching message; got {self.all[-5:]}")
            m = await asyncio.wait_for(self.q.get(), left)
            self.all.append(m)
            if pred(m):
                return m

    async def close(self, ix: FakeIndexer) -> None:
        """Server-initiated close, then join.  (websocket-client's ``close()`` from another
        thread can leave ``run_forever`` blocked in select() until ``ping_timeout``, or
        forever without one, when the close reply is consumed by ``close()`` itself.)"""
        await ix.close_all(1000)
        await asyncio.wait_for(asyncio.to_thread(self.thread.join, WAIT), WAIT + 2)
        assert not self.thread.is_alive()


async def aget(url: str, timeout: float = WAIT) -> httpx.Response:
    """GET without blocking the event loop the fake runs on."""
    async with httpx.AsyncClient() as c:
        return await c.get(url, timeout=timeout)


async def recv_json(ws, timeout: float = WAIT) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws, pred, timeout: float = WAIT) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no matching message")
        m = await recv_json(ws, left)
        if pred(m):
            return m


async def node_client(dx: FakeDydx) -> NodeClient:
    network = make_insecure(_testnet_node, rest_indexer=dx.rest_url,
                            websocket_indexer=dx.ws_url, node_url=dx.node_url)
    return await NodeClient.connect(network.node)


# ----------------------------------------------------------------------------- REST

@pytest.mark.asyncio
async def test_rest_markets_and_more_via_indexer_client():
    async with FakeIndexer() as ix:
        client = IndexerClient(ix.rest_url, api_timeout=5)
        markets = (await client.markets.get_perpetual_markets())["markets"]
        btc = markets["BTC-USD"]
        assert btc["clobPairId"] == "0" and btc["atomicResolution"] == -10
        assert btc["quantumConversionExponent"] == -9
        assert btc["stepBaseQuantums"] == 1_000_000 and btc["subticksPerTick"] == 100_000
        one = await client.markets.get_perpetual_markets("ETH-USD")
        assert list(one["markets"]) == ["ETH-USD"]
        Market(markets["ETH-USD"])  # the client's Market accepts the payload

        book = await client.markets.get_perpetual_market_orderbook("BTC-USD")
        assert book["bids"] and book["asks"]
        assert Decimal(book["bids"][0]["price"]) < Decimal(book["asks"][0]["price"])
        assert [Decimal(b["price"]) for b in book["bids"]] == sorted(
            (Decimal(b["price"]) for b in book["bids"]), reverse=True)
        assert "trades" in await client.markets.get_perpetual_market_trades("BTC-USD")
        candles = await client.markets.get_perpetual_market_candles("ETH-USD", "1MIN")
        assert candles["candles"] and all(c["resolution"] == "1MIN" for c in candles["candles"])
        funding = await client.markets.get_perpetual_market_historical_funding("BTC-USD")
        assert "historicalFunding" in funding
        height = await client.utility.get_height()
        assert int(height["height"]) == ix.height
        t = await client.utility.get_time()
        assert abs(t["epoch"] - time.time()) < 60

        # account endpoints: unknown -> 404 JSON, known -> shapes; /orders is a bare list
        with pytest.raises(httpx.HTTPStatusError) as ei:
            await client.account.get_subaccount(TEST_ADDRESS, 0)
        assert ei.value.response.status_code == 404
        assert "errors" in ei.value.response.json()
        ix.ensure_subaccount(TEST_ADDRESS, 0, usdc="1000")
        sub = (await client.account.get_subaccount(TEST_ADDRESS, 0))["subaccount"]
        assert sub["equity"] == "1000" and sub["assetPositions"]["USDC"]["size"] == "1000"
        orders = await client.account.get_subaccount_orders(TEST_ADDRESS, 0)
        assert orders == []
        assert (await client.account.get_subaccount_fills(TEST_ADDRESS, 0)) == {"fills": []}
        assert "positions" in await client.account.get_subaccount_perpetual_positions(
            TEST_ADDRESS, 0)
        assert "positions" in await client.account.get_subaccount_asset_positions(
            TEST_ADDRESS, 0)
        r = await aget(f"{ix.rest_url}/v4/fundingPayments?address={TEST_ADDRESS}"
                      "&subaccountNumber=0")
        assert r.json() == {"fundingPayments": []}
        assert ix.request_counts["/v4/perpetualMarkets"] == 2
        assert ix.request_counts["/v4/orderbooks/perpetualMarket/BTC-USD"] == 1


@pytest.mark.asyncio
async def test_rest_faults_429_and_slow():
    async with FakeIndexer(use_shared_data=False) as ix:
        client = IndexerClient(ix.rest_url, api_timeout=5)
        ix.fail_rest(429, count=2, path_prefix="/v4/perpetualMarkets")
        for _ in range(2):
            with pytest.raises(httpx.HTTPStatusError) as ei:
                await client.markets.get_perpetual_markets()
            assert ei.value.response.status_code == 429
            assert ei.value.response.json()["errors"]
        assert "BTC-USD" in (await client.markets.get_perpetual_markets())["markets"]
        # unknown ticker -> 404 with a JSON body
        with pytest.raises(httpx.HTTPStatusError) as ei:
            await client.markets.get_perpetual_market_orderbook("NOPE-USD")
        assert ei.value.response.status_code == 404
        # slow REST: the client's own timeout fires
        ix.set_rest_delay(0.6, path_prefix="/v4/height", count=1)
        slow = IndexerClient(ix.rest_url, api_timeout=0.2)
        with pytest.raises(httpx.TimeoutException):
            await slow.utility.get_height()
        ix.clear_faults()
        t0 = time.monotonic()
        await client.utility.get_height()
        assert time.monotonic() - t0 < 1.0
        assert ix.request_counts["/v4/perpetualMarkets"] == 3


def test_builtin_dataset_parameters():
    ds = load_dataset(use_shared=False)
    assert ds.source == "builtin"
    btc, eth = ds.markets["BTC-USD"], ds.markets["ETH-USD"]
    assert (btc["clobPairId"], btc["atomicResolution"], btc["tickSize"], btc["stepSize"]) == \
        ("0", -10, "1", "0.0001")
    assert (eth["clobPairId"], eth["atomicResolution"], eth["tickSize"], eth["stepSize"]) == \
        ("1", -9, "0.1", "0.001")
    for m in (btc, eth):
        assert m["quantumConversionExponent"] == -9
        assert m["stepBaseQuantums"] == 1_000_000 and m["subticksPerTick"] == 100_000
        assert (m["initialMarginFraction"], m["maintenanceMarginFraction"]) == ("0.02", "0.012")
        # tickSize = subticksPerTick * 10^(QCE - AR - 6); stepSize = stepBaseQuantums * 10^AR
        ar, qce = m["atomicResolution"], m["quantumConversionExponent"]
        assert Decimal(m["subticksPerTick"]).scaleb(qce - ar - 6) == Decimal(m["tickSize"])
        assert Decimal(m["stepBaseQuantums"]).scaleb(ar) == Decimal(m["stepSize"])


def test_shared_dataset_is_read_not_copied():
    if default_data_dir() is None:
        pytest.skip("shared data folder absent (user clone): built-in dataset only")
    ds = load_dataset()
    assert ds.source != "builtin" and len(ds.markets) >= 100
    assert len(ds.books["ETH-USD"]["bids"]) == 100  # the recorded 100x100 snapshot
    assert all(str(default_data_dir()) in f for f in ds.files)
    # no recorded payload lives in the repo
    here = Path(__file__).resolve().parents[1] / "fakes"
    assert not list(here.rglob("*.json"))


# ----------------------------------------------------------------------------- WebSocket

@pytest.mark.asyncio
async def test_indexer_socket_orderbook_subscribe_and_updates():
    async with FakeIndexer() as ix:
        snapshot = ix.snapshot("v4_orderbook", "BTC-USD")[1]

        def on_connected(ws):
            ws.order_book.subscribe("BTC-USD", batched=False)
            ws.trades.subscribe("BTC-USD", batched=True)   # client default: batched

        runner = SocketRunner(ix.ws_url, on_connected)
        try:
            first = await runner.next()
            assert first["type"] == "connected" and first["message_id"] == 0
            sub = await runner.next(lambda m: m["type"] == "subscribed"
                                    and m["channel"] == "v4_orderbook")
            assert sub["id"] == "BTC-USD" and sub["contents"] == snapshot
            assert "version" not in sub
            await runner.next(lambda m: m["type"] == "subscribed" and m["channel"] == "v4_trades")
            await ix.wait_for_subscription("v4_trades", "BTC-USD")

            top_bid = Decimal(snapshot["bids"][0]["price"])
            await ix.push_orderbook("BTC-USD", bids=[(top_bid, "0"), (top_bid - 1, "2.5")])
            upd = await runner.next(lambda m: m["type"] == "channel_data")
            assert upd["channel"] == "v4_orderbook" and upd["version"] == "1.0.0"
            assert upd["contents"] == {"bids": [[str(top_bid), "0"], [str(top_bid - 1), "2.5"]]}
            rest = (await aget(f"{ix.rest_url}/v4/orderbooks/perpetualMarket/BTC-USD")).json()
            assert rest["bids"][0] == {"price": str(top_bid - 1), "size": "2.5"}

            await ix.push_trades("BTC-USD", [{"side": "SELL", "size": "0.01",
                                              "price": str(top_bid - 1)}])
            batch = await runner.next(lambda m: m["type"] == "channel_batch_data")
            assert batch["channel"] == "v4_trades" and batch["version"] == "2.1.0"
            assert isinstance(batch["contents"], list)
            assert batch["contents"][0]["trades"][0]["size"] == "0.01"

            ids = [m["message_id"] for m in runner.all]
            assert ids == sorted(ids) and len(set(ids)) == len(ids)  # one counter/connection
            subs = ix.subscriptions()
            assert list(subs.values()) == [[("v4_orderbook", "BTC-USD", False),
                                            ("v4_trades", "BTC-USD", True)]]
            runner.sock.order_book.unsubscribe("BTC-USD")
            un = await runner.next(lambda m: m["type"] == "unsubscribed")
            assert un == {"type": "unsubscribed", "connection_id": first["connection_id"],
                          "message_id": un["message_id"], "channel": "v4_orderbook",
                          "id": "BTC-USD"}
        finally:
            await runner.close(ix)


@pytest.mark.asyncio
async def test_ws_protocol_details():
    async with FakeIndexer(use_shared_data=False, batch_interval=0.05) as ix:
        async with ws_connect(ix.ws_url, open_timeout=WAIT, close_timeout=2) as ws:
            conn = await recv_json(ws)
            assert conn["type"] == "connected"
            # markets: subscribed and channel_data carry no "id"
            await ws.send(json.dumps({"type": "subscribe", "channel": "v4_markets"}))
            m = await recv_json(ws)
            assert m["type"] == "subscribed" and "id" not in m and "BTC-USD" in m["contents"][
                "markets"]
            await ix.push_market("BTC-USD", oracle_price="66000", next_funding_rate="0.00001")
            oracle = await recv_json(ws)
            trading = await recv_json(ws)
            assert "id" not in oracle and oracle["version"] == "1.0.0"
            assert oracle["contents"]["oraclePrices"]["BTC-USD"]["oraclePrice"] == "66000"
            assert trading["contents"]["trading"]["BTC-USD"]["nextFundingRate"] == "0.00001"
            # duplicate subscription -> error
            await ws.send(json.dumps({"type": "subscribe", "channel": "v4_markets"}))
            err = await recv_json(ws)
            assert err["type"] == "error" and "already subscribed" in err["message"]
            # bad id / unknown channel / missing id
            await ws.send(json.dumps({"type": "subscribe", "channel": "v4_orderbook",
                                      "id": "NOPE-USD"}))
            assert "Invalid subscription id" in (await recv_json(ws))["message"]
            await ws.send(json.dumps({"type": "subscribe", "channel": "v4_nope", "id": "x"}))
            assert (await recv_json(ws))["message"] == "Invalid channel: v4_nope"
            await ws.send("not json")
            assert "could not parse" in (await recv_json(ws))["message"]
            # app-level ping is ignored: nothing comes back
            await ws.send(json.dumps({"type": "ping"}))
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.3)
            # candles + block height + subaccounts (unknown subaccount -> {} contents)
            await ws.send(json.dumps({"type": "subscribe", "channel": "v4_candles",
                                      "id": "BTC-USD/1MIN", "batched": True}))
            c = await recv_json(ws)
            assert c["type"] == "subscribed" and c["contents"]["candles"]
            await ws.send(json.dumps({"type": "subscribe", "channel": "v4_subaccounts",
                                      "id": f"{TEST_ADDRESS}/0"}))
            s = await recv_json(ws)
            assert s["type"] == "subscribed" and s["contents"] == {}
            await ix.push_candle("BTC-USD", "1MIN", {"open": "1", "close": "2"})
            cb = await recv_until(ws, lambda x: x["type"] == "channel_batch_data")
            assert cb["id"] == "BTC-USD/1MIN" and cb["contents"][0]["close"] == "2"
            # subaccount updates, exact shapes through
            order = {"id": "o1", "status": "OPEN", "ticker": "BTC-USD", "side": "BUY",
                     "size": "0.001", "price": "65000", "clientId": "1", "clobPairId": "0",
                     "orderFlags": "0", "subaccountId": subaccount_uuid(TEST_ADDRESS, 0)}
            await ix.push_subaccount(TEST_ADDRESS, 0, orders=[order])
            su = await recv_json(ws)
            assert su["channel"] == "v4_subaccounts" and su["version"] == "3.0.0"
            assert su["contents"]["orders"] == [order] and "blockHeight" in su["contents"]
            rest_orders = (await aget(f"{ix.rest_url}/v4/orders?address={TEST_ADDRESS}"
                                    "&subaccountNumber=0")).json()
            assert isinstance(rest_orders, list) and rest_orders[0]["id"] == "o1"
            # injected garbage reaches the client verbatim
            await ix.send_malformed()
            raw = await asyncio.wait_for(ws.recv(), WAIT)
            with pytest.raises(ValueError):
                json.loads(raw)
            await ix.send_unknown_channel()
            assert (await recv_json(ws))["channel"] == "v4_unknown"
            # unsubscribe markets: no id key
            await ws.send(json.dumps({"type": "unsubscribe", "channel": "v4_markets"}))
            u = await recv_json(ws)
            assert u["type"] == "unsubscribed" and "id" not in u

        # rate limit: 3 subscribes on one channel+id within 1 s -> error, close 1008
        async with ws_connect(ix.ws_url, open_timeout=WAIT, close_timeout=2) as ws:
            await recv_json(ws)
            for _ in range(3):
                await ws.send(json.dumps({"type": "subscribe", "channel": "v4_trades",
                                          "id": "ETH-USD"}))
            msgs = []
            with pytest.raises(ConnectionClosed) as ei:
                for _ in range(10):
                    msgs.append(await recv_json(ws))
            assert ei.value.rcvd.code == 1008
            assert any("Too many subscribe attempts" in m.get("message", "") for m in msgs)


@pytest.mark.asyncio
@pytest.mark.parametrize("code", [1011, 1012, 1008])
async def test_ws_close_codes_and_drop(code):
    async with FakeIndexer(use_shared_data=False) as ix:
        async with ws_connect(ix.ws_url, open_timeout=WAIT, close_timeout=2) as ws:
            await recv_json(ws)
            await ix.wait_for_connections(1)
            assert await ix.close_all(code) == 1
            with pytest.raises(ConnectionClosed) as ei:
                await asyncio.wait_for(ws.recv(), WAIT)
            assert ei.value.rcvd.code == code
        async with ws_connect(ix.ws_url, open_timeout=WAIT, close_timeout=2) as ws:
            await recv_json(ws)
            await ix.wait_for_connections(1)
            await ix.drop_all_connections()
            with pytest.raises(ConnectionClosed) as ei:
                await asyncio.wait_for(ws.recv(), WAIT)
            assert ei.value.rcvd is None  # no close frame: abnormal closure (1006)
        await ix.wait_for(lambda: not ix.connection_ids, WAIT)
        ix.fail_ws_connect(503, count=1)
        with pytest.raises(Exception):
            async with ws_connect(ix.ws_url, open_timeout=WAIT):
                pass
        async with ws_connect(ix.ws_url, open_timeout=WAIT) as ws:
            assert (await recv_json(ws))["type"] == "connected"


@pytest.mark.asyncio
async def test_crossed_stream_uncrossed_snapshot_and_slow_subscribe():
    async with FakeIndexer(use_shared_data=False, ws_snapshot_delay=0.2) as ix:
        async with ws_connect(ix.ws_url, open_timeout=WAIT) as ws:
            await recv_json(ws)
            await ws.send(json.dumps({"type": "subscribe", "channel": "v4_orderbook",
                                      "id": "ETH-USD", "batched": False}))
            await ws.send(json.dumps({"type": "subscribe", "channel": "v4_markets"}))
            a = await recv_json(ws)
            b = await recv_json(ws)
            assert {a["message_id"], b["message_id"]} == {1, 2}  # reserved on arrival
            best_ask = ix.book("ETH-USD").best_ask()
            await ix.push_crossed_book("ETH-USD", size="1")
            upd = await recv_json(ws)
            crossed_bid = Decimal(upd["contents"]["bids"][0][0])
            assert crossed_bid > best_ask  # the stream may cross
            assert ix.book("ETH-USD").is_crossed()
            snap = ix.snapshot("v4_orderbook", "ETH-USD")[1]
            assert Decimal(snap["bids"][0]["price"]) < Decimal(snap["asks"][0]["price"])
            assert Decimal(snap["bids"][0]["price"]) == crossed_bid  # newer level wins


def test_indexer_in_background_thread_with_threadsafe_controls():
    with FakeIndexer(use_shared_data=False) as ix:
        got: list[dict] = []
        done = threading.Event()

        def on_message(ws, msg):
            got.append(msg)
            if msg["type"] == "connected":
                ws.order_book.subscribe("ETH-USD", batched=False)
            if msg["type"] == "channel_data":
                done.set()

        sock = IndexerSocket(ix.ws_url, on_message=on_message)
        th = threading.Thread(target=sock.run_forever, daemon=True)
        th.start()
        try:
            deadline = time.monotonic() + WAIT
            while ("v4_orderbook", "ETH-USD", False) not in [
                    s for subs in ix.threadsafe.a_subscriptions().values() for s in subs]:
                assert time.monotonic() < deadline, "no subscription"
                time.sleep(0.02)
            ix.threadsafe.push_orderbook("ETH-USD", asks=[("3000.5", "1")])
            assert done.wait(WAIT)
            assert got[-1]["contents"] == {"asks": [["3000.5", "1"]]}
            ix.threadsafe.a_fail_rest(429, count=1)
            assert httpx.get(f"{ix.rest_url}/v4/height", timeout=5).status_code == 429
            assert httpx.get(f"{ix.rest_url}/v4/height", timeout=5).status_code == 200
        finally:
            ix.threadsafe.close_all(1000)  # server-initiated: see SocketRunner.close
            sock.close()
            th.join(WAIT)
            assert not th.is_alive()


# ----------------------------------------------------------------------------- node

@pytest.mark.asyncio
async def test_node_place_and_cancel_short_term_order():
    async with FakeDydx(matching=False) as dx:
        client = await node_client(dx)
        wallet = await Wallet.from_mnemonic(client, TEST_MNEMONIC, TEST_ADDRESS)
        assert wallet.address == TEST_ADDRESS
        dx.node.set_account(TEST_ADDRESS, account_number=wallet.account_number, sequence=5)
        wallet = await Wallet.from_mnemonic(client, TEST_MNEMONIC, TEST_ADDRESS)
        assert wallet.sequence == 5
        ix = IndexerClient(dx.rest_url, api_timeout=5)
        market = Market((await ix.markets.get_perpetual_markets("BTC-USD"))["markets"][
            "BTC-USD"])
        height = await client.latest_block_height()
        assert height == dx.node.height
        gtb = height + 10
        client_id = random.Random(7).randint(0, MAX_CLIENT_ID)
        oid = market.order_id(TEST_ADDRESS, 0, client_id, OrderFlags.SHORT_TERM)
        order = market.order(oid, OrderType.LIMIT, Order.Side.SIDE_BUY, size=0.0025,
                             price=50000.0,
                             time_in_force=Order.TimeInForce.TIME_IN_FORCE_UNSPECIFIED,
                             reduce_only=False, good_til_block=gtb)
        r = await client.place_order(wallet, order)
        assert r.tx_response.code == 0, r.tx_response.raw_log
        rec = dx.node.broadcasts[-1]
        assert rec.type_urls == ["/dydxprotocol.clob.MsgPlaceOrder"]
        placed = rec.messages[0]
        assert isinstance(placed, MsgPlaceOrder)
        assert placed.order == order  # byte-exact round trip of what the client sent
        assert placed.order.quantums == order.quantums == size_to_quantums("0.0025", -10)
        assert placed.order.subticks == order.subticks == price_to_subticks("50000", -10, -9)
        assert placed.order.good_til_block == gtb
        assert rec.signer == TEST_ADDRESS and rec.short_term_only
        assert r.tx_response.txhash == rec.txhash

        r = await client.cancel_order(wallet, oid, good_til_block=gtb)
        assert r.tx_response.code == 0, r.tx_response.raw_log
        cancel = dx.node.broadcasts[-1].messages[0]
        assert isinstance(cancel, MsgCancelOrder)
        assert cancel.order_id == oid and cancel.good_til_block == gtb
        # short-term txs neither check nor bump the sequence
        assert dx.node.sequence(TEST_ADDRESS) == 5
        assert dx.node.call_counts["Account"] >= 4  # sequence manager: one per broadcast


@pytest.mark.asyncio
async def test_node_checktx_failures():
    async with FakeDydx(matching=False) as dx:
        client = await node_client(dx)
        wallet = await Wallet.from_mnemonic(client, TEST_MNEMONIC, TEST_ADDRESS)
        market = Market(dx.indexer.markets["ETH-USD"])
        h = dx.node.height
        oid = market.order_id(TEST_ADDRESS, 0, 11, OrderFlags.SHORT_TERM)

        def mk(gtb):
            return market.order(oid, OrderType.LIMIT, Order.Side.SIDE_SELL, size=0.01,
                                price=4000.0, time_in_force=Order.TimeInForce.TIME_IN_FORCE_IOC,
                                reduce_only=False, good_til_block=gtb)

        log = "account sequence mismatch, expected 7, got 5: incorrect account sequence"
        dx.node.fail_next_broadcasts(1, code=32, raw_log=log)
        r = await client.place_order(wallet, mk(h + 5))
        assert r.tx_response.code == 32 and r.tx_response.raw_log == log
        assert r.tx_response.codespace == "sdk"
        r = await client.place_order(wallet, mk(h + 5))
        assert r.tx_response.code == 0
        # GoodTilBlock window (client 1.1.5 assumes 20)
        r = await client.place_order(wallet, mk(h + 21))
        assert (r.tx_response.code, r.tx_response.codespace) == (11, "clob")
        r = await client.place_order(wallet, mk(h - 1))
        assert (r.tx_response.code, r.tx_response.codespace) == (10, "clob")
        # FOK is deprecated on chain
        fok = mk(h + 5)
        fok.time_in_force = Order.TimeInForce.TIME_IN_FORCE_FILL_OR_KILL
        r = await client.place_order(wallet, fok)
        assert (r.tx_response.code, r.tx_response.codespace) == (48, "clob")
        # signature checked against chain id + account number
        wrong = Wallet(wallet.key, wallet.account_number + 1, wallet.sequence)
        client.sequence_manager = None
        r = await client.place_order(wrong, mk(h + 5))
        assert r.tx_response.code == 4 and "signature verification failed" in \
            r.tx_response.raw_log
        assert [b.code for b in dx.node.broadcasts] == [32, 0, 11, 10, 48, 4]


@pytest.mark.asyncio
async def test_node_stateful_orders_consume_sequence():
    async with FakeDydx(matching=False) as dx:
        client = await node_client(dx)
        wallet = await Wallet.from_mnemonic(client, TEST_MNEMONIC, TEST_ADDRESS)
        seq0 = wallet.sequence
        market = Market(dx.indexer.markets["BTC-USD"])
        gtbt = int(time.time()) + 3600

        def lt(cid):
            oid = market.order_id(TEST_ADDRESS, 0, cid, OrderFlags.LONG_TERM)
            return market.order(oid, OrderType.LIMIT, Order.Side.SIDE_BUY, size=0.001,
                                price=40000.0,
                                time_in_force=Order.TimeInForce.TIME_IN_FORCE_UNSPECIFIED,
                                reduce_only=False, good_til_block_time=gtbt)

        r = await client.place_order(wallet, lt(1))
        assert r.tx_response.code == 0, r.tx_response.raw_log
        assert dx.node.sequence(TEST_ADDRESS) == seq0 + 1
        # the sequence manager re-queries the account, so the next one is fine too
        r = await client.place_order(wallet, lt(2))
        assert r.tx_response.code == 0 and dx.node.sequence(TEST_ADDRESS) == seq0 + 2
        # a stale local sequence (no sequence manager) -> the chain's code 32
        client.sequence_manager = None
        wallet.sequence = seq0
        r = await client.place_order(wallet, lt(3))
        assert r.tx_response.code == 32
        assert r.tx_response.raw_log == (f"account sequence mismatch, expected {seq0 + 2}, "
                                         f"got {seq0}: incorrect account sequence")
        # long-term IOC is rejected
        bad = lt(4)
        bad.time_in_force = Order.TimeInForce.TIME_IN_FORCE_IOC
        wallet.sequence = seq0 + 2
        r = await client.place_order(wallet, bad)
        assert r.tx_response.code == 3002
        assert dx.node.sequence(TEST_ADDRESS) == seq0 + 2


@pytest.mark.asyncio
async def test_node_slow_simulate_fee_tiers_and_get_tx():
    async with FakeDydx(matching=False, node_kwargs={"height": 777}) as dx:
        client = await node_client(dx)
        dx.node.set_delay(0.3, ["GetLatestBlock"])
        t0 = time.monotonic()
        assert await client.latest_block_height() == 777
        assert time.monotonic() - t0 >= 0.3
        dx.node.clear_faults()
        dx.node.advance(3)
        assert await client.latest_block_height() == 780
        assert int((await aget(f"{dx.rest_url}/v4/height")).json()["height"]) == 780
        tiers = await client.get_fee_tiers()
        assert tiers.params.tiers[0].taker_fee_ppm == 500
        assert tiers.params.tiers[0].maker_fee_ppm == 100
        info = await client.get_node_info()
        assert info.default_node_info.network == "dydx-testnet-4"
        wallet = await Wallet.from_mnemonic(client, TEST_MNEMONIC, TEST_ADDRESS)
        tx = client.builder.build(wallet, MsgPlaceOrder())
        sim = await client.simulate(tx)
        assert sim.gas_info.gas_used == dx.node.gas_used
        market = Market(dx.indexer.markets["BTC-USD"])
        oid = market.order_id(TEST_ADDRESS, 0, 5, OrderFlags.SHORT_TERM)
        order = market.order(oid, OrderType.LIMIT, Order.Side.SIDE_BUY, size=0.001,
                             price=1000.0, time_in_force=0, reduce_only=False,
                             good_til_block=785)
        r = await client.place_order(wallet, order)
        got = await client.query_transaction(r.tx_response.txhash)
        assert got.body.messages[0].type_url == "/dydxprotocol.clob.MsgPlaceOrder"


# ----------------------------------------------------------------------------- closing the loop

@pytest.mark.asyncio
async def test_matching_bridge_fills_and_cancels():
    async with FakeDydx() as dx:
        ix = dx.indexer
        client = await node_client(dx)
        wallet = await Wallet.from_mnemonic(client, TEST_MNEMONIC, TEST_ADDRESS)
        markets = (await IndexerClient(dx.rest_url, api_timeout=5).markets
                   .get_perpetual_markets("BTC-USD"))["markets"]
        m = markets["BTC-USD"]
        market = Market(m)
        ar, qce = m["atomicResolution"], m["quantumConversionExponent"]
        book = ix.snapshot("v4_orderbook", "BTC-USD")[1]
        best_ask = Decimal(book["asks"][0]["price"])
        best_ask_size = Decimal(book["asks"][0]["size"])
        best_bid = Decimal(book["bids"][0]["price"])
        size = Decimal("0.0001")
        assert best_ask_size >= size
        async with ws_connect(dx.ws_url, open_timeout=WAIT) as ws:
            await recv_json(ws)
            for ch, id_ in (("v4_subaccounts", f"{TEST_ADDRESS}/0"), ("v4_orderbook", "BTC-USD"),
                            ("v4_trades", "BTC-USD")):
                await ws.send(json.dumps({"type": "subscribe", "channel": ch, "id": id_}))
                assert (await recv_json(ws))["type"] == "subscribed"

            # 1) crossing IOC buy -> BEST_EFFORT_OPENED, book update, trade, fill + FILLED
            gtb = dx.node.height + 5
            oid = market.order_id(TEST_ADDRESS, 0, 1001, OrderFlags.SHORT_TERM)
            order = market.order(oid, OrderType.LIMIT, Order.Side.SIDE_BUY, size=float(size),
                                 price=float(best_ask),
                                 time_in_force=Order.TimeInForce.TIME_IN_FORCE_IOC,
                                 reduce_only=False, good_til_block=gtb)
            assert order.quantums == size_to_quantums(size, ar)
            r = await client.place_order(wallet, order)
            assert r.tx_response.code == 0, r.tx_response.raw_log
            opened = await recv_until(ws, lambda x: x.get("channel") == "v4_subaccounts")
            assert opened["contents"]["orders"][0]["status"] == "BEST_EFFORT_OPENED"
            lvl = await recv_until(ws, lambda x: x.get("channel") == "v4_orderbook")
            assert lvl["contents"] == {"asks": [[str(best_ask), str(best_ask_size - size)
                                                 if best_ask_size > size else "0"]]}
            trade = await recv_until(ws, lambda x: x.get("channel") == "v4_trades")
            assert trade["contents"]["trades"][0]["side"] == "BUY"
            filled = await recv_until(ws, lambda x: x.get("channel") == "v4_subaccounts")
            c = filled["contents"]
            o = c["orders"][0]
            assert o["status"] == "FILLED" and o["totalFilled"] == str(size)
            assert o["id"] == order_uuid(TEST_ADDRESS, 0, 1001, 0, 0)
            assert o["timeInForce"] == "IOC" and o["goodTilBlock"] == str(gtb)
            f = c["fills"][0]
            quote = fill_quote_quantums(price_to_subticks(best_ask, ar, qce),
                                        size_to_quantums(size, ar), qce)
            assert Decimal(f["quoteAmount"]) == Decimal(quote).scaleb(-6) == best_ask * size
            assert f["liquidity"] == "TAKER" and f["orderId"] == o["id"]
            assert Decimal(f["fee"]) == (Decimal(quote) * 500 / 10**6).to_integral_value(
                "ROUND_CEILING").scaleb(-6)
            pos = c["perpetualPositions"][0]
            assert (pos["market"], pos["side"], pos["size"]) == ("BTC-USD", "LONG", str(size))
            assert c["assetPositions"][0]["symbol"] == "USDC"
            rest_fills = (await aget(f"{dx.rest_url}/v4/fills?address={TEST_ADDRESS}"
                                   "&subaccountNumber=0")).json()["fills"]
            assert rest_fills[0]["id"] == f["id"] and rest_fills[0]["market"] == "BTC-USD"

            # 2) resting GTT bid below the book -> OPEN, level appears; cancel -> CANCELED
            price = best_bid - 5 * Decimal(m["tickSize"])
            oid2 = market.order_id(TEST_ADDRESS, 0, 1002, OrderFlags.SHORT_TERM)
            order2 = market.order(oid2, OrderType.LIMIT, Order.Side.SIDE_BUY,
                                  size=float(size), price=float(price),
                                  time_in_force=Order.TimeInForce.TIME_IN_FORCE_UNSPECIFIED,
                                  reduce_only=False, good_til_block=gtb)
            before = ix.book("BTC-USD").size_at("bids", price)
            r = await client.place_order(wallet, order2)
            assert r.tx_response.code == 0
            await recv_until(ws, lambda x: x.get("channel") == "v4_subaccounts")
            lvl = await recv_until(ws, lambda x: x.get("channel") == "v4_orderbook")
            assert lvl["contents"] == {"bids": [[str(price), str(before + size)]]}
            opened = await recv_until(ws, lambda x: x.get("channel") == "v4_subaccounts")
            assert opened["contents"]["orders"][0]["status"] == "OPEN"
            r = await client.cancel_order(wallet, oid2, good_til_block=gtb)
            assert r.tx_response.code == 0
            lvl = await recv_until(ws, lambda x: x.get("channel") == "v4_orderbook")
            assert Decimal(lvl["contents"]["bids"][0][1]) == before
            statuses = []
            while "CANCELED" not in statuses:
                u = await recv_until(ws, lambda x: x.get("channel") == "v4_subaccounts")
                statuses.append(u["contents"]["orders"][0]["status"])
            assert statuses == ["BEST_EFFORT_CANCELED", "CANCELED"]
            assert u["contents"]["orders"][0]["removalReason"] == \
                "ORDER_REMOVAL_REASON_USER_CANCELED"
            rest = (await aget(f"{dx.rest_url}/v4/orders/{order_uuid(TEST_ADDRESS, 0, 1002, 0, 0)}")).json()
            assert rest["status"] == "CANCELED"

            # 3) resting order filled by "someone else", then expiry of another one
            oid3 = market.order_id(TEST_ADDRESS, 0, 1003, OrderFlags.SHORT_TERM)
            order3 = market.order(oid3, OrderType.LIMIT, Order.Side.SIDE_SELL,
                                  size=float(size * 2), price=float(best_ask + 50),
                                  time_in_force=Order.TimeInForce.TIME_IN_FORCE_POST_ONLY,
                                  reduce_only=False, good_til_block=gtb)
            assert (await client.place_order(wallet, order3)).tx_response.code == 0
            await recv_until(ws, lambda x: x.get("channel") == "v4_subaccounts"
                             and x["contents"]["orders"][0]["status"] == "OPEN")
            res = dx.bridge.fill_resting(TEST_ADDRESS, 1003, size=str(size))
            assert res["status"] == "OPEN" and res["fill"]["liquidity"] == "MAKER"
            mf = await recv_until(ws, lambda x: x.get("channel") == "v4_subaccounts")
            assert mf["contents"]["orders"][0]["totalFilled"] == str(size)
            assert dx.bridge.position(TEST_ADDRESS, "BTC-USD") == 0  # bought then sold
            dx.node.advance(10)  # past GTB -> expired
            exp = await recv_until(ws, lambda x: x.get("channel") == "v4_subaccounts"
                                   and x["contents"]["orders"][0].get("removalReason")
                                   == "ORDER_REMOVAL_REASON_EXPIRED")
            assert exp["contents"]["orders"][0]["status"] == "CANCELED"


# ----------------------------------------------------------------------------- CLI

def test_cli_starts_prints_ready_and_stops_on_sigint():
    env = {**os.environ, "PYTHONPATH": str(_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes", "--port", "0",
                             "--node-port", "0", "--builtin-data"],
                            cwd=str(_ROOT), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        ready = None
        lines = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("READY"):
                ready = line
                break
        assert ready, "".join(lines)
        fields = dict(kv.split("=", 1) for kv in ready.split()[1:])
        assert fields["rest"].startswith("http://127.0.0.1:")
        assert fields["node"].startswith("127.0.0.1:")
        assert fields["ws"].endswith("/v4/ws")
        r = httpx.get(fields["rest"] + "/v4/perpetualMarkets", timeout=5)
        assert set(r.json()["markets"]) == {"BTC-USD", "ETH-USD"}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        proc.stdout.close()


@pytest.mark.asyncio
async def test_batch_cancel_height_modes_and_block_height_channel():
    from v4_proto.dydxprotocol.clob.tx_pb2 import MsgBatchCancel, OrderBatch
    from v4_proto.dydxprotocol.subaccounts.subaccount_pb2 import SubaccountId

    async with FakeDydx(indexer_kwargs={"use_shared_data": False},
                        node_kwargs={"height": 100}) as dx:
        client = await node_client(dx)
        wallet = await Wallet.from_mnemonic(client, TEST_MNEMONIC, TEST_ADDRESS)
        market = Market(dx.indexer.markets["ETH-USD"])
        async with ws_connect(dx.ws_url, open_timeout=WAIT) as ws:
            await recv_json(ws)
            await ws.send(json.dumps({"type": "subscribe", "channel": "v4_block_height"}))
            bh = await recv_json(ws)
            assert bh["type"] == "subscribed" and bh["id"] == "v4_block_height"
            assert bh["contents"]["height"] == "100"
            await ws.send(json.dumps({"type": "subscribe", "channel": "v4_parent_subaccounts",
                                      "id": f"{TEST_ADDRESS}/0"}))
            assert (await recv_json(ws))["type"] == "subscribed"
            # two resting bids, then one MsgBatchCancel for both
            for cid in (21, 22):
                oid = market.order_id(TEST_ADDRESS, 0, cid, OrderFlags.SHORT_TERM)
                o = market.order(oid, OrderType.LIMIT, Order.Side.SIDE_BUY, size=0.01,
                                 price=2500.0, time_in_force=0, reduce_only=False,
                                 good_til_block=110)
                assert (await client.place_order(wallet, o)).tx_response.code == 0
            await dx.indexer.wait_for(lambda: len(dx.bridge.resting) == 2, WAIT)
            assert dx.indexer.book("ETH-USD").size_at("bids", "2500") == Decimal("0.02")
            r = await client.batch_cancel_orders(
                wallet, SubaccountId(owner=TEST_ADDRESS, number=0),
                [OrderBatch(clob_pair_id=1, client_ids=[21, 22])], 110)
            assert r.tx_response.code == 0
            rec = dx.node.broadcasts[-1]
            assert rec.type_urls == ["/dydxprotocol.clob.MsgBatchCancel"] and rec.short_term_only
            assert isinstance(rec.messages[0], MsgBatchCancel)
            await dx.indexer.wait_for(lambda: not dx.bridge.resting, WAIT)
            assert dx.indexer.book("ETH-USD").size_at("bids", "2500") == 0
            # parent channel carries the child's updates with subaccountNumber
            p = await recv_until(ws, lambda x: x.get("channel") == "v4_parent_subaccounts")
            assert p["subaccountNumber"] == 0 and p["version"] == "3.0.0"
            await dx.indexer.push_block_height()
            b = await recv_until(ws, lambda x: x.get("channel") == "v4_block_height")
            assert b["contents"]["blockHeight"] == "100"

    auto = FakeNode(height=5, auto_increment_height=True).start()
    try:
        network = make_insecure(_testnet_node, rest_indexer="http://127.0.0.1:1",
                                websocket_indexer="ws://127.0.0.1:1/v4/ws", node_url=auto.url)
        c = await NodeClient.connect(network.node)
        assert [await c.latest_block_height() for _ in range(3)] == [6, 7, 8]
    finally:
        auto.stop()
    timed = FakeNode(height=5, block_time=0.05)
    t0 = time.monotonic()
    while timed.height < 7:
        assert time.monotonic() - t0 < WAIT
        await asyncio.sleep(0.01)
