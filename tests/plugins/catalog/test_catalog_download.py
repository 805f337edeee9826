"""``runbot.py download`` against the loopback indexer fake: paging, resumability, gaps, rate limit, bad input.

The fake (tests/fakes/indexer) answers comlink's history queries with the real payload shapes
(``tests/fakes/indexer/history.py`` names the recorded payloads each row copies) and the
paging comlink does (``rest.py``: ``fromISO``/``toISO``, ``effectiveBeforeOrAt*``,
``createdBeforeOrAt*``). Nothing here reads the shared data folder.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from perpbot import cli as runbot
from perpbot.core.errors import ConfigError
from tests.fakes.indexer import FakeIndexer
from tests.fakes.indexer.history import install_history

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

DAY = 86_400
T0 = int(datetime(2024, 2, 1, tzinfo=timezone.utc).timestamp())  # 2024-02-01 00:00 UTC
NS = 10**9


@pytest.fixture
def ix():
    fake = FakeIndexer(use_shared_data=False).start_in_thread()
    install_history(fake, ["BTC-USD", "ETH-USD"], T0, T0 + 3 * DAY, resolution="5MINS",
                    skip=[T0 + DAY + 3600 + 300 * k for k in range(3)])  # 3 candles missing on 02-02 01:00
    try:
        yield fake
    finally:
        fake.stop_thread()


def download(ix, catalog, *extra, start="2024-02-01", end="2024-02-03", kind="candles:5MINS,funding,trades",
             ticker="BTC,ETH", page=100):
    args = ["download", "--venue", "dydx", "--ticker", ticker, "--start", start, "--end", end, "--kind", kind,
            "--catalog", str(catalog), "--indexer-rest", ix.rest_url, "--page-size", str(page), "--no-progress",
            *extra]
    return CliRunner().invoke(runbot.build_app(), args)


def history_requests(ix) -> list[str]:
    return [p for _, p, _ in ix.requests if p.startswith(("/v4/candles", "/v4/historicalFunding", "/v4/trades"))]


def manifest(catalog: Path) -> dict:
    return json.loads((catalog / "manifest.json").read_text())["partitions"]


def test_download_pages_writes_exact_partitions_and_a_second_run_fetches_nothing(ix, tmp_path):
    cat = tmp_path / "cat"
    res = download(ix, cat)
    assert res.exit_code == 0, res.output
    parts = manifest(cat)
    # 2 markets x 3 kinds x 3 days
    assert len(parts) == 18
    key = "venue=dydx/market=BTC-USD/kind=candles-5MINS/date=2024-02-01"
    e = parts[key]
    assert e["rows"] == 288 and e["complete"] and e["first_ts"] == T0 * NS and e["last_ts"] == (T0 + DAY - 300) * NS
    assert e["source"].endswith("/v4/candles/perpetualMarkets/BTC-USD?resolution=5MINS")
    assert parts["venue=dydx/market=BTC-USD/kind=candles-5MINS/date=2024-02-02"]["rows"] == 285
    assert parts["venue=dydx/market=ETH-USD/kind=funding/date=2024-02-03"]["rows"] == 24
    assert parts["venue=dydx/market=ETH-USD/kind=trades/date=2024-02-02"]["rows"] == 96
    # paging: 3 x 288 candles per market at 100 a page cannot come in one request
    candle_reqs = [p for p in history_requests(ix) if p.startswith("/v4/candles/perpetualMarkets/BTC-USD")]
    assert len(candle_reqs) >= 9
    # exact decimals: strings equal to the indexer's own text, never float columns
    table = pq.read_table(cat / key / "part.parquet")
    assert all(str(t) in ("string", "int64") for t in table.schema.types), table.schema
    served = {c["startedAt"]: c for c in ix.candles["BTC-USD"]}
    row = table.slice(10, 1).to_pylist()[0]
    iso = datetime.fromtimestamp(row["ts_ns"] / NS, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for col, src in (("open", "open"), ("high", "high"), ("low", "low"), ("close", "close"), ("volume", "baseTokenVolume")):
        assert Decimal(row[col]) == Decimal(served[iso][src])
    assert "fetched 18 day partition(s), skipped 0" in res.output
    # resumable: everything held complete -> no history request at all
    before = len(history_requests(ix))
    res2 = download(ix, cat)
    assert res2.exit_code == 0, res2.output
    assert len(history_requests(ix)) == before
    assert "fetched 0 day partition(s), skipped 18 already held complete; 0 request(s)" in res2.output


def test_gaps_are_counted_listed_and_recorded(ix, tmp_path):
    ix.funding["BTC-USD"] = [f for f in ix.funding["BTC-USD"] if not f["effectiveAt"].startswith("2024-02-01T05")]
    cat = tmp_path / "cat"
    res = download(ix, cat, kind="candles:5MINS,funding", ticker="BTC")
    assert res.exit_code == 0, res.output
    assert "gaps in the venue's data: 2 gap(s), 4 missing interval(s)" in res.output
    assert "BTC-USD candles-5MINS: 2024-02-02 01:00 to 01:15 UTC (3 missing)" in res.output
    assert "BTC-USD funding: 2024-02-01 05:00 to 06:00 UTC (1 missing)" in res.output
    parts = manifest(cat)
    g = parts["venue=dydx/market=BTC-USD/kind=candles-5MINS/date=2024-02-02"]["gaps"]
    assert g == [[(T0 + DAY + 3600) * NS, (T0 + DAY + 4500) * NS, 3]]
    assert parts["venue=dydx/market=BTC-USD/kind=candles-5MINS/date=2024-02-01"]["gaps"] == []


async def test_an_interrupted_download_keeps_finished_days_and_the_rerun_completes_it(tmp_path):
    from perpbot.exchanges.dydx.config import DydxSettings
    from perpbot.exchanges.dydx.rest import IndexerRest
    from perpbot.plugins.catalog.download import plan, run_download
    from perpbot.plugins.catalog.dydx import DydxHistory
    from perpbot.plugins.catalog.store import CatalogWriter

    async with FakeIndexer(use_shared_data=False) as fake:
        install_history(fake, ["BTC-USD"], T0, T0 + 3 * DAY)
        settings = DydxSettings.from_config({"network": "custom", "indexer_rest": fake.rest_url,
                                             "indexer_ws": fake.ws_url})
        days = ["2024-02-01", "2024-02-02", "2024-02-03"]

        class Stop(BaseException):  # what a Ctrl-C is to the loop
            pass

        def interrupt(update):
            if update.events >= 288:  # the newest day is written: stop in the middle of the next one
                raise Stop

        w = CatalogWriter(tmp_path / "cat")
        with pytest.raises(Stop):
            await run_download(DydxHistory(IndexerRest(settings), 100), w,
                               plan(w, "dydx", ["BTC-USD"], ["candles-5MINS"], days), progress=interrupt)
        held = manifest(tmp_path / "cat")
        assert sorted(e["date"] for e in held.values()) == ["2024-02-03"]
        assert not list((tmp_path / "cat").rglob("*.tmp-*"))  # no half-written file
        w = CatalogWriter(tmp_path / "cat")
        jobs = plan(w, "dydx", ["BTC-USD"], ["candles-5MINS"], days)
        assert jobs[0].days == ["2024-02-01", "2024-02-02"] and jobs[0].held == ["2024-02-03"]
        src = DydxHistory(IndexerRest(settings), 100)
        res = await run_download(src, w, jobs)
        assert res.fetched_days == 2 and res.skipped_days == 1
        # the resumed catalog equals one downloaded in one go
        w2 = CatalogWriter(tmp_path / "one-go")
        await run_download(DydxHistory(IndexerRest(settings), 100), w2,
                           plan(w2, "dydx", ["BTC-USD"], ["candles-5MINS"], days))
        a, b = manifest(tmp_path / "cat"), manifest(tmp_path / "one-go")
        assert {k: v["sha256"] for k, v in a.items()} == {k: v["sha256"] for k, v in b.items()}


async def test_a_day_that_had_not_ended_is_partial_and_fetched_again(tmp_path):
    from perpbot.plugins.catalog.cli import download_dydx

    async with FakeIndexer(use_shared_data=False) as fake:
        install_history(fake, ["BTC-USD"], T0, T0 + 2 * DAY)
        cfg = {"network": "custom", "indexer_rest": fake.rest_url, "indexer_ws": fake.ws_url}
        noon = (T0 + DAY + DAY // 2) * NS  # 2024-02-02 12:00 UTC
        res, _, _ = await download_dydx(cfg, tmp_path, ["BTC-USD"], ["candles-5MINS"], "2024-02-01", "2024-02-02",
                                        page_size=1000, progress_bar=False, now_ns=noon)
        parts = manifest(tmp_path)
        day2 = parts["venue=dydx/market=BTC-USD/kind=candles-5MINS/date=2024-02-02"]
        assert not day2["complete"] and day2["rows"] == 144 and day2["gaps"] == []
        assert res.partial == [("BTC-USD", "candles-5MINS", "2024-02-02")]
        n = len(history_requests(fake))
        res, _, _ = await download_dydx(cfg, tmp_path, ["BTC-USD"], ["candles-5MINS"], "2024-02-01", "2024-02-02",
                                        page_size=1000, progress_bar=False, now_ns=(T0 + 3 * DAY) * NS)
        assert res.fetched_days == 1 and res.skipped_days == 1
        assert len(history_requests(fake)) == n + 1
        day2 = manifest(tmp_path)["venue=dydx/market=BTC-USD/kind=candles-5MINS/date=2024-02-02"]
        assert day2["complete"] and day2["rows"] == 288


async def test_the_request_budget_is_honoured(tmp_path):
    from perpbot.exchanges.dydx.config import DydxSettings
    from perpbot.exchanges.dydx.limits import SlidingWindowLimiter
    from perpbot.exchanges.dydx.rest import IndexerRest
    from perpbot.plugins.catalog.download import plan, run_download
    from perpbot.plugins.catalog.dydx import DydxHistory
    from perpbot.plugins.catalog.store import CatalogWriter

    class Recording(SlidingWindowLimiter):
        grants: list

        async def acquire(self):
            await super().acquire()
            self.grants.append(self._now())

    async with FakeIndexer(use_shared_data=False) as fake:
        install_history(fake, ["BTC-USD"], T0, T0 + DAY)
        settings = DydxSettings.from_config({"network": "custom", "indexer_rest": fake.rest_url,
                                             "indexer_ws": fake.ws_url})
        lim = Recording(2, 1.0)  # far slower than a loopback request, so the budget is what paces them
        lim.grants = []
        w = CatalogWriter(tmp_path)
        res = await run_download(DydxHistory(IndexerRest(settings, limiter=lim), 50), w,
                                 plan(w, "dydx", ["BTC-USD"], ["candles-5MINS"], ["2024-02-01"]))
        g = lim.grants
        assert res.requests == len(g) >= 6  # every request went through the budget
        # never more than 2 grants in any 1 s (the limiter's own clock: no wall-time race)
        assert all(g[i + 2] - g[i] >= 1.0 for i in range(len(g) - 2)), g


def test_a_corrupt_or_missing_partition_is_named_and_fetched_again(ix, tmp_path):
    cat = tmp_path / "cat"
    assert download(ix, cat, kind="funding", ticker="BTC").exit_code == 0
    key = "venue=dydx/market=BTC-USD/kind=funding/date=2024-02-02"
    (cat / key / "part.parquet").write_bytes(b"PAR1 garbage")
    (cat / "venue=dydx/market=BTC-USD/kind=funding/date=2024-02-03/part.parquet").unlink()
    res = download(ix, cat, kind="funding", ticker="BTC")
    assert res.exit_code == 0, res.output
    assert f"re-fetched BTC-USD funding 2024-02-02 (its partition was missing or corrupt)" in res.output
    assert "re-fetched BTC-USD funding 2024-02-03" in res.output
    assert "fetched 2 day partition(s), skipped 1" in res.output
    assert pq.read_table(cat / key / "part.parquet").num_rows == 24


@pytest.mark.parametrize("args, message", [
    (dict(start="2024-13-01"), "error: --start: expected a date YYYY-MM-DD, got '2024-13-01'"),
    (dict(start="2024-02-03", end="2024-02-01"), "error: --end 2024-02-01 is before --start 2024-02-03"),
    (dict(start="2999-01-01", end="2999-01-02"), "error: --start 2999-01-01 is in the future"),
    (dict(start="2020-01-01", end="2020-01-02"), "error: no data: dydx has nothing for BTC-USD, ETH-USD between 2020-01-01 and 2020-01-02"),
    (dict(ticker="BTX"), "error: --ticker: unknown dydx market 'BTX-USD'; did you mean 'BTC-USD'?"),
    (dict(kind="candles:5MIN"), "error: --kind: unknown candle resolution '5MIN'; did you mean '5MINS'?"),
    (dict(kind="candle"), "error: --kind: unknown kind 'candle'; did you mean 'candles'?"),
    (dict(kind="candles"), "error: --kind: candles needs a resolution, e.g. candles:5MINS"),
])
def test_bad_input_is_one_line(ix, tmp_path, args, message):
    res = download(ix, tmp_path / "cat", **args)
    assert res.exit_code != 0
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), res.output
    assert "Traceback" not in res.output


def test_an_unknown_venue_names_the_closest(tmp_path):
    res = CliRunner().invoke(runbot.build_app(), ["download", "--venue", "dydxx", "--ticker", "BTC", "--start",
                                                  "2024-02-01", "--end", "2024-02-02", "--catalog", str(tmp_path)])
    assert res.exit_code == 2
    assert res.output.strip() == ("error: --venue: unknown venue 'dydxx'; did you mean 'dydx'? "
                                  "(known: dydx, ccxt:<id> e.g. ccxt:binanceusdm)")


def test_kinds_parse_to_catalog_names():
    from perpbot.plugins.catalog.cli import parse_kinds

    assert parse_kinds("candles:5mins, funding,trades,funding") == ["candles-5MINS", "funding", "trades"]
    with pytest.raises(ConfigError, match="name at least one kind"):
        parse_kinds(" , ")


def test_a_binary_float_never_reaches_a_decimal_column():
    from perpbot.plugins.catalog.store import arrow_table

    with pytest.raises(TypeError, match="binary float"):
        arrow_table("funding", [{"ts_ns": 1, "rate_1h": 0.0001, "interval_h": 1, "price": None}])


def test_the_progress_bar_reports_an_eta_from_the_updates():
    from perpbot.core.feed import ProgressUpdate
    from perpbot.plugins.catalog.download import DownloadProgressBar

    t = [0.0]
    bar = DownloadProgressBar(clock=lambda: t[0])
    bar(ProgressUpdate(0, 100, 0, 0, False))
    t[0] = 10.0
    bar(ProgressUpdate(25, 100, 500, 0, False))
    assert bar.figures.fraction == 0.25 and bar.figures.eta_s == pytest.approx(30.0)
    bar(ProgressUpdate(100, 100, 2000, 0, True))
    assert bar.figures.eta_s == 0.0


def test_a_write_interrupted_midway_leaves_the_old_partition_whole(tmp_path, monkeypatch):
    from perpbot.exchanges.replay.catalog import sha256_file
    from perpbot.plugins.catalog.store import CatalogWriter

    w = CatalogWriter(tmp_path)
    row = {"ts_ns": T0 * NS, "rate_1h": Decimal("0.0001"), "interval_h": 1, "price": Decimal("50000")}
    e = w.write_partition("dydx", "BTC-USD", "funding", "2024-02-01", [row], complete=True, source="test")
    part = tmp_path / "venue=dydx/market=BTC-USD/kind=funding/date=2024-02-01/part.parquet"

    def torn(table, where, **kw):  # half a file, then Ctrl-C
        where.write(b"PAR1 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", torn)
    with pytest.raises(KeyboardInterrupt):
        w.write_partition("dydx", "BTC-USD", "funding", "2024-02-01", [row, row], complete=True, source="test")
    assert sha256_file(part) == e["sha256"] == manifest(tmp_path)[
        "venue=dydx/market=BTC-USD/kind=funding/date=2024-02-01"]["sha256"]
    assert [p.name for p in part.parent.iterdir()] == ["part.parquet"]
