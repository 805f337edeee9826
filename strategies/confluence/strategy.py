"""The ``confluence`` strategy: trade the signal generator's output (confluence score, ML gate).

Seed 003's trading system (``../shared/seeds/003_*``): interpretations of the analysis hub
-> confluence analyzer and score weighting (:func:`perpbot.core.analysis.combine`) -> ML
validation (an optional :class:`~perpbot.core.analysis.SignalGate`) -> signal generator
(:class:`SignalGenerator`) -> position sizing and risk management (the bot's sizer and risk
chain: entries carry no size) -> order manager (the bot).

Each decision cycle:

1. every tradable market gets a :class:`Signal`: its confluence (across venues with
   ``cross_venue``), and for a candidate entry the gate's probability;
2. exits first, per open position: take-profit, stop-loss (mark vs entry price, in the
   position's direction), then signal exit (the confluence in the held direction below
   ``exit_score``, after ``min_hold_s``); reduce-only IOC market orders for the whole position;
3. entries into the strongest markets whose score is at least ``entry_score`` with at least
   ``min_agreeing`` analyzers agreeing (and the gate's probability at least its threshold),
   skipping markets in cool-down or with an order in flight, up to ``max_positions``;
   market orders without a size (the sizer decides);
4. the ranked table (score, direction, probability, the top reasons) is logged.
"""

from __future__ import annotations

from typing import Any, Mapping

import attrs
from loguru import logger as _default_logger

from perpbot.core.analysis import NO_CONFLUENCE, Confluence
from perpbot.core.analysis.hub import market_confluence
from perpbot.core.analysis.run import AnalysisSpec, parse_names
from perpbot.core.errors import ConfigError
from perpbot.core.model import OrderParams, OrderStatus, OrderType, Side, TimeInForce
from perpbot.core.strategy import BaseStrategy, StrategyAction, StrategyResult
from perpbot.strategies.confluence.params import ENTRY_TAG, EXIT_TAG, NS, ConfluenceParams

#: the signal's columns among the gate's features (the ML plugin's names)
DIRECTION = "confluence.direction"
SCORE = "confluence.score"


@attrs.define
class Signal:
    """The signal generator's output for one market at one decision.

    :param ticker: the market.
    :param confluence: its :class:`~perpbot.core.analysis.Confluence`.
    :param probability: the ML gate's probability (0-1), or None without a gate / not asked.
    :param passed: True when the signal qualifies for an entry (score, agreement, gate).
    :param why: why it does not qualify, or "" when it does.
    """

    ticker: str
    confluence: Confluence
    probability: float | None = None
    passed: bool = False
    why: str = ""


class SignalGenerator:
    """Turns a market's confluence (and the ML gate) into a :class:`Signal`.

    :param params: :class:`~perpbot.strategies.confluence.params.ConfluenceParams`.
    :param hubs: qualified ticker -> :class:`~perpbot.core.analysis.AnalysisHub`.
    :param gate: a :class:`~perpbot.core.analysis.SignalGate`, or None.
    """

    def __init__(self, params: ConfluenceParams, hubs: Mapping[str, Any], gate: Any = None):
        self.params = params
        self.hubs = hubs
        self.gate = gate
        self.entry_score = float(params.entry_score)
        self.gated_out = 0

    def confluence(self, ticker: str, ts_ns: int) -> Confluence:
        """The market's confluence (across venues with ``cross_venue``)."""
        if self.params.cross_venue:
            return market_confluence(self.hubs, ticker, ts_ns)
        hub = self.hubs.get(ticker)
        return hub.confluence(ts_ns) if hub is not None else NO_CONFLUENCE

    def gate_features(self, ticker: str, c: Confluence) -> dict[str, float]:
        """What the gate judges: the market's hub features plus the signal itself,
        ``confluence.direction`` (+1/-1/0) and ``confluence.score`` (signed: direction * score),
        the columns the ML plugin trains on (``perpbot.plugins.ml.features.signal_columns``)."""
        f = self.hubs[ticker].features()
        f[DIRECTION] = float(c.direction)
        f[SCORE] = float(c.direction * c.score)
        return f

    def check_gate(self) -> None:
        """Ask the gate once with a neutral signal, so a model trained on other features fails at start.

        :raises ConfigError: the gate refused the features (its message, e.g. the names that differ).
        """
        if self.gate is None or not self.hubs:
            return
        t = next(iter(self.hubs))
        try:
            self.gate.probability(self.gate_features(t, NO_CONFLUENCE))
        except ValueError as exc:
            raise ConfigError(f"strategy confluence: parameter ml_model: {exc}") from None

    def signal(self, ticker: str, ts_ns: int) -> Signal:
        """The market's :class:`Signal` at ``ts_ns``; asks the gate only for an otherwise qualified entry."""
        p = self.params
        c = self.confluence(ticker, ts_ns)
        s = Signal(ticker, c)
        if c.direction == 0 or c.score < self.entry_score:
            s.why = f"score {c.score:.1f} < entry {self.entry_score:g}"
            return s
        if c.agreeing < p.min_agreeing:
            s.why = f"{c.agreeing} analyzer(s) agree < {p.min_agreeing}"
            return s
        if c.direction < 0 and not p.allow_short:
            s.why = "short signal, shorts off"
            return s
        if self.gate is not None:
            prob = float(self.gate.probability(self.gate_features(ticker, c)))
            s.probability = prob
            if prob < self.gate.threshold:
                self.gated_out += 1
                s.why = f"ML gate: p={prob:.2f} < {self.gate.threshold:.2f}"
                return s
        s.passed = True
        return s


class ConfluenceStrategy(BaseStrategy):
    """Trades markets whose analyzers agree (see the module docstring for the cycle).

    Needs the analysis hubs the bot's wiring builds from :meth:`analysis_spec` (given in
    ``context.options["analysis"]``) and, when ``ml_model`` is set, the gate it loads
    (``context.options["signal_gate"]``).

    :raises ConfigError: built without analysis hubs, or with a gate that refuses the hubs' features.
    """

    name = "confluence"
    description = "trade the confluence of the analysis hub's six analyzers, optionally gated by an ML model"
    Params = ConfluenceParams

    @classmethod
    def analysis_spec(cls, params: ConfluenceParams) -> AnalysisSpec:
        """The analyzers, their parameters and weights this run needs (read by the wiring)."""
        return AnalysisSpec(parse_names(params.analyzers), dict(params.analyzer_params),
                            {k: float(v) for k, v in dict(params.weights).items()})

    def __init__(self, params: ConfluenceParams, context: Any):
        super().__init__(params, context)
        options = getattr(context, "options", None) or {}
        hubs = options.get("analysis")
        if not hubs:
            raise ConfigError("strategy confluence: no analysis hubs (the bot's wiring builds them from "
                              "ConfluenceStrategy.analysis_spec)")
        self.log = context.logger if getattr(context, "logger", None) is not None else _default_logger
        self.generator = SignalGenerator(params, hubs, options.get("signal_gate"))
        self.pending: dict[str, tuple[str, int]] = {}  # ticker -> (kind, since ns)
        self.cooldown_until: dict[str, int] = {}
        self.entered_ns: dict[str, int] = {}
        self.round_trips = 0
        self.exits_by: dict[str, int] = {}
        self._cooldown_ns = int(params.cooldown_s * NS)
        self._timeout_ns = int(params.order_timeout_s * NS)
        self._min_hold_ns = int(params.min_hold_s * NS)
        self.generator.check_gate()
        gate = self.generator.gate
        if gate is not None:
            self.log.info(f"confluence: ML gate {gate.describe()} (threshold {gate.threshold:.2f})")

    async def should_execute(self, market_data) -> bool:
        """Decide whenever a market is tradable."""
        return bool(market_data.tradable)

    async def execute_strategy(self, market_data) -> StrategyResult:
        """One cycle: signals, exits, entries, the ranked table.

        :returns: ``PLACE_ORDERS`` with exits and entries (reason ``"<ticker>: <reason>; ..."``), or nothing.
        """
        md = market_data
        now = md.ts_ns
        for t, (_, since) in list(self.pending.items()):
            if now - since > self._timeout_ns:
                del self.pending[t]
        signals = {t: self.generator.signal(t, now) for t in md.tradable}
        orders = self._exits(md, signals, now)
        orders += self._entries(md, signals, now)
        if orders:
            self.log.info("{}", self.table(signals, md))
            return StrategyResult(StrategyAction.PLACE_ORDERS, orders=tuple(orders),
                                  reason="; ".join(f"{o.ticker}: {o.reason}" for o in orders))
        self.log.opt(lazy=True).debug("{}", lambda: self.table(signals, md))
        return StrategyResult.nothing()

    def _exits(self, md: Any, signals: dict[str, Signal], now: int) -> list[OrderParams]:
        p = self.params
        out = []
        for t, pos in md.positions.items():
            if pos is None or pos.size == 0 or t not in signals or t in self.pending:
                continue
            long = pos.size > 0
            mark = md.marks.get(t)
            kind = reason = None
            if mark is not None and pos.entry_price:
                ret = (mark - pos.entry_price) / pos.entry_price * (1 if long else -1)
                if p.take_profit > 0 and ret >= p.take_profit:
                    kind, reason = "take-profit", f"take-profit: return {ret * 100:.2f}% >= {p.take_profit * 100}%"
                elif p.stop_loss > 0 and ret <= -p.stop_loss:
                    kind, reason = "stop-loss", f"stop-loss: return {ret * 100:.2f}% <= -{p.stop_loss * 100}%"
            if kind is None:
                c = signals[t].confluence
                held = c.score * c.direction * (1 if long else -1)
                entered = self.entered_ns.get(t)
                if held < float(p.exit_score) and (entered is None or now - entered >= self._min_hold_ns):
                    kind = "signal"
                    top = c.reasons[0] if c.reasons else "no reading"
                    reason = f"signal exit: confluence {held:+.1f} for the {'long' if long else 'short'} < {p.exit_score} ({top})"
            if kind is None:
                continue
            out.append(OrderParams(ticker=t, side=Side.SELL if long else Side.BUY, order_type=OrderType.MARKET,
                                   size=abs(pos.size), time_in_force=TimeInForce.IOC, reduce_only=True,
                                   tag=f"{EXIT_TAG}:{kind}", reason=reason))
            self.pending[t] = ("exit", now)
            self.cooldown_until[t] = now + self._cooldown_ns
            self.exits_by[kind] = self.exits_by.get(kind, 0) + 1
        return out

    def _entries(self, md: Any, signals: dict[str, Signal], now: int) -> list[OrderParams]:
        p = self.params
        held = sum(1 for pos in md.positions.values() if pos is not None and pos.size != 0)
        held += sum(1 for kind, _ in self.pending.values() if kind == "entry")
        ranked = sorted((s for s in signals.values() if s.passed), key=lambda s: -s.confluence.score)
        out = []
        for s in ranked:
            if held >= p.max_positions:
                break
            t = s.ticker
            pos = md.positions.get(t)
            if (pos is not None and pos.size != 0) or t in self.pending or now < self.cooldown_until.get(t, 0):
                continue
            if any(o.ticker == t for o in md.open_orders.values()):
                continue
            c = s.confluence
            side = Side.BUY if c.direction > 0 else Side.SELL
            gate = f", ML p={s.probability:.2f}" if s.probability is not None else ""
            reason = (f"{'long' if side is Side.BUY else 'short'}: confluence {c.score:.1f} >= {p.entry_score}, "
                      f"{c.agreeing}/{c.total} agree{gate}; " + "; ".join(c.reasons[:3]))
            out.append(OrderParams(ticker=t, side=side, order_type=OrderType.MARKET, tag=ENTRY_TAG, reason=reason))
            self.pending[t] = ("entry", now)
            self.entered_ns[t] = now
            held += 1
        return out

    def table(self, signals: dict[str, Signal], md: Any) -> str:
        """The ranked signal table: one line per market (score, direction, agreement, probability, reasons)."""
        lines = [f"confluence table @ {md.ts_ns // NS}s (entry >= {self.params.entry_score}, "
                 f"exit < {self.params.exit_score})"]
        for s in sorted(signals.values(), key=lambda s: -s.confluence.score):
            c = s.confluence
            d = "long" if c.direction > 0 else "short" if c.direction < 0 else "-"
            prob = f" p={s.probability:.2f}" if s.probability is not None else ""
            pos = md.positions.get(s.ticker)
            held = f" [held {pos.size}]" if pos is not None and pos.size != 0 else ""
            status = "ENTRY" if s.passed else s.why
            lines.append(f"  {s.ticker:<16} {c.score:5.1f} {d:<5} {c.agreeing}/{c.total}{prob}{held} {status}")
            for r in c.reasons[:3]:
                lines.append(f"      {r}")
        for t, why in md.paused.items():
            lines.append(f"  {t:<16} paused: {why}")
        return "\n".join(lines)

    def on_fill(self, fill) -> None:
        """A fill of ours ends its market's pending order; a filled exit counts a round trip."""
        tag = fill.tag or ""
        if tag.startswith("confluence"):
            self.pending.pop(fill.ticker, None)
            if tag.startswith(EXIT_TAG):
                self.round_trips += 1

    def on_order_update(self, update) -> None:
        """A rejected, canceled or expired order of ours no longer blocks its market."""
        if update.status in (OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.EXPIRED) and \
                (update.tag or "").startswith("confluence"):
            self.pending.pop(update.ticker, None)

    def get_state(self) -> dict:
        """Cool-downs and entry times (ns), JSON-ready, version 1."""
        return {"version": 1, "cooldown_until": dict(self.cooldown_until), "entered_ns": dict(self.entered_ns),
                "round_trips": self.round_trips, "exits_by": dict(self.exits_by)}

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Load :meth:`get_state`'s data (empty: nothing to restore).

        :raises ValueError: an unknown state version.
        """
        if not state:
            return
        if state.get("version") != 1:
            raise ValueError(f"confluence state: unknown version {state.get('version')!r} (expected 1)")
        self.cooldown_until = {k: int(v) for k, v in state.get("cooldown_until", {}).items()}
        self.entered_ns = {k: int(v) for k, v in state.get("entered_ns", {}).items()}
        self.round_trips = int(state.get("round_trips", 0))
        self.exits_by = {k: int(v) for k, v in state.get("exits_by", {}).items()}

    def summary_lines(self) -> list[str]:
        """Round trips, exits by reason, and entries the ML gate refused."""
        exits = ", ".join(f"{k} {v}" for k, v in sorted(self.exits_by.items())) or "none"
        lines = [f"confluence: {self.round_trips} round trips; exits: {exits}"]
        if self.generator.gate is not None:
            lines.append(f"confluence: ML gate refused {self.generator.gated_out} signal(s)")
        return lines


__all__ = ["ConfluenceStrategy", "Signal", "SignalGenerator"]
