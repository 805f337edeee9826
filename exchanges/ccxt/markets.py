"""A ccxt venue's perpetual markets as the project's :class:`~perpbot.core.model.Market`.

Tickers: ``BASE-USD`` is the linear perpetual swap of ``BASE`` settled in the venue's quote
(:attr:`VenueProfile.quote`: ``BTC-USD`` -> ``BTC/USDT:USDT`` on Binance USD-M,
``BTC/USDC:USDC`` on Hyperliquid); ``BASE-QUOTE`` names another settlement currency
(``BTC-USDC`` -> ``BTC/USDC:USDC`` on Binance).

Fields, from ccxt's unified market structure (docs.ccxt.com "Market structure"; ccxt sets
``precisionMode`` TICK_SIZE for these venues, so ``precision`` holds increments):

- ``tick_size`` = ``precision.price``; ``step_size`` = ``precision.amount`` (base units times
  ``contractSize``: Binance and Hyperliquid contracts are 1 base unit);
- ``min_qty`` = ``limits.amount.min``; ``min_notional`` = ``limits.cost.min`` (Binance's
  ``MIN_NOTIONAL`` filter, e.g. 100 USDT on BTCUSDT);
- margin: Binance's ``exchangeInfo`` symbol fields ``requiredMarginPercent`` /
  ``maintMarginPercent`` (percent of notional); else ``limits.leverage.max`` (Hyperliquid's
  ``maxLeverage``) with IMF = 1 / max leverage and MMF = IMF / 2 (Hyperliquid docs "Trading /
  Liquidations": maintenance margin is half the initial margin at maximum leverage);
- ``funding_interval_h``: Binance's ``/fapi/v1/fundingInfo`` ``fundingIntervalHours``
  (ccxt ``fetch_funding_intervals``) where listed, else the venue profile's interval.

Every number goes through ``Decimal(str(x))``: ccxt parses the venue's strings to floats,
and ``str`` of a float is its shortest round-tripping decimal, the venue's own text.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

import attrs

from perpbot.core.model import Market
from perpbot.exchanges.ccxt.venues import VenueProfile

D = Decimal


def dec(x: Any, name: str = "value") -> Decimal:
    """``Decimal(str(x))`` for a ccxt number or numeric string.

    :raises ValueError: for None, a non-number or a non-finite value, naming ``name``.
    """
    if x is None or isinstance(x, bool):
        raise ValueError(f"{name}: no value")
    try:
        d = D(str(x))
    except Exception:
        raise ValueError(f"{name}: not a number: {x!r}") from None
    if not d.is_finite():
        raise ValueError(f"{name}: not finite: {x!r}")
    return d


@attrs.frozen
class VenueMarket:
    """One perpetual market of a ccxt venue.

    :param ticker: the run's ticker (``BTC-USD``). :param symbol: ccxt's (``BTC/USDT:USDT``).
    :param market_id: the venue's id (``BTCUSDT``).
    :param tick_size: / ``step_size``: price (quote currency) and size (base units) increments.
    :param min_qty: smallest size, base units. :param min_notional: smallest notional, quote units (0: none).
    :param contract_size: base units per contract. :param max_leverage: 1 / IMF.
    :param funding_interval_h: hours between funding settlements.
    :param market: the :class:`~perpbot.core.model.Market` the bot, sizer and paper simulator use.
    """

    ticker: str
    symbol: str
    market_id: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    min_notional: Decimal
    contract_size: Decimal
    max_leverage: Decimal
    funding_interval_h: int
    market: Market


def ticker_of(m: Mapping, profile: VenueProfile) -> str:
    """The run's ticker for ccxt market ``m``: ``BASE-USD`` in the venue's quote, else ``BASE-SETTLE``."""
    base = str(m["base"]).upper()
    settle = str(m.get("settle") or m.get("quote")).upper()
    return f"{base}-USD" if settle == profile.quote else f"{base}-{settle}"


def _margins(m: Mapping) -> tuple[Decimal, Decimal]:
    info = m.get("info") or {}
    if info.get("requiredMarginPercent") and info.get("maintMarginPercent"):  # Binance exchangeInfo
        return dec(info["requiredMarginPercent"], "requiredMarginPercent") / 100, dec(info["maintMarginPercent"], "maintMarginPercent") / 100
    lev = ((m.get("limits") or {}).get("leverage") or {}).get("max")
    imf = D(1) / dec(lev, "limits.leverage.max") if lev else D("0.05")
    return imf, imf / 2


def to_venue_market(m: Mapping, index: int, profile: VenueProfile, intervals: Mapping[str, int]) -> VenueMarket:
    """Map one ccxt market to a :class:`VenueMarket` (fields and sources: module docstring).

    :param index: a stable small integer for ``Market.clob_pair_id`` (the market's position).
    :param intervals: ccxt symbol -> funding interval hours where the venue publishes one.
    :raises ValueError: a missing or non-numeric precision, naming the field and the symbol.
    """
    sym = m["symbol"]
    prec = m.get("precision") or {}
    limits = m.get("limits") or {}
    csize = dec(m.get("contractSize") or 1, f"{sym} contractSize")
    tick = dec(prec.get("price"), f"{sym} precision.price")
    step = dec(prec.get("amount"), f"{sym} precision.amount") * csize
    min_qty = dec((limits.get("amount") or {}).get("min") or step, f"{sym} limits.amount.min") * csize
    cost_min = (limits.get("cost") or {}).get("min")
    min_notional = dec(cost_min, f"{sym} limits.cost.min") if cost_min else D(0)
    imf, mmf = _margins(m)
    ticker = ticker_of(m, profile)
    market = Market(ticker=ticker, clob_pair_id=index, tick_size=tick, step_size=max(step, min_qty),
                    initial_margin_fraction=imf, maintenance_margin_fraction=mmf,
                    status="ACTIVE" if m.get("active", True) is not False else "PAUSED")
    return VenueMarket(ticker, sym, str(m["id"]), tick, step, min_qty, min_notional, csize,
                       (D(1) / imf).quantize(D("0.01")), int(intervals.get(sym, profile.funding_interval_h)), market)


def perpetuals(markets: Mapping[str, Mapping], profile: VenueProfile, intervals: Mapping[str, int]) -> dict[str, VenueMarket]:
    """Ticker -> :class:`VenueMarket` for every active linear perpetual swap in ccxt's ``markets``."""
    out: dict[str, VenueMarket] = {}
    rows = [m for m in markets.values() if m.get("swap") and m.get("linear") and m.get("active", True) is not False]
    for i, m in enumerate(sorted(rows, key=lambda r: r["symbol"])):
        vm = to_venue_market(m, i, profile, intervals)
        out.setdefault(vm.ticker, vm)
    return out


def parse_interval(text: Any) -> int | None:
    """``"8h"`` / ``8`` -> 8 (hours); None for anything else."""
    if text is None:
        return None
    s = str(text).strip().lower().rstrip("h")
    return int(s) if s.isdigit() and int(s) > 0 else None


class MarketTable:
    """A venue's markets, loaded once (synchronously, before the run) and shared by feed and exchange.

    :param profile: the venue profile. :param make_sync_client: ``() -> ccxt`` synchronous client.
    """

    def __init__(self, profile: VenueProfile, make_sync_client: Any):
        self.profile = profile
        self._make = make_sync_client
        self.by_ticker: dict[str, VenueMarket] = {}

    def load(self) -> dict[str, VenueMarket]:
        """Fetch the venue's markets and funding intervals (once; blocking: call before the loop runs).

        :raises ccxt.BaseError: the venue could not be reached (the caller maps it).
        """
        if self.by_ticker:
            return self.by_ticker
        client = self._make()
        try:
            markets = client.load_markets()
            intervals: dict[str, int] = {}
            if client.has.get("fetchFundingIntervals"):
                for sym, row in (client.fetch_funding_intervals() or {}).items():
                    h = parse_interval(row.get("interval"))
                    if h:
                        intervals[sym] = h
            self.by_ticker = perpetuals(markets, self.profile, intervals)
        finally:
            close = getattr(client, "close", None)
            if close is not None:
                close()
        return self.by_ticker

    def load_or_fail(self, venue: str) -> dict[str, VenueMarket]:
        """:meth:`load`, with a failure as one line naming the venue.

        :raises TemporaryExchangeError: the venue could not be reached (ccxt ``NetworkError``).
        :raises ExchangeError: the venue refused (any other ccxt error), with its message.
        """
        import ccxt

        from perpbot.core.errors import ExchangeError, TemporaryExchangeError

        try:
            return self.load()
        except ccxt.NetworkError as exc:
            raise TemporaryExchangeError(f"venue {venue} ({self.profile.ccxt_id}): cannot load markets: "
                                         f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
        except ccxt.BaseError as exc:
            raise ExchangeError(f"venue {venue} ({self.profile.ccxt_id}): cannot load markets: "
                                f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None

    def get(self, ticker: str) -> VenueMarket | None:
        """The market of ``ticker`` (loaded), or None."""
        return self.by_ticker.get(ticker)

    def by_symbol(self, symbol: str) -> VenueMarket | None:
        """The market of ccxt ``symbol``, or None."""
        for vm in self.by_ticker.values():
            if vm.symbol == symbol:
                return vm
        return None
