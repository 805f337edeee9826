"""The funding arbitrage's PnL, split per leg and per coin: funding collected, fees, price PnL, and the net.

Per leg (:class:`LegBook`), in USD:

- funding: exactly the sum of forwarded :class:`perpbot.FundingPayment` amounts (+ received)
  once the bot forwards them (:meth:`LegBook.add_payment`), else the change of
  ``Position.funding`` (cumulative per market for the account's life) since the baseline,
  plus what was counted before a restart;
- fees: the sum of the leg's fill fees;
- price PnL: average-entry accounting of the fills (``realized``), plus the open size
  marked to the last mark (``unrealized = size * (mark - entry)``, size signed);

and the total ``net = funding - fees + price PnL`` over both legs (:func:`totals`), per
coin and over every coin (:func:`coin_lines`; the coins' totals add up to the run's), which
agrees with the bot's portfolio per venue (``tests/strategies/funding_arb``). Source:
seed 001 (``/work/shared/seeds/001_*.txt``, week 5 "Strategy performance tracking with
funding costs", week 8 "P&L tracking with funding costs").

Imports only :mod:`perpbot` and :mod:`perpbot.strategies.funding_arb.params`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Iterable, Mapping

import attrs

from perpbot import Side

from perpbot.strategies.funding_arb.params import D, ZERO


@attrs.define
class LegBook:
    """Accounting of one leg from its fills and funding (USD, base units).

    :ivar ticker: the leg, e.g. ``"binance:BTC-USD"``.
    :ivar size: signed position from the fills, base units.
    :ivar entry: average entry price of the open size, USD (0 when flat).
    :ivar realized: price PnL of closed sizes, USD.
    :ivar fees: fees paid, USD.
    :ivar last_mark: last mark price seen, USD (for :meth:`unrealized`).
    :ivar fills: fills booked.

    The ``funding_*`` fields and ``exact`` implement :attr:`funding` (see there).
    """

    ticker: str
    size: Decimal = ZERO
    entry: Decimal = ZERO
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    funding_acc: Decimal = ZERO  # funding counted before the current baseline (e.g. before a restart)
    funding_base: Decimal | None = ZERO  # Position.funding at the baseline (None: take the next value seen)
    funding_seen: Decimal = ZERO  # last cumulative Position.funding seen
    funding_paid_exact: Decimal = ZERO  # sum of forwarded FundingPayment amounts
    exact: bool = False
    last_mark: Decimal | None = None
    fills: int = 0

    @property
    def funding(self) -> Decimal:
        """Funding collected on this leg, USD (+ received): the forwarded payments' sum when
        ``exact``, else ``funding_acc + funding_seen - baseline``."""
        if self.exact:
            return self.funding_paid_exact
        base = self.funding_base if self.funding_base is not None else self.funding_seen
        return self.funding_acc + self.funding_seen - base

    def apply_fill(self, side: Side, size: Decimal, price: Decimal, fee: Decimal) -> None:
        """Book one fill: ``size`` base units (> 0) at ``price`` USD, ``fee`` USD.

        Adding: the entry becomes the size-weighted average. Reducing:
        ``realized += closed * (price - entry) * direction``; a flip restarts the entry at ``price``.
        """
        signed = size if side is Side.BUY else -size
        old = self.size
        new = old + signed
        if old == 0 or (old > 0) == (signed > 0):
            self.entry = (abs(old) * self.entry + size * price) / abs(new)
        else:
            closed = min(abs(old), size)
            self.realized += closed * (price - self.entry) * (1 if old > 0 else -1)
            if new == 0:
                self.entry = ZERO
            elif (new > 0) != (old > 0):
                self.entry = price
        self.size = new
        self.fees += fee
        self.fills += 1

    def add_payment(self, amount: Decimal) -> None:
        """Book one forwarded funding payment, USD (+ received); from the first one on, the
        leg's funding is the exact sum of payments."""
        if not self.exact:
            self.exact = True
            self.funding_paid_exact = ZERO
        self.funding_paid_exact += amount

    def observe_position(self, funding: Decimal | None) -> None:
        """Track ``Position.funding``: cumulative per market for the account's life (the bot's
        portfolio keeps a market's position object when it goes flat, so re-opening continues
        the sum). None (no open position) keeps the last value."""
        if funding is None:
            return
        if self.funding_base is None:
            self.funding_base = funding  # first value after a restart: the new baseline
        self.funding_seen = funding

    def rebase(self) -> None:
        """After a restart: keep what was counted, measure only increments from the next value."""
        self.funding_acc = self.funding
        self.funding_base = None
        self.funding_seen = ZERO

    def unrealized(self) -> Decimal:
        """Open size marked to the last mark, ``size * (last_mark - entry)`` USD; 0 when flat or unmarked."""
        if not self.size or self.last_mark is None:
            return ZERO
        return self.size * (self.last_mark - self.entry)

    def to_json(self) -> dict:
        """All fields, Decimals as strings (exact round trip through JSON)."""
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in attrs.asdict(self).items()}

    @classmethod
    def from_json(cls, d: Mapping) -> "LegBook":
        """Inverse of :meth:`to_json`; missing fields take their defaults.

        :raises decimal.InvalidOperation: a malformed number.
        """
        decimals = {"size", "entry", "realized", "fees", "funding_acc", "funding_base", "funding_seen", "funding_paid_exact", "last_mark"}
        kw = {}
        for f in attrs.fields(cls):
            v = d.get(f.name, f.default)
            if f.name in decimals and v is not None:
                v = D(str(v))
            kw[f.name] = v
        return cls(**kw)


def totals(legs: Iterable[LegBook]) -> dict:
    """Sum over the legs, USD: ``{"funding", "fees", "price_pnl", "net"}`` with
    ``net = funding - fees + price_pnl`` (price PnL = realized + unrealized)."""
    legs = list(legs)
    funding = sum((leg.funding for leg in legs), ZERO)
    fees = sum((leg.fees for leg in legs), ZERO)
    price = sum((leg.realized + leg.unrealized() for leg in legs), ZERO)
    return {"funding": funding, "fees": fees, "price_pnl": price, "net": funding - fees + price}


def leg_lines(legs: Mapping[str, LegBook], rates: Mapping) -> list[str]:
    """Summary lines: one per leg (funding, fees, price PnL in USD, position, expected rate
    in bp/h from ``rates[ticker]``, a :class:`~perpbot.strategies.funding_arb.carry.RateEma`),
    then the total."""
    lines = []
    for t, leg in legs.items():
        r = rates[t]
        rate = f", expected rate {r.value * 10000:+.4f} bp/h (interval {r.interval_h} h)" if r.value is not None else ""
        lines.append(
            f"  leg {t}: funding {leg.funding:+.4f} USD, fees {leg.fees:.4f} USD, price PnL "
            f"{leg.realized + leg.unrealized():+.4f} USD, position {leg.size}{rate}"
        )
    lines.append(_total_line("  total", totals(legs.values())))
    return lines


def _total_line(label: str, tot: Mapping) -> str:
    return (f"{label}: funding {tot['funding']:+.4f} USD - fees {tot['fees']:.4f} USD + price PnL {tot['price_pnl']:+.4f} USD "
            f"= net {tot['net']:+.4f} USD")


def coin_lines(pairs: Mapping, hedge_venue: str, params) -> list[str]:
    """Summary lines of a multi-coin run: a header with the counts over all pairs, then per coin
    its counts and state, one line per leg (funding, fees, price PnL in USD, position, expected
    rate) and the coin's total, then the run's total, which is the sum of the coins' totals.

    :param pairs: coin -> :class:`~perpbot.strategies.funding_arb.pair.Pair` (``legs``, ``rates``, ``position``).
    :param hedge_venue: the second venue's name; :param params: the strategy's parameters.
    """
    ps = list(pairs.values())
    count = {k: sum(getattr(p.position, k) for p in ps) for k in
             ("entries", "entry_orders", "exits", "rebalances", "hedge_completions", "unwinds")}
    held = [c for c, p in pairs.items() if p.position.state != "flat"]
    lines = [
        f"funding_arb over {len(ps)} coins (primary venue vs {hedge_venue}): {count['entries']} entries "
        f"({count['entry_orders']} attempts), {count['exits']} exits, {count['rebalances']} rebalances, "
        f"{count['hedge_completions']} hedge completions at market, {count['unwinds']} unwinds; held now: {', '.join(held) or 'none'}"
    ]
    for coin, pair in pairs.items():
        pos = pair.position
        lines.append(f"  {coin}: {pos.entries} entries, {pos.exits} exits, {pos.rebalances} rebalances, {pos.unwinds} unwinds; "
                     f"now {pos.state}" + (f" (long {pos.long_leg})" if pos.long_leg else ""))
        lines += ["  " + line for line in leg_lines(pair.legs, pair.rates)[:-1]]
        lines.append("    " + _total_line(f"{coin} total", totals(pair.legs.values())))
    lines.append(_total_line("  total", totals(leg for p in ps for leg in p.legs.values())))
    drift = max((p.position.max_drift for p in ps), default=ZERO)
    lines.append(f"  largest leg notional drift left after a decision: {drift * 100:.3f}% (tolerance {params.rebalance_tolerance * 100}%)")
    return lines
