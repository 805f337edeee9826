"""Fee tiers by 30-day rolling volume, and exact fee amounts.

The tier is chosen like the chain's ``x/feetiers/keeper/keeper.go`` (``getUserFeeTier``):
the highest tier whose volume requirement the account meets, where the account's
volume is its maker plus taker notional over the last 30 days (``x/stats``:
rolling 30-day window). Volume is kept in hourly buckets (clock time), so memory
is bounded (at most 721 buckets) and a bucket leaves the window 30 days after its
hour started.

Amounts: ``fee = notional * rate`` computed exactly with Decimal, then rounded UP
(toward +infinity) to the quote quantum 1e-6 USD, as the chain does
(``lib.BigMulPpm(bigFillQuoteQuantums, feePpm, true)`` in ``persistMatchedOrders``,
dydxprotocol/v4-chain ``protocol/x/clob/keeper/process_single_match.go``; ``BigMulPpm``
rounds up with ``BigDivCeil``, ``protocol/lib/big_math.go``). A negative rate is a maker
rebate; rounding toward +infinity (toward zero for it) makes a rebate never larger than
the exact amount. For a dYdX price on the tick grid and size on the step grid the
notional is a whole number of quote quantums (the chain's ``subticks * quantums * 10^QCE``
has nothing to floor), so this equals the chain's fee to the quantum.
"""

from __future__ import annotations

from collections import deque
from decimal import ROUND_CEILING, Decimal

from perpbot.exchanges.paper.config import FeeTier

QUOTE_QUANTUM = Decimal("0.000001")
HOUR_NS = 3600 * 1_000_000_000
WINDOW_NS = 30 * 24 * HOUR_NS
ZERO = Decimal(0)


def fee_amount(notional: Decimal, rate: Decimal) -> Decimal:
    """``notional * rate`` rounded toward +infinity to 1e-6 USD (chain rounding of fees)."""
    return (notional * rate).quantize(QUOTE_QUANTUM, rounding=ROUND_CEILING)


class FeeSchedule:
    """Fee tiers plus the account's rolling 30-day volume (USD notional).

    :param tiers: tiers sorted by ``min_volume_30d`` (the first starts at 0).
    :param initial_volume: volume traded before the run, USD, booked at the first
        timestamp seen (ages out 30 days later).
    """

    def __init__(self, tiers: tuple[FeeTier, ...], initial_volume: Decimal = ZERO):
        self.tiers = tuple(sorted(tiers, key=lambda t: t.min_volume_30d))
        self._buckets: deque[list] = deque()  # [hour_start_ns, notional]
        self.volume = ZERO
        self._initial = initial_volume

    def _evict(self, ts_ns: int) -> None:
        if self._initial:
            self._buckets.appendleft([ts_ns - ts_ns % HOUR_NS, self._initial])
            self.volume += self._initial
            self._initial = ZERO
        cutoff = ts_ns - WINDOW_NS
        b = self._buckets
        while b and b[0][0] <= cutoff:
            self.volume -= b.popleft()[1]

    def tier(self, ts_ns: int) -> FeeTier:
        """The tier that applies at ``ts_ns`` (volume before the fill being priced)."""
        self._evict(ts_ns)
        vol = self.volume
        chosen = self.tiers[0]
        for t in self.tiers:
            if vol >= t.min_volume_30d:
                chosen = t
            else:
                break
        return chosen

    def rate(self, maker: bool, ts_ns: int) -> Decimal:
        """Maker or taker rate (fraction) at ``ts_ns``."""
        t = self.tier(ts_ns)
        return t.maker if maker else t.taker

    def fee(self, notional: Decimal, maker: bool, ts_ns: int) -> Decimal:
        """Fee in USD for a fill of ``notional`` USD (negative = rebate), rounded up to 1e-6."""
        return fee_amount(notional, self.rate(maker, ts_ns))

    def record(self, ts_ns: int, notional: Decimal) -> None:
        """Add a fill's notional (USD) to the 30-day volume."""
        self._evict(ts_ns)
        hour = ts_ns - ts_ns % HOUR_NS
        b = self._buckets
        if b and b[-1][0] == hour:
            b[-1][1] += notional
        else:
            b.append([hour, notional])
        self.volume += notional

    # -- persistence ----------------------------------------------------------

    def export_state(self) -> dict:
        """The rolling volume, JSON-serialisable: ``{"buckets": [[hour_start_ns, "USD"], ...],
        "initial": "USD not yet booked"}``."""
        return {
            "buckets": [[h, str(v)] for h, v in self._buckets],
            "initial": str(self._initial),
        }

    def import_state(self, data: dict) -> None:
        """Restore :meth:`export_state` output (missing keys: empty).

        :raises ValueError: / decimal.InvalidOperation: for a malformed number.
        """
        self._buckets = deque([int(h), Decimal(v)] for h, v in data.get("buckets", []))
        self.volume = sum((v for _, v in self._buckets), ZERO)
        self._initial = Decimal(data.get("initial", "0"))
