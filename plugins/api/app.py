"""The FastAPI application: read endpoints, the event stream, control endpoints, the dashboard.

``GET /`` is the web dashboard (static files of :mod:`perpbot.plugins.api`'s ``static/``
folder, no build step). Under ``/api``:

- reads: ``status``, ``markets`` (with scores), ``positions`` (with margin and liquidation
  distance), ``orders`` (open), ``fills?limit=N``, ``pnl`` (realized, unrealized, fees,
  funding), ``risk?limit=N`` (risk and control actions), ``runs``, ``equity`` (samples with
  drawdown). Decimals are JSON strings (:mod:`perpbot.plugins.api.models`).
- ``events``: Server-Sent Events (:mod:`perpbot.plugins.api.events`); a running bot only.
- control (``POST``, bearer token required): ``control/pause`` (no new entries; exits still go
  out), ``control/resume``, ``control/close-all``, ``control/halt``; body ``{"reason": "..."}``
  optional. Each is carried out by the bot between two batches
  (:class:`perpbot.core.bot.control.BotControl`) and journaled with its source
  (``api <client address>``). 200 once applied, 202 when still queued after a few seconds.

Every error is a JSON ``{"error": "one line"}``: 401 without the right token, 404 unknown
path, 405 wrong method, 400 a body that is not JSON, 409 nothing to control (a journal, or the bot stopped), 422 a bad
parameter or body (naming it, its value and what is allowed). The OpenAPI schema is
``/openapi.json`` (checked by schemathesis property tests). Bound beyond loopback, the read
endpoints need the token too. Imports FastAPI (the ``api`` extra) and :mod:`perpbot.core`.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any, Optional

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException

from perpbot.core.bot.control import ControlAction, ControlUnavailable
from perpbot.plugins.api import models as m

STATIC = Path(__file__).with_name("static")
#: seconds a control request waits to be applied before answering 202 (queued)
CONTROL_WAIT_S = 5.0


class ApiRefusal(Exception):
    """An answer with a status code and one line (turned into ``{"error": ...}``)."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def _errors(*codes: int) -> dict:
    return {c: {"model": m.ErrorBody} for c in codes}


def _validation_line(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors()[:3]:
        loc = [str(x) for x in e.get("loc", ()) if x not in ("query", "body", "path")]
        where = {"query": "query parameter", "body": "body field", "path": "path parameter"}.get(
            str(e.get("loc", ("",))[0]), "field")
        name = ".".join(loc) or "body"
        value = e.get("input")
        got = f" (got {value!r})" if value is not None and not isinstance(value, dict) and len(repr(value)) < 80 else ""
        parts.append(f"{where} {name}: {e.get('msg', 'invalid')}{got}")
    return "; ".join(parts) or "invalid request"


def create_app(source: Any, *, token: str | None, control: Any = None, hub: Any = None,
               read_needs_token: bool = False) -> FastAPI:
    """The API over ``source`` (a :class:`~perpbot.plugins.api.live.LiveSource` or
    :class:`~perpbot.plugins.api.journal_source.JournalSource`).

    :param token: the bearer token control needs (None: control refused with 401).
    :param control: the run's :class:`~perpbot.core.bot.control.BotControl` (None: read-only API).
    :param hub: the :class:`~perpbot.plugins.api.events.EventHub` (None: no event stream).
    :param read_needs_token: the read endpoints and the stream need the token too (bound beyond loopback).
    """
    app = FastAPI(
        title="perpbot API",
        version="1",
        description="Watch and steer a perpbot run. Decimals are strings; times are ns since the epoch.",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )

    @app.exception_handler(ApiRefusal)
    async def _refusal(_request: Request, exc: ApiRefusal):
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        text = {404: "no such endpoint (see /openapi.json)", 405: "method not allowed here",
                400: f"unreadable request body: {exc.detail} (send JSON like {{\"reason\": \"...\"}})"}.get(
            exc.status_code, str(exc.detail))
        return JSONResponse({"error": text}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):
        return JSONResponse({"error": _validation_line(exc)}, status_code=422)

    def check_token(request: Request) -> None:
        if token is None:
            raise ApiRefusal(401, "control is disabled: start the bot with PERPBOT_API_TOKEN or --api-token-file",
                             {"WWW-Authenticate": "Bearer"})
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiRefusal(401, "missing bearer token (header Authorization: Bearer TOKEN)", {"WWW-Authenticate": "Bearer"})
        if not secrets.compare_digest(given.strip().encode(), token.encode()):
            raise ApiRefusal(401, "wrong bearer token", {"WWW-Authenticate": "Bearer"})

    def read_guard(request: Request) -> None:
        if read_needs_token:
            check_token(request)

    reads = dict(dependencies=[Depends(read_guard)], responses=_errors(401, 422))

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/status", response_model=m.Status, **reads)
    async def status() -> Any:
        """The run at a glance: counters, equity, drawdown, feed health per venue, pause/halt state."""
        out = await source.status()
        out["control"] = bool(control is not None and token is not None and out.get("running"))
        return out

    @app.get("/api/markets", response_model=m.Markets, **reads)
    async def markets() -> Any:
        """Markets with their 0-100 scores and the strategy's rank."""
        return await source.markets()

    @app.get("/api/positions", response_model=m.Positions, **reads)
    async def positions() -> Any:
        """Open positions with liquidation price and distance; each venue's margin."""
        return await source.positions()

    @app.get("/api/orders", response_model=m.Orders, **reads)
    async def orders() -> Any:
        """Open orders."""
        return await source.orders()

    @app.get("/api/fills", response_model=m.Fills, **reads)
    async def fills(limit: int = Query(100, ge=1, le=1000, description="how many of the latest fills")) -> Any:
        """The latest fills, oldest first."""
        return await source.fills(limit)

    @app.get("/api/pnl", response_model=m.Pnl, **reads)
    async def pnl() -> Any:
        """PnL split into realized, unrealized, fees and funding (USD)."""
        return await source.pnl()

    @app.get("/api/risk", response_model=m.Risk, **reads)
    async def risk(limit: int = Query(100, ge=1, le=1000, description="how many of the latest actions")) -> Any:
        """Risk and control actions (not approvals), oldest first."""
        return await source.risk(limit)

    @app.get("/api/runs", response_model=m.Runs, **reads)
    async def runs() -> Any:
        """Runs of the journal."""
        return await source.runs()

    @app.get("/api/equity", response_model=m.Equity, **reads)
    async def equity() -> Any:
        """Equity samples and drawdown, oldest first."""
        return await source.equity()

    @app.get(
        "/api/events",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}, **_errors(401, 409)},
        dependencies=[Depends(read_guard)],
    )
    async def events():
        """Server-Sent Events: hello, fill, order, order_result, risk, decisions, equity, control, bye, dropped."""
        if hub is None:
            raise ApiRefusal(409, "no event stream: this API serves a journal, not a running bot")
        hello = await source.status()
        return StreamingResponse(hub.stream({"run_id": hello["run_id"], "strategy": hello["strategy"]}),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def act(request: Request, action: ControlAction, body: Optional[m.ControlBody]) -> Any:
        check_token(request)
        if control is None:
            raise ApiRefusal(409, "nothing to control: this API serves a journal, not a running bot")
        host = request.client.host if request.client is not None else "unknown"
        src = f"api {host}"
        reason = body.reason if body is not None else ""
        try:
            fut = control.request(action, src, reason)
        except ControlUnavailable as exc:
            raise ApiRefusal(409, str(exc)) from None
        try:
            async with asyncio.timeout(CONTROL_WAIT_S):
                outcome = await asyncio.shield(fut)
        except TimeoutError:
            return JSONResponse(
                {"action": action.value, "source": src, "reason": reason, "applied": False,
                 "entries_paused": control.entries_paused, "halted": control.halted},
                status_code=202,
            )
        except ControlUnavailable as exc:
            raise ApiRefusal(409, str(exc)) from None
        except Exception as exc:  # carrying it out failed (e.g. an exchange error): say so
            logger.error(f"control {action.value} from {src} failed: {type(exc).__name__}: {exc}")
            raise ApiRefusal(502, f"{action.value} failed: {type(exc).__name__}: {exc}") from None
        result = {"action": outcome.action.value, "source": outcome.source, "reason": outcome.reason, "applied": True,
                  "ts_ns": outcome.ts_ns, "entries_paused": outcome.entries_paused, "halted": outcome.halted}
        if hub is not None:
            hub.publish("control", result)
        return result

    control_doc = dict(response_model=m.ControlResult, responses={202: {"model": m.ControlResult}, **_errors(400, 401, 409, 422, 502)})

    @app.post("/api/control/pause", **control_doc)
    async def pause(request: Request, body: Optional[m.ControlBody] = None) -> Any:
        """Pause new entries: orders that open or add to a position are dropped; exits still go out."""
        return await act(request, ControlAction.PAUSE_ENTRIES, body)

    @app.post("/api/control/resume", **control_doc)
    async def resume(request: Request, body: Optional[m.ControlBody] = None) -> Any:
        """Resume new entries."""
        return await act(request, ControlAction.RESUME_ENTRIES, body)

    @app.post("/api/control/close-all", **control_doc)
    async def close_all(request: Request, body: Optional[m.ControlBody] = None) -> Any:
        """Cancel every open order and close every position with reduce-only market orders."""
        return await act(request, ControlAction.CLOSE_ALL, body)

    @app.post("/api/control/halt", **control_doc)
    async def halt(request: Request, body: Optional[m.ControlBody] = None) -> Any:
        """Halt: cancel open orders, stop the run (exit code 6)."""
        return await act(request, ControlAction.HALT, body)

    return app
