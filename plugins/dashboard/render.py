"""The dashboard's rendering: a :class:`~perpbot.plugins.dashboard.snapshot.Snapshot` to a Rich renderable.

Pure (no I/O): :func:`build_layout` is tested headless (``Console(record=True)``).
Imports Rich and :mod:`perpbot.plugins.dashboard.snapshot`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from rich import box
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from perpbot.plugins.dashboard.snapshot import NS, SCORE_NAMES, Snapshot


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


def build_layout(snap: Snapshot) -> Panel:
    """The dashboard for one snapshot, as a Rich renderable (no I/O here).

    :param snap: the :class:`~perpbot.plugins.dashboard.snapshot.Snapshot` to draw.
    :returns: a :class:`rich.panel.Panel` (header, markets, positions and account, open
        orders, risk, feed health, paused markets).
    """
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
            _price(p.liquidation_price) if p.liquidation_price is not None or not p.liquidation_note
            else Text(f"n/a: {p.liquidation_note}", style="dim"),
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


