"""Benchmark: margin requirements and liquidation prices of a 50-position dYdX account.

Run ``python bench/bench_margin.py`` from the repository root. It builds one
account with 50 cross-margin positions (BTC/ETH/SOL/DOGE-style parameters, longs
and shorts, some OI-scaled) and reports the median wall time of:

- ``compute``: total IMR, total MMR, equity and free collateral
  (:func:`perpbot.core.margin.account_risk`) plus all 50 liquidation prices
  (:func:`perpbot.core.margin.liquidation_prices`) from already-built positions. This is
  the figure compared with the target (under 50 us; seed limit 25 ms).
- ``reprice+compute``: the same after re-marking all 50 positions to new oracle
  prices (building 50 new :class:`perpbot.core.margin.PositionRisk` values, which is where
  the per-position chain rounding happens), i.e. the cost per oracle update.

``run()`` returns the figures as a dict for a bench runner.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perpbot.core.margin import PositionRisk, account_risk, liquidation_prices, total_initial_margin  # noqa: E402

TARGET_US = 50.0
SEED_LIMIT_MS = 25.0
N_POSITIONS = 50

# (ticker, oracle price, imf, mmf, size step, OI base units, OI lower cap, OI upper cap)
_MARKETS = [
    ("BTC-USD", Decimal("65000"), Decimal("0.02"), Decimal("0.012"), Decimal("0.0001"), Decimal(0), 0, 0),
    ("ETH-USD", Decimal("3000.5"), Decimal("0.02"), Decimal("0.012"), Decimal("0.001"), Decimal(0), 0, 0),
    (
        "SOL-USD",
        Decimal("150.123"),
        Decimal("0.1"),
        Decimal("0.05"),
        Decimal("0.1"),
        Decimal("200000"),
        Decimal("20000000"),
        Decimal("50000000"),
    ),
    ("DOGE-USD", Decimal("0.12345"), Decimal("0.1"), Decimal("0.05"), Decimal("10"), Decimal(0), 0, 0),
]


def build_account(price_bump: Decimal = Decimal(0)) -> tuple[Decimal, list[PositionRisk]]:
    """A deterministic 50-position account: (usdc_balance, positions)."""
    positions = []
    for i in range(N_POSITIONS):
        ticker, price, imf, mmf, step, oi, lo, hi = _MARKETS[i % len(_MARKETS)]
        sign = 1 if i % 3 else -1
        size = sign * step * (7 + 13 * i)
        px = price * (1 + Decimal(i) / 1000 + price_bump)
        positions.append(
            PositionRisk(
                size=size,
                oracle_price=px.quantize(Decimal("0.00001")),
                imf=imf,
                mmf=mmf,
                open_interest=oi,
                open_interest_lower_cap=lo,
                open_interest_upper_cap=hi,
                ticker=f"{ticker}#{i}",
            )
        )
    # Fund it so that equity is twice the total initial margin (free collateral = TIMR).
    net = sum((p.notional for p in positions), Decimal(0))
    usdc = (2 * total_initial_margin(positions) - net).quantize(Decimal("0.000001"))
    return usdc, positions


def _median_us(fn, repeat: int, rounds: int = 5) -> tuple[float, float]:
    """Per-call wall times over ``rounds`` x ``repeat`` calls (GC paused, as timeit does).

    Returns (median of all calls, best round median), microseconds.
    """
    perf = time.perf_counter_ns
    samples: list[int] = []
    round_medians = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            times = []
            for _ in range(repeat):
                t0 = perf()
                fn()
                times.append(perf() - t0)
            samples.extend(times)
            round_medians.append(statistics.median(times))
    finally:
        if gc_was_enabled:
            gc.enable()
    return statistics.median(samples) / 1000.0, min(round_medians) / 1000.0


def run(repeat: int = 1000) -> dict:
    """Measure and return the figures (microseconds) with the target and seed limit."""
    usdc, positions = build_account()
    new_prices = [p.oracle_price * Decimal("1.001") for p in positions]

    def compute():
        risk = account_risk(usdc, positions)
        risk.free_collateral
        liquidation_prices(usdc, positions)

    def reprice_compute():
        ps = [p.with_price(px) for p, px in zip(positions, new_prices)]
        risk = account_risk(usdc, ps)
        risk.free_collateral
        liquidation_prices(usdc, ps)

    for _ in range(200):  # warm up
        compute()
    compute_us, compute_best_us = _median_us(compute, repeat)
    reprice_us, _ = _median_us(reprice_compute, max(50, repeat // 10))
    risk = account_risk(usdc, positions)
    liq = liquidation_prices(usdc, positions)
    return {
        "positions": N_POSITIONS,
        "compute_median_us": round(compute_us, 2),
        "compute_best_round_median_us": round(compute_best_us, 2),
        "reprice_compute_median_us": round(reprice_us, 2),
        "target_us": TARGET_US,
        "seed_limit_ms": SEED_LIMIT_MS,
        "meets_target": compute_us < TARGET_US,
        "within_seed_limit": compute_us < SEED_LIMIT_MS * 1000,
        "equity": str(risk.equity),
        "free_collateral": str(risk.free_collateral),
        "liquidation_prices_defined": sum(x is not None for x in liq),
    }


def main() -> int:
    r = run()
    print(f"margin, {r['positions']}-position account (median of runs):")
    print(
        f"  total IMR + MMR + equity + free collateral + {r['positions']} liquidation prices: "
        f"{r['compute_median_us']:.1f} us   target < {r['target_us']:.0f} us, seed limit "
        f"{r['seed_limit_ms']:.0f} ms  [{'OK' if r['meets_target'] else 'ABOVE TARGET'}]"
    )
    print(f"  (best round median {r['compute_best_round_median_us']:.1f} us)")
    print(
        f"  same after re-marking all {r['positions']} positions to new oracle prices: "
        f"{r['reprice_compute_median_us']:.1f} us"
    )
    return 0 if r["within_seed_limit"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
