"""Offline collect against three loopback venues (Binance USD-M and Hyperliquid ccxt fakes, the dYdX
indexer fake; tests/plugins/collector/venues.py): into DuckDB and PostgreSQL at once (row counts
per venue and kind equal) with Redis as live cache; one venue killed mid-run while the others go
on; the command itself (Ctrl-C flushes and prints counts; bad input is one line)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from perpbot.plugins.collector.cli import apply_urls, parse_venues
from perpbot.plugins.collector.collect import Collector
from perpbot.plugins.analysis import BUILTIN
from perpbot.plugins.collector.signals import SignalMaker
from perpbot.plugins.storage import open_storage
from tests.plugins.collector.venues import FAST, VENUES, three_venues
from tests.plugins.storage.servers import fresh_database, key_prefix, postgres_server, redis_server

ROOT = Path(__file__).resolve().parents[3]
MARKETS = ["BTC-USD", "ETH-USD"]
KINDS = {"book", "trade", "funding", "oi", "mark"}
QUICK = dict(batch_rows=50, batch_age_s=0.2, oi_poll_s=0.5)


def specs_for(v):
    specs = parse_venues(VENUES)
    apply_urls(specs, v.url_arg)
    for s in specs:
        if s.plugin == "ccxt":
            s.options.update(FAST)
        else:
            s.options.update(retry_base_s=0.02, retry_max_s=0.1, ws_stable_after_s=0, rest_timeout_s=2, rest_retries=1)
    return specs


@pytest.fixture(scope="module")
def pg_server():
    with postgres_server() as dsn:
        yield dsn


@pytest.fixture(scope="module")
def redis_url():
    with redis_server() as url:
        yield url


async def test_three_venues_into_duckdb_and_postgres_with_equal_counts(tmp_path, pg_server, redis_url):
    from perpbot.plugins.storage.redis_cache import LiveCacheReader

    cache_url = f"{redis_url}?prefix={key_prefix()}"
    with fresh_database(pg_server) as dsn:
        async with three_venues(tick_s=0.1) as v:
            stores = [open_storage(f"duckdb:{tmp_path / 'c.duckdb'}"), open_storage(dsn), open_storage(cache_url)]
            maker = SignalMaker(BUILTIN)
            col = Collector(specs_for(v), MARKETS, stores, silence_s=20, signals=maker, signals_every_s=0.3, **QUICK)
            reader = LiveCacheReader(cache_url)
            try:
                await col.start()
                deadline = time.monotonic() + 60  # a bound for a loaded machine, not a speed target
                # until every venue stored every kind
                while not (all(col.written[(ven, k)] > 1 for ven in ("binance", "hyperliquid", "dydx") for k in KINDS)
                           and col.written[("all", "signal")] > 2):
                    assert time.monotonic() < deadline, dict(col.written)
                    await asyncio.sleep(0.25)
                await asyncio.sleep(0.5)
                latest = await reader.latest("book", "hyperliquid", "ETH-USD")  # what a bot process reads
                signal = await reader.latest("signal", "all", "BTC-USD")
            finally:
                await col.stop()
                await reader.close()
                col.close()
        assert latest is not None and latest["venue"] == "hyperliquid" and float(latest["bid"]) < float(latest["ask"])
        # the analysis confluence across the three venues, as the bot's analysis hub computes it
        assert signal is not None and 0 <= signal["score"] <= 100 and signal["direction"] in (-1, 0, 1)
        assert isinstance(json.loads(signal["reasons"]), list) and maker.events > 0
        with open_storage(f"duckdb:{tmp_path / 'c.duckdb'}") as duck, open_storage(dsn) as pg:
            dc, pc = duck.counts(), pg.counts()
            assert dc == pc == {k: n for k, n in col.written.items()}
            for venue in ("binance", "hyperliquid", "dydx"):
                for kind in KINDS:
                    assert dc.get((venue, kind), 0) > 0, f"no {kind} rows of {venue}: {dc}"
                markets = {m for (m,) in duck.query("SELECT DISTINCT market FROM book WHERE venue = ?", [venue])}
                assert markets == set(MARKETS)
            assert pg.partitions("trade")  # written through day partitions
            # a feed reconnect (a loaded machine) may re-deliver or skip Binance trades: the validator
            # rejects those (duplicate / sequence_gap), so stored trade ids stay unique
            # (the dYdX fake numbers its trades by block height, not uniquely: left out)
            dups = duck.query("SELECT venue, market, trade_id, count(*) FROM trade WHERE venue <> 'dydx' "
                              "GROUP BY 1, 2, 3 HAVING count(*) > 1")
            assert dups == []
        assert sum(n for (_, k), n in stores[2].counts().items()) == sum(dc.values())  # every row published
        assert {why for _, why in col.validator.rejected} <= {"duplicate", "sequence_gap"}, col.validator.rejected


async def test_one_venue_killed_mid_run_never_stops_the_others(tmp_path):
    async with three_venues(tick_s=0.1) as v:
        col = Collector(specs_for(v), MARKETS, [open_storage(f"duckdb:{tmp_path / 'k.duckdb'}")], silence_s=3,
                        retry_base_s=0.05, retry_max_s=0.2, breaker_failures=2, breaker_cooldown_s=0.5, **QUICK)
        try:
            await col.start()
            deadline = time.monotonic() + 40
            while not all(col.written[(ven, "book")] > 0 for ven in ("binance", "hyperliquid", "dydx")):
                assert time.monotonic() < deadline, dict(col.written)
                await asyncio.sleep(0.1)
            await v.binance.stop()  # the Binance venue dies: sockets closed, port gone
            binance = col.runners[0]
            deadline = time.monotonic() + 40
            while binance.breaker.opens == 0:  # no data: the session fails, retries fail, the circuit opens
                assert time.monotonic() < deadline, dict(binance.counters)
                await asyncio.sleep(0.1)
            accepted = col.validator.accepted
            before = {ven: sum(n for (x, _), n in accepted.items() if x == ven) for ven in ("binance", "hyperliquid", "dydx")}
            deadline = time.monotonic() + 20
            while True:  # the other venues keep storing rows while Binance is down
                await asyncio.sleep(0.2)
                after = {ven: sum(n for (x, _), n in accepted.items() if x == ven) for ven in ("binance", "hyperliquid", "dydx")}
                if (after["hyperliquid"] > before["hyperliquid"] + 5 and after["dydx"] > before["dydx"] + 5) \
                        or time.monotonic() > deadline:
                    break
        finally:
            await col.stop()
            col.close()
    assert after["hyperliquid"] > before["hyperliquid"] + 5 and after["dydx"] > before["dydx"] + 5, (before, after)
    assert after["binance"] == before["binance"]
    assert binance.counters["failures"] >= 2 and binance.last_error and binance.fatal is None
    line = [x for x in col.report() if x.startswith("binance:")][0]
    assert "failed session(s)" in line and "circuit opened" in line


def venues_in_thread() -> tuple[dict, threading.Event, threading.Thread]:
    """The three venues on a thread and loop of their own: ``({"url": --url value}, done, thread)``;
    set ``done`` and join the thread to stop them."""
    box: dict = {}
    ready, done = threading.Event(), threading.Event()

    def serve():
        async def main():
            async with three_venues(tick_s=0.1) as v:
                box["url"] = v.url_arg
                ready.set()
                while not done.is_set():
                    await asyncio.sleep(0.05)
        asyncio.run(main())

    venues = threading.Thread(target=serve, name="fake-venues", daemon=True)
    venues.start()
    assert ready.wait(30), "the fake venues did not start"
    return box, done, venues


def test_a_market_no_venue_lists_stops_each_venue_with_the_reason(tmp_path):
    from perpbot import cli as runbot

    box, done, venues = venues_in_thread()
    try:
        res = CliRunner().invoke(runbot.build_app(), [
            "collect", "--venues", "binance=ccxt:binanceusdm,dydx", "--markets", "BTC,NOPE",
            "--url", ",".join(u for u in box["url"].split(",") if not u.startswith("hyperliquid=")),
            "--store", f"duckdb:{tmp_path / 'n.duckdb'}", "--duration", "60"])
    finally:
        done.set()
        venues.join(30)
    assert res.exit_code == 1, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error: ")]
    assert [e.split(":")[1].strip() for e in errors] == ["binance", "dydx"], res.output
    assert all("NOPE-USD" in e for e in errors), errors  # each venue names the market it does not list
    assert "--markets: 'binance:NOPE-USD' is not a perpetual of binance" in errors[0]


def test_collect_command_ctrl_c_flushes_and_prints_counts(tmp_path):
    """The command in this process (no interpreter start-up), the venues on a thread of their own;
    a real SIGINT once the command's loop handles it: the flush writes every row (batches of
    60 s / 100k rows would otherwise never be written) and the printed counts are the stored ones."""
    from perpbot import cli as runbot

    db = tmp_path / "cli.duckdb"
    box, done, venues = venues_in_thread()
    default = signal.getsignal(signal.SIGINT)

    def ctrl_c():  # once the command's event loop owns SIGINT, let it collect a while, then Ctrl-C
        deadline = time.monotonic() + 60
        while signal.getsignal(signal.SIGINT) is default and time.monotonic() < deadline and not done.is_set():
            time.sleep(0.05)
        time.sleep(3)
        if not done.is_set():
            os.kill(os.getpid(), signal.SIGINT)

    killer = threading.Thread(target=ctrl_c, name="ctrl-c", daemon=True)
    killer.start()
    try:
        res = CliRunner().invoke(runbot.build_app(), [
            "collect", "--venues", VENUES, "--markets", "BTC,ETH", "--url", box["url"], "--store", f"duckdb:{db}",
            "--batch-age-s", "60", "--batch-rows", "100000", "--oi-poll-s", "0.5"])
    finally:
        done.set()
        killer.join(5)
        venues.join(30)
    assert res.exit_code == 0, res.output
    lines = {ln.split(":")[0]: ln for ln in res.output.splitlines() if ln.startswith(("binance:", "hyperliquid:", "dydx:"))}
    assert set(lines) == {"binance", "hyperliquid", "dydx"}, res.output
    with open_storage(f"duckdb:{db}") as s:
        counts = s.counts()
    for venue, line in lines.items():
        stored = sum(n for (ven, _), n in counts.items() if ven == venue)
        assert stored > 0 and f"stored {stored:,} row(s)" in line, (line, counts)


@pytest.mark.parametrize("args, message", [
    (["--venues", "binance=ccxt:binanceusd", "--markets", "BTC"], "--venues: unknown ccxt venue 'binanceusd'"),
    (["--venues", "binance=cxt:binanceusdm", "--markets", "BTC"], "unknown venue plugin 'cxt'; did you mean 'ccxt'?"),
    (["--venues", "dydx,dydx", "--markets", "BTC"], "venue 'dydx' named twice"),
    (["--venues", "dydx", "--markets", "BT$"], "--markets: ticker: not a market symbol"),
    (["--venues", "dydx", "--markets", "BTC", "--store", "duckbd:x"], "did you mean duckdb:"),
    (["--venues", "dydx", "--markets", "BTC", "--url", "dydz=http://x"], "'dydz' is not one of --venues; did you mean 'dydx'?"),
    (["--venues", "dydx", "--markets", "BTC", "--signals", "orderflw"], "--signals: unknown analyzer 'orderflw'"),
])
def test_bad_input_is_one_line(tmp_path, args, message):
    from perpbot import cli as runbot

    res = CliRunner().invoke(runbot.build_app(), ["collect", *args])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.output
