"""The one set of run-performance definitions, shared by the run summary and the report.

Both :class:`perpbot.core.report.RunSummary` (printed at the end of a run, built by
``core/bot/`` from the live books) and the HTML report (``plugins/report/analytics.py``,
built from the SQLite journal) use the classes and functions below, so a figure that
appears in both is computed by the same code from the same events.

Definitions (money in USD as exact :class:`~decimal.Decimal`; ratios as floats):

- **realized PnL of a fill**: the closing part of the fill times (fill price - average
  entry), signed by the side of the position it reduces; before fees and funding. The
  average-entry method, per (venue, market), the same as ``core/portfolio.py``
  ``Portfolio.apply_fill``. An opening or adding fill realizes 0.
- **realized PnL per order tag**: the realized PnL of each fill is credited to the tag of
  the order that made it (for an exit, the strategy's exit reason); the fee of a fill is
  charged to the same tag.
- **trade (round trip)**: per (venue, market), it opens when the position leaves zero
  and closes when it returns to zero; a fill that flips the side closes one trade and
  opens the next, its fee split between them by size. Trade PnL = realized PnL of its
  fills - their fees (funding is not attributed to trades).
- **win**: a closed trade whose PnL **net of fees** is > 0. Win rate = wins / closed trades.
- **funding per strategy**: a funding payment is credited to the strategy of the run that
  received or paid it (one bot runs one strategy).
- **max drawdown**: the largest fall of total equity (summed over venues) from its running
  peak, USD and fraction of that peak, over the equity samples the bot takes: one at every
  decision cycle and one at the end of the run (:class:`DrawdownTracker`). The bot records
  the figure in its run summary (journal ``runs.summary_json``); the report uses that
  recorded figure, and only computes it from the journal's sampled equity when the run did
  not record one (a killed run, or ``--all`` over independent runs), saying so. Its
  duration runs from that peak to the first sample at or above it again (or to the last
  sample: "not recovered"). The longest time under water is the longest such span over
  every peak.
- **Sharpe / Sortino**: only on at least :data:`MIN_DAILY_RETURNS` daily returns. The
  equity series is put on a grid of one day from its first sample (last value carried
  forward); simple returns per day, risk-free rate 0; Sharpe = mean / sample standard
  deviation x sqrt(365.25); Sortino = mean / downside deviation (root mean square of
  min(r, 0) over all days) x sqrt(365.25). Crypto trades every day, so a year is 365.25
  days. With fewer returns the ratios are not defined (None), and the reason says why.
- **labels**: a market on the run's primary venue (the first ``--exchange``) is shown by
  its ticker, one on any other venue as ``venue:ticker`` (the bot's ``_qualify`` rule).
- **formatting**: money and prices as plain decimals (never exponent notation), durations
  in days, hours, minutes (and seconds under an hour).
"""

from __future__ import annotations

import math
from collections import defaultdict
from decimal import Decimal
from typing import Any, Iterable

import attrs

ZERO = Decimal(0)
NS = 1_000_000_000
DAY_NS = 86400 * NS
#: Sharpe and Sortino need at least this many daily returns (a month of data); fewer
#: returns give a standard deviation too noisy to rank anything.
MIN_DAILY_RETURNS = 30
DAYS_PER_YEAR = 365.25


# ---------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------


def plain(value: Any, places: int | None = None, *, sign: bool = False, grouping: bool = False) -> str:
    """A number as a plain decimal string, never in exponent notation.

    :param value: Decimal, int or float (None gives ``"n/a"``).
    :param places: digits after the point (rounded half-even); None keeps every
        significant digit of the exact value, trailing zeros removed
        (``Decimal("3.505E+4")`` -> ``"35050"``, ``Decimal("0E-8")`` -> ``"0"``).
    :param sign: always show the sign (``+1.50``).
    :param grouping: thousands separators (``35,050``).
    """
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        value = Decimal(repr(value))
    elif not isinstance(value, Decimal):
        value = Decimal(value)
    spec = ("+" if sign else "") + ("," if grouping else "")
    if places is not None:
        text = format(value, f"{spec}.{places}f")
    else:
        if value == value.to_integral_value():
            value = value.quantize(Decimal(1))
        else:
            value = value.normalize()
        text = format(value, f"{spec}f")
    if text.lstrip("+-").replace(",", "").replace(".", "").strip("0") == "":  # no "-0.00"
        text = text.replace("-", "+" if sign else "", 1)
    return text


def format_duration(seconds: float | int | None) -> str:
    """A duration in days, hours and minutes: ``"34d 18h 10m"``, ``"2h 5m"``, ``"1m 26s"``, ``"42s"``.

    Seconds are shown only under an hour. None gives ``"n/a"``.
    """
    if seconds is None:
        return "n/a"
    s = int(round(float(seconds)))
    if s < 0:
        return "-" + format_duration(-s)
    d, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    if d:
        return f"{d}d {h}h {m}m"
    if h:
        return f"{h}h {m}m"
    if m:
        return f"{m}m {sec}s"
    return f"{sec}s"


def market_label(venue: str, ticker: str, primary: str) -> str:
    """How a market is named in the summary and the report: the bare ticker on the
    primary venue (the first ``--exchange``), ``venue:ticker`` elsewhere (``TradingBot.qualify``, core/bot/supervisor.py)."""
    return ticker if not venue or venue == primary else f"{venue}:{ticker}"


# ---------------------------------------------------------------------------
# drawdown
# ---------------------------------------------------------------------------


class DrawdownTracker:
    """Running maximum drawdown of an equity series, O(1) per sample.

    Feed it ``update(equity_usd, ts_ns)`` in time order. Figures (see the module docstring):
    ``max_dd`` (USD), ``max_dd_frac`` (of the peak), ``max_dd_peak_ns``, ``max_dd_trough_ns``,
    ``max_dd_recovery_ns`` (None: not recovered), :attr:`max_dd_duration_ns`,
    :attr:`longest_underwater_ns`. ``state()``/``restore()`` carry it across a resume.
    """

    FIELDS = (
        "peak", "peak_ns", "max_dd", "max_dd_frac", "max_dd_peak", "max_dd_peak_ns", "max_dd_trough_ns",
        "max_dd_recovery_ns", "underwater_since_ns", "longest_closed_ns", "first_ns", "last_ns", "samples",
    )

    def __init__(self):
        self.peak: Decimal | None = None
        self.peak_ns = 0
        self.max_dd = ZERO
        self.max_dd_frac = ZERO
        self.max_dd_peak: Decimal | None = None
        self.max_dd_peak_ns: int | None = None
        self.max_dd_trough_ns: int | None = None
        self.max_dd_recovery_ns: int | None = None
        self.underwater_since_ns: int | None = None
        self.longest_closed_ns = 0  # longest under-water span that ended in a recovery
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.samples = 0

    def update(self, equity: Decimal, ts_ns: int) -> None:
        """Add one sample (total equity in USD at ``ts_ns``)."""
        self.samples += 1
        if self.first_ns is None:
            self.first_ns = ts_ns
        self.last_ns = ts_ns
        if self.peak is None or equity >= self.peak:
            if self.underwater_since_ns is not None:
                self.longest_closed_ns = max(self.longest_closed_ns, ts_ns - self.underwater_since_ns)
                self.underwater_since_ns = None
            if self.max_dd_peak is not None and self.max_dd_recovery_ns is None and equity >= self.max_dd_peak:
                self.max_dd_recovery_ns = ts_ns
            self.peak, self.peak_ns = equity, ts_ns
            return
        if self.underwater_since_ns is None:
            self.underwater_since_ns = self.peak_ns
        dd = self.peak - equity
        if dd > self.max_dd:
            self.max_dd = dd
            self.max_dd_frac = dd / self.peak if self.peak > 0 else ZERO
            self.max_dd_peak, self.max_dd_peak_ns = self.peak, self.peak_ns
            self.max_dd_trough_ns, self.max_dd_recovery_ns = ts_ns, None

    @property
    def recovered(self) -> bool:
        """True when equity came back to the peak of the max drawdown (or there was none)."""
        return self.max_dd_peak_ns is None or self.max_dd_recovery_ns is not None

    @property
    def max_dd_duration_ns(self) -> int:
        """From the max drawdown's peak to its recovery, or to the last sample when not recovered."""
        if self.max_dd_peak_ns is None:
            return 0
        end = self.max_dd_recovery_ns if self.max_dd_recovery_ns is not None else (self.last_ns or 0)
        return end - self.max_dd_peak_ns

    @property
    def longest_underwater_ns(self) -> int:
        """The longest span from a peak to the first sample at or above it (or to the last sample)."""
        open_ns = (self.last_ns or 0) - self.underwater_since_ns if self.underwater_since_ns is not None else 0
        return max(self.longest_closed_ns, open_ns)

    def state(self) -> dict:
        """JSON-ready state (Decimals as strings)."""
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in ((k, getattr(self, k)) for k in self.FIELDS)}

    def restore(self, state: dict) -> None:
        """Put :meth:`state` back (also reads the fields of checkpoints written before it existed)."""
        for k in self.FIELDS:
            if k not in state:
                continue
            v = state[k]
            if k in ("peak", "max_dd", "max_dd_frac", "max_dd_peak"):
                v = None if v is None else Decimal(str(v))
            setattr(self, k, v)
        if self.max_dd_frac is None:
            self.max_dd_frac = ZERO
        if self.max_dd is None:
            self.max_dd = ZERO

    @classmethod
    def of(cls, series: Iterable[tuple[int, Decimal]]) -> "DrawdownTracker":
        """A tracker fed with every ``(ts_ns, equity)`` of ``series``."""
        t = cls()
        for ts, eq in series:
            t.update(eq, ts)
        return t


# ---------------------------------------------------------------------------
# trades, realized PnL per fill, per tag
# ---------------------------------------------------------------------------


@attrs.define
class Trade:
    """One round trip on one market (see the module docstring). Money in USD."""

    venue: str
    ticker: str
    side: str  # LONG or SHORT
    open_ns: int
    close_ns: int | None
    entry_price: Decimal
    exit_price: Decimal | None
    size: Decimal  # largest absolute size held
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    fills: int = 0
    strategy: str = ""

    @property
    def pnl(self) -> Decimal:
        """Realized PnL net of the trade's fees."""
        return self.realized - self.fees

    @property
    def closed(self) -> bool:
        """True once the position went back to flat (``close_ns`` is set)."""
        return self.close_ns is not None

    @property
    def won(self) -> bool:
        """A closed trade with PnL net of fees > 0."""
        return self.closed and self.pnl > 0


@attrs.define
class TagFigures:
    """Fills of one order tag: how many, their realized PnL (before fees) and fees (USD)."""

    tag: str
    fills: int = 0
    realized: Decimal = ZERO
    fees: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        """Realized PnL after fees, USD: ``realized - fees``."""
        return self.realized - self.fees


@attrs.define
class MarketTrades:
    """Closed trades and wins (net of fees) of one market."""

    closed: int = 0
    wins: int = 0


@attrs.define
class FillResult:
    """What one fill did: its realized PnL (USD, before fees), the trades it closed and opened."""

    realized: Decimal
    closed: list
    opened: list
    closed_size: Decimal  # the part of the fill that reduced the position
    opened_size: Decimal


@attrs.define
class _Book:
    size: Decimal = ZERO
    entry: Decimal = ZERO
    trade: Trade | None = None


class TradeLedger:
    """Round trips, realized PnL per fill and per tag, wins, funding per strategy.

    The bot feeds it every fill it books (``core/bot/account.py`` ``book_fill``) and every funding
    payment; the report feeds it the journal's fills and funding rows. ``keep_trades``
    keeps every :class:`Trade` (the report lists them); the bot keeps only the open ones
    and the counts.
    """

    def __init__(self, *, keep_trades: bool = False):
        self.keep_trades = keep_trades
        self.books: dict[tuple[str, str], _Book] = defaultdict(_Book)
        self.trades: list[Trade] = []
        self.per_tag: dict[str, TagFigures] = {}
        self.per_market: dict[tuple[str, str], MarketTrades] = defaultdict(MarketTrades)
        self.funding_by_strategy: dict[str, Decimal] = defaultdict(lambda: ZERO)

    # -- feeding ------------------------------------------------------------

    def add_fill(
        self,
        venue: str,
        ticker: str,
        side: str,
        price: Decimal,
        size: Decimal,
        fee: Decimal,
        ts_ns: int,
        *,
        tag: str = "",
        strategy: str = "",
    ) -> FillResult:
        """Book one fill (``side`` ``"BUY"``/``"SELL"``, ``size`` > 0, ``fee`` USD, negative = rebate).

        :returns: the fill's realized PnL and the trades it closed/opened.
        """
        b = self.books[(venue, ticker)]
        signed = size if side == "BUY" else -size
        old = b.size
        new = old + signed
        tf = self.per_tag.get(tag)
        if tf is None:
            tf = self.per_tag[tag] = TagFigures(tag)
        tf.fills += 1
        tf.fees += fee
        closed_trades: list[Trade] = []
        opened: list[Trade] = []
        if old == 0 or (old > 0) == (signed > 0):
            b.entry = (abs(old) * b.entry + size * price) / abs(new)
            if b.trade is None:
                b.trade = Trade(venue, ticker, "LONG" if signed > 0 else "SHORT", ts_ns, None, price, None, ZERO, strategy=strategy)
                self._opened(b.trade)
                opened.append(b.trade)
            t = b.trade
            t.fees += fee
            t.fills += 1
            t.entry_price = b.entry
            t.size = max(t.size, abs(new))
            b.size = new
            return FillResult(ZERO, closed_trades, opened, ZERO, size)
        closed = min(abs(old), size)
        direction = 1 if old > 0 else -1
        realized = closed * (price - b.entry) * direction
        tf.realized += realized
        t = b.trade
        if t is None:  # a position held before the first fill seen
            t = Trade(venue, ticker, "LONG" if old > 0 else "SHORT", ts_ns, None, b.entry, None, abs(old), strategy=strategy)
            self._opened(t)
        close_fee = fee * closed / size
        t.realized += realized
        t.fees += close_fee
        t.fills += 1
        if new == 0 or (new > 0) != (old > 0):
            t.close_ns, t.exit_price = ts_ns, price
            self._closed(t)
            closed_trades.append(t)
            b.trade, b.entry = None, ZERO
            if new != 0:  # flipped: the remainder opens the next trade at the fill price
                b.entry = price
                b.trade = Trade(venue, ticker, "LONG" if new > 0 else "SHORT", ts_ns, None, price, None, abs(new), strategy=strategy)
                b.trade.fees += fee - close_fee
                b.trade.fills += 1
                self._opened(b.trade)
                opened.append(b.trade)
        else:
            b.trade = t
        b.size = new
        return FillResult(realized, closed_trades, opened, closed, size - closed)

    def add_funding(self, amount: Decimal, strategy: str = "") -> None:
        """Credit a funding payment (USD, positive = received) to ``strategy``."""
        self.funding_by_strategy[strategy] += amount

    def _opened(self, t: Trade) -> None:
        if self.keep_trades:
            self.trades.append(t)

    def _closed(self, t: Trade) -> None:
        m = self.per_market[(t.venue, t.ticker)]
        m.closed += 1
        if t.won:
            m.wins += 1

    # -- figures --------------------------------------------------------------

    @property
    def closed_trades(self) -> int:
        """Closed trades over every market (a trade: flat -> position -> flat)."""
        return sum(m.closed for m in self.per_market.values())

    @property
    def wins(self) -> int:
        """Closed trades whose PnL net of fees is > 0, over every market."""
        return sum(m.wins for m in self.per_market.values())

    @property
    def win_rate(self) -> float | None:
        """``wins / closed_trades`` (a fraction, 0..1); None before the first closed trade."""
        n = self.closed_trades
        return self.wins / n if n else None

    def realized_by_tag(self) -> dict[str, Decimal]:
        """Order tag -> realized PnL before fees, USD, sorted by tag."""
        return {k: v.realized for k, v in sorted(self.per_tag.items())}

    # -- resume -----------------------------------------------------------------

    def state(self) -> dict:
        """JSON-ready state (open trades, counts, per-tag sums; not the closed trade list)."""

        def trade(t: Trade | None):
            if t is None:
                return None
            return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in attrs.asdict(t).items()}

        return {
            "books": [
                [v, t, str(b.size), str(b.entry), trade(b.trade)] for (v, t), b in self.books.items() if b.size or b.trade
            ],
            "per_tag": {k: [f.fills, str(f.realized), str(f.fees)] for k, f in self.per_tag.items()},
            "per_market": [[v, t, m.closed, m.wins] for (v, t), m in self.per_market.items()],
            "funding_by_strategy": {k: str(v) for k, v in self.funding_by_strategy.items()},
        }

    def restore(self, state: dict) -> None:
        """Put :meth:`state` back."""
        dec_fields = ("entry_price", "exit_price", "size", "realized", "fees")
        for v, t, size, entry, tr in state.get("books", []):
            trade = None
            if tr is not None:
                trade = Trade(**{k: (Decimal(x) if k in dec_fields and x is not None else x) for k, x in tr.items()})
            self.books[(v, t)] = _Book(Decimal(size), Decimal(entry), trade)
        for k, (n, realized, fees) in state.get("per_tag", {}).items():
            self.per_tag[k] = TagFigures(k, n, Decimal(realized), Decimal(fees))
        for v, t, closed, wins in state.get("per_market", []):
            self.per_market[(v, t)] = MarketTrades(closed, wins)
        for k, amt in state.get("funding_by_strategy", {}).items():
            self.funding_by_strategy[k] = Decimal(amt)


# ---------------------------------------------------------------------------
# Sharpe and Sortino
# ---------------------------------------------------------------------------


def resample(series: list[tuple[int, Decimal]], period_ns: int) -> list[float]:
    """Values of ``series`` on a regular grid from its first time, last value carried forward.

    A last sample after the last full grid point is added at the end.
    """
    if not series or period_ns <= 0:
        return []
    out = []
    t = series[0][0]
    end = series[-1][0]
    i = 0
    current = series[0][1]
    while t <= end:
        while i < len(series) and series[i][0] <= t:
            current = series[i][1]
            i += 1
        out.append(float(current))
        t += period_ns
    if series[-1][0] > t - period_ns:
        out.append(float(series[-1][1]))
    return out


def period_returns(series: list[tuple[int, Decimal]], period_ns: int) -> list[float]:
    """Simple returns of whole periods of ``period_ns``: the equity on that grid from the first
    sample (last value carried forward); a part period at the end is not a return."""
    if len(series) < 2:
        return []
    periods = (series[-1][0] - series[0][0]) // period_ns
    grid = resample(series, period_ns)[: periods + 1]
    return [grid[i] / grid[i - 1] - 1 for i in range(1, len(grid)) if grid[i - 1] > 0]


def daily_returns(series: list[tuple[int, Decimal]]) -> list[float]:
    """Simple returns of whole days (:func:`period_returns` with one day)."""
    return period_returns(series, DAY_NS)


@attrs.define
class Ratios:
    """Sharpe and Sortino (annualised, None when not defined) and why they are or are not shown."""

    sharpe: float | None
    sortino: float | None
    n_returns: int
    note: str

    @property
    def supported(self) -> bool:
        """True when at least one of the ratios could be computed (else ``note`` says why)."""
        return self.sharpe is not None or self.sortino is not None


def sharpe_sortino(returns: list[float], periods_per_year: float = DAYS_PER_YEAR, *, minimum: int = MIN_DAILY_RETURNS) -> Ratios:
    """Annualised Sharpe and Sortino of ``returns`` (risk-free rate 0); see the module docstring.

    Fewer than ``minimum`` returns, or a zero deviation: that ratio is None and ``note`` says why.
    """
    n = len(returns)
    if n < minimum:
        return Ratios(None, None, n, f"not shown: needs at least {minimum} daily returns, the data has {n}")
    mean = sum(returns) / n
    var = sum((r - mean) ** 2 for r in returns) / (n - 1)
    k = math.sqrt(periods_per_year)
    sharpe = mean / math.sqrt(var) * k if var > 0 else None
    down = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / n)
    sortino = mean / down * k if down > 0 else None
    return Ratios(
        sharpe, sortino, n,
        f"{n} daily returns, annualised with sqrt({periods_per_year:g}) (365.25 days per year), risk-free rate 0",
    )


# ---------------------------------------------------------------------------
# Calmar and profit factor (the sweep's objectives, perpbot.plugins.research)
# ---------------------------------------------------------------------------


def calmar(total_return: Decimal, span_ns: int, max_dd_frac: Decimal) -> float | None:
    """Calmar ratio: annualised return / maximum drawdown (T. W. Young, "Calmar Ratio: A Smoother
    Tool", Futures, 1991; freqtrade's ``calculate_calmar`` in ``freqtrade/data/metrics.py`` uses the
    same ratio). The return is annualised arithmetically, ``total_return x 365.25 days / span``
    (compounding a week's return to a year would explode); the drawdown is the run's
    :class:`DrawdownTracker` fraction. None when the span or the drawdown is zero (undefined).

    :param total_return: fraction (0.02 = +2%); :param span_ns: the run's market time;
    :param max_dd_frac: fraction of the peak.
    """
    if span_ns <= 0 or max_dd_frac <= 0:
        return None
    years = span_ns / (DAYS_PER_YEAR * DAY_NS)
    return float(total_return) / years / float(max_dd_frac)


def profit_factor(pnls: Iterable[Decimal]) -> Decimal | None:
    """Gross profit / gross loss of closed trades: the sum of the trades' PnL net of fees (USD,
    :attr:`Trade.pnl`) that are > 0 over the absolute sum of those < 0 (the usual definition,
    e.g. freqtrade's ``profit_factor`` in ``freqtrade/optimize/optimize_reports``). None when no
    trade lost (undefined: a division by zero), 0 when none won.
    """
    won = lost = ZERO
    for p in pnls:
        if p > 0:
            won += p
        elif p < 0:
            lost -= p
    return won / lost if lost > 0 else None
