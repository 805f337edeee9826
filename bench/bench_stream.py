"""Benchmark: how much earlier the full-node stream knows the book (and the trades) than the indexer.

Run ``python bench/bench_stream.py`` from the repository root.

- **lead on the fakes** (always): the real ``dydx`` feed (:class:`perpbot.exchanges.dydx.feed.DydxFeed`
  with ``stream``: grpc.aio client, :class:`~perpbot.exchanges.dydx.stream.StreamBooks`, the indexer
  WebSocket client and parser) against the loopback node stream (tests/fakes/dydx_stream.py)
  and the loopback indexer (tests/fakes/indexer), the indexer following the node's book as
  the real one follows its own node (every level change applied to its book at once, then
  published in its WebSocket batches). The book's top changes ``CHANGES`` times (a better
  bid appears, then goes), each change held for one to two batch intervals (+30-70 ms) so the
  indexer shows every one of them; the feed's cross-check
  (:class:`~perpbot.exchanges.dydx.stream.CrossCheck`) times each indexer top against the
  moment the stream had it. Figures: median and p90 lead, ms, with the indexer's batch flush
  at socks' 250 ms (v4-chain ``indexer/services/socks``; the fake's default) and at 10 ms
  (transport alone). A real indexer adds its Kafka -> vulcan -> Redis path, which no
  recording here captures, so the real lead is larger.
- **trade lead on the recording** (with the shared data folder): in the recorded mainnet stream
  (``dydx_v4/fullnode_grpc_stream/feed_from_t0``, AGPL, read in place), the time from a match's
  first optimistic message (exec mode 0, the node matched it) to its confirmation in
  ``execModeFinalize`` (7). The indexer publishes trades only for committed blocks, so this is
  a lower bound of the stream's lead on trades.
- **book engine**: the same recording applied to :class:`~perpbot.exchanges.dydx.stream.StreamBooks`
  (protos already decoded): order messages per second. No target (architecture.md names none).

There is no speed target for the lead; the figures are printed for the README and the
closing note.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHANGES = 60
RECORDING = ("dydx_v4", "fullnode_grpc_stream", "feed_from_t0.jsonl.gz")


async def _lead_on_fakes(batch_interval: float, changes: int = CHANGES) -> dict:
    """The cross-check's lead statistics after ``changes`` top-of-book changes, each held longer
    than one indexer batch so the indexer shows every one of them."""
    import attrs

    from perpbot.core.clock import LiveClock
    from perpbot.exchanges.dydx.feed import DydxFeed
    from tests.fakes import FakeIndexer
    from tests.fakes.dydx_stream import FakeNodeStream

    @attrs.define
    class Ctx:
        clock: object
        tickers: tuple
        markets: dict = attrs.Factory(dict)
        options: dict = attrs.Factory(dict)

    async with FakeIndexer(batch_interval=batch_interval, use_shared_data=False) as ix:
        t = "BTC-USD"
        fk = FakeNodeStream(ix.markets, mirror=ix.apply_orderbook)
        book = ix.books[t]
        fk.seed(t, book.sorted_levels("bids"), book.sorted_levels("asks"))
        fk.mirror = None
        async with fk:
            fk.mirror = ix.apply_orderbook
            cfg = {"network": "custom", "indexer_rest": ix.rest_url, "indexer_ws": ix.ws_url, "stream": fk.url,
                   "retry_base_s": 0.05, "retry_max_s": 0.2, "resync_interval_s": 3600}
            feed = DydxFeed(cfg, Ctx(LiveClock(), (t,)))
            await feed.start()
            consumer = asyncio.create_task(_drain(feed))
            try:
                deadline = time.monotonic() + 20
                while t not in feed.stream.active or not feed.parser.books[t].healthy:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the feed never got both books")
                    await asyncio.sleep(0.02)
                tick = book.best_ask() - book.best_bid()
                better = book.best_bid() + tick / 2 if tick > 1 else None
                if better is None:
                    raise RuntimeError("the fake book's spread is one tick")
                await asyncio.sleep(batch_interval + 0.2)
                feed.stream.crosscheck.leads_ns.clear()  # only the changes made below
                rng = random.Random(7)
                key = None
                for _ in range(changes):
                    if key is None:
                        key = fk.place(t, "BUY", better, "0.01")
                    else:
                        fk.remove(key)
                        key = None
                    await asyncio.sleep(batch_interval + rng.uniform(0.03, 0.07) + rng.uniform(0, batch_interval))
                await asyncio.sleep(batch_interval + 0.5)
                cc = feed.stream.crosscheck
                return cc.stats() | {"leads_ms": [x / 1e6 for x in cc.leads_ns], "changes": changes}
            finally:
                await feed.stop()
                consumer.cancel()
                await asyncio.gather(consumer, return_exceptions=True)


async def _drain(feed) -> None:
    async for _ in feed.batches():
        pass


def _recording():
    from tests import shared_data

    root = shared_data.shared_data_dir()
    if root is None:
        return None, shared_data.absent_reason()
    path = root.joinpath(*RECORDING)
    if not path.exists():
        return None, f"{path} absent"
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f], ""


def trade_lead(rows: list) -> dict:
    """Optimistic-to-finalized delay of each match in the recording, ms."""
    first: dict = {}
    leads, unseen = [], 0
    for row in rows:
        for u in row["msg"]["updates"]:
            fill = u.get("order_fill")
            mo = fill and fill["clob_match"].get("match_orders")
            if not mo:
                continue
            tk = mo["taker_order_id"]
            key = (tk["subaccount_id"]["owner"], tk["client_id"],
                   tuple((f["maker_order_id"]["subaccount_id"]["owner"], f["maker_order_id"]["client_id"],
                          f["fill_amount"]) for f in mo["fills"]))
            if u.get("exec_mode") == 7:
                if key in first:
                    leads.append(row["recv_ts_ms"] - first[key])
                else:
                    unseen += 1
            else:
                first.setdefault(key, row["recv_ts_ms"])
    return {"matches": len(leads) + unseen, "with_optimistic": len(leads), "leads_ms": sorted(leads)}


def engine_rate(rows: list) -> dict:
    """Order messages per second through StreamBooks (decoded protos; median of 3)."""
    from google.protobuf import json_format
    from v4_proto.dydxprotocol.clob.query_pb2 import StreamOrderbookUpdatesResponse

    from perpbot.core.model import Market
    from perpbot.exchanges.dydx.stream import StreamBooks

    msgs = [json_format.ParseDict(r["msg"], StreamOrderbookUpdatesResponse()) for r in rows]
    n = sum(len(u.orderbook_update.updates) if u.WhichOneof("update_message") == "orderbook_update" else 1
            for m in msgs for u in m.updates)
    markets = {"BTC-USD": Market("BTC-USD", 0, tick_size="1", step_size="0.0001"),
               "ETH-USD": Market("ETH-USD", 1, tick_size="0.1", step_size="0.001", atomic_resolution=-9)}
    times = []
    for _ in range(3):
        sb = StreamBooks(markets)
        t0 = time.perf_counter()
        for i, m in enumerate(msgs):
            sb.on_response(m, i)
        times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    return {"messages": n, "seconds": s, "per_s": n / s}


def _q(xs: list, p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


def run() -> dict:
    """Every figure as a dict (``fakes_250ms``, ``fakes_10ms``, ``trades``, ``engine``)."""
    out = {"fakes_250ms": asyncio.run(_lead_on_fakes(0.25)), "fakes_10ms": asyncio.run(_lead_on_fakes(0.01))}
    rows, why = _recording()
    out["recording_absent"] = why
    if rows is not None:
        out["trades"] = trade_lead(rows)
        out["engine"] = engine_rate(rows)
    return out


def main() -> int:
    from loguru import logger

    logger.remove()
    r = run()
    for key, label in (("fakes_250ms", "indexer batches every 250 ms (socks)"),
                       ("fakes_10ms", "indexer batches every 10 ms (transport alone)")):
        f = r[key]
        leads = f["leads_ms"]
        print(f"book lead of the node stream over the indexer on the loopback fakes, {label}: "
              f"median {statistics.median(leads):.0f} ms, p90 {_q(leads, 0.9):.0f} ms, "
              f"min {min(leads):.0f} ms over {len(leads)} indexer top-of-book changes ({f['changes']} made) "
              f"({f['disagreements']} disagreement(s)); no target")
    if "trades" in r:
        t = r["trades"]
        leads = t["leads_ms"]
        print(f"trade lead on the recorded mainnet stream (optimistic match -> finalized): median "
              f"{statistics.median(leads):.0f} ms, min {min(leads)} ms, max {max(leads)} ms over "
              f"{t['with_optimistic']} of {t['matches']} confirmed matches (the rest this node never saw "
              f"before the block); the indexer publishes trades only after the block: a lower bound; no target")
        e = r["engine"]
        print(f"stream book engine (StreamBooks, recorded mainnet stream): {e['messages']:,} order messages, "
              f"median {e['seconds']:.3f} s of 3 -> {e['per_s']:,.0f} messages/s; no target")
    else:
        print(f"recorded full-node stream: skipped ({r['recording_absent']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
