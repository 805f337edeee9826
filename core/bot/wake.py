"""Wake-ups of an event-driven strategy: which event wakes it, and when the throttle lets it decide.

The event loop (:mod:`perpbot.core.bot.loop`) calls :meth:`Waker.on_event` for each event of a
traded market once it is applied to the market's state and signal engine; a returned
:class:`~perpbot.core.wake.WakeEvent` is decided on at once, before the next event. Everything
is computed from the events and their timestamps (market time), never from the wall clock or
the feed's batching, so a replay and the live feed that received the same events wake the
strategy at the same events. Semantics: :mod:`perpbot.core.wake`. Imports only
:mod:`perpbot.core` modules.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from perpbot.core.records import copy_with, plain_maker
from perpbot.core.model import BookDelta, BookSnapshot, Quote, Trade
from perpbot.core.model.enums import BUY, SELL
from perpbot.core.wake import Wake, WakeEvent

#: the sides' texts ("BUY"/"SELL"), read without the enum property or an enum hash (a side is BUY or SELL)
_BUY_TEXT, _SELL_TEXT = BUY.value, SELL.value

_TOP = (BookDelta, BookSnapshot, Quote)
#: ``WakeEvent(**fields)`` without ``__init__`` (a frozen class storing its fields as given)
_make_wake = plain_maker(WakeEvent)


class Waker:
    """Tracks tops of book and score sides, and the throttle, for one run.

    :param spec: the strategy's :class:`~perpbot.core.wake.Wake` (``active``).
    :param throttle_ns: least market time (ns) between two event-driven decisions
        (``decision_interval_s``).

    Counters (for reports and tests): ``woken`` (kind -> decisions made on a wake-up),
    ``held`` (wake-ups the throttle delayed), ``merged`` (wake-ups that arrived while one was
    already held: decided together with it), ``delay_ns_total``/``delay_ns_max`` (market
    time from the waking event to its decision).
    """

    def __init__(self, spec: Wake, throttle_ns: int):
        self.spec = spec
        self.throttle_ns = int(throttle_ns)
        self.bbo = spec.bbo
        self.trade = spec.trade
        self.crossings = tuple(spec.scores)
        #: ticker -> (best bid, best ask) last seen (USD, either may be None)
        self.tops: dict[str, tuple] = {}
        #: (ticker, crossing index) -> True when the score was at or above the threshold
        self.sides: dict[tuple, bool] = {}
        #: earliest event time (ns) of the next event-driven decision
        self.next_ok_ns = 0
        #: the wake-up the throttle holds, or None
        self.pending: WakeEvent | None = None
        self.woken: Counter = Counter()
        self.held = 0
        self.merged = 0
        self.delay_ns_total = 0
        self.delay_ns_max = 0

    def trigger(self, st: Any, ev: Any) -> WakeEvent | None:
        """The wake-up ``ev`` causes (after ``st.apply(ev)`` and the engine's update), or None.

        Top of book: ``st.best_bid_offer()`` compared with the last one seen for the market
        (only after book and quote events). Trade: every :class:`~perpbot.core.model.Trade`.
        Scores: each watched field's side of its threshold compared with the last check.
        """
        et = type(ev)
        if self.trade and et is Trade:
            # ``!s``: str() directly; format(x, "") gives the same text for a Decimal (and an
            # int or float) by a slower route
            return _make_wake(kind="trade", ticker=ev.ticker, ts_ns=ev.ts_ns,
                              detail=f"{_BUY_TEXT if ev.side is BUY else _SELL_TEXT} {ev.size!s} at {ev.price!s}")
        found = None
        if self.bbo and et in _TOP:
            top = st.best_bid_offer()
            if top != self.tops.get(ev.ticker):
                self.tops[ev.ticker] = top
                found = WakeEvent("bbo", ev.ticker, ev.ts_ns, f"bid {top[0]} ask {top[1]}")
        if self.crossings:
            sc = st.scores
            if sc is not None:
                for i, c in enumerate(self.crossings):
                    value = getattr(sc, c.field)
                    side = value >= c.threshold
                    key = (ev.ticker, i)
                    before = self.sides.get(key)
                    self.sides[key] = side
                    if before is not None and before != side and found is None:
                        way = "upward" if side else "downward"
                        found = WakeEvent("score", ev.ticker, ev.ts_ns, f"{c.field} crossed {c.threshold:g} {way} ({value:.1f})")
        return found

    def on_event(self, st: Any, ev: Any) -> WakeEvent | None:
        """The wake-up to decide on now, after ``ev`` (applied), or None.

        A wake-up at or after ``next_ok_ns`` is decided at once; one inside the throttle gap is
        held (the first held one is kept, later ones are merged into it) and returned at the
        first event whose time reaches ``next_ok_ns``.
        """
        found = self.trigger(st, ev)
        ts = ev.ts_ns
        pending = self.pending
        if found is None and pending is None:
            return None
        if ts < self.next_ok_ns:
            if found is not None:
                if pending is None:
                    self.pending = found
                    self.held += 1
                else:
                    self.merged += 1
            return None
        wake = pending if pending is not None else found
        if pending is not None and found is not None:
            self.merged += 1
        self.pending = None
        return wake

    def decided(self, wake: WakeEvent, now_ns: int, event_ts_ns: int) -> WakeEvent:
        """Book a decision on ``wake`` at clock time ``now_ns`` after the event of time
        ``event_ts_ns``; starts the throttle gap. :returns: ``wake`` with ``decided_ns`` set."""
        done = copy_with(wake, "decided_ns", event_ts_ns)  # attrs.evolve(wake, decided_ns=event_ts_ns)
        self.next_ok_ns = event_ts_ns + self.throttle_ns
        self.woken[wake.kind] += 1
        delay = done.delay_ns
        self.delay_ns_total += delay
        if delay > self.delay_ns_max:
            self.delay_ns_max = delay
        return done

    def hold_until(self, ts_ns: int) -> None:
        """No event-driven decision before ``ts_ns`` (a strategy's ``wait_s``)."""
        if ts_ns > self.next_ok_ns:
            self.next_ok_ns = ts_ns

    def stats(self) -> dict:
        """Counters as a plain dict: ``woken`` (kind -> n), ``held``, ``merged``, ``delay_ms_mean``, ``delay_ms_max``."""
        n = sum(self.woken.values())
        return {
            "woken": dict(self.woken),
            "held": self.held,
            "merged": self.merged,
            "delay_ms_mean": (self.delay_ns_total / n / 1e6) if n else 0.0,
            "delay_ms_max": self.delay_ns_max / 1e6,
        }
