"""Secrets in memory and on disk: :class:`Secret` and :func:`check_owner_only`.

A :class:`Secret` prints as ``***`` (``repr``, ``str``, f-strings) and refuses to be
pickled, so a mnemonic, an API key or a token cannot reach a log, a repr, an exception
or the journal by accident; only :meth:`Secret.reveal` returns the value. Every venue
and plugin that holds a secret uses this one class.

A secret file (a mnemonic file, a venue's key file, an alert URL file, the API's token
file) must be a regular file owned by the user running the bot, with no permission bits
for group or others (``chmod 600``); :func:`check_owner_only` refuses anything else in
one line that names the file, the reason and the fix.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from perpbot.core.errors import SecretError

__all__ = ["Secret", "check_owner_only"]


class Secret:
    """A string that prints as ``***`` and cannot be pickled or copied out of the process.

    >>> s = Secret("correct horse")
    >>> str(s), repr(s), f"{s}"
    ('***', '***', '***')
    """

    __slots__ = ("__value",)

    def __init__(self, value: str):
        self.__value = value

    def reveal(self) -> str:
        """The secret itself: hand it straight to key derivation or the venue's client, never to a log."""
        return self.__value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "***"

    def __bool__(self) -> bool:
        return bool(self.__value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.__value == self.__value

    def __hash__(self) -> int:
        return hash(("Secret", len(self.__value)))

    def __reduce__(self):
        raise TypeError("a Secret cannot be pickled or copied out of the process")

    def __copy__(self) -> "Secret":
        return self

    def __deepcopy__(self, memo) -> "Secret":
        return self


def check_owner_only(path: str | os.PathLike, what: str, error: type[Exception] = SecretError) -> os.stat_result:
    """Refuse a secret file unless it is a regular file of ours that group and others cannot touch.

    :param path: the file (``~`` is expanded).
    :param what: how the message names it, e.g. ``"mnemonic file"``, ``"--api-token-file"``.
    :param error: the exception class to raise (a plugin's own ConfigError subclass, say).
    :returns: the file's ``stat`` result.
    :raises error: the file is missing or unreadable, not a regular file, owned by another
        user, or has any group/other permission bit; the message names the file and gives
        the fix (``chmod 600 PATH``). Never the file's content.
    """
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except FileNotFoundError:
        raise error(f"{what} {p} does not exist") from None
    except OSError as exc:
        raise error(f"{what} {p}: cannot read it ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {p} is not a regular file")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise error(f"{what} {p} is owned by uid {st.st_uid}, not by you (uid {os.getuid()})")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise error(f"{what} {p} is readable or writable by group or others (mode {mode:04o}); "
                    f"refusing to use it. Fix: chmod 600 {p}")
    return st
