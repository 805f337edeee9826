"""Configuration: TOML in (floats read as Decimal), TOML out (tomli-w), validation.

Layout of a config file (``runbot.py init`` writes a commented one)::

    [bot]                       # what to run
    exchange = ["paper"]        # venues; the first is the primary
    strategy = "sniper"
    tickers = ["BTC-USD", "ETH-USD"]
    feed = "replay"             # market data: replay (recorded files) or dydx (live)
    ...
    [venues]                    # optional: venue name -> exchange plugin (default: same name)
    [feed.<name>]               # options of that feed (e.g. files, speed)
    [exchange.<name>]           # options of that exchange (e.g. collateral, fees, network)
    [strategy.<name>]           # the strategy's parameters
    [sizer]  name = "..."  and [sizer.<name>] its parameters
    [risk]   policies = [...]  and [risk.<policy>] their parameters
    [signals]                   # signal engine settings (half-lives, sampling, scales)
    [alerts] urls = [...]       # apprise URLs for alerts (perpbot.plugins.alerts) and its parameters

CLI flags override the file. Every error is a one-line
:class:`~perpbot.core.errors.ConfigError` naming the key and the value.
"""

from __future__ import annotations

import copy
import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping

import attrs
import tomli_w

from perpbot.core.errors import ConfigError
from perpbot.core.params import did_you_mean, parse_bool, parse_decimal, parse_params

UNKNOWN_POSITION_POLICIES = ("adopt", "flatten", "refuse")
#: the markets of a run that names none, for a strategy that does not discover its own
DEFAULT_TICKERS = ("BTC-USD", "ETH-USD")
#: the one spelling of "every market the strategy discovers" (``tickers = "all"``, ``--ticker all``)
ALL_MARKETS = "all"
DEFAULT_RISK_POLICIES = ("kill_switch", "stale_data", "circuit_breaker", "max_leverage", "liquidation_distance", "seed_thresholds")


def normalize_ticker(raw: str) -> str:
    """``"btc"`` -> ``"BTC-USD"``; ``"ETH-USD"`` kept; ``"binance:btc"`` -> ``"binance:BTC-USD"``.

    :raises ConfigError: for an empty or malformed ticker.
    """
    text = str(raw).strip()
    venue = ""
    if ":" in text:
        venue, text = text.split(":", 1)
        venue = venue.strip().lower()
        if not venue:
            raise ConfigError(f"ticker: empty venue in {raw!r}")
    text = text.strip().upper()
    if not text or not all(c.isalnum() or c in "-_" for c in text):
        raise ConfigError(f"ticker: not a market symbol: {raw!r}")
    if "-" not in text:
        text = f"{text}-USD"
    return f"{venue}:{text}" if venue else text


def split_ticker(ticker: str) -> tuple[str | None, str]:
    """``"binance:BTC-USD"`` -> ``("binance", "BTC-USD")``; ``"BTC-USD"`` -> ``(None, "BTC-USD")``."""
    if ":" in ticker:
        venue, t = ticker.split(":", 1)
        return venue, t
    return None, ticker


def _as_list(value: Any, key: str) -> list:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ConfigError(f"{key}: expected a list or a comma-separated string, got {value!r}")


def _as_bool(value: Any, key: str) -> bool:
    try:
        return parse_bool(value)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _as_decimal(value: Any, key: str) -> Decimal:
    try:
        return parse_decimal(value)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _as_int(value: Any, key: str, minimum: int | None = None) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    try:
        if isinstance(value, Decimal):
            if value != value.to_integral_value():
                raise ValueError
            i = int(value)
        else:
            i = int(str(value).strip())
    except (ValueError, TypeError):
        raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
    if minimum is not None and i < minimum:
        raise ConfigError(f"{key}: must be >= {minimum}, got {i}")
    return i


def parse_listen(value: Any, key: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (``"[::1]:8080"`` for IPv6) as ``(host, port)``; port 0 lets the OS pick one.

    :raises ConfigError: ``<key>: expected HOST:PORT ...``, one line naming the value.
    """
    text = str(value).strip() if isinstance(value, (str, int)) else ""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{key}: expected HOST:PORT with a port 0-65535 (e.g. 127.0.0.1:8080), got {value!r}")
    return host, int(port)


def format_listen(listen: tuple[str, int]) -> str:
    """``(host, port)`` back to ``"HOST:PORT"`` (IPv6 hosts in brackets)."""
    host, port = listen
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@attrs.define
class BotConfig:
    """A validated run configuration.

    :param exchange: venue names; the first is the primary venue.
    :param venues: venue name -> exchange plugin name (defaults to the venue name).
    :param tickers: dYdX tickers (``"BTC-USD"``), qualified ``"venue:TICKER"`` for other venues;
        empty = none named: the wiring resolves them (a strategy with ``discovers_markets`` picks
        from what the venues list, any other gets :data:`DEFAULT_TICKERS`) and writes them back here.
    :param all_markets: ``tickers = "all"`` / ``--ticker all``: the strategy must discover its
        markets (an error for one that does not).
    :param decision_interval_s: seconds of clock time between strategy decision cycles.
    :param snapshot_interval_s: seconds between equity snapshots (journal, report).
    :param max_events: stop after this many market events (each depth level entry, trade, quote, bar, funding rate; the summary's unit; None: run to the end of the data).
    :param live: explicit opt-in for real-money trading (dYdX mainnet).
    :param balance_ttl_s: seconds the exchange balance used for sizing is cached (seed 004: 5-10 s).
    :param large_order_usd: an order sized at this notional or more is re-sized on a fresh balance.
    """

    exchange: tuple = ("paper",)
    venues: dict = attrs.Factory(dict)
    strategy: str = "sniper"
    tickers: tuple = ()
    all_markets: bool = False
    feed: str = "replay"
    decision_interval_s: Decimal = Decimal("1")
    snapshot_interval_s: Decimal = Decimal("60")
    checkpoint_interval_s: Decimal | None = None
    unknown_positions: str = "refuse"
    balance_ttl_s: Decimal = Decimal("5")
    large_order_usd: Decimal = Decimal("10000")
    state_dir: Path = Path(".perpbot")
    journal_enabled: bool = True
    journal_path: Path | None = None
    dashboard: bool = False
    #: ``(host, port)`` the REST API and web dashboard listen on (``--api HOST:PORT``; port 0:
    #: one the OS picks), or None for no API (perpbot.plugins.api)
    api: tuple | None = None
    #: owner-only file holding the API's bearer token (``--api-token-file``; else ``PERPBOT_API_TOKEN``)
    api_token_file: Path | None = None
    report: bool = True
    progress: bool = True
    live: bool = False
    max_events: int | None = None
    close_on_stop: bool = False
    fresh: bool = False
    sizer: str = "fixed_notional"
    risk_policies: tuple = DEFAULT_RISK_POLICIES
    feeds: dict = attrs.Factory(dict)  # feed name -> options
    exchanges: dict = attrs.Factory(dict)  # exchange plugin name -> options
    strategies: dict = attrs.Factory(dict)  # strategy name -> params
    sizers: dict = attrs.Factory(dict)  # sizer name -> params
    risk: dict = attrs.Factory(dict)  # policy name -> params
    signals: dict = attrs.Factory(dict)  # perpbot.core.signals.SignalConfig fields
    #: ``[alerts]`` (perpbot.plugins.alerts): ``urls`` (apprise URLs: secrets, never shown in
    #: full, hence no repr), ``url_file`` (an owner-only file of URLs), the plugin's parameters
    alerts: dict = attrs.field(factory=dict, repr=False)
    verbose: bool = False

    # -- accessors -----------------------------------------------------------

    @property
    def primary_venue(self) -> str:
        """The first venue of ``exchange``: where orders go unless an intent names a ``venue``."""
        return self.exchange[0]

    def venue_plugin(self, venue: str) -> str:
        """The exchange plugin name serving ``venue`` (``venues`` map; the venue's own name by default);
        for ``PLUGIN:ARG`` (``ccxt:binanceusdm``) the part before the colon."""
        return self.venues.get(venue, venue).split(":", 1)[0]

    def venue_plugin_arg(self, venue: str) -> str:
        """What follows ``PLUGIN:`` in ``venue``'s plugin (``ccxt:binanceusdm`` -> ``binanceusdm``), else ``""``."""
        return self.venues.get(venue, venue).partition(":")[2]

    def feed_options(self) -> dict:
        """A copy of the ``[feeds.<feed>]`` options of the configured feed (empty when none)."""
        return dict(self.feeds.get(self.feed, {}))

    def exchange_options(self, venue: str) -> dict:
        """A copy of ``[exchanges.<plugin>]`` for ``venue``'s plugin, overlaid with
        ``[exchanges.<venue>]`` when the venue has its own name."""
        plugin = self.venue_plugin(venue)
        opts = dict(self.exchanges.get(plugin, {}))
        opts.update(self.exchanges.get(venue, {}) if venue != plugin else {})
        return opts

    def strategy_params(self) -> dict:
        """A copy of ``[strategies.<strategy>]`` (raw values; the strategy's Params validate them)."""
        return dict(self.strategies.get(self.strategy, {}))

    def sizer_params(self) -> dict:
        """A copy of ``[sizers.<sizer>]`` (raw values; the sizer's Params validate them)."""
        return dict(self.sizers.get(self.sizer, {}))

    def risk_params(self, name: str) -> dict:
        """A copy of ``[risk.<name>]`` for risk policy ``name`` (raw values; empty when none)."""
        return dict(self.risk.get(name, {}))

    def resolved_journal_path(self) -> Path:
        """``journal_path`` when set, else ``<state_dir>/journal-<strategy>-<primary venue>.sqlite``."""
        if self.journal_path is not None:
            return Path(self.journal_path)
        return Path(self.state_dir) / f"journal-{self.strategy}-{self.primary_venue}.sqlite"


_BOT_KEYS = {
    "exchange",
    "strategy",
    "tickers",
    "feed",
    "decision_interval_s",
    "snapshot_interval_s",
    "checkpoint_interval_s",
    "unknown_positions",
    "balance_ttl_s",
    "large_order_usd",
    "state_dir",
    "journal",
    "journal_path",
    "dashboard",
    "api",
    "api_token_file",
    "report",
    "progress",
    "live",
    "max_events",
    "close_on_stop",
    "verbose",
}
_TOP_KEYS = {"bot", "venues", "feed", "exchange", "strategy", "sizer", "risk", "signals", "alerts"}


def _table(value: Any, key: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a table, got {value!r}")
    return dict(value)


def bot_settings(bot: Mapping[str, Any], source: str = "", labels: Mapping[str, str] | None = None) -> dict:
    """Validate ``[bot]`` keys into :class:`BotConfig` keyword arguments.

    The one validation of these settings, used by the config file and by the CLI flags
    (``perpbot.cli`` passes the flag values under their config keys).

    :param source: prefix of error messages (the config file's path; ``""`` for flags).
    :param labels: key -> name shown in errors (default ``bot.<key>``; the CLI passes its
        flag names, e.g. ``{"decision_interval_s": "--decision-interval"}``).
    :returns: a dict of BotConfig fields (``journal`` becomes ``journal_enabled``).
    :raises ConfigError: ``<source>: <label>: <problem>, got <value>``, one line.
    """
    labels = labels or {}
    pre = f"{source}: " if source else ""

    def lab(key: str) -> str:
        return labels.get(key, f"bot.{key}")

    def err(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{pre}{lab(key)}: {problem}")

    def call(fn, key, *args, **kw):
        try:
            return fn(bot[key], lab(key), *args, **kw)
        except ConfigError as exc:
            raise ConfigError(f"{pre}{exc}") from None

    kw: dict[str, Any] = {}
    if "exchange" in bot:
        kw["exchange"] = tuple(str(v).strip().lower() for v in call(_as_list, "exchange"))
        if not kw["exchange"]:
            raise err("exchange", "must name at least one exchange")
    if "strategy" in bot:
        if not isinstance(bot["strategy"], str) or not bot["strategy"].strip():
            raise err("strategy", f"expected a name, got {bot['strategy']!r}")
        kw["strategy"] = bot["strategy"].strip()
    if "tickers" in bot:
        try:
            raw = _as_list(bot["tickers"], lab("tickers"))
            if any(str(t).strip().lower() == ALL_MARKETS for t in raw):
                if len(raw) != 1:
                    raise ConfigError(f"{lab('tickers')}: {ALL_MARKETS!r} stands alone (every market the strategy "
                                      f"discovers), got {bot['tickers']!r}")
                kw["tickers"], kw["all_markets"] = (), True
            else:
                kw["tickers"], kw["all_markets"] = tuple(normalize_ticker(t) for t in raw), False
        except ConfigError as exc:
            raise ConfigError(f"{pre}{exc}") from None
        if not kw["tickers"] and not kw["all_markets"]:
            raise err("tickers", f"must name at least one market (e.g. BTC-USD), got {bot['tickers']!r} "
                                f"(or {ALL_MARKETS!r}: every market the strategy discovers)")
    if "feed" in bot:
        if not isinstance(bot["feed"], str) or not bot["feed"].strip():
            raise err("feed", f"expected a name, got {bot['feed']!r}")
        kw["feed"] = bot["feed"].strip()
    if "unknown_positions" in bot:
        v = str(bot["unknown_positions"]).strip().lower()
        if v not in UNKNOWN_POSITION_POLICIES:
            raise err("unknown_positions", f"expected one of {', '.join(UNKNOWN_POSITION_POLICIES)}, got {bot['unknown_positions']!r}")
        kw["unknown_positions"] = v
    for key in ("balance_ttl_s", "large_order_usd"):
        if key in bot:
            v = call(_as_decimal, key)
            if v < 0:
                raise err(key, f"must not be negative, got {v}")
            kw[key] = v
    for key in ("decision_interval_s", "snapshot_interval_s", "checkpoint_interval_s"):
        if key in bot:
            v = call(_as_decimal, key)
            if v <= 0:
                raise err(key, f"must be positive, got {v}")
            kw[key] = v
    if bot.get("api") not in (None, ""):
        kw["api"] = call(parse_listen, "api")
    for key, field in (("state_dir", "state_dir"), ("journal_path", "journal_path"), ("api_token_file", "api_token_file")):
        if key in bot:
            v = bot[key]
            if isinstance(v, os.PathLike):
                v = os.fspath(v)
            if not isinstance(v, str) or not v.strip():
                raise err(key, f"expected a directory or file path (text), got {bot[key]!r}")
            kw[field] = Path(v)
    if "journal" in bot:
        kw["journal_enabled"] = call(_as_bool, "journal")
    for key in ("dashboard", "report", "progress", "live", "close_on_stop", "verbose"):
        if key in bot:
            kw[key] = call(_as_bool, key)
    if bot.get("max_events") not in (None, "", 0):
        kw["max_events"] = call(_as_int, "max_events", minimum=1)
    return kw


def config_from_mapping(data: Mapping[str, Any], source: str = "config") -> BotConfig:
    """Validate a parsed TOML document into a :class:`BotConfig`.

    :raises ConfigError: naming ``source`` and the offending key.
    """
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown section [{unknown[0]}]{did_you_mean(unknown[0], _TOP_KEYS)} (known: {', '.join(sorted(_TOP_KEYS))})")
    bot = _table(data.get("bot"), "[bot]")
    bad = sorted(set(bot) - _BOT_KEYS)
    if bad:
        raise ConfigError(f"{source}: unknown key bot.{bad[0]}{did_you_mean(bad[0], _BOT_KEYS)} (known: {', '.join(sorted(_BOT_KEYS))})")
    if bot.get("journal_path") in ("", None):
        bot.pop("journal_path", None)  # an empty journal_path means "the default"
    kw = bot_settings(bot, source)
    venues = _table(data.get("venues"), "[venues]")
    kw["venues"] = {str(k).lower(): str(v).lower() for k, v in venues.items()}
    kw["feeds"] = {k: _table(v, f"[feed.{k}]") for k, v in _table(data.get("feed"), "[feed]").items()}
    kw["exchanges"] = {k: _table(v, f"[exchange.{k}]") for k, v in _table(data.get("exchange"), "[exchange]").items()}
    kw["strategies"] = {
        k: _table(v, f"[strategy.{k}]") for k, v in _table(data.get("strategy"), "[strategy]").items()
    }
    sizer = _table(data.get("sizer"), "[sizer]")
    if "name" in sizer:
        kw["sizer"] = str(sizer.pop("name"))
    kw["sizers"] = {k: _table(v, f"[sizer.{k}]") for k, v in sizer.items()}
    risk = _table(data.get("risk"), "[risk]")
    if "policies" in risk:
        kw["risk_policies"] = tuple(str(p) for p in _as_list(risk.pop("policies"), "risk.policies"))
    kw["risk"] = {k: _table(v, f"[risk.{k}]") for k, v in risk.items()}
    kw["signals"] = _table(data.get("signals"), "[signals]")
    kw["alerts"] = alert_settings(_table(data.get("alerts"), "[alerts]"), f"{source}: [alerts]")
    return BotConfig(**kw)


def alert_settings(table: Mapping[str, Any], source: str = "[alerts]") -> dict:
    """Check the shape of an ``[alerts]`` table: ``urls`` a list of URLs (text), ``url_file`` a path.

    The other keys are the alerts plugin's parameters: it validates them, and each URL's
    scheme, when the bot is built (``configure``), before the run starts. A URL is never
    echoed in an error (alert URLs embed tokens).

    :returns: a copy with ``urls`` as a list of stripped strings and ``url_file`` as text.
    :raises ConfigError: ``<source> urls: ...`` / ``<source> url_file: ...``, one line.
    """
    out = dict(table)
    if "urls" in out:
        urls = [out["urls"]] if isinstance(out["urls"], str) else out["urls"]
        if not isinstance(urls, (list, tuple)) or not all(isinstance(u, str) and u.strip() for u in urls):
            raise ConfigError(f"{source} urls: expected a list of apprise URLs (non-empty text), "
                              f"got a {type(out['urls']).__name__}")
        out["urls"] = [u.strip() for u in urls]
    if "url_file" in out:
        v = os.fspath(out["url_file"]) if isinstance(out["url_file"], os.PathLike) else out["url_file"]
        if not isinstance(v, str) or not v.strip():
            raise ConfigError(f"{source} url_file: expected a file path (text), got {out['url_file']!r}")
        out["url_file"] = v.strip()
    return out


def merge_alert_flags(alerts: Mapping[str, Any], urls: list | None, url_file: Any, params: Mapping[str, Any]) -> dict:
    """The ``[alerts]`` table after the CLI flags: ``--alert URL`` adds to the file's ``urls``,
    ``--alert-file PATH`` replaces ``url_file``, ``--alert-param key=value`` sets a parameter.

    :raises ConfigError: as :func:`alert_settings`, naming the flag.
    """
    out = dict(alerts)
    if urls:
        out["urls"] = [*alerts.get("urls", []), *alert_settings({"urls": list(urls)}, "--alert")["urls"]]
    if url_file is not None:
        out["url_file"] = alert_settings({"url_file": url_file}, "--alert-file")["url_file"]
    out.update(params)
    return out


def load_config(path: str | os.PathLike) -> BotConfig:
    """Read a TOML config (floats as Decimal).

    :raises ConfigError: missing file, TOML syntax error (with line), or invalid values.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"config {p}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}); save the file as UTF-8"
        ) from None
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {p}: {exc}") from None
    cfg = config_from_mapping(data, source=str(p))
    _resolve_feed_paths(cfg, p.resolve().parent)
    if cfg.alerts.get("url_file"):
        cfg.alerts["url_file"] = _relative_to(p.resolve().parent, cfg.alerts["url_file"])
    return cfg


def check_risk_params(risk: Mapping[str, Mapping[str, Any]], registry: Any, label=None) -> None:
    """Every risk section names a registered policy, and every key is one of its parameters.

    A policy not in the chain (``risk.policies`` / ``--risk``) may keep parameters (``init``
    writes a section per policy); they take effect once it is added.

    :param risk: policy name -> raw parameters (``BotConfig.risk``).
    :param registry: the plugin registry (:class:`perpbot.core.plugins.Registry`).
    :param label: ``label(policy, key)`` -> where the value came from, shown first in errors
        (default ``"[risk.<policy>]"``); the CLI names ``--risk-param policy.key=value``.
    :raises ConfigError: unknown policy (with the closest registered name) or a parameter
        unknown to, or refused by, the policy's Params (with the closest field name).
    """
    label = label or (lambda policy, key=None: f"[risk.{policy}]")
    policies = registry.risk_policies
    for policy, params in risk.items():
        if policy not in policies:
            known = ", ".join(sorted(policies)) or "none"
            raise ConfigError(
                f"{label(policy, None)}: unknown risk policy {policy!r}{did_you_mean(policy, policies)} (known: {known})"
            )
        pcls = policies[policy]
        for key in params:
            try:
                parse_params(pcls.Params, {key: params[key]}, f"risk policy {policy}")
            except ConfigError as exc:
                if "missing required parameter" in str(exc):
                    continue  # judged with all its keys below
                raise ConfigError(f"{label(policy, key)}: {exc}") from None
        try:
            parse_params(pcls.Params, params, f"risk policy {policy}")
        except ConfigError as exc:
            raise ConfigError(f"{label(policy, None)}: {exc}") from None


def _resolve_feed_paths(cfg: BotConfig, base: Path) -> None:
    """Relative data paths in a config file are relative to the file's directory.

    Applies to feed options whose key ends in ``file``, ``files`` or ``path``.
    """
    for opts in cfg.feeds.values():
        for key, value in list(opts.items()):
            if not key.endswith(("file", "files", "path")):
                continue
            if isinstance(value, str):
                opts[key] = _relative_to(base, value)
            elif isinstance(value, list):
                opts[key] = [_relative_to(base, v) if isinstance(v, str) else v for v in value]


def _relative_to(base: Path, value: str) -> str:
    if not value or Path(value).is_absolute() or value.startswith("sample:"):
        return value
    return str(base / value)


def config_to_mapping(cfg: BotConfig) -> dict:
    """A :class:`BotConfig` as a TOML-ready mapping (Decimal values kept exact)."""
    bot: dict[str, Any] = {
        "exchange": list(cfg.exchange),
        "strategy": cfg.strategy,
        "tickers": ALL_MARKETS if cfg.all_markets and not cfg.tickers else list(cfg.tickers),
        "feed": cfg.feed,
        "decision_interval_s": cfg.decision_interval_s,
        "snapshot_interval_s": cfg.snapshot_interval_s,
        "unknown_positions": cfg.unknown_positions,
        "state_dir": str(cfg.state_dir),
        "journal": cfg.journal_enabled,
        "dashboard": cfg.dashboard,
        "report": cfg.report,
        "live": cfg.live,
        "close_on_stop": cfg.close_on_stop,
    }
    if not bot["tickers"]:
        del bot["tickers"]  # none named: resolved by the wiring
    if cfg.journal_path is not None:
        bot["journal_path"] = str(cfg.journal_path)
    if cfg.max_events is not None:
        bot["max_events"] = cfg.max_events
    if cfg.api is not None:
        bot["api"] = format_listen(cfg.api)
    if cfg.api_token_file is not None:
        bot["api_token_file"] = str(cfg.api_token_file)
    out: dict[str, Any] = {"bot": bot}
    if cfg.venues:
        out["venues"] = dict(cfg.venues)
    out["feed"] = copy.deepcopy(cfg.feeds)
    out["exchange"] = copy.deepcopy(cfg.exchanges)
    out["strategy"] = copy.deepcopy(cfg.strategies)
    out["sizer"] = {"name": cfg.sizer, **copy.deepcopy(cfg.sizers)}
    out["risk"] = {"policies": list(cfg.risk_policies), **copy.deepcopy(cfg.risk)}
    if cfg.signals:
        out["signals"] = copy.deepcopy(cfg.signals)
    return _toml_ready(out)


def _toml_ready(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _toml_ready(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_toml_ready(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "value") and hasattr(type(value), "__members__"):  # Enum
        return value.value
    return value


def dumps(data: Mapping[str, Any]) -> str:
    """TOML text for ``data`` (Decimal written exactly)."""
    return tomli_w.dumps(_toml_ready(data))
