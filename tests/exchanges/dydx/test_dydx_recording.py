"""Recorder and RecordingReader: record the live stream from the fake indexer, replay it through
the same parser, get the same events and the same books; rotation, truncation, bad lines; the
``record`` command."""

from __future__ import annotations

import asyncio
import gzip
import random
import shutil
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from perpbot.core.book import OrderBook
from perpbot.core.errors import DataError
from perpbot.core.model import BookDelta, BookSnapshot, FeedStatus, Trade
from perpbot.exchanges.dydx.parser import LIVE
from perpbot.exchanges.dydx.recording import Recorder, RecordingReader, is_dydx_recording, iter_recording, recording_parts
from tests.exchanges.dydx.conftest import wait_until

D = Decimal
TICKERS = ("BTC-USD", "ETH-USD")


def books_of(events):
    books = {}
    for e in events:
        if isinstance(e, BookSnapshot):
            books.setdefault(e.ticker, OrderBook(e.ticker)).apply_snapshot(e.bids, e.asks)
        elif isinstance(e, BookDelta):
            books.setdefault(e.ticker, OrderBook(e.ticker)).apply_delta(e.bids, e.asks)
    return {t: (b.levels("bid"), b.levels("ask")) for t, b in books.items()}


async def replay(path, tickers=TICKERS, markets=None):
    reader = RecordingReader(path, tickers, markets)
    out = []
    async for batch in reader.batches():
        out.extend(batch)
    return reader, out


def live(feed):
    return all(feed.book_states()[t][0] == LIVE for t in TICKERS) and feed.counters["queued"] == feed.counters["batches"]


async def record_session(indexer, make_feed, path, min_resyncs=1, min_parts=1, **over):
    """A live session with data, a crossed book (REST resync), a periodic resync and a drop."""
    feed, col = await make_feed(indexer, record=str(path), **over)
    await wait_until(lambda: live(feed), what="books live")
    for i in range(5):
        await indexer.push_orderbook("BTC-USD", bids=[(str(89000 + i), "0.5")], asks=[(str(91000 + i), "0.25")])
        await indexer.push_trades("ETH-USD", [{"side": "BUY", "size": "0.1", "price": str(3400 + i)}])
    await indexer.push_crossed_book("ETH-USD")
    await wait_until(lambda: feed.parser.stats["resyncs"] >= 1 and live(feed), what="resync")
    await indexer.drop_all_connections()
    await wait_until(lambda: feed.conn.stats["connects"] >= 2 and live(feed), what="reconnect")
    await indexer.push_orderbook("ETH-USD", asks=[("3500.5", "2")])
    await indexer.push_market("BTC-USD", oracle_price="90001")
    await wait_until(lambda: feed.parser.stats["messages"] > 20 and feed.parser.stats["resyncs"] >= min_resyncs
                     and live(feed), what="more data")
    if min_parts > 1:
        await pad_until_rotated(indexer, feed, min_parts)
    await asyncio.sleep(0.1)
    await col.close()
    return feed, col


async def pad_until_rotated(indexer, feed, min_parts, max_messages=500):
    """Stream deep book levels (never crossing) until the recording has ``min_parts`` parts.

    The session's own volume depends on the fakes' dataset (the shared data's 100x100 book
    rotates a 4 KB part at once, the built-in 10x10 one does not), so a rotation test makes
    its own: ~40 levels of varied sizes per message, then one more message so the last
    part holds data too.
    """
    rnd = random.Random(9)
    book = indexer.book("BTC-USD")
    tick = D(indexer.markets["BTC-USD"]["tickSize"])
    step = D(indexer.markets["BTC-USD"]["stepSize"])
    prices = [*book.bids, *book.asks]
    bid0, ask0 = min(prices) - 1000 * tick, max(prices) + 1000 * tick  # below / above every level
    sent = 0
    while len(feed.recorder.parts) < min_parts:
        assert sent < max_messages, f"no rotation after {sent} padding messages"
        k = 20 * sent
        lines = feed.recorder.lines
        await indexer.push_orderbook(
            "BTC-USD",
            bids=[(bid0 - (k + i) * tick, step * rnd.randint(1, 10**6)) for i in range(20)],
            asks=[(ask0 + (k + i) * tick, step * rnd.randint(1, 10**6)) for i in range(20)])
        await indexer.flush()
        await wait_until(lambda: feed.recorder.lines > lines and live(feed), what="padding recorded")
        sent += 1
    lines = feed.recorder.lines
    await indexer.push_trades("ETH-USD", [{"side": "SELL", "size": "0.1", "price": "3399"}])
    await indexer.flush()
    await wait_until(lambda: feed.recorder.lines > lines and live(feed), what="last message recorded")


async def test_record_then_replay_gives_the_same_events_and_books(indexer, make_feed, tmp_path):
    path = tmp_path / "rec.jsonl.gz"
    feed, col = await record_session(indexer, make_feed, path, min_resyncs=2, resync_interval_s=0.3)
    assert path.exists() and feed.recorder.closed and feed.recorder.lines > 20
    assert is_dydx_recording(path)
    reader, events = await replay(path)
    assert events == col.events  # the same parser: identical events, identical timestamps
    assert books_of(events) == books_of(col.events)
    assert {t: (b.book.levels("bid"), b.book.levels("ask")) for t, b in reader.parser.books.items()} == \
        {t: (b.book.levels("bid"), b.book.levels("ask")) for t, b in feed.parser.books.items()}
    assert reader.parser.stats["crossed"] == feed.parser.stats["crossed"] >= 1
    assert reader.parser.stats["resyncs"] == feed.parser.stats["resyncs"] >= 2  # crossed + periodic
    assert reader.parser.stats["disconnects"] == 1
    assert any(isinstance(e, Trade) for e in events)
    # every raw frame is kept byte for byte, with its receive time
    lines = [orjson.loads(x) for x in gzip.open(path).read().splitlines()]
    assert all(isinstance(x["recv_ns"], int) for x in lines)
    kinds = {x["msg"].get("type") for x in lines}
    assert {"connected", "subscribed", "channel_batch_data", "perpbot_rest", "perpbot_disconnected"} <= kinds
    assert [x["recv_ns"] for x in lines] == sorted(x["recv_ns"] for x in lines)
    assert reader.progress()[0] == reader.progress()[1] > 0


async def test_rotation_by_size_and_reading_all_parts(indexer, make_feed, tmp_path):
    path = tmp_path / "rot.jsonl.gz"
    feed, col = await record_session(indexer, make_feed, path, min_parts=3, record_max_bytes=4096)
    parts = recording_parts(path)
    assert len(parts) >= 2 and parts[1].name == "rot.0001.jsonl.gz"
    assert all(p.stat().st_size < 4096 + 70_000 for p in parts)  # a part closes once it passed the limit
    _, events = await replay(path)
    assert events == col.events


def test_truncated_part_is_read_to_its_last_complete_line(tmp_path):
    path = tmp_path / "t.jsonl.gz"
    rec = Recorder(path)
    for i in range(50):
        rec.write({"type": "channel_data", "channel": "v4_trades", "id": "BTC-USD",
                   "contents": {"trades": [{"id": str(i), "side": "BUY", "size": "1", "price": "10"}]}}, i)
    rec.flush()  # a crash now: no gzip trailer
    data = path.read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) - 3])
    got = list(iter_recording(cut))
    assert 0 < len(got) <= 50 and [g[0] for g in got] == list(range(len(got)))
    rec.close()
    assert len(list(iter_recording(path))) == 50


def test_bad_lines_are_data_errors_naming_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b'{"recv_ns": 1, "msg": {"type": "connected"}}\n')
        fh.write(b"this is not json\n")
    with pytest.raises(DataError) as err:
        list(iter_recording(path))
    assert f"recording {path}, line 2" in str(err.value)
    with pytest.raises(DataError, match="not found"):
        RecordingReader(tmp_path / "missing.jsonl.gz", TICKERS)
    plain = tmp_path / "plain.jsonl.gz"
    plain.write_text("not gzip")
    with pytest.raises(DataError, match="not a gzip file"):
        list(iter_recording(plain))
    assert not is_dydx_recording(plain)


async def test_malformed_frames_are_recorded_and_replayed_as_such(indexer, make_feed, tmp_path):
    path = tmp_path / "m.jsonl.gz"
    feed, col = await make_feed(indexer, record=str(path))
    await wait_until(lambda: live(feed), what="live")
    await indexer.send_malformed()
    await wait_until(lambda: feed.parser.stats["malformed"] == 1, what="malformed counted")
    await col.close()
    raws = [x for x in (orjson.loads(l) for l in gzip.open(path).read().splitlines()) if "raw" in x]
    assert len(raws) == 1 and raws[0]["raw"].startswith('{"type":"channel_data"')
    reader, events = await replay(path)
    assert reader.parser.stats["malformed"] == 1 and events == col.events


def test_replay_feed_sniffs_and_plays_a_recording(tmp_path):
    """The replay feed (another plugin) hands our files to RecordingReader."""
    path = tmp_path / "r.jsonl.gz"
    rec = Recorder(path)
    rec.write_raw(b'{"type":"subscribed","channel":"v4_orderbook","id":"BTC-USD","message_id":1,'
                  b'"contents":{"bids":[{"price":"100","size":"1"}],"asks":[{"price":"101","size":"2"}]}}', 10)
    rec.write_raw(b'{"type":"channel_data","channel":"v4_orderbook","id":"BTC-USD","message_id":2,'
                  b'"contents":{"asks":[["101","0"],["102","3"]]}}', 20)
    rec.close()
    from perpbot.exchanges.replay import dydx as dydx_fmt

    head = gzip.open(path).read(200)
    assert dydx_fmt.looks_like(head)
    reader, events = asyncio.run(replay(path, ("BTC-USD",)))
    assert books_of(events)["BTC-USD"] == ([(D("100"), D("1"))], [(D("102"), D("3"))])
    assert [e.healthy for e in events if isinstance(e, FeedStatus)] == [False, True]


# ---------------------------------------------------------------- the record command


def test_record_command_against_the_fake(tmp_path):
    import typer
    from typer.testing import CliRunner

    from perpbot.exchanges.dydx.cli import register
    from tests.fakes import FakeIndexer

    app = typer.Typer()
    register(app)

    @app.callback()
    def _root():
        """root"""

    ix = FakeIndexer(batch_interval=0.02).start_in_thread()
    try:
        out = tmp_path / "cli.jsonl.gz"
        args = ["record", "--ticker", "btc,ETH", "--out", str(out), "--network", "custom",
                "--indexer-rest", ix.rest_url, "--indexer-ws", ix.ws_url, "--duration", "0.8"]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        assert "recorded" in res.output and str(out) in res.output
        lines = [orjson.loads(x) for x in gzip.open(out).read().splitlines()]
        subs = {(x["msg"].get("channel"), x["msg"].get("id")) for x in lines if x["msg"].get("type") == "subscribed"}
        assert ("v4_orderbook", "BTC-USD") in subs and ("v4_orderbook", "ETH-USD") in subs
        # errors are one line with a non-zero exit code
        again = CliRunner().invoke(app, args)
        assert again.exit_code == 2 and again.output.strip().count("\n") == 0 and "exists" in again.output
        bad = CliRunner().invoke(app, ["record", "--ticker", "BTC", "--out", str(tmp_path / "x.gz"),
                                       "--network", "custom"])
        assert bad.exit_code == 2 and "dydx.indexer_rest" in bad.output
    finally:
        ix.stop_thread()
