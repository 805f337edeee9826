"""No plugin, exchange or strategy module touches a private attribute of the bot (issue 10.2).

Observers read the run through the documented :class:`perpbot.core.bot.view.RunView` and
reconcilers change it through :class:`perpbot.core.bot.resume.ResumeAPI`; an attribute whose
name starts with ``_`` is the bot's own business. The scan is an AST walk: an attribute
access ``X._name`` (not a dunder) anywhere in a chain rooted at the bot (``bot``,
``self.bot``, or ``self._bot()``, the journal's weak reference), or
``getattr``/``hasattr``/``setattr``/``delattr`` on the bot with a literal ``"_name"``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("plugins", "exchanges", "strategies")
BOT_NAMES = {"bot"}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _rooted_at_bot(node: ast.AST) -> bool:
    """True when ``node`` is the bot: ``bot``, ``self.bot`` or ``self._bot()`` (a weak reference)."""
    if isinstance(node, ast.Name):
        return node.id in BOT_NAMES
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr in BOT_NAMES
    if isinstance(node, ast.Call) and not node.args and isinstance(node.func, ast.Attribute):
        f = node.func
        return isinstance(f.value, ast.Name) and f.value.id == "self" and f.attr == "_bot"
    return False


def _chain_root(node: ast.AST) -> ast.AST:
    """The object an attribute chain (``a.b.c``, ``a.b().c``) starts from."""
    while True:
        if isinstance(node, ast.Attribute):
            if _rooted_at_bot(node):
                return node
            node = node.value
        elif isinstance(node, ast.Call) and not _rooted_at_bot(node):
            node = node.func
        else:
            return node


def private_bot_accesses(source: str, filename: str = "<source>") -> list[str]:
    """``["file:line bot._name", ...]`` for every private bot attribute ``source`` touches."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            if _rooted_at_bot(node):  # self._bot itself is the plugin's own weak reference
                continue
            if _rooted_at_bot(_chain_root(node.value)):
                found.append(f"{filename}:{node.lineno} .{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _is_private(node.args[1].value)
            and _rooted_at_bot(_chain_root(node.args[0]))
        ):
            found.append(f"{filename}:{node.lineno} {node.func.id}(..., {node.args[1].value!r})")
    return found


def test_no_plugin_module_touches_a_private_bot_attribute():
    found = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            found += private_bot_accesses(path.read_text(), str(path.relative_to(ROOT)))
    assert not found, "private bot attributes used outside core (use RunView / ResumeAPI):\n" + "\n".join(found)


def test_the_scan_finds_planted_private_accesses():
    planted = '''
def on_bot_stop(bot, summary):
    marks = bot._venue_marks("dydx")
    high = bot.client_ids._next
    if hasattr(bot, "_qualify"):
        pass

class P:
    def f(self):
        return self.bot._pending, self._bot()._stop

    def ok(self, bot):
        return bot.venue_marks("dydx"), bot.__class__, self._bot, self._own, other._private
'''
    found = sorted(private_bot_accesses(planted, "planted.py"), key=lambda f: int(f.split(":")[1].split(" ")[0]))
    assert [f.split(" ", 1)[1] for f in found] == [
        "._venue_marks", "._next", "hasattr(..., '_qualify')", "._pending", "._stop",
    ], found
