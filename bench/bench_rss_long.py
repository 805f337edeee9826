"""Peak RSS of the whole pipeline at 1M and at 4M events: memory must stay flat (issue 11, target 3).

The embedded Binance BTC+ETH sample (1,027,653 events) is looped: copy ``k`` of each file
has every receive time shifted by ``k`` times the sample's span (plus 1 s), Binance's
event and trade times by the same amount, and every update id (``U``, ``u``, ``pu``,
``lastUpdateId``, bookTicker ``u``) and trade id by ``k`` times their range, so the
copies form ONE stream per market in time order (one file per copy, as a recorder that
rotates writes them). Each copy's REST snapshot line is moved to the copy's start: the
book resyncs there by Binance's documented procedure (the diffs older than the snapshot
are dropped, the one that straddles it applied), the way a recorder restarted each
copy would have it. The copies are written once to ``/tmp/perpbot-bench/rss_loop/``
(gzip), never into the project.

Then the README's main job (sniper + paper fills, journal/report/progress off, logging
bypassed, as ``bench_pipeline``) runs in a fresh process on 1 copy and on 4 copies;
each prints its own peak RSS (VmHWM). Target: at most 100 MB, and flat: the 4M run's
peak no more than :data:`FLAT_MB` above the 1M run's.

    python bench/bench_rss_long.py                    # both runs, figures beside the targets
    python bench/bench_rss_long.py --once COPIES      # one run, JSON on stdout (used above)
"""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "data" / "binance_usdm"
OUT = Path("/tmp/perpbot-bench/rss_loop")
TARGET_RSS_MB = 100
#: the most the 4M run's peak RSS may exceed the 1M run's and still count as flat
FLAT_MB = 5.0
_IDS = ("U", "u", "pu", "lastUpdateId")


def _split(line: bytes) -> tuple[int, dict]:
    sp = line.index(b" ")
    return int(line[:sp]), orjson.loads(line[sp + 1:])


def _read(path: Path) -> list[bytes]:
    with gzip.open(path, "rb") as f:
        return [ln.rstrip(b"\r\n") for ln in f if ln.strip()]


def _ranges(files: dict[str, list[bytes]]) -> tuple[int, int, int, int]:
    """``(first receive ns, last receive ns, update-id stride, trade-id stride)`` over every file."""
    ts_lo = id_lo = t_lo = None
    ts_hi = id_hi = t_hi = 0
    for lines in files.values():
        for line in lines:
            ts, msg = _split(line)
            ts_lo = ts if ts_lo is None else min(ts_lo, ts)
            ts_hi = max(ts_hi, ts)
            data = msg.get("data", msg)
            for k in _IDS:
                v = data.get(k)
                if type(v) is int:
                    id_lo = v if id_lo is None else min(id_lo, v)
                    id_hi = max(id_hi, v)
            t = data.get("t")
            if type(t) is int:
                t_lo = t if t_lo is None else min(t_lo, t)
                t_hi = max(t_hi, t)
    return ts_lo, ts_hi, id_hi - (id_lo or 0) + 1, t_hi - (t_lo or 0) + 1


def _copy(lines: list[bytes], k: int, ts_shift: int, id_shift: int, t_shift: int) -> list[bytes]:
    """Copy ``k`` of one file: times and ids shifted, the snapshot line first (see the module docstring)."""
    ms_shift = ts_shift // 1_000_000
    out: list[bytes] = []
    snapshot = None
    first_ts = None
    for line in lines:
        ts, msg = _split(line)
        ts += ts_shift
        if first_ts is None:
            first_ts = ts
        data = msg.get("data", msg)
        for key in _IDS:
            if type(data.get(key)) is int:
                data[key] += id_shift
        if type(data.get("t")) is int:
            data["t"] += t_shift
        for key in ("E", "T"):
            if type(data.get(key)) is int:
                data[key] += ms_shift
        if "lastUpdateId" in data:
            snapshot = msg
            continue
        out.append(b"%d %s" % (ts, orjson.dumps(msg)))
    if snapshot is not None:
        out.insert(0, b"%d %s" % (first_ts, orjson.dumps(snapshot)))
    return out


def looped_files(copies: int) -> list[str]:
    """The sample's files looped ``copies`` times (copy 0 is the sample itself), written once to :data:`OUT`."""
    originals = sorted(SAMPLE.glob("*.gz"))
    names = [str(p) for p in originals]
    if copies <= 1:
        return names
    OUT.mkdir(parents=True, exist_ok=True)
    want = [OUT / f"{p.name.split('.')[0]}_copy{k}.gz" for k in range(1, copies) for p in originals]
    if not all(w.exists() for w in want):
        files = {p.name: _read(p) for p in originals}
        ts_lo, ts_hi, id_stride, t_stride = _ranges(files)
        span = ts_hi - ts_lo + 1_000_000_000
        for k in range(1, copies):
            for p in originals:
                dest = OUT / f"{p.name.split('.')[0]}_copy{k}.gz"
                if dest.exists():
                    continue
                tmp = dest.with_suffix(".tmp")
                with gzip.open(tmp, "wb", compresslevel=1) as f:
                    f.write(b"\n".join(_copy(files[p.name], k, k * span, k * id_stride, k * t_stride)) + b"\n")
                tmp.rename(dest)
    return names + [str(w) for w in want]


def once(copies: int) -> dict:
    """One pipeline run on ``copies`` loops of the sample (in this process): events, seconds, peak RSS."""
    sys.path.insert(0, str(ROOT))
    files = looped_files(copies)
    from loguru import logger

    logger.remove()  # logging is bypassed, as in the reference figures
    from perpbot.core.bot import TradingBot
    from perpbot.core.config import BotConfig
    from perpbot.core.plugins import PluginManager

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_pipeline import peak_rss_mb

    cfg = BotConfig(
        exchange=("paper",), strategy="sniper", tickers=("BTC-USD", "ETH-USD"), feed="replay",
        feeds={"replay": {"files": files}}, journal_enabled=False, report=False, progress=False,
        state_dir=Path("/tmp/perpbot-bench"),
    )
    bot = TradingBot(cfg, PluginManager(load_entry_points=False))
    t0 = time.perf_counter()
    summary = asyncio.run(bot.run())
    wall = time.perf_counter() - t0
    return {
        "copies": copies, "events": summary.events_read, "seconds": wall, "stop_reason": summary.stop_reason,
        "fills": sum(m.fills for m in summary.markets), "peak_rss_mb": peak_rss_mb(),
    }


def run(copies: tuple[int, ...] = (1, 4)) -> list[dict]:
    """One fresh process per copy count; their JSON results."""
    looped_files(max(copies))  # write the copies before any timed run
    results = []
    for n in copies:
        out = subprocess.run([sys.executable, __file__, "--once", str(n)], capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            raise RuntimeError(f"bench_rss_long --once {n} failed: {(out.stderr or out.stdout).strip()[-500:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


def main() -> int:
    if "--once" in sys.argv:
        print(json.dumps(once(int(sys.argv[sys.argv.index("--once") + 1]))))
        return 0
    small, big = run()
    for r in (small, big):
        print(f"  {r['events']:>12,} events ({r['copies']} x sample, {r['stop_reason']}, {r['fills']} fills): "
              f"peak RSS {r['peak_rss_mb']:6.1f} MB  target <= {TARGET_RSS_MB}  "
              f"{'OK' if r['peak_rss_mb'] <= TARGET_RSS_MB else 'ABOVE TARGET'}   ({r['events'] / r['seconds']:,.0f} events/s)")
    growth = big["peak_rss_mb"] - small["peak_rss_mb"]
    print(f"  growth from {small['events'] / 1e6:.1f}M to {big['events'] / 1e6:.1f}M events: {growth:+.1f} MB  "
          f"target <= +{FLAT_MB:.0f} MB (flat)  {'OK' if growth <= FLAT_MB else 'NOT FLAT'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
