"""Permissioned trading keys (issue 12 item 2) against the loopback fakes.

The fake node checks what the chain checks (tests/fakes/node_auth.py, from v4-chain
``protocol/x/accountplus``): a tx carrying a ``TxExtension`` is authenticated by the named
authenticator of the messages' owner, and refused with the chain's code and text when
the authenticator does not allow it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
from decimal import Decimal

import pytest

from tests.exchanges.dydx.conftest import FAST

D = Decimal


def _cli(args, env=None):
    from typer.testing import CliRunner

    from perpbot.cli import build_app

    return CliRunner().invoke(build_app(), args, env=env)


def _net(dx) -> list[str]:
    return ["--network", "custom", "--indexer-rest", dx.rest_url, "--indexer-ws", dx.ws_url, "--node", dx.node_url]


def _main_address():
    from dydx_v4_client.wallet import Wallet

    from perpbot.exchanges.dydx.secrets import Secret, key_pair_from
    from tests.fakes import TEST_MNEMONIC

    return Wallet(key_pair_from(Secret(TEST_MNEMONIC)), 0, 0).address


def _extension_ids(rec) -> list[int] | None:
    """The selected authenticators of a recorded broadcast (None: classic flow)."""
    from v4_proto.cosmos.tx.v1beta1 import tx_pb2
    from v4_proto.dydxprotocol.accountplus import tx_pb2 as ap_tx

    raw = tx_pb2.TxRaw()
    raw.ParseFromString(rec.tx_bytes)
    body = tx_pb2.TxBody()
    body.ParseFromString(raw.body_bytes)
    for ext in body.non_critical_extension_options:
        if ext.type_url == "/dydxprotocol.accountplus.TxExtension":
            te = ap_tx.TxExtension()
            te.ParseFromString(ext.value)
            return list(te.selected_authenticators)
    return None


def _signer_pubkey(rec) -> bytes:
    from v4_proto.cosmos.crypto.secp256k1 import keys_pb2
    from v4_proto.cosmos.tx.v1beta1 import tx_pb2

    raw = tx_pb2.TxRaw()
    raw.ParseFromString(rec.tx_bytes)
    auth = tx_pb2.AuthInfo()
    auth.ParseFromString(raw.auth_info_bytes)
    pk = keys_pb2.PubKey()
    auth.signer_infos[0].public_key.Unpack(pk)
    return pk.key


def test_add_list_remove_trading_key_and_the_bot_trades_with_it_alone(tmp_path, monkeypatch):
    """add-trading-key (main wallet) -> key file 600 + id; the bot then runs with ONLY the
    key file: its orders carry TxOptions naming the authenticator and are signed by the
    trading key; an order the key may not send is refused before sending, naming it;
    list/remove work; a removed key is refused by the chain."""
    from perpbot.core.bot import TradingBot
    from perpbot.core.config import BotConfig
    from perpbot.core.model import OrderParams, OrderType, Side
    from perpbot.core.plugins import PluginManager
    from perpbot.exchanges.dydx.authenticators import load_trading_key
    from tests.fakes import TEST_MNEMONIC, FakeDydx

    address = _main_address()
    key_file = tmp_path / "trading-key.json"
    with FakeDydx(indexer_kwargs={"batch_interval": 0.05}) as dx:
        done = threading.Event()
        dx.indexer.call_soon_threadsafe(lambda: (dx.indexer.ensure_subaccount(address, 0, "10000"), done.set()))
        assert done.wait(5)
        env = {"DYDX_MNEMONIC": TEST_MNEMONIC}
        res = _cli(["dydx", "add-trading-key", *_net(dx), "--markets", "BTC", "--subaccounts", "0",
                    "--out", str(key_file)], env=env)
        assert res.exit_code == 0, res.output
        m = re.search(r"authenticator id: (\d+)", res.output)
        assert m, res.output
        auth_id = int(m.group(1))
        assert "clob pairs 0" in res.output and "subaccounts 0" in res.output
        assert os.stat(key_file).st_mode & 0o777 == 0o600
        key = load_trading_key(key_file)
        assert key.address == address and key.authenticator_id == auth_id
        assert TEST_MNEMONIC not in key_file.read_text()
        stored = dx.node.accountplus.store[address][auth_id]
        assert stored.type == "AllOf"

        listed = _cli(["dydx", "list-trading-keys", *_net(dx), "--address", address])
        assert listed.exit_code == 0, listed.output
        assert f"id {auth_id}: AllOf[key" in listed.output and "MsgPlaceOrder" in listed.output

        # ---- the bot, with the trading key only: no mnemonic anywhere
        monkeypatch.delenv("DYDX_MNEMONIC", raising=False)
        net = {"network": "custom", "indexer_rest": dx.rest_url, "indexer_ws": dx.ws_url, "node": dx.node_url,
               **FAST}
        cfg = BotConfig(exchange=("dydx",), strategy="sniper", tickers=("BTC-USD", "ETH-USD"), feed="dydx",
                        state_dir=tmp_path, journal_enabled=False, report=False, progress=False,
                        exchanges={"dydx": dict(net, trading_key_file=str(key_file))}, feeds={"dydx": dict(net)})
        bot = TradingBot(cfg, PluginManager(load_entry_points=False))

        async def session():
            run = asyncio.create_task(bot.run())
            deadline = time.monotonic() + 10
            while not bot.states or not bot.portfolios or any(
                    bot.states[t].stale_reason(bot.clock.now_ns()) for t in bot.states):
                assert time.monotonic() < deadline and not run.done(), "no fresh market data"
                await asyncio.sleep(0.05)
            n0 = len(dx.node.broadcasts)
            ok = await bot.submit(OrderParams("BTC-USD", Side.BUY, OrderType.MARKET, size=D("0.002")),
                                  risk_exempt=True)
            assert ok is not None and ok.success, ok
            n1 = len(dx.node.broadcasts)
            refused = await bot.submit(OrderParams("ETH-USD", Side.BUY, OrderType.MARKET, size=D("0.01")),
                                       risk_exempt=True)
            assert refused is not None and not refused.success
            assert f"authenticator {auth_id} does not allow /dydxprotocol.clob.MsgPlaceOrder" in refused.error
            assert "ClobPairIdFilter" in refused.error and "not sent" in refused.error
            assert len(dx.node.broadcasts) == n1  # named BEFORE sending: the node saw nothing
            while bot.portfolio.positions.get("BTC-USD") is None or bot.portfolio.positions["BTC-USD"].size == 0:
                assert time.monotonic() < deadline, "the fill never reached the portfolio"
                await asyncio.sleep(0.05)
            bot.request_stop("test done")
            async with asyncio.timeout(10):
                await run
            return n0

        n0 = asyncio.run(session())
        placed = [r for r in dx.node.broadcasts[n0:] if r.type_urls == ["/dydxprotocol.clob.MsgPlaceOrder"]]
        assert placed and all(r.ok for r in placed)
        assert all(_extension_ids(r) == [auth_id] for r in placed)  # TxOptions(authenticators=[id])
        assert all(_signer_pubkey(r) == key.public_key for r in placed)  # signed by the trading key
        assert all(r.signer == address for r in placed)  # for the main account

        # ---- remove it (main wallet); the chain then refuses the key
        gone = _cli(["dydx", "remove-trading-key", *_net(dx), "--id", str(auth_id)], env=env)
        assert gone.exit_code == 0, gone.output
        assert f"removed authenticator {auth_id}" in gone.output
        assert auth_id not in dx.node.accountplus.store.get(address, {})
        again = _cli(["dydx", "remove-trading-key", *_net(dx), "--id", str(auth_id)], env=env)
        assert again.exit_code == 2 and f"--id: authenticator {auth_id} is not on {address}" in again.output


@pytest.fixture
def node_and_key(tmp_path):
    """A FakeNode, the main gateway's address, and a trading key on clob pair 0, subaccount 0."""
    from tests.fakes.node import FakeNode

    node = FakeNode(height=1000).start()
    try:
        yield node, tmp_path
    finally:
        node.stop()


def _settings(node, **over):
    from perpbot.exchanges.dydx.config import DydxSettings

    return DydxSettings.from_config({"network": "custom", "indexer_rest": "http://127.0.0.1:1",
                                     "indexer_ws": "ws://127.0.0.1:1/v4/ws", "node": node.url, **over})


async def _add_key(node, tmp_path, **limits):
    """Add a trading key with the main wallet; returns (TradingKey, path)."""
    from dydx_v4_client.key_pair import KeyPair

    from perpbot.exchanges.dydx.authenticators import (
        load_trading_key, new_private_key_hex, trading_authenticator, write_trading_key,
    )
    from perpbot.exchanges.dydx.node import NodeGateway
    from perpbot.exchanges.dydx.secrets import Secret
    from tests.fakes import TEST_MNEMONIC

    s = _settings(node)
    main = NodeGateway(s, Secret(TEST_MNEMONIC))
    await main.connect()
    try:
        priv = new_private_key_hex()
        tx = await main.add_authenticator(trading_authenticator(KeyPair.from_hex(priv).public_key_bytes, **limits))
        assert tx.ok, tx
        aid = max(node.accountplus.store[main.address])
        path = write_trading_key(tmp_path / f"key{aid}.json", address=main.address, authenticator_id=aid,
                                 chain_id=s.endpoints.chain_id, private_hex=priv)
    finally:
        await main.close()
    return load_trading_key(path), path


def _order(owner, clob=0, sub=0, cid=1, flags=0, gtb=1005, gtbt=0):
    from v4_proto.dydxprotocol.clob.order_pb2 import Order, OrderId
    from v4_proto.dydxprotocol.subaccounts.subaccount_pb2 import SubaccountId

    oid = OrderId(subaccount_id=SubaccountId(owner=owner, number=sub), client_id=cid, order_flags=flags,
                  clob_pair_id=clob)
    kw = {"good_til_block_time": gtbt} if flags else {"good_til_block": gtb}
    return Order(order_id=oid, side=Order.SIDE_BUY, quantums=1_000_000, subticks=6_500_000_000, **kw)


async def test_the_fake_refuses_what_the_authenticator_does_not_allow_with_the_chain_errors(node_and_key):
    """Bypassing the client's check, each refusal is the chain's: clob pair 102, subaccount
    103, message type 101 (a transfer), unknown id 1, another key 100, count mismatch 18."""
    from dydx_v4_client.node.builder import TxOptions
    from dydx_v4_client.node.message import place_order
    from v4_proto.dydxprotocol.sending.transfer_pb2 import Transfer
    from v4_proto.dydxprotocol.sending.tx_pb2 import MsgCreateTransfer
    from v4_proto.dydxprotocol.subaccounts.subaccount_pb2 import SubaccountId

    from perpbot.exchanges.dydx.authenticators import MSG_CREATE_TRANSFER, transfer_refusal
    from perpbot.exchanges.dydx.node import NodeGateway

    node, tmp = node_and_key
    key, _ = await _add_key(node, tmp, clob_pair_ids=[0], subaccounts=[0])
    other, _ = await _add_key(node, tmp)  # a second key, all markets
    gw = NodeGateway(_settings(node), key)
    await gw.connect()
    try:
        owner = gw.address
        assert gw.key_allows("/dydxprotocol.clob.MsgPlaceOrder", 0, 0)
        assert not gw.key_allows("/dydxprotocol.clob.MsgPlaceOrder", 1, 0)
        assert not gw.key_allows("/dydxprotocol.clob.MsgPlaceOrder", 0, 128)
        assert not gw.key_allows(MSG_CREATE_TRANSFER)  # isolated-market transfers: refused up front
        assert transfer_refusal(gw, 0, 128) == (
            f"the trading key (authenticator {key.authenticator_id}) cannot sign the MsgCreateTransfer 0 -> 128 "
            f"(MessageFilter allows only /dydxprotocol.clob.MsgBatchCancel, /dydxprotocol.clob.MsgCancelOrder, "
            f"/dydxprotocol.clob.MsgPlaceOrder, not /dydxprotocol.sending.MsgCreateTransfer): pre-fund subaccount "
            f"128 with the main wallet, or use a key added with --allow-transfers")
        assert (await gw.place_order(_order(owner), stateful=False)).ok

        async def raw(msg, ids):
            def make(n, w):
                return n.broadcast_message(w, msg, tx_options=TxOptions(ids, w.sequence, w.account_number))
            return await gw.broadcast(make, stateful=False, what="raw")

        r = await raw(place_order(_order(owner, clob=1, cid=2)), [key.authenticator_id])
        assert (r.code, r.codespace) == (102, "accountplus")
        assert r.raw_log == (f"authentication failed for message 0, authenticator id {key.authenticator_id}, "
                             f"type AllOf: order id 1 not in whitelist map[0:{{}}]: Clob pair id verification failed")
        r = await raw(place_order(_order(owner, sub=128, cid=3)), [key.authenticator_id])
        assert (r.code, r.codespace) == (103, "accountplus") and "subaccount number 128 not in whitelist" in r.raw_log
        transfer = MsgCreateTransfer(transfer=Transfer(sender=SubaccountId(owner=owner, number=0),
                                                       recipient=SubaccountId(owner=owner, number=128),
                                                       asset_id=0, amount=1_000_000))
        r = await raw(transfer, [key.authenticator_id])
        assert (r.code, r.codespace) == (101, "accountplus")
        assert "message types do not match. Got /dydxprotocol.sending.MsgCreateTransfer" in r.raw_log
        r = await raw(place_order(_order(owner, cid=4)), [999])
        assert (r.code, r.codespace) == (1, "accountplus") and "authenticator 999 not found" in r.raw_log
        r = await raw(place_order(_order(owner, cid=5)), [other.authenticator_id])  # signed by the wrong key
        assert (r.code, r.codespace) == (100, "accountplus") and "Signature verification failed" in r.raw_log
        r = await raw(place_order(_order(owner, cid=6)), [key.authenticator_id, key.authenticator_id])
        assert (r.code, r.codespace) == (18, "sdk") and "msg count 1, got 2 selected authenticators" in r.raw_log
        # without TxOptions the trading key is just a foreign key: the classic flow refuses it
        r = await gw.broadcast(lambda n, w: n.place_order(w, _order(owner, cid=7)), stateful=False, what="plain")
        assert r.code == 8 and "pubKey does not match signer address" in r.raw_log
    finally:
        await gw.close()


async def test_a_stateful_order_with_a_trading_key_uses_and_advances_the_main_sequence(node_and_key):
    """Stateful txs through an authenticator still check and consume the MAIN account's
    sequence (v4-chain app/ante/replay_protection.go); a batch cancel names the id once."""
    from v4_proto.dydxprotocol.clob.tx_pb2 import OrderBatch
    from v4_proto.dydxprotocol.subaccounts.subaccount_pb2 import SubaccountId

    from perpbot.exchanges.dydx.node import NodeGateway

    node, tmp = node_and_key
    key, _ = await _add_key(node, tmp)
    gw = NodeGateway(_settings(node), key)
    await gw.connect()
    try:
        seq = node.sequence(gw.address)
        assert gw.sequence == seq
        gtbt = int(time.time()) + 3600
        assert (await gw.place_order(_order(gw.address, cid=11, flags=64, gtbt=gtbt), stateful=True)).ok
        assert node.sequence(gw.address) == seq + 1 == gw.sequence
        r = await gw.cancel_order(_order(gw.address, cid=11, flags=64).order_id, good_til_block_time=gtbt)
        assert r.ok and node.sequence(gw.address) == seq + 2
        r = await gw.batch_cancel(SubaccountId(owner=gw.address, number=0),
                                  [OrderBatch(clob_pair_id=0, client_ids=[1, 2])], 1010)
        assert r.ok and _extension_ids(node.broadcasts[-1]) == [key.authenticator_id]
    finally:
        await gw.close()


async def test_trading_key_file_problems_are_one_line(node_and_key, monkeypatch):
    """A key file readable by others is refused with the chmod to run; a key whose
    authenticator is gone, or for another chain / address, is one line too."""
    from perpbot.core.errors import SecretError
    from perpbot.exchanges.dydx.authenticators import load_signer, load_trading_key
    from perpbot.exchanges.dydx.node import NodeGateway

    node, tmp = node_and_key
    key, path = await _add_key(node, tmp)
    os.chmod(path, 0o644)
    with pytest.raises(SecretError, match=re.escape(f"Fix: chmod 600 {path}")):
        load_trading_key(path)
    os.chmod(path, 0o600)
    with pytest.raises(SecretError, match="is for chain dydx-testnet-4, but the network's chain is other-1"):
        load_signer(_settings(node, trading_key_file=str(path), chain_id="other-1"))
    with pytest.raises(SecretError, match="trades for dydx1"):
        load_signer(_settings(node, trading_key_file=str(path), address="dydx1" + "q" * 38))
    monkeypatch.delenv("DYDX_MNEMONIC", raising=False)
    assert load_signer(_settings(node, trading_key_file=str(path))).authenticator_id == key.authenticator_id
    other, _ = await _add_key(node, tmp)
    mixed = json.loads(path.read_text()) | {"authenticator_id": other.authenticator_id}
    mixed_path = tmp / "mixed.json"
    mixed_path.write_text(json.dumps(mixed))
    os.chmod(mixed_path, 0o600)
    gw = NodeGateway(_settings(node), load_trading_key(mixed_path))
    with pytest.raises(SecretError, match=f"authenticator {other.authenticator_id} on dydx1.* is for another key"):
        await gw.connect()
    node.accountplus.remove(key.address, key.authenticator_id)
    gw = NodeGateway(_settings(node), load_trading_key(path))
    with pytest.raises(SecretError, match=f"authenticator {key.authenticator_id} is not on account"):
        await gw.connect()
    assert repr(key).startswith("TradingKey(") and "private" not in repr(key)


def test_a_loose_key_file_is_one_cli_line_with_the_chmod(tmp_path):
    """``--trading-key-file`` readable by others: one ``error:`` line with the chmod, exit 2,
    both for ``runbot.py dydx ...`` and for the bot itself."""
    from perpbot.exchanges.dydx.authenticators import write_trading_key

    path = write_trading_key(tmp_path / "k.json", address="dydx1" + "q" * 38, authenticator_id=3,
                             chain_id="dydx-testnet-4", private_hex="11" * 32)
    os.chmod(path, 0o640)
    res = _cli(["dydx", "list-trading-keys", "--network", "custom", "--node", "127.0.0.1:1",
                "--trading-key-file", str(path)])
    assert res.exit_code == 2, res.output  # SecretError's exit code
    assert res.output.strip() == (f"error: trading-key file {path} is readable or writable by group or others "
                                  f"(mode 0640); refusing to use it. Fix: chmod 600 {path}")
    bot = _cli(["--exchange", "dydx", "--network", "custom", "--indexer-rest", "http://127.0.0.1:1",
                "--indexer-ws", "ws://127.0.0.1:1/v4/ws", "--node", "127.0.0.1:1", "--ticker", "BTC",
                "--trading-key-file", str(path)])
    assert bot.exit_code != 0
    assert f"Fix: chmod 600 {path}" in bot.output and "Traceback" not in bot.output


async def test_a_transfer_the_key_cannot_sign_is_refused_before_sending_and_one_it_can_carries_txoptions(
        node_and_key):
    """The client's own ``transfer`` (what isolated markets use) goes through the trading key:
    refused with one line before sending when the authenticator does not allow
    MsgCreateTransfer; with a key added with ``allow_transfers`` it is signed with TxOptions
    and the fake node's authenticator check accepts it."""
    from v4_proto.dydxprotocol.subaccounts.subaccount_pb2 import SubaccountId

    from perpbot.exchanges.dydx.node import KeyNotAllowed, NodeGateway

    node, tmp = node_and_key
    orders_only, _ = await _add_key(node, tmp)
    movers, _ = await _add_key(node, tmp, allow_transfers=True)

    def transfer(gw):
        s, r = SubaccountId(owner=gw.address, number=0), SubaccountId(owner=gw.address, number=128)
        return gw.broadcast(lambda n, w: n.transfer(w, s, r, 0, 5_000_000), stateful=True, what="transfer 0 -> 128")

    gw = NodeGateway(_settings(node), orders_only)
    await gw.connect()
    try:
        n, seq = len(node.broadcasts), gw.sequence
        with pytest.raises(KeyNotAllowed) as err:
            await transfer(gw)
        assert str(err.value) == (
            f"trading key authenticator {orders_only.authenticator_id} does not allow "
            f"/dydxprotocol.sending.MsgCreateTransfer (clob pair -, subaccount -): MessageFilter allows only "
            f"/dydxprotocol.clob.MsgBatchCancel, /dydxprotocol.clob.MsgCancelOrder, /dydxprotocol.clob.MsgPlaceOrder, "
            f"not /dydxprotocol.sending.MsgCreateTransfer; MsgCreateTransfer not sent; pre-fund the child subaccount "
            f"with the main wallet, or use a key added with --allow-transfers")
        assert len(node.broadcasts) == n and gw.sequence == seq and gw.breaker.state == "closed"
    finally:
        await gw.close()
    gw = NodeGateway(_settings(node), movers)
    await gw.connect()
    try:
        r = await transfer(gw)
        assert r.ok, r
        rec = node.broadcasts[-1]
        assert rec.type_urls == ["/dydxprotocol.sending.MsgCreateTransfer"]
        assert _extension_ids(rec) == [movers.authenticator_id] and rec.signer == gw.address
    finally:
        await gw.close()


async def test_an_isolated_order_whose_transfer_the_key_cannot_sign_is_refused_with_the_reason(fakes, tmp_path):
    """Isolated markets (issue 12 item 1) move collateral parent -> child first; with a
    trading key that may only trade, that transfer is refused before sending and so is the
    order, with the line saying what to do. A key added with allow_transfers does it all."""
    from perpbot.core.model import OrderRequest, OrderType, Side
    from tests.exchanges.dydx.test_dydx_exchange_live import Harness
    from tests.exchanges.dydx.test_dydx_isolated import _isolated_eth

    _isolated_eth(fakes.indexer)
    fakes.indexer.ensure_subaccount(_main_address(), 0, "10000")
    orders_only, path1 = await _add_key(fakes.node, tmp_path)
    movers, path2 = await _add_key(fakes.node, tmp_path, allow_transfers=True)
    order = OrderRequest(5, "ETH-USD", Side.BUY, D("0.5"), OrderType.MARKET)
    h = await Harness(fakes, tmp_path, trading_key_file=str(path1)).start()
    try:
        n = len(fakes.node.broadcasts)
        r = await h.ex.place_order(order)
        assert not r.success and "MsgCreateTransfer not sent; pre-fund the child subaccount" in r.error, r
        assert len(fakes.node.broadcasts) == n  # neither the transfer nor the order was sent
    finally:
        await h.stop()
    h = await Harness(fakes, tmp_path / "2", trading_key_file=str(path2)).start()
    try:
        r = await h.ex.place_order(OrderRequest(6, "ETH-USD", Side.BUY, D("0.5"), OrderType.MARKET))
        assert r.success, r
        kinds = [(rec.type_urls[0].rsplit(".", 1)[-1], _extension_ids(rec)) for rec in fakes.node.broadcasts[-2:]]
        assert kinds == [("MsgCreateTransfer", [movers.authenticator_id]), ("MsgPlaceOrder", [movers.authenticator_id])]
    finally:
        await h.stop()
