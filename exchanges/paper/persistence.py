"""Export and import the paper exchange's state (resume a paper run from a checkpoint).

The state is one JSON-serialisable dict (Decimals as strings, version :data:`STATE_VERSION`):
subaccounts with their portfolios, live and in-flight orders, the fee volume, the funding
schedule, funding indices and per-subaccount settlement carry, and the recent history (fills, funding payments, liquidations: the latest
:data:`EXPORTED_FILLS` each; the journal keeps every one, so a checkpoint stays O(1) in run
length). Derived data (consumed book liquidity, marks, the active-market set) is rebuilt on
import, not stored.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Mapping

import attrs

from perpbot.core.model import Fill, FundingPayment, Liquidation, Liquidity, MarginMode, Position, Side
from perpbot.core.portfolio import MarketStats, Portfolio
from perpbot.exchanges.paper.orders import SimOrder
from perpbot.exchanges.paper.subaccounts import Subaccount

if TYPE_CHECKING:
    from perpbot.exchanges.paper.exchange import PaperExchange

STATE_VERSION = 1
#: recent history exported per kind (the journal keeps every fill, payment and liquidation)
EXPORTED_FILLS = 100


def export_state(ex: "PaperExchange") -> dict:
    """Everything needed to resume ``ex``, JSON-serialisable (Decimals as str)."""
    acc, orders, funding = ex.accounts, ex.orders, ex.funding
    return {
        "version": STATE_VERSION,
        "venue": ex.venue,
        "subaccounts": [
            {"number": n, "ticker": s.ticker, "portfolio": portfolio_to_dict(s.portfolio)} for n, s in acc.subs.items()
        ],
        "child_of": dict(acc.child_of),
        "orders": [o.to_dict() for o in orders.by_id.values()],
        "pending": [[a, k, (obj.client_id if k == "place" else obj)] for a, k, obj in orders.pending],
        "fees": ex.fees.export_state(),
        "next_hour_ns": funding.next_hour_ns,
        "funding_due": [[h, s, [[n, t, str(z), str(m)] for n, t, z, m in snap]] for h, s, snap in funding.due],
        "funding_missing": sorted(funding.missing),
        "funding_warned": sorted(funding.warned),
        "funding_index": dict(funding.index),
        "funding_carry": {str(n): [c, f] for n, (c, f) in funding.carry.items()},
        # the latest only, like fills: the journal holds every payment and liquidation; exporting
        # the whole history made each checkpoint O(run length)
        "funding_payments": [funding_to_dict(p) for p in funding.payments[-EXPORTED_FILLS:]],
        "liquidations": [liquidation_to_dict(x) for x in ex.liquidator.liquidations[-EXPORTED_FILLS:]],
        # the latest fills only: a resumed run continues from this state, and the journal
        # already holds every fill before it
        "fills": [fill_to_dict(f) for f in list(acc.fills)[-EXPORTED_FILLS:]],
        "fill_seq": acc.fill_seq,
        "fill_prefix": acc.fill_prefix,
        "rejections": ex.rejections,
    }


def import_state(ex: "PaperExchange", data: Mapping[str, Any]) -> None:
    """Restore :func:`export_state` output into ``ex`` (replaces its current state).

    :raises ValueError: for another state version.
    :raises KeyError: / ValueError: / decimal.InvalidOperation: for a malformed state.
    """
    if int(data.get("version", 0)) != STATE_VERSION:
        raise ValueError(f"paper exchange state version {data.get('version')!r} is not {STATE_VERSION}")
    acc, orders, funding = ex.accounts, ex.orders, ex.funding
    markets = ex.context.markets
    acc.subs = {}
    for row in data["subaccounts"]:
        pf = portfolio_from_dict(row["portfolio"], markets)
        acc.subs[int(row["number"])] = Subaccount(int(row["number"]), pf, row.get("ticker"))
    acc.child_of = {t: int(n) for t, n in data.get("child_of", {}).items()}
    orders.load(SimOrder.from_dict(d) for d in data.get("orders", []))
    for a, k, obj in data.get("pending", []):
        if k == "place":
            o = orders.by_id.get(int(obj))
            if o is not None:
                orders.pending.append((int(a), k, o))
        else:
            orders.pending.append((int(a), k, int(obj)))
    ex.fees.import_state(data.get("fees", {}))
    funding.next_hour_ns = int(data.get("next_hour_ns", 0))
    funding.due = [
        [int(h), int(s), [(int(n), t, Decimal(z), Decimal(m)) for n, t, z, m in snap]]
        for h, s, snap in data.get("funding_due", [])
    ]
    funding.missing = set(data.get("funding_missing", []))
    funding.warned = set(data.get("funding_warned", []))
    funding.index = {t: int(v) for t, v in data.get("funding_index", {}).items()}
    funding.carry = {int(n): (int(c), int(f)) for n, (c, f) in data.get("funding_carry", {}).items()}
    funding.payments = [funding_from_dict(p) for p in data.get("funding_payments", [])]
    ex.liquidator.liquidations = [liquidation_from_dict(x) for x in data.get("liquidations", [])]
    acc.fills = deque((fill_from_dict(f) for f in data.get("fills", [])), maxlen=ex.cfg.fills_kept)
    acc.fill_seq = int(data.get("fill_seq", 0))
    # a resumed run continues its timeline's fill ids (a state without a prefix keeps this run's)
    acc.fill_prefix = str(data.get("fill_prefix") or acc.fill_prefix)
    ex.rejections = int(data.get("rejections", 0))
    ex.reset_derived()


# ----------------------------------------------------------------------
# codecs
# ----------------------------------------------------------------------


def portfolio_to_dict(pf: Portfolio) -> dict:
    """A :class:`~perpbot.core.portfolio.Portfolio` as a JSON-serialisable dict (market table excluded)."""
    return {
        "starting_collateral": str(pf.starting_collateral),
        "collateral": str(pf.collateral),
        "positions": {
            t: {
                "size": str(p.size),
                "entry_price": str(p.entry_price),
                "realized_pnl": str(p.realized_pnl),
                "fees": str(p.fees),
                "funding": str(p.funding),
                "margin_mode": p.margin_mode.value,
                "venue": p.venue,
            }
            for t, p in pf.positions.items()
        },
        "stats": {t: {k: (str(v) if isinstance(v, Decimal) else v) for k, v in attrs.asdict(s).items()} for t, s in pf.stats.items()},
        "fees_paid": str(pf.fees_paid),
        "funding_net": str(pf.funding_net),
        "realized_pnl": str(pf.realized_pnl),
        "liquidation_fees": str(pf.liquidation_fees),
        "fills": pf.fills,
    }


def portfolio_from_dict(d: Mapping[str, Any], markets: Mapping) -> Portfolio:
    """Rebuild a portfolio from :func:`portfolio_to_dict` output over the ``markets`` table."""
    pf = Portfolio(Decimal(d["starting_collateral"]), markets)
    pf.collateral = Decimal(d["collateral"])
    for t, p in d.get("positions", {}).items():
        pf.positions[t] = Position(
            ticker=t,
            size=Decimal(p["size"]),
            entry_price=Decimal(p["entry_price"]),
            realized_pnl=Decimal(p["realized_pnl"]),
            fees=Decimal(p["fees"]),
            funding=Decimal(p["funding"]),
            margin_mode=MarginMode(p.get("margin_mode", "CROSS")),
            venue=p.get("venue", ""),
        )
    decimal_fields = {f.name for f in attrs.fields(MarketStats) if f.type in (Decimal, "Decimal")}
    for t, s in d.get("stats", {}).items():
        kw = {k: (Decimal(v) if k in decimal_fields else v) for k, v in s.items()}
        pf.stats[t] = MarketStats(**kw)
    pf.fees_paid = Decimal(d.get("fees_paid", "0"))
    pf.funding_net = Decimal(d.get("funding_net", "0"))
    pf.realized_pnl = Decimal(d.get("realized_pnl", "0"))
    pf.liquidation_fees = Decimal(d.get("liquidation_fees", "0"))
    pf.fills = int(d.get("fills", 0))
    return pf


def fill_to_dict(f: Fill) -> dict:
    """A :class:`~perpbot.core.model.Fill` as a JSON-serialisable dict."""
    return {
        "client_id": f.client_id,
        "ticker": f.ticker,
        "side": f.side.value,
        "price": str(f.price),
        "size": str(f.size),
        "fee": str(f.fee),
        "liquidity": f.liquidity.value,
        "ts_ns": f.ts_ns,
        "fill_id": f.fill_id,
        "venue": f.venue,
        "tag": f.tag,
        "liquidation": f.liquidation,
    }


def fill_from_dict(d: Mapping[str, Any]) -> Fill:
    """Rebuild a fill from :func:`fill_to_dict` output."""
    return Fill(
        client_id=int(d["client_id"]),
        ticker=d["ticker"],
        side=Side(d["side"]),
        price=d["price"],
        size=d["size"],
        fee=d["fee"],
        liquidity=Liquidity(d["liquidity"]),
        ts_ns=int(d["ts_ns"]),
        fill_id=d.get("fill_id", ""),
        venue=d.get("venue", ""),
        tag=d.get("tag", ""),
        liquidation=bool(d.get("liquidation", False)),
    )


def funding_to_dict(p: FundingPayment) -> dict:
    """A :class:`~perpbot.core.model.FundingPayment` as a JSON-serialisable dict."""
    return {
        "ticker": p.ticker,
        "ts_ns": p.ts_ns,
        "size": str(p.size),
        "oracle_price": str(p.oracle_price),
        "rate_1h": str(p.rate_1h),
        "amount": str(p.amount),
        "venue": p.venue,
    }


def funding_from_dict(d: Mapping[str, Any]) -> FundingPayment:
    """Rebuild a funding payment from :func:`funding_to_dict` output."""
    return FundingPayment(
        ticker=d["ticker"],
        ts_ns=int(d["ts_ns"]),
        size=Decimal(d["size"]),
        oracle_price=Decimal(d["oracle_price"]),
        rate_1h=Decimal(d["rate_1h"]),
        amount=Decimal(d["amount"]),
        venue=d.get("venue", ""),
    )


def liquidation_to_dict(x: Liquidation) -> dict:
    """A :class:`~perpbot.core.model.Liquidation` as a JSON-serialisable dict."""
    return {
        "ticker": x.ticker,
        "ts_ns": x.ts_ns,
        "size": str(x.size),
        "price": str(x.price),
        "fee": str(x.fee),
        "reason": x.reason,
        "venue": x.venue,
    }


def liquidation_from_dict(d: Mapping[str, Any]) -> Liquidation:
    """Rebuild a liquidation from :func:`liquidation_to_dict` output."""
    return Liquidation(
        ticker=d["ticker"],
        ts_ns=int(d["ts_ns"]),
        size=Decimal(d["size"]),
        price=Decimal(d["price"]),
        fee=Decimal(d["fee"]),
        reason=d.get("reason", ""),
        venue=d.get("venue", ""),
    )
