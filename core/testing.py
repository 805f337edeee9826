"""Test helpers and pytest fixtures for perpbot plugins (built-in and third-party).

Installed as a pytest plugin (entry point ``pytest11: perpbot``), so a
strategy package's tests get the same fixtures the built-ins use:

- ``real_markets``: BTC-USD and ETH-USD :class:`~perpbot.core.model.Market` objects with
  real dYdX mainnet parameters (indexer ``/v4/perpetualMarkets``, 2025).
- ``make_market_data``: the :func:`make_market_data` builder: a
  :class:`~perpbot.core.state.MarketData` view from prices, scores, positions, trades
  and bars, to unit-test a strategy's decisions.
- ``sample_path``: the folder of the embedded real data sample (:func:`sample_dir`).
- ``run_replay``: run a strategy through the real bot, paper exchange and replay
  feed on the embedded real data sample; returns ``(bot, summary)``.

Plain helpers: :class:`ListFeed` (a feed that replays a list of events) and
:func:`bot_config`.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Mapping

import pytest

from perpbot.core.config import BotConfig, normalize_ticker
from perpbot.core.feed import BaseFeed
from perpbot.core.model import Balance, Bar, BookSnapshot, Market, OraclePrice, Position, Trade
from perpbot.core.state import MarketData, MarketState

D = Decimal

#: Real dYdX v4 mainnet market parameters (indexer /v4/perpetualMarkets, 2025).
REAL_MARKET_PARAMS = {
    "BTC-USD": dict(clob_pair_id=0, tick_size="1", step_size="0.0001", atomic_resolution=-10,
                    quantum_conversion_exponent=-9, step_base_quantums=1_000_000, subticks_per_tick=100_000,
                    initial_margin_fraction="0.02", maintenance_margin_fraction="0.012"),
    "ETH-USD": dict(clob_pair_id=1, tick_size="0.1", step_size="0.001", atomic_resolution=-9,
                    quantum_conversion_exponent=-9, step_base_quantums=1_000_000, subticks_per_tick=100_000,
                    initial_margin_fraction="0.02", maintenance_margin_fraction="0.012"),
    "SOL-USD": dict(clob_pair_id=5, tick_size="0.01", step_size="0.1", atomic_resolution=-7,
                    quantum_conversion_exponent=-9, step_base_quantums=1_000_000, subticks_per_tick=1_000_000,
                    initial_margin_fraction="0.05", maintenance_margin_fraction="0.03",
                    open_interest_lower_cap="40000000", open_interest_upper_cap="100000000"),
}


def market(ticker: str) -> Market:
    """A :class:`Market` with real dYdX parameters (BTC-USD, ETH-USD, SOL-USD)."""
    t = normalize_ticker(ticker)
    return Market(ticker=t, **REAL_MARKET_PARAMS[t])


class ListFeed(BaseFeed):
    """A replay feed over an in-memory list of event batches (tests and examples).

    Config: ``batches`` (list of lists of events) or ``events`` (one event per batch),
    ``markets`` (ticker -> Market; defaults to :data:`REAL_MARKET_PARAMS`).
    """

    name = "list"
    description = "in-memory events (tests)"
    replay = True

    def markets(self) -> dict[str, Market]:
        """The configured ``markets`` (ticker -> :class:`~perpbot.core.model.Market`), else the
        built-in real parameters of :data:`REAL_MARKET_PARAMS`."""
        given = self.config.get("markets")
        if given:
            return dict(given)
        return {t: market(t) for t in REAL_MARKET_PARAMS}

    async def batches(self):
        """Yield each configured batch as a list of events (``events``: one event per batch)."""
        batches = self.config.get("batches")
        if batches is None:
            batches = [[e] for e in self.config.get("events", [])]
        for b in batches:
            yield list(b)

    def stats(self) -> dict:
        """``{"batches": n}``: the number of configured batches (or events)."""
        return {"batches": len(self.config.get("batches") or self.config.get("events") or [])}


def book_events(ticker: str, ts_ns: int, mid: Decimal, spread: Decimal = D("1"), size: Decimal = D("5"), levels: int = 5):
    """A snapshot around ``mid`` plus an oracle price at ``mid`` (two events)."""
    half = spread / 2
    bids = tuple((mid - half - i * spread, size) for i in range(levels))
    asks = tuple((mid + half + i * spread, size) for i in range(levels))
    return [BookSnapshot(ticker, ts_ns, bids, asks), OraclePrice(ticker, ts_ns, mid)]


def state_with(*events, ticker: str = "BTC-USD") -> MarketState:
    """A :class:`MarketState` of ``ticker`` (its :func:`market` parameters) with ``events`` applied in order."""
    st = MarketState(market(ticker))
    for ev in events:
        st.apply(ev)
    return st


def bot_config(**overrides) -> BotConfig:
    """A BotConfig for tests: no journal, no report, no progress bar, state in ``state_dir``."""
    base = dict(journal_enabled=False, report=False, progress=False, risk_policies=())
    base.update(overrides)
    return BotConfig(**base)


def make_market_data(
    prices: Mapping[str, Decimal],
    *,
    scores: Mapping[str, Mapping[str, float]] | None = None,
    positions: Mapping[str, Position] | None = None,
    paused: Mapping[str, str] | None = None,
    ts_ns: int = 1_700_000_000 * 10**9,
    equity: Decimal = D("10000"),
    open_orders: Mapping | None = None,
    trades: Mapping[str, Iterable[Trade]] | None = None,
    bars: Mapping[str, Iterable[Bar]] | None = None,
) -> MarketData:
    """A hand-made :class:`~perpbot.core.state.MarketData`, to unit-test a strategy's decisions.

    Each ticker gets a real-parameter :class:`~perpbot.core.model.Market` (BTC-USD, ETH-USD,
    SOL-USD; any other ticker gets tick 0.01 and step 0.001), a one-level book 1 USD either
    side of its price and an oracle price at it. Then its ``trades`` and ``bars`` are applied
    in the order given, so the state's tape, bars, ``last_price``, :meth:`~MarketState.last_trade`,
    :meth:`~MarketState.last_bars` and :meth:`~MarketState.high_low` see them (giving bars makes
    the market bar-fed). Nothing is validated against the book: you decide what the test shows.

    :param prices: ticker -> price (USD, Decimal or str); also the view's ``marks``.
    :param scores: ticker -> ``{"momentum": 80, ...}`` set on a :class:`~perpbot.core.signals.Scores`.
    :param positions: ticker -> :class:`~perpbot.core.model.Position`.
    :param paused: ticker -> reason; those tickers are left out of ``tradable``.
    :param ts_ns: decision time, ns since the epoch (also the time of the book events).
    :param equity: account equity, collateral and free collateral (USD).
    :param open_orders: client id -> :class:`~perpbot.core.model.OrderInfo`.
    :param trades: ticker -> public :class:`~perpbot.core.model.Trade` events (their own ``ts_ns``).
    :param bars: ticker -> closed :class:`~perpbot.core.model.Bar` values (``ts_ns`` = close time).
    :returns: the :class:`~perpbot.core.state.MarketData`.
    :raises KeyError: when ``trades`` or ``bars`` name a ticker not in ``prices``.
    """
    states = {}
    for t, px in prices.items():
        st = MarketState(market(t.split(":")[-1]) if t.split(":")[-1] in REAL_MARKET_PARAMS else Market(t, 0, "0.01", "0.001"))
        px = D(px)
        st.apply(BookSnapshot(t, ts_ns, ((px - 1, D(5)),), ((px + 1, D(5)),)))
        st.apply(OraclePrice(t, ts_ns, px))
        if scores and t in scores:
            st.scores = _scores(scores[t])
        states[t] = st
    for kind, given in (("trades", trades), ("bars", bars)):
        for t, events in (given or {}).items():
            if t not in states:
                raise KeyError(f"make_market_data: {kind} for {t!r}, which is not in prices ({sorted(states)})")
            for ev in events:
                states[t].apply(ev)
    paused = dict(paused or {})
    bal = Balance(collateral=equity, equity=equity, free_collateral=equity)
    return MarketData(
        ts_ns=ts_ns,
        markets=states,
        tradable=tuple(t for t in states if t not in paused),
        paused=paused,
        positions=dict(positions or {}),
        open_orders=dict(open_orders or {}),
        balance=bal,
        marks={t: D(p) for t, p in prices.items()},
    )


def _scores(values: Mapping[str, float]):
    from perpbot.core.signals import Scores

    s = Scores()
    for k, v in values.items():
        if not hasattr(s, k):
            raise AttributeError(f"make_market_data: unknown score {k!r}")
        setattr(s, k, v)
    return s


def sample_dir() -> Path:
    """The embedded real data sample: ``examples/data`` of a checkout, ``perpbot/data`` of a wheel.

    Its ``SOURCES.md`` names each file's origin and licence.
    """
    checkout = Path(__file__).resolve().parents[1] / "examples" / "data"
    return checkout if checkout.is_dir() else Path(__file__).resolve().parents[1] / "data"


async def run_bot_async(config: BotConfig, extra_plugins: Iterable[Any] = ()):
    """Build and run a TradingBot; returns ``(bot, summary)``."""
    from perpbot.core.bot import TradingBot
    from perpbot.core.plugins import PluginManager

    pm = PluginManager(load_entry_points=True, extra_plugins=tuple(extra_plugins))
    bot = TradingBot(config, pm)
    summary = await bot.run()
    return bot, summary


# --------------------------------------------------------------------------
# pytest fixtures
# --------------------------------------------------------------------------


@pytest.fixture
def real_markets() -> dict[str, Market]:
    """BTC-USD, ETH-USD, SOL-USD markets with real dYdX parameters."""
    return {t: market(t) for t in REAL_MARKET_PARAMS}


@pytest.fixture
def sample_path() -> Path:
    """The folder of the embedded real data sample (see :func:`sample_dir`)."""
    return sample_dir()


@pytest.fixture(name="make_market_data")
def _make_market_data_fixture():
    """The :func:`make_market_data` builder."""
    return make_market_data


@pytest.fixture
def run_replay(tmp_path):
    """``run_replay(strategy, params=None, tickers=("BTC-USD","ETH-USD"), max_events=None, **cfg)``
    runs the strategy on the embedded real sample with the paper exchange; returns ``(bot, summary)``."""

    def run(strategy: str, params: Mapping | None = None, tickers=("BTC-USD", "ETH-USD"), max_events=None, **cfg):
        config = bot_config(
            exchange=("paper",),
            strategy=strategy,
            tickers=tuple(tickers),
            feed=cfg.pop("feed", "replay"),
            state_dir=tmp_path / "state",
            max_events=max_events,
            strategies={strategy: dict(params or {})},
            **cfg,
        )
        return asyncio.run(run_bot_async(config))

    return run


def driving_bot(view: Any):
    """The :class:`~perpbot.core.bot.TradingBot` behind the ``bot`` an observer hook receives.

    For TEST plugins only, which drive a run from inside a hook (submit or cancel orders,
    swap the client-id allocator). Real plugins read the run through
    :class:`~perpbot.core.bot.view.RunView` and change it only through the
    :class:`~perpbot.core.bot.resume.ResumeAPI`.

    :param view: the :class:`~perpbot.core.bot.view.RunViewProxy` (a TradingBot is returned as is).
    """
    from perpbot.core.bot.view import RunViewProxy

    return object.__getattribute__(view, "_bot") if isinstance(view, RunViewProxy) else view
