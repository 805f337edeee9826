"""Test helper (imported by the paper tests): a small stand-in for the bot around the paper exchange: market states, a simulated
clock, and the list of account events the exchange emitted (the bot would book them)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from perpbot.core.clock import SimulatedClock
from perpbot.core.exchange import ExchangeContext
from perpbot.core.model import (
    Bar,
    BookDelta,
    BookSnapshot,
    Fill,
    FundingPayment,
    FundingRate,
    Liquidation,
    Market,
    OraclePrice,
    OrderRequest,
    OrderUpdate,
    Side,
    Trade,
)
from perpbot.core.state import MarketState
from perpbot.exchanges.paper import PaperExchange

D = Decimal
T0 = 1_700_000_000 * 1_000_000_000  # 2023-11-14 22:13:20 UTC
S = 1_000_000_000

#: dYdX-shaped markets with the documentation's round fractions (IMF 5%, MMF 3%)
MARKETS = {
    "BTC-USD": dict(clob_pair_id=0, tick_size="1", step_size="0.0001", atomic_resolution=-10,
                    quantum_conversion_exponent=-9, step_base_quantums=1_000_000, subticks_per_tick=100_000,
                    initial_margin_fraction="0.05", maintenance_margin_fraction="0.03"),
    "ETH-USD": dict(clob_pair_id=1, tick_size="0.1", step_size="0.001", atomic_resolution=-9,
                    quantum_conversion_exponent=-9, step_base_quantums=1_000_000, subticks_per_tick=100_000,
                    initial_margin_fraction="0.05", maintenance_margin_fraction="0.03"),
}


def make_market(ticker: str, **over) -> Market:
    kw = dict(MARKETS[ticker])
    kw.update(over)
    return Market(ticker=ticker, **kw)


class Harness:
    """Feeds events like the bot: advance the clock, apply to the state, then the exchange."""

    def __init__(self, config: dict | None = None, tickers=("BTC-USD",), markets: dict | None = None, start_ns: int = T0):
        self.clock = SimulatedClock(start_ns)
        mk = markets or {t: make_market(t) for t in tickers}
        self.states = {t: MarketState(m, book_depth=None) for t, m in mk.items()}
        self.ctx = ExchangeContext(
            clock=self.clock,
            markets=dict(mk),
            book_of=lambda t: self.states[t].book if t in self.states else None,
            state_of=lambda t: self.states.get(t),
            options={"venue": "paper"},
        )
        self.ex = PaperExchange(config or {}, self.ctx)
        self.events: list[Any] = []
        self.ex.set_event_sink(self.events.append)
        self.now = start_ns

    # -- market data --------------------------------------------------------
    def feed(self, ev) -> None:
        self.now = max(self.now, ev.ts_ns)
        self.clock.advance_to(ev.ts_ns)
        self.states[ev.ticker].apply(ev)
        self.ex.on_market_event(ev)

    def at(self, dt_s: float) -> int:
        """A timestamp ``dt_s`` seconds after the start."""
        return T0 + int(D(str(dt_s)) * S)

    def book(self, bids, asks, ticker="BTC-USD", ts=None) -> None:
        ts = self.now if ts is None else ts
        self.feed(BookSnapshot(ticker, ts, tuple((D(p), D(s)) for p, s in bids), tuple((D(p), D(s)) for p, s in asks)))

    def delta(self, bids=(), asks=(), ticker="BTC-USD", ts=None) -> None:
        ts = self.now if ts is None else ts
        self.feed(BookDelta(ticker, ts, tuple((D(p), D(s)) for p, s in bids), tuple((D(p), D(s)) for p, s in asks)))

    def trade(self, price, size, side, ticker="BTC-USD", ts=None) -> None:
        ts = self.now if ts is None else ts
        self.feed(Trade(ticker, ts, D(price), D(size), Side.parse(side)))

    def oracle(self, price, ticker="BTC-USD", ts=None) -> None:
        ts = self.now if ts is None else ts
        self.feed(OraclePrice(ticker, ts, D(price)))

    def funding(self, rate_1h, settled=True, ticker="BTC-USD", ts=None, interval_h=1, oracle_price=None) -> None:
        ts = self.now if ts is None else ts
        self.feed(FundingRate(ticker, ts, D(rate_1h), settled, interval_h, D(oracle_price) if oracle_price else None))

    def bar(self, o, h, l, c, v="100", ticker="BTC-USD", ts=None, interval_s=300) -> None:
        ts = self.now if ts is None else ts
        self.feed(Bar(ticker, ts, D(o), D(h), D(l), D(c), D(v), interval_s))

    # -- orders -----------------------------------------------------------------
    _cid = 0

    def order(self, side, size, ticker="BTC-USD", **kw):
        Harness._cid += 1
        cid = kw.pop("client_id", Harness._cid)
        req = OrderRequest(client_id=cid, ticker=ticker, side=Side.parse(side), size=D(str(size)), **kw)
        return self.ex.submit(req)

    # -- event views --------------------------------------------------------------
    def of(self, cls) -> list:
        return [e for e in self.events if isinstance(e, cls)]

    def fills(self, client_id=None) -> list[Fill]:
        return [f for f in self.of(Fill) if client_id is None or f.client_id == client_id]

    def updates(self, client_id=None) -> list[OrderUpdate]:
        return [u for u in self.of(OrderUpdate) if client_id is None or u.client_id == client_id]

    def statuses(self, client_id) -> list[str]:
        return [u.status.value for u in self.updates(client_id)]

    @property
    def funding_payments(self) -> list[FundingPayment]:
        return self.of(FundingPayment)

    @property
    def liquidations(self) -> list[Liquidation]:
        return self.of(Liquidation)
