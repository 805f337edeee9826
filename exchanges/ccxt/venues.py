"""ccxt venues: which ccxt id a venue name selects, and each venue's published trading rules.

A venue is chosen as ``NAME=ccxt:ID`` (``binance=ccxt:binanceusdm``). :func:`resolve_venue`
checks the id against ``ccxt.exchanges`` (the closest name is given for a typo) and that the
venue lists perpetual swaps (``has["swap"]``). :data:`PROFILES` holds what the plugin needs
beyond ccxt's own description: the settlement currency a ``BASE-USD`` ticker maps to, the
base-tier fees, the funding interval when the venue does not publish one per market, the
names of the credentials, and whether a loopback fake in ``tests/fakes/ccxt`` covers it.

Sources of each fee and interval (base tier, perpetuals; checked 2026):

- Binance USD-M: maker 0.0200 %, taker 0.0500 % (VIP 0, USDT-margined,
  binance.com/en/fee/futureFee); funding every 8 h unless ``/fapi/v1/fundingInfo`` lists the
  symbol with its ``fundingIntervalHours`` (Binance USD-M API "Get Funding Rate Info";
  ccxt ``binance.fetch_funding_intervals``).
- Hyperliquid: maker 0.015 %, taker 0.045 % (tier 0, hyperliquid.gitbook.io/hyperliquid-docs
  "Trading / Fees"); funding paid every hour ("Trading / Funding").
- Bybit: maker 0.0200 %, taker 0.0550 % (non-VIP derivatives, bybit.com "Trading Fee
  Structure"); 8 h by default.
- OKX: maker 0.020 %, taker 0.050 % (regular user LV1 perpetuals, okx.com/fees); 8 h.

Margin rules come from the venue's market data (see :mod:`perpbot.exchanges.ccxt.markets`).
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from perpbot.core.errors import ConfigError
from perpbot.core.params import did_you_mean

D = Decimal


@attrs.frozen
class VenueProfile:
    """What the plugin knows of one ccxt venue beyond ccxt's ``describe()``.

    :param ccxt_id: the ccxt class name (``binanceusdm``).
    :param quote: settlement currency a ``BASE-USD`` ticker maps to (``USDT``, ``USDC``).
    :param maker_fee: / ``taker_fee``: base-tier fee per fill, a fraction of notional (cited above).
    :param funding_interval_h: funding interval, hours, when the venue gives none per market.
    :param credentials: ccxt credential fields this venue needs (``apiKey``/``secret`` or
        ``walletAddress``/``privateKey``), in the order of their environment variables.
    :param tested: True when tests/fakes/ccxt has a loopback fake of the venue's protocol.
    :param sandbox: True when ccxt has a sandbox (testnet) mode for it.
    """

    ccxt_id: str
    quote: str
    maker_fee: Decimal
    taker_fee: Decimal
    funding_interval_h: int = 8
    credentials: tuple = ("apiKey", "secret")
    tested: bool = False
    sandbox: bool = True


PROFILES: dict[str, VenueProfile] = {
    "binanceusdm": VenueProfile("binanceusdm", "USDT", D("0.0002"), D("0.0005"), 8, tested=True),
    "hyperliquid": VenueProfile("hyperliquid", "USDC", D("0.00015"), D("0.00045"), 1,
                                credentials=("walletAddress", "privateKey"), tested=True),
    "bybit": VenueProfile("bybit", "USDT", D("0.0002"), D("0.00055"), 8),
    "okx": VenueProfile("okx", "USDT", D("0.0002"), D("0.0005"), 8),
}

#: environment variable suffix of each ccxt credential field (``PERPBOT_<VENUE>_<SUFFIX>``)
ENV_SUFFIX = {"apiKey": "API_KEY", "secret": "SECRET", "walletAddress": "WALLET_ADDRESS",
              "privateKey": "PRIVATE_KEY", "password": "PASSWORD"}


def tested_venues() -> tuple[str, ...]:
    """ccxt ids the plugin has loopback fakes and tests for (shown by ``runbot.py plugins``)."""
    return tuple(sorted(v for v, p in PROFILES.items() if p.tested))


def resolve_venue(ccxt_id: str, venue: str) -> VenueProfile:
    """The profile of ccxt venue ``ccxt_id`` serving the run's venue ``venue``.

    A venue ccxt knows but :data:`PROFILES` does not is accepted with ccxt's own default
    fees and quote (its ``fees["trading"]`` and USDT) and an 8 h interval.

    :raises ConfigError: an empty id, an id ccxt does not know (closest name from
        ``ccxt.exchanges``), or a venue without perpetual swaps (``has["swap"]`` false).
    """
    import ccxt

    cid = (ccxt_id or "").strip().lower()
    if not cid:
        raise ConfigError(f"--exchange: venue {venue!r} names no ccxt venue: write {venue}=ccxt:ID, e.g. {venue}=ccxt:binanceusdm")
    if cid not in ccxt.exchanges:
        raise ConfigError(f"--exchange: unknown ccxt venue {cid!r} for venue {venue!r}{did_you_mean(cid, ccxt.exchanges)}")
    cls = getattr(ccxt, cid)
    has = cls().describe().get("has", {})
    if not has.get("swap"):
        raise ConfigError(f"--exchange: ccxt venue {cid!r} lists no perpetual swaps (has['swap'] is {has.get('swap')!r}); "
                          f"choose a derivatives venue such as binanceusdm, bybit, okx or hyperliquid")
    prof = PROFILES.get(cid)
    if prof is not None:
        return prof
    fees = cls().describe().get("fees", {}).get("trading", {})
    return VenueProfile(cid, "USDT", D(str(fees.get("maker", "0.0002"))), D(str(fees.get("taker", "0.0005"))))
