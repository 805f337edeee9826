"""One coin's pair of legs in the funding arbitrage: its expected rates, state, orders and books.

:class:`Pair` bundles, for one coin (e.g. ``BTC``): the primary leg ``BTC-USD``, the hedge
leg ``"<hedge venue>:BTC-USD"``, the :class:`~perpbot.strategies.funding_arb.carry.CarryModel`
(per-hour rate averages of both legs), the :class:`~perpbot.strategies.funding_arb.legs.ArbPosition`
(state and counters), the :class:`~perpbot.strategies.funding_arb.legs.LegManager` (orders)
and a :class:`~perpbot.strategies.funding_arb.pnl.LegBook` per leg (funding, fees, price PnL).

:meth:`Pair.step` is one decision for the pair: its resting orders first (complete a
half-filled pair at market, cancel orders older than ``requote_s``, else wait), then by
state: finish an exit, adopt legs found open, report a flat pair as a candidate (the
strategy ranks the candidates of all coins), or manage the open pair (legging, exit,
rebalance). :func:`discover_pairs` finds the coins whose two legs are among the run's
tickers; :func:`select_listed` chooses those tickers from the venues' listings when the run
names none.

Imports only :mod:`perpbot` and the strategy's own modules.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable, Mapping

from perpbot import ConfigError, OrderType, StrategyAction, StrategyResult

from perpbot.strategies.funding_arb.carry import CarryModel, RateEma
from perpbot.strategies.funding_arb.legs import ArbPosition, LegManager, price
from perpbot.strategies.funding_arb.params import NS, D, FundingArbParams
from perpbot.strategies.funding_arb.pnl import LegBook

#: :meth:`Pair.step`'s answer for a flat pair that may be entered (the strategy ranks these)
FLAT = "flat"


def split(t: str) -> tuple[str | None, str]:
    """``"binance:BTC-USD"`` -> ``("binance", "BTC-USD")``; an unqualified ticker -> ``(None, ticker)``."""
    return (t.split(":", 1)[0], t.split(":", 1)[1]) if ":" in t else (None, t)


def coin_of(ticker: str) -> str:
    """``"binance:BTC-USD"`` -> ``"BTC"``."""
    return split(ticker)[1].split("-")[0].upper()


def discover_pairs(tickers: Iterable[str], params: FundingArbParams) -> list[tuple[str, str]]:
    """The ``(primary, hedge)`` tickers of every coin listed on both venues.

    The primary venue's markets are the unqualified tickers, the hedge venue's the
    ``"<venue>:TICKER"`` ones (venue: ``hedge_venue``, else the only venue among the
    qualified tickers, else ``binance``). ``ticker`` selects one coin (the single-coin
    runs of old), ``coins`` several; default every coin with both legs.

    :raises ConfigError: a requested coin not listed on both venues, or no coin at all (one
        line naming the missing leg and the ``--ticker`` to use).
    """
    tickers = tuple(tickers)
    qualified_venues = list(dict.fromkeys(split(t)[0] for t in tickers if ":" in t))
    venue = params.hedge_venue or (qualified_venues[0] if len(qualified_venues) == 1 else "binance")
    primaries = [t for t in tickers if ":" not in t]
    hedged = {split(t)[1] for t in tickers if split(t)[0] == venue}
    if params.ticker:
        wanted = [params.ticker]
    elif params.coins:
        by_coin = {coin_of(t): t for t in primaries}
        wanted = []
        for c in params.coins:
            c = c.strip().upper()
            t = by_coin.get(c, f"{c}-USD")
            if t not in primaries or t not in hedged:
                missing = t if t not in primaries else f"{venue}:{t}"
                raise ConfigError(
                    f"strategy funding_arb: coin {c!r} is not listed on both venues (no market {missing!r}; "
                    f"both: {', '.join(coin_of(x) for x in primaries if x in hedged) or 'none'})"
                )
            wanted.append(t)
    else:
        wanted = [t for t in primaries if t in hedged] or primaries[:1]
        # a coin the run names on one venue only is a typo or a missing leg: never dropped in silence
        both = set(wanted)
        one_leg = [t for t in primaries if t not in both] + [f"{venue}:{t}" for t in sorted(hedged) if t not in primaries]
        if wanted and one_leg:
            t = one_leg[0]
            base = coin_of(t)
            raise ConfigError(
                f"strategy funding_arb: {t!r} has no other leg among the run's tickers ({', '.join(tickers)}); "
                f"name both legs (--ticker {base},{venue}:{base}), drop it, or run with --ticker all"
            )
    if not wanted:
        raise ConfigError("strategy funding_arb: no primary ticker (set the ticker parameter or run with --ticker BTC,binance:BTC)")
    out = []
    for t in wanted:
        h = f"{venue}:{t}"
        if tickers and (t not in tickers or h not in tickers):
            missing = t if t not in tickers else h
            base = t.split("-")[0]
            raise ConfigError(
                f"strategy funding_arb: leg {missing!r} is not among the run's tickers ({', '.join(tickers)}); "
                f"run with both legs, e.g. --ticker {base},{venue}:{base}"
            )
        out.append((t, h))
    return out


def _few(names: list[str], n: int = 12) -> str:
    """``"A, B, C"``, or the first ``n`` and ``"+K more"``."""
    return ", ".join(names[:n]) + (f" +{len(names) - n} more" if len(names) > n else "") if names else "none"


def _by_coin(tickers) -> dict[str, str]:
    """coin -> its ticker, ``COIN-USD`` preferred over another quote (``COIN-USDC``)."""
    out: dict[str, str] = {}
    for t in tickers:
        c = coin_of(t)
        if c not in out or t == f"{c}-USD":
            out[c] = t
    return out


def select_listed(params: FundingArbParams, listings: Mapping[str, tuple], primary_venue: str, log: Any) -> tuple:
    """The run's tickers when it names none: both legs of every coin listed on both venues.

    The strategy's :meth:`~perpbot.BaseStrategy.select_markets` (the wiring calls it with every
    venue's listing, :func:`perpbot.core.bot.wiring.discover_tickers`). The primary venue is
    the run's first; the hedge venue ``hedge_venue``, else the run's only other venue. A coin
    is on both when the two venues list the same ticker (``BTC-USD``: its base coin, in USD).
    ``ticker`` or ``coins`` narrow the scan. The counts, the coins on both and the coins left
    out (listed on one venue only) are logged.

    :param listings: venue -> its unqualified tickers, the primary venue first.
    :returns: ``("AVAX-USD", ..., "<hedge>:AVAX-USD", ...)``: the primary legs then the hedge legs, by coin.
    :raises ConfigError: fewer than two venues, an unknown ``hedge_venue``, no coin on both, or a
        requested coin not listed on both (one line naming it and the venue that lacks it).
    """
    venues = list(listings)
    others = [v for v in venues if v != primary_venue]
    hedge = params.hedge_venue.strip().lower()
    if not hedge:
        if len(others) != 1:
            raise ConfigError(f"strategy funding_arb: finding the coins listed on both venues needs two venues "
                              f"(e.g. --exchange hyperliquid,binance), got {', '.join(venues)}"
                              + ("; set hedge_venue to one of them" if others else ""))
        hedge = others[0]
    elif hedge not in others:
        close = difflib.get_close_matches(hedge, others, n=1)
        raise ConfigError(f"strategy funding_arb: hedge_venue {hedge!r} is not another venue of the run "
                          f"({', '.join(venues)})" + (f" (did you mean {close[0]!r}?)" if close else ""))
    prim, hedg = _by_coin(listings.get(primary_venue, ())), _by_coin(listings.get(hedge, ()))
    both = sorted(c for c in prim if hedg.get(c) == prim[c])
    only_p = sorted(c for c in prim if c not in both)
    only_h = sorted(c for c in hedg if c not in both)
    log.info(f"funding_arb: {primary_venue} lists {len(prim)} coins, {hedge} {len(hedg)}; on both: {len(both)} "
             f"({_few(both, 40)}); left out, on {primary_venue} only: {_few(only_p)}; on {hedge} only: {_few(only_h)}")
    wanted = [params.ticker] if params.ticker else list(params.coins)
    if wanted:
        chosen = []
        for raw in wanted:
            c = coin_of(str(raw).strip())
            if c not in both:
                lacking = primary_venue if c not in prim else hedge
                close = difflib.get_close_matches(c, both, n=1)
                raise ConfigError(f"strategy funding_arb: coin {c!r} is not listed on both venues (not on {lacking}; "
                                  f"on both: {_few(both)})" + (f" (did you mean {close[0]!r}?)" if close else ""))
            chosen.append(c)
        both = list(dict.fromkeys(chosen))
    if not both:
        raise ConfigError(f"strategy funding_arb: no coin is listed on both {primary_venue} ({len(prim)} markets) "
                          f"and {hedge} ({len(hedg)} markets)")
    return tuple(prim[c] for c in both) + tuple(f"{hedge}:{prim[c]}" for c in both)


class Pair:
    """One coin's two legs (see the module docstring).

    :param params: the strategy's parameters; :param primary: / :param hedge: the legs' tickers;
    :param log: a loguru-style logger.
    """

    def __init__(self, params: FundingArbParams, primary: str, hedge: str, log: Any):
        self.params = params
        self.primary = primary
        self.hedge = hedge
        self.coin = coin_of(primary)
        self.log = log
        self.legs = {primary: LegBook(primary), hedge: LegBook(hedge)}
        self.carry = CarryModel(params, primary, hedge)
        self.position = ArbPosition()
        self.legs_manager = LegManager(params, primary, hedge, self.carry, self.position, log)

    @property
    def rates(self) -> dict[str, RateEma]:
        """ticker -> :class:`RateEma` of its settled per-hour funding (primary leg first)."""
        return self.carry.rates

    def observe(self, md: Any) -> None:
        """Fold in new settlements, and the legs' cumulative funding and marks (every cycle)."""
        self.carry.update(md)
        for t, leg in self.legs.items():
            pos = md.positions.get(t)
            leg.observe_position(pos.funding if pos is not None else None)
            mark = md.marks.get(t)
            if mark is not None:
                leg.last_mark = mark

    def tradable(self, md: Any) -> bool:
        """Both legs' data is fresh (``MarketData.tradable``)."""
        return self.primary in md.tradable and self.hedge in md.tradable

    def resting(self, md: Any) -> dict:
        """Our resting orders on this pair's legs (client id -> order info)."""
        return {cid: o for cid, o in md.open_orders.items() if (o.tag or "").startswith("farb") and o.ticker in self.legs}

    def notional(self, md: Any) -> D:
        """Both legs' notionals, USD (0 for a leg without a price)."""
        total = D(0)
        for t in self.legs:
            px = price(md, t)
            if px is not None:
                total += abs(md.position_size(t)) * px
        return total

    def step(self, md: Any) -> StrategyResult | str:
        """One decision for this pair (order: module docstring).

        :returns: a :class:`StrategyResult`, or :data:`FLAT` when the pair is flat and may be
            ranked for entry.
        """
        now = md.ts_ns
        lm, pos = self.legs_manager, self.position
        resting = self.resting(md)
        if resting and self.params.complete_with_market:
            done = lm.complete_hedge(md, resting)
            if done is not None:
                return done
        if resting:
            stale = [
                (cid, o.ticker)
                for cid, o in resting.items()
                if o.order_type is OrderType.LIMIT and D(now - (o.created_ns or now)) / NS >= self.params.requote_s
            ]
            if stale:
                return StrategyResult(StrategyAction.CANCEL_ORDERS, cancels=tuple(stale),
                                      reason=f"funding_arb: {len(stale)} order(s) unfilled after {self.params.requote_s}s: cancel, then decide again")
            return StrategyResult.nothing("funding_arb: orders in flight")
        pp, ph = price(md, self.primary), price(md, self.hedge)
        if pp is None or ph is None:
            return StrategyResult.nothing("funding_arb: no prices yet")
        sp, sh = md.position_size(self.primary), md.position_size(self.hedge)
        if pos.state == "exiting":
            if sp == 0 and sh == 0:
                pos.state = "flat"
                pos.exited_ns = now
                pos.long_leg = None
            else:
                return lm.close_all(md, sp, sh, "finishing exit")
        if pos.state == "flat":
            if sp or sh:
                # positions the strategy did not open (adopted after a restart without state): manage them
                pos.state = "open"
                pos.long_leg = self.primary if sp > 0 else self.hedge
                pos.target_notional = max(abs(sp) * pp, abs(sh) * ph)
                pos.entered_ns = now
                self.log.info(f"funding_arb: adopted existing legs {self.primary} {sp}, {self.hedge} {sh}")
            else:
                return FLAT
        return lm.manage(md, now, pp, ph, sp, sh)

    def on_order_update(self, update: Any) -> None:
        """Remember the venue's message of a rejected, canceled or expired order of this pair
        (quoted in the legging log)."""
        status = getattr(update.status, "value", str(update.status))
        if update.reason and status in ("REJECTED", "CANCELED", "EXPIRED", "BEST_EFFORT_CANCELED"):
            self.position.leg_error = f"{update.ticker} {status.lower()}: {update.reason}"

    # -- persistence ---------------------------------------------------------------------

    def get_state(self) -> dict:
        """The pair's state, counters, leg books and rate averages, JSON-ready."""
        pos = self.position
        return {
            "primary": self.primary,
            "hedge": self.hedge,
            "state": pos.state,
            "long_leg": pos.long_leg,
            "entered_ns": pos.entered_ns,
            "exited_ns": pos.exited_ns,
            "target_notional": str(pos.target_notional),
            "entry_spread": str(pos.entry_spread),
            "entry_pending": pos.entry_pending,
            "counts": [pos.entries, pos.exits, pos.rebalances, pos.entry_orders, pos.unwinds, pos.leg_attempts],
            "legs": {t: leg.to_json() for t, leg in self.legs.items()},
            "rates": {t: r.to_json() for t, r in self.rates.items()},
        }

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Load :meth:`get_state`'s data (also a version-1 strategy state); another pair's is ignored.
        Leg funding is rebased (:meth:`LegBook.rebase`): counted funding kept, increments measured anew."""
        if not state or state.get("primary") != self.primary or state.get("hedge") != self.hedge:
            return
        pos = self.position
        pos.state = state.get("state", "flat")
        pos.long_leg = state.get("long_leg")
        pos.entered_ns = int(state.get("entered_ns") or 0)
        pos.exited_ns = state.get("exited_ns")
        pos.target_notional = D(state.get("target_notional", "0"))
        pos.entry_spread = D(state.get("entry_spread", "0"))
        pos.entry_pending = bool(state.get("entry_pending", False))
        counts = list(state.get("counts", [])) + [0] * 6
        pos.entries, pos.exits, pos.rebalances, pos.entry_orders, pos.unwinds, pos.leg_attempts = (int(c) for c in counts[:6])
        for t, d in (state.get("legs") or {}).items():
            if t in self.legs:
                leg = LegBook.from_json(d)
                leg.rebase()
                self.legs[t] = leg
        for t, d in (state.get("rates") or {}).items():
            if t in self.rates:
                self.carry.rates[t] = RateEma.from_json(d)
