"""Shared pieces of the API tests: a strategy that enters and exits on every decision, a run on
an in-memory feed with the paper exchange and the journal, and helpers to read the journal.

The market data is a real-parameter BTC-USD book (``perpbot.core.testing.book_events``) and one
trade per second; the paper exchange fills market orders against that book.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal as D
from pathlib import Path

import pytest

from perpbot.core.bot import TradingBot
from perpbot.core.hookspecs import hookimpl
from perpbot.core.model import OrderParams, OrderType, Side, Trade
from perpbot.core.plugins import PluginManager
from perpbot.core.strategy import BaseStrategy, StrategyResult
from perpbot.core.testing import ListFeed, book_events, bot_config

T0 = 1_723_161_255 * 10**9
S = 10**9
LOT = D("0.001")


def trade_events(n: int, mid: D = D("60000")) -> list:
    """A BTC-USD book snapshot and oracle price, then one trade per second for ``n`` seconds."""
    out = list(book_events("BTC-USD", T0, mid))
    for i in range(1, n):
        out.append(Trade("BTC-USD", T0 + i * S, mid, D("0.01"), Side.BUY if i % 2 else Side.SELL, str(i)))
    return out


class Trader(BaseStrategy):
    """Buys one lot (an entry) on two decisions of three and sells one lot (an exit of the long
    position, not reduce-only) on the third."""

    name = "api_trader"

    def __init__(self, params, context):
        super().__init__(params, context)
        self.n = 0

    async def should_execute(self, market_data) -> bool:
        return True

    async def execute_strategy(self, market_data) -> StrategyResult:
        self.n += 1
        pos = market_data.positions.get("BTC-USD")
        if self.n % 3 == 0 and pos is not None and pos.size >= LOT:
            return StrategyResult.place(OrderParams("BTC-USD", Side.SELL, OrderType.MARKET, size=LOT, tag="exit"),
                                        reason="take one lot off")
        return StrategyResult.place(OrderParams("BTC-USD", Side.BUY, OrderType.MARKET, size=LOT, tag="entry"),
                                    reason="add one lot")


class TestPlugin:
    """Registers the list feed and :class:`Trader`."""

    __name__ = "api-test-plugin"

    @hookimpl
    def register_feeds(self, register):
        register(ListFeed)

    @hookimpl
    def register_strategies(self, register):
        register(Trader)


def make_bot(tmp_path: Path, *extra, seconds: int = 60, journal: bool = True, **cfg) -> TradingBot:
    """A bot trading :class:`Trader` on ``seconds`` of BTC-USD data with the paper exchange and
    (``journal``) a journal at ``tmp_path / "journal.sqlite"``; ``extra`` plugins are added."""
    pm = PluginManager(load_entry_points=False, extra_plugins=(TestPlugin(), *extra))
    base = dict(
        exchange=("paper",),
        strategy="api_trader",
        tickers=("BTC-USD",),
        feed="list",
        state_dir=tmp_path,
        feeds={"list": {"events": trade_events(seconds)}},
        journal_enabled=journal,
        journal_path=tmp_path / "journal.sqlite",
        snapshot_interval_s=D("10"),
    )
    base.update(cfg)
    return TradingBot(bot_config(**base), pm)


def journal_rows(path: Path, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    """Rows of a query on a journal file (read-only)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


@pytest.fixture
def token() -> str:
    """A bearer token for the tests."""
    return "test-token-0123456789abcdef"
