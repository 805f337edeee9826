"""dYdX client-id store: the file write + fsync never runs on the event loop (issue 9, item 12),
and an id is still never handed out twice, across a restart or a kill -9."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from perpbot.core.model import Fill
from perpbot.exchanges.dydx import client_ids
from perpbot.exchanges.dydx.client_ids import ClientIdStore
from tests.exchanges.dydx.conftest import wait_until
from tests.exchanges.dydx.test_dydx_exchange_live import h, market, mnemonic  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def fsyncs(monkeypatch):
    """Every os.fsync as (thread, path of the fd)."""
    calls: list[tuple[threading.Thread, str]] = []
    real = os.fsync

    def spy(fd):
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            path = "?"
        calls.append((threading.current_thread(), path))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return calls


def meta(i):
    return {"ticker": "BTC-USD", "clob": 0, "flags": 0, "side": "BUY", "size": "0.001", "price": "65000",
            "created_ns": i}


async def test_allocation_on_a_running_loop_never_fsyncs_on_the_loop_thread(tmp_path, fsyncs):
    path = tmp_path / "ids.json"
    store = ClientIdStore(path)
    loop_thread = threading.current_thread()
    ids = await asyncio.gather(*(store.allocate_async(i, meta(i)) for i in range(1, 51)))
    assert len(set(ids)) == 50
    on_disk = json.loads(path.read_text())  # durable when allocate_async returned, no flush needed
    assert {int(k) for k in on_disk["orders"]} == set(range(1, 51)) and on_disk["next"] > max(ids)
    store.update(7, status="OPEN")
    store.update(8, status="FILLED")
    store.reserve([12345])
    await store.aflush()
    assert ClientIdStore(path).get(8)["status"] == "FILLED" and 12345 in ClientIdStore(path).reserved
    ours = [t for t, p in fsyncs if p.startswith(str(tmp_path))]
    assert ours, "the store never fsynced"
    assert all(t is not loop_thread for t in ours)
    assert len(ours) < 2 * 50  # a burst is coalesced (file + directory fsync per write)


async def test_placing_an_order_does_not_fsync_on_the_loop(h, fsyncs):  # noqa: F811
    loop_thread = threading.current_thread()
    r = await h.ex.place_order(market(1))
    assert r.success
    await wait_until(lambda: h.of(Fill, 1), what="the fill")
    await h.ex.ids.aflush()
    store_fsyncs = [t for t, p in fsyncs if "dydx-orders-" in p or p.startswith(str(h.state_dir))]
    assert store_fsyncs and all(t is not loop_thread for t in store_fsyncs)
    assert ClientIdStore(h.ex.ids.path).get(1)["dydx_id"] == h.ex.ids.get(1)["dydx_id"]


def test_outside_a_loop_the_write_is_synchronous_as_before(tmp_path):
    path = tmp_path / "ids.json"
    store = ClientIdStore(path)
    a = store.allocate(1, meta(1))
    store.update(1, status="CANCELED")
    store.reserve([a + 1])
    again = ClientIdStore(path)
    assert again.get(1)["status"] == "CANCELED" and a + 1 in again.reserved
    assert again.allocate(2, meta(2)) not in (a, a + 1)
    with pytest.raises(ValueError, match="never sent twice"):
        again.allocate(1, meta(1))


async def test_a_failed_write_allocates_nothing_and_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = ClientIdStore(blocker / "ids.json")  # its folder is a file: every write fails
    with pytest.raises(OSError):
        await store.allocate_async(1, meta(1))
    assert store.get(1) is None and store.write_errors == 1
    with pytest.raises(OSError):
        await store.allocate_async(1, meta(1))  # retried: the same clear error, not "already sent"


async def test_the_newest_state_always_lands_last(tmp_path):
    path = tmp_path / "ids.json"
    store = ClientIdStore(path)
    for i in range(1, 21):
        await store.allocate_async(i, meta(i))
        for s in ("OPEN", "PARTIALLY_FILLED", "FILLED"):
            store.update(i, status=s)
    await store.aflush()
    assert {k: v["status"] for k, v in ClientIdStore(path).orders.items()} == {i: "FILLED" for i in range(1, 21)}


def test_ids_are_never_reused_after_kill_9(tmp_path):
    """A process allocating as fast as it can is killed; every id it was given is known after the restart."""
    path = tmp_path / "ids.json"
    code = textwrap.dedent(f"""
        import asyncio, sys
        from perpbot.exchanges.dydx.client_ids import ClientIdStore

        async def main():
            store = ClientIdStore({str(path)!r})
            i = 0
            while True:
                batch = await asyncio.gather(*(store.allocate_async(i + k, {{"created_ns": i + k}}) for k in range(5)))
                i += 5
                for cid in batch:
                    sys.stdout.write(f"{{cid}}\\n")
                sys.stdout.flush()

        asyncio.run(main())
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    given = []
    try:
        while len(given) < 300:
            line = proc.stdout.readline()
            assert line, "the allocating process died"
            given.append(int(line))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    store = ClientIdStore(path)
    assert set(given) <= set(store._by_dydx)  # every id handed out was on disk first
    fresh = [store.allocate(10_000 + k, {}) for k in range(100)]
    assert not set(fresh) & set(given)


def test_module_doc_names_the_writer_contract():
    assert "never block the event loop" in client_ids.__doc__
