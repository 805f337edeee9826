"""The configuration half of the command line: flags + config file -> :class:`~perpbot.core.config.BotConfig`.

:func:`build_config` merges a TOML config file with the root command's flags (flags win);
:func:`risk_chain` applies ``--risk`` edits; the plugin-declared flags (``--take-profit``)
land in their plugin's parameter table. :func:`_plugin_manager` is the process's one plugin
manager. :mod:`perpbot.cli` (the ``runbot`` command) re-exports these names, so
``from perpbot.cli import build_config`` keeps working.

Errors: every bad flag or value raises :class:`~perpbot.core.errors.ConfigError` naming the flag.
"""

from __future__ import annotations

import os
import socket
from decimal import Decimal

from perpbot.core.errors import ConfigError


DYDX_INDEXER_HOST = ("indexer.dydx.trade", 443)


def _online(timeout: float = 1.5) -> bool:
    """True when dYdX's public indexer answers a TCP connect (for the auto feed)."""
    if os.environ.get("PERPBOT_OFFLINE") or os.environ.get("CI"):
        return False
    try:
        with socket.create_connection(DYDX_INDEXER_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def _kv_pairs(items: list[str] | None, flag: str) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"{flag}: expected key=value, got {item!r}")
        k, v = item.split("=", 1)
        k = k.strip()
        if not k:
            raise ConfigError(f"{flag}: empty key in {item!r}")
        out[k] = v.strip()
    return out


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def risk_chain(current: tuple, spec: str) -> tuple:
    """The risk chain after ``--risk SPEC``, from ``current`` (the config file's or the default chain).

    ``a,b`` replaces the chain; ``''`` empties it; ``+name`` appends a policy and ``-name``
    removes one (``+max_positions,-seed_thresholds``), keeping the others in order.

    :raises ConfigError: when replacement and +/- items are mixed, a policy is added twice,
        or a removed policy is not in the chain (naming it and the chain).
    """
    items = _split(spec)
    signed = [i for i in items if i[:1] in "+-"]
    if not signed:
        return tuple(items)
    if len(signed) != len(items):
        raise ConfigError(f"--risk: either list the whole chain or only +name/-name changes, got {spec!r}")
    chain = list(current)
    for item in items:
        name = item[1:].strip()
        if not name:
            raise ConfigError(f"--risk: {item!r} names no policy")
        if item[0] == "+":
            if name in chain:
                raise ConfigError(f"--risk: {name!r} is already in the chain ({', '.join(chain)})")
            chain.append(name)
        else:
            if name not in chain:
                raise ConfigError(f"--risk: cannot remove {name!r}, the chain is {', '.join(chain) or 'empty'}")
            chain.remove(name)
    return tuple(chain)


def build_config(opts: dict):
    """Merge the config file (if any) with CLI flags (flags win) into a BotConfig."""
    from perpbot.core.config import BotConfig, bot_settings, check_risk_params, load_config, merge_alert_flags

    cfg = load_config(opts["config"]) if opts.get("config") else BotConfig()
    if cfg.risk:
        check_risk_params(cfg.risk, _plugin_manager().registry,
                          lambda policy, key=None: f"{opts['config']}: [risk.{policy}]" + (f" {key}" if key else ""))
    if opts.get("journal") and opts.get("no_journal"):
        raise ConfigError(f"--journal {opts['journal']} and --no-journal contradict each other: give one of them")
    # flags that set [bot] keys get the config file's own validation (perpbot.core.config.bot_settings)
    bot_flags = {}
    for opt, key in _BOT_FLAGS.items():
        if opts.get(opt) is not None:
            bot_flags[key] = opts[opt]
    if opts.get("no_journal"):
        bot_flags["journal"] = False
    for opt in ("dashboard", "live", "verbose"):
        if opts.get(opt):
            bot_flags[opt] = True
    for key, value in bot_settings(bot_flags, labels=_BOT_FLAG_LABELS).items():
        setattr(cfg, key, value)
    if opts.get("exchange"):
        venues = []
        for item in _split(opts["exchange"]):
            venue, _, plugin = item.partition("=")  # "binance=paper": venue binance run by the paper plugin
            venue = venue.strip().lower()
            if not venue or (_ and not plugin.strip()):
                raise ConfigError(f"--exchange: expected NAME or VENUE=PLUGIN, got {item!r}")
            if plugin.strip():
                cfg.venues[venue] = plugin.strip().lower()
            venues.append(venue)
        cfg.exchange = tuple(venues)
    if opts.get("fresh"):
        cfg.fresh = True
    if opts.get("sizer"):
        cfg.sizer = opts["sizer"]
    if opts.get("risk") is not None:
        cfg.risk_policies = risk_chain(cfg.risk_policies, opts["risk"])
    if opts.get("close_on_stop"):
        cfg.close_on_stop = True
    if opts.get("unknown_positions"):
        from perpbot.core.config import UNKNOWN_POSITION_POLICIES

        v = opts["unknown_positions"].strip().lower()
        if v not in UNKNOWN_POSITION_POLICIES:
            raise ConfigError(f"--unknown-positions: expected one of {', '.join(UNKNOWN_POSITION_POLICIES)}, got {opts['unknown_positions']!r}")
        cfg.unknown_positions = v
    if cfg.feed == "auto" or (cfg.feed == "replay" and not opts.get("feed") and not opts.get("config")):
        cfg.feed = _auto_feed(cfg, opts)
    feed_opts = cfg.feeds.setdefault(cfg.feed, {})
    if opts.get("data"):
        feed_opts["files"] = [p for item in opts["data"] for p in _split(item)]
    if opts.get("speed") is not None:
        feed_opts["speed"] = Decimal(str(opts["speed"]))
    if opts.get("funding"):
        feed_opts["funding_files"] = [p for item in opts["funding"] for p in _split(item)]
    params = _kv_pairs(opts.get("param"), "--param")
    if params:
        cfg.strategies.setdefault(cfg.strategy, {}).update(params)
    sizer_params = _kv_pairs(opts.get("sizer_param"), "--sizer-param")
    if sizer_params:
        cfg.sizers.setdefault(cfg.sizer, {}).update(sizer_params)
    cli_risk: dict = {}
    for item in opts.get("risk_param") or []:
        if "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--risk-param: expected policy.key=value, got {item!r}")
        (k, v), = _kv_pairs([item], "--risk-param").items()
        policy, key = k.split(".", 1)
        cli_risk.setdefault(policy.strip(), {})[key.strip()] = v
    if cli_risk:
        check_risk_params(cli_risk, _plugin_manager().registry,
                          lambda policy, key=None: "--risk-param " + ", ".join(
                              f"{policy}.{k}={v}" for k, v in cli_risk[policy].items() if key is None or k == key))
        for policy, values in cli_risk.items():
            cfg.risk.setdefault(policy, {}).update(values)
    _apply_plugin_flags(cfg, opts)
    cfg.alerts = merge_alert_flags(cfg.alerts, opts.get("alert"), opts.get("alert_file"), _kv_pairs(opts.get("alert_param"), "--alert-param"))
    if opts.get("collateral") is not None:
        cfg.exchanges.setdefault("paper", {})["collateral"] = opts["collateral"]
    dydx = {
        "network": opts.get("network"),
        "indexer_rest": opts.get("indexer_rest"),
        "indexer_ws": opts.get("indexer_ws"),
        "node": opts.get("node"),
        "node_secure": opts.get("node_secure"),
        "chain_id": opts.get("chain_id"),
    }
    dydx = {k: v for k, v in dydx.items() if v is not None and v != ""}
    account = {"subaccount": opts.get("subaccount"), "address": opts.get("address"), "mnemonic_file": opts.get("mnemonic_file"),
               "trading_key_file": opts.get("trading_key_file")}
    account = {k: (str(v) if k in ("mnemonic_file", "trading_key_file") else v) for k, v in account.items() if v is not None}
    if account:
        cfg.exchanges.setdefault("dydx", {}).update(account)
    if dydx:
        cfg.exchanges.setdefault("dydx", {}).update(dydx)
        cfg.feeds.setdefault("dydx", {}).update(dydx)
    if opts.get("dydx_stream"):
        if cfg.feed != "dydx":
            raise ConfigError(f"--dydx-stream: needs the dydx feed (--feed dydx), got --feed {cfg.feed}")
        cfg.feeds.setdefault("dydx", {})["stream"] = opts["dydx_stream"]
    if cfg.live:
        cfg.exchanges.setdefault("dydx", {})["live"] = True
    return cfg


#: CLI option -> [bot] key; their values go through perpbot.core.config.bot_settings
_BOT_FLAGS = {
    "strategy": "strategy",
    "ticker": "tickers",
    "feed": "feed",
    "state_dir": "state_dir",
    "journal": "journal_path",
    "report": "report",
    "max_events": "max_events",
    "decision_interval": "decision_interval_s",
    "api": "api",
    "api_token_file": "api_token_file",
}
_BOT_FLAG_LABELS = {
    "strategy": "--strategy",
    "tickers": "--ticker",
    "feed": "--feed",
    "state_dir": "--state-dir",
    "journal_path": "--journal",
    "journal": "--no-journal",
    "report": "--report",
    "max_events": "--max-events",
    "decision_interval_s": "--decision-interval",
    "api": "--api",
    "api_token_file": "--api-token-file",
    "dashboard": "--dashboard",
    "live": "--live",
    "verbose": "--verbose",
}

#: prefix of the parameter names of the options plugins declare (see _plugin_options)
_FLAG_DEST = "pf__"


def _flag_dest(flag: str) -> str:
    return _FLAG_DEST + flag[2:].replace("-", "_")


def _owner_params(cfg, flag: str, owner) -> dict:
    """The parameter table (in ``cfg``) of the plugin that declares ``flag``.

    :raises ConfigError: when this run does not use that plugin, naming it and how to select it.
    """
    if owner.kind == "exchanges":
        used = {cfg.venue_plugin(v) for v in cfg.exchange}
        if owner.name not in used:
            raise ConfigError(f"{flag}: a parameter of exchange {owner.name!r}, which this run does not use "
                              f"({', '.join(cfg.exchange)})")
        return cfg.exchanges.setdefault(owner.name, {})
    if owner.kind == "risk_policies":
        if owner.name not in cfg.risk_policies:
            raise ConfigError(f"{flag}: a parameter of risk policy {owner.name!r}, which is not in this run's risk chain "
                              f"({', '.join(cfg.risk_policies) or 'none'}; add it with --risk +{owner.name})")
        return cfg.risk.setdefault(owner.name, {})
    # kind -> (label, option that selects it, the run's choice, its parameter tables)
    label, option, chosen, tables = {
        "strategies": ("strategy", "--strategy", cfg.strategy, cfg.strategies),
        "position_sizers": ("position sizer", "--sizer", cfg.sizer, cfg.sizers),
        "feeds": ("feed", "--feed", cfg.feed, cfg.feeds),
    }[owner.kind]
    if owner.name != chosen:
        raise ConfigError(f"{flag}: a parameter of {label} {owner.name!r}, but this run's {label.split()[-1]} is "
                          f"{chosen!r} (add {option} {owner.name}, or drop {flag})")
    return tables.setdefault(owner.name, {})


def _apply_plugin_flags(cfg, opts: dict) -> None:
    """Map the plugin-declared flags given (``--take-profit 0.008``) onto their plugin's params.

    :raises ConfigError: a flag of a plugin that this run does not use (naming the plugin that
        owns it), or a flag that contradicts a ``--param``/``--sizer-param``/``--risk-param``.
    """
    given = {k: v for k, v in opts.items() if k.startswith(_FLAG_DEST) and v is not None}
    if not given:
        return
    flags = {_flag_dest(flag): (flag, owner) for flag, owner in _plugin_manager().registry.flags.items()}
    for dest, value in given.items():
        if dest not in flags:
            raise ConfigError(f"option {dest} is not declared by any installed plugin")
        flag, owner = flags[dest]
        table = _owner_params(cfg, flag, owner)
        if owner.field in table and str(table[owner.field]) != str(value) and opts.get("config") is None:
            raise ConfigError(f"{flag} {value} contradicts {owner.field}={table[owner.field]}: give one of them")
        table[owner.field] = value




def _auto_feed(cfg, opts) -> str:
    """The feed when none is named: dYdX live data when trading dYdX or when online, else the replay sample."""
    from loguru import logger

    if "dydx" in cfg.exchange:
        return "dydx"
    if all(cfg.venue_plugin(v) == "ccxt" for v in cfg.exchange):
        return "dydx"  # never read: ccxt venues bring their own live market data (their venue feed)
    if opts.get("data"):
        return "replay"
    if _online():
        logger.info("online: paper trading on dYdX's live public market data (use --feed replay for the embedded sample)")
        return "dydx"
    logger.info("offline: paper trading on the embedded real market-data sample (Binance USD-M BTC+ETH L2 recording)")
    return "replay"


_PM: list = []


def _plugin_manager():
    """The plugin manager, loaded once per process."""
    from perpbot.core.plugins import PluginManager

    if not _PM:
        # not strict: a broken third-party plugin must not break --help or `plugins` for everyone;
        # it is listed as broken there, and a run refuses to start (pm.raise_if_broken)
        _PM.append(PluginManager(strict=False))
    return _PM[0]
