"""Serving the API: the bearer token, the listening socket and uvicorn on the bot's own loop.

- :func:`load_token`: the token from ``--api-token-file`` (a file only its owner may read:
  mode ``0o600`` or stricter; a looser file is refused with the ``chmod`` to run) or from
  ``PERPBOT_API_TOKEN``; it never appears in logs, reprs or error messages.
- :func:`bind`: the listening socket, bound at once so a port in use or a refused bind beyond
  loopback without a token is one line before the run starts (:class:`ApiError`, exit 2).
- :class:`EmbeddedServer`: a ``uvicorn.Server`` that leaves signal handling to the bot (uvicorn
  0.55's ``Server.capture_signals`` would replace the bot's SIGINT/SIGTERM handlers; it is
  a no-op here) and runs as a task on the running event loop (:func:`start_server`,
  :func:`stop_server`, which ends it with :func:`perpbot.core.tasks.cancel_and_wait` if it
  does not stop within its grace time).

Imports :mod:`perpbot.core` and uvicorn (lazily: the ``api`` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import socket
from pathlib import Path
from typing import Any

from loguru import logger

from perpbot.core.config import format_listen
from perpbot.core.errors import ConfigError
from perpbot.core.secrets import check_owner_only
from perpbot.core.tasks import cancel_and_wait

TOKEN_ENV = "PERPBOT_API_TOKEN"
#: the shortest token accepted (characters)
MIN_TOKEN = 16


class ApiError(ConfigError):
    """The API cannot start as asked (port in use, token file, bind beyond loopback); exit code 2."""


def load_token(token_file: str | Path | None, *, flag: str = "--api-token-file", environ: Any = None) -> str | None:
    """The API's bearer token: the first line of ``token_file``, else ``$PERPBOT_API_TOKEN``, else None.

    :raises ApiError: the file is missing, not a regular file, readable or writable by group or
        others (the message gives ``chmod 600 PATH``), empty, or the token is shorter than
        :data:`MIN_TOKEN` characters. The token itself is never in a message.
    """
    environ = os.environ if environ is None else environ
    if token_file is not None:
        path = Path(token_file).expanduser()
        check_owner_only(path, flag, ApiError)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ApiError(f"{flag} {path}: cannot read it ({exc})") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise ApiError(f"{flag} {path}: the file is empty (put the token on its first line)")
        source = f"{flag} {path}"
    else:
        token = (environ.get(TOKEN_ENV) or "").strip()
        if not token:
            return None
        source = TOKEN_ENV
    if len(token) < MIN_TOKEN:
        raise ApiError(f"{source}: the token is too short ({len(token)} characters; use at least {MIN_TOKEN}, "
                       "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return token


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(listen: tuple[str, int], token: str | None, *, flag: str = "--api") -> socket.socket:
    """A listening TCP socket on ``(host, port)`` (port 0: the OS picks one).

    :raises ApiError: ``host`` is beyond loopback and there is no token; the address is in
        use; the host cannot be resolved or bound (one line naming ``HOST:PORT``).
    """
    host, port = listen
    where = f"{flag} {format_listen(listen)}"
    if not is_loopback(host) and not token:
        raise ApiError(f"{where}: refusing to listen beyond loopback without a token "
                       f"(set {TOKEN_ENV} or --api-token-file, or listen on 127.0.0.1)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ApiError(f"{where}: cannot resolve host {host!r} ({exc.strerror})") from None
    family, socktype, proto, _canon, addr = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ApiError(f"{where}: address already in use (another process listens there; choose another port)") from None
        raise ApiError(f"{where}: cannot listen there ({exc.strerror or exc})") from None
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a bound socket (IPv6 in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://{format_listen((host, port))}"


def make_server(app: Any, *, grace_s: float = 2.0, embedded: bool = True):
    """A uvicorn server for ``app`` that logs warnings only and writes no access log (so no
    request line, e.g. a query string, reaches a log).

    :param embedded: True (in a bot): it never installs signal handlers (the bot owns
        SIGINT/SIGTERM); False (``runbot.py api``): uvicorn's own Ctrl-C handling.
    """
    import uvicorn  # noqa: PLC0415  (the api extra)

    class EmbeddedServer(uvicorn.Server):
        """uvicorn's server without its signal capture: the bot owns SIGINT/SIGTERM."""

        @contextlib.contextmanager
        def capture_signals(self):
            """No signal handlers: a no-op context."""
            yield

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=int(grace_s) or 1, log_config=None)
    return EmbeddedServer(config) if embedded else uvicorn.Server(config)


async def start_server(server: Any, sock: socket.socket) -> asyncio.Task:
    """Run ``server`` on ``sock`` as a task of the running loop; returns once it serves.

    :raises ApiError: the server failed to start (its error, one line).
    """
    task = asyncio.create_task(server.serve(sockets=[sock]), name="perpbot-api")
    while not server.started:
        if task.done():
            exc = task.exception()
            raise ApiError(f"the API server did not start: {exc}")
        await asyncio.sleep(0.01)
    return task


async def stop_server(server: Any, task: asyncio.Task | None, *, grace_s: float = 3.0) -> None:
    """Ask ``server`` to exit and wait up to ``grace_s``; then force it and cancel the task."""
    if task is None:
        return
    server.should_exit = True
    try:
        async with asyncio.timeout(grace_s):
            await asyncio.shield(task)
    except TimeoutError:
        server.force_exit = True
        logger.warning("API server did not stop in time; its open connections were cut")
        await cancel_and_wait([task])
    except Exception as exc:
        logger.error(f"API server stopped with an error: {type(exc).__name__}: {exc}")
