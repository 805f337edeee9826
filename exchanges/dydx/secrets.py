"""The wallet secret: a mnemonic that never reaches a log, a repr, an exception or the journal.

The mnemonic comes from an environment variable (``DYDX_MNEMONIC`` by default, the
name is the ``mnemonic_env`` setting) or from a file readable only by its owner
(``mnemonic_file``; group/other permission bits must be 0, else the load is refused
with the reason and the ``chmod`` command that fixes it).

It is wrapped in :class:`Secret`, whose ``repr``/``str``/``format`` are ``***`` and
which refuses to be pickled; the value is registered with :mod:`perpbot.core.logs` so
that any accidental inclusion in a log line is redacted as well. Only
:meth:`Secret.reveal` returns the words, and only the key derivation calls it.
"""

from __future__ import annotations

import os
from pathlib import Path

from perpbot.core.errors import SecretError
from perpbot.core.secrets import Secret, check_owner_only

__all__ = ["Secret", "check_private_file", "load_mnemonic"]

_VALID_WORD_COUNTS = (12, 15, 18, 21, 24)


def _register(value: str) -> None:
    try:
        from perpbot.core.logs import register_secret
    except ImportError:  # pragma: no cover - perpbot.core.logs is part of the framework
        return
    register_secret(value)
    words = value.split()
    # the phrase however it is spaced, and any run of 3 consecutive words: a lone BIP-39 word
    # (11 bits) reveals nothing, and redacting single words such as "market" or "order"
    # would blank ordinary log text
    register_secret(" ".join(words))
    for i in range(len(words) - 2):
        register_secret(" ".join(words[i : i + 3]))


def _check_words(text: str, source: str) -> Secret:
    words = text.split()
    if len(words) not in _VALID_WORD_COUNTS:
        raise SecretError(
            f"{source}: expected a BIP-39 mnemonic of 12/15/18/21/24 words, found {len(words)} word(s)"
        )
    value = " ".join(words)
    _register(value)
    return Secret(value)


def check_private_file(path: Path) -> None:
    """Refuse a mnemonic file that is not a regular file of ours with mode ``0o600``-like
    (:func:`perpbot.core.secrets.check_owner_only`).

    :raises SecretError: naming the path, the reason and the fix.
    """
    check_owner_only(path, "mnemonic file")


def load_mnemonic(env_name: str = "DYDX_MNEMONIC", file: Path | str | None = None) -> Secret:
    """Load the mnemonic from ``$env_name``, else from ``file``.

    :raises SecretError: nothing configured, an unsafe file, or not a mnemonic (the
        message never contains the words).
    """
    value = os.environ.get(env_name) if env_name else None
    if value and value.strip():
        return _check_words(value, f"environment variable {env_name}")
    if file is not None:
        path = Path(file).expanduser()
        check_private_file(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretError(f"mnemonic file {path} cannot be read: {type(exc).__name__}") from None
        return _check_words(text, f"mnemonic file {path}")
    raise SecretError(
        f"no dYdX mnemonic: set the environment variable {env_name or 'DYDX_MNEMONIC'} or "
        f"dydx.mnemonic_file (a file with mode 600); market data alone needs no key"
    )


def key_pair_from(secret: Secret):
    """Derive the secp256k1 key pair (dydx_v4_client ``KeyPair``) from ``secret``.

    Errors from the BIP-39/BIP-44 library are replaced by one that cannot carry the
    words (raised outside the ``except`` block, so no chained context leaks either).
    """
    from dydx_v4_client.key_pair import KeyPair

    failure = None
    try:
        pair = KeyPair.from_mnemonic(secret.reveal())
    except Exception as exc:  # noqa: BLE001 - any library error is replaced
        failure = type(exc).__name__
    if failure is not None:
        raise SecretError(
            f"the dYdX mnemonic was rejected by BIP-39 validation ({failure}): check the words and their order"
        )
    return pair
