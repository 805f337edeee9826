"""Cost per event at 2, 25 and 125 dYdX markets on one connection: it must stay flat (issue 11, target 5).

Real-shaped data, generated from real market parameters and real book shapes:

- markets: the mainnet indexer's ``GET /v4/perpetualMarkets`` answer with 125 markets
  (``../shared/data/dydx_v4/nautilus_py/http/list_perpetual_markets.json``, read in place,
  never copied); without the shared data, the project's own
  ``exchanges/replay/dydx_markets.json`` (6 real markets, each repeated under numbered
  tickers up to 125);
- book shapes: the real ``v4_orderbook`` ``subscribed`` snapshot (100 levels a side, its
  level gaps in ticks and its sizes) and the real ``channel_batch_data`` update (41
  one-level updates, a quarter of them deletes) from ``../shared/data/dydx_v4/nautilus_py/websocket/``;
  without the shared data, the same counts with sizes from the embedded shape below.
  Each market's levels sit at its own oracle price, on its own tick, in its own step.

The messages (JSON bytes, as the indexer sends them on one WebSocket: shapes per v4-chain
``indexer/packages/postgres/src/types/websocket-message-types.ts``) go through the dYdX
parser (:class:`perpbot.exchanges.dydx.parser.DydxParser`: decode, value checks, its own
book) and each market's :class:`perpbot.core.state.MarketState`. One subscribed snapshot
per market is applied first, then the same number of update messages (:data:`BATCHES`),
spread round-robin over 2, 25 or 125 markets, goes through once to warm up (every
distinct price and size string is converted once, as in a long run) and then again
once per round, timed in CPU time of this process (a machine shared with other work
distorts wall time far more). Figure: microseconds per level entry; target: the
125-market cost within :data:`FLAT` times the 2-market cost. The three market counts
live side by side and are timed in turn within each round (the order rotated from round
to round), :data:`ROUNDS` rounds; every round's figures are printed with the median, the
minimum and the spread, and the target is judged on the median of the rounds' own
125/2 ratios (two passes close in time, so the machine's drifts cancel). The load average
is printed beside it: other processes sharing the CPU caches slow the 125-market case most
(its books do not fit them; on the 2-core development machine the same code measured
x1.16-x1.19 at a load average below 2 and x1.26-x1.36 at 5-7).

    python bench/bench_markets.py [--rounds N]
"""

from __future__ import annotations

import gc
import json
import os
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from perpbot.core.model import BookDelta, Market  # noqa: E402
from perpbot.core.state import MarketState  # noqa: E402
from perpbot.exchanges.dydx.parser import DydxParser  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "dydx_v4" / "nautilus_py"
MARKET_COUNTS = (2, 25, 125)
BATCHES = 6000
ROUNDS = 7
FLAT = 1.25
#: used only without the shared data: 20 level gaps (ticks) and sizes (steps) of a real top of book
_FALLBACK_GAPS = [1, 1, 1, 1, 1, 2, 1, 3, 1, 2, 1, 1, 4, 2, 1, 3, 5, 2, 1, 6]
_FALLBACK_SIZES = [4946, 7856, 30983, 3006, 295, 3129, 2295, 1000, 12000, 500]


def _load_shapes() -> tuple[list[dict], list[int], list[int], list[tuple[bool, int, bool]], str]:
    """``(market payloads, level gaps in ticks, sizes in steps, update shape, source text)``.

    The update shape is one ``(is_bid, ticks from the touch, is_delete)`` per level update.
    """
    mk = SHARED / "http" / "list_perpetual_markets.json"
    snap = SHARED / "websocket" / "v4_orderbook_snapshot.json"
    batch = SHARED / "websocket" / "v4_orderbook_batched_data.json"
    if mk.is_file() and snap.is_file() and batch.is_file():
        markets = [m for m in json.loads(mk.read_text())["markets"].values() if m.get("oraclePrice")]
        c = json.loads(snap.read_text())["contents"]
        asks = sorted(Decimal(lv["price"]) for lv in c["asks"])
        tick = min(b - a for a, b in zip(asks, asks[1:]) if b > a)
        gaps = [int((b - a) / tick) for a, b in zip(asks, asks[1:])]
        sizes = [max(1, int(Decimal(lv["size"]) * 1000)) for lv in c["bids"] + c["asks"]]
        items = json.loads(batch.read_text())["contents"]
        prices = sorted(Decimal(lv[0]) for it in items for side in it.values() for lv in side)
        mid = prices[len(prices) // 2]
        shape = []
        for it in items:
            for side, lvs in it.items():
                for p, s in lvs:
                    shape.append((side == "bids", min(int(abs(Decimal(p) - mid) / Decimal("0.1")), 99), Decimal(s) == 0))
        return markets, gaps, sizes, shape, f"shared data ({len(markets)} markets, real book shapes)"
    markets = list(json.loads((ROOT / "exchanges" / "replay" / "dydx_markets.json").read_text())["markets"].values())
    rng = random.Random(7)
    shape = [(rng.random() < 0.5, rng.randrange(0, 30), rng.random() < 0.25) for _ in range(41)]
    return markets, _FALLBACK_GAPS * 5, _FALLBACK_SIZES, shape, f"embedded market file ({len(markets)} markets repeated)"


def _markets(payloads: list[dict], n: int) -> list[dict]:
    out = []
    for i in range(n):
        p = dict(payloads[i % len(payloads)])
        if i >= len(payloads):
            base = p["ticker"].split("-")[0]
            p["ticker"] = f"{base}{i // len(payloads)}-USD"
        out.append(p)
    return out


def build(n_markets: int, payloads, gaps, sizes, shape) -> tuple[list[Market], list[bytes], list[bytes], int]:
    """``(markets, snapshot messages, update messages, level entries in the updates)`` for ``n_markets``."""
    rng = random.Random(n_markets)
    mks = _markets(payloads, n_markets)
    markets = [Market.from_indexer(p) for p in mks]
    snaps, updates = [], []
    grid = {}
    for p in mks:
        tick, step = Decimal(p["tickSize"]), Decimal(p["stepSize"])
        touch = (Decimal(p["oraclePrice"]) / tick).to_integral_value() * tick
        grid[p["ticker"]] = (tick, step, touch)
        levels = {"bids": [], "asks": []}
        room = int(touch / tick / 2)  # the deepest bid stays above half the price
        depth = sum(max(g, 1) for g in gaps[:100]) + 1
        scaled = [max(1, g * room // depth) for g in gaps[:100]] if depth > room else gaps[:100]
        for side, sign in (("bids", -1), ("asks", 1)):
            off = 1
            for i, g in enumerate(scaled):
                price = touch + sign * off * tick
                levels[side].append({"price": str(price), "size": str(sizes[i % len(sizes)] * step)})
                off += max(g, 1)
        snaps.append(orjson.dumps({"type": "subscribed", "connection_id": "bench", "message_id": 1,
                                   "channel": "v4_orderbook", "id": p["ticker"], "contents": levels}))
    entries = 0
    for b in range(BATCHES):
        p = mks[b % n_markets]
        tick, step, touch = grid[p["ticker"]]
        contents = []
        for is_bid, ticks, is_delete in shape:
            price = touch + (-1 if is_bid else 1) * (1 + ticks) * tick
            size = "0" if is_delete else str(rng.choice(sizes) * step)
            contents.append({"bids" if is_bid else "asks": [[str(price), size]]})
        entries += len(contents)
        updates.append(orjson.dumps({"type": "channel_batch_data", "connection_id": "bench", "message_id": b + 2,
                                     "channel": "v4_orderbook", "id": p["ticker"], "version": "1.0.0",
                                     "contents": contents}))
    return markets, snaps, updates, entries


def prepare(markets: list[Market], snaps: list[bytes], updates: list[bytes]) -> tuple[DydxParser, dict]:
    """A parser and one :class:`MarketState` per market, with every snapshot applied and the
    updates passed once (warm-up, not timed: the value caches fill, as in a long run's
    steady state): ``(parser, {ticker: MarketState})``."""
    parser = DydxParser({m.ticker for m in markets}, {m.ticker: m for m in markets})
    states = {m.ticker: MarketState(m) for m in markets}
    ts = 1_700_000_000_000_000_000
    for raw in (*snaps, *updates):
        ts += 1_000_000
        for ev in parser.on_raw(raw, ts):
            st = states.get(ev.ticker)
            if st is not None:
                st.apply(ev)
    return parser, states


def time_pass(parser: DydxParser, states: dict, updates: list[bytes], ts: int) -> tuple[float, int]:
    """The updates once more through parser + market state, timed in CPU time of this process:
    ``(seconds, level entries applied)``. Sizes are absolute, so a repeated pass leaves every
    book as it was (the steady state of a long run)."""
    gc.collect()
    applied = 0
    t0 = time.process_time()
    for raw in updates:
        ts += 1_000_000
        for ev in parser.on_raw(raw, ts):
            st = states.get(ev.ticker)
            if st is not None:
                st.apply(ev)
                if type(ev) is BookDelta:
                    applied += len(ev.bids) + len(ev.asks)
    return time.process_time() - t0, applied


def run(rounds: int = ROUNDS) -> dict:
    """Per-event cost (us per level entry) for each market count, over ``rounds`` interleaved rounds.

    Each market count has its own parser and states, prepared once (:func:`prepare`); a round
    times one pass per market count, in an order rotated from round to round (so no count
    always runs first, right after a collection or another count's pass). Returns
    ``{"source", "entries": {n: entries per pass}, "rounds": {n: [us per entry, one per round]},
    "us_per_entry": {n: median}, "ratios": [last count / first count, one per round],
    "ratio": median of the ratios}``: each ratio compares two passes of the same round, so the
    machine's slow drifts (other work on a shared machine) cancel out of it.

    :raises RuntimeError: when a pass applied fewer level entries than the updates carry (a
        book went unhealthy: the figure would not be comparable).
    """
    payloads, gaps, sizes, shape, source = _load_shapes()
    cases = {n: build(n, payloads, gaps, sizes, shape) for n in MARKET_COUNTS}
    live = {n: prepare(*cases[n][:3]) for n in MARKET_COUNTS}
    us: dict[int, list] = {n: [] for n in MARKET_COUNTS}
    entries = {}
    ts = 1_800_000_000_000_000_000
    for r in range(rounds):
        k = r % len(MARKET_COUNTS)
        for n in MARKET_COUNTS[k:] + MARKET_COUNTS[:k]:
            updates, total = cases[n][2], cases[n][3]
            ts += 10_000_000_000
            seconds, applied = time_pass(*live[n], updates, ts)
            if applied != total:
                raise RuntimeError(f"{n} markets: {applied} of {total} level entries applied (a book went unhealthy)")
            us[n].append(seconds / applied * 1e6)
            entries[n] = applied
    first, last = MARKET_COUNTS[0], MARKET_COUNTS[-1]
    ratios = [b / a for a, b in zip(us[first], us[last])]
    return {"source": source, "entries": entries, "rounds": us,
            "us_per_entry": {n: statistics.median(v) for n, v in us.items()},
            "ratios": ratios, "ratio": statistics.median(ratios)}


def main(argv: list[str] | tuple = ()) -> int:
    """Print every round's figures, the medians and spreads, and the flatness target line.

    :param argv: ``["--rounds", "N"]`` optionally (N >= 1; default :data:`ROUNDS`); a bad
        value prints one ``error:`` line and returns 2.
    """
    rounds = ROUNDS
    if argv:
        if len(argv) != 2 or argv[0] != "--rounds" or not argv[1].isdigit() or int(argv[1]) < 1:
            print(f"error: expected --rounds N (N >= 1), got {' '.join(argv)!r}", file=sys.stderr)
            return 2
        rounds = int(argv[1])
    r = run(rounds)
    base = r["us_per_entry"][MARKET_COUNTS[0]]
    print(f"dYdX parser + market state, {BATCHES:,} update messages over N markets ({r['source']}); "
          f"CPU time, {rounds} interleaved rounds:")
    for n in MARKET_COUNTS:
        v = r["rounds"][n]
        u = r["us_per_entry"][n]
        print(f"  {n:>4} markets: median {u:5.2f} us per level entry, min {min(v):5.2f}, "
              f"spread {(max(v) - min(v)) / u * 100:3.0f}% ({r['entries'][n]:,} entries a pass)   x{u / base:.2f} of "
              f"{MARKET_COUNTS[0]}   rounds: {' '.join(f'{x:.2f}' for x in v)}")
    ratios = r["ratios"]
    print(f"  {MARKET_COUNTS[-1]} vs {MARKET_COUNTS[0]} markets, per round: {' '.join(f'x{x:.2f}' for x in ratios)}; "
          f"fastest rounds' ratio x{min(r['rounds'][MARKET_COUNTS[-1]]) / min(r['rounds'][MARKET_COUNTS[0]]):.2f}"
          + (f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs" if hasattr(os, "getloadavg") else ""))
    worst = r["ratio"]
    print(f"  {MARKET_COUNTS[-1]} vs {MARKET_COUNTS[0]} markets: x{worst:.2f} (median of the rounds' ratios; "
          f"range x{min(ratios):.2f}..x{max(ratios):.2f})  target <= x{FLAT:.2f} (flat)  "
          f"{'OK' if worst <= FLAT else 'NOT FLAT'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
