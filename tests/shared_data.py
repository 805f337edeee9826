"""The one place tests, fixtures and fakes find the project's shared data folder.

The shared data folder (``../shared/data`` next to the repository, or
``$PERPBOT_SHARED_DATA``) holds real recorded payloads (some LGPL/AGPL: read there, never
copied into the repo).  It exists on the project's CI and dev machines only; a user's
clone has none.  Everything under ``tests/`` looks it up through this module, so one
environment variable hides it from all of them at once:

``PERPBOT_NO_SHARED_DATA=1``
    the folder is treated as absent: tests that need it skip (the reason names this
    variable), the dYdX fakes (``tests/fakes``) load their built-in dataset, and
    ``install_guard`` makes any remaining read under the folder fail loudly, so a new
    test that reaches it by a hard-coded path cannot pass by accident.  ``.ci/run`` runs
    the whole suite a second time this way: the suite a user runs in a fresh clone.

Accepted values: ``1``/``true``/``yes``/``on`` (hide) and ``0``/``false``/``no``/``off``
or empty/unset (show); anything else raises ``ValueError`` naming the variable.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

#: set to 1 to hide the shared data folder from every test, fixture and fake
HIDE_ENV = "PERPBOT_NO_SHARED_DATA"
#: where the shared data folder is when not at ``<repo>/../shared/data``
DIR_ENV = "PERPBOT_SHARED_DATA"

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DIR = REPO.parent / "shared" / "data"
#: what ``shared_root`` returns while the folder is hidden: a path that never exists,
#: so module-level ``SHARED / ... .is_dir()`` checks read "absent"
HIDDEN_ROOT = Path("/nonexistent") / f"shared-data-hidden-by-{HIDE_ENV}"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def hidden() -> bool:
    """True when ``$PERPBOT_NO_SHARED_DATA`` asks to hide the shared data folder.

    :raises ValueError: for a value that is neither a yes nor a no (one line, naming it).
    """
    raw = os.environ.get(HIDE_ENV, "")
    v = raw.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"{HIDE_ENV}={raw!r}: expected 1 (hide the shared data folder) or 0")


def configured_dir() -> Path:
    """``$PERPBOT_SHARED_DATA`` or ``<repo>/../shared/data``, whether hidden, present or not."""
    env = os.environ.get(DIR_ENV)
    return Path(env) if env else DEFAULT_DIR


def shared_data_dir() -> Optional[Path]:
    """The shared data folder, or None when it is hidden or absent."""
    if hidden():
        return None
    d = configured_dir()
    return d if d.is_dir() else None


def shared_root() -> Path:
    """The shared data folder's path, or ``HIDDEN_ROOT`` (never exists) while hidden.

    For module-level constants such as ``SHARED / "tick_l2" / ...`` whose users test
    ``is_dir()`` / ``exists()``; pair the skip with ``absent_reason()``.
    """
    return HIDDEN_ROOT if hidden() else configured_dir()


def absent_reason() -> str:
    """Why the shared data folder is unavailable (for ``pytest.skip`` reasons)."""
    if hidden():
        return f"shared data folder hidden by {HIDE_ENV}=1 (as in a user's clone)"
    return (f"shared data folder {configured_dir()} is absent (only on the project's CI and "
            f"dev machines; a user's clone has none)")


# ------------------------------------------------------------------------- the guard

def guarded_roots() -> tuple[str, ...]:
    """Absolute folder paths (with a trailing separator) that ``install_guard`` denies."""
    roots = {configured_dir(), DEFAULT_DIR}
    fakes_dir = os.environ.get("DYDX_FAKES_DATA_DIR")  # tests/fakes/indexer/dataset.py DATA_DIR_ENV
    if fakes_dir:
        roots.add(Path(fakes_dir))
    out = set()
    for r in roots:
        for p in (Path(os.path.abspath(r)), r.resolve()):
            out.add(str(p).rstrip(os.sep) + os.sep)
    return tuple(sorted(out))


_installed = False


def install_guard() -> bool:
    """While hidden, make every open / listdir / scandir / glob under the shared folder raise.

    A ``sys.addaudithook`` hook (process-wide, cannot be removed; installed once). It
    raises ``PermissionError`` naming the path and ``PERPBOT_NO_SHARED_DATA``, so a test
    or fake that reaches the folder by a path of its own fails instead of silently
    using data a user does not have. ``os.stat`` has no audit event, so ``exists()`` /
    ``is_dir()`` still answer; only reads are stopped (``Path.glob`` catches the error
    itself, so there the folder just looks empty).

    :returns: True when the guard is (now) active, False when the folder is not hidden.
    """
    global _installed
    if not hidden():
        return False
    if _installed:
        return True
    roots = guarded_roots()
    events = {"open", "os.listdir", "os.scandir", "glob.glob", "glob.glob/2"}

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event not in events or not args:
            return
        p = args[0]
        if isinstance(p, int) or p is None:
            return
        try:
            s = os.fsdecode(p)
        except TypeError:
            return
        a = os.path.abspath(s) + os.sep
        if a.startswith(roots):
            raise PermissionError(f"{s}: the shared data folder is hidden by {HIDE_ENV}=1; "
                                  f"use tests/shared_data.py (shared_data_dir / absent_reason) "
                                  f"and skip, or use data that ships with the repository")

    sys.addaudithook(hook)
    _installed = True
    return True
