"""Property tests of the OpenAPI schema with schemathesis: every operation, with data that fits
the schema and data that does not, with and without the token, over a journal and over a bot
that ran; every answer must match the schema (status code, content type, body) and none may
be a server error. Bad input must be a 4xx with ``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from perpbot.core.bot.control import control_of
from perpbot.plugins.api.app import create_app
from perpbot.plugins.api.events import EventHub
from perpbot.plugins.api.journal_source import JournalSource
from perpbot.plugins.api.live import LiveSource, RunRecorder
from tests.plugins.api.conftest import make_bot

EXAMPLES = 6


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """A bot that traded and stopped, and its journal."""
    tmp = tmp_path_factory.mktemp("api-schema")
    bot = make_bot(tmp, seconds=40)
    asyncio.run(bot.run())
    return bot, tmp / "journal.sqlite"


def check_schema(app, token: str) -> dict:
    """Run every operation of ``app``'s schema; returns status codes seen per operation."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    seen: dict[str, set] = {}
    for result in schema.get_all_operations():
        op = result.ok()
        auth = {"Authorization": f"Bearer {token}"}
        for mode, headers in ((GenerationMode.POSITIVE, auth), (GenerationMode.NEGATIVE, auth), (GenerationMode.POSITIVE, {})):

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def one(case):
                response = case.call(headers=headers)
                assert response.status_code < 500, (op.label, response.status_code, response.text)
                seen.setdefault(op.label, set()).add(response.status_code)
                if response.status_code >= 400:
                    body = response.json()
                    assert set(body) == {"error"} and body["error"], (op.label, body)
                if mode is GenerationMode.POSITIVE:
                    case.validate_response(response)

            try:
                one()
            except Unsatisfiable:
                # an operation without parameters or body has no input that breaks its schema
                assert mode is GenerationMode.NEGATIVE, op.label
    return seen


def test_the_schema_holds_over_a_journal(ran, token):
    _bot, journal = ran
    seen = check_schema(create_app(JournalSource(journal), token=token), token)
    assert 200 in seen["GET /api/pnl"] and seen["GET /api/fills"] <= {200, 422}
    assert seen["POST /api/control/halt"] <= {400, 401, 409, 422}


def test_the_schema_holds_over_a_bot_that_ran(ran, token):
    bot, journal = ran
    hub = EventHub()
    hub.close()  # the bot stopped: the stream says goodbye at once
    control = control_of(bot.view)
    source = LiveSource(bot.view, RunRecorder(), control, hub, journal)
    seen = check_schema(create_app(source, token=token, control=control, hub=hub), token)
    assert 200 in seen["GET /api/status"] and 200 in seen["GET /api/events"]
    # the run is over: control with the token is refused with 409, without it with 401
    assert seen["POST /api/control/pause"] <= {400, 401, 409, 422} and 409 in seen["POST /api/control/pause"]
