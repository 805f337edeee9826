"""Real PostgreSQL and Redis servers for the storage and collector tests.

Where a server comes from, in order:

1. ``PERPBOT_TEST_PG_DSN`` / ``PERPBOT_TEST_REDIS_URL`` (CI starts Debian's servers and exports
   them, ``.ci/run``): each PostgreSQL test gets a database of its own (created, then dropped);
   each Redis test a key prefix of its own.
2. Otherwise a throwaway server of this process: ``initdb`` + ``pg_ctl`` from
   ``/usr/lib/postgresql/*/bin`` (or PATH) into a temporary folder, listening on a Unix socket
   only (run as the ``postgres`` user when we are root: PostgreSQL refuses root), and
   ``redis-server`` on a free loopback port without persistence. Both stopped at session end.
3. Neither: the test skips with the reason; with ``PERPBOT_REQUIRE_SERVERS=1`` (CI) it FAILS.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

REQUIRE = os.environ.get("PERPBOT_REQUIRE_SERVERS") == "1"


def unavailable(reason: str) -> None:
    """Skip (a user's machine) or fail (``PERPBOT_REQUIRE_SERVERS=1``) with ``reason``."""
    if REQUIRE:
        pytest.fail(f"PERPBOT_REQUIRE_SERVERS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser is None:
        return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(cmd)]
    return [runuser, "-u", "postgres", "--"] + cmd


@contextmanager
def postgres_server() -> Iterator[str]:
    """A superuser DSN of a running PostgreSQL (module docstring); skips/fails when none."""
    dsn = os.environ.get("PERPBOT_TEST_PG_DSN")
    if dsn:
        yield dsn
        return
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        unavailable("PostgreSQL is not installed (apt-get install postgresql) and PERPBOT_TEST_PG_DSN is not set")
    if os.geteuid() == 0:
        try:
            import pwd

            pw = pwd.getpwnam("postgres")
        except KeyError:
            unavailable("running as root without a 'postgres' user to run a throwaway PostgreSQL as")
    root = Path(tempfile.mkdtemp(prefix="perpbot-pg-"))
    if os.geteuid() == 0:
        os.chown(root, pw.pw_uid, pw.pw_gid)
    data, log = root / "data", root / "log"
    try:
        subprocess.run(_as_postgres([initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        opts = f"-c listen_addresses='' -c unix_socket_directories='{root}' -c fsync=off -c full_page_writes=off"
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start"]),
                       check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        out = getattr(exc, "stderr", b"") or b""
        shutil.rmtree(root, ignore_errors=True)
        unavailable(f"a throwaway PostgreSQL did not start: {out.decode(errors='replace')[-300:]}")
    try:
        yield f"postgresql://postgres@/postgres?host={root}"
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def fresh_database(server_dsn: str) -> Iterator[str]:
    """A new, empty database on ``server_dsn``'s server (dropped afterwards); yields its URL.

    ``server_dsn`` is a ``postgresql://`` URL (the form ``PERPBOT_TEST_PG_DSN`` must have)."""
    import psycopg
    from urllib.parse import urlsplit, urlunsplit

    name = "perpbot_t_" + secrets.token_hex(6)
    try:
        admin = psycopg.connect(server_dsn, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        unavailable(f"PostgreSQL at PERPBOT_TEST_PG_DSN cannot be reached: {' '.join(str(exc).split())[:200]}")
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(server_dsn)
    try:
        yield urlunsplit(parts._replace(path="/" + name))
    finally:
        with psycopg.connect(server_dsn, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def redis_server() -> Iterator[str]:
    """A ``redis://`` URL of a running Redis (module docstring); skips/fails when none."""
    import redis

    url = os.environ.get("PERPBOT_TEST_REDIS_URL")
    if url:
        try:
            with redis.Redis.from_url(url, socket_connect_timeout=5) as probe:
                probe.ping()
        except redis.RedisError as exc:
            unavailable(f"Redis at PERPBOT_TEST_REDIS_URL cannot be reached: {' '.join(str(exc).split())[:200]}")
        yield url
        return
    exe = shutil.which("redis-server")
    if exe is None:
        unavailable("Redis is not installed (apt-get install redis-server) and PERPBOT_TEST_REDIS_URL is not set")

    for _ in range(3):  # a port chosen by the OS, taken by someone else before redis binds it: next one
        port = _free_port()
        proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        ok = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ok = bool(client.ping())
                break
            except redis.RedisError:
                time.sleep(0.05)
        client.close()
        if ok:
            try:
                yield f"redis://127.0.0.1:{port}/0"
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            return
        proc.kill()
        proc.wait()
    unavailable("a throwaway redis-server did not start")


def key_prefix() -> str:
    """A Redis key prefix of one test (tests share a server)."""
    return "perpbot-t-" + secrets.token_hex(4)
