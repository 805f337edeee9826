"""The sniper on the real Binance BTC+ETH L2 sample (6 minutes, ~1M book events).

First with a minimal in-test executor (fills every order at the touch, so the
test depends only on core state, signals and the strategy), then through the
real bot and paper exchange when that plugin is present.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from perpbot.core.model import Balance, Fill, Liquidity, Position, Side, TimeInForce
from perpbot.core.signals import SignalEngine
from perpbot.core.state import MarketData, MarketState
from perpbot.core.testing import market
from sniper_testkit import NS, binance_sample_events, make_sniper

D = Decimal


def _replay(strategy, notional=D("1000"), decision_s=1):
    """Run ``strategy`` over the sample; returns (fills, orders, max simultaneous positions, cycles)."""
    states = {t: MarketState(market(t)) for t in ("BTC-USD", "ETH-USD")}
    engines = {t: SignalEngine() for t in states}
    positions: dict[str, Position] = {}
    fills, orders = [], []
    max_open = cycles = 0
    next_decision = 0
    cid = 0

    async def run():
        nonlocal next_decision, max_open, cycles, cid
        for ev in binance_sample_events():
            st = states.get(ev.ticker)
            if st is None:
                continue
            st.apply(ev)
            engines[ev.ticker].on_event(st, ev)
            now = ev.ts_ns
            if now < next_decision:
                continue
            next_decision = now + decision_s * NS
            paused = {t: r for t, s in states.items() if (r := s.stale_reason(now))}
            md = MarketData(
                ts_ns=now, markets=states, tradable=tuple(t for t in states if t not in paused), paused=paused,
                positions={t: p for t, p in positions.items() if p.size}, open_orders={},
                balance=Balance(D(10000), D(10000), D(10000)),
                marks={t: s.mark_price() for t, s in states.items() if s.mark_price() is not None},
            )
            if not await strategy.should_execute(md):
                continue
            cycles += 1
            result = await strategy.execute_strategy(md)
            for o in result.orders:
                orders.append((now, o))
                bid, ask = states[o.ticker].best_bid_offer()
                px = ask if o.side is Side.BUY else bid
                size = o.size if o.size is not None else market(o.ticker).round_size(notional / px)
                cid += 1
                f = Fill(cid, o.ticker, o.side, px, size, (px * size * D("0.0005")).quantize(D("0.000001")),
                         Liquidity.TAKER, now, tag=o.tag)
                p = positions.get(o.ticker, Position(o.ticker))
                signed = size if o.side is Side.BUY else -size
                new = p.size + signed
                entry = p.entry_price if (p.size and (p.size > 0) != (signed > 0)) else (
                    (p.entry_price * abs(p.size) + px * size) / abs(new) if new else D(0))
                positions[o.ticker] = Position(o.ticker, new, entry if new else D(0))
                fills.append(f)
                strategy.on_fill(f)
            max_open = max(max_open, sum(1 for p in positions.values() if p.size))

    asyncio.run(run())
    return fills, orders, max_open, cycles, positions


def test_sniper_trades_the_real_sample_within_its_rules():
    s = make_sniper(warmup_s="60", max_positions="2", cooldown_s="60")
    fills, orders, max_open, cycles, positions = _replay(s)
    assert cycles > 300  # one decision per second of a ~6-minute recording
    entries = [(t, o) for t, o in orders if not o.reduce_only]
    exits = [(t, o) for t, o in orders if o.reduce_only]
    assert entries, "the default parameters trade on the sample"
    assert exits, "and close positions within it"
    first = orders[0][0]
    for t, o in entries:
        assert o.size is None and o.tag == "sniper-entry"
        assert t - first >= 0
        assert "composite" in o.reason and ">= 65" in o.reason
    for _, o in exits:
        assert o.time_in_force is TimeInForce.IOC and o.size > 0
        assert o.tag.split(":")[1] in ("take-profit", "stop-loss", "score decay")
    assert max_open <= 2
    # no market re-entered within 60 s of an exit
    last_exit: dict[str, int] = {}
    for t, o in orders:
        if o.reduce_only:
            last_exit[o.ticker] = t
        elif o.ticker in last_exit:
            assert t - last_exit[o.ticker] >= 60 * NS
    # the strategy's own books agree with the executor's
    summary = s.summary_lines()
    assert summary[0].startswith(f"sniper: {len(entries)} entries, {len(exits)} exits")
    assert sum(1 for p in positions.values() if p.size) == int(summary[0].split(" open")[0].rsplit(" ", 1)[1])


def test_sniper_respects_a_single_slot_and_long_only_on_the_sample():
    s = make_sniper(warmup_s="60", max_positions="1", allow_short="false", entry_threshold="62")
    _, orders, max_open, _, _ = _replay(s)
    assert max_open <= 1
    assert all(o.side is Side.BUY for _, o in orders if not o.reduce_only)


def test_sniper_through_the_bot_and_paper_exchange(tmp_path):
    from perpbot.core.plugins import PluginManager

    pm = PluginManager(load_entry_points=False)
    if "paper" not in pm.registry.exchanges or "replay" not in pm.registry.feeds:
        pytest.skip("the paper exchange or the replay feed plugin is not in this build yet")
    from perpbot.core.testing import bot_config, run_bot_async

    config = bot_config(
        exchange=("paper",), strategy="sniper", tickers=("BTC-USD", "ETH-USD"), feed="replay",
        state_dir=tmp_path / "state", strategies={"sniper": {}},
    )
    bot, summary = asyncio.run(run_bot_async(config))
    assert summary.strategy_errors == 0
    assert summary.decisions > 300
    assert summary.orders_sent >= 2
    assert summary.strategy_lines and summary.strategy_lines[0].startswith("sniper: ")
