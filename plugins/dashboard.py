"""Built-in plugin: the terminal dashboard (Rich), ``runbot.py --dashboard``.

What it shows (seed 000, layer 8): markets with price, spread, the 0-100 scores
(momentum, volume, volatility, orderbook, funding), the strategy's composite
and rank; positions with size, entry, mark, unrealized PnL, liquidation price
and distance (``perpbot.core.margin.liquidation_price``, cross margin); the account
(equity, collateral, free collateral, margin usage, leverage, PnL split);
funding next/last per market; open orders; risk state and the last risk
actions with their reasons; feed health (connected, last message age, resyncs
and reconnects, paused markets with the reason).

It never slows the bot: an asyncio task takes a cheap :class:`Snapshot` of the
bot (plain values, no references into live state) at most ``hz`` times per
second and drops it into a one-slot mailbox (the latest value wins). On a
real terminal a child process draws it with ``rich.live.Live`` (the snapshot
is sent over a pipe only when the child asks for the next frame), so neither
a slow terminal nor the CPU cost of drawing touches the bot's process, not
even through the GIL. With a given console (tests, embedding) a thread draws
instead, throttled so drawing takes at most about an eighth of the time. A
blocked terminal stalls only the renderer; older snapshots are overwritten.

:func:`build_layout` turns a snapshot into a Rich renderable and is tested
headless (``Console(record=True)``).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import attrs
from loguru import logger
from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from perpbot.core.hookspecs import hookimpl

NS = 1_000_000_000
ZERO = Decimal(0)
SCORE_NAMES = ("momentum", "volume", "volatility", "orderbook", "funding")


# ---------------------------------------------------------------------------
# the snapshot: plain values copied from the bot
# ---------------------------------------------------------------------------


@attrs.frozen
class MarketRow:
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
    ticker: str
    size: Decimal
    entry: Decimal
    mark: Decimal | None
    unrealized: Decimal | None
    liquidation_price: Decimal | None
    liquidation_distance: float | None  # fraction of the mark


@attrs.frozen
class OrderRow:
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


def _liquidation(bot: Any, venue: str, ticker: str, pos: Any, mark: Decimal | None, equity: Decimal | None):
    if mark is None or equity is None or not pos.size:
        return None, None
    from perpbot.core import margin  # noqa: PLC0415
    markets = getattr(bot, "markets", {})
    qualified = ticker if venue == bot.config.primary_venue else f"{venue}:{ticker}"
    m = markets.get(qualified)
    if m is None:
        return None, None
    pf = bot.portfolios.get(venue)
    other = ZERO
    if pf is not None:
        vmarks = bot._venue_marks(venue) if hasattr(bot, "_venue_marks") else {}
        for t, p in pf.positions.items():
            if t == ticker or not p.size:
                continue
            om = markets.get(t if venue == bot.config.primary_venue else f"{venue}:{t}")
            px = vmarks.get(t) or p.entry_price
            if om is not None and px:
                other += abs(p.size) * px * om.maintenance_margin_fraction
    try:
        liq = margin.liquidation_price(equity, pos.size, mark, m.maintenance_margin_fraction, other)
    except (ValueError, TypeError):
        return None, None
    if liq is None:
        return None, None
    return liq, float(abs(mark - liq) / mark)


def take_snapshot(bot: Any, *, wall_start: float | None = None) -> Snapshot:
    """Copy what the dashboard needs from ``bot`` (cheap: a few markets, capped lists)."""
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
            q = t if venue == bot.config.primary_venue else f"{venue}:{t}"
            mark = marks.get(q)
            u = p.unrealized_pnl(mark) if mark is not None else None
            if u is not None:
                unreal += u
            gross += abs(p.size) * (mark or p.entry_price)
            liq, dist = _liquidation(bot, venue, t, p, mark, veq)
            positions.append(PositionRow(q, p.size, p.entry_price, mark, u, liq, dist))
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


# ---------------------------------------------------------------------------
# rendering (pure)
# ---------------------------------------------------------------------------


def _d(v: Decimal | None, places: int = 2, sign: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:+,.{places}f}" if sign else f"{v:,.{places}f}"


def _price(v: Decimal | None) -> str:
    if v is None:
        return "-"
    if v.as_tuple().exponent < -8:  # a computed quotient (e.g. a liquidation price): 28 digits help nobody
        v = v.quantize(Decimal("1e-8")) if abs(v) < 1 else v.quantize(Decimal("0.01"))
    return f"{v.normalize():,f}" if abs(v) < 1_000_000 else f"{v:,.0f}"


def _colored(v: Decimal | float | None, text: str) -> Text:
    style = "" if v is None or v == 0 else ("green" if v > 0 else "red")
    return Text(text, style=style)


def _score(v: float | None) -> Text:
    if v is None:
        return Text("-", style="dim")
    style = "bold green" if v >= 65 else "green" if v >= 55 else "bold red" if v <= 35 else "red" if v <= 45 else ""
    return Text(f"{v:.0f}", style=style)


def _rate(v: Decimal | None) -> str:
    return "-" if v is None else f"{v * 100:+.5f}%"


def _when(ts_ns: int | None) -> str:
    if not ts_ns:
        return "-"
    return datetime.fromtimestamp(ts_ns / NS, tz=timezone.utc).strftime("%H:%M:%S")


def build_layout(snap: Snapshot):
    """The dashboard for one snapshot, as a Rich renderable (no I/O here)."""
    header = Text.assemble(
        ("perpbot ", "bold"),
        (f"{snap.strategy} on {', '.join(snap.venues)}", "bold cyan"),
        f"  run {snap.run_id}  ",
        (datetime.fromtimestamp(snap.ts_ns / NS, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if snap.ts_ns else "-"),
        ("  (replay clock)" if snap.simulated_clock else ""),
        ("  HALTED: " + snap.halted, "bold white on red") if snap.halted else "",
    )

    markets = Table(box=box.SIMPLE_HEAD, expand=True, title="markets", title_justify="left", pad_edge=False)
    for col, j in (("rank", "right"), ("market", "left"), ("price", "right"), ("spread bp", "right")):
        markets.add_column(col, justify=j)
    for n in ("mom", "vol", "volat", "book", "fund"):
        markets.add_column(n, justify="right")
    for col in ("comp", "funding next/h", "last/h", "status"):
        markets.add_column(col, justify="right" if col != "status" else "left")
    for m in sorted(snap.markets, key=lambda r: (r.rank is None, r.rank or 0, r.ticker)):
        markets.add_row(
            str(m.rank) if m.rank else "-",
            m.ticker,
            _price(m.price),
            "-" if m.spread_bps is None else f"{m.spread_bps:.2f}",
            *[_score(m.scores.get(n)) for n in SCORE_NAMES],
            _score(m.composite),
            _rate(m.funding_next_1h),
            _rate(m.funding_last_1h),
            Text("paused: " + m.paused, style="yellow") if m.paused else Text("ok", style="green"),
        )

    positions = Table(box=box.SIMPLE_HEAD, expand=True, title="positions", title_justify="left", pad_edge=False)
    for col in ("market", "size", "entry", "mark", "unrealized", "liq. price", "liq. distance"):
        positions.add_column(col, justify="left" if col == "market" else "right")
    for p in snap.positions:
        dist = "-" if p.liquidation_distance is None else f"{p.liquidation_distance * 100:.2f}%"
        dist_style = "" if p.liquidation_distance is None or p.liquidation_distance > 0.1 else "bold red"
        positions.add_row(
            p.ticker,
            _colored(p.size, f"{p.size.normalize():+f}"),
            _price(p.entry),
            _price(p.mark),
            _colored(p.unrealized, _d(p.unrealized, sign=True)),
            _price(p.liquidation_price),
            Text(dist, style=dist_style),
        )
    if not snap.positions:
        positions.add_row("flat", "", "", "", "", "", "")

    account = Table(box=box.SIMPLE_HEAD, show_header=False, title="account (USD)", title_justify="left", pad_edge=False)
    account.add_column("k", no_wrap=True, min_width=15)
    account.add_column("v", justify="right", no_wrap=True)
    ret = None
    if snap.equity is not None and snap.start_equity:
        ret = (snap.equity / snap.start_equity - 1) * 100
    account.add_row("equity", _d(snap.equity))
    account.add_row("return", "-" if ret is None else f"{ret:+.3f}%")
    account.add_row("collateral", _d(snap.collateral))
    account.add_row("free collateral", _d(snap.free_collateral))
    account.add_row("margin usage", "-" if snap.margin_usage is None else f"{snap.margin_usage * 100:.2f}%")
    account.add_row("leverage", "-" if snap.leverage is None else f"{snap.leverage:.2f}x")
    account.add_row("initial margin", _d(snap.initial_margin))
    account.add_row("maint. margin", _d(snap.maintenance_margin))
    account.add_row("realized", _colored(snap.realized, _d(snap.realized, sign=True)))
    account.add_row("unrealized", _colored(snap.unrealized, _d(snap.unrealized, sign=True)))
    account.add_row("fees", _d(snap.fees))
    account.add_row("funding", _colored(snap.funding, _d(snap.funding, sign=True)))

    orders = Table(
        box=box.SIMPLE_HEAD,
        expand=True,
        title=f"open orders ({snap.orders_total})",
        title_justify="left",
        pad_edge=False,
    )
    for col in ("id", "market", "side", "size", "filled", "price", "status", "tag", "age"):
        orders.add_column(col, justify="right" if col in ("size", "filled", "price", "age") else "left")
    for o in snap.orders:
        orders.add_row(
            str(o.client_id),
            o.ticker,
            Text(o.side, style="green" if o.side == "BUY" else "red"),
            f"{o.size.normalize():f}",
            f"{o.filled.normalize():f}",
            _price(o.price),
            o.status,
            o.tag,
            f"{o.age_s:.0f}s",
        )
    if not snap.orders:
        orders.add_row("none", "", "", "", "", "", "", "", "")

    risk = Table(box=box.SIMPLE_HEAD, expand=True, title="risk", title_justify="left", pad_edge=False, show_header=True)
    risk.add_column("time")
    risk.add_column("policy")
    risk.add_column("action")
    risk.add_column("market")
    risk.add_column("reason", ratio=1)
    state = Text.assemble(
        ("HALTED " if snap.halted else "active ", "bold red" if snap.halted else "green"),
        f"chain: {', '.join(snap.risk_policies) or 'none'}; consecutive failures {snap.consecutive_failures}",
    )
    for r in snap.risk_actions:
        style = "red" if r.action in ("CLOSE_WORST", "CLOSE_ALL", "HALT") else "yellow"
        risk.add_row(_when(r.ts_ns), r.policy, Text(r.action, style=style), r.ticker, r.reason)
    if not snap.risk_actions:
        risk.add_row("-", "", "no risk actions", "", "")

    conn = "n/a (replay)" if snap.feed_connected is None and snap.simulated_clock else (
        "-" if snap.feed_connected is None else ("connected" if snap.feed_connected else "DISCONNECTED")
    )
    feed = Text.assemble(
        ("feed ", "bold"),
        f"{snap.feed_name}: {conn}; last message "
        + ("-" if snap.last_message_age_s is None else f"{snap.last_message_age_s:.1f}s ago")
        + f"; resyncs {snap.resyncs if snap.resyncs is not None else '-'}"
        + f"; reconnects {snap.reconnects if snap.reconnects is not None else '-'}"
        + f"; events {snap.events:,}"
        + ("" if snap.events_per_s is None else f" ({snap.events_per_s:,.0f}/s)")
        + f"; decisions {snap.decisions}; orders sent {snap.orders_sent}, rejected {snap.orders_rejected}",
    )
    paused = [Text(f"paused {t}: {why}", style="yellow") for t, why in sorted(snap.paused.items())]

    top = Table.grid(expand=True)
    top.add_column(ratio=3)
    top.add_column(ratio=1, min_width=32)
    top.add_row(positions, account)
    return Panel(
        Group(header, markets, top, orders, Group(state, risk), feed, *paused),
        title="perpbot dashboard",
        border_style="cyan" if not snap.halted else "red",
    )


# ---------------------------------------------------------------------------
# the live loop: snapshot task (event loop) -> latest-value handoff -> renderer
# ---------------------------------------------------------------------------


def _render_process(conn: Any, hz: float, screen: bool) -> None:  # pragma: no cover - runs in a child process
    """The renderer process: draws each snapshot it receives, then asks for the next one.

    Ctrl-C is the parent's business (it stops the bot, which closes this pipe).
    """
    import signal as _signal

    from rich.live import Live

    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    period = 1.0 / hz
    console = Console()
    with Live(console=console, auto_refresh=False, screen=screen, transient=False,
              redirect_stdout=False, redirect_stderr=False) as live:
        conn.send("ready")
        while True:
            try:
                snap = conn.recv()
            except (EOFError, OSError):
                break
            if snap is None:
                break
            started = time.monotonic()
            live.update(build_layout(snap), refresh=True)
            rest = period - (time.monotonic() - started)
            if rest > 0:
                time.sleep(rest)
            try:
                conn.send("ready")
            except (BrokenPipeError, OSError):
                break


class Dashboard:
    """Runs the dashboard of one bot.

    :param console: where to draw (default: the terminal, rendered by a child process).
    :param hz: at most this many snapshots and frames per second.
    :param screen: use the terminal's alternate screen (default: when the console is a terminal).
    :param renderer: ``"process"`` (draw in a child process: a slow terminal or the cost of
        drawing never touch the bot's process, not even through the GIL) or ``"thread"``
        (draw in a thread of this process; used with a given ``console``, e.g. in tests).
        Default: ``"process"`` for the real terminal, ``"thread"`` for a given console.
    """

    def __init__(
        self,
        console: Console | None = None,
        *,
        hz: float = 4.0,
        screen: bool | None = None,
        renderer: str | None = None,
    ):
        self.renderer = renderer or ("thread" if console is not None else "process")
        if self.renderer not in ("thread", "process"):
            raise ValueError(f"renderer: expected 'thread' or 'process', got {renderer!r}")
        self.console = console or Console()
        self.hz = max(0.5, float(hz))
        self.screen = self.console.is_terminal if screen is None else screen
        self._slot: Snapshot | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task | None = None
        self._proc = None
        self._conn = None
        self._child_ready = False
        self.published = 0  # snapshots handed over
        self.rendered = 0  # frames drawn (thread) or sent to the renderer process
        self.dropped = 0  # snapshots overwritten before they were drawn
        self.errors = 0
        self._wall_start = time.perf_counter()

    # -- handoff ------------------------------------------------------------

    def publish(self, snap: Snapshot) -> None:
        """Make ``snap`` the next frame (never blocks; an undrawn older one is dropped)."""
        with self._lock:
            if self._slot is not None:
                self.dropped += 1
            self._slot = snap
        self.published += 1
        if self.renderer == "thread":
            self._wake.set()
        else:
            self._pump()

    def _take(self) -> Snapshot | None:
        with self._lock:
            snap, self._slot = self._slot, None
        return snap

    def _pump(self) -> None:
        """Process renderer: hand the newest snapshot over when the child asked for one."""
        conn = self._conn
        if conn is None:
            return
        try:
            while conn.poll():
                if conn.recv() == "ready":
                    self._child_ready = True
            if self._child_ready:
                snap = self._take()
                if snap is not None:
                    conn.send(snap)  # the child is waiting in recv(): the pipe has room
                    self._child_ready = False
                    self.rendered += 1
        except (EOFError, OSError) as exc:
            self._conn = None
            self.errors += 1
            logger.warning(f"dashboard renderer stopped: {type(exc).__name__}: {exc}")

    # -- lifecycle ------------------------------------------------------------

    def start(self, bot: Any) -> None:
        self._wall_start = time.perf_counter()
        if self.renderer == "thread":
            self._thread = threading.Thread(target=self._render_loop, name="dashboard-render", daemon=True)
            self._thread.start()
        else:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")  # never fork a process with threads
            parent, child = ctx.Pipe()
            self._proc = ctx.Process(
                target=_render_process, args=(child, self.hz, bool(self.screen)), name="perpbot-dashboard", daemon=True
            )
            self._proc.start()
            child.close()
            self._conn = parent
        self._task = asyncio.get_running_loop().create_task(self._snapshot_loop(bot), name="dashboard-snapshots")

    async def _snapshot_loop(self, bot: Any) -> None:
        period = 1.0 / self.hz
        while not self._stop.is_set():
            try:
                self.publish(take_snapshot(bot, wall_start=self._wall_start))
            except Exception as exc:  # a dashboard bug must never stop the bot
                self.errors += 1
                if self.errors <= 3:
                    logger.error(f"dashboard snapshot failed: {type(exc).__name__}: {exc}")
            await asyncio.sleep(period)

    def _render_loop(self) -> None:
        from rich.live import Live

        period = 1.0 / self.hz
        try:
            with Live(console=self.console, auto_refresh=False, screen=self.screen, transient=False,
                      redirect_stdout=False, redirect_stderr=False) as live:
                while not self._stop.is_set():
                    self._wake.wait(timeout=0.5)
                    self._wake.clear()
                    snap = self._take()
                    if snap is None:
                        continue
                    started = time.monotonic()
                    try:
                        live.update(build_layout(snap), refresh=True)
                        self.rendered += 1
                    except Exception as exc:
                        self.errors += 1
                        if self.errors <= 3:
                            logger.error(f"dashboard render failed: {type(exc).__name__}: {exc}")
                    # at most hz frames per second, and drawing may take at most ~1/8 of the
                    # time (this thread shares the GIL with the bot's event loop)
                    spent = time.monotonic() - started
                    rest = max(period, 8 * spent) - spent
                    if rest > 0:
                        self._stop.wait(rest)
                last = self._take()
                if last is not None:
                    live.update(build_layout(last), refresh=True)
                    self.rendered += 1
        except Exception as exc:
            self.errors += 1
            logger.error(f"dashboard stopped: {type(exc).__name__}: {exc}")

    async def stop(self, bot: Any | None = None, timeout: float = 2.0) -> None:
        """Draw a last frame and stop; waits at most ``timeout`` s for a blocked terminal."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if bot is not None:
            try:
                self.publish(take_snapshot(bot, wall_start=self._wall_start))
            except Exception:
                pass
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, timeout)
            if self._thread.is_alive():
                logger.warning("dashboard: the terminal is not accepting output; left its thread behind")
        if self._proc is not None:
            await asyncio.to_thread(self._finish_process, timeout)

    def _finish_process(self, timeout: float) -> None:
        conn, proc = self._conn, self._proc
        deadline = time.monotonic() + timeout
        if conn is not None:
            try:
                # let the child draw the final frame, then tell it to exit
                while self._slot is not None and time.monotonic() < deadline and proc.is_alive():
                    self._pump()
                    time.sleep(0.02)
                while not self._child_ready and time.monotonic() < deadline and proc.is_alive():
                    self._pump()
                    time.sleep(0.02)
                if self._child_ready:
                    conn.send(None)
            except (EOFError, OSError):
                pass
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            logger.warning("dashboard: the renderer did not finish (terminal not accepting output); stopping it")
            proc.terminate()
            proc.join(1.0)
        if conn is not None:
            conn.close()
        self._conn = None


class DashboardPlugin:
    """The hooks, as an object so tests (and embedders) can pass their own console."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        hz: float = 4.0,
        screen: bool | None = None,
        force: bool = False,
        renderer: str | None = None,
    ):
        self.renderer = renderer
        self.console = console
        self.hz = hz
        self.screen = screen
        self.force = force
        self.dashboards: "weakref.WeakKeyDictionary[Any, Dashboard]" = weakref.WeakKeyDictionary()
        self.__name__ = "dashboard"

    @hookimpl
    def on_bot_start(self, bot):
        if not (self.force or getattr(bot.config, "dashboard", False)):
            return
        if bot in self.dashboards:
            return
        d = Dashboard(self.console, hz=self.hz, screen=self.screen, renderer=self.renderer)
        self.dashboards[bot] = d
        d.start(bot)

    @hookimpl
    async def on_bot_stop(self, bot, summary):
        d = self.dashboards.pop(bot, None)
        if d is not None:
            await d.stop(bot)


_DEFAULT = DashboardPlugin()


@hookimpl
def on_bot_start(bot):
    _DEFAULT.on_bot_start(bot)


@hookimpl
async def on_bot_stop(bot, summary):
    await _DEFAULT.on_bot_stop(bot, summary)


def dashboard_of(bot: Any) -> Dashboard | None:
    """The running dashboard of ``bot`` (built-in plugin instance), if any."""
    return _DEFAULT.dashboards.get(bot)
