"""The dashboard's snapshot: plain values copied from the run's view at one moment.

:func:`take_snapshot` reads a :class:`~perpbot.core.bot.view.RunView` (only its documented
members) and returns a :class:`Snapshot` holding no reference into live state, so it can be
drawn later, in a thread or another process. Liquidation prices use the chain's rounding
(:mod:`perpbot.core.margin`); when one cannot be computed the row says why. Imports
:mod:`perpbot.core` only.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import attrs

NS = 1_000_000_000
ZERO = Decimal(0)
#: the signal scores shown per market (0-100), in column order
SCORE_NAMES = ("momentum", "volume", "volatility", "orderbook", "funding")


# ---------------------------------------------------------------------------
# the snapshot: plain values copied from the bot
# ---------------------------------------------------------------------------


@attrs.frozen
class MarketRow:
    """One market: prices USD, ``spread_bps`` basis points of the mid, ``scores`` name -> 0-100,
    funding rates per hour (fractions), ``rank`` by the strategy's composite (1 = best),
    ``paused`` the stale reason or None, times ns since the epoch."""

    ticker: str
    price: Decimal | None
    bid: Decimal | None
    ask: Decimal | None
    spread_bps: float | None
    scores: dict  # name -> float 0-100
    composite: float | None
    rank: int | None
    funding_next_1h: Decimal | None
    funding_last_1h: Decimal | None
    funding_last_ns: int | None
    paused: str | None
    last_event_ns: int


@attrs.frozen
class PositionRow:
    """One open position: qualified ticker, signed size (base units), entry and mark (USD),
    unrealized PnL (USD), cross-margin liquidation price (USD) and its distance from the mark
    (a fraction); ``liquidation_note`` says why the price is missing ("" when it is known)."""

    ticker: str
    size: Decimal
    entry: Decimal
    mark: Decimal | None
    unrealized: Decimal | None
    liquidation_price: Decimal | None
    liquidation_distance: float | None  # fraction of the mark
    liquidation_note: str = ""


@attrs.frozen
class OrderRow:
    """One open order: client id, qualified ticker, side, size and filled (base units), limit
    price (USD or None), status, tag, age in seconds."""

    client_id: int
    ticker: str
    side: str
    size: Decimal
    filled: Decimal
    price: Decimal | None
    status: str
    tag: str
    age_s: float


@attrs.frozen
class RiskRow:
    """One risk action that was not an approval: time (ns), policy, action, ticker, reason."""

    ts_ns: int
    policy: str
    action: str
    ticker: str
    reason: str


@attrs.frozen
class Snapshot:
    """Everything the dashboard shows, copied at one moment (USD, base units, per-hour rates)."""

    ts_ns: int
    run_id: str
    strategy: str
    venues: tuple
    markets: tuple = ()
    positions: tuple = ()
    orders: tuple = ()
    orders_total: int = 0
    equity: Decimal | None = None
    collateral: Decimal | None = None
    free_collateral: Decimal | None = None
    initial_margin: Decimal | None = None
    maintenance_margin: Decimal | None = None
    margin_usage: float | None = None
    leverage: float | None = None
    realized: Decimal | None = None
    unrealized: Decimal | None = None
    fees: Decimal | None = None
    funding: Decimal | None = None
    start_equity: Decimal | None = None
    halted: str | None = None
    consecutive_failures: int = 0
    risk_policies: tuple = ()
    risk_actions: tuple = ()
    feed_name: str = ""
    feed_connected: bool | None = None
    last_message_age_s: float | None = None
    resyncs: int | None = None
    reconnects: int | None = None
    feed_stats: dict = attrs.Factory(dict)
    paused: dict = attrs.Factory(dict)
    events: int = 0
    events_per_s: float | None = None
    decisions: int = 0
    orders_sent: int = 0
    orders_rejected: int = 0
    simulated_clock: bool = False


def liquidation(
    bot: Any, venue: str, ticker: str, pos: Any, mark: Decimal | None, equity: Decimal | None
) -> tuple[Decimal | None, float | None, str]:
    """Cross-margin liquidation price of one position, its distance from the mark, and why it is missing.

    ``perpbot.core.margin.liquidation_price(equity, size, mark, MMF, MMR_other)``, where
    ``MMR_other`` sums the chain-rounded maintenance requirement of the venue's other
    positions at their marks (``perpbot.core.margin.maintenance_margin_requirement_usd``;
    chain ``protocol/x/perpetuals/lib/lib.go``). Nothing is estimated: a missing mark or
    market parameters of any position of the venue gives no price and a reason.

    :param bot: the run's :class:`~perpbot.core.bot.view.RunView`.
    :param venue: the position's venue; ``ticker``: the venue's own ticker.
    :param pos: the :class:`~perpbot.core.model.Position` (signed size, base units).
    :param mark: the position's mark price (USD) or None; ``equity``: the venue's equity (USD) or None.
    :returns: ``(price USD, distance as a fraction of the mark, "")``, or ``(None, None, reason)``.
    """
    from perpbot.core import margin  # noqa: PLC0415

    if not pos.size:
        return None, None, "flat"
    if mark is None:
        return None, None, "no mark price"
    if equity is None:
        return None, None, "no account equity"
    markets = bot.markets
    qualified = bot.qualify(venue, ticker)
    m = markets.get(qualified)
    if m is None:
        return None, None, f"no market parameters for {qualified}"
    other = ZERO
    pf = bot.portfolios.get(venue)
    if pf is not None:
        vmarks = bot.venue_marks(venue)
        for t, p in pf.positions.items():
            if t == ticker or not p.size:
                continue
            oq = bot.qualify(venue, t)
            om = markets.get(oq)
            if om is None:
                return None, None, f"no market parameters for {oq}"
            px = vmarks.get(t)
            if px is None:
                return None, None, f"no mark price for {oq}"
            try:
                other += margin.maintenance_margin_requirement_usd(
                    p.size, px, om.initial_margin_fraction, om.maintenance_margin_fraction
                )
            except (ValueError, TypeError) as exc:
                return None, None, f"maintenance margin of {oq}: {exc}"
    try:
        liq = margin.liquidation_price(equity, pos.size, mark, m.maintenance_margin_fraction, other)
    except (ValueError, TypeError) as exc:
        return None, None, str(exc)
    if liq is None:
        return None, None, "none: no positive price liquidates it"
    return liq, float(abs(mark - liq) / mark), ""


def take_snapshot(bot: Any, *, wall_start: float | None = None) -> Snapshot:
    """Copy what the dashboard needs from ``bot`` (cheap: a few markets, capped lists).

    :param bot: the run's :class:`~perpbot.core.bot.view.RunView` (only its documented members are read).
    :param wall_start: ``time.perf_counter()`` when the dashboard started, for events per second.
    :returns: a :class:`Snapshot` of plain values (USD, base units, per-hour rates).
    """
    now = bot.clock.now_ns()
    paused = {}
    try:
        paused = dict(bot.paused())
    except Exception:
        pass
    # markets and ranks
    rows = []
    ranked = []
    for t, st in bot.states.items():
        sc = st.scores
        scores = {n: float(getattr(sc, n)) for n in SCORE_NAMES if sc is not None and hasattr(sc, n)}
        composite = getattr(sc, "strategy_composite", None) if sc is not None else None
        if composite is not None:
            ranked.append((composite, t))
        bid, ask = st.best_bid_offer()
        spread = None
        if bid is not None and ask is not None and bid > 0 and ask >= bid:
            spread = float((ask - bid) / ((ask + bid) / 2) * 10000)
        last = st.last_funding
        rows.append(
            dict(
                ticker=t,
                price=st.mark_price(),
                bid=bid,
                ask=ask,
                spread_bps=spread,
                scores=scores,
                composite=float(composite) if composite is not None else None,
                funding_next_1h=st.funding_rate_1h,
                funding_last_1h=last.rate_1h if last is not None else None,
                funding_last_ns=last.ts_ns if last is not None else None,
                paused=paused.get(t),
                last_event_ns=st.last_event_ns,
            )
        )
    rank_of = {t: i + 1 for i, (_c, t) in enumerate(sorted(ranked, key=lambda x: -x[0]))}
    markets = tuple(MarketRow(rank=rank_of.get(r["ticker"]), **r) for r in rows)

    # account
    bal = None
    try:
        bal = bot.balance() if bot.portfolios else None
    except Exception:
        bal = None
    equity = bal.equity if bal is not None else None
    marks = bot.marks()
    positions = []
    gross = ZERO
    realized = fees = funding = unreal = ZERO
    for venue, pf in getattr(bot, "portfolios", {}).items():
        realized += pf.realized_pnl
        fees += pf.fees_paid
        funding += pf.funding_net
        veq = None
        try:
            veq = bot.balance(venue).equity
        except Exception:
            pass
        for t, p in pf.positions.items():
            if not p.size:
                continue
            q = bot.qualify(venue, t)
            mark = marks.get(q)
            u = p.unrealized_pnl(mark) if mark is not None else None
            if u is not None:
                unreal += u
            gross += abs(p.size) * (mark or p.entry_price)
            liq, dist, note = liquidation(bot, venue, t, p, mark, veq)
            positions.append(PositionRow(q, p.size, p.entry_price, mark, u, liq, dist, note))
    # orders
    orders = sorted(bot.open_orders.values(), key=lambda o: o.created_ns)
    order_rows = tuple(
        OrderRow(
            o.client_id,
            o.ticker,
            o.side.value,
            o.size,
            o.filled_size,
            o.price,
            o.status.value,
            o.tag,
            max(0.0, (now - o.created_ns) / NS) if o.created_ns else 0.0,
        )
        for o in orders[-12:]
    )
    # risk
    risk = tuple(
        RiskRow(d.ts_ns, d.policy, d.action.value, d.ticker, d.reason) for d in list(getattr(bot, "risk_log", ()))[-6:]
    )
    # feed health
    stats = {}
    try:
        stats = dict(bot.feed.stats())
    except Exception:
        pass
    resyncs = sum(v for k, v in stats.items() if "resync" in k and isinstance(v, int)) if stats else None
    reconnects = sum(v for k, v in stats.items() if "reconnect" in k and isinstance(v, int)) if stats else None
    connected = getattr(bot.feed, "connected", None)
    if callable(connected):
        try:
            connected = connected()
        except Exception:
            connected = None
    if connected is not None and not isinstance(connected, bool):
        is_set = getattr(connected, "is_set", None)
        connected = bool(is_set()) if callable(is_set) else bool(connected)
    last_ns = max((st.last_event_ns for st in bot.states.values()), default=0)
    simulated = bool(getattr(bot.clock, "simulated", False))
    age = None
    if last_ns:
        age = 0.0 if simulated else max(0.0, (time.time_ns() - last_ns) / NS)
    events = int(getattr(bot, "events_processed", 0))
    eps = None
    if wall_start is not None:
        elapsed = time.perf_counter() - wall_start
        if elapsed > 0:
            eps = events / elapsed
    return Snapshot(
        ts_ns=now,
        run_id=getattr(bot, "run_id", ""),
        strategy=bot.config.strategy,
        venues=tuple(getattr(bot, "exchanges", {}) or bot.config.exchange),
        markets=markets,
        positions=tuple(positions),
        orders=order_rows,
        orders_total=len(bot.open_orders),
        equity=equity,
        collateral=bal.collateral if bal is not None else None,
        free_collateral=bal.free_collateral if bal is not None else None,
        initial_margin=bal.initial_margin if bal is not None else None,
        maintenance_margin=bal.maintenance_margin if bal is not None else None,
        margin_usage=float(bal.initial_margin / bal.equity) if bal is not None and bal.equity > 0 else None,
        leverage=float(gross / equity) if equity is not None and equity > 0 else None,
        realized=realized,
        unrealized=unreal,
        fees=fees,
        funding=funding,
        start_equity=getattr(bot, "start_equity", None) or None,
        halted=getattr(bot, "halted", None),
        consecutive_failures=int(getattr(bot, "consecutive_failures", 0)),
        risk_policies=tuple(getattr(p, "name", "?") for p in getattr(bot, "risk_chain", ())),
        risk_actions=risk,
        feed_name=getattr(bot.feed, "name", type(bot.feed).__name__),
        feed_connected=connected,
        last_message_age_s=age,
        resyncs=resyncs,
        reconnects=reconnects,
        feed_stats={k: v for k, v in stats.items() if isinstance(v, (int, float))},
        paused=paused,
        events=events,
        events_per_s=eps,
        decisions=int(getattr(bot, "decisions", 0)),
        orders_sent=int(getattr(bot, "orders_sent", 0)),
        orders_rejected=int(getattr(bot, "orders_rejected", 0)),
        simulated_clock=simulated,
    )


