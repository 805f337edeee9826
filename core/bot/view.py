"""The read-only view of a run that observer plugins receive as ``bot``.

Every observer hook of :mod:`perpbot.core.hookspecs` passes ``bot``: at run time it is a
:class:`RunViewProxy` over the :class:`~perpbot.core.bot.TradingBot`, typed as :class:`RunView`:
the members listed here are the documented, stable surface a plugin may read, and the proxy
answers those and nothing else (any other name is an ``AttributeError`` naming RunView; no
attribute can be assigned). Everything else on the bot (its sizer, plugin manager, ``book_fill``,
``import_state``, ``submit``, attributes starting with ``_``) is not for plugins: state
changes at startup go through the :class:`~perpbot.core.bot.resume.ResumeAPI` that
``reconcile_startup`` receives; a plugin that must stop trading calls :meth:`RunView.halt`.

Treat the returned mappings as read-only: they are the bot's live tables, not copies.
Units: prices and amounts USD (:class:`~decimal.Decimal`), sizes base units, times ns since
the epoch. Imports nothing of perpbot at run time.
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING, Any, Mapping, Protocol, runtime_checkable

if TYPE_CHECKING:
    from decimal import Decimal

    from perpbot.core.config import BotConfig
    from perpbot.core.model import Balance, MarketInfo, OrderInfo, Position
    from perpbot.core.policies import RiskDecision
    from perpbot.core.portfolio import Portfolio
    from perpbot.core.report import RunSummary
    from perpbot.core.state import MarketData, MarketState


@runtime_checkable
class RunView(Protocol):
    """What an observer may read of a running bot, and the two calls it may make (halt, stop).

    Attributes (read them, never assign them):

    - ``run_id`` (str, 12 hex digits), ``config`` (:class:`~perpbot.core.config.BotConfig`),
      ``state_dir`` (:class:`~pathlib.Path`);
    - ``clock``: ``clock.now_ns()`` is the run's time (market time in replays;
      ``clock.simulated`` tells which);
    - ``feed``: the market-data feed (``name``, ``progress()`` -> ``(done, total)`` or None,
      ``stats()`` -> counters);
    - ``exchanges``: venue -> exchange client (``capabilities()``, ``export_state()`` of
      simulators); ``strategy``: the strategy (``name``, ``get_state()``);
    - ``markets``: qualified ticker -> :class:`~perpbot.core.model.MarketInfo`;
      ``states``: qualified ticker -> :class:`~perpbot.core.state.MarketState`;
    - ``portfolios``: venue -> that venue's account ledger: the exchange's own when it keeps one
      (the paper exchange's :class:`~perpbot.exchanges.paper.ledger.PaperLedger`, the single ledger
      of its fills), else the :class:`~perpbot.core.portfolio.Portfolio` the bot books;
    - ``open_orders``: client id -> :class:`~perpbot.core.model.OrderInfo` (qualified tickers);
    - ``risk_chain`` (the policies, in order), ``risk_log`` (the last 200
      :class:`~perpbot.core.policies.RiskDecision` that were not approvals);
    - counters: ``events_processed`` (market events: depth level entries, trades, quotes),
      ``events_read`` (feed items: the unit of checkpoints), ``decisions``, ``orders_sent``,
      ``orders_rejected``, ``consecutive_failures``, ``strategy_errors``;
    - equity reference points (USD): ``start_equity``, ``peak_equity``, ``day_start_equity``;
      ``start_ns`` (first event's time);
    - ``entries_paused`` (why new entries are paused by a controller, or None; see
      :mod:`perpbot.core.bot.control`: plugins that steer the bot get its narrow
      :class:`~perpbot.core.bot.control.BotControl` from ``control_of(bot)``, never through this view);
    - ``halted`` (the halt reason, or None), ``stop_reason`` (str, "" while running),
      ``resumed`` (a reconciler restored a checkpoint), ``client_id_high`` (int: every client
      id this run handed out is below it).
    """

    run_id: str
    config: BotConfig
    state_dir: Any
    clock: Any
    feed: Any
    exchanges: Mapping[str, Any]
    strategy: Any
    markets: Mapping[str, MarketInfo]
    states: Mapping[str, MarketState]
    portfolios: Mapping[str, Portfolio]
    open_orders: Mapping[int, OrderInfo]
    risk_chain: list
    risk_log: Any
    events_processed: int
    events_read: int
    decisions: int
    orders_sent: int
    orders_rejected: int
    consecutive_failures: int
    strategy_errors: int
    start_equity: Decimal
    peak_equity: Decimal
    day_start_equity: Decimal
    start_ns: int
    halted: str | None
    entries_paused: str | None
    stop_reason: str
    resumed: bool

    @property
    def client_id_high(self) -> int:
        """Every client id this run handed out (or reserved) is below this (before a wrap)."""
        ...

    def qualify(self, venue: str, ticker: str) -> str:
        """``ticker`` of ``venue`` as the run names it: bare on the primary venue, ``venue:ticker`` elsewhere."""
        ...

    def marks(self) -> dict[str, Decimal]:
        """Mark price (USD) per qualified ticker: oracle where known, else mid; markets without a price are absent."""
        ...

    def venue_marks(self, venue: str) -> dict[str, Decimal]:
        """:meth:`marks` of one venue, keyed by that venue's own (unqualified) tickers."""
        ...

    def balance(self, venue: str | None = None) -> Balance:
        """The bot's view of a venue's account (default: the primary venue), USD.

        :raises KeyError: an unknown venue, or before the bot started (no portfolios yet).
        """
        ...

    def total_equity(self) -> Decimal:
        """The equity of every venue together, USD."""
        ...

    def positions(self) -> dict[str, Position]:
        """Open positions of every venue, keyed by qualified ticker (sizes signed, base units)."""
        ...

    def paused(self) -> dict[str, str]:
        """Markets whose data is stale now: qualified ticker -> the reason."""
        ...

    def market_data(self) -> MarketData:
        """The read-only :class:`~perpbot.core.state.MarketData` a strategy decides on, as of now."""
        ...

    def summary(self) -> RunSummary:
        """The run's figures so far (a :class:`~perpbot.core.report.RunSummary`; valid at any time)."""
        ...

    def export_state(self) -> dict:
        """The bot's runtime counters, JSON-ready (the ``bot`` part of a checkpoint)."""
        ...

    def halt(self, reason: str, *, source: str = "") -> None:
        """Stop trading: no new risk, stop after the current batch, open orders canceled, exit code 6.

        :param reason: one line saying why; :param source: the plugin's name. First call wins.
        """
        ...

    def request_stop(self, reason: str) -> None:
        """Stop after the current batch (a normal stop, not a halt); the first reason wins."""
        ...


def run_view_members() -> tuple[str, ...]:
    """The names :class:`RunView` documents (attributes and methods), for tests and tools."""
    names = set(getattr(RunView, "__annotations__", {}))
    names |= {n for n, v in vars(RunView).items() if not n.startswith("_") and (callable(v) or isinstance(v, property))}
    return tuple(sorted(names))


class RunViewProxy:
    """The object observers receive as ``bot``: :class:`RunView`'s members of one bot, nothing more.

    Reads go through to the live bot (so figures are current); a name :class:`RunView` does
    not document, or any assignment, raises ``AttributeError``.

    :param bot: the :class:`~perpbot.core.bot.TradingBot` being viewed.
    """

    __slots__ = ("_bot", "__weakref__")  # plugins key per-run state by it (WeakKeyDictionary)
    _MEMBERS: frozenset = frozenset()  # filled below, once RunView's members are known

    def __init__(self, bot: Any):
        object.__setattr__(self, "_bot", bot)

    def __getattr__(self, name: str) -> Any:
        if name in RunViewProxy._MEMBERS:
            return getattr(object.__getattribute__(self, "_bot"), name)
        raise AttributeError(f"RunView has no {name!r}: observers read only RunView's members "
                             "(perpbot.core.bot.view.RunView); state changes go through ResumeAPI")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"RunView is read-only: cannot set {name!r}")

    def __dir__(self) -> list[str]:
        return sorted(RunViewProxy._MEMBERS)

    def __repr__(self) -> str:
        return f"RunView(run {object.__getattribute__(self, '_bot').run_id})"


RunViewProxy._MEMBERS = frozenset(run_view_members())


def _reader(name: str) -> property:
    """A read-only property answering ``name`` from the viewed bot (``getattr(bot, name)``)."""
    get = attrgetter(name)
    return property(lambda self: get(self._bot), doc=f"The viewed bot's ``{name}`` (see :class:`RunView`).")


# each documented member as a property on the class: read by one descriptor call instead of a
# failed lookup followed by __getattr__ (observers read them on every hook call); any other
# name still goes to __getattr__ and raises, and __setattr__ still refuses every assignment
for _name in RunViewProxy._MEMBERS:
    setattr(RunViewProxy, _name, _reader(_name))
del _name

__all__ = ["RunView", "RunViewProxy", "run_view_members"]
