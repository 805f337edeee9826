"""Binance raw recordings: sync rule, gaps, validation, trade sides, COIN-M sizes.

Each test writes a small copy of the real BTCUSDT recording's first lines (the REST
snapshot is line 55), modified where the test says so.
"""

from __future__ import annotations

import gzip
import re
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from perpbot.core.book import OrderBook
from perpbot.core.errors import DataError
from perpbot.core.model import BookDelta, BookSnapshot, FeedStatus, Quote, Side, Trade
from perpbot.exchanges.replay.binance import BinanceRecording
from perpbot.exchanges.replay.samples import binance_l2_files
from tests.shared_data import absent_reason, shared_root

SNAPSHOT_LINE = 55
COINM = shared_root() / "tick_l2" / "hftbacktest_binance" / "binance_coinm"


def real_lines(n: int, path: Path | None = None) -> list[str]:
    out = []
    with gzip.open(path or binance_l2_files()[0], "rt") as f:
        for line in f:
            out.append(line.rstrip("\n"))
            if len(out) == n:
                break
    return out


def write(tmp_path: Path, lines: list[str], name: str = "btcusdt_20240808.gz") -> Path:
    p = tmp_path / name
    data = ("\n".join(lines) + "\n").encode()
    p.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return p


def read(path: Path, on_gap: str = "error", select=lambda s: s[:3] + "-USD"):
    r = BinanceRecording(path, select, on_gap)
    return r, [(ts, b) for ts, b in r.events()]


def depth_lines_after_snapshot(lines):
    return [i for i, ln in enumerate(lines) if i >= SNAPSHOT_LINE and '"depthUpdate"' in ln]


def test_small_real_copy_syncs_and_rebuilds(tmp_path):
    lines = real_lines(400)
    r, batches = read(write(tmp_path, lines))
    events = [e for _, b in batches for e in b]
    assert type(events[0]) is FeedStatus and events[0].reason == "waiting for book snapshot"
    kinds = [type(e) for e in events]
    snap = kinds.index(BookSnapshot)
    assert kinds.index(BookDelta) > snap  # no diff is emitted before the snapshot
    healthy = [e for e in events if type(e) is FeedStatus and e.healthy]
    assert len(healthy) == 1
    assert r.stats["snapshots"] == 1 and r.stats["gaps"] == 0
    assert r.book_update_id("BTCUSDT") is not None


def test_gap_is_an_error_naming_file_line_and_ids(tmp_path):
    lines = real_lines(400)
    i = depth_lines_after_snapshot(lines)[2]
    pu = int(re.search(r'"pu":(\d+)', lines[i]).group(1))
    lines[i] = lines[i].replace(f'"pu":{pu}', f'"pu":{pu - 7}')
    path = write(tmp_path, lines)
    with pytest.raises(DataError) as exc:
        read(path)
    msg = str(exc.value)
    assert f"{path}:{i + 1}:" in msg
    assert f"pu={pu - 7}" in msg and f"previous update ended at u={pu}" in msg
    assert "\n" not in msg


def test_gap_with_resync_marks_the_market_unhealthy_until_a_snapshot(tmp_path):
    lines = real_lines(400)
    depth = depth_lines_after_snapshot(lines)
    i = depth[2]
    pu = int(re.search(r'"pu":(\d+)', lines[i]).group(1))
    lines[i] = lines[i].replace(f'"pu":{pu}', f'"pu":{pu - 7}')
    # a later snapshot line whose lastUpdateId the next diff covers (the real snapshot with its id
    # moved: this checks the state machine, not book contents)
    j = depth[5]
    d = orjson.loads(lines[j].split(" ", 1)[1])["data"]
    snap_ts = int(lines[j].split(" ", 1)[0]) - 1
    snap = orjson.loads(lines[SNAPSHOT_LINE - 1].split(" ", 1)[1])
    snap["lastUpdateId"] = d["U"]
    lines.insert(j, f"{snap_ts} {orjson.dumps(snap).decode()}")
    r, batches = read(write(tmp_path, lines), on_gap="resync")
    events = [e for _, b in batches for e in b]
    statuses = [e for e in events if type(e) is FeedStatus]
    assert [s.healthy for s in statuses] == [False, True, False, True]
    assert "book gap at line" in statuses[2].reason and "waiting for book snapshot" in statuses[2].reason
    gap_at = events.index(statuses[2])
    resynced_at = events.index(statuses[3])
    between = events[gap_at:resynced_at]
    assert not any(type(e) is BookDelta for e in between)  # nothing applied while unsynced...
    assert type(between[-1]) is BookSnapshot  # ...until the new snapshot
    assert any(type(e) is BookDelta for e in events[resynced_at:])  # then diffs flow again
    assert r.stats["gaps"] == 1 and r.stats["snapshots"] == 2
    assert r.stats["dropped_messages"] > 0  # buffered diffs older than the new snapshot


def test_snapshot_older_than_every_later_diff_is_a_gap(tmp_path):
    lines = real_lines(400)
    snap = orjson.loads(lines[SNAPSHOT_LINE - 1].split(" ", 1)[1])
    snap["lastUpdateId"] -= 10_000_000  # older than the buffered diffs: updates in between are missing
    lines[SNAPSHOT_LINE - 1] = lines[SNAPSHOT_LINE - 1].split(" ", 1)[0] + " " + orjson.dumps(snap).decode()
    with pytest.raises(DataError, match=r"starts after the snapshot's lastUpdateId"):
        read(write(tmp_path, lines))


def test_malformed_json_names_file_and_line(tmp_path):
    lines = real_lines(80)
    lines[59] = lines[59][:-5]
    path = write(tmp_path, lines)
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}:60: malformed JSON"):
        read(path)


def test_line_without_receive_time(tmp_path):
    lines = real_lines(80)
    lines[10] = lines[10].split(" ", 1)[1]
    with pytest.raises(DataError, match=r":11: expected '<receive_ns> <json>'"):
        read(write(tmp_path, lines))


def test_receive_time_going_backwards(tmp_path):
    lines = real_lines(80)
    lines[20] = "1000 " + lines[20].split(" ", 1)[1]
    with pytest.raises(DataError, match=r":21: receive time 1000 is earlier"):
        read(write(tmp_path, lines))


@pytest.mark.parametrize("bad", ["-61800.00", "NaN", "Infinity", "0.00", "1e999999999", "abc"])
def test_bad_depth_price(tmp_path, bad):
    lines = real_lines(120)
    i = depth_lines_after_snapshot(lines)[0]
    lines[i] = re.sub(r'"b":\[\["[0-9.]+"', f'"b":[["{bad}"', lines[i], count=1)
    path = write(tmp_path, lines)
    with pytest.raises(DataError) as exc:
        read(path)
    assert f"{path}:{i + 1}: price '{bad}'" in str(exc.value)


def test_bad_value_in_buffered_diff_is_not_skipped(tmp_path):
    lines = real_lines(120)
    lines[0] = re.sub(r'"b":\[\["[0-9.]+"', '"b":[["NaN"', lines[0], count=1)  # before the snapshot
    with pytest.raises(DataError, match=r":1: price 'NaN'"):
        read(write(tmp_path, lines))


def test_negative_size_is_bad_but_zero_is_a_delete(tmp_path):
    lines = real_lines(120)
    i = depth_lines_after_snapshot(lines)[0]
    lines[i] = re.sub(r'"b":\[\["([0-9.]+)","[0-9.]+"', r'"b":[["\1","-0.010"', lines[i], count=1)
    with pytest.raises(DataError, match=r"size '-0.010' must be finite and not negative"):
        read(write(tmp_path, lines))


def test_bad_quote_and_trade_prices(tmp_path):
    lines = real_lines(80)
    q = next(i for i, ln in enumerate(lines) if '"bookTicker"' in ln)
    bad_q = list(lines)
    bad_q[q] = re.sub(r'"b":"[0-9.]+"', '"b":"0"', bad_q[q])
    with pytest.raises(DataError, match=rf":{q + 1}: price '0' must be finite and positive"):
        read(write(tmp_path, bad_q))
    t = next(i for i, ln in enumerate(lines) if '"e":"trade"' in ln)
    bad_t = list(lines)
    bad_t[t] = re.sub(r'"p":"[0-9.]+"', '"p":"-1"', bad_t[t])
    with pytest.raises(DataError, match=rf":{t + 1}: price '-1'"):
        read(write(tmp_path, bad_t))
    bad_t[t] = re.sub(r'"p":"-1"', '"p":"61800.30"', bad_t[t]).replace('"q":"0.006"', '"q":"0.000"')
    with pytest.raises(DataError, match="trade size '0.000' must be positive"):
        read(write(tmp_path, bad_t))


def test_missing_field_and_wrong_shape(tmp_path):
    lines = real_lines(80)
    i = next(i for i, ln in enumerate(lines) if '"e":"trade"' in ln)
    lines[i] = lines[i].replace('"m":false', '"mm":false').replace('"m":true', '"mm":true')
    with pytest.raises(DataError, match=rf":{i + 1}: missing field 'm' in trade"):
        read(write(tmp_path, lines))
    lines = real_lines(80)
    lines[5] = lines[5].split(" ", 1)[0] + " [1, 2]"
    with pytest.raises(DataError, match=r":6: malformed message"):
        read(write(tmp_path, lines))


def test_taker_side_from_the_maker_flag(tmp_path):
    lines = real_lines(80)
    t = next(i for i, ln in enumerate(lines) if '"e":"trade"' in ln)
    assert '"m":false' in lines[t]  # the real first trade: buyer is not the maker -> taker BUY
    agg = lines[t].replace('"e":"trade"', '"e":"aggTrade"').replace('"t":', '"a":').replace('"m":false', '"m":true')
    lines.insert(t + 1, agg)
    _, batches = read(write(tmp_path, lines))
    trades = [e for _, b in batches for e in b if type(e) is Trade]
    assert trades[0].side is Side.BUY and trades[0].price == Decimal("61800.30") and trades[0].size == Decimal("0.006")
    assert trades[1].side is Side.SELL and trades[1].trade_id == trades[0].trade_id  # aggTrade id from "a"


def test_quotes_are_the_venue_bbo(tmp_path):
    lines = real_lines(3)
    _, batches = read(write(tmp_path, lines))
    q = [e for _, b in batches for e in b if type(e) is Quote][0]
    assert (q.bid, q.bid_size, q.ask, q.ask_size) == (
        Decimal("61800.20"), Decimal("2.507"), Decimal("61800.30"), Decimal("2.510"),
    )
    assert q.ts_ns == int(lines[1].split(" ", 1)[0])  # receive clock, not the venue's E/T


def test_unknown_message_types_are_counted(tmp_path):
    lines = real_lines(10)
    lines.insert(3, lines[3].split(" ", 1)[0] + ' {"stream":"btcusdt@markPrice","data":{"e":"markPriceUpdate","s":"BTCUSDT"}}')
    r, _ = read(write(tmp_path, lines))
    assert r.stats["ignored"] == 1


def test_plain_text_recording(tmp_path):
    r, batches = read(write(tmp_path, real_lines(100), name="btcusdt_20240808.txt"))
    assert r.stats["snapshots"] == 1 and batches


def test_truncated_gzip_is_reported(tmp_path):
    data = gzip.compress(("\n".join(real_lines(300)) + "\n").encode())
    p = tmp_path / "cut.gz"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="gzip stream ends early"):
        read(p)


@pytest.mark.skipif(not COINM.is_dir(), reason=f"COIN-M recording not available ({absent_reason()})")
def test_coinm_sizes_are_converted_to_base_units(tmp_path):
    src = COINM / "btcusd_perp_20240808.gz"
    lines = real_lines(3000, src)
    path = write(tmp_path, lines, "btcusd_perp_20240808.gz")
    _, batches = read(path)
    raw_q = next(orjson.loads(ln.split(" ", 1)[1])["data"] for ln in lines if '"bookTicker"' in ln)
    q = next(e for _, b in batches for e in b if type(e) is Quote)
    assert q.bid_size == Decimal(raw_q["B"]) * 100 / Decimal(raw_q["b"])  # 100 USD per BTCUSD contract
    # the rebuilt book, in base units, matches the venue's BBO converted the same way
    quotes = sorted(
        ((d["u"], d) for d in (orjson.loads(ln.split(" ", 1)[1])["data"] for ln in lines if '"bookTicker"' in ln)),
        key=lambda x: x[0],
    )
    book = None
    checked = 0
    r = BinanceRecording(path, lambda s: "BTC-USD")
    for _, batch in r.events():  # lazily: the reader's update id is the book's at this batch
        for e in batch:
            if type(e) is BookSnapshot:
                book = OrderBook(e.ticker)
                book.apply_snapshot(e.bids, e.asks)
            elif type(e) is BookDelta:
                book.apply_delta(e.bids, e.asks)
        u = r.book_update_id("BTCUSD_PERP")
        if u is None or not any(type(e) is BookDelta for e in batch):
            continue
        prior = [d for qu, d in quotes if qu <= u]
        if not prior:
            continue
        d = prior[-1]
        assert book.best_bid()[0] == Decimal(d["b"]) and book.best_ask()[0] == Decimal(d["a"])
        assert book.best_bid()[1] == Decimal(d["B"]) * 100 / Decimal(d["b"])
        checked += 1
    assert checked > 100
