"""Parameters of the ``confluence`` strategy (:class:`ConfluenceParams`).

Units: scores on the 0-100 scale of :class:`perpbot.core.analysis.Confluence`;
``take_profit``/``stop_loss`` fractions of the entry price; ``*_s`` seconds of market time.
Imports only ``perpbot`` and ``perpbot.core``.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from perpbot.core.params import in_range, param

D = Decimal
NS = 1_000_000_000
ENTRY_TAG = "confluence-entry"  #: tag of every entry order
EXIT_TAG = "confluence-exit"  #: prefix of every exit order's tag: ``confluence-exit:<reason>``
ALL_ANALYZERS = "technical,volume,orderflow,orderbook,structure,sentiment"


def _names_ok(instance, attribute, value):
    """attrs validator: a non-empty comma-separated list of names."""
    if not [n for n in str(value).split(",") if n.strip()]:
        raise ValueError(f"parameter {attribute.name}: name at least one analyzer, e.g. {ALL_ANALYZERS!r}")


def _tables_ok(instance, attribute, value):
    """attrs validator: ``{analyzer: {param: number}}``."""
    for k, v in dict(value).items():
        if not isinstance(v, dict):
            raise ValueError(f"parameter {attribute.name}: {k} must be a table of numbers, got {v!r}")


def _weights_ok(instance, attribute, value):
    """attrs validator: ``{analyzer: number >= 0}``."""
    for k, v in dict(value).items():
        if isinstance(v, bool) or not isinstance(v, (int, float, Decimal)) or v < 0:
            raise ValueError(f"parameter {attribute.name}: weight of {k} must be a number >= 0, got {v!r}")


@attrs.frozen
class ConfluenceParams:
    """Parameters of the confluence strategy.

    Defaults: the best cell of a grid (entry 20/30/35/40/50, stop 2/5 %, take profit 3/8 %, exit 0/-15)
    on hourly OKX SOL-USDT-SWAP bars with funding, 2022-03 .. 2024-12 (``../shared/data/bars/pietro_okx_1h``);
    every cell lost money there (README "Analysis hub and the confluence strategy").

    :raises ValueError: (at construction) ``exit_score`` not below ``entry_score``; each field's
        validator names the field and the bad value.
    """

    analyzers: str = param(ALL_ANALYZERS, "analyzers whose interpretations are combined (comma-separated)",
                           _names_ok)
    analyzer_params: dict = param(attrs.Factory(dict), "per-analyzer parameter overrides, e.g. "
                                  "{technical = {fast = 8, slow = 21}}", _tables_ok)
    weights: dict = param(attrs.Factory(dict), "per-analyzer weight in the confluence score (default 1 each)",
                          _weights_ok)
    entry_score: Decimal = param(D(35), "confluence score (0-100) a market needs for an entry",
                                 in_range(D(0), D(100)), flag="--entry-score")
    exit_score: Decimal = param(D(0), "exit when the confluence in the held direction falls below this "
                                "(0: when it turns against the position; negative: only when it is that strong against)",
                                in_range(D(-100), D(100)))
    min_agreeing: int = param(2, "analyzers that must agree with the direction for an entry", in_range(1, 20))
    take_profit: Decimal = param(D("0.08"), "take profit, fraction of the entry price (0: none)", in_range(D(0), D(10)))
    stop_loss: Decimal = param(D("0.05"), "stop loss, fraction of the entry price (0: none)", in_range(D(0), D(1)))
    min_hold_s: int = param(0, "seconds a position is held before a signal exit", in_range(0, 10**8))
    cooldown_s: int = param(3600, "seconds after an exit before the market is entered again", in_range(0, 10**8))
    max_positions: int = param(2, "open positions at most", in_range(1, 100))
    allow_short: bool = param(True, "enter shorts on a short confluence")
    cross_venue: bool = param(True, "combine the same market's interpretations across venues")
    order_timeout_s: int = param(120, "seconds an entry/exit may stay unconfirmed before it stops blocking",
                                 in_range(1, 86400))
    ml_model: str = param("", "ML model file that gates entries (runbot.py ml train); empty: no gate",
                          flag="--ml-model")
    ml_threshold: Decimal = param(D(0), "probability an entry needs from the ML gate (0: the model's own)",
                                  in_range(D(0), D(1)))

    def __attrs_post_init__(self):
        if self.exit_score >= self.entry_score:
            raise ValueError(f"parameter exit_score: must be below entry_score ({self.entry_score}), "
                             f"got {self.exit_score}")
