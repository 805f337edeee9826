"""A loopback webhook that prints the alerts it receives: try ``--alert json://...`` without a chat service.

    python -m perpbot.plugins.alerts.receiver 127.0.0.1:8099
    python runbot.py ... --alert json://127.0.0.1:8099/alerts

It accepts the POSTs of apprise's ``json://`` service, whose body is
``{"version": "1.0", "title", "message", "attachments", "type"}`` (apprise
``apprise/plugins/custom_json.py``, ``NotifyJSON.send``), answers 200 and prints the type,
the title and the message of each. Any other body is printed as received. It binds the
address given (default ``127.0.0.1:8099``; port 0 lets the OS pick one, printed at start).
Standard library only; a demo and test tool, not a production endpoint.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


def handler(out: Callable[[str], None]) -> type:
    """A request handler class that prints each alert POSTed to it through ``out``."""

    class AlertHandler(BaseHTTPRequestHandler):
        """Answers every POST with 200 and prints it; other methods get 405."""

        def do_POST(self):  # noqa: N802 (http.server's naming)
            """Print one alert and answer 200."""
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw)
                text = f"[{body.get('type', '?')}] {body.get('title', '')}\n{body.get('message', '')}\n"
            except (ValueError, AttributeError):
                text = raw.decode("utf-8", "replace") + "\n"
            out(f"--- {self.path}\n{text}")
            self.send_response(200)
            self.end_headers()

        def do_GET(self):  # noqa: N802
            """Not an alert: 405."""
            self.send_response(405)
            self.end_headers()

        def log_message(self, *args):
            """Quiet: the alerts are the output."""

    return AlertHandler


def main(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C on ``HOST:PORT`` (first argument, default ``127.0.0.1:8099``).

    :returns: the exit code (2 for a bad address or a port in use, one line on stderr).
    """
    args = sys.argv[1:] if argv is None else argv
    host, _, port = (args[0] if args else "127.0.0.1:8099").rpartition(":")
    if not host or not port.isdigit():
        print(f"error: expected HOST:PORT, got {args[0]!r}", file=sys.stderr)
        return 2
    try:
        server = ThreadingHTTPServer((host, int(port)), handler(lambda s: print(s, flush=True)))
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"listening on http://{host}:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
