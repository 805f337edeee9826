"""The commented default configuration written by ``runbot.py init``.

Values are written with tomli-w (Decimals exactly), each preceded by its help
text as a comment; strategy, sizer and risk sections list every registered
plugin's parameters with their defaults, so the file documents itself.
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
]


def _line(key: str, value: Any, help_text: str = "", commented: bool = False) -> str:
    if isinstance(value, dict) or (isinstance(value, list) and value and isinstance(value[0], dict)):
        out = f"# {help_text}\n" if help_text else ""
        return out + f"# {key}: a table (built-in default; see the plugin's documentation)\n"
    text = tomli_w.dumps({key: value}).strip()
    text = text.replace("\n", " ").replace("[ ", "[").replace(", ]", "]")
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
    """The text of a complete, commented default config for the loaded plugins."""
    reg = pm.registry
    parts = [
        "# perpbot configuration. Command-line flags override these values.\n",
        "# Numbers are read as exact decimals. Paper trading is the default; real money needs live = true.\n",
        "\n[bot]\n",
    ]
    for key, value, help_text in _BOT:
        parts.append(_line(key, value, help_text))
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
    return "".join(parts)
