"""Logging: loguru configured once (by the CLI), secrets redacted by construction.

- Console: human lines (INFO, DEBUG with ``--verbose``) on stderr, looked up at each
  write (:class:`CurrentStderr`): while rich draws a live display (the replay progress
  bar, ``perpbot/progress.py``) it swaps ``sys.stderr`` for a proxy that prints above the
  bar, and log lines must go through that proxy, not the stream seen at start-up.
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


class CurrentStderr:
    """A file-like sink that writes to whatever ``sys.stderr`` is at the moment of writing.

    loguru keeps the stream object it is given; given ``sys.stderr`` at start-up, it would
    keep writing to the terminal directly after rich's live display (a progress bar) has
    replaced ``sys.stderr`` with its proxy, so each log line would land in the middle of
    the bar and the bar would be redrawn over it. Colour is decided once, when the sink is
    added, from :meth:`isatty` of the stream current then.
    """

    name = "<stderr>"

    def write(self, message: str) -> None:
        """Write ``message`` (one formatted log line) to the current ``sys.stderr``."""
        sys.stderr.write(message)

    def flush(self) -> None:
        """Flush the current ``sys.stderr``."""
        sys.stderr.flush()

    def isatty(self) -> bool:
        """Whether the current ``sys.stderr`` is a terminal (False when it cannot tell)."""
        try:
            return sys.stderr.isatty()
        except (AttributeError, ValueError):  # a replaced or closed stream
            return False


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
            CurrentStderr(),
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
