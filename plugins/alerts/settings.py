"""What the alerts plugin is told: its parameters, its services (one apprise URL each) and the secrets to keep out.

Sources, merged by :func:`perpbot.core.config.merge_alert_flags`: ``[alerts] urls = [...]`` in the
config file, ``--alert URL`` (repeatable), and a file of URLs (``[alerts] url_file`` /
``--alert-file``, one URL a line, ``#`` comments) that only its owner may read (mode 600: alert
URLs embed bot tokens, webhook keys and mail passwords). Parameters: ``[alerts] key = value`` /
``--alert-param key=value``, validated by :class:`AlertParams`.

A URL is checked before the run starts: its scheme must be one apprise supports (apprise's
own list, ``Apprise().details()["schemas"]``, each schema's ``protocols`` and
``secure_protocols``; the same list ``apprise --details`` prints), else one line names the
scheme and the closest supported ones; a known scheme apprise cannot read (a Telegram URL
without its chat, say) is refused too. A URL is never shown in full: :class:`AlertService`
prints as its :attr:`~AlertService.label` (scheme and host, the host only when it is a DNS
name or an address, since ``tgram://`` and ``slack://`` put a token where the host goes),
and every secret part of it is registered with :func:`perpbot.core.logs.register_secret`.
Imports :mod:`perpbot.core` and apprise (lazily: ``pip install perpbot[api]``).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

from perpbot.core.errors import ConfigError
from perpbot.core.secrets import check_owner_only
from perpbot.core.params import in_range, param, parse_params

#: environment variable and config key names whose values are secrets (kept out of alerts)
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|MNEMONIC|PASSW|PRIVATE|AUTH|CREDENTIAL|SEED", re.IGNORECASE)


@attrs.frozen
class AlertParams:
    """Parameters of the alerts plugin (``[alerts]`` keys, ``--alert-param key=value``).

    Rates are per minute of wall-clock time (what a chat service and a reader count); the
    feed-down delay is in the run's clock (market time in replays).
    """

    feed_down_s: Decimal = param(Decimal(60), "alert when a market's feed has been down (stale, crossed, unhealthy) this many seconds of run clock", in_range(Decimal("0.001")))
    fills: bool = param(True, "send an alert per fill (rate-limited, bursts coalesced)")
    daily: bool = param(True, "send a PnL summary at each UTC day boundary of the run clock and at stop")
    fill_burst: int = param(3, "fill alerts sent at once before the rate limit holds them back", in_range(1, 1000))
    fill_per_min: Decimal = param(Decimal(6), "fill alerts per minute after a burst", in_range(Decimal("0.01")))
    risk_burst: int = param(5, "risk-action alerts sent at once", in_range(1, 1000))
    risk_per_min: Decimal = param(Decimal(6), "risk-action alerts per minute after a burst", in_range(Decimal("0.01")))
    feed_burst: int = param(5, "feed-down/feed-back alerts sent at once", in_range(1, 1000))
    feed_per_min: Decimal = param(Decimal(6), "feed alerts per minute after a burst", in_range(Decimal("0.01")))
    burst: int = param(10, "global cap: alerts of all kinds sent at once (halts and the stop summary are exempt)", in_range(1, 10000))
    per_min: Decimal = param(Decimal(20), "global cap: alerts per minute after a burst", in_range(Decimal("0.01")))
    retries: int = param(3, "a failed send is retried this many times (then logged with the service)", in_range(0, 20))
    backoff_s: Decimal = param(Decimal(1), "seconds before the first retry; doubles at each retry", in_range(Decimal(0), Decimal(600)))
    queue_size: int = param(100, "alerts waiting per service; beyond it they are coalesced like rate-limited ones", in_range(1, 100000))
    drain_s: Decimal = param(Decimal(10), "seconds the stop waits for queued alerts to go out", in_range(Decimal(0), Decimal(600)))
    poll_s: Decimal = param(Decimal(1), "wall-clock seconds between feed and day-boundary checks (live feeds go quiet)", in_range(Decimal("0.01"), Decimal(3600)))


class AlertService:
    """One notification service: an apprise URL (a secret) and its printable label.

    ``str``/``repr`` are the label only. :meth:`reveal` returns the URL, for apprise only.

    :param url: the apprise URL, e.g. ``tgram://BOT_TOKEN/CHAT_ID`` or ``json://127.0.0.1:8080/hook``.
    """

    __slots__ = ("__url", "scheme", "label")

    def __init__(self, url: str):
        self.__url = url
        self.scheme = url.split("://", 1)[0].lower()
        self.label = url_label(url)

    def reveal(self) -> str:
        """The URL itself; hand it to apprise, never to a log, a message or a repr."""
        return self.__url

    def __repr__(self) -> str:
        return f"AlertService({self.label})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("an AlertService holds a secret URL and cannot be pickled")


def _is_address(host: str) -> bool:
    """True for a DNS name (has a dot), ``localhost`` or an IP address: a host that names a server, not a token."""
    if not host:
        return False
    if host == "localhost" or "." in host and not host.replace(".", "").isdigit():
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def url_label(url: str) -> str:
    """``scheme://host[:port]`` of an alert URL, printable: no user, password, path or query.

    The host is shown only when it names a server (:func:`_is_address`); many apprise schemes
    put a token there (``tgram://BOT_TOKEN/...``, ``slack://TOKEN_A/...``): ``scheme://***`` then.
    """
    scheme = url.split("://", 1)[0].lower()
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        host, port = "", None
    if not _is_address(host):
        return f"{scheme}://***"
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def token_like(text: str) -> bool:
    """True for text that may be a key or token: 8+ characters not all letters (``T0KENab12``,
    ``123456:AAH...``), or 16+ characters of any kind. Plain words (``webhook``) are not."""
    return len(text) >= 16 or (len(text) >= 8 and not text.isalpha())


def url_secrets(url: str) -> set[str]:
    """Every part of ``url`` that may be a secret: the URL itself, its user, password and
    ``user:password@host``, a host that is not a server name, and each path segment and query
    value that is :func:`token_like`."""
    out = {url}
    try:
        parts = urlsplit(url)
    except ValueError:
        return out
    host = parts.hostname or ""
    out.update(v for v in (parts.username, parts.password) if v and len(v) >= 6)
    if parts.username or parts.password:
        out.add(parts.netloc)
    tokens = [unquote(seg) for seg in parts.path.split("/")] + [v for _, v in parse_qsl(parts.query)]
    if not _is_address(host):  # the raw host keeps its case and any ``:token`` part (tgram://ID:TOKEN/...)
        raw = parts.netloc.rsplit("@", 1)[-1]
        tokens += [raw, *raw.split(":")]
    out.update(t for t in tokens if token_like(t))
    return out


def supported_schemes() -> frozenset[str]:
    """Every URL scheme this apprise installation supports (``Apprise().details()``), lower case.

    :raises ConfigError: apprise is not installed (``pip install 'perpbot[api]'``).
    """
    try:
        import apprise
    except ImportError:
        raise ConfigError("alerts need apprise: pip install 'perpbot[api]'") from None
    out: set[str] = set()
    for schema in apprise.Apprise().details().get("schemas", []):
        for key in ("protocols", "secure_protocols"):
            value = schema.get(key) or ()
            out.update(v.lower() for v in ([value] if isinstance(value, str) else value))
    return frozenset(out)


def check_url(url: str, where: str, schemes: frozenset[str]) -> AlertService:
    """One alert URL checked against apprise: a supported scheme apprise can read.

    :param where: where it came from, for errors (``"--alert #2"``, ``"/path/alerts.txt line 3"``).
    :raises ConfigError: ``<where>: unknown alert scheme 'x' (closest supported: a, b, c; ...)``,
        ``<where>: not an alert URL ...`` or ``<where>: apprise cannot read this <scheme>:// URL``;
        the URL itself is never in the message.
    """
    import apprise

    if "://" not in url:
        raise ConfigError(f"{where}: not an alert URL (expected SCHEME://..., e.g. json://127.0.0.1:8080/hook)")
    scheme = url.split("://", 1)[0].lower()
    if scheme not in schemes:
        close = difflib.get_close_matches(scheme, sorted(schemes), n=4, cutoff=0.5)
        hint = f"closest supported: {', '.join(close)}; " if close else ""
        raise ConfigError(
            f"{where}: unknown alert scheme {scheme!r} ({hint}{len(schemes)} schemes supported, e.g. "
            "tgram, slack, discord, mailto, json; `apprise --details` lists them)"
        )
    if apprise.Apprise.instantiate(url, asset=apprise.AppriseAsset(storage_mode="memory")) is None:
        raise ConfigError(f"{where}: apprise cannot read this {scheme}:// URL ({url_label(url)}): "
                          "a token, target or host is missing; see apprise's page for the service")
    return AlertService(url)


def check_private_file(path: Path, what: str = "alert URL file") -> None:
    """Refuse a secrets file that is not a regular file of ours readable by its owner only
    (:func:`perpbot.core.secrets.check_owner_only`).

    :raises ConfigError: naming the path, the reason and the fix (``chmod 600 <path>``).
    """
    check_owner_only(path, what, ConfigError)


def read_url_file(path: Path) -> list[tuple[str, str]]:
    """``[(url, "<path> line N")]`` from an owner-only file: one URL a line, blank lines and ``#`` comments skipped.

    :raises ConfigError: an unsafe file (see :func:`check_private_file`) or one that is not UTF-8 text.
    """
    check_private_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"alert URL file {path} cannot be read: {type(exc).__name__}") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            out.append((line, f"alert URL file {path} line {n}"))
    return out


@attrs.frozen
class AlertSettings:
    """The validated alert configuration of one run.

    :param params: the :class:`AlertParams`.
    :param services: one :class:`AlertService` per URL (none: the plugin stays idle).
    :param secrets: text that must never appear in an alert (URL parts, secret-looking
        environment and config values); see :func:`collect_secrets`.
    """

    params: AlertParams
    services: tuple = ()
    secrets: frozenset = attrs.field(default=frozenset(), repr=False)


def _walk_secrets(table: Any, out: set[str], secret_key: bool = False) -> None:
    """Add the text values under secret-looking keys of nested config tables to ``out``."""
    if isinstance(table, dict):
        for k, v in table.items():
            _walk_secrets(v, out, secret_key or bool(SECRET_NAME.search(str(k))))
    elif isinstance(table, (list, tuple)):
        for v in table:
            _walk_secrets(v, out, secret_key)
    elif secret_key and isinstance(table, str) and len(table.strip()) >= 6:
        out.add(table.strip())


def collect_secrets(config: Any, services: Iterable[AlertService], environ: dict | None = None) -> frozenset[str]:
    """Text an alert must never contain: every secret part of each service URL, the values of
    environment variables and config keys whose names look secret (:data:`SECRET_NAME`), and
    for a multi-word value (a mnemonic) every run of three consecutive words.

    :param config: the :class:`~perpbot.core.config.BotConfig` (its plugin tables are read).
    """
    out: set[str] = set()
    for service in services:
        out |= url_secrets(service.reveal())
    env = os.environ if environ is None else environ
    for name, value in env.items():
        if SECRET_NAME.search(name) and len(value.strip()) >= 6:
            out.add(value.strip())
    for table in ("exchanges", "feeds", "strategies", "sizers", "risk", "signals", "alerts"):
        _walk_secrets(getattr(config, table, None) or {}, out)
    for value in list(out):
        words = value.split()
        out.update(" ".join(words[i:i + 3]) for i in range(len(words) - 2))
    return frozenset(out)


def load_settings(config: Any) -> AlertSettings:
    """The run's :class:`AlertSettings` from ``config.alerts`` (see the module docstring).

    :raises ConfigError: a bad parameter (naming it and the closest known one), an unsafe or
        unreadable URL file, or a URL apprise does not support, one line, before the run starts.
    """
    from perpbot.core.logs import register_secret

    table = dict(getattr(config, "alerts", None) or {})
    urls = [(u, f"alert URL #{i}") for i, u in enumerate(table.pop("urls", []) or [], 1)]
    url_file = table.pop("url_file", None)
    params = parse_params(AlertParams, table, "alerts")
    if url_file:
        urls += read_url_file(Path(url_file).expanduser())
    if not urls:
        return AlertSettings(params)  # no service: the plugin stays idle, apprise is not imported
    services: list[AlertService] = []
    schemes = supported_schemes()
    for url, where in urls:
        for part in url_secrets(url):
            register_secret(part)  # an accidental log line shows *** instead
        services.append(check_url(url, where, schemes))
    return AlertSettings(params, tuple(services), collect_secrets(config, services))
