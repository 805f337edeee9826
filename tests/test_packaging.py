"""The wheel's package list (pyproject.toml) covers every package folder, under ``perpbot.``."""

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _declared() -> tuple[set[str], dict[str, str]]:
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return set(cfg["packages"]), cfg["package-dir"]


def _on_disk(mapping: dict[str, str]) -> set[str]:
    found = set()
    for top, folder in mapping.items():
        base = REPO / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join([top, *rel.parts]))
    return found


def test_every_package_folder_is_in_the_wheel():
    declared, mapping = _declared()
    missing = _on_disk(mapping) - declared
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
    assert all(name == "perpbot" or name.startswith("perpbot.") for name in declared)
    stale = declared - _on_disk(mapping) - {"perpbot.data"}  # perpbot.data is a data folder, not a package
    assert not stale, f"pyproject.toml lists packages that have no folder: {sorted(stale)}"
    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    twice = sorted({n for n in listed if listed.count(n) > 1})
    assert not twice, f"pyproject.toml lists packages twice: {twice}"


def test_the_check_sees_a_package_left_out(tmp_path):
    _, mapping = _declared()
    declared = set(_declared()[0]) - {"perpbot.exchanges.dydx"}
    assert "perpbot.exchanges.dydx" in _on_disk(mapping) - declared
