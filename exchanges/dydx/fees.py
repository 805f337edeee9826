"""The account's fee tier and the chain's order rate limits, read from the node.

**Fee tier.** The chain charges a fill ``fee_ppm`` of its notional, from the tier the
account qualifies for (v4-chain ``protocol/x/feetiers/keeper/keeper.go``
``getUserFeeTier``, main @ ``84d4664``): walking the tiers of ``PerpetualFeeParams`` in
order, the account keeps the LAST tier whose three requirements all hold, and stops at the
first that fails:

- ``maker + taker notional >= absolute_volume_requirement``;
- ``maker + taker notional >= global notional * total_volume_share_requirement_ppm / 1e6``;
- ``maker notional >= global notional * maker_volume_share_requirement_ppm / 1e6``

(integers in quote quantums, 1e-6 USDC; ``lib.BigIntMulPpm`` truncates). The notionals are
the ``x/stats`` module's trailing-window sums (``UserStats{taker_notional,
maker_notional}``, ``GlobalStats{notional_traded}``; the window is ``Params.window_duration``,
30 days on mainnet). Vaults always sit in the top tier and a referred account may get its
affiliate's tier (``feeTierOverrideIdx``): neither is visible in those numbers, so the
chain's own answer (``UserFeeTier``) is read too and wins when the two differ; the
difference is reported. Per-market fee discounts and the staking discount of newer chains
(``GetPerpetualFeePpm``) have no query in v4-proto 8.2.0 and are not included.

**Rate limits.** ``dydxprotocol.clob.Query/BlockRateLimitConfiguration``: short-term
places and cancels per N blocks (a batch cancel weighs 2), stateful orders per N blocks
(v4-chain ``protocol/x/clob/rate_limit/order_rate_limiter.go``). :func:`chain_limiters`
turns them into :class:`~perpbot.exchanges.dydx.limits.BlockRateLimiter` objects.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from perpbot.exchanges.dydx.limits import BlockRateLimiter

PPM = Decimal(1_000_000)
QUOTE_QUANTUMS = Decimal(1_000_000)  # 1 USDC = 1e6 quote quantums
#: weight of one MsgBatchCancel in the short-term limiter (v4-chain ``order_rate_limiter.go``
#: ``BATCH_CANCEL_RATE_LIMIT_WEIGHT``)
BATCH_CANCEL_WEIGHT = 2


@attrs.frozen
class Tier:
    """One row of ``PerpetualFeeParams.tiers`` (``proto/dydxprotocol/feetiers/params.proto``):
    requirements in quote quantums / ppm, fees in ppm (negative: a rebate)."""

    name: str
    absolute_volume_requirement: int
    total_volume_share_requirement_ppm: int
    maker_volume_share_requirement_ppm: int
    maker_fee_ppm: int
    taker_fee_ppm: int

    @classmethod
    def from_proto(cls, t: Any) -> "Tier":
        """From a ``PerpetualFeeTier`` proto."""
        return cls(str(t.name), int(t.absolute_volume_requirement), int(t.total_volume_share_requirement_ppm),
                   int(t.maker_volume_share_requirement_ppm), int(t.maker_fee_ppm), int(t.taker_fee_ppm))


@attrs.frozen
class FeeTier:
    """The account's tier and rates.

    ``maker_rate`` / ``taker_rate`` are Decimal fractions of the notional (``0.0005`` =
    5 bp); ``volume_30d_usd`` is maker + taker notional over the stats window, in USDC;
    ``index`` and ``name`` are the chain's (``UserFeeTier``); ``computed_index`` is what the
    volumes give (they differ for vaults and affiliate overrides); ``next`` describes the
    next tier's volume requirement (None at the top).
    """

    index: int
    name: str
    maker_fee_ppm: int
    taker_fee_ppm: int
    volume_30d_usd: Decimal
    maker_volume_30d_usd: Decimal
    computed_index: int
    next: str | None = None

    @property
    def maker_rate(self) -> Decimal:
        """Maker fee as a fraction (negative: rebate)."""
        return Decimal(self.maker_fee_ppm) / PPM

    @property
    def taker_rate(self) -> Decimal:
        """Taker fee as a fraction."""
        return Decimal(self.taker_fee_ppm) / PPM

    def describe(self) -> str:
        """One line, e.g. ``fee tier 1 (index 0): maker 1.0 bp, taker 5.0 bp; 30-day volume 0 USDC``."""
        bp = Decimal(100)  # ppm -> bp
        line = (f"fee tier {self.name} (index {self.index}): maker {Decimal(self.maker_fee_ppm) / bp:.1f} bp, "
                f"taker {Decimal(self.taker_fee_ppm) / bp:.1f} bp; 30-day volume {self.volume_30d_usd:,.2f} USDC")
        if self.computed_index != self.index:
            line += f" (volume alone gives tier index {self.computed_index}: vault or affiliate override)"
        if self.next:
            line += f"; next: {self.next}"
        return line


def _mul_ppm(x: int, ppm: int) -> int:
    return x * ppm // 1_000_000  # non-negative operands: truncation = floor (lib.BigIntMulPpm)


def select_tier(tiers: list[Tier], maker_notional: int, taker_notional: int, global_notional: int) -> int:
    """Index of the tier the volumes qualify for (rules in the module docstring).

    :param maker_notional, taker_notional: the account's trailing notionals, quote quantums.
    :param global_notional: the chain's trailing notional, quote quantums.
    :raises ValueError: no tiers.
    """
    if not tiers:
        raise ValueError("fee-tier params have no tiers")
    total = maker_notional + taker_notional
    idx = 0
    for i, t in enumerate(tiers):
        if (total < t.absolute_volume_requirement
                or total < _mul_ppm(global_notional, t.total_volume_share_requirement_ppm)
                or maker_notional < _mul_ppm(global_notional, t.maker_volume_share_requirement_ppm)):
            break
        idx = i
    return idx


def fee_tier_from(params: Any, user_stats: Any, global_stats: Any, user_tier: Any | None) -> FeeTier:
    """Build :class:`FeeTier` from the query responses (protos): ``PerpetualFeeParams``,
    ``UserStats``, ``GlobalStats`` and ``QueryUserFeeTierResponse`` (None: use the computed tier).

    :raises ValueError: the params have no tiers.
    """
    tiers = [Tier.from_proto(t) for t in params.tiers]
    maker, taker = int(user_stats.maker_notional), int(user_stats.taker_notional)
    computed = select_tier(tiers, maker, taker, int(global_stats.notional_traded))
    if user_tier is not None and 0 <= int(user_tier.index) < len(tiers):
        index = int(user_tier.index)
        tier = Tier.from_proto(user_tier.tier)
    else:
        index, tier = computed, tiers[computed]
    nxt = None
    if index + 1 < len(tiers):
        t = tiers[index + 1]
        need = Decimal(t.absolute_volume_requirement) / QUOTE_QUANTUMS
        nxt = f"tier {t.name} at {need:,.0f} USDC 30-day volume"
        if t.total_volume_share_requirement_ppm or t.maker_volume_share_requirement_ppm:
            nxt += " and a volume share"
    return FeeTier(index, tier.name, tier.maker_fee_ppm, tier.taker_fee_ppm,
                   Decimal(maker + taker) / QUOTE_QUANTUMS, Decimal(maker) / QUOTE_QUANTUMS, computed, nxt)


async def query_fee_tier(node: Any, address: str) -> FeeTier:
    """Read the fee tier of ``address`` with a dydx-v4-client ``NodeClient`` (call it on the
    node's worker: the client's stubs are synchronous).

    Queries ``feetiers.Query/PerpetualFeeParams`` and ``UserFeeTier``,
    ``stats.Query/UserStats`` and ``GlobalStats``.

    :raises grpc.RpcError: a query failed.
    :raises ValueError: the params have no tiers.
    """
    from v4_proto.dydxprotocol.stats import query_pb2 as stats_query
    from v4_proto.dydxprotocol.stats import query_pb2_grpc as stats_grpc

    params = (await node.get_fee_tiers()).params
    user = (await node.get_user_stats(address)).stats
    glob = stats_grpc.QueryStub(node.channel).GlobalStats(stats_query.QueryGlobalStatsRequest()).stats
    user_tier = await node.get_user_fee_tier(address)
    return fee_tier_from(params, user, glob, user_tier)


async def query_rate_limits(node: Any) -> Any:
    """``clob.Query/BlockRateLimitConfiguration`` (the ``BlockRateLimitConfiguration`` proto)
    with a ``NodeClient`` (on the node's worker).

    :raises grpc.RpcError: the query failed.
    """
    from v4_proto.dydxprotocol.clob import query_pb2 as clob_query
    from v4_proto.dydxprotocol.clob import query_pb2_grpc as clob_grpc

    stub = clob_grpc.QueryStub(node.channel)
    return stub.BlockRateLimitConfiguration(clob_query.QueryBlockRateLimitConfigurationRequest()).block_rate_limit_config


def chain_limiters(config: Any) -> dict[str, BlockRateLimiter]:
    """``{"short_term": ..., "stateful": ...}`` limiters from a ``BlockRateLimitConfiguration``
    (``max_short_term_orders_and_cancels_per_n_blocks``, ``max_stateful_orders_per_n_blocks``;
    the deprecated separate short-term fields of v4-proto 8.2.0 are read too when set)."""
    short = [(r.num_blocks, r.limit) for r in config.max_short_term_orders_and_cancels_per_n_blocks]
    for field in ("max_short_term_orders_per_n_blocks", "max_short_term_order_cancellations_per_n_blocks"):
        short += [(r.num_blocks, r.limit) for r in getattr(config, field, ())]
    stateful = [(r.num_blocks, r.limit) for r in config.max_stateful_orders_per_n_blocks]
    return {"short_term": BlockRateLimiter("short-term places and cancels", short),
            "stateful": BlockRateLimiter("stateful orders", stateful)}


# ------------------------------------------------------------------------------------- TWAP

#: TWAP bounds (v4-chain ``protocol/x/clob/types/message_place_order.go``, main @ ``84d4664``)
TWAP_MIN_DURATION_S, TWAP_MAX_DURATION_S = 300, 86_400
TWAP_MIN_INTERVAL_S, TWAP_MAX_INTERVAL_S = 30, 3_600
TWAP_MAX_PRICE_TOLERANCE_PPM = 1_000_000
#: first chain release with TWAP orders (v4-chain tag ``protocol/v9.0.0`` is the first to
#: contain ``protocol/x/clob/keeper/twap_order_state.go``)
TWAP_MIN_PROTOCOL = (9, 0, 0)


def check_twap_parameters(duration_s: int, interval_s: int, price_tolerance: Decimal) -> int:
    """Validate TWAP parameters as the chain does (``MsgPlaceOrder.ValidateBasic``):
    duration in [300 s, 86400 s], interval in [30 s, 3600 s] and a divisor of the duration,
    price tolerance (a fraction of the oracle price applied to each suborder) in [0, 1).

    :returns: the price tolerance in ppm (rounded down).
    :raises ValueError: one line naming the parameter and the allowed range.
    """
    if not TWAP_MIN_DURATION_S <= int(duration_s) <= TWAP_MAX_DURATION_S:
        raise ValueError(f"--duration: {duration_s} s is outside [{TWAP_MIN_DURATION_S}, {TWAP_MAX_DURATION_S}] s")
    if not TWAP_MIN_INTERVAL_S <= int(interval_s) <= TWAP_MAX_INTERVAL_S:
        raise ValueError(f"--interval: {interval_s} s is outside [{TWAP_MIN_INTERVAL_S}, {TWAP_MAX_INTERVAL_S}] s")
    if int(duration_s) % int(interval_s):
        raise ValueError(f"--interval: {interval_s} s does not divide the duration {duration_s} s")
    ppm = int(Decimal(price_tolerance) * PPM)
    if not 0 <= ppm < TWAP_MAX_PRICE_TOLERANCE_PPM:
        raise ValueError(f"--price-tolerance: {price_tolerance} is outside [0, 1)")
    return ppm


def _version_tuple(text: str) -> tuple[int, ...] | None:
    import re

    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not m:
        return None
    return tuple(int(g or 0) for g in m.groups())


def twap_refusal(node_version: str | None) -> str | None:
    """Why a native TWAP order cannot be sent here, or None when it can.

    Two things are needed: the installed ``v4_proto`` must encode ``Order.twap_parameters``
    (chain ``proto/dydxprotocol/clob/order.proto``: field 12 ``TwapParameters{duration,
    interval, price_tolerance}``, order flag 128), and the node must run protocol
    v9.0.0 or later (``GetNodeInfo`` ``application_version.version``).
    """
    from v4_proto.dydxprotocol.clob import order_pb2

    fields = order_pb2.Order.DESCRIPTOR.fields_by_name
    if "twap_parameters" not in fields:
        import importlib.metadata as md

        try:
            proto_version = md.version("v4-proto")
        except md.PackageNotFoundError:  # pragma: no cover - the package is a dependency
            proto_version = "?"
        f12 = order_pb2.Order.DESCRIPTOR.fields_by_number.get(12)
        return (f"native TWAP orders are refused: the installed v4-proto {proto_version} cannot encode them "
                f"(its Order field 12 is {f12.name if f12 else 'absent'}; the chain's is twap_parameters since "
                f"protocol v9.0.0, v4-chain proto/dydxprotocol/clob/order.proto); no order was sent")
    ver = _version_tuple(node_version or "")
    if ver is None:
        return f"native TWAP orders are refused: the node's protocol version {node_version!r} is unknown"
    if ver < TWAP_MIN_PROTOCOL:
        return (f"native TWAP orders are refused: the node runs protocol {node_version}, TWAP needs "
                f"v{'.'.join(map(str, TWAP_MIN_PROTOCOL))} or later")
    return None
