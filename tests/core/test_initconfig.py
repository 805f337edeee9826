"""``runbot.py init``: the written template names every section and setting, and loads back.

The sections are those :func:`perpbot.core.config.config_from_mapping` reads (its ``_TOP_KEYS``),
the ``[bot]`` keys those it accepts (``_BOT_KEYS``), the ``[alerts]`` parameters those of
:class:`perpbot.plugins.alerts.settings.AlertParams`: compared with the code, so a setting added
later without its template line fails here.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
import tomllib
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
from typer.testing import CliRunner

from perpbot import cli

from perpbot.core import config as config_mod
from perpbot.core.initconfig import default_config_text
from perpbot.core.plugins import PluginManager

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template() -> str:
    return default_config_text(PluginManager(load_entry_points=False))


def _headers(text: str) -> list[str]:
    return re.findall(r"^\[([^\]]+)\]$", text, re.M)


def _section(text: str, header: str) -> str:
    return text.split(f"\n[{header}]\n", 1)[1].split("\n[", 1)[0]


def test_the_template_has_every_section_and_bot_key(template):
    headers = _headers(template)
    assert {h.split(".")[0] for h in headers} == config_mod._TOP_KEYS
    assert len(headers) == len(set(headers)), "a section written twice"
    reg = PluginManager(load_entry_points=False).registry
    expected = ({f"feed.{n}" for n in reg.feeds} | {f"strategy.{n}" for n in reg.strategies}
                | {f"sizer.{n}" for n in reg.position_sizers} | {f"risk.{n}" for n in reg.risk_policies}
                | {f"exchange.{n}" for n, c in reg.exchanges.items() if getattr(c, "Params", None)})
    assert expected <= set(headers), sorted(expected - set(headers))
    bot = _section(template, "bot")
    for key in config_mod._BOT_KEYS:
        assert re.search(rf"^(# )?{key} = ", bot, re.M), f"[bot] {key} missing from the template"
    # the settings without a default are written commented out, each after its help line
    assert '# api = "127.0.0.1:8080"' in bot and "bearer token" in bot
    assert '# api_token_file = "api-token.txt"' in bot and "chmod 600" in bot


def test_the_alerts_section_lists_urls_and_every_parameter_with_its_default(template):
    from perpbot.plugins.alerts.settings import AlertParams

    alerts = _section(template, "alerts")
    assert '# urls = ["json://127.0.0.1:8080/hook"]' in alerts and '# url_file = "alerts.txt"' in alerts
    values = tomllib.loads("[alerts]\n" + alerts, parse_float=Decimal)["alerts"]
    defaults = {f.name: f.default for f in attrs.fields(AlertParams)}
    assert values == defaults


def test_without_the_alerts_plugin_the_section_keeps_urls_only():
    pm = PluginManager(load_entry_points=False,
                       default_plugins=("perpbot.exchanges.paper", "perpbot.exchanges.replay", "perpbot.strategies.sniper"))
    alerts = _section(default_config_text(pm), "alerts")
    assert "# urls = " in alerts and "url_file" in alerts
    assert tomllib.loads("[alerts]\n" + alerts) == {"alerts": {}}


class _Hook(http.server.BaseHTTPRequestHandler):
    """A loopback webhook: apprise's ``json://`` posts a JSON body (title, message, type)
    (apprise ``apprise/plugins/custom_json.py``); each body is kept."""

    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received.append(json.loads(body or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):  # keep the test output quiet
        pass


def test_the_written_template_runs_with_config_and_its_api_and_alert_lines_uncommented(tmp_path):
    """``init`` writes the file; the bot runs with ``--config`` on it, with the commented
    ``api``, ``api_token_file`` and ``url_file`` lines switched on (all three take effect)."""
    apprise = pytest.importorskip("apprise")
    del apprise
    env = dict(os.environ, PERPBOT_OFFLINE="1", COLUMNS="200")
    env.pop("PERPBOT_API_TOKEN", None)
    path = tmp_path / "perpbot.toml"
    res = CliRunner().invoke(cli.build_app(), ["init", str(path)])  # in process: one interpreter start less
    assert res.exit_code == 0 and f"wrote {path}" in res.output, res.output
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        (tmp_path / "token").write_text("init-template-token-0123456789\n")
        (tmp_path / "token").chmod(0o600)
        (tmp_path / "alerts.txt").write_text(f"json://127.0.0.1:{server.server_address[1]}/hook\n")
        (tmp_path / "alerts.txt").chmod(0o600)
        text = path.read_text()
        for old, new in (('# api = "127.0.0.1:8080"', 'api = "127.0.0.1:0"'),
                         ('# api_token_file = "api-token.txt"', f'api_token_file = "{tmp_path / "token"}"'),
                         ('# url_file = "alerts.txt"', 'url_file = "alerts.txt"')):  # relative to the file
            assert old in text
            text = text.replace(old, new)
        path.write_text(text)
        res = subprocess.run([sys.executable, "runbot.py", "--config", str(path), "--feed", "replay", "--max-events",
                              "2000", "--state-dir", str(tmp_path / "state"), "--no-report"],
                             capture_output=True, text=True, cwd=REPO, env=env, timeout=240)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert res.returncode == 0, res.stderr[-3000:]
    assert "max events 2000 reached" in res.stdout
    assert re.search(r"api: serving on http://127\.0\.0\.1:\d+", res.stderr), "the API did not start"
    assert _Hook.received, "no alert reached the webhook named in url_file"
    assert "init-template-token" not in res.stderr + res.stdout
