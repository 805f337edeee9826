"""Helpers for testing score-driven strategies (the sniper, or a third party's).

Plugin authors can copy these: they build the exact objects the bot hands a
strategy (``MarketState`` with a book, ``Scores`` set by hand, ``MarketData``)
without running the bot.

- ``Scene``: a small world of markets with scores, marks, bars, positions and
  open orders; ``scene.market_data(ts_ns)`` builds the view for one cycle.
- ``scores(...)``, ``long_scores(level)``, ``short_scores(level)``: hand-set
  :class:`~perpbot.core.signals.Scores` (warm; 50 unless given).
- ``make_sniper(**params)``: a Sniper with parsed, validated params and a
  context like the bot's.
- ``decide(strategy, md)``: run ``should_execute``/``execute_strategy`` once.
- ``fill_for(order, price, ts_ns)``: the fill an exchange would report.
- ``open_order(...)``: an entry in ``MarketData.open_orders``.
"""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest

from loguru import logger

from perpbot.core.model import Bar, BookSnapshot, Fill, Liquidity, Market, OrderInfo, OrderStatus, OrderType, Position, Side
from perpbot.core.params import parse_params
from perpbot.core.signals import Scores
from perpbot.core.state import MarketData, MarketState
from perpbot.core.strategy import StrategyContext
from perpbot.core.testing import REAL_MARKET_PARAMS, market
from tests.shared_data import shared_root

D = Decimal
NS = 1_000_000_000
T0 = 1_723_161_300 * NS


def scores(**values: Any) -> Scores:
    """A warm :class:`Scores` with every score 50 unless given (e.g. ``scores(momentum=80)``)."""
    s = Scores(warm=True, mode="ticks", samples=100)
    for k, v in values.items():
        setattr(s, k, v)
    if "momentum" in values and "momentum_fast" not in values:
        s.momentum_fast = s.momentum_slow = values["momentum"]
    return s


def long_scores(level: float) -> Scores:
    """Scores whose LONG composite with the default weights is about ``level``."""
    # default weights: mom .40, vol .15, volat .10, book .25, fund .10; vol/volat/fund stay 50
    x = (level - 0.35 * 50) / 0.65  # momentum = orderbook = x
    return scores(momentum=x, orderbook=x)


def short_scores(level: float) -> Scores:
    x = (level - 0.35 * 50) / 0.65
    return scores(momentum=100 - x, orderbook=100 - x)


class Scene:
    """Markets, prices, scores, positions and orders for one strategy test."""

    def __init__(self):
        self.states: dict[str, MarketState] = {}
        self.marks: dict[str, Decimal] = {}
        self.positions: dict[str, Position] = {}
        self.paused: dict[str, str] = {}
        self.open_orders: dict[int, OrderInfo] = {}

    def add(self, ticker: str, price: str | Decimal, sc: Scores | None = None) -> MarketState:
        base = ticker.split(":")[-1]
        mkt = market(base) if base in REAL_MARKET_PARAMS else Market(ticker, 9, "0.01", "0.001")
        st = MarketState(mkt)
        px = D(price)
        tick = mkt.tick_size
        st.apply(BookSnapshot(ticker, T0, ((px - tick, D(5)),), ((px + tick, D(5)),)))
        st.scores = sc
        self.states[ticker] = st
        self.marks[ticker] = px
        return st

    def set_bars(self, ticker: str, returns: list[float], start: float = 100.0, interval_s: int = 60) -> None:
        """Closed 1-minute bars whose close-to-close log returns are ``returns``."""
        st = self.states[ticker]
        p = start
        st.bars.add_bar(Bar(ticker, T0, D(f"{p:.6f}"), D(f"{p:.6f}"), D(f"{p:.6f}"), D(f"{p:.6f}"), D(1), interval_s))
        for i, r in enumerate(returns, 1):
            p *= math.exp(r)
            c = D(f"{p:.6f}")
            st.bars.add_bar(Bar(ticker, T0 + i * interval_s * NS, c, c, c, c, D(1), interval_s))

    def hold(self, ticker: str, size: str | Decimal, entry: str | Decimal) -> None:
        self.positions[ticker] = Position(ticker, D(size), D(entry))

    def flat(self, ticker: str) -> None:
        self.positions.pop(ticker, None)

    def market_data(self, ts_ns: int = T0) -> MarketData:
        return MarketData(
            ts_ns=ts_ns,
            markets=self.states,
            tradable=tuple(t for t in self.states if t not in self.paused),
            paused=dict(self.paused),
            positions={t: p for t, p in self.positions.items() if p.size != 0},
            open_orders=dict(self.open_orders),
            balance=None,
            marks=dict(self.marks),
        )


def fill_for(order, price: str | Decimal, ts_ns: int, size: str | Decimal | None = None, client_id: int = 1) -> Fill:
    """The fill an exchange would report for ``order`` (an OrderParams) at ``price``."""
    sz = D(size) if size is not None else order.size
    px = D(price)
    return Fill(client_id, order.ticker, order.side, px, sz, (px * sz * D("0.0005")).quantize(D("0.000001")),
                Liquidity.TAKER, ts_ns, tag=order.tag)


def decide(strategy, md):
    """One decision cycle (sync wrapper around the async contract); None when should_execute is False."""

    async def run():
        if not await strategy.should_execute(md):
            return None
        return await strategy.execute_strategy(md)

    return asyncio.run(run())


def make_sniper(**params):
    """A Sniper with parsed, validated params (``warmup_s`` 0 unless given) and a bot-like context."""
    from perpbot.strategies.sniper import Sniper, SniperParams

    p = parse_params(SniperParams, {"warmup_s": "0", **params}, "strategy sniper")
    ctx = StrategyContext(tickers=(), clock=None, markets={}, logger=logger.bind(strategy="sniper"))
    return Sniper(p, ctx)


def open_order(client_id: int, ticker: str, side: Side, *, reduce_only: bool = False, tag: str = "sniper-entry") -> OrderInfo:
    """An open order of ours as the bot lists it in ``MarketData.open_orders``."""
    return OrderInfo(client_id, ticker, side, D("0.01"), D("100"), OrderStatus.OPEN, OrderType.LIMIT,
                     reduce_only=reduce_only, tag=tag)


# ---------------------------------------------------------------------------
# the real Binance USD-M L2 sample (BTC+ETH, 6 minutes)
# ---------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[3]
SAMPLE_DIRS = (
    REPO / "examples" / "data" / "binance_usdm",
    shared_root() / "tick_l2" / "hftbacktest_binance" / "binance_usdm",
)
SAMPLE_TICKERS = {"BTCUSDT": "BTC-USD", "ETHUSDT": "ETH-USD"}


def sample_files() -> list[Path]:
    for d in SAMPLE_DIRS:
        found = sorted(d.glob("*usdt_20240808.gz")) if d.is_dir() else []
        if len(found) >= 2:
            return found
    return []


def binance_sample_events() -> Iterator:
    """Every event of the embedded Binance sample, both markets merged on the receive clock.

    Parsed with ``perpbot.exchanges.replay`` (the project's replay parser); skips the test
    when the sample is absent.
    """
    import heapq

    files = sample_files()
    if not files:
        pytest.skip("the Binance USD-M L2 sample (examples/data/binance_usdm) is not present")
    from perpbot.exchanges.replay.binance import BinanceRecording

    def per_file(f):
        for _, batch in BinanceRecording(f, SAMPLE_TICKERS.get).events():
            yield from batch

    return heapq.merge(*(per_file(f) for f in files), key=lambda e: e.ts_ns)


