"""The sniper's parameters (:class:`SniperParams`) and the constants its modules share.

Kept apart from the decision logic so every parameter (name, default, help text,
validator, command-line flag) is declared in one place. Units: scores and thresholds on
the 0-100 scale of :mod:`perpbot.core.signals`; ``take_profit``/``stop_loss`` fractions of
the entry price; ``*_s`` seconds of market time; weights are relative (normalised to sum
to 1 by :class:`perpbot.strategies.sniper.scoring.Scorer`).

Sources of the rules: seed 000 (``/work/shared/seeds/000_*.txt``, "Threshold Management",
"Signal Weighting": weighted 0-100 scores, thresholds for discrete decisions), seed 001
week 6 ("Correlation analysis for leveraged positions": the stacking guard), issue 2
item 7 and issue 5 item 3 (take-profit, stop-loss, cool-down, minimum hold, warm-up,
LIMIT entries), issue 9 item 10 (the ``flag=`` command-line flags).

Imports only ``perpbot``.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from perpbot import OrderType, Wake, in_range, param

D = Decimal
NS = 1_000_000_000  #: nanoseconds per second (market time is ns since the epoch)
ZERO = D(0)
ENTRY_TAG = "sniper-entry"  #: tag of every entry order
EXIT_TAG = "sniper-exit"  #: prefix of every exit order's tag: ``sniper-exit:<reason>``
EXIT_REASONS = ("take-profit", "stop-loss", "score decay")  #: the reasons an exit tag can carry


def _wake_ok(instance, attribute, value):
    """attrs validator: a wake spec :meth:`perpbot.Wake.parse` accepts (``ValueError`` naming the parameter)."""
    try:
        Wake.parse(value)
    except ValueError as exc:
        raise ValueError(f"parameter {attribute.name}: {str(exc).removeprefix('wake_on: ')}") from None


def _order_type_ok(instance, attribute, value):
    """attrs validator: only MARKET or LIMIT entries (``ValueError`` naming the parameter otherwise)."""
    if value not in (OrderType.MARKET, OrderType.LIMIT):
        raise ValueError(f"parameter {attribute.name}: must be MARKET or LIMIT, got {value.value}")


@attrs.frozen
class SniperParams:
    """Parameters of the sniper. Scores and thresholds are on the 0-100 scale;
    ``take_profit``/``stop_loss`` are fractions of the entry price (0.003 = 0.3 %);
    ``*_s`` are seconds of market time; ``weight_*`` are relative weights (any positive
    scale, normalised to sum to 1).

    :raises ValueError: (at construction) all weights zero, or ``exit_threshold`` not below
        ``entry_threshold``; each field's validator names the field and the bad value.
    """

    weight_momentum: Decimal = param(D("0.40"), "weight of the momentum score (direction-aware)", in_range(D(0), D(100)))
    weight_volume: Decimal = param(D("0.15"), "weight of the volume score (either direction)", in_range(D(0), D(100)))
    weight_volatility: Decimal = param(D("0.10"), "weight of the volatility score (either direction)", in_range(D(0), D(100)))
    weight_orderbook: Decimal = param(D("0.25"), "weight of the order book score (direction-aware)", in_range(D(0), D(100)))
    weight_funding: Decimal = param(D("0.10"), "weight of the funding score (direction-aware)", in_range(D(0), D(100)))
    entry_threshold: Decimal = param(D("65"), "enter a market when its composite is at least this (0-100)", in_range(D(0), D(100)), flag="--entry-threshold")
    exit_threshold: Decimal = param(D("50"), "exit when the composite for the held direction falls below this", in_range(D(0), D(100)), flag="--exit-threshold")
    take_profit: Decimal = param(D("0.003"), "take profit at this return of the mark vs entry (fraction, 0.003 = 0.3%)", in_range(D("0.00001"), D(1)))
    stop_loss: Decimal = param(D("0.002"), "stop out at this adverse return of the mark vs entry (fraction)", in_range(D("0.00001"), D(1)), flag="--stop-loss")
    max_positions: int = param(2, "most markets held at once (top-N)", in_range(1, 1000), flag="--max-positions")
    cooldown_s: Decimal = param(D("60"), "seconds a market is not re-entered after an exit", in_range(D(0)), flag="--cooldown")
    allow_short: bool = param(True, "take shorts when the short composite is the better side", flag="--allow-short")
    confluence_weight: Decimal = param(D(0), "weight (0-1) of the analysis hub's confluence in the composite; > 0 runs the "
                                       "six analyzers (perpbot.core.analysis) and the table shows their reasons", in_range(D(0), D(1)))
    correlation_threshold: Decimal = param(D("0.8"), "do not stack same-direction positions whose bar returns correlate above this", in_range(D(-1), D(1)))
    correlation_lookback: int = param(30, "bars (closed, from MarketState.bars) used for the correlation", in_range(2, 1000))
    correlation_min_returns: int = param(5, "fewer common bar returns than this: correlation unknown (not blocking)", in_range(2, 1000))
    min_hold_s: Decimal = param(D("15"), "seconds before a score-decay exit (TP/SL act at once)", in_range(D(0)), flag="--min-hold")
    order_type: OrderType = param(OrderType.MARKET, "entry order type: MARKET, or LIMIT at the touch (bid for a buy)", _order_type_ok, flag="--order-type")
    limit_good_til_s: int = param(30, "lifetime of a LIMIT entry, seconds", in_range(1, 86400))
    warmup_s: Decimal = param(D("60"), "seconds after the first decision before any entry (scores must also be warm)", in_range(D(0)), flag="--warmup")
    order_timeout_s: Decimal = param(D("10"), "an order without fill or update after this long no longer blocks its market", in_range(D("0.1")))
    wake_on: str = param("", "decide on events too: 'bbo,trade', 'score:momentum:70', 'every:5' (perpbot.core.wake); "
                         "decision_interval_s is then the least gap between event-driven decisions; '' = schedule only",
                         _wake_ok, flag="--wake-on")

    def __attrs_post_init__(self):
        weights = (self.weight_momentum, self.weight_volume, self.weight_volatility, self.weight_orderbook, self.weight_funding)
        if sum(weights) <= 0:
            raise ValueError("parameter weight_*: at least one weight must be positive")
        if self.exit_threshold >= self.entry_threshold:
            raise ValueError(
                f"parameter exit_threshold: must be below entry_threshold ({self.entry_threshold}), got {self.exit_threshold}"
            )
