"""API credentials of a ccxt venue: from the environment or an owner-only key file, never printed.

Sources, first match wins for each field:

1. the environment: ``PERPBOT_<VENUE>_API_KEY`` / ``_SECRET`` (Binance, Bybit, OKX; OKX also
   ``_PASSWORD``), ``PERPBOT_<VENUE>_WALLET_ADDRESS`` / ``_PRIVATE_KEY`` (Hyperliquid), where
   ``<VENUE>`` is the run's venue name in upper case (``binance``, ``hyperliquid``);
2. the key file (``key_file`` option, ``--key-file``): lines ``NAME=value`` with the same
   names (or the bare suffixes ``API_KEY=...``); it must not be readable by group or others
   (mode 600), else it is refused with the ``chmod`` that fixes it.

Values are wrapped in :class:`Credential` (``repr``/``str``/``format`` print ``***``, pickling
is refused) and registered with :func:`perpbot.core.logs.register_secret`, so a value that
reaches a log line anyway is redacted. Only :meth:`Credential.reveal` returns the value, and
only :func:`perpbot.exchanges.ccxt.client.make_client` calls it (to hand it to ccxt).
"""

from __future__ import annotations

import os
from pathlib import Path

from perpbot.core.errors import SecretError
from perpbot.core.secrets import Secret, check_owner_only
from perpbot.exchanges.ccxt.venues import ENV_SUFFIX, VenueProfile


#: a venue credential: :class:`perpbot.core.secrets.Secret` (prints as ``***``, refuses pickling)
Credential = Secret


def env_name(venue: str, field: str) -> str:
    """``PERPBOT_<VENUE>_<SUFFIX>`` for ccxt credential ``field`` (``apiKey`` -> ``API_KEY``)."""
    return f"PERPBOT_{venue.upper().replace('-', '_')}_{ENV_SUFFIX[field]}"


def read_key_file(path: str | os.PathLike) -> dict[str, str]:
    """``NAME=value`` lines of an owner-only file (``#`` comments and blank lines skipped).

    :raises SecretError: the file is missing, unreadable, readable by group or others (the
        message gives ``chmod 600 <path>``), or holds a line without ``=`` (its number only,
        never its text).
    """
    p = Path(path).expanduser()
    check_owner_only(p, "key file")
    out: dict[str, str] = {}
    for n, line in enumerate(p.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise SecretError(f"key file {str(p)!r}: line {n} is not NAME=value")
        k, v = line.split("=", 1)
        out[k.strip().upper()] = v.strip().strip('"').strip("'")
    return out


def load_credentials(venue: str, profile: VenueProfile, key_file: str | None, required: bool) -> dict[str, Credential]:
    """ccxt credential field -> :class:`Credential` for ``venue``.

    :param required: True when orders will be sent (a missing field is then an error).
    :raises SecretError: a missing credential (naming the environment variables and the
        ``--key-file`` option), or a bad key file (see :func:`read_key_file`).
    """
    from perpbot.core.logs import register_secret

    filed = read_key_file(key_file) if key_file else {}
    fields = list(profile.credentials) + (["password"] if profile.ccxt_id == "okx" else [])
    out: dict[str, Credential] = {}
    missing = []
    for field in fields:
        name = env_name(venue, field)
        value = os.environ.get(name) or filed.get(name) or filed.get(ENV_SUFFIX[field])
        if value:
            register_secret(value)
            out[field] = Credential(value)
        else:
            missing.append(name)
    if missing and required:
        raise SecretError(f"venue {venue!r} ({profile.ccxt_id}): missing credentials {', '.join(missing)}: "
                          f"set them in the environment or in an owner-only file given with --key-file")
    return out
