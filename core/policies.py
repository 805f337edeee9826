"""Risk policy and position sizer contracts.

Both are plugins (``register_risk_policies``, ``register_position_sizers``).
After a strategy decides, the bot asks the sizer for a size, then every risk
policy of the configured chain, in order. The first policy that does not
approve wins: :attr:`RiskAction.REDUCE` shrinks the order and the chain
continues with the smaller order; :attr:`RiskAction.REJECT` drops it; the
escalations (CLOSE_WORST, CLOSE_ALL, HALT) are acted on by the bot with
reduce-only orders. Every non-NONE decision carries a reason that is logged,
journaled and shown.
"""

from __future__ import annotations

import abc
import enum
from decimal import Decimal
from typing import Any, ClassVar, Mapping

import attrs

from perpbot.core.model import Balance, Market, OrderParams, OrderRequest, Position
from perpbot.core.params import NoParams


class RiskAction(enum.Enum):
    """Escalating risk actions."""

    NONE = "NONE"  # approve
    REDUCE = "REDUCE"  # shrink the order to ``RiskDecision.size``
    REJECT = "REJECT"  # drop the order
    CLOSE_WORST = "CLOSE_WORST"  # close the position with the worst unrealized PnL
    CLOSE_ALL = "CLOSE_ALL"  # close every position (reduce-only), cancel all orders
    HALT = "HALT"  # stop trading: cancel orders, keep positions, stop the bot

    @property
    def severity(self) -> int:
        """Rank of the action in the escalation order, 0 (NONE) to 5 (HALT); compare two
        verdicts with it (higher is more severe)."""
        return list(RiskAction).index(self)


@attrs.frozen
class RiskDecision:
    """A policy's verdict. ``size`` is the new size (base units) for REDUCE."""

    action: RiskAction = RiskAction.NONE
    reason: str = ""
    policy: str = ""
    size: Decimal | None = None
    ticker: str = ""
    ts_ns: int = 0

    @property
    def approved(self) -> bool:
        """True when the action is NONE (the order goes ahead unchanged)."""
        return self.action is RiskAction.NONE


APPROVE = RiskDecision()


@attrs.define
class RiskView:
    """What the bot shows risk policies: account, positions, marks and health.

    :param balance: current :class:`~perpbot.core.model.Balance` (USD).
    :param positions: open positions by ticker.
    :param marks: mark price per ticker (oracle where known, else mid), USD.
    :param markets: market parameters by ticker.
    :param stale: tickers whose data is stale or crossed, with the reason.
    :param start_equity: / ``peak_equity`` / ``day_start_equity``: USD reference points.
    :param consecutive_failures: order placements failed in a row (margin/venue).
    :param last_fill_ns: time of the last fill (stall detection).
    :param circuit_open: venues whose circuit breaker is open.
    """

    now_ns: int
    balance: Balance
    positions: Mapping[str, Position]
    marks: Mapping[str, Decimal]
    markets: Mapping[str, Market]
    stale: Mapping[str, str] = attrs.Factory(dict)
    start_equity: Decimal = Decimal(0)
    peak_equity: Decimal = Decimal(0)
    day_start_equity: Decimal = Decimal(0)
    consecutive_failures: int = 0
    last_fill_ns: int = 0
    last_activity_ns: int = 0
    open_orders: int = 0
    circuit_open: Mapping[str, str] = attrs.Factory(dict)
    state: Any = None  # per-market states (perpbot.core.state.MarketState) for signal-aware policies
    total_equity: Decimal = Decimal(0)  # sum over venues, USD (start/peak/day equities are totals too)
    balances: Mapping[str, Balance] = attrs.Factory(dict)  # per venue


class RiskPolicy(abc.ABC):
    """Contract for one link of the risk chain. Constructed as ``cls(params, context)``.

    Class attributes a subclass sets:

    - ``name`` (required): the policy's name in ``--risk a,b`` and in ``[risk.NAME]`` /
      ``--risk-param NAME.key=value``; unique among installed policies.
    - ``description``: one line for ``runbot.py plugins`` and ``--help``.
    - ``Params``: an attrs class of :func:`~perpbot.core.params.param` fields (Decimal for
      money and ratios); the bot builds ``self.params`` from it, rejecting unknown keys.

    Override ``check_order`` (each sized order, before it is sent) and/or
    ``check_account`` (every decision cycle); return a
    :class:`RiskDecision` (APPROVE, REDUCE with a smaller size, REJECT, CLOSE_ALL or HALT,
    always with a reason).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams

    def __init__(self, params: Any, context: Any = None):
        self.params = params
        self.context = context

    def check_order(self, order: OrderRequest, view: RiskView) -> RiskDecision:
        """Pre-trade check of one sized order. Default: approve."""
        return APPROVE

    def check_account(self, view: RiskView) -> RiskDecision:
        """Periodic account check (every decision cycle). Default: approve."""
        return APPROVE

    def on_order_result(self, success: bool, error: str, view: RiskView) -> None:
        """Told about each placement's outcome (to count consecutive failures)."""


class LazyText:
    """Text built only when it is read: ``LazyText(fn, *args)``; ``str()`` returns ``fn(*args)``,
    computed at the first read and kept.

    For reasons that are formatted from Decimals on a hot path but read only now and then (a
    sizer's reason is read when an order is skipped, or by a person): the text is the same
    whenever it is read, because ``args`` are bound when the object is made (pass immutable
    values: Decimals, strings). Compares and hashes as its text.
    """

    __slots__ = ("_fn", "_args", "_text")

    def __init__(self, fn: Any, *args: Any):
        self._fn = fn
        self._args = args
        self._text: str | None = None

    def __str__(self) -> str:
        text = self._text
        if text is None:
            text = self._text = str(self._fn(*self._args))
            self._fn = self._args = None  # the text is kept; what built it is let go
        return text

    def __repr__(self) -> str:
        return repr(str(self))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (str, LazyText)):
            return str(self) == str(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))


@attrs.frozen(repr=False)
class SizingResult:
    """A sizer's answer: ``quantity`` base units (already floored to the step, may be 0),
    ``notional`` and ``margin_used`` USD, and ``reason`` (why this size).

    ``reason`` may be given as a :class:`LazyText` (built-in sizers do: it is formatted only
    if read); :attr:`reason` always reads as ``str``, and equality, hashing and ``repr``
    use that text.
    """

    quantity: Decimal
    notional: Decimal
    margin_used: Decimal
    _reason: Any = attrs.field(alias="reason", eq=str)

    @property
    def reason(self) -> str:
        """Why this size (text; a :class:`LazyText` given at construction is rendered here, once)."""
        r = self._reason
        return r if type(r) is str else str(r)

    def __repr__(self) -> str:
        return (f"SizingResult(quantity={self.quantity!r}, notional={self.notional!r}, "
                f"margin_used={self.margin_used!r}, reason={self.reason!r})")


@attrs.define
class SizingView:
    """What a sizer sees: the market, a reference price (USD), the account and the position."""

    market: Market
    price: Decimal
    balance: Balance
    position: Position | None
    positions: Mapping[str, Position]
    marks: Mapping[str, Decimal]
    now_ns: int = 0
    score: Decimal | None = None  # the strategy's conviction 0-100 when it has one
    volatility: Decimal | None = None  # per-bar return std-dev of the market, when known


class PositionSizer(abc.ABC):
    """Contract for a position sizer. Constructed as ``cls(params, context)``.

    :meth:`size` returns a quantity floored to the market's step size, or raises
    :class:`~perpbot.core.errors.InsufficientBalance` / :class:`~perpbot.core.errors.InsufficientLeverage`
    with required and available amounts.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams

    def __init__(self, params: Any, context: Any = None):
        self.params = params
        self.context = context

    @abc.abstractmethod
    def size(self, intent: OrderParams, view: SizingView) -> SizingResult:
        """Size ``intent`` (whose ``size`` is None or a cap)."""
