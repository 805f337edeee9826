"""The API's response and request bodies (pydantic), which make its OpenAPI schema.

Conventions: money, prices, sizes and rates are JSON strings holding the exact decimal
(``"67012.5"``; :func:`perpbot.core.metrics.plain`), never binary floats; scores (0-100),
fractions and seconds are numbers; times are integers, ns since the epoch (the bot clock's:
market time in a replay). A missing figure is ``null`` with, where useful, a note saying why.
Imports pydantic only.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, Field

Dec = Optional[str]


class ErrorBody(BaseModel):
    """Every 4xx answer: one line saying what was wrong and, when there is one, what to do."""

    error: str


class FeedHealth(BaseModel):
    """Market data of one venue: ``connected`` the feed's own flag (null: it has none),
    ``last_event_ns`` the newest event of the venue's markets, ``last_message_age_s`` its
    age in wall seconds (0 for a replay), ``paused`` ticker -> why the bot does not decide on
    it now, ``circuit_open`` why the venue's order circuit breaker is open (null: closed)."""

    venue: str
    feed: str
    connected: Optional[bool] = None
    markets: list[str] = []
    last_event_ns: int = 0
    last_message_age_s: Optional[float] = None
    paused: dict[str, str] = {}
    circuit_open: Optional[str] = None
    resyncs: Optional[int] = None
    reconnects: Optional[int] = None


class Status(BaseModel):
    """The run at a glance. ``mode`` ``bot`` (served by a running bot) or ``journal`` (read
    from a journal file); ``control`` whether the control endpoints can act (a bot, running,
    with a token configured); ``progress`` the replay's done fraction (null: live or unknown)."""

    mode: Literal["bot", "journal"]
    run_id: str
    strategy: str
    venues: list[str]
    ts_ns: int
    simulated_clock: bool
    running: bool
    stop_reason: str = ""
    halted: Optional[str] = None
    entries_paused: Optional[str] = None
    events: int = 0
    decisions: int = 0
    orders_sent: int = 0
    orders_rejected: int = 0
    open_orders: int = 0
    equity: Dec = None
    start_equity: Dec = None
    peak_equity: Dec = None
    drawdown_frac: Optional[float] = None
    progress: Optional[float] = None
    feeds: list[FeedHealth] = []
    control: bool = False
    event_clients: int = 0
    event_clients_dropped: int = 0


class MarketOut(BaseModel):
    """One market: prices USD, ``spread_bps`` basis points of the mid, ``scores`` name -> 0-100,
    ``composite`` the strategy's composite score and ``rank`` by it (1 = best), funding per hour."""

    ticker: str
    venue: str
    price: Dec = None
    bid: Dec = None
    ask: Dec = None
    spread_bps: Optional[float] = None
    scores: dict[str, float] = {}
    composite: Optional[float] = None
    rank: Optional[int] = None
    funding_next_1h: Dec = None
    paused: Optional[str] = None


class Markets(BaseModel):
    """Markets, best rank first (unranked last)."""

    markets: list[MarketOut]


class PositionOut(BaseModel):
    """One open position: signed ``size`` (base units), ``entry``/``mark`` USD, ``notional`` USD
    at the mark, ``unrealized`` USD, ``liquidation_price`` USD (cross margin, chain rounding) and
    ``liquidation_distance`` as a fraction of the mark; ``liquidation_note`` why it is missing."""

    ticker: str
    venue: str
    size: str
    entry: Dec = None
    mark: Dec = None
    notional: Dec = None
    unrealized: Dec = None
    liquidation_price: Dec = None
    liquidation_distance: Optional[float] = None
    liquidation_note: str = ""


class AccountOut(BaseModel):
    """One venue's margin account, USD; ``margin_usage`` initial margin / equity."""

    venue: str
    equity: Dec = None
    collateral: Dec = None
    free_collateral: Dec = None
    initial_margin: Dec = None
    maintenance_margin: Dec = None
    margin_usage: Optional[float] = None


class SubaccountOut(BaseModel):
    """One subaccount of a venue that has them (dYdX: the parent and each isolated child,
    numbered parent + 128*k): signed position sizes by ticker (base units), USD figures."""

    venue: str
    subaccount: int
    isolated: bool = False
    positions: dict[str, str] = {}
    equity: Dec = None
    free_collateral: Dec = None


class Positions(BaseModel):
    """Open positions and the margin of every venue (``note``: what a journal cannot tell);
    ``subaccounts``: per-subaccount positions of venues that split the account."""

    positions: list[PositionOut]
    accounts: list[AccountOut] = []
    subaccounts: list[SubaccountOut] = []
    note: str = ""


class OrderOut(BaseModel):
    """One open order: sizes base units, ``price`` USD (null: market order)."""

    client_id: int
    ticker: str
    venue: str = ""
    side: str
    size: str
    filled: str = "0"
    price: Dec = None
    status: str
    order_type: str = ""
    reduce_only: bool = False
    tag: str = ""
    created_ns: int = 0


class Orders(BaseModel):
    """The bot's open orders, oldest first."""

    orders: list[OrderOut]


class FillOut(BaseModel):
    """One fill: ``price`` and ``fee`` USD (fee negative: a rebate), ``size`` base units."""

    ts_ns: int
    client_id: int
    ticker: str
    venue: str = ""
    side: str
    price: str
    size: str
    fee: str
    liquidity: str = ""
    tag: str = ""
    liquidation: bool = False


class Fills(BaseModel):
    """The latest fills, oldest first."""

    fills: list[FillOut]


class Pnl(BaseModel):
    """The PnL split, USD: ``net = realized + unrealized - fees - liquidation_fees + funding``
    (``funding`` + received); drawdown from the equity samples."""

    source: Literal["bot", "journal"]
    realized: str
    unrealized: str
    fees: str
    liquidation_fees: str
    funding: str
    net: str
    start_equity: Dec = None
    equity: Dec = None
    max_drawdown: Dec = None
    max_drawdown_frac: Optional[float] = None
    closed_trades: int = 0
    wins: int = 0


class RiskOut(BaseModel):
    """One risk or control action that was not an approval (``policy``: who decided, e.g.
    ``max_leverage`` or ``api 127.0.0.1``)."""

    ts_ns: int
    policy: str
    action: str
    reason: str
    ticker: str = ""
    size: Dec = None


class Risk(BaseModel):
    """Risk and control actions, oldest first."""

    actions: list[RiskOut]


class RunOut(BaseModel):
    """One run of the journal (``ended_ns`` null: still running or killed)."""

    run_id: str
    strategy: str
    venues: str
    tickers: str
    started_ns: int
    ended_ns: Optional[int] = None
    status: str
    stop_reason: Optional[str] = None


class Runs(BaseModel):
    """Runs, oldest first (``note``: why the list may be short)."""

    runs: list[RunOut]
    note: str = ""


class EquityPoint(BaseModel):
    """Total equity (USD) at ``ts_ns`` and the drawdown from the peak so far (a fraction <= 0)."""

    ts_ns: int
    equity: str
    drawdown_frac: float


class Equity(BaseModel):
    """Equity samples, oldest first."""

    points: list[EquityPoint]


class ControlBody(BaseModel):
    """An optional reason for a control action (journaled with it)."""

    reason: str = Field(default="", max_length=200)


class ControlResult(BaseModel):
    """A control action: ``applied`` false when still queued (202) for the next batch boundary."""

    action: str
    source: str
    reason: str
    applied: bool
    ts_ns: Optional[int] = None
    entries_paused: Optional[str] = None
    halted: Optional[str] = None
