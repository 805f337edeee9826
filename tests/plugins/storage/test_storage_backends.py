"""The storage interface on its backends: DuckDB (embedded), PostgreSQL and Redis (real servers,
tests/plugins/storage/servers.py: skipped with the reason when absent, failed in CI)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest

from perpbot.core.errors import ConfigError
from perpbot.plugins.storage import open_storage, redact
from perpbot.plugins.storage.schema import COLUMNS
from tests.plugins.storage.servers import fresh_database, key_prefix, postgres_server, redis_server

D = Decimal
DAY = 86_400 * 10**9
T0 = 1_765_000_000 * 10**9  # 2025-12-06 05:46:40 UTC


def sample_rows() -> dict[str, list[tuple]]:
    """A few rows of every kind, over two UTC days (two partitions per kind in PostgreSQL)."""
    return {
        "book": [("binance", "BTC-USD", T0, D("65000.1"), D("1.5"), D("65000.2"), D("0.25"),
                  '[["65000.1","1.5"]]', '[["65000.2","0.25"]]'),
                 ("dydx", "BTC-USD", T0 + DAY, D("65001"), D("2"), D("65002"), D("3"), "[]", "[]")],
        "trade": [("binance", "BTC-USD", T0, D("65000.5"), D("0.001"), "buy", "12", 12),
                  ("hyperliquid", "ETH-USD", T0 + 1, D("3400.25"), D("0.5"), "sell", "500001", None)],
        "funding": [("binance", "BTC-USD", T0, D("0.0000125"), False, 8, T0 + 3600 * 10**9, None),
                    ("dydx", "BTC-USD", T0 - 3600 * 10**9, D("-0.0000031"), True, 1, None, D("64990.5"))],
        "oi": [("binance", "BTC-USD", T0, D("10659.509"))],
        "mark": [("binance", "BTC-USD", T0, D("65000.123456789012345678"))],
        "signal": [("all", "BTC-USD", T0, 62.5, 1, 3, 5, '["orderflow: CVD rising", "against: funding high"]')],
    }


def write_all(store) -> None:
    for kind, rows in sample_rows().items():
        assert store.write(kind, rows) == len(rows)


EXPECTED_COUNTS = {("binance", "book"): 1, ("dydx", "book"): 1, ("binance", "trade"): 1, ("hyperliquid", "trade"): 1,
                   ("binance", "funding"): 1, ("dydx", "funding"): 1, ("binance", "oi"): 1, ("binance", "mark"): 1,
                   ("all", "signal"): 1}


def test_duckdb_round_trip_exact_and_reopened(tmp_path):
    path = tmp_path / "c.duckdb"
    with open_storage(f"duckdb:{path}") as s:
        write_all(s)
        assert s.counts() == EXPECTED_COUNTS
        assert s.write("trade", []) == 0
    with open_storage(str(path)) as s:  # a bare .duckdb path; the rows are still there, exact
        assert s.counts() == EXPECTED_COUNTS
        (row,) = s.query("SELECT price FROM mark")
        assert row[0] == D("65000.123456789012345678")
        (f,) = s.query("SELECT rate_1h, settled, interval_h, oracle_price FROM funding WHERE venue = 'dydx'")
        assert f == (D("-0.0000031"), True, 1, D("64990.5"))
        (t,) = s.query("SELECT seq, trade_id, side FROM trade WHERE venue = 'binance'")
        assert t == (12, "12", "buy")
        assert s.query("SELECT score, direction, agreeing, total FROM signal") == [(62.5, 1, 3, 5)]


def test_a_bad_batch_is_written_whole_or_not_at_all(tmp_path):
    with open_storage(f"duckdb:{tmp_path / 'c.duckdb'}") as s:
        good = sample_rows()["trade"][0]
        bad = good[:3] + ("not a number",) + good[4:]
        with pytest.raises(Exception):
            s.write("trade", [good, bad])
        assert s.counts() == {}
        with pytest.raises(ValueError, match="did you mean 'trade'"):
            s.write("trades", [good])


def test_open_storage_refuses_unknown_urls_in_one_line():
    with pytest.raises(ConfigError, match=r"unknown storage 'duckbd:x'; did you mean duckdb:"):
        open_storage("duckbd:x")
    with pytest.raises(ConfigError, match="duckdb needs a file"):
        open_storage("duckdb:")
    assert redact("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert "secret" not in repr(ConfigError(redact("redis://:secret@h:1/0")))


@pytest.fixture(scope="module")
def pg_server():
    with postgres_server() as dsn:
        yield dsn


@pytest.fixture
def pg_dsn(pg_server):
    with fresh_database(pg_server) as dsn:
        yield dsn


def test_postgres_copy_into_daily_partitions(pg_dsn):
    from perpbot.plugins.storage.postgres import PostgresStorage

    with open_storage(pg_dsn) as s:
        assert isinstance(s, PostgresStorage)
        write_all(s)
        assert s.counts() == EXPECTED_COUNTS
        assert s.partitions("book") == ["book_20251206", "book_20251207"]
        assert s.partitions("funding") == ["funding_20251206"]
        (row,) = s.query("SELECT price FROM mark")
        assert row[0] == D("65000.123456789012345678")
        (f,) = s.query("SELECT rate_1h, settled, interval_h, next_funding_ns, oracle_price FROM funding WHERE venue = 'dydx'")
        assert f == (D("-0.0000031"), True, 1, None, D("64990.5"))
    with open_storage(pg_dsn) as s:  # tables and partitions are reused, rows appended
        s.write("book", sample_rows()["book"])
        assert s.counts()[("binance", "book")] == 2


def test_postgres_failed_batch_rolls_back_and_the_next_one_lands(pg_dsn):
    with open_storage(pg_dsn) as s:
        good = sample_rows()["trade"][0]
        bad = good[:3] + ("not a number",) + good[4:]
        with pytest.raises(Exception):
            s.write("trade", [good, bad])
        assert s.counts() == {}
        assert s.write("trade", [good]) == 1
        assert s.counts() == {("binance", "trade"): 1}


def test_postgres_unreachable_is_one_line_without_the_password(tmp_path):
    with pytest.raises(ConfigError) as ei:
        open_storage(f"postgresql://u:hunter2@/db?host={tmp_path}&connect_timeout=2")
    msg = str(ei.value)
    assert msg.startswith("--store: cannot connect to PostgreSQL") and "hunter2" not in msg and "\n" not in msg


@pytest.fixture(scope="module")
def redis_url():
    with redis_server() as url:
        yield url


async def test_redis_latest_values_and_pubsub_reach_a_reader(redis_url):
    from perpbot.plugins.storage.redis_cache import LiveCacheReader

    url = f"{redis_url}?prefix={key_prefix()}"
    reader = LiveCacheReader(url)
    got: list[dict] = []

    async def listen():
        async for msg in reader.listen(["book", "trade"]):
            got.append(msg)

    task = asyncio.create_task(listen())
    await asyncio.sleep(0.3)  # subscribed
    cache = open_storage(url)
    try:
        rows = sample_rows()
        newer = rows["book"][0][:2] + (T0 + 5,) + rows["book"][0][3:5] + (D("65000.3"),) + rows["book"][0][6:]
        await asyncio.to_thread(cache.write, "book", [rows["book"][0], newer])
        await asyncio.to_thread(cache.write, "trade", rows["trade"])
        await asyncio.to_thread(cache.write, "funding", rows["funding"])
        latest = await reader.latest("book", "binance", "BTC-USD")
        assert latest["ts_ns"] == T0 + 5 and latest["ask"] == "65000.3" and json.loads(latest["bids"]) == [["65000.1", "1.5"]]
        f = await reader.latest("funding", "dydx", "BTC-USD")
        assert f["settled"] is True and f["rate_1h"] == "-0.0000031"
        assert await reader.latest("trade", "binance", "BTC-USD") is None  # trades are published only
        async with asyncio.timeout(5):
            while len(got) < 4:
                await asyncio.sleep(0.02)
        assert [(m["kind"], m["venue"]) for m in got] == [("book", "binance"), ("book", "binance"),
                                                          ("trade", "binance"), ("trade", "hyperliquid")]
        assert cache.counts()[("binance", "book")] == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await reader.close()
        cache.close()


def test_redis_unreachable_is_one_line():
    from tests.plugins.storage.servers import _free_port

    with pytest.raises(ConfigError, match=r"^--store: cannot connect to Redis redis://:\*\*\*@127"):
        open_storage(f"redis://:pw@127.0.0.1:{_free_port()}/0")


def test_every_kind_has_a_schema():
    assert set(COLUMNS) == {"book", "trade", "funding", "oi", "mark", "signal"}
    assert all(cols[:3] == ("venue", "market", "ts_ns") for cols in COLUMNS.values())
