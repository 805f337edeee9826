"""Logging: loguru configured once (by the CLI), secrets redacted by construction.

- Console: human lines (INFO, DEBUG with ``--verbose``) on stderr.
- File: JSON lines (``serialize=True``) in ``<state_dir>/logs/perpbot.jsonl``,
  rotated at 10 MB, keeping 5 files; every record carries ``run_id`` and, where
  the code binds them, ``market`` and ``client_id``.
- Secrets: any value passed to :func:`register_secret` is replaced by ``***``
  in every message and exception text before a sink sees it (a loguru patcher),
  so a mnemonic cannot reach a log even by accident.
"""

from __future__ import annotations

import sys
from pathlib import Path

from loguru import logger

_SECRETS: set[str] = set()


def register_secret(value: str) -> None:
    """Redact ``value`` from all log output (values shorter than 6 characters are ignored)."""
    if value and len(value) >= 6:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for s in _SECRETS:
        if s in text:
            text = text.replace(s, "***")
    return text


def _patch(record) -> None:
    if _SECRETS:
        record["message"] = redact(record["message"])
        if record["exception"] is not None:
            exc = record["exception"]
            if exc.value is not None and any(s in str(exc.value) for s in _SECRETS):
                record["exception"] = exc._replace(value=type(exc.value)(redact(str(exc.value))))
    record["extra"].setdefault("run_id", "-")


def configure_logging(*, verbose: bool = False, log_dir: Path | None = None, run_id: str = "-", quiet_console: bool = False) -> None:
    """Install the console and JSON-file sinks. Call once, from the CLI."""
    logger.remove()
    logger.configure(patcher=_patch, extra={"run_id": run_id})
    level = "DEBUG" if verbose else "INFO"
    if not quiet_console:
        logger.add(
            sys.stderr,
            level=level,
            format="<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> {message}",
            backtrace=verbose,
            diagnose=False,
        )
    if log_dir is not None:
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        logger.add(
            log_dir / "perpbot.jsonl",
            level="DEBUG",
            serialize=True,
            rotation="10 MB",
            retention=5,
            enqueue=False,
            backtrace=False,
            diagnose=False,
        )
