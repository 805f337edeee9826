"""Docstring coverage of the four packages (issue 10: at least 95% per package).

Counted (read with :mod:`ast`, nothing is imported): every module-level function and
class whose name does not start with ``_``, and every method and nested class of such
a class whose name does not start with ``_`` (so ``__init__`` and other dunders are not
counted; the class docstring documents the constructor). Property setters and deleters
share the getter's docstring and are not counted. Folders named ``tests`` are skipped.

A failure lists each undocumented name as ``path:line Qualified.name``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "exchanges", "plugins", "strategies")
MINIMUM = 0.95


def _is_accessor(node: ast.AST) -> bool:
    """A ``@name.setter`` / ``@name.deleter`` method (documented by its property's getter)."""
    return any(
        isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter") for d in getattr(node, "decorator_list", ())
    )


def public_definitions(path: Path) -> list[tuple[str, int, bool]]:
    """``(qualified name, line, has a docstring)`` for each public definition of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[str, int, bool]] = []

    def walk(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if node.name.startswith("_") or _is_accessor(node):
                continue
            found.append((prefix + node.name, node.lineno, ast.get_docstring(node) is not None))
            if isinstance(node, ast.ClassDef):
                walk(node.body, f"{prefix}{node.name}.")

    walk(tree.body, "")
    return found


def coverage(root: Path, base: Path | None = None) -> tuple[int, int, list[str]]:
    """``(documented, total, missing)`` over every ``*.py`` under ``root`` (``tests`` folders skipped).

    ``missing`` holds ``"path:line name"`` with the path relative to ``base`` (default: ``root``'s parent).
    """
    base = base or root.parent
    documented = total = 0
    missing: list[str] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if "tests" in rel.parts[:-1] or "__pycache__" in rel.parts:
            continue
        for name, line, has in public_definitions(path):
            total += 1
            if has:
                documented += 1
            else:
                missing.append(f"{path.relative_to(base)}:{line} {name}")
    return documented, total, missing


def _check(root: Path, base: Path | None = None) -> None:
    documented, total, missing = coverage(root, base)
    assert total, f"{root}: no public definitions found"
    share = documented / total
    if share < MINIMUM:  # raised, not asserted: pytest would re-indent the list
        raise AssertionError(
            f"{root.name}: {documented}/{total} = {share:.1%} of public functions and classes have a docstring "
            f"(at least {MINIMUM:.0%} required); undocumented:\n" + "\n".join(missing)
        )


@pytest.mark.parametrize("package", PACKAGES)
def test_public_names_are_documented(package):
    _check(REPO / package, REPO)


def test_the_measure_fails_on_an_undocumented_function(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "tests").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""A package."""\n')
    lines = ['"""A module."""\n']
    for i in range(9):
        lines.append(f'def documented_{i}():\n    """Yes."""\n')
    lines.append(
        'class Thing:\n    """A thing."""\n\n    def __init__(self):\n        pass\n\n'
        '    @property\n    def size(self):\n        """Size, base units."""\n\n'
        '    @size.setter\n    def size(self, value):\n        pass\n\n'
        "    def _private(self):\n        pass\n"
    )
    (pkg / "good.py").write_text("\n".join(lines))
    (pkg / "tests" / "test_x.py").write_text("def test_undocumented():\n    pass\n")  # skipped
    assert coverage(pkg) == (11, 11, [])
    _check(pkg)

    (pkg / "bad.py").write_text('"""Planted."""\n\n\ndef undocumented(x):\n    return x\n')
    documented, total, missing = coverage(pkg)
    assert (documented, total, missing) == (11, 12, ["pkg/bad.py:4 undocumented"])
    with pytest.raises(AssertionError) as failure:
        _check(pkg)
    assert "pkg/bad.py:4 undocumented" in str(failure.value)
    assert "11/12 = 91.7%" in str(failure.value)

    (pkg / "bad.py").write_text('"""Planted."""\n\n\nclass Open:\n    """Doc."""\n\n    def run(self):\n        pass\n\n    def stop(self):\n        pass\n')
    documented, total, missing = coverage(pkg)
    assert missing == ["pkg/bad.py:7 Open.run", "pkg/bad.py:10 Open.stop"]
    with pytest.raises(AssertionError, match=r"pkg/bad.py:7 Open.run\npkg/bad.py:10 Open.stop"):
        _check(pkg)
