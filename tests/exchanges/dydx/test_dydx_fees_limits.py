"""Issue 12 item 5 (fee tier, chain rate limits, TWAP) and the authenticator model of item 2.

Facts from dydxprotocol/v4-chain main @ 84d4664 (cited in the modules): fee tiers
``x/feetiers/types/genesis.go`` / ``keeper/keeper.go``; block rate limits
``x/clob/rate_limit/*``; TWAP ``proto/dydxprotocol/clob/order.proto``; authenticators
``x/accountplus/authenticator/*``.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from decimal import Decimal
from types import SimpleNamespace as NS

import attrs
import pytest

D = Decimal
USDC = 1_000_000  # quote quantums


# ----------------------------------------------------------------------------- authenticators


def _client_data(auth) -> bytes:
    """What dydx-v4-client 1.1.5 puts in MsgAddAuthenticator.data (nested configs base64)."""
    from dydx_v4_client.node.message import add_authenticator

    return add_authenticator("dydx1x", auth.type, auth.config).data


PK = bytes([2]) + bytes(range(32))
OTHER = bytes([3]) + bytes(range(32))


def test_the_trading_authenticator_reads_back_and_refuses_like_the_chain():
    from perpbot.exchanges.dydx.authenticators import (
        MSG_BATCH_CANCEL, MSG_CANCEL_ORDER, MSG_CREATE_TRANSFER, MSG_PLACE_ORDER, parse_authenticator,
        trading_authenticator,
    )

    auth = trading_authenticator(PK, clob_pair_ids=[1, 0], subaccounts=[0])
    node = parse_authenticator("AllOf", _client_data(auth))
    assert [c.type for c in node.children] == ["SignatureVerification", "MessageFilter", "ClobPairIdFilter",
                                               "SubaccountFilter"]
    assert node.signature_keys() == [PK]
    assert node.describe() == ("AllOf[key 020001020304..., messages MsgBatchCancel|MsgCancelOrder|MsgPlaceOrder, "
                               "clob pairs 0,1, subaccounts 0]")
    for msg in (MSG_PLACE_ORDER, MSG_CANCEL_ORDER):
        assert node.allows(msg, (1,), 0, PK)
    assert node.allows(MSG_BATCH_CANCEL, (0, 1), 0, PK)
    assert node.refusal(MSG_BATCH_CANCEL, (0, 2), 0, PK) == "ClobPairIdFilter allows clob pair ids 0,1, not 2"
    assert node.refusal(MSG_PLACE_ORDER, (0,), 128, PK) == "SubaccountFilter allows subaccounts 0, not 128"
    assert node.refusal(MSG_CREATE_TRANSFER, (), None, PK).startswith("MessageFilter allows only ")
    assert node.refusal(MSG_PLACE_ORDER, (0,), 0, OTHER).startswith("SignatureVerification: signed by key 03")
    # a key allowed to transfer passes the filters (they only look at clob messages)
    wide = parse_authenticator("AllOf", _client_data(trading_authenticator(PK, clob_pair_ids=[0], subaccounts=[0],
                                                                           allow_transfers=True)))
    assert wide.allows(MSG_CREATE_TRANSFER, (), None, PK)
    assert wide.allows(MSG_CREATE_TRANSFER, (7,), 128, PK)  # even when a caller names a market and subaccount


def test_any_of_and_nested_composites_and_bad_configs():
    from dydx_v4_client.node.authenticators import Authenticator, AuthenticatorType

    from perpbot.exchanges.dydx.authenticators import (
        MSG_CANCEL_ORDER, MSG_PLACE_ORDER, AuthenticatorFormatError, key_allows, parse_authenticator,
    )

    either = Authenticator.compose(AuthenticatorType.AnyOf, [Authenticator.message_filter(MSG_PLACE_ORDER),
                                                             Authenticator.clob_pair_id_filter([5])])
    nested = Authenticator.compose(AuthenticatorType.AllOf, [Authenticator.signature_verification(PK), either])
    node = parse_authenticator("AllOf", _client_data(nested))
    assert node.children[1].type == "AnyOf"
    assert node.allows(MSG_PLACE_ORDER, (9,), 0, PK)  # first branch
    assert node.allows(MSG_CANCEL_ORDER, (5,), 0, PK)  # second branch
    assert node.refusal(MSG_CANCEL_ORDER, (9,), 0, PK).startswith("AnyOf: every branch refuses")
    assert key_allows(None, MSG_CANCEL_ORDER, 9) and not key_allows(node, MSG_CANCEL_ORDER, 9, 0, PK)
    bad = [("Nope", b"x", "unknown authenticator type 'Nope'"),
           ("AllOf", json.dumps([{"type": "MessageFilter", "config": "eA=="}]).encode(), "at least 2"),
           ("AllOf", b"not json", "not a JSON list"),
           ("SignatureVerification", b"\x02" * 5, "public key of 5 bytes"),
           ("ClobPairIdFilter", b"0,x", "'x' is not a number")]
    for typ, data, text in bad:
        with pytest.raises(AuthenticatorFormatError, match=re.escape(text)):
            parse_authenticator(typ, data)


def test_an_authenticator_over_the_chain_size_limit_is_refused_before_sending():
    from perpbot.core.errors import ConfigError
    from perpbot.exchanges.dydx.authenticators import trading_authenticator

    with pytest.raises(ConfigError, match="over the chain's 1024; name fewer markets"):
        trading_authenticator(PK, clob_pair_ids=list(range(400)))
    with pytest.raises(ConfigError, match="33"):
        trading_authenticator(b"\x02" * 32)


# ------------------------------------------------------------------------------------ fee tier


def _params():
    from tests.fakes.node import default_fee_tiers

    return default_fee_tiers()


def test_fee_tier_follows_the_chain_rules():
    """The last tier whose requirements all hold, stopping at the first that fails
    (keeper.go getUserFeeTier); share requirements scale with the global notional."""
    from perpbot.exchanges.dydx.fees import Tier, select_tier

    tiers = [Tier.from_proto(t) for t in _params().tiers]
    assert select_tier(tiers, 0, 999_999_999_999, 0) == 0  # 1 quantum short of 1M USDC
    assert select_tier(tiers, 0, 1_000_000 * USDC, 0) == 1
    assert select_tier(tiers, 400_000 * USDC, 600_000 * USDC, 0) == 1  # maker + taker count together
    assert select_tier(tiers, 0, 125_000_000 * USDC, 0) == 8  # no global volume: every share holds (0 >= 0)
    glob = 30_000_000_000 * USDC
    assert select_tier(tiers, 0, 125_000_000 * USDC, glob) == 4  # 0.42% share < 0.5%: stays at tier 5
    assert select_tier(tiers, 0, 150_000_000 * USDC, glob) == 5  # 0.5%: tier 6, no maker share
    assert select_tier(tiers, 300_000_000 * USDC, 0, glob) == 6  # 1% maker share: tier 7
    # the walk STOPS at the first tier that fails, even if a later one would pass
    odd = [Tier("a", 0, 0, 0, 100, 500), Tier("b", 0, 0, 100_000, 50, 400), Tier("c", 1_000_000 * USDC, 0, 0, 0, 300)]
    assert select_tier(odd, 0, 2_000_000 * USDC, 10_000_000 * USDC) == 0


def test_fee_tier_from_the_queries_prefers_the_chain_answer_and_says_so():
    from perpbot.exchanges.dydx.fees import fee_tier_from

    p = _params()
    user = NS(maker_notional=0, taker_notional=2_000_000 * USDC)
    tier = fee_tier_from(p, user, NS(notional_traded=0), NS(index=1, tier=p.tiers[1]))
    assert (tier.index, tier.name, tier.maker_rate, tier.taker_rate) == (1, "2", D("0.0001"), D("0.00045"))
    assert tier.volume_30d_usd == D(2_000_000) and tier.computed_index == 1
    assert tier.describe() == ("fee tier 2 (index 1): maker 1.0 bp, taker 4.5 bp; 30-day volume 2,000,000.00 USDC; "
                               "next: tier 3 at 5,000,000 USDC 30-day volume")
    override = fee_tier_from(p, user, NS(notional_traded=0), NS(index=3, tier=p.tiers[3]))
    assert override.index == 3 and override.taker_rate == D("0.00035")
    assert "volume alone gives tier index 1: vault or affiliate override" in override.describe()


def test_fees_command_reads_tier_rates_and_limits_from_the_node():
    from typer.testing import CliRunner

    from perpbot.cli import build_app
    from tests.fakes.node import FakeNode
    from tests.fakes.node_auth import genesis_rate_limits

    addr = "dydx1" + "q" * 38
    node = FakeNode().start()
    try:
        node.user_stats[addr] = (3_000_000 * USDC, 2_500_000 * USDC)  # 5.5M USDC in 30 days
        node.rate_limits.config.CopyFrom(genesis_rate_limits())
        res = CliRunner().invoke(build_app(), ["dydx", "fees", "--network", "custom", "--node", node.url,
                                               "--address", addr])
    finally:
        node.stop()
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines[0] == (f"{addr}: fee tier 3 (index 2): maker 0.5 bp, taker 4.0 bp; 30-day volume 5,500,000.00 "
                        f"USDC; next: tier 4 at 25,000,000 USDC 30-day volume")
    assert lines[1] == "  maker rate 0.00005, taker rate 0.0004 (fractions of notional)"
    assert lines[2] == "  chain limit: short-term places and cancels: 400 per 1 block"
    assert lines[3] == "  chain limit: stateful orders: 2 per 1 block, 20 per 100 blocks"


# ------------------------------------------------------------------------------ rate limits


def test_block_rate_limiter_counts_until_a_height_proves_the_window_passed():
    from perpbot.exchanges.dydx.limits import BlockRateLimiter

    lim = BlockRateLimiter("stateful orders", [(1, 2), (100, 20)])
    lim.observe_height(10)
    lim.record()
    lim.record()
    assert lim.blocking_rule() == (1, 2)  # no height seen since: both still count
    lim.observe_height(10)  # sent at or before block 10
    assert lim.blocking_rule() == (1, 2)
    lim.observe_height(11)
    assert lim.blocking_rule() is None and lim.used(100) == 2
    for _ in range(18):
        lim.record()
        lim.observe_height(lim._height + 1)
    assert lim.used(100) == 20 and lim.blocking_rule() == (100, 20)
    lim.observe_height(200)
    assert lim.used(100) == 0 and not lim._entries  # pruned
    assert BlockRateLimiter("x", []).blocking_rule(10**9) is None


async def test_the_client_waits_for_the_chain_block_limit_instead_of_being_refused():
    """With the genesis limits (2 stateful orders per block), a third stateful order waits
    for the next block; when none comes within grpc_max_wait_s it is refused before sending.
    The node never answers 5001 (Block rate limit exceeded)."""
    from perpbot.exchanges.dydx.config import DydxSettings
    from perpbot.exchanges.dydx.node import ChainRateLimited, NodeGateway
    from perpbot.exchanges.dydx.secrets import Secret
    from tests.exchanges.dydx.test_dydx_trading_keys import _order
    from tests.fakes import TEST_MNEMONIC
    from tests.fakes.node import FakeNode
    from tests.fakes.node_auth import genesis_rate_limits

    node = FakeNode(height=500).start()
    node.rate_limits.config.CopyFrom(genesis_rate_limits())
    s = DydxSettings.from_config({"network": "custom", "indexer_rest": "http://127.0.0.1:1",
                                  "indexer_ws": "ws://127.0.0.1:1/v4/ws", "node": node.url,
                                  "grpc_max_wait_s": 2, "grpc_rate_per_s": 100})
    gw = NodeGateway(s, Secret(TEST_MNEMONIC))
    await gw.connect()
    try:
        await gw.latest_height()
        gtbt = int(time.time()) + 600
        for cid in (1, 2):
            assert (await gw.place_order(_order(gw.address, cid=cid, flags=64, gtbt=gtbt), stateful=True)).ok
        timer = threading.Timer(0.4, node.advance)
        timer.start()
        t0 = time.monotonic()
        assert (await gw.place_order(_order(gw.address, cid=3, flags=64, gtbt=gtbt), stateful=True)).ok
        assert time.monotonic() - t0 >= 0.3  # it waited for block 501
        assert gw.limiters["stateful"].waited == 1
        n = len(node.broadcasts)
        gw.settings = attrs.evolve(gw.settings, grpc_max_wait_s=0.3)  # no new block will come now
        await gw.place_order(_order(gw.address, cid=4, flags=64, gtbt=gtbt), stateful=True)
        with pytest.raises(ChainRateLimited, match=r"at most 2 stateful orders per 1 block\(s\).*not sent"):
            await gw.place_order(_order(gw.address, cid=5, flags=64, gtbt=gtbt), stateful=True)
        assert len(node.broadcasts) == n + 1 and all(r.code != 5001 for r in node.broadcasts)
        # short-term orders have their own (400 per block) budget
        assert (await gw.place_order(_order(gw.address, cid=6, gtb=node.height + 5), stateful=False)).ok
    finally:
        timer.cancel()
        await gw.close()
        node.stop()


def test_the_fake_node_enforces_the_chain_block_limit():
    """The node side of the check above: a third stateful place in one block is code 5001,
    with the chain's text (and a refused tx still counts, as on the chain)."""
    from perpbot.exchanges.dydx.secrets import Secret, key_pair_from
    from tests.exchanges.dydx.test_dydx_trading_keys import _order
    from tests.fakes import TEST_MNEMONIC
    from tests.fakes.node import FakeNode
    from tests.fakes.node_auth import genesis_rate_limits

    from dydx_v4_client.node.client import NodeClient
    from dydx_v4_client.wallet import Wallet

    node = FakeNode(height=500).start()
    node.rate_limits.config.CopyFrom(genesis_rate_limits())

    async def go():
        client = await NodeClient.connect(node.network().node)
        client.sequence_manager = None
        wallet = Wallet(key_pair_from(Secret(TEST_MNEMONIC)), 7, 0)
        codes = []
        for cid in (1, 2, 3):
            r = await client.place_order(wallet, _order(wallet.address, cid=cid, flags=64, gtbt=int(time.time()) + 60))
            codes.append((r.tx_response.code, r.tx_response.raw_log))
            if r.tx_response.code == 0:
                wallet.sequence += 1
        return wallet.address, codes

    try:
        addr, codes = asyncio.run(go())
    finally:
        node.stop()
    assert [c for c, _ in codes] == [0, 0, 5001]
    assert codes[2][1] == (f"Rate of 3 exceeds configured block rate limit of {{NumBlocks:1 Limit:2}} for "
                           f"MaxStatefulOrdersPerNBlocks and {addr}: Block rate limit exceeded")


# ------------------------------------------------------------------------------------- TWAP


def test_twap_parameters_are_checked_like_the_chain():
    from perpbot.exchanges.dydx.fees import check_twap_parameters

    assert check_twap_parameters(300, 60, D("0.01")) == 10_000
    for args, text in [((299, 60, D(0)), "--duration: 299 s is outside [300, 86400] s"),
                       ((600, 29, D(0)), "--interval: 29 s is outside [30, 3600] s"),
                       ((600, 70, D(0)), "--interval: 70 s does not divide the duration 600 s"),
                       ((600, 60, D(1)), "--price-tolerance: 1 is outside [0, 1)")]:
        with pytest.raises(ValueError, match=re.escape(text)):
            check_twap_parameters(*args)


def test_twap_is_refused_with_the_reason_when_it_cannot_be_sent(monkeypatch):
    """v4-proto 8.2.0's Order has builder_code_parameters as field 12 where the chain has
    twap_parameters: a TWAP order cannot be encoded, so it is refused with that reason;
    with a proto that can, an old node is refused by its version."""
    from typer.testing import CliRunner

    from perpbot.cli import build_app
    from perpbot.exchanges.dydx import fees

    res = CliRunner().invoke(build_app(), ["dydx", "twap", "--ticker", "ETH", "--side", "sell", "--size", "0.5",
                                           "--duration", "600", "--interval", "60", "--network", "custom",
                                           "--node", "127.0.0.1:1"])
    assert res.exit_code == 2
    line = res.output.strip()
    assert line.startswith("error: native TWAP orders are refused: the installed v4-proto 8.2.0 cannot encode them "
                           "(its Order field 12 is builder_code_parameters; the chain's is twap_parameters")
    assert line.endswith("no order was sent (sell 0.5 ETH, 600s every 60s)") and "\n" not in line
    bad = CliRunner().invoke(build_app(), ["dydx", "twap", "--ticker", "ETH", "--side", "sell", "--size", "0.5",
                                           "--duration", "100", "--interval", "60"])
    assert bad.exit_code == 2 and bad.output.strip() == "error: --duration: 100 s is outside [300, 86400] s"

    class _Fields:  # a v4-proto that could encode it
        fields_by_name = {"twap_parameters": object()}

    from v4_proto.dydxprotocol.clob import order_pb2

    monkeypatch.setattr(order_pb2, "Order", SimpleOrder := type("Order", (), {"DESCRIPTOR": _Fields}))
    assert SimpleOrder.DESCRIPTOR is _Fields
    assert fees.twap_refusal("v8.2.1") == ("native TWAP orders are refused: the node runs protocol v8.2.1, TWAP "
                                           "needs v9.0.0 or later")
    assert fees.twap_refusal("v9.1.0") is None
    assert "unknown" in fees.twap_refusal("fake")
