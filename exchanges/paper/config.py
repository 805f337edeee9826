"""Configuration of the paper exchange (``[exchange.paper]``), validated at construction.

Every key is optional. Numbers are exact decimals (TOML floats are read as
Decimal by the config loader; strings are accepted; a Python ``float`` is refused).
A bad value raises a one-line :class:`~perpbot.core.errors.ConfigError` naming the key
and the value.

=========================  ===========  =====================================================
key                        default      meaning
=========================  ===========  =====================================================
collateral                 "10000"      starting USDC collateral of subaccount 0, USD
maker_fee / taker_fee      (tier 1)     flat fee rates (fractions; 0.0001 = 1 bp). Setting
                                        either one (without ``fee_tiers``) gives ONE flat tier.
fee_tiers                  dYdX         list of ``{min_volume_30d, maker, taker}`` (USD, rates);
                                        the tier with the highest ``min_volume_30d`` <= the
                                        account's 30-day rolling volume applies. Default: dYdX
                                        ``StandardParams`` tiers 1-5 (below).
volume_30d                 "0"          30-day volume already traded at start, USD (to start in
                                        a higher tier; it ages out 30 days after the start)
latency_ms                 0            clock time between ``place_order``/``cancel_order`` and
                                        the order reaching the book (acted on at the first market
                                        event at/after arrival)
queue_position             true         maker orders fill on at-the-price trades only after the
                                        volume ahead of them at that level traded
bar_fill_model             conservative the only model for bar-only data (see exchange docs)
max_slippage               "0.05"       market orders: worst price = best +/- this fraction (the
                                        dydx-v4-client 1.1.5 example uses 5%)
margin_mode                "cross"      default for orders: cross or isolated (an order's own
                                        ``margin_mode`` ISOLATED always wins)
funding_grace_s            60           a top-of-hour payment is settled at the first event this
                                        many seconds after the hour, so a settled rate published
                                        just after the hour is used
funding_settlement         "chain"      "chain": through dYdX's funding index with the chain's
                                        integer truncations (1 BTC, 65,000, 100 ppm/8 h pays
                                        0.81); "notional": -size * price * rate_1h, floored per
                                        subaccount to 1e-6 USD (for another venue's rules)
max_liquidation_fee_ppm    15000        chain genesis default (1.5%)
fills_kept                 100000       fills remembered for ``get_fills_since``
=========================  ===========  =====================================================

Default fee tiers: chain ``protocol/x/feetiers/types/genesis.go`` ``StandardParams``
(docs/dydx-v4.md section 3): taker 5 / 4.5 / 4 / 3.5 / 3 bp and maker 1 / 1 / 0.5 / 0 / 0 bp at
30-day volume >= $0 / $1M / $5M / $25M / $125M. The chain's tiers 6-9 (taker 2.5 bp, maker
-0.5 / -0.9 / -1.1 / -1.1 bp) also require a share of the whole exchange's volume, which a
simulator cannot know, so they are not in the default table; add them to ``fee_tiers``
to simulate a market maker with rebates (negative maker rates are allowed).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

import attrs

from perpbot.core.errors import ConfigError
from perpbot.core.params import parse_bool, parse_decimal
from perpbot.core.model import MarginMode

D = Decimal


@attrs.frozen
class FeeTier:
    """One fee tier: applies from ``min_volume_30d`` USD of 30-day volume; rates are fractions."""

    min_volume_30d: Decimal
    maker: Decimal
    taker: Decimal
    name: str = ""


#: chain ``protocol/x/feetiers/types/genesis.go`` ``StandardParams``, tiers 1-5
#: (AbsoluteVolumeRequirement in quote quantums / 1e6 = USD; fee ppm / 1e6).
DYDX_STANDARD_TIERS: tuple[FeeTier, ...] = (
    FeeTier(D(0), D("0.0001"), D("0.0005"), "1"),
    FeeTier(D(1_000_000), D("0.0001"), D("0.00045"), "2"),
    FeeTier(D(5_000_000), D("0.00005"), D("0.0004"), "3"),
    FeeTier(D(25_000_000), D(0), D("0.00035"), "4"),
    FeeTier(D(125_000_000), D(0), D("0.0003"), "5"),
)

KNOWN_KEYS = frozenset(
    {
        "collateral",
        "maker_fee",
        "taker_fee",
        "fee_tiers",
        "volume_30d",
        "latency_ms",
        "queue_position",
        "bar_fill_model",
        "max_slippage",
        "margin_mode",
        "funding_grace_s",
        "funding_settlement",
        "max_liquidation_fee_ppm",
        "fills_kept",
    }
)

BAR_FILL_MODELS = ("conservative",)
FUNDING_SETTLEMENTS = ("chain", "notional")


def _dec(key: str, value: Any) -> Decimal:
    try:
        return parse_decimal(value)
    except ValueError as exc:
        raise ConfigError(f"exchange.paper: {key} = {value!r}: {exc}") from None


def _int(key: str, value: Any, minimum: int = 0) -> int:
    d = _dec(key, value)
    if d != d.to_integral_value():
        raise ConfigError(f"exchange.paper: {key} = {value!r}: expected a whole number")
    if d < minimum:
        raise ConfigError(f"exchange.paper: {key} = {value!r}: must be >= {minimum}")
    return int(d)


def _bool(key: str, value: Any) -> bool:
    try:
        return parse_bool(value)
    except ValueError:
        raise ConfigError(f"exchange.paper: {key} = {value!r}: expected true or false") from None


def _rate(key: str, value: Any) -> Decimal:
    d = _dec(key, value)
    if not (D("-0.01") <= d <= D("0.1")):
        raise ConfigError(f"exchange.paper: {key} = {value!r}: a fee rate is a fraction in [-0.01, 0.1] (0.0005 = 5 bp)")
    return d


def _fee_tiers(value: Any) -> tuple[FeeTier, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"exchange.paper: fee_tiers = {value!r}: expected a non-empty list of tables")
    tiers = []
    for i, row in enumerate(value):
        if not isinstance(row, Mapping):
            raise ConfigError(f"exchange.paper: fee_tiers[{i}] = {row!r}: expected a table {{min_volume_30d, maker, taker}}")
        missing = {"min_volume_30d", "maker", "taker"} - set(row)
        if missing:
            raise ConfigError(f"exchange.paper: fee_tiers[{i}] = {dict(row)!r}: missing {', '.join(sorted(missing))}")
        vol = _dec(f"fee_tiers[{i}].min_volume_30d", row["min_volume_30d"])
        if vol < 0:
            raise ConfigError(f"exchange.paper: fee_tiers[{i}].min_volume_30d = {row['min_volume_30d']!r}: must be >= 0")
        maker = _rate(f"fee_tiers[{i}].maker", row["maker"])
        taker = _rate(f"fee_tiers[{i}].taker", row["taker"])
        if maker + taker < 0:
            raise ConfigError(
                f"exchange.paper: fee_tiers[{i}]: maker {maker} + taker {taker} < 0 would pay traders to trade with themselves"
            )
        tiers.append(FeeTier(vol, maker, taker, str(row.get("name", i + 1))))
    tiers.sort(key=lambda t: t.min_volume_30d)
    if tiers[0].min_volume_30d != 0:
        raise ConfigError(
            f"exchange.paper: fee_tiers: the lowest tier must start at min_volume_30d = 0, got {tiers[0].min_volume_30d}"
        )
    return tuple(tiers)


@attrs.frozen
class PaperConfig:
    """Validated settings of :class:`~perpbot.exchanges.paper.exchange.PaperExchange` (see module docs)."""

    collateral: Decimal = D("10000")
    fee_tiers: tuple = DYDX_STANDARD_TIERS
    volume_30d: Decimal = D(0)
    latency_ms: int = 0
    queue_position: bool = True
    bar_fill_model: str = "conservative"
    max_slippage: Decimal = D("0.05")
    margin_mode: MarginMode = MarginMode.CROSS
    funding_grace_s: int = 60
    funding_settlement: str = "chain"
    max_liquidation_fee_ppm: int = 15_000
    fills_kept: int = 100_000
    unknown_keys: tuple = ()

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | None) -> "PaperConfig":
        """Parse and validate ``[exchange.paper]``.

        :raises ConfigError: naming the key and the value.
        """
        cfg = dict(config or {})
        kw: dict[str, Any] = {}
        if "collateral" in cfg:
            c = _dec("collateral", cfg["collateral"])
            if c < 0:
                raise ConfigError(f"exchange.paper: collateral = {cfg['collateral']!r}: must be >= 0 USD")
            kw["collateral"] = c
        if "fee_tiers" in cfg and cfg["fee_tiers"] is not None:
            if "maker_fee" in cfg or "taker_fee" in cfg:
                raise ConfigError(
                    "exchange.paper: set either fee_tiers or maker_fee/taker_fee, not both "
                    f"(fee_tiers = {cfg['fee_tiers']!r}, maker_fee = {cfg.get('maker_fee')!r}, taker_fee = {cfg.get('taker_fee')!r})"
                )
            kw["fee_tiers"] = _fee_tiers(cfg["fee_tiers"])
        elif "maker_fee" in cfg or "taker_fee" in cfg:
            maker = _rate("maker_fee", cfg.get("maker_fee", DYDX_STANDARD_TIERS[0].maker))
            taker = _rate("taker_fee", cfg.get("taker_fee", DYDX_STANDARD_TIERS[0].taker))
            if maker + taker < 0:
                raise ConfigError(f"exchange.paper: maker_fee {maker} + taker_fee {taker} < 0 is not allowed")
            kw["fee_tiers"] = (FeeTier(D(0), maker, taker, "flat"),)
        if "volume_30d" in cfg:
            v = _dec("volume_30d", cfg["volume_30d"])
            if v < 0:
                raise ConfigError(f"exchange.paper: volume_30d = {cfg['volume_30d']!r}: must be >= 0 USD")
            kw["volume_30d"] = v
        if "latency_ms" in cfg:
            kw["latency_ms"] = _int("latency_ms", cfg["latency_ms"], 0)
        if "queue_position" in cfg:
            kw["queue_position"] = _bool("queue_position", cfg["queue_position"])
        if "bar_fill_model" in cfg:
            m = str(cfg["bar_fill_model"]).strip().lower()
            if m not in BAR_FILL_MODELS:
                raise ConfigError(
                    f"exchange.paper: bar_fill_model = {cfg['bar_fill_model']!r}: expected one of {', '.join(BAR_FILL_MODELS)}"
                )
            kw["bar_fill_model"] = m
        if "max_slippage" in cfg:
            s = _dec("max_slippage", cfg["max_slippage"])
            if not (D(0) < s < D(1)):
                raise ConfigError(f"exchange.paper: max_slippage = {cfg['max_slippage']!r}: must be a fraction in (0, 1)")
            kw["max_slippage"] = s
        if "margin_mode" in cfg:
            m = str(cfg["margin_mode"]).strip().upper()
            try:
                kw["margin_mode"] = MarginMode(m)
            except ValueError:
                raise ConfigError(
                    f"exchange.paper: margin_mode = {cfg['margin_mode']!r}: expected cross or isolated"
                ) from None
        if "funding_grace_s" in cfg:
            kw["funding_grace_s"] = _int("funding_grace_s", cfg["funding_grace_s"], 0)
            if kw["funding_grace_s"] >= 3600:
                raise ConfigError(f"exchange.paper: funding_grace_s = {cfg['funding_grace_s']!r}: must be < 3600")
        if "funding_settlement" in cfg:
            m = str(cfg["funding_settlement"]).strip().lower()
            if m not in FUNDING_SETTLEMENTS:
                raise ConfigError(
                    f"exchange.paper: funding_settlement = {cfg['funding_settlement']!r}: expected one of "
                    f"{', '.join(FUNDING_SETTLEMENTS)}"
                )
            kw["funding_settlement"] = m
        if "max_liquidation_fee_ppm" in cfg:
            kw["max_liquidation_fee_ppm"] = _int("max_liquidation_fee_ppm", cfg["max_liquidation_fee_ppm"], 0)
            if kw["max_liquidation_fee_ppm"] > 1_000_000:
                raise ConfigError(
                    f"exchange.paper: max_liquidation_fee_ppm = {cfg['max_liquidation_fee_ppm']!r}: must be <= 1000000"
                )
        if "fills_kept" in cfg:
            kw["fills_kept"] = _int("fills_kept", cfg["fills_kept"], 1)
        kw["unknown_keys"] = tuple(sorted(set(cfg) - KNOWN_KEYS))
        return cls(**kw)
