"""core/ must not import exchanges/, strategies/ or plugins/ (architecture.md)."""

import ast
from pathlib import Path

FORBIDDEN = ("exchanges", "strategies", "plugins")
CORE = Path(__file__).resolve().parents[1] / "core"


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def test_core_imports_no_plugin_packages():
    offenders = []
    files = sorted(CORE.rglob("*.py"))
    assert files, "core/ has no modules"
    for path in files:
        for lineno, name in _imports(path):
            if name.split(".")[0] in FORBIDDEN:
                offenders.append(f"{path.relative_to(CORE.parent)}:{lineno} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_layering_check_detects_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom strategies.sniper import x\n")
    assert [n for _, n in _imports(bad) if n.split(".")[0] in FORBIDDEN] == ["strategies.sniper"]


def test_core_plugins_lists_builtins_by_dotted_name_only():
    # the built-ins are named as strings in DEFAULT_PLUGINS, never imported by core
    from core.plugins import DEFAULT_PLUGINS

    assert "exchanges.paper" in DEFAULT_PLUGINS and "strategies.sniper" in DEFAULT_PLUGINS
