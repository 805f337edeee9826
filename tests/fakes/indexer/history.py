"""Market history for the fake indexer's candles, historical funding and trades endpoints.

:func:`install_history` fills a :class:`~tests.fakes.indexer.server.FakeIndexer`'s ``candles``,
``funding`` and ``trades`` with a synthetic but well-formed history over a time range, so the
paged history queries (``fromISO``/``toISO``, ``effectiveBeforeOrAt*``, ``createdBeforeOrAt*``,
see ``rest.py``) have days of data to page through. Row shapes are the real REST payloads':

- candle: ``/v4/candles/perpetualMarkets/BTC-USD`` as recorded in
  ``shared/data/dydx_v4/nautilus_rust/http_get_candles.json`` (``startedAt, ticker, resolution,
  low, high, open, close, baseTokenVolume, usdVolume, trades, startingOpenInterest,
  orderbookMidPriceOpen, orderbookMidPriceClose``);
- funding: ``nautilus_rust/http_get_historical_funding.json`` (``ticker, rate, price,
  effectiveAtHeight, effectiveAt``; settlement a few hundred ms after each hour, as recorded);
- trade: ``nautilus_rust/http_get_trades.json`` (``id, side, size, price, type, createdAt,
  createdAtHeight``).

Nothing is read from the shared data folder (the fields are written here), so the history is
the same with ``PERPBOT_NO_SHARED_DATA=1``. Prices are a deterministic walk with Decimal
arithmetic; ``skip`` leaves candle open times out to make gaps.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Iterable

from .protocol import CANDLE_RESOLUTIONS, fmt, iso_now

_RES_S = {"1MIN": 60, "5MINS": 300, "15MINS": 900, "30MINS": 1800, "1HOUR": 3600, "4HOURS": 14400, "1DAY": 86400}
BLOCK_S = 1  # about one block a second on mainnet (heights are only ordered here)


def _height(ts_s: float, base: int = 10_000_000, t0: int = 1_700_000_000) -> int:
    return base + int((ts_s - t0) // BLOCK_S)


def _iso(ts_s: float) -> str:
    return iso_now(ts_s)


def history_rows(ticker: str, start_s: int, end_s: int, *, resolution: str = "5MINS", price: str = "50000",
                 trades_per_hour: int = 4, skip: Iterable[int] = ()) -> tuple[list, list, list]:
    """``(candles, funding, trades)`` of ``ticker`` with ``start_s <= time < end_s`` (epoch seconds), newest first.

    :param resolution: the candles' resolution (one of the indexer's).
    :param skip: candle open times (epoch s) to leave out (gaps).
    """
    assert resolution in CANDLE_RESOLUTIONS, resolution
    step = _RES_S[resolution]
    skip = set(skip)
    px = Decimal(price)
    candles, funding, trades = [], [], []
    t = start_s - start_s % step if start_s % step else start_s
    i = 0
    while t < end_s:
        o = px
        c = (px * (Decimal(1) + Decimal((i * 7919) % 21 - 10) / Decimal(10000))).quantize(Decimal(1))
        hi, lo = max(o, c) + 5, min(o, c) - 5
        if t not in skip and t >= start_s:
            vol = Decimal("1.5") + Decimal(i % 5) / 10
            candles.append({"startedAt": _iso(t), "ticker": ticker, "resolution": resolution, "low": fmt(lo),
                            "high": fmt(hi), "open": fmt(o), "close": fmt(c), "baseTokenVolume": fmt(vol),
                            "usdVolume": fmt(vol * c), "trades": 3 + i % 4, "startingOpenInterest": "381.7348",
                            "orderbookMidPriceOpen": fmt(o), "orderbookMidPriceClose": fmt(c)})
        px = c
        i += 1
        t += step
    h = start_s - start_s % 3600 + (3600 if start_s % 3600 else 0)
    while h < end_s:
        at = h + 0.219  # settlement lands a few hundred ms after the hour (http_get_historical_funding.json)
        funding.append({"ticker": ticker, "rate": fmt(Decimal("0.000002375") * (1 + (h // 3600) % 3)),
                        "price": fmt(px), "effectiveAtHeight": str(_height(at)), "effectiveAt": _iso(at)})
        for k in range(trades_per_hour):
            ts = h + 60 + k * (3600 // max(1, trades_per_hour))
            if start_s <= ts < end_s:
                trades.append({"id": f"{_height(ts):08x}{k:016x}", "side": "BUY" if k % 2 else "SELL",
                               "size": "0.0365", "price": fmt(px), "type": "LIMIT", "createdAt": _iso(ts + 0.59),
                               "createdAtHeight": str(_height(ts))})
        h += 3600
    return candles[::-1], funding[::-1], trades[::-1]


def install_history(ix, tickers: Iterable[str], start_s: int, end_s: int, **kw) -> None:
    """Replace the fake's candles, funding and trades of ``tickers`` with :func:`history_rows` (same keywords)."""
    for n, t in enumerate(tickers):
        kw.setdefault("price", "50000")
        c, f, tr = history_rows(t, start_s, end_s, **{**kw, "price": str(Decimal(kw["price"]) / (n + 1))})
        ix.candles[t] = c
        ix.funding[t] = f
        ix.trades[t] = tr
