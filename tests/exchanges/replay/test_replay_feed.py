"""The replay feed: plugin registration, config, tickers and markets, merging, pacing, dYdX delegation."""

from __future__ import annotations

import asyncio
import gzip
import sys
import types
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

from perpbot.core.errors import ConfigError, DataError
from perpbot.core.model import BookDelta, FeedStatus, MarketInfo, Quote, Trade
from perpbot.core.plugins import PluginManager
from perpbot.exchanges.replay import samples
from perpbot.exchanges.replay.feed import ReplayFeed, merge_sorted, sniff
from perpbot.exchanges.replay.markets import load_markets
from perpbot.exchanges.replay.symbols import SymbolMapper, normalize_ticker
from tests.shared_data import absent_reason, shared_root


def ctx(*tickers):
    return SimpleNamespace(tickers=tuple(tickers))


def head_copy(tmp_path: Path, src: Path, n: int, name: str | None = None) -> Path:
    out = []
    with gzip.open(src, "rt") as f:
        for line in f:
            out.append(line)
            if len(out) == n:
                break
    p = tmp_path / (name or src.name)
    p.write_bytes(gzip.compress("".join(out).encode()))
    return p


@pytest.fixture
def small_pair(tmp_path):
    """The first 300 lines of each real recording (both snapshots included)."""
    btc, eth = samples.binance_l2_files()
    return [head_copy(tmp_path, btc, 300), head_copy(tmp_path, eth, 300)]


async def collect(feed):
    return [b async for b in feed.batches()]


def test_registered_through_the_plugin_hook():
    pm = PluginManager(load_entry_points=False, default_plugins=("perpbot.exchanges.replay",))
    cls = pm.registry.get("feeds", "replay")
    assert cls is ReplayFeed and cls.replay is True
    row = next(r for r in pm.listing() if r["name"] == "perpbot.exchanges.replay")
    assert "feed:replay" in row["registers"]


def test_default_files_are_the_embedded_sample():
    feed = ReplayFeed({}, ctx())
    assert feed.files == samples.binance_l2_files()
    assert feed.tickers == ["BTC-USD", "ETH-USD"]
    assert [k for _, k in feed.kinds] == ["binance", "binance"]


def test_markets_come_from_real_dydx_metadata():
    m = ReplayFeed({}, ctx("BTC-USD", "ETH")).markets()
    btc, eth = m["BTC-USD"], m["ETH-USD"]
    assert (btc.initial_margin_fraction, btc.maintenance_margin_fraction) == (Decimal("0.02"), Decimal("0.012"))
    assert (eth.initial_margin_fraction, eth.maintenance_margin_fraction) == (Decimal("0.02"), Decimal("0.012"))
    assert btc.tick_size == Decimal("1") and btc.step_size == Decimal("0.0001") and btc.atomic_resolution == -10
    assert eth.tick_size == Decimal("0.1") and eth.step_size == Decimal("0.001")
    assert btc.oracle_price is None  # a replay takes prices from its data, not from the metadata's capture day
    others = load_markets(["SOL-USD", "DOGE-USD", "LINK-USD", "AVAX-USD"])
    assert others["SOL-USD"].open_interest_upper_cap == Decimal("100000000")
    assert others["DOGE-USD"].step_size == Decimal("100")


def test_unknown_ticker():
    with pytest.raises(ConfigError) as exc:
        ReplayFeed({}, ctx("XYZ-USD"))
    assert str(exc.value) == (
        "unknown ticker 'XYZ-USD' (known: AVAX-USD, BTC-USD, DOGE-USD, ETH-USD, LINK-USD, SOL-USD)"
    )


def test_known_ticker_without_data():
    with pytest.raises(ConfigError, match=r"ticker 'SOL-USD' has no data in the replay files \(found: BTC-USD, ETH-USD\)"):
        ReplayFeed({}, ctx("SOL"))


@pytest.mark.parametrize(
    "config, message",
    [
        ({"on_gap": "ignore"}, "on_gap: expected 'error' or 'resync'"),
        ({"speed": "-1"}, "speed: must be >= 0"),
        ({"spede": "1"}, "unknown parameter 'spede'"),
        ({"bar_timestamp": "middle"}, "bar_timestamp"),
        ({"symbol_map": "BTCUSDT"}, "expected SYMBOL=TICKER pairs"),
        ({"venue_files": ["x"]}, "venue_files"),
    ],
)
def test_bad_config(config, message):
    with pytest.raises(ConfigError, match=message):
        ReplayFeed(config, ctx())


def test_missing_and_unrecognised_files(tmp_path):
    missing = tmp_path / "nope.gz"
    with pytest.raises(DataError, match=f"{missing}: file not found"):
        ReplayFeed({"files": [str(missing)]}, ctx())
    odd = tmp_path / "odd.txt"
    odd.write_text("hello world\n")
    with pytest.raises(DataError, match="unrecognised data format"):
        ReplayFeed({"files": [str(odd)]}, ctx())
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty file"):
        sniff(empty)


def test_sniffing(small_pair):
    assert sniff(small_pair[0]) == "binance"
    assert sniff(samples.bars_file()) == "bars"
    assert sniff(samples.funding_file()) == "funding"


async def test_market_info_first_then_time_ordered_batches(small_pair):
    feed = ReplayFeed({"files": [str(p) for p in small_pair]}, ctx("BTC-USD", "ETH-USD"))
    batches = await collect(feed)
    first = batches[0]
    assert [type(e) for e in first] == [MarketInfo, MarketInfo]
    assert {e.ticker: e.market.initial_margin_fraction for e in first} == {"BTC-USD": Decimal("0.02"), "ETH-USD": Decimal("0.02")}
    stamps = [b[0].ts_ns for b in batches[1:]]
    assert stamps == sorted(stamps)
    assert first[0].ts_ns == stamps[0]
    tickers = [b[0].ticker for b in batches[1:]]
    assert set(tickers) == {"BTC-USD", "ETH-USD"} and tickers != sorted(tickers)  # interleaved
    await feed.stop()


async def test_ticker_filter_and_symbol_map(small_pair):
    feed = ReplayFeed({"files": [str(p) for p in small_pair]}, ctx("ETH"))
    events = [e for b in await collect(feed) for e in b]
    assert {e.ticker for e in events} == {"ETH-USD"}
    assert feed.stats()["filtered_messages"] > 0
    mapped = ReplayFeed(
        {"files": [str(small_pair[0])], "symbol_map": {"btcusdt": "SOL-USD"}, "tickers": ["SOL"]}, ctx("BTC")
    )
    events = [e for b in await collect(mapped) for e in b]
    assert {e.ticker for e in events} == {"SOL-USD"}
    assert any(type(e) is BookDelta for e in events)


async def test_qualified_tickers_mirror_or_use_their_venue_files(small_pair):
    feed = ReplayFeed({"files": [str(small_pair[0])]}, ctx("BTC-USD", "binance:BTC-USD"))
    assert set(feed.markets()) == {"BTC-USD", "binance:BTC-USD"}
    assert feed.markets()["binance:BTC-USD"].ticker == "BTC-USD"
    events = [e for b in await collect(feed) for e in b]
    by = {t: [type(e) for e in events if e.ticker == t] for t in ("BTC-USD", "binance:BTC-USD")}
    assert by["BTC-USD"] == by["binance:BTC-USD"] and Trade in by["BTC-USD"]
    venue = ReplayFeed(
        {"files": [str(small_pair[1])], "venue_files": {"binance": [str(small_pair[0])]}},
        ctx("ETH-USD", "binance:BTC-USD"),
    )
    events = [e for b in await collect(venue) for e in b]
    assert {e.ticker for e in events} == {"ETH-USD", "binance:BTC-USD"}
    with pytest.raises(ConfigError, match="'binance:ETH-USD' has no data"):
        ReplayFeed({"files": [str(small_pair[1])], "venue_files": {"binance": [str(small_pair[0])]}}, ctx("binance:ETH"))


async def test_speed_paces_at_a_multiple_of_real_time(small_pair, monkeypatch):
    from perpbot.exchanges.replay import feed as feed_mod

    now = [1000.0]
    delays = []

    async def fake_sleep(seconds, result=None):  # advances a fake wall clock instead of waiting
        delays.append(seconds)
        now[0] += seconds

    feed = ReplayFeed({"files": [str(small_pair[0])], "speed": "2"}, ctx("BTC"))
    batches = []
    monkeypatch.setattr(feed_mod, "_monotonic", lambda: now[0])
    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    async for b in feed.batches():
        batches.append(b)
    monkeypatch.undo()
    span_s = (batches[-1][0].ts_ns - batches[1][0].ts_ns) / 1e9
    assert span_s > 0.5
    # at 2x real time the replay of the data's span takes half of it on the (fake) wall clock
    assert now[0] - 1000.0 == pytest.approx(span_s / 2, abs=0.001)
    assert len(delays) > 10 and all(d > 0 for d in delays)
    full = ReplayFeed({"files": [str(small_pair[0])]}, ctx("BTC"))
    delays.clear()
    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    async for _ in full.batches():
        pass
    monkeypatch.undo()
    assert all(d == 0 for d in delays)  # full speed only yields to the loop


def test_progress_and_stats_of_a_partial_read(small_pair):
    feed = ReplayFeed({"files": [str(p) for p in small_pair]}, ctx())
    assert feed.progress() == (0, 0)  # market time (ns): nothing replayed yet, so no span either
    end = feed.last_timestamp()
    first = None
    for ts, _ in feed.iter_batches():
        first = ts if first is None else first
    st = feed.stats()
    assert feed.progress() == (end - first, end - first)  # the whole span, to its last line
    assert st["messages"] == 600 and st["snapshots"] == 2
    assert st["events"] == st["level_entries"] + st["trades"] + st["quotes"]
    for key in ("messages", "level_entries", "deletes", "trades", "quotes", "snapshots", "gaps"):
        assert key in st


def test_merge_sorted_orders_by_time_then_source():
    a = iter([(1, ["a1"]), (5, ["a5"]), (5, ["a5b"]), (9, ["a9"])])
    b = iter([(2, ["b2"]), (5, ["b5"]), (6, ["b6"])])
    c = iter([])
    out = [x[1][0] for x in merge_sorted([a, b, c])]
    assert out == ["a1", "b2", "a5", "a5b", "b5", "b6", "a9"]


def test_symbol_mapping():
    m = SymbolMapper()
    assert m("BTCUSDT") == m("BTCUSD_PERP") == m("BTC/USDT") == m("binance:BTC/USDT") == m("BTC-USD") == "BTC-USD"
    assert m("ethusdt") == "ETH-USD" and m("ETHUSD_PERP") == "ETH-USD" and m("SOLUSDC") == "SOL-USD"
    assert SymbolMapper({"1000PEPEUSDT": "pepe"})("1000PEPEUSDT") == "PEPE-USD"
    assert normalize_ticker("btc") == "BTC-USD" and normalize_ticker("Binance:eth") == "binance:ETH-USD"
    with pytest.raises(ConfigError):
        normalize_ticker("BTC/USD!")
    with pytest.raises(ConfigError, match="add it to symbol_map"):
        m("???")


def dydx_recording(tmp_path: Path) -> Path:
    p = tmp_path / "dydx-record.jsonl.gz"
    line = '{"recv_ns": 1700000000000000000, "msg": {"type": "subscribed", "channel": "v4_trades", "id": "BTC-USD"}}\n'
    p.write_bytes(gzip.compress(line.encode()))
    return p


def test_dydx_recording_without_the_reader_module(tmp_path, monkeypatch):
    p = dydx_recording(tmp_path)
    assert sniff(p) == "dydx"
    monkeypatch.setitem(sys.modules, "perpbot.exchanges.dydx.recording", None)  # as if the dYdX plugin were absent
    feed = ReplayFeed({"files": [str(p)]}, ctx("BTC-USD"))
    with pytest.raises(ConfigError, match=rf"{p}: is a dYdX indexer recording, but .*perpbot.exchanges.dydx.recording"):
        list(feed.iter_batches())


async def test_dydx_recording_is_delegated_to_the_plugins_reader(tmp_path, monkeypatch):
    p = dydx_recording(tmp_path)
    calls = {}

    class RecordingReader:
        def __init__(self, path, tickers, markets):
            calls.update(path=path, tickers=tickers, markets=sorted(markets))

        async def batches(self):
            yield [Quote("BTC-USD", 5, Decimal(1), Decimal(1), Decimal(2), Decimal(1))]
            yield [FeedStatus("BTC-USD", 7, True, "")]

    fake = types.ModuleType("perpbot.exchanges.dydx.recording")
    fake.RecordingReader = RecordingReader
    monkeypatch.setitem(sys.modules, "perpbot.exchanges.dydx.recording", fake)
    feed = ReplayFeed({"files": [str(p)]}, ctx("BTC-USD"))
    batches = await collect(feed)
    assert calls == {"path": p, "tickers": ["BTC-USD"], "markets": ["BTC-USD"]}
    assert [type(b[0]) for b in batches] == [MarketInfo, Quote, FeedStatus]


DYDX_WS = shared_root() / "dydx_v4" / "nautilus_py" / "websocket"


@pytest.mark.skipif(not DYDX_WS.is_dir(), reason=f"real dYdX indexer payloads not available ({absent_reason()})")
async def test_real_dydx_recording_replays_through_the_dydx_plugin(tmp_path):
    recording = pytest.importorskip("perpbot.exchanges.dydx.recording")
    import json

    path = tmp_path / "rec.jsonl.gz"
    rec = recording.Recorder(path)
    for i, name in enumerate(("v4_orderbook_snapshot.json", "v4_trades.json")):
        rec.write_raw(json.dumps(json.loads((DYDX_WS / name).read_text())), 1_721_848_355_000_000_000 + i)
    rec.close()
    assert sniff(path) == "dydx"
    feed = ReplayFeed({"files": [str(path)]}, ctx("ETH-USD"))
    events = [e for b in await collect(feed) for e in b]
    assert type(events[0]) is MarketInfo and events[0].ticker == "ETH-USD"
    kinds = {type(e).__name__ for e in events}
    assert "BookSnapshot" in kinds and "Trade" in kinds


def test_samples_paths_and_missing_sample(tmp_path, monkeypatch):
    assert all(p.is_file() for p in samples.binance_l2_files())
    assert samples.bars_file().name.endswith(".csv.gz") and samples.funding_file().is_file()
    assert (samples.data_dir() / "SOURCES.md").is_file()
    monkeypatch.setattr(samples, "DATA_DIR", tmp_path / "gone")
    with pytest.raises(DataError, match="embedded sample data not found"):
        samples.binance_l2_files()
    (tmp_path / "gone").mkdir()
    with pytest.raises(DataError, match="embedded sample .* is missing"):
        samples.bars_file()
