"""Built-in plugin: the REST API, event stream and web dashboard of a run (``--api HOST:PORT``).

In the bot's own process: with ``--api 127.0.0.1:8080`` (``[bot] api``), the ``configure``
hook loads the token and binds the socket at once (a port in use, a token file others can
read, or a bind beyond loopback without a token is one line and exit code 2, before
anything runs); ``on_bot_start`` serves a FastAPI app with uvicorn as a task on the bot's
event loop (:mod:`.server`: signal handling stays the bot's, nothing blocks the loop);
``on_bot_stop`` ends the event streams and stops the server. The trading hooks feed the
event stream (:mod:`.events`, bounded per-client queues: a slow client is dropped, the bot
never waits) and keep the last fills and equity samples (:class:`.live.RunRecorder`).

Standalone over a journal: ``runbot.py api --journal PATH [--listen HOST:PORT]`` serves the
same read endpoints from the journal file (:mod:`.journal_source`); control answers 409.

The endpoints, their JSON shapes and errors: :mod:`.app` and :mod:`.models`. Control
(pause new entries, resume, close all, halt) needs the bearer token (``PERPBOT_API_TOKEN``
or ``--api-token-file``, owner-only) and goes through the bot's narrow control surface
(:mod:`perpbot.core.bot.control`), journaled with its source (``api <client address>``).
The dashboard is plain HTML, CSS and JavaScript in ``static/`` (no build step).

Imports :mod:`perpbot.core`, the dashboard's snapshot code, the journal's read side and the
report's analytics; FastAPI and uvicorn (the ``api`` extra) only when an API is asked for.
"""

from __future__ import annotations

import sys
import time
import weakref
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from loguru import logger

from perpbot.core.errors import PerpbotError
from perpbot.core.hookspecs import hookimpl

__all__ = ["ApiRun", "api_of", "serve_journal"]

#: sockets bound by ``configure``, keyed by the configuration object, taken by ``on_bot_start``
_PREPARED: dict[int, tuple[Any, Any, str | None]] = {}
_RUNS: "weakref.WeakKeyDictionary[Any, ApiRun]" = weakref.WeakKeyDictionary()


def _need_extra() -> None:
    try:
        import fastapi  # noqa: F401, PLC0415
        import uvicorn  # noqa: F401, PLC0415
    except ImportError as exc:
        from perpbot.plugins.api.server import ApiError  # noqa: PLC0415

        raise ApiError(f"--api needs FastAPI and uvicorn ({exc.name} is missing): pip install 'perpbot[api]'") from None


class ApiRun:
    """The API of one running bot: its socket, server task, event hub and recorder.

    :param view: the run's :class:`~perpbot.core.bot.view.RunView`; :param sock: the bound socket;
    :param token: the bearer token or None.
    """

    def __init__(self, view: Any, sock: Any, token: str | None):
        from perpbot.core.bot.control import control_of  # noqa: PLC0415
        from perpbot.plugins.api.app import create_app  # noqa: PLC0415
        from perpbot.plugins.api.events import EventHub  # noqa: PLC0415
        from perpbot.plugins.api.live import LiveSource, RunRecorder  # noqa: PLC0415
        from perpbot.plugins.api.server import is_loopback, make_server, url_of  # noqa: PLC0415

        self.view = view
        self.sock = sock
        self.url = url_of(sock)
        self.hub = EventHub()
        self.recorder = RunRecorder()
        self.control = control_of(view)
        cfg = view.config
        journal = cfg.resolved_journal_path() if cfg.journal_enabled else None
        self.source = LiveSource(view, self.recorder, self.control, self.hub, journal)
        host = sock.getsockname()[0]
        self.app = create_app(self.source, token=token, control=self.control, hub=self.hub,
                              read_needs_token=not is_loopback(host))
        self.server = make_server(self.app)
        self.task = None
        self._last_decisions = 0
        self._last_decision_wall = 0.0

    async def start(self) -> None:
        """Serve on the bound socket (a task of the bot's loop); logs and prints the URL."""
        from perpbot.plugins.api.server import start_server  # noqa: PLC0415

        self.task = await start_server(self.server, self.sock)
        line = f"api: serving on {self.url} (dashboard {self.url}/, schema {self.url}/openapi.json)"
        logger.debug(line)
        print(line, file=sys.stderr, flush=True)  # shown even when the console log is quiet (--dashboard)

    async def stop(self) -> None:
        """End the event streams and stop the server (cut after a short grace time)."""
        from perpbot.plugins.api.server import stop_server  # noqa: PLC0415

        self.hub.close()
        await stop_server(self.server, self.task)
        self.sock.close()

    def decisions(self, result: Any) -> None:
        """Publish a ``decisions`` summary at most once per wall second (decisions since the last one)."""
        now = time.monotonic()
        if now - self._last_decision_wall < 1.0 or not self.hub.clients:
            return
        self._last_decision_wall = now
        total = int(self.view.decisions)
        self.hub.publish("decisions", {
            "ts_ns": int(self.view.clock.now_ns()), "decisions": total, "since_last": total - self._last_decisions,
            "last_reason": getattr(result, "reason", "") or "", "last_orders": len(getattr(result, "orders", ()) or ()),
        })
        self._last_decisions = total


def api_of(view: Any) -> ApiRun | None:
    """The :class:`ApiRun` serving the run of ``view`` (None: no ``--api`` for it)."""
    return _RUNS.get(view)


# ---------------------------------------------------------------------------
# hooks
# ---------------------------------------------------------------------------


@hookimpl
def configure(config):
    """With ``config.api``: check the extra, load the token and bind the socket now (one-line errors)."""
    if getattr(config, "api", None) is None:
        return
    from perpbot.plugins.api.server import bind, load_token  # noqa: PLC0415

    _need_extra()
    token = load_token(config.api_token_file)
    stale = _PREPARED.pop(id(config), None)
    if stale is not None:
        stale[1].close()
    _PREPARED[id(config)] = (config, bind(config.api, token), token)


@hookimpl
async def on_bot_start(bot):
    """Start serving the API of this run (when ``--api`` was given)."""
    prepared = _PREPARED.pop(id(bot.config), None)
    if prepared is None:
        return
    _config, sock, token = prepared
    run = ApiRun(bot, sock, token)
    _RUNS[bot] = run
    await run.start()
    run.recorder.sample(bot.clock.now_ns(), bot.total_equity(), force=True)


@hookimpl
async def on_bot_stop(bot, summary):
    """Close the event streams and stop the server."""
    run = _RUNS.pop(bot, None)
    if run is not None:
        await run.stop()


@hookimpl
def on_fill(bot, fill):
    """Keep the fill and publish it."""
    run = _RUNS.get(bot)
    if run is None:
        return
    from perpbot.plugins.api.live import fill_row  # noqa: PLC0415

    row = fill_row(bot, fill)
    run.recorder.add_fill(row)
    run.hub.publish("fill", row)


@hookimpl
def on_order_update(bot, update):
    """Publish an order's new state."""
    run = _RUNS.get(bot)
    if run is None or not run.hub.clients:
        return
    run.hub.publish("order", {
        "client_id": int(update.client_id), "ticker": update.ticker, "status": update.status.value,
        "filled": str(update.filled_size) if getattr(update, "filled_size", None) is not None else None,
        "ts_ns": int(getattr(update, "ts_ns", 0) or 0),
    })


@hookimpl
def on_order_result(bot, order, result):
    """Publish the exchange's answer to a placement."""
    run = _RUNS.get(bot)
    if run is None or not run.hub.clients:
        return
    run.hub.publish("order_result", {
        "client_id": int(order.client_id), "ticker": order.ticker, "venue": order.venue or "", "side": order.side.value,
        "size": str(order.size), "price": None if order.price is None else str(order.price),
        "reduce_only": bool(order.reduce_only), "tag": order.tag, "success": bool(result.success),
        "status": result.status.value, "error": result.error or "",
    })


@hookimpl
def on_risk_action(bot, decision):
    """Publish a risk or control action."""
    run = _RUNS.get(bot)
    if run is None:
        return
    from perpbot.plugins.api.live import risk_row  # noqa: PLC0415

    run.hub.publish("risk", risk_row(decision))


@hookimpl
def on_decision(bot, strategy, result):
    """Sample equity (at most twice a wall second) and publish a decisions summary (once a second)."""
    run = _RUNS.get(bot)
    if run is None:
        return
    if run.recorder.sample(bot.clock.now_ns(), bot.total_equity()) and run.hub.clients:
        ts, eq = run.recorder.points[-1]
        run.hub.publish("equity", {"ts_ns": ts, "equity": str(eq)})
    run.decisions(result)


@hookimpl
def on_equity_snapshot(bot, ts_ns, balance):
    """Keep the equity snapshot and publish it."""
    run = _RUNS.get(bot)
    if run is None:
        return
    eq = bot.total_equity()
    if run.recorder.sample(ts_ns, eq, force=True):
        run.hub.publish("equity", {"ts_ns": int(ts_ns), "equity": str(eq)})


# ---------------------------------------------------------------------------
# standalone: runbot.py api --journal PATH
# ---------------------------------------------------------------------------


def serve_journal(journal: str | Path, listen: tuple[str, int], token_file: str | Path | None = None) -> None:
    """Serve the read endpoints and the dashboard over ``journal`` until Ctrl-C (blocking).

    :raises PerpbotError: a missing journal, a bad token file, a port in use, a bind beyond
        loopback without a token (one line each).
    """
    import asyncio  # noqa: PLC0415

    _need_extra()
    from perpbot.plugins.api.app import create_app  # noqa: PLC0415
    from perpbot.plugins.api.journal_source import JournalSource  # noqa: PLC0415
    from perpbot.plugins.api.server import bind, is_loopback, load_token, make_server, url_of  # noqa: PLC0415

    source = JournalSource(journal)
    token = load_token(token_file)
    sock = bind(listen, token, flag="--listen")
    app = create_app(source, token=token, read_needs_token=not is_loopback(listen[0]))
    server = make_server(app, embedded=False)
    url = url_of(sock)
    print(f"api: serving journal {journal} on {url} (dashboard {url}/); Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        sock.close()


@hookimpl
def register_commands(cli):
    """Add ``runbot.py api``: the read API and dashboard over a journal file."""

    @cli.command("api")
    def api_command(
        journal: Annotated[Path, typer.Option("--journal", help="The journal (SQLite) file to serve.")],
        listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to listen on.", metavar="HOST:PORT")] = "127.0.0.1:8080",
        api_token_file: Annotated[Optional[Path], typer.Option("--api-token-file", help="Owner-only file holding the bearer token (default: $PERPBOT_API_TOKEN); needed beyond loopback.")] = None,
    ):
        """Serve the REST API (read endpoints) and the web dashboard over a journal file."""
        from perpbot.core.config import parse_listen  # noqa: PLC0415

        try:
            serve_journal(journal, parse_listen(listen, "--listen"), api_token_file)
        except PerpbotError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(getattr(exc, "exit_code", 1)) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
