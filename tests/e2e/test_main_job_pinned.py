"""The README's main job prints the same figures before and after refactors (issues 10 and 11).

Pinned to the output of the code before the namespace move and the splits (commit 74a5b77,
``PERPBOT_OFFLINE=1 python runbot.py --exchange paper --strategy sniper --ticker BTC,ETH``):

    BTC-USD  2 fills  1,999.40 USD volume  fees 1.00  realized  0.50
    ETH-USD  2 fills  1,996.01 USD volume  fees 1.00  realized -0.60
    final equity 9,997.90 USD, max drawdown 3.74 USD (86 s), decisions 341, orders sent 4,
    1,027,653 events processed (1,027,143 applied)
"""

from decimal import Decimal as D

import pytest

pytestmark = pytest.mark.slow


def cents(x) -> D:
    return D(x).quantize(D("0.01"))


def test_main_job_summary_figures_are_pinned(run_replay):
    _, s = run_replay("sniper", tickers=("BTC-USD", "ETH-USD"))
    lines = {m.ticker: m for m in s.markets}
    assert sorted(lines) == ["BTC-USD", "ETH-USD"]
    btc, eth = lines["BTC-USD"], lines["ETH-USD"]
    assert (btc.fills, cents(btc.volume), cents(btc.fees), cents(btc.realized_pnl)) == (2, D("1999.40"), D("1.00"), D("0.50"))
    assert (eth.fills, cents(eth.volume), cents(eth.fees), cents(eth.realized_pnl)) == (2, D("1996.01"), D("1.00"), D("-0.60"))
    assert btc.position == 0 and eth.position == 0
    assert cents(s.starting_equity) == D("10000.00")
    assert cents(s.final_equity) == D("9997.90")
    assert cents(s.realized_pnl) == D("-0.10") and cents(s.fees) == D("2.00")
    assert cents(s.funding_received) == 0 and cents(s.funding_paid) == 0 and s.liquidations == 0
    assert cents(s.max_drawdown) == D("3.74") and round(s.max_drawdown_duration_s) == 86
    assert (s.decisions, s.orders_sent, s.orders_rejected, s.risk_actions, s.strategy_errors) == (341, 4, 0, 0, 0)
    assert s.feed_stats["events"] == 1_027_653 and s.events == 1_027_143  # processed; applied to a book
    assert "1,027,653" in s.render()
    assert s.stop_reason == "end of data"
