"""perpbot.core must not import perpbot.exchanges, perpbot.strategies or perpbot.plugins (architecture.md).

Imports are read with :mod:`ast`; absolute names are checked under the ``perpbot.``
prefix (and the pre-namespace bare names, so an old-style import cannot sneak back),
and relative imports are resolved against the module's own package.
"""

import ast
from pathlib import Path

FORBIDDEN = ("exchanges", "strategies", "plugins")
REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "core"


def _imports(path: Path, package: str = "perpbot.core"):
    """Yield ``(lineno, absolute module name)`` for every import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
                yield node.lineno, name
            elif node.module:
                yield node.lineno, node.module


def _forbidden(name: str) -> bool:
    parts = name.split(".")
    if parts[0] == "perpbot" and len(parts) > 1:
        return parts[1] in FORBIDDEN
    return parts[0] in FORBIDDEN


def _offenders(root: Path) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        for lineno, name in _imports(path):
            if _forbidden(name):
                out.append(f"{path.relative_to(root.parent)}:{lineno} imports {name}")
    return out


def test_core_imports_no_plugin_packages():
    assert list(CORE.rglob("*.py")), "core/ has no modules"
    offenders = _offenders(CORE)
    assert not offenders, "\n".join(offenders)


def test_layering_check_detects_a_planted_violation(tmp_path):
    core = tmp_path / "core"
    core.mkdir()
    (core / "ok.py").write_text("import os\nfrom perpbot.core.model import Side\nfrom perpbot import hookimpl\n")
    assert _offenders(core) == []
    (core / "bad.py").write_text(
        "from perpbot.strategies.sniper import x\nimport perpbot.plugins.risk\nfrom ..exchanges import paper\nfrom strategies import grid\n"
    )
    found = _offenders(core)
    assert [f.split(" imports ")[1] for f in found] == [
        "perpbot.strategies.sniper", "perpbot.plugins.risk", "perpbot.exchanges", "strategies",
    ]


def test_core_plugins_lists_builtins_by_dotted_name_only():
    # the built-ins are named as strings in DEFAULT_PLUGINS, never imported by core
    from perpbot.core.plugins import DEFAULT_PLUGINS

    assert "perpbot.exchanges.paper" in DEFAULT_PLUGINS and "perpbot.strategies.sniper" in DEFAULT_PLUGINS


def test_nothing_imports_the_old_top_level_names():
    """Every module of the four packages, the CLI and the examples import through ``perpbot``."""
    offenders = []
    for folder in ("core", "plugins", "exchanges", "strategies", "perpbot", "examples", "tests", "bench"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if ".ci-venv" in path.parts:
                continue
            for lineno, name in _imports(path):
                if name.split(".")[0] in ("core", *FORBIDDEN, "runbot"):
                    offenders.append(f"{path.relative_to(REPO)}:{lineno} imports {name}")
    assert not offenders, "\n".join(offenders)


def _strategy_offenders(root: Path) -> list[str]:
    """Imports in a strategy package of perpbot.exchanges, perpbot.plugins or another strategy."""
    out = []
    for pkg in sorted(p for p in root.iterdir() if (p / "__init__.py").is_file()):
        for path in sorted(pkg.rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            module = ".".join(["perpbot", "strategies", *rel.parts])
            package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
            for lineno, name in _imports(path, package.removesuffix(".__init__")):
                parts = name.split(".")
                if parts[0] != "perpbot" or len(parts) < 2:
                    continue
                if parts[1] in ("exchanges", "plugins") or (parts[1] == "strategies" and len(parts) > 2 and parts[2] != pkg.name):
                    out.append(f"{path.relative_to(root.parent)}:{lineno} imports {name}")
    return out


def test_strategies_import_only_perpbot_and_core():
    offenders = _strategy_offenders(REPO / "strategies")
    assert not offenders, "\n".join(offenders)


def test_strategy_layering_check_detects_a_planted_violation(tmp_path):
    pkg = tmp_path / "strategies" / "mine"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from perpbot import hookimpl\nfrom .rules import x\n")
    (pkg / "rules.py").write_text("from perpbot.core.model import Side\n")
    assert _strategy_offenders(tmp_path / "strategies") == []
    (pkg / "bad.py").write_text("from perpbot.strategies.grid import params\nfrom perpbot.exchanges.paper import exchange\n")
    assert [o.split(" imports ")[1] for o in _strategy_offenders(tmp_path / "strategies")] == [
        "perpbot.strategies.grid", "perpbot.exchanges.paper",
    ]
