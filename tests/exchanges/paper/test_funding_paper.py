"""The paper exchange settles funding through the chain's funding index (issue 13.4).

For 1 BTC at 65,000 and 100 ppm per 8 h the chain pays 0.81 USDC (index delta trunc(81.25) =
81, chain ``protocol/x/perpetuals/funding/funding.go``) where ``-size * price * rate`` gives
0.8125. The subaccount's settlement is floored once (``protocol/x/subaccounts/lib/updates.go``)
and the floor's remainder carries until the subaccount's next fill (the chain settles lazily).
The payments the exchange emits (what the bot journals), its ledger and the collateral agree.
"""

from __future__ import annotations

from decimal import Decimal

from perpbot.core.margin import funding_payment
from perpbot.core.model import OrderType

from paper_harness import D, T0, Harness, make_market

HOUR = 3600 * 10**9


def _at_hour(start_ns: int) -> int:
    return start_ns - start_ns % HOUR + HOUR


def _open(hh: Harness, side: str, size: str, price: str = "65000", ticker: str = "BTC-USD") -> None:
    p = D(price)
    hh.book(bids=[(str(p - 1), "100")], asks=[(str(p + 1), "100")], ticker=ticker)
    r = hh.order(side, size, ticker=ticker, order_type=OrderType.MARKET)
    assert r.success, r


def _settle_hour(hh: Harness, hour: int, rate_1h: str, oracle: str = "65000", ticker: str = "BTC-USD") -> None:
    hh.oracle(oracle, ticker=ticker, ts=hour)
    hh.funding(rate_1h, settled=True, ticker=ticker, ts=hour + 1, oracle_price=oracle)
    hh.oracle(oracle, ticker=ticker, ts=hour + 61 * 10**9)  # after the grace period


def test_one_btc_at_65000_and_100_ppm_pays_081_usdc():
    hh = Harness({"collateral": "100000"}, start_ns=T0 - T0 % HOUR + 1000)
    hh.oracle("65000")
    _open(hh, "buy", "1")
    before = hh.ex.portfolio.collateral
    H = _at_hour(hh.now)
    _settle_hour(hh, H, "0.0000125")  # 100 ppm per 8 h
    [p] = hh.funding_payments
    assert funding_payment(D(1), D(65000), D("0.0000125")) == D("-0.8125")  # the formula it replaced
    assert p.amount == D("-0.81") and p.rate_1h == D("0.0000125") and p.oracle_price == D(65000)
    assert hh.ex.funding.index["BTC-USD"] == 81
    # emitted payment (journaled by the bot) == ledger == collateral movement
    ledger = hh.ex.account_ledger()
    assert ledger.funding_net == hh.ex.portfolio.funding_net == D("-0.81")
    assert hh.ex.portfolio.collateral - before == D("-0.81")


def test_the_short_receives_the_same_truncated_081():
    hh = Harness({"collateral": "100000"}, start_ns=T0 - T0 % HOUR + 1000)
    hh.oracle("65000")
    _open(hh, "sell", "1")
    _settle_hour(hh, _at_hour(hh.now), "0.0000125")
    [p] = hh.funding_payments
    assert p.amount == D("0.81")


def _fine_btc() -> dict:
    # a market whose step is 1,000 base quantums: settlements are not whole quote quantums
    return {"BTC-USD": make_market("BTC-USD", step_size="0.0000001", step_base_quantums=1000)}


def test_the_floor_remainder_carries_until_the_next_fill():
    hh = Harness({"collateral": "100000"}, markets=_fine_btc(), start_ns=T0 - T0 % HOUR + 1000)
    hh.oracle("65000")
    _open(hh, "sell", "0.0000123")  # 123,000 quantums short
    H = _at_hour(hh.now)
    for k in range(3):
        _settle_hour(hh, H + k * HOUR, "0.0000125")
    # delta 81 per hour: +9,963,000 ppm = 9.963 qq received each hour; floored once per
    # subaccount with the remainder carried: 9, then floor(0.963 + 9.963) = 10, then 10
    amounts = [p.amount for p in hh.funding_payments]
    assert amounts == [D("0.000009"), D("0.000010"), D("0.000010")]
    assert sum(amounts) == D("0.000029") == Decimal(int(3 * 9_963_000 // 10**6)).scaleb(-6)
    carry, _ = hh.ex.funding.carry[0]
    assert carry == 3 * 9_963_000 - 29 * 10**6
    # a fill settles on the chain and drops the remainder: the next hour floors afresh
    hh.book(bids=[("64999", "100")], asks=[("65001", "100")])
    assert hh.order("sell", "0.0000001", order_type=OrderType.MARKET).success  # now 124,000 short
    _settle_hour(hh, H + 3 * HOUR, "0.0000125")
    assert hh.funding_payments[-1].amount == D("0.000010")  # floor(81 * 124,000 / 1e6) = floor(10.044)
    assert hh.ex.funding.carry[0][0] == 44_000
    assert hh.ex.account_ledger().funding_net == sum(p.amount for p in hh.funding_payments)


def test_a_subaccount_floors_its_positions_sum_once():
    markets = {"BTC-USD": _fine_btc()["BTC-USD"], "ETH-USD": make_market("ETH-USD", step_size="0.000001", step_base_quantums=1000)}
    hh = Harness({"collateral": "100000"}, markets=markets, start_ns=T0 - T0 % HOUR + 1000)
    hh.oracle("65000")
    hh.oracle("3000", ticker="ETH-USD")
    _open(hh, "sell", "0.0000123")  # +9.963 qq per hour at 100 ppm
    _open(hh, "sell", "0.000005", price="3000", ticker="ETH-USD")  # ETH AR -9: 5,000 quantums
    H = _at_hour(hh.now)
    hh.oracle("65000", ts=H)
    hh.oracle("3000", ticker="ETH-USD", ts=H)
    hh.funding("0.0000125", ticker="BTC-USD", ts=H + 1, oracle_price="65000")
    hh.funding("0.0001", ticker="ETH-USD", ts=H + 1, oracle_price="3000")  # 800 ppm per 8 h
    hh.oracle("65000", ts=H + 61 * 10**9)
    by = {p.ticker: p.amount for p in hh.funding_payments}
    # ETH: delta trunc(800 * 3000 * 1e-3 / 8) = 300; 5,000 quantums -> +1,500,000 ppm = 1.5 qq
    # alone: 9 + 1 = 10 qq; the chain floors the sum: floor(9.963 + 1.5) = 11
    assert sum(by.values()) == D("0.000011")
    assert by == {"BTC-USD": D("0.000010"), "ETH-USD": D("0.000001")}  # the extra quantum to the first


def test_a_rate_finer_than_a_ppm_is_truncated_as_the_chain_would_and_noted():
    hh = Harness({"collateral": "100000"}, start_ns=T0 - T0 % HOUR + 1000)
    hh.oracle("65000")
    _open(hh, "buy", "1")
    H = _at_hour(hh.now)
    _settle_hour(hh, H, "0.00001254")  # 100.32 ppm: the chain's rate is an integer -> 100
    [p] = hh.funding_payments
    assert p.rate_1h == D("0.0000125") and p.amount == D("-0.81")
    assert hh.ex.funding.truncated == {"BTC-USD"}


def test_index_and_carry_survive_export_and_import():
    hh = Harness({"collateral": "100000"}, markets=_fine_btc(), start_ns=T0 - T0 % HOUR + 1000)
    hh.oracle("65000")
    _open(hh, "sell", "0.0000123")
    H = _at_hour(hh.now)
    _settle_hour(hh, H, "0.0000125")
    state = hh.ex.export_state()
    resumed = Harness({"collateral": "100000"}, markets=_fine_btc(), start_ns=hh.now)
    resumed.ex.import_state(state)
    assert resumed.ex.funding.index == {"BTC-USD": 81}
    assert resumed.ex.funding.carry == hh.ex.funding.carry == {0: (963_000, 1)}
    resumed.book(bids=[("64999", "100")], asks=[("65001", "100")])
    _settle_hour(resumed, H + HOUR, "0.0000125")
    assert resumed.funding_payments[-1].amount == D("0.000010")  # the carried 0.963 qq counted


def test_an_hour_settled_on_the_prediction_gets_the_chain_clamp():
    # a thin market (IMF 20%, MMF 10%: clamp 600,000 ppm per 8 h = 0.075/h) whose running
    # prediction (the indexer's unclamped nextFundingRate) is 0.73/h at the hour
    thin = {"BTC-USD": make_market("BTC-USD", initial_margin_fraction="0.2", maintenance_margin_fraction="0.1")}
    hh = Harness({"collateral": "100000"}, markets=thin, start_ns=T0 - T0 % HOUR + 1000)
    hh.oracle("100")
    _open(hh, "buy", "1", price="100")
    hh.funding("0.73255813953488372093", settled=False)
    H = _at_hour(hh.now)
    hh.oracle("100", ts=H + 10**9)
    hh.oracle("100", ts=H + 70 * 10**9)
    [p] = hh.funding_payments
    # index delta trunc(600,000 * 100 * 1e-4 / 8) = 750 -> 1 BTC (1e10 quantums) pays 7.5 USDC
    assert p.rate_1h == D("0.075") and p.amount == D("-7.5")
    assert hh.ex.funding.clamped == {"BTC-USD"}
    # a modest prediction is only truncated: -0.0000123/h -> -98 ppm
    hh2 = Harness({"collateral": "100000"}, start_ns=T0 - T0 % HOUR + 1000)
    hh2.oracle("65000")
    _open(hh2, "buy", "1")
    hh2.funding("-0.0000123", settled=False)
    H2 = _at_hour(hh2.now)
    hh2.oracle("65000", ts=H2 + 10**9)
    hh2.oracle("65000", ts=H2 + 70 * 10**9)
    [p2] = hh2.funding_payments
    # delta trunc(-98 * 65000 * 1e-4 / 8) = trunc(-79.625) = -79 -> the long receives 0.79
    assert p2.rate_1h == D("-0.00001225") and p2.amount == D("0.79")
    assert not hh2.ex.funding.clamped


def test_notional_settlement_for_another_venues_rules():
    # [exchange.<venue>] funding_settlement = "notional": -size * price * rate, the subaccount's
    # sum floored once to 1e-6 USD, the rate as given (no ppm truncation, no index)
    hh = Harness({"collateral": "100000", "funding_settlement": "notional"}, start_ns=T0 - T0 % HOUR + 1000)
    hh.oracle("65000")
    _open(hh, "buy", "1")
    _settle_hour(hh, _at_hour(hh.now), "0.00001254")
    [p] = hh.funding_payments
    assert p.rate_1h == D("0.00001254") and p.amount == D("-0.8151")  # 65,000 x 0.00001254
    assert hh.ex.funding.index == {} and hh.ex.funding.carry == {}
    assert hh.ex.account_ledger().funding_net == D("-0.8151")


def test_funding_settlement_config_is_checked():
    import pytest

    from perpbot.core.errors import ConfigError
    from perpbot.exchanges.paper.config import PaperConfig

    assert PaperConfig.from_mapping({}).funding_settlement == "chain"
    assert PaperConfig.from_mapping({"funding_settlement": "Notional"}).funding_settlement == "notional"
    with pytest.raises(ConfigError, match=r"funding_settlement = 'index': expected one of chain, notional"):
        PaperConfig.from_mapping({"funding_settlement": "index"})
