"""/api/positions lists per-subaccount positions for a venue that splits the account (dYdX
parent + isolated children, issue 12.1), and nothing for venues that do not."""

from __future__ import annotations

from decimal import Decimal as D
from types import SimpleNamespace

from perpbot.core.model import Balance, Position
from perpbot.plugins.api.live import subaccount_rows
from perpbot.plugins.api.models import Positions


class _SplitAccount:
    """The two read methods the dYdX exchange client offers (exchanges/dydx/isolated.py)."""

    def subaccount_positions(self):
        return {0: {"BTC-USD": Position("BTC-USD", D("0.002"))}, 128: {"ETH-USD": Position("ETH-USD", D("-0.5"))}}

    def subaccount_balances(self):
        return {0: Balance(D("9000"), D("9010.5"), D("8990")), 128: Balance(D("90"), D("88.25"), D("10"))}


def test_rows_per_subaccount_and_none_for_a_venue_without_them():
    view = SimpleNamespace(exchanges={"paper": object(), "dydx": _SplitAccount()})
    rows = subaccount_rows(view)
    assert [(r["venue"], r["subaccount"], r["isolated"]) for r in rows] == [("dydx", 0, False), ("dydx", 128, True)]
    assert rows[0]["positions"] == {"BTC-USD": "0.002"} and rows[1]["positions"] == {"ETH-USD": "-0.5"}
    assert rows[1]["equity"] == "88.25" and rows[1]["free_collateral"] == "10"
    Positions(positions=[], accounts=[], subaccounts=rows)  # the response model takes them
    assert subaccount_rows(SimpleNamespace(exchanges={"paper": object()})) == []
