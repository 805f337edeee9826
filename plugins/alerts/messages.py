"""Alert messages, built from whitelisted fields only.

Each builder takes typed values (tickers, sides, Decimal prices and sizes in USD and base
units, enum actions, counters, clock times in ns) and formats them; nothing is formatted
from a whole object, a mapping or the environment. The few free-text fields (a risk
decision's or a halt's reason, a feed's reason, an order tag, the stop reason) go through
:meth:`Scrubber.clean`: every known secret replaced by ``***`` and the text cut to
:data:`MAX_TEXT` characters, so even a reason that quoted a token could not carry it out.

An :class:`Alert` has a ``kind`` (the rate limit's unit: ``fill``, ``risk``, ``halt``, ``feed``,
``daily``, ``stop``, ``start``), a ``level`` (apprise's notify type: ``info``, ``success``,
``warning``, ``failure``), a title, a body and a one-line form used in digests. Imports
:mod:`perpbot.core` only.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable

import attrs

from perpbot.core.logs import redact

#: longest free-text field kept in an alert (characters)
MAX_TEXT = 200
NS = 1_000_000_000

#: alert kind -> what a digest calls one of them, and several
KIND_NAMES = {"fill": ("fill", "fills"), "risk": ("risk action", "risk actions"), "halt": ("halt", "halts"),
              "feed": ("feed alert", "feed alerts"), "daily": ("daily summary", "daily summaries"),
              "stop": ("stop summary", "stop summaries"), "start": ("start notice", "start notices")}


@attrs.frozen
class Alert:
    """One message to every service.

    :param kind: rate-limit kind (see the module docstring); :param level: ``info``,
        ``success``, ``warning`` or ``failure``; :param title: one line; :param body: text,
        lines separated by ``\\n``; :param line: the one-line form a digest lists;
    :param ts_ns: run clock time of the event, ns since the epoch.
    """

    kind: str
    level: str
    title: str
    body: str
    line: str
    ts_ns: int = 0


class Scrubber:
    """Keeps secrets out of free text: ``clean(text)`` replaces each of ``secrets`` (and every
    value registered with :func:`perpbot.core.logs.register_secret`) by ``***`` and cuts the
    text to ``limit`` characters.

    :param secrets: text never to show (see :func:`perpbot.plugins.alerts.settings.collect_secrets`).
    """

    def __init__(self, secrets: Iterable[str], limit: int = MAX_TEXT):
        # longest first, so a secret that contains another is replaced whole
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self.limit = limit

    def clean(self, text: Any) -> str:
        """``text`` as a string with every secret replaced by ``***``, at most ``limit`` characters."""
        out = redact(" ".join(str(text).split()))
        for s in self.secrets:
            if s in out:
                out = out.replace(s, "***")
        return out if len(out) <= self.limit else out[: self.limit - 1] + "…"

    def final(self, text: str) -> str:
        """``text`` (a whole title or body) with every secret replaced by ``***``, layout kept:
        the last check before an alert is queued."""
        out = redact(text)
        for s in self.secrets:
            if s in out:
                out = out.replace(s, "***")
        return out


def utc(ts_ns: int) -> str:
    """``2024-08-08 23:59:01 UTC`` for a clock time in ns since the epoch."""
    return datetime.fromtimestamp(ts_ns / NS, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def usd(value: Decimal) -> str:
    """``1,234.56`` (two decimals, thousands separated) for a USD amount."""
    return f"{Decimal(value):,.2f}"


def signed_usd(value: Decimal) -> str:
    """``+12.34`` / ``-0.10``: a USD amount with its sign."""
    return f"{Decimal(value):+,.2f}"


@attrs.frozen
class RunHeader:
    """Who is talking: the run id (12 hex digits), the strategy name and the venues."""

    run_id: str
    strategy: str
    venues: tuple

    def line(self) -> str:
        """``run 84b0193e00b9: sniper on paper``."""
        return f"run {self.run_id}: {self.strategy} on {', '.join(self.venues)}"


def fill_alert(head: RunHeader, scrub: Scrubber, *, ticker: str, side: str, size: Decimal, price: Decimal,
               fee: Decimal, liquidity: str, tag: str, liquidation: bool, ts_ns: int) -> Alert:
    """A fill: side, size (base units), ticker, price and fee (USD), maker/taker, the order's tag."""
    what = f"{side} {size} {ticker} @ {price}"
    detail = f"fee {usd(fee)} USD, {liquidity.lower()}" + (f", tag {scrub.clean(tag)}" if tag else "")
    if liquidation:
        detail += ", LIQUIDATION"
    body = f"{what} ({detail})\nmarket time {utc(ts_ns)}\n{head.line()}"
    return Alert("fill", "warning" if liquidation else "info", f"perpbot fill: {what}", body,
                 f"{utc(ts_ns)[11:19]} {what}", ts_ns)


def risk_alert(head: RunHeader, scrub: Scrubber, *, action: str, policy: str, ticker: str, reason: str,
               ts_ns: int) -> Alert:
    """A risk action that is not an approval: the action, the policy, the market and the reason."""
    where = f" {ticker}" if ticker else ""
    who = f" by {scrub.clean(policy)}" if policy else ""
    kind, level = ("halt", "failure") if action == "HALT" else ("risk", "warning")
    title = f"perpbot risk: {action}{where}{who}"
    body = f"{action}{where}{who}: {scrub.clean(reason)}\nmarket time {utc(ts_ns)}\n{head.line()}"
    return Alert(kind, level, title, body, f"{utc(ts_ns)[11:19]} {action}{where}{who}", ts_ns)


def halt_alert(head: RunHeader, scrub: Scrubber, *, reason: str, ts_ns: int) -> Alert:
    """The bot halted (no new risk, orders canceled, exit code 6)."""
    text = scrub.clean(reason)
    body = (f"HALTED: {text}\nno new positions; open orders canceled; positions are kept\n"
            f"market time {utc(ts_ns)}\n{head.line()}")
    return Alert("halt", "failure", f"perpbot HALTED: {text}", body, f"{utc(ts_ns)[11:19]} HALT {text}", ts_ns)


def feed_down_alert(head: RunHeader, scrub: Scrubber, *, ticker: str, reason: str, since_ns: int,
                    now_ns: int) -> Alert:
    """A market's feed has been down (paused) for longer than the threshold."""
    secs = (now_ns - since_ns) // NS
    body = (f"{ticker}: no usable market data for {secs}s (since {utc(since_ns)}): {scrub.clean(reason)}\n"
            f"decisions on {ticker} are paused until it recovers\n{head.line()}")
    return Alert("feed", "warning", f"perpbot feed down: {ticker} for {secs}s", body,
                 f"{utc(now_ns)[11:19]} {ticker} down {secs}s", now_ns)


def feed_up_alert(head: RunHeader, *, ticker: str, since_ns: int, now_ns: int) -> Alert:
    """A market whose feed-down alert went out is usable again."""
    secs = (now_ns - since_ns) // NS
    body = f"{ticker}: market data usable again after {secs}s down (at {utc(now_ns)})\n{head.line()}"
    return Alert("feed", "success", f"perpbot feed back: {ticker} after {secs}s", body,
                 f"{utc(now_ns)[11:19]} {ticker} back after {secs}s", now_ns)


@attrs.frozen
class DayFigures:
    """PnL of one stretch of the run clock (a UTC day, or the day so far at stop), USD.

    :param label: ``2024-08-08`` (or ``2024-08-08 to 2024-08-10`` across a data gap);
    :param equity: equity at the end of the stretch; :param pnl: its change over the stretch;
    :param realized, fees, funding: the changes of realized PnL, fees paid and net funding;
    :param fills: fills in the stretch; :param positions: ``[(ticker, signed size)]`` at the end.
    """

    label: str
    equity: Decimal
    pnl: Decimal
    realized: Decimal
    fees: Decimal
    funding: Decimal
    fills: int
    positions: tuple = ()


def _day_lines(d: DayFigures) -> list[str]:
    pos = ", ".join(f"{t} {s:+}" for t, s in d.positions) or "none"
    return [f"equity {usd(d.equity)} USD, day PnL {signed_usd(d.pnl)} USD",
            f"realized {signed_usd(d.realized)}, fees {usd(d.fees)}, funding {signed_usd(d.funding)} USD; "
            f"{d.fills} fill(s)", f"open positions: {pos}"]


def daily_alert(head: RunHeader, day: DayFigures, *, ts_ns: int) -> Alert:
    """The PnL summary of a UTC day of the run clock, sent when the clock crosses midnight."""
    body = "\n".join([f"UTC day {day.label} (run clock)", *_day_lines(day), head.line()])
    return Alert("daily", "info", f"perpbot daily summary {day.label}: {signed_usd(day.pnl)} USD", body,
                 f"{day.label} {signed_usd(day.pnl)} USD", ts_ns)


def stop_alert(head: RunHeader, scrub: Scrubber, *, day: DayFigures | None, stop_reason: str, halted: str | None,
               start_equity: Decimal, final_equity: Decimal, realized: Decimal, unrealized: Decimal, fees: Decimal,
               funding: Decimal, fills: int, closed_trades: int, ts_ns: int) -> Alert:
    """The run stopped: the day so far and the whole run's figures (USD)."""
    why = scrub.clean(f"HALT: {halted}" if halted else (stop_reason or "stopped"))
    run_pnl = final_equity - start_equity
    lines = [f"stopped at {utc(ts_ns)}: {why}",
             f"run: equity {usd(start_equity)} -> {usd(final_equity)} USD ({signed_usd(run_pnl)}); "
             f"realized {signed_usd(realized)}, unrealized {signed_usd(unrealized)}, fees {usd(fees)}, "
             f"funding {signed_usd(funding)} USD; {fills} fill(s), {closed_trades} closed trade(s)"]
    if day is not None:
        lines += [f"UTC day {day.label} so far:", *_day_lines(day)]
    lines.append(head.line())
    return Alert("stop", "failure" if halted else "info", f"perpbot stopped: {why} ({signed_usd(run_pnl)} USD)",
                 "\n".join(lines), f"stopped: {why}", ts_ns)


def start_alert(head: RunHeader, *, tickers: Iterable[str], equity: Decimal, services: int) -> Alert:
    """The run started: markets, equity (USD) and how many services get its alerts."""
    names = ", ".join(tickers)
    body = (f"trading {names}; equity {usd(equity)} USD\nalerts to {services} service(s) "
            f"(wall time {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())})\n{head.line()}")
    return Alert("start", "info", f"perpbot started: {head.strategy} on {names}", body, f"started {names}")


def digest_alert(head: RunHeader, kind: str, count: int, first_ns: int, lines: Iterable[str], now_ns: int) -> Alert:
    """ONE message for ``count`` alerts of ``kind`` the rate limit held back (the last few shown)."""
    shown = list(lines)
    name = KIND_NAMES.get(kind, (kind, kind))[count != 1]
    more = f" (last {len(shown)} shown)" if count > len(shown) else ""
    body = "\n".join([f"{count} {name} held back by the rate limit since {utc(first_ns)} (not sent one by one){more}:",
                      *(f"- {x}" for x in shown), head.line()])
    level = "failure" if kind == "halt" else "warning" if kind in ("risk", "feed") else "info"
    return Alert(kind, level, f"perpbot: {count} more {name} (rate limit)", body, f"{count} more {name}", now_ns)
