"""The commented default configuration written by ``runbot.py init``.

Values are written with tomli-w (Decimals exactly), each preceded by its help
text as a comment; feed, exchange, strategy, sizer and risk sections list every registered
plugin's parameters with their defaults, so the file documents itself. Settings with no
default value (``[bot] api``, ``api_token_file``, ``[alerts] urls``...) are written commented
out with an example. The ``[alerts]`` parameters are those of the loaded alerts plugin
(``perpbot.plugins.alerts``'s ``AlertParams``, found through the plugin manager: core never
imports a plugin); without that plugin the section holds only ``urls`` and ``url_file``.
The sections are those :func:`perpbot.core.config.config_from_mapping` reads (``_TOP_KEYS``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import tomli_w

from perpbot.core.config import DEFAULT_RISK_POLICIES
from perpbot.core.params import describe_params

_BOT = [
    ("exchange", ["paper"], "venues, the first is the primary: paper (simulator) or dydx (live; add --live for mainnet)"),
    ("strategy", "sniper", "strategy plugin (runbot.py plugins lists them)"),
    ("tickers", ["BTC-USD", "ETH-USD"], "dYdX markets; 'venue:TICKER' for a second venue"),
    ("feed", "auto", "market data: auto (live dYdX when online, else the embedded replay), replay, dydx"),
    ("decision_interval_s", Decimal("1"), "seconds of clock time between strategy decisions"),
    ("snapshot_interval_s", Decimal("60"), "seconds between equity snapshots in the journal"),
    ("state_dir", ".perpbot", "journal, logs and reports go here"),
    ("balance_ttl_s", Decimal("5"), "seconds the exchange balance used for sizing is cached"),
    ("large_order_usd", Decimal("10000"), "orders of at least this notional (USD) are sized on a freshly fetched balance"),
    ("journal", True, "keep a SQLite journal (needed to resume after a restart)"),
    ("dashboard", False, "live terminal dashboard"),
    ("report", True, "write the HTML report at the end of a replay"),
    ("live", False, "explicit opt-in to trade real money on dYdX mainnet"),
    ("close_on_stop", False, "close positions with reduce-only orders when the bot stops"),
    ("unknown_positions", "refuse", "positions the journal does not know at start: adopt, flatten or refuse"),
    ("progress", True, "progress bar on the terminal during a replay"),
    ("verbose", False, "debug logs and tracebacks"),
]

#: [bot] keys with no default value: written commented out, with an example value
_BOT_OPTIONAL = [
    ("journal_path", ".perpbot/journal.sqlite", "journal file (SQLite); default: journal-<strategy>-<venue>.sqlite in state_dir"),
    ("checkpoint_interval_s", Decimal("60"), "seconds between checkpoints of the run's state in the journal (default: every snapshot)"),
    ("max_events", 100000, "stop after this many market events (depth level entries, trades, quotes, bars, funding rates)"),
    ("api", "127.0.0.1:8080", "serve the REST API and web dashboard on HOST:PORT (port 0: one the OS picks); "
                              "control endpoints need a bearer token, and a bind beyond loopback is refused without one"),
    ("api_token_file", "api-token.txt", "file holding the API's bearer token, owner-only (chmod 600); "
                                        "a relative path is from the working directory (as state_dir); default: the PERPBOT_API_TOKEN "
                                        "environment variable"),
]

#: the plugin (module name in perpbot.core.plugins.DEFAULT_PLUGINS) whose AlertParams are [alerts]' keys
_ALERTS_PLUGIN = "perpbot.plugins.alerts"


def _line(key: str, value: Any, help_text: str = "", commented: bool = False) -> str:
    if isinstance(value, dict) or (isinstance(value, list) and value and isinstance(value[0], dict)):
        out = f"# {help_text}\n" if help_text else ""
        return out + f"# {key}: a table (built-in default; see the plugin's documentation)\n"
    if isinstance(value, list):  # one line: key = ["a", "b"] (tomli-w writes one item a line)
        items = (tomli_w.dumps({"v": item}).split("=", 1)[1].strip() for item in value)
        text = f"{tomli_w.dumps({key: ''}).split('=', 1)[0].strip()} = [{', '.join(items)}]"
    else:
        text = tomli_w.dumps({key: value}).strip()
    out = f"# {help_text}\n" if help_text else ""
    return out + (f"# {text}" if commented else text) + "\n"


def _toml_value(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_toml_value(x) for x in v]
    if hasattr(v, "value") and hasattr(type(v), "__members__"):
        return v.value
    return v


def _plugin_section(header: str, cls: type, description: str = "") -> str:
    out = [f"\n[{header}]\n"]
    if description:
        out.insert(0, f"\n# {description}")
    for p in describe_params(getattr(cls, "Params", None)):
        if p.get("flag"):
            p = {**p, "help": f"{p['help']} (command line: {p['flag']})"}
        default = _toml_value(p["default"])
        if default is None:
            out.append(_line(p["name"], "", f"{p['help']} (required)" if p["required"] else p["help"], commented=True))
        else:
            out.append(_line(p["name"], default, p["help"]))
    return "".join(out)


def default_config_text(pm) -> str:
    """The text of a complete, commented default config for the loaded plugins.

    :param pm: a loaded :class:`~perpbot.core.plugins.PluginManager` (its registry lists the
        feeds, exchanges, strategies, sizers and risk policies whose parameters are written).
    :returns: TOML text that :func:`perpbot.core.config.load_config` reads back unchanged.
    """
    reg = pm.registry
    parts = [
        "# perpbot configuration. Command-line flags override these values.\n",
        "# Numbers are read as exact decimals. Paper trading is the default; real money needs live = true.\n",
        "\n[bot]\n",
    ]
    for key, value, help_text in _BOT:
        parts.append(_line(key, value, help_text))
    for key, value, help_text in _BOT_OPTIONAL:
        parts.append(_line(key, value, help_text, commented=True))
    parts.append("\n# venue name -> exchange plugin, e.g. binance = \"paper\" for a second simulated venue\n[venues]\n")
    for name, cls in sorted(reg.feeds.items()):
        parts.append(_plugin_section(f"feed.{name}", cls, cls.description or f"feed {name}"))
    parts.append("\n[exchange.paper]\n")
    parts.append(_line("collateral", Decimal("10000"), "starting USDC collateral, USD"))
    parts.append(_line("maker_fee", Decimal("0.0001"), "maker fee rate (1 bp, dYdX tier 1)"))
    parts.append(_line("taker_fee", Decimal("0.0005"), "taker fee rate (5 bp, dYdX tier 1)"))
    parts.append("\n[exchange.dydx]\n")
    parts.append(_line("network", "testnet", "mainnet, testnet or custom (then set indexer_rest, indexer_ws, node)"))
    parts.append(_line("mnemonic_env", "DYDX_MNEMONIC", "environment variable holding the wallet mnemonic (or mnemonic_file, mode 600)"))
    for name, cls in sorted(reg.exchanges.items()):
        if getattr(cls, "Params", None) is not None:
            parts.append(_plugin_section(f"exchange.{name}", cls, cls.description or f"exchange {name}"))
    for name, cls in sorted(reg.strategies.items()):
        parts.append(_plugin_section(f"strategy.{name}", cls, cls.description or f"strategy {name}"))
    parts.append("\n[sizer]\n" + _line("name", "fixed_notional", "position sizer plugin"))
    for name, cls in sorted(reg.position_sizers.items()):
        parts.append(_plugin_section(f"sizer.{name}", cls, cls.description or f"sizer {name}"))
    available = [p for p in DEFAULT_RISK_POLICIES if p in reg.risk_policies]
    parts.append("\n[risk]\n" + _line("policies", available, "risk policies, checked in this order"))
    for name, cls in sorted(reg.risk_policies.items()):
        parts.append(_plugin_section(f"risk.{name}", cls, cls.description or f"risk policy {name}"))
    from perpbot.core.signals import SignalConfig

    parts.append(_plugin_section("signals", type("S", (), {"Params": SignalConfig}), "signal engine: 0-100 scores per market"))
    parts.append(_alerts_section(pm))
    return "".join(parts)


def _alerts_section(pm) -> str:
    """The ``[alerts]`` section: ``urls`` and ``url_file`` (commented out) and, when the alerts
    plugin is loaded, its parameters with their defaults (``AlertParams``, plugins/alerts/settings.py)."""
    out = [
        "\n# alerts through apprise (plugin perpbot.plugins.alerts): fills, risk actions and halts, a feed down,\n"
        "# a daily PnL summary; rate-limited, never containing secrets. Without a URL nothing is sent.\n[alerts]\n",
        _line("urls", ["json://127.0.0.1:8080/hook"], "one apprise URL per service (tgram://, slack://, discord://, "
              "mailto://, json://HOST:PORT/PATH ...); command line: --alert URL. URLs embed tokens: prefer url_file",
              commented=True),
        _line("url_file", "alerts.txt", "file of alert URLs, one a line, owner-only (chmod 600), relative to this "
              "file; command line: --alert-file", commented=True),
    ]
    plugin = pm.pm.get_plugin(_ALERTS_PLUGIN)
    params = getattr(plugin, "AlertParams", None) if plugin is not None else None
    if params is not None:
        out.append("# the parameters below: command line --alert-param key=value\n")
        out.append(_plugin_section("alerts", type("A", (), {"Params": params}))[len("\n[alerts]\n"):])
    return "".join(out)
