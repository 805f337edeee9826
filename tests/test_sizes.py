"""The project's size rules: no module over 600 lines and no class over 400 lines.

The rule is the project's (``/work/shared/docs/style.md``, issue 10's acceptance): it holds for
every ``.py`` file of the installed packages (``core/``, ``plugins/``, ``exchanges/``,
``strategies/``, ``perpbot/``) and the ``runbot.py`` shim; ``tests/`` are exempt.

A module's length is its number of lines (``len(text.splitlines())``, what ``wc -l`` counts
for a file ending in a newline). A class's length runs from its ``class`` line to its last
line (``ast`` ``lineno``..``end_lineno``, decorators excluded); nested classes are checked too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "plugins", "exchanges", "strategies", "perpbot")
MAX_MODULE_LINES = 600
MAX_CLASS_LINES = 400


def oversized(root: Path, packages=PACKAGES, extra_files=("runbot.py",)) -> list[str]:
    """One line per rule broken under ``root``: ``path: N lines > 600`` or ``path: class Name N lines > 400``.

    :param root: the repository folder; ``packages`` are folders under it, ``extra_files`` single files.
    :returns: the offences, sorted by path (an empty list when the rules hold).
    """
    files = [p for pkg in packages if (root / pkg).is_dir() for p in (root / pkg).rglob("*.py")]
    files += [root / f for f in extra_files if (root / f).is_file()]
    out = []
    for path in sorted(files):
        rel = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            out.append(f"{rel}: {lines} lines > {MAX_MODULE_LINES} (module)")
        for node in ast.walk(ast.parse(text, filename=rel)):
            if isinstance(node, ast.ClassDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_CLASS_LINES:
                    out.append(f"{rel}:{node.lineno}: class {node.name} {n} lines > {MAX_CLASS_LINES}")
    return out


def test_no_module_or_class_over_the_size_limits():
    offences = oversized(ROOT)
    assert not offences, "size rules broken (split along a seam):\n" + "\n".join(offences)


def test_the_check_names_file_class_and_count(tmp_path):
    # the checker itself, on planted offenders: a 601-line module and a 401-line class
    pkg = tmp_path / "core"
    pkg.mkdir()
    (pkg / "long.py").write_text("x = 1\n" * 601)
    body = "".join(f"    a{i} = {i}\n" for i in range(400))
    (pkg / "fat.py").write_text("class Fat:\n" + body)
    (pkg / "ok.py").write_text("x = 1\n" * 200 + "class Ok:\n" + "    a = 1\n" * 399)  # exactly 400: allowed
    (pkg / "edge.py").write_text("x = 1\n" * 600)  # exactly 600: allowed
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "huge.py").write_text("x = 1\n" * 5000)  # tests are exempt
    assert oversized(tmp_path) == [
        "core/fat.py:1: class Fat 401 lines > 400",
        "core/long.py: 601 lines > 600 (module)",
    ]
